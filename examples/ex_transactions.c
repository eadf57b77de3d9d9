/*
 * ex_transactions.c: multi-document, multi-collection transactions on the public API: a money
 * transfer that debits one collection and writes a ledger entry in another atomically, an abort
 * that leaves nothing, a read transaction that keeps its snapshot while others commit, and a
 * write refused inside a read transaction.
 *
 * Usage: ex_transactions [FILE.db]   (default: ex_transactions.db in the current directory)
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

static long long balance(nx_db *db, nx_txn *t, const char *who) {
  char f[64];
  snprintf(f, sizeof f, "{\"_id\": \"%s\"}", who);
  bson_t d;
  check(nx_find_one(db, t, "accounts", nx_json(f), NULL, &d), db, "find_one");
  bson_iter_t it;
  long long v = bson_iter_init_find(&it, &d, "balance") ? (long long)bson_iter_as_int64(&it) : -1;
  bson_destroy(&d);
  return v;
}

static uint64_t ledger_entries(nx_db *db, nx_txn *t) {
  uint64_t n;
  check(nx_count(db, t, "ledger", nx_none(), &n), db, "count");
  return n;
}

/* Moves `amount` from one account to another and records it, all or nothing. */
static int transfer(nx_db *db, const char *from, const char *to, int amount, int entry, bool fail_midway) {
  nx_txn *t;
  int rc = nx_txn_begin(db, NX_TXN_WRITE, &t);
  if (rc != NX_OK) return rc;
  char f[64], u[64], e[128];
  snprintf(f, sizeof f, "{\"_id\": \"%s\", \"balance\": {\"$gte\": %d}}", from, amount);
  snprintf(u, sizeof u, "{\"$inc\": {\"balance\": %d}}", -amount);
  nx_update_result r;
  rc = nx_update_one(db, t, "accounts", nx_json(f), nx_json(u), 0, &r);
  if (rc == NX_OK && r.modified != 1) rc = NX_INVALID; /* insufficient funds */
  if (rc == NX_OK) {
    snprintf(f, sizeof f, "{\"_id\": \"%s\"}", to);
    snprintf(u, sizeof u, "{\"$inc\": {\"balance\": %d}}", amount);
    rc = nx_update_one(db, t, "accounts", nx_json(f), nx_json(u), 0, NULL);
  }
  if (rc == NX_OK) {
    snprintf(e, sizeof e, "{\"_id\": %d, \"from\": \"%s\", \"to\": \"%s\", \"amount\": %d}", entry, from, to, amount);
    rc = nx_insert_one(db, t, "ledger", nx_json(e), NULL);
  }
  if (rc == NX_OK && fail_midway) rc = NX_CANCELLED; /* the application changes its mind */
  if (rc != NX_OK) {
    nx_txn_abort(t);
    return rc;
  }
  return nx_txn_commit(t);
}

int main(int argc, char **argv) {
  const char *path = argc > 1 ? argv[1] : "ex_transactions.db";
  nx_db *db;
  if (nx_open(path, NULL, &db) != NX_OK) {
    fprintf(stderr, "open %s: %s\n", path, nx_errmsg(NULL));
    return 1;
  }
  nx_collection_drop(db, "accounts");
  nx_collection_drop(db, "ledger");
  nx_in accounts[] = {nx_json("{\"_id\": \"alice\", \"balance\": 100}"), nx_json("{\"_id\": \"bob\", \"balance\": 20}")};
  check(nx_insert_many(db, NULL, "accounts", accounts, 2, NULL), db, "insert_many");
  printf("start: alice %lld, bob %lld, ledger %llu\n", balance(db, NULL, "alice"), balance(db, NULL, "bob"),
         (unsigned long long)ledger_entries(db, NULL));

  int rc = transfer(db, "alice", "bob", 30, 1, false);
  printf("transfer 30 alice->bob: %s; alice %lld, bob %lld, ledger %llu\n", nx_code_name(rc), balance(db, NULL, "alice"),
         balance(db, NULL, "bob"), (unsigned long long)ledger_entries(db, NULL));
  rc = transfer(db, "bob", "alice", 500, 2, false);
  printf("transfer 500 bob->alice: %s (insufficient funds); alice %lld, bob %lld, ledger %llu\n", nx_code_name(rc),
         balance(db, NULL, "alice"), balance(db, NULL, "bob"), (unsigned long long)ledger_entries(db, NULL));
  rc = transfer(db, "alice", "bob", 10, 3, true);
  printf("transfer 10 alice->bob, aborted: %s; alice %lld, bob %lld, ledger %llu\n", nx_code_name(rc),
         balance(db, NULL, "alice"), balance(db, NULL, "bob"), (unsigned long long)ledger_entries(db, NULL));

  /* A read transaction is a snapshot: commits made meanwhile are invisible to it. */
  nx_txn *snap;
  check(nx_txn_begin(db, NX_TXN_READ, &snap), db, "begin read");
  check(transfer(db, "alice", "bob", 5, 4, false), db, "transfer");
  printf("snapshot sees alice %lld, ledger %llu; now alice %lld, ledger %llu\n", balance(db, snap, "alice"),
         (unsigned long long)ledger_entries(db, snap), balance(db, NULL, "alice"),
         (unsigned long long)ledger_entries(db, NULL));
  rc = nx_insert_one(db, snap, "ledger", nx_json("{\"_id\": 99}"), NULL);
  printf("write inside the read transaction: %s: %s\n", nx_code_name(rc), nx_errmsg(db));
  nx_txn_abort(snap);

  /* Inside a write transaction, reads see the transaction's own writes. */
  nx_txn *t;
  check(nx_txn_begin(db, NX_TXN_WRITE, &t), db, "begin write");
  check(nx_update_many(db, t, "accounts", nx_none(), nx_json("{\"$inc\": {\"balance\": 1}}"), 0, NULL), db, "update_many");
  printf("inside: alice %lld; outside: alice %lld\n", balance(db, t, "alice"), balance(db, NULL, "alice"));
  check(nx_txn_commit(t), db, "commit");
  printf("after commit: alice %lld, bob %lld, total %lld\n", balance(db, NULL, "alice"), balance(db, NULL, "bob"),
         balance(db, NULL, "alice") + balance(db, NULL, "bob"));
  return nx_close(db) == NX_OK ? 0 : 1;
}
