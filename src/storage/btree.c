/*
 * btree.c: point operations of the copy-on-write B+tree (get, put, delete, drop) and its
 * overflow chains. The page layout is drawn in btree.h (and docs/format.md).
 *
 * Design notes:
 *  1. Writes descend read-only first (bt_path), then "touch" the path top-down: pg_write on each
 *     page (which copies a committed page to a new number) and store the new number and txn id in
 *     the parent's cell, or in the descriptor for the root. pg_write may move a page even when it
 *     is already dirty (after a spill), so the parent reference is always rewritten.
 *  2. Every page touched for writing is validated in full first (cells within the page, sizes
 *     adding up); pages on the read path are checked lazily, cell by cell (bt_key).
 *  3. A split moves about half the bytes of a page (plus the new cell) to a new right sibling and
 *     inserts (first key of the right page, right page) into the parent, up to a new root. At the
 *     right edge of the tree (an append: ascending keys) the new cell alone starts the right page
 *     and the left one stays full, as SQLite's quick balance does.
 *     Branch entry 0 keeps its key on disk, so that key always equals the parent's separator for
 *     it; a merge needs it when it pulls the separator down.
 *  4. A delete that leaves a page under a quarter full merges it with a sibling when both fit in
 *     one page (no redistribution otherwise). A page left empty (a lone child whose parent could
 *     not merge) is removed from its parent; a root branch with one child is collapsed and an
 *     empty root freed.
 *  5. Overflow chains are written back to front, so each page is written once, complete; every
 *     page of a chain carries the txn id recorded in the leaf cell.
 */
#include "btree.h"

#include <string.h>

typedef struct bt_path {
  int depth;                   /* levels held */
  pg_page pg[BT_MAX_DEPTH];    /* pinned pages, pg[0] the root */
  bool held[BT_MAX_DEPTH];     /* pg[i] is pinned */
  uint16_t idx[BT_MAX_DEPTH];  /* child index (branch) or entry index (leaf) */
  bool exact;                  /* the leaf holds the key at idx[depth-1] */
} bt_path;

/* ---- Descriptors ---- */
void bt_desc_load(bt_desc *d, const uint8_t *p) {
  d->root = nx_get32(p);
  d->depth = nx_get32(p + 4);
  d->root_txn = nx_get64(p + 8);
  d->count = nx_get64(p + 16);
}

void bt_desc_store(const bt_desc *d, uint8_t *p) {
  nx_put32(p, d->root);
  nx_put32(p + 4, d->depth);
  nx_put64(p + 8, d->root_txn);
  nx_put64(p + 16, d->count);
}

uint32_t bt_max_cell(uint32_t page_size) { return (page_size - BT_HDR_END) / 3 - 2; }

int bt_scratch_init(bt_scratch *s, uint32_t page_size) {
  memset(s, 0, sizeof *s);
  s->page_size = page_size;
  s->ents_cap = page_size / 8 + 4;
  s->page = nx_malloc(page_size);
  s->cell = nx_malloc(page_size);
  s->ents = nx_malloc(sizeof(*s->ents) * s->ents_cap);
  if (!s->page || !s->cell || !s->ents) {
    bt_scratch_free(s);
    return nx_err(NX_NOMEM, "btree: scratch buffers for %u-byte pages", page_size);
  }
  return NX_OK;
}

void bt_scratch_free(bt_scratch *s) {
  nx_free(s->page);
  nx_free(s->cell);
  nx_free(s->ents);
  s->page = s->cell = NULL;
  s->ents = NULL;
}

void bt_read_init(bt_read *r) {
  memset(r, 0, sizeof *r);
  nx_buf_init(&r->buf, 0);
}

void bt_read_release(pg_txn *t, bt_read *r) {
  if (r->has_leaf) pg_release(t, &r->leaf);
  r->has_leaf = false;
}

void bt_read_free(pg_txn *t, bt_read *r) {
  bt_read_release(t, r);
  nx_buf_free(&r->buf);
}

/* ---- Page helpers (pages here are validated or our own) ---- */
static uint32_t cell_size(const uint8_t *c, bool leaf) {
  if (!leaf) return 14 + (uint32_t)nx_get16(c);
  bt_lc lc;
  return bt_lc_decode(c, UINT32_MAX, &lc) ? lc.size : 0; /* pages here were validated */
}

static uint32_t page_used(const uint8_t *pg, uint32_t ps) {
  return (ps - bt_upper(pg) - bt_garbage(pg)) + 2 * bt_n(pg);
}

static void page_init(uint8_t *pg, uint32_t ps) {
  memset(pg + 24, 0, BT_HDR_END - 24);
  nx_put32(pg + 28, ps);
}

/* Appends a cell as the last entry; the caller knows it fits. */
static void page_append(uint8_t *pg, const uint8_t *cell, uint32_t n) {
  uint32_t cnt = bt_n(pg), up = bt_upper(pg) - n;
  memcpy(pg + up, cell, n);
  nx_put16(pg + BT_HDR_END + 2 * cnt, (uint16_t)up);
  nx_put16(pg + 24, (uint16_t)(cnt + 1));
  nx_put32(pg + 28, up);
}

/* Rewrites the page with its cells packed against the end (drops garbage). */
static void page_compact(uint8_t *pg, uint32_t ps, bool leaf, uint8_t *tmp) {
  memcpy(tmp, pg, ps);
  uint32_t n = bt_n(tmp);
  page_init(pg, ps);
  for (uint32_t i = 0; i < n; i++) {
    const uint8_t *c = tmp + bt_slot(tmp, i);
    page_append(pg, c, cell_size(c, leaf));
  }
}

/* Inserts a cell at index i. Returns false when the page has no room for it. */
static bool page_insert(uint8_t *pg, uint32_t ps, bool leaf, uint32_t i, const uint8_t *cell,
                        uint32_t n, uint8_t *tmp) {
  uint32_t cnt = bt_n(pg), need = n + 2;
  if (page_used(pg, ps) + need > ps - BT_HDR_END) return false;
  if (bt_upper(pg) - (BT_HDR_END + 2 * cnt) < need) page_compact(pg, ps, leaf, tmp);
  uint32_t up = bt_upper(pg) - n;
  memcpy(pg + up, cell, n);
  uint8_t *slots = pg + BT_HDR_END;
  memmove(slots + 2 * (i + 1), slots + 2 * i, 2 * (cnt - i));
  nx_put16(slots + 2 * i, (uint16_t)up);
  nx_put16(pg + 24, (uint16_t)(cnt + 1));
  nx_put32(pg + 28, up);
  return true;
}

static void page_remove(uint8_t *pg, uint32_t ps, bool leaf, uint32_t i) {
  uint32_t cnt = bt_n(pg);
  uint32_t sz = cell_size(pg + bt_slot(pg, i), leaf);
  uint8_t *slots = pg + BT_HDR_END;
  memmove(slots + 2 * i, slots + 2 * (i + 1), 2 * (cnt - i - 1));
  nx_put16(pg + 24, (uint16_t)(cnt - 1));
  if (cnt == 1) {
    page_init(pg, ps);
  } else {
    nx_put32(pg + 32, bt_garbage(pg) + sz);
  }
}

/* Full validation of a page about to be changed (invariant-level checks are bt_check's). */
int bt_page_validate(const uint8_t *pg, uint32_t ps, bool leaf, uint32_t pgno) {
  if (!bt_hdr_ok(pg, ps))
    return NX_CORRUPT_BKPT("btree page %u: bad header (n %u, upper %u)", pgno, bt_n(pg), bt_upper(pg));
  uint32_t n = bt_n(pg), sum = 0, h = leaf ? 2u : 14u, lo = bt_upper(pg);
  for (uint32_t i = 0; i < n; i++) {
    uint32_t off = bt_slot(pg, i);
    if (off < lo || off + h > ps) return NX_CORRUPT_BKPT("btree page %u: slot %u offset %u out of page", pgno, i, off);
    const uint8_t *c = pg + off;
    uint32_t sz;
    if (leaf) {
      bt_lc lc;
      if (!bt_lc_decode(c, ps - off, &lc))
        return NX_CORRUPT_BKPT("btree page %u: cell %u at %u is malformed or overruns the page", pgno, i, off);
      if (lc.klen > BT_MAX_KEY) return NX_CORRUPT_BKPT("btree page %u: key %u too long", pgno, i);
      if (lc.ovf && lc.vlen > BT_MAX_VALUE) return NX_CORRUPT_BKPT("btree page %u: value %u too long", pgno, i);
      sz = lc.size;
    } else {
      if (nx_get16(c) > BT_MAX_KEY) return NX_CORRUPT_BKPT("btree page %u: key %u too long", pgno, i);
      sz = cell_size(c, false);
    }
    if (off + sz > ps) return NX_CORRUPT_BKPT("btree page %u: cell %u at %u overruns the page", pgno, i, off);
    sum += sz;
  }
  if (sum != ps - lo - bt_garbage(pg))
    return NX_CORRUPT_BKPT("btree page %u: cell bytes %u do not match header", pgno, sum);
  return NX_OK;
}

/* bt_branch_find, optionally through `words`, the separators' first 8 bytes as big-endian
 * words (see key_word; NULL: none): unequal words order two keys, equal ones need the cells. */
static int branch_search(const uint8_t *pg, uint32_t ps, uint32_t pgno, const uint64_t *words, uint64_t kw,
                         const uint8_t *key, size_t klen, uint32_t *child) {
  uint32_t n = bt_n(pg);
  if (n == 0 || !bt_hdr_ok(pg, ps)) return NX_CORRUPT_BKPT("btree branch %u: empty or bad header", pgno);
  uint32_t lo = 1, hi = n;
  if (words && n >= 32) {
    /* the words of the first three probes' levels at once: the probes depend on each other,
     * their fetches need not (as bt_leaf_find does with cells) */
    for (uint32_t j = 1; j < 8; j++) __builtin_prefetch(words + 1 + (n - 1) * j / 8);
  }
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    int c;
    if (words && words[mid] != kw) {
      c = words[mid] < kw ? -1 : 1;
    } else {
      const uint8_t *k;
      size_t kn;
      if (!bt_key(pg, ps, false, mid, &k, &kn)) return NX_CORRUPT_BKPT("btree branch %u: cell %u out of page", pgno, mid);
      c = bt_cmp(k, kn, key, klen);
    }
    if (c <= 0) lo = mid + 1;
    else hi = mid;
  }
  *child = lo - 1;
  return NX_OK;
}

/* First index in [1, n) whose key is > key, minus one: the child covering key. */
int bt_branch_find(const uint8_t *pg, uint32_t ps, uint32_t pgno, const uint8_t *key,
                       size_t klen, uint32_t *child) {
  return branch_search(pg, ps, pgno, NULL, 0, key, klen, child);
}

/* First index whose key is >= key; *exact when equal. */
int bt_leaf_find(const uint8_t *pg, uint32_t ps, uint32_t pgno, const uint8_t *key, size_t klen,
                     uint32_t *idx, bool *exact) {
  if (!bt_hdr_ok(pg, ps)) return NX_CORRUPT_BKPT("btree leaf %u: bad header", pgno);
  uint32_t lo = 0, hi = bt_n(pg);
  if (hi >= 16) {
    /* Fetch the cells of the first three probes' levels at once (memory-level parallelism:
     * the probes depend on each other, the fetches need not). Prefetches never fault. */
    for (uint32_t j = 1; j < 8; j++) __builtin_prefetch(pg + bt_slot(pg, hi * j / 8));
  } else {
    /* a leaf of large values holds few: fetch every key at once (one wait instead of four) */
    for (uint32_t j = 0; j < hi; j++) __builtin_prefetch(pg + bt_slot(pg, j));
  }
  *exact = false;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    const uint8_t *k;
    size_t kn;
    if (!bt_key(pg, ps, true, mid, &k, &kn)) return NX_CORRUPT_BKPT("btree leaf %u: cell %u out of page", pgno, mid);
    int c = bt_cmp(k, kn, key, klen);
    if (c < 0) {
      lo = mid + 1;
    } else {
      hi = mid;
      if (c == 0) *exact = true;
    }
  }
  *idx = lo;
  return NX_OK;
}

static void child_ref(const uint8_t *pg, uint32_t i, uint32_t *pgno, uint64_t *txn) {
  const uint8_t *c = pg + bt_slot(pg, i);
  *pgno = nx_get32(c + 2);
  *txn = nx_get64(c + 6);
}

static void set_child_ref(uint8_t *pg, uint32_t i, uint32_t pgno, uint64_t txn) {
  uint8_t *c = pg + bt_slot(pg, i);
  nx_put32(c + 2, pgno);
  nx_put64(c + 6, txn);
}

/* Checks that a fetched page has the type expected (releasing it when not). */
static int node_type_ok(pg_txn *t, uint32_t pgno, bool leaf, pg_page *out) {
  uint8_t want = leaf ? PG_T_LEAF : PG_T_BRANCH;
  if (pg_type(out) != want) {
    uint8_t got = pg_type(out);
    pg_release(t, out);
    return NX_CORRUPT_BKPT("btree page %u: type %u where a %s was expected", pgno, got,
                           leaf ? "leaf" : "branch");
  }
  return NX_OK;
}

/* Fetches page pgno and checks it has the type expected at level lvl of a tree of depth d. */
int bt_get_node(pg_txn *t, uint32_t pgno, uint64_t txn, bool leaf, pg_page *out) {
  int rc = pg_get(t, pgno, txn, out);
  return rc ? rc : node_type_ok(t, pgno, leaf, out);
}

/* ---- Overflow chains ---- */
int bt_ovf_read(pg_txn *t, uint32_t pgno, uint64_t txn, uint32_t vlen, nx_buf *b) {
  uint32_t ps = pager_page_size(pg_pager(t)), per = ps - 32;
  b->len = 0;
  int rc = nx_buf_reserve(b, vlen ? vlen : 1);
  if (rc) return rc;
  uint32_t left = vlen, pages = 0, maxpages = vlen / per + 1;
  while (left > 0) {
    if (pgno == 0 || ++pages > maxpages)
      return NX_CORRUPT_BKPT("btree overflow chain ends early (%u of %u bytes missing)", left, vlen);
    pg_page p;
    rc = pg_get(t, pgno, txn, &p);
    if (rc) return rc;
    uint32_t used = nx_get32(p.data + 28);
    if (pg_type(&p) != PG_T_OVERFLOW || used > per || used > left || used == 0) {
      pg_release(t, &p);
      return NX_CORRUPT_BKPT("btree overflow page %u: bad type or length %u", pgno, used);
    }
    memcpy(b->data + b->len, p.data + 32, used);
    b->len += used;
    left -= used;
    pgno = nx_get32(p.data + 24);
    pg_release(t, &p);
  }
  return NX_OK;
}

/* Writes val into a new chain; *first and *txn receive its head. */
int bt_ovf_write(pg_txn *t, const uint8_t *val, size_t vlen, uint32_t *first, uint64_t *txn) {
  uint32_t ps = pager_page_size(pg_pager(t)), per = ps - 32;
  size_t npages = (vlen + per - 1) / per;
  uint32_t next = 0;
  for (size_t i = npages; i-- > 0;) {
    size_t off = i * per, len = vlen - off < per ? vlen - off : per;
    pg_page p;
    int rc = pg_alloc(t, PG_T_OVERFLOW, &p);
    if (rc) return rc; /* pages already allocated are reclaimed by the txn's abort */
    nx_put32(p.data + 24, next);
    nx_put32(p.data + 28, (uint32_t)len);
    memcpy(p.data + 32, val + off, len);
    next = p.pgno;
    pg_release(t, &p);
  }
  *first = next;
  *txn = pg_txnid(t);
  return NX_OK;
}

int bt_ovf_walk(pg_txn *t, uint32_t pgno, uint64_t txn, uint32_t vlen, bool free_pages,
                    int (*mark)(void *, uint32_t), void *mctx) {
  uint32_t ps = pager_page_size(pg_pager(t)), per = ps - 32;
  uint32_t pages = 0, maxpages = vlen / per + 1;
  while (pgno != 0) {
    if (++pages > maxpages) return NX_CORRUPT_BKPT("btree overflow chain at page %u too long", pgno);
    pg_page p;
    int rc = pg_get(t, pgno, txn, &p);
    if (rc) return rc;
    if (pg_type(&p) != PG_T_OVERFLOW) {
      pg_release(t, &p);
      return NX_CORRUPT_BKPT("btree overflow page %u: bad type", pgno);
    }
    uint32_t next = nx_get32(p.data + 24);
    pg_release(t, &p);
    if (mark && (rc = mark(mctx, pgno)) != 0) return rc;
    if (free_pages && (rc = pg_free(t, pgno)) != 0) return rc;
    pgno = next;
  }
  return NX_OK;
}

/* Frees the overflow chain of a leaf cell, if it has one. */
static int cell_free_ovf(pg_txn *t, const uint8_t *c) {
  bt_lc lc;
  if (!bt_lc_decode(c, UINT32_MAX, &lc) || !lc.ovf) return NX_OK; /* pages here were validated */
  return bt_ovf_walk(t, nx_get32(c + lc.voff), nx_get64(c + lc.voff + 4), lc.vlen, true, NULL, NULL);
}

/* ---- Get ---- */
void bt_pincache_release(pg_txn *t, bt_pincache *pc) {
  for (unsigned w = 0; w < BT_PC_SLOTS / 64; w++)
    while (pc->used[w]) {
      unsigned i = w * 64 + (unsigned)__builtin_ctzll(pc->used[w]);
      pc->used[w] &= pc->used[w] - 1;
      if (pc->pgno[i]) pg_release(t, &pc->pg[i]);
      pc->pgno[i] = 0;
    }
}

void bt_pincache_free(bt_pincache *pc) {
  for (uint32_t i = 0; i < BT_PC_SLOTS; i++) {
    nx_free(pc->hint[i]);
    pc->hint[i] = NULL;
    pc->nhint[i] = 0;
    nx_free(pc->pfx[i]);
    pc->pfx[i] = NULL;
    pc->npfx[i] = pc->cpfx[i] = 0;
  }
}

/* A key's first 8 bytes as a big-endian word, zero padded. Comparing two such words orders
 * the keys whenever the words differ (a shorter key's padding is below any byte the other has
 * there only when it is a prefix, and then it is smaller too); equal words need the full
 * compare. */
static inline uint64_t key_word(const uint8_t *k, size_t n) {
  uint8_t w[8] = {0};
  memcpy(w, k, n < 8 ? n : 8);
  return nx_get64be(w);
}

/* Builds slot's separator words for branch page b (leaves npfx 0 when it cannot). */
static void pfx_build(bt_pincache *pc, uint32_t slot, const uint8_t *b, uint32_t ps) {
  pc->npfx[slot] = 0;
  pc->finger[slot] = 0;
  uint32_t n = bt_n(b);
  if (n == 0 || !bt_hdr_ok(b, ps)) return; /* the cell search reports it */
  if (n > pc->cpfx[slot]) {
    uint64_t *v = nx_realloc(pc->pfx[slot], n * sizeof *v);
    if (!v) return;
    pc->pfx[slot] = v;
    pc->cpfx[slot] = n;
  }
  for (uint32_t i = 1; i < n; i++) {
    const uint8_t *k;
    size_t kn;
    if (!bt_key(b, ps, false, i, &k, &kn)) return;
    pc->pfx[slot][i] = key_word(k, kn);
  }
  pc->npfx[slot] = n;
}

/* The child for kw found from the last one chosen in this branch (f), by words alone: true and
 * *child when words settle it. Reads in key order (an index's matches fetched by sorted _id)
 * land at or a little after the last child, so a gallop forward takes two or three compares
 * where a binary search over a branch of ~150 separators takes eight. Gives up (false) when the
 * key lies before f, when a word equals kw (the cells must decide) or after a few steps. */
static bool finger_find(const uint64_t *w, uint32_t n, uint32_t f, uint64_t kw, uint32_t *child) {
  if (f >= n || (f > 0 && w[f] >= kw)) return false;
  uint32_t lo = f, hi = n, step = 1; /* key(lo) < key (lo 0: minus infinity); key(hi) > key or hi == n */
  for (int tries = 0;; tries++) {
    if (tries == 4) return false; /* far from the finger: a plain search is as good */
    uint32_t j = lo + step;
    if (j >= n) break;
    if (w[j] == kw) return false;
    if (w[j] > kw) {
      hi = j;
      break;
    }
    lo = j;
    step *= 2;
  }
  while (hi - lo > 1) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (w[mid] == kw) return false;
    if (w[mid] < kw) lo = mid;
    else hi = mid;
  }
  *child = lo;
  return true;
}

/* bt_branch_find through the slot's separator words (built for exactly this page's n cells),
 * starting from the slot's finger. */
static int pc_branch_find(bt_pincache *pc, uint32_t slot, const uint8_t *b, uint32_t ps, uint32_t pgno,
                          const uint8_t *key, size_t klen, uint32_t *child) {
  bool built = pc->npfx[slot] != 0;
  uint64_t kw = built ? key_word(key, klen) : 0;
  if (built && finger_find(pc->pfx[slot], pc->npfx[slot], pc->finger[slot], kw, child)) {
    pc->finger[slot] = *child;
    return NX_OK;
  }
  int rc = branch_search(b, ps, pgno, built ? pc->pfx[slot] : NULL, kw, key, klen, child);
  if (rc == NX_OK) pc->finger[slot] = *child;
  return rc;
}

/* The hint for child ci of the branch in slot (NULL when there is no room for one). */
static pg_hint *pc_hint(bt_pincache *pc, uint32_t slot, uint32_t ci) {
  if (ci < pc->nhint[slot]) return &pc->hint[slot][ci];
  if (ci >= 65536) return NULL;
  uint32_t n = (ci + 64) & ~63u;
  pg_hint *h = nx_realloc(pc->hint[slot], n * sizeof *h);
  if (!h) return NULL; /* a read without a hint */
  memset(h + pc->nhint[slot], 0, (n - pc->nhint[slot]) * sizeof *h);
  pc->hint[slot] = h;
  pc->nhint[slot] = n;
  return &h[ci];
}

/* A branch page through the pin cache: *out is borrowed from the cache (do not release). */
static int pc_branch(pg_txn *t, bt_pincache *pc, uint32_t pgno, uint64_t txn, const uint8_t **out,
                     uint32_t *slot_out) {
  /* a full mix: branch page numbers come in strides (one per ~fanout leaves of a sequential
   * load), which the top bits of a single multiply spread over only a fraction of the slots */
  uint32_t h = pgno * 0x9E3779B1u;
  h ^= h >> 15;
  h *= 0x85EBCA77u;
  h ^= h >> 13;
  /* four ways per set, the least recently used one replaced. With 256 slots in sets of two,
   * the ~140 branches of 200k documents still collided: one get in 14 re-pinned a branch and
   * rebuilt its separator words (a walk over all its cells) and its children's hints. */
  uint32_t s0 = (h & (BT_PC_SLOTS / BT_PC_WAYS - 1)) * BT_PC_WAYS, slot;
  uint32_t now = ++pc->clock;
  for (slot = s0; slot < s0 + BT_PC_WAYS; slot++)
    if (pc->pgno[slot] == pgno) {
      pc->stamp[slot] = now;
      *slot_out = slot;
      *out = pc->pg[slot].data;
      return NX_OK;
    }
  pg_page p;
  int rc = bt_get_node(t, pgno, txn, false, &p);
  if (rc) return rc;
  slot = s0; /* an empty way, else the least recently used (stamps compared by age: the clock wraps) */
  for (uint32_t w = s0; w < s0 + BT_PC_WAYS && pc->pgno[slot]; w++)
    if (!pc->pgno[w] || now - pc->stamp[w] > now - pc->stamp[slot]) slot = w;
  pc->stamp[slot] = now;
  *slot_out = slot;
  if (pc->pgno[slot]) pg_release(t, &pc->pg[slot]);
  pc->pg[slot] = p;
  pc->pgno[slot] = pgno;
  pc->used[slot / 64] |= 1ull << (slot % 64);
  pfx_build(pc, slot, p.data, pager_page_size(pg_pager(t)));
  *out = p.data;
  return NX_OK;
}

int bt_get(pg_txn *t, const bt_desc *d, const uint8_t *key, size_t klen, bt_read *r,
           const uint8_t **val, size_t *vlen) {
  return bt_get_cached(t, NULL, d, key, klen, r, val, vlen);
}

/* The descent of a point read to its leaf: loc gets the leaf, its txn id, the tree and, with a
 * pin cache, where the leaf's hint lives. */
static int descend(pg_txn *t, bt_pincache *pc, const bt_desc *d, const uint8_t *key, size_t klen, bt_loc *loc) {
  memset(loc, 0, sizeof *loc);
  if (d->depth == 0 || d->depth > BT_MAX_DEPTH) return NX_CORRUPT_BKPT("btree: depth %u", d->depth);
  uint32_t ps = pager_page_size(pg_pager(t));
  uint32_t pgno = d->root;
  uint64_t txn = d->root_txn;
  for (uint32_t lvl = 0; lvl + 1 < d->depth; lvl++) {
    int rc;
    uint32_t ci = 0;
    if (pc) {
      const uint8_t *b;
      uint32_t bp = pgno, slot;
      rc = pc_branch(t, pc, pgno, txn, &b, &slot);
      if (rc == NX_OK) rc = pc_branch_find(pc, slot, b, ps, bp, key, klen, &ci);
      if (rc) return rc;
      child_ref(b, ci, &pgno, &txn);
      if (lvl + 2 == d->depth) {
        loc->slot = slot;
        loc->ci = ci;
        loc->has_hint = true;
      }
      continue;
    }
    pg_page p;
    rc = bt_get_node(t, pgno, txn, false, &p);
    if (rc) return rc;
    rc = bt_branch_find(p.data, ps, p.pgno, key, klen, &ci);
    if (rc == NX_OK) child_ref(p.data, ci, &pgno, &txn);
    pg_release(t, &p);
    if (rc) return rc;
  }
  loc->leaf = pgno;
  loc->txn = txn;
  loc->root = d->root;
  loc->root_txn = d->root_txn;
  return NX_OK;
}

/* The hint of a located leaf, or NULL. */
static pg_hint *loc_hint(bt_pincache *pc, const bt_loc *loc) {
  return pc && loc->has_hint ? pc_hint(pc, loc->slot, loc->ci) : NULL;
}

/* The leaf part of a point read: the leaf (held in r through the pager's point path) and the
 * value of key in it. */
static int leaf_get(pg_txn *t, uint32_t pgno, uint64_t txn, pg_hint *hint, const uint8_t *key, size_t klen,
                    bt_read *r, const uint8_t **val, size_t *vlen) {
  uint32_t ps = pager_page_size(pg_pager(t));
  pg_page p;
  /* the one page a point read holds: no pin when the pager can avoid it */
  int rc = pg_get_point(t, pgno, txn, hint, &p);
  if (rc == NX_OK) rc = node_type_ok(t, pgno, true, &p);
  if (rc) return rc;
  uint32_t i;
  bool exact;
  rc = bt_leaf_find(p.data, ps, p.pgno, key, klen, &i, &exact);
  if (rc || !exact) {
    pg_release(t, &p);
    return rc ? rc : NX_NOTFOUND;
  }
  const uint8_t *c = p.data + bt_slot(p.data, i);
  bt_lc lc;
  if (!bt_lc_decode(c, ps - bt_slot(p.data, i), &lc)) {
    pg_release(t, &p);
    return NX_CORRUPT_BKPT("btree leaf %u: entry %u is malformed or overruns the page", p.pgno, i);
  }
  uint32_t off = bt_slot(p.data, i) + lc.voff, vl = lc.vlen;
  if (lc.ovf) {
    uint32_t first = nx_get32(c + lc.voff);
    uint64_t otxn = nx_get64(c + lc.voff + 4);
    pg_release(t, &p);
    if (vl > BT_MAX_VALUE) return NX_CORRUPT_BKPT("btree: value of %u bytes", vl);
    rc = bt_ovf_read(t, first, otxn, vl, &r->buf);
    if (rc) return rc;
    *val = r->buf.data;
    *vlen = vl;
    return NX_OK;
  }
  /* the caller reads the whole value next (usually a copy): ask for all its lines at once
   * instead of one miss after another */
  for (uint32_t l = 64; l < vl && l < 2048; l += 64) __builtin_prefetch(p.data + off + l);
  r->leaf = p;
  r->has_leaf = true;
  *val = p.data + off;
  *vlen = vl;
  return NX_OK;
}

int bt_get_cached(pg_txn *t, bt_pincache *pc, const bt_desc *d, const uint8_t *key, size_t klen,
                  bt_read *r, const uint8_t **val, size_t *vlen) {
  bt_read_release(t, r);
  if (d->root == 0) return NX_NOTFOUND;
  bt_loc loc;
  int rc = descend(t, pc, d, key, klen, &loc);
  if (rc) return rc;
  /* Request the whole leaf now, before the header's miss: its header, slots, the cells the search
   * probes and the value all arrive in about one memory latency instead of three in a row
   * (header, then keys, then value). For the 4 KiB leaves of ~300-byte documents this made
   * random gets 6-12% faster (docs/design.md, "Point reads fetch the whole leaf"). */
  pg_hint *hint = loc_hint(pc, &loc);
  const uint8_t *data = pg_hint_peek(t, hint, loc.leaf);
  if (data) {
    uint32_t ps = pager_page_size(pg_pager(t));
    for (uint32_t l = 0; l < ps; l += 64) __builtin_prefetch(data + l);
  }
  return leaf_get(t, loc.leaf, loc.txn, hint, key, klen, r, val, vlen);
}

int bt_locate_cached(pg_txn *t, bt_pincache *pc, const bt_desc *d, const uint8_t *key, size_t klen, bt_loc *loc) {
  if (!pc || d->root == 0) { /* an empty location: bt_get_located then does the whole read */
    memset(loc, 0, sizeof *loc);
    return NX_OK;
  }
  int rc = descend(t, pc, d, key, klen, loc); /* clears loc first */
  if (rc) {
    loc->leaf = 0;
    return rc;
  }
  const uint8_t *data = pg_hint_peek(t, loc_hint(pc, loc), loc->leaf);
  if (data) { /* its address only (nothing holds it): a prefetch never faults */
    __builtin_prefetch(data);
    __builtin_prefetch(data + 64);
  }
  return NX_OK;
}

void bt_prefetch_located(pg_txn *t, bt_pincache *pc, const bt_loc *loc) {
  if (!loc->leaf) return;
  const uint8_t *data = pg_peek_hold(t, loc_hint(pc, loc), loc->leaf);
  if (!data) return;
  /* the read comes a few results later: ask for the cells its binary search will probe now
   * (the header's line was requested by bt_locate_cached one result earlier) */
  uint32_t ps = pager_page_size(pg_pager(t)), n = bt_n(data);
  if (n > 32) n = 32; /* a leaf of small cells: its probes are few lines apart anyway */
  for (uint32_t j = 0; j < n && BT_HDR_END + 2 * j + 2 <= ps; j++) __builtin_prefetch(data + bt_slot(data, j));
  pg_peek_release(t);
}

int bt_get_located(pg_txn *t, bt_pincache *pc, const bt_desc *d, const bt_loc *loc, const uint8_t *key, size_t klen,
                   bt_read *r, const uint8_t **val, size_t *vlen) {
  if (!pc || !loc->leaf || loc->root != d->root || loc->root_txn != d->root_txn)
    return bt_get_cached(t, pc, d, key, klen, r, val, vlen);
  bt_read_release(t, r);
  return leaf_get(t, loc->leaf, loc->txn, loc_hint(pc, loc), key, klen, r, val, vlen);
}

/* ---- Paths ---- */
static void path_release(pg_txn *t, bt_path *p) {
  for (int i = 0; i < p->depth; i++)
    if (p->held[i]) pg_release(t, &p->pg[i]);
  p->depth = 0;
}

/* Read-only descent to the leaf position of key; pins every level. */
static int path_descend(pg_txn *t, const bt_desc *d, const uint8_t *key, size_t klen, bt_path *p) {
  uint32_t ps = pager_page_size(pg_pager(t));
  p->depth = 0;
  p->exact = false;
  if (d->depth == 0 || d->depth > BT_MAX_DEPTH) return NX_CORRUPT_BKPT("btree: depth %u", d->depth);
  uint32_t pgno = d->root;
  uint64_t txn = d->root_txn;
  for (uint32_t lvl = 0; lvl < d->depth; lvl++) {
    bool leaf = lvl + 1 == d->depth;
    int rc = bt_get_node(t, pgno, txn, leaf, &p->pg[lvl]);
    if (rc) return rc;
    p->held[lvl] = true;
    p->depth = (int)lvl + 1;
    uint32_t i;
    if (leaf) {
      rc = bt_leaf_find(p->pg[lvl].data, ps, pgno, key, klen, &i, &p->exact);
    } else {
      rc = bt_branch_find(p->pg[lvl].data, ps, pgno, key, klen, &i);
      if (rc == NX_OK) child_ref(p->pg[lvl].data, i, &pgno, &txn);
    }
    if (rc) return rc;
    p->idx[lvl] = (uint16_t)i;
  }
  return NX_OK;
}

/* Makes every page of the path writable, top-down, re-linking each to its parent. */
static int path_touch(pg_txn *t, bt_desc *d, bt_path *p) {
  uint32_t ps = pager_page_size(pg_pager(t));
  uint64_t me = pg_txnid(t);
  for (int lvl = 0; lvl < p->depth; lvl++) {
    bool leaf = lvl + 1 == p->depth;
    int rc;
    /* A page this txn wrote was built here (or validated when first touched). */
    if (nx_get64(p->pg[lvl].data + 8) != me &&
        (rc = bt_page_validate(p->pg[lvl].data, ps, leaf, p->pg[lvl].pgno)) != NX_OK)
      return rc;
    rc = pg_write(t, &p->pg[lvl]);
    if (rc) return rc;
    if (lvl == 0) {
      d->root = p->pg[0].pgno;
      d->root_txn = me;
    } else {
      set_child_ref(p->pg[lvl - 1].data, p->idx[lvl - 1], p->pg[lvl].pgno, me);
    }
  }
  return NX_OK;
}

static void branch_cell(uint8_t *out, const uint8_t *key, size_t klen, uint32_t pgno, uint64_t txn,
                        uint32_t *n) {
  nx_put16(out, (uint16_t)klen);
  nx_put32(out + 2, pgno);
  nx_put64(out + 6, txn);
  if (klen) memcpy(out + 14, key, klen);
  *n = 14 + (uint32_t)klen;
}

/* ---- Put ---- */
/* Inserts cell at path level lvl, index i, splitting up the path as needed. */
static int insert_up(pg_txn *t, bt_scratch *s, bt_desc *d, bt_path *p, int lvl, uint32_t i,
                     const uint8_t *cell, uint32_t csize) {
  uint32_t ps = s->page_size;
  uint8_t bcell[14 + BT_MAX_KEY], nb[14 + BT_MAX_KEY];
  for (;;) {
    bool leaf = lvl + 1 == p->depth;
    uint8_t *pg = p->pg[lvl].data;
    if (page_insert(pg, ps, leaf, i, cell, csize, s->page)) return NX_OK;

    /* Split: the page's cells plus the new one, in order, into left (in place) and right. */
    memcpy(s->page, pg, ps);
    uint32_t n = bt_n(s->page), m = 0, total = 0;
    for (uint32_t j = 0; j <= n; j++) {
      if (j == i) {
        s->ents[m].p = cell;
        s->ents[m].n = csize;
        m++;
      }
      if (j < n) {
        const uint8_t *c = s->page + bt_slot(s->page, j);
        s->ents[m].p = c;
        s->ents[m].n = cell_size(c, leaf);
        m++;
      }
    }
    /* Appending at the right edge of the tree (every level on its last entry, the new cell
     * last): the left page keeps what it had, full, and the new cell starts the right page, so
     * keys inserted in ascending order (sequential _ids) fill pages instead of leaving them half
     * empty. Anywhere else the split is by halves. */
    bool append = i == n;
    for (int l = 0; append && l < lvl; l++) append = p->idx[l] + 1u == bt_n(p->pg[l].data);
    uint32_t k = 0, acc = 0;
    if (append) {
      k = m - 1;
    } else {
      for (uint32_t j = 0; j < m; j++) total += s->ents[j].n + 2;
      for (; k < m; k++) {
        uint32_t e = s->ents[k].n + 2;
        if (k > 0 && acc + e > total / 2) break;
        acc += e;
      }
      if (k >= m) k = m - 1;
    }
    pg_page right;
    int rc = pg_alloc(t, leaf ? PG_T_LEAF : PG_T_BRANCH, &right);
    if (rc) return rc;
    page_init(pg, ps);
    page_init(right.data, ps);
    for (uint32_t j = 0; j < k; j++) page_append(pg, s->ents[j].p, s->ents[j].n);
    for (uint32_t j = k; j < m; j++) page_append(right.data, s->ents[j].p, s->ents[j].n);
    const uint8_t *sk = NULL;
    size_t skn = 0;
    bt_key(right.data, ps, leaf, 0, &sk, &skn);
    branch_cell(nb, sk, skn, right.pgno, pg_txnid(t), &csize);
    pg_release(t, &right);
    memcpy(bcell, nb, csize);
    cell = bcell;
    if (lvl == 0) {
      pg_page root;
      rc = pg_alloc(t, PG_T_BRANCH, &root);
      if (rc) return rc;
      page_init(root.data, ps);
      uint32_t ln;
      branch_cell(nb, NULL, 0, p->pg[0].pgno, pg_txnid(t), &ln);
      page_append(root.data, nb, ln);
      page_append(root.data, bcell, csize);
      d->root = root.pgno;
      d->root_txn = pg_txnid(t);
      d->depth++;
      pg_release(t, &root);
      return NX_OK;
    }
    lvl--;
    i = p->idx[lvl] + 1u;
  }
}

int bt_put(pg_txn *t, bt_scratch *s, bt_desc *d, const uint8_t *key, size_t klen,
           const uint8_t *val, size_t vlen, bool noover, bool *added) {
  uint32_t ps = s->page_size;
  *added = false;
  if (klen > BT_MAX_KEY) return nx_err(NX_LIMIT, "key of %zu bytes (the limit is %u)", klen, BT_MAX_KEY);
  if (vlen > BT_MAX_VALUE) return nx_err(NX_LIMIT, "value of %zu bytes (the limit is %u)", vlen, BT_MAX_VALUE);
  if (!pg_is_write(t)) return nx_err(NX_READONLY, "btree: put in a read transaction");
  bt_path p;
  p.depth = 0;
  int rc = NX_OK;
  if (d->root == 0) {
    pg_page leaf;
    rc = pg_alloc(t, PG_T_LEAF, &leaf);
    if (rc) return rc;
    page_init(leaf.data, ps);
    d->root = leaf.pgno;
    d->root_txn = pg_txnid(t);
    d->depth = 1;
    d->count = 0;
    pg_release(t, &leaf);
  }
  rc = path_descend(t, d, key, klen, &p);
  if (rc) goto done;
  if (p.exact && noover) {
    rc = NX_EXISTS;
    goto done;
  }
  /* Build the leaf cell (writing the overflow chain first, before the path is touched). */
  uint8_t *c = s->cell;
  bool inl = bt_lc_size((uint32_t)klen, (uint32_t)vlen, false) <= bt_max_cell(ps);
  uint32_t csize = bt_lc_write(c, key, (uint32_t)klen, (uint32_t)vlen, !inl);
  if (inl) {
    if (vlen) memcpy(c + csize, val, vlen);
    csize += (uint32_t)vlen;
  } else {
    uint32_t first;
    uint64_t otxn;
    rc = bt_ovf_write(t, val, vlen, &first, &otxn);
    if (rc) goto done;
    nx_put32(c + csize, first);
    nx_put64(c + csize + 4, otxn);
    csize += 12;
  }
  rc = path_touch(t, d, &p);
  if (rc) goto done;
  int leaf = p.depth - 1;
  uint32_t i = p.idx[leaf];
  if (p.exact && inl) {
    /* a value replaced by one of the same size (an update that changes no length): overwrite
     * it where it is, no cell moves */
    uint8_t *old = p.pg[leaf].data + bt_slot(p.pg[leaf].data, i);
    bt_lc lc;
    if (bt_lc_decode(old, UINT32_MAX, &lc) && !lc.ovf && lc.klen == klen && lc.vlen == vlen && lc.size == csize) {
      if (vlen) memcpy(old + lc.voff, val, vlen);
      goto done;
    }
  }
  if (p.exact) {
    rc = cell_free_ovf(t, p.pg[leaf].data + bt_slot(p.pg[leaf].data, i));
    if (rc) goto done;
    page_remove(p.pg[leaf].data, ps, true, i);
  }
  rc = insert_up(t, s, d, &p, leaf, i, c, csize);
  if (rc) goto done;
  if (!p.exact) {
    d->count++;
    *added = true;
  }
done:
  path_release(t, &p);
  return rc;
}

/* ---- Delete ---- */
/* Merges the page at path level lvl with a sibling when both fit in one page. Returns NX_OK and
 * *merged; the path page's pin may be dropped (held[lvl] false). */
static int merge_level(pg_txn *t, bt_scratch *s, bt_path *p, int lvl, bool *merged) {
  uint32_t ps = s->page_size, cap = ps - BT_HDR_END;
  bool leaf = lvl + 1 == p->depth;
  *merged = false;
  uint8_t *parent = p->pg[lvl - 1].data;
  uint32_t pi = p->idx[lvl - 1], pn = bt_n(parent);
  if (pn < 2) return NX_OK;
  uint32_t li = pi > 0 ? pi - 1 : pi, ri = li + 1, si = li == pi ? ri : li;
  uint32_t spg;
  uint64_t stx;
  child_ref(parent, si, &spg, &stx);
  pg_page sib;
  int rc = bt_get_node(t, spg, stx, leaf, &sib);
  if (rc) return rc;
  rc = bt_page_validate(sib.data, ps, leaf, spg);
  if (rc == NX_OK) rc = pg_write(t, &sib);
  if (rc) {
    pg_release(t, &sib);
    return rc;
  }
  set_child_ref(parent, si, sib.pgno, pg_txnid(t));
  pg_page *L = li == pi ? &p->pg[lvl] : &sib, *R = li == pi ? &sib : &p->pg[lvl];
  const uint8_t *sep = NULL;
  size_t sepn = 0;
  bt_key(parent, ps, false, ri, &sep, &sepn);
  uint8_t r0[14 + BT_MAX_KEY];
  uint32_t r0n = 0;
  if (!leaf) {
    uint32_t cpg;
    uint64_t ctx;
    child_ref(R->data, 0, &cpg, &ctx);
    branch_cell(r0, sep, sepn, cpg, ctx, &r0n);
  }
  uint64_t need = (uint64_t)page_used(L->data, ps) + page_used(R->data, ps) + (leaf ? 0 : (uint64_t)r0n) -
                  (leaf ? 0 : (uint64_t)cell_size(R->data + bt_slot(R->data, 0), false));
  if (need > cap) {
    pg_release(t, &sib);
    return NX_OK;
  }
  memcpy(s->page, L->data, ps);
  uint32_t ln = bt_n(s->page), rn = bt_n(R->data);
  page_init(L->data, ps);
  for (uint32_t j = 0; j < ln; j++) {
    const uint8_t *c = s->page + bt_slot(s->page, j);
    page_append(L->data, c, cell_size(c, leaf));
  }
  for (uint32_t j = 0; j < rn; j++) {
    const uint8_t *c = R->data + bt_slot(R->data, j);
    if (!leaf && j == 0) page_append(L->data, r0, r0n);
    else page_append(L->data, c, cell_size(c, leaf));
  }
  page_remove(parent, ps, false, ri);
  uint32_t rpg = R->pgno;
  pg_release(t, &sib);
  if (li == pi) {
    /* the path page is L: keep it; sib (R) released above */
  } else {
    /* the path page was R: it goes away; L (sib) was released above */
    pg_release(t, &p->pg[lvl]);
    p->held[lvl] = false;
  }
  /* Note the parent's index of the path page now points at L either way. */
  p->idx[lvl - 1] = (uint16_t)li;
  *merged = true;
  return pg_free(t, rpg);
}

/* After deleting the tree's last levels' pins: collapse one-child roots, free an empty root. */
static int collapse_root(pg_txn *t, bt_desc *d) {
  while (d->depth > 0) {
    pg_page r;
    bool leaf = d->depth == 1;
    int rc = bt_get_node(t, d->root, d->root_txn, leaf, &r);
    if (rc) return rc;
    uint32_t n = bt_n(r.data), old = r.pgno;
    if (leaf) {
      pg_release(t, &r);
      if (n > 0) return NX_OK;
      d->root = 0;
      d->root_txn = 0;
      d->depth = 0;
      return pg_free(t, old);
    }
    if (n == 0) { /* every entry gone (count must be 0) */
      pg_release(t, &r);
      d->root = 0;
      d->root_txn = 0;
      d->depth = 0;
      return pg_free(t, old);
    }
    if (n != 1) {
      pg_release(t, &r);
      return NX_OK;
    }
    child_ref(r.data, 0, &d->root, &d->root_txn);
    d->depth--;
    pg_release(t, &r);
    rc = pg_free(t, old);
    if (rc) return rc;
  }
  return NX_OK;
}

int bt_del(pg_txn *t, bt_scratch *s, bt_desc *d, const uint8_t *key, size_t klen) {
  uint32_t ps = s->page_size;
  if (!pg_is_write(t)) return nx_err(NX_READONLY, "btree: delete in a read transaction");
  if (d->root == 0) return NX_NOTFOUND;
  bt_path p;
  p.depth = 0;
  int rc = path_descend(t, d, key, klen, &p);
  if (rc) goto done;
  if (!p.exact) {
    rc = NX_NOTFOUND;
    goto done;
  }
  rc = path_touch(t, d, &p);
  if (rc) goto done;
  int lvl = p.depth - 1;
  uint8_t *lp = p.pg[lvl].data;
  rc = cell_free_ovf(t, lp + bt_slot(lp, p.idx[lvl]));
  if (rc) goto done;
  page_remove(lp, ps, true, p.idx[lvl]);
  d->count--;
  for (; lvl > 0; lvl--) {
    if (p.held[lvl] && bt_n(p.pg[lvl].data) == 0) {
      /* An empty page (a lone child whose parent could not merge) leaves the tree. */
      uint32_t gone = p.pg[lvl].pgno;
      pg_release(t, &p.pg[lvl]);
      p.held[lvl] = false;
      page_remove(p.pg[lvl - 1].data, ps, false, p.idx[lvl - 1]);
      rc = pg_free(t, gone);
      if (rc) goto done;
      continue;
    }
    if (p.held[lvl] && page_used(p.pg[lvl].data, ps) >= (ps - BT_HDR_END) / 4) break;
    bool merged;
    rc = merge_level(t, s, &p, lvl, &merged);
    if (rc) goto done;
    if (!merged) break; /* too full a sibling, or a lone child: the parent lost nothing */
  }
  uint32_t rn = bt_n(p.pg[0].data);
  bool collapse = rn == 0 || (d->depth > 1 && rn == 1);
  path_release(t, &p);
  return collapse ? collapse_root(t, d) : NX_OK;
done:
  path_release(t, &p);
  return rc;
}

/* ---- Drop and visit ---- */
static int walk(pg_txn *t, uint32_t pgno, uint64_t txn, uint32_t lvl, uint32_t depth, bool free_pages,
                int (*mark)(void *, uint32_t), void *mctx) {
  uint32_t ps = pager_page_size(pg_pager(t));
  bool leaf = lvl + 1 == depth;
  if (lvl >= BT_MAX_DEPTH) return NX_CORRUPT_BKPT("btree page %u: too deep", pgno);
  pg_page p;
  int rc = bt_get_node(t, pgno, txn, leaf, &p);
  if (rc) return rc;
  rc = bt_page_validate(p.data, ps, leaf, pgno);
  uint32_t n = bt_n(p.data);
  for (uint32_t i = 0; rc == NX_OK && i < n; i++) {
    const uint8_t *c = p.data + bt_slot(p.data, i);
    if (leaf) {
      bt_lc lc;
      if (bt_lc_decode(c, UINT32_MAX, &lc) && lc.ovf) /* validated above */
        rc = bt_ovf_walk(t, nx_get32(c + lc.voff), nx_get64(c + lc.voff + 4), lc.vlen, free_pages, mark, mctx);
    } else {
      rc = walk(t, nx_get32(c + 2), nx_get64(c + 6), lvl + 1, depth, free_pages, mark, mctx);
    }
  }
  pg_release(t, &p);
  if (rc) return rc;
  if (mark && (rc = mark(mctx, pgno)) != 0) return rc;
  if (free_pages) return pg_free(t, pgno);
  return NX_OK;
}

int bt_drop(pg_txn *t, bt_desc *d) {
  if (d->root != 0) {
    int rc = walk(t, d->root, d->root_txn, 0, d->depth, true, NULL, NULL);
    if (rc) return rc;
  }
  memset(d, 0, sizeof *d);
  return NX_OK;
}

int bt_visit(pg_txn *t, const bt_desc *d, int (*mark)(void *mctx, uint32_t pgno), void *mctx) {
  if (d->root == 0) return NX_OK;
  return walk(t, d->root, d->root_txn, 0, d->depth, false, mark, mctx);
}
