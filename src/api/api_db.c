/*
 * api_db.c: public entry points for databases, transactions, maintenance, JSON helpers and the
 * shared argument helpers of the API layer.
 *
 * The API layer checks arguments, converts nx_in inputs (BSON or JSON) to BSON, runs each call
 * in the caller's transaction or its own (eng_txn_use / eng_txn_done), and leaves the per-thread
 * message that nx_errmsg returns.
 */
#include <string.h>
#include <sys/types.h>

#include "api_int.h"

int api_in(nx_in in, const char *what, bool required, api_doc *d) {
  d->owned = false;
  d->p = NULL;
  if (in.bson) {
    d->p = in.bson;
    return NX_OK;
  }
  if (!in.json) {
    if (required) return nx_err(NX_INVALID, "%s: missing (nx_none() given)", what);
    return NX_OK;
  }
  ssize_t len = in.json_len == (size_t)-1 ? -1 : (ssize_t)in.json_len;
  int rc = doc_from_json(in.json, len, &d->tmp);
  if (rc != NX_OK) return nx_err_prefix(rc, "%s: ", what);
  d->owned = true;
  d->p = &d->tmp;
  return NX_OK;
}

void api_in_free(api_doc *d) {
  if (d->owned) bson_destroy(&d->tmp);
  d->owned = false;
  d->p = NULL;
}

int api_check(const nx_db *db, const char *coll, const char *what) {
  if (!db) return nx_err(NX_MISUSE, "%s: database handle is NULL", what);
  int rc = eng_coll_name_check(coll);
  if (rc != NX_OK) return nx_err_prefix(rc, "%s: ", what);
  return NX_OK;
}

int nx_open(const char *path, const nx_open_opts *opts, nx_db **out) {
  nx_err_clear();
  if (!out) return nx_err(NX_MISUSE, "nx_open: out is NULL");
  *out = NULL;
  if (!path || !*path) return nx_err(NX_MISUSE, "nx_open: path is empty");
  nx_alloc_init();
  nx_open_opts o = NX_OPEN_OPTS_INIT;
  if (opts) {
    if (opts->size < sizeof(size_t) || opts->size > sizeof o)
      return nx_err(NX_MISUSE, "nx_open: opts->size is %zu; initialise options with NX_OPEN_OPTS_INIT", opts->size);
    memcpy(&o, opts, opts->size); /* an older, smaller struct keeps the defaults of new fields */
    o.size = sizeof o;
  }
  nx_db *db = nx_calloc(1, sizeof *db);
  if (!db) return nx_err(NX_NOMEM, "nx_open: out of memory");
  db->path = nx_strdup(path);
  if (!db->path) {
    nx_free(db);
    return nx_err(NX_NOMEM, "nx_open: out of memory");
  }
  db->read_only = o.read_only;
  int rc = st_open(path, &o, &db->env);
  if (rc != NX_OK) {
    nx_free(db->path);
    nx_free(db);
    return rc;
  }
  rc = api_index_open_check(db, NULL); /* stale indexes are rebuilt at open (api_index.c) */
  if (rc != NX_OK) {
    st_close(db->env);
    nx_free(db->path);
    nx_free(db);
    return rc;
  }
  *out = db;
  return NX_OK;
}

int nx_close(nx_db *db) {
  if (!db) return NX_OK;
  eng_txn_spares_free(db);
  int rc = st_close(db->env);
  nx_free(db->path);
  nx_free(db);
  return rc;
}

const char *nx_errmsg(const nx_db *db) {
  (void)db; /* the message is per thread, whatever the handle */
  return nx_err_msg();
}

int nx_txn_begin(nx_db *db, unsigned flags, nx_txn **out) {
  if (!out) return nx_err(NX_MISUSE, "nx_txn_begin: out is NULL");
  *out = NULL;
  if (!db) return nx_err(NX_MISUSE, "nx_txn_begin: database handle is NULL");
  if (flags & ~(unsigned)NX_TXN_WRITE) return nx_err(NX_MISUSE, "nx_txn_begin: unknown flags 0x%x", flags);
  return eng_txn_begin(db, (flags & NX_TXN_WRITE) != 0, true, out);
}

int nx_txn_commit(nx_txn *txn) { return eng_txn_commit(txn); }

void nx_txn_abort(nx_txn *txn) { eng_txn_abort(txn); }

int nx_checkpoint(nx_db *db, nx_checkpoint_mode mode) {
  if (!db) return nx_err(NX_MISUSE, "nx_checkpoint: database handle is NULL");
  if (mode != NX_CHECKPOINT_PASSIVE && mode != NX_CHECKPOINT_FULL && mode != NX_CHECKPOINT_TRUNCATE)
    return nx_err(NX_MISUSE, "nx_checkpoint: unknown mode %d", (int)mode);
  return st_checkpoint(db->env, mode);
}

int nx_compact(nx_db *db, nx_progress_fn progress, void *ctx) {
  if (!db) return nx_err(NX_MISUSE, "nx_compact: database handle is NULL");
  if (db->read_only) return nx_err(NX_READONLY, "nx_compact: database '%s' was opened read-only", db->path);
  return st_compact(db->env, progress, ctx);
}

int nx_stats_get(nx_db *db, nx_stats *out) {
  if (!db || !out) return nx_err(NX_MISUSE, "nx_stats_get: NULL argument");
  memset(out, 0, sizeof *out);
  return st_stats(db->env, out);
}

char *nx_to_json(const bson_t *doc, bool canonical) {
  if (!doc) return NULL;
  size_t n = 0;
  char *s = canonical ? doc_to_json_canonical(doc, &n) : doc_to_json(doc, &n);
  if (!s) return NULL;
  char *r = nx_strndup(s, n); /* owned by our allocator: the caller nx_free()s it */
  bson_free(s);
  return r;
}

int nx_from_json(const char *json, bson_t *out) {
  if (!json || !out) return nx_err(NX_MISUSE, "nx_from_json: NULL argument");
  return doc_from_json(json, -1, out);
}

void nx_free_strv(char **v, size_t count) {
  if (!v) return;
  for (size_t i = 0; i < count; i++) nx_free(v[i]);
  nx_free(v);
}
