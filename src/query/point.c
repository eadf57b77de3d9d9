/*
 * point.c: the fast path of find_one for a filter that is exactly {_id: <scalar>}: one tree
 * lookup, no filter parse, no cursor, no plan. The result equals that of the general path: the
 * filter matches exactly the document whose _id equals the value (numbers by value, as the key
 * encoding and MongoDB's equality agree), and an expired document is not found.
 */
#include <string.h>

#include "query_int.h"

/* True when filter is {_id: v} with v usable as a key as is (not a document, which may hold
 * operators, nor an array, regex or null, which match by other rules). */
bool q_id_only(const bson_t *filter, bson_iter_t *it) {
  if (!filter || !bson_iter_init(it, filter) || !bson_iter_next(it)) return false;
  if (strcmp(bson_iter_key(it), "_id") != 0) return false;
  bson_type_t ty = bson_iter_type(it);
  if (ty == BSON_TYPE_DOCUMENT || ty == BSON_TYPE_ARRAY || ty == BSON_TYPE_REGEX || ty == BSON_TYPE_NULL ||
      ty == BSON_TYPE_UNDEFINED)
    return false;
  bson_iter_t more = *it;
  return !bson_iter_next(&more);
}

int q_find_one_by_id(nx_txn *t, const char *coll, const bson_t *filter, bson_t *out, bool *handled) {
  bson_iter_t it;
  *handled = q_id_only(filter, &it);
  if (!*handled) return NX_OK;
  eng_coll *c;
  int rc = eng_coll_get(t, coll, false, &c);
  if (rc != NX_OK) return rc;
  rc = eng_id_key(&t->key, bson_iter_value(&it));
  if (rc == NX_LIMIT) return nx_err(NX_NOTFOUND, "no document in '%s' has this _id", coll);
  if (rc != NX_OK) return rc;
  nx_buf scratch;
  nx_buf_init(&scratch, ST_MAX_VALUE);
  eng_doc d;
  st_val k = {t->key.data, t->key.len};
  rc = eng_doc_get(t, c, k, &scratch, &d);
  if (rc == NX_OK) bson_copy_to(&d.doc, out);
  nx_buf_free(&scratch);
  return rc;
}
