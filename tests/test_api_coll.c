// ctest: timeout=120
/*
 * test_api_coll.c: collections through the public API: create (options validated, duplicates
 * refused), names checked, drop, rename, list in name order, exists, stats, compression options
 * that shrink storage and round-trip documents, and persistence of all of it across reopen.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nexuslite.h"

static char g_dir[256];

static nx_db *open_path(const char *path) {
  nx_db *db = NULL;
  nx_open_opts o = NX_OPEN_OPTS_INIT;
  o.durability = NX_DURABILITY_OFF;
  cr_assert_eq(nx_open(path, &o, &db), NX_OK, "nx_open: %s", nx_errmsg(NULL));
  return db;
}

static int64_t stat_i64(const bson_t *st, const char *k) {
  bson_iter_t it;
  cr_assert(bson_iter_init_find(&it, st, k), "stats lack %s", k);
  return bson_iter_as_int64(&it);
}

Test(api_coll, names_are_validated) {
  nx_db *db = open_path(":memory:");
  const char *bad[] = {"", "a$b", "system.users", "_nxthing", "\xff\xfe"};
  for (size_t i = 0; i < 5; i++) {
    cr_assert_eq(nx_collection_create(db, bad[i], nx_none()), NX_INVALID, "name '%s'", bad[i]);
    cr_assert_neq(nx_errmsg(db)[0], 0);
  }
  char longname[130];
  memset(longname, 'n', 121);
  longname[121] = 0;
  cr_assert_eq(nx_collection_create(db, longname, nx_none()), NX_INVALID);
  longname[120] = 0;
  cr_assert_eq(nx_collection_create(db, longname, nx_none()), NX_OK, "%s", nx_errmsg(db));
  cr_assert_eq(nx_collection_create(db, "caf\xc3\xa9 users.v2", nx_none()), NX_OK, "%s", nx_errmsg(db));
  cr_assert_eq(nx_collection_create(db, NULL, nx_none()), NX_INVALID);
  nx_close(db);
}

Test(api_coll, create_drop_rename_list_exists) {
  nx_db *db = open_path(":memory:");
  cr_assert_eq(nx_collection_create(db, "b", nx_none()), NX_OK);
  cr_assert_eq(nx_collection_create(db, "b", nx_none()), NX_EXISTS);
  cr_assert(strstr(nx_errmsg(db), "'b'"), "%s", nx_errmsg(db));
  cr_assert_eq(nx_collection_create(db, "a", nx_json("{\"compression\": \"zstd\"}")), NX_OK);
  cr_assert_eq(nx_collection_create(db, "c", nx_json("{\"compression\": \"brotli\"}")), NX_INVALID);
  cr_assert_eq(nx_collection_create(db, "c", nx_json("{\"colour\": 1}")), NX_INVALID);
  cr_assert(strstr(nx_errmsg(db), "colour"), "%s", nx_errmsg(db));
  cr_assert_eq(nx_collection_create(db, "c", nx_json("{\"compression\": ")), NX_PARSE);
  cr_assert_eq(nx_insert_one(db, NULL, "b", nx_json("{\"_id\": 1}"), NULL), NX_OK);
  char **v;
  size_t n;
  cr_assert_eq(nx_collection_list(db, &v, &n), NX_OK);
  cr_assert_eq(n, 2);
  cr_assert_str_eq(v[0], "a");
  cr_assert_str_eq(v[1], "b");
  nx_free_strv(v, n);
  cr_assert_eq(nx_collection_rename(db, "b", "a"), NX_EXISTS);
  cr_assert_eq(nx_collection_rename(db, "zz", "q"), NX_NOTFOUND);
  cr_assert_eq(nx_collection_rename(db, "b", "z"), NX_OK, "%s", nx_errmsg(db));
  bool e;
  cr_assert_eq(nx_collection_exists(db, "b", &e), NX_OK);
  cr_assert(!e);
  cr_assert_eq(nx_collection_exists(db, "z", &e), NX_OK);
  cr_assert(e);
  uint64_t cnt;
  cr_assert_eq(nx_count(db, NULL, "z", nx_none(), &cnt), NX_OK);
  cr_assert_eq(cnt, 1);
  cr_assert_eq(nx_collection_drop(db, "z"), NX_OK);
  cr_assert_eq(nx_collection_drop(db, "z"), NX_NOTFOUND);
  cr_assert_eq(nx_count(db, NULL, "z", nx_none(), &cnt), NX_OK);
  cr_assert_eq(cnt, 0);
  /* a dropped collection can be created again, empty */
  cr_assert_eq(nx_insert_one(db, NULL, "z", nx_json("{\"_id\": 2}"), NULL), NX_OK);
  cr_assert_eq(nx_count(db, NULL, "z", nx_none(), &cnt), NX_OK);
  cr_assert_eq(cnt, 1);
  nx_close(db);
}

static void fill(nx_db *db, const char *coll, int n) {
  nx_txn *t;
  cr_assert_eq(nx_txn_begin(db, NX_TXN_WRITE, &t), NX_OK);
  for (int i = 0; i < n; i++) {
    char j[512];
    snprintf(j, sizeof j,
             "{\"_id\": %d, \"name\": \"user number %d\", \"city\": \"Paris\", \"bio\": \"Lorem ipsum dolor sit amet, "
             "consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua.\", "
             "\"motto\": \"Lorem ipsum dolor sit amet, consectetur adipiscing elit.\"}",
             i, i);
    cr_assert_eq(nx_insert_one(db, t, coll, nx_json(j), NULL), NX_OK, "%s", nx_errmsg(db));
  }
  cr_assert_eq(nx_txn_commit(t), NX_OK);
}

Test(api_coll, compression_shrinks_storage_and_round_trips) {
  nx_db *db = open_path(":memory:");
  cr_assert_eq(nx_collection_create(db, "plain", nx_none()), NX_OK);
  cr_assert_eq(nx_collection_create(db, "z", nx_json("{\"compression\": \"zstd\", \"compressionLevel\": 3}")), NX_OK);
  cr_assert_eq(nx_collection_create(db, "l", nx_json("{\"compression\": \"lz4\"}")), NX_OK);
  fill(db, "plain", 300);
  fill(db, "z", 300);
  fill(db, "l", 300);
  bson_t sp, sz, sl;
  cr_assert_eq(nx_collection_stats(db, "plain", &sp), NX_OK, "%s", nx_errmsg(db));
  cr_assert_eq(nx_collection_stats(db, "z", &sz), NX_OK);
  cr_assert_eq(nx_collection_stats(db, "l", &sl), NX_OK);
  cr_assert_eq(stat_i64(&sp, "count"), 300);
  cr_assert_eq(stat_i64(&sz, "size"), stat_i64(&sp, "size"), "logical size is the BSON size");
  cr_assert_lt(stat_i64(&sz, "storageSize"), stat_i64(&sp, "storageSize"));
  cr_assert_lt(stat_i64(&sl, "storageSize"), stat_i64(&sp, "storageSize"));
  cr_assert_eq(stat_i64(&sp, "avgObjSize"), stat_i64(&sp, "size") / 300);
  bson_destroy(&sp);
  bson_destroy(&sz);
  bson_destroy(&sl);
  /* documents read back the same from all three */
  for (int i = 0; i < 300; i += 37) {
    char f[64];
    snprintf(f, sizeof f, "{\"_id\": %d}", i);
    bson_t a, b, c;
    cr_assert_eq(nx_find_one(db, NULL, "plain", nx_json(f), NULL, &a), NX_OK);
    cr_assert_eq(nx_find_one(db, NULL, "z", nx_json(f), NULL, &b), NX_OK);
    cr_assert_eq(nx_find_one(db, NULL, "l", nx_json(f), NULL, &c), NX_OK);
    cr_assert(bson_equal(&a, &b) && bson_equal(&a, &c));
    bson_destroy(&a);
    bson_destroy(&b);
    bson_destroy(&c);
  }
  /* updates keep compressing */
  cr_assert_eq(nx_update_many(db, NULL, "z", nx_none(), nx_json("{\"$set\": {\"city\": \"Rome\"}}"), 0, NULL), NX_OK);
  uint64_t n;
  cr_assert_eq(nx_count(db, NULL, "z", nx_json("{\"city\": \"Rome\"}"), &n), NX_OK);
  cr_assert_eq(n, 300);
  cr_assert_eq(nx_collection_stats(db, "missing", &sp), NX_NOTFOUND);
  nx_close(db);
}

Test(api_coll, everything_persists_across_reopen) {
  snprintf(g_dir, sizeof g_dir, "/tmp/nx_coll_XXXXXX");
  cr_assert_not_null(mkdtemp(g_dir));
  char path[300];
  snprintf(path, sizeof path, "%s/p.db", g_dir);
  nx_db *db = open_path(path);
  cr_assert_eq(nx_collection_create(db, "z", nx_json("{\"compression\": \"zstd\", \"idFormat\": \"uuidv4\"}")), NX_OK);
  fill(db, "z", 50);
  cr_assert_eq(nx_insert_one(db, NULL, "other", nx_json("{\"_id\": \"x\"}"), NULL), NX_OK);
  cr_assert_eq(nx_kv_set(db, NULL, "k", "[1]"), NX_OK);
  cr_assert_eq(nx_close(db), NX_OK, "%s", nx_errmsg(db));
  db = open_path(path);
  char **v;
  size_t n;
  cr_assert_eq(nx_collection_list(db, &v, &n), NX_OK);
  cr_assert_eq(n, 2);
  cr_assert_str_eq(v[0], "other");
  cr_assert_str_eq(v[1], "z");
  nx_free_strv(v, n);
  bson_t st;
  cr_assert_eq(nx_collection_stats(db, "z", &st), NX_OK);
  cr_assert_eq(stat_i64(&st, "count"), 50);
  bson_iter_t it;
  cr_assert(bson_iter_init_find(&it, &st, "options"));
  bson_destroy(&st);
  /* the uuidv4 option survived */
  bson_value_t id;
  cr_assert_eq(nx_insert_one(db, NULL, "z", nx_json("{\"a\": 1}"), &id), NX_OK);
  cr_assert_eq(id.value.v_binary.data[6] >> 4, 4);
  bson_value_destroy(&id);
  char *s;
  cr_assert_eq(nx_kv_get(db, NULL, "k", &s), NX_OK);
  cr_assert_str_eq(s, "[ 1 ]");
  nx_free(s);
  nx_close(db);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
  cr_assert_eq(system(cmd), 0);
}

static int g_progress_calls;
static int count_progress(void *ctx, uint64_t done, uint64_t total) {
  (void)ctx;
  (void)done;
  (void)total;
  g_progress_calls++;
  return 0;
}

Test(api_coll, maintenance_checkpoint_compact_stats) {
  snprintf(g_dir, sizeof g_dir, "/tmp/nx_maint_XXXXXX");
  cr_assert_not_null(mkdtemp(g_dir));
  char path[300];
  snprintf(path, sizeof path, "%s/m.db", g_dir);
  nx_db *db = open_path(path);
  fill(db, "big", 3000);
  nx_stats s0;
  cr_assert_eq(nx_stats_get(db, &s0), NX_OK);
  cr_assert_eq(s0.page_size, 4096u);
  cr_assert_gt(s0.commits, 0);
  cr_assert_eq(nx_checkpoint(db, NX_CHECKPOINT_PASSIVE), NX_OK, "%s", nx_errmsg(db));
  cr_assert_eq(nx_checkpoint(db, NX_CHECKPOINT_TRUNCATE), NX_OK, "%s", nx_errmsg(db));
  cr_assert_eq(nx_checkpoint(db, (nx_checkpoint_mode)7), NX_MISUSE);
  nx_stats s1;
  cr_assert_eq(nx_stats_get(db, &s1), NX_OK);
  cr_assert_gt(s1.checkpoints, s0.checkpoints);
  cr_assert_eq(nx_collection_drop(db, "big"), NX_OK);
  fill(db, "small", 10);
  nx_stats s2;
  cr_assert_eq(nx_stats_get(db, &s2), NX_OK);
  cr_assert_eq(nx_compact(db, count_progress, NULL), NX_OK, "%s", nx_errmsg(db));
  nx_stats s3;
  cr_assert_eq(nx_stats_get(db, &s3), NX_OK);
  cr_assert_lt(s3.pages_total, s2.pages_total, "compaction did not shrink: %llu -> %llu pages",
               (unsigned long long)s2.pages_total, (unsigned long long)s3.pages_total);
  uint64_t n;
  cr_assert_eq(nx_count(db, NULL, "small", nx_none(), &n), NX_OK);
  cr_assert_eq(n, 10);
  cr_assert_eq(nx_stats_get(NULL, &s3), NX_MISUSE);
  cr_assert_eq(nx_close(db), NX_OK, "%s", nx_errmsg(db));
  db = open_path(path);
  cr_assert_eq(nx_count(db, NULL, "small", nx_none(), &n), NX_OK);
  cr_assert_eq(n, 10);
  nx_close(db);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
  cr_assert_eq(system(cmd), 0);
}
