// ctest: timeout=300
/*
 * test_index.c: secondary indexes through the public API and the index layer: kinds (single,
 * compound with directions, unique, multikey, sparse, partial, dot paths), maintenance on
 * insert/update/delete (checked entry for entry with idx_verify), unique violations that change
 * nothing, the compound parallel-array rule, build progress and cancel, drop, list and
 * statistics, rebuild of a stale definition at open, and the integrity check's reports.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>

#include "api_testutil.h"
#include "nexuslite.h"
#include "engine.h"
#include "index.h"
#include "planner.h"

/* Results of a find as "json;json;" (owned). */
static char *find_str(nx_db *db, const char *coll, const char *filter, const char *sort) {
  return at_find_str(db, NULL, coll, filter, sort, 0, 0);
}

static void ins(nx_db *db, const char *coll, const char *json) {
  int rc = nx_insert_one(db, NULL, coll, nx_json(json), NULL);
  cr_assert_eq(rc, NX_OK, "insert %s: %s", json, nx_errmsg(db));
}

/* Entries of index `name` from nx_index_list; -1 when absent. */
static int64_t list_field(nx_db *db, const char *coll, const char *name, const char *field) {
  bson_t l;
  cr_assert_eq(nx_index_list(db, coll, &l), NX_OK, "list: %s", nx_errmsg(db));
  bson_iter_t it, arr;
  int64_t r = -1;
  cr_assert(bson_iter_init_find(&it, &l, "indexes") && bson_iter_recurse(&it, &arr));
  while (bson_iter_next(&arr)) {
    bson_t d;
    uint32_t len;
    const uint8_t *data;
    bson_iter_document(&arr, &len, &data);
    bson_init_static(&d, data, len);
    bson_iter_t f;
    if (bson_iter_init_find(&f, &d, "name") && strcmp(bson_iter_utf8(&f, NULL), name) == 0) {
      if (bson_iter_init_find(&f, &d, field)) {
        if (BSON_ITER_HOLDS_BOOL(&f)) r = bson_iter_bool(&f);
        else if (BSON_ITER_HOLDS_DATE_TIME(&f)) r = bson_iter_date_time(&f);
        else r = bson_iter_as_int64(&f);
      }
    }
  }
  bson_destroy(&l);
  return r;
}

/* Runs idx_verify on coll in a read txn; returns the status (message in nx_errmsg). */
static int verify(nx_db *db, const char *coll) {
  nx_txn *t;
  cr_assert_eq(nx_txn_begin(db, NX_TXN_READ, &t), NX_OK);
  int rc = q_index_verify(t, coll);
  nx_txn_abort(t);
  return rc;
}

static uint64_t count(nx_db *db, const char *coll, const char *filter) {
  uint64_t n = 0;
  cr_assert_eq(nx_count(db, NULL, coll, nx_json(filter), &n), NX_OK, "count: %s", nx_errmsg(db));
  return n;
}

Test(index, single_field_index_is_used_and_maintained) {
  nx_db *db = at_open_mem();
  for (int i = 0; i < 50; i++) {
    char j[96];
    snprintf(j, sizeof j, "{\"_id\": %d, \"age\": %d, \"name\": \"n%d\"}", i, i % 10, i);
    ins(db, "u", j);
  }
  char *before = find_str(db, "u", "{\"age\": 3}", NULL);
  at_mkindex(db, "u", "{\"age\": 1}", NULL);
  char *after = find_str(db, "u", "{\"age\": 3}", NULL);
  cr_assert_str_eq(after, before);
  char *e = at_explain_str(db, "u", "{\"age\": 3}", NULL);
  cr_assert(strstr(e, "\"IXSCAN\"") && strstr(e, "\"age_1\""), "explain: %s", e);
  cr_assert(strstr(e, "\"nReturned\" : 5"), "explain: %s", e);
  cr_assert(strstr(e, "\"totalKeysExamined\" : 5"), "explain: %s", e);
  nx_free(e);
  cr_assert_eq(list_field(db, "u", "age_1", "entries"), 50);
  /* update moves an entry, delete removes one, insert adds one */
  cr_assert_eq(nx_update_one(db, NULL, "u", nx_json("{\"_id\": 3}"), nx_json("{\"$set\": {\"age\": 99}}"), 0, NULL), NX_OK);
  cr_assert_eq(nx_delete_one(db, NULL, "u", nx_json("{\"_id\": 13}"), NULL), NX_OK);
  ins(db, "u", "{\"_id\": 100, \"age\": 3}");
  cr_assert_eq(count(db, "u", "{\"age\": 3}"), 4);
  cr_assert_eq(count(db, "u", "{\"age\": 99}"), 1);
  cr_assert_eq(list_field(db, "u", "age_1", "entries"), 50);
  cr_assert_eq(verify(db, "u"), NX_OK, "%s", nx_errmsg(db));
  nx_free(before);
  nx_free(after);
  nx_close(db);
}

Test(index, unique_violation_changes_nothing) {
  nx_db *db = at_open_mem();
  nx_index_opts o = NX_INDEX_OPTS_INIT;
  o.unique = true;
  at_mkindex(db, "u", "{\"email\": 1}", &o);
  ins(db, "u", "{\"_id\": 1, \"email\": \"a@x\"}");
  ins(db, "u", "{\"_id\": 2, \"email\": \"b@x\"}");
  int rc = nx_insert_one(db, NULL, "u", nx_json("{\"_id\": 3, \"email\": \"a@x\"}"), NULL);
  cr_assert_eq(rc, NX_EXISTS);
  const char *m = nx_errmsg(db);
  cr_assert(strstr(m, "email_1") && strstr(m, "a@x"), "message: %s", m);
  cr_assert_eq(count(db, "u", "{}"), 2);
  /* an update to a taken key: refused, the document keeps its value */
  rc = nx_update_one(db, NULL, "u", nx_json("{\"_id\": 2}"), nx_json("{\"$set\": {\"email\": \"a@x\"}}"), 0, NULL);
  cr_assert_eq(rc, NX_EXISTS, "%s", nx_errmsg(db));
  cr_assert_eq(count(db, "u", "{\"email\": \"b@x\"}"), 1);
  /* updating a document to its own key is fine */
  cr_assert_eq(nx_update_one(db, NULL, "u", nx_json("{\"_id\": 1}"), nx_json("{\"$set\": {\"x\": 1}}"), 0, NULL), NX_OK,
               "%s", nx_errmsg(db));
  /* insert_many: all or none */
  nx_in docs[3] = {nx_json("{\"_id\": 10, \"email\": \"c@x\"}"), nx_json("{\"_id\": 11, \"email\": \"d@x\"}"),
                   nx_json("{\"_id\": 12, \"email\": \"c@x\"}")};
  size_t failed = 99;
  cr_assert_eq(nx_insert_many(db, NULL, "u", docs, 3, &failed), NX_EXISTS);
  cr_assert_eq(failed, 2);
  cr_assert_eq(count(db, "u", "{}"), 2);
  /* in a user transaction, the refused insert leaves the transaction usable */
  nx_txn *t;
  cr_assert_eq(nx_txn_begin(db, NX_TXN_WRITE, &t), NX_OK);
  cr_assert_eq(nx_insert_one(db, t, "u", nx_json("{\"_id\": 20, \"email\": \"e@x\"}"), NULL), NX_OK);
  cr_assert_eq(nx_insert_one(db, t, "u", nx_json("{\"_id\": 21, \"email\": \"e@x\"}"), NULL), NX_EXISTS);
  cr_assert_eq(nx_txn_commit(t), NX_OK, "%s", nx_errmsg(db));
  cr_assert_eq(count(db, "u", "{}"), 3);
  /* missing fields index as null: two documents without email collide */
  ins(db, "u", "{\"_id\": 30}");
  cr_assert_eq(nx_insert_one(db, NULL, "u", nx_json("{\"_id\": 31}"), NULL), NX_EXISTS);
  cr_assert_eq(verify(db, "u"), NX_OK, "%s", nx_errmsg(db));
  /* a unique index over duplicates cannot be built, and leaves nothing */
  ins(db, "v", "{\"_id\": 1, \"k\": 5}");
  ins(db, "v", "{\"_id\": 2, \"k\": 5.0}");
  rc = nx_index_create(db, "v", nx_json("{\"k\": 1}"), &o);
  cr_assert_eq(rc, NX_EXISTS);
  cr_assert(strstr(nx_errmsg(db), "k_1"), "%s", nx_errmsg(db));
  cr_assert_eq(list_field(db, "v", "k_1", "entries"), -1);
  nx_close(db);
}

Test(index, sparse_skips_documents_missing_every_field) {
  nx_db *db = at_open_mem();
  ins(db, "s", "{\"_id\": 1, \"x\": 1}");
  ins(db, "s", "{\"_id\": 2}");
  ins(db, "s", "{\"_id\": 3, \"x\": null}");
  nx_index_opts o = NX_INDEX_OPTS_INIT;
  o.sparse = true;
  at_mkindex(db, "s", "{\"x\": 1}", &o);
  cr_assert_eq(list_field(db, "s", "x_1", "entries"), 2);
  ins(db, "s", "{\"_id\": 4, \"y\": 1}");
  cr_assert_eq(list_field(db, "s", "x_1", "entries"), 2);
  /* a sparse index is not used where it would miss documents */
  char *e = at_explain_str(db, "s", "{\"x\": null}", NULL);
  cr_assert(strstr(e, "COLLSCAN"), "%s", e);
  nx_free(e);
  cr_assert_eq(count(db, "s", "{\"x\": null}"), 3);
  e = at_explain_str(db, "s", "{\"x\": 1}", NULL);
  cr_assert(strstr(e, "IXSCAN"), "%s", e);
  nx_free(e);
  cr_assert_eq(verify(db, "s"), NX_OK, "%s", nx_errmsg(db));
  nx_close(db);
}

Test(index, partial_indexes_only_matching_documents) {
  nx_db *db = at_open_mem();
  for (int i = 0; i < 40; i++) {
    char j[64];
    snprintf(j, sizeof j, "{\"_id\": %d, \"age\": %d}", i, i);
    ins(db, "p", j);
  }
  nx_index_opts o = NX_INDEX_OPTS_INIT;
  o.partial_filter = nx_json("{\"age\": {\"$gte\": 18}}");
  at_mkindex(db, "p", "{\"age\": 1}", &o);
  cr_assert_eq(list_field(db, "p", "age_1", "entries"), 22);
  char *e = at_explain_str(db, "p", "{\"age\": {\"$gte\": 30}}", NULL);
  cr_assert(strstr(e, "IXSCAN"), "%s", e);
  nx_free(e);
  e = at_explain_str(db, "p", "{\"age\": {\"$gte\": 5}}", NULL);
  cr_assert(strstr(e, "COLLSCAN"), "the filter does not imply the partial filter: %s", e);
  nx_free(e);
  cr_assert_eq(count(db, "p", "{\"age\": {\"$gte\": 30}}"), 10);
  cr_assert_eq(count(db, "p", "{\"age\": {\"$gte\": 5}}"), 35);
  /* moving a document out of and into the partial range */
  cr_assert_eq(nx_update_one(db, NULL, "p", nx_json("{\"_id\": 20}"), nx_json("{\"$set\": {\"age\": 1}}"), 0, NULL), NX_OK);
  cr_assert_eq(nx_update_one(db, NULL, "p", nx_json("{\"_id\": 2}"), nx_json("{\"$set\": {\"age\": 50}}"), 0, NULL), NX_OK);
  cr_assert_eq(list_field(db, "p", "age_1", "entries"), 22);
  cr_assert_eq(verify(db, "p"), NX_OK, "%s", nx_errmsg(db));
  nx_close(db);
}

Test(index, multikey_indexes_each_element_and_returns_each_document_once) {
  nx_db *db = at_open_mem();
  ins(db, "m", "{\"_id\": 1, \"tags\": [\"a\", \"b\", \"a\"]}");
  ins(db, "m", "{\"_id\": 2, \"tags\": \"b\"}");
  ins(db, "m", "{\"_id\": 3, \"tags\": []}");
  ins(db, "m", "{\"_id\": 4, \"tags\": [\"c\", \"d\"]}");
  at_mkindex(db, "m", "{\"tags\": 1}", NULL);
  /* 1: a, b (deduplicated); 2: b; 3: undefined; 4: c, d */
  cr_assert_eq(list_field(db, "m", "tags_1", "entries"), 6);
  cr_assert_eq(list_field(db, "m", "tags_1", "multikey"), 1);
  char *r = find_str(db, "m", "{\"tags\": {\"$in\": [\"a\", \"b\"]}}", NULL);
  cr_assert_str_eq(r, "{ \"_id\" : 1, \"tags\" : [ \"a\", \"b\", \"a\" ] };{ \"_id\" : 2, \"tags\" : \"b\" };");
  nx_free(r);
  /* never intersect bounds on a multikey field: [a, z] matches $gt b (z) and $lt c (a) with two
   * elements although none lies in (b, c) */
  ins(db, "m", "{\"_id\": 5, \"tags\": [\"a\", \"z\"]}");
  r = find_str(db, "m", "{\"tags\": {\"$gt\": \"b\", \"$lt\": \"c\"}}", NULL);
  cr_assert_str_eq(r, "{ \"_id\" : 5, \"tags\" : [ \"a\", \"z\" ] };");
  nx_free(r);
  char *e = at_explain_str(db, "m", "{\"tags\": {\"$gt\": \"b\", \"$lt\": \"c\"}}", NULL);
  cr_assert(strstr(e, "\"isMultiKey\" : true"), "%s", e);
  nx_free(e);
  cr_assert_eq(verify(db, "m"), NX_OK, "%s", nx_errmsg(db));
  nx_close(db);
}

Test(index, compound_index_refuses_parallel_arrays) {
  nx_db *db = at_open_mem();
  at_mkindex(db, "c", "{\"a\": 1, \"b\": -1}", NULL);
  ins(db, "c", "{\"_id\": 1, \"a\": [1, 2], \"b\": 3}");
  ins(db, "c", "{\"_id\": 2, \"a\": 1, \"b\": [3, 4]}");
  int rc = nx_insert_one(db, NULL, "c", nx_json("{\"_id\": 3, \"a\": [1], \"b\": [2]}"), NULL);
  cr_assert_eq(rc, NX_INVALID);
  cr_assert(strstr(nx_errmsg(db), "parallel arrays"), "%s", nx_errmsg(db));
  cr_assert_eq(count(db, "c", "{}"), 2);
  rc = nx_update_one(db, NULL, "c", nx_json("{\"_id\": 1}"), nx_json("{\"$set\": {\"b\": [7, 8]}}"), 0, NULL);
  cr_assert_eq(rc, NX_INVALID, "%s", nx_errmsg(db));
  cr_assert_eq(count(db, "c", "{\"b\": 3}"), 2);
  /* a build over a collection that already holds parallel arrays fails and leaves nothing */
  ins(db, "d", "{\"_id\": 1, \"x\": [1, 2], \"y\": [3]}");
  rc = nx_index_create(db, "d", nx_json("{\"x\": 1, \"y\": 1}"), NULL);
  cr_assert_eq(rc, NX_INVALID);
  cr_assert_eq(list_field(db, "d", "x_1_y_1", "entries"), -1);
  cr_assert_eq(verify(db, "c"), NX_OK, "%s", nx_errmsg(db));
  nx_close(db);
}

Test(index, dot_paths_and_compound_directions) {
  nx_db *db = at_open_mem();
  ins(db, "a", "{\"_id\": 1, \"addr\": {\"city\": \"Paris\"}, \"age\": 30}");
  ins(db, "a", "{\"_id\": 2, \"addr\": {\"city\": \"Paris\"}, \"age\": 40}");
  ins(db, "a", "{\"_id\": 3, \"addr\": {\"city\": \"Lyon\"}, \"age\": 35}");
  ins(db, "a", "{\"_id\": 4, \"addr\": [{\"city\": \"Paris\"}, {\"city\": \"Nice\"}], \"age\": 20}");
  at_mkindex(db, "a", "{\"addr.city\": 1, \"age\": -1}", NULL);
  char *r = find_str(db, "a", "{\"addr.city\": \"Paris\"}", NULL);
  cr_assert_str_eq(r, "{ \"_id\" : 1, \"addr\" : { \"city\" : \"Paris\" }, \"age\" : 30 };"
                      "{ \"_id\" : 2, \"addr\" : { \"city\" : \"Paris\" }, \"age\" : 40 };"
                      "{ \"_id\" : 4, \"addr\" : [ { \"city\" : \"Paris\" }, { \"city\" : \"Nice\" } ], \"age\" : 20 };");
  nx_free(r);
  char *e = at_explain_str(db, "a", "{\"addr.city\": \"Paris\", \"age\": {\"$gt\": 25}}", NULL);
  cr_assert(strstr(e, "addr.city_1_age_-1") && strstr(e, "(25, inf.0]"), "%s", e);
  nx_free(e);
  cr_assert_eq(count(db, "a", "{\"addr.city\": \"Paris\", \"age\": {\"$gt\": 25}}"), 2);
  cr_assert_eq(verify(db, "a"), NX_OK, "%s", nx_errmsg(db));
  nx_close(db);
}

static int g_calls;
static uint64_t g_last_done, g_last_total;
static int progress(void *ctx, uint64_t done, uint64_t total) {
  g_calls++;
  g_last_done = done;
  g_last_total = total;
  return ctx ? 1 : 0;
}

Test(index, build_reports_progress_and_can_be_cancelled) {
  nx_db *db = at_open_mem();
  nx_txn *t;
  cr_assert_eq(nx_txn_begin(db, NX_TXN_WRITE, &t), NX_OK);
  for (int i = 0; i < 3000; i++) {
    char j[64];
    snprintf(j, sizeof j, "{\"_id\": %d, \"v\": %d}", i, (i * 7) % 1000);
    cr_assert_eq(nx_insert_one(db, t, "b", nx_json(j), NULL), NX_OK);
  }
  cr_assert_eq(nx_txn_commit(t), NX_OK);
  nx_index_opts o = NX_INDEX_OPTS_INIT;
  o.progress = progress;
  o.progress_ctx = (void *)1; /* cancel at the first call */
  g_calls = 0;
  cr_assert_eq(nx_index_create(db, "b", nx_json("{\"v\": 1}"), &o), NX_CANCELLED);
  cr_assert_eq(g_calls, 1);
  cr_assert_eq(list_field(db, "b", "v_1", "entries"), -1);
  o.progress_ctx = NULL;
  g_calls = 0;
  at_mkindex(db, "b", "{\"v\": 1}", &o);
  cr_assert_geq(g_calls, 2);
  cr_assert_eq(g_last_done, 3000);
  cr_assert_eq(g_last_total, 3000);
  cr_assert_eq(list_field(db, "b", "v_1", "entries"), 3000);
  cr_assert_eq(verify(db, "b"), NX_OK, "%s", nx_errmsg(db));
  nx_close(db);
}

Test(index, drop_list_and_statistics) {
  nx_db *db = at_open_mem();
  for (int i = 0; i < 500; i++) {
    char j[96];
    snprintf(j, sizeof j, "{\"_id\": %d, \"k\": \"key-%04d-padding-padding\"}", i, i);
    ins(db, "l", j);
  }
  nx_index_opts o = NX_INDEX_OPTS_INIT;
  o.name = "by_k";
  at_mkindex(db, "l", "{\"k\": 1}", &o);
  cr_assert_eq(nx_index_create(db, "l", nx_json("{\"k\": 1}"), &o), NX_EXISTS);
  cr_assert_eq(nx_index_create(db, "l", nx_json("{\"k\": 1}"), NULL), NX_EXISTS, "same key under another name");
  cr_assert_eq(nx_index_create(db, "l", nx_json("{\"k\": 2}"), NULL), NX_INVALID);
  cr_assert_eq(nx_index_create(db, "l", nx_json("{}"), NULL), NX_INVALID);
  cr_assert_eq(list_field(db, "l", "by_k", "entries"), 500);
  cr_assert_gt(list_field(db, "l", "by_k", "pages"), 1);
  cr_assert_gt(list_field(db, "l", "by_k", "builtAt"), 0);
  cr_assert_geq(list_field(db, "l", "by_k", "buildMs"), 0);
  int64_t l0 = list_field(db, "l", "by_k", "lookups");
  cr_assert_eq(count(db, "l", "{\"k\": \"key-0007-padding-padding\"}"), 1);
  cr_assert_eq(list_field(db, "l", "by_k", "lookups"), l0 + 1);
  cr_assert_eq(nx_index_drop(db, "l", "nope"), NX_NOTFOUND);
  cr_assert_eq(nx_index_drop(db, "l", "by_k"), NX_OK, "%s", nx_errmsg(db));
  cr_assert_eq(list_field(db, "l", "by_k", "entries"), -1);
  char *e = at_explain_str(db, "l", "{\"k\": \"key-0007-padding-padding\"}", NULL);
  cr_assert(strstr(e, "COLLSCAN"), "%s", e);
  nx_free(e);
  /* a collection drop takes its indexes; a rename moves them */
  at_mkindex(db, "l", "{\"k\": -1}", NULL);
  cr_assert_eq(nx_collection_rename(db, "l", "l2"), NX_OK, "%s", nx_errmsg(db));
  cr_assert_eq(list_field(db, "l2", "k_-1", "entries"), 500);
  e = at_explain_str(db, "l2", "{\"k\": \"key-0007-padding-padding\"}", NULL);
  cr_assert(strstr(e, "IXSCAN"), "%s", e);
  nx_free(e);
  cr_assert_eq(verify(db, "l2"), NX_OK, "%s", nx_errmsg(db));
  cr_assert_eq(nx_collection_drop(db, "l2"), NX_OK);
  ins(db, "l2", "{\"_id\": 1, \"k\": 1}");
  cr_assert_eq(list_field(db, "l2", "k_-1", "entries"), -1);
  nx_close(db);
}

/* The entry key of document `json` in the only index of coll, into keys (records). */
static st_val key_of(nx_txn *t, const char *coll, const char *json, nx_buf *keys) {
  bson_t d;
  cr_assert_eq(nx_from_json(json, &d), NX_OK);
  idx_set *s;
  cr_assert_eq(idx_set_load(t->st, coll, &s), NX_OK);
  size_t n;
  uint32_t arr;
  keys->len = 0;
  cr_assert_eq(idx_keys(s->defs[0], &d, keys, &n, &arr), NX_OK);
  cr_assert_eq(n, 1);
  idx_set_free(s);
  bson_destroy(&d);
  return (st_val){keys->data + 2, nx_get16(keys->data)};
}

Test(index, verify_reports_the_first_disagreement) {
  nx_db *db = at_open_mem();
  for (int i = 0; i < 20; i++) {
    char j[64];
    snprintf(j, sizeof j, "{\"_id\": %d, \"v\": %d}", i, i * 10);
    ins(db, "x", j);
  }
  at_mkindex(db, "x", "{\"v\": 1}", NULL);
  cr_assert_eq(verify(db, "x"), NX_OK, "%s", nx_errmsg(db));
  /* remove the entry of _id 7 behind the index layer's back */
  nx_txn *t;
  nx_buf keys;
  nx_buf_init(&keys, 0);
  uint8_t vb[2] = {0, 0};
  cr_assert_eq(nx_txn_begin(db, NX_TXN_WRITE, &t), NX_OK);
  st_tree tree;
  cr_assert_eq(st_tree_open(t->st, "i:x$v_1", false, &tree), NX_OK);
  cr_assert_eq(st_del(t->st, tree, key_of(t, "x", "{\"_id\": 7, \"v\": 70}", &keys)), NX_OK);
  t->writes++;
  cr_assert_eq(nx_txn_commit(t), NX_OK);
  cr_assert_eq(verify(db, "x"), NX_CORRUPT);
  const char *m = nx_errmsg(db);
  cr_assert(strstr(m, "missing entry") && strstr(m, "70") && strstr(m, "_id 7"), "%s", m);
  /* put it back, and add an entry the document does not produce */
  cr_assert_eq(nx_txn_begin(db, NX_TXN_WRITE, &t), NX_OK);
  cr_assert_eq(st_tree_open(t->st, "i:x$v_1", false, &tree), NX_OK);
  st_val k = key_of(t, "x", "{\"_id\": 7, \"v\": 70}", &keys);
  nx_buf idk;
  nx_buf_init(&idk, 0);
  bson_value_t id;
  id.value_type = BSON_TYPE_INT32;
  id.value.v_int32 = 7;
  cr_assert_eq(keyenc_key(&idk, &id), NX_OK);
  nx_put16(vb, (uint16_t)idk.len);
  cr_assert_eq(st_put(t->st, tree, k, (st_val){vb, 2}, 0), NX_OK);
  k = key_of(t, "x", "{\"_id\": 7, \"v\": 71}", &keys);
  cr_assert_eq(st_put(t->st, tree, k, (st_val){vb, 2}, 0), NX_OK);
  t->writes++;
  cr_assert_eq(nx_txn_commit(t), NX_OK);
  cr_assert_eq(verify(db, "x"), NX_CORRUPT);
  m = nx_errmsg(db);
  cr_assert(strstr(m, "extra entry") && strstr(m, "71") && strstr(m, "_id 7"), "%s", m);
  nx_buf_free(&keys);
  nx_buf_free(&idk);
  nx_close(db);
}

/* Builds a file database with an index, then marks the stored definition stale (format version 0)
 * and removes its entries; reopening must rebuild it. */
Test(index, stale_definition_is_rebuilt_at_open) {
  char dir[] = "/tmp/nx_index_XXXXXX";
  cr_assert(mkdtemp(dir));
  char path[256];
  snprintf(path, sizeof path, "%s/s.db", dir);
  nx_db *db;
  nx_open_opts oo = NX_OPEN_OPTS_INIT;
  oo.durability = NX_DURABILITY_OFF;
  cr_assert_eq(nx_open(path, &oo, &db), NX_OK, "%s", nx_errmsg(NULL));
  for (int i = 0; i < 100; i++) {
    char j[64];
    snprintf(j, sizeof j, "{\"_id\": %d, \"v\": %d}", i, i % 7);
    ins(db, "r", j);
  }
  at_mkindex(db, "r", "{\"v\": 1}", NULL);
  int64_t built = list_field(db, "r", "v_1", "builtAt");
  /* rewrite the definition with v = 0 and empty the entry tree */
  nx_txn *t;
  cr_assert_eq(nx_txn_begin(db, NX_TXN_WRITE, &t), NX_OK);
  st_tree defs, tree;
  cr_assert_eq(st_tree_open(t->st, IDX_DEFS_TREE, false, &defs), NX_OK);
  st_val key = {(const uint8_t *)"r\0v_1", 5}, val;
  cr_assert_eq(st_get(t->st, defs, key, &val), NX_OK);
  bson_t rec, fresh = BSON_INITIALIZER;
  cr_assert(bson_init_static(&rec, val.p, val.n));
  bson_iter_t it;
  bson_iter_init(&it, &rec);
  while (bson_iter_next(&it)) {
    if (strcmp(bson_iter_key(&it), "v") == 0) BSON_APPEND_INT32(&fresh, "v", 0);
    else bson_append_iter(&fresh, NULL, 0, &it);
  }
  cr_assert_eq(st_put(t->st, defs, key, (st_val){bson_get_data(&fresh), fresh.len}, 0), NX_OK);
  bson_destroy(&fresh);
  cr_assert_eq(st_tree_drop(t->st, "i:r$v_1"), NX_OK);
  cr_assert_eq(st_tree_open(t->st, "i:r$v_1", true, &tree), NX_OK);
  t->writes++;
  cr_assert_eq(nx_txn_commit(t), NX_OK);
  cr_assert_eq(list_field(db, "r", "v_1", "stale"), 1);
  char *e = at_explain_str(db, "r", "{\"v\": 3}", NULL);
  cr_assert(strstr(e, "COLLSCAN"), "a stale index is never used: %s", e);
  nx_free(e);
  cr_assert_eq(nx_close(db), NX_OK);
  usleep(2000);
  cr_assert_eq(nx_open(path, &oo, &db), NX_OK, "%s", nx_errmsg(NULL));
  cr_assert_eq(list_field(db, "r", "v_1", "stale"), 0);
  cr_assert_eq(list_field(db, "r", "v_1", "entries"), 100);
  cr_assert_geq(list_field(db, "r", "v_1", "builtAt"), built);
  cr_assert_eq(count(db, "r", "{\"v\": 3}"), 14);
  e = at_explain_str(db, "r", "{\"v\": 3}", NULL);
  cr_assert(strstr(e, "IXSCAN"), "%s", e);
  nx_free(e);
  cr_assert_eq(verify(db, "r"), NX_OK, "%s", nx_errmsg(db));
  nx_close(db);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_assert_eq(system(cmd), 0);
}

Test(index, oversized_key_is_refused_and_changes_nothing) {
  nx_db *db = at_open_mem();
  at_mkindex(db, "k", "{\"s\": 1}", NULL);
  char big[2200];
  memset(big, 'x', 2000);
  big[2000] = 0;
  char j[2300];
  snprintf(j, sizeof j, "{\"_id\": 1, \"s\": \"%s\"}", big);
  cr_assert_eq(nx_insert_one(db, NULL, "k", nx_json(j), NULL), NX_LIMIT);
  cr_assert(strstr(nx_errmsg(db), "s_1"), "%s", nx_errmsg(db));
  cr_assert_eq(count(db, "k", "{}"), 0);
  cr_assert_eq(list_field(db, "k", "s_1", "entries"), 0);
  nx_close(db);
}

/* Readers go on during a build: the build's progress callback parks the build (inside its write
 * transaction) until the main thread has run a read. */
typedef struct park {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int state; /* 0 building, 1 parked in the callback, 2 released */
  nx_db *db;
  int rc;
} park;

static int park_progress(void *ctx, uint64_t done, uint64_t total) {
  (void)done;
  (void)total;
  park *p = ctx;
  pthread_mutex_lock(&p->mu);
  if (p->state == 0) {
    p->state = 1;
    pthread_cond_broadcast(&p->cv);
    while (p->state != 2) pthread_cond_wait(&p->cv, &p->mu);
  }
  pthread_mutex_unlock(&p->mu);
  return 0;
}

typedef struct writer_arg {
  nx_db *db;
  int rc;
  volatile int done;
} writer_arg;

static void *writer_thread(void *arg) {
  writer_arg *w = arg;
  w->rc = nx_insert_one(w->db, NULL, "r", nx_json("{\"_id\": 99999, \"v\": 3}"), NULL);
  __atomic_store_n(&w->done, 1, __ATOMIC_SEQ_CST);
  return NULL;
}

static void *build_thread(void *arg) {
  park *p = arg;
  nx_index_opts o = NX_INDEX_OPTS_INIT;
  o.progress = park_progress;
  o.progress_ctx = p;
  p->rc = nx_index_create(p->db, "r", nx_json("{\"v\": 1}"), &o);
  return NULL;
}

Test(index, readers_go_on_and_writers_wait_during_a_build) {
  nx_db *db = at_open_mem();
  nx_txn *t;
  cr_assert_eq(nx_txn_begin(db, NX_TXN_WRITE, &t), NX_OK);
  for (int i = 0; i < 2500; i++) {
    char j[64];
    snprintf(j, sizeof j, "{\"_id\": %d, \"v\": %d}", i, i % 10);
    cr_assert_eq(nx_insert_one(db, t, "r", nx_json(j), NULL), NX_OK);
  }
  cr_assert_eq(nx_txn_commit(t), NX_OK);
  park p = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, db, -1};
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, build_thread, &p), 0);
  pthread_mutex_lock(&p.mu);
  while (p.state != 1) pthread_cond_wait(&p.cv, &p.mu);
  pthread_mutex_unlock(&p.mu);
  /* the build is parked inside its write transaction: a read runs on its snapshot */
  uint64_t n = 0;
  int rc = nx_count(db, NULL, "r", nx_json("{\"v\": 3}"), &n);
  bson_t l;
  int lrc = nx_index_list(db, "r", &l);
  char *ls = lrc == NX_OK ? nx_to_json(&l, false) : NULL;
  if (lrc == NX_OK) bson_destroy(&l);
  /* a writer waits for the build's write transaction */
  writer_arg w = {db, -1, 0};
  pthread_t wt;
  cr_assert_eq(pthread_create(&wt, NULL, writer_thread, &w), 0);
  usleep(100 * 1000);
  int done_early = __atomic_load_n(&w.done, __ATOMIC_SEQ_CST);
  pthread_mutex_lock(&p.mu);
  p.state = 2;
  pthread_cond_broadcast(&p.cv);
  pthread_mutex_unlock(&p.mu);
  pthread_join(th, NULL);
  pthread_join(wt, NULL);
  cr_assert_eq(done_early, 0, "the insert did not wait for the build");
  cr_assert_eq(w.rc, NX_OK, "%s", nx_errmsg(db));
  cr_assert_eq(rc, NX_OK, "%s", nx_errmsg(db));
  cr_assert_eq(n, 250);
  cr_assert_eq(lrc, NX_OK);
  cr_assert(ls && !strstr(ls, "v_1"), "the unfinished index is invisible to readers: %s", ls);
  nx_free(ls);
  cr_assert_eq(p.rc, NX_OK, "%s", nx_errmsg(db));
  cr_assert_eq(list_field(db, "r", "v_1", "entries"), 2501); /* the waiting insert was indexed */
  cr_assert_eq(count(db, "r", "{\"v\": 3}"), 251);
  cr_assert_eq(verify(db, "r"), NX_OK, "%s", nx_errmsg(db));
  nx_close(db);
}

Test(index, expired_documents_keep_entries_until_deleted) {
  nx_db *db = at_open_mem();
  ins(db, "e", "{\"_id\": 1, \"v\": 5}");
  /* a document stored with an expiry in the past: invisible to reads, still in the tree */
  nx_txn *t;
  cr_assert_eq(nx_txn_begin(db, NX_TXN_WRITE, &t), NX_OK);
  eng_coll *c;
  cr_assert_eq(eng_coll_get(t, "e", false, &c), NX_OK);
  bson_t d, fin;
  cr_assert_eq(nx_from_json("{\"_id\": 2, \"v\": 5}", &d), NX_OK);
  cr_assert_eq(eng_prepare_insert(t, c, &d, &fin), NX_OK);
  cr_assert_eq(eng_doc_write(t, c, ENG_INSERT, NULL, NULL, &fin, 1), NX_OK, "%s", nx_errmsg(db));
  bson_destroy(&d);
  bson_destroy(&fin);
  cr_assert_eq(nx_txn_commit(t), NX_OK);
  cr_assert_eq(count(db, "e", "{}"), 1);
  at_mkindex(db, "e", "{\"v\": 1}", NULL);
  cr_assert_eq(list_field(db, "e", "v_1", "entries"), 2); /* the build indexes every stored document */
  cr_assert_eq(count(db, "e", "{\"v\": 5}"), 1);         /* reads through the index skip it */
  cr_assert_eq(verify(db, "e"), NX_OK, "%s", nx_errmsg(db));
  /* inserting the same _id replaces the expired document through the write path */
  ins(db, "e", "{\"_id\": 2, \"v\": 6}");
  cr_assert_eq(list_field(db, "e", "v_1", "entries"), 2);
  cr_assert_eq(count(db, "e", "{\"v\": 6}"), 1);
  cr_assert_eq(verify(db, "e"), NX_OK, "%s", nx_errmsg(db));
  nx_close(db);
}
