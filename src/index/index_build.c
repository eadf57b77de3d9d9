/*
 * index_build.c: creating an index on a populated collection, dropping one, and rebuilding the
 * stale ones.
 *
 * A build is one pass over the collection's documents inside the caller's write transaction:
 * every document's keys are checked (unique, parallel arrays) and put into a fresh entry tree,
 * then the definition record is written. Nothing is visible to readers until the caller commits,
 * and a crash before the commit leaves nothing (the log drops frames without a commit record),
 * so the catalog needs no "building" state. Writers wait for the build (it holds the write
 * transaction); readers go on with their snapshots.
 */
#include <string.h>

#include "index_int.h"

typedef struct build_ctx {
  st_txn *t;
  idx_def *d;
  st_tree tree;
  nx_buf keys;
  uint64_t done, total;
  nx_progress_fn progress;
  void *progress_ctx;
} build_ctx;

static int build_one(void *ctx, const bson_t *doc) {
  build_ctx *b = ctx;
  size_t n;
  uint32_t arrays;
  b->keys.len = 0;
  int rc = idx_keys(b->d, doc, &b->keys, &n, &arrays);
  if (rc != NX_OK) return rc;
  b->d->multikey |= arrays;
  if (n) {
    nx_buf idb;
    nx_buf_init(&idb, 0);
    rc = idx_doc_id_key(doc, &idb);
    size_t idlen = idb.len;
    nx_buf_free(&idb);
    size_t off = 0;
    uint8_t vb[2];
    for (size_t k = 0; k < n && rc == NX_OK; k++) {
      size_t kl;
      const uint8_t *kp = idx_key_rec(&b->keys, &off, &kl);
      if (b->d->unique) rc = idx_unique_check(b->t, b->tree, b->d, kp, kl, idlen, true);
      if (rc == NX_OK) rc = st_put(b->t, b->tree, (st_val){kp, kl}, idx_entry_val(vb, idlen), 0);
    }
    if (rc != NX_OK) return rc;
  }
  b->done++;
  if (b->progress && (b->done % 1024 == 0 || b->done == b->total) &&
      b->progress(b->progress_ctx, b->done, b->total) != 0)
    return nx_err(NX_CANCELLED, "index '%s' of '%s': build cancelled after %llu documents", b->d->name,
                  b->d->coll, (unsigned long long)b->done);
  return NX_OK;
}

/* (Re)creates d's entry tree and fills it; writes the definition. */
static int build(st_txn *t, idx_def *d, idx_scan_fn scan, void *scan_ctx, uint64_t total,
                 nx_progress_fn progress, void *progress_ctx) {
  uint64_t t0 = nx_mono_ns();
  int rc = st_tree_drop(t, d->tree); /* a leftover of a stale index */
  if (rc != NX_OK && rc != NX_NOTFOUND) return rc;
  build_ctx b = {t, d, 0, {0}, 0, total, progress, progress_ctx};
  rc = st_tree_open(t, d->tree, true, &b.tree);
  if (rc != NX_OK) return rc;
  nx_buf_init(&b.keys, 0);
  d->multikey = 0;
  d->stale = false;
  rc = scan(scan_ctx, build_one, &b);
  nx_buf_free(&b.keys);
  if (rc == NX_OK && progress && b.done % 1024 != 0 && b.done != total && progress(progress_ctx, b.done, total) != 0)
    rc = nx_err(NX_CANCELLED, "index '%s' of '%s': build cancelled", d->name, d->coll);
  if (rc != NX_OK) return nx_err_prefix(rc, "building index '%s' of '%s': ", d->name, d->coll);
  d->build_ms = (int64_t)((nx_mono_ns() - t0) / 1000000u);
  d->built_at = nx_now_ms();
  rc = idx_def_store(t, d);
  idx_ddl_bump();
  return rc;
}

static bool same_spec(const idx_def *a, const idx_def *b) {
  if (a->unique != b->unique || a->sparse != b->sparse) return false;
  if (a->key.n != b->key.n || memcmp(a->key.p, b->key.p, a->key.n) != 0) return false;
  if (!a->partial_spec.p != !b->partial_spec.p) return false;
  return !a->partial_spec.p ||
         (a->partial_spec.n == b->partial_spec.n && memcmp(a->partial_spec.p, b->partial_spec.p, a->partial_spec.n) == 0);
}

int idx_create(st_txn *t, idx_def *d, idx_scan_fn scan, void *scan_ctx, uint64_t total,
               nx_progress_fn progress, void *progress_ctx) {
  idx_set *s;
  int rc = idx_set_load(t, d->coll, &s);
  if (rc != NX_OK) {
    idx_def_free(d);
    return rc;
  }
  for (size_t i = 0; i < s->n && rc == NX_OK; i++) {
    if (strcmp(s->defs[i]->name, d->name) == 0)
      rc = nx_err(NX_EXISTS, "index '%s' of collection '%s' already exists", d->name, d->coll);
    else if (same_spec(s->defs[i], d))
      rc = nx_err(NX_EXISTS, "collection '%s': an index with the same key and options exists under the name '%s'",
                  d->coll, s->defs[i]->name);
  }
  idx_set_free(s);
  if (rc == NX_OK) rc = build(t, d, scan, scan_ctx, total, progress, progress_ctx);
  idx_def_free(d);
  return rc;
}

int idx_drop(st_txn *t, const char *coll, const char *name) {
  idx_set *s;
  int rc = idx_set_load(t, coll, &s);
  if (rc != NX_OK) return rc;
  idx_def *d = idx_set_find(s, name);
  if (!d) rc = nx_err(NX_NOTFOUND, "index '%s' of collection '%s' does not exist", name, coll);
  if (rc == NX_OK) {
    rc = st_tree_drop(t, d->tree);
    if (rc == NX_NOTFOUND) rc = NX_OK;
  }
  if (rc == NX_OK) rc = idx_def_erase(t, coll, name);
  if (rc == NX_OK) idx_ddl_bump();
  idx_set_free(s);
  return rc;
}

int idx_rebuild_stale(st_txn *t, const char *coll, idx_scan_fn scan, void *scan_ctx, size_t *rebuilt) {
  if (rebuilt) *rebuilt = 0;
  idx_set *s;
  int rc = idx_set_load(t, coll, &s);
  if (rc != NX_OK) return rc;
  for (size_t i = 0; i < s->n && rc == NX_OK; i++) {
    if (!s->defs[i]->stale) continue;
    rc = build(t, s->defs[i], scan, scan_ctx, 0, NULL, NULL);
    if (rc == NX_OK && rebuilt) (*rebuilt)++;
  }
  idx_set_free(s);
  return rc;
}
