/*
 * btree.h: the copy-on-write B+tree over pager pages. Internal to src/storage/ (storage.c is its
 * only user; the layers above call st_* in storage.h).
 *
 * A tree is described by a bt_desc (root page, the txn id that wrote the root, depth, entry
 * count). The descriptor lives outside the tree: in the catalog tree for named trees, and in the
 * pager's PG_ROOTS bytes for the catalog itself. Every write goes through pg_write, which may
 * move a page to a new number; the path from the root is re-linked on each write, and the caller
 * stores the changed descriptor.
 *
 * Page layout (after the pager's 24-byte header):
 *
 *   OFFSET SIZE MEANING
 *       24    2 n: number of entries
 *       26    2 reserved, zero
 *       28    4 upper: offset of the lowest cell byte (cells fill from the page end downward)
 *       32    4 garbage: bytes of dead cells between upper and the page end
 *       36    4 reserved, zero
 *       40  2*n slots: offsets of the cells, in key order
 *
 *   +--------+--------+------------------+-------------+-------+-------+-------+
 *   | pg hdr | bt hdr | slot0 slot1 ...  |  free space | cellk | ...   | cell0 |
 *   +--------+--------+------------------+-------------+-------+-------+-------+
 *   0        24       40                               ^upper                  page_size
 *
 * Leaf cell:  varint klen | key | varint (vlen << 1 | BT_F_OVF) (vlen = the whole value's length) |
 *             inline value (vlen bytes), or with BT_F_OVF: 4 first overflow pgno, 8 its txn id.
 *             Varints are LEB128: klen takes 1-2 bytes, the value word 1-4 (storage format 2;
 *             format 1 had a fixed 7-byte header: u16 klen, u8 flags, u32 vlen).
 * Branch cell: 0 2 klen | 2 4 child pgno | 6 8 child txn id | 14 klen key
 *             Entry 0's key is ignored by searches (it stands for minus infinity); child i holds
 *             the keys k with key(i) <= k < key(i+1).
 * Overflow page: 24 4 next pgno (0 = last) | 28 4 bytes used in this page | 32 data.
 *             Every page of a chain is written by the txn id recorded in the leaf cell.
 *
 * Invariants (checked by bt_check):
 *  1. Keys strictly increase within a page and across leaves; every key of child i of a branch
 *     lies in [key(i), key(i+1)) of that branch and within the bounds inherited from above.
 *  2. All leaves are at depth desc.depth; every non-root leaf holds at least one entry; every
 *     branch holds at least one child.
 *  3. Each cell costs at most (page_size - 40) / 3 bytes with its slot, so a split of a full page
 *     plus one cell always yields two pages that fit.
 *  4. The sum of leaf entries equals desc.count.
 */
#ifndef NX_BTREE_H
#define NX_BTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base.h"
#include "pager.h"

#define BT_HDR_END 40u
#define BT_MAX_DEPTH 24
#define BT_DESC_SIZE 24u
#define BT_MAX_KEY 1024u
#define BT_MAX_VALUE (64u << 20)
#define BT_F_OVF 0x1u

/* A tree's descriptor: 24 bytes on disk (root u32, depth u32, root txn u64, count u64). */
typedef struct bt_desc {
  uint32_t root;     /* root page number; 0 when the tree is empty */
  uint32_t depth;    /* levels: 0 empty, 1 the root is a leaf */
  uint64_t root_txn; /* txn id that wrote the root page (checked by pg_get) */
  uint64_t count;    /* number of entries */
} bt_desc;

void bt_desc_load(bt_desc *d, const uint8_t *p);
void bt_desc_store(const bt_desc *d, uint8_t *p);

/* Scratch memory for writes (one writer at a time: one per environment). */
typedef struct bt_scratch {
  uint32_t page_size;
  uint8_t *page;  /* page_size bytes: a copy of a page being rebuilt */
  uint8_t *cell;  /* page_size bytes: a leaf cell being built */
  struct bt_ent { const uint8_t *p; uint32_t n; } *ents; /* cells of a split or merge */
  uint32_t ents_cap;
} bt_scratch;
int bt_scratch_init(bt_scratch *s, uint32_t page_size);
void bt_scratch_free(bt_scratch *s);

/* A value as read: inline (borrowed from a pinned page) or assembled into a buffer. */
typedef struct bt_read {
  pg_page leaf;  /* pinned leaf holding the value, when has_leaf */
  bool has_leaf;
  nx_buf buf;    /* assembled overflow values */
} bt_read;
void bt_read_init(bt_read *r);
void bt_read_release(pg_txn *t, bt_read *r); /* drops the pin, keeps the buffer */
void bt_read_free(pg_txn *t, bt_read *r);

/* Branch pages a read txn keeps pinned (direct-mapped by page number), so a point read costs
 * one pager lookup (the leaf) instead of one per level. Only for read txns: their snapshot never
 * changes, so a page number names one page image for the txn's life. */
#define BT_PC_SLOTS 512 /* in sets of BT_PC_WAYS; a 200k-document collection has ~140 branches */
#define BT_PC_WAYS 4
typedef struct bt_pincache {
  uint32_t pgno[BT_PC_SLOTS]; /* page held in each slot; 0 = empty */
  pg_page pg[BT_PC_SLOTS];    /* the pinned pages */
  uint64_t used[BT_PC_SLOTS / 64]; /* bit i: slot i holds a page (release visits only those) */
  uint32_t stamp[BT_PC_SLOTS];     /* per slot: the clock at its last use (a miss replaces the
                                    * set's least recently used way) */
  uint32_t clock;
  /* Per slot, when its branch's children are leaves: a pager hint for each child (indexed by
   * child position), so that a repeated point read skips the cache lookup (pager_cache.c note
   * 7). Hints name their page and are validated by the pager, so they outlive the branch that
   * made them: a slot's array is reused, not cleared, when the slot changes. */
  pg_hint *hint[BT_PC_SLOTS];
  uint32_t nhint[BT_PC_SLOTS];
  /* Per slot: the first 8 bytes of each separator of its branch as a big-endian word (zero
   * padded), so that a descent binary-searches one contiguous array instead of decoding cells
   * all over the page; npfx 0: not built (the cell search is used). */
  uint64_t *pfx[BT_PC_SLOTS];
  uint32_t npfx[BT_PC_SLOTS], cpfx[BT_PC_SLOTS];
  uint32_t finger[BT_PC_SLOTS]; /* per slot: the child its last search chose (see finger_find) */
} bt_pincache;
void bt_pincache_release(pg_txn *t, bt_pincache *pc); /* drops every pin */
void bt_pincache_free(bt_pincache *pc); /* frees the hints and separator words (pins already dropped) */

/* The 8 bytes at a and at b, both read as big-endian words: 0 when equal, else -1 or 1 in
 * memcmp order. */
static inline int bt_word_cmp(const uint8_t *a, const uint8_t *b) {
  uint64_t x = nx_get64be(a), y = nx_get64be(b);
  return x == y ? 0 : x < y ? -1 : 1;
}

/* Key comparison: memcmp order, a prefix sorts first. */
static inline int bt_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn) {
  size_t m = an < bn ? an : bn;
  int c = 0;
  if (m >= 8) { /* most keys differ in their first 8 bytes: compare them as one big-endian word */
    c = bt_word_cmp(a, b);
    if (c) return c;
    if (m <= 16) {
      /* the rest fits one more word: compare the last 8 common bytes, which overlap the equal
       * first word, so their big-endian order is the order of the first differing byte (no call
       * into memcmp for the short keys that _id and index keys mostly are) */
      c = bt_word_cmp(a + m - 8, b + m - 8);
      if (c) return c;
      return an < bn ? -1 : (an > bn ? 1 : 0);
    }
    c = memcmp(a + 8, b + 8, m - 8);
  } else if (m) {
    c = memcmp(a, b, m);
  }
  if (c) return c;
  return an < bn ? -1 : (an > bn ? 1 : 0);
}

/* ---- Point operations ---- */
/* Finds key; on NX_OK *val points into r (valid until bt_read_release/free or the next use of r). */
int bt_get(pg_txn *t, const bt_desc *d, const uint8_t *key, size_t klen, bt_read *r,
           const uint8_t **val, size_t *vlen);
/* The same through a read txn's pin cache (pc must belong to t; t must be a read txn). */
int bt_get_cached(pg_txn *t, bt_pincache *pc, const bt_desc *d, const uint8_t *key, size_t klen,
                  bt_read *r, const uint8_t **val, size_t *vlen);
/* A point read in two steps, for a caller that knows its next keys (an index scan's fetches):
 * bt_locate_cached descends to the leaf that holds key through the pin cache and starts fetching
 * the leaf's first lines; bt_get_located, later in the same txn, reads from that leaf without a
 * second descent. Several locations may be outstanding. Without a pin cache (write txns) the
 * location is empty and bt_get_located does the whole read. */
typedef struct bt_loc {
  uint32_t leaf;        /* 0: unknown */
  uint64_t txn;         /* the leaf's txn id (from its parent) */
  uint32_t root;        /* the tree it was found in */
  uint64_t root_txn;
  uint32_t slot, ci;    /* where its hint lives in the pin cache */
  bool has_hint;
} bt_loc;
int bt_locate_cached(pg_txn *t, bt_pincache *pc, const bt_desc *d, const uint8_t *key, size_t klen, bt_loc *loc);
int bt_get_located(pg_txn *t, bt_pincache *pc, const bt_desc *d, const bt_loc *loc, const uint8_t *key, size_t klen,
                   bt_read *r, const uint8_t **val, size_t *vlen);
/* The second step of a read-ahead, a result or two after bt_locate_cached: reads the located
 * leaf's slot array (held through the txn's second hazard slot) and requests its cells. */
void bt_prefetch_located(pg_txn *t, bt_pincache *pc, const bt_loc *loc);
/* Inserts or replaces. *added is true when the key was new. noover: NX_EXISTS if present. */
int bt_put(pg_txn *t, bt_scratch *s, bt_desc *d, const uint8_t *key, size_t klen,
           const uint8_t *val, size_t vlen, bool noover, bool *added);
/* Deletes key (NX_NOTFOUND when absent), merging underfull pages. */
int bt_del(pg_txn *t, bt_scratch *s, bt_desc *d, const uint8_t *key, size_t klen);
/* Builds a densely packed copy of tree old into new pages (*out); old is left untouched (drop it
 * in the same txn). For compaction: new pages take the lowest free page numbers. */
int bt_rebuild(pg_txn *t, bt_scratch *s, const bt_desc *old, bt_desc *out);
/* Copies every page of the tree numbered >= limit (and the path above it, and overflow chains
 * reaching past it) to new page numbers, which the pager takes from its lowest free pages. */
int bt_relocate(pg_txn *t, bt_desc *d, uint32_t limit);
/* Frees every page of the tree (branches, leaves, overflow chains); *d becomes empty. */
int bt_drop(pg_txn *t, bt_desc *d);

/* ---- Cursors ---- */
typedef struct bt_cursor {
  pg_txn *t;
  uint32_t ps;                   /* page size */
  bt_desc d;                     /* the tree as of the last positioning */
  int depth;                     /* levels pinned in pg[] */
  pg_page pg[BT_MAX_DEPTH];      /* pinned path, pg[0] the root */
  uint16_t idx[BT_MAX_DEPTH];    /* entry index at each level */
  bool valid;                    /* positioned on an entry */
  nx_buf buf;                    /* assembled overflow value */
} bt_cursor;
void bt_cursor_init(bt_cursor *c, pg_txn *t, const bt_desc *d);
void bt_cursor_fini(bt_cursor *c);
int bt_cursor_first(bt_cursor *c);
int bt_cursor_last(bt_cursor *c);
int bt_cursor_next(bt_cursor *c);
int bt_cursor_prev(bt_cursor *c);
/* next, with the common case (another entry in the same leaf) inline. */
static inline int bt_cursor_next_fast(bt_cursor *c) {
  if (c->valid) {
    int lvl = c->depth - 1;
    if (c->idx[lvl] + 1u < ((uint32_t)c->pg[lvl].data[24] | ((uint32_t)c->pg[lvl].data[25] << 8))) {
      c->idx[lvl]++;
      return 0;
    }
  }
  return bt_cursor_next(c);
}
/* how: 0 GE, 1 EQ, 2 LE (the st_seek values). */
int bt_cursor_seek(bt_cursor *c, const uint8_t *key, size_t klen, int how);
int bt_cursor_get(bt_cursor *c, const uint8_t **key, size_t *klen, const uint8_t **val,
                  size_t *vlen);

/* ---- Integrity and page enumeration ---- */
typedef struct bt_check_stats {
  uint64_t branch_pages, leaf_pages, overflow_pages, entries;
  uint64_t bytes_used;  /* cell and slot bytes in branch and leaf pages */
} bt_check_stats;
/* Walks the tree checking invariants 1-4; calls mark(mctx, pgno) for every page (mark returns
 * non-zero to stop, e.g. on a page seen twice). NX_CORRUPT names the page and the problem. */
int bt_check(pg_txn *t, const bt_desc *d, int (*mark)(void *mctx, uint32_t pgno), void *mctx,
             bt_check_stats *st);
/* Calls mark for every page of the tree (no checks beyond what reading needs). */
int bt_visit(pg_txn *t, const bt_desc *d, int (*mark)(void *mctx, uint32_t pgno), void *mctx);


/* ---- Page accessors (shared by btree*.c). Bytes are hostile: callers bound-check cells. ---- */
static inline uint32_t bt_n(const uint8_t *pg) { return nx_get16(pg + 24); }
static inline uint32_t bt_upper(const uint8_t *pg) { return nx_get32(pg + 28); }
static inline uint32_t bt_garbage(const uint8_t *pg) { return nx_get32(pg + 32); }
static inline uint32_t bt_slot(const uint8_t *pg, uint32_t i) { return nx_get16(pg + BT_HDR_END + 2 * i); }
/* Header sanity for a page of size ps: slots below upper, garbage within the cell area. */
static inline bool bt_hdr_ok(const uint8_t *pg, uint32_t ps) {
  uint32_t n = bt_n(pg), up = bt_upper(pg);
  return BT_HDR_END + 2 * n <= up && up <= ps && bt_garbage(pg) <= ps - up;
}
/* A decoded leaf cell: offsets are from the cell's first byte. */
typedef struct bt_lc {
  uint32_t koff, klen; /* the key */
  uint32_t voff;       /* the inline value, or the 12-byte overflow reference */
  uint32_t vlen;       /* the whole value's length */
  bool ovf;            /* the value lives in an overflow chain */
  uint32_t size;       /* bytes of the cell */
} bt_lc;

/* Bytes of the LEB128 varint of v (v < 2^28). */
static inline uint32_t bt_vlen(uint32_t v) { return v < 0x80u ? 1 : v < 0x4000u ? 2 : v < 0x200000u ? 3 : 4; }

/* Decodes the leaf cell at c, of which avail bytes lie in the page; false when it does not fit
 * or is malformed (corruption). */
static inline bool bt_lc_decode(const uint8_t *c, uint32_t avail, bt_lc *o) {
  if (avail < 2) return false;
  uint32_t at = 1, kl = c[0];
  if (kl & 0x80u) {
    if (c[1] & 0x80u) return false;
    kl = (kl & 0x7fu) | ((uint32_t)c[1] << 7);
    at = 2;
  }
  if (kl > avail - at) return false;
  o->koff = at;
  o->klen = kl;
  at += kl;
  uint32_t vw = 0;
  for (uint32_t shift = 0;; shift += 7) {
    if (at >= avail || shift > 21) return false;
    uint8_t b = c[at++];
    vw |= (uint32_t)(b & 0x7fu) << shift;
    if (!(b & 0x80u)) break;
  }
  o->ovf = (vw & BT_F_OVF) != 0;
  o->vlen = vw >> 1;
  o->voff = at;
  uint32_t body = o->ovf ? 12u : o->vlen;
  if (body > avail - at) return false;
  o->size = at + body;
  return true;
}

/* Bytes of a leaf cell with a klen-byte key and a vlen-byte value, inline or in overflow. */
static inline uint32_t bt_lc_size(uint32_t klen, uint32_t vlen, bool ovf) {
  return bt_vlen(klen) + klen + bt_vlen(vlen << 1 | (ovf ? 1u : 0u)) + (ovf ? 12u : vlen);
}

/* Writes a leaf cell's header and key at c; returns the offset where the value (or the overflow
 * reference) goes. */
static inline uint32_t bt_lc_write(uint8_t *c, const uint8_t *key, uint32_t klen, uint32_t vlen, bool ovf) {
  uint32_t at = 0;
  for (uint32_t v = klen;; v >>= 7) {
    c[at++] = (uint8_t)((v & 0x7fu) | (v >= 0x80u ? 0x80u : 0u));
    if (v < 0x80u) break;
  }
  if (klen) memcpy(c + at, key, klen);
  at += klen;
  for (uint32_t v = vlen << 1 | (ovf ? 1u : 0u);; v >>= 7) {
    c[at++] = (uint8_t)((v & 0x7fu) | (v >= 0x80u ? 0x80u : 0u));
    if (v < 0x80u) break;
  }
  return at;
}

/* Key of entry i of a leaf or branch page, bounds-checked: false when the cell is out of the
 * page (corruption). */
static inline bool bt_key(const uint8_t *pg, uint32_t ps, bool leaf, uint32_t i, const uint8_t **k,
                          size_t *kn) {
  uint32_t off = bt_slot(pg, i);
  if (off < BT_HDR_END || off + 2 > ps) return false;
  const uint8_t *c = pg + off;
  uint32_t h, kl;
  if (leaf) {
    kl = c[0];
    h = 1;
    if (kl & 0x80u) {
      kl = (kl & 0x7fu) | ((uint32_t)(c[1] & 0x7fu) << 7);
      h = 2;
    }
  } else {
    h = 14;
    if (off + h > ps) return false;
    kl = nx_get16(c);
  }
  if (off + h + kl > ps) return false;
  *k = c + h;
  *kn = kl;
  return true;
}

/* ---- Helpers shared by btree*.c ---- */
/* Fetches a page and checks its type (leaf or branch). */
int bt_get_node(pg_txn *t, uint32_t pgno, uint64_t txn, bool leaf, pg_page *out);
/* Child index of a branch covering key (last entry with key <= key; entry 0 is minus infinity). */
int bt_branch_find(const uint8_t *pg, uint32_t ps, uint32_t pgno, const uint8_t *key, size_t klen,
                   uint32_t *child);
/* First entry of a leaf with key >= key; *exact when equal. */
int bt_leaf_find(const uint8_t *pg, uint32_t ps, uint32_t pgno, const uint8_t *key, size_t klen,
                 uint32_t *idx, bool *exact);
/* Writes val into a new overflow chain; *first and *txn receive its head. */
int bt_ovf_write(pg_txn *t, const uint8_t *val, size_t vlen, uint32_t *first, uint64_t *txn);
/* Walks an overflow chain: mark(mctx, pgno) for each page (if mark), pg_free each (if free_pages). */
int bt_ovf_walk(pg_txn *t, uint32_t pgno, uint64_t txn, uint32_t vlen, bool free_pages,
                int (*mark)(void *, uint32_t), void *mctx);
/* Reads a value's overflow chain into b. */
int bt_ovf_read(pg_txn *t, uint32_t pgno, uint64_t txn, uint32_t vlen, nx_buf *b);
/* Full structural validation of one page (header, slots, cell bounds, byte accounting). */
int bt_page_validate(const uint8_t *pg, uint32_t ps, bool leaf, uint32_t pgno);

/* Largest leaf cell (with its slot) for this page size: invariant 3. */
uint32_t bt_max_cell(uint32_t page_size);

#endif
