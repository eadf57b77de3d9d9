/*
 * btree_cursor.c: cursors over one tree: first, last, next, prev, seek (GE, EQ, LE), get.
 *
 * Design notes:
 *  1. A cursor pins the whole path from the root to its leaf (pg[0..depth)), so next and prev
 *     step within a leaf without touching the pager, and climb only at leaf edges.
 *  2. The read path allocates nothing: pages are pinned, keys and inline values are borrowed from
 *     them; only a value in an overflow chain is assembled into the cursor's buffer.
 *  3. Bytes are checked as read (bt_key bounds every cell); a page with no entries where the tree
 *     needs one is NX_CORRUPT, never an endless loop.
 *  4. A cursor that steps off either end becomes unpositioned (NX_NOTFOUND) and keeps no pins.
 */
#include "btree.h"

#include <string.h>

static inline uint32_t cur_ps(const bt_cursor *c) { return c->ps; }

static void cur_release(bt_cursor *c) {
  for (int i = 0; i < c->depth; i++) pg_release(c->t, &c->pg[i]);
  c->depth = 0;
  c->valid = false;
}

void bt_cursor_init(bt_cursor *c, pg_txn *t, const bt_desc *d) {
  memset(c, 0, sizeof *c);
  c->t = t;
  c->ps = pager_page_size(pg_pager(t));
  c->d = *d;
  nx_buf_init(&c->buf, 0);
}

void bt_cursor_fini(bt_cursor *c) {
  cur_release(c);
  nx_buf_free(&c->buf);
}

/* Pins the page at level lvl (== c->depth). */
static int cur_push(bt_cursor *c, uint32_t pgno, uint64_t txn) {
  int lvl = c->depth;
  if (lvl >= BT_MAX_DEPTH || (uint32_t)lvl >= c->d.depth)
    return NX_CORRUPT_BKPT("btree cursor: page %u below the tree's depth %u", pgno, c->d.depth);
  bool leaf = (uint32_t)lvl + 1 == c->d.depth;
  int rc = bt_get_node(c->t, pgno, txn, leaf, &c->pg[lvl]);
  if (rc) return rc;
  c->depth = lvl + 1;
  if (!bt_hdr_ok(c->pg[lvl].data, cur_ps(c)))
    return NX_CORRUPT_BKPT("btree page %u: bad header", pgno);
  return NX_OK;
}

/* Child reference of entry i of the branch at level lvl, bounds-checked. */
static int cur_child(bt_cursor *c, int lvl, uint32_t i, uint32_t *pgno, uint64_t *txn) {
  const uint8_t *pg = c->pg[lvl].data, *k;
  size_t kn;
  if (i >= bt_n(pg) || !bt_key(pg, cur_ps(c), false, i, &k, &kn))
    return NX_CORRUPT_BKPT("btree branch %u: entry %u out of page", c->pg[lvl].pgno, i);
  const uint8_t *cell = pg + bt_slot(pg, i);
  *pgno = nx_get32(cell + 2);
  *txn = nx_get64(cell + 6);
  return NX_OK;
}

/* From the pinned level c->depth-1 (a branch with idx set), descends to a leaf taking the
 * leftmost (right == false) or rightmost entry at each level. */
static int cur_descend_edge(bt_cursor *c, bool right) {
  for (;;) {
    int lvl = c->depth - 1;
    uint32_t n = bt_n(c->pg[lvl].data);
    bool leaf = (uint32_t)lvl + 1 == c->d.depth;
    if (leaf) {
      if (n == 0) {
        if (lvl == 0) {
          cur_release(c);
          return NX_NOTFOUND;
        }
        return NX_CORRUPT_BKPT("btree leaf %u: empty", c->pg[lvl].pgno);
      }
      c->valid = true;
      return NX_OK;
    }
    uint32_t pgno = 0;
    uint64_t txn = 0;
    int rc = cur_child(c, lvl, c->idx[lvl], &pgno, &txn);
    if (rc == NX_OK) rc = cur_push(c, pgno, txn);
    if (rc) return rc;
    uint32_t cn = bt_n(c->pg[lvl + 1].data);
    if (cn == 0 && (uint32_t)lvl + 2 != c->d.depth)
      return NX_CORRUPT_BKPT("btree branch %u: empty", c->pg[lvl + 1].pgno);
    c->idx[lvl + 1] = (uint16_t)(right && cn ? cn - 1 : 0);
  }
}

static int cur_edge(bt_cursor *c, bool right) {
  cur_release(c);
  if (c->d.root == 0) return NX_NOTFOUND;
  int rc = cur_push(c, c->d.root, c->d.root_txn);
  if (rc == NX_OK) {
    uint32_t n = bt_n(c->pg[0].data);
    if (n == 0 && c->d.depth > 1) rc = NX_CORRUPT_BKPT("btree root %u: empty branch", c->d.root);
    c->idx[0] = (uint16_t)(right && n ? n - 1 : 0);
  }
  if (rc == NX_OK) rc = cur_descend_edge(c, right);
  if (rc) cur_release(c);
  return rc;
}

int bt_cursor_first(bt_cursor *c) { return cur_edge(c, false); }
int bt_cursor_last(bt_cursor *c) { return cur_edge(c, true); }

/* Steps one entry forward (dir 1) or back (dir -1). */
static int cur_step(bt_cursor *c, int dir) {
  if (!c->valid) return NX_NOTFOUND;
  int lvl = c->depth - 1;
  uint32_t n = bt_n(c->pg[lvl].data);
  if (dir > 0 && c->idx[lvl] + 1u < n) {
    c->idx[lvl]++;
    return NX_OK;
  }
  if (dir < 0 && c->idx[lvl] > 0) {
    c->idx[lvl]--;
    return NX_OK;
  }
  /* climb to a level that can move, then descend along the near edge */
  while (c->depth > 0) {
    lvl = c->depth - 1;
    n = bt_n(c->pg[lvl].data);
    bool can = dir > 0 ? c->idx[lvl] + 1u < n : c->idx[lvl] > 0;
    if (can && (uint32_t)lvl + 1 != c->d.depth) break;
    pg_release(c->t, &c->pg[lvl]);
    c->depth--;
  }
  if (c->depth == 0) {
    c->valid = false;
    return NX_NOTFOUND;
  }
  lvl = c->depth - 1;
  c->idx[lvl] = (uint16_t)(c->idx[lvl] + dir);
  c->valid = false;
  /* the next leaf of a sequential walk: cached cold (scan resistance, pager_cache.c note 5) */
  pg_set_cold(c->t, true);
  int rc = cur_descend_edge(c, dir < 0);
  pg_set_cold(c->t, false);
  if (rc) cur_release(c);
  return rc;
}

int bt_cursor_next(bt_cursor *c) { return cur_step(c, 1); }
int bt_cursor_prev(bt_cursor *c) { return cur_step(c, -1); }

int bt_cursor_seek(bt_cursor *c, const uint8_t *key, size_t klen, int how) {
  cur_release(c);
  if (c->d.root == 0) return NX_NOTFOUND;
  uint32_t ps = cur_ps(c), pgno = c->d.root;
  uint64_t txn = c->d.root_txn;
  int rc;
  for (;;) {
    rc = cur_push(c, pgno, txn);
    if (rc) goto fail;
    int lvl = c->depth - 1;
    if ((uint32_t)lvl + 1 == c->d.depth) break;
    uint32_t ci;
    rc = bt_branch_find(c->pg[lvl].data, ps, c->pg[lvl].pgno, key, klen, &ci);
    if (rc == NX_OK) rc = cur_child(c, lvl, ci, &pgno, &txn);
    if (rc) goto fail;
    c->idx[lvl] = (uint16_t)ci;
  }
  int lvl = c->depth - 1;
  uint32_t i, n = bt_n(c->pg[lvl].data);
  bool exact;
  rc = bt_leaf_find(c->pg[lvl].data, ps, c->pg[lvl].pgno, key, klen, &i, &exact);
  if (rc) goto fail;
  if (n == 0) {
    cur_release(c);
    return NX_NOTFOUND;
  }
  if (exact) {
    c->idx[lvl] = (uint16_t)i;
    c->valid = true;
    return NX_OK;
  }
  if (how == 1) {
    cur_release(c);
    return NX_NOTFOUND;
  }
  if (how == 0) {
    if (i < n) {
      c->idx[lvl] = (uint16_t)i;
      c->valid = true;
      return NX_OK;
    }
    c->idx[lvl] = (uint16_t)(n - 1);
    c->valid = true;
    return bt_cursor_next(c);
  }
  if (i > 0) {
    c->idx[lvl] = (uint16_t)(i - 1);
    c->valid = true;
    return NX_OK;
  }
  c->idx[lvl] = 0;
  c->valid = true;
  return bt_cursor_prev(c);
fail:
  cur_release(c);
  return rc;
}

int bt_cursor_get(bt_cursor *c, const uint8_t **key, size_t *klen, const uint8_t **val,
                  size_t *vlen) {
  if (!c->valid) return NX_NOTFOUND;
  int lvl = c->depth - 1;
  const uint8_t *pg = c->pg[lvl].data, *k;
  uint32_t ps = cur_ps(c), i = c->idx[lvl];
  size_t kn;
  if (i >= bt_n(pg) || !bt_key(pg, ps, true, i, &k, &kn))
    return NX_CORRUPT_BKPT("btree leaf %u: entry %u out of page", c->pg[lvl].pgno, i);
  const uint8_t *cell = pg + bt_slot(pg, i);
  if (i + 1 < bt_n(pg)) { /* a scan reads the next entry soon: start loading it now */
    const uint8_t *next = pg + bt_slot(pg, i + 1);
    __builtin_prefetch(next);
    __builtin_prefetch(next + 64);
    __builtin_prefetch(next + 128);
  }
  if (key) {
    *key = k;
    *klen = kn;
  }
  if (!val) return NX_OK;
  bt_lc lc;
  if (!bt_lc_decode(cell, ps - bt_slot(pg, i), &lc))
    return NX_CORRUPT_BKPT("btree leaf %u: entry %u is malformed or overruns the page", c->pg[lvl].pgno, i);
  uint32_t vl = lc.vlen;
  size_t off = bt_slot(pg, i) + lc.voff;
  if (lc.ovf) {
    if (vl > BT_MAX_VALUE)
      return NX_CORRUPT_BKPT("btree leaf %u: bad overflow reference at entry %u", c->pg[lvl].pgno, i);
    int rc = bt_ovf_read(c->t, nx_get32(pg + off), nx_get64(pg + off + 4), vl, &c->buf);
    if (rc) return rc;
    *val = c->buf.data;
  } else {
    *val = pg + off; /* within the page: bt_lc_decode checked the value against it */
  }
  *vlen = vl;
  return NX_OK;
}
