/*
 * ex_storage_basics.c: the smallest tour of NexusLite's storage guarantees, on the public API
 * only (nexuslite.h). Creates the database named on the command line, commits a few write
 * transactions (key-value entries), aborts one, prints the figures, closes, reopens (recovery
 * runs at open) and prints what it finds: the committed entries, not the aborted one.
 *
 * Usage: ex_storage_basics FILE.db      (`make demo` runs it on demo.db)
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "nexuslite.h"

static void print_stats(const char *when, nx_db *db) {
  nx_stats s;
  if (nx_stats_get(db, &s) != NX_OK) {
    fprintf(stderr, "nx_stats_get: %s\n", nx_errmsg(db));
    return;
  }
  printf("%s:\n", when);
  printf("  page size        %u bytes\n", s.page_size);
  printf("  pages            %llu in the file, %llu free\n", (unsigned long long)s.pages_total,
         (unsigned long long)s.pages_free);
  printf("  log              %llu bytes\n", (unsigned long long)s.log_bytes);
  printf("  last txn id      %llu\n", (unsigned long long)s.txn_id);
  printf("  since open       %llu commits, %llu checkpoints, %llu log fsyncs\n",
         (unsigned long long)s.commits, (unsigned long long)s.checkpoints, (unsigned long long)s.fsyncs);
}

static int fail(const char *what, nx_db *db) {
  fprintf(stderr, "ex_storage_basics: %s: %s\n", what, nx_errmsg(db));
  nx_close(db);
  return 1;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s FILE.db\n", argv[0]);
    return 2;
  }
  const char *path = argv[1];
  nx_db *db = NULL;
  nx_open_opts opts = NX_OPEN_OPTS_INIT; /* FULL durability: a commit is on disk when it returns */
  if (nx_open(path, &opts, &db) != NX_OK) return fail("nx_open", NULL);
  print_stats("after open", db);

  const char *keys[] = {"greeting", "answer", "list"};
  const char *vals[] = {"\"hello, storage\"", "42", "[1, 2, 3]"};
  for (int i = 0; i < 3; i++) { /* three durable write transactions */
    nx_txn *t;
    if (nx_txn_begin(db, NX_TXN_WRITE, &t) != NX_OK) return fail("nx_txn_begin", db);
    if (nx_kv_set(db, t, keys[i], vals[i]) != NX_OK) {
      nx_txn_abort(t);
      return fail("nx_kv_set", db);
    }
    if (nx_txn_commit(t) != NX_OK) return fail("nx_txn_commit", db);
  }
  nx_txn *t;
  if (nx_txn_begin(db, NX_TXN_WRITE, &t) != NX_OK) return fail("nx_txn_begin", db);
  if (nx_kv_set(db, t, "ghost", "\"never committed\"") != NX_OK) return fail("nx_kv_set", db);
  nx_txn_abort(t); /* leaves no trace */
  print_stats("after 3 commits and 1 abort", db);
  if (nx_checkpoint(db, NX_CHECKPOINT_FULL) != NX_OK) return fail("nx_checkpoint", db);
  if (nx_close(db) != NX_OK) return fail("nx_close", NULL);

  opts.checkpoint_thread = true; /* this time automatic checkpoints run in a background thread */
  if (nx_open(path, &opts, &db) != NX_OK) return fail("nx_open (again)", NULL);
  print_stats("after reopening", db);
  printf("entries found after reopening:\n");
  for (int i = 0; i < 3; i++) {
    char *v = NULL;
    if (nx_kv_get(db, NULL, keys[i], &v) != NX_OK) return fail("nx_kv_get", db);
    printf("  %-10s %s\n", keys[i], v);
    nx_free(v);
  }
  bool ghost = true;
  if (nx_kv_has(db, NULL, "ghost", &ghost) != NX_OK) return fail("nx_kv_has", db);
  printf("  %-10s %s\n", "ghost", ghost ? "PRESENT (wrong: it was aborted)" : "absent (aborted, as expected)");
  return nx_close(db) == NX_OK ? 0 : fail("nx_close", NULL);
}
