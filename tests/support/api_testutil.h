/*
 * api_testutil.h: helpers shared by the tests of the public API (documents, queries, indexes,
 * the planner): an in-memory database, index creation, and finds and explains rendered as text.
 * Every helper fails the running Criterion test on an unexpected status.
 */
#ifndef NX_API_TESTUTIL_H
#define NX_API_TESTUTIL_H

#include <stdint.h>

#include "nexuslite.h"

/* An in-memory database with durability OFF. */
nx_db *at_open_mem(void);
/* Creates the index `keys` (JSON) on coll with options o (NULL: defaults). */
void at_mkindex(nx_db *db, const char *coll, const char *keys, const nx_index_opts *o);
/* The documents a find returns, as "json;json;" (owned: nx_free). sort may be NULL; skip and
 * limit 0 mean none. */
char *at_find_str(nx_db *db, nx_txn *t, const char *coll, const char *filter, const char *sort, uint64_t skip,
                  uint64_t limit);
/* The explain document of a find, as JSON (owned: nx_free). */
char *at_explain_str(nx_db *db, const char *coll, const char *filter, const char *sort);

/* Removes path, a file or a whole directory tree (best effort). */
void at_rm_rf(const char *path);

#endif
