/*
 * api_coll.c: public entry points for collections: create, drop, rename, exists, list, stats.
 * Each runs in its own transaction (the header gives them no txn argument).
 */
#include <string.h>

#include "api_int.h"

int nx_collection_create(nx_db *db, const char *name, nx_in options) {
  int rc = api_check(db, name, "nx_collection_create");
  if (rc != NX_OK) return rc;
  api_doc o;
  rc = api_in(options, "nx_collection_create options", false, &o);
  if (rc != NX_OK) return rc;
  nx_txn *t;
  bool own;
  rc = eng_txn_use(db, NULL, true, "nx_collection_create", &t, &own);
  if (rc == NX_OK) {
    rc = eng_coll_create(t, name, o.p);
    rc = eng_txn_done(t, own, rc, true);
  }
  api_in_free(&o);
  return rc;
}

int nx_collection_drop(nx_db *db, const char *name) {
  int rc = api_check(db, name, "nx_collection_drop");
  if (rc != NX_OK) return rc;
  nx_txn *t;
  bool own;
  rc = eng_txn_use(db, NULL, true, "nx_collection_drop", &t, &own);
  if (rc != NX_OK) return rc;
  return eng_txn_done(t, own, eng_coll_drop(t, name), true);
}

int nx_collection_rename(nx_db *db, const char *from, const char *to) {
  int rc = api_check(db, from, "nx_collection_rename");
  if (rc == NX_OK) rc = api_check(db, to, "nx_collection_rename");
  if (rc != NX_OK) return rc;
  if (strcmp(from, to) == 0) return nx_err(NX_INVALID, "nx_collection_rename: '%s' is already its name", from);
  nx_txn *t;
  bool own;
  rc = eng_txn_use(db, NULL, true, "nx_collection_rename", &t, &own);
  if (rc != NX_OK) return rc;
  return eng_txn_done(t, own, eng_coll_rename(t, from, to), true);
}

int nx_collection_exists(nx_db *db, const char *name, bool *out) {
  if (!out) return nx_err(NX_MISUSE, "nx_collection_exists: out is NULL");
  *out = false;
  if (!db) return nx_err(NX_MISUSE, "nx_collection_exists: database handle is NULL");
  if (!name) return nx_err(NX_MISUSE, "nx_collection_exists: name is NULL");
  nx_txn *t;
  bool own;
  int rc = eng_txn_use(db, NULL, false, "nx_collection_exists", &t, &own);
  if (rc != NX_OK) return rc;
  eng_coll *c;
  rc = eng_coll_get(t, name, false, &c);
  if (rc == NX_OK) *out = true;
  if (rc == NX_NOTFOUND || rc == NX_INVALID) {
    rc = NX_OK; /* an impossible name simply does not exist */
    nx_err_clear();
  }
  return eng_txn_done(t, own, rc, false);
}

typedef struct strv {
  char **v;
  size_t n, alloc;
} strv;

static int strv_add(void *ctx, const char *name) {
  strv *s = ctx;
  if (s->n == s->alloc) {
    size_t na = s->alloc ? s->alloc * 2 : 16;
    char **p = nx_realloc(s->v, na * sizeof *p);
    if (!p) return nx_err(NX_NOMEM, "nx_collection_list: out of memory");
    s->v = p;
    s->alloc = na;
  }
  s->v[s->n] = nx_strdup(name);
  if (!s->v[s->n]) return nx_err(NX_NOMEM, "nx_collection_list: out of memory");
  s->n++;
  return 0;
}

int nx_collection_list(nx_db *db, char ***names, size_t *count) {
  if (!names || !count) return nx_err(NX_MISUSE, "nx_collection_list: NULL output");
  *names = NULL;
  *count = 0;
  nx_txn *t;
  bool own;
  int rc = eng_txn_use(db, NULL, false, "nx_collection_list", &t, &own);
  if (rc != NX_OK) return rc;
  strv s = {0};
  rc = eng_coll_list(t, false, strv_add, &s);
  rc = eng_txn_done(t, own, rc, false);
  if (rc != NX_OK) {
    nx_free_strv(s.v, s.n);
    return rc;
  }
  *names = s.v;
  *count = s.n;
  return NX_OK;
}

/* Sums document and stored sizes over the collection tree. */
static int coll_sizes(nx_txn *t, eng_coll *c, uint64_t *count, uint64_t *bytes, uint64_t *stored) {
  st_cursor *sc;
  int rc = st_cursor_open(t->st, c->tree, &sc);
  if (rc != NX_OK) return rc;
  nx_buf scratch;
  nx_buf_init(&scratch, ST_MAX_VALUE);
  for (rc = st_cursor_first(sc); rc == NX_OK; rc = st_cursor_next(sc)) {
    st_val k, v;
    eng_doc d;
    rc = st_cursor_get(sc, &k, &v);
    if (rc == NX_OK) rc = eng_doc_decode(c->name, v, &scratch, &d);
    if (rc != NX_OK) break;
    *stored += k.n + v.n;
    if (eng_doc_expired_in(&d.meta, t)) continue;
    (*count)++;
    *bytes += d.doc.len;
  }
  nx_buf_free(&scratch);
  st_cursor_close(sc);
  return rc == NX_NOTFOUND ? NX_OK : rc;
}

int nx_collection_stats(nx_db *db, const char *name, bson_t *out) {
  if (!out) return nx_err(NX_MISUSE, "nx_collection_stats: out is NULL");
  if (!db || !name) return nx_err(NX_MISUSE, "nx_collection_stats: NULL argument");
  nx_txn *t;
  bool own;
  int rc = eng_txn_use(db, NULL, false, "nx_collection_stats", &t, &own);
  if (rc != NX_OK) return rc;
  eng_coll *c;
  bson_t entry;
  uint64_t count = 0, bytes = 0, stored = 0;
  rc = eng_coll_get(t, name, false, &c);
  if (rc == NX_OK) rc = coll_sizes(t, c, &count, &bytes, &stored);
  if (rc == NX_OK) rc = eng_catalog_get(t, name, &entry);
  if (rc == NX_OK) {
    bson_init(out);
    BSON_APPEND_UTF8(out, "name", name);
    BSON_APPEND_INT64(out, "count", (int64_t)count);
    BSON_APPEND_INT64(out, "size", (int64_t)bytes);
    BSON_APPEND_INT64(out, "avgObjSize", count ? (int64_t)(bytes / count) : 0);
    BSON_APPEND_INT64(out, "storageSize", (int64_t)stored);
    bson_t arr;
    bson_append_array_begin(out, "indexes", -1, &arr);
    rc = idx_list(t->st, name, &arr);
    uint32_t nidx = bson_count_keys(&arr);
    bson_append_array_end(out, &arr);
    BSON_APPEND_INT32(out, "nindexes", (int32_t)nidx);
    bson_iter_t it;
    if (bson_iter_init_find(&it, &entry, "options")) bson_append_iter(out, "options", -1, &it);
    if (bson_iter_init_find(&it, &entry, "created")) bson_append_iter(out, "created", -1, &it);
    bson_destroy(&entry);
    if (rc != NX_OK) bson_destroy(out);
  }
  return eng_txn_done(t, own, rc, false);
}
