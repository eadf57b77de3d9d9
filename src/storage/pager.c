/*
 * pager.c: opening and closing, meta pages, transactions and the page API of pager.h.
 *
 * Design notes (see also wasp.c for the log and its crash-safety rules)
 *  1. A committed page is never changed in place: every page a write txn dirties has a page
 *     number that no snapshot (no live reader, neither meta page) can reach. So readers need no
 *     lock against the writer; a reader's snapshot is only (txn id, roots).
 *  2. Free pages: a page freed by txn T goes to `pending` with T. It moves to `ready` (reusable)
 *     only when every live reader's snapshot is >= T and the newest durable meta page is at txn
 *     >= T (pager_promote_free). Consequences: (a) a page number appears at most once per log
 *     generation (metas move only at checkpoints, which restart the log), so the log index needs
 *     no versions; (b) a checkpoint copying frames into the main file never overwrites a page
 *     that a reader or the newest meta can reach. The older meta is never the one recovery
 *     picks while the newest is intact (a checkpoint writes the older slot, never the newest),
 *     so its pages may be reused; if the newest meta is damaged, the older one's tree is checked
 *     like any other (parent references carry page number and txn id, the log's base txn must
 *     match) and a reused page is reported as NX_CORRUPT, never read as data.
 *  3. Meta pages 0 and 1 are written alternately, only by checkpoints (and at creation). The
 *     valid one with the highest txn id wins at open.
 *  4. The writer's dirty pages live in a private hash; pinned dirty pages are never spilled; an
 *     unpinned dirty page may be spilled to the log (wasp.c) when the dirty set outgrows its share
 *     of the cache. A spilled page is immutable: pg_write on it copies it to a new page number.
 *  5. States of a handle: open -> (poisoned after a failed fsync: every call returns NX_FATAL)
 *     -> closed. pager_poison moves it; nothing moves it back but reopening.
 */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pager_int.h"

/* Under AddressSanitizer a free page buffer is poisoned (all but its free-stack link): the
 * chunks hide the buffers from malloc, so this is what still catches a read of a page image
 * after its entry gave it back. */
#if defined(__SANITIZE_ADDRESS__)
#define NX_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NX_ASAN 1
#endif
#endif
#ifdef NX_ASAN
#include <sanitizer/asan_interface.h>
#define BUF_POISON(p, b) ASAN_POISON_MEMORY_REGION((b) + sizeof(void *), (p)->ps - sizeof(void *))
#define BUF_UNPOISON(p, b) ASAN_UNPOISON_MEMORY_REGION((b), (p)->ps)
#define BUF_POISON_CHUNK(c, n) ASAN_POISON_MEMORY_REGION((c), (n))
#else
#define BUF_POISON_CHUNK(c, n) ((void)0)
#define BUF_POISON(p, b) ((void)0)
#define BUF_UNPOISON(p, b) ((void)0)
#endif

/* ---- small vectors ---- */
int u32_push(u32vec *a, uint32_t x) {
  if (a->n == a->cap) {
    size_t nc = a->cap ? a->cap * 2 : 64;
    uint32_t *nv = nx_realloc(a->v, nc * sizeof *nv);
    if (!nv) return nx_err(NX_NOMEM, "pager: out of memory");
    a->v = nv;
    a->cap = nc;
  }
  a->v[a->n++] = x;
  return NX_OK;
}

void u32_free(u32vec *a) {
  nx_free(a->v);
  memset(a, 0, sizeof *a);
}

int free_reserve(freevec *a, size_t more) {
  if (a->n + more <= a->cap) return NX_OK;
  size_t nc = a->cap ? a->cap : 64;
  while (nc < a->n + more) nc *= 2;
  freeent *nv = nx_realloc(a->v, nc * sizeof *nv);
  if (!nv) return nx_err(NX_NOMEM, "pager: out of memory");
  a->v = nv;
  a->cap = nc;
  return NX_OK;
}

int free_push(freevec *a, uint32_t pgno, uint64_t txn) {
  if (a->n == a->cap) {
    size_t nc = a->cap ? a->cap * 2 : 64;
    freeent *nv = nx_realloc(a->v, nc * sizeof *nv);
    if (!nv) return nx_err(NX_NOMEM, "pager: out of memory");
    a->v = nv;
    a->cap = nc;
  }
  a->v[a->n].pgno = pgno;
  a->v[a->n].txn = txn;
  a->n++;
  return NX_OK;
}

/* ---- poison ---- */
bool pager_poisoned(pager *p, int *rc) {
  pthread_mutex_lock(&p->mu);
  int x = p->poison;
  pthread_mutex_unlock(&p->mu);
  if (x) *rc = nx_err(NX_FATAL, "%s: the handle is unusable after a failed fsync; reopen the database", p->path);
  return x != 0;
}

void pager_poison(pager *p, int rc) {
  pthread_mutex_lock(&p->mu);
  if (!p->poison) p->poison = rc ? rc : NX_FATAL;
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
}

/* ---- page checksums ---- */
void pager_page_seal(pager *p, uint8_t *page) { nx_put32(page, nx_crc32c(0, page + 4, p->ps - 4)); }

int pager_page_check(pager *p, const uint8_t *page, uint32_t pgno, const char *where, uint64_t off) {
  uint32_t want = nx_get32(page);
  uint32_t got = nx_crc32c(0, page + 4, p->ps - 4);
  if (want != got)
    return NX_CORRUPT_BKPT("page %u in %s at offset %llu: checksum mismatch (stored %08x, computed %08x)", pgno,
                           where, (unsigned long long)off, want, got);
  if (nx_get32(page + 4) != pgno)
    return NX_CORRUPT_BKPT("page %u in %s at offset %llu: header names page %u (misdirected write)", pgno, where,
                           (unsigned long long)off, nx_get32(page + 4));
  return NX_OK;
}

/* ---- free space ---- */
static int cmp_desc(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? 1 : x > y ? -1 : 0;
}

void pager_promote_free(pager *p) {
  /* the newest durable meta is the one recovery uses; the older one is only a fallback for a
   * damaged newest meta (see note 2) */
  uint64_t limit = p->meta_txn[0] > p->meta_txn[1] ? p->meta_txn[0] : p->meta_txn[1];
  limit = rt_oldest(&p->rt, limit);
  size_t k = 0;
  while (k < p->pending.n && p->pending.v[k].txn <= limit) k++;
  if (!k) return;
  /* sort the k promoted pages descending, then merge them into the (descending) ready list */
  uint32_t *add = nx_malloc(k * sizeof *add);
  if (!add || p->ready.n + k > p->ready.cap) {
    size_t nc = p->ready.cap ? p->ready.cap : 64;
    while (nc < p->ready.n + k) nc *= 2;
    uint32_t *nv = add ? nx_realloc(p->ready.v, nc * sizeof *nv) : NULL;
    if (!nv) {
      nx_free(add); /* OOM: everything stays pending, promoted later */
      return;
    }
    p->ready.v = nv;
    p->ready.cap = nc;
  }
  for (size_t i = 0; i < k; i++) add[i] = p->pending.v[i].pgno;
  pg_qsort(add, k, sizeof *add, cmp_desc);
  size_t i = p->ready.n, j = k, w = p->ready.n + k;
  while (j > 0) {
    /* fill from the back with the smaller of the two tails */
    if (i > 0 && p->ready.v[i - 1] < add[j - 1]) p->ready.v[--w] = p->ready.v[--i];
    else p->ready.v[--w] = add[--j];
  }
  p->ready.n += k;
  nx_free(add);
  if (p->pending.n > k) memmove(p->pending.v, p->pending.v + k, (p->pending.n - k) * sizeof *p->pending.v);
  p->pending.n -= k;
}

/* ---- meta pages ---- */
/*
 * Meta page (pages 0 and 1):
 *   OFFSET SIZE MEANING
 *        0   24 page header (checksum, page number 0 or 1, txn id, type PG_T_META)
 *       24    8 magic "NEXUSLT\0"
 *       32    4 format version (NX_FORMAT_VERSION)
 *       36    4 page size
 *       40   16 file id (random at creation; the log names it too)
 *       56    4 page count (pages in the main file that this state uses)
 *       60    4 first page of the free-space map (0 = none or inline)
 *       64    4 free-space map runs
 *       68    4 free-space map pages (0: the runs are inline at offset 144)
 *       72    8 write sequence: +1 at every meta write (the higher wins when txn ids tie)
 *       80   64 user roots (PG_ROOTS)
 *      144 16*n inline free-space map runs when they fit: first page (4), pages (4), freeing txn (8)
 *        .    . zero
 */
int pager_write_meta(pager *p, int slot, uint64_t txn, uint32_t page_count, const uint8_t roots[PG_ROOTS],
                     uint32_t fm_runs, const uint8_t *inline_runs) {
  uint8_t *m = nx_calloc(1, p->ps);
  if (!m) return nx_err(NX_NOMEM, "%s: out of memory writing a meta page", p->path);
  nx_put32(m + 4, (uint32_t)slot);
  nx_put64(m + 8, txn);
  m[16] = PG_T_META;
  memcpy(m + MT_MAGIC, META_MAGIC, 8);
  nx_put32(m + MT_VERSION, NX_FORMAT_VERSION);
  nx_put32(m + MT_PAGESIZE, p->ps);
  memcpy(m + MT_FILEID, p->file_id, 16);
  nx_put32(m + MT_PAGECOUNT, page_count);
  nx_put32(m + MT_FMROOT, p->fm_pages.n ? p->fm_pages.v[0] : 0);
  nx_put32(m + MT_FMCOUNT, fm_runs);
  if (inline_runs) memcpy(m + MT_INLINE, inline_runs, (size_t)fm_runs * FM_ENTRY);
  nx_put32(m + MT_FMPAGES, (uint32_t)p->fm_pages.n);
  nx_put64(m + MT_SEQ, p->meta_seq + 1);
  memcpy(m + MT_ROOTS, roots, PG_ROOTS);
  pager_page_seal(p, m);
  int rc = os_pwrite(p->db, m, p->ps, (uint64_t)slot * p->ps);
  nx_free(m);
  return rc;
}

typedef struct meta_info {
  bool ok;
  uint64_t txn, seq;
  uint32_t ps, page_count, fm_root, fm_count, fm_npages;
  uint8_t file_id[16];
  uint8_t roots[PG_ROOTS];
  uint8_t *inl;  /* copy of the inline runs (owned), or NULL */
} meta_info;

static bool ps_valid(uint32_t ps) { return ps >= 4096 && ps <= 65536 && (ps & (ps - 1)) == 0; }

/* Reads meta slot `slot` assuming page size ps. Sets mi->ok when it is valid. Returns NX_VERSION
 * for a newer format, else NX_OK (an invalid meta is not an error by itself). */
static int read_meta(pager *p, int slot, uint32_t ps, uint8_t *buf, meta_info *mi) {
  memset(mi, 0, sizeof *mi);
  size_t got = 0;
  int rc = os_pread(p->db, buf, ps, (uint64_t)slot * ps, &got);
  if (rc) return rc;
  if (got < ps || memcmp(buf + MT_MAGIC, META_MAGIC, 8) != 0) return NX_OK;
  uint32_t ver = nx_get32(buf + MT_VERSION);
  if (ver > NX_FORMAT_VERSION && ver < 0x10000)
    return nx_err(NX_VERSION,
                  "%s was written by a newer NexusLite (file format version %u; this library reads up to %u): "
                  "upgrade the library to open it",
                  p->path, ver, NX_FORMAT_VERSION);
  if (ver == 0 || ver > NX_FORMAT_VERSION || nx_get32(buf + MT_PAGESIZE) != ps) return NX_OK;
  if (nx_get32(buf) != nx_crc32c(0, buf + 4, ps - 4) || nx_get32(buf + 4) != (uint32_t)slot || buf[16] != PG_T_META)
    return NX_OK;
  mi->ok = true;
  mi->txn = nx_get64(buf + 8);
  mi->ps = ps;
  mi->page_count = nx_get32(buf + MT_PAGECOUNT);
  mi->fm_root = nx_get32(buf + MT_FMROOT);
  mi->fm_count = nx_get32(buf + MT_FMCOUNT);
  mi->fm_npages = nx_get32(buf + MT_FMPAGES);
  mi->seq = nx_get64(buf + MT_SEQ);
  memcpy(mi->file_id, buf + MT_FILEID, 16);
  memcpy(mi->roots, buf + MT_ROOTS, PG_ROOTS);
  if (mi->page_count < 2) mi->ok = false;
  if (mi->ok && mi->fm_npages == 0 && mi->fm_count) {
    if (mi->fm_count > (ps - MT_INLINE) / FM_ENTRY) {
      mi->ok = false;
    } else {
      mi->inl = nx_malloc((size_t)mi->fm_count * FM_ENTRY);
      if (!mi->inl) return nx_err(NX_NOMEM, "%s: out of memory", p->path);
      memcpy(mi->inl, buf + MT_INLINE, (size_t)mi->fm_count * FM_ENTRY);
    }
  }
  return NX_OK;
}

/* Finds the valid meta with the highest txn id and sets page size, file id and meta txns. */
static int load_metas(pager *p, meta_info *best) {
  uint8_t *buf = nx_malloc(65536);
  if (!buf) return nx_err(NX_NOMEM, "%s: out of memory", p->path);
  meta_info m[2];
  int rc = NX_OK;
  uint32_t cand = 0;
  /* slot 0 names the page size when its first bytes are intact */
  size_t got = 0;
  rc = os_pread(p->db, buf, 4096, 0, &got);
  if (rc == NX_OK && got == 4096 && memcmp(buf + MT_MAGIC, META_MAGIC, 8) == 0 && ps_valid(nx_get32(buf + MT_PAGESIZE)))
    cand = nx_get32(buf + MT_PAGESIZE);
  memset(m, 0, sizeof m);
  for (int slot = 0; slot < 2 && rc == NX_OK; slot++) {
    if (cand) rc = read_meta(p, slot, cand, buf, &m[slot]);
    for (uint32_t ps = 4096; rc == NX_OK && !m[slot].ok && ps <= 65536; ps *= 2)
      if (ps != cand) rc = read_meta(p, slot, ps, buf, &m[slot]);
  }
  nx_free(buf);
  if (rc) {
    nx_free(m[0].inl);
    nx_free(m[1].inl);
    return rc;
  }
  if (!m[0].ok && !m[1].ok) return NX_CORRUPT_BKPT("%s: neither meta page (page 0 nor page 1) is valid", p->path);
  if (m[0].ok && m[1].ok && (m[0].ps != m[1].ps || memcmp(m[0].file_id, m[1].file_id, 16) != 0))
  {
    nx_free(m[0].inl);
    nx_free(m[1].inl);
    return NX_CORRUPT_BKPT("%s: the two meta pages disagree on page size or file id", p->path);
  }
  int b0 = !m[0].ok ? 1 : !m[1].ok ? 0 : (m[1].txn > m[0].txn || (m[1].txn == m[0].txn && m[1].seq > m[0].seq)) ? 1 : 0;
  int b = b0;
  nx_free(m[1 - b].inl);
  *best = m[b];
  p->ps = m[b].ps;
  memcpy(p->file_id, m[b].file_id, 16);
  p->meta_newest = b;
  p->meta_seq = m[b].seq;
  p->meta_txn[b] = m[b].txn;
  /* an invalid meta counts as the oldest possible state (txn 0): pages freed after it cannot be
   * reused until a checkpoint rewrites it */
  p->meta_txn[1 - b] = m[1 - b].ok ? m[1 - b].txn : 0;
  return NX_OK;
}

/* ---- creation ---- */
static void new_file_id(uint8_t id[16]) {
  if (getentropy(id, 16) != 0) {
    uint64_t a = nx_mono_ns() ^ ((uint64_t)getpid() << 32), b = (uint64_t)nx_now_ms() * 0x9E3779B97F4A7C15ull;
    nx_put64(id, a);
    nx_put64(id + 8, b);
  }
}

/* Writes both metas (txn 0, empty roots, 2 pages) into p->db. */
static int write_initial_metas(pager *p) {
  uint8_t roots[PG_ROOTS];
  memset(roots, 0, sizeof roots);
  p->meta_seq = 0;
  int rc = pager_write_meta(p, 0, 0, 2, roots, 0, NULL);
  p->meta_seq = 1;
  if (rc == NX_OK) rc = pager_write_meta(p, 1, 0, 2, roots, 0, NULL);
  p->meta_seq = 2;
  p->meta_newest = 1;
  return rc;
}

/* Creates a new database: NAME.new with both metas, synced, then the log, then a rename into
 * place and a directory sync, so that NAME exists only complete. */
static int create_db(pager *p) {
  size_t n = strlen(p->path) + 8;
  char *tmp = nx_malloc(n);
  if (!tmp) return nx_err(NX_NOMEM, "creating %s: out of memory", p->path);
  memcpy(tmp, p->path, n - 8);
  memcpy(tmp + n - 8, ".create", 8);
  new_file_id(p->file_id);
  int rc = os_open(tmp, OS_CREATE, &p->db);
  if (rc == NX_OK) rc = os_truncate(p->db, 0);
  if (rc == NX_OK) rc = write_initial_metas(p);
  if (rc == NX_OK) rc = os_sync(p->db);
  os_close(p->db);
  p->db = NULL;
  if (rc == NX_OK) rc = os_open(p->wasp_path, OS_CREATE, &p->log);
  if (rc == NX_OK) rc = os_truncate(p->log, 0);
  if (rc == NX_OK) {
    p->log_base = 0;
    rc = wasp_create_header(p);
  }
  os_close(p->log);
  p->log = NULL;
  if (rc == NX_OK) rc = os_rename(tmp, p->path);
  if (rc == NX_OK) rc = os_sync_dir(p->path);
  nx_free(tmp);
  return rc ? nx_err_prefix(rc, "creating %s: ", p->path) : NX_OK;
}

/* ---- open and close ---- */
static char *cat(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  char *s = nx_malloc(la + lb + 1);
  if (!s) return NULL;
  memcpy(s, a, la);
  memcpy(s + la, b, lb + 1);
  return s;
}

static void txn_free(pg_txn *t);

/* Buffers one cache line more than a page apart: at a stride of exactly the page size every
 * image's header would fall in the same few cache sets (4 KiB aliasing), and a get reads little
 * else of a leaf than its header and a few cells. */
static size_t buf_stride(const pager *p) { return (size_t)p->ps + 64; }

/* A new chunk (bufmu held), twice the last one's size up to slab_pages buffers, so a small
 * database never holds a big chunk. Returns its first buffer; the rest are handed out in order
 * by pg_buf_alloc (slab_next, slab_left), so a buffer is touched only when first used. NULL
 * when out of memory. */
static uint8_t *slab_grow(pager *p) {
  if (p->nslabs == p->slabs_cap) {
    uint32_t nc = p->slabs_cap ? p->slabs_cap * 2 : 16;
    uint8_t **nv = nx_realloc(p->slabs, nc * sizeof *nv);
    if (!nv) return NULL;
    p->slabs = nv;
    p->slabs_cap = nc;
  }
  uint32_t max = p->slab_pages ? p->slab_pages : 1; /* 0 until open has read the page size */
  uint32_t n = p->slab_step < 16 ? 16 : p->slab_step;
  if (n > max) n = max;
  size_t stride = buf_stride(p), bytes = (size_t)n * stride;
  /* A chunk of 2 MiB or more starts on a 2 MiB boundary and is advised as huge pages: one fault
   * (on a VM, one host-side fault too) per 2 MiB instead of per 4 KiB as the cache first fills.
   * The alignment costs up to 2 MiB of address space, never memory: the bytes before the
   * boundary are never touched. Unaligned, only the aligned interior could be huge, and the
   * ragged ends of each chunk took 4 KiB faults: 5.4-6.1k minor faults for a bulk insert of
   * 200k documents into a new database, 1.4k aligned (docs/design.md, "Page buffers come from
   * chunks"). */
  const size_t huge = (size_t)2 << 20;
  bool big = false;
#ifdef MADV_HUGEPAGE
  big = bytes >= huge;
#endif
  if (big) { /* whole huge pages, as many buffers as fit */
    bytes = (bytes + huge - 1) & ~(huge - 1);
    n = (uint32_t)(bytes / stride);
  }
  uint8_t *raw = nx_malloc(big ? bytes + huge : bytes);
  if (!raw) return NULL;
  uint8_t *c = raw;
#ifdef MADV_HUGEPAGE
  if (big) {
    c = (uint8_t *)(((uintptr_t)raw + huge - 1) & ~(uintptr_t)(huge - 1));
    (void)madvise(c, bytes, MADV_HUGEPAGE); /* advice only: a kernel without them ignores it */
  }
#endif
  BUF_POISON_CHUNK(c + stride, (size_t)n * stride - stride);
  p->slabs[p->nslabs++] = raw;
  p->slab_step = n * 2;
  p->slab_next = c + stride;
  p->slab_left = n - 1;
  return c;
}

uint8_t *pg_buf_alloc(pager *p, bool zero) {
  pthread_mutex_lock(&p->bufmu);
  uint8_t *b = p->buf_free;
  if (b) {
    void *next;
    memcpy(&next, b, sizeof next);
    p->buf_free = next;
    BUF_UNPOISON(p, b);
  } else if (p->slab_left) {
    b = p->slab_next;
    p->slab_next += buf_stride(p);
    p->slab_left--;
    BUF_UNPOISON(p, b);
  } else {
    b = slab_grow(p);
  }
  pthread_mutex_unlock(&p->bufmu);
  if (b && zero) memset(b, 0, p->ps);
  return b;
}

void pg_buf_free(pager *p, uint8_t *b) {
  if (!b) return;
  pthread_mutex_lock(&p->bufmu);
  memcpy(b, &p->buf_free, sizeof(void *));
  p->buf_free = b;
  BUF_POISON(p, b);
  pthread_mutex_unlock(&p->bufmu);
}

static void pager_free(pager *p) {
  while (p->rspare) {
    pg_txn *t = p->rspare;
    p->rspare = t->next_spare;
    txn_free(t);
  }
  os_close(p->log);
  os_close(p->db);
  if (p->lockf) {
    os_unlock(p->lockf);
    os_close(p->lockf);
  }
  pc_free(p);
  for (uint32_t i = 0; i < p->nslabs; i++) nx_free(p->slabs[i]); /* ASan's free repoisons */
  nx_free(p->slabs);
  pthread_mutex_destroy(&p->bufmu);
  pthread_mutex_destroy(&p->grow_mu);
  li_free(&p->idx);
  rt_free(&p->rt);
  u32_free(&p->ready);
  u32_free(&p->fm_pages);
  nx_free(p->pending.v);
  nx_free(p->scratch);
  pthread_mutex_destroy(&p->wmu);
  pthread_rwlock_destroy(&p->idx_lock);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->cv);
  pthread_cond_destroy(&p->ck_cv);
  nx_free(p->path);
  nx_free(p->wasp_path);
  nx_free(p->lock_path);
  nx_free(p);
}

static int open_files(pager *p, const nx_open_opts *o, meta_info *mi) {
  int rc;
  if (p->memory) {
    p->ps = o->page_size;
    new_file_id(p->file_id);
    rc = os_open(p->path, OS_MEMORY | OS_CREATE, &p->db);
    if (rc == NX_OK) rc = os_open(p->wasp_path, OS_MEMORY | OS_CREATE, &p->log);
    if (rc == NX_OK) rc = write_initial_metas(p);
    if (rc == NX_OK) rc = wasp_create_header(p);
    if (rc) return rc;
    memset(mi, 0, sizeof *mi);
    mi->ok = true;
    mi->page_count = 2;
    p->meta_txn[0] = p->meta_txn[1] = 0;
    return NX_OK;
  }
  rc = os_open(p->lock_path, OS_CREATE, &p->lockf);
  if (rc == NX_OK) rc = os_lock(p->lockf);
  if (rc) return rc;
  bool exists = false;
  rc = os_exists(p->path, &exists);
  if (rc) return rc;
  if (!exists) {
    if (!o->create_if_missing || o->read_only) return nx_err(NX_NOTFOUND, "database %s does not exist", p->path);
    p->ps = o->page_size;
    rc = create_db(p);
    if (rc) return rc;
  }
  rc = os_open(p->path, o->read_only ? OS_RDONLY : 0, &p->db);
  if (rc == NX_OK) rc = load_metas(p, mi);
  if (rc) return rc;
  rc = os_open(p->wasp_path, o->read_only ? OS_RDONLY : OS_CREATE, &p->log);
  if (rc == NX_NOTFOUND && o->read_only) rc = NX_OK; /* no log: nothing to recover */
  return rc;
}

int pager_open(const char *path, const nx_open_opts *opts, pager **out) {
  *out = NULL;
  nx_open_opts o = NX_OPEN_OPTS_INIT;
  if (opts) memcpy(&o, opts, opts->size && opts->size < sizeof o ? opts->size : sizeof o);
  o.size = sizeof o;
  if (!ps_valid(o.page_size)) return nx_err(NX_INVALID, "page size %u is not a power of two in 4096..65536", o.page_size);
  if (o.durability > NX_DURABILITY_OFF) return nx_err(NX_INVALID, "unknown durability %d", (int)o.durability);
  pager *p = nx_calloc(1, sizeof *p);
  if (!p) return nx_err(NX_NOMEM, "opening %s: out of memory", path);
  pthread_mutex_init(&p->wmu, NULL);
  /* writer-preferring: commits and log restarts must not starve behind a stream of readers'
   * page loads (glibc's default prefers readers); no thread takes it shared twice */
  pthread_rwlockattr_t ra;
  pthread_rwlockattr_init(&ra);
  pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init(&p->idx_lock, &ra);
  pthread_rwlockattr_destroy(&ra);
  pthread_mutex_init(&p->mu, NULL);
  pthread_mutex_init(&p->bufmu, NULL);
  pthread_mutex_init(&p->grow_mu, NULL);
  pthread_cond_init(&p->cv, NULL);
  pthread_cond_init(&p->ck_cv, NULL);
  p->memory = strcmp(path, ":memory:") == 0;
  p->read_only = o.read_only && !p->memory;
  p->dur = p->memory ? NX_DURABILITY_OFF : o.durability;
  p->ckpt_bytes = o.checkpoint_bytes ? o.checkpoint_bytes : (64u << 20);
  p->path = nx_strdup(path);
  p->wasp_path = cat(path, ".wasp");
  p->lock_path = cat(path, ".lock");
  int rc = (p->path && p->wasp_path && p->lock_path) ? pc_init(p) : NX_NOMEM;
  if (rc) {
    pager_free(p);
    return nx_err(NX_NOMEM, "opening %s: out of memory", path);
  }
  meta_info mi;
  memset(&mi, 0, sizeof mi);
  rc = open_files(p, &o, &mi);
  if (rc == NX_OK) {
    uint64_t cb = o.cache_bytes ? o.cache_bytes : (64u << 20);
    p->cap_pages = (size_t)(cb / p->ps);
    if (p->cap_pages < 64) p->cap_pages = 64;
    /* chunks grow to an eighth of the cache, 8 MiB at most (pager_int.h, bufmu) */
    size_t sp = p->cap_pages / 8, spmax = ((size_t)8 << 20) / p->ps;
    p->slab_pages = (uint32_t)(sp < 1 ? 1 : sp > spmax ? spmax : sp);
    p->scratch_len = 16 * (size_t)(p->ps + FR_HDR);
    p->scratch = nx_malloc(p->scratch_len);
    if (!p->scratch) rc = nx_err(NX_NOMEM, "opening %s: out of memory", path);
  }
  if (rc == NX_OK) {
    p->last_txn = p->vis_txn = mi.txn;
    memcpy(p->last_roots, mi.roots, PG_ROOTS);
    memcpy(p->vis_roots, mi.roots, PG_ROOTS);
    atomic_store(&p->page_count, mi.page_count);
    if (!p->memory) rc = pager_load_freemap(p, mi.fm_root, mi.fm_count, mi.fm_npages, mi.page_count, mi.inl);
  }
  nx_free(mi.inl);
  mi.inl = NULL;
  uint32_t pc = mi.page_count;
  if (rc == NX_OK && !p->memory) rc = wasp_recover(p, &pc, mi.txn);
  if (rc == NX_OK) {
    atomic_store(&p->page_count, pc);
    p->app_txn = p->vis_txn = p->last_txn;
    memcpy(p->vis_roots, p->last_roots, PG_ROOTS);
    memcpy(p->app_roots, p->last_roots, PG_ROOTS);
    pthread_mutex_lock(&p->mu);
    pager_promote_free(p);
    pthread_mutex_unlock(&p->mu);
  }
  /* recovery ends with a checkpoint (which also restarts the log with a fresh salt) */
  if (rc == NX_OK && !p->read_only && !p->memory) {
    pthread_mutex_lock(&p->wmu);
    rc = wasp_checkpoint_locked(p, NX_CHECKPOINT_FULL);
    pthread_mutex_unlock(&p->wmu);
  }
  if (rc == NX_OK && o.checkpoint_thread && !p->read_only && !p->memory) rc = wasp_ck_start(p);
  if (rc) {
    pager_free(p);
    return nx_err_prefix(rc, "opening %s: ", path);
  }
  *out = p;
  return NX_OK;
}

int pager_close(pager *p) {
  if (!p) return NX_OK;
  int rc = NX_OK;
  int prc;
  wasp_ck_stop(p); /* its pass 2 may be waiting for wmu: before we take it */
  if (!p->read_only && !p->memory && !pager_poisoned(p, &prc)) {
    pthread_mutex_lock(&p->wmu);
    rc = wasp_checkpoint_locked(p, NX_CHECKPOINT_FULL);
    pthread_mutex_unlock(&p->wmu);
  }
  pager_free(p);
  return rc;
}

uint32_t pager_page_size(const pager *p) { return p->ps; }
uint32_t pager_usable(const pager *p) { return p->ps - PG_HDR; }

void pager_stats(pager *p, nx_stats *out) {
  memset(out, 0, sizeof *out);
  out->page_size = p->ps;
  out->pages_total = atomic_load(&p->page_count);
  pthread_mutex_lock(&p->mu);
  out->pages_free = p->ready.n + p->pending.n;
  out->txn_id = p->vis_txn;
  out->log_bytes = p->app_off > WASP_HDR ? p->app_off - WASP_HDR : 0;
  pthread_mutex_unlock(&p->mu);
  out->cache_hits = atomic_load(&p->hits);
  out->cache_misses = atomic_load(&p->misses);
  out->commits = atomic_load(&p->commits);
  out->checkpoints = atomic_load(&p->ckpts);
  out->fsyncs = atomic_load(&p->fsyncs);
  out->checkpoints_background = atomic_load(&p->ckpts_bg);
}

int pager_checkpoint_pass1(pager *p) {
  int rc;
  if (pager_poisoned(p, &rc)) return rc;
  if (p->read_only || p->memory) return NX_OK;
  return wasp_ck_pass1(p);
}

int pager_grow_log_ahead(pager *p) {
  int rc;
  if (pager_poisoned(p, &rc)) return rc;
  if (p->read_only || p->memory) return NX_OK;
  pthread_mutex_lock(&p->wmu);
  uint64_t end = p->log_end;
  pthread_mutex_unlock(&p->wmu);
  return wasp_grow_ahead(p, end);
}

int pager_checkpoint(pager *p, nx_checkpoint_mode mode) {
  int rc;
  if (pager_poisoned(p, &rc)) return rc;
  if (p->read_only) return nx_err(NX_READONLY, "%s is open read-only: no checkpoint", p->path);
  if (atomic_load(&p->w_owner) == (uintptr_t)pthread_self())
    return nx_err(NX_BUSY, "%s: checkpoint requested by the thread that holds the write transaction (commit or "
                  "abort it first)", p->path);
  if (mode == NX_CHECKPOINT_PASSIVE) {
    if (pthread_mutex_trylock(&p->wmu) != 0) return nx_err(NX_BUSY, "%s: a write transaction is active", p->path);
  } else {
    pthread_mutex_lock(&p->wmu);
  }
  rc = wasp_checkpoint_locked(p, mode);
  pthread_mutex_unlock(&p->wmu);
  return rc;
}

/* ---- transactions ---- */
int pager_begin(pager *p, bool write, pg_txn **out) {
  *out = NULL;
  int rc;
  if (write && p->read_only) return nx_err(NX_READONLY, "%s is open read-only", p->path);
  if (!write) {
    /* A read txn: an ended one is reused when there is one (see pager_abort), so that a point
     * read allocates nothing. */
    pthread_mutex_lock(&p->mu);
    pg_txn *t = p->rspare;
    if (t) {
      p->rspare = t->next_spare;
      p->nrspare--;
    }
    pthread_mutex_unlock(&p->mu);
    if (!t) {
      t = nx_calloc(1, sizeof *t);
      if (t) t->slots = nx_calloc(TXN_SLOTS, sizeof *t->slots);
      if (!t || !t->slots) {
        if (t) nx_free(t->slots);
        nx_free(t);
        return nx_err(NX_NOMEM, "%s: out of memory beginning a transaction", p->path);
      }
      t->p = p;
      t->hz = -1;
      pthread_mutex_lock(&p->mu);
      if (~p->hz_used & ((1u << HZ_SLOTS) - 1u)) {
        t->hz = __builtin_ctz(~p->hz_used);
        p->hz_used |= 1u << t->hz;
      }
      pthread_mutex_unlock(&p->mu);
    }
    bool same; /* meaningless here: the txn starts with no pins */
    rc = pager_resume(t, &same); /* registers the snapshot */
    if (rc) {
      txn_free(t);
      return rc;
    }
    *out = t;
    return NX_OK;
  }
  pg_txn *t = nx_calloc(1, sizeof *t);
  if (!t) return nx_err(NX_NOMEM, "%s: out of memory beginning a transaction", p->path);
  t->p = p;
  t->hz = -1;
  t->write = write;
  t->slot = -1;
  t->dnb = 256;
  t->dht = nx_calloc(t->dnb, sizeof *t->dht);
  if (!t->dht) {
    nx_free(t);
    return nx_err(NX_NOMEM, "%s: out of memory beginning a transaction", p->path);
  }
  pthread_mutex_lock(&p->wmu);
  if (pager_poisoned(p, &rc)) {
    pthread_mutex_unlock(&p->wmu);
    nx_free(t->dht);
    nx_free(t);
    return rc;
  }
  atomic_store(&p->w_owner, (uintptr_t)pthread_self());
  t->txnid = p->last_txn + 1;
  memcpy(t->roots, p->last_roots, PG_ROOTS);
  t->page_count = atomic_load(&p->page_count);
  t->log_start = p->log_end;
  t->chain_start = p->chain;
  t->dlist.next = t->dlist.prev = &t->dlist;
  /* the writer's snapshot is the latest appended txn: register it so its pages stay put */
  pthread_mutex_lock(&p->mu);
  pager_promote_free(p);
  pthread_mutex_unlock(&p->mu);
  *out = t;
  return NX_OK;
}

/* Frees every dirty entry of a write txn. */
void pager_drop_dirty(pg_txn *t) {
  pager *p = t->p;
  pg_ent *e = t->dlist.next;
  while (e != &t->dlist) {
    pg_ent *n = e->next;
    if (e->data) atomic_fetch_sub(&p->ndirty, 1);
    pg_buf_free(p, e->data);
    nx_free(e);
    e = n;
  }
  t->dlist.next = t->dlist.prev = &t->dlist;
  nx_free(t->dht);
  t->dht = NULL;
  t->ndirty = t->nresident = 0;
}

/* Adds the txn's hit and miss counts to the pager's. */
static void txn_flush_counts(pg_txn *t) {
  if (t->hits) atomic_fetch_add_explicit(&t->p->hits, t->hits, memory_order_relaxed);
  if (t->misses) atomic_fetch_add_explicit(&t->p->misses, t->misses, memory_order_relaxed);
  t->hits = t->misses = 0;
}

/* Drops the pins a read txn's slots hold (and its hazard) and adds its counters to the pager's. */
static void txn_slots_clear(pg_txn *t) {
  if (t->hz_held) {
    atomic_store_explicit(&t->p->hz[t->hz].e, NULL, memory_order_release);
    t->hz_held = false;
  }
  while (t->slots_used) {
    unsigned i = (unsigned)__builtin_ctzll(t->slots_used);
    t->slots_used &= t->slots_used - 1;
    if (t->slots[i].e) pc_unpin(t->p, t->slots[i].e);
    t->slots[i].e = NULL;
    t->slots[i].users = 0;
  }
  txn_flush_counts(t);
}

static void txn_free(pg_txn *t) {
  if (t->slots) txn_slots_clear(t);
  if (t->hz >= 0) {
    pthread_mutex_lock(&t->p->mu);
    t->p->hz_used &= ~(1u << t->hz);
    pthread_mutex_unlock(&t->p->mu);
    t->hz = -1;
  }
  txn_flush_counts(t);
  nx_free(t->slots);
  u32_free(&t->freed);
  u32_free(&t->reused);
  nx_free(t->dht);
  nx_free(t);
}

void pager_park(pg_txn *t) {
  pager *p = t->p;
  txn_flush_counts(t);
  t->roots_set = false;
  pthread_mutex_lock(&p->mu);
  rt_del(&p->rt, t->slot);
  t->slot = -1;
  pthread_mutex_unlock(&p->mu);
}

int pager_resume(pg_txn *t, bool *same) {
  pager *p = t->p;
  *same = false;
  pthread_mutex_lock(&p->mu);
  int rc = p->poison ? NX_FATAL : rt_add(&p->rt, p->vis_txn, &t->slot);
  if (rc == NX_OK) {
    *same = t->txnid == p->vis_txn;
    t->txnid = p->vis_txn;
    memcpy(t->roots, p->vis_roots, PG_ROOTS);
  } else {
    t->slot = -1;
  }
  pthread_mutex_unlock(&p->mu);
  if (rc == NX_FATAL) (void)pager_poisoned(p, &rc);
  return rc;
}

void pager_drop_pins(pg_txn *t) { txn_slots_clear(t); }

/* Ends read txn t for good: its pins dropped, its reader slot (when registered) released, the
 * object kept as a spare or freed. */
static void read_txn_end(pg_txn *t) {
  pager *p = t->p;
  txn_slots_clear(t);
  t->roots_set = false;
  pthread_mutex_lock(&p->mu);
  rt_del(&p->rt, t->slot);
  t->slot = -1;
  bool keep = p->nrspare < PG_READ_SPARES;
  if (keep) {
    t->next_spare = p->rspare;
    p->rspare = t;
    p->nrspare++;
  }
  pthread_mutex_unlock(&p->mu);
  if (!keep) txn_free(t);
}

void pager_park_free(pg_txn *t) { read_txn_end(t); }

void pager_abort(pg_txn *t) {
  if (!t) return;
  if (!t->write) {
    read_txn_end(t);
    return;
  }
  pager_rollback(t);
  txn_free(t);
}

void pager_rollback(pg_txn *t) {
  pager *p = t->p;
  /* pages taken from the free list go back; the log rewinds over spilled frames */
  pthread_mutex_lock(&p->mu);
  for (size_t i = 0; i < t->reused.n; i++) (void)u32_push(&p->ready, t->reused.v[i]);
  pg_qsort(p->ready.v, p->ready.n, sizeof *p->ready.v, cmp_desc);
  pthread_mutex_unlock(&p->mu);
  p->log_end = t->log_start;
  p->chain = t->chain_start;
  pager_drop_dirty(t);
  atomic_store(&p->w_owner, 0);
  pthread_mutex_unlock(&p->wmu);
}

int pager_commit(pg_txn *t) {
  if (!t->write) {
    pager_abort(t);
    return NX_OK;
  }
  int rc = wasp_commit(t); /* releases wmu and frees the dirty set */
  txn_free(t);
  return rc;
}

void pg_set_cold(pg_txn *t, bool cold) { t->cold = cold; }
bool pg_is_write(const pg_txn *t) { return t->write; }
uint64_t pg_txnid(const pg_txn *t) { return t->txnid; }
pager *pg_pager(pg_txn *t) { return t->p; }
const uint8_t *pg_roots(const pg_txn *t) { return t->roots; }
void pg_set_roots(pg_txn *t, const uint8_t roots[PG_ROOTS]) {
  memcpy(t->roots, roots, PG_ROOTS);
  t->roots_set = true;
}

/* ---- the dirty set of a write txn ---- */
static pg_ent *dirty_find(pg_txn *t, uint32_t pgno) {
  for (pg_ent *e = t->dht[pg_hash(pgno) & (t->dnb - 1)]; e; e = e->hnext)
    if (e->pgno == pgno) return e;
  return NULL;
}

static int dirty_add(pg_txn *t, pg_ent *e) {
  if (t->ndirty + 1 > (size_t)t->dnb * 2) {
    uint32_t nb = t->dnb * 4;
    pg_ent **nh = nx_calloc(nb, sizeof *nh);
    if (!nh) return nx_err(NX_NOMEM, "%s: out of memory", t->p->path);
    pg_rehash(t->dht, t->dnb, nh, nb);
    nx_free(t->dht);
    t->dht = nh;
    t->dnb = nb;
  }
  uint32_t h = pg_hash(e->pgno) & (t->dnb - 1);
  e->hnext = t->dht[h];
  t->dht[h] = e;
  e->prev = t->dlist.prev;
  e->next = &t->dlist;
  t->dlist.prev->next = e;
  t->dlist.prev = e;
  t->ndirty++;
  t->nresident++;
  atomic_fetch_add(&t->p->ndirty, 1);
  return NX_OK;
}

static void dirty_remove(pg_txn *t, pg_ent *e) {
  pg_ent **pp = &t->dht[pg_hash(e->pgno) & (t->dnb - 1)];
  while (*pp != e) pp = &(*pp)->hnext;
  *pp = e->hnext;
  e->prev->next = e->next;
  e->next->prev = e->prev;
  t->ndirty--;
  if (e->data) {
    t->nresident--;
    atomic_fetch_sub(&t->p->ndirty, 1);
  }
  pg_buf_free(t->p, e->data);
  nx_free(e);
}

/* Spills the oldest unpinned resident dirty pages to the log when the dirty set passes half of
 * the cache budget, down to a quarter, and trims the clean cache so that clean + dirty stays
 * within the budget. */
static int maybe_spill(pg_txn *t) {
  pager *p = t->p;
  size_t hi = p->cap_pages / 2, lo = p->cap_pages / 4;
  if (t->nresident > hi) {
    pg_ent *batch[16];
    size_t nb = 0;
    for (pg_ent *e = t->dlist.next; e != &t->dlist && t->nresident > lo; e = e->next) {
      if (!e->data || e->pins > 0 || e->dead) continue;
      batch[nb++] = e;
      if (nb == 16) {
        int rc = wasp_write_frames(p, t, batch, nb, true);
        if (rc) return rc;
        nb = 0;
      }
    }
    if (nb) {
      int rc = wasp_write_frames(p, t, batch, nb, true);
      if (rc) return rc;
    }
    t->spilled_any = true;
  }
  size_t used = atomic_load(&p->ncached) + atomic_load(&p->ndirty);
  if (used > p->cap_pages) pc_shrink(p, used - p->cap_pages);
  return NX_OK;
}

/* ---- pages ---- */
static void fill_page(pg_page *out, pg_ent *e) {
  out->data = e->data;
  out->pgno = e->pgno;
  out->priv = e;
}

static int check_expect(pager *p, const uint8_t *data, uint32_t pgno, uint64_t expect) {
  if (expect && nx_get64(data + 8) != expect)
    return NX_CORRUPT_BKPT("page %u of %s: written by txn %llu, but its parent expects txn %llu (lost or stale write)",
                           pgno, p->path, (unsigned long long)nx_get64(data + 8), (unsigned long long)expect);
  return NX_OK;
}

/* Reads a committed page into a fresh buffer, verified: from its log frame when the log index
 * has one, else from the main file. */
static int load_page(pager *p, uint32_t pgno, uint8_t **out) {
  uint8_t *buf = pg_buf_alloc(p, false);
  if (!buf) return nx_err(NX_NOMEM, "%s: out of memory reading page %u", p->path, pgno);
  uint64_t off;
  int rc;
  pthread_rwlock_rdlock(&p->idx_lock); /* also keeps p->db in place (compaction swaps it) */
  if (li_get(&p->idx, pgno, &off)) {
    rc = wasp_read_frame_page(p, off, pgno, buf);
    pthread_rwlock_unlock(&p->idx_lock);
  } else {
    size_t got = 0;
    off = (uint64_t)pgno * p->ps;
    rc = os_pread(p->db, buf, p->ps, off, &got);
    pthread_rwlock_unlock(&p->idx_lock);
    if (rc == NX_OK && got < p->ps)
      rc = NX_CORRUPT_BKPT("page %u of %s: beyond the end of the file (offset %llu)", pgno, p->path,
                           (unsigned long long)off);
    if (rc == NX_OK) rc = pager_page_check(p, buf, pgno, p->path, off);
  }
  if (rc) {
    pg_buf_free(p, buf);
    return rc;
  }
  *out = buf;
  return NX_OK;
}

int pg_get(pg_txn *t, uint32_t pgno, uint64_t expect_txnid, pg_page *out) {
  pager *p = t->p;
  memset(out, 0, sizeof *out);
  if (t->write) {
    pg_ent *d = dirty_find(t, pgno);
    if (d && !d->dead) {
      if (d->data) {
        d->pins++;
        fill_page(out, d);
        return NX_OK;
      }
      /* spilled: read its frame back into a private copy */
      pg_ent *tmp = nx_calloc(1, sizeof *tmp);
      uint8_t *buf = pg_buf_alloc(p, false);
      int rc = (tmp && buf) ? wasp_read_frame_page(p, d->log_off, pgno, buf) : NX_NOMEM;
      if (rc) {
        nx_free(tmp);
        pg_buf_free(p, buf);
        return rc == NX_NOMEM ? nx_err(rc, "%s: out of memory", p->path) : rc;
      }
      tmp->pgno = pgno;
      tmp->kind = ENT_TEMP;
      tmp->data = buf;
      tmp->pins = 1;
      fill_page(out, tmp);
      return NX_OK;
    }
  }
  txn_slot *sl = t->slots ? &t->slots[pg_hash(pgno) >> 26] : NULL;
  if (sl && sl->e && sl->e->pgno == pgno) {
    /* this txn already holds a pin on it */
    t->hits++;
    int rc = check_expect(p, sl->e->data, pgno, expect_txnid);
    if (rc) return rc;
    sl->users++;
    out->data = sl->e->data;
    out->pgno = pgno;
    out->priv = (void *)((uintptr_t)sl | 1u);
    return NX_OK;
  }
  uint32_t limit = t->write ? t->page_count : atomic_load(&p->page_count);
  if (pgno < 2 || pgno >= limit)
    return NX_CORRUPT_BKPT("page %u of %s: out of range (page count %u)", pgno, p->path, limit);
  pg_ent *e = pc_get(p, pgno);
  if (e) {
    t->hits++;
  } else {
    t->misses++;
    uint8_t *buf = NULL;
    int rc = load_page(p, pgno, &buf);
    if (rc) return rc;
    e = pc_insert(p, pgno, buf, false, true, t->cold);
    if (!e) return nx_err(NX_NOMEM, "%s: out of memory caching page %u", p->path, pgno);
  }
  int rc = check_expect(p, e->data, pgno, expect_txnid);
  if (rc) {
    pc_unpin(p, e);
    return rc;
  }
  if (sl && sl->users == 0) {
    /* the slot takes this pin over (dropping its previous page) and hands out tagged handles */
    if (sl->e) pc_unpin(p, sl->e);
    sl->e = e;
    sl->users = 1;
    t->slots_used |= 1ull << (sl - t->slots);
    out->data = e->data;
    out->pgno = pgno;
    out->priv = (void *)((uintptr_t)sl | 1u);
    return NX_OK;
  }
  fill_page(out, e);
  return NX_OK;
}

/* True when h describes pgno and no cached page has been removed since it was made (a quick
 * check: nothing holds the page yet). */
static inline bool hint_fresh(pager *p, const pg_hint *h, uint32_t pgno) {
  return h && h->pgno == pgno && h->gen == atomic_load_explicit(&p->cache_gen, memory_order_relaxed);
}

/* The image h recorded for pgno, protected by hazard slot hz, or NULL (hz left empty): note 7,
 * publish the hazard, then confirm that nothing has left the cache since the hint. */
static const uint8_t *hint_hold(pager *p, pg_hazard *hz, const pg_hint *h, uint32_t pgno) {
  if (!hint_fresh(p, h, pgno)) return NULL;
  atomic_store(&hz->e, (pg_ent *)(uintptr_t)h->e);
  if (atomic_load(&p->cache_gen) == h->gen) return h->data;
  atomic_store_explicit(&hz->e, NULL, memory_order_release);
  return NULL;
}

int pg_get_point(pg_txn *t, uint32_t pgno, uint64_t expect_txnid, pg_hint *h, pg_page *out) {
  if (t->write || t->hz < 0 || t->hz_held) return pg_get(t, pgno, expect_txnid, out);
  pager *p = t->p;
  pg_hazard *hz = &p->hz[t->hz];
  const uint8_t *data = hint_hold(p, hz, h, pgno);
  if (!data) {
    uint64_t gen = atomic_load(&p->cache_gen); /* before the lookup validates the entry */
    pg_ent *e = pc_peek(p, pgno, hz);
    if (!e) return pg_get(t, pgno, expect_txnid, out);
    data = __atomic_load_n(&e->data, __ATOMIC_RELAXED);
    if (h) *h = (pg_hint){pgno, e, data, gen};
  }
  if (expect_txnid && nx_get64(data + 8) != expect_txnid) {
    /* let the locked path decide (and name the damage if there is any) */
    atomic_store_explicit(&hz->e, NULL, memory_order_release);
    if (h) h->pgno = 0;
    return pg_get(t, pgno, expect_txnid, out);
  }
  t->hits++;
  t->hz_held = true;
  memset(out, 0, sizeof *out);
  out->data = (uint8_t *)(uintptr_t)data;
  out->pgno = pgno;
  out->priv = PG_HAZARD_TAG;
  return NX_OK;
}

const uint8_t *pg_hint_peek(pg_txn *t, const pg_hint *h, uint32_t pgno) {
  return hint_fresh(t->p, h, pgno) ? h->data : NULL;
}

const uint8_t *pg_peek_hold(pg_txn *t, const pg_hint *h, uint32_t pgno) {
  if (t->write || t->hz < 0) return NULL;
  return hint_hold(t->p, &t->p->hz[t->hz + (int)HZ_SLOTS], h, pgno);
}

void pg_peek_release(pg_txn *t) {
  if (t->hz >= 0) atomic_store_explicit(&t->p->hz[t->hz + (int)HZ_SLOTS].e, NULL, memory_order_release);
}

void pg_release(pg_txn *t, pg_page *pg) {
  if (pg->priv == PG_HAZARD_TAG) {
    atomic_store_explicit(&t->p->hz[t->hz].e, NULL, memory_order_release);
    t->hz_held = false;
    memset(pg, 0, sizeof *pg);
    return;
  }
  if ((uintptr_t)pg->priv & 1u) {
    txn_slot *sl = (txn_slot *)((uintptr_t)pg->priv & ~(uintptr_t)1u);
    sl->users--;
    memset(pg, 0, sizeof *pg);
    return;
  }
  pg_ent *e = pg->priv;
  if (!e) return;
  if (e->kind == ENT_CLEAN) pc_unpin(t->p, e);
  else if (e->kind == ENT_DIRTY) {
    e->pins--;
    if (e->dead && e->pins <= 0) dirty_remove(t, e);
  } else {
    pg_buf_free(t->p, e->data);
    nx_free(e);
  }
  memset(pg, 0, sizeof *pg);
}

/* Takes a page number: the lowest reusable free page, else a new one at the end of the file. */
static int take_pgno(pg_txn *t, uint32_t *out) {
  pager *p = t->p;
  pthread_mutex_lock(&p->mu);
  if (p->ready.n) {
    uint32_t pg = p->ready.v[--p->ready.n];
    pthread_mutex_unlock(&p->mu);
    int rc = u32_push(&t->reused, pg);
    if (rc) {
      pthread_mutex_lock(&p->mu);
      p->ready.v[p->ready.n++] = pg;
      pthread_mutex_unlock(&p->mu);
      return rc;
    }
    *out = pg;
    return NX_OK;
  }
  pthread_mutex_unlock(&p->mu);
  if (t->page_count >= 0x7FFFFFF0u) return nx_err(NX_FULL, "%s: the database has reached its page limit", p->path);
  *out = t->page_count++;
  return NX_OK;
}

/* A new dirty page of the given type; its body is zeroed when zero is set (a new page), else left
 * for the caller to fill whole (a copy: zeroing it first cost a pass over every copied page). */
static int new_dirty(pg_txn *t, uint8_t type, bool zero, pg_ent **out) {
  pager *p = t->p;
  int rc = maybe_spill(t);
  if (rc) return rc;
  pg_ent *e = nx_calloc(1, sizeof *e);
  uint8_t *data = pg_buf_alloc(p, zero);
  if (data && !zero) memset(data, 0, PG_HDR);
  uint32_t pgno = 0;
  if (!e || !data) rc = nx_err(NX_NOMEM, "%s: out of memory allocating a page", p->path);
  if (rc == NX_OK) rc = take_pgno(t, &pgno);
  if (rc == NX_OK) {
    e->pgno = pgno;
    e->kind = ENT_DIRTY;
    e->data = data;
    e->pins = 1;
    nx_put32(data + 4, pgno);
    nx_put64(data + 8, t->txnid);
    data[16] = type;
    rc = dirty_add(t, e);
    if (rc) {
      /* give the number back */
      pthread_mutex_lock(&p->mu);
      (void)u32_push(&p->ready, pgno);
      pg_qsort(p->ready.v, p->ready.n, sizeof *p->ready.v, cmp_desc);
      pthread_mutex_unlock(&p->mu);
      if (t->reused.n && t->reused.v[t->reused.n - 1] == pgno) t->reused.n--;
    }
  }
  if (rc) {
    nx_free(e);
    pg_buf_free(p, data);
    return rc;
  }
  *out = e;
  return NX_OK;
}

int pg_alloc(pg_txn *t, uint8_t type, pg_page *out) {
  memset(out, 0, sizeof *out);
  if (!t->write) return nx_err(NX_MISUSE, "pg_alloc in a read transaction");
  pg_ent *e;
  int rc = new_dirty(t, type, true, &e);
  if (rc) return rc;
  fill_page(out, e);
  return NX_OK;
}

int pg_write(pg_txn *t, pg_page *pg) {
  if (!t->write) return nx_err(NX_MISUSE, "pg_write in a read transaction");
  pg_ent *old = pg->priv;
  if (old->kind == ENT_DIRTY && old->data) return NX_OK;
  pg_ent *e;
  int rc = new_dirty(t, pg_type(pg), false, &e);
  if (rc) return rc;
  memcpy(e->data + PG_HDR, pg->data + PG_HDR, t->p->ps - PG_HDR);
  rc = pg_free(t, pg->pgno);
  if (rc) {
    /* undo: the new page stays allocated but unreferenced; free it in this txn */
    e->pins = 0;
    (void)pg_free(t, e->pgno);
    return rc;
  }
  pg_release(t, pg);
  fill_page(pg, e);
  return NX_OK;
}

int pg_free(pg_txn *t, uint32_t pgno) {
  if (!t->write) return nx_err(NX_MISUSE, "pg_free in a read transaction");
  if (pgno < 2 || pgno >= t->page_count)
    return nx_err(NX_INVALID, "%s: pg_free of page %u out of range (page count %u)", t->p->path, pgno, t->page_count);
  int rc = u32_push(&t->freed, pgno);
  if (rc) return rc;
  pg_ent *d = dirty_find(t, pgno);
  if (d) {
    if (d->pins > 0) d->dead = 1;
    else dirty_remove(t, d);
  }
  return NX_OK;
}

int pager_owned_pages(pg_txn *t, int (*fn)(void *ctx, uint32_t pgno), void *ctx) {
  pager *p = t->p;
  int rc = fn(ctx, 0);
  if (rc == NX_OK) rc = fn(ctx, 1);
  if (rc) return rc;
  /* copy under mu, call fn outside it */
  u32vec all = {0};
  pthread_mutex_lock(&p->mu);
  for (size_t i = 0; i < p->ready.n && rc == NX_OK; i++) rc = u32_push(&all, p->ready.v[i]);
  for (size_t i = 0; i < p->pending.n && rc == NX_OK; i++) rc = u32_push(&all, p->pending.v[i].pgno);
  pthread_mutex_unlock(&p->mu);
  if (t->write) {
    for (size_t i = 0; i < p->fm_pages.n && rc == NX_OK; i++) rc = u32_push(&all, p->fm_pages.v[i]);
    for (size_t i = 0; i < t->freed.n && rc == NX_OK; i++) rc = u32_push(&all, t->freed.v[i]);
  } else {
    rc = nx_err(NX_MISUSE, "pager_owned_pages needs a write transaction");
  }
  for (size_t i = 0; i < all.n && rc == NX_OK; i++) rc = fn(ctx, all.v[i]);
  u32_free(&all);
  return rc;
}
