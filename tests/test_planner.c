// ctest: timeout=300
/*
 * test_planner.c: the planner chooses an index when it should (equality, range, $in, $and of
 * those, prefixes of compound indexes, sort), falls back to a collection scan otherwise, picks
 * the selective index of two candidates (1% against 90% of the documents) by its bounded count,
 * serves a sort from an index without an in-memory sort (ties in _id order), answers a unique
 * point lookup with one key and one document, and explain reports what was examined.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_testutil.h"
#include "nexuslite.h"
#include "base.h"

static char *find_str(nx_db *db, const char *coll, const char *filter, const char *sort, uint64_t limit) {
  return at_find_str(db, NULL, coll, filter, sort, 0, limit);
}

/* The winning plan's index name ("" for none) and whether it sorts in memory. */
static void winner(nx_db *db, const char *coll, const char *filter, const char *sort, char *name, size_t n,
                   bool *mem_sort) {
  nx_find_opts o = NX_FIND_OPTS_INIT;
  if (sort) o.sort = nx_json(sort);
  bson_t e;
  cr_assert_eq(nx_explain(db, NULL, coll, nx_json(filter), &o, &e), NX_OK, "%s", nx_errmsg(db));
  bson_iter_t it;
  name[0] = 0;
  if (bson_iter_init(&it, &e) && bson_iter_find_descendant(&it, "queryPlanner.winningPlan.stage", &it))
    *mem_sort = strcmp(bson_iter_utf8(&it, NULL), "SORT") == 0;
  const char *paths[] = {"queryPlanner.winningPlan.inputStage.indexName",
                         "queryPlanner.winningPlan.inputStage.inputStage.indexName"};
  for (int i = 0; i < 2; i++) {
    bson_iter_t j;
    if (bson_iter_init(&j, &e) && bson_iter_find_descendant(&j, paths[i], &j)) {
      snprintf(name, n, "%s", bson_iter_utf8(&j, NULL));
      break;
    }
  }
  bson_destroy(&e);
}

static int64_t stat_of(nx_db *db, const char *coll, const char *filter, const char *field) {
  bson_t e;
  cr_assert_eq(nx_explain(db, NULL, coll, nx_json(filter), NULL, &e), NX_OK, "%s", nx_errmsg(db));
  char path[128];
  snprintf(path, sizeof path, "executionStats.%s", field);
  bson_iter_t it;
  int64_t v = -1;
  if (bson_iter_init(&it, &e) && bson_iter_find_descendant(&it, path, &it)) v = bson_iter_as_int64(&it);
  bson_destroy(&e);
  return v;
}

static void load_people(nx_db *db, const char *coll, int n) {
  nx_txn *t;
  cr_assert_eq(nx_txn_begin(db, NX_TXN_WRITE, &t), NX_OK);
  for (int i = 0; i < n; i++) {
    char j[200];
    /* rare: 1% of the documents; common: 90% */
    snprintf(j, sizeof j,
             "{\"_id\": %d, \"age\": %d, \"city\": \"c%d\", \"rare\": %d, \"common\": %d, \"score\": %d}", i,
             18 + i % 60, i % 7, i % 100 == 1 ? 1 : 0, i % 10 == 0 ? 0 : 1, (i * 37) % 101);
    cr_assert_eq(nx_insert_one(db, t, coll, nx_json(j), NULL), NX_OK, "%s", nx_errmsg(db));
  }
  cr_assert_eq(nx_txn_commit(t), NX_OK);
}

Test(planner, index_used_for_equality_range_in_and_prefixes) {
  nx_db *db = at_open_mem();
  load_people(db, "p", 600);
  at_mkindex(db, "p", "{\"age\": 1}", NULL);
  at_mkindex(db, "p", "{\"city\": 1, \"score\": -1}", NULL);
  struct {
    const char *filter, *want;
  } cases[] = {
      {"{\"age\": 30}", "age_1"},
      {"{\"age\": {\"$gte\": 30, \"$lt\": 32}}", "age_1"},
      {"{\"age\": {\"$in\": [20, 21, 77]}}", "age_1"},
      {"{\"$and\": [{\"age\": {\"$gt\": 70}}, {\"name\": {\"$exists\": false}}]}", "age_1"},
      {"{\"city\": \"c3\"}", "city_1_score_-1"},
      {"{\"city\": \"c3\", \"score\": {\"$lt\": 10}}", "city_1_score_-1"},
      {"{\"score\": 5}", ""},                  /* not a prefix of any index */
      {"{\"age\": {\"$ne\": 30}}", ""},        /* $ne gives no bounds */
      {"{\"$or\": [{\"age\": 30}, {\"city\": \"c1\"}]}", ""},
      {"{\"age\": {\"$exists\": true}}", ""},
      {"{}", ""},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char name[64];
    bool ms = false;
    winner(db, "p", cases[i].filter, NULL, name, sizeof name, &ms);
    cr_assert_str_eq(name, cases[i].want, "filter %s", cases[i].filter);
    char *s = at_explain_str(db, "p", cases[i].filter, NULL);
    if (!*cases[i].want) cr_assert(strstr(s, "COLLSCAN"), "filter %s: %s", cases[i].filter, s);
    nx_free(s);
  }
  /* the results with the index equal those of a scan (a collection without indexes) */
  load_people(db, "q", 600);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *a = find_str(db, "p", cases[i].filter, NULL, 0), *b = find_str(db, "q", cases[i].filter, NULL, 0);
    cr_assert_str_eq(a, b, "filter %s", cases[i].filter);
    nx_free(a);
    nx_free(b);
  }
  nx_close(db);
}

Test(planner, selective_index_wins_one_percent_against_ninety) {
  nx_db *db = at_open_mem();
  load_people(db, "p", 2000);
  at_mkindex(db, "p", "{\"common\": 1}", NULL);
  at_mkindex(db, "p", "{\"rare\": 1}", NULL);
  const char *f = "{\"common\": 1, \"rare\": 1}";
  char name[64];
  bool ms;
  winner(db, "p", f, NULL, name, sizeof name, &ms);
  cr_assert_str_eq(name, "rare_1");
  char *e = at_explain_str(db, "p", f, NULL);
  cr_assert(strstr(e, "\"rejectedPlans\" : [ { \"stage\" : \"FETCH\"") && strstr(e, "common_1"), "%s", e);
  nx_free(e);
  /* 20 documents have rare = 1, all with common = 1 */
  cr_assert_eq(stat_of(db, "p", f, "nReturned"), 20);
  cr_assert_eq(stat_of(db, "p", f, "totalKeysExamined"), 20);
  cr_assert_eq(stat_of(db, "p", f, "totalDocsExamined"), 20);
  /* the other way round: the filter on the 90% value of rare picks common = 0 (10%) */
  winner(db, "p", "{\"common\": 0, \"rare\": 0}", NULL, name, sizeof name, &ms);
  cr_assert_str_eq(name, "common_1");
  nx_close(db);
}

Test(planner, sort_served_by_index_without_memory_sort) {
  nx_db *db = at_open_mem();
  load_people(db, "p", 500);
  load_people(db, "q", 500);
  at_mkindex(db, "p", "{\"score\": 1}", NULL);
  at_mkindex(db, "p", "{\"city\": 1, \"age\": -1}", NULL);
  struct {
    const char *filter, *sort, *want;
    bool mem;
  } cases[] = {
      {"{}", "{\"score\": 1}", "score_1", false},
      {"{\"score\": {\"$gt\": 50}}", "{\"score\": 1}", "score_1", false},
      {"{\"city\": \"c2\"}", "{\"age\": -1}", "city_1_age_-1", false},
      {"{\"city\": \"c2\"}", "{\"age\": 1}", "city_1_age_-1", false}, /* a backward walk */
      {"{}", "{\"score\": -1}", "score_1", false},                         /* a backward walk */
      {"{}", "{\"city\": -1, \"age\": 1}", "city_1_age_-1", false},         /* a backward walk */
      {"{}", "{\"city\": 1, \"age\": -1}", "city_1_age_-1", false},
      {"{\"city\": {\"$in\": [\"c1\", \"c2\"]}}", "{\"age\": -1}", "city_1_age_-1", true},
      {"{}", "{\"age\": 1}", "", true},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char name[64];
    bool ms = false;
    winner(db, "p", cases[i].filter, cases[i].sort, name, sizeof name, &ms);
    cr_assert_str_eq(name, cases[i].want, "filter %s sort %s", cases[i].filter, cases[i].sort);
    cr_assert_eq(ms, cases[i].mem, "filter %s sort %s: in-memory sort %d", cases[i].filter, cases[i].sort, ms);
    for (uint64_t lim = 0; lim <= 7; lim += 7) {
      char *a = find_str(db, "p", cases[i].filter, cases[i].sort, lim);
      char *b = find_str(db, "q", cases[i].filter, cases[i].sort, lim);
      cr_assert_str_eq(a, b, "filter %s sort %s limit %llu", cases[i].filter, cases[i].sort, (unsigned long long)lim);
      nx_free(a);
      nx_free(b);
    }
  }
  /* a limited sorted find through the index examines only what it returns */
  nx_find_opts o = NX_FIND_OPTS_INIT;
  o.sort = nx_json("{\"score\": 1}");
  o.limit = 3;
  bson_t e;
  cr_assert_eq(nx_explain(db, NULL, "p", nx_json("{}"), &o, &e), NX_OK);
  bson_iter_t it;
  cr_assert(bson_iter_init(&it, &e) && bson_iter_find_descendant(&it, "executionStats.totalDocsExamined", &it));
  cr_assert_eq(bson_iter_as_int64(&it), 3);
  bson_destroy(&e);
  nx_close(db);
}

Test(planner, unique_index_point_lookup) {
  nx_db *db = at_open_mem();
  load_people(db, "p", 300);
  nx_index_opts o = NX_INDEX_OPTS_INIT;
  o.unique = true;
  at_mkindex(db, "p", "{\"age\": 1, \"_id\": 1}", &o);
  at_mkindex(db, "p", "{\"city\": 1}", NULL);
  char name[64];
  bool ms;
  const char *f = "{\"age\": 40, \"_id\": 22, \"city\": \"c1\"}";
  winner(db, "p", f, NULL, name, sizeof name, &ms);
  cr_assert_str_eq(name, "");  /* the executor's own _id lookup comes first */
  char *e = at_explain_str(db, "p", f, NULL);
  cr_assert(strstr(e, "IDHACK"), "%s", e);
  nx_free(e);
  f = "{\"age\": 40, \"_id\": {\"$in\": [22, 23]}, \"city\": \"c1\"}";
  winner(db, "p", f, NULL, name, sizeof name, &ms);
  cr_assert_str_eq(name, "age_1__id_1");
  cr_assert_eq(stat_of(db, "p", f, "totalKeysExamined"), 1);
  /* every field of the unique index bound to one point: taken without counting the others */
  const char *f1 = "{\"age\": 40, \"_id\": {\"$in\": [22]}, \"city\": \"c1\"}";
  winner(db, "p", f1, NULL, name, sizeof name, &ms);
  cr_assert_str_eq(name, "age_1__id_1");
  char *e2 = at_explain_str(db, "p", f1, NULL);
  cr_assert(!strstr(e2, "keysEstimate"), "a unique point lookup is taken without counting: %s", e2);
  nx_free(e2);
  cr_assert_eq(stat_of(db, "p", f1, "nReturned"), 1);
  cr_assert_eq(stat_of(db, "p", f, "totalDocsExamined"), 1);
  cr_assert_eq(stat_of(db, "p", f, "nReturned"), 1);
  nx_close(db);
}

Test(planner, empty_bounds_and_type_brackets) {
  nx_db *db = at_open_mem();
  const char *docs[] = {"{\"_id\": 1, \"v\": 5}", "{\"_id\": 2, \"v\": \"5\"}", "{\"_id\": 3, \"v\": 7.5}",
                        "{\"_id\": 4, \"v\": null}", "{\"_id\": 5}", "{\"_id\": 6, \"v\": [1, \"a\"]}",
                        "{\"_id\": 7, \"v\": {\"$date\": \"2020-01-01T00:00:00Z\"}}", "{\"_id\": 8, \"v\": true}"};
  for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
    cr_assert_eq(nx_insert_one(db, NULL, "p", nx_json(docs[i]), NULL), NX_OK);
    cr_assert_eq(nx_insert_one(db, NULL, "q", nx_json(docs[i]), NULL), NX_OK);
  }
  at_mkindex(db, "p", "{\"v\": 1}", NULL);
  const char *filters[] = {
      "{\"v\": {\"$gt\": 1}}", "{\"v\": {\"$lt\": \"b\"}}", "{\"v\": {\"$gt\": 6, \"$lt\": \"z\"}}",
      "{\"v\": null}", "{\"v\": {\"$in\": [null, 5]}}", "{\"v\": {\"$gte\": true}}", "{\"v\": \"a\"}",
      "{\"v\": {\"$lte\": {\"$date\": \"2021-01-01T00:00:00Z\"}}}", "{\"v\": {\"$in\": []}}",
      "{\"v\": {\"$gte\": 5, \"$lte\": 5}}",
  };
  for (size_t i = 0; i < sizeof filters / sizeof filters[0]; i++) {
    char *a = find_str(db, "p", filters[i], NULL, 0), *b = find_str(db, "q", filters[i], NULL, 0);
    cr_assert_str_eq(a, b, "filter %s", filters[i]);
    nx_free(a);
    nx_free(b);
  }
  nx_close(db);
}

Test(planner, in_with_an_impossible_long_value_keeps_the_others) {
  nx_db *db = at_open_mem();
  at_mkindex(db, "p", "{\"s\": 1}", NULL);
  cr_assert_eq(nx_insert_one(db, NULL, "p", nx_json("{\"_id\": 1, \"s\": \"short\"}"), NULL), NX_OK);
  char big[1500];
  memset(big, 'y', 1400);
  big[1400] = 0;
  char f[1600];
  snprintf(f, sizeof f, "{\"s\": {\"$in\": [\"%s\", \"short\"]}}", big);
  char *r = find_str(db, "p", f, NULL, 0);
  cr_assert_str_eq(r, "{ \"_id\" : 1, \"s\" : \"short\" };");
  nx_free(r);
  snprintf(f, sizeof f, "{\"s\": \"%s\"}", big);
  r = find_str(db, "p", f, NULL, 0);
  cr_assert_str_eq(r, "");
  nx_free(r);
  nx_close(db);
}
