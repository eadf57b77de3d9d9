// ctest: timeout=120
/*
 * test_api_kv.c: the key-value API: every JSON value type round-trips, has/delete/keys with
 * prefixes in order, clear, errors (bad JSON, extra fields smuggled through the value, NULLs),
 * batches of sets and deletes in one transaction (atomic, aborted batches leave nothing), and
 * that the reserved collection is hidden from nx_collection_list and refused by name.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "api_testutil.h"
#include "nexuslite.h"

static void expect_get(nx_db *db, nx_txn *t, const char *key, const char *want) {
  char *v = NULL;
  int rc = nx_kv_get(db, t, key, &v);
  cr_assert_eq(rc, NX_OK, "get %s: %s", key, nx_errmsg(db));
  cr_assert_str_eq(v, want, "key %s", key);
  nx_free(v);
}

Test(api_kv, every_json_value_round_trips) {
  nx_db *db = at_open_mem();
  const char *vals[][2] = {{"{\"name\": \"John\", \"n\": [1, 2]}", "{ \"name\" : \"John\", \"n\" : [ 1, 2 ] }"},
                           {"[1, \"a\", null]", "[ 1, \"a\", null ]"},
                           {"\"text\"", "\"text\""},
                           {"42", "42"},
                           {"2.5", "2.5"},
                           {"true", "true"},
                           {"null", "null"}};
  for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
    char k[32];
    snprintf(k, sizeof k, "k%zu", i);
    cr_assert_eq(nx_kv_set(db, NULL, k, vals[i][0]), NX_OK, "set %s: %s", vals[i][0], nx_errmsg(db));
    expect_get(db, NULL, k, vals[i][1]);
  }
  /* overwrite */
  cr_assert_eq(nx_kv_set(db, NULL, "k0", "7"), NX_OK);
  expect_get(db, NULL, "k0", "7");
  nx_close(db);
}

Test(api_kv, has_delete_keys_prefix_and_clear) {
  nx_db *db = at_open_mem();
  char **keys;
  size_t n;
  cr_assert_eq(nx_kv_keys(db, NULL, "", &keys, &n), NX_OK, "no kv collection yet");
  cr_assert_eq(n, 0);
  nx_free_strv(keys, n);
  const char *ks[] = {"user:2", "user:10", "user:1", "order:1", "user", "user;", "usea"};
  for (size_t i = 0; i < 7; i++) cr_assert_eq(nx_kv_set(db, NULL, ks[i], "1"), NX_OK);
  cr_assert_eq(nx_kv_keys(db, NULL, "user:", &keys, &n), NX_OK);
  cr_assert_eq(n, 3);
  cr_assert_str_eq(keys[0], "user:1");
  cr_assert_str_eq(keys[1], "user:10");
  cr_assert_str_eq(keys[2], "user:2");
  nx_free_strv(keys, n);
  cr_assert_eq(nx_kv_keys(db, NULL, NULL, &keys, &n), NX_OK);
  cr_assert_eq(n, 7);
  cr_assert_str_eq(keys[0], "order:1");
  cr_assert_str_eq(keys[6], "user;");
  nx_free_strv(keys, n);
  bool h;
  cr_assert_eq(nx_kv_has(db, NULL, "user:1", &h), NX_OK);
  cr_assert(h);
  cr_assert_eq(nx_kv_delete(db, NULL, "user:1"), NX_OK);
  cr_assert_eq(nx_kv_has(db, NULL, "user:1", &h), NX_OK);
  cr_assert(!h);
  cr_assert_eq(nx_kv_delete(db, NULL, "user:1"), NX_NOTFOUND);
  char *v;
  cr_assert_eq(nx_kv_get(db, NULL, "user:1", &v), NX_NOTFOUND);
  cr_assert(strstr(nx_errmsg(db), "user:1"), "%s", nx_errmsg(db));
  cr_assert_null(v);
  cr_assert_eq(nx_kv_clear(db, NULL), NX_OK);
  cr_assert_eq(nx_kv_keys(db, NULL, "", &keys, &n), NX_OK);
  cr_assert_eq(n, 0);
  nx_free_strv(keys, n);
  nx_close(db);
}

Test(api_kv, errors) {
  nx_db *db = at_open_mem();
  cr_assert_eq(nx_kv_set(db, NULL, "k", "{\"a\": "), NX_PARSE);
  cr_assert_eq(nx_kv_set(db, NULL, "k", "1, \"x\": 2"), NX_PARSE, "a second field smuggled through the value");
  cr_assert_eq(nx_kv_set(db, NULL, "k", ""), NX_PARSE);
  cr_assert_eq(nx_kv_set(db, NULL, NULL, "1"), NX_MISUSE);
  cr_assert_eq(nx_kv_set(db, NULL, "k", NULL), NX_MISUSE);
  char big[1200];
  memset(big, 'k', sizeof big - 1);
  big[sizeof big - 1] = 0;
  cr_assert_eq(nx_kv_set(db, NULL, big, "1"), NX_LIMIT);
  bool h = true;
  cr_assert_eq(nx_kv_has(db, NULL, "k", &h), NX_OK);
  cr_assert(!h);
  nx_close(db);
}

Test(api_kv, batches_are_transactions) {
  nx_db *db = at_open_mem();
  cr_assert_eq(nx_kv_set(db, NULL, "a", "1"), NX_OK);
  nx_txn *t;
  cr_assert_eq(nx_txn_begin(db, NX_TXN_WRITE, &t), NX_OK);
  cr_assert_eq(nx_kv_set(db, t, "b", "2"), NX_OK);
  cr_assert_eq(nx_kv_set(db, t, "c", "3"), NX_OK);
  cr_assert_eq(nx_kv_delete(db, t, "a"), NX_OK);
  expect_get(db, t, "b", "2"); /* the batch sees its own writes */
  bool h = true;
  cr_assert_eq(nx_kv_has(db, NULL, "b", &h), NX_OK);
  cr_assert(!h, "uncommitted batch visible outside");
  cr_assert_eq(nx_txn_commit(t), NX_OK);
  char **keys;
  size_t n;
  cr_assert_eq(nx_kv_keys(db, NULL, "", &keys, &n), NX_OK);
  cr_assert_eq(n, 2);
  cr_assert_str_eq(keys[0], "b");
  cr_assert_str_eq(keys[1], "c");
  nx_free_strv(keys, n);
  /* an aborted batch leaves nothing */
  cr_assert_eq(nx_txn_begin(db, NX_TXN_WRITE, &t), NX_OK);
  cr_assert_eq(nx_kv_set(db, t, "d", "4"), NX_OK);
  cr_assert_eq(nx_kv_clear(db, t), NX_OK);
  nx_txn_abort(t);
  cr_assert_eq(nx_kv_keys(db, NULL, "", &keys, &n), NX_OK);
  cr_assert_eq(n, 2);
  nx_free_strv(keys, n);
  nx_close(db);
}

Test(api_kv, reserved_collection_is_hidden) {
  nx_db *db = at_open_mem();
  cr_assert_eq(nx_kv_set(db, NULL, "a", "1"), NX_OK);
  cr_assert_eq(nx_insert_one(db, NULL, "users", nx_json("{\"a\": 1}"), NULL), NX_OK);
  char **names;
  size_t n;
  cr_assert_eq(nx_collection_list(db, &names, &n), NX_OK);
  cr_assert_eq(n, 1);
  cr_assert_str_eq(names[0], "users");
  nx_free_strv(names, n);
  cr_assert_eq(nx_insert_one(db, NULL, "_nx_kv", nx_json("{\"_id\": \"x\"}"), NULL), NX_INVALID);
  cr_assert_eq(nx_collection_drop(db, "_nx_kv"), NX_INVALID);
  nx_close(db);
}
