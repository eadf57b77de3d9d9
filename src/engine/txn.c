/*
 * txn.c: engine transactions over storage transactions.
 *
 * An nx_txn wraps one st_txn and adds what the document layer needs: the clock read once at
 * begin (metadata times, expiry, $currentDate), a per-transaction cache of opened collections,
 * a write counter that cursors compare to know when to re-seek, and the poisoned state.
 *
 * Invariants:
 *   1. A public call with txn == NULL runs in its own transaction (eng_txn_use / eng_txn_done):
 *      committed when the call succeeds, aborted otherwise, so a failed call leaves nothing.
 *   2. A public call inside a user transaction that fails after it wrote something poisons the
 *      transaction: storage has no savepoints, so the half-done change cannot be taken back
 *      alone; every later call fails fast and commit aborts (MongoDB aborts a transaction on a
 *      write error too). Failures detected before any write (validation, duplicate _id checked
 *      up front) leave the transaction usable.
 */
#include <stdatomic.h>
#include <string.h>

#include "engine.h"

static void txn_free(nx_txn *t);

static void colls_free(eng_coll *c) {
  while (c) {
    eng_coll *n = c->next;
    idx_set_free(c->idx);
    nx_free(c->name);
    nx_free(c);
    c = n;
  }
}

/* A spare transaction of db, or NULL. */
static nx_txn *spare_take(nx_db *db) {
  for (int i = 0; i < ENG_TXN_SPARES; i++) {
    if (!atomic_load_explicit(&db->spare[i], memory_order_relaxed)) continue;
    nx_txn *t = atomic_exchange(&db->spare[i], NULL);
    if (t) return t;
  }
  return NULL;
}

/* Keeps t (its storage txn parked) as a spare; false when every place is taken. */
static bool spare_put(nx_db *db, nx_txn *t) {
  for (int i = 0; i < ENG_TXN_SPARES; i++) {
    nx_txn *expected = NULL;
    if (atomic_compare_exchange_strong(&db->spare[i], &expected, t)) return true;
  }
  return false;
}

void eng_txn_spares_free(nx_db *db) {
  for (int i = 0; i < ENG_TXN_SPARES; i++) {
    nx_txn *t = atomic_exchange(&db->spare[i], NULL);
    if (!t) continue;
    st_txn_free(t->st);
    t->st = NULL;
    txn_free(t);
  }
}

int eng_txn_begin(nx_db *db, bool write, bool user, nx_txn **out) {
  *out = NULL;
  if (!db) return nx_err(NX_MISUSE, "transaction: database handle is NULL");
  if (write && db->read_only)
    return nx_err(NX_READONLY, "transaction: database '%s' was opened read-only", db->path);
  nx_txn *t = spare_take(db);
  if (t) {
    bool kept = false;
    int rc = st_txn_restart(t->st, write, &kept);
    if (rc != NX_OK) {
      if (!spare_put(db, t)) {
        st_txn_free(t->st);
        t->st = NULL;
        txn_free(t);
      }
      return rc;
    }
    if (!kept) {
      colls_free(t->colls);
      t->colls = NULL;
    }
  } else {
    t = nx_calloc(1, sizeof *t);
    if (!t) return nx_err(NX_NOMEM, "transaction: out of memory");
    int rc = st_txn_begin(db->env, write, &t->st);
    if (rc != NX_OK) {
      nx_free(t);
      return rc;
    }
    t->db = db;
    nx_buf_init(&t->enc, ST_MAX_VALUE);
    nx_buf_init(&t->key, ST_MAX_KEY * 2);
    nx_buf_init(&t->old, ST_MAX_VALUE);
  }
  t->write = write;
  t->user = user;
  t->poisoned = false;
  t->writes = 0;
  t->watchers = NULL;
  t->now_set = false; /* read at first use (eng_now) */
  *out = t;
  return NX_OK;
}

void eng_txn_watch_add(nx_txn *t, eng_txn_watch *w) {
  w->prev = NULL;
  w->next = t->watchers;
  if (t->watchers) t->watchers->prev = w;
  t->watchers = w;
}

void eng_txn_watch_remove(nx_txn *t, eng_txn_watch *w) {
  if (w->prev) w->prev->next = w->next;
  else if (t->watchers == w) t->watchers = w->next;
  if (w->next) w->next->prev = w->prev;
  w->prev = w->next = NULL;
}

/* A transaction ending with cursors still open: they let go of it (their later calls fail with
 * NX_MISUSE) so that closing them afterwards is safe. */
static void detach_all(nx_txn *t) {
  while (t->watchers) {
    eng_txn_watch *w = t->watchers;
    eng_txn_watch_remove(t, w);
    w->detach(w->ctx);
  }
}

/* Ends the storage txn (commit or abort) and keeps t as a spare, or frees both. */
static int txn_end(nx_txn *t, bool commit) {
  nx_db *db = t->db;
  /* a spare keeps its scratch buffers unless one grew past a modest size */
  bool keep = t->enc.cap <= (64u << 10) && t->old.cap <= (64u << 10);
  int rc = NX_OK;
  if (keep) {
    if (commit) rc = st_txn_commit_keep(t->st);
    else st_txn_abort_keep(t->st);
    if (t->write) { /* a read's opened collections stay valid for a later read on its snapshot */
      colls_free(t->colls);
      t->colls = NULL;
    }
    if (spare_put(db, t)) return rc;
    st_txn_free(t->st);
  } else if (commit) {
    rc = st_txn_commit(t->st);
  } else {
    st_txn_abort(t->st);
  }
  t->st = NULL;
  txn_free(t);
  return rc;
}

int eng_txn_commit(nx_txn *t) {
  if (!t) return nx_err(NX_MISUSE, "nx_txn_commit: transaction is NULL");
  detach_all(t);
  if (t->poisoned) {
    eng_txn_abort(t);
    return nx_err(NX_MISUSE,
                  "nx_txn_commit: the transaction was aborted because a write in it failed; "
                  "nothing was committed");
  }
  /* a write txn that wrote nothing skips the commit record and its fsync */
  return txn_end(t, !(t->write && t->writes == 0));
}

void eng_txn_abort(nx_txn *t) {
  if (!t) return;
  detach_all(t);
  (void)txn_end(t, false);
}

static void txn_free(nx_txn *t) {
  colls_free(t->colls);
  nx_buf_free(&t->enc);
  nx_buf_free(&t->key);
  nx_buf_free(&t->old);
  nx_free(t);
}

int eng_txn_use(nx_db *db, nx_txn *txn, bool write, const char *what, nx_txn **t, bool *own) {
  *t = NULL;
  *own = false;
  if (!db) return nx_err(NX_MISUSE, "%s: database handle is NULL", what);
  if (!txn) {
    int rc = eng_txn_begin(db, write, false, t);
    if (rc != NX_OK) return nx_err_prefix(rc, "%s: ", what);
    *own = true;
    return NX_OK;
  }
  if (txn->db != db) return nx_err(NX_MISUSE, "%s: the transaction belongs to another database", what);
  if (txn->poisoned)
    return nx_err(NX_MISUSE, "%s: the transaction was aborted by an earlier failed write; call nx_txn_abort", what);
  if (write && !txn->write)
    return nx_err(NX_READONLY, "%s: write inside a read transaction (begin it with NX_TXN_WRITE)", what);
  *t = txn;
  return NX_OK;
}

int eng_txn_done(nx_txn *t, bool own, int rc, bool wrote) {
  if (!t) return rc;
  if (own) {
    if (rc == NX_OK && t->write) return eng_txn_commit(t);
    eng_txn_abort(t);
    return rc;
  }
  if (rc != NX_OK && wrote && t->write) t->poisoned = true;
  return rc;
}
