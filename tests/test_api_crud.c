// ctest: timeout=300
/*
 * test_api_crud.c: the public document API (nexuslite.h): inserts with generated and user _ids,
 * limits and their messages, finds with filter/projection/sort/skip/limit, updates with operators,
 * replacements and upserts (matched/modified counts), deletes, find-and-modify, metadata,
 * count, distinct, JSON helpers, and MongoDB's behaviour on missing collections.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_testutil.h"
#include "nexuslite.h"
#include "base.h"

/* Runs a find and renders the results as one string "json;json;..." (relaxed JSON). */
static char *find_str(nx_db *db, nx_txn *txn, const char *coll, const char *filter, const nx_find_opts *o) {
  nx_cursor *c;
  int rc = nx_find(db, txn, coll, filter ? nx_json(filter) : nx_none(), o, &c);
  cr_assert_eq(rc, NX_OK, "nx_find: %s", nx_errmsg(db));
  static char buf[65536];
  buf[0] = 0;
  const bson_t *d;
  while ((rc = nx_cursor_next(c, &d)) == NX_ROW) {
    char *s = nx_to_json(d, false);
    strncat(buf, s, sizeof buf - strlen(buf) - 2);
    strcat(buf, ";");
    nx_free(s);
  }
  cr_assert_eq(rc, NX_DONE, "cursor: %s", nx_errmsg(db));
  nx_cursor_close(c);
  return buf;
}

static void ins(nx_db *db, const char *coll, const char *json) {
  int rc = nx_insert_one(db, NULL, coll, nx_json(json), NULL);
  cr_assert_eq(rc, NX_OK, "insert %s: %s", json, nx_errmsg(db));
}

static uint64_t count(nx_db *db, const char *coll, const char *filter) {
  uint64_t n = 99999;
  cr_assert_eq(nx_count(db, NULL, coll, filter ? nx_json(filter) : nx_none(), &n), NX_OK, "count: %s", nx_errmsg(db));
  return n;
}

Test(api_crud, insert_generates_uuid_v7_id_first) {
  nx_db *db = at_open_mem();
  bson_value_t id;
  cr_assert_eq(nx_insert_one(db, NULL, "users", nx_json("{\"name\": \"alice\", \"age\": 30}"), &id), NX_OK, "%s",
               nx_errmsg(db));
  cr_assert_eq(id.value_type, BSON_TYPE_BINARY);
  cr_assert_eq(id.value.v_binary.subtype, BSON_SUBTYPE_UUID);
  cr_assert_eq(id.value.v_binary.data_len, 16u);
  cr_assert_eq(id.value.v_binary.data[6] >> 4, 7, "UUID version nibble");
  bson_t d;
  cr_assert_eq(nx_find_one(db, NULL, "users", nx_json("{\"name\": \"alice\"}"), NULL, &d), NX_OK);
  bson_iter_t it;
  cr_assert(bson_iter_init(&it, &d) && bson_iter_next(&it));
  cr_assert_str_eq(bson_iter_key(&it), "_id");
  cr_assert_eq(bson_iter_value(&it)->value.v_binary.data_len, 16u);
  cr_assert_eq(memcmp(bson_iter_value(&it)->value.v_binary.data, id.value.v_binary.data, 16), 0);
  bson_destroy(&d);
  /* a second generated id sorts after the first (time-ordered) */
  bson_value_t id2;
  cr_assert_eq(nx_insert_one(db, NULL, "users", nx_json("{\"name\": \"bob\"}"), &id2), NX_OK);
  cr_assert_gt(memcmp(id2.value.v_binary.data, id.value.v_binary.data, 16), 0);
  bson_value_destroy(&id);
  bson_value_destroy(&id2);
  nx_close(db);
}

Test(api_crud, uuidv4_collection_option) {
  nx_db *db = at_open_mem();
  cr_assert_eq(nx_collection_create(db, "v4", nx_json("{\"idFormat\": \"uuidv4\"}")), NX_OK, "%s", nx_errmsg(db));
  bson_value_t id;
  cr_assert_eq(nx_insert_one(db, NULL, "v4", nx_json("{\"a\": 1}"), &id), NX_OK);
  cr_assert_eq(id.value.v_binary.data[6] >> 4, 4, "UUID version nibble");
  cr_assert_eq(id.value.v_binary.data[8] >> 6, 2, "RFC variant");
  bson_value_destroy(&id);
  nx_close(db);
}

Test(api_crud, user_id_moved_first_and_natural_order_is_id_order) {
  nx_db *db = at_open_mem();
  ins(db, "t", "{\"x\": \"c\", \"_id\": 3}");
  ins(db, "t", "{\"_id\": 1, \"x\": \"a\"}");
  ins(db, "t", "{\"_id\": \"s\", \"x\": \"s\"}");
  ins(db, "t", "{\"_id\": 2.5, \"x\": \"b\"}");
  cr_assert_str_eq(find_str(db, NULL, "t", NULL, NULL),
                   "{ \"_id\" : 1, \"x\" : \"a\" };{ \"_id\" : 2.5, \"x\" : \"b\" };{ \"_id\" : 3, \"x\" : \"c\" };"
                   "{ \"_id\" : \"s\", \"x\" : \"s\" };");
  nx_close(db);
}

Test(api_crud, duplicate_id_is_exists_naming_collection_and_id) {
  nx_db *db = at_open_mem();
  ins(db, "users", "{\"_id\": \"u1\", \"n\": 1}");
  int rc = nx_insert_one(db, NULL, "users", nx_json("{\"_id\": \"u1\", \"n\": 2}"), NULL);
  cr_assert_eq(rc, NX_EXISTS);
  cr_assert(strstr(nx_errmsg(db), "users") && strstr(nx_errmsg(db), "u1"), "message: %s", nx_errmsg(db));
  /* numerically equal ids collide as in MongoDB: 1 and 1.0 */
  ins(db, "users", "{\"_id\": 1}");
  cr_assert_eq(nx_insert_one(db, NULL, "users", nx_json("{\"_id\": 1.0}"), NULL), NX_EXISTS);
  cr_assert_eq(count(db, "users", NULL), 2);
  nx_close(db);
}

Test(api_crud, invalid_documents_name_the_field) {
  nx_db *db = at_open_mem();
  int rc = nx_insert_one(db, NULL, "t", nx_json("{\"ok\": 1, \"$bad\": 2}"), NULL);
  cr_assert_eq(rc, NX_INVALID);
  cr_assert(strstr(nx_errmsg(db), "$bad"), "message: %s", nx_errmsg(db));
  rc = nx_insert_one(db, NULL, "t", nx_json("{\"_id\": [1, 2]}"), NULL);
  cr_assert_eq(rc, NX_INVALID, "array _id");
  cr_assert(strstr(nx_errmsg(db), "_id"), "message: %s", nx_errmsg(db));
  /* the failed inserts did not create the collection */
  bool e = true;
  cr_assert_eq(nx_collection_exists(db, "t", &e), NX_OK);
  cr_assert(!e);
  nx_close(db);
}

Test(api_crud, invalid_utf8_is_refused_in_strings_and_names) {
  nx_db *db = at_open_mem();
  /* code and symbol strings are stored as given (libbson's bson_validate does not check them) */
  bson_t a = BSON_INITIALIZER, b = BSON_INITIALIZER, c = BSON_INITIALIZER, d = BSON_INITIALIZER;
  BSON_APPEND_UTF8(&a, "s", "ok \xff\xfe");
  bson_t sub;
  BSON_APPEND_DOCUMENT_BEGIN(&b, "sub", &sub);
  BSON_APPEND_UTF8(&sub, "bad\xc3", "x");
  bson_append_document_end(&b, &sub);
  BSON_APPEND_CODE(&c, "code", "function() { return '\xff'; }");
  BSON_APPEND_SYMBOL(&d, "sym", "\xe2\x82");
  cr_assert_eq(nx_insert_one(db, NULL, "t", nx_bson(&a), NULL), NX_INVALID);
  cr_assert(strstr(nx_errmsg(db), "'s'"), "%s", nx_errmsg(db));
  cr_assert_eq(nx_insert_one(db, NULL, "t", nx_bson(&b), NULL), NX_INVALID);
  bson_t ok = BSON_INITIALIZER;
  BSON_APPEND_UTF8(&ok, "s", "caf\xc3\xa9 \xe2\x82\xac");
  BSON_APPEND_CODE(&ok, "code", "function() { return 1; }");
  cr_assert_eq(nx_insert_one(db, NULL, "t", nx_bson(&ok), NULL), NX_OK, "%s", nx_errmsg(db));
  bson_destroy(&a);
  bson_destroy(&b);
  bson_destroy(&c);
  bson_destroy(&d);
  bson_destroy(&ok);
  nx_close(db);
}

Test(api_crud, bad_json_is_parse_error_with_position) {
  nx_db *db = at_open_mem();
  int rc = nx_insert_one(db, NULL, "t", nx_json("{\"a\": 1, \"b\": }"), NULL);
  cr_assert_eq(rc, NX_PARSE);
  const char *m = nx_errmsg(db);
  cr_assert(strstr(m, "position") || strstr(m, "offset") || strstr(m, "line"), "message: %s", m);
  cr_assert_eq(nx_count(db, NULL, "t", nx_json("{\"a\": "), &(uint64_t){0}), NX_PARSE);
  nx_close(db);
}

Test(api_crud, size_and_depth_limits) {
  nx_db *db = at_open_mem();
  bson_t big = BSON_INITIALIZER;
  size_t n = (16u << 20) + 10;
  char *s = malloc(n + 1);
  memset(s, 'x', n);
  s[n] = 0;
  BSON_APPEND_UTF8(&big, "s", s);
  int rc = nx_insert_one(db, NULL, "t", nx_bson(&big), NULL);
  cr_assert(rc == NX_INVALID || rc == NX_LIMIT, "rc %d", rc);
  bson_destroy(&big);
  /* a document just under the limit is stored and read back whole */
  bson_t ok = BSON_INITIALIZER;
  s[(16u << 20) - 100] = 0;
  BSON_APPEND_UTF8(&ok, "s", s);
  cr_assert_eq(nx_insert_one(db, NULL, "t", nx_bson(&ok), NULL), NX_OK, "%s", nx_errmsg(db));
  bson_t back;
  cr_assert_eq(nx_find_one(db, NULL, "t", nx_none(), NULL, &back), NX_OK);
  bson_iter_t it;
  cr_assert(bson_iter_init_find(&it, &back, "s"));
  uint32_t len;
  bson_iter_utf8(&it, &len);
  cr_assert_eq(len, (16u << 20) - 100);
  bson_destroy(&back);
  bson_destroy(&ok);
  free(s);
  /* depth 101 */
  char deep[2048] = "";
  for (int i = 0; i < 101; i++) strcat(deep, "{\"a\": ");
  strcat(deep, "1");
  for (int i = 0; i < 101; i++) strcat(deep, "}");
  rc = nx_insert_one(db, NULL, "t", nx_json(deep), NULL);
  cr_assert(rc == NX_INVALID || rc == NX_PARSE, "depth: rc %d %s", rc, nx_errmsg(db));
  nx_close(db);
}

Test(api_crud, insert_many_is_atomic_and_reports_the_failing_index) {
  nx_db *db = at_open_mem();
  ins(db, "t", "{\"_id\": 2}");
  nx_in docs[4] = {nx_json("{\"_id\": 1}"), nx_json("{\"_id\": 3}"), nx_json("{\"_id\": 2}"), nx_json("{\"_id\": 4}")};
  size_t fi = 99;
  cr_assert_eq(nx_insert_many(db, NULL, "t", docs, 4, &fi), NX_EXISTS);
  cr_assert_eq(fi, 2);
  cr_assert(strstr(nx_errmsg(db), "document 2"), "message: %s", nx_errmsg(db));
  cr_assert_eq(count(db, "t", NULL), 1);
  nx_in bad[3] = {nx_json("{\"_id\": 10}"), nx_json("{\"_id\": 11}"), nx_json("{\"$x\": 1}")};
  cr_assert_eq(nx_insert_many(db, NULL, "t", bad, 3, &fi), NX_INVALID);
  cr_assert_eq(fi, 2);
  nx_in badjson[2] = {nx_json("{\"_id\": 10}"), nx_json("{")};
  cr_assert_eq(nx_insert_many(db, NULL, "t", badjson, 2, &fi), NX_PARSE);
  cr_assert_eq(fi, 1);
  cr_assert_eq(count(db, "t", NULL), 1);
  nx_in good[3] = {nx_json("{\"_id\": 10}"), nx_json("{\"_id\": 11}"), nx_json("{\"_id\": 12}")};
  cr_assert_eq(nx_insert_many(db, NULL, "t", good, 3, &fi), NX_OK, "%s", nx_errmsg(db));
  cr_assert_eq(count(db, "t", NULL), 4);
  nx_close(db);
}

static void load_people(nx_db *db) {
  ins(db, "p", "{\"_id\": 1, \"name\": \"ann\", \"age\": 30, \"city\": \"Paris\", \"tags\": [\"a\", \"b\"]}");
  ins(db, "p", "{\"_id\": 2, \"name\": \"bob\", \"age\": 25, \"city\": \"Rome\", \"tags\": [\"b\"]}");
  ins(db, "p", "{\"_id\": 3, \"name\": \"cat\", \"age\": 35, \"city\": \"Paris\"}");
  ins(db, "p", "{\"_id\": 4, \"name\": \"dan\", \"age\": 25, \"city\": \"Oslo\", \"tags\": []}");
  ins(db, "p", "{\"_id\": 5, \"name\": \"eve\", \"city\": null}");
}

Test(api_crud, find_with_filter_projection_sort_skip_limit) {
  nx_db *db = at_open_mem();
  load_people(db);
  cr_assert_str_eq(find_str(db, NULL, "p", "{\"city\": \"Paris\"}", NULL),
                   "{ \"_id\" : 1, \"name\" : \"ann\", \"age\" : 30, \"city\" : \"Paris\", \"tags\" : [ \"a\", \"b\" ] };"
                   "{ \"_id\" : 3, \"name\" : \"cat\", \"age\" : 35, \"city\" : \"Paris\" };");
  nx_find_opts o = NX_FIND_OPTS_INIT;
  o.projection = nx_json("{\"name\": 1, \"_id\": 0}");
  o.sort = nx_json("{\"age\": -1, \"name\": 1}");
  cr_assert_str_eq(find_str(db, NULL, "p", NULL, &o),
                   "{ \"name\" : \"cat\" };{ \"name\" : \"ann\" };{ \"name\" : \"bob\" };{ \"name\" : \"dan\" };"
                   "{ \"name\" : \"eve\" };");
  o.skip = 1;
  o.limit = 2;
  cr_assert_str_eq(find_str(db, NULL, "p", NULL, &o), "{ \"name\" : \"ann\" };{ \"name\" : \"bob\" };");
  /* skip/limit without sort stream in _id order */
  nx_find_opts o2 = NX_FIND_OPTS_INIT;
  o2.skip = 3;
  o2.limit = 5;
  o2.projection = nx_json("{\"name\": 1}");
  cr_assert_str_eq(find_str(db, NULL, "p", NULL, &o2), "{ \"_id\" : 4, \"name\" : \"dan\" };{ \"_id\" : 5, \"name\" : \"eve\" };");
  cr_assert_str_eq(find_str(db, NULL, "p", "{\"tags\": \"b\", \"age\": {\"$lt\": 30}}", &o2), "");
  o2.skip = 0;
  cr_assert_str_eq(find_str(db, NULL, "p", "{\"tags\": \"b\", \"age\": {\"$lt\": 30}}", &o2), "{ \"_id\" : 2, \"name\" : \"bob\" };");
  /* _id point lookups, with and without other conditions */
  cr_assert_str_eq(find_str(db, NULL, "p", "{\"_id\": 3}", &o2), "{ \"_id\" : 3, \"name\" : \"cat\" };");
  cr_assert_str_eq(find_str(db, NULL, "p", "{\"_id\": 3, \"age\": 1}", &o2), "");
  cr_assert_str_eq(find_str(db, NULL, "p", "{\"_id\": 3.0}", &o2), "{ \"_id\" : 3, \"name\" : \"cat\" };");
  cr_assert_str_eq(find_str(db, NULL, "p", "{\"_id\": 9}", &o2), "");
  /* errors name the operator */
  nx_cursor *c;
  cr_assert_eq(nx_find(db, NULL, "p", nx_json("{\"age\": {\"$gtx\": 1}}"), NULL, &c), NX_INVALID);
  cr_assert(strstr(nx_errmsg(db), "$gtx"), "message: %s", nx_errmsg(db));
  cr_assert_null(c);
  nx_find_opts bad = NX_FIND_OPTS_INIT;
  bad.sort = nx_json("{\"age\": 2}");
  cr_assert_eq(nx_find(db, NULL, "p", nx_none(), &bad, &c), NX_INVALID);
  nx_close(db);
}

Test(api_crud, update_one_many_counts_and_versions) {
  nx_db *db = at_open_mem();
  nx_clock_set_ms(1700000000000);
  load_people(db);
  nx_clock_set_ms(1700000005000);
  nx_update_result r;
  cr_assert_eq(nx_update_one(db, NULL, "p", nx_json("{\"city\": \"Paris\"}"), nx_json("{\"$inc\": {\"age\": 1}}"), 0, &r),
               NX_OK, "%s", nx_errmsg(db));
  cr_assert_eq(r.matched, 1);
  cr_assert_eq(r.modified, 1);
  cr_assert(!r.upserted);
  cr_assert_str_eq(find_str(db, NULL, "p", "{\"_id\": 1}", &(nx_find_opts){sizeof(nx_find_opts), nx_json("{\"age\": 1}"), nx_none(), 0, 0, 0}),
                   "{ \"_id\" : 1, \"age\" : 31 };");
  bson_value_t id = {.value_type = BSON_TYPE_INT32, .value.v_int32 = 1};
  nx_doc_meta m;
  cr_assert_eq(nx_get_meta(db, NULL, "p", &id, &m), NX_OK);
  cr_assert_eq(m.version, 2);
  cr_assert_eq(m.created_ms, 1700000000000);
  cr_assert_eq(m.updated_ms, 1700000005000);
  /* a no-op update matches without modifying, and keeps the version */
  cr_assert_eq(nx_update_one(db, NULL, "p", nx_json("{\"_id\": 1}"), nx_json("{\"$set\": {\"age\": 31}}"), 0, &r), NX_OK);
  cr_assert_eq(r.matched, 1);
  cr_assert_eq(r.modified, 0);
  cr_assert_eq(nx_get_meta(db, NULL, "p", &id, &m), NX_OK);
  cr_assert_eq(m.version, 2);
  /* many: 2 match age 25, both change */
  cr_assert_eq(nx_update_many(db, NULL, "p", nx_json("{\"age\": 25}"), nx_json("{\"$set\": {\"young\": true}}"), 0, &r), NX_OK);
  cr_assert_eq(r.matched, 2);
  cr_assert_eq(r.modified, 2);
  cr_assert_eq(count(db, "p", "{\"young\": true}"), 2);
  /* many over everything, some unchanged */
  cr_assert_eq(nx_update_many(db, NULL, "p", nx_none(), nx_json("{\"$set\": {\"young\": true}}"), 0, &r), NX_OK);
  cr_assert_eq(r.matched, 5);
  cr_assert_eq(r.modified, 3);
  /* update_many refuses a replacement; update_one accepts it */
  cr_assert_eq(nx_update_many(db, NULL, "p", nx_none(), nx_json("{\"x\": 1}"), 0, &r), NX_INVALID);
  cr_assert_eq(nx_update_one(db, NULL, "p", nx_json("{\"_id\": 5}"), nx_json("{\"name\": \"EVE\"}"), 0, &r), NX_OK);
  cr_assert_eq(r.modified, 1);
  cr_assert_str_eq(find_str(db, NULL, "p", "{\"_id\": 5}", NULL), "{ \"_id\" : 5, \"name\" : \"EVE\" };");
  /* errors of the update language come back with their message */
  cr_assert_eq(nx_update_one(db, NULL, "p", nx_json("{\"_id\": 2}"), nx_json("{\"$inc\": {\"name\": 1}}"), 0, &r), NX_INVALID);
  cr_assert_eq(nx_update_one(db, NULL, "p", nx_json("{\"_id\": 2}"), nx_json("{\"$set\": {\"_id\": 7}}"), 0, &r), NX_INVALID);
  cr_assert(strstr(nx_errmsg(db), "_id"), "message: %s", nx_errmsg(db));
  /* missing collection: nothing matched, collection not created */
  cr_assert_eq(nx_update_many(db, NULL, "nope", nx_none(), nx_json("{\"$set\": {\"a\": 1}}"), 0, &r), NX_OK);
  cr_assert_eq(r.matched, 0);
  bool e = true;
  nx_collection_exists(db, "nope", &e);
  cr_assert(!e);
  nx_clock_set_ms(0);
  nx_close(db);
}

Test(api_crud, upsert_seeds_from_filter_equalities) {
  nx_db *db = at_open_mem();
  nx_update_result r;
  cr_assert_eq(nx_update_one(db, NULL, "u", nx_json("{\"name\": \"zed\", \"age\": {\"$gt\": 3}, \"a.b\": 5}"),
                             nx_json("{\"$set\": {\"x\": 1}, \"$setOnInsert\": {\"new\": true}}"), NX_UPSERT, &r),
               NX_OK, "%s", nx_errmsg(db));
  cr_assert(r.upserted);
  cr_assert_eq(r.matched, 0);
  cr_assert_eq(r.upserted_id.value_type, BSON_TYPE_BINARY);
  bson_value_destroy(&r.upserted_id);
  /* field order of new fields is the match layer's business (MongoDB 5+: lexicographic) */
  cr_assert_eq(count(db, "u", "{\"name\": \"zed\", \"a\": {\"b\": 5}, \"x\": 1, \"new\": true, \"age\": {\"$exists\": false}}"), 1);
  bson_t one;
  cr_assert_eq(nx_find_one(db, NULL, "u", nx_none(), NULL, &one), NX_OK);
  cr_assert_eq(bson_count_keys(&one), 5, "fields: _id, name, a, x, new");
  bson_destroy(&one);
  /* second time it matches: no insert, $setOnInsert ignored */
  cr_assert_eq(nx_update_one(db, NULL, "u", nx_json("{\"name\": \"zed\"}"),
                             nx_json("{\"$set\": {\"x\": 2}, \"$setOnInsert\": {\"new\": false}}"), NX_UPSERT, &r), NX_OK);
  cr_assert(!r.upserted);
  cr_assert_eq(r.modified, 1);
  cr_assert_eq(count(db, "u", "{\"new\": true, \"x\": 2}"), 1);
  /* upsert with an _id equality and a replacement */
  cr_assert_eq(nx_replace_one(db, NULL, "u", nx_json("{\"_id\": \"k\"}"), nx_json("{\"v\": 1}"), NX_UPSERT, &r), NX_OK,
               "%s", nx_errmsg(db));
  cr_assert(r.upserted);
  cr_assert_eq(r.upserted_id.value_type, BSON_TYPE_UTF8);
  bson_value_destroy(&r.upserted_id);
  cr_assert_str_eq(find_str(db, NULL, "u", "{\"_id\": \"k\"}", NULL), "{ \"_id\" : \"k\", \"v\" : 1 };");
  /* upsert creates a missing collection */
  cr_assert_eq(nx_update_many(db, NULL, "fresh", nx_json("{\"_id\": 1}"), nx_json("{\"$inc\": {\"n\": 1}}"), NX_UPSERT, &r), NX_OK);
  cr_assert(r.upserted);
  bson_value_destroy(&r.upserted_id);
  cr_assert_str_eq(find_str(db, NULL, "fresh", NULL, NULL), "{ \"_id\" : 1, \"n\" : 1 };");
  nx_close(db);
}

Test(api_crud, update_one_by_id_in_place_positional_and_upsert) {
  nx_db *db = at_open_mem();
  cr_assert_eq(nx_insert_one(db, NULL, "p", nx_json("{\"_id\": 1, \"n\": 5, \"f\": true, \"s\": \"x\", \"a\": [{\"b\": 1}, {\"b\": 2}]}"), NULL),
               NX_OK);
  bson_value_t id = {.value_type = BSON_TYPE_INT32, .value.v_int32 = 1};
  nx_doc_meta m;
  nx_update_result r;
  /* scalar changes of existing fields (the in-place path) */
  cr_assert_eq(nx_update_one(db, NULL, "p", nx_json("{\"_id\": 1}"), nx_json("{\"$inc\": {\"n\": 1}, \"$set\": {\"f\": false}}"), 0, &r),
               NX_OK, "%s", nx_errmsg(db));
  cr_assert(r.matched == 1 && r.modified == 1);
  cr_assert_str_eq(find_str(db, NULL, "p", NULL, NULL),
                   "{ \"_id\" : 1, \"n\" : 6, \"f\" : false, \"s\" : \"x\", \"a\" : [ { \"b\" : 1 }, { \"b\" : 2 } ] };");
  cr_assert_eq(nx_get_meta(db, NULL, "p", &id, &m), NX_OK);
  cr_assert_eq(m.version, 2);
  /* nothing changes: matched, not modified, version kept */
  cr_assert_eq(nx_update_one(db, NULL, "p", nx_json("{\"_id\": 1}"), nx_json("{\"$inc\": {\"n\": 0}, \"$set\": {\"f\": false}}"), 0, &r),
               NX_OK);
  cr_assert(r.matched == 1 && r.modified == 0);
  cr_assert_eq(nx_get_meta(db, NULL, "p", &id, &m), NX_OK);
  cr_assert_eq(m.version, 2);
  /* int32 overflowing into int64 changes the size: the general path */
  cr_assert_eq(nx_update_one(db, NULL, "p", nx_json("{\"_id\": 1}"), nx_json("{\"$inc\": {\"n\": 2147483647}}"), 0, &r), NX_OK);
  cr_assert_eq(count(db, "p", "{\"n\": {\"$type\": \"long\"}, \"f\": false}"), 1);
  cr_assert_eq(nx_update_one(db, NULL, "p", nx_json("{\"_id\": 1}"), nx_json("{\"$inc\": {\"s\": 1}}"), 0, &r), NX_INVALID);
  cr_assert(strstr(nx_errmsg(db), "non-numeric type"), "%s", nx_errmsg(db));
  /* positional '$' through the point path: the filter matched no array element */
  cr_assert_eq(nx_update_one(db, NULL, "p", nx_json("{\"_id\": 1}"), nx_json("{\"$set\": {\"a.$.b\": 9}}"), 0, &r), NX_INVALID);
  cr_assert(strstr(nx_errmsg(db), "positional operator did not find the match"), "%s", nx_errmsg(db));
  /* upsert by _id seeds the _id from the filter */
  cr_assert_eq(nx_update_one(db, NULL, "p", nx_json("{\"_id\": 7}"), nx_json("{\"$inc\": {\"n\": 1}}"), NX_UPSERT, &r), NX_OK,
               "%s", nx_errmsg(db));
  cr_assert(r.upserted && r.matched == 0);
  bson_value_destroy(&r.upserted_id);
  cr_assert_str_eq(find_str(db, NULL, "p", "{\"_id\": 7}", NULL), "{ \"_id\" : 7, \"n\" : 1 };");
  nx_close(db);
}

Test(api_crud, replace_one_keeps_id_and_refuses_operators) {
  nx_db *db = at_open_mem();
  load_people(db);
  nx_update_result r;
  cr_assert_eq(nx_replace_one(db, NULL, "p", nx_json("{\"name\": \"bob\"}"), nx_json("{\"name\": \"BOB\", \"k\": 1}"), 0, &r),
               NX_OK, "%s", nx_errmsg(db));
  cr_assert_eq(r.matched, 1);
  cr_assert_eq(r.modified, 1);
  cr_assert_str_eq(find_str(db, NULL, "p", "{\"_id\": 2}", NULL), "{ \"_id\" : 2, \"name\" : \"BOB\", \"k\" : 1 };");
  cr_assert_eq(nx_replace_one(db, NULL, "p", nx_json("{\"_id\": 2}"), nx_json("{\"$set\": {\"a\": 1}}"), 0, &r), NX_INVALID);
  /* an empty replacement keeps only the _id */
  cr_assert_eq(nx_replace_one(db, NULL, "p", nx_json("{\"_id\": 4}"), nx_json("{}"), 0, &r), NX_OK, "%s", nx_errmsg(db));
  cr_assert_eq(r.modified, 1);
  cr_assert_str_eq(find_str(db, NULL, "p", "{\"_id\": 4}", NULL), "{ \"_id\" : 4 };");
  cr_assert_eq(nx_replace_one(db, NULL, "p", nx_json("{\"_id\": 2}"), nx_json("{\"_id\": 3, \"a\": 1}"), 0, &r), NX_INVALID);
  cr_assert_eq(nx_replace_one(db, NULL, "p", nx_json("{\"_id\": 42}"), nx_json("{\"a\": 1}"), 0, &r), NX_OK);
  cr_assert_eq(r.matched, 0);
  cr_assert_eq(count(db, "p", NULL), 5);
  nx_close(db);
}

Test(api_crud, delete_one_and_many) {
  nx_db *db = at_open_mem();
  load_people(db);
  uint64_t n = 9;
  cr_assert_eq(nx_delete_one(db, NULL, "p", nx_json("{\"city\": \"Paris\"}"), &n), NX_OK);
  cr_assert_eq(n, 1);
  cr_assert_str_eq(find_str(db, NULL, "p", "{\"city\": \"Paris\"}", &(nx_find_opts){sizeof(nx_find_opts), nx_json("{\"name\": 1}"), nx_none(), 0, 0, 0}),
                   "{ \"_id\" : 3, \"name\" : \"cat\" };");
  cr_assert_eq(nx_delete_many(db, NULL, "p", nx_json("{\"age\": {\"$lte\": 30}}"), &n), NX_OK);
  cr_assert_eq(n, 2);
  cr_assert_eq(nx_delete_many(db, NULL, "p", nx_json("{\"age\": 99}"), &n), NX_OK);
  cr_assert_eq(n, 0);
  cr_assert_eq(nx_delete_many(db, NULL, "p", nx_none(), &n), NX_OK);
  cr_assert_eq(n, 2);
  cr_assert_eq(count(db, "p", NULL), 0);
  cr_assert_eq(nx_delete_many(db, NULL, "missing", nx_none(), &n), NX_OK);
  cr_assert_eq(n, 0);
  nx_close(db);
}

Test(api_crud, find_one_and_modify_family) {
  nx_db *db = at_open_mem();
  load_people(db);
  nx_fam_opts o = NX_FAM_OPTS_INIT;
  o.sort = nx_json("{\"age\": -1}");
  o.projection = nx_json("{\"name\": 1, \"age\": 1, \"_id\": 0}");
  bson_t d;
  cr_assert_eq(nx_find_one_and_update(db, NULL, "p", nx_json("{\"age\": {\"$gte\": 25}}"), nx_json("{\"$inc\": {\"age\": 10}}"), &o, &d),
               NX_OK, "%s", nx_errmsg(db));
  char *s = nx_to_json(&d, false);
  cr_assert_str_eq(s, "{ \"name\" : \"cat\", \"age\" : 35 }");
  nx_free(s);
  bson_destroy(&d);
  o.return_after = true;
  cr_assert_eq(nx_find_one_and_update(db, NULL, "p", nx_json("{\"name\": \"cat\"}"), nx_json("{\"$inc\": {\"age\": 1}}"), &o, &d), NX_OK);
  s = nx_to_json(&d, false);
  cr_assert_str_eq(s, "{ \"name\" : \"cat\", \"age\" : 46 }");
  nx_free(s);
  bson_destroy(&d);
  /* replace, returning after */
  cr_assert_eq(nx_find_one_and_replace(db, NULL, "p", nx_json("{\"_id\": 2}"), nx_json("{\"name\": \"B\", \"age\": 1}"), &o, &d), NX_OK);
  s = nx_to_json(&d, false);
  cr_assert_str_eq(s, "{ \"name\" : \"B\", \"age\" : 1 }");
  nx_free(s);
  bson_destroy(&d);
  /* delete returns the deleted document */
  cr_assert_eq(nx_find_one_and_delete(db, NULL, "p", nx_json("{\"_id\": 4}"), NULL, &d), NX_OK);
  s = nx_to_json(&d, false);
  cr_assert_str_eq(s, "{ \"_id\" : 4, \"name\" : \"dan\", \"age\" : 25, \"city\" : \"Oslo\", \"tags\" : [  ] }");
  nx_free(s);
  bson_destroy(&d);
  cr_assert_eq(count(db, "p", "{\"_id\": 4}"), 0);
  cr_assert_eq(nx_find_one_and_delete(db, NULL, "p", nx_json("{\"_id\": 4}"), NULL, &d), NX_NOTFOUND);
  /* upsert: returning after gives the new document; returning before gives NX_NOTFOUND but inserts */
  nx_fam_opts u = NX_FAM_OPTS_INIT;
  u.upsert = true;
  u.return_after = true;
  cr_assert_eq(nx_find_one_and_update(db, NULL, "ctr", nx_json("{\"_id\": \"n\"}"), nx_json("{\"$inc\": {\"v\": 1}}"), &u, &d), NX_OK);
  s = nx_to_json(&d, false);
  cr_assert_str_eq(s, "{ \"_id\" : \"n\", \"v\" : 1 }");
  nx_free(s);
  bson_destroy(&d);
  u.return_after = false;
  cr_assert_eq(nx_find_one_and_update(db, NULL, "ctr", nx_json("{\"_id\": \"m\"}"), nx_json("{\"$inc\": {\"v\": 1}}"), &u, &d), NX_NOTFOUND);
  cr_assert_eq(count(db, "ctr", NULL), 2);
  cr_assert_eq(nx_find_one_and_update(db, NULL, "ctr", nx_json("{\"_id\": \"m\"}"), nx_json("{\"$inc\": {\"v\": 1}}"), &u, &d), NX_OK);
  s = nx_to_json(&d, false);
  cr_assert_str_eq(s, "{ \"_id\" : \"m\", \"v\" : 1 }");
  nx_free(s);
  bson_destroy(&d);
  nx_close(db);
}

Test(api_crud, count_and_distinct) {
  nx_db *db = at_open_mem();
  load_people(db);
  ins(db, "p", "{\"_id\": 6, \"age\": 30.0, \"tags\": [\"c\", \"a\", [\"z\"]]}");
  cr_assert_eq(count(db, "p", NULL), 6);
  cr_assert_eq(count(db, "p", "{\"age\": 30}"), 2);
  cr_assert_eq(count(db, "p", "{\"age\": {\"$exists\": false}}"), 1);
  cr_assert_eq(count(db, "missing", NULL), 0);
  bson_t v;
  cr_assert_eq(nx_distinct(db, NULL, "p", "tags", nx_none(), &v), NX_OK, "%s", nx_errmsg(db));
  char *s = nx_to_json(&v, false);
  cr_assert_str_eq(s, "{ \"values\" : [ \"a\", \"b\", \"c\", [ \"z\" ] ] }");
  nx_free(s);
  bson_destroy(&v);
  cr_assert_eq(nx_distinct(db, NULL, "p", "age", nx_json("{\"city\": {\"$ne\": \"Oslo\"}}"), &v), NX_OK);
  s = nx_to_json(&v, false);
  cr_assert_str_eq(s, "{ \"values\" : [ 25, 30, 35 ] }");
  nx_free(s);
  bson_destroy(&v);
  cr_assert_eq(nx_distinct(db, NULL, "missing", "a", nx_none(), &v), NX_OK);
  s = nx_to_json(&v, false);
  cr_assert_str_eq(s, "{ \"values\" : [  ] }");
  nx_free(s);
  bson_destroy(&v);
  nx_close(db);
}

Test(api_crud, missing_collection_reads_return_nothing) {
  nx_db *db = at_open_mem();
  cr_assert_str_eq(find_str(db, NULL, "ghost", "{\"a\": 1}", NULL), "");
  bson_t d;
  cr_assert_eq(nx_find_one(db, NULL, "ghost", nx_none(), NULL, &d), NX_NOTFOUND);
  bson_value_t id = {.value_type = BSON_TYPE_INT32, .value.v_int32 = 1};
  nx_doc_meta m;
  cr_assert_eq(nx_get_meta(db, NULL, "ghost", &id, &m), NX_NOTFOUND);
  bool e = true;
  cr_assert_eq(nx_collection_exists(db, "ghost", &e), NX_OK);
  cr_assert(!e);
  ins(db, "ghost", "{\"_id\": 1}");
  cr_assert_eq(nx_collection_exists(db, "ghost", &e), NX_OK);
  cr_assert(e);
  nx_close(db);
}

Test(api_crud, json_helpers_and_argument_errors) {
  bson_t d;
  cr_assert_eq(nx_from_json("{\"a\": {\"$numberLong\": \"5\"}}", &d), NX_OK);
  char *s = nx_to_json(&d, true);
  cr_assert_str_eq(s, "{ \"a\" : { \"$numberLong\" : \"5\" } }");
  nx_free(s);
  s = nx_to_json(&d, false);
  cr_assert_str_eq(s, "{ \"a\" : 5 }");
  nx_free(s);
  bson_destroy(&d);
  cr_assert_eq(nx_from_json("{\"a\": ", &d), NX_PARSE);
  cr_assert_eq(nx_insert_one(NULL, NULL, "t", nx_json("{}"), NULL), NX_MISUSE);
  nx_db *db = at_open_mem();
  cr_assert_eq(nx_insert_one(db, NULL, "bad$name", nx_json("{}"), NULL), NX_INVALID);
  cr_assert(strstr(nx_errmsg(db), "$"), "%s", nx_errmsg(db));
  cr_assert_eq(nx_insert_one(db, NULL, "_nxsecret", nx_json("{}"), NULL), NX_INVALID);
  cr_assert_eq(nx_insert_one(db, NULL, "t", nx_none(), NULL), NX_INVALID);
  nx_find_opts o = NX_FIND_OPTS_INIT;
  o.size = 3;
  nx_cursor *c;
  cr_assert_eq(nx_find(db, NULL, "t", nx_none(), &o, &c), NX_MISUSE);
  nx_close(db);
}
