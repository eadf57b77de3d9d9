/*
 * index_verify.c: the entry-for-entry integrity check of a collection's indexes (used by the
 * integrity-check command).
 *
 * Pass 1 walks the documents: every key each document produces must be in the index
 * ("missing entry"). Pass 2 walks each index: every entry's _id suffix must name a live document
 * that produces exactly that key ("extra entry"), and every entry value must be the 2-byte _id
 * suffix length. The first disagreement is reported with the index, the key as JSON and the _id.
 */
#include <string.h>

#include "index_int.h"

typedef struct verify_ctx {
  st_txn *t;
  const idx_set *s;
  st_tree *trees;
  nx_buf keys;
} verify_ctx;

static int report(const idx_def *d, const char *what, const uint8_t *k, size_t kn, size_t idlen) {
  nx_buf b;
  nx_buf_init(&b, 0);
  idx_values_json(d, k, kn - idlen, &b);
  nx_buf_append(&b, " _id ", 5);
  size_t pos = kn - idlen;
  bson_value_t id;
  if (keyenc_decode(k, kn, &pos, false, &id) == NX_OK) {
    doc_value_to_json(&id, &b);
    bson_value_destroy(&id);
  } else {
    nx_buf_append(&b, "?", 1);
  }
  nx_buf_append(&b, "", 1);
  int rc = nx_err(NX_CORRUPT, "index '%s' of '%s': %s: key %s", d->name, d->coll, what, (char *)b.data);
  nx_buf_free(&b);
  return rc;
}

static int verify_doc(void *ctx, const bson_t *doc) {
  verify_ctx *v = ctx;
  nx_buf idb;
  nx_buf_init(&idb, 0);
  int rc = idx_doc_id_key(doc, &idb);
  size_t idlen = idb.len;
  nx_buf_free(&idb);
  for (size_t i = 0; i < v->s->n && rc == NX_OK; i++) {
    const idx_def *d = v->s->defs[i];
    if (d->stale) continue;
    size_t n;
    uint32_t arrays;
    v->keys.len = 0;
    rc = idx_keys(d, doc, &v->keys, &n, &arrays);
    if (rc != NX_OK) return nx_err(NX_CORRUPT, "index '%s' of '%s': a stored document cannot be indexed: %s",
                                   d->name, d->coll, nx_err_msg());
    if (arrays & ~d->multikey) {
      size_t off = 0, kl;
      const uint8_t *kp = idx_key_rec(&v->keys, &off, &kl);
      return report(d, "document holds an array but the index is not marked multikey", kp, kl, idlen);
    }
    size_t off = 0;
    for (size_t k = 0; k < n && rc == NX_OK; k++) {
      size_t kl;
      const uint8_t *kp = idx_key_rec(&v->keys, &off, &kl);
      st_val val;
      rc = st_get(v->t, v->trees[i], (st_val){kp, kl}, &val);
      if (rc == NX_NOTFOUND) return report(d, "missing entry", kp, kl, idlen);
    }
  }
  return rc;
}

static int verify_index(st_txn *t, const idx_def *d, st_tree tree, idx_get_fn get, void *get_ctx) {
  st_cursor *c;
  int rc = st_cursor_open(t, tree, &c);
  if (rc != NX_OK) return rc;
  nx_buf keys;
  nx_buf_init(&keys, 0);
  uint64_t walked = 0, counted = 0;
  rc = st_cursor_first(c);
  while (rc == NX_OK) {
    st_val k, v;
    rc = st_cursor_get(c, &k, &v);
    if (rc != NX_OK) break;
    walked++;
    if (v.n != 2 || nx_get16(v.p) == 0 || nx_get16(v.p) > k.n) {
      rc = NX_CORRUPT_BKPT("index '%s' of '%s': entry %llu has a bad value of %zu bytes", d->name, d->coll,
                           (unsigned long long)walked, v.n);
      break;
    }
    size_t idlen = nx_get16(v.p);
    bson_t doc;
    rc = get(get_ctx, (st_val){k.p + k.n - idlen, idlen}, &doc);
    if (rc == NX_NOTFOUND) {
      rc = report(d, "extra entry (no such document)", k.p, k.n, idlen);
      break;
    }
    if (rc != NX_OK) break;
    size_t n;
    uint32_t arrays;
    keys.len = 0;
    rc = idx_keys(d, &doc, &keys, &n, &arrays);
    bson_destroy(&doc);
    if (rc != NX_OK) break;
    bool found = false;
    size_t off = 0;
    for (size_t j = 0; j < n && !found; j++) {
      size_t kl;
      const uint8_t *kp = idx_key_rec(&keys, &off, &kl);
      found = kl == k.n && memcmp(kp, k.p, kl) == 0;
    }
    if (!found) {
      rc = report(d, "extra entry (the document does not produce it)", k.p, k.n, idlen);
      break;
    }
    rc = st_cursor_next(c);
  }
  st_cursor_close(c);
  nx_buf_free(&keys);
  if (rc == NX_NOTFOUND) rc = NX_OK;
  if (rc == NX_OK) rc = st_tree_count(t, tree, &counted);
  if (rc == NX_OK && counted != walked)
    rc = NX_CORRUPT_BKPT("index '%s' of '%s': the tree counts %llu entries but holds %llu", d->name, d->coll,
                         (unsigned long long)counted, (unsigned long long)walked);
  return rc;
}

int idx_verify(st_txn *t, const char *coll, idx_scan_fn scan, void *scan_ctx, idx_get_fn get,
               void *get_ctx) {
  idx_set *s;
  int rc = idx_set_load(t, coll, &s);
  if (rc != NX_OK) return rc;
  if (s->n == 0) {
    idx_set_free(s);
    return NX_OK;
  }
  verify_ctx v = {t, s, nx_calloc(s->n, sizeof(st_tree)), {0}};
  if (!v.trees) rc = nx_err(NX_NOMEM, "verify: out of memory");
  for (size_t i = 0; i < s->n && rc == NX_OK; i++) {
    if (s->defs[i]->stale) continue;
    rc = st_tree_open(t, s->defs[i]->tree, false, &v.trees[i]);
    if (rc == NX_NOTFOUND)
      rc = NX_CORRUPT_BKPT("index '%s' of '%s': its tree '%s' is missing", s->defs[i]->name, coll, s->defs[i]->tree);
  }
  nx_buf_init(&v.keys, 0);
  if (rc == NX_OK) rc = scan(scan_ctx, verify_doc, &v);
  for (size_t i = 0; i < s->n && rc == NX_OK; i++)
    if (!s->defs[i]->stale) rc = verify_index(t, s->defs[i], v.trees[i], get, get_ctx);
  nx_buf_free(&v.keys);
  nx_free(v.trees);
  idx_set_free(s);
  return rc;
}
