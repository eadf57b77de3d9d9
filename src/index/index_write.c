/*
 * index_write.c: index maintenance on every document write, and the collection drop/rename
 * hooks.
 *
 * A change old -> new is applied per index as a diff of two sorted key lists: entries only the
 * old version produces are deleted, entries only the new one produces are added, shared ones are
 * left alone (an update that does not touch indexed fields writes nothing to the index).
 *
 * Invariants:
 *   1. Every check (unique, parallel arrays, key size) of every index runs before the first
 *      index write, so a refused change has written nothing to any index.
 *   2. A stale index (index.h invariant 3) is neither checked nor maintained.
 *   3. The multikey bits of a definition only grow, in the same transaction as the document that
 *      made them grow.
 */
#include <stdatomic.h>
#include <string.h>

#include "index_int.h"

typedef struct idx_diff {
  nx_buf oldk, newk;    /* key records of the old and new versions (idx_keys format) */
  size_t nold, nnew;    /* number of keys in each */
  uint32_t arrays;      /* array bits of the new version */
  st_tree tree;         /* the entry tree */
} idx_diff;

static void diff_free(idx_diff *df, size_t n) {
  for (size_t i = 0; i < n; i++) {
    nx_buf_free(&df[i].oldk);
    nx_buf_free(&df[i].newk);
  }
  nx_free(df);
}

static size_t id_len(const bson_t *doc) {
  nx_buf b;
  nx_buf_init(&b, 0);
  size_t n = idx_doc_id_key(doc, &b) == NX_OK ? b.len : 0;
  nx_buf_free(&b);
  return n;
}

static _Atomic(idx_expired_fn) g_expired_probe;

void idx_set_expired_probe(idx_expired_fn fn) { atomic_store(&g_expired_probe, fn); }

/* Whether the stored document with collection key id is expired (false without a probe). */
static int expired(st_txn *t, const idx_def *d, const uint8_t *id, size_t n, bool *out) {
  *out = false;
  idx_expired_fn fn = atomic_load(&g_expired_probe);
  return fn ? fn(t, d->coll, (st_val){id, n}, out) : NX_OK;
}

int idx_unique_check(st_txn *t, st_tree tree, const idx_def *d, const uint8_t *key, size_t klen,
                     size_t idlen, bool self_stored) {
  size_t vn = klen - idlen;
  st_cursor *c;
  int rc = st_cursor_open(t, tree, &c);
  if (rc != NX_OK) return rc;
  rc = st_cursor_seek(c, (st_val){key, vn}, ST_SEEK_GE);
  while (rc == NX_OK) {
    st_val k, v;
    rc = st_cursor_get(c, &k, &v);
    if (rc != NX_OK) break;
    if (k.n < vn || memcmp(k.p, key, vn) != 0) {
      rc = NX_NOTFOUND;
      break;
    }
    if (k.n - vn != idlen || memcmp(k.p + vn, key + vn, idlen) != 0) {
      /* an expired holder (or, in a build, an expired newcomer) is gone for every read: no
       * conflict; its entries stay until its document is deleted (index.h invariant 2) */
      bool gone;
      rc = expired(t, d, k.p + vn, k.n - vn, &gone);
      if (rc == NX_OK && !gone && self_stored) rc = expired(t, d, key + vn, idlen, &gone);
      if (rc != NX_OK) break;
      if (gone) {
        rc = st_cursor_next(c);
        continue;
      }
      nx_buf b;
      nx_buf_init(&b, 0);
      idx_values_json(d, key, vn, &b);
      size_t pos = vn;
      bson_value_t other;
      nx_buf_append(&b, " (held by _id ", 14);
      if (keyenc_decode(k.p, k.n, &pos, false, &other) == NX_OK) {
        doc_value_to_json(&other, &b);
        bson_value_destroy(&other);
      }
      nx_buf_append(&b, ")", 2);
      rc = nx_err(NX_EXISTS, "index '%s' of collection '%s': duplicate key %s", d->name, d->coll, (char *)b.data);
      nx_buf_free(&b);
      st_cursor_close(c);
      return rc;
    }
    rc = st_cursor_next(c);
  }
  st_cursor_close(c);
  return rc == NX_NOTFOUND ? NX_OK : rc;
}

/* Computes the diffs of every live index and runs every check. *out has s->n slots. */
static int prepare(st_txn *t, const idx_set *s, const bson_t *old_doc, const bson_t *new_doc,
                   idx_diff **out) {
  *out = NULL;
  if (s->n == 0) return NX_OK;
  idx_diff *df = nx_calloc(s->n, sizeof *df);
  if (!df) return nx_err(NX_NOMEM, "indexes of '%s': out of memory", s->coll);
  int rc = NX_OK;
  size_t idlen = new_doc ? id_len(new_doc) : 0;
  for (size_t i = 0; i < s->n && rc == NX_OK; i++) {
    const idx_def *d = s->defs[i];
    nx_buf_init(&df[i].oldk, 0);
    nx_buf_init(&df[i].newk, 0);
    if (d->stale) continue;
    uint32_t arr;
    if (old_doc) rc = idx_keys(d, old_doc, &df[i].oldk, &df[i].nold, &arr);
    if (rc == NX_OK && new_doc) rc = idx_keys(d, new_doc, &df[i].newk, &df[i].nnew, &df[i].arrays);
    if (rc == NX_OK && (df[i].nold || df[i].nnew)) {
      rc = st_tree_open(t, d->tree, false, &df[i].tree);
      if (rc == NX_NOTFOUND) rc = NX_CORRUPT_BKPT("index '%s' of '%s': its tree '%s' is missing", d->name, d->coll, d->tree);
    }
    if (rc != NX_OK || !d->unique || df[i].nnew == 0) continue;
    /* unique check of the keys only the new version has */
    size_t oo = 0, no = 0, oi = 0;
    for (size_t k = 0; k < df[i].nnew && rc == NX_OK; k++) {
      size_t nl;
      const uint8_t *nk = idx_key_rec(&df[i].newk, &no, &nl);
      bool shared = false;
      while (oi < df[i].nold) {
        size_t save = oo, ol;
        const uint8_t *ok = idx_key_rec(&df[i].oldk, &oo, &ol);
        size_t m = ol < nl ? ol : nl;
        int c = memcmp(ok, nk, m);
        if (c == 0) c = ol < nl ? -1 : ol > nl;
        if (c < 0) {
          oi++;
          continue;
        }
        if (c == 0) shared = true;
        oo = save;
        break;
      }
      if (!shared) rc = idx_unique_check(t, df[i].tree, d, nk, nl, idlen, false);
    }
  }
  if (rc != NX_OK) {
    diff_free(df, s->n);
    return rc;
  }
  *out = df;
  return NX_OK;
}

int idx_write_check(st_txn *t, const char *coll, idx_set **cache, const bson_t *old_doc,
                    const bson_t *new_doc) {
  idx_set *s;
  int rc = idx_set_get(t, coll, cache, &s);
  if (rc != NX_OK) return rc;
  idx_diff *df = NULL;
  rc = prepare(t, s, old_doc, new_doc, &df);
  diff_free(df, df ? s->n : 0);
  if (!cache) idx_set_free(s);
  return rc;
}

/* Applies one index's diff: deletes old-only keys, adds new-only keys. */
static int apply(st_txn *t, const idx_def *d, idx_diff *df, size_t idlen_old, size_t idlen_new,
                 uint64_t *writes) {
  size_t oo = 0, no = 0, oi = 0, ni = 0;
  int rc = NX_OK;
  uint8_t vb[2];
  while (rc == NX_OK && (oi < df->nold || ni < df->nnew)) {
    size_t ol = 0, nl = 0, osave = oo, nsave = no;
    const uint8_t *ok = oi < df->nold ? idx_key_rec(&df->oldk, &oo, &ol) : NULL;
    const uint8_t *nk = ni < df->nnew ? idx_key_rec(&df->newk, &no, &nl) : NULL;
    int c;
    if (!ok) c = 1;
    else if (!nk) c = -1;
    else {
      size_t m = ol < nl ? ol : nl;
      c = memcmp(ok, nk, m);
      if (c == 0) c = ol < nl ? -1 : ol > nl;
    }
    if (c < 0) { /* old only: delete */
      rc = st_del(t, df->tree, (st_val){ok, ol});
      /* A document already expired when the index was (re)built has no entries (the engine's
       * scan skips expired documents); its deletion by the sweeper finds nothing to remove. */
      if (rc == NX_NOTFOUND) rc = NX_OK;
      oi++;
      no = nsave;
    } else if (c > 0) { /* new only: add */
      rc = st_put(t, df->tree, (st_val){nk, nl}, idx_entry_val(vb, idlen_new), 0);
      ni++;
      oo = osave;
    } else {
      oi++;
      ni++;
      continue;
    }
    if (writes) (*writes)++;
  }
  (void)idlen_old;
  (void)d;
  return rc;
}

int idx_on_write(st_txn *t, const char *coll, idx_set **cache, const bson_t *old_doc,
                 const bson_t *new_doc, uint64_t *writes) {
  idx_set *s;
  int rc = idx_set_get(t, coll, cache, &s);
  if (rc != NX_OK) return rc;
  idx_diff *df = NULL;
  rc = prepare(t, s, old_doc, new_doc, &df);
  size_t il_old = old_doc ? id_len(old_doc) : 0, il_new = new_doc ? id_len(new_doc) : 0;
  for (size_t i = 0; df && i < s->n && rc == NX_OK; i++) {
    idx_def *d = s->defs[i];
    if (d->stale) continue;
    rc = apply(t, d, &df[i], il_old, il_new, writes);
    if (rc == NX_OK && (df[i].arrays & ~d->multikey)) {
      d->multikey |= df[i].arrays;
      rc = idx_def_store(t, d);
      if (writes) (*writes)++;
    }
  }
  diff_free(df, df ? s->n : 0);
  if (!cache) idx_set_free(s);
  return rc;
}

int idx_coll_dropped(st_txn *t, const char *coll) {
  idx_set *s;
  int rc = idx_set_load(t, coll, &s);
  if (rc != NX_OK) return rc;
  for (size_t i = 0; i < s->n && rc == NX_OK; i++) {
    rc = st_tree_drop(t, s->defs[i]->tree);
    if (rc == NX_NOTFOUND) rc = NX_OK;
    if (rc == NX_OK) rc = idx_def_erase(t, coll, s->defs[i]->name);
  }
  if (s->n) idx_ddl_bump();
  idx_set_free(s);
  return rc;
}

int idx_coll_renamed(st_txn *t, const char *from, const char *to) {
  idx_set *s;
  int rc = idx_set_load(t, from, &s);
  if (rc != NX_OK) return rc;
  for (size_t i = 0; i < s->n && rc == NX_OK; i++) {
    idx_def *o = s->defs[i], *n = NULL;
    bson_t kb, pb;
    idx_bson(&o->key, &kb);
    bool hp = idx_bson(&o->partial_spec, &pb);
    rc = idx_def_new(to, &kb, o->name, o->unique, o->sparse, hp ? &pb : NULL, &n);
    if (rc != NX_OK) break;
    n->multikey = o->multikey;
    n->build_ms = o->build_ms;
    n->built_at = o->built_at;
    n->stale = o->stale;
    rc = st_tree_rename(t, o->tree, n->tree);
    if (rc == NX_OK) rc = idx_def_erase(t, from, o->name);
    if (rc == NX_OK) rc = idx_def_store(t, n);
    idx_def_free(n);
  }
  if (s->n) idx_ddl_bump();
  idx_set_free(s);
  return rc;
}
