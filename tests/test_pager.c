// ctest: timeout=300
/*
 * test_pager.c: the pager and WASP at the page level: create and reopen, snapshots across commits
 * and checkpoints, free-page reuse that respects a long reader, spill, group commit, version and
 * lock refusal, and corruption of the main file and the log.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pager_int.h"
#include "pager_testutil.h"

static bool asan_scale(void) {
  const char *s = getenv("NX_TEST_SCALE");
  return s && strcmp(s, "asan") == 0;
}

static pager *open_db(const char *path, nx_durability d, uint64_t cache, uint64_t ckpt) {
  nx_open_opts o = NX_OPEN_OPTS_INIT;
  o.durability = d;
  if (cache) o.cache_bytes = cache;
  if (ckpt) o.checkpoint_bytes = ckpt;
  pager *p = NULL;
  int rc = pager_open(path, &o, &p);
  cr_assert_eq(rc, NX_OK, "pager_open(%s): %s %s", path, nx_code_name(rc), nx_err_msg());
  return p;
}

static void step(pager *p, uint32_t extra) {
  int rc = pt_step(p, extra, NULL);
  cr_assert_eq(rc, NX_OK, "pt_step: %s %s", nx_code_name(rc), nx_err_msg());
}

static uint64_t verify(pager *p) {
  uint64_t c = 0;
  int rc = pt_verify(p, &c);
  cr_assert_eq(rc, NX_OK, "pt_verify: %s %s", nx_code_name(rc), nx_err_msg());
  return c;
}

Test(pager, create_commit_reopen_keeps_data) {
  char path[256];
  pt_tmpfile(path, sizeof path, "a.db");
  pager *p = open_db(path, NX_DURABILITY_FULL, 0, 0);
  for (int i = 0; i < 30; i++) step(p, (uint32_t)(i % 5));
  cr_assert_eq(verify(p), 30);
  nx_stats st;
  pager_stats(p, &st);
  cr_assert_eq(st.commits, 30);
  cr_assert_eq(st.txn_id, 30);
  cr_assert(st.fsyncs >= 30);
  cr_assert_eq(pager_close(p), NX_OK);
  p = open_db(path, NX_DURABILITY_FULL, 0, 0);
  cr_assert_eq(verify(p), 30);
  for (int i = 0; i < 5; i++) step(p, 2);
  cr_assert_eq(verify(p), 35);
  cr_assert_eq(pager_close(p), NX_OK);
  p = open_db(path, NX_DURABILITY_FULL, 0, 0);
  cr_assert_eq(verify(p), 35);
  cr_assert_eq(pager_close(p), NX_OK);
  pt_cleanup(path);
}

Test(pager, memory_database_works_without_files) {
  pager *p = open_db(":memory:", NX_DURABILITY_FULL, 0, 64 * 1024);
  int n = asan_scale() ? 100 : 200;
  for (int i = 0; i < n; i++) step(p, 3);
  cr_assert_eq(verify(p), (uint64_t)n);
  nx_stats st;
  pager_stats(p, &st);
  cr_assert(st.checkpoints > 0, "automatic checkpoints in memory too");
  cr_assert_eq(pager_close(p), NX_OK);
}

Test(pager, abort_leaves_no_trace) {
  char path[256];
  pt_tmpfile(path, sizeof path, "ab.db");
  pager *p = open_db(path, NX_DURABILITY_FULL, 0, 0);
  step(p, 1);
  nx_stats before;
  pager_stats(p, &before);
  pg_txn *t;
  cr_assert_eq(pager_begin(p, true, &t), NX_OK);
  for (int i = 0; i < 10; i++) {
    pg_page pg;
    cr_assert_eq(pg_alloc(t, PG_T_LEAF, &pg), NX_OK);
    pg_release(t, &pg);
  }
  uint8_t r[PG_ROOTS] = {9};
  pg_set_roots(t, r);
  pager_abort(t);
  cr_assert_eq(verify(p), 1);
  step(p, 1);
  cr_assert_eq(verify(p), 2);
  nx_stats after;
  pager_stats(p, &after);
  cr_assert_eq(after.txn_id, before.txn_id + 1, "an aborted txn consumes no txn id");
  cr_assert_eq(pager_close(p), NX_OK);
  p = open_db(path, NX_DURABILITY_FULL, 0, 0);
  cr_assert_eq(verify(p), 2);
  cr_assert_eq(pager_close(p), NX_OK);
  pt_cleanup(path);
}

Test(pager, reader_snapshot_survives_commits_and_checkpoints) {
  char path[256];
  pt_tmpfile(path, sizeof path, "snap.db");
  pager *p = open_db(path, NX_DURABILITY_NORMAL, 256 * 1024, 32 * 1024);
  for (int i = 0; i < 12; i++) step(p, 2);
  pg_txn *r;
  cr_assert_eq(pager_begin(p, false, &r), NX_OK);
  pt_state s0;
  pt_roots_get(pg_roots(r), &s0);
  cr_assert_eq(s0.counter, 12);
  /* many commits: every data page of the snapshot is rewritten and freed several times over */
  for (int i = 0; i < 100; i++) step(p, 4);
  cr_assert_eq(pager_checkpoint(p, NX_CHECKPOINT_FULL), NX_OK, "%s", nx_err_msg());
  nx_stats st;
  pager_stats(p, &st);
  cr_assert(st.checkpoints >= 2);
  /* the old snapshot still reads its pages intact */
  for (uint32_t i = 0; i < s0.n; i++) {
    pg_page d;
    cr_assert_eq(pg_get(r, s0.pg[i], 0, &d), NX_OK, "%s", nx_err_msg());
    cr_assert_eq(nx_get64(d.data + 24), 12 - i);
    pg_release(r, &d);
  }
  pager_abort(r);
  cr_assert_eq(verify(p), 112);
  cr_assert_eq(pager_close(p), NX_OK);
  pt_cleanup(path);
}

Test(pager, freed_pages_reused_only_after_the_long_reader_ends) {
  pager *p = open_db(":memory:", NX_DURABILITY_OFF, 0, 1u << 30);
  for (int i = 0; i < 12; i++) step(p, 0);
  pg_txn *r;
  cr_assert_eq(pager_begin(p, false, &r), NX_OK);
  for (int i = 0; i < 50; i++) {
    step(p, 0);
    if (i % 10 == 0) cr_assert_eq(pager_checkpoint(p, NX_CHECKPOINT_FULL), NX_OK, "%s", nx_err_msg());
  }
  nx_stats held;
  pager_stats(p, &held);
  /* with the reader alive nothing it can reach was reused: the file grew by one page per txn */
  cr_assert(held.pages_total >= 2 + 12 + 50, "pages %llu", (unsigned long long)held.pages_total);
  pager_abort(r);
  cr_assert_eq(pager_checkpoint(p, NX_CHECKPOINT_FULL), NX_OK, "%s", nx_err_msg());
  cr_assert_eq(pager_checkpoint(p, NX_CHECKPOINT_FULL), NX_OK, "%s", nx_err_msg());
  for (int i = 0; i < 50; i++) step(p, 0);
  nx_stats after;
  pager_stats(p, &after);
  cr_assert(after.pages_total <= held.pages_total + 2, "freed pages reused: %llu -> %llu",
            (unsigned long long)held.pages_total, (unsigned long long)after.pages_total);
  cr_assert_eq(verify(p), 112);
  cr_assert_eq(pager_close(p), NX_OK);
}

Test(pager, trailing_free_pages_given_back_at_checkpoint) {
  pager *p = open_db(":memory:", NX_DURABILITY_OFF, 0, 1u << 30);
  for (int i = 0; i < 12; i++) step(p, 0);
  step(p, 200); /* the newest data page owns 200 extras at the end of the file */
  nx_stats big;
  pager_stats(p, &big);
  for (int i = 0; i < 12; i++) {
    /* two checkpoints make the pages freed so far reusable: the small steps take low pages */
    cr_assert_eq(pager_checkpoint(p, NX_CHECKPOINT_FULL), NX_OK, "%s", nx_err_msg());
    cr_assert_eq(pager_checkpoint(p, NX_CHECKPOINT_FULL), NX_OK, "%s", nx_err_msg());
    step(p, 0);
  }
  /* the big page rotated out: its extras are free and trailing */
  for (int i = 0; i < 3; i++) cr_assert_eq(pager_checkpoint(p, NX_CHECKPOINT_TRUNCATE), NX_OK, "%s", nx_err_msg());
  nx_stats small;
  pager_stats(p, &small);
  cr_assert(small.pages_total < 40, "pages %llu -> %llu", (unsigned long long)big.pages_total,
            (unsigned long long)small.pages_total);
  cr_assert_eq(verify(p), 25);
  cr_assert_eq(pager_close(p), NX_OK);
}

static uint64_t file_size(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return 0;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fclose(f);
  return (uint64_t)n;
}

Test(pager, compaction_drops_unreachable_pages_and_keeps_data) {
  char path[256];
  pt_tmpfile(path, sizeof path, "cmp.db");
  pager *p = open_db(path, NX_DURABILITY_NORMAL, 0, 0);
  for (int i = 0; i < 12; i++) step(p, 0);
  step(p, 300); /* 300 extras at the end of the file */
  /* a reader with an older snapshot blocks compaction */
  pg_txn *r;
  cr_assert_eq(pager_begin(p, false, &r), NX_OK);
  step(p, 0);
  cr_assert_eq(pager_compact(p, pt_visit, NULL, NULL, NULL), NX_BUSY);
  pager_abort(r);
  for (int i = 0; i < 12; i++) {
    /* two checkpoints make freed pages reusable: the small data pages take low page numbers */
    cr_assert_eq(pager_checkpoint(p, NX_CHECKPOINT_FULL), NX_OK);
    cr_assert_eq(pager_checkpoint(p, NX_CHECKPOINT_FULL), NX_OK);
    step(p, 0);
  }
  /* the big page rotated out: its extras are freed but not yet reusable (pending), so a
   * checkpoint cannot give them back; compaction drops them because nothing reaches them */
  uint64_t before = file_size(path);
  cr_assert_eq(pager_compact(p, pt_visit, NULL, NULL, NULL), NX_OK, "%s", nx_err_msg());
  uint64_t after = file_size(path);
  cr_assert(after < before / 4, "file %llu -> %llu bytes", (unsigned long long)before, (unsigned long long)after);
  cr_assert_eq(verify(p), 26);
  for (int i = 0; i < 20; i++) step(p, 2);
  cr_assert_eq(verify(p), 46);
  cr_assert_eq(pager_close(p), NX_OK);
  p = open_db(path, NX_DURABILITY_NORMAL, 0, 0);
  cr_assert_eq(verify(p), 46);
  cr_assert_eq(pager_close(p), NX_OK);
  pt_cleanup(path);
}

Test(pager, second_open_gets_locked_naming_the_pid) {
  char path[256];
  pt_tmpfile(path, sizeof path, "lock.db");
  pager *p = open_db(path, NX_DURABILITY_FULL, 0, 0);
  pager *q = NULL;
  nx_open_opts o = NX_OPEN_OPTS_INIT;
  int rc = pager_open(path, &o, &q);
  cr_assert_eq(rc, NX_LOCKED, "%s", nx_code_name(rc));
  char pid[32];
  snprintf(pid, sizeof pid, "process %ld", (long)getpid());
  cr_assert(strstr(nx_err_msg(), pid) != NULL, "message names the pid: %s", nx_err_msg());
  cr_assert_null(q);
  cr_assert_eq(pager_close(p), NX_OK);
  q = open_db(path, NX_DURABILITY_FULL, 0, 0); /* released at close */
  cr_assert_eq(pager_close(q), NX_OK);
  pt_cleanup(path);
}

Test(pager, newer_format_version_is_refused) {
  char path[256];
  pt_tmpfile(path, sizeof path, "ver.db");
  pager *p = open_db(path, NX_DURABILITY_FULL, 0, 0);
  step(p, 0);
  cr_assert_eq(pager_close(p), NX_OK);
  FILE *f = fopen(path, "r+b");
  cr_assert_not_null(f);
  uint8_t v[4];
  nx_put32(v, NX_FORMAT_VERSION + 1);
  for (int slot = 0; slot < 2; slot++) {
    fseek(f, slot * 4096 + 32, SEEK_SET);
    fwrite(v, 1, 4, f);
  }
  fclose(f);
  nx_open_opts o = NX_OPEN_OPTS_INIT;
  int rc = pager_open(path, &o, &p);
  cr_assert_eq(rc, NX_VERSION, "%s: %s", nx_code_name(rc), nx_err_msg());
  cr_assert(strstr(nx_err_msg(), "newer") != NULL, "%s", nx_err_msg());
  pt_cleanup(path);
}

Test(pager, rejects_bad_page_size) {
  nx_open_opts o = NX_OPEN_OPTS_INIT;
  o.page_size = 5000;
  pager *p = NULL;
  cr_assert_eq(pager_open(":memory:", &o, &p), NX_INVALID);
  o.page_size = 65536;
  cr_assert_eq(pager_open(":memory:", &o, &p), NX_OK);
  cr_assert_eq(pager_page_size(p), 65536);
  for (int i = 0; i < 20; i++) step(p, 3);
  cr_assert_eq(verify(p), 20);
  cr_assert_eq(pager_close(p), NX_OK);
}

/* ---- spill ---- */
static void spill_run(bool commit) {
  char path[256];
  pt_tmpfile(path, sizeof path, "spill.db");
  uint64_t cache = 64 * 4096; /* 64 pages */
  pager *p = open_db(path, NX_DURABILITY_FULL, cache, 0);
  for (int i = 0; i < 3; i++) step(p, 1);
  pg_txn *r;
  cr_assert_eq(pager_begin(p, false, &r), NX_OK);
  nx_alloc_stats a0;
  nx_alloc_get_stats(&a0);
  nx_alloc_reset_peak();
  /* a write txn of 640 pages: 10x the cache */
  pg_txn *t;
  cr_assert_eq(pager_begin(p, true, &t), NX_OK);
  uint32_t first = 0, last = 0;
  for (uint32_t i = 0; i < 640; i++) {
    pg_page pg;
    cr_assert_eq(pg_alloc(t, PG_T_LEAF, &pg), NX_OK, "%s", nx_err_msg());
    memset(pg.data + PG_HDR, (int)(i & 0xff), 4096 - PG_HDR);
    if (i == 0) first = pg.pgno;
    last = pg.pgno;
    pg_release(t, &pg);
  }
  /* the first pages were spilled: read back intact in the txn */
  pg_page back;
  cr_assert_eq(pg_get(t, first, 0, &back), NX_OK, "%s", nx_err_msg());
  cr_assert_eq(back.data[100], 0);
  pg_release(t, &back);
  /* readers see nothing of it */
  pg_page x;
  cr_assert_neq(pg_get(r, last, 0, &x), NX_OK, "a reader reached an uncommitted spilled page");
  pt_state s;
  pt_roots_get(pg_roots(r), &s);
  cr_assert_eq(s.counter, 3);
  /* free them all again so that the workload's accounting holds after commit */
  for (uint32_t pg = first; pg <= last; pg++) cr_assert_eq(pg_free(t, pg), NX_OK);
  uint8_t roots[PG_ROOTS];
  memcpy(roots, pg_roots(t), PG_ROOTS);
  pg_set_roots(t, roots);
  if (commit) cr_assert_eq(pager_commit(t), NX_OK, "%s", nx_err_msg());
  else pager_abort(t);
  nx_alloc_stats a1;
  nx_alloc_get_stats(&a1);
  size_t grew = a1.peak > a0.current ? a1.peak - a0.current : 0;
  cr_assert(grew <= cache + 256 * 1024, "peak memory grew %zu bytes for a cache of %llu", grew,
            (unsigned long long)cache);
  nx_stats st;
  pager_stats(p, &st);
  cr_log_info("spill %s: peak growth %zu bytes (cache %llu bytes), log %llu bytes", commit ? "commit" : "abort", grew,
              (unsigned long long)cache, (unsigned long long)st.log_bytes);
  pager_abort(r);
  step(p, 1);
  cr_assert_eq(verify(p), 4);
  cr_assert_eq(pager_close(p), NX_OK);
  p = open_db(path, NX_DURABILITY_FULL, cache, 0);
  cr_assert_eq(verify(p), 4);
  cr_assert_eq(pager_close(p), NX_OK);
  pt_cleanup(path);
}

Test(pager, spill_large_txn_commits_within_cache_memory) { spill_run(true); }
Test(pager, spill_large_txn_aborts_within_cache_memory) { spill_run(false); }

/* ---- group commit ---- */
typedef struct gc_ctx {
  pager *p;
  int fired;
  uint64_t wait_commits;
  int errors;
} gc_ctx;

static void gc_hook(void *arg) {
  gc_ctx *g = arg;
  if (__atomic_exchange_n(&g->fired, 1, __ATOMIC_SEQ_CST)) return;
  /* park the first fsync until several more commits have appended behind it */
  for (long spin = 0; spin < 200000000L; spin++) {
    nx_stats st;
    pager_stats(g->p, &st);
    if (st.commits >= g->wait_commits) break;
    sched_yield();
  }
}

static void *gc_thread(void *arg) {
  gc_ctx *g = arg;
  for (int i = 0; i < 10; i++)
    if (pt_step(g->p, 0, NULL) != NX_OK) __atomic_add_fetch(&g->errors, 1, __ATOMIC_SEQ_CST);
  return NULL;
}

Test(pager, group_commit_shares_fsyncs_and_keeps_every_commit) {
  char path[256];
  pt_tmpfile(path, sizeof path, "gc.db");
  gc_ctx g = {open_db(path, NX_DURABILITY_FULL, 0, 0), 0, 6, 0};
  nx_stats s0;
  pager_stats(g.p, &s0);
  os_fault_set_sync_hook(gc_hook, &g);
  pthread_t th[8];
  for (int i = 0; i < 8; i++) pthread_create(&th[i], NULL, gc_thread, &g);
  for (int i = 0; i < 8; i++) pthread_join(th[i], NULL);
  os_fault_set_sync_hook(NULL, NULL);
  cr_assert_eq(g.errors, 0);
  nx_stats s1;
  pager_stats(g.p, &s1);
  uint64_t commits = s1.commits - s0.commits, fsyncs = s1.fsyncs - s0.fsyncs;
  cr_log_info("group commit: %llu commits, %llu fsyncs", (unsigned long long)commits, (unsigned long long)fsyncs);
  cr_assert_eq(commits, 80);
  cr_assert(fsyncs < commits, "%llu fsyncs for %llu commits", (unsigned long long)fsyncs, (unsigned long long)commits);
  cr_assert_eq(s1.txn_id, 80, "every commit visible");
  cr_assert_eq(verify(g.p), 80);
  cr_assert_eq(pager_close(g.p), NX_OK);
  g.p = open_db(path, NX_DURABILITY_FULL, 0, 0);
  cr_assert_eq(verify(g.p), 80);
  cr_assert_eq(pager_close(g.p), NX_OK);
  pt_cleanup(path);
}

/* ---- corruption ---- */
typedef struct blob {
  uint8_t *b;
  size_t n;
} blob;

static blob slurp(const char *path) {
  blob x = {NULL, 0};
  FILE *f = fopen(path, "rb");
  if (!f) return x;
  fseek(f, 0, SEEK_END);
  x.n = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  x.b = malloc(x.n ? x.n : 1);
  if (fread(x.b, 1, x.n, f) != x.n) x.n = 0;
  fclose(f);
  return x;
}

static void spit(const char *path, const uint8_t *b, size_t n) {
  FILE *f = fopen(path, "wb");
  cr_assert_not_null(f);
  if (n) cr_assert_eq(fwrite(b, 1, n, f), n);
  fclose(f);
}

/* Opens the damaged copy: it must either fail with NX_CORRUPT naming a page or an offset, or
 * open and then read a consistent state between `lo` and `hi` (or report NX_CORRUPT while
 * reading). Never wrong data, never a crash. Returns 1 when the damage was detected. */
static int open_damaged(const char *path, uint64_t lo, uint64_t hi, const char *what, size_t at) {
  nx_open_opts o = NX_OPEN_OPTS_INIT;
  pager *p = NULL;
  int rc = pager_open(path, &o, &p);
  if (rc != NX_OK) {
    cr_assert_eq(rc, NX_CORRUPT, "%s at %zu: open gave %s: %s", what, at, nx_code_name(rc), nx_err_msg());
    cr_assert(strstr(nx_err_msg(), "page") || strstr(nx_err_msg(), "offset"), "%s at %zu: message %s", what, at,
              nx_err_msg());
    return 1;
  }
  uint64_t c = 0;
  rc = pt_verify(p, &c);
  cr_assert(rc == NX_OK || rc == NX_CORRUPT, "%s at %zu: %s %s", what, at, nx_code_name(rc), nx_err_msg());
  if (rc == NX_OK) cr_assert(c >= lo && c <= hi, "%s at %zu: counter %llu not in [%llu, %llu]", what, at,
                             (unsigned long long)c, (unsigned long long)lo, (unsigned long long)hi);
  pager_close(p);
  return rc == NX_CORRUPT;
}

Test(pager, corrupt_main_file_and_log_are_detected_never_misread) {
  char path[256], wpath[300];
  pt_tmpfile(path, sizeof path, "bad.db");
  snprintf(wpath, sizeof wpath, "%s.wasp", path);
  pager *p = open_db(path, NX_DURABILITY_FULL, 0, 0);
  for (int i = 0; i < 20; i++) step(p, 3);
  cr_assert_eq(pager_checkpoint(p, NX_CHECKPOINT_FULL), NX_OK);
  for (int i = 0; i < 10; i++) step(p, 3); /* 20 in the main file, 10 more in the log */
  /* the files as a crash right now would leave them (every commit was fsynced) */
  blob db = slurp(path), wl = slurp(wpath);
  cr_assert(db.n > 0 && wl.n > 0);
  pager_close(p);
  size_t log_used = 64;
  {
    /* the used part of the log: up to the last record with the current salt */
    uint64_t salt = nx_get64(wl.b + 16);
    for (size_t o = 64; o + 64 <= wl.n; o += 64)
      if (nx_get32(wl.b + o) == 0x46505357u && nx_get64(wl.b + o + 8) == salt) log_used = o + 64;
  }
  int detected = 0, cases = 0;
  /* odd strides so that flips land at every offset within a page over the run */
  size_t k = asan_scale() ? 60 : 160;
  size_t step_db = db.n / k | 1, step_log = (log_used + 128) / k | 1;
  /* bit flips in the main file */
  for (size_t at = 0; at < db.n; at += step_db) {
    db.b[at] ^= 0x10;
    spit(path, db.b, db.n);
    spit(wpath, wl.b, wl.n);
    detected += open_damaged(path, 20, 30, "main file flip", at);
    db.b[at] ^= 0x10;
    cases++;
  }
  /* bit flips in the log */
  for (size_t at = 0; at < log_used + 128; at += step_log) {
    wl.b[at] ^= 0x04;
    spit(path, db.b, db.n);
    spit(wpath, wl.b, wl.n);
    detected += open_damaged(path, 20, 30, "log flip", at);
    wl.b[at] ^= 0x04;
    cases++;
  }
  /* truncations of both */
  for (size_t len = 0; len < db.n; len += db.n / 16 + 1) {
    spit(path, db.b, len);
    spit(wpath, wl.b, wl.n);
    detected += open_damaged(path, 20, 30, "main file cut", len);
    cases++;
  }
  for (size_t len = 0; len < log_used; len += log_used / 24 + 1) {
    spit(path, db.b, db.n);
    spit(wpath, wl.b, len);
    detected += open_damaged(path, 20, 30, "log cut", len);
    cases++;
  }
  /* intact copies give the last commit */
  spit(path, db.b, db.n);
  spit(wpath, wl.b, wl.n);
  cr_assert_eq(open_damaged(path, 30, 30, "intact", 0), 0);
  cr_log_info("corruption: %d cases, %d detected as NX_CORRUPT, the rest read a consistent state", cases, detected);
  free(db.b);
  free(wl.b);
  pt_cleanup(path);
}

/* ---- spill through the B+tree (storage.h): a txn 10x the cache, commit and abort ---- */
#include "storage.h"

static void st_spill_run(bool commit) {
  char path[256];
  pt_tmpfile(path, sizeof path, "stspill.db");
  nx_open_opts o = NX_OPEN_OPTS_INIT;
  o.cache_bytes = 256 * 1024;
  st_env *e = NULL;
  cr_assert_eq(st_open(path, &o, &e), NX_OK, "%s", nx_err_msg());
  st_txn *t;
  st_tree tr;
  cr_assert_eq(st_txn_begin(e, true, &t), NX_OK);
  cr_assert_eq(st_tree_open(t, "t", true, &tr), NX_OK);
  cr_assert_eq(st_put(t, tr, (st_val){(const uint8_t *)"k0", 2}, (st_val){(const uint8_t *)"v", 1}, 0), NX_OK);
  cr_assert_eq(st_txn_commit(t), NX_OK, "%s", nx_err_msg());
  nx_alloc_stats a0;
  nx_alloc_get_stats(&a0);
  nx_alloc_reset_peak();
  int n = asan_scale() ? 8000 : 24000; /* ~2.9 MB of values: more than 10x the cache */
  uint8_t val[120];
  char key[32];
  cr_assert_eq(st_txn_begin(e, true, &t), NX_OK);
  cr_assert_eq(st_tree_open(t, "t", false, &tr), NX_OK);
  for (int i = 0; i < n; i++) {
    int kn = snprintf(key, sizeof key, "key%08d", (i * 7919) % n);
    memset(val, (int)(i & 0xff), sizeof val);
    cr_assert_eq(st_put(t, tr, (st_val){(const uint8_t *)key, (size_t)kn}, (st_val){val, sizeof val}, 0), NX_OK,
                 "put %d: %s", i, nx_err_msg());
  }
  /* read back inside the txn (spilled pages come back from the log) */
  for (int i = 0; i < n; i += 97) {
    int kn = snprintf(key, sizeof key, "key%08d", (i * 7919) % n);
    st_val v;
    cr_assert_eq(st_get(t, tr, (st_val){(const uint8_t *)key, (size_t)kn}, &v), NX_OK, "%s", nx_err_msg());
    cr_assert_eq(v.n, sizeof val);
    cr_assert_eq(v.p[0], (uint8_t)(i & 0xff));
  }
  nx_stats mid;
  st_stats(e, &mid);
  if (commit) cr_assert_eq(st_txn_commit(t), NX_OK, "%s", nx_err_msg());
  else st_txn_abort(t);
  nx_alloc_stats a1;
  nx_alloc_get_stats(&a1);
  size_t grew = a1.peak > a0.current ? a1.peak - a0.current : 0;
  cr_log_info("btree spill %s: %d entries, peak memory growth %zu bytes for a %llu-byte cache", commit ? "commit" : "abort",
              n, grew, (unsigned long long)o.cache_bytes);
  /* page images stay within the cache; bookkeeping grows by ~100 bytes per page the txn wrote */
  cr_assert(grew <= o.cache_bytes + 1536 * 1024, "peak memory grew %zu bytes", grew);
  cr_assert_eq(st_check(e), NX_OK, "%s", nx_err_msg());
  cr_assert_eq(st_close(e), NX_OK);
  cr_assert_eq(st_open(path, &o, &e), NX_OK, "%s", nx_err_msg());
  cr_assert_eq(st_txn_begin(e, false, &t), NX_OK);
  cr_assert_eq(st_tree_open(t, "t", false, &tr), NX_OK);
  uint64_t cnt = 0;
  cr_assert_eq(st_tree_count(t, tr, &cnt), NX_OK);
  cr_assert_eq(cnt, commit ? (uint64_t)n + 1 : 1);
  st_txn_abort(t);
  cr_assert_eq(st_check(e), NX_OK, "%s", nx_err_msg());
  cr_assert_eq(st_close(e), NX_OK);
  pt_cleanup(path);
}

Test(pager, btree_txn_ten_times_the_cache_spills_and_commits) { st_spill_run(true); }
Test(pager, btree_txn_ten_times_the_cache_spills_and_aborts) { st_spill_run(false); }

/* ---- readers in other threads keep their snapshots while commits and checkpoints run ---- */
typedef struct rd_ctx {
  pager *p;
  int stop;
  uint64_t snapshots, pages, errors;
  char msg[256];
} rd_ctx;

/* Checks one snapshot: every data page and extra of the roots holds what the workload wrote. */
static int check_snapshot(pg_txn *r, rd_ctx *c) {
  pt_state s;
  pt_roots_get(pg_roots(r), &s);
  if (s.n > PT_SLOTS) return -1;
  uint64_t prev = s.counter + 1;
  for (uint32_t i = 0; i < s.n; i++) {
    pg_page d;
    if (pg_get(r, s.pg[i], 0, &d) != NX_OK) return -2;
    uint64_t cnt = nx_get64(d.data + 24);
    uint32_t nx = nx_get32(d.data + 36);
    int bad = cnt >= prev || (i == 0 && cnt != s.counter) || nx_get32(d.data + 32) != d.pgno || nx > 100;
    prev = cnt;
    for (uint32_t k = 0; k < nx && !bad; k++) {
      pg_page x;
      if (pg_get(r, nx_get32(d.data + 40 + 4 * k), 0, &x) != NX_OK) {
        bad = 1;
        break;
      }
      bad = nx_get64(x.data + 24) != cnt || nx_get32(x.data + 32) != k;
      pg_release(r, &x);
      c->pages++;
    }
    pg_release(r, &d);
    c->pages++;
    if (bad) return -3;
  }
  return 0;
}

static void *reader_thread(void *arg) {
  rd_ctx *c = arg;
  while (!__atomic_load_n(&c->stop, __ATOMIC_RELAXED)) {
    pg_txn *r;
    if (pager_begin(c->p, false, &r) != NX_OK) {
      c->errors++;
      break;
    }
    /* read the same snapshot twice, with commits and checkpoints in between */
    int rc1 = check_snapshot(r, c);
    sched_yield();
    int rc2 = check_snapshot(r, c);
    if (rc1 || rc2) {
      if (!c->errors) snprintf(c->msg, sizeof c->msg, "snapshot %llu: %d/%d %s", (unsigned long long)pg_txnid(r), rc1,
                               rc2, nx_err_msg());
      c->errors++;
    }
    pager_abort(r);
    __atomic_add_fetch(&c->snapshots, 1, __ATOMIC_RELAXED);
  }
  return NULL;
}

Test(pager, reader_threads_keep_snapshots_during_commits_and_checkpoints) {
  char path[256];
  pt_tmpfile(path, sizeof path, "mt.db");
  pager *p = open_db(path, NX_DURABILITY_NORMAL, 128 * 4096, 64 * 1024); /* small cache: misses too */
  for (int i = 0; i < 12; i++) step(p, 3);
  rd_ctx c[2];
  memset(c, 0, sizeof c);
  pthread_t th[2];
  for (int i = 0; i < 2; i++) {
    c[i].p = p;
    pthread_create(&th[i], NULL, reader_thread, &c[i]);
  }
  int n = asan_scale() ? 150 : 600;
  uint64_t want = asan_scale() ? 60 : 300;
  /* commit until both readers have checked enough snapshots (bounded) */
  for (int i = 0; i < n || ((__atomic_load_n(&c[0].snapshots, __ATOMIC_RELAXED) < want ||
                             __atomic_load_n(&c[1].snapshots, __ATOMIC_RELAXED) < want) && i < 200000); i++) {
    if (i >= n) n = i + 1;
    step(p, (uint32_t)(i % 7));
    if (i % 25 == 0) cr_assert_eq(pager_checkpoint(p, i % 50 ? NX_CHECKPOINT_FULL : NX_CHECKPOINT_TRUNCATE), NX_OK);
  }
  for (int i = 0; i < 2; i++) __atomic_store_n(&c[i].stop, 1, __ATOMIC_RELAXED);
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < 2; i++) {
    cr_assert_eq(c[i].errors, 0, "reader %d: %s", i, c[i].msg);
    cr_assert(c[i].snapshots > 0);
  }
  nx_stats st;
  pager_stats(p, &st);
  cr_log_info("reader threads: %llu + %llu snapshots checked, %llu checkpoints, cache %llu hits %llu misses",
              (unsigned long long)c[0].snapshots, (unsigned long long)c[1].snapshots, (unsigned long long)st.checkpoints,
              (unsigned long long)st.cache_hits, (unsigned long long)st.cache_misses);
  cr_assert_eq(verify(p), 12 + (uint64_t)n);
  cr_assert_eq(pager_close(p), NX_OK);
  pt_cleanup(path);
}

/* A damaged header of a live log (commits newer than the main file behind it) is NX_CORRUPT,
 * never a silent fall-back to the last checkpoint; a header torn while the log restarted (only
 * an older, checkpointed generation behind it) opens with every commit. */
Test(pager, damaged_log_header_is_detected_torn_restart_is_not) {
  char path[256], wpath[300];
  pt_tmpfile(path, sizeof path, "hdr.db");
  snprintf(wpath, sizeof wpath, "%s.wasp", path);
  pager *p = open_db(path, NX_DURABILITY_FULL, 0, 0);
  for (int i = 0; i < 20; i++) step(p, 3);
  cr_assert_eq(pager_checkpoint(p, NX_CHECKPOINT_FULL), NX_OK);
  blob db0 = slurp(path), wl0 = slurp(wpath); /* restarted log: header + the old generation */
  for (int i = 0; i < 10; i++) step(p, 3);    /* 10 more commits, in the log only */
  blob db = slurp(path), wl = slurp(wpath);
  pager_close(p);
  cr_assert(wl.n > 64 && wl0.n > 64);
  int corrupt = 0;
  for (size_t at = 0; at < 52; at++) { /* magic .. CRC: every byte the header's CRC covers */
    wl.b[at] ^= 0x20;
    spit(path, db.b, db.n);
    spit(wpath, wl.b, wl.n);
    nx_open_opts o = NX_OPEN_OPTS_INIT;
    pager *q = NULL;
    int rc = pager_open(path, &o, &q);
    if (rc == NX_OK) { /* only possible if the flip left the header valid: then all 30 are there */
      uint64_t c = 0;
      cr_assert_eq(pt_verify(q, &c), NX_OK);
      cr_assert_eq(c, 30, "header byte %zu flipped: opened with %llu of 30 commits", at, (unsigned long long)c);
      pager_close(q);
    } else {
      cr_assert_eq(rc, NX_CORRUPT, "header byte %zu: %s", at, nx_code_name(rc));
      cr_assert(strstr(nx_err_msg(), "log header") != NULL, "message: %s", nx_err_msg());
      corrupt++;
    }
    wl.b[at] ^= 0x20;
  }
  cr_assert_gt(corrupt, 40, "only %d of 52 header flips detected", corrupt);
  /* the header of the restarted log (nothing newer than the main file behind it) torn */
  memset(wl0.b, 0, 64);
  spit(path, db0.b, db0.n);
  spit(wpath, wl0.b, wl0.n);
  cr_assert_eq(open_damaged(path, 20, 20, "torn restart header", 0), 0);
  free(db.b);
  free(wl.b);
  free(db0.b);
  free(wl0.b);
  pt_cleanup(path);
}

/* Page buffers come from chunks that grow with the cache (pager.c, slab_grow): a database that
 * touches a few pages must not take a big chunk at once. With the default 64 MiB cache, an
 * 8 MiB chunk at the first page made every small open cost 8 MiB and its page faults. */
Test(pager, page_buffers_grow_with_use_not_with_the_cache_size) {
  char path[256];
  pt_tmpfile(path, sizeof path, "small.db");
  nx_alloc_stats a0, a1, a2;
  nx_alloc_get_stats(&a0);
  pager *p = open_db(path, NX_DURABILITY_FULL, 0, 0); /* default cache: 64 MiB */
  for (int i = 0; i < 3; i++) step(p, 1);
  nx_alloc_get_stats(&a1);
  size_t small = a1.current > a0.current ? a1.current - a0.current : 0;
  cr_assert(small < (size_t)1 << 20, "three small commits hold %zu bytes", small);
  /* and the chunks do grow: a few thousand pages later the cache holds them */
  for (int i = 0; i < 40; i++) step(p, 100);
  nx_alloc_get_stats(&a2);
  cr_log_info("page buffers: %zu bytes after 3 small commits, %zu after 4,000 more pages", small, a2.current - a0.current);
  cr_assert_gt(a2.current, a1.current + ((size_t)4 << 20), "pages cached: %zu bytes", a2.current - a1.current);
  cr_assert_eq(pager_close(p), NX_OK);
}

/* With the checkpoint thread, the log grows ahead of the writer in written, synced zeros
 * (wasp_grow_ahead), so commits overwrite allocated, clean blocks and extend nothing themselves.
 * The function is called directly here (the thread calls the same one), so the test does not
 * depend on when the thread runs. A failed sync of the new space poisons the handle, as any
 * failed fsync of the log does, and nothing committed is lost. */
Test(pager, log_grown_ahead_is_used_by_commits_and_a_failed_sync_poisons) {
  char path[256];
  pt_tmpfile(path, sizeof path, "grow.db");
  pager *p = open_db(path, NX_DURABILITY_FULL, 0, 0);
  for (int i = 0; i < 10; i++) step(p, 3);
  uint64_t end = p->log_end, size = 0; /* no writer runs: the writer's fields hold still */
  cr_assert_eq(wasp_grow_ahead(p, end), NX_OK, "%s", nx_err_msg());
  cr_assert_eq(os_size(p->log, &size), NX_OK);
  cr_assert_geq(size, end + (4u << 20), "log of %llu bytes, end %llu", (unsigned long long)size,
                (unsigned long long)end);
  os_fault_reset();
  uint64_t from = p->log_end;
  int steps = 10;
  while (p->log_end - from < (3u << 20)) {
    step(p, 200);
    steps++;
  }
  cr_assert_eq(os_fault_count(OS_OP_TRUNCATE), 0, "a commit grew the log itself");
  cr_assert_leq(p->log_end, size);
  /* a truncating checkpoint truncates the grown space too, and a growth asked before it (its
   * end now past the file) grows nothing */
  uint64_t old_end = p->log_end;
  cr_assert_eq(pager_checkpoint(p, NX_CHECKPOINT_TRUNCATE), NX_OK, "%s", nx_err_msg());
  cr_assert_eq(pager_checkpoint(p, NX_CHECKPOINT_TRUNCATE), NX_OK, "%s", nx_err_msg());
  cr_assert_eq(os_size(p->log, &size), NX_OK);
  cr_assert_leq(size, 4096, "log of %llu bytes after a truncating checkpoint", (unsigned long long)size);
  cr_assert_eq(wasp_grow_ahead(p, old_end), NX_OK);
  cr_assert_eq(os_size(p->log, &size), NX_OK);
  cr_assert_leq(size, 4096, "a stale growth grew the truncated log to %llu bytes", (unsigned long long)size);
  step(p, 1);
  steps++;
  /* the next growth's sync fails: the handle is poisoned, later commits refused */
  os_fault_fail_nth(OS_OP_SYNC, 1, EIO);
  cr_assert_neq(wasp_grow_ahead(p, p->log_end), NX_OK);
  os_fault_reset();
  cr_assert_eq(pt_step(p, 1, NULL), NX_FATAL);
  (void)pager_close(p);
  p = open_db(path, NX_DURABILITY_FULL, 0, 0);
  cr_assert_eq(verify(p), (uint64_t)steps);
  cr_assert_eq(pager_close(p), NX_OK);
  pt_cleanup(path);
}
