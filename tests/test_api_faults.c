// ctest: timeout=300
/*
 * test_api_faults.c: out of memory at every allocation of the main API calls (STYLE 22). For
 * n = 1, 2, ... the n-th allocation from the start of a call fails; the call must return NX_OK or
 * NX_NOMEM (never crash), leave the database as before the call or as after it (all or nothing),
 * and the database must keep working; when everything is closed, no byte is left allocated.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "nexuslite.h"
#include "base.h"

typedef int (*op_fn)(nx_db *db);

static uint64_t count(nx_db *db, const char *coll) {
  uint64_t n = 0;
  cr_assert_eq(nx_count(db, NULL, coll, nx_none(), &n), NX_OK, "count: %s", nx_errmsg(db));
  return n;
}

static int op_insert_many(nx_db *db) {
  nx_in d[3] = {nx_json("{\"_id\": 100, \"a\": [1, 2]}"), nx_json("{\"_id\": 101, \"s\": \"x\"}"),
                nx_json("{\"b\": {\"c\": 1}}")};
  return nx_insert_many(db, NULL, "t", d, 3, NULL);
}

static int op_update_many(nx_db *db) {
  return nx_update_many(db, NULL, "t", nx_json("{\"n\": {\"$gte\": 0}}"), nx_json("{\"$inc\": {\"n\": 1000}}"), 0, NULL);
}

static int op_find_sorted(nx_db *db) {
  nx_find_opts o = NX_FIND_OPTS_INIT;
  o.sort = nx_json("{\"n\": -1}");
  o.projection = nx_json("{\"n\": 1}");
  nx_cursor *c;
  int rc = nx_find(db, NULL, "t", nx_json("{\"n\": {\"$lt\": 15}}"), &o, &c);
  if (rc != NX_OK) return rc;
  const bson_t *d;
  int n = 0;
  while ((rc = nx_cursor_next(c, &d)) == NX_ROW) n++;
  nx_cursor_close(c);
  if (rc != NX_DONE) return rc;
  cr_assert_eq(n, 15);
  return NX_OK;
}

static int op_kv_batch(nx_db *db) {
  nx_txn *t;
  int rc = nx_txn_begin(db, NX_TXN_WRITE, &t);
  if (rc != NX_OK) return rc;
  rc = nx_kv_set(db, t, "k1", "{\"v\": [1, 2, 3]}");
  if (rc == NX_OK) rc = nx_kv_set(db, t, "k2", "\"two\"");
  if (rc != NX_OK) {
    nx_txn_abort(t);
    return rc;
  }
  return nx_txn_commit(t);
}

static int op_delete_many(nx_db *db) { return nx_delete_many(db, NULL, "t", nx_json("{\"n\": {\"$lt\": 10}}"), NULL); }

/* Base state: 20 documents {_id: i, n: i} in "t". */
static nx_db *fresh(void) {
  nx_db *db;
  nx_open_opts o = NX_OPEN_OPTS_INIT;
  o.durability = NX_DURABILITY_OFF;
  cr_assert_eq(nx_open(":memory:", &o, &db), NX_OK, "%s", nx_errmsg(NULL));
  for (int i = 0; i < 20; i++) {
    char j[64];
    snprintf(j, sizeof j, "{\"_id\": %d, \"n\": %d}", i, i);
    cr_assert_eq(nx_insert_one(db, NULL, "t", nx_json(j), NULL), NX_OK);
  }
  return db;
}

/* A fingerprint of the database: counts and a sum that every operation above changes. */
static void state(nx_db *db, char *out, size_t cap) {
  uint64_t big = 0;
  cr_assert_eq(nx_count(db, NULL, "t", nx_json("{\"n\": {\"$gte\": 1000}}"), &big), NX_OK);
  bool k = false;
  cr_assert_eq(nx_kv_has(db, NULL, "k2", &k), NX_OK);
  snprintf(out, cap, "t=%llu big=%llu kv=%d", (unsigned long long)count(db, "t"), (unsigned long long)big, k);
}

static void fault_loop(op_fn op, const char *name) {
  nx_alloc_stats s0;
  nx_db *db = fresh();
  char before[128], after[128], got[128];
  state(db, before, sizeof before);
  cr_assert_eq(op(db), NX_OK, "%s without faults: %s", name, nx_errmsg(db));
  state(db, after, sizeof after);
  nx_close(db);
  nx_alloc_get_stats(&s0);
  int nomem = 0, ok = 0;
  for (uint64_t n = 1; n < 100000; n++) {
    db = fresh();
    nx_alloc_fail_nth(n);
    int rc = op(db);
    bool fired = nx_alloc_fault_fired();
    nx_alloc_fail_nth(0);
    cr_assert(rc == NX_OK || rc == NX_NOMEM, "%s, allocation %llu failed: %s: %s", name, (unsigned long long)n,
              nx_code_name(rc), nx_errmsg(db));
    state(db, got, sizeof got);
    if (rc == NX_OK) {
      cr_assert_str_eq(got, after, "%s, allocation %llu: OK but state %s", name, (unsigned long long)n, got);
      ok++;
    } else {
      cr_assert_str_eq(got, before, "%s, allocation %llu: NX_NOMEM but state %s", name, (unsigned long long)n, got);
      nomem++;
      /* the database still works */
      cr_assert_eq(op(db), NX_OK, "%s after a failed allocation %llu: %s", name, (unsigned long long)n, nx_errmsg(db));
    }
    nx_close(db);
    if (!fired) break;
  }
  nx_alloc_stats s1;
  nx_alloc_get_stats(&s1);
  cr_assert_eq(s1.current, s0.current, "%s: %zd bytes leaked over the loop", name, (ssize_t)(s1.current - s0.current));
  cr_log_info("%s: %d allocations failed cleanly, %d absorbed", name, nomem, ok);
  cr_assert_gt(nomem, 0);
}

Test(api_faults, insert_many) { fault_loop(op_insert_many, "insert_many"); }
Test(api_faults, update_many) { fault_loop(op_update_many, "update_many"); }
Test(api_faults, find_sorted) { fault_loop(op_find_sorted, "find_sorted"); }
Test(api_faults, kv_batch) { fault_loop(op_kv_batch, "kv_batch"); }
Test(api_faults, delete_many) { fault_loop(op_delete_many, "delete_many"); }
