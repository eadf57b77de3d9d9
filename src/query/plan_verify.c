/*
 * plan_verify.c: q_index_verify, the integrity check of a collection's indexes for callers above
 * the index layer (the integrity-check command): idx_verify over every *stored* document of the
 * collection, expired ones included. Expired documents keep their index entries until the
 * sweeper deletes them through the write path, so a check that skipped them would report their
 * entries as extra (the engine's eng_scan_docs / eng_get_by_key skip them on purpose, for reads).
 */
#include <string.h>

#include "index.h"
#include "planner.h"

typedef struct vctx {
  nx_txn *t;
  eng_coll *c;
} vctx;

static int scan_all(void *ctx, idx_each_doc_fn each, void *each_ctx) {
  vctx *v = ctx;
  st_cursor *cur;
  int rc = st_cursor_open(v->t->st, v->c->tree, &cur);
  if (rc != NX_OK) return rc;
  nx_buf scratch;
  nx_buf_init(&scratch, ST_MAX_VALUE);
  rc = st_cursor_first(cur);
  while (rc == NX_OK) {
    st_val k, val;
    eng_doc d;
    rc = st_cursor_get(cur, &k, &val);
    if (rc == NX_OK) rc = eng_doc_decode(v->c->name, val, &scratch, &d);
    if (rc == NX_OK) rc = each(each_ctx, &d.doc); /* verification only reads */
    if (rc == NX_OK) rc = st_cursor_next(cur);
  }
  nx_buf_free(&scratch);
  st_cursor_close(cur);
  return rc == NX_NOTFOUND ? NX_OK : rc;
}

static int get_any(void *ctx, st_val id_key, bson_t *doc) {
  vctx *v = ctx;
  st_val val;
  int rc = st_get(v->t->st, v->c->tree, id_key, &val);
  if (rc != NX_OK) return rc;
  nx_buf scratch;
  nx_buf_init(&scratch, ST_MAX_VALUE);
  eng_doc d;
  rc = eng_doc_decode(v->c->name, val, &scratch, &d);
  if (rc == NX_OK) bson_copy_to(&d.doc, doc);
  nx_buf_free(&scratch);
  return rc;
}

int q_index_verify(nx_txn *t, const char *coll) {
  eng_coll *c;
  int rc = eng_coll_get(t, coll, false, &c);
  if (rc != NX_OK) return rc;
  vctx v = {t, c};
  return idx_verify(t->st, coll, scan_all, &v, get_any, &v);
}
