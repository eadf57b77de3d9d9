/*
 * pager_int.h: the pager's and WASP's private structures, shared by pager.c, pager_cache.c,
 * wasp.c, wasp_index.c, wasp_recover.c and pager_compact.c. Never included outside them.
 *
 * Locks, outermost first (never take an outer lock while holding an inner one):
 *   wmu        the one writer: held from pager_begin(write) to the end of its commit's append,
 *              and by checkpoint and compaction.
 *   idx_lock   rwlock over the log index and the log generation: readers hold it shared across
 *              "look up pgno, pread its frame"; a commit publishing frames and a log restart hold it
 *              exclusively.
 *   mu         committed state for readers, the reader table, free lists, group-commit state.
 *   stripe.mu  one cache stripe.
 */
#ifndef NX_PAGER_INT_H
#define NX_PAGER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "os.h"
#include "pager.h"

#define META_MAGIC "NEXUSLT"   /* 8 bytes with its NUL */
#define WASP_MAGIC "NXWASP\0"  /* 8 bytes with its NUL */
#define WASP_HDR 64u           /* bytes of the log header; records start here */
#define FR_HDR 64u             /* bytes of a record header */
#define FR_MAGIC 0x46505357u   /* "WSPF" little-endian */
#define FR_PAGE 1u
#define FR_COMMIT 2u
#define CM_FIXED 88u           /* fixed bytes of a commit record's payload */
#define NSTRIPES 64u

/* meta page byte offsets (after the 24-byte page header) */
#define MT_MAGIC 24u
#define MT_VERSION 32u
#define MT_PAGESIZE 36u
#define MT_FILEID 40u
#define MT_PAGECOUNT 56u
#define MT_FMROOT 60u
#define MT_FMCOUNT 64u
#define MT_FMPAGES 68u
#define MT_SEQ 72u
#define MT_ROOTS 80u

/* freemap page offsets */
#define FM_NEXT 24u
#define FM_COUNT 28u
#define FM_ENTRIES 32u
#define FM_ENTRY 16u           /* a run: first page (4), page count (4), freeing txn (8) */
#define MT_INLINE 144u         /* a small free-space map lives in the meta page from here */

/* qsort that accepts empty (NULL) arrays */
static inline void pg_qsort(void *base, size_t n, size_t sz, int (*cmp)(const void *, const void *)) {
  if (n > 1) qsort(base, n, sz, cmp);
}

typedef struct u32vec {
  uint32_t *v;
  size_t n, cap;
} u32vec;
int u32_push(u32vec *a, uint32_t x);
void u32_free(u32vec *a);

typedef struct freeent {
  uint32_t pgno; /* the free page */
  uint64_t txn;  /* the transaction that freed it */
} freeent;
typedef struct freevec {
  freeent *v;
  size_t n, cap;
} freevec;
int free_push(freevec *a, uint32_t pgno, uint64_t txn);
int free_reserve(freevec *a, size_t more);

enum { ENT_CLEAN = 0, ENT_DIRTY = 1, ENT_TEMP = 2 };

/* One page in memory: a cached committed page, a dirty page of the writer, or a temporary copy
 * of a spilled page read back by the writer. */
typedef struct pg_ent {
  uint32_t pgno;         /* page number */
  uint8_t kind;          /* ENT_* */
  uint8_t spilled;       /* dirty page written to the log before commit: data is NULL */
  uint8_t detached;      /* clean page dropped from the cache while pinned: freed at last unpin */
  uint8_t dead;          /* dirty page freed in its own txn */
  int32_t pins;          /* pg_page handles pointing here */
  uint8_t ref;           /* clean: used since it last passed the LRU tail (second chance) */
  uint8_t gone;          /* clean: out of the table (retired or free); atomics (pager_cache.c note 6) */
  uint64_t log_off;      /* spilled: offset of its frame in the log */
  uint8_t *data;         /* page_size bytes, or NULL when spilled */
  struct pg_ent *hnext;  /* hash chain */
  struct pg_ent *prev;   /* LRU list (clean) or allocation order (dirty) */
  struct pg_ent *next;
} pg_ent;

typedef struct pc_stripe {
  pthread_mutex_t mu;
  pg_ent **ht;       /* buckets */
  uint32_t nb;       /* bucket count, a power of two */
  uint32_t n;        /* entries */
  pg_ent lru;        /* sentinel: lru.next is the most recent */
  pg_ent **old[32];  /* outgrown bucket arrays: a lock-free reader may still walk one (freed at close) */
  uint32_t nold;
  char pad[64];
} pc_stripe;

/* A read txn's hazard slot (pager_cache.c note 6): the one entry it reads without a pin. */
#define HZ_SLOTS 16u
typedef struct pg_hazard {
  _Atomic(pg_ent *) e;
  char pad[64 - sizeof(void *)];
} pg_hazard;
#define PG_HAZARD_TAG ((void *)(uintptr_t)2u) /* pg_page.priv of a page held through the hazard */

/* The log index: page number -> offset of its frame in the current log generation. */
typedef struct log_index {
  uint32_t *keys;  /* pgno + 1; 0 = empty slot */
  uint64_t *offs;
  size_t cap;      /* power of two */
  size_t n;
} log_index;
int li_put(log_index *li, uint32_t pgno, uint64_t off);
int li_reserve(log_index *li, size_t more); /* so that `more` li_put calls cannot fail */
bool li_get(const log_index *li, uint32_t pgno, uint64_t *off);
void li_clear(log_index *li);
void li_free(log_index *li);

/* The reader table: snapshot txn ids of live readers (a later version puts it in shared memory). */
typedef struct reader_table {
  uint64_t *snap;  /* UINT64_MAX = free slot */
  size_t cap;
  size_t live;
} reader_table;
int rt_add(reader_table *rt, uint64_t snap, int *slot);
void rt_del(reader_table *rt, int slot);
uint64_t rt_oldest(const reader_table *rt, uint64_t dflt);
void rt_free(reader_table *rt);

/* A read txn keeps its own pins on recently used pages (the root and upper branch levels are hit
 * by every lookup): a hit there takes no lock and touches no shared cache line. */
#define TXN_SLOTS 64u
#define PG_READ_SPARES 8u /* ended read txns a pager keeps for reuse */
typedef struct txn_slot {
  pg_ent *e;       /* pinned by the slot (one pin), or NULL */
  uint32_t users;  /* pg_page handles of this txn using it (tagged priv) */
} txn_slot;

struct pg_txn {
  pager *p;
  txn_slot *slots;               /* read txns: TXN_SLOTS slots, direct-mapped by page number */
  uint64_t slots_used;           /* bit i: slots[i] holds a pin (the end visits only those) */
  bool cold;                     /* pages read now are a sequential scan's: cached cold */
  struct pg_txn *next_spare;     /* in pager.rspare */
  uint64_t hits, misses;         /* counted here, added to the pager's at the end */
  bool write;
  uint64_t txnid;                /* write: id being written; read: snapshot id */
  uint8_t roots[PG_ROOTS];       /* snapshot roots, replaced by pg_set_roots */
  int slot;                      /* reader table slot (read txns) */
  int hz;                        /* read txns: hazard slot, or -1 (then every read pins) */
  bool hz_held;                  /* a page is held through the hazard */
  bool roots_set;
  /* write txns only */
  pg_ent **dht;                  /* dirty hash */
  uint32_t dnb;                  /* buckets */
  size_t ndirty;                 /* dirty entries (spilled included) */
  size_t nresident;              /* dirty entries holding a buffer */
  pg_ent dlist;                  /* sentinel: allocation order, oldest first */
  u32vec freed;                  /* pages freed by this txn */
  u32vec reused;                 /* pages taken from the free list */
  uint32_t page_count;           /* page count after this txn */
  uint64_t log_start;            /* log offset at begin (abort rewinds here) */
  uint32_t chain_start;          /* checksum chain at begin */
  size_t nframes;                /* frames appended (spilled) so far */
  bool spilled_any;
};

struct pager {
  char *path;                    /* main file */
  char *wasp_path;               /* NAME.wasp */
  char *lock_path;               /* NAME.lock */
  os_file *db, *log, *lockf;
  bool memory;                   /* ":memory:" */
  bool read_only;
  uint32_t ps;                   /* page size */
  nx_durability dur;
  uint64_t ckpt_bytes;           /* automatic checkpoint threshold (log bytes) */
  uint8_t file_id[16];
  size_t cap_pages;              /* cache budget in pages (clean + dirty resident) */

  pthread_mutex_t wmu;
  _Atomic uintptr_t w_owner;     /* (uintptr_t)pthread_self() of the thread in a write txn, or 0 */
  pthread_rwlock_t idx_lock;
  pthread_mutex_t mu;
  pthread_cond_t cv;

  /* reader-visible state (mu) */
  uint64_t vis_txn;
  uint8_t vis_roots[PG_ROOTS];
  reader_table rt;
  struct pg_txn *rspare;         /* ended read txns kept for reuse (their slots allocated) */
  uint32_t nrspare;

  /* writer state: the latest appended transaction (wmu; read by checkpoint under wmu) */
  uint64_t last_txn;
  uint8_t last_roots[PG_ROOTS];
  _Atomic uint32_t page_count;

  /* meta pages and the persisted free-space map (wmu) */
  uint64_t meta_txn[2];
  int meta_newest;               /* slot of the newest valid meta */
  uint64_t meta_seq;             /* write sequence of the newest meta (breaks txn ties) */
  u32vec fm_pages;               /* pages holding the newest meta's free-space map, in chain order */

  /* free space (mu) */
  u32vec ready;                  /* reusable now; sorted descending (pop the lowest) */
  freevec pending;               /* freed, waiting for readers and metas; txn ascending */

  /* the log (wmu for appends; mu for the group-commit fields) */
  uint64_t salt;
  uint64_t log_base;             /* meta txn this generation builds on */
  uint64_t log_end;              /* append offset */
  uint32_t chain;                /* checksum chain after the last record */
  uint64_t log_alloc;            /* preallocated bytes the writer may append into */
  /* The log file's size in written zeros (or records), grow_mu: the writer (log_reserve) and,
   * with the checkpoint thread, that thread (wasp_grow_ahead) extend the file under it, so no
   * zeros ever land on frames. Ahead of the writer, the thread also syncs what it wrote. */
  pthread_mutex_t grow_mu;
  uint64_t grown;                /* grow_mu */
  log_index idx;                 /* idx_lock */
  uint64_t app_off;              /* mu: end of the last appended commit */
  uint64_t app_txn;              /* mu: its txn id */
  uint8_t app_roots[PG_ROOTS];   /* mu: its roots */
  uint64_t synced_off;           /* mu: log offset known durable */
  bool syncing;                  /* mu: a leader is in fsync */
  int poison;                    /* mu: 0, or the status that poisoned the handle */

  /* cache */
  pc_stripe stripes[NSTRIPES];
  /* Page buffers (pg_buf_alloc / pg_buf_free) are carved from chunks, allocated as the cache
   * grows (each twice the last, up to slab_pages buffers) and kept until close; a freed buffer
   * goes back on the free stack. A miss or a new dirty page then costs no malloc of a page
   * (glibc's took a fifth of a cold read) and, once the cache has grown, no page faults. Chunks
   * of 2 MiB and more are whole, aligned huge pages (pager.c, slab_grow). */
  pthread_mutex_t bufmu;
  void *buf_free;                /* bufmu: stack, linked through each buffer's first 8 bytes */
  uint8_t **slabs;               /* bufmu: the chunks */
  uint32_t nslabs, slabs_cap;    /* bufmu */
  uint8_t *slab_next;            /* bufmu: the newest chunk's next unused buffer */
  uint32_t slab_left;            /* bufmu: unused buffers from slab_next on */
  uint32_t slab_step;            /* bufmu: buffers in the next chunk */
  uint32_t slab_pages;           /* buffers per chunk at most (set at open) */
  _Atomic uint32_t evict_hand;   /* next stripe global eviction visits (pager_cache.c note 3) */
  _Atomic size_t ncached;        /* clean entries */
  _Atomic size_t ndirty;         /* resident dirty entries of the writer */
  /* Lock-free point reads (pager_cache.c note 6): hazard slots, entries out of the table that a
   * hazard may still name, and entry structs for reuse (they are never returned to malloc while
   * the pager is open, so a reader walking a stale chain always reads an entry). */
  pg_hazard hz[2 * HZ_SLOTS];    /* a read txn owning slot i also owns i + HZ_SLOTS (pg_peek_hold) */
  /* Bumped whenever an entry leaves a table (pager_cache.c note 7); on its own cache line, which
   * readers share and nothing writes while no page leaves the cache. */
  _Atomic uint64_t cache_gen;
  char gen_pad[64 - sizeof(uint64_t)];
  uint32_t hz_used;              /* mu: bit i: hz[i] belongs to a read txn */
  pthread_mutex_t retire_mu;
  pg_ent *retired;               /* retire_mu: linked through next */
  uint32_t nretired;
  pg_ent *ent_free;              /* retire_mu: linked through next; gone = 1 */

  /* The background checkpointer (wasp.c, "background checkpoint"); the fields after
   * ck_thread under mu. */
  bool ck_thread_on;             /* the thread runs (set at open, cleared at close: no lock) */
  pthread_t ck_thread;
  pthread_cond_t ck_cv;          /* wakes the thread; signals the end of a pass 1 */
  bool ck_want, ck_stop;         /* a checkpoint is due; the thread must exit */
  bool grow_want;                /* the log should grow ahead of grow_from (wasp_grow_ahead), */
  uint64_t grow_from, grow_gen;  /* asked in log generation grow_gen (stale once it restarted) */
  bool ck_busy;                  /* pass 1 is copying (without wmu) */
  uint32_t ck_hold;              /* > 0: pass 1 must not start (a checkpoint or compaction runs) */
  uint64_t log_gen;              /* log generations started (bumped at each restart) */
  uint64_t ck_done_off;          /* frames of this generation below it are in the main file and
                                  * synced (pass 1); 0 at each log restart */

  /* figures */
  _Atomic uint64_t hits, misses, commits, ckpts, fsyncs, ckpts_bg;
  uint8_t *scratch;              /* wmu: I/O buffer for frames (SCRATCH bytes) */
  size_t scratch_len;
};

/* pager.c */
void pager_page_seal(pager *p, uint8_t *page);  /* writes the page checksum */
int pager_page_check(pager *p, const uint8_t *page, uint32_t pgno, const char *where, uint64_t off);
int pager_write_meta(pager *p, int slot, uint64_t txn, uint32_t page_count, const uint8_t roots[PG_ROOTS],
                     uint32_t fm_runs, const uint8_t *inline_runs);
void pager_promote_free(pager *p);             /* mu held: pending -> ready where allowed */
bool pager_poisoned(pager *p, int *rc);
void pager_rollback(pg_txn *t);               /* undoes a write txn and releases wmu */
void pager_drop_dirty(pg_txn *t);
void pager_poison(pager *p, int rc);

/* pager_cache.c */
int pc_init(pager *p);
void pc_free(pager *p);
/* Looks pgno up; on a hit pins it and returns it. */
pg_ent *pc_get(pager *p, uint32_t pgno);
/* Looks pgno up without a lock or a pin and protects the entry with hazard slot hz until the
 * caller stores NULL there. NULL when absent (or changing: the caller then takes pc_get). */
pg_ent *pc_peek(pager *p, uint32_t pgno, pg_hazard *hz);
/* Inserts a verified page buffer (taken) for pgno and pins it; returns the entry that holds it
 * (an existing one if another thread won the race: then buf is freed). NULL on OOM. */
/* The page-number hash of the cache stripes, their tables, the dirty table and the read slots. */
static inline uint32_t pg_hash(uint32_t pgno) { return pgno * 2654435761u; }
/* Moves every entry of the chained table `from` (nfrom buckets) into `to` (nto buckets, zeroed,
 * a power of two). */
void pg_rehash(pg_ent **from, uint32_t nfrom, pg_ent **to, uint32_t nto);
uint8_t *pg_buf_alloc(pager *p, bool zero); /* a page-size buffer (NULL: out of memory) */
void pg_buf_free(pager *p, uint8_t *b);     /* accepts NULL */
pg_ent *pc_insert(pager *p, uint32_t pgno, uint8_t *buf, bool replace, bool pin, bool cold);
void pc_unpin(pager *p, pg_ent *e);
void pc_drop(pager *p, uint32_t pgno);
void pc_shrink(pager *p, size_t want_free);

/* wasp.c */
int wasp_create_header(pager *p);              /* new salt, writes and syncs the header */
/* Appends page frames for ents at the log end; spill=true also releases their buffers. */
int wasp_write_frames(pager *p, pg_txn *t, pg_ent **ents, size_t n, bool spill);
int wasp_commit(pg_txn *t);                    /* appends, syncs (by durability), publishes */
int wasp_sync_upto(pager *p, uint64_t gen, uint64_t off); /* group commit: off of log generation gen */
int wasp_checkpoint_locked(pager *p, nx_checkpoint_mode mode);
int wasp_ck_start(pager *p);                   /* starts the background checkpointer */
void wasp_ck_stop(pager *p);                   /* stops and joins it (no lock held) */
void wasp_ck_hold(pager *p);                   /* waits out a pass 1 and keeps others from starting */
void wasp_ck_unhold(pager *p);
int wasp_ck_pass1(pager *p);                   /* one pass 1 in the calling thread (tests) */
int wasp_grow_ahead(pager *p, uint64_t end);   /* grows and syncs the log ahead of end (the thread; tests) */
int wasp_read_frame_page(pager *p, uint64_t off, uint32_t pgno, uint8_t *buf);
/* Writes the free-space map pages `pages` (chained, n runs of FM_ENTRY bytes, page txn id txn)
 * into f: the main file at checkpoint, the new file in compaction. */
int wasp_write_freemap(pager *p, os_file *f, const uint8_t *runs, size_t n, const u32vec *pages, uint64_t txn);
uint32_t wasp_chain_seed(uint64_t salt);

/* wasp_recover.c */
int wasp_recover(pager *p, uint32_t *page_count, uint64_t meta_txn);
int pager_load_freemap(pager *p, uint32_t root, uint32_t runs, uint32_t npages, uint32_t page_count,
                       const uint8_t *inline_runs);

#endif
