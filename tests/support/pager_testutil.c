/* pager_testutil.c: see pager_testutil.h. */
#include "pager_testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void pt_tmpfile(char *buf, size_t n, const char *name) {
  /* tmpfs when there is one: the tests open and fsync many small databases */
  char dir[64];
  const char *base = getenv("NX_TEST_TMPDIR");
  if (!base) base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  snprintf(dir, sizeof dir, "%s/nxpgXXXXXX", base);
  if (!mkdtemp(dir)) abort();
  snprintf(buf, n, "%s/%s", dir, name);
}

void pt_cleanup(const char *path) {
  char b[1024];
  unlink(path);
  snprintf(b, sizeof b, "%s.wasp", path);
  unlink(b);
  snprintf(b, sizeof b, "%s.lock", path);
  unlink(b);
  snprintf(b, sizeof b, "%s.create", path);
  unlink(b);
  snprintf(b, sizeof b, "%s.compact", path);
  unlink(b);
  snprintf(b, sizeof b, "%s", path);
  char *s = strrchr(b, '/');
  if (s) {
    *s = 0;
    rmdir(b);
  }
}

void pt_roots_get(const uint8_t *r, pt_state *s) {
  memset(s, 0, sizeof *s);
  s->counter = nx_get64(r);
  s->n = nx_get32(r + 8);
  if (s->n > PT_SLOTS) s->n = PT_SLOTS + 1; /* flagged by pt_verify */
  for (uint32_t i = 0; i < PT_SLOTS; i++) s->pg[i] = nx_get32(r + 16 + 4 * i);
}

void pt_roots_put(uint8_t *r, const pt_state *s) {
  memset(r, 0, PG_ROOTS);
  nx_put64(r, s->counter);
  nx_put32(r + 8, s->n);
  for (uint32_t i = 0; i < PT_SLOTS; i++) nx_put32(r + 16 + 4 * i, s->pg[i]);
}

/* data page: 24 counter(8) 32 self(4) 36 nextra(4) 40 extras(4 each); extra page: 24 counter
 * 32 index; both filled after that with a byte pattern of the counter */
static void fill(uint8_t *d, uint32_t ps, size_t from, uint64_t counter) {
  for (size_t i = from; i < ps; i++) d[i] = (uint8_t)(counter * 31 + i);
}

static bool pattern_ok(const uint8_t *d, uint32_t ps, size_t from, uint64_t counter) {
  for (size_t i = from; i < ps; i++)
    if (d[i] != (uint8_t)(counter * 31 + i)) return false;
  return true;
}

int pt_step(pager *p, uint32_t extra, uint64_t *counter_out) {
  pg_txn *t;
  int rc = pager_begin(p, true, &t);
  if (rc) return rc;
  uint32_t ps = pager_page_size(p);
  uint32_t maxx = (ps - 64) / 4;
  if (extra > maxx) extra = maxx;
  pt_state s;
  pt_roots_get(pg_roots(t), &s);
  if (s.n > PT_SLOTS) {
    pager_abort(t);
    return nx_err(NX_CORRUPT, "workload roots hold %u pages", s.n);
  }
  s.counter++;
  /* drop the oldest data page and its extras when full */
  if (s.n == PT_SLOTS) {
    pg_page old;
    rc = pg_get(t, s.pg[s.n - 1], 0, &old);
    if (rc == NX_OK) {
      uint32_t nx = nx_get32(old.data + 36);
      for (uint32_t i = 0; i < nx && i < maxx && rc == NX_OK; i++) rc = pg_free(t, nx_get32(old.data + 40 + 4 * i));
      uint32_t op = old.pgno;
      pg_release(t, &old);
      if (rc == NX_OK) rc = pg_free(t, op);
    }
    s.n--;
  }
  /* new extras (released at once, so they may be spilled) */
  uint32_t *xs = calloc(extra ? extra : 1, sizeof *xs);
  for (uint32_t i = 0; i < extra && rc == NX_OK; i++) {
    pg_page x;
    rc = pg_alloc(t, PG_T_LEAF, &x);
    if (rc) break;
    nx_put64(x.data + 24, s.counter);
    nx_put32(x.data + 32, i);
    fill(x.data, ps, 36, s.counter + i);
    xs[i] = x.pgno;
    pg_release(t, &x);
  }
  /* re-read the first extra (perhaps spilled) and rewrite it (a spilled page moves) */
  if (rc == NX_OK && extra) {
    pg_page x;
    rc = pg_get(t, xs[0], 0, &x);
    if (rc == NX_OK && (nx_get64(x.data + 24) != s.counter || !pattern_ok(x.data, ps, 36, s.counter)))
      rc = nx_err(NX_CORRUPT, "extra page %u read back wrong in its own txn", xs[0]);
    if (rc == NX_OK) rc = pg_write(t, &x);
    if (rc == NX_OK) xs[0] = x.pgno;
    if (x.priv) pg_release(t, &x);
  }
  pg_page d;
  if (rc == NX_OK) rc = pg_alloc(t, PG_T_LEAF, &d);
  if (rc == NX_OK) {
    nx_put64(d.data + 24, s.counter);
    nx_put32(d.data + 32, d.pgno);
    nx_put32(d.data + 36, extra);
    for (uint32_t i = 0; i < extra; i++) nx_put32(d.data + 40 + 4 * i, xs[i]);
    fill(d.data, ps, 40 + 4 * (size_t)extra, s.counter);
    memmove(s.pg + 1, s.pg, (PT_SLOTS - 1) * sizeof s.pg[0]);
    s.pg[0] = d.pgno;
    s.n++;
    pg_release(t, &d);
    uint8_t r[PG_ROOTS];
    pt_roots_put(r, &s);
    pg_set_roots(t, r);
  }
  free(xs);
  if (rc) {
    pager_abort(t);
    return rc;
  }
  rc = pager_commit(t);
  if (rc == NX_OK && counter_out) *counter_out = s.counter;
  return rc;
}

typedef struct pt_acct {
  uint8_t *st;
  uint32_t n;
  int bad;
  uint32_t badpg;
} pt_acct;

static int mark_owned(void *ctx, uint32_t pgno) {
  pt_acct *a = ctx;
  if (pgno >= a->n || a->st[pgno]) {
    a->bad = 1;
    a->badpg = pgno;
    return NX_CORRUPT;
  }
  a->st[pgno] = 2;
  return NX_OK;
}

static int mark(pt_acct *a, uint32_t pgno) {
  if (pgno >= a->n || a->st[pgno]) {
    a->bad = 1;
    a->badpg = pgno;
    return NX_CORRUPT;
  }
  a->st[pgno] = 1;
  return NX_OK;
}

int pt_verify(pager *p, uint64_t *counter_out) {
  /* a write txn: free lists cannot change meanwhile, and pager_owned_pages needs one */
  pg_txn *t;
  int rc = pager_begin(p, true, &t);
  if (rc) return rc;
  uint32_t ps = pager_page_size(p);
  pt_state s;
  pt_roots_get(pg_roots(t), &s);
  nx_stats st;
  pager_stats(p, &st);
  pt_acct a = {calloc(st.pages_total + 1, 1), (uint32_t)st.pages_total, 0, 0};
  if (s.n > PT_SLOTS) rc = nx_err(NX_ERROR, "WRONG DATA: roots hold %u data pages", s.n);
  if (s.counter && !s.n) rc = nx_err(NX_ERROR, "WRONG DATA: counter %llu but no data pages", (unsigned long long)s.counter);
  uint64_t prev = s.counter + 1;
  for (uint32_t i = 0; i < s.n && rc == NX_OK; i++) {
    pg_page d;
    rc = pg_get(t, s.pg[i], 0, &d);
    if (rc) break;
    uint64_t c = nx_get64(d.data + 24);
    uint32_t nx = nx_get32(d.data + 36);
    if (c >= prev || (i == 0 && c != s.counter) || nx_get32(d.data + 32) != d.pgno || nx > (ps - 64) / 4 ||
        !pattern_ok(d.data, ps, 40 + 4 * (size_t)nx, c))
      rc = nx_err(NX_ERROR, "WRONG DATA: data page %u (slot %u) inconsistent: counter %llu, roots counter %llu", d.pgno, i,
                  (unsigned long long)c, (unsigned long long)s.counter);
    prev = c;
    if (rc == NX_OK) rc = mark(&a, d.pgno) ? nx_err(NX_CORRUPT, "page %u reached twice", d.pgno) : NX_OK;
    for (uint32_t k = 0; k < nx && rc == NX_OK; k++) {
      pg_page x;
      uint32_t xp = nx_get32(d.data + 40 + 4 * k);
      rc = pg_get(t, xp, 0, &x);
      if (rc) break;
      uint64_t want = c + (k == 0 ? 0 : k);
      if (nx_get64(x.data + 24) != c || nx_get32(x.data + 32) != k || !pattern_ok(x.data, ps, 36, want))
        rc = nx_err(NX_ERROR, "WRONG DATA: extra page %u of data page %u inconsistent", xp, d.pgno);
      pg_release(t, &x);
      if (rc == NX_OK) rc = mark(&a, xp) ? nx_err(NX_CORRUPT, "page %u reached twice", xp) : NX_OK;
    }
    pg_release(t, &d);
  }
  if (rc == NX_OK) {
    rc = pager_owned_pages(t, mark_owned, &a);
    if (rc && a.bad) rc = nx_err(NX_ERROR, "ACCOUNTING: page %u is both reachable and owned by the pager (or out of range)", a.badpg);
  }
  for (uint32_t i = 0; i < a.n && rc == NX_OK; i++)
    if (!a.st[i]) rc = nx_err(NX_ERROR, "ACCOUNTING: page %u of %u leaked: neither reachable nor free", i, a.n);
  free(a.st);
  pager_abort(t);
  if (rc == NX_OK && counter_out) *counter_out = s.counter;
  return rc;
}

int pt_visit(pg_txn *t, void *ctx, int (*markfn)(void *mctx, uint32_t pgno), void *mctx) {
  (void)ctx;
  pt_state s;
  pt_roots_get(pg_roots(t), &s);
  uint32_t maxx = (pager_page_size(pg_pager(t)) - 64) / 4;
  int rc = NX_OK;
  for (uint32_t i = 0; i < s.n && i < PT_SLOTS && rc == NX_OK; i++) {
    pg_page d;
    rc = pg_get(t, s.pg[i], 0, &d);
    if (rc) break;
    rc = markfn(mctx, d.pgno);
    uint32_t nx = nx_get32(d.data + 36);
    for (uint32_t k = 0; k < nx && k < maxx && rc == NX_OK; k++) rc = markfn(mctx, nx_get32(d.data + 40 + 4 * k));
    pg_release(t, &d);
  }
  return rc;
}
