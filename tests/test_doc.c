/* test_doc.c: the document layer: MongoDB's value order, JSON in and out, dot paths, storage
 * validation and UUID generation. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "doc.h"

static bson_t *J(const char *json) {
  bson_t tmp;
  int rc = doc_from_json(json, -1, &tmp);
  cr_assert_eq(rc, NX_OK, "bad test JSON %s: %s", json, nx_err_msg());
  bson_t *b = bson_copy(&tmp);
  bson_destroy(&tmp);
  return b;
}

/* Compares the values of field "v" in two JSON documents. */
static int cmpj(const char *a, const char *b) {
  bson_t *da = J(a), *db = J(b);
  bson_iter_t ia, ib;
  cr_assert(bson_iter_init_find(&ia, da, "v"));
  cr_assert(bson_iter_init_find(&ib, db, "v"));
  int c = doc_cmp_iter(&ia, &ib);
  int r = doc_cmp_iter(&ib, &ia);
  cr_assert_eq(c<0, r> 0, "antisymmetry broken for %s vs %s", a, b);
  cr_assert_eq(c == 0, r == 0, "antisymmetry broken for %s vs %s", a, b);
  bson_destroy(da);
  bson_destroy(db);
  return c;
}

Test(doc, type_brackets_follow_mongodb_order) {
  /* lowest first, one value per bracket */
  const char *order[] = {
      "{\"v\": {\"$minKey\": 1}}",
      "{\"v\": {\"$undefined\": true}}",
      "{\"v\": null}",
      "{\"v\": {\"$numberDouble\": \"-Infinity\"}}",
      "{\"v\": 3}",
      "{\"v\": \"\"}",
      "{\"v\": \"abc\"}",
      "{\"v\": {}}",
      "{\"v\": {\"a\": 1}}",
      "{\"v\": []}",
      "{\"v\": [1]}",
      "{\"v\": {\"$binary\": {\"base64\": \"AA==\", \"subType\": \"00\"}}}",
      "{\"v\": {\"$oid\": \"000000000000000000000000\"}}",
      "{\"v\": false}",
      "{\"v\": true}",
      "{\"v\": {\"$date\": {\"$numberLong\": \"-1\"}}}",
      "{\"v\": {\"$date\": {\"$numberLong\": \"0\"}}}",
      "{\"v\": {\"$timestamp\": {\"t\": 0, \"i\": 0}}}",
      "{\"v\": {\"$regularExpression\": {\"pattern\": \"a\", \"options\": \"\"}}}",
      "{\"v\": {\"$code\": \"x\"}}",
      "{\"v\": {\"$maxKey\": 1}}",
  };
  size_t n = sizeof order / sizeof order[0];
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++) {
      int c = cmpj(order[i], order[j]);
      int want = i < j ? -1 : (i > j ? 1 : 0);
      cr_assert_eq(c < 0 ? -1 : (c > 0 ? 1 : 0), want, "%s vs %s: got %d", order[i], order[j], c);
    }
}

Test(doc, numbers_compare_exactly_across_types) {
  /* 2^53 + 1 as int64 is above the double 2^53 and equal to the decimal */
  cr_assert_gt(cmpj("{\"v\": {\"$numberLong\": \"9007199254740993\"}}", "{\"v\": 9007199254740992.0}"), 0);
  cr_assert_eq(cmpj("{\"v\": {\"$numberLong\": \"9007199254740993\"}}",
                    "{\"v\": {\"$numberDecimal\": \"9007199254740993\"}}"),
               0);
  cr_assert_lt(cmpj("{\"v\": {\"$numberDecimal\": \"9007199254740992.5\"}}",
                    "{\"v\": {\"$numberLong\": \"9007199254740993\"}}"),
               0);
  /* -0.0 == 0 == 0L == decimal -0 */
  cr_assert_eq(cmpj("{\"v\": -0.0}", "{\"v\": 0}"), 0);
  cr_assert_eq(cmpj("{\"v\": {\"$numberDecimal\": \"-0.00\"}}", "{\"v\": {\"$numberLong\": \"0\"}}"), 0);
  /* NaN equals NaN and is below -Infinity */
  cr_assert_eq(cmpj("{\"v\": {\"$numberDouble\": \"NaN\"}}", "{\"v\": {\"$numberDecimal\": \"NaN\"}}"), 0);
  cr_assert_lt(cmpj("{\"v\": {\"$numberDouble\": \"NaN\"}}", "{\"v\": {\"$numberDouble\": \"-Infinity\"}}"),
               0);
  cr_assert_lt(
      cmpj("{\"v\": {\"$numberDecimal\": \"NaN\"}}", "{\"v\": {\"$numberLong\": \"-9223372036854775808\"}}"),
      0);
  /* infinities bound everything finite, decimal included */
  cr_assert_gt(
      cmpj("{\"v\": {\"$numberDouble\": \"Infinity\"}}", "{\"v\": {\"$numberDecimal\": \"1E+6000\"}}"), 0);
  cr_assert_eq(
      cmpj("{\"v\": {\"$numberDouble\": \"Infinity\"}}", "{\"v\": {\"$numberDecimal\": \"Infinity\"}}"), 0);
  cr_assert_lt(cmpj("{\"v\": {\"$numberDecimal\": \"-Infinity\"}}", "{\"v\": -1e308}"), 0);
  /* int64 extremes against doubles near 2^63 */
  cr_assert_lt(cmpj("{\"v\": {\"$numberLong\": \"9223372036854775807\"}}", "{\"v\": 9.2233720368547758e18}"),
               0);
  cr_assert_eq(
      cmpj("{\"v\": {\"$numberLong\": \"-9223372036854775808\"}}", "{\"v\": -9.2233720368547758e18}"), 0);
  /* fractions */
  cr_assert_lt(cmpj("{\"v\": 2}", "{\"v\": 2.5}"), 0);
  cr_assert_gt(cmpj("{\"v\": -2}", "{\"v\": -2.5}"), 0);
  cr_assert_eq(cmpj("{\"v\": {\"$numberDecimal\": \"2.50\"}}", "{\"v\": 2.5}"), 0);
  cr_assert_lt(cmpj("{\"v\": {\"$numberDecimal\": \"0.1\"}}", "{\"v\": 0.1}"), 0);
  cr_assert_lt(cmpj("{\"v\": {\"$numberDecimal\": \"1E-6176\"}}", "{\"v\": 5e-324}"), 0);
  cr_assert_gt(cmpj("{\"v\": {\"$numberDecimal\": \"1E-6176\"}}", "{\"v\": 0}"), 0);
}

Test(doc, strings_objects_arrays_and_binary_compare_like_mongodb) {
  cr_assert_lt(cmpj("{\"v\": \"ab\"}", "{\"v\": \"abc\"}"), 0);
  cr_assert_lt(cmpj("{\"v\": \"B\"}", "{\"v\": \"a\"}"), 0); /* bytewise */
  cr_assert_eq(cmpj("{\"v\": {\"$symbol\": \"x\"}}", "{\"v\": \"x\"}"), 0);
  /* objects: type of value first, then name, then value */
  cr_assert_lt(cmpj("{\"v\": {\"a\": 5}}", "{\"v\": {\"a\": \"0\"}}"), 0);
  cr_assert_lt(cmpj("{\"v\": {\"a\": 1}}", "{\"v\": {\"b\": 0}}"), 0);
  cr_assert_lt(cmpj("{\"v\": {\"a\": 1}}", "{\"v\": {\"a\": 1, \"b\": 0}}"), 0);
  cr_assert_eq(cmpj("{\"v\": {\"a\": 1}}", "{\"v\": {\"a\": 1.0}}"), 0);
  cr_assert_lt(cmpj("{\"v\": [1, 2]}", "{\"v\": [1, 3]}"), 0);
  cr_assert_lt(cmpj("{\"v\": [1]}", "{\"v\": [1, 0]}"), 0);
  cr_assert_gt(cmpj("{\"v\": [\"a\"]}", "{\"v\": [99]}"), 0);
  /* binary: length, then subtype, then bytes */
  cr_assert_lt(cmpj("{\"v\": {\"$binary\": {\"base64\": \"/w==\", \"subType\": \"05\"}}}",
                    "{\"v\": {\"$binary\": {\"base64\": \"AAA=\", \"subType\": \"00\"}}}"),
               0);
  cr_assert_lt(cmpj("{\"v\": {\"$binary\": {\"base64\": \"/w==\", \"subType\": \"00\"}}}",
                    "{\"v\": {\"$binary\": {\"base64\": \"AA==\", \"subType\": \"01\"}}}"),
               0);
  cr_assert_lt(cmpj("{\"v\": {\"$timestamp\": {\"t\": 1, \"i\": 9}}}",
                    "{\"v\": {\"$timestamp\": {\"t\": 2, \"i\": 0}}}"),
               0);
  cr_assert_lt(cmpj("{\"v\": {\"$regularExpression\": {\"pattern\": \"a\", \"options\": \"\"}}}",
                    "{\"v\": {\"$regularExpression\": {\"pattern\": \"a\", \"options\": \"i\"}}}"),
               0);
  cr_assert_lt(cmpj("{\"v\": {\"$date\": {\"$numberLong\": \"-5\"}}}",
                    "{\"v\": {\"$date\": {\"$numberLong\": \"3\"}}}"),
               0);
}

Test(doc, canonical_type_order_and_names) {
  cr_assert_lt(doc_canonical_type_order(BSON_TYPE_MINKEY), doc_canonical_type_order(BSON_TYPE_NULL));
  cr_assert_eq(doc_canonical_type_order(BSON_TYPE_INT32), doc_canonical_type_order(BSON_TYPE_DECIMAL128));
  cr_assert_eq(doc_canonical_type_order(BSON_TYPE_UTF8), doc_canonical_type_order(BSON_TYPE_SYMBOL));
  cr_assert_lt(doc_canonical_type_order(BSON_TYPE_DATE_TIME), doc_canonical_type_order(BSON_TYPE_TIMESTAMP));
  cr_assert_str_eq(doc_type_name(BSON_TYPE_INT64), "long");
  cr_assert_str_eq(doc_type_name(BSON_TYPE_BINARY), "binData");
  cr_assert_str_eq(doc_type_name(BSON_TYPE_DECIMAL128), "decimal");
}

Test(doc, number_truncation_is_exact) {
  bson_t *d = J("{\"a\": {\"$numberDecimal\": \"9007199254740993.9\"}, \"b\": -7.9, "
                "\"c\": {\"$numberDecimal\": \"1E+30\"}, \"e\": {\"$numberDouble\": \"NaN\"}, "
                "\"f\": {\"$numberDecimal\": \"-9223372036854775808\"}, \"g\": \"x\"}");
  bson_iter_t it;
  int64_t v;
  cr_assert(bson_iter_init_find(&it, d, "a"));
  cr_assert(doc_number_trunc_i64(bson_iter_value(&it), &v));
  cr_assert_eq(v, 9007199254740993LL);
  cr_assert(bson_iter_init_find(&it, d, "b"));
  cr_assert(doc_number_trunc_i64(bson_iter_value(&it), &v));
  cr_assert_eq(v, -7);
  cr_assert(bson_iter_init_find(&it, d, "c"));
  cr_assert_not(doc_number_trunc_i64(bson_iter_value(&it), &v));
  cr_assert(bson_iter_init_find(&it, d, "e"));
  cr_assert_not(doc_number_trunc_i64(bson_iter_value(&it), &v));
  cr_assert(bson_iter_init_find(&it, d, "f"));
  cr_assert(doc_number_trunc_i64(bson_iter_value(&it), &v));
  cr_assert_eq(v, INT64_MIN);
  cr_assert(bson_iter_init_find(&it, d, "g"));
  cr_assert_not(doc_number_trunc_i64(bson_iter_value(&it), &v));
  bson_destroy(d);
}

Test(doc, json_round_trips_relaxed_and_canonical) {
  const char *src =
      "{ \"a\" : 1, \"b\" : { \"$numberLong\" : \"5000000000\" }, \"c\" : [ 1.5, \"x\", null ], "
      "\"d\" : { \"$date\" : { \"$numberLong\" : \"-1\" } }, \"e\" : { \"$numberDecimal\" : \"1.10\" } }";
  bson_t d;
  cr_assert_eq(doc_from_json(src, -1, &d), NX_OK, "%s", nx_err_msg());
  char *canon = doc_to_json_canonical(&d, NULL);
  bson_t d2;
  cr_assert_eq(doc_from_json(canon, -1, &d2), NX_OK);
  cr_assert(bson_equal(&d, &d2), "canonical round trip lost something: %s", canon);
  size_t len = 0;
  char *relaxed = doc_to_json(&d, &len);
  cr_assert_eq(len, strlen(relaxed));
  bson_t d3;
  cr_assert_eq(doc_from_json(relaxed, -1, &d3), NX_OK);
  cr_assert(bson_equal(&d, &d3), "relaxed round trip lost something: %s", relaxed);
  cr_assert(strstr(relaxed, "5000000000") && !strstr(relaxed, "$numberLong\" : \"5000000000"),
            "relaxed form should print plain numbers: %s", relaxed);
  bson_free(canon);
  bson_free(relaxed);
  bson_destroy(&d);
  bson_destroy(&d2);
  bson_destroy(&d3);
}

Test(doc, json_errors_carry_libbson_position) {
  bson_t d;
  int rc = doc_from_json("{\"a\": 1,, }", -1, &d);
  cr_assert_eq(rc, NX_PARSE);
  cr_assert(strstr(nx_err_msg(), "json: ") && strstr(nx_err_msg(), "position"), "message: %s", nx_err_msg());
  cr_assert_eq(doc_from_json("[1, 2]", -1, &d), NX_INVALID);
  cr_assert(strstr(nx_err_msg(), "must be a JSON object"), "%s", nx_err_msg());
  cr_assert_eq(doc_from_json("   ", -1, &d), NX_PARSE);
  cr_assert_eq(doc_from_json("{\"a\": 1}xyz", 8, &d), NX_OK, "len limits the input: %s", nx_err_msg());
  bson_destroy(&d);
}

Test(doc, json_keeps_query_operators_that_look_like_legacy_extended_json) {
  bson_t d;
  cr_assert_eq(
      doc_from_json("{\"a\": {\"$type\": \"string\"}, \"b\": {\"$regex\": \"^x\", \"$options\": \"i\"},"
                    " \"s\": \"\\\"$type\\\": 1\"}",
                    -1, &d),
      NX_OK, "%s", nx_err_msg());
  bson_iter_t it;
  cr_assert(bson_iter_init(&it, &d) && bson_iter_find_descendant(&it, "a.$type", &it));
  cr_assert_str_eq(bson_iter_utf8(&it, NULL), "string");
  cr_assert(bson_iter_init(&it, &d) && bson_iter_find_descendant(&it, "b.$options", &it));
  cr_assert_str_eq(bson_iter_utf8(&it, NULL), "i");
  cr_assert(bson_iter_init_find(&it, &d, "s"));
  cr_assert_str_eq(bson_iter_utf8(&it, NULL), "\"$type\": 1", "string values are not rewritten");
  bson_destroy(&d);
  /* canonical regex and legacy binary still parse as values */
  cr_assert_eq(doc_from_json("{\"r\": {\"$regularExpression\": {\"pattern\": \"x\", \"options\": \"\"}},"
                             " \"b\": {\"$binary\": \"AA==\", \"$type\": \"00\"}}",
                             -1, &d),
               NX_OK, "%s", nx_err_msg());
  cr_assert(bson_iter_init_find(&it, &d, "r") && BSON_ITER_HOLDS_REGEX(&it));
  cr_assert(bson_iter_init_find(&it, &d, "b") && BSON_ITER_HOLDS_BINARY(&it));
  bson_destroy(&d);
  /* legacy binary and a $type operator in one text: only the binary's object keeps "$type" */
  cr_assert_eq(doc_from_json("{\"b\": {\"$type\": \"00\", \"$binary\": \"AA==\"}, \"k\": {\"$type\": \"int\"},"
                             " \"s\": [{\"$regex\": 1}]}", -1, &d),
               NX_OK, "%s", nx_err_msg());
  cr_assert(bson_iter_init_find(&it, &d, "b") && BSON_ITER_HOLDS_BINARY(&it));
  cr_assert(bson_iter_init(&it, &d) && bson_iter_find_descendant(&it, "k.$type", &it));
  cr_assert_str_eq(bson_iter_utf8(&it, NULL), "int");
  cr_assert(bson_iter_init(&it, &d) && bson_iter_find_descendant(&it, "s.0.$regex", &it));
  cr_assert_eq(bson_iter_int32(&it), 1);
  bson_destroy(&d);
}

Test(doc, value_to_json_renders_one_value) {
  bson_t *d = J("{\"a\": {\"x\": [1, \"s\"]}, \"n\": 5}");
  bson_iter_t it;
  nx_buf b;
  nx_buf_init(&b, 0);
  cr_assert(bson_iter_init_find(&it, d, "a"));
  cr_assert_eq(doc_value_to_json(bson_iter_value(&it), &b), NX_OK);
  cr_assert_eq(nx_buf_append(&b, "", 1), NX_OK);
  cr_assert_str_eq((char *)b.data, "{ \"x\" : [ 1, \"s\" ] }");
  nx_buf_free(&b);
  bson_destroy(d);
}

Test(doc, path_parse_and_exact_lookup) {
  doc_path p;
  cr_assert_eq(doc_path_parse("a.0.b.01", -1, &p), NX_OK);
  cr_assert_eq(p.n, 4);
  cr_assert_str_eq(p.parts[2], "b");
  cr_assert_eq(p.index[0], -1);
  cr_assert_eq(p.index[1], 0);
  cr_assert_eq(p.index[3], -1, "a leading zero is a field name, not an index");
  doc_path_free(&p);
  cr_assert_eq(doc_path_parse("a..b", -1, &p), NX_INVALID);
  cr_assert(strstr(nx_err_msg(), "empty component"), "%s", nx_err_msg());
  cr_assert_eq(doc_path_parse("", -1, &p), NX_INVALID);
  cr_assert_eq(doc_path_parse(".a", -1, &p), NX_INVALID);

  bson_t *d = J("{\"a\": [{\"b\": 7}, {\"b\": 8}], \"c\": {\"d\": {\"e\": \"x\"}}}");
  bson_iter_t it;
  cr_assert(doc_get_dotted(d, "a.1.b", &it));
  cr_assert_eq(bson_iter_int32(&it), 8);
  cr_assert(doc_get_dotted(d, "c.d.e", &it));
  cr_assert_not(doc_get_dotted(d, "a.b", &it), "exact lookup does not expand arrays");
  cr_assert_not(doc_get_dotted(d, "c.x", &it));
  bson_destroy(d);
}

typedef struct collect {
  char out[256];
} collect;

static int collect_cb(const bson_value_t *v, void *ctx) {
  collect *c = ctx;
  nx_buf b;
  nx_buf_init(&b, 0);
  doc_value_to_json(v, &b);
  size_t l = strlen(c->out);
  snprintf(c->out + l, sizeof c->out - l, "%s%.*s", l ? "," : "", (int)b.len, (char *)b.data);
  nx_buf_free(&b);
  return NX_OK;
}

static const char *visit(const char *json, const char *path, bool expand) {
  static collect c;
  memset(&c, 0, sizeof c);
  bson_t *d = J(json);
  doc_path p;
  cr_assert_eq(doc_path_parse(path, -1, &p), NX_OK);
  bool found = false;
  cr_assert_eq(doc_path_visit(d, &p, expand, collect_cb, &c, &found), NX_OK);
  if (!found) snprintf(c.out, sizeof c.out, "missing");
  doc_path_free(&p);
  bson_destroy(d);
  return c.out;
}

Test(doc, path_visit_expands_arrays_like_index_keys) {
  cr_assert_str_eq(visit("{\"a\": [{\"b\": 1}, {\"b\": [2, 3]}, {\"c\": 4}, 5]}", "a.b", true), "1,2,3");
  cr_assert_str_eq(visit("{\"a\": [{\"b\": 1}, {\"b\": [2, 3]}]}", "a.b", false), "1,[ 2, 3 ]");
  cr_assert_str_eq(visit("{\"a\": [10, 20]}", "a.1", true), "20");
  cr_assert_str_eq(visit("{\"a\": []}", "a", true), "{ \"$undefined\" : true }");
  cr_assert_str_eq(visit("{\"a\": [[1, 2], 3]}", "a", true), "[ 1, 2 ],3");
  cr_assert_str_eq(visit("{\"a\": [[{\"b\": 1}]]}", "a.b", true), "missing");
  cr_assert_str_eq(visit("{\"x\": 1}", "a", true), "missing");
  cr_assert_str_eq(visit("{\"a\": {\"b\": {\"c\": null}}}", "a.b.c", true), "null");
}

/* A document of the given depth: {n: {n: ... {leaf: 1}}} (a flat document has depth 1). */
static bson_t *nested(int depth) {
  bson_t *cur = bson_new();
  BSON_APPEND_INT32(cur, "leaf", 1);
  for (int i = 1; i < depth; i++) {
    bson_t *o = bson_new();
    BSON_APPEND_DOCUMENT(o, "n", cur);
    bson_destroy(cur);
    cur = o;
  }
  return cur;
}

Test(doc, validation_names_the_field) {
  bson_t *ok = J("{\"_id\": 1, \"a\": {\"$b\": 1}, \"\": 2, \"c\": \"text\"}");
  cr_assert_eq(doc_validate_for_storage(ok), NX_OK, "%s", nx_err_msg());
  bson_destroy(ok);

  bson_t *dollar = J("{\"a\": 1, \"$set\": 2}");
  cr_assert_eq(doc_validate_for_storage(dollar), NX_INVALID);
  cr_assert_str_eq(nx_err_msg(), "document: field name '$set' at top level may not start with '$'");
  bson_destroy(dollar);

  bson_t *arr_id = J("{\"_id\": [1, 2]}");
  cr_assert_eq(doc_validate_for_storage(arr_id), NX_INVALID);
  cr_assert_str_eq(nx_err_msg(), "document: field '_id' may not be of type array");
  bson_destroy(arr_id);

  bson_t *re_id = J("{\"_id\": {\"$regularExpression\": {\"pattern\": \"x\", \"options\": \"\"}}}");
  cr_assert_eq(doc_validate_for_storage(re_id), NX_INVALID);
  bson_destroy(re_id);

  /* NUL inside a string value, built by hand */
  bson_t nul;
  bson_init(&nul);
  bson_t sub;
  BSON_APPEND_DOCUMENT_BEGIN(&nul, "outer", &sub);
  bson_append_utf8(&sub, "s", 1, "a\0b", 3);
  bson_append_document_end(&nul, &sub);
  cr_assert_eq(doc_validate_for_storage(&nul), NX_INVALID);
  cr_assert(strstr(nx_err_msg(), "'outer.s'"), "%s", nx_err_msg());
  bson_destroy(&nul);

  /* invalid UTF-8 in a field name */
  bson_t bad;
  bson_init(&bad);
  bson_append_int32(&bad, "a\xff", 2, 1);
  cr_assert_eq(doc_validate_for_storage(&bad), NX_INVALID);
  cr_assert(strstr(nx_err_msg(), "not valid UTF-8"), "%s", nx_err_msg());
  bson_destroy(&bad);
}

Test(doc, validation_limits_depth_and_size) {
  /* depth: a flat document is 1; 100 is allowed, 101 is not */
  bson_t *d100 = nested(100);
  cr_assert_eq(doc_depth(d100), 100);
  cr_assert_eq(doc_depth_capped(d100, 7), 8);
  cr_assert_eq(doc_depth_capped_walk(d100, 7), 8);
  cr_assert_eq(doc_validate_for_storage(d100), NX_OK, "%s", nx_err_msg());
  bson_destroy(d100);
  bson_t *d101 = nested(101);
  cr_assert_eq(doc_validate_for_storage(d101), NX_INVALID);
  cr_assert(strstr(nx_err_msg(), "nesting depth exceeds 100"), "%s", nx_err_msg());
  bson_destroy(d101);

  /* size: 16 MiB + a little */
  size_t n = DOC_MAX_BYTES;
  char *big = nx_malloc(n + 1);
  memset(big, 'x', n);
  big[n] = '\0';
  bson_t *b = bson_new();
  bson_append_utf8(b, "s", 1, big, (int)n);
  cr_assert_eq(doc_validate_for_storage(b), NX_INVALID);
  cr_assert(strstr(nx_err_msg(), "exceeds the limit of 16777216 bytes"), "%s", nx_err_msg());
  bson_destroy(b);
  nx_free(big);

  /* malformed bytes */
  /* a string element claiming 255 bytes in a 12-byte document */
  uint8_t raw[] = {12, 0, 0, 0, 0x02, 'a', 0, 0xFF, 0, 0, 0, 0};
  bson_t r;
  cr_assert(bson_init_static(&r, raw, sizeof raw));
  cr_assert_eq(doc_validate_for_storage(&r), NX_INVALID);
}

/* A document with every type the fast validation pass handles (and multi-byte UTF-8), plus a
 * top-level "$nested_ok" name that both passes must refuse. */
static bson_t *fast_pass_sample(void) {
  bson_t *b = J("{\"_id\": {\"$oid\": \"64b7f0000000000000000001\"}, \"d\": 1.5, \"s\": \"h\u00e9llo w\u00f6rld, a longer string\","
                " \"o\": {\"i\": 7, \"l\": {\"$numberLong\": \"9000000000\"}, \"e\": {}},"
                " \"a\": [1, \"x\", [true, false, null], {\"k\u00e9y\": \"v\"}], \"t\": {\"$timestamp\": {\"t\": 5, \"i\": 1}},"
                " \"dt\": {\"$date\": \"2020-01-01T00:00:00Z\"}, \"dec\": {\"$numberDecimal\": \"1.25\"},"
                " \"bin\": {\"$binary\": {\"base64\": \"AAECAw==\", \"subType\": \"00\"}},"
                /* strings around the 8-byte words str_ok reads (its masked short word, its last word) */
                " \"s3\": \"abc\", \"s7\": \"abcdefg\", \"s8\": \"abcdefgh\", \"s9\": \"abcdefghi\","
                " \"s15\": \"abcdefghijklmno\", \"s16\": \"abcdefghijklmnop\", \"s17\": \"abcdefghijklmnopq\","
                " \"$nested_ok\": 0, \"end\": \"ab\"}");
  return b;
}

Test(doc, validation_fast_pass_never_accepts_what_the_walk_refuses) {
  bson_t *with_dollar = fast_pass_sample();
  cr_assert_eq(doc_validate_for_storage(with_dollar), NX_INVALID);
  cr_assert(!doc_valid_fast(bson_get_data(with_dollar), with_dollar->len));
  bson_t base = BSON_INITIALIZER;
  bson_iter_t it;
  bson_iter_init(&it, with_dollar);
  while (bson_iter_next(&it))
    if (strcmp(bson_iter_key(&it), "$nested_ok") != 0) bson_append_iter(&base, NULL, 0, &it);
  bson_destroy(with_dollar);
  cr_assert(doc_valid_fast(bson_get_data(&base), base.len), "the sample must take the fast path");
  cr_assert_eq(doc_validate_for_storage_walk(&base), NX_OK, "%s", nx_err_msg());

  uint32_t n = base.len;
  uint8_t *buf = nx_malloc(n);
  static const uint8_t vals[] = {0x00, 0x01, 0x02, 0x05, 0x24, 0x7f, 0x80, 0xc3, 0xff};
  size_t accepted = 0, refused = 0, walk_only = 0;
  uint64_t rng = 0x9E3779B97F4A7C15ull;
  for (uint32_t round = 0; round < 2; round++) {
    for (uint32_t pos = 0; pos < n; pos++) {
      for (size_t v = 0; v < sizeof vals + 2; v++) {
        memcpy(buf, bson_get_data(&base), n);
        const uint8_t *orig = bson_get_data(&base);
        buf[pos] = v < sizeof vals ? vals[v] : (uint8_t)(orig[pos] + (v == sizeof vals ? 1 : -1));
        if (round == 1) { /* and a second random byte elsewhere */
          rng ^= rng << 13;
          rng ^= rng >> 7;
          rng ^= rng << 17;
          buf[rng % n] = (uint8_t)(rng >> 32);
        }
        bson_t view;
        bool fast = doc_valid_fast(buf, n);
        if (!bson_init_static(&view, buf, n)) {
          cr_assert(!fast, "fast pass accepted a bad header (pos %u)", pos);
          continue;
        }
        int walk = doc_validate_for_storage_walk(&view);
        if (fast) {
          cr_assert_eq(walk, NX_OK, "fast pass accepted what the walk refuses (round %u, pos %u, value %zu): %s",
                       round, pos, v, nx_err_msg());
          accepted++;
        } else {
          refused++;
          if (walk == NX_OK) walk_only++;
        }
        cr_assert_eq(doc_validate_for_storage(&view), walk, "round %u pos %u value %zu", round, pos, v);
        for (int cap = 1; cap <= 4; cap++)
          cr_assert_eq(doc_depth_capped(&view, cap), doc_depth_capped_walk(&view, cap),
                       "depth, cap %d, round %u pos %u value %zu", cap, round, pos, v);
      }
    }
  }
  cr_assert(accepted > 100 && refused > 100, "accepted %zu refused %zu", accepted, refused);
  nx_free(buf);
  bson_destroy(&base);
  (void)walk_only;
}

Test(doc, uuid_v4_has_version_and_variant) {
  uint8_t a[16], b[16];
  cr_assert_eq(doc_gen_uuid_v4(a), NX_OK);
  cr_assert_eq(doc_gen_uuid_v4(b), NX_OK);
  cr_assert_eq(a[6] >> 4, 4);
  cr_assert_eq(a[8] >> 6, 2);
  cr_assert_neq(memcmp(a, b, 16), 0);
  bson_t d;
  bson_init(&d);
  cr_assert(doc_append_uuid(&d, "_id", a));
  bson_iter_t it;
  cr_assert(bson_iter_init_find(&it, &d, "_id"));
  bson_subtype_t st;
  uint32_t len;
  const uint8_t *data;
  bson_iter_binary(&it, &st, &len, &data);
  cr_assert_eq(st, BSON_SUBTYPE_UUID);
  cr_assert_eq(len, 16);
  cr_assert_eq(memcmp(data, a, 16), 0);
  bson_destroy(&d);
}

Test(doc, uuid_v7_is_time_ordered_and_strictly_increasing) {
  uint8_t prev[16], cur[16];
  int64_t t = 1700000000123;
  cr_assert_eq(doc_gen_uuid_v7(t, prev), NX_OK);
  uint64_t ts = 0;
  for (int i = 0; i < 6; i++)
    ts = ts << 8 | prev[i];
  cr_assert_eq((int64_t)ts, t);
  cr_assert_eq(prev[6] >> 4, 7);
  cr_assert_eq(prev[8] >> 6, 2);
  /* same millisecond, then a clock step back: still strictly increasing */
  for (int i = 0; i < 2000; i++) {
    int64_t now = i < 1000 ? t : t - 5000;
    cr_assert_eq(doc_gen_uuid_v7(now, cur), NX_OK);
    cr_assert_gt(memcmp(cur, prev, 16), 0, "uuid %d not above its predecessor", i);
    cr_assert_eq(cur[6] >> 4, 7);
    cr_assert_eq(cur[8] >> 6, 2);
    memcpy(prev, cur, 16);
  }
  /* a later millisecond starts from the new time */
  cr_assert_eq(doc_gen_uuid_v7(t + 10, cur), NX_OK);
  ts = 0;
  for (int i = 0; i < 6; i++)
    ts = ts << 8 | cur[i];
  cr_assert_eq((int64_t)ts, t + 10);
}

/* ---- The order is total: a sorted random sample is consistent pair by pair ---- */

static uint32_t g_rng = 2463534242u;
static uint32_t rnd(void) {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 17;
  g_rng ^= g_rng << 5;
  return g_rng;
}

static void append_random(bson_t *b, const char *k, int depth) {
  static const double dbl[] = {
      0.0, -0.0, 0.5, -1.5, 1e300, -1e-300, 9007199254740992.0, 9223372036854775808.0, 1.0 / 0.0, -1.0 / 0.0};
  static const char *dec[] = {
      "1", "-0", "0.1", "1E+400", "-1E-400", "NaN", "Infinity", "9007199254740993", "2.50", "-Infinity"};
  static const int64_t i64[] = {0, 1, -1, 9007199254740993LL, INT64_MAX, INT64_MIN, 2};
  switch (rnd() % 12) {
  case 0:
    bson_append_int32(b, k, -1, (int32_t)(rnd() % 7) - 3);
    break;
  case 1:
    bson_append_int64(b, k, -1, i64[rnd() % 7]);
    break;
  case 2:
    bson_append_double(b, k, -1, rnd() % 3 ? dbl[rnd() % 10] : 0.0 / 0.0);
    break;
  case 3: {
    bson_decimal128_t d;
    bson_decimal128_from_string(dec[rnd() % 10], &d);
    bson_append_decimal128(b, k, -1, &d);
    break;
  }
  case 4: {
    static const char *s[] = {"", "a", "ab", "B", "\xc3\xa9"};
    bson_append_utf8(b, k, -1, s[rnd() % 5], -1);
    break;
  }
  case 5:
    bson_append_null(b, k, -1);
    break;
  case 6:
    bson_append_bool(b, k, -1, rnd() % 2);
    break;
  case 7:
    bson_append_date_time(b, k, -1, (int64_t)(rnd() % 5) - 2);
    break;
  case 8:
  case 9: {
    bson_t c;
    bool arr = rnd() % 2;
    if (arr)
      bson_append_array_begin(b, k, -1, &c);
    else
      bson_append_document_begin(b, k, -1, &c);
    int n = depth < 2 ? (int)(rnd() % 3) : 0;
    for (int i = 0; i < n; i++) {
      char key[8];
      if (arr)
        snprintf(key, sizeof key, "%d", i);
      else
        snprintf(key, sizeof key, "%c", 'a' + (int)(rnd() % 2) + i);
      append_random(&c, key, depth + 1);
    }
    if (arr)
      bson_append_array_end(b, &c);
    else
      bson_append_document_end(b, &c);
    break;
  }
  case 10:
    bson_append_minkey(b, k, -1);
    break;
  default:
    bson_append_maxkey(b, k, -1);
    break;
  }
}

static int cmp_vals(const void *a, const void *b) {
  return doc_cmp_values((const bson_value_t *)a, (const bson_value_t *)b);
}

Test(doc, order_is_total_on_random_values) {
  enum { N = 400 };
  bson_t *holder = bson_new();
  for (int i = 0; i < N; i++) {
    char k[16];
    snprintf(k, sizeof k, "%d", i);
    append_random(holder, k, 0);
  }
  bson_value_t vals[N];
  bson_iter_t it;
  int n = 0;
  cr_assert(bson_iter_init(&it, holder));
  while (bson_iter_next(&it))
    vals[n++] = *bson_iter_value(&it);
  cr_assert_eq(n, N);
  qsort(vals, N, sizeof vals[0], cmp_vals);
  for (int i = 0; i < N; i++)
    for (int j = i; j < N; j++) {
      int c = doc_cmp_values(&vals[i], &vals[j]);
      cr_assert_leq(c, 0, "sorted values %d and %d are out of order (transitivity broken)", i, j);
      cr_assert_eq(doc_cmp_values(&vals[j], &vals[i]) >= 0, true, "antisymmetry broken at %d, %d", i, j);
    }
  bson_destroy(holder);
}

/* Keys of every length around the 8-byte word the key scans read at once (raw walker, fast
 * validation pass), last in the document too, in exactly-sized buffers (ASan catches overreads). */
Test(doc, raw_key_scans_at_word_boundaries) {
  for (int kl = 0; kl <= 20; kl++) {
    for (int last = 0; last < 2; last++) {
      char key[24];
      memset(key, 'k', (size_t)kl);
      key[kl] = '\0';
      bson_t b = BSON_INITIALIZER;
      if (!last) bson_append_bool(&b, key, kl, true);
      BSON_APPEND_INT32(&b, "x", 1);
      if (last) bson_append_null(&b, key, kl);
      uint8_t *copy = malloc(b.len);
      memcpy(copy, bson_get_data(&b), b.len);
      doc_elem e;
      cr_assert(doc_raw_find(copy, b.len, key, (uint32_t)kl, &e), "key length %d", kl);
      cr_assert_eq(e.klen, (uint32_t)kl);
      cr_assert_eq(e.type, last ? BSON_TYPE_NULL : BSON_TYPE_BOOL);
      cr_assert(doc_valid_fast(copy, b.len), "key length %d", kl);
      free(copy);
      bson_destroy(&b);
    }
  }
}

/* ---- The raw walker decodes what libbson decodes, and survives garbage ---- */

Test(doc, raw_walker_agrees_with_bson_iter) {
  bson_t *d = J(
      "{\"d\": 1.5, \"s\": \"h\\u00e9\", \"o\": {\"x\": [1, {\"y\": null}]}, \"a\": [true, false],"
      " \"b\": {\"$binary\": {\"base64\": \"AQID\", \"subType\": \"04\"}}, \"u\": {\"$undefined\": true},"
      " \"id\": {\"$oid\": \"5f1d7e0d2b3c4a5e6f708192\"}, \"t\": {\"$date\": {\"$numberLong\": \"-7\"}},"
      " \"n\": null, \"r\": {\"$regularExpression\": {\"pattern\": \"^a\", \"options\": \"im\"}},"
      " \"c\": {\"$code\": \"f()\"}, \"sy\": {\"$symbol\": \"sym\"},"
      " \"cw\": {\"$code\": \"g()\", \"$scope\": {\"k\": 1}}, \"i\": -5,"
      " \"ts\": {\"$timestamp\": {\"t\": 7, \"i\": 9}}, \"l\": {\"$numberLong\": \"-9000000000\"},"
      " \"dec\": {\"$numberDecimal\": \"-1.25E+3\"}, \"mn\": {\"$minKey\": 1}, \"mx\": {\"$maxKey\": 1},"
      " \"dp\": {\"$dbPointer\": {\"$ref\": \"coll\", \"$id\": {\"$oid\": \"5f1d7e0d2b3c4a5e6f708192\"}}}}");
  bson_iter_t it;
  doc_raw_iter r;
  doc_elem e;
  cr_assert(bson_iter_init(&it, d));
  cr_assert(doc_raw_init(&r, bson_get_data(d), d->len));
  int n = 0;
  while (bson_iter_next(&it)) {
    cr_assert(doc_raw_next(&r, &e), "raw walker stopped early at %s", bson_iter_key(&it));
    cr_assert_str_eq(e.key, bson_iter_key(&it));
    cr_assert_eq(e.klen, bson_iter_key_len(&it));
    cr_assert_eq(e.type, bson_iter_type(&it), "type of %s", e.key);
    bson_value_t a, b;
    doc_raw_value(&e, &a);
    b = *bson_iter_value(&it);
    cr_assert_eq(doc_cmp_values(&a, &b), 0, "value of %s differs", e.key);
    doc_elem f;
    cr_assert(doc_raw_find(bson_get_data(d), d->len, e.key, e.klen, &f));
    cr_assert_eq(f.vp, e.vp);
    n++;
  }
  cr_assert_not(doc_raw_next(&r, &e));
  cr_assert_eq(n, 20);
  cr_assert_not(doc_raw_find(bson_get_data(d), d->len, "zz", 2, &e));

  /* every truncation (with the header fixed up to the new length) ends the walk in bounds */
  for (uint32_t len = 0; len < d->len; len++) {
    uint8_t *copy = malloc(len ? len : 1);
    memcpy(copy, bson_get_data(d), len);
    if (len >= 4) nx_put32(copy, len);
    if (len >= 5) copy[len - 1] = 0;
    int walked = 0;
    if (doc_raw_init(&r, copy, len))
      while (doc_raw_next(&r, &e)) {
        bson_value_t v;
        doc_raw_value(&e, &v);
        walked++;
      }
    cr_assert_leq(walked, 20);
    free(copy);
  }
  bson_destroy(d);
}
