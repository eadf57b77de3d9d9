/*
 * btree_build.c: bulk rebuild of a tree into densely packed new pages (for compaction).
 *
 * Design notes:
 *  1. The old tree is read in key order through a cursor; cells are appended to the open page of
 *     each level, which is closed when the next cell would pass the fill limit (15/16 of a page);
 *     a closed page's first key and number become a cell of the level above. So leaves and
 *     branches are nearly full, and the pages are allocated in key order from the pager's lowest
 *     free page numbers, which is what lets compaction shrink the file.
 *  2. Overflow values are copied into new chains (so they move to low page numbers too).
 *  3. The old tree is left as it was: the caller drops it (bt_drop) in the same transaction.
 *  4. Branch entry 0 carries the first key of its subtree, as splits leave it.
 */
#include "btree.h"

#include <string.h>

typedef struct rb_level {
  pg_page pg;     /* the open page of this level */
  bool open;      /* pg is pinned and being filled */
  uint64_t made;  /* pages made at this level */
} rb_level;

typedef struct rb_ctx {
  pg_txn *t;
  uint32_t ps;
  uint32_t limit;               /* fill limit: bytes of cells and slots per page */
  uint32_t nlv;                 /* levels in use */
  rb_level lv[BT_MAX_DEPTH];
} rb_ctx;

static uint32_t used_bytes(const uint8_t *pg, uint32_t ps) {
  return (ps - bt_upper(pg) - bt_garbage(pg)) + 2 * bt_n(pg);
}

static void append(uint8_t *pg, const uint8_t *cell, uint32_t n) {
  uint32_t cnt = bt_n(pg), up = bt_upper(pg) - n;
  memcpy(pg + up, cell, n);
  nx_put16(pg + BT_HDR_END + 2 * cnt, (uint16_t)up);
  nx_put16(pg + 24, (uint16_t)(cnt + 1));
  nx_put32(pg + 28, up);
}

static int rb_add(rb_ctx *r, uint32_t lvl, const uint8_t *cell, uint32_t n);

/* Closes the open page of level lvl and adds (its first key, its number) to the level above. */
static int rb_close(rb_ctx *r, uint32_t lvl) {
  rb_level *L = &r->lv[lvl];
  uint8_t cell[14 + BT_MAX_KEY];
  const uint8_t *k = NULL;
  size_t kn = 0;
  bt_key(L->pg.data, r->ps, lvl == 0, 0, &k, &kn);
  nx_put16(cell, (uint16_t)kn);
  nx_put32(cell + 2, L->pg.pgno);
  nx_put64(cell + 6, pg_txnid(r->t));
  if (kn) memcpy(cell + 14, k, kn);
  pg_release(r->t, &L->pg);
  L->open = false;
  return rb_add(r, lvl + 1, cell, 14 + (uint32_t)kn);
}

static int rb_add(rb_ctx *r, uint32_t lvl, const uint8_t *cell, uint32_t n) {
  if (lvl >= BT_MAX_DEPTH) return nx_err(NX_LIMIT, "btree rebuild: more than %d levels", BT_MAX_DEPTH);
  rb_level *L = &r->lv[lvl];
  int rc;
  if (L->open && used_bytes(L->pg.data, r->ps) + n + 2 > r->limit && bt_n(L->pg.data) > 0) {
    if ((rc = rb_close(r, lvl)) != NX_OK) return rc;
  }
  if (!L->open) {
    if ((rc = pg_alloc(r->t, lvl == 0 ? PG_T_LEAF : PG_T_BRANCH, &L->pg)) != NX_OK) return rc;
    memset(L->pg.data + 24, 0, BT_HDR_END - 24);
    nx_put32(L->pg.data + 28, r->ps);
    L->open = true;
    L->made++;
    if (lvl + 1 > r->nlv) r->nlv = lvl + 1;
  }
  append(L->pg.data, cell, n);
  return NX_OK;
}

/* Builds the leaf cell of (key, value) into s->cell, writing an overflow chain if needed. */
static int leaf_cell(pg_txn *t, bt_scratch *s, const uint8_t *k, size_t kn, const uint8_t *v, size_t vn,
                     uint32_t *n) {
  uint8_t *c = s->cell;
  bool inl = bt_lc_size((uint32_t)kn, (uint32_t)vn, false) <= bt_max_cell(s->page_size);
  uint32_t sz = bt_lc_write(c, k, (uint32_t)kn, (uint32_t)vn, !inl);
  if (inl) {
    if (vn) memcpy(c + sz, v, vn);
    sz += (uint32_t)vn;
  } else {
    uint32_t first;
    uint64_t otxn;
    int rc = bt_ovf_write(t, v, vn, &first, &otxn);
    if (rc) return rc;
    nx_put32(c + sz, first);
    nx_put64(c + sz + 4, otxn);
    sz += 12;
  }
  *n = sz;
  return NX_OK;
}

int bt_rebuild(pg_txn *t, bt_scratch *s, const bt_desc *old, bt_desc *out) {
  memset(out, 0, sizeof *out);
  if (!pg_is_write(t)) return nx_err(NX_READONLY, "btree rebuild in a read transaction");
  rb_ctx r;
  memset(&r, 0, sizeof r);
  r.t = t;
  r.ps = s->page_size;
  r.limit = (r.ps - BT_HDR_END) / 16 * 15;
  bt_cursor c;
  bt_cursor_init(&c, t, old);
  uint64_t count = 0;
  int rc = bt_cursor_first(&c);
  while (rc == NX_OK) {
    const uint8_t *k, *v;
    size_t kn, vn;
    uint32_t n;
    rc = bt_cursor_get(&c, &k, &kn, &v, &vn);
    if (rc == NX_OK) rc = leaf_cell(t, s, k, kn, v, vn, &n);
    if (rc == NX_OK) rc = rb_add(&r, 0, s->cell, n);
    if (rc) break;
    count++;
    rc = bt_cursor_next(&c);
  }
  bt_cursor_fini(&c);
  if (rc == NX_NOTFOUND) rc = NX_OK;
  /* close the levels bottom-up; the one page of the top level is the root */
  for (uint32_t lvl = 0; rc == NX_OK && lvl < r.nlv; lvl++) {
    rb_level *L = &r.lv[lvl];
    if (!L->open) continue;
    if (lvl + 1 == r.nlv && L->made == 1) {
      out->root = L->pg.pgno;
      out->root_txn = pg_txnid(t);
      out->depth = lvl + 1;
      out->count = count;
      pg_release(t, &L->pg);
      L->open = false;
      break;
    }
    rc = rb_close(&r, lvl);
  }
  for (uint32_t lvl = 0; lvl < BT_MAX_DEPTH; lvl++)
    if (r.lv[lvl].open) pg_release(t, &r.lv[lvl].pg);
  if (rc == NX_OK && count != old->count)
    rc = NX_CORRUPT_BKPT("btree rebuild: %llu entries read, the descriptor says %llu", (unsigned long long)count,
                         (unsigned long long)old->count);
  return rc;
}

/* ---- Relocation: move the pages numbered >= limit down into lower free pages ---- */
typedef struct rl_max {
  uint32_t max; /* highest page number of a chain */
} rl_max;

static int rl_mark(void *ctx, uint32_t pgno) {
  rl_max *m = ctx;
  if (pgno > m->max) m->max = pgno;
  return NX_OK;
}

/* Walks the subtree at (*pgno, *txn); every page at or above limit, and every page on the path
 * above one that moved, is copied by pg_write (the pager gives out its lowest free numbers).
 * *moved tells the caller to store the new (*pgno, *txn). Children move before their parent. */
static int reloc(pg_txn *t, nx_buf *buf, uint32_t *pgno, uint64_t *txn, uint32_t lvl, uint32_t depth,
                 uint32_t limit, bool *moved) {
  uint32_t ps = pager_page_size(pg_pager(t));
  bool leaf = lvl + 1 == depth;
  *moved = false;
  if (lvl >= BT_MAX_DEPTH) return NX_CORRUPT_BKPT("btree page %u: too deep", *pgno);
  pg_page p;
  int rc = bt_get_node(t, *pgno, *txn, leaf, &p);
  if (rc) return rc;
  rc = bt_page_validate(p.data, ps, leaf, p.pgno);
  bool written = false;
  uint32_t n = bt_n(p.data);
  for (uint32_t i = 0; rc == NX_OK && i < n; i++) {
    const uint8_t *c = p.data + bt_slot(p.data, i);
    bt_lc lc = {0};
    if (leaf && !bt_lc_decode(c, UINT32_MAX, &lc)) continue; /* validated above */
    if (!leaf) {
      uint32_t cp = nx_get32(c + 2);
      uint64_t ct = nx_get64(c + 6);
      bool cm;
      rc = reloc(t, buf, &cp, &ct, lvl + 1, depth, limit, &cm);
      if (rc == NX_OK && cm) {
        if (!written && (rc = pg_write(t, &p)) == NX_OK) written = true;
        if (rc == NX_OK) {
          uint8_t *w = p.data + bt_slot(p.data, i);
          nx_put32(w + 2, cp);
          nx_put64(w + 6, ct);
        }
      }
    } else if (lc.ovf) {
      uint32_t first = nx_get32(c + lc.voff), vl = lc.vlen;
      uint64_t otxn = nx_get64(c + lc.voff + 4);
      rl_max m = {0};
      rc = bt_ovf_walk(t, first, otxn, vl, false, rl_mark, &m);
      if (rc || m.max < limit) continue;
      uint32_t nf;
      uint64_t nt;
      rc = bt_ovf_read(t, first, otxn, vl, buf);
      if (rc == NX_OK) rc = bt_ovf_write(t, buf->data, vl, &nf, &nt);
      if (rc == NX_OK) rc = bt_ovf_walk(t, first, otxn, vl, true, NULL, NULL);
      if (rc == NX_OK && !written && (rc = pg_write(t, &p)) == NX_OK) written = true;
      if (rc == NX_OK) {
        uint8_t *w = p.data + bt_slot(p.data, i);
        nx_put32(w + lc.voff, nf);
        nx_put64(w + lc.voff + 4, nt);
      }
    }
  }
  if (rc == NX_OK && !written && p.pgno >= limit && (rc = pg_write(t, &p)) == NX_OK) written = true;
  if (rc == NX_OK && written) {
    *pgno = p.pgno;
    *txn = pg_txnid(t);
    *moved = true;
  }
  pg_release(t, &p);
  return rc;
}

int bt_relocate(pg_txn *t, bt_desc *d, uint32_t limit) {
  if (!pg_is_write(t)) return nx_err(NX_READONLY, "btree relocate in a read transaction");
  if (d->root == 0) return NX_OK;
  nx_buf buf;
  nx_buf_init(&buf, 0);
  bool moved;
  uint32_t root = d->root;
  uint64_t txn = d->root_txn;
  int rc = reloc(t, &buf, &root, &txn, 0, d->depth, limit, &moved);
  if (rc == NX_OK && moved) {
    d->root = root;
    d->root_txn = txn;
  }
  nx_buf_free(&buf);
  return rc;
}
