// ctest: timeout=600
/*
 * slow_txn_crash.c: simulated power loss (os_sim_*) at every I/O boundary of a multi-collection
 * commit leaves all of the transaction or none of it.
 *
 * A simulated file database (durability FULL, a 256 KiB page cache so that the transaction spills
 * dirty pages before its commit) holds a base document in collections "a" and "b".
 * For n = 1, 2, ... the n-th I/O call from the start of one write transaction (1500 inserts into
 * "a", 1500 into "b", an update of a's base document and a key-value set; then its commit and the
 * close that follows) fails as if the machine stopped; the simulator throws away what was not
 * durable (cycling through drop-all, random-subset and torn-write modes); the database is
 * reopened and must hold the whole transaction or nothing of it, and the whole transaction
 * whenever the commit had returned NX_OK. The loop ends when the transaction and the close run
 * without reaching the crash point. Counts per outcome are printed.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nexuslite.h"
#include "os.h"

#define PATH "/nx-sim/txn-crash.db"
/* per collection: ~2 x 200 KiB, more than the page cache (a third of it under ASan) */
static int TXN_DOCS = 1500;

static nx_db *open_db(void) {
  nx_open_opts o = NX_OPEN_OPTS_INIT;
  o.durability = NX_DURABILITY_FULL;
  o.cache_bytes = 256u << 10; /* small: the transaction spills dirty pages before its commit */
  nx_db *db = NULL;
  int rc = nx_open(PATH, &o, &db);
  cr_assert_eq(rc, NX_OK, "open: %s", nx_errmsg(NULL));
  return db;
}

static uint64_t count(nx_db *db, const char *coll, const char *filter) {
  uint64_t n = 99999;
  cr_assert_eq(nx_count(db, NULL, coll, filter ? nx_json(filter) : nx_none(), &n), NX_OK, "count: %s", nx_errmsg(db));
  return n;
}

/* The transaction under test; returns its commit status (or the first failing call's). */
static int run_txn(nx_db *db) {
  nx_txn *t;
  int rc = nx_txn_begin(db, NX_TXN_WRITE, &t);
  if (rc != NX_OK) return rc;
  for (int i = 0; i < TXN_DOCS && rc == NX_OK; i++) {
    char j[160];
    snprintf(j, sizeof j, "{\"_id\": %d, \"pad\": \"%0*d\"}", 10000 + i, 100, i);
    rc = nx_insert_one(db, t, "a", nx_json(j), NULL);
    if (rc == NX_OK) rc = nx_insert_one(db, t, "b", nx_json(j), NULL);
  }
  if (rc == NX_OK) rc = nx_update_one(db, t, "a", nx_json("{\"_id\": 0}"), nx_json("{\"$set\": {\"done\": true}}"), 0, NULL);
  if (rc == NX_OK) rc = nx_kv_set(db, t, "txn", "\"done\"");
  if (rc != NX_OK) {
    nx_txn_abort(t);
    return rc;
  }
  return nx_txn_commit(t);
}

/* 1 when the whole transaction is present, 0 when none of it; fails the test otherwise. */
static int state(nx_db *db, uint64_t n) {
  uint64_t a = count(db, "a", NULL), b = count(db, "b", NULL);
  uint64_t done = count(db, "a", "{\"_id\": 0, \"done\": true}");
  bool kv = false;
  cr_assert_eq(nx_kv_has(db, NULL, "txn", &kv), NX_OK);
  cr_assert_eq(count(db, "a", "{\"_id\": 0}"), 1, "n=%llu: base document lost", (unsigned long long)n);
  cr_assert_eq(count(db, "b", "{\"_id\": 0}"), 1, "n=%llu: base document lost", (unsigned long long)n);
  if (a == (uint64_t)TXN_DOCS + 1 && b == (uint64_t)TXN_DOCS + 1 && done == 1 && kv) return 1;
  cr_assert(a == 1 && b == 1 && done == 0 && !kv, "n=%llu: partial transaction: a=%llu b=%llu done=%llu kv=%d",
            (unsigned long long)n, (unsigned long long)a, (unsigned long long)b, (unsigned long long)done, kv);
  return 0;
}

/* Takes a database holding the whole transaction back to the base state. */
static void undo(nx_db *db) {
  nx_txn *t;
  cr_assert_eq(nx_txn_begin(db, NX_TXN_WRITE, &t), NX_OK);
  cr_assert_eq(nx_delete_many(db, t, "a", nx_json("{\"_id\": {\"$gte\": 10000}}"), NULL), NX_OK);
  cr_assert_eq(nx_delete_many(db, t, "b", nx_json("{\"_id\": {\"$gte\": 10000}}"), NULL), NX_OK);
  cr_assert_eq(nx_update_one(db, t, "a", nx_json("{\"_id\": 0}"), nx_json("{\"$unset\": {\"done\": 1}}"), 0, NULL), NX_OK);
  cr_assert_eq(nx_kv_delete(db, t, "txn"), NX_OK);
  cr_assert_eq(nx_txn_commit(t), NX_OK, "%s", nx_errmsg(db));
}

Test(txn_crash, power_loss_at_every_io_boundary_of_a_multi_collection_commit) {
  const char *scale = getenv("NX_TEST_SCALE");
  if (scale && strcmp(scale, "asan") == 0) TXN_DOCS = 500;
  os_sim_enable(true);
  nx_db *db = open_db();
  cr_assert_eq(nx_insert_one(db, NULL, "a", nx_json("{\"_id\": 0}"), NULL), NX_OK, "%s", nx_errmsg(db));
  cr_assert_eq(nx_insert_one(db, NULL, "b", nx_json("{\"_id\": 0}"), NULL), NX_OK);
  cr_assert_eq(nx_kv_set(db, NULL, "base", "1"), NX_OK);
  cr_assert_eq(nx_close(db), NX_OK, "%s", nx_errmsg(NULL));

  uint64_t none = 0, all = 0, acked = 0, per_mode[3][2] = {{0}};
  bool finished = false;
  for (uint64_t n = 1; n < 20000 && !finished; n++) {
    db = open_db();
    os_sim_crash_after(n);
    int rc = run_txn(db);
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
    int st = state(db, n);
    if (rc == NX_OK) {
      cr_assert_eq(st, 1, "n=%llu: the commit returned NX_OK under FULL durability but the txn is gone",
                   (unsigned long long)n);
      acked++;
    }
    per_mode[mode][st]++;
    if (st) {
      all++;
      if (!finished) undo(db);
    } else {
      none++;
    }
    cr_assert_eq(nx_close(db), NX_OK, "%s", nx_errmsg(NULL));
  }
  cr_assert(finished, "the transaction never completed within the loop");
  fprintf(stderr,
          "txn_crash: %llu crash points: %llu left nothing, %llu the whole txn (%llu acknowledged before the crash); "
          "drop-all %llu/%llu, random %llu/%llu, torn %llu/%llu (none/all)\n",
          (unsigned long long)(none + all), (unsigned long long)none, (unsigned long long)all,
          (unsigned long long)acked, (unsigned long long)per_mode[0][0], (unsigned long long)per_mode[0][1],
          (unsigned long long)per_mode[1][0], (unsigned long long)per_mode[1][1],
          (unsigned long long)per_mode[2][0], (unsigned long long)per_mode[2][1]);
  cr_assert_gt(none, 0);
  cr_assert_gt(all, 0);
  os_sim_enable(false);
}
