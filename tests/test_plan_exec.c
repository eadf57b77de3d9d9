// ctest: timeout=300
/*
 * test_plan_exec.c: how an index scan is executed.
 *   - exact bounds: when the bounds are the whole filter on fields that never held an array, the
 *     executor skips the residual filter (explain's FETCH has no "filter"); anything else keeps
 *     it; results always equal those of the same query on an unindexed copy of the collection.
 *   - reverse sort: an index serves a sort in the exact reverse of its directions by walking
 *     backwards (explain: direction "backward", no SORT stage), results equal the in-memory sort
 *     of an unindexed copy (ties in _id order), with and without skip/limit.
 *   - numeric path parts: an index on "tags.0" serves queries on "tags.0"; an index on "tags"
 *     does not serve "tags.0" (documented decision).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_testutil.h"
#include "nexuslite.h"
#include "base.h"

static void mkindex(nx_db *db, const char *coll, const char *keys) { at_mkindex(db, coll, keys, NULL); }

static void insert(nx_db *db, nx_txn *t, const char *coll, const char *json) {
  cr_assert_eq(nx_insert_one(db, t, coll, nx_json(json), NULL), NX_OK, "%s: %s", json, nx_errmsg(db));
}

/* Inserts the same document into both collections. */
static void insert2(nx_db *db, nx_txn *t, const char *a, const char *b, const char *json) {
  insert(db, t, a, json);
  insert(db, t, b, json);
}

/* What explain says about the winning plan. */
typedef struct plan_view {
  char index[64];   /* index name, "" for none */
  bool mem_sort;    /* a SORT stage */
  bool filter;      /* the FETCH stage re-checks a filter */
  char dir[16];     /* IXSCAN direction */
  int64_t returned; /* nReturned */
} plan_view;

static plan_view explain(nx_db *db, nx_txn *t, const char *coll, const char *filter, const char *sort) {
  nx_find_opts o = NX_FIND_OPTS_INIT;
  if (sort) o.sort = nx_json(sort);
  bson_t e;
  cr_assert_eq(nx_explain(db, t, coll, nx_json(filter), &o, &e), NX_OK, "%s", nx_errmsg(db));
  plan_view v;
  memset(&v, 0, sizeof v);
  bson_iter_t it;
  if (bson_iter_init(&it, &e) && bson_iter_find_descendant(&it, "queryPlanner.winningPlan.stage", &it))
    v.mem_sort = strcmp(bson_iter_utf8(&it, NULL), "SORT") == 0;
  const char *fetch = v.mem_sort ? "queryPlanner.winningPlan.inputStage" : "queryPlanner.winningPlan";
  char path[160];
  snprintf(path, sizeof path, "%s.filter", fetch);
  v.filter = bson_iter_init(&it, &e) && bson_iter_find_descendant(&it, path, &it);
  snprintf(path, sizeof path, "%s.inputStage.indexName", fetch);
  if (bson_iter_init(&it, &e) && bson_iter_find_descendant(&it, path, &it))
    snprintf(v.index, sizeof v.index, "%s", bson_iter_utf8(&it, NULL));
  snprintf(path, sizeof path, "%s.inputStage.direction", fetch);
  if (bson_iter_init(&it, &e) && bson_iter_find_descendant(&it, path, &it))
    snprintf(v.dir, sizeof v.dir, "%s", bson_iter_utf8(&it, NULL));
  if (bson_iter_init(&it, &e) && bson_iter_find_descendant(&it, "executionStats.nReturned", &it))
    v.returned = bson_iter_as_int64(&it);
  bson_destroy(&e);
  return v;
}

/* People in "p" (indexed) and "q" (no index): ages as int32, int64, double, a string, null, and
 * missing, so that type brackets and numeric equality across types are exercised. */
static void load_people(nx_db *db) {
  nx_txn *t;
  cr_assert_eq(nx_txn_begin(db, NX_TXN_WRITE, &t), NX_OK);
  for (int i = 0; i < 400; i++) {
    char j[256], age[48];
    int a = 18 + (i * 7) % 50;
    switch (i % 10) {
    case 0: snprintf(age, sizeof age, "\"age\": {\"$numberLong\": \"%d\"}, ", a); break;
    case 1: snprintf(age, sizeof age, "\"age\": %d.0, ", a); break;
    case 2: snprintf(age, sizeof age, "\"age\": %d.5, ", a); break;
    case 3: snprintf(age, sizeof age, "\"age\": \"%d\", ", a); break;
    case 4: snprintf(age, sizeof age, "\"age\": null, "); break;
    case 5: age[0] = 0; break;
    default: snprintf(age, sizeof age, "\"age\": %d, ", a); break;
    }
    snprintf(j, sizeof j, "{\"_id\": %d, %s\"city\": \"c%d\", \"score\": %d, \"n\": {\"v\": %d}}", i, age, i % 5,
             (i * 37) % 101, i % 9);
    insert2(db, t, "p", "q", j);
  }
  cr_assert_eq(nx_txn_commit(t), NX_OK);
}

/* Results of filter (and sort) on p equal those on q. */
static void same_results(nx_db *db, nx_txn *t, const char *filter, const char *sort, uint64_t skip, uint64_t limit) {
  char *a = at_find_str(db, t, "p", filter, sort, skip, limit);
  char *b = at_find_str(db, t, "q", filter, sort, skip, limit);
  cr_assert_str_eq(a, b, "filter %s sort %s skip %llu limit %llu:\nindexed:   %s\nunindexed: %s", filter,
                   sort ? sort : "-", (unsigned long long)skip, (unsigned long long)limit, a, b);
  nx_free(a);
  nx_free(b);
}

Test(plan_exec, exact_bounds_skip_the_residual_filter) {
  nx_db *db = at_open_mem();
  load_people(db);
  mkindex(db, "p", "{\"age\": 1}");
  mkindex(db, "p", "{\"city\": 1, \"score\": -1}");
  mkindex(db, "p", "{\"n.v\": 1}");
  struct {
    const char *filter;
    const char *index;
    bool filter_kept;
  } cases[] = {
      {"{\"age\": 30}", "age_1", false},
      {"{\"age\": 30.0}", "age_1", false},
      {"{\"age\": {\"$gte\": 30, \"$lt\": 33}}", "age_1", false},
      {"{\"age\": {\"$gt\": 30.5}}", "age_1", false},
      {"{\"age\": {\"$lte\": \"40\"}}", "age_1", false},
      {"{\"age\": {\"$in\": [20, 30, 40.5, \"25\"]}}", "age_1", false},
      {"{\"$and\": [{\"age\": {\"$gte\": 20}}, {\"age\": {\"$lte\": 25}}]}", "age_1", false},
      {"{\"city\": \"c1\", \"score\": {\"$gt\": 50}}", "city_1_score_-1", false},
      {"{\"city\": {\"$in\": [\"c1\", \"c3\"]}}", "city_1_score_-1", false},
      {"{\"n.v\": 4}", "n.v_1", false},
      /* residual kept */
      {"{\"age\": null}", "age_1", true},
      {"{\"age\": 30, \"city\": \"c1\"}", "", true},
      {"{\"age\": {\"$gt\": 30, \"$ne\": 31}}", "age_1", true},
      {"{\"age\": {\"$gte\": 30, \"$exists\": true}}", "age_1", true},
      {"{\"age\": 30, \"$or\": [{\"score\": 1}, {\"score\": 2}]}", "age_1", true},
      {"{\"age\": {\"$in\": [30, null]}}", "age_1", true},
      {"{\"age\": {\"$gt\": {\"$numberDouble\": \"NaN\"}}}", "age_1", true},
      {"{\"city\": {\"$in\": [\"c1\", \"c3\"]}, \"score\": 7}", "city_1_score_-1", false},
      {"{\"city\": \"c1\", \"n.v\": 3}", "", true},
      {"{\"score\": {\"$gt\": 3}, \"city\": \"c2\"}", "city_1_score_-1", false},
      {"{\"age\": {\"$in\": [20, 30]}, \"$and\": [{\"age\": 30}]}", "age_1", true},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    plan_view v = explain(db, NULL, "p", cases[i].filter, NULL);
    if (cases[i].index[0]) cr_assert_str_eq(v.index, cases[i].index, "%s", cases[i].filter);
    else cr_assert_neq(v.index[0], 0, "%s: some index", cases[i].filter);
    cr_assert_eq(v.filter, cases[i].filter_kept, "%s: residual filter %d, want %d", cases[i].filter, v.filter,
                 cases[i].filter_kept);
    same_results(db, NULL, cases[i].filter, NULL, 0, 0);
  }
  /* a write transaction always re-checks (a write may add arrays under the scan) */
  nx_txn *t;
  cr_assert_eq(nx_txn_begin(db, NX_TXN_WRITE, &t), NX_OK);
  plan_view v = explain(db, t, "p", "{\"age\": 30}", NULL);
  cr_assert_str_eq(v.index, "age_1");
  cr_assert(v.filter, "write txn: the residual filter is kept");
  same_results(db, t, "{\"age\": 30}", NULL, 0, 0);
  nx_txn_abort(t);
  /* once the field held an array (multikey), the filter is re-checked: [30, 99] with $lt 31
   * and $gt 98 matches by different elements, as MongoDB does */
  cr_assert_eq(nx_txn_begin(db, NX_TXN_WRITE, &t), NX_OK);
  insert2(db, t, "p", "q", "{\"_id\": 1000, \"age\": [30, 99]}");
  insert2(db, t, "p", "q", "{\"_id\": 1001, \"age\": [29, 31]}");
  cr_assert_eq(nx_txn_commit(t), NX_OK);
  const char *after[] = {"{\"age\": 30}", "{\"age\": {\"$gt\": 29.5, \"$lt\": 30.5}}",
                         "{\"age\": {\"$gt\": 98, \"$lt\": 31}}", "{\"age\": {\"$in\": [31, 99]}}"};
  for (size_t i = 0; i < sizeof after / sizeof after[0]; i++) {
    v = explain(db, NULL, "p", after[i], NULL);
    cr_assert_str_eq(v.index, "age_1", "%s", after[i]);
    cr_assert(v.filter, "%s: multikey keeps the residual filter", after[i]);
    same_results(db, NULL, after[i], NULL, 0, 0);
  }
  v = explain(db, NULL, "p", "{\"age\": {\"$gt\": 98, \"$lt\": 31}}", NULL);
  cr_assert_eq(v.returned, 1, "the array [30, 99] matches by two elements");
  nx_close(db);
}

Test(plan_exec, reverse_sort_walks_the_index_backwards) {
  nx_db *db = at_open_mem();
  load_people(db);
  mkindex(db, "p", "{\"age\": 1}");
  mkindex(db, "p", "{\"city\": 1, \"score\": -1}");
  struct {
    const char *filter, *sort, *index, *dir;
  } cases[] = {
      {"{}", "{\"age\": -1}", "age_1", "backward"},
      {"{}", "{\"age\": 1}", "age_1", "forward"},
      {"{\"age\": {\"$gte\": 20, \"$lt\": 40}}", "{\"age\": -1}", "age_1", "backward"},
      {"{\"age\": {\"$gt\": 30}}", "{\"age\": -1}", "age_1", "backward"},
      {"{\"age\": {\"$lte\": \"40\"}}", "{\"age\": -1}", "age_1", "backward"},
      {"{\"age\": {\"$in\": [20, 30, 45, \"25\"]}}", "{\"age\": -1}", "age_1", "backward"},
      {"{\"age\": {\"$gte\": 20, \"$lt\": 40}, \"score\": {\"$gt\": 50}}", "{\"age\": -1}", "age_1", "backward"},
      {"{}", "{\"city\": -1, \"score\": 1}", "city_1_score_-1", "backward"},
      {"{}", "{\"city\": 1, \"score\": -1}", "city_1_score_-1", "forward"},
      {"{\"city\": \"c2\"}", "{\"score\": 1}", "city_1_score_-1", "backward"},
      {"{\"city\": \"c2\", \"score\": {\"$lt\": 60}}", "{\"score\": 1}", "city_1_score_-1", "backward"},
      {"{\"city\": {\"$gte\": \"c1\"}}", "{\"city\": -1, \"score\": 1}", "city_1_score_-1", "backward"},
  };
  uint64_t lim[][2] = {{0, 0}, {0, 5}, {7, 0}, {3, 11}, {395, 10}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    plan_view v = explain(db, NULL, "p", cases[i].filter, cases[i].sort);
    cr_assert(!v.mem_sort, "%s sort %s: no in-memory sort", cases[i].filter, cases[i].sort);
    cr_assert_str_eq(v.index, cases[i].index, "%s sort %s", cases[i].filter, cases[i].sort);
    cr_assert_str_eq(v.dir, cases[i].dir, "%s sort %s", cases[i].filter, cases[i].sort);
    plan_view w = explain(db, NULL, "q", cases[i].filter, cases[i].sort);
    cr_assert(w.mem_sort, "the unindexed copy sorts in memory");
    cr_assert_eq(v.returned, w.returned, "%s", cases[i].filter);
    cr_assert_gt(v.returned, 1, "%s: a test needs several results", cases[i].filter);
    for (size_t l = 0; l < sizeof lim / sizeof lim[0]; l++)
      same_results(db, NULL, cases[i].filter, cases[i].sort, lim[l][0], lim[l][1]);
  }
  /* not the reverse in every field: an in-memory sort */
  plan_view v = explain(db, NULL, "p", "{}", "{\"city\": -1, \"score\": -1}");
  cr_assert(v.mem_sort);
  same_results(db, NULL, "{}", "{\"city\": -1, \"score\": -1}", 0, 0);
  /* in a write transaction (re-seek after writes, de-duplication), with writes between steps */
  nx_txn *t;
  cr_assert_eq(nx_txn_begin(db, NX_TXN_WRITE, &t), NX_OK);
  same_results(db, t, "{\"age\": {\"$gte\": 20}}", "{\"age\": -1}", 0, 0);
  nx_find_opts o = NX_FIND_OPTS_INIT;
  o.sort = nx_json("{\"age\": -1}");
  nx_cursor *c;
  cr_assert_eq(nx_find(db, t, "p", nx_json("{\"age\": {\"$gte\": 20, \"$lte\": 60}}"), &o, &c), NX_OK);
  const bson_t *d;
  int n = 0, rc;
  double prev = 1e9;
  while ((rc = nx_cursor_next(c, &d)) == NX_ROW) {
    bson_iter_t it;
    cr_assert(bson_iter_init_find(&it, d, "age"));
    double a = bson_iter_as_double(&it);
    cr_assert_leq(a, prev, "descending while writing");
    prev = a;
    char j[96];
    snprintf(j, sizeof j, "{\"_id\": %d, \"age\": %d}", 5000 + n, 20 + n % 40);
    insert(db, t, "p", j); /* new entries in the bounds, on both sides of the walk */
    n++;
  }
  cr_assert_eq(rc, NX_DONE, "%s", nx_errmsg(db));
  nx_cursor_close(c);
  cr_assert_gt(n, 100);
  nx_txn_abort(t);
  nx_close(db);
}

/* Numeric path parts are never planned (docs/indexes.md): the filter reads "tags.0" both as
 * element 0 of an array and as the field "0" of element documents, index keys only as the
 * position, so an index on "tags.0" lacks values such a query matches. */
Test(plan_exec, numeric_path_parts_are_not_planned) {
  nx_db *db = at_open_mem();
  nx_txn *t;
  cr_assert_eq(nx_txn_begin(db, NX_TXN_WRITE, &t), NX_OK);
  const char *docs[] = {
      "{\"_id\": 1, \"tags\": [5, 6]}",         "{\"_id\": 2, \"tags\": [6, 5]}",
      "{\"_id\": 3, \"tags\": [{\"0\": 5}]}",   "{\"_id\": 4, \"tags\": {\"0\": 5}}",
      "{\"_id\": 5, \"tags\": [[5], 1]}",       "{\"_id\": 6, \"tags\": 5}",
      "{\"_id\": 7, \"a\": [{\"b\": 1}, {\"b\": 5}]}", "{\"_id\": 8, \"a\": {\"1\": {\"b\": 5}}}",
  };
  for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) insert2(db, t, "p", "q", docs[i]);
  cr_assert_eq(nx_txn_commit(t), NX_OK);
  mkindex(db, "p", "{\"tags.0\": 1}");
  mkindex(db, "p", "{\"tags\": 1}");
  mkindex(db, "p", "{\"a.1.b\": 1}");
  const char *filters[] = {"{\"tags.0\": 5}", "{\"tags.0\": {\"$gte\": 5}}", "{\"a.1.b\": 5}"};
  for (size_t i = 0; i < sizeof filters / sizeof filters[0]; i++) {
    plan_view v = explain(db, NULL, "p", filters[i], NULL);
    cr_assert_str_eq(v.index, "", "%s: a collection scan", filters[i]);
    same_results(db, NULL, filters[i], NULL, 0, 0);
  }
  /* the case that rules the index out: {tags: [{"0": 5}]} matches by the field name, while its
   * key in an index on "tags.0" is the element {"0": 5} */
  char *r = at_find_str(db, NULL, "p", "{\"tags.0\": 5}", NULL, 0, 0);
  cr_assert(strstr(r, "\"_id\" : 3,"), "%s", r);
  nx_free(r);
  nx_close(db);
}

/* An equality on every field of an index is one run of entries in _id order: streamed without
 * gathering (read txns), also on a multikey field (a document's equal elements are one key). */
Test(plan_exec, single_point_runs_stream_in_id_order) {
  nx_db *db = at_open_mem();
  nx_txn *t;
  cr_assert_eq(nx_txn_begin(db, NX_TXN_WRITE, &t), NX_OK);
  for (int i = 0; i < 300; i++) {
    int id = (i * 97) % 300; /* inserted out of _id order */
    char j[160];
    snprintf(j, sizeof j, "{\"_id\": %d, \"tags\": [%d, %d, %d], \"k\": %d, \"s\": \"v%d\"}", id, id % 3, id % 5,
             id % 3, id % 4, id % 2);
    insert2(db, t, "p", "q", j);
  }
  cr_assert_eq(nx_txn_commit(t), NX_OK);
  mkindex(db, "p", "{\"tags\": 1}");
  mkindex(db, "p", "{\"k\": 1, \"s\": -1}");
  const char *filters[] = {"{\"tags\": 1}", "{\"tags\": 0}", "{\"k\": 2, \"s\": \"v0\"}", "{\"k\": 3, \"s\": \"v1\"}",
                           "{\"k\": 2}", "{\"tags\": {\"$in\": [1, 4]}}"};
  for (size_t i = 0; i < sizeof filters / sizeof filters[0]; i++) {
    plan_view v = explain(db, NULL, "p", filters[i], NULL);
    cr_assert_neq(v.index[0], 0, "%s", filters[i]);
    cr_assert_gt(v.returned, 10, "%s", filters[i]);
    same_results(db, NULL, filters[i], NULL, 0, 0);
    same_results(db, NULL, filters[i], NULL, 3, 7);
  }
  nx_close(db);
}
