// ctest: timeout=600
/*
 * slow_faults.c: injected I/O errors at every I/O call of a small workload in turn: EIO and
 * ENOSPC on each call of each kind (open, read, write, fsync, truncate, rename, unlink, directory
 * sync) and short writes on each write. Every failing call must return a clean status (NX_IO,
 * NX_FULL, or NX_FATAL once poisoned), nothing committed may be lost, a failed fsync must poison
 * the handle until it is reopened, and reopening must recover a consistent database.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pager_testutil.h"

typedef struct fres {
  uint64_t acked;
  int failures;      /* calls that returned an error */
  bool poison_seen;  /* a begin after a failed fsync returned NX_FATAL */
} fres;

static const char *g_case;

static void check_status(int rc, int err, bool fired_sync) {
  if (rc == NX_OK) return;
  bool ok = rc == NX_IO || rc == NX_FATAL || (err == ENOSPC && rc == NX_FULL);
  cr_assert(ok, "%s: unclean status %s: %s", g_case, nx_code_name(rc), nx_err_msg());
  cr_assert(nx_err_msg()[0] != '\0', "%s: no message", g_case);
  (void)fired_sync;
}

static pager *fopen_db(const char *path, int *rc) {
  nx_open_opts o = NX_OPEN_OPTS_INIT;
  o.cache_bytes = 64 * 4096;
  o.checkpoint_bytes = 32 * 1024;
  pager *p = NULL;
  *rc = pager_open(path, &o, &p);
  return p;
}

/* The workload: create, commit (some spilling), checkpoint, compact, close. After an error it
 * goes on (the fault fires once), except after a failed fsync: then the handle must refuse. */
static void fworkload(const char *path, os_op op, uint64_t n, int err, fres *r) {
  memset(r, 0, sizeof *r);
  int rc;
  pager *p = fopen_db(path, &rc);
  check_status(rc, err, false);
  if (rc) {
    r->failures++;
    return;
  }
  for (int i = 1; i <= 10; i++) {
    uint64_t c = 0;
    uint64_t syncs_before = os_fault_count(OS_OP_SYNC);
    rc = pt_step(p, i % 4 == 2 ? 40 : 1, &c);
    if (rc == NX_OK && i % 3 == 0) rc = pager_checkpoint(p, i == 9 ? NX_CHECKPOINT_TRUNCATE : NX_CHECKPOINT_FULL);
    if (rc == NX_OK && i == 7) rc = pager_compact(p, pt_visit, NULL, NULL, NULL);
    if (rc == NX_OK) {
      if (c) r->acked = c;
      continue;
    }
    r->failures++;
    bool sync_fired = op == OS_OP_SYNC && os_fault_count(OS_OP_SYNC) >= n && syncs_before < n;
    check_status(rc, err, sync_fired);
    /* a failed fsync of compaction's new file loses nothing (the old file is untouched and the
     * new one is discarded): the handle stays usable */
    if (sync_fired && strstr(nx_err_msg(), ".compact") != NULL) continue;
    if (rc == NX_FATAL || sync_fired) {
      /* poisoned: every later call fails until reopen */
      pg_txn *t = NULL;
      cr_assert_eq(pager_begin(p, true, &t), NX_FATAL, "%s: write begin after a failed fsync", g_case);
      cr_assert_eq(pager_begin(p, false, &t), NX_FATAL, "%s: read begin after a failed fsync", g_case);
      cr_assert_eq(pager_checkpoint(p, NX_CHECKPOINT_FULL), NX_FATAL, "%s", g_case);
      r->poison_seen = true;
      break;
    }
  }
  (void)pager_close(p);
}

static void reset_files(const char *path) {
  char b[512];
  unlink(path);
  snprintf(b, sizeof b, "%s.wasp", path);
  unlink(b);
  snprintf(b, sizeof b, "%s.compact", path);
  unlink(b);
  snprintf(b, sizeof b, "%s.create", path);
  unlink(b);
}

/* After a faulty run: reopen without faults; every acknowledged commit is there. */
static void check_after(const char *path, const fres *r) {
  int rc;
  pager *p = fopen_db(path, &rc);
  cr_assert_eq(rc, NX_OK, "%s: reopen: %s %s", g_case, nx_code_name(rc), nx_err_msg());
  uint64_t c = 0;
  rc = pt_verify(p, &c);
  cr_assert_eq(rc, NX_OK, "%s: verify: %s %s", g_case, nx_code_name(rc), nx_err_msg());
  cr_assert(c >= r->acked && c <= r->acked + 1, "%s: counter %llu, acknowledged %llu", g_case, (unsigned long long)c,
            (unsigned long long)r->acked);
  cr_assert_eq(pt_step(p, 1, NULL), NX_OK, "%s: commit after reopen: %s", g_case, nx_err_msg());
  cr_assert_eq(pager_close(p), NX_OK);
}

Test(faults, every_io_call_fails_in_turn_cleanly) {
  char path[256], name[128];
  pt_tmpfile(path, sizeof path, "faults.db");
  /* a clean run counts the calls of each kind */
  reset_files(path);
  os_fault_reset();
  fres clean;
  g_case = "clean run";
  fworkload(path, OS_OP_COUNT_, 0, 0, &clean);
  cr_assert_eq(clean.failures, 0, "%s", nx_err_msg());
  cr_assert_eq(clean.acked, 10);
  uint64_t count[OS_OP_COUNT_];
  for (int op = 0; op < OS_OP_COUNT_; op++) count[op] = os_fault_count((os_op)op);
  static const int errs[2] = {EIO, ENOSPC};
  const char *sc = getenv("NX_TEST_SCALE");
  uint64_t stride = sc && strcmp(sc, "asan") == 0 ? 4 : 1; /* every call in the plain run */
  uint64_t cases = 0, poisoned = 0, failed_runs = 0;
  for (int op = 0; op < OS_OP_COUNT_; op++) {
    if (op == OS_OP_LOCK) continue; /* the lock is taken once at open: covered by the open cases */
    for (uint64_t n = 1; n <= count[op]; n += (count[op] > 8 ? stride : 1)) {
      for (int e = 0; e < 2; e++) {
        if (errs[e] == ENOSPC && op != OS_OP_WRITE && op != OS_OP_TRUNCATE && op != OS_OP_SYNC) continue;
        snprintf(name, sizeof name, "%s call %llu fails with %s", op == OS_OP_OPEN ? "open" : op == OS_OP_READ ? "read"
                 : op == OS_OP_WRITE ? "write" : op == OS_OP_SYNC ? "fsync" : op == OS_OP_TRUNCATE ? "truncate"
                 : op == OS_OP_RENAME ? "rename" : op == OS_OP_UNLINK ? "unlink" : "dirsync",
                 (unsigned long long)n, errs[e] == EIO ? "EIO" : "ENOSPC");
        g_case = name;
        reset_files(path);
        os_fault_reset();
        os_fault_fail_nth((os_op)op, n, errs[e]);
        fres r;
        fworkload(path, (os_op)op, n, errs[e], &r);
        os_fault_reset();
        if (r.failures) failed_runs++;
        if (r.poison_seen) poisoned++;
        check_after(path, &r);
        cases++;
      }
    }
  }
  /* short writes: the n-th write keeps only its first bytes, then fails */
  for (uint64_t n = 1; n <= count[OS_OP_WRITE]; n += stride) {
    snprintf(name, sizeof name, "write %llu short", (unsigned long long)n);
    g_case = name;
    reset_files(path);
    os_fault_reset();
    os_fault_short_write_nth(n, (size_t)(n * 37 % 4000) + 1);
    fres r;
    fworkload(path, OS_OP_WRITE, n, EIO, &r);
    os_fault_reset();
    if (r.failures) failed_runs++;
    check_after(path, &r);
    cases++;
  }
  printf("slow_faults: %llu injected faults (calls: open %llu, read %llu, write %llu, fsync %llu, truncate %llu, "
         "rename %llu, unlink %llu, dirsync %llu); %llu runs saw an error, %llu handles poisoned by a failed fsync\n",
         (unsigned long long)cases, (unsigned long long)count[OS_OP_OPEN], (unsigned long long)count[OS_OP_READ],
         (unsigned long long)count[OS_OP_WRITE], (unsigned long long)count[OS_OP_SYNC],
         (unsigned long long)count[OS_OP_TRUNCATE], (unsigned long long)count[OS_OP_RENAME],
         (unsigned long long)count[OS_OP_UNLINK], (unsigned long long)count[OS_OP_DIRSYNC],
         (unsigned long long)failed_runs, (unsigned long long)poisoned);
  fflush(stdout);
  cr_assert(poisoned > 0);
  pt_cleanup(path);
}

Test(faults, failed_commit_fsync_poisons_until_reopen) {
  char path[256];
  pt_tmpfile(path, sizeof path, "poison.db");
  int rc;
  pager *p = fopen_db(path, &rc);
  cr_assert_eq(rc, NX_OK);
  for (int i = 0; i < 3; i++) cr_assert_eq(pt_step(p, 1, NULL), NX_OK);
  os_fault_reset();
  os_fault_fail_nth(OS_OP_SYNC, 1, EIO);
  rc = pt_step(p, 1, NULL);
  cr_assert_eq(rc, NX_IO, "%s", nx_code_name(rc));
  cr_assert(strstr(nx_err_msg(), "fsync") != NULL, "%s", nx_err_msg());
  /* never retried: the next fsync would succeed, but the handle refuses */
  for (int i = 0; i < 3; i++) {
    pg_txn *t = NULL;
    cr_assert_eq(pager_begin(p, true, &t), NX_FATAL);
    cr_assert_eq(pager_begin(p, false, &t), NX_FATAL);
  }
  uint64_t syncs = os_fault_count(OS_OP_SYNC);
  (void)pager_close(p); /* no checkpoint on a poisoned handle */
  cr_assert_eq(os_fault_count(OS_OP_SYNC), syncs, "close of a poisoned handle must not fsync");
  os_fault_reset();
  p = fopen_db(path, &rc);
  cr_assert_eq(rc, NX_OK, "%s", nx_err_msg());
  uint64_t c = 0;
  cr_assert_eq(pt_verify(p, &c), NX_OK, "%s", nx_err_msg());
  cr_assert(c == 3 || c == 4, "counter %llu", (unsigned long long)c);
  cr_assert_eq(pager_close(p), NX_OK);
  pt_cleanup(path);
}
