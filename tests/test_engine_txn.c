// ctest: timeout=300
/*
 * test_engine_txn.c: transactions through the public API: write transactions spanning
 * collections see their own writes and commit atomically, abort leaves nothing, read
 * transactions are snapshots, writes inside a read transaction are refused, a failed write
 * poisons its transaction only when it had already written, cursors of a write transaction
 * survive writes, and injected I/O errors at every write and fsync of a multi-collection commit
 * leave all or none of it after reopening.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nexuslite.h"
#include "base.h"
#include "os.h"

static char g_dir[256];

static void mkdir_tmp(void) {
  snprintf(g_dir, sizeof g_dir, "/tmp/nx_engtxn_XXXXXX");
  cr_assert_not_null(mkdtemp(g_dir));
}

static void rm_tmp(void) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
  cr_assert_eq(system(cmd), 0);
}

static nx_db *open_path(const char *path, nx_durability dur) {
  nx_db *db = NULL;
  nx_open_opts o = NX_OPEN_OPTS_INIT;
  o.durability = dur;
  int rc = nx_open(path, &o, &db);
  cr_assert_eq(rc, NX_OK, "nx_open %s: %s", path, nx_errmsg(NULL));
  return db;
}

static nx_db *open_mem(void) { return open_path(":memory:", NX_DURABILITY_OFF); }

static uint64_t count(nx_db *db, nx_txn *t, const char *coll, const char *filter) {
  uint64_t n = 99999;
  int rc = nx_count(db, t, coll, filter ? nx_json(filter) : nx_none(), &n);
  cr_assert_eq(rc, NX_OK, "count: %s", nx_errmsg(db));
  return n;
}

Test(engine_txn, write_txn_spans_collections_and_sees_own_writes) {
  nx_db *db = open_mem();
  nx_txn *t;
  cr_assert_eq(nx_txn_begin(db, NX_TXN_WRITE, &t), NX_OK);
  cr_assert_eq(nx_insert_one(db, t, "a", nx_json("{\"_id\": 1, \"v\": 1}"), NULL), NX_OK, "%s", nx_errmsg(db));
  cr_assert_eq(nx_insert_one(db, t, "b", nx_json("{\"_id\": 1, \"v\": 2}"), NULL), NX_OK);
  cr_assert_eq(nx_update_one(db, t, "a", nx_json("{\"_id\": 1}"), nx_json("{\"$inc\": {\"v\": 10}}"), 0, NULL), NX_OK);
  cr_assert_eq(count(db, t, "a", "{\"v\": 11}"), 1);
  cr_assert_eq(count(db, t, "b", NULL), 1);
  /* others do not see it yet */
  cr_assert_eq(count(db, NULL, "a", NULL), 0);
  cr_assert_eq(count(db, NULL, "b", NULL), 0);
  cr_assert_eq(nx_txn_commit(t), NX_OK, "%s", nx_errmsg(db));
  cr_assert_eq(count(db, NULL, "a", "{\"v\": 11}"), 1);
  cr_assert_eq(count(db, NULL, "b", NULL), 1);
  nx_close(db);
}

static char *dump(nx_db *db, const char *coll) {
  static char buf[8192];
  buf[0] = 0;
  nx_cursor *c;
  cr_assert_eq(nx_find(db, NULL, coll, nx_none(), NULL, &c), NX_OK);
  const bson_t *d;
  while (nx_cursor_next(c, &d) == NX_ROW) {
    char *s = nx_to_json(d, false);
    strncat(buf, s, sizeof buf - strlen(buf) - 2);
    strcat(buf, ";");
    nx_free(s);
  }
  nx_cursor_close(c);
  return buf;
}

Test(engine_txn, abort_leaves_nothing_across_collections) {
  nx_db *db = open_mem();
  cr_assert_eq(nx_insert_one(db, NULL, "a", nx_json("{\"_id\": 1, \"v\": 1}"), NULL), NX_OK);
  cr_assert_eq(nx_insert_one(db, NULL, "b", nx_json("{\"_id\": 1, \"v\": 1}"), NULL), NX_OK);
  char before_a[8192], before_b[8192];
  snprintf(before_a, sizeof before_a, "%s", dump(db, "a"));
  snprintf(before_b, sizeof before_b, "%s", dump(db, "b"));
  nx_txn *t;
  cr_assert_eq(nx_txn_begin(db, NX_TXN_WRITE, &t), NX_OK);
  for (int i = 2; i < 200; i++) {
    char j[64];
    snprintf(j, sizeof j, "{\"_id\": %d}", i);
    cr_assert_eq(nx_insert_one(db, t, "a", nx_json(j), NULL), NX_OK);
  }
  cr_assert_eq(nx_update_many(db, t, "b", nx_none(), nx_json("{\"$set\": {\"v\": 9}}"), 0, NULL), NX_OK);
  cr_assert_eq(nx_delete_one(db, t, "a", nx_json("{\"_id\": 1}"), NULL), NX_OK);
  cr_assert_eq(nx_insert_one(db, t, "c", nx_json("{\"new\": 1}"), NULL), NX_OK);
  cr_assert_eq(nx_kv_set(db, t, "k", "1"), NX_OK);
  cr_assert_eq(count(db, t, "a", NULL), 198);
  nx_txn_abort(t);
  cr_assert_str_eq(dump(db, "a"), before_a);
  cr_assert_str_eq(dump(db, "b"), before_b);
  bool e = true;
  cr_assert_eq(nx_collection_exists(db, "c", &e), NX_OK);
  cr_assert(!e, "collection created in an aborted txn exists");
  cr_assert_eq(nx_kv_has(db, NULL, "k", &e), NX_OK);
  cr_assert(!e);
  nx_close(db);
}

Test(engine_txn, read_txn_is_a_snapshot) {
  nx_db *db = open_mem();
  cr_assert_eq(nx_insert_one(db, NULL, "a", nx_json("{\"_id\": 1}"), NULL), NX_OK);
  nx_txn *r;
  cr_assert_eq(nx_txn_begin(db, NX_TXN_READ, &r), NX_OK);
  cr_assert_eq(nx_insert_one(db, NULL, "a", nx_json("{\"_id\": 2}"), NULL), NX_OK);
  cr_assert_eq(nx_delete_one(db, NULL, "a", nx_json("{\"_id\": 1}"), NULL), NX_OK);
  cr_assert_eq(nx_insert_one(db, NULL, "z", nx_json("{\"_id\": 1}"), NULL), NX_OK);
  cr_assert_eq(count(db, r, "a", "{\"_id\": 1}"), 1);
  cr_assert_eq(count(db, r, "a", NULL), 1);
  cr_assert_eq(count(db, r, "z", NULL), 0);
  /* a write inside the read txn is refused with a clear message */
  int rc = nx_insert_one(db, r, "a", nx_json("{\"_id\": 3}"), NULL);
  cr_assert_eq(rc, NX_READONLY);
  cr_assert(strstr(nx_errmsg(db), "read transaction"), "message: %s", nx_errmsg(db));
  cr_assert_eq(nx_kv_set(db, r, "k", "1"), NX_READONLY);
  cr_assert_eq(nx_update_many(db, r, "a", nx_none(), nx_json("{\"$set\": {\"x\": 1}}"), 0, NULL), NX_READONLY);
  cr_assert_eq(nx_txn_commit(r), NX_OK);
  cr_assert_eq(count(db, NULL, "a", NULL), 1);
  cr_assert_eq(count(db, NULL, "a", "{\"_id\": 2}"), 1);
  nx_close(db);
}

Test(engine_txn, failed_write_before_any_change_keeps_txn_usable) {
  nx_db *db = open_mem();
  cr_assert_eq(nx_insert_one(db, NULL, "a", nx_json("{\"_id\": 1}"), NULL), NX_OK);
  nx_txn *t;
  cr_assert_eq(nx_txn_begin(db, NX_TXN_WRITE, &t), NX_OK);
  cr_assert_eq(nx_insert_one(db, t, "a", nx_json("{\"_id\": 2}"), NULL), NX_OK);
  cr_assert_eq(nx_insert_one(db, t, "a", nx_json("{\"_id\": 1}"), NULL), NX_EXISTS);
  cr_assert_eq(nx_insert_one(db, t, "a", nx_json("{\"$x\": 1}"), NULL), NX_INVALID);
  cr_assert_eq(nx_update_one(db, t, "a", nx_json("{\"_id\": 1}"), nx_json("{\"$inc\": {\"_id\": 1}}"), 0, NULL), NX_INVALID);
  cr_assert_eq(nx_insert_one(db, t, "a", nx_json("{\"_id\": 3}"), NULL), NX_OK);
  cr_assert_eq(nx_txn_commit(t), NX_OK, "%s", nx_errmsg(db));
  cr_assert_eq(count(db, NULL, "a", NULL), 3);
  nx_close(db);
}

Test(engine_txn, failed_write_after_changes_poisons_the_txn) {
  nx_db *db = open_mem();
  cr_assert_eq(nx_insert_one(db, NULL, "a", nx_json("{\"_id\": 5}"), NULL), NX_OK);
  nx_txn *t;
  cr_assert_eq(nx_txn_begin(db, NX_TXN_WRITE, &t), NX_OK);
  cr_assert_eq(nx_insert_one(db, t, "b", nx_json("{\"_id\": 1}"), NULL), NX_OK);
  nx_in docs[3] = {nx_json("{\"_id\": 4}"), nx_json("{\"_id\": 5}"), nx_json("{\"_id\": 6}")};
  size_t fi;
  cr_assert_eq(nx_insert_many(db, t, "a", docs, 3, &fi), NX_EXISTS);
  cr_assert_eq(fi, 1);
  /* document 0 was written before document 1 failed: the txn can only be aborted */
  cr_assert_eq(nx_insert_one(db, t, "a", nx_json("{\"_id\": 7}"), NULL), NX_MISUSE);
  cr_assert(strstr(nx_errmsg(db), "abort"), "message: %s", nx_errmsg(db));
  cr_assert_eq(nx_txn_commit(t), NX_MISUSE);
  cr_assert_eq(count(db, NULL, "a", NULL), 1);
  cr_assert_eq(count(db, NULL, "b", NULL), 0);
  nx_close(db);
}

Test(engine_txn, cursor_in_write_txn_survives_writes) {
  nx_db *db = open_mem();
  nx_txn *t;
  cr_assert_eq(nx_txn_begin(db, NX_TXN_WRITE, &t), NX_OK);
  for (int i = 0; i < 3000; i++) {
    char j[300];
    snprintf(j, sizeof j, "{\"_id\": %d, \"pad\": \"%0200d\"}", i, i);
    cr_assert_eq(nx_insert_one(db, t, "a", nx_json(j), NULL), NX_OK);
  }
  /* iterate while deleting every other visited document and inserting into another collection */
  nx_cursor *c;
  cr_assert_eq(nx_find(db, t, "a", nx_none(), NULL, &c), NX_OK);
  const bson_t *d;
  int seen = 0, expect = 0;
  while (nx_cursor_next(c, &d) == NX_ROW) {
    bson_iter_t it;
    cr_assert(bson_iter_init_find(&it, d, "_id"));
    int id = bson_iter_int32(&it);
    cr_assert_eq(id, expect, "visited %d, expected %d", id, expect);
    expect++;
    seen++;
    if (id % 2 == 0) {
      char f[64];
      snprintf(f, sizeof f, "{\"_id\": %d}", id);
      cr_assert_eq(nx_delete_one(db, t, "a", nx_json(f), NULL), NX_OK);
      cr_assert_eq(nx_insert_one(db, t, "b", nx_json(f), NULL), NX_OK);
    }
  }
  nx_cursor_close(c);
  cr_assert_eq(seen, 3000);
  /* update_many over the rest */
  nx_update_result r;
  cr_assert_eq(nx_update_many(db, t, "a", nx_none(), nx_json("{\"$set\": {\"pad\": \"x\"}}"), 0, &r), NX_OK);
  cr_assert_eq(r.matched, 1500);
  cr_assert_eq(r.modified, 1500);
  cr_assert_eq(nx_txn_commit(t), NX_OK);
  cr_assert_eq(count(db, NULL, "a", "{\"pad\": \"x\"}"), 1500);
  cr_assert_eq(count(db, NULL, "b", NULL), 1500);
  nx_close(db);
}

Test(engine_txn, cursor_outliving_its_txn_is_refused_not_a_crash) {
  nx_db *db = open_mem();
  for (int i = 0; i < 10; i++) {
    char j[32];
    snprintf(j, sizeof j, "{\"_id\": %d}", i);
    cr_assert_eq(nx_insert_one(db, NULL, "a", nx_json(j), NULL), NX_OK);
  }
  for (int kind = 0; kind < 2; kind++) {
    nx_txn *t;
    cr_assert_eq(nx_txn_begin(db, kind ? NX_TXN_WRITE : NX_TXN_READ, &t), NX_OK);
    nx_cursor *c1, *c2;
    nx_find_opts o = NX_FIND_OPTS_INIT;
    o.sort = nx_json("{\"_id\": -1}");
    cr_assert_eq(nx_find(db, t, "a", nx_none(), NULL, &c1), NX_OK);
    cr_assert_eq(nx_find(db, t, "a", nx_none(), &o, &c2), NX_OK);
    const bson_t *d;
    cr_assert_eq(nx_cursor_next(c1, &d), NX_ROW);
    cr_assert_eq(nx_cursor_next(c2, &d), NX_ROW);
    if (kind) cr_assert_eq(nx_txn_commit(t), NX_OK);
    else nx_txn_abort(t);
    cr_assert_eq(nx_cursor_next(c1, &d), NX_MISUSE);
    cr_assert(strstr(nx_errmsg(db), "transaction has ended"), "%s", nx_errmsg(db));
    cr_assert_eq(nx_cursor_next(c2, &d), NX_MISUSE);
    nx_cursor_close(c2);
    nx_cursor_close(c1);
  }
  nx_close(db);
}

typedef struct worker {
  nx_db *db;
  int id;
  int errors;          /* failed calls (asserted on the main thread) */
  int bad_snapshots;   /* reads that saw a half-applied transaction */
} worker;

/* Writers: 200 transactions, each inserting one document into "w<id>" and bumping a shared
 * counter document; readers: counts in one read txn must agree (sum of docs == counter). */
static void *writer_main(void *arg) {
  worker *w = arg;
  char coll[16];
  snprintf(coll, sizeof coll, "w%d", w->id);
  for (int i = 0; i < 200; i++) {
    nx_txn *t;
    if (nx_txn_begin(w->db, NX_TXN_WRITE, &t) != NX_OK) {
      w->errors++;
      continue;
    }
    int rc = nx_insert_one(w->db, t, coll, nx_json("{\"x\": 1}"), NULL);
    if (rc == NX_OK) rc = nx_update_one(w->db, t, "ctr", nx_json("{\"_id\": 1}"), nx_json("{\"$inc\": {\"n\": 1}}"), 0, NULL);
    if (rc == NX_OK) rc = nx_txn_commit(t);
    else nx_txn_abort(t);
    if (rc != NX_OK) w->errors++;
  }
  return NULL;
}

static void *reader_main(void *arg) {
  worker *w = arg;
  for (int i = 0; i < 200; i++) {
    nx_txn *t;
    if (nx_txn_begin(w->db, NX_TXN_READ, &t) != NX_OK) {
      w->errors++;
      continue;
    }
    uint64_t a = 0, b = 0;
    bson_t d;
    int rc = nx_count(w->db, t, "w0", nx_none(), &a);
    if (rc == NX_OK) rc = nx_count(w->db, t, "w1", nx_none(), &b);
    if (rc == NX_OK) rc = nx_find_one(w->db, t, "ctr", nx_json("{\"_id\": 1}"), NULL, &d);
    if (rc == NX_OK) {
      bson_iter_t it;
      int64_t n = bson_iter_init_find(&it, &d, "n") ? bson_iter_as_int64(&it) : -1;
      if ((uint64_t)n != a + b) w->bad_snapshots++;
      bson_destroy(&d);
    } else {
      w->errors++;
    }
    nx_txn_abort(t);
  }
  return NULL;
}

Test(engine_txn, threads_share_a_database) {
  nx_db *db = open_mem();
  cr_assert_eq(nx_insert_one(db, NULL, "ctr", nx_json("{\"_id\": 1, \"n\": 0}"), NULL), NX_OK);
  pthread_t th[4];
  worker w[4];
  for (int i = 0; i < 4; i++) {
    w[i] = (worker){db, i, 0, 0};
    pthread_create(&th[i], NULL, i < 2 ? writer_main : reader_main, &w[i]);
  }
  for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < 4; i++) {
    cr_assert_eq(w[i].errors, 0, "thread %d: %d failed calls", i, w[i].errors);
    cr_assert_eq(w[i].bad_snapshots, 0, "thread %d saw %d torn snapshots", i, w[i].bad_snapshots);
  }
  cr_assert_eq(count(db, NULL, "w0", NULL), 200);
  cr_assert_eq(count(db, NULL, "w1", NULL), 200);
  cr_assert_eq(count(db, NULL, "ctr", "{\"n\": 400}"), 1);
  nx_close(db);
}

Test(engine_txn, read_only_database_refuses_writes) {
  mkdir_tmp();
  char path[300];
  snprintf(path, sizeof path, "%s/ro.db", g_dir);
  nx_db *db = open_path(path, NX_DURABILITY_NORMAL);
  cr_assert_eq(nx_insert_one(db, NULL, "a", nx_json("{\"_id\": 1}"), NULL), NX_OK);
  cr_assert_eq(nx_close(db), NX_OK);
  nx_open_opts o = NX_OPEN_OPTS_INIT;
  o.read_only = true;
  cr_assert_eq(nx_open(path, &o, &db), NX_OK, "%s", nx_errmsg(NULL));
  cr_assert_eq(count(db, NULL, "a", NULL), 1);
  cr_assert_eq(nx_insert_one(db, NULL, "a", nx_json("{\"_id\": 2}"), NULL), NX_READONLY);
  nx_txn *t;
  cr_assert_eq(nx_txn_begin(db, NX_TXN_WRITE, &t), NX_READONLY);
  cr_assert_eq(nx_kv_set(db, NULL, "k", "1"), NX_READONLY);
  nx_close(db);
  rm_tmp();
}

/* The multi-collection transaction of the fault tests: 50 inserts into "a", 50 into "b", an
 * update of the base document and a kv key; after it either all of it or none is present. */
static int run_txn(nx_db *db) {
  nx_txn *t;
  int rc = nx_txn_begin(db, NX_TXN_WRITE, &t);
  if (rc != NX_OK) return rc;
  for (int i = 0; i < 50 && rc == NX_OK; i++) {
    char j[128];
    snprintf(j, sizeof j, "{\"_id\": %d, \"pad\": \"%0100d\"}", 1000 + i, i);
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

static void setup_base(const char *path) {
  unlink(path);
  char p2[400];
  snprintf(p2, sizeof p2, "%s.wasp", path);
  unlink(p2);
  nx_db *db = open_path(path, NX_DURABILITY_FULL);
  cr_assert_eq(nx_insert_one(db, NULL, "a", nx_json("{\"_id\": 0}"), NULL), NX_OK);
  cr_assert_eq(nx_insert_one(db, NULL, "b", nx_json("{\"_id\": 0}"), NULL), NX_OK);
  cr_assert_eq(nx_close(db), NX_OK, "%s", nx_errmsg(db));
}

/* Returns 1 when the whole transaction is present, 0 when none of it; fails the test otherwise. */
static int check_all_or_none(const char *path) {
  nx_db *db = open_path(path, NX_DURABILITY_FULL);
  uint64_t a = count(db, NULL, "a", NULL), b = count(db, NULL, "b", NULL);
  uint64_t done = count(db, NULL, "a", "{\"_id\": 0, \"done\": true}");
  bool kv = false;
  cr_assert_eq(nx_kv_has(db, NULL, "txn", &kv), NX_OK);
  cr_assert_eq(count(db, NULL, "a", "{\"_id\": 0}"), 1, "base document lost");
  nx_close(db);
  if (a == 51 && b == 51 && done == 1 && kv) return 1;
  cr_assert(a == 1 && b == 1 && done == 0 && !kv, "partial transaction: a=%llu b=%llu done=%llu kv=%d",
            (unsigned long long)a, (unsigned long long)b, (unsigned long long)done, kv);
  return 0;
}

static void fault_loop(os_op op, const char *name) {
  mkdir_tmp();
  char path[300];
  snprintf(path, sizeof path, "%s/f.db", g_dir);
  /* size the loop: calls of this kind made by one successful commit */
  setup_base(path);
  nx_db *db = open_path(path, NX_DURABILITY_FULL);
  os_fault_reset();
  cr_assert_eq(run_txn(db), NX_OK, "%s", nx_errmsg(db));
  uint64_t calls = os_fault_count(op);
  nx_close(db);
  cr_assert_gt(calls, 0, "no %s calls in a commit", name);
  int failed = 0, all = 0, none = 0;
  for (uint64_t n = 1; n <= calls; n++) {
    setup_base(path);
    db = open_path(path, NX_DURABILITY_FULL);
    os_fault_reset();
    os_fault_fail_nth(op, n, EIO);
    int rc = run_txn(db);
    os_fault_fail_nth(op, 0, 0);
    if (rc != NX_OK) failed++;
    nx_close(db);
    int r = check_all_or_none(path);
    if (rc == NX_OK) cr_assert_eq(r, 1, "%s fault %llu: commit said OK but the txn is missing", name, (unsigned long long)n);
    if (r) all++;
    else none++;
  }
  cr_log_info("%s faults: %llu points, %d commits failed, %d all, %d none", name, (unsigned long long)calls, failed, all, none);
  cr_assert_gt(failed, 0, "no injected %s failure made the commit fail", name);
  os_fault_reset();
  rm_tmp();
}

Test(engine_txn, io_write_errors_leave_all_or_none) { fault_loop(OS_OP_WRITE, "write"); }

Test(engine_txn, fsync_errors_leave_all_or_none) { fault_loop(OS_OP_SYNC, "fsync"); }
