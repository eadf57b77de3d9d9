/* test_match.c: the match layer's parsers and limits, the planner's introspection API, positional
 * tracking, sort keys, and every allocation failure path of parse and apply. (Semantics are in
 * the data-driven cases of tests/query/, run by test_query_cases.c.) */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "match.h"

static bson_t *J(const char *json) {
  bson_t tmp;
  int rc = doc_from_json(json, -1, &tmp);
  cr_assert_eq(rc, NX_OK, "bad test JSON %s: %s", json, nx_err_msg());
  bson_t *b = bson_copy(&tmp);
  bson_destroy(&tmp);
  return b;
}

static int parse_json_filter(const char *json, filter_t **f) {
  bson_t *s = J(json);
  int rc = filter_parse(s, f);
  bson_destroy(s);
  return rc;
}

Test(match, unknown_operator_message_names_operator_and_path) {
  filter_t *f = NULL;
  cr_assert_eq(parse_json_filter("{\"age\": {\"$gtx\": 1}}", &f), NX_INVALID);
  cr_assert_null(f);
  cr_assert_str_eq(nx_err_msg(), "filter: unknown operator '$gtx' at 'age'");
  cr_assert_eq(parse_json_filter("{\"a\": {\"$elemMatch\": {\"b.c\": {\"$lessThan\": 1}}}}", &f), NX_INVALID);
  cr_assert_str_eq(nx_err_msg(), "filter: unknown operator '$lessThan' at 'b.c'");
}

static bson_t *nested_and(int depth) {
  bson_t *cur = bson_new();
  BSON_APPEND_INT32(cur, "x", 1);
  for (int i = 0; i < depth; i++) {
    bson_t *o = bson_new(), arr;
    BSON_APPEND_ARRAY_BEGIN(o, "$and", &arr);
    BSON_APPEND_DOCUMENT(&arr, "0", cur);
    bson_append_array_end(o, &arr);
    bson_destroy(cur);
    cur = o;
  }
  return cur;
}

static bson_t *nested_not(int depth) {
  /* {x: {$not: {$not: ... {$eq: 1}}}} */
  bson_t *cur = bson_new();
  BSON_APPEND_INT32(cur, "$eq", 1);
  for (int i = 0; i < depth; i++) {
    bson_t *o = bson_new();
    BSON_APPEND_DOCUMENT(o, "$not", cur);
    bson_destroy(cur);
    cur = o;
  }
  bson_t *top = bson_new();
  BSON_APPEND_DOCUMENT(top, "x", cur);
  bson_destroy(cur);
  return top;
}

Test(match, nesting_depth_is_limited) {
  filter_t *f = NULL;
  bson_t *ok = nested_and(99);
  cr_assert_eq(filter_parse(ok, &f), NX_OK, "%s", nx_err_msg());
  bson_t *doc = J("{\"x\": 1}");
  bool m = false;
  cr_assert_eq(filter_match(f, doc, &m), NX_OK);
  cr_assert(m);
  filter_free(f);
  bson_destroy(ok);

  bson_t *deep = nested_and(150);
  cr_assert_eq(filter_parse(deep, &f), NX_LIMIT);
  cr_assert(strstr(nx_err_msg(), "nesting depth exceeds 100"), "%s", nx_err_msg());
  bson_destroy(deep);

  bson_t *nots = nested_not(98);
  cr_assert_eq(filter_parse(nots, &f), NX_OK, "%s", nx_err_msg());
  cr_assert_eq(filter_match(f, doc, &m), NX_OK);
  cr_assert(m, "98 negations of x == 1 hold");
  filter_free(f);
  bson_destroy(nots);
  bson_t *deepnots = nested_not(120);
  cr_assert_eq(filter_parse(deepnots, &f), NX_LIMIT);
  bson_destroy(deepnots);
  bson_destroy(doc);
}

static bson_t *in_list(const char *op, int n) {
  bson_t *s = bson_new(), sub, arr;
  BSON_APPEND_DOCUMENT_BEGIN(s, "a", &sub);
  bson_append_array_begin(&sub, op, -1, &arr);
  char kb[16];
  for (int i = 0; i < n; i++) {
    const char *k;
    size_t kl = bson_uint32_to_string((uint32_t)i, &k, kb, sizeof kb);
    bson_append_int32(&arr, k, (int)kl, n - i);
  }
  bson_append_array_end(&sub, &arr);
  bson_append_document_end(s, &sub);
  return s;
}

Test(match, in_length_is_limited_and_lookup_is_sorted) {
  filter_t *f = NULL;
  bson_t *ok = in_list("$in", FILTER_MAX_IN);
  cr_assert_eq(filter_parse(ok, &f), NX_OK, "%s", nx_err_msg());
  filter_conjunct c;
  cr_assert_eq(filter_conjunct_count(f), 1);
  filter_conjunct_get(f, 0, &c);
  cr_assert_eq(c.op, FILTER_OP_IN);
  cr_assert_eq(c.n_values, FILTER_MAX_IN);
  cr_assert_eq(c.values[0].value.v_int32, 1, "values are sorted");
  bson_t *d = J("{\"a\": 77777}");
  bool m = false;
  cr_assert_eq(filter_match(f, d, &m), NX_OK);
  cr_assert(m);
  bson_destroy(d);
  filter_free(f);
  bson_destroy(ok);
  const char *ops[] = {"$in", "$nin", "$all"};
  for (int i = 0; i < 3; i++) {
    bson_t *big = in_list(ops[i], FILTER_MAX_IN + 1);
    cr_assert_eq(filter_parse(big, &f), NX_LIMIT, "%s", ops[i]);
    cr_assert(strstr(nx_err_msg(), "more than 100000 elements"), "%s", nx_err_msg());
    bson_destroy(big);
  }
}

Test(match, regex_length_and_total_size_are_limited) {
  filter_t *f = NULL;
  char *pat = nx_malloc(FILTER_MAX_REGEX + 2);
  memset(pat, 'a', FILTER_MAX_REGEX + 1);
  pat[FILTER_MAX_REGEX] = '\0';
  bson_t *s = bson_new(), sub;
  BSON_APPEND_DOCUMENT_BEGIN(s, "a", &sub);
  BSON_APPEND_UTF8(&sub, "$regex", pat);
  bson_append_document_end(s, &sub);
  cr_assert_eq(filter_parse(s, &f), NX_OK, "a pattern of exactly the limit is fine: %s", nx_err_msg());
  filter_free(f);
  bson_destroy(s);
  pat[FILTER_MAX_REGEX] = 'a';
  pat[FILTER_MAX_REGEX + 1] = '\0';
  s = bson_new();
  bson_append_regex(s, "a", 1, pat, "i");
  cr_assert_eq(filter_parse(s, &f), NX_LIMIT);
  cr_assert(strstr(nx_err_msg(), "exceeds the limit of 8192 bytes"), "%s", nx_err_msg());
  bson_destroy(s);
  nx_free(pat);

  /* a filter bigger than FILTER_MAX_BYTES */
  size_t n = FILTER_MAX_BYTES;
  char *big = nx_malloc(n + 1);
  memset(big, 'x', n);
  big[n] = '\0';
  s = bson_new();
  bson_append_utf8(s, "a", 1, big, (int)n);
  cr_assert_eq(filter_parse(s, &f), NX_LIMIT);
  cr_assert(strstr(nx_err_msg(), "exceeds the limit"), "%s", nx_err_msg());
  update_t *u = NULL;
  cr_assert_eq(update_parse(s, &u), NX_LIMIT);
  bson_destroy(s);
  nx_free(big);
}

Test(match, catastrophic_regex_hits_the_match_limit) {
  filter_t *f = NULL;
  cr_assert_eq(parse_json_filter("{\"s\": {\"$regex\": \"^(a|a)*$\"}}", &f), NX_OK, "%s", nx_err_msg());
  bson_t *d = J("{\"s\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab\"}");
  bool m = true;
  int rc = filter_match(f, d, &m);
  cr_assert_eq(rc, NX_LIMIT, "got %s", nx_code_name(rc));
  cr_assert_not(m);
  cr_assert(strstr(nx_err_msg(), "at 's' exceeded its"), "%s", nx_err_msg());
  bson_destroy(d);
  /* an ordinary subject still matches */
  d = J("{\"s\": \"aaaa\"}");
  cr_assert_eq(filter_match(f, d, &m), NX_OK);
  cr_assert(m);
  bson_destroy(d);
  filter_free(f);
}

Test(match, conjuncts_expose_paths_operators_and_operands) {
  filter_t *f = NULL;
  cr_assert_eq(
      parse_json_filter("{\"a\": 1, \"b\": {\"$gt\": 2, \"$lte\": 5}, \"c\": {\"$in\": [3, 1, 2, 1]},"
                        " \"$and\": [{\"d.e\": \"x\"}, {\"f\": {\"$exists\": false}}],"
                        " \"$or\": [{\"g\": 1}, {\"h\": 1}], \"i\": {\"$ne\": 3},"
                        " \"j\": {\"$regex\": \"^p\"}, \"k\": {\"$in\": [1, {\"$regularExpression\":"
                        " {\"pattern\": \"q\", \"options\": \"\"}}]}}",
                        &f),
      NX_OK, "%s", nx_err_msg());
  struct {
    const char *path;
    filter_op op;
  } want[] = {{"a", FILTER_OP_EQ},    {"b", FILTER_OP_GT},     {"b", FILTER_OP_LTE}, {"c", FILTER_OP_IN},
              {"d.e", FILTER_OP_EQ},  {"f", FILTER_OP_EXISTS}, {NULL, FILTER_OP_OR}, {"i", FILTER_OP_NE},
              {"j", FILTER_OP_REGEX}, {"k", FILTER_OP_IN}};
  size_t n = sizeof want / sizeof want[0];
  cr_assert_eq(filter_conjunct_count(f), n);
  for (size_t i = 0; i < n; i++) {
    filter_conjunct c;
    filter_conjunct_get(f, i, &c);
    cr_assert_eq(c.op, want[i].op, "conjunct %zu: op %d", i, c.op);
    if (want[i].path)
      cr_assert_str_eq(c.path, want[i].path);
    else
      cr_assert_null(c.path);
  }
  filter_conjunct c;
  filter_conjunct_get(f, 0, &c);
  cr_assert_eq(c.value->value.v_int32, 1);
  filter_conjunct_get(f, 2, &c);
  cr_assert_eq(c.value->value.v_int32, 5);
  filter_conjunct_get(f, 3, &c);
  cr_assert_eq(c.n_values, 3, "sorted and de-duplicated");
  cr_assert_eq(c.values[0].value.v_int32, 1);
  cr_assert_eq(c.values[2].value.v_int32, 3);
  cr_assert_not(c.has_regex);
  filter_conjunct_get(f, 5, &c);
  cr_assert_eq(c.value->value_type, BSON_TYPE_BOOL);
  cr_assert_not(c.value->value.v_bool);
  filter_conjunct_get(f, 8, &c);
  cr_assert(c.has_regex);
  filter_conjunct_get(f, 9, &c);
  cr_assert(c.has_regex);
  cr_assert_eq(c.n_values, 1);
  cr_assert_not(filter_is_empty(f));
  filter_free(f);
  cr_assert_eq(parse_json_filter("{}", &f), NX_OK);
  cr_assert(filter_is_empty(f));
  cr_assert_eq(filter_conjunct_count(f), 0);
  filter_free(f);
}

Test(match, positional_tracking_reports_the_matched_element) {
  struct {
    const char *filter, *doc;
    int64_t pos;
  } cases[] = {
      {"{\"a\": {\"$gt\": 2}}", "{\"a\": [1, 5, 3]}", 1},
      {"{\"a.b\": 2}", "{\"a\": [{\"b\": 1}, {\"b\": 2}]}", 1},
      {"{\"a\": {\"$elemMatch\": {\"b\": 1, \"c\": 2}}}", "{\"a\": [{\"b\": 1}, {\"b\": 1, \"c\": 2}]}", 1},
      {"{\"a\": [1, 2]}", "{\"a\": [1, 2]}", -1},
      {"{\"_id\": 1}", "{\"_id\": 1, \"a\": [1]}", -1},
      {"{\"a\": {\"$ne\": 9}}", "{\"a\": [1, 2]}", -1},
      {"{\"a.b.c\": 7}", "{\"a\": [{\"b\": []}, {\"b\": [{\"c\": 6}, {\"c\": 7}]}]}", 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    filter_t *f;
    cr_assert_eq(parse_json_filter(cases[i].filter, &f), NX_OK);
    bson_t *d = J(cases[i].doc);
    bool m = false;
    int64_t pos = 99;
    cr_assert_eq(filter_match_pos(f, d, &m, &pos), NX_OK);
    cr_assert(m, "case %zu should match", i);
    cr_assert_eq(pos, cases[i].pos, "case %zu: pos %lld", i, (long long)pos);
    bson_destroy(d);
    filter_free(f);
  }
}

Test(match, sort_keys_are_extracted_once) {
  sort_t *s;
  bson_t *spec = J("{\"a\": -1, \"b.c\": 1}");
  cr_assert_eq(sort_parse(spec, &s), NX_OK);
  cr_assert_eq(sort_nkeys(s), 2);
  int dir = 0;
  cr_assert_str_eq(sort_key_path(s, 0, &dir), "a");
  cr_assert_eq(dir, -1);
  cr_assert_str_eq(sort_key_path(s, 1, &dir), "b.c");
  cr_assert_eq(dir, 1);
  bson_t *d = J("{\"a\": [3, 9, 1], \"b\": [{\"c\": 5}, {\"c\": 2}]}");
  bson_t k;
  cr_assert_eq(sort_key_extract(s, d, &k), NX_OK);
  char *js = doc_to_json(&k, NULL);
  cr_assert_str_eq(js, "{ \"0\" : 9, \"1\" : 2 }");
  bson_free(js);
  bson_destroy(&k);
  bson_destroy(d);
  d = J("{\"x\": 1}");
  cr_assert_eq(sort_key_extract(s, d, &k), NX_OK);
  js = doc_to_json(&k, NULL);
  cr_assert_str_eq(js, "{ \"0\" : null, \"1\" : null }");
  bson_free(js);
  bson_destroy(&k);
  bson_destroy(d);
  sort_free(s);
  bson_destroy(spec);
}

Test(match, replacement_parse_allows_empty_and_refuses_operators) {
  update_t *u;
  bson_t *e = J("{}");
  cr_assert_eq(update_parse(e, &u), NX_INVALID);
  cr_assert_eq(update_parse_replacement(e, &u), NX_OK);
  cr_assert(update_is_replacement(u));
  bson_t *d = J("{\"_id\": 4, \"a\": 1}"), out;
  bool changed = false;
  cr_assert_eq(update_apply(u, d, NULL, false, 0, &out, &changed), NX_OK);
  char *js = doc_to_json(&out, NULL);
  cr_assert_str_eq(js, "{ \"_id\" : 4 }");
  cr_assert(changed);
  bson_free(js);
  bson_destroy(&out);
  update_free(u);
  bson_t *op = J("{\"$set\": {\"a\": 1}}");
  cr_assert_eq(update_parse_replacement(op, &u), NX_INVALID);
  cr_assert_eq(update_parse(op, &u), NX_OK);
  cr_assert_not(update_is_replacement(u));
  update_free(u);
  bson_destroy(op);
  bson_destroy(d);
  bson_destroy(e);
}

Test(match, update_result_size_is_limited) {
  /* two 9 MiB strings fit the spec limit each but not one document */
  size_t n = 9u << 20;
  char *big = nx_malloc(n + 1);
  memset(big, 'y', n);
  big[n] = '\0';
  bson_t *doc = bson_new();
  BSON_APPEND_INT32(doc, "_id", 1);
  bson_append_utf8(doc, "a", 1, big, (int)n);
  bson_t *spec = bson_new(), set;
  BSON_APPEND_DOCUMENT_BEGIN(spec, "$set", &set);
  bson_append_utf8(&set, "b", 1, big, (int)n);
  bson_append_document_end(spec, &set);
  update_t *u;
  cr_assert_eq(update_parse(spec, &u), NX_OK, "%s", nx_err_msg());
  bson_t out;
  bool changed;
  int rc = update_apply(u, doc, NULL, false, 0, &out, &changed);
  cr_assert_eq(rc, NX_LIMIT, "got %s: %s", nx_code_name(rc), nx_err_msg());
  update_free(u);
  bson_destroy(spec);
  bson_destroy(doc);
  nx_free(big);
  /* backfilling a huge array index is refused */
  bson_t *d2 = J("{\"_id\": 1, \"a\": []}");
  bson_t *s2 = J("{\"$set\": {\"a.99999999\": 1}}");
  cr_assert_eq(update_parse(s2, &u), NX_OK);
  cr_assert_eq(update_apply(u, d2, NULL, false, 0, &out, &changed), NX_LIMIT);
  cr_assert(strstr(nx_err_msg(), "backfill"), "%s", nx_err_msg());
  update_free(u);
  bson_destroy(s2);
  bson_destroy(d2);
}

/* The in-place path of update_apply_ex (scalar patches) against the tree path, on random
 * documents and scalar updates: same status, same message, same bytes, same `changed`. */
static uint64_t ip_rng = 0x2545F4914F6CDD1Dull;
static uint32_t ip_rn(uint32_t n) {
  ip_rng ^= ip_rng << 13;
  ip_rng ^= ip_rng >> 7;
  ip_rng ^= ip_rng << 17;
  return (uint32_t)((ip_rng >> 11) % n);
}

static const char *ip_value(void) {
  static const char *const v[] = {"1", "-1", "0", "2147483647", "-2147483648", "{\"$numberLong\": \"5\"}",
                                  "{\"$numberLong\": \"9223372036854775807\"}", "2.5", "-0.0", "true", "false",
                                  "null", "{\"$date\": \"2021-05-01T00:00:00Z\"}", "{\"$numberDecimal\": \"1.5\"}",
                                  "\"str\"", "{\"k\": 1}", "[1]", "{\"$oid\": \"64b7f0000000000000000002\"}",
                                  "{\"$timestamp\": {\"t\": 7, \"i\": 2}}"};
  return v[ip_rn(sizeof v / sizeof v[0])];
}

Test(match, update_in_place_matches_the_tree_path) {
  static const char *const paths[] = {"a", "b", "c", "d", "e", "f", "g", "h", "n.x", "n.y", "n.z.w", "n.q",
                                      "arr.0", "arr", "missing", "m.x", "0", "h.x", "n"};
  static const char *const ops[] = {"$set", "$inc", "$mul", "$min", "$max", "$currentDate", "$setOnInsert"};
  size_t in_place = 0, compared = 0;
  for (int round = 0; round < 3000; round++) {
    char doc[1024], upd[1024];
    snprintf(doc, sizeof doc,
             "{\"_id\": %u, \"a\": %s, \"b\": %s, \"c\": %s, \"d\": %s, \"e\": %s, \"f\": %s, \"g\": %s, \"h\": \"s\","
             " \"n\": {\"x\": %s, \"y\": %s, \"z\": {\"w\": %s}}, \"arr\": [%s, 2], \"0\": %s}",
             ip_rn(100), ip_value(), ip_value(), ip_value(), ip_value(), ip_value(), ip_value(), ip_value(),
             ip_value(), ip_value(), ip_value(), ip_value(), ip_value());
    int nitems = 1 + (int)ip_rn(3);
    size_t off = (size_t)snprintf(upd, sizeof upd, "{");
    for (int i = 0; i < nitems; i++) {
      const char *op = ops[ip_rn(sizeof ops / sizeof ops[0])];
      const char *val = ip_value();
      if (strcmp(op, "$currentDate") == 0) val = ip_rn(2) ? "true" : "{\"$type\": \"timestamp\"}";
      if ((strcmp(op, "$inc") == 0 || strcmp(op, "$mul") == 0) && ip_rn(4)) {
        static const char *const nums[] = {"1", "-3", "{\"$numberLong\": \"2\"}", "0.5", "2147483647"};
        val = nums[ip_rn(5)];
      }
      off += (size_t)snprintf(upd + off, sizeof upd - off, "%s\"%s\": {\"%s\": %s}", i ? ", " : "", op,
                              paths[ip_rn(sizeof paths / sizeof paths[0])], val);
    }
    snprintf(upd + off, sizeof upd - off, "}");
    bson_t *d = J(doc), *spec;
    bson_t tmp;
    if (doc_from_json(upd, -1, &tmp) != NX_OK) { /* duplicate operator keys are still JSON; keep going */
      bson_destroy(d);
      continue;
    }
    spec = bson_copy(&tmp);
    bson_destroy(&tmp);
    update_t *u;
    if (update_parse(spec, &u) == NX_OK) {
      bson_t o1, o2;
      bool c1 = false, c2 = false, ip = false, ip2 = true;
      int r1 = update_apply_ex(u, d, NULL, false, 1700000000123, 0, &o1, &c1, &ip);
      char m1[512];
      snprintf(m1, sizeof m1, "%s", nx_err_msg());
      int r2 = update_apply_ex(u, d, NULL, false, 1700000000123, UPDATE_APPLY_NO_IN_PLACE, &o2, &c2, &ip2);
      cr_assert_not(ip2);
      cr_assert_eq(r1, r2, "%s on %s: %d vs %d (%s / %s)", upd, doc, r1, r2, m1, nx_err_msg());
      if (r1 == NX_OK) {
        cr_assert(o1.len == o2.len && memcmp(bson_get_data(&o1), bson_get_data(&o2), o1.len) == 0,
                  "%s on %s: bytes differ (in place %d)", upd, doc, ip);
        cr_assert_eq(c1, c2, "%s on %s", upd, doc);
        if (ip) cr_assert_eq(doc_validate_for_storage(&o1), NX_OK);
        bson_destroy(&o1);
        bson_destroy(&o2);
      } else {
        cr_assert_not(ip);
        cr_assert_str_eq(m1, nx_err_msg(), "%s on %s", upd, doc);
      }
      in_place += ip;
      compared++;
      update_free(u);
    }
    bson_destroy(spec);
    bson_destroy(d);
  }
  cr_assert(compared > 1000 && in_place > 200, "compared %zu, in place %zu", compared, in_place);
}

/* One round of everything the layer does; returns the first failing status. */
static int exercise(void) {
  static const char *filter =
      "{\"a\": {\"$in\": [1, 2, {\"$regularExpression\": {\"pattern\": \"^x\", \"options\": \"i\"}}]},"
      " \"$or\": [{\"b.c\": {\"$gte\": 3}}, {\"d\": {\"$elemMatch\": {\"e\": 1}}}],"
      " \"f\": {\"$not\": {\"$regex\": \"z\"}}, \"g\": {\"$all\": [1]}}";
  static const char *doc = "{\"_id\": 7, \"a\": [0, \"Xy\"], \"b\": {\"c\": 4}, \"d\": [{\"e\": 1}],"
                           " \"f\": \"q\", \"g\": [1, 2], \"t\": [3, 1]}";
  static const char *upd =
      "{\"$set\": {\"b.c\": 5, \"n.m\": 1}, \"$inc\": {\"k\": 1}, \"$push\": {\"t\": "
      "{\"$each\": [2], \"$sort\": 1, \"$slice\": 3}}, \"$pull\": {\"d\": {\"e\": 1}},"
      " \"$addToSet\": {\"g\": 3}, \"$rename\": {\"f\": \"ff\"}, \"$unset\": {\"zz\": 1}}";
  static const char *proj = "{\"a\": 1, \"t\": {\"$slice\": 1}, \"d\": {\"$elemMatch\": {\"e\": 1}}}";
  bson_t fs, ds, us, ps, out;
  /* the JSON parser itself may fail an allocation (its "$regex" key rewrite) */
  int jrc = doc_from_json(filter, -1, &fs);
  if (jrc != NX_OK) return jrc;
  doc_from_json(doc, -1, &ds);
  doc_from_json(upd, -1, &us);
  doc_from_json(proj, -1, &ps);
  filter_t *f = NULL;
  update_t *u = NULL;
  proj_t *p = NULL;
  sort_t *s = NULL;
  bool m = false, changed = false;
  int rc = filter_parse(&fs, &f);
  if (rc == NX_OK) rc = filter_match(f, &ds, &m);
  if (rc == NX_OK && !m) rc = NX_ERROR;
  if (rc == NX_OK) rc = update_parse(&us, &u);
  if (rc == NX_OK) {
    rc = update_apply(u, &ds, f, false, 5, &out, &changed);
    if (rc == NX_OK) bson_destroy(&out);
  }
  if (rc == NX_OK) {
    rc = update_build_upsert_seed(f, &out);
    if (rc == NX_OK) bson_destroy(&out);
  }
  if (rc == NX_OK) rc = proj_parse(&ps, &p);
  if (rc == NX_OK) {
    rc = proj_apply(p, &ds, f, &out);
    if (rc == NX_OK) bson_destroy(&out);
  }
  if (rc == NX_OK) {
    bson_t ss;
    bson_init(&ss);
    BSON_APPEND_INT32(&ss, "t", 1);
    BSON_APPEND_INT32(&ss, "b.c", -1);
    rc = sort_parse(&ss, &s);
    bson_destroy(&ss);
    if (rc == NX_OK && sort_cmp(s, &ds, &ds) != 0) rc = NX_ERROR;
    if (rc == NX_OK) {
      rc = sort_key_extract(s, &ds, &out);
      if (rc == NX_OK) bson_destroy(&out);
    }
  }
  filter_free(f);
  update_free(u);
  proj_free(p);
  sort_free(s);
  bson_destroy(&fs);
  bson_destroy(&ds);
  bson_destroy(&us);
  bson_destroy(&ps);
  return rc;
}

Test(match, every_allocation_failure_is_reported_and_leaks_nothing) {
  nx_alloc_init();
  cr_assert_eq(exercise(), NX_OK, "the exercise itself must pass: %s", nx_err_msg());
  int fired = 0;
  for (uint64_t n = 1; n < 5000; n++) {
    nx_alloc_stats before, after;
    nx_alloc_get_stats(&before);
    nx_alloc_fail_nth(n);
    int rc = exercise();
    bool hit = nx_alloc_fault_fired();
    nx_alloc_fail_nth(0);
    nx_alloc_get_stats(&after);
    cr_assert_eq(after.current, before.current, "allocation %llu failing leaked %zu bytes",
                 (unsigned long long)n, after.current - before.current);
    if (!hit) {
      cr_assert_eq(rc, NX_OK);
      break;
    }
    fired++;
    cr_assert(rc == NX_NOMEM || rc == NX_OK, "allocation %llu failing gave %s: %s", (unsigned long long)n,
              nx_code_name(rc), nx_err_msg());
  }
  fprintf(stderr, "allocation failures exercised: %d\n", fired);
  cr_assert_gt(fired, 20, "only %d allocations were exercised", fired);
}

/* ---- Equivalent filters agree on random documents ---- */

static uint32_t g_rng = 88172645u;
static uint32_t rnd(void) {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 17;
  g_rng ^= g_rng << 5;
  return g_rng;
}

/* A random scalar or small array/document, as JSON text. */
static const char *rand_value(void) {
  static const char *v[] = {"1",
                            "2",
                            "2.0",
                            "{\"$numberLong\": \"3\"}",
                            "\"x\"",
                            "\"y\"",
                            "null",
                            "true",
                            "[1, 2]",
                            "[2, \"x\"]",
                            "[]",
                            "{\"b\": 1}",
                            "{\"b\": [1, 3]}",
                            "[{\"b\": 2}, {\"c\": 1}]",
                            "[null]",
                            "{\"$numberDecimal\": \"2\"}",
                            "{\"$numberDouble\": \"NaN\"}",
                            "[[1, 2]]",
                            "-1"};
  return v[rnd() % (sizeof v / sizeof v[0])];
}

static bool matches(const char *filter, const bson_t *doc) {
  filter_t *f;
  int rc = parse_json_filter(filter, &f);
  cr_assert_eq(rc, NX_OK, "filter %s: %s", filter, nx_err_msg());
  bool m = false;
  cr_assert_eq(filter_match(f, doc, &m), NX_OK);
  filter_free(f);
  return m;
}

Test(match, equivalent_filters_agree_on_random_documents) {
  const char *scale = getenv("NX_TEST_SCALE");
  int rounds = scale && strcmp(scale, "asan") == 0 ? 150 : 600;
  char d[256], f1[512], f2[512];
  int checked = 0;
  for (int r = 0; r < rounds; r++) {
    if (rnd() % 4)
      snprintf(d, sizeof d, "{\"_id\": %d, \"a\": %s}", r, rand_value());
    else
      snprintf(d, sizeof d, "{\"_id\": %d}", r);
    bson_t *doc = J(d);
    const char *x = rand_value(), *y = rand_value();
    const char *p = rnd() % 3 ? "a" : "a.b";
    struct {
      const char *fmt1, *fmt2;
    } eq[] = {
        {"{\"%1$s\": {\"$in\": [%2$s, %3$s]}}",
         "{\"$or\": [{\"%1$s\": {\"$eq\": %2$s}}, {\"%1$s\": {\"$eq\": %3$s}}]}"},
        {"{\"%1$s\": {\"$nin\": [%2$s, %3$s]}}",
         "{\"$nor\": [{\"%1$s\": {\"$eq\": %2$s}}, {\"%1$s\": {\"$eq\": %3$s}}]}"},
        {"{\"%1$s\": {\"$ne\": %2$s}}", "{\"%1$s\": {\"$not\": {\"$eq\": %2$s}}}"},
        {"{\"%1$s\": {\"$all\": [%2$s, %3$s]}}",
         "{\"$and\": [{\"%1$s\": {\"$eq\": %2$s}}, {\"%1$s\": {\"$eq\": %3$s}}]}"},
        {"{\"%1$s\": {\"$gte\": %2$s}}",
         "{\"$or\": [{\"%1$s\": {\"$gt\": %2$s}}, {\"%1$s\": {\"$eq\": %2$s}}]}"},
        {"{\"%1$s\": {\"$lte\": %2$s}}",
         "{\"$or\": [{\"%1$s\": {\"$lt\": %2$s}}, {\"%1$s\": {\"$eq\": %2$s}}]}"},
        {"{\"%1$s\": {\"$exists\": false}}", "{\"$nor\": [{\"%1$s\": {\"$exists\": true}}]}"},
        {"{\"%1$s\": {\"$gt\": %2$s, \"$lt\": %3$s}}",
         "{\"$and\": [{\"%1$s\": {\"$gt\": %2$s}}, {\"%1$s\": {\"$lt\": %3$s}}]}"},
    };
    for (size_t i = 0; i < sizeof eq / sizeof eq[0]; i++) {
      snprintf(f1, sizeof f1, eq[i].fmt1, p, x, y);
      snprintf(f2, sizeof f2, eq[i].fmt2, p, x, y);
      bool m1 = matches(f1, doc), m2 = matches(f2, doc);
      cr_assert_eq(m1, m2, "%s and %s disagree on %s", f1, f2, d);
      checked++;
    }
    /* $elemMatch on values implies the plain condition */
    snprintf(f1, sizeof f1, "{\"a\": {\"$elemMatch\": {\"$gte\": %s}}}", x);
    snprintf(f2, sizeof f2, "{\"a\": {\"$gte\": %s}}", x);
    if (matches(f1, doc)) cr_assert(matches(f2, doc), "%s matched but %s did not on %s", f1, f2, d);
    /* after $set the value is found by equality (arrays: as a whole) */
    snprintf(f1, sizeof f1, "{\"$set\": {\"%s\": %s}}", p, x);
    bson_t *us = J(f1);
    update_t *u;
    bson_t out;
    bool changed;
    cr_assert_eq(update_parse(us, &u), NX_OK);
    int rc = update_apply(u, doc, NULL, false, 0, &out, &changed);
    if (rc == NX_OK) {
      snprintf(f2, sizeof f2, "{\"%s\": {\"$eq\": %s}}", p, x);
      cr_assert(matches(f2, &out), "after %s on %s, %s does not match", f1, d, f2);
      bson_destroy(&out);
    } else {
      cr_assert_eq(rc, NX_INVALID, "%s on %s: %s", f1, d, nx_err_msg());
    }
    update_free(u);
    bson_destroy(us);
    bson_destroy(doc);
  }
  fprintf(stderr, "equivalences checked: %d\n", checked);
}

/* ---- A parsed filter is shared by threads ---- */

#include <pthread.h>

typedef struct share_ctx {
  const filter_t *f;
  const bson_t *docs;
  int ndocs;
  int hits;   /* matches counted by this thread */
  int errors; /* non-OK statuses */
} share_ctx;

static void *share_worker(void *arg) {
  share_ctx *c = arg;
  for (int r = 0; r < 200; r++)
    for (int i = 0; i < c->ndocs; i++) {
      bool m = false;
      if (filter_match(c->f, &c->docs[i], &m) != NX_OK) c->errors++;
      c->hits += m;
    }
  return NULL;
}

Test(match, one_filter_is_matched_by_several_threads_at_once) {
  filter_t *f;
  cr_assert_eq(parse_json_filter("{\"name\": {\"$regex\": \"^u[0-9]*5$\", \"$options\": \"i\"},"
                                 " \"n\": {\"$in\": [5, 15, 25, 35, 45]}}", &f), NX_OK);
  bson_t docs[50];
  for (int i = 0; i < 50; i++) {
    char j[64];
    snprintf(j, sizeof j, "{\"name\": \"U%d\", \"n\": %d}", i, i);
    bson_t tmp;
    cr_assert_eq(doc_from_json(j, -1, &tmp), NX_OK);
    bson_copy_to(&tmp, &docs[i]);
    bson_destroy(&tmp);
  }
  pthread_t th[4];
  share_ctx ctx[4];
  for (int t = 0; t < 4; t++) {
    ctx[t] = (share_ctx){f, docs, 50, 0, 0};
    pthread_create(&th[t], NULL, share_worker, &ctx[t]);
  }
  for (int t = 0; t < 4; t++) pthread_join(th[t], NULL);
  for (int t = 0; t < 4; t++) {
    cr_assert_eq(ctx[t].errors, 0);
    cr_assert_eq(ctx[t].hits, 200 * 5, "thread %d counted %d", t, ctx[t].hits);
  }
  for (int i = 0; i < 50; i++) bson_destroy(&docs[i]);
  filter_free(f);
}
