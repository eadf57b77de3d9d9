/*
 * planner.h: the query planner (plan.c), the index scan it runs (plan_exec.c) and explain
 * (explain.c). Private to src/query/ and src/api/.
 *
 * The find executor (cursor.c) asks plan_make for a plan once per cursor. A plan is either a
 * collection scan (the executor's own walk of the collection tree) or an index scan: a list of
 * byte intervals [lo, hi) of one index's entry tree, walked in order, yielding the collection
 * keys (_id suffixes) of candidate documents, de-duplicated by _id when the index is multikey
 * or the transaction writes. The executor fetches each candidate and applies the whole filter
 * (the residual), so results equal those of a full scan whatever the bounds.
 *
 * Cost (documented in docs/indexes.md): each usable index's bounds are walked counting keys up
 * to PLAN_COST_CAP; the fewest keys wins; ties go to the plan that provides the requested sort,
 * then to more bounded fields, then to the name. An index whose first field is not bounded is a
 * candidate only when it provides the sort. A single candidate is taken without counting, and so
 * is a unique index whose every field is bound to one point (a point lookup). A collection scan
 * is chosen only when no index is usable.
 */
#ifndef NX_PLANNER_H
#define NX_PLANNER_H

#include <stdbool.h>
#include <stdint.h>

#include "query.h"

#define PLAN_COST_CAP 1000u   /* keys counted per candidate index at most */
#define PLAN_MAX_INTERVALS 4096u /* byte intervals of one index scan at most */

typedef struct q_plan q_plan;

/**
 * Plans a find on collection c (which exists) in transaction t for the parsed filter f and sort
 * s (NULL: natural order). Never fails for lack of an index: *out is then a collection-scan
 * plan. NX_NOMEM, storage errors.
 */
int plan_make(nx_txn *t, eng_coll *c, const filter_t *f, const sort_t *s, q_plan **out);
/** A plan for an _id point lookup chosen by the executor itself (explain shows IDHACK). */
int plan_make_idhack(q_plan **out);
bool plan_is_ixscan(const q_plan *p);
/** True when the index scan returns documents in the order of the requested sort (no
 *  in-memory sort is needed; ties in _id order). */
bool plan_provides_sort(const q_plan *p);
/** False when every document the index scan yields matches the filter (exact bounds on fields
 *  that never held an array, read transaction): the executor may skip filter_match. */
bool plan_needs_filter(const q_plan *p);
/** Next candidate: *id_key (borrowed until the next call) is the collection tree key of a
 *  document. NX_OK, NX_NOTFOUND at the end, or an error. */
int plan_next(q_plan *p, st_val *id_key);
/* The id key plan_next returns `ahead` (1 .. PLAN_RA - 1) calls after its last one, when there
 * is one (else NX_NOTFOUND): for read-ahead. A walk that does not gather reads ahead of
 * plan_next to answer (keys examined counts those entries then). */
int plan_peek(q_plan *p, size_t ahead, st_val *id_key);
/** Counts a document fetched and examined by the executor. */
void plan_note_doc(q_plan *p);
void plan_free(q_plan *p); /* accepts NULL */

/** Appends the planner's view to `qp` (an open document): winningPlan and rejectedPlans. */
int plan_explain_planner(const q_plan *p, const bson_t *filter_spec, bool in_memory_sort, bson_t *qp);
uint64_t plan_keys_examined(const q_plan *p);
uint64_t plan_docs_examined(const q_plan *p);

/**
 * Runs the find and describes it (nx_explain's body): {queryPlanner: {namespace, winningPlan,
 * rejectedPlans}, executionStats: {nReturned, totalKeysExamined, totalDocsExamined,
 * executionTimeMillis}}. `out` uninitialised on entry.
 */
int q_explain(nx_txn *t, const char *coll, const bson_t *filter, const q_opts *o, bson_t *out);

/**
 * Verifies every index of `coll` against its stored documents (expired ones included), entry for
 * entry (idx_verify). NX_OK, NX_NOTFOUND (no such collection), or NX_CORRUPT with the first
 * disagreement. For the integrity-check command.
 */
int q_index_verify(nx_txn *t, const char *coll);

#endif
