/*
 * wasp_index.c: the two pieces of state that a later multi-process version moves into shared
 * memory (as SQLite's -shm file holds its wal-index): the log index (page number -> offset of
 * the page's frame in the current log generation) and the reader table (the snapshot txn id of
 * every live reader). Both are plain data behind these few functions; the caller holds the lock
 * (idx_lock for the index, mu for the reader table).
 *
 * Invariant: a page number appears at most once per log generation (pager.c note 2), so the
 * index maps a page number to exactly one frame and needs no versions.
 */
#include <string.h>

#include "pager_int.h"

static inline size_t slot_of(uint32_t pgno, size_t cap) { return (size_t)pg_hash(pgno) & (cap - 1); }

static int li_grow(log_index *li) {
  size_t nc = li->cap ? li->cap * 2 : 1024;
  uint32_t *nk = nx_calloc(nc, sizeof *nk);
  uint64_t *no = nx_malloc(nc * sizeof *no);
  if (!nk || !no) {
    nx_free(nk);
    nx_free(no);
    return nx_err(NX_NOMEM, "log index: out of memory");
  }
  for (size_t i = 0; i < li->cap; i++) {
    if (!li->keys[i]) continue;
    size_t s = slot_of(li->keys[i] - 1, nc);
    while (nk[s]) s = (s + 1) & (nc - 1);
    nk[s] = li->keys[i];
    no[s] = li->offs[i];
  }
  nx_free(li->keys);
  nx_free(li->offs);
  li->keys = nk;
  li->offs = no;
  li->cap = nc;
  return NX_OK;
}

int li_reserve(log_index *li, size_t more) {
  while ((li->n + more + 1) * 2 > li->cap) {
    int rc = li_grow(li);
    if (rc) return rc;
  }
  return NX_OK;
}

int li_put(log_index *li, uint32_t pgno, uint64_t off) {
  if ((li->n + 1) * 2 > li->cap) {
    int rc = li_grow(li);
    if (rc) return rc;
  }
  size_t s = slot_of(pgno, li->cap);
  while (li->keys[s] && li->keys[s] != pgno + 1) s = (s + 1) & (li->cap - 1);
  if (!li->keys[s]) li->n++;
  li->keys[s] = pgno + 1;
  li->offs[s] = off;
  return NX_OK;
}

bool li_get(const log_index *li, uint32_t pgno, uint64_t *off) {
  if (!li->n) return false;
  size_t s = slot_of(pgno, li->cap);
  while (li->keys[s]) {
    if (li->keys[s] == pgno + 1) {
      *off = li->offs[s];
      return true;
    }
    s = (s + 1) & (li->cap - 1);
  }
  return false;
}

void li_clear(log_index *li) {
  if (li->cap > 65536) {
    li_free(li);
    return;
  }
  if (li->keys) memset(li->keys, 0, li->cap * sizeof *li->keys);
  li->n = 0;
}

void li_free(log_index *li) {
  nx_free(li->keys);
  nx_free(li->offs);
  memset(li, 0, sizeof *li);
}

/* ---- reader table ---- */
int rt_add(reader_table *rt, uint64_t snap, int *slot) {
  for (size_t i = 0; i < rt->cap; i++) {
    if (rt->snap[i] == UINT64_MAX) {
      rt->snap[i] = snap;
      rt->live++;
      *slot = (int)i;
      return NX_OK;
    }
  }
  size_t nc = rt->cap ? rt->cap * 2 : 16;
  uint64_t *ns = nx_realloc(rt->snap, nc * sizeof *ns);
  if (!ns) return nx_err(NX_NOMEM, "reader table: out of memory");
  for (size_t i = rt->cap; i < nc; i++) ns[i] = UINT64_MAX;
  rt->snap = ns;
  *slot = (int)rt->cap;
  rt->snap[rt->cap] = snap;
  rt->cap = nc;
  rt->live++;
  return NX_OK;
}

void rt_del(reader_table *rt, int slot) {
  if (slot < 0 || (size_t)slot >= rt->cap || rt->snap[slot] == UINT64_MAX) return;
  rt->snap[slot] = UINT64_MAX;
  rt->live--;
}

uint64_t rt_oldest(const reader_table *rt, uint64_t dflt) {
  uint64_t m = dflt;
  if (!rt->live) return m;
  for (size_t i = 0; i < rt->cap; i++)
    if (rt->snap[i] < m) m = rt->snap[i];
  return m;
}

void rt_free(reader_table *rt) {
  nx_free(rt->snap);
  memset(rt, 0, sizeof *rt);
}
