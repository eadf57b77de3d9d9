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
 */
#include <string.h>

#include "pager_int.h"

static inline pc_stripe *stripe_of(pager *p, uint32_t pgno) {
  return &p->stripes[(pg_hash(pgno) >> 16) & (NSTRIPES - 1)];
}

int pc_init(pager *p) {
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
        nx_free(e->data);
        nx_free(e);
        e = n;
      }
      nx_free(s->ht);
      s->ht = NULL;
    }
    pthread_mutex_destroy(&s->mu);
  }
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

/* Unlinks e from its stripe's table and list (stripe locked). Frees it unless pinned. */
static void remove_ent(pager *p, pc_stripe *s, pg_ent *e) {
  pg_ent **pp = &s->ht[pg_hash(e->pgno) & (s->nb - 1)];
  while (*pp != e) pp = &(*pp)->hnext;
  *pp = e->hnext;
  lru_unlink(e);
  s->n--;
  atomic_fetch_sub(&p->ncached, 1);
  if (e->pins > 0) {
    e->detached = 1;
    return;
  }
  pg_buf_free(p, e->data);
  nx_free(e);
}

pg_ent *pc_get(pager *p, uint32_t pgno) {
  pc_stripe *s = stripe_of(p, pgno);
  pthread_mutex_lock(&s->mu);
  pg_ent *e = find(s, pgno);
  if (e) {
    e->pins++;
    e->ref = 1;
  }
  pthread_mutex_unlock(&s->mu);
  return e;
}

void pg_rehash(pg_ent **from, uint32_t nfrom, pg_ent **to, uint32_t nto) {
  for (uint32_t i = 0; i < nfrom; i++) {
    pg_ent *e = from[i];
    while (e) {
      pg_ent *n = e->hnext;
      uint32_t h = pg_hash(e->pgno) & (nto - 1);
      e->hnext = to[h];
      to[h] = e;
      e = n;
    }
  }
}

static void grow_table(pc_stripe *s) {
  uint32_t nb = s->nb * 2;
  pg_ent **nh = nx_calloc(nb, sizeof *nh);
  if (!nh) return; /* keep the longer chains */
  pg_rehash(s->ht, s->nb, nh, nb);
  nx_free(s->ht);
  s->ht = nh;
  s->nb = nb;
}

/* Evicts up to want unpinned entries from the LRU tail of s, giving referenced ones a second
 * chance at the front. Returns how many it evicted. */
static size_t evict_locked(pager *p, pc_stripe *s, size_t want) {
  pg_ent *e = s->lru.prev;
  size_t gone = 0, steps = (size_t)s->n * 2 + 2; /* each entry is seen at most twice */
  while (gone < want && e != &s->lru && steps-- > 0) {
    pg_ent *prev = e->prev;
    if (e->pins == 0) {
      if (e->ref) {
        e->ref = 0;
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
  pg_ent *ne = nx_calloc(1, sizeof *ne);
  if (!ne) {
    pg_buf_free(p, buf);
    return NULL;
  }
  ne->pgno = pgno;
  ne->kind = ENT_CLEAN;
  ne->data = buf;
  pc_stripe *s = stripe_of(p, pgno);
  pthread_mutex_lock(&s->mu);
  pg_ent *old = find(s, pgno);
  if (old && !replace) {
    /* another reader loaded it first: use theirs */
    if (pin) old->pins++;
    pthread_mutex_unlock(&s->mu);
    pg_buf_free(p, buf);
    nx_free(ne);
    return old;
  }
  if (old) remove_ent(p, s, old);
  size_t used = atomic_load(&p->ncached) + atomic_load(&p->ndirty) + 1;
  size_t want = used > p->cap_pages ? used - p->cap_pages : 0;
  if (want) want -= evict_locked(p, s, 1);
  if (s->n + 1 > s->nb / 2) grow_table(s); /* load <= 1/2: a hit walks ~1.25 entries, each a cache miss */
  uint32_t h = pg_hash(pgno) & (s->nb - 1);
  ne->hnext = s->ht[h];
  s->ht[h] = ne;
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
  if (free_it) {
    pg_buf_free(p, e->data);
    nx_free(e);
  }
}

void pc_drop(pager *p, uint32_t pgno) {
  pc_stripe *s = stripe_of(p, pgno);
  pthread_mutex_lock(&s->mu);
  pg_ent *e = find(s, pgno);
  if (e) remove_ent(p, s, e);
  pthread_mutex_unlock(&s->mu);
}

