/*
 * wasp_recover.c: loading the free-space map and recovering the log at open.
 *
 * Recovery (see the byte tables in wasp.c):
 *  1. The newest valid meta page gives txn M, the page count and the free-space map.
 *  2. A log whose header is invalid (torn while restarting, or never written) or belongs to
 *     another file holds nothing newer than M: it is ignored and restarted. Unless the records
 *     after a broken header (each carries its salt) chain validly up to a commit newer than M:
 *     then the header was damaged in a live log and open fails with NX_CORRUPT.
 *  3. Records are accepted in order while magic, salt, self checksum, chain and page checksums
 *     hold. Page frames are held back until their txn's commit record; a commit record applies
 *     its frames, roots, page count and free-space changes (commits with txn <= M are already in
 *     the main file and are skipped). The scan stops at the first record that fails.
 *  4. A stop is a torn tail (dropped) unless some later intact commit record of the same
 *     generation says the log was synced past the stop: then bytes that were durable are damaged,
 *     and open fails with NX_CORRUPT naming the offset.
 *  5. pager_open then checkpoints, which restarts the log with a fresh salt.
 */
#include <stdlib.h>
#include <string.h>

#include "pager_int.h"

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static int cmp_desc_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? 1 : x > y ? -1 : 0;
}

static int cmp_free_txn(const void *a, const void *b) {
  const freeent *x = a, *y = b;
  if (x->txn != y->txn) return x->txn < y->txn ? -1 : 1;
  return x->pgno < y->pgno ? -1 : x->pgno > y->pgno;
}

/* Checks that no page is listed twice among free pages and map pages. */
static int check_unique(pager *p) {
  size_t n = p->ready.n + p->pending.n + p->fm_pages.n;
  if (n < 2) return NX_OK;
  uint32_t *all = nx_malloc(n * sizeof *all);
  if (!all) return nx_err(NX_NOMEM, "%s: out of memory loading the free-space map", p->path);
  size_t k = 0;
  for (size_t i = 0; i < p->ready.n; i++) all[k++] = p->ready.v[i];
  for (size_t i = 0; i < p->pending.n; i++) all[k++] = p->pending.v[i].pgno;
  for (size_t i = 0; i < p->fm_pages.n; i++) all[k++] = p->fm_pages.v[i];
  pg_qsort(all, k, sizeof *all, cmp_u32);
  int rc = NX_OK;
  for (size_t i = 1; i < k; i++)
    if (all[i] == all[i - 1]) {
      rc = NX_CORRUPT_BKPT("%s: page %u is listed twice in the free-space map", p->path, all[i]);
      break;
    }
  nx_free(all);
  return rc;
}

/* Expands n runs at r into the free lists. */
static int load_runs(pager *p, const uint8_t *r, size_t n, uint32_t page_count, uint64_t *total) {
  for (size_t i = 0; i < n; i++, r += FM_ENTRY) {
    uint32_t first = nx_get32(r), cnt = nx_get32(r + 4);
    uint64_t txn = nx_get64(r + 8);
    if (first < 2 || cnt == 0 || (uint64_t)first + cnt > page_count || *total + cnt > page_count)
      return NX_CORRUPT_BKPT("%s: free-space map run of %u pages at page %u is out of range (page count %u)", p->path,
                             cnt, first, page_count);
    *total += cnt;
    for (uint32_t k = 0; k < cnt; k++) {
      int rc = txn ? free_push(&p->pending, first + k, txn) : u32_push(&p->ready, first + k);
      if (rc) return rc;
    }
  }
  return NX_OK;
}

int pager_load_freemap(pager *p, uint32_t root, uint32_t runs, uint32_t npages, uint32_t page_count,
                       const uint8_t *inline_runs) {
  uint64_t total = 0;
  int rc = NX_OK;
  if (npages == 0) {
    if (root) return NX_CORRUPT_BKPT("%s: meta page names free-space map page %u but no map pages", p->path, root);
    if (runs && !inline_runs) return NX_CORRUPT_BKPT("%s: meta page lists %u inline runs but holds none", p->path, runs);
    rc = runs ? load_runs(p, inline_runs, runs, page_count, &total) : NX_OK;
  } else {
    uint8_t *pg = nx_malloc(p->ps);
    if (!pg) return nx_err(NX_NOMEM, "%s: out of memory loading the free-space map", p->path);
    size_t per = (p->ps - FM_ENTRIES) / FM_ENTRY;
    uint32_t cur = root, seen = 0;
    uint64_t nr = 0;
    while (cur && rc == NX_OK) {
      if (seen >= npages || cur < 2 || cur >= page_count) {
        rc = NX_CORRUPT_BKPT("%s: free-space map page %u out of range or chain too long (page count %u)", p->path, cur,
                             page_count);
        break;
      }
      size_t got = 0;
      uint64_t off = (uint64_t)cur * p->ps;
      rc = os_pread(p->db, pg, p->ps, off, &got);
      if (rc) break;
      if (got < p->ps) {
        rc = NX_CORRUPT_BKPT("%s: free-space map page %u beyond the end of the file", p->path, cur);
        break;
      }
      rc = pager_page_check(p, pg, cur, p->path, off);
      if (rc) break;
      uint32_t c = nx_get32(pg + FM_COUNT);
      if (pg[16] != PG_T_FREEMAP || c > per) {
        rc = NX_CORRUPT_BKPT("%s: page %u is not a valid free-space map page", p->path, cur);
        break;
      }
      rc = u32_push(&p->fm_pages, cur);
      if (rc == NX_OK) rc = load_runs(p, pg + FM_ENTRIES, c, page_count, &total);
      nr += c;
      seen++;
      cur = nx_get32(pg + FM_NEXT);
    }
    nx_free(pg);
    if (rc == NX_OK && (nr != runs || seen != npages))
      rc = NX_CORRUPT_BKPT("%s: free-space map holds %llu runs in %u pages; the meta page says %u in %u", p->path,
                           (unsigned long long)nr, seen, runs, npages);
  }
  if (rc == NX_OK) {
    if (p->pending.n) pg_qsort(p->pending.v, p->pending.n, sizeof *p->pending.v, cmp_free_txn);
    if (p->ready.n) pg_qsort(p->ready.v, p->ready.n, sizeof *p->ready.v, cmp_desc_u32);
    rc = check_unique(p);
  }
  return rc;
}

/* ---- the log scan ---- */
typedef struct scan {
  pager *p;
  uint64_t size;       /* log file size */
  uint64_t meta_txn;   /* M */
  uint8_t *payload;    /* buffer for a record's payload */
  size_t payload_cap;
  /* frames of the txn being read */
  uint32_t *fpg;
  uint64_t *foff;
  size_t nf, capf;
  uint64_t ftxn;
  /* accepted state */
  uint64_t last_txn;
  uint32_t page_count;
  u32vec reused;       /* taken from the map's free lists by replayed commits */
  freevec freed;       /* freed by replayed commits */
} scan;

static int scan_payload(scan *s, size_t n) {
  if (n <= s->payload_cap) return NX_OK;
  uint8_t *b = nx_realloc(s->payload, n);
  if (!b) return nx_err(NX_NOMEM, "%s: out of memory in recovery", s->p->path);
  s->payload = b;
  s->payload_cap = n;
  return NX_OK;
}

static int frame_push(scan *s, uint32_t pgno, uint64_t off) {
  if (s->nf == s->capf) {
    size_t nc = s->capf ? s->capf * 2 : 256;
    uint32_t *a = nx_realloc(s->fpg, nc * sizeof *a);
    if (!a) return nx_err(NX_NOMEM, "recovery: out of memory");
    s->fpg = a;
    uint64_t *b = nx_realloc(s->foff, nc * sizeof *b);
    if (!b) return nx_err(NX_NOMEM, "recovery: out of memory");
    s->foff = b;
    s->capf = nc;
  }
  s->fpg[s->nf] = pgno;
  s->foff[s->nf] = off;
  s->nf++;
  return NX_OK;
}

/* Reads and checks the record at off. Returns NX_OK with *len its total size when it is valid
 * and continues the chain (updating *chain), NX_DONE when it is not, or an error status. */
static int read_record(scan *s, uint64_t off, uint32_t *chain, uint8_t *h, uint64_t *len) {
  pager *p = s->p;
  if (off + FR_HDR > s->size) return NX_DONE;
  size_t got = 0;
  int rc = os_pread(p->log, h, FR_HDR, off, &got);
  if (rc) return rc;
  if (got < FR_HDR || nx_get32(h) != FR_MAGIC || nx_get64(h + 8) != p->salt) return NX_DONE;
  uint8_t kind = h[4];
  uint32_t plen = nx_get32(h + 28);
  uint64_t total;
  if (kind == FR_PAGE) {
    if (plen != p->ps) return NX_DONE;
    total = FR_HDR + (uint64_t)p->ps;
  } else if (kind == FR_COMMIT) {
    if (plen < CM_FIXED || plen > (256u << 20)) return NX_DONE;
    total = FR_HDR + ((uint64_t)plen + 63) / 64 * 64;
  } else {
    return NX_DONE;
  }
  if (off + total > s->size) return NX_DONE;
  rc = scan_payload(s, plen);
  if (rc) return rc;
  rc = os_pread(p->log, s->payload, plen, off + FR_HDR, &got);
  if (rc) return rc;
  if (got < plen) return NX_DONE;
  uint32_t c = nx_crc32c(0, h, 32);
  c = nx_crc32c(c, s->payload, kind == FR_PAGE ? 4 : plen);
  if (c != nx_get32(h + 32)) return NX_DONE;
  if (kind == FR_PAGE) {
    /* the page's own checksum covers the rest of the page */
    uint32_t pgno = nx_get32(h + 24);
    if (nx_get32(s->payload) != nx_crc32c(0, s->payload + 4, p->ps - 4) || nx_get32(s->payload + 4) != pgno ||
        nx_get64(s->payload + 8) != nx_get64(h + 16) || pgno < 2)
      return NX_DONE;
  }
  if (chain) {
    uint32_t nc = nx_crc32c(*chain, h + 32, 4);
    if (nc != nx_get32(h + 36)) return NX_DONE;
    *chain = nc;
  }
  *len = total;
  return NX_OK;
}

/* Applies an accepted commit record (payload in s->payload). */
static int apply_commit(scan *s, uint64_t txn) {
  pager *p = s->p;
  const uint8_t *pl = s->payload;
  uint32_t pc = nx_get32(pl + 8), nfree = nx_get32(pl + 12), nreu = nx_get32(pl + 16), nfr = nx_get32(pl + 20);
  if (nfr != s->nf || pc < 2) return NX_DONE;
  const uint8_t *q = pl + CM_FIXED;
  for (size_t i = 0; i < s->nf; i++)
    if (s->fpg[i] >= pc) return NX_DONE;
  if (txn <= s->meta_txn) {
    s->nf = 0;
    return NX_OK; /* already in the main file */
  }
  int rc = NX_OK;
  for (size_t i = 0; i < s->nf && rc == NX_OK; i++) rc = li_put(&p->idx, s->fpg[i], s->foff[i]);
  for (uint32_t i = 0; i < nfree && rc == NX_OK; i++, q += 4) rc = free_push(&s->freed, nx_get32(q), txn);
  for (uint32_t i = 0; i < nreu && rc == NX_OK; i++, q += 4) rc = u32_push(&s->reused, nx_get32(q));
  if (rc) return rc;
  memcpy(p->last_roots, pl + 24, PG_ROOTS);
  p->last_txn = txn;
  s->page_count = pc;
  s->nf = 0;
  return NX_OK;
}

/* After the scan stopped at `stop`: is there an intact commit record of this generation further
 * on that says the log was synced past `stop`? Scans in 1 MiB chunks at 64-byte steps. */
static int check_synced_past(scan *s, uint64_t stop) {
  pager *p = s->p;
  size_t chunk = 256u << 10;
  uint8_t *buf = nx_malloc(chunk);
  if (!buf) return nx_err(NX_NOMEM, "%s: out of memory in recovery", p->path);
  int rc = NX_OK;
  uint8_t h[FR_HDR];
  for (uint64_t base = stop + 64; base + FR_HDR <= s->size && rc == NX_OK; base += chunk) {
    size_t got = 0;
    rc = os_pread(p->log, buf, chunk, base, &got);
    if (rc) break;
    for (size_t o = 0; o + 40 <= got && rc == NX_OK; o += 64) {
      if (nx_get32(buf + o) != FR_MAGIC || buf[o + 4] != FR_COMMIT || nx_get64(buf + o + 8) != p->salt) continue;
      uint64_t len;
      int r = read_record(s, base + o, NULL, h, &len);
      if (r == NX_DONE) continue;
      if (r) {
        rc = r;
        break;
      }
      uint64_t synced = nx_get64(s->payload);
      if (synced > stop)
        rc = NX_CORRUPT_BKPT("%s: damaged log record at offset %llu, but the intact commit record of txn %llu at "
                             "offset %llu says the log was synced to offset %llu",
                             p->wasp_path, (unsigned long long)stop, (unsigned long long)nx_get64(h + 16),
                             (unsigned long long)(base + o), (unsigned long long)synced);
    }
  }
  nx_free(buf);
  return rc;
}

static int cmp_free_pg(const void *a, const void *b) {
  uint32_t x = ((const freeent *)a)->pgno, y = ((const freeent *)b)->pgno;
  return x < y ? -1 : x > y;
}

/* Removes the pages replayed commits took from the map's lists, then adds the pages they freed. */
static int apply_free_changes(pager *p, scan *s) {
  if (s->reused.n) {
    pg_qsort(s->reused.v, s->reused.n, sizeof *s->reused.v, cmp_u32);
    size_t k = 0;
    for (size_t i = 0; i < p->ready.n; i++)
      if (!bsearch(&p->ready.v[i], s->reused.v, s->reused.n, sizeof *s->reused.v, cmp_u32)) p->ready.v[k++] = p->ready.v[i];
    p->ready.n = k;
    k = 0;
    for (size_t i = 0; i < p->pending.n; i++)
      if (!bsearch(&p->pending.v[i].pgno, s->reused.v, s->reused.n, sizeof *s->reused.v, cmp_u32))
        p->pending.v[k++] = p->pending.v[i];
    p->pending.n = k;
  }
  (void)cmp_free_pg;
  for (size_t i = 0; i < s->freed.n; i++) {
    int rc = free_push(&p->pending, s->freed.v[i].pgno, s->freed.v[i].txn);
    if (rc) return rc;
  }
  return NX_OK;
}

/* The header was damaged (not torn by a restart) when the records after it form a valid chain
 * that holds a commit newer than the main file: those commits exist nowhere else. A restart
 * torn mid-header leaves only an older generation behind it, whose commits the newest meta
 * already contains. Returns NX_CORRUPT in the first case, NX_OK in the second. */
static int damaged_header_check(scan *s) {
  pager *p = s->p;
  uint8_t h[FR_HDR];
  size_t got = 0;
  if (s->size < WASP_HDR + FR_HDR) return NX_OK;
  int rc = os_pread(p->log, h, FR_HDR, WASP_HDR, &got);
  if (rc) return rc;
  if (got < FR_HDR || nx_get32(h) != FR_MAGIC) return NX_OK;
  uint64_t saved = p->salt;
  p->salt = nx_get64(h + 8); /* every record carries its generation's salt */
  uint32_t chain = wasp_chain_seed(p->salt);
  uint64_t off = WASP_HDR, newest = 0;
  for (;;) {
    uint64_t len;
    rc = read_record(s, off, &chain, h, &len);
    if (rc) break;
    if (h[4] == FR_COMMIT && nx_get64(h + 16) > newest) newest = nx_get64(h + 16);
    off += len;
  }
  p->salt = saved;
  if (rc != NX_DONE) return rc;
  if (newest > s->meta_txn)
    return NX_CORRUPT_BKPT("%s: the log header (offset 0) is damaged, but the log holds commit records up to txn "
                           "%llu, newer than the main file's txn %llu: refusing to open rather than lose them",
                           p->wasp_path, (unsigned long long)newest, (unsigned long long)s->meta_txn);
  return NX_OK;
}

static bool header_valid(pager *p, const uint8_t *h, int *vrc, bool *intact) {
  *vrc = NX_OK;
  *intact = false;
  if (memcmp(h, WASP_MAGIC, 8) != 0) return false;
  if (nx_get32(h + 48) != nx_crc32c(0, h, 48)) return false;
  *intact = true;
  uint32_t ver = nx_get32(h + 8);
  if (ver > NX_FORMAT_VERSION) {
    *vrc = nx_err(NX_VERSION, "%s was written by a newer NexusLite (log format version %u; this library reads up to %u)",
                  p->wasp_path, ver, NX_FORMAT_VERSION);
    return false;
  }
  return nx_get32(h + 12) == p->ps && memcmp(h + 32, p->file_id, 16) == 0 && nx_get64(h + 16) != 0;
}

int wasp_recover(pager *p, uint32_t *page_count, uint64_t meta_txn) {
  p->log_base = meta_txn;
  p->log_end = WASP_HDR;
  if (!p->log) return NX_OK;
  scan s;
  memset(&s, 0, sizeof s);
  s.p = p;
  s.meta_txn = meta_txn;
  s.page_count = *page_count;
  int rc = os_size(p->log, &s.size);
  if (rc) return rc;
  p->log_alloc = s.size;
  pthread_mutex_lock(&p->grow_mu);
  p->grown = s.size;
  pthread_mutex_unlock(&p->grow_mu);
  uint8_t h[FR_HDR];
  size_t got = 0;
  int vrc = NX_OK;
  bool intact = false;
  if (s.size >= WASP_HDR) rc = os_pread(p->log, h, WASP_HDR, 0, &got);
  if (rc) return rc;
  if (got < WASP_HDR || !header_valid(p, h, &vrc, &intact)) {
    if (vrc) return vrc;
    /* an intact header of another file (or page size) is a stranger's log; a broken one is
     * either a torn restart (fine) or damage to a live log (not fine) */
    if (!intact) {
      rc = damaged_header_check(&s);
      nx_free(s.payload);
      s.payload = NULL;
      if (rc) return rc;
    }
    /* nothing newer than the meta can be here: start a fresh generation */
    if (p->read_only) return NX_OK;
    return wasp_create_header(p);
  }
  p->salt = nx_get64(h + 16);
  uint64_t base = nx_get64(h + 24);
  if (base > meta_txn)
    return NX_CORRUPT_BKPT("%s: the log generation builds on txn %llu, but the newest valid meta page of %s is at txn "
                           "%llu (a checkpointed meta page was lost)",
                           p->wasp_path, (unsigned long long)base, p->path, (unsigned long long)meta_txn);
  uint32_t chain = wasp_chain_seed(p->salt), good_chain = chain;
  uint64_t off = WASP_HDR, good_end = WASP_HDR, prev_txn = 0;
  for (;;) {
    uint64_t len;
    rc = read_record(&s, off, &chain, h, &len);
    if (rc) break;
    uint64_t txn = nx_get64(h + 16);
    if (h[4] == FR_PAGE) {
      if (s.nf && txn != s.ftxn) {
        rc = NX_DONE;
        break;
      }
      if (!s.nf && txn <= prev_txn) {
        rc = NX_DONE;
        break;
      }
      s.ftxn = txn;
      rc = frame_push(&s, nx_get32(h + 24), off);
      if (rc) break;
    } else {
      if ((s.nf && txn != s.ftxn) || txn <= prev_txn) {
        rc = NX_DONE;
        break;
      }
      rc = apply_commit(&s, txn);
      if (rc) break;
      prev_txn = txn;
      good_end = off + len;
      good_chain = chain;
    }
    off += len;
  }
  if (rc == NX_DONE) rc = NX_OK;
  /* frames after good_end belong to no complete txn: a torn tail unless synced past */
  if (rc == NX_OK) rc = check_synced_past(&s, good_end);
  if (rc == NX_OK) {
    pthread_mutex_lock(&p->mu);
    rc = apply_free_changes(p, &s);
    pthread_mutex_unlock(&p->mu);
  }
  if (rc == NX_OK && s.last_txn == 0) s.last_txn = p->last_txn;
  if (rc == NX_OK) {
    p->log_end = good_end;
    p->chain = good_chain;
    *page_count = s.page_count;
    pthread_mutex_lock(&p->mu);
    p->app_off = p->synced_off = good_end;
    pthread_mutex_unlock(&p->mu);
  }
  nx_free(s.payload);
  nx_free(s.fpg);
  nx_free(s.foff);
  u32_free(&s.reused);
  nx_free(s.freed.v);
  if (rc == NX_OK) return NX_OK;
  li_clear(&p->idx);
  return rc;
}
