/*
 * api_int.h: helpers shared by the public entry points (the files of src/api). Private to src/api/.
 */
#ifndef NX_API_INT_H
#define NX_API_INT_H

#include "query.h"

/* An nx_in turned into BSON: either the caller's bson_t (borrowed) or parsed JSON (owned). */
typedef struct api_doc {
  bson_t tmp;        /* parsed JSON when owned */
  bool owned;        /* tmp must be destroyed */
  const bson_t *p;   /* the document, or NULL when the input was nx_none() */
} api_doc;

/**
 * Converts `in` for the call `what` ("nx_find filter"): NX_PARSE with libbson's position of the
 * error for bad JSON, NX_INVALID when `required` and the input is absent. Release with api_in_free
 * (also after a failure).
 */
int api_in(nx_in in, const char *what, bool required, api_doc *d);
void api_in_free(api_doc *d);

/** Checks db and a user collection name for the call `what`. */
int api_check(const nx_db *db, const char *coll, const char *what);

/** Rebuilds the indexes whose definition is stale (api_index.c); run by nx_open. */
int api_index_open_check(nx_db *db, size_t *rebuilt);

#endif
