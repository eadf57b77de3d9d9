/*
 * api_index_stub.c: placeholders for the public index entry points (nx_index_create,
 * nx_index_drop, nx_index_list, nx_explain) until the index engineer replaces this file with
 * the real ones. Every call returns NX_MISUSE "not yet implemented"; nothing is faked.
 */
#include "api_int.h"

int nx_index_create(nx_db *db, const char *coll, nx_in keys, const nx_index_opts *opts) {
  (void)db;
  (void)keys;
  (void)opts;
  return nx_err(NX_MISUSE, "nx_index_create on '%s': not yet implemented", coll ? coll : "(null)");
}

int nx_index_drop(nx_db *db, const char *coll, const char *name) {
  (void)db;
  return nx_err(NX_MISUSE, "nx_index_drop '%s' on '%s': not yet implemented", name ? name : "(null)",
                coll ? coll : "(null)");
}

int nx_index_list(nx_db *db, const char *coll, bson_t *out) {
  (void)db;
  (void)out;
  return nx_err(NX_MISUSE, "nx_index_list on '%s': not yet implemented", coll ? coll : "(null)");
}

int nx_explain(nx_db *db, nx_txn *txn, const char *coll, nx_in filter, const nx_find_opts *opts, bson_t *out) {
  (void)db;
  (void)txn;
  (void)filter;
  (void)opts;
  (void)out;
  return nx_err(NX_MISUSE, "nx_explain on '%s': not yet implemented", coll ? coll : "(null)");
}
