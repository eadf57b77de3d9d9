/*
 * api_index.c: public entry points for secondary indexes and explain: nx_index_create,
 * nx_index_drop, nx_index_list, nx_explain; and api_index_open_check, run by nx_open, which
 * rebuilds every index whose definition is stale (format version or fingerprint mismatch,
 * index.h invariant 3).
 *
 * An index build runs in its own write transaction (writers wait; readers go on with their
 * snapshots) and feeds every stored document of the collection, expired ones included (the
 * write path maintains entries for them until the sweeper deletes them through it).
 */
#include <string.h>

#include "api_int.h"
#include "index.h"
#include "planner.h"

/* Index builds feed every stored document of the collection, expired ones included, through
 * the engine's scan (eng_scan_docs with with_expired). */

/* ---- nx_index_create ---- */
int nx_index_create(nx_db *db, const char *coll, nx_in keys, const nx_index_opts *opts) {
  int rc = api_check(db, coll, "nx_index_create");
  if (rc != NX_OK) return rc;
  nx_index_opts o = NX_INDEX_OPTS_INIT;
  if (opts) {
    if (opts->size != sizeof o)
      return nx_err(NX_MISUSE, "nx_index_create: opts->size is %zu; initialise options with NX_INDEX_OPTS_INIT",
                    opts->size);
    o = *opts;
  }
  api_doc k, pf;
  memset(&pf, 0, sizeof pf);
  rc = api_in(keys, "index keys", true, &k);
  if (rc == NX_OK) rc = api_in(o.partial_filter, "partialFilterExpression", false, &pf);
  idx_def *d = NULL;
  if (rc == NX_OK) rc = idx_def_new(coll, k.p, o.name, o.unique, o.sparse, pf.p, &d);
  nx_txn *t = NULL;
  bool own = false;
  if (rc == NX_OK) rc = eng_txn_use(db, NULL, true, "nx_index_create", &t, &own);
  if (rc == NX_OK) {
    eng_coll *c;
    uint64_t total = 0;
    rc = eng_coll_get(t, coll, true, &c); /* MongoDB creates the collection too */
    if (rc == NX_OK) rc = st_tree_count(t->st, c->tree, &total);
    if (rc == NX_OK) {
      eng_scan_ctx s = {t, c, true};
      t->writes++;
      rc = idx_create(t->st, d, eng_scan_docs, &s, total, o.progress, o.progress_ctx);
    } else {
      idx_def_free(d);
    }
    d = NULL;
    rc = eng_txn_done(t, own, rc, true);
  }
  idx_def_free(d);
  api_in_free(&k);
  api_in_free(&pf);
  if (rc != NX_OK) nx_err_prefix(rc, "nx_index_create: ");
  return rc;
}

int nx_index_drop(nx_db *db, const char *coll, const char *name) {
  int rc = api_check(db, coll, "nx_index_drop");
  if (rc != NX_OK) return rc;
  if (!name) return nx_err(NX_MISUSE, "nx_index_drop: name is NULL");
  nx_txn *t;
  bool own;
  rc = eng_txn_use(db, NULL, true, "nx_index_drop", &t, &own);
  if (rc != NX_OK) return rc;
  t->writes++;
  rc = idx_drop(t->st, coll, name);
  return eng_txn_done(t, own, rc, true);
}

int nx_index_list(nx_db *db, const char *coll, bson_t *out) {
  if (!out) return nx_err(NX_MISUSE, "nx_index_list: out is NULL");
  int rc = api_check(db, coll, "nx_index_list");
  if (rc != NX_OK) return rc;
  nx_txn *t;
  bool own;
  rc = eng_txn_use(db, NULL, false, "nx_index_list", &t, &own);
  if (rc != NX_OK) return rc;
  eng_coll *c;
  rc = eng_coll_get(t, coll, false, &c);
  if (rc == NX_NOTFOUND) rc = nx_err(NX_NOTFOUND, "nx_index_list: collection '%s' does not exist", coll);
  if (rc == NX_OK) {
    bson_init(out);
    bson_t arr;
    BSON_APPEND_ARRAY_BEGIN(out, "indexes", &arr);
    rc = idx_list(t->st, coll, &arr);
    bson_append_array_end(out, &arr);
    if (rc != NX_OK) bson_destroy(out);
  }
  return eng_txn_done(t, own, rc, false);
}

int nx_explain(nx_db *db, nx_txn *txn, const char *coll, nx_in filter, const nx_find_opts *opts, bson_t *out) {
  if (!out) return nx_err(NX_MISUSE, "nx_explain: out is NULL");
  int rc = api_check(db, coll, "nx_explain");
  if (rc != NX_OK) return rc;
  if (opts && opts->size != sizeof *opts)
    return nx_err(NX_MISUSE, "nx_explain: opts->size is %zu; initialise options with NX_FIND_OPTS_INIT", opts->size);
  api_doc f, p, s;
  memset(&p, 0, sizeof p);
  memset(&s, 0, sizeof s);
  rc = api_in(filter, "filter", false, &f);
  if (rc == NX_OK && opts) rc = api_in(opts->projection, "projection", false, &p);
  if (rc == NX_OK && opts) rc = api_in(opts->sort, "sort", false, &s);
  q_opts o;
  memset(&o, 0, sizeof o);
  o.projection = p.p;
  o.sort = s.p;
  if (opts) {
    o.skip = opts->skip;
    o.limit = opts->limit;
    o.max_sort_bytes = opts->max_sort_bytes;
  }
  nx_txn *t = NULL;
  bool own = false;
  if (rc == NX_OK) rc = eng_txn_use(db, txn, false, "nx_explain", &t, &own);
  if (rc == NX_OK) {
    bson_t empty = BSON_INITIALIZER;
    rc = q_explain(t, coll, f.p ? f.p : &empty, &o, out);
    bson_destroy(&empty);
    rc = eng_txn_done(t, own, rc, false);
  }
  api_in_free(&f);
  api_in_free(&p);
  api_in_free(&s);
  if (rc != NX_OK) nx_err_prefix(rc, "nx_explain in '%s': ", coll);
  return rc;
}

/* ---- Rebuild of stale indexes at open ---- */
typedef struct stale_ctx {
  nx_txn *t;
  size_t rebuilt;
} stale_ctx;

static int rebuild_coll(void *ctx, const char *name) {
  stale_ctx *sc = ctx;
  idx_set *s;
  int rc = idx_set_load(sc->t->st, name, &s);
  if (rc != NX_OK) return rc;
  bool any = false;
  for (size_t i = 0; i < s->n; i++) any |= s->defs[i]->stale;
  idx_set_free(s);
  if (!any) return NX_OK;
  eng_coll *c;
  rc = eng_coll_get(sc->t, name, false, &c);
  if (rc != NX_OK) return rc;
  eng_scan_ctx cs = {sc->t, c, true};
  size_t n = 0;
  sc->t->writes++;
  rc = idx_rebuild_stale(sc->t->st, name, eng_scan_docs, &cs, &n);
  sc->rebuilt += n;
  return rc;
}

/* The unique checks' view of TTL (idx_set_expired_probe): the stored document's expiry against
 * the clock now. The writing transaction's own clock (its start) is not reachable from the index
 * layer; a document that expires while that transaction runs is visible to its reads but no
 * longer blocks a unique key (docs/indexes.md). */
static int doc_expired(st_txn *st, const char *coll, st_val id_key, bool *expired) {
  *expired = false;
  nx_buf name, scratch;
  nx_buf_init(&name, 0);
  int rc = nx_buf_printf(&name, "c:%s", coll); /* the collection tree (engine.h) */
  st_tree tree;
  st_val v;
  if (rc == NX_OK) rc = st_tree_open(st, (const char *)name.data, false, &tree);
  if (rc == NX_OK) rc = st_get(st, tree, id_key, &v);
  if (rc == NX_OK) {
    eng_doc d;
    nx_buf_init(&scratch, ST_MAX_VALUE);
    rc = eng_doc_decode(coll, v, &scratch, &d);
    if (rc == NX_OK) *expired = eng_doc_expired(&d.meta, nx_now_ms());
    nx_buf_free(&scratch);
  }
  nx_buf_free(&name);
  if (rc == NX_NOTFOUND) {
    nx_err_clear();
    rc = NX_OK;
  }
  return rc;
}

int api_index_open_check(nx_db *db, size_t *rebuilt) {
  if (rebuilt) *rebuilt = 0;
  idx_set_expired_probe(doc_expired);
  if (db->read_only) return NX_OK; /* stale indexes stay unused until a writable open */
  nx_txn *t;
  bool own;
  int rc = eng_txn_use(db, NULL, true, "nx_open (index check)", &t, &own);
  if (rc != NX_OK) return rc;
  stale_ctx sc = {t, 0};
  rc = eng_coll_list(t, true, rebuild_coll, &sc);
  rc = eng_txn_done(t, own, rc, sc.rebuilt > 0);
  if (rebuilt) *rebuilt = sc.rebuilt;
  return rc;
}
