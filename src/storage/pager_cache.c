/*
 * pager_cache.c: the page cache of committed, verified pages.
 *
 * Design notes
 *  1. NSTRIPES stripes, chosen by a hash of the page number; each has its own mutex, hash table
 *     and LRU list. A hit costs one stripe lock, a hash probe and a pin; the checksum was verified
 *     once, when the page entered the cache.
 *  2. An entry holds a committed page image that cannot change while any snapshot can reach the
 *     page (copy-on-write + the free-page rule). A commit replaces the entries of the page numbers
 *     it wrote (their old images belonged to freed pages no snapshot reaches).
 *  3. The budget (cap_pages) covers clean entries plus the writer's resident dirty pages.
 *     Inserting past it evicts one unpinned entry from the stripe's LRU tail, and whatever the
 *     budget still lacks from the other stripes in turn (a rotating hand over the stripes), so
 *     that eviction is global: a stripe that happens to receive the inserts is not emptied
 *     while others keep stale pages. Pinned entries are never evicted; an entry replaced while
 *     pinned is detached and freed at its last unpin.
 *  4. A hit does not move the entry (that would touch two neighbours, i.e. cache misses, on
 *     every read of a large cache): it sets the entry's ref bit, and eviction gives a referenced
 *     tail entry a second chance at the front (CLOCK on a list).
 *  5. Scan resistance: pages that a sequential cursor reads (pg_txn.cold) enter at the tail, so
 *     a scan of more data than the cache evicts its own pages first, not the working set; a
 *     scan page read again before that (ref bit) stays like any other.
 *  6. Lock-free point reads (pc_peek). A pin and the stripe lock write shared cache lines, which
 *     bounce between cores when two threads read (two point-reading threads did 1.0-1.1x one).
 *     A point read holds one leaf at a time, so a read txn that owns a hazard slot looks the
 *     leaf up without the lock and names the entry in its slot instead of pinning it:
 *       - tables change only under the stripe lock, but every store a lock-free reader may see
 *         (bucket heads, hnext, pgno, data, ref, gone, the table pointer and size) is atomic;
 *         an outgrown bucket array stays allocated until close, and entry structs are never
 *         given back to malloc while the pager is open (retired, then reused), so a walk of a
 *         stale chain reads entries, at worst the wrong ones: it is bounded and compares page
 *         numbers, and a miss falls back to the locked path;
 *       - an entry leaving the table is marked gone (seq_cst) and retired; its buffer and struct
 *         are reused only when no hazard slot names it (checked in batches of RETIRE_BATCH);
 *       - the reader stores the hazard (seq_cst), then re-reads gone and pgno: either the
 *         retirer's scan sees the hazard, or the reader sees gone and takes the locked path.
 *         An entry reused for a new page is set up before gone is cleared (release), so a
 *         reader that sees gone == 0 sees its page number and data.
 *     Only the data pointer and the ref bit are read or written outside the lock; pins, the
 *     LRU links and the counters stay under it.
 *  7. Hints (pg_hint) skip even the lock-free lookup. A read's bucket and entry are two more
 *     memory misses than LMDB pays (it computes a page's address from its number), so the
 *     B+tree keeps, beside each branch a read txn has pinned, the entry and image where each
 *     child leaf was found, with cache_gen as it was *before* the lookup that validated them.
 *     cache_gen counts removals from the tables (remove_ent bumps it after marking the entry
 *     gone and before retiring it). A hint is used only if, after storing its entry in the
 *     txn's hazard slot (seq_cst), cache_gen still equals the hint's: then no entry has left
 *     any table since the entry was seen in its table, so it is still there with the same
 *     image, and the retirer's later hazard scan will see the slot. Any removal (an eviction,
 *     a commit replacing a page) invalidates every hint at once and reads fall back to
 *     pc_peek, which also sets the ref bits a hinted read skips. A hint carries its page
 *     number, and the page's txn id is still checked against the branch's reference.
 */
#include <string.h>

#include "pager_int.h"

static inline pc_stripe *stripe_of(pager *p, uint32_t pgno) {
  return &p->stripes[(pg_hash(pgno) >> 16) & (NSTRIPES - 1)];
}

#define RETIRE_BATCH 16u

int pc_init(pager *p) {
  pthread_mutex_init(&p->retire_mu, NULL);
  for (uint32_t i = 0; i < NSTRIPES; i++) {
    pc_stripe *s = &p->stripes[i];
    pthread_mutex_init(&s->mu, NULL);
    s->nb = 64;
    s->ht = nx_calloc(s->nb, sizeof *s->ht);
    s->lru.next = s->lru.prev = &s->lru;
    if (!s->ht) return NX_NOMEM;
  }
  return NX_OK;
}

void pc_free(pager *p) {
  for (uint32_t i = 0; i < NSTRIPES; i++) {
    pc_stripe *s = &p->stripes[i];
    if (s->ht) {
      pg_ent *e = s->lru.next;
      while (e && e != &s->lru) {
        pg_ent *n = e->next;
        nx_free(e); /* its data is in a chunk, freed with the chunks */
        e = n;
      }
      nx_free(s->ht);
      s->ht = NULL;
    }
    for (uint32_t k = 0; k < s->nold; k++) nx_free(s->old[k]);
    s->nold = 0;
    pthread_mutex_destroy(&s->mu);
  }
  for (pg_ent *e = p->retired, *n; e; e = n) {
    n = e->next;
    nx_free(e);
  }
  for (pg_ent *e = p->ent_free, *n; e; e = n) {
    n = e->next;
    nx_free(e);
  }
  p->retired = p->ent_free = NULL;
  p->nretired = 0;
  pthread_mutex_destroy(&p->retire_mu);
}

/* Hands the buffers and structs of retired entries that no hazard slot names back for reuse.
 * retire_mu held. */
static void reclaim_locked(pager *p) {
  pg_ent *held[2 * HZ_SLOTS];
  uint32_t nh = 0;
  for (uint32_t i = 0; i < 2 * HZ_SLOTS; i++) {
    pg_ent *h = atomic_load(&p->hz[i].e);
    if (h) held[nh++] = h;
  }
  pg_ent **pp = &p->retired;
  while (*pp) {
    pg_ent *e = *pp;
    bool busy = false;
    for (uint32_t j = 0; j < nh && !busy; j++) busy = held[j] == e;
    if (busy) {
      pp = &e->next;
      continue;
    }
    *pp = e->next;
    p->nretired--;
    pg_buf_free(p, e->data);
    __atomic_store_n(&e->data, NULL, __ATOMIC_RELAXED);
    e->next = p->ent_free;
    p->ent_free = e;
  }
}

/* Takes an entry out of service: its buffer and struct are reused once no hazard names it. */
static void retire(pager *p, pg_ent *e) {
  pthread_mutex_lock(&p->retire_mu);
  e->next = p->retired;
  p->retired = e;
  if (++p->nretired >= RETIRE_BATCH) reclaim_locked(p);
  pthread_mutex_unlock(&p->retire_mu);
}

/* A zeroed entry (a reused struct keeps gone = 1 until pc_insert publishes it). */
static pg_ent *ent_alloc(pager *p) {
  pthread_mutex_lock(&p->retire_mu);
  pg_ent *e = p->ent_free;
  if (e) p->ent_free = e->next;
  pthread_mutex_unlock(&p->retire_mu);
  if (!e) {
    e = nx_calloc(1, sizeof *e);
    if (e) e->gone = 1;
    return e;
  }
  /* fields that lock-free readers may read are stored atomically; the rest plainly */
  __atomic_store_n(&e->pgno, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&e->data, NULL, __ATOMIC_RELAXED);
  __atomic_store_n(&e->hnext, NULL, __ATOMIC_RELAXED);
  __atomic_store_n(&e->ref, 0, __ATOMIC_RELAXED);
  e->kind = 0;
  e->spilled = e->detached = e->dead = 0;
  e->pins = 0;
  e->log_off = 0;
  e->prev = e->next = NULL;
  return e;
}

/* Gives back an entry that was never published. */
static void ent_unused(pager *p, pg_ent *e) {
  pthread_mutex_lock(&p->retire_mu);
  e->next = p->ent_free;
  p->ent_free = e;
  pthread_mutex_unlock(&p->retire_mu);
}

static void lru_unlink(pg_ent *e) {
  e->prev->next = e->next;
  e->next->prev = e->prev;
}

static void lru_front(pc_stripe *s, pg_ent *e) {
  e->next = s->lru.next;
  e->prev = &s->lru;
  s->lru.next->prev = e;
  s->lru.next = e;
}

static pg_ent *find(pc_stripe *s, uint32_t pgno) {
  for (pg_ent *e = s->ht[(pg_hash(pgno)) & (s->nb - 1)]; e; e = e->hnext)
    if (e->pgno == pgno) return e;
  return NULL;
}

/* Unlinks e from its stripe's table and list (stripe locked). Retires it unless pinned. */
static void remove_ent(pager *p, pc_stripe *s, pg_ent *e) {
  pg_ent **pp = &s->ht[pg_hash(e->pgno) & (s->nb - 1)];
  while (*pp != e) pp = &(*pp)->hnext;
  __atomic_store_n(pp, e->hnext, __ATOMIC_RELEASE);
  lru_unlink(e);
  s->n--;
  atomic_fetch_sub(&p->ncached, 1);
  __atomic_store_n(&e->gone, 1, __ATOMIC_SEQ_CST);
  atomic_fetch_add(&p->cache_gen, 1); /* after gone, before the retire's hazard scan (note 7) */
  if (e->pins > 0) {
    e->detached = 1;
    return;
  }
  retire(p, e);
}

pg_ent *pc_get(pager *p, uint32_t pgno) {
  pc_stripe *s = stripe_of(p, pgno);
  pthread_mutex_lock(&s->mu);
  pg_ent *e = find(s, pgno);
  if (e) {
    e->pins++;
    if (!__atomic_load_n(&e->ref, __ATOMIC_RELAXED)) __atomic_store_n(&e->ref, 1, __ATOMIC_RELAXED);
  }
  pthread_mutex_unlock(&s->mu);
  return e;
}

pg_ent *pc_peek(pager *p, uint32_t pgno, pg_hazard *hz) {
  pc_stripe *s = stripe_of(p, pgno);
  uint32_t nb = __atomic_load_n(&s->nb, __ATOMIC_ACQUIRE);
  pg_ent **ht = __atomic_load_n(&s->ht, __ATOMIC_ACQUIRE);
  pg_ent *e = __atomic_load_n(&ht[pg_hash(pgno) & (nb - 1)], __ATOMIC_ACQUIRE);
  for (int steps = 0; e && __atomic_load_n(&e->pgno, __ATOMIC_RELAXED) != pgno; steps++)
    e = steps < 16 ? __atomic_load_n(&e->hnext, __ATOMIC_ACQUIRE) : NULL;
  if (!e) return NULL;
  atomic_store(&hz->e, e);
  if (__atomic_load_n(&e->gone, __ATOMIC_SEQ_CST) || __atomic_load_n(&e->pgno, __ATOMIC_RELAXED) != pgno) {
    atomic_store_explicit(&hz->e, NULL, memory_order_release);
    return NULL;
  }
  if (!__atomic_load_n(&e->ref, __ATOMIC_RELAXED)) __atomic_store_n(&e->ref, 1, __ATOMIC_RELAXED);
  return e;
}

void pg_rehash(pg_ent **from, uint32_t nfrom, pg_ent **to, uint32_t nto) {
  for (uint32_t i = 0; i < nfrom; i++) {
    pg_ent *e = from[i];
    while (e) {
      pg_ent *n = e->hnext;
      uint32_t h = pg_hash(e->pgno) & (nto - 1);
      __atomic_store_n(&e->hnext, to[h], __ATOMIC_RELAXED); /* lock-free readers may walk it */
      to[h] = e;
      e = n;
    }
  }
}

static void grow_table(pc_stripe *s) {
  uint32_t nb = s->nb * 2;
  if (s->nold == sizeof s->old / sizeof s->old[0]) return;
  pg_ent **nh = nx_calloc(nb, sizeof *nh);
  if (!nh) return; /* keep the longer chains */
  pg_rehash(s->ht, s->nb, nh, nb);
  s->old[s->nold++] = s->ht; /* a lock-free reader may be walking it (note 6) */
  __atomic_store_n(&s->ht, nh, __ATOMIC_RELEASE); /* the array first, then its size */
  __atomic_store_n(&s->nb, nb, __ATOMIC_RELEASE);
}

/* Evicts up to want unpinned entries from the LRU tail of s, giving referenced ones a second
 * chance at the front. Returns how many it evicted. */
static size_t evict_locked(pager *p, pc_stripe *s, size_t want) {
  pg_ent *e = s->lru.prev;
  size_t gone = 0, steps = (size_t)s->n * 2 + 2; /* each entry is seen at most twice */
  while (gone < want && e != &s->lru && steps-- > 0) {
    pg_ent *prev = e->prev;
    if (e->pins == 0) {
      if (__atomic_load_n(&e->ref, __ATOMIC_RELAXED)) {
        __atomic_store_n(&e->ref, 0, __ATOMIC_RELAXED);
        lru_unlink(e);
        lru_front(s, e);
      } else {
        remove_ent(p, s, e);
        gone++;
      }
    }
    e = prev;
  }
  return gone;
}

static void lru_back(pc_stripe *s, pg_ent *e) {
  e->prev = s->lru.prev;
  e->next = &s->lru;
  s->lru.prev->next = e;
  s->lru.prev = e;
}

/* Evicts want entries from the stripes in turn, starting at the rotating hand (no stripe lock
 * held by the caller). */
void pc_shrink(pager *p, size_t want) {
  for (uint32_t k = 0; k < NSTRIPES && want > 0; k++) {
    uint32_t i = atomic_fetch_add_explicit(&p->evict_hand, 1, memory_order_relaxed) & (NSTRIPES - 1);
    pc_stripe *s = &p->stripes[i];
    pthread_mutex_lock(&s->mu);
    size_t share = want / (NSTRIPES - k) + 1;
    want -= evict_locked(p, s, share < want ? share : want);
    pthread_mutex_unlock(&s->mu);
  }
}

pg_ent *pc_insert(pager *p, uint32_t pgno, uint8_t *buf, bool replace, bool pin, bool cold) {
  pg_ent *ne = ent_alloc(p);
  if (!ne) {
    pg_buf_free(p, buf);
    return NULL;
  }
  __atomic_store_n(&ne->pgno, pgno, __ATOMIC_RELAXED);
  __atomic_store_n(&ne->data, buf, __ATOMIC_RELAXED);
  ne->kind = ENT_CLEAN;
  pc_stripe *s = stripe_of(p, pgno);
  pthread_mutex_lock(&s->mu);
  pg_ent *old = find(s, pgno);
  if (old && !replace) {
    /* another reader loaded it first: use theirs */
    if (pin) old->pins++;
    pthread_mutex_unlock(&s->mu);
    pg_buf_free(p, buf);
    ent_unused(p, ne);
    return old;
  }
  if (old) remove_ent(p, s, old);
  size_t used = atomic_load(&p->ncached) + atomic_load(&p->ndirty) + 1;
  size_t want = used > p->cap_pages ? used - p->cap_pages : 0;
  if (want) want -= evict_locked(p, s, 1);
  if (s->n + 1 > s->nb / 2) grow_table(s); /* load <= 1/2: a hit walks ~1.25 entries, each a cache miss */
  uint32_t h = pg_hash(pgno) & (s->nb - 1);
  __atomic_store_n(&ne->hnext, s->ht[h], __ATOMIC_RELAXED);
  __atomic_store_n(&ne->gone, 0, __ATOMIC_RELEASE); /* set up: a reader seeing gone == 0 sees it */
  __atomic_store_n(&s->ht[h], ne, __ATOMIC_RELEASE);
  if (cold) lru_back(s, ne);
  else lru_front(s, ne);
  s->n++;
  atomic_fetch_add(&p->ncached, 1);
  if (pin) ne->pins = 1;
  pthread_mutex_unlock(&s->mu);
  if (want) pc_shrink(p, want);
  return ne;
}

void pc_unpin(pager *p, pg_ent *e) {
  pc_stripe *s = stripe_of(p, e->pgno);
  pthread_mutex_lock(&s->mu);
  bool free_it = --e->pins <= 0 && e->detached;
  pthread_mutex_unlock(&s->mu);
  if (free_it) retire(p, e);
}

void pc_drop(pager *p, uint32_t pgno) {
  pc_stripe *s = stripe_of(p, pgno);
  pthread_mutex_lock(&s->mu);
  pg_ent *e = find(s, pgno);
  if (e) remove_ent(p, s, e);
  pthread_mutex_unlock(&s->mu);
}

