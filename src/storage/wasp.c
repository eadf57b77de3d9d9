/*
 * wasp.c: the write-ahead shadow-paging log: frames, commit, group commit, checkpoint.
 *
 * Log file NAME.wasp:
 *
 *   +--------+---------------------+------------------+-----+-----------------+----
 *   | header | frame | frame | ... | commit record T  | ... | commit record U | (older generations,
 *   +--------+---------------------+------------------+-----+-----------------+  other salt)
 *
 * Log header (64 bytes at offset 0):
 *   OFFSET SIZE MEANING
 *        0    8 magic "NXWASP\0\0"
 *        8    4 format version
 *       12    4 page size
 *       16    8 salt of this generation (random, new at each log restart)
 *       24    8 base txn: the meta txn this generation builds on
 *       32   16 file id of the main file
 *       48    4 CRC32C of bytes [0, 48)
 *       52   12 zero
 *
 * Record header (64 bytes; a page frame is followed by the page, a commit record by its payload
 * padded to a multiple of 64):
 *   OFFSET SIZE MEANING
 *        0    4 magic "WSPF"
 *        4    1 kind: 1 page frame, 2 commit record
 *        5    3 zero
 *        8    8 salt (must equal the header's)
 *       16    8 txn id
 *       24    4 page number (page frames), 0 for commit records
 *       28    4 payload bytes (page size for frames)
 *       32    4 self checksum: CRC32C over bytes [0, 32) then, for a frame, the page's own
 *               checksum (bytes 0..4 of the page, which covers the rest of the page), for a
 *               commit record its whole payload
 *       36    4 chain: CRC32C(previous chain, self checksum); the chain starts at CRC32C(salt)
 *       40   24 zero
 *
 * Commit record payload:
 *   OFFSET SIZE MEANING
 *        0    8 synced offset: the log offset known durable when this record was written
 *        8    4 page count after the txn
 *       12    4 F: pages freed by the txn
 *       16    4 R: pages the txn took from the free list
 *       20    4 frames the txn wrote (spilled ones included)
 *       24   64 user roots
 *       88  4*F freed page numbers, then 4*R reused page numbers
 *
 * Crash-safety rules
 *  1. A commit is durable when the fsync covering its record returns; it becomes visible to
 *     readers only then (FULL). NORMAL and OFF make it visible at append.
 *  2. A failed fsync poisons the handle; nothing is retried.
 *  3. Checkpoint: copy frames to the main file -> fsync main -> write the older meta -> fsync main
 *     -> restart the log (new salt, header written and fsynced before any new frame). A crash at
 *     any point leaves either the old meta with the whole old log, or the new meta (the log's
 *     commits are then all <= the meta and are skipped).
 *  4. Frames go only to page numbers no snapshot reaches (pager.c note 2), so copying them into
 *     the main file never damages a state reachable from either meta or from a live reader.
 */
#include <string.h>
#include <unistd.h>

#include "pager_int.h"

uint32_t wasp_chain_seed(uint64_t salt) {
  uint8_t b[8];
  nx_put64(b, salt);
  return nx_crc32c(0, b, 8);
}

static uint64_t new_salt(uint64_t old) {
  uint64_t s = 0;
  if (getentropy(&s, sizeof s) != 0) s = nx_mono_ns() * 0x9E3779B97F4A7C15ull;
  if (s == 0 || s == old) s = old * 6364136223846793005ull + 1442695040888963407ull;
  return s;
}

int wasp_create_header(pager *p) {
  uint8_t h[WASP_HDR];
  memset(h, 0, sizeof h);
  uint64_t salt = new_salt(p->salt);
  memcpy(h, WASP_MAGIC, 8);
  nx_put32(h + 8, NX_FORMAT_VERSION);
  nx_put32(h + 12, p->ps);
  nx_put64(h + 16, salt);
  nx_put64(h + 24, p->log_base);
  memcpy(h + 32, p->file_id, 16);
  nx_put32(h + 48, nx_crc32c(0, h, 48));
  int rc = os_pwrite(p->log, h, WASP_HDR, 0);
  if (rc == NX_OK && !p->memory) {
    rc = os_sync(p->log);
    atomic_fetch_add(&p->fsyncs, 1);
  }
  if (rc) return rc;
  p->salt = salt;
  p->log_end = WASP_HDR;
  p->chain = wasp_chain_seed(salt);
  pthread_mutex_lock(&p->mu);
  p->app_off = p->synced_off = WASP_HDR;
  pthread_mutex_unlock(&p->mu);
  return NX_OK;
}

/* Extends the log file with written zeros up to want, past p->grown (grow_mu held). */
static int grow_locked(pager *p, uint64_t want) {
  int rc = os_preallocate(p->log, want);
  if (rc == NX_OK) p->grown = want;
  return rc;
}

/* Makes sure the log has room up to `end` (preallocated in steps so that commits overwrite
 * allocated blocks instead of growing the file). The checkpoint thread may have grown it
 * already (wasp_grow_ahead); else the writer grows it here. */
static int log_reserve(pager *p, uint64_t end) {
  if (end <= p->log_alloc || p->memory) return NX_OK;
  /* steps of 1 MiB, smaller when checkpoints keep the log small */
  uint64_t step = p->ckpt_bytes / 2 < (1u << 20) ? p->ckpt_bytes / 2 : (1u << 20);
  if (step < 65536) step = 65536;
  uint64_t want = (end + step - 1) / step * step;
  pthread_mutex_lock(&p->grow_mu);
  int rc = NX_OK;
  if (p->grown >= end) want = p->grown;
  else rc = grow_locked(p, want);
  pthread_mutex_unlock(&p->grow_mu);
  if (rc) return rc;
  p->log_alloc = want;
  return NX_OK;
}

/* The log ahead of the writer (the checkpoint thread's second job). A commit whose frames land
 * in zeros that are still dirty, or not yet written, makes its own fdatasync flush them and
 * allocate their blocks. So, with a background thread and FULL durability, once the writer's
 * room falls under half of WASP_GROW_AHEAD, the thread writes zeros up to WASP_GROW_AHEAD past
 * the log end and syncs them: commits then only overwrite allocated, clean blocks, and the zeros
 * leave the commit path. This matters in a log's first generation (a new database, a bulk load),
 * because a checkpoint restarts the log in the space it already has. A failed extension is left
 * to the writer, who meets it in log_reserve and reports it; a failed sync poisons the handle,
 * as any failed fsync of the log does. */
#define WASP_GROW_AHEAD ((uint64_t)4 << 20)
int wasp_grow_ahead(pager *p, uint64_t end) {
  uint64_t mib = (uint64_t)1 << 20, want = (end + WASP_GROW_AHEAD + mib - 1) / mib * mib;
  pthread_mutex_lock(&p->grow_mu);
  /* end lies past the file only when a truncation came after the request: nothing to grow for */
  bool need = end <= p->grown && p->grown < want;
  int rc = need ? grow_locked(p, want) : NX_OK;
  pthread_mutex_unlock(&p->grow_mu);
  if (!need || rc) return rc;
  rc = os_sync(p->log);
  atomic_fetch_add(&p->fsyncs, 1);
  if (rc) {
    pager_poison(p, rc);
    return nx_err_prefix(rc, "%s: syncing the log's new space failed; the handle is poisoned: ", p->wasp_path);
  }
  return NX_OK;
}

static void record_header(pager *p, uint8_t *h, uint8_t kind, uint64_t txn, uint32_t pgno, uint32_t len,
                          const uint8_t *payload, size_t crc_len) {
  memset(h, 0, FR_HDR);
  nx_put32(h, FR_MAGIC);
  h[4] = kind;
  nx_put64(h + 8, p->salt);
  nx_put64(h + 16, txn);
  nx_put32(h + 24, pgno);
  nx_put32(h + 28, len);
  uint32_t c = nx_crc32c(0, h, 32);
  c = nx_crc32c(c, payload, crc_len);
  nx_put32(h + 32, c);
  p->chain = nx_crc32c(p->chain, h + 32, 4);
  nx_put32(h + 36, p->chain);
}

int wasp_write_frames(pager *p, pg_txn *t, pg_ent **ents, size_t n, bool spill) {
  size_t fsz = FR_HDR + p->ps;
  size_t per = p->scratch_len / fsz;
  for (size_t i = 0; i < n;) {
    size_t k = n - i < per ? n - i : per;
    uint64_t off = p->log_end;
    int rc = log_reserve(p, off + k * fsz);
    if (rc) return rc;
    for (size_t j = 0; j < k; j++) {
      pg_ent *e = ents[i + j];
      uint8_t *page = e->data;
      nx_put32(page + 4, e->pgno);
      nx_put64(page + 8, t->txnid);
      memset(page + 17, 0, 7);
      pager_page_seal(p, page);
      uint8_t *dst = p->scratch + j * fsz;
      record_header(p, dst, FR_PAGE, t->txnid, e->pgno, p->ps, page, 4);
      memcpy(dst + FR_HDR, page, p->ps);
      e->log_off = off + j * fsz;
    }
    rc = os_pwrite(p->log, p->scratch, k * fsz, off);
    if (rc) return rc;
    p->log_end = off + k * fsz;
    t->nframes += k;
    if (spill) {
      for (size_t j = 0; j < k; j++) {
        pg_ent *e = ents[i + j];
        pg_buf_free(p, e->data);
        e->data = NULL;
        e->spilled = 1;
        t->nresident--;
        atomic_fetch_sub(&p->ndirty, 1);
      }
    }
    i += k;
  }
  return NX_OK;
}

int wasp_read_frame_page(pager *p, uint64_t off, uint32_t pgno, uint8_t *buf) {
  size_t got = 0;
  int rc = os_pread(p->log, buf, p->ps, off + FR_HDR, &got);
  if (rc) return rc;
  if (got < p->ps)
    return NX_CORRUPT_BKPT("page %u: its log frame at offset %llu of %s is cut short", pgno, (unsigned long long)off,
                           p->wasp_path);
  return pager_page_check(p, buf, pgno, p->wasp_path, off);
}

/* Writes the commit record of t at the log end. */
static int write_commit_record(pager *p, pg_txn *t) {
  size_t plen = CM_FIXED + 4 * (t->freed.n + t->reused.n);
  size_t padded = (plen + 63) / 64 * 64;
  uint8_t *rec = nx_calloc(1, FR_HDR + padded);
  if (!rec) return nx_err(NX_NOMEM, "%s: out of memory writing a commit record", p->path);
  uint8_t *pl = rec + FR_HDR;
  pthread_mutex_lock(&p->mu);
  uint64_t synced = p->synced_off;
  pthread_mutex_unlock(&p->mu);
  nx_put64(pl, synced);
  nx_put32(pl + 8, t->page_count);
  nx_put32(pl + 12, (uint32_t)t->freed.n);
  nx_put32(pl + 16, (uint32_t)t->reused.n);
  nx_put32(pl + 20, (uint32_t)t->nframes);
  memcpy(pl + 24, t->roots, PG_ROOTS);
  uint8_t *q = pl + CM_FIXED;
  for (size_t i = 0; i < t->freed.n; i++, q += 4) nx_put32(q, t->freed.v[i]);
  for (size_t i = 0; i < t->reused.n; i++, q += 4) nx_put32(q, t->reused.v[i]);
  record_header(p, rec, FR_COMMIT, t->txnid, 0, (uint32_t)plen, pl, plen);
  uint64_t off = p->log_end;
  int rc = log_reserve(p, off + FR_HDR + padded);
  if (rc == NX_OK) rc = os_pwrite(p->log, rec, FR_HDR + padded, off);
  nx_free(rec);
  if (rc == NX_OK) p->log_end = off + FR_HDR + padded;
  return rc;
}

/* Publishes t's pages to the log index and the cache and its state to the writer. */
static int publish(pager *p, pg_txn *t) {
  int rc = NX_OK;
  pthread_rwlock_wrlock(&p->idx_lock);
  for (pg_ent *e = t->dlist.next; e != &t->dlist && rc == NX_OK; e = e->next)
    if (!e->dead) rc = li_put(&p->idx, e->pgno, e->log_off);
  pthread_rwlock_unlock(&p->idx_lock);
  for (pg_ent *e = t->dlist.next; e != &t->dlist; e = e->next) {
    if (e->dead) continue;
    if (e->data) {
      uint8_t *d = e->data;
      e->data = NULL;
      atomic_fetch_sub(&p->ndirty, 1);
      t->nresident--;
      if (!pc_insert(p, e->pgno, d, true, false, false)) pc_drop(p, e->pgno);
    } else {
      pc_drop(p, e->pgno);
    }
  }
  pthread_mutex_lock(&p->mu);
  for (size_t i = 0; i < t->freed.n && rc == NX_OK; i++) rc = free_push(&p->pending, t->freed.v[i], t->txnid);
  pthread_mutex_unlock(&p->mu);
  /* freed pages leave the cache: new snapshots cannot reach them, and an older reader that still
   * does reloads them from disk (their bytes stay until the page is reused, after that reader) */
  for (size_t i = 0; i < t->freed.n; i++) pc_drop(p, t->freed.v[i]);
  p->last_txn = t->txnid;
  memcpy(p->last_roots, t->roots, PG_ROOTS);
  atomic_store(&p->page_count, t->page_count);
  atomic_fetch_add(&p->commits, 1);
  return rc;
}

/* A checkpoint is due: with the background thread, wakes it and returns true, unless the log
 * has grown past twice the threshold meanwhile (writers outpace it: the commit checkpoints
 * itself, which waits for a running pass 1 and reuses what it copied). */
static bool ck_delegate(pager *p, uint64_t end) {
  if (!p->ck_thread_on || end - WASP_HDR > 2 * p->ckpt_bytes) return false;
  pthread_mutex_lock(&p->mu);
  if (!p->ck_busy) {
    p->ck_want = true;
    pthread_cond_broadcast(&p->ck_cv);
  }
  pthread_mutex_unlock(&p->mu);
  return true;
}

int wasp_commit(pg_txn *t) {
  pager *p = t->p;
  int rc;
  atomic_store(&p->w_owner, 0); /* the txn ends here, whatever happens */
  if (pager_poisoned(p, &rc)) {
    pager_rollback(t);
    return rc;
  }
  if (t->ndirty == 0 && t->freed.n == 0 && t->reused.n == 0 && t->nframes == 0 && !t->roots_set) {
    pager_rollback(t); /* nothing to commit */
    return NX_OK;
  }
  /* frames for the resident dirty pages, then the commit record */
  pg_ent *batch[16];
  size_t nb = 0;
  rc = NX_OK;
  for (pg_ent *e = t->dlist.next; e != &t->dlist && rc == NX_OK; e = e->next) {
    if (e->dead || !e->data) continue;
    batch[nb++] = e;
    if (nb == 16) {
      rc = wasp_write_frames(p, t, batch, nb, false);
      nb = 0;
    }
  }
  if (rc == NX_OK && nb) rc = wasp_write_frames(p, t, batch, nb, false);
  /* everything publish() needs is allocated before the record exists: once it is written the
   * commit cannot fail for want of memory */
  if (rc == NX_OK) {
    pthread_rwlock_wrlock(&p->idx_lock);
    rc = li_reserve(&p->idx, t->ndirty);
    pthread_rwlock_unlock(&p->idx_lock);
  }
  if (rc == NX_OK) {
    pthread_mutex_lock(&p->mu);
    rc = free_reserve(&p->pending, t->freed.n);
    pthread_mutex_unlock(&p->mu);
  }
  if (rc == NX_OK) rc = write_commit_record(p, t);
  if (rc) {
    pager_rollback(t);
    return nx_err_prefix(rc, "commit of txn %llu to %s: ", (unsigned long long)t->txnid, p->wasp_path);
  }
  uint64_t end = p->log_end;
  rc = publish(p, t);
  pager_drop_dirty(t);
  if (rc) {
    /* the record is in the log but the in-memory state is incomplete: only a reopen fixes it */
    pager_poison(p, rc);
    pthread_mutex_unlock(&p->wmu);
    return rc;
  }
  pthread_mutex_lock(&p->mu);
  if (p->ck_thread_on && p->dur == NX_DURABILITY_FULL && p->log_alloc - end < WASP_GROW_AHEAD / 2 && !p->grow_want) {
    p->grow_want = true; /* wasp_grow_ahead */
    p->grow_from = end;
    p->grow_gen = p->log_gen;
    pthread_cond_broadcast(&p->ck_cv);
  }
  uint64_t gen = p->log_gen;
  p->app_off = end;
  p->app_txn = t->txnid;
  memcpy(p->app_roots, t->roots, PG_ROOTS);
  if (p->dur != NX_DURABILITY_FULL) {
    p->vis_txn = t->txnid;
    memcpy(p->vis_roots, t->roots, PG_ROOTS);
  }
  pthread_mutex_unlock(&p->mu);
  if (p->dur == NX_DURABILITY_FULL) {
    pthread_mutex_unlock(&p->wmu);
    rc = wasp_sync_upto(p, gen, end);
    if (rc) return rc;
    if (end - WASP_HDR > p->ckpt_bytes && !ck_delegate(p, end) && pthread_mutex_trylock(&p->wmu) == 0) {
      (void)wasp_checkpoint_locked(p, NX_CHECKPOINT_PASSIVE);
      pthread_mutex_unlock(&p->wmu);
    }
    return NX_OK;
  }
  if (end - WASP_HDR > p->ckpt_bytes && !ck_delegate(p, end)) (void)wasp_checkpoint_locked(p, NX_CHECKPOINT_PASSIVE);
  pthread_mutex_unlock(&p->wmu);
  return NX_OK;
}

int wasp_sync_upto(pager *p, uint64_t gen, uint64_t off) {
  int rc = NX_OK;
  pthread_mutex_lock(&p->mu);
  /* A newer log generation means a checkpoint made everything appended in generation gen
   * durable (it syncs the log first, then the main file and the meta, then restarts the log,
   * which resets synced_off): offsets of gen are not comparable with the new ones, and waiting
   * for synced_off to pass off would spin on fsyncs for ever (found by stress_concurrency under
   * ASan: a committer waiting here while the checkpoint thread's pass 2 restarted the log). */
  while (p->log_gen == gen && p->synced_off < off) {
    if (p->poison) {
      rc = NX_FATAL;
      break;
    }
    if (p->syncing) {
      pthread_cond_wait(&p->cv, &p->mu);
      continue;
    }
    /* lead: fsync up to the highest appended offset for everyone waiting */
    p->syncing = true;
    uint64_t target = p->app_off, lgen = p->log_gen;
    uint64_t ttxn = p->app_txn;
    uint8_t roots[PG_ROOTS];
    memcpy(roots, p->app_roots, PG_ROOTS);
    pthread_mutex_unlock(&p->mu);
    int src = os_sync(p->log);
    atomic_fetch_add(&p->fsyncs, 1);
    pthread_mutex_lock(&p->mu);
    p->syncing = false;
    if (src) {
      p->poison = src;
      pthread_cond_broadcast(&p->cv);
      pthread_mutex_unlock(&p->mu);
      return nx_err_prefix(src, "fsync of the log failed; the handle is poisoned until reopened: ");
    }
    if (lgen == p->log_gen && target > p->synced_off) p->synced_off = target;
    if (ttxn > p->vis_txn) {
      p->vis_txn = ttxn;
      memcpy(p->vis_roots, roots, PG_ROOTS);
    }
    pthread_cond_broadcast(&p->cv);
  }
  pthread_mutex_unlock(&p->mu);
  if (rc == NX_FATAL)
    return nx_err(NX_IO, "%s: fsync of the log failed in this commit group; the handle is poisoned until reopened",
                  p->wasp_path);
  return rc;
}

/* ---- checkpoint ---- */
typedef struct idx_pair {
  uint32_t pgno;
  uint64_t off;
} idx_pair;

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static int cmp_pair(const void *a, const void *b) {
  uint32_t x = ((const idx_pair *)a)->pgno, y = ((const idx_pair *)b)->pgno;
  return x < y ? -1 : x > y;
}

/* The log index's frames at offsets in [from, to), unsorted; *k of them (*out NULL: none). */
static int idx_frames(pager *p, uint64_t from, uint64_t to, idx_pair **out, size_t *k) {
  *out = NULL;
  *k = 0;
  pthread_rwlock_rdlock(&p->idx_lock);
  size_t n = p->idx.n;
  idx_pair *v = n ? nx_malloc(n * sizeof *v) : NULL;
  if (n && !v) {
    pthread_rwlock_unlock(&p->idx_lock);
    return nx_err(NX_NOMEM, "%s: out of memory in checkpoint", p->path);
  }
  size_t seen = 0;
  for (size_t i = 0; i < p->idx.cap && seen < n; i++)
    if (p->idx.keys[i]) {
      seen++;
      uint64_t off = p->idx.offs[i];
      if (off < from || off >= to) continue;
      v[*k].pgno = p->idx.keys[i] - 1;
      v[*k].off = off;
      (*k)++;
    }
  pthread_rwlock_unlock(&p->idx_lock);
  *out = v;
  return NX_OK;
}

/* Writes the pages of frames v[0..k) (sorted by page) into the main file, runs of consecutive
 * pages in one write each, through buf (buflen bytes, at least one page). */
static int write_frames_to_main(pager *p, const idx_pair *v, size_t k, uint8_t *buf, size_t buflen) {
  size_t per = buflen / p->ps;
  int rc = NX_OK;
  for (size_t i = 0; i < k && rc == NX_OK;) {
    size_t j = 0;
    while (i + j < k && j < per && (j == 0 || v[i + j].pgno == v[i].pgno + j)) {
      uint8_t *dst = buf + j * p->ps;
      pg_ent *e = pc_get(p, v[i + j].pgno);
      if (e) {
        memcpy(dst, e->data, p->ps);
        pc_unpin(p, e);
      } else {
        rc = wasp_read_frame_page(p, v[i + j].off, v[i + j].pgno, dst);
        if (rc) break;
      }
      j++;
    }
    if (rc == NX_OK) rc = os_pwrite(p->db, buf, j * p->ps, (uint64_t)v[i].pgno * p->ps);
    i += j;
  }
  return rc;
}

/* Copies the frames of the log index into the main file, in page order, except those at
 * offsets below `from` (a background pass 1 copied and synced them). */
static int copy_frames(pager *p, uint64_t from) {
  size_t k = 0;
  idx_pair *v;
  int rc = idx_frames(p, from, UINT64_MAX, &v, &k);
  if (rc || !v) return rc;
  /* Frames of pages that a later commit already freed are not copied when no reader can still
   * reach them (every live snapshot is at or after the freeing txn; readers that begin later see
   * the newest state): neither meta reaches them either, as they were written in this log
   * generation. Rewriting a page in every commit thus costs one main-file write per checkpoint
   * for its last copy only. */
  pthread_mutex_lock(&p->mu);
  uint64_t oldest = rt_oldest(&p->rt, p->last_txn);
  size_t nd = 0;
  uint32_t *dead = nx_malloc((p->pending.n ? p->pending.n : 1) * sizeof *dead);
  if (dead)
    for (size_t i = 0; i < p->pending.n; i++)
      if (p->pending.v[i].txn <= oldest) dead[nd++] = p->pending.v[i].pgno;
  pthread_mutex_unlock(&p->mu);
  if (dead && nd) {
    pg_qsort(dead, nd, sizeof *dead, cmp_u32);
    size_t w = 0;
    for (size_t i = 0; i < k; i++)
      if (!bsearch(&v[i].pgno, dead, nd, sizeof *dead, cmp_u32)) v[w++] = v[i];
    k = w;
  }
  nx_free(dead);
  pg_qsort(v, k, sizeof *v, cmp_pair);
  rc = write_frames_to_main(p, v, k, p->scratch, p->scratch_len);
  nx_free(v);
  return rc;
}

/*
 * Free-space map: runs of free pages, 16 bytes each: first page (4), page count (4), the txn
 * that freed them (8; 0 = reusable whatever the readers and metas). When the runs fit, they live
 * in the meta page itself (offset 144); else in a chain of pages (type PG_T_FREEMAP), written at
 * checkpoint straight into the main file:
 *   OFFSET SIZE MEANING
 *        0   24 page header
 *       24    4 next free-space map page (0 = last)
 *       28    4 runs in this page
 *       32 16*n runs
 */
static int cmp_ent(const void *a, const void *b) {
  const freeent *x = a, *y = b;
  if (x->txn != y->txn) return x->txn < y->txn ? -1 : 1;
  return x->pgno < y->pgno ? -1 : x->pgno > y->pgno;
}

/* Sorts ents by (txn, pgno) and encodes them as runs into out (NULL: count only). */
static size_t make_runs(freeent *e, size_t n, uint8_t *out) {
  size_t runs = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i + 1;
    while (j < n && e[j].txn == e[i].txn && e[j].pgno == e[i].pgno + (j - i)) j++;
    if (out) {
      nx_put32(out + runs * FM_ENTRY, e[i].pgno);
      nx_put32(out + runs * FM_ENTRY + 4, (uint32_t)(j - i));
      nx_put64(out + runs * FM_ENTRY + 8, e[i].txn);
    }
    runs++;
    i = j;
  }
  return runs;
}

int wasp_write_freemap(pager *p, os_file *f, const uint8_t *runs, size_t n, const u32vec *pages, uint64_t txn) {
  size_t per = (p->ps - FM_ENTRIES) / FM_ENTRY;
  uint8_t *pg = nx_malloc(p->ps);
  if (!pg) return nx_err(NX_NOMEM, "%s: out of memory writing the free-space map", p->path);
  int rc = NX_OK;
  size_t at = 0;
  for (size_t i = 0; i < pages->n && rc == NX_OK; i++) {
    memset(pg, 0, p->ps);
    nx_put32(pg + 4, pages->v[i]);
    nx_put64(pg + 8, txn);
    pg[16] = PG_T_FREEMAP;
    nx_put32(pg + FM_NEXT, i + 1 < pages->n ? pages->v[i + 1] : 0);
    size_t c = n - at < per ? n - at : per;
    nx_put32(pg + FM_COUNT, (uint32_t)c);
    memcpy(pg + FM_ENTRIES, runs + at * FM_ENTRY, c * FM_ENTRY);
    at += c;
    pager_page_seal(p, pg);
    rc = os_pwrite(f, pg, p->ps, (uint64_t)pages->v[i] * p->ps);
  }
  nx_free(pg);
  return rc;
}

/* Gathers every free page (ready, pending, and the old map's pages freed by X). mu held. */
static freeent *gather_free(pager *p, uint64_t X, size_t *n) {
  size_t total = p->ready.n + p->pending.n + p->fm_pages.n, k = 0;
  *n = 0;
  freeent *e = nx_malloc((total ? total : 1) * sizeof *e);
  if (!e) return NULL;
  for (size_t i = 0; i < p->ready.n; i++) e[k++] = (freeent){p->ready.v[i], 0};
  for (size_t i = 0; i < p->pending.n; i++) e[k++] = p->pending.v[i];
  for (size_t i = 0; i < p->fm_pages.n; i++) e[k++] = (freeent){p->fm_pages.v[i], X};
  *n = k;
  return e;
}

static int cmp_desc32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? 1 : x > y ? -1 : 0;
}

/* Puts pages back into the ready list (after a failed checkpoint). */
static void unready_restore(pager *p, const u32vec *pages, uint32_t from, uint32_t to) {
  pthread_mutex_lock(&p->mu);
  for (size_t i = 0; i < pages->n; i++)
    if (pages->v[i] < from) (void)u32_push(&p->ready, pages->v[i]);
  for (uint32_t g = from; g < to; g++) (void)u32_push(&p->ready, g);
  pg_qsort(p->ready.v, p->ready.n, sizeof *p->ready.v, cmp_desc32);
  pthread_mutex_unlock(&p->mu);
}

static int sync_main(pager *p) {
  int rc = os_sync(p->db);
  if (rc) {
    pager_poison(p, rc);
    return nx_err_prefix(rc, "checkpoint: fsync of the main file failed; the handle is poisoned: ");
  }
  return NX_OK;
}

static int checkpoint_locked(pager *p, nx_checkpoint_mode mode);

int wasp_checkpoint_locked(pager *p, nx_checkpoint_mode mode) {
  wasp_ck_hold(p);
  int rc = checkpoint_locked(p, mode);
  wasp_ck_unhold(p);
  return rc;
}

static int checkpoint_locked(pager *p, nx_checkpoint_mode mode) {
  int rc = NX_OK; /* the "nothing to do" path returned it unset unless durability was FULL */
  if (pager_poisoned(p, &rc)) return rc;
  if (p->read_only) return NX_OK;
  if (p->dur == NX_DURABILITY_FULL) {
    pthread_mutex_lock(&p->mu);
    uint64_t a = p->app_off, gen = p->log_gen;
    pthread_mutex_unlock(&p->mu);
    rc = wasp_sync_upto(p, gen, a);
    if (rc) return rc;
  }
  pthread_mutex_lock(&p->mu);
  pager_promote_free(p);
  bool can_trim = p->ready.n && p->ready.v[0] == atomic_load(&p->page_count) - 1;
  pthread_mutex_unlock(&p->mu);
  if (p->log_end == WASP_HDR && p->last_txn == p->meta_txn[0] && p->last_txn == p->meta_txn[1] && !can_trim) {
    if (mode == NX_CHECKPOINT_TRUNCATE && !p->memory) {
      pthread_mutex_lock(&p->grow_mu); /* the checkpoint thread may have grown it past log_alloc */
      if (p->log_alloc > WASP_HDR || p->grown > WASP_HDR) {
        rc = os_truncate(p->log, WASP_HDR);
        if (rc == NX_OK) p->log_alloc = p->grown = WASP_HDR;
      }
      pthread_mutex_unlock(&p->grow_mu);
    }
    return rc;
  }
  uint64_t X = p->last_txn;
  /* 1. frames into the main file (but those a background pass 1 already copied and synced) */
  pthread_mutex_lock(&p->mu);
  uint64_t from = p->ck_done_off;
  pthread_mutex_unlock(&p->mu);
  rc = copy_frames(p, from);
  if (rc) return nx_err_prefix(rc, "checkpoint of %s: ", p->path);
  /* 2. the new free-space state: trim trailing free pages, choose map pages, encode runs */
  uint32_t old_count = atomic_load(&p->page_count), new_count = old_count;
  u32vec fm = {0};
  freeent *ents = NULL;
  uint8_t *runs = NULL;
  size_t nents = 0, nruns = 0;
  pthread_mutex_lock(&p->mu);
  pager_promote_free(p);
  size_t trim = 0;
  while (trim < p->ready.n && p->ready.v[trim] == new_count - 1 && new_count > 2) {
    trim++;
    new_count--;
  }
  if (trim && p->ready.n > trim) memmove(p->ready.v, p->ready.v + trim, (p->ready.n - trim) * sizeof *p->ready.v);
  p->ready.n -= trim;
  uint32_t trimmed_to = new_count;
  ents = gather_free(p, X, &nents);
  if (!ents) rc = nx_err(NX_NOMEM, "%s: out of memory in checkpoint", p->path);
  if (rc == NX_OK) {
    pg_qsort(ents, nents, sizeof *ents, cmp_ent);
    nruns = make_runs(ents, nents, NULL);
    if (nruns > (p->ps - MT_INLINE) / FM_ENTRY) {
      /* map pages: the lowest ready pages (taking the low end of a run never adds a run) */
      size_t per = (p->ps - FM_ENTRIES) / FM_ENTRY;
      size_t need = (nruns + 1 + per - 1) / per;
      while (fm.n < need && rc == NX_OK) rc = u32_push(&fm, p->ready.n ? p->ready.v[--p->ready.n] : new_count++);
      nx_free(ents);
      ents = rc == NX_OK ? gather_free(p, X, &nents) : NULL;
      if (!ents && rc == NX_OK) rc = nx_err(NX_NOMEM, "%s: out of memory in checkpoint", p->path);
      if (rc == NX_OK) pg_qsort(ents, nents, sizeof *ents, cmp_ent);
    }
  }
  if (rc == NX_OK) {
    nruns = make_runs(ents, nents, NULL);
    runs = nx_malloc((nruns ? nruns : 1) * FM_ENTRY);
    if (!runs) rc = nx_err(NX_NOMEM, "%s: out of memory in checkpoint", p->path);
    else make_runs(ents, nents, runs);
  }
  pthread_mutex_unlock(&p->mu);
  nx_free(ents);
  /* 3. write the map, fsync, write the older meta, fsync */
  if (rc == NX_OK && fm.n) rc = wasp_write_freemap(p, p->db, runs, nruns, &fm, X);
  if (rc == NX_OK) rc = sync_main(p); /* frames and map durable before the meta names them */
  int slot = 1 - p->meta_newest;
  u32vec old_fm = p->fm_pages;
  if (rc == NX_OK) {
    p->fm_pages = fm;
    rc = pager_write_meta(p, slot, X, new_count, p->last_roots, (uint32_t)nruns, fm.n ? NULL : runs);
    if (rc) p->fm_pages = old_fm;
  }
  nx_free(runs);
  if (rc == NX_OK) rc = sync_main(p);
  if (rc) {
    if (p->fm_pages.v == fm.v) p->fm_pages = old_fm;
    unready_restore(p, &fm, trimmed_to, old_count);
    u32_free(&fm);
    return nx_err_prefix(rc, "checkpoint of %s: ", p->path);
  }
  /* 4. the new meta is durable */
  pthread_mutex_lock(&p->mu);
  p->meta_txn[slot] = X;
  p->meta_newest = slot;
  p->meta_seq++;
  for (size_t i = 0; i < old_fm.n; i++) (void)free_push(&p->pending, old_fm.v[i], X);
  atomic_store(&p->page_count, new_count);
  pthread_mutex_unlock(&p->mu);
  u32_free(&old_fm);
  if (new_count < old_count) (void)os_truncate(p->db, (uint64_t)new_count * p->ps);
  /* 5. restart the log */
  pthread_rwlock_wrlock(&p->idx_lock);
  li_clear(&p->idx);
  pthread_rwlock_unlock(&p->idx_lock);
  pthread_mutex_lock(&p->mu);
  p->log_gen++; /* what a pass 1 copied belongs to the old generation */
  p->ck_done_off = 0;
  pthread_mutex_unlock(&p->mu);
  p->log_base = X;
  if (mode == NX_CHECKPOINT_TRUNCATE && !p->memory) {
    pthread_mutex_lock(&p->grow_mu);
    rc = os_truncate(p->log, WASP_HDR);
    if (rc == NX_OK) p->log_alloc = p->grown = WASP_HDR;
    pthread_mutex_unlock(&p->grow_mu);
  }
  if (rc == NX_OK) rc = wasp_create_header(p);
  if (rc) {
    pager_poison(p, rc);
    return nx_err_prefix(rc, "checkpoint of %s: restarting the log failed; the handle is poisoned: ", p->path);
  }
  if (p->memory) {
    /* an in-memory log need not keep its old generations */
    (void)os_truncate(p->log, WASP_HDR);
  }
  atomic_fetch_add(&p->ckpts, 1);
  pthread_mutex_lock(&p->mu);
  pager_promote_free(p);
  pthread_mutex_unlock(&p->mu);
  return NX_OK;
}

/* ---- background checkpoint ----
 * A checkpoint's long part, copying the log's pages into the main file and fsyncing it, needs
 * no writer lock: within one log generation a page number is written by one commit only (a
 * page freed in this generation is reusable only after the next meta, pager_promote_free), and
 * the main-file slot of a page written in this generation held a free page that no snapshot
 * or meta reaches (readers find the page in the log index, never in the main file, until the
 * log restarts). So pass 1 copies the frames below the durable end of the log into the main
 * file and fsyncs it while writers commit; pass 2, under the writer lock, is the ordinary
 * checkpoint minus those frames: it copies what was committed meanwhile, writes the map and
 * the meta, and restarts the log. A crash at any point of pass 1 leaves the meta and the log
 * as they were, so recovery replays the log over those slots.
 *
 * Exclusion: a pass 1 runs only while ck_hold is 0; every other checkpoint and compaction
 * raises ck_hold and waits for a running pass 1 to end (wasp_ck_hold), so no pass 1 overlaps a
 * log restart or a file swap. Pass 1 never takes wmu, so a holder of wmu may wait for it. */
void wasp_ck_hold(pager *p) {
  pthread_mutex_lock(&p->mu);
  p->ck_hold++;
  while (p->ck_busy) pthread_cond_wait(&p->ck_cv, &p->mu);
  pthread_mutex_unlock(&p->mu);
}

void wasp_ck_unhold(pager *p) {
  pthread_mutex_lock(&p->mu);
  p->ck_hold--;
  pthread_mutex_unlock(&p->mu);
}

/* Pass 1 with ck_busy set by the caller (mu not held): copies the frames in [from, to) of
 * generation gen and fsyncs the main file. */
static int pass1(pager *p, uint64_t from, uint64_t to) {
  size_t k = 0;
  idx_pair *v;
  int rc = idx_frames(p, from, to, &v, &k);
  if (rc || !v) return rc;
  pg_qsort(v, k, sizeof *v, cmp_pair);
  size_t blen = 16 * (size_t)p->ps;
  uint8_t *buf = nx_malloc(blen);
  if (!buf) rc = nx_err(NX_NOMEM, "%s: out of memory in checkpoint", p->path);
  /* in slices, each synced: the writer's log fsyncs then wait behind one slice's write-back
   * at most, not behind the whole log's */
  size_t slice = ((size_t)8 << 20) / p->ps;
  for (size_t i = 0; rc == NX_OK && i < k; i += slice) {
    rc = write_frames_to_main(p, v + i, k - i < slice ? k - i : slice, buf, blen);
    if (rc == NX_OK) rc = sync_main(p);
  }
  nx_free(buf);
  nx_free(v);
  return rc;
}

/* The end of the log's committed frames that a pass 1 may copy (mu held): the durable ones, or
 * all appended ones when commits are not synced. */
static uint64_t pass1_limit(const pager *p) { return p->dur == NX_DURABILITY_FULL ? p->synced_off : p->app_off; }

/* One pass 1 (mu held, released while it copies): copies what the generation has beyond
 * ck_done_off. *ran false (and NX_OK) when none may start now; *same false when the log
 * restarted meanwhile, so that what it copied belongs to no checkpoint to come. */
static int pass1_round(pager *p, bool *ran, bool *same) {
  *ran = *same = false;
  uint64_t gen = p->log_gen, from = p->ck_done_off, to = pass1_limit(p);
  if (p->ck_busy || p->ck_hold || p->poison || to <= from) return NX_OK;
  p->ck_busy = true;
  pthread_mutex_unlock(&p->mu);
  int rc = pass1(p, from, to);
  pthread_mutex_lock(&p->mu);
  p->ck_busy = false;
  *ran = true;
  *same = gen == p->log_gen;
  if (rc == NX_OK && *same) p->ck_done_off = to;
  pthread_cond_broadcast(&p->ck_cv);
  return rc;
}

int wasp_ck_pass1(pager *p) {
  bool ran, same;
  pthread_mutex_lock(&p->mu);
  int rc = pass1_round(p, &ran, &same);
  pthread_mutex_unlock(&p->mu);
  return rc;
}

static void *ck_main(void *arg) {
  pager *p = arg;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (!p->ck_stop && !p->ck_want && !p->grow_want) pthread_cond_wait(&p->ck_cv, &p->mu);
    if (p->ck_stop) break;
    if (p->grow_want) {
      uint64_t from = p->grow_from;
      bool stale = p->grow_gen != p->log_gen; /* a restart (maybe a truncation) came between */
      pthread_mutex_unlock(&p->mu);
      if (!stale) (void)wasp_grow_ahead(p, from);
      pthread_mutex_lock(&p->mu);
      p->grow_want = false;
      continue;
    }
    p->ck_want = false;
    if (p->app_off - WASP_HDR <= p->ckpt_bytes) continue; /* a checkpoint ran meanwhile */
    uint64_t gen = p->log_gen;
    bool go = false;
    /* what was committed during a pass is pass 2's to copy under the writer lock: while that
     * is much, another pass 1 shrinks it (two more at most, so a fast writer cannot keep us
     * here); a round that may not start leaves what the earlier ones did to pass 2 */
    for (int round = 0; round < 3 && (round == 0 || pass1_limit(p) - p->ck_done_off > p->ckpt_bytes / 16); round++) {
      bool ran, same;
      int rc = pass1_round(p, &ran, &same);
      if (!ran) break;
      go = rc == NX_OK && same && !p->ck_stop;
      if (!go) break;
    }
    pthread_mutex_unlock(&p->mu);
    if (go) {
      /* pass 2: short, under the writer lock (errors poison the handle or wait for the next
       * checkpoint, which reports them to its caller) */
      pthread_mutex_lock(&p->wmu);
      pthread_mutex_lock(&p->mu);
      bool same = gen == p->log_gen;
      pthread_mutex_unlock(&p->mu);
      if (same && wasp_checkpoint_locked(p, NX_CHECKPOINT_PASSIVE) == NX_OK) atomic_fetch_add(&p->ckpts_bg, 1);
      pthread_mutex_unlock(&p->wmu);
    }
    pthread_mutex_lock(&p->mu);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

int wasp_ck_start(pager *p) {
  if (pthread_create(&p->ck_thread, NULL, ck_main, p) != 0)
    return nx_err(NX_NOMEM, "%s: cannot start the checkpoint thread", p->path);
  p->ck_thread_on = true;
  return NX_OK;
}

void wasp_ck_stop(pager *p) {
  if (!p->ck_thread_on) return;
  pthread_mutex_lock(&p->mu);
  p->ck_stop = true;
  pthread_cond_broadcast(&p->ck_cv);
  pthread_mutex_unlock(&p->mu);
  pthread_join(p->ck_thread, NULL);
  p->ck_thread_on = false;
}
