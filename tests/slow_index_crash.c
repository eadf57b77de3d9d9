// ctest: timeout=600
/*
 * slow_index_crash.c: power loss (os_sim_*) at every I/O boundary of an index build leaves either
 * no index or a complete one. A simulated file database holds 3000 documents (some with arrays)
 * and runs with a 256 KiB page cache, so the build of a compound index spills log frames before
 * its commit record; for
 * n = 1, 2, ... the n-th I/O call from the start of nx_index_create (the build, its commit, and
 * the close that follows) fails as if the machine stopped, the simulator throws away what was not
 * durable (cycling through drop-all, random-subset and torn-write modes), and the database is
 * reopened: it must open, and the index must be absent, or present, not stale, and agree with
 * the documents entry for entry (idx_verify), with queries through it equal to a scan. The loop
 * ends when a build and close complete without reaching the crash point. Counts per outcome are
 * printed.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nexuslite.h"
#include "engine.h"
#include "index.h"
#include "planner.h"
#include "os.h"

#define PATH "/nx-sim/crash.db"

static nx_db *open_db(void) {
  nx_open_opts o = NX_OPEN_OPTS_INIT;
  o.durability = NX_DURABILITY_FULL;
  o.cache_bytes = 64u * 4096u; /* a small cache: the build spills frames before its commit */
  nx_db *db = NULL;
  int rc = nx_open(PATH, &o, &db);
  cr_assert_eq(rc, NX_OK, "open: %s", nx_errmsg(NULL));
  return db;
}

static int verify(nx_db *db, const char *coll) {
  nx_txn *t;
  cr_assert_eq(nx_txn_begin(db, NX_TXN_READ, &t), NX_OK);
  int rc = q_index_verify(t, coll);
  nx_txn_abort(t);
  return rc;
}

/* 1 when index "v_1_pad_1" is listed and not stale, 0 when absent. */
static int index_state(nx_db *db) {
  bson_t l;
  cr_assert_eq(nx_index_list(db, "c", &l), NX_OK, "%s", nx_errmsg(db));
  char *s = nx_to_json(&l, false);
  int r = strstr(s, "\"v_1_pad_1\"") ? 1 : 0;
  if (r) cr_assert(strstr(s, "\"stale\" : false"), "%s", s);
  nx_free(s);
  bson_destroy(&l);
  return r;
}

Test(index_crash, power_loss_during_build_leaves_no_index_or_a_complete_one) {
  os_sim_enable(true);
  nx_db *db = open_db();
  nx_txn *t;
  cr_assert_eq(nx_txn_begin(db, NX_TXN_WRITE, &t), NX_OK);
  const char *scale = getenv("NX_TEST_SCALE");
  int ndocs = scale && strcmp(scale, "asan") == 0 ? 1500 : 3000; /* the sanitizer run scales down */
  for (int i = 0; i < ndocs; i++) {
    char j[128];
    if (i % 5 == 0) snprintf(j, sizeof j, "{\"_id\": %d, \"v\": [%d, %d], \"pad\": \"%0*d\"}", i, i % 17, i % 3, 40, i);
    else snprintf(j, sizeof j, "{\"_id\": %d, \"v\": %d, \"pad\": \"%0*d\"}", i, i % 17, 40, i);
    cr_assert_eq(nx_insert_one(db, t, "c", nx_json(j), NULL), NX_OK, "%s", nx_errmsg(db));
  }
  cr_assert_eq(nx_txn_commit(t), NX_OK, "%s", nx_errmsg(db));
  uint64_t expect = 0;
  cr_assert_eq(nx_count(db, NULL, "c", nx_json("{\"v\": 4}"), &expect), NX_OK);
  cr_assert_eq(nx_close(db), NX_OK, "%s", nx_errmsg(NULL));

  uint64_t none = 0, complete = 0, ok_builds = 0;
  bool finished = false;
  for (uint64_t n = 1; n < 5000 && !finished; n++) {
    db = open_db();
    os_sim_crash_after(n);
    nx_index_opts o = NX_INDEX_OPTS_INIT;
    int rc = nx_index_create(db, "c", nx_json("{\"v\": 1, \"pad\": 1}"), &o);
    int crc = nx_close(db);
    bool crashed = os_sim_crashed();
    if (!crashed) {
      cr_assert_eq(rc, NX_OK, "n=%llu: %s", (unsigned long long)n, nx_errmsg(NULL));
      cr_assert_eq(crc, NX_OK);
      finished = true;
    }
    os_crash_mode mode = (os_crash_mode)(n % 3);
    cr_assert_eq(os_sim_power_loss(mode, n), NX_OK);
    db = open_db();
    int st = index_state(db);
    if (st) {
      cr_assert_eq(verify(db, "c"), NX_OK, "n=%llu: %s", (unsigned long long)n, nx_errmsg(db));
      uint64_t got = 0;
      cr_assert_eq(nx_count(db, NULL, "c", nx_json("{\"v\": 4}"), &got), NX_OK);
      cr_assert_eq(got, expect);
      complete++;
      if (rc == NX_OK) ok_builds++;
      if (!finished) cr_assert_eq(nx_index_drop(db, "c", "v_1_pad_1"), NX_OK, "%s", nx_errmsg(db));
    } else {
      cr_assert(crashed, "n=%llu: the build reported %s without a crash, but there is no index",
                (unsigned long long)n, nx_code_name(rc));
      none++;
    }
    cr_assert_eq(nx_close(db), NX_OK, "%s", nx_errmsg(NULL));
  }
  cr_assert(finished, "the build never completed within the loop");
  fprintf(stderr, "index_crash: %llu crash points: %llu left no index, %llu a complete one (%llu of them "
                  "reported success before the crash)\n",
          (unsigned long long)(none + complete), (unsigned long long)none, (unsigned long long)complete,
          (unsigned long long)ok_builds);
  cr_assert_gt(none, 0);
  os_sim_enable(false);
}
