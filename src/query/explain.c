/*
 * explain.c: nx_explain's body. It plans and runs the find as nx_find would, draining the
 * cursor, and describes it in the spirit of MongoDB's explain("executionStats"):
 *
 *   {queryPlanner: {namespace, winningPlan: {stage: "FETCH", filter?, inputStage: {stage:
 *      "IXSCAN", indexName, keyPattern, isMultiKey, isUnique, isSparse, isPartial, direction
 *      ("forward", or "backward" when the sort is the reverse of the index),
 *      indexBounds: {field: ["[lo, hi]", ...]}, keysEstimate?}}, rejectedPlans: [...]},
 *    executionStats: {nReturned, totalKeysExamined, totalDocsExamined, executionTimeMillis}}
 *
 * A collection scan is {stage: "COLLSCAN", filter?, direction: "forward"}, an _id lookup
 * {stage: "IDHACK"}, a missing collection {stage: "EOF"}; an in-memory sort wraps the plan in
 * {stage: "SORT", sortPattern, inputStage}. keysEstimate is the planner's bounded count of keys
 * in the bounds (present when several candidates were compared).
 */
#include <string.h>

#include "plan_int.h"
#include "query_int.h"

/* The FETCH stage shows the filter only when it is re-checked (residual): exact bounds need none. */
static void cand_doc(const plan_cand *c, const bson_t *filter_spec, bool residual, bson_t *out) {
  bson_init(out);
  BSON_APPEND_UTF8(out, "stage", "FETCH");
  if (residual && filter_spec && !bson_empty(filter_spec)) BSON_APPEND_DOCUMENT(out, "filter", filter_spec);
  bson_t in;
  BSON_APPEND_DOCUMENT_BEGIN(out, "inputStage", &in);
  BSON_APPEND_UTF8(&in, "stage", "IXSCAN");
  BSON_APPEND_UTF8(&in, "indexName", c->d->name);
  bson_t v;
  if (idx_bson(&c->d->key, &v)) BSON_APPEND_DOCUMENT(&in, "keyPattern", &v);
  BSON_APPEND_BOOL(&in, "isMultiKey", c->d->multikey != 0);
  BSON_APPEND_BOOL(&in, "isUnique", c->d->unique);
  BSON_APPEND_BOOL(&in, "isSparse", c->d->sparse);
  BSON_APPEND_BOOL(&in, "isPartial", c->d->partial != NULL);
  BSON_APPEND_UTF8(&in, "direction", c->sorts && c->backward ? "backward" : "forward");
  if (idx_bson(&c->bounds, &v)) BSON_APPEND_DOCUMENT(&in, "indexBounds", &v);
  if (c->counted) BSON_APPEND_INT64(&in, "keysEstimate", (int64_t)c->keys_est);
  bson_append_document_end(out, &in);
}

static void wrap_sort(bson_t *plan_doc, const bson_t *sort_spec, bool need) {
  if (!need || !sort_spec) return;
  bson_t w = BSON_INITIALIZER;
  BSON_APPEND_UTF8(&w, "stage", "SORT");
  BSON_APPEND_DOCUMENT(&w, "sortPattern", sort_spec);
  BSON_APPEND_DOCUMENT(&w, "inputStage", plan_doc);
  bson_destroy(plan_doc);
  bson_steal(plan_doc, &w);
}

static int planner_doc(const q_plan *p, const bson_t *filter_spec, const bson_t *sort_spec, bson_t *qp) {
  bson_t win;
  if (!p) {
    bson_init(&win);
    BSON_APPEND_UTF8(&win, "stage", "EOF");
  } else if (p->idhack) {
    bson_init(&win);
    BSON_APPEND_UTF8(&win, "stage", "IDHACK");
  } else if (p->ixscan) {
    cand_doc(&p->cands[p->win], filter_spec, p->residual, &win);
    wrap_sort(&win, sort_spec, !p->cands[p->win].sorts);
  } else {
    bson_init(&win);
    BSON_APPEND_UTF8(&win, "stage", "COLLSCAN");
    if (filter_spec && !bson_empty(filter_spec)) BSON_APPEND_DOCUMENT(&win, "filter", filter_spec);
    BSON_APPEND_UTF8(&win, "direction", "forward");
    wrap_sort(&win, sort_spec, true);
  }
  BSON_APPEND_DOCUMENT(qp, "winningPlan", &win);
  bson_destroy(&win);
  bson_t rej;
  BSON_APPEND_ARRAY_BEGIN(qp, "rejectedPlans", &rej);
  size_t k = 0;
  for (size_t i = 0; p && p->ixscan && i < p->ncands; i++) {
    if (i == p->win) continue;
    bson_t d;
    cand_doc(&p->cands[i], filter_spec, !p->cands[i].exact || p->t->write, &d);
    wrap_sort(&d, sort_spec, !p->cands[i].sorts);
    char key[16];
    const char *kp;
    bson_uint32_to_string((uint32_t)k++, &kp, key, sizeof key);
    BSON_APPEND_DOCUMENT(&rej, kp, &d);
    bson_destroy(&d);
  }
  bson_append_array_end(qp, &rej);
  return NX_OK;
}

int plan_explain_planner(const q_plan *p, const bson_t *filter_spec, bool in_memory_sort, bson_t *qp) {
  (void)in_memory_sort;
  return planner_doc(p, filter_spec, NULL, qp);
}

int q_explain(nx_txn *t, const char *coll, const bson_t *filter, const q_opts *o, bson_t *out) {
  uint64_t t0 = nx_mono_ns();
  nx_cursor *c;
  int rc = q_find(t, false, coll, filter, o, &c);
  if (rc != NX_OK) return rc;
  uint64_t n = 0;
  const bson_t *d;
  while ((rc = q_next(c, &d)) == NX_ROW) n++;
  if (rc != NX_DONE) {
    q_close(c);
    return rc;
  }
  uint64_t ms = (nx_mono_ns() - t0) / 1000000u;
  bson_init(out);
  bson_t qp, es;
  BSON_APPEND_DOCUMENT_BEGIN(out, "queryPlanner", &qp);
  BSON_APPEND_UTF8(&qp, "namespace", coll);
  planner_doc(c->plan, filter, o ? o->sort : NULL, &qp);
  bson_append_document_end(out, &qp);
  BSON_APPEND_DOCUMENT_BEGIN(out, "executionStats", &es);
  BSON_APPEND_INT64(&es, "nReturned", (int64_t)n);
  BSON_APPEND_INT64(&es, "totalKeysExamined", (int64_t)plan_keys_examined(c->plan));
  BSON_APPEND_INT64(&es, "totalDocsExamined", (int64_t)plan_docs_examined(c->plan));
  BSON_APPEND_INT64(&es, "executionTimeMillis", (int64_t)ms);
  bson_append_document_end(out, &es);
  q_close(c);
  return NX_OK;
}
