/*
 * aggregate.c: count and distinct over a find cursor.
 *
 * count with an empty filter reads the entry count kept in the tree's root (O(1)) unless the
 * collection holds documents with an expiry (expired ones must not be counted, so it scans).
 * distinct collects the values a dotted path reaches (array elements one by one, as MongoDB),
 * sorts them in MongoDB order and drops duplicates; its result is one document, so it is bounded
 * by DOC_MAX_BYTES (NX_LIMIT beyond, as MongoDB's 16 MiB distinct limit).
 */
#include <stdlib.h>
#include <string.h>

#include "query_int.h"

int q_count(nx_txn *t, const char *coll, const bson_t *filter, uint64_t *out) {
  *out = 0;
  nx_cursor *c;
  int rc = q_find(t, false, coll, filter, NULL, &c);
  if (rc != NX_OK) return rc;
  if (!c->coll) {
    q_close(c);
    return NX_OK;
  }
  if (filter_is_empty(c->filter)) {
    rc = eng_coll_load_opts(t, c->coll);
    if (rc == NX_OK && !c->coll->has_expiry) {
      rc = st_tree_count(t->st, c->coll->tree, out);
      q_close(c);
      return rc;
    }
  }
  const bson_t *d;
  uint64_t n = 0;
  while ((rc = q_next_raw(c, &d, NULL)) == NX_ROW) n++;
  q_close(c);
  if (rc != NX_DONE) return rc;
  *out = n;
  return NX_OK;
}

typedef struct dvals {
  bson_value_t *v;  /* copies, owned */
  size_t n, alloc;
  size_t bytes;     /* approximate size of the result */
  int rc;
} dvals;

static int collect(const bson_value_t *v, void *ctx) {
  dvals *d = ctx;
  if (v->value_type == BSON_TYPE_UNDEFINED) return 0; /* an empty array contributes nothing */
  if (d->n == d->alloc) {
    size_t na = d->alloc ? d->alloc * 2 : 64;
    bson_value_t *p = nx_realloc(d->v, na * sizeof *p);
    if (!p) return nx_err(NX_NOMEM, "distinct: out of memory");
    d->v = p;
    d->alloc = na;
  }
  bson_value_copy(v, &d->v[d->n++]);
  return 0;
}

static int vcmp(const void *a, const void *b) { return doc_cmp_values(a, b); }

/* Sorts and de-duplicates d->v in place. */
static void dedup(dvals *d) {
  if (d->n < 2) return;
  qsort(d->v, d->n, sizeof *d->v, vcmp);
  size_t w = 1;
  for (size_t i = 1; i < d->n; i++) {
    if (doc_cmp_values(&d->v[w - 1], &d->v[i]) == 0) { /* 1 and 1.0 are one value, as in MongoDB */
      bson_value_destroy(&d->v[i]);
    } else {
      d->v[w++] = d->v[i];
    }
  }
  d->n = w;
}

int q_distinct(nx_txn *t, const char *coll, const char *field, const bson_t *filter, bson_t *out) {
  doc_path path;
  int rc = doc_path_parse(field, -1, &path);
  if (rc != NX_OK) return nx_err_prefix(rc, "distinct in '%s': ", coll);
  nx_cursor *c;
  rc = q_find(t, false, coll, filter, NULL, &c);
  if (rc != NX_OK) {
    doc_path_free(&path);
    return rc;
  }
  dvals d = {0};
  const bson_t *doc;
  while ((rc = q_next_raw(c, &doc, NULL)) == NX_ROW) {
    bool found;
    rc = doc_path_visit(doc, &path, true, collect, &d, &found);
    if (rc != NX_OK) break;
    if (d.n > 4096 && d.n == d.alloc) dedup(&d); /* keep memory near the distinct count */
  }
  q_close(c);
  doc_path_free(&path);
  if (rc == NX_DONE) {
    dedup(&d);
    bson_init(out);
    bson_t arr;
    bson_append_array_begin(out, "values", 6, &arr);
    char idx[16];
    for (size_t i = 0; i < d.n && rc == NX_DONE; i++) {
      const char *key;
      bson_uint32_to_string((uint32_t)i, &key, idx, sizeof idx);
      if (!bson_append_value(&arr, key, -1, &d.v[i]) || out->len + arr.len > DOC_MAX_BYTES) {
        rc = nx_err(NX_LIMIT, "distinct in '%s': the values of '%s' exceed %d bytes", coll, field, DOC_MAX_BYTES);
      }
    }
    bson_append_array_end(out, &arr);
    if (rc != NX_DONE) bson_destroy(out);
  }
  for (size_t i = 0; i < d.n; i++) bson_value_destroy(&d.v[i]);
  nx_free(d.v);
  return rc == NX_DONE ? NX_OK : rc;
}
