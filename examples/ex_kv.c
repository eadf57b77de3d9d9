/*
 * ex_kv.c: the key-value API: any JSON value under a string key, prefix listing in key order,
 * and batches of sets and deletes committed atomically in one transaction.
 *
 * Usage: ex_kv [FILE.db]   (default: ex_kv.db in the current directory)
 */
#include <stdio.h>
#include <stdlib.h>

#include "nexuslite.h"

static void check(int rc, nx_db *db, const char *what) {
  if (rc != NX_OK) {
    fprintf(stderr, "%s: %s: %s\n", what, nx_code_name(rc), nx_errmsg(db));
    exit(1);
  }
}

static void show(nx_db *db, const char *key) {
  char *v;
  int rc = nx_kv_get(db, NULL, key, &v);
  if (rc == NX_OK) {
    printf("  %s = %s\n", key, v);
    nx_free(v);
  } else {
    printf("  %s: %s\n", key, nx_code_name(rc));
  }
}

static void list(nx_db *db, const char *prefix) {
  char **keys;
  size_t n;
  check(nx_kv_keys(db, NULL, prefix, &keys, &n), db, "keys");
  printf("keys with prefix \"%s\" (%zu):", prefix, n);
  for (size_t i = 0; i < n; i++) printf(" %s", keys[i]);
  printf("\n");
  nx_free_strv(keys, n);
}

int main(int argc, char **argv) {
  const char *path = argc > 1 ? argv[1] : "ex_kv.db";
  nx_db *db;
  if (nx_open(path, NULL, &db) != NX_OK) {
    fprintf(stderr, "open %s: %s\n", path, nx_errmsg(NULL));
    return 1;
  }
  check(nx_kv_clear(db, NULL), db, "clear");
  check(nx_kv_set(db, NULL, "user:1", "{\"name\": \"John\", \"roles\": [\"admin\"]}"), db, "set");
  check(nx_kv_set(db, NULL, "user:2", "{\"name\": \"Jane\"}"), db, "set");
  check(nx_kv_set(db, NULL, "config:theme", "\"dark\""), db, "set");
  check(nx_kv_set(db, NULL, "counter", "41"), db, "set");
  check(nx_kv_set(db, NULL, "counter", "42"), db, "set"); /* overwrite */
  printf("values:\n");
  show(db, "user:1");
  show(db, "config:theme");
  show(db, "counter");
  show(db, "missing");
  list(db, "user:");
  list(db, "");
  bool has;
  check(nx_kv_has(db, NULL, "user:2", &has), db, "has");
  printf("has user:2: %s\n", has ? "yes" : "no");

  /* A batch: several sets and deletes, one commit, all or nothing. */
  nx_txn *t;
  check(nx_txn_begin(db, NX_TXN_WRITE, &t), db, "begin");
  check(nx_kv_set(db, t, "user:3", "{\"name\": \"Max\"}"), db, "set");
  check(nx_kv_delete(db, t, "user:2"), db, "delete");
  check(nx_kv_set(db, t, "counter", "43"), db, "set");
  check(nx_txn_commit(t), db, "commit");
  printf("after the batch:\n");
  list(db, "user:");
  show(db, "counter");

  check(nx_txn_begin(db, NX_TXN_WRITE, &t), db, "begin");
  check(nx_kv_clear(db, t), db, "clear");
  nx_txn_abort(t);
  printf("after an aborted clear:\n");
  list(db, "");

  int rc = nx_kv_set(db, NULL, "bad", "{not json}");
  printf("bad value: %s\n", nx_code_name(rc));
  return nx_close(db) == NX_OK ? 0 : 1;
}
