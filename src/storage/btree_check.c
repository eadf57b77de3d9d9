/*
 * btree_check.c: the integrity walk of one tree (btree.h invariants 1-4).
 *
 * Design notes:
 *  1. The walk is recursive (depth <= BT_MAX_DEPTH) and keeps each ancestor pinned, so the key
 *     bounds a child inherits are borrowed from its ancestors' pages without copying.
 *  2. Every page is reported to mark(), which the caller uses for page accounting (a page reached
 *     twice, or both reachable and free, is corruption).
 *  3. The first problem found ends the walk with NX_CORRUPT and a message naming the page.
 */
#include "btree.h"

#include <string.h>

typedef struct ck_bound {
  const uint8_t *p; /* key bytes */
  size_t n;         /* key length */
  bool set;         /* false: unbounded */
} ck_bound;

typedef struct ck_ctx {
  pg_txn *t;
  uint32_t ps;
  uint32_t depth;
  int (*mark)(void *, uint32_t);
  void *mctx;
  bt_check_stats *st;
} ck_ctx;

static int ck_ovf(ck_ctx *k, uint32_t leafpg, uint32_t pgno, uint64_t txn, uint32_t vlen) {
  uint32_t per = k->ps - 32, left = vlen, pages = 0, maxpages = vlen / per + 1;
  while (pgno != 0) {
    if (++pages > maxpages) return NX_CORRUPT_BKPT("btree leaf %u: overflow chain too long", leafpg);
    pg_page p;
    int rc = pg_get(k->t, pgno, txn, &p);
    if (rc) return nx_err_prefix(rc, "btree leaf %u, overflow page %u: ", leafpg, pgno);
    uint32_t used = nx_get32(p.data + 28), next = nx_get32(p.data + 24);
    uint8_t type = pg_type(&p);
    pg_release(k->t, &p);
    if (type != PG_T_OVERFLOW || used == 0 || used > per || used > left)
      return NX_CORRUPT_BKPT("btree overflow page %u: type %u, %u bytes (%u left)", pgno, type, used, left);
    left -= used;
    k->st->overflow_pages++;
    if (k->mark && (rc = k->mark(k->mctx, pgno)) != 0) return rc;
    pgno = next;
  }
  if (left != 0) return NX_CORRUPT_BKPT("btree leaf %u: overflow chain short by %u bytes", leafpg, left);
  return NX_OK;
}

static bool in_bounds(const uint8_t *key, size_t kn, const ck_bound *lo, const ck_bound *hi) {
  if (lo->set && bt_cmp(key, kn, lo->p, lo->n) < 0) return false;
  if (hi->set && bt_cmp(key, kn, hi->p, hi->n) >= 0) return false;
  return true;
}

static int ck_page(ck_ctx *k, uint32_t pgno, uint64_t txn, uint32_t lvl, ck_bound lo, ck_bound hi) {
  bool leaf = lvl + 1 == k->depth;
  pg_page p;
  int rc = bt_get_node(k->t, pgno, txn, leaf, &p);
  if (rc) return rc;
  const uint8_t *pg = p.data;
  rc = bt_page_validate(pg, k->ps, leaf, pgno);
  uint32_t n = bt_n(pg), maxc = bt_max_cell(k->ps);
  if (rc == NX_OK && n == 0 && (lvl > 0 || !leaf))
    rc = NX_CORRUPT_BKPT("btree page %u: empty %s below the root", pgno, leaf ? "leaf" : "branch");
  if (rc == NX_OK) k->st->bytes_used += (k->ps - bt_upper(pg) - bt_garbage(pg)) + 2 * n;
  const uint8_t *prev = NULL;
  size_t prevn = 0;
  for (uint32_t i = 0; rc == NX_OK && i < n; i++) {
    const uint8_t *key = NULL, *c = pg + bt_slot(pg, i);
    size_t kn = 0;
    bt_key(pg, k->ps, leaf, i, &key, &kn);
    bt_lc lc = {0};
    if (leaf) (void)bt_lc_decode(c, k->ps - bt_slot(pg, i), &lc); /* bt_page_validate checked it */
    uint32_t csz = leaf ? lc.size : 14 + (uint32_t)kn;
    if (csz > maxc) {
      rc = NX_CORRUPT_BKPT("btree page %u: cell %u of %u bytes exceeds %u", pgno, i, csz, maxc);
      break;
    }
    if (leaf || i > 0) {
      if (prev && bt_cmp(prev, prevn, key, kn) >= 0) {
        rc = NX_CORRUPT_BKPT("btree page %u: key %u out of order", pgno, i);
        break;
      }
      if (!in_bounds(key, kn, &lo, &hi)) {
        rc = NX_CORRUPT_BKPT("btree page %u: key %u outside its parent's separators", pgno, i);
        break;
      }
      prev = key;
      prevn = kn;
    }
    if (leaf) {
      k->st->entries++;
      if (lc.ovf) {
        uint32_t vl = lc.vlen;
        if (bt_lc_size((uint32_t)kn, vl, false) <= maxc) {
          rc = NX_CORRUPT_BKPT("btree page %u: value %u of %u bytes in overflow but fits inline", pgno, i, vl);
          break;
        }
        rc = ck_ovf(k, pgno, nx_get32(c + lc.voff), nx_get64(c + lc.voff + 4), vl);
      }
    } else {
      ck_bound clo = lo, chi = hi;
      if (i > 0) clo = (ck_bound){key, kn, true};
      if (i + 1 < n) {
        const uint8_t *nk = NULL;
        size_t nkn = 0;
        bt_key(pg, k->ps, false, i + 1, &nk, &nkn);
        chi = (ck_bound){nk, nkn, true};
      }
      rc = ck_page(k, nx_get32(c + 2), nx_get64(c + 6), lvl + 1, clo, chi);
    }
  }
  pg_release(k->t, &p);
  if (rc) return rc;
  if (leaf) k->st->leaf_pages++;
  else k->st->branch_pages++;
  if (k->mark && (rc = k->mark(k->mctx, pgno)) != 0) return rc;
  return NX_OK;
}

int bt_check(pg_txn *t, const bt_desc *d, int (*mark)(void *mctx, uint32_t pgno), void *mctx,
             bt_check_stats *st) {
  memset(st, 0, sizeof *st);
  if (d->root == 0) {
    if (d->depth != 0 || d->count != 0)
      return NX_CORRUPT_BKPT("btree: empty tree with depth %u and count %llu", d->depth,
                             (unsigned long long)d->count);
    return NX_OK;
  }
  if (d->depth == 0 || d->depth > BT_MAX_DEPTH) return NX_CORRUPT_BKPT("btree root %u: depth %u", d->root, d->depth);
  ck_ctx k = {t, pager_page_size(pg_pager(t)), d->depth, mark, mctx, st};
  ck_bound none = {NULL, 0, false};
  int rc = ck_page(&k, d->root, d->root_txn, 0, none, none);
  if (rc) return rc;
  if (st->entries != d->count)
    return NX_CORRUPT_BKPT("btree root %u: %llu entries but the descriptor says %llu", d->root,
                           (unsigned long long)st->entries, (unsigned long long)d->count);
  return NX_OK;
}
