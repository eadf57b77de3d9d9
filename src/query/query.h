/*
 * query.h: the query layer's internal API: the find executor and its streaming cursor, sort
 * (bounded heap with a limit, memory-limited otherwise), count, distinct, and the modifying
 * operations built on the cursor (update, replace, delete, find-and-modify).
 *
 * Plans: a point lookup when the filter has an equality on _id; else the planner (planner.h,
 * plan.c) picks an index scan or a scan of the collection tree in _id order; filter_match runs on
 * every candidate document either way. find_one and update_one with a filter that is exactly
 * {_id: scalar} skip the cursor (point.c).
 *
 * Ownership: specs (filter, projection, sort, update) are parsed by the calls and may be freed
 * after them. Documents returned by a cursor are borrowed until the next call on the cursor.
 */
#ifndef NX_QUERY_H
#define NX_QUERY_H

#include <stdbool.h>
#include <stdint.h>

#include <bson/bson.h>

#include "engine.h"

#define Q_DEFAULT_SORT_BYTES (100u << 20) /* in-memory sort limit when none is given */

/** Options of a find (NULL pointers mean "absent"). */
typedef struct q_opts {
  const bson_t *projection; /* NULL: whole documents */
  const bson_t *sort;       /* NULL: natural (_id) order */
  uint64_t skip;            /* documents to skip */
  uint64_t limit;           /* 0: no limit */
  uint64_t max_sort_bytes;  /* 0: Q_DEFAULT_SORT_BYTES */
} q_opts;

/**
 * Opens a cursor over `coll` in transaction t. With own_txn the cursor takes t and ends it at
 * close (nx_find with txn == NULL). A missing collection gives an empty cursor. Errors: the
 * parse errors of the filter, projection and sort (NX_INVALID / NX_LIMIT).
 */
int q_find(nx_txn *t, bool own_txn, const char *coll, const bson_t *filter, const q_opts *o,
           nx_cursor **out);
/** Next document after projection: NX_ROW (*doc borrowed until the next call), NX_DONE, or an
 *  error (the cursor is then finished and returns it again). */
int q_next(nx_cursor *c, const bson_t **doc);
/** Next matching stored document before projection, with its metadata (borrowed likewise). */
int q_next_raw(nx_cursor *c, const bson_t **doc, nx_doc_meta *meta);
void q_close(nx_cursor *c);

/** find_one's fast path: when filter is exactly {_id: scalar}, sets *handled and looks the
 *  document up directly (NX_OK with *out initialised, or NX_NOTFOUND); else *handled = false. */
int q_find_one_by_id(nx_txn *t, const char *coll, const bson_t *filter, bson_t *out, bool *handled);

/** Counts matching documents (O(1) for an empty filter on a collection without expiring
 *  documents). A missing collection counts 0. */
int q_count(nx_txn *t, const char *coll, const bson_t *filter, uint64_t *out);
/** Distinct values of `field` (array elements one by one) in MongoDB order as {"values": [...]}. */
int q_distinct(nx_txn *t, const char *coll, const char *field, const bson_t *filter, bson_t *out);

/** Result of q_update (nx_update_result without the ABI field). */
typedef struct q_update_res {
  uint64_t matched;
  uint64_t modified;
  bool upserted;
  bson_value_t upserted_id; /* owned when upserted */
} q_update_res;

typedef enum q_update_kind {
  Q_UPDATE_ANY,          /* operators or a replacement (update_one) */
  Q_UPDATE_OPERATORS,    /* operators only (update_many) */
  Q_UPDATE_REPLACEMENT   /* a replacement only (replace_one) */
} q_update_kind;

/**
 * Updates the first (multi: every) matching document with `update` in write txn t; upsert inserts
 * the seed of the filter (with the update applied) when nothing matched, creating the collection
 * if needed. `what` names the public call for messages.
 */
int q_update(nx_txn *t, const char *coll, const bson_t *filter, const bson_t *update, q_update_kind kind,
             bool multi, bool upsert, const char *what, q_update_res *res);
/** Deletes the first (multi: every) matching document; *deleted gets the count. */
int q_delete(nx_txn *t, const char *coll, const bson_t *filter, bool multi, uint64_t *deleted);

typedef enum q_fam_kind { Q_FAM_UPDATE, Q_FAM_REPLACE, Q_FAM_DELETE } q_fam_kind;
/**
 * Find-and-modify: the first match under `sort` (NULL: natural order) is updated, replaced or
 * deleted; *out receives it before or after the change, projected, and *returned is set. On
 * NX_OK with *returned false there is nothing to return (no match and no upsert, or an upsert
 * with the before version asked for, which MongoDB returns as null); out is then uninitialised
 * and the message says so, for the API's NX_NOTFOUND (returned after the commit of an upsert).
 */
int q_find_and_modify(nx_txn *t, const char *coll, q_fam_kind kind, const bson_t *filter,
                      const bson_t *spec, const bson_t *sort, const bson_t *projection, bool upsert,
                      bool return_after, bson_t *out, bool *returned);

#endif
