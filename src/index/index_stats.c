/*
 * index_stats.c: listing indexes with their definitions and statistics.
 *
 * entries: the entry tree's count (kept in its root, O(1)). pages: pages of the entry tree
 * (st_tree_pages walks the tree's pages; listing is rare). lookups: the planner's uses of the
 * index since the process started (in memory, not persisted: counting on disk would turn reads
 * into writes). buildMs / builtAt: the last build, from the definition record.
 */
#include <pthread.h>
#include <string.h>

#include "index_int.h"

typedef struct lookup_ctr {
  char *key;                 /* coll NUL name, owned */
  size_t klen;               /* bytes of key */
  uint64_t n;                /* uses */
  struct lookup_ctr *next;
} lookup_ctr;

static pthread_mutex_t g_lk = PTHREAD_MUTEX_INITIALIZER;
static lookup_ctr *g_ctrs;

static lookup_ctr *ctr_find(const char *coll, const char *name, bool create) {
  size_t cl = strlen(coll), nl = strlen(name);
  for (lookup_ctr *c = g_ctrs; c; c = c->next)
    if (c->klen == cl + 1 + nl && memcmp(c->key, coll, cl + 1) == 0 && memcmp(c->key + cl + 1, name, nl) == 0)
      return c;
  if (!create) return NULL;
  lookup_ctr *c = nx_calloc(1, sizeof *c);
  if (!c) return NULL;
  c->key = nx_malloc(cl + 1 + nl + 1);
  if (!c->key) {
    nx_free(c);
    return NULL;
  }
  memcpy(c->key, coll, cl + 1);
  memcpy(c->key + cl + 1, name, nl + 1);
  c->klen = cl + 1 + nl;
  c->next = g_ctrs;
  g_ctrs = c;
  return c;
}

void idx_note_lookup(const char *coll, const char *name) {
  pthread_mutex_lock(&g_lk);
  lookup_ctr *c = ctr_find(coll, name, true);
  if (c) c->n++;
  pthread_mutex_unlock(&g_lk);
}

uint64_t idx_lookups(const char *coll, const char *name) {
  pthread_mutex_lock(&g_lk);
  lookup_ctr *c = ctr_find(coll, name, false);
  uint64_t n = c ? c->n : 0;
  pthread_mutex_unlock(&g_lk);
  return n;
}

int idx_list(st_txn *t, const char *coll, bson_t *arr) {
  idx_set *s;
  int rc = idx_set_load(t, coll, &s);
  if (rc != NX_OK) return rc;
  for (size_t i = 0; i < s->n && rc == NX_OK; i++) {
    const idx_def *d = s->defs[i];
    uint64_t entries = 0, pages = 0;
    st_tree tree;
    rc = st_tree_open(t, d->tree, false, &tree);
    if (rc == NX_OK) rc = st_tree_count(t, tree, &entries);
    if (rc == NX_OK) rc = st_tree_pages(t, tree, &pages);
    if (rc == NX_NOTFOUND) rc = NX_OK; /* reported as stale below */
    if (rc != NX_OK) break;
    char k[16];
    const char *kp;
    bson_uint32_to_string((uint32_t)i, &kp, k, sizeof k);
    bson_t doc;
    BSON_APPEND_DOCUMENT_BEGIN(arr, kp, &doc);
    BSON_APPEND_UTF8(&doc, "name", d->name);
    bson_t v;
    if (idx_bson(&d->key, &v)) BSON_APPEND_DOCUMENT(&doc, "key", &v);
    BSON_APPEND_BOOL(&doc, "unique", d->unique);
    BSON_APPEND_BOOL(&doc, "sparse", d->sparse);
    if (idx_bson(&d->partial_spec, &v)) BSON_APPEND_DOCUMENT(&doc, "partialFilterExpression", &v);
    BSON_APPEND_BOOL(&doc, "multikey", d->multikey != 0);
    BSON_APPEND_INT32(&doc, "v", IDX_FORMAT_VERSION);
    BSON_APPEND_INT64(&doc, "entries", (int64_t)entries);
    BSON_APPEND_INT64(&doc, "pages", (int64_t)pages);
    BSON_APPEND_INT64(&doc, "lookups", (int64_t)idx_lookups(coll, d->name));
    BSON_APPEND_INT64(&doc, "buildMs", d->build_ms);
    BSON_APPEND_DATE_TIME(&doc, "builtAt", d->built_at);
    BSON_APPEND_BOOL(&doc, "stale", d->stale);
    bson_append_document_end(arr, &doc);
  }
  idx_set_free(s);
  return rc;
}
