/*
 * pager_compact.c: compaction: rewrite the pages reachable from the current roots into a new
 * file NAME.compact at the SAME page numbers, drop everything after the highest reachable page,
 * fsync, rename over NAME, fsync the directory. The lock file is untouched.
 *
 * Design notes
 *  1. Page numbers are kept, so no parent reference changes and the btree needs only to
 *     enumerate reachable pages (visit). Unreachable pages below the new end become free (holes
 *     in the new file). The file shrinks to the highest reachable page: to shrink a file whose
 *     live pages are scattered, the btree first rewrites its pages in a write txn (copy-on-write
 *     moves each to the lowest free page number) and checkpoints twice, then calls this.
 *  2. It runs after a FULL checkpoint under the writer lock, so the log is empty and both meta
 *     pages are written fresh in the new file at the same txn id. Readers whose snapshot is older
 *     than that txn would reach pages the new file may lack: compaction then returns NX_BUSY.
 *     Newer readers go on; the main file handle is swapped under idx_lock held exclusively (page
 *     reads from the main file hold it shared).
 *  3. Crash safety: before the rename the old file is untouched; the rename is atomic; both
 *     files hold the same state at the same txn id, so either one after a crash is correct.
 */
#include <string.h>

#include "pager_int.h"

typedef struct cmark {
  uint8_t *bits;
  uint32_t n;
} cmark;

static int mark_fn(void *ctx, uint32_t pgno) {
  cmark *m = ctx;
  if (pgno < 2 || pgno >= m->n)
    return NX_CORRUPT_BKPT("compaction: visit names page %u outside [2, %u)", pgno, m->n);
  m->bits[pgno >> 3] |= (uint8_t)(1u << (pgno & 7));
  return NX_OK;
}

static bool marked(const cmark *m, uint32_t pg) { return (m->bits[pg >> 3] >> (pg & 7)) & 1; }

/* Copies the marked pages into f (same offsets), reading through the cache or the main file. */
static int copy_live(pager *p, const cmark *m, uint32_t end, os_file *f, nx_progress_fn progress, void *pctx) {
  uint8_t *buf = nx_malloc(p->ps);
  if (!buf) return nx_err(NX_NOMEM, "compaction: out of memory");
  int rc = NX_OK;
  for (uint32_t pg = 2; pg < end && rc == NX_OK; pg++) {
    if (!marked(m, pg)) continue;
    pg_ent *e = pc_get(p, pg);
    if (e) {
      memcpy(buf, e->data, p->ps);
      pc_unpin(p, e);
    } else {
      size_t got = 0;
      rc = os_pread(p->db, buf, p->ps, (uint64_t)pg * p->ps, &got);
      if (rc == NX_OK && got < p->ps) rc = NX_CORRUPT_BKPT("compaction: page %u beyond the end of %s", pg, p->path);
      if (rc == NX_OK) rc = pager_page_check(p, buf, pg, p->path, (uint64_t)pg * p->ps);
    }
    if (rc == NX_OK) rc = os_pwrite(f, buf, p->ps, (uint64_t)pg * p->ps);
    if (rc == NX_OK && progress && (pg & 255) == 0 && progress(pctx, pg, end))
      rc = nx_err(NX_CANCELLED, "compaction of %s cancelled", p->path);
  }
  nx_free(buf);
  return rc;
}

/* Writes the new file's free-space map and both metas; fills fm with the map pages chosen. */
static int write_state(pager *p, const cmark *m, uint32_t *end, os_file *f, u32vec *fm, u32vec *freev) {
  int rc = NX_OK;
  for (uint32_t pg = 2; pg < *end && rc == NX_OK; pg++)
    if (!marked(m, pg)) rc = u32_push(freev, pg);
  if (rc) return rc;
  /* runs of free pages (all reusable at once: txn 0) */
  size_t per = (p->ps - FM_ENTRIES) / FM_ENTRY, inl = (p->ps - MT_INLINE) / FM_ENTRY;
  size_t nruns = 0;
  for (size_t i = 0; i < freev->n; i++)
    if (i == 0 || freev->v[i] != freev->v[i - 1] + 1) nruns++;
  size_t skip = 0;
  if (nruns > inl) {
    size_t need = (nruns + per - 1) / per;
    for (size_t i = 0; i < need && rc == NX_OK; i++) rc = u32_push(fm, i < freev->n ? freev->v[i] : (*end)++);
    skip = need < freev->n ? need : freev->n;
  }
  uint8_t *runs = nx_calloc(nruns + 1, FM_ENTRY);
  if (!runs || rc) {
    nx_free(runs);
    return rc ? rc : nx_err(NX_NOMEM, "compaction: out of memory");
  }
  size_t r = 0;
  for (size_t i = skip; i < freev->n;) {
    size_t j = i + 1;
    while (j < freev->n && freev->v[j] == freev->v[i] + (j - i)) j++;
    nx_put32(runs + r * FM_ENTRY, freev->v[i]);
    nx_put32(runs + r * FM_ENTRY + 4, (uint32_t)(j - i));
    nx_put64(runs + r * FM_ENTRY + 8, 0);
    r++;
    i = j;
  }
  /* map pages */
  rc = wasp_write_freemap(p, f, runs, r, fm, p->last_txn);
  /* both metas: same state, in the new file */
  if (rc == NX_OK) {
    os_file *keep = p->db;
    u32vec keep_fm = p->fm_pages;
    p->db = f;
    p->fm_pages = *fm;
    rc = pager_write_meta(p, 0, p->last_txn, *end, p->last_roots, (uint32_t)r, fm->n ? NULL : runs);
    p->meta_seq++;
    if (rc == NX_OK) rc = pager_write_meta(p, 1, p->last_txn, *end, p->last_roots, (uint32_t)r, fm->n ? NULL : runs);
    p->meta_seq++;
    p->db = keep;
    p->fm_pages = keep_fm;
  }
  nx_free(runs);
  /* the free list the new state starts with */
  if (rc == NX_OK) {
    size_t k = 0;
    for (size_t i = skip; i < freev->n; i++) freev->v[k++] = freev->v[i];
    freev->n = k;
  }
  return rc;
}

static int cmp_desc(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? 1 : x > y ? -1 : 0;
}

static int compact_locked(pager *p, pg_visit_fn visit, void *ctx, nx_progress_fn progress, void *pctx,
                          const char *tmp) {
  int rc = wasp_checkpoint_locked(p, NX_CHECKPOINT_TRUNCATE);
  if (rc) return rc;
  pthread_mutex_lock(&p->mu);
  uint64_t oldest = rt_oldest(&p->rt, p->last_txn);
  pthread_mutex_unlock(&p->mu);
  if (oldest < p->last_txn)
    return nx_err(NX_BUSY, "compaction of %s: a reader holds an older snapshot (txn %llu)", p->path,
                  (unsigned long long)oldest);
  uint32_t count = atomic_load(&p->page_count);
  cmark m = {nx_calloc((size_t)count / 8 + 1, 1), count};
  if (!m.bits) return nx_err(NX_NOMEM, "compaction: out of memory");
  /* a read txn at the current state for the visitor */
  pg_txn t;
  memset(&t, 0, sizeof t);
  t.p = p;
  t.txnid = p->last_txn;
  t.slot = -1;
  memcpy(t.roots, p->last_roots, PG_ROOTS);
  rc = visit ? visit(&t, ctx, mark_fn, &m) : NX_OK;
  if (!visit) /* without a visitor every page not known free is live */
    for (uint32_t pg = 2; pg < count; pg++) m.bits[pg >> 3] |= (uint8_t)(1u << (pg & 7));
  if (rc == NX_OK && !visit) {
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < p->ready.n; i++) m.bits[p->ready.v[i] >> 3] &= (uint8_t)~(1u << (p->ready.v[i] & 7));
    for (size_t i = 0; i < p->pending.n; i++)
      m.bits[p->pending.v[i].pgno >> 3] &= (uint8_t)~(1u << (p->pending.v[i].pgno & 7));
    pthread_mutex_unlock(&p->mu);
    for (size_t i = 0; i < p->fm_pages.n; i++) m.bits[p->fm_pages.v[i] >> 3] &= (uint8_t)~(1u << (p->fm_pages.v[i] & 7));
  }
  uint32_t end = 2;
  for (uint32_t pg = 2; pg < count; pg++)
    if (marked(&m, pg)) end = pg + 1;
  os_file *f = NULL;
  u32vec fm = {0}, freev = {0};
  if (rc == NX_OK) rc = os_open(tmp, OS_CREATE, &f);
  if (rc == NX_OK) rc = os_truncate(f, 0);
  if (rc == NX_OK) rc = copy_live(p, &m, end, f, progress, pctx);
  if (rc == NX_OK) rc = write_state(p, &m, &end, f, &fm, &freev);
  if (rc == NX_OK) rc = os_truncate(f, (uint64_t)end * p->ps);
  if (rc == NX_OK) rc = os_sync(f);
  bool renamed = false;
  if (rc == NX_OK) rc = os_rename(tmp, p->path);
  if (rc == NX_OK) {
    renamed = true;
    rc = os_sync_dir(p->path);
  }
  nx_free(m.bits);
  if (rc && !renamed) {
    os_close(f);
    (void)os_unlink(tmp);
    u32_free(&fm);
    u32_free(&freev);
    return rc;
  }
  /* the new file is in place: switch to it (by its real name, for messages and reopening) */
  os_file *nf = NULL;
  int orc = os_open(p->path, 0, &nf);
  if (orc == NX_OK) {
    os_close(f);
    f = nf;
  } else if (rc == NX_OK) {
    rc = orc;
  }
  pthread_rwlock_wrlock(&p->idx_lock);
  os_file *old = p->db;
  p->db = f;
  pthread_rwlock_unlock(&p->idx_lock);
  os_close(old);
  pthread_mutex_lock(&p->mu);
  u32_free(&p->ready);
  p->ready = freev;
  pg_qsort(p->ready.v, p->ready.n, sizeof *p->ready.v, cmp_desc);
  p->pending.n = 0;
  u32_free(&p->fm_pages);
  p->fm_pages = fm;
  p->meta_txn[0] = p->meta_txn[1] = p->last_txn;
  p->meta_newest = 1;
  atomic_store(&p->page_count, end);
  pthread_mutex_unlock(&p->mu);
  if (rc) {
    /* NAME is the new file but the rename may not be durable: like a failed fsync */
    pager_poison(p, rc);
    return rc;
  }
  if (progress) (void)progress(pctx, end, end);
  return NX_OK;
}

int pager_compact(pager *p, pg_visit_fn visit, void *ctx, nx_progress_fn progress, void *pctx) {
  int rc;
  if (pager_poisoned(p, &rc)) return rc;
  if (p->read_only) return nx_err(NX_READONLY, "%s is open read-only: no compaction", p->path);
  if (p->memory) return pager_checkpoint(p, NX_CHECKPOINT_TRUNCATE);
  if (atomic_load(&p->w_owner) == (uintptr_t)pthread_self())
    return nx_err(NX_BUSY, "%s: compaction requested by the thread that holds the write transaction", p->path);
  size_t n = strlen(p->path);
  char *tmp = nx_malloc(n + 9);
  if (!tmp) return nx_err(NX_NOMEM, "compaction: out of memory");
  memcpy(tmp, p->path, n);
  memcpy(tmp + n, ".compact", 9);
  pthread_mutex_lock(&p->wmu);
  wasp_ck_hold(p); /* no background pass 1 while the files are swapped */
  rc = compact_locked(p, visit, ctx, progress, pctx, tmp);
  wasp_ck_unhold(p);
  pthread_mutex_unlock(&p->wmu);
  nx_free(tmp);
  return rc ? nx_err_prefix(rc, "compaction of %s: ", p->path) : NX_OK;
}
