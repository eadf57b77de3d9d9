/*
 * pager.h: pages, the page cache, and WASP (the write-ahead shadow-paging log): the contract
 * between the B+tree (btree.c) and the pager (pager*.c, wasp*.c). Internal to src/storage/.
 *
 * Every page starts with this header, written and checked by the pager only:
 *
 *   OFFSET SIZE MEANING
 *        0    4 CRC32C of bytes [4, page_size)
 *        4    4 page number (a misdirected write is caught by comparing it)
 *        8    8 id of the transaction that wrote the page (a stale or lost write is caught by
 *               comparing it with the txn id the parent recorded for the child)
 *       16    1 page type (PG_T_*)
 *       17    7 reserved, zero
 *       24    . content, owned by the page's user (btree), up to pager_usable(p) bytes
 *
 * Copy-on-write: a committed page is never changed in place. pg_write() on a clean page copies it
 * to a newly allocated page number (and frees the old number at commit); the caller then updates
 * the reference held by the parent (page number and txn id). A page already dirty in this
 * transaction is returned as is, unless it was spilled to the log (then it is copied again).
 */
#ifndef NX_PAGER_H
#define NX_PAGER_H

#include <stdbool.h>
#include <stdint.h>

#include "base.h"

#define PG_HDR 24u
#define PG_ROOTS 64u /* bytes of user roots carried by every meta page and commit record */

enum {
  PG_T_FREE = 0,
  PG_T_META = 1,
  PG_T_BRANCH = 2,
  PG_T_LEAF = 3,
  PG_T_OVERFLOW = 4,
  PG_T_FREEMAP = 5
};

typedef struct pager pager;
typedef struct pg_txn pg_txn;

/* A pinned page: data stays valid until pg_release (or the end of the txn for dirty pages that
 * are never released). A dirty page that has been released may be spilled to the log when the
 * write txn outgrows its share of the cache: get it again with pg_get (a spilled page comes back
 * read-only; pg_write then copies it to a new page number). Pinned dirty pages are never spilled.
 * A txn (read or write) is used by one thread at a time; different txns may run in parallel. */
typedef struct pg_page {
  uint8_t *data;   /* page_size bytes; writable only if obtained from pg_alloc/pg_write */
  uint32_t pgno;   /* its page number */
  void *priv;      /* the pager's bookkeeping */
} pg_page;

/* ---- Open and close ---- */
/* path ":memory:" gives an in-memory database (same code over an OS_MEMORY file). */
int pager_open(const char *path, const nx_open_opts *opts, pager **out);
int pager_close(pager *p);       /* checkpoints unless read-only or poisoned; accepts NULL */
uint32_t pager_page_size(const pager *p);
uint32_t pager_usable(const pager *p); /* bytes after PG_HDR that the user may fill */
void pager_stats(pager *p, nx_stats *out);
/* PASSIVE returns NX_BUSY while a write txn is open; FULL and TRUNCATE wait for it (so the calling
 * thread must not hold one). Readers are never waited for. Checkpoints also run automatically at
 * the end of a commit once the log passes opts->checkpoint_bytes: in the committing thread, or
 * with opts->checkpoint_thread in a background thread (wasp.c, "background checkpoint"). */
int pager_checkpoint(pager *p, nx_checkpoint_mode mode);
/* Pass 1 of a background checkpoint, in the calling thread: copies the durable log frames not
 * yet copied into the main file and fsyncs it, without the writer lock; the next checkpoint
 * skips them. What the checkpoint thread runs; tests call it to place crashes inside it. */
int pager_checkpoint_pass1(pager *p);
/* The checkpoint thread's other job, in the calling thread: writes zeros 4 MiB past the log end
 * and syncs them (wasp_grow_ahead). Tests call it to place crashes and failures inside it. */
int pager_grow_log_ahead(pager *p);
/* Rewrites live pages into a new file and renames it in place. `visit` enumerates the pages
 * reachable from roots (provided by the btree layer) so that free pages are dropped. Page
 * numbers are kept: the file shrinks to the highest reachable page (holes below become free).
 * To shrink a file whose live pages are scattered, rewrite the tree first (pg_write on every page
 * in a write txn moves each to the lowest free page number; two checkpoints later the old copies
 * are free). NX_BUSY when a reader holds a snapshot older than the current state. */
typedef int (*pg_visit_fn)(pg_txn *t, void *ctx, int (*mark)(void *mctx, uint32_t pgno), void *mctx);
int pager_compact(pager *p, pg_visit_fn visit, void *ctx, nx_progress_fn progress, void *pctx);

/* Integrity support (st_check): calls fn for every page the pager itself accounts for as of
 * write txn t: the two meta pages, free-space-map pages, and free pages (reusable or pending).
 * fn returning non-zero stops the walk and that value is returned. */
int pager_owned_pages(pg_txn *t, int (*fn)(void *ctx, uint32_t pgno), void *ctx);

/* ---- Transactions ---- */
/* One writer at a time (a second write begin waits); readers never wait for the writer. */
int pager_begin(pager *p, bool write, pg_txn **out);
int pager_commit(pg_txn *t);     /* frees t, also on failure */
void pager_abort(pg_txn *t);     /* frees t; accepts NULL */
/* Parking a read txn between two uses (st_txn_restart): pager_park ends the snapshot (the txn
 * no longer holds back page reuse) but keeps the object and the pins of its slots; pager_resume
 * begins a new snapshot in it and sets *same when that is the snapshot it had, in which case
 * the pinned pages are still the pages this snapshot reaches (no commit in between; page images
 * change only at commit). When !*same the caller drops what it derived from them and calls
 * pager_drop_pins. On failure t stays parked. pager_park_free ends a parked txn for good. */
void pager_park(pg_txn *t);
int pager_resume(pg_txn *t, bool *same);
void pager_drop_pins(pg_txn *t);
void pager_park_free(pg_txn *t);
bool pg_is_write(const pg_txn *t);
/* While set, pages this txn reads from the file enter the cache cold (first to be evicted):
 * a cursor sets it around stepping to the next leaf, so that scans do not flush the cache. */
void pg_set_cold(pg_txn *t, bool cold);
uint64_t pg_txnid(const pg_txn *t); /* write: the id being written; read: the snapshot's id */
pager *pg_pager(pg_txn *t);
/* The snapshot's user roots (PG_ROOTS bytes) and, for a write txn, their replacement. */
const uint8_t *pg_roots(const pg_txn *t);
void pg_set_roots(pg_txn *t, const uint8_t roots[PG_ROOTS]);

/* ---- Pages ---- */
/* Reads page pgno as this txn sees it. expect_txnid != 0 is checked against the page header. */
int pg_get(pg_txn *t, uint32_t pgno, uint64_t expect_txnid, pg_page *out);
/* The same, for a caller that holds at most this one page of the txn's point reads at a time
 * and releases it before the next pg_get_point (a point read's leaf): a read txn then looks it
 * up without a lock or a pin when it can (pager_cache.c note 6). */
/* h (may be NULL) is the caller's memo of where the page was found last time (pager_cache.c
 * note 7): kept beside the branch reference that leads to the page, it lets a repeated read
 * skip the cache table while no cached page has been removed since it was made. Zero it before
 * first use; a stale or foreign memo is detected and replaced, never trusted. */
typedef struct pg_hint {
  uint32_t pgno;        /* page it describes (0: none) */
  const void *e;        /* the cache entry that held it */
  const uint8_t *data;  /* its image */
  uint64_t gen;         /* the cache's removal generation when it was made */
} pg_hint;
int pg_get_point(pg_txn *t, uint32_t pgno, uint64_t expect_txnid, pg_hint *h, pg_page *out);
/* The image h recorded for pgno if no cached page has been removed since, else NULL: only an
 * address to prefetch (nothing protects it; a prefetch never faults), never to read. */
const uint8_t *pg_hint_peek(pg_txn *t, const pg_hint *h, uint32_t pgno);
/* The image h recorded for pgno, readable until pg_peek_release, or NULL (no valid hint, or the
 * txn has no hazard slots): a read txn's second hazard slot protects it, so it may be held
 * beside the page of a point read (pager_cache.c note 7). One at a time. */
const uint8_t *pg_peek_hold(pg_txn *t, const pg_hint *h, uint32_t pgno);
void pg_peek_release(pg_txn *t);
void pg_release(pg_txn *t, pg_page *pg);
/* A new zeroed page of the given type, writable, pinned. */
int pg_alloc(pg_txn *t, uint8_t type, pg_page *out);
/* Makes a pinned page writable (copy-on-write); pg->pgno and pg->data may change. */
int pg_write(pg_txn *t, pg_page *pg);
/* The page becomes free when this txn commits (reused once no reader or meta can reach it). */
int pg_free(pg_txn *t, uint32_t pgno);
/* Type byte of a pinned page. */
static inline uint8_t pg_type(const pg_page *pg) { return pg->data[16]; }

#endif
