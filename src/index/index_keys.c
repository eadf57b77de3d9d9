/*
 * index_keys.c: the entries an index holds for one document.
 *
 * For each key field, the values the path reaches under MongoDB's array rules (doc_path_visit,
 * leaf arrays expanded; an empty array gives `undefined`; nothing reached gives null) are
 * encoded with keyenc (inverted for a descending field). A document whose fields are all
 * missing is skipped by a sparse index; one that fails the partial filter by a partial index.
 * The keys are the cartesian product of the per-field lists, each followed by keyenc_key(_id),
 * sorted and de-duplicated.
 *
 * Invariants:
 *   1. At most one field of a compound index holds an array in a document (MongoDB's "parallel
 *      arrays" rule), so the product has at most max(list sizes) keys.
 *   2. A field "holds an array" when some prefix of its path reaches an array by exact lookup;
 *      this also counts a one-element array, so multikey is known even for [x].
 */
#include <stdlib.h>
#include <string.h>

#include "index_int.h"

typedef struct comp_list {
  nx_buf b;        /* encoded components, back to back */
  size_t n, cap;   /* components */
  size_t *off;     /* offset of component i in b */
  size_t *len;     /* its length */
  bool desc;       /* descending field */
} comp_list;

static int comp_add(const bson_value_t *v, void *ctx) {
  comp_list *cl = ctx;
  if (cl->n == cl->cap) {
    size_t nc = cl->cap ? cl->cap * 2 : 8;
    size_t *no = nx_realloc(cl->off, nc * sizeof *no);
    if (!no) return NX_NOMEM;
    cl->off = no;
    size_t *nl = nx_realloc(cl->len, nc * sizeof *nl);
    if (!nl) return NX_NOMEM;
    cl->len = nl;
    cl->cap = nc;
  }
  size_t at = cl->b.len;
  int rc = keyenc_append(&cl->b, v, cl->desc);
  if (rc != NX_OK) return rc;
  cl->off[cl->n] = at;
  cl->len[cl->n] = cl->b.len - at;
  cl->n++;
  return NX_OK;
}

static void comp_free(comp_list *cl) {
  nx_buf_free(&cl->b);
  nx_free(cl->off);
  nx_free(cl->len);
}

/* True when some prefix of the path reaches an array by exact lookup. */
static bool holds_array(const bson_t *doc, const doc_path *dp) {
  for (size_t k = 1; k <= dp->n; k++) {
    doc_path pre = *dp;
    pre.n = k;
    bson_iter_t it;
    if (!doc_path_get(doc, &pre, &it)) return false;
    if (bson_iter_type(&it) == BSON_TYPE_ARRAY) return true;
    if (bson_iter_type(&it) != BSON_TYPE_DOCUMENT) return false;
  }
  return false;
}

int idx_doc_id_key(const bson_t *doc, nx_buf *buf) {
  bson_iter_t it;
  if (!bson_iter_init_find(&it, doc, "_id")) return nx_err(NX_INVALID, "index: document has no _id");
  nx_buf tmp;
  nx_buf_init(&tmp, 0);
  int rc = keyenc_key(&tmp, bson_iter_value(&it));
  if (rc == NX_OK) rc = nx_buf_append(buf, tmp.data, tmp.len);
  nx_buf_free(&tmp);
  return rc;
}

static void id_str(const bson_t *doc, char *buf, size_t cap) {
  bson_iter_t it;
  nx_buf b;
  nx_buf_init(&b, 0);
  if (bson_iter_init_find(&it, doc, "_id")) doc_value_to_json(bson_iter_value(&it), &b);
  size_t n = b.len < cap - 1 ? b.len : cap - 1;
  if (n) memcpy(buf, b.data, n);
  buf[n] = 0;
  nx_buf_free(&b);
}

typedef struct key_ref {
  const uint8_t *p;
  size_t n;
} key_ref;

static int key_ref_cmp(const void *a, const void *b) {
  const key_ref *x = a, *y = b;
  size_t m = x->n < y->n ? x->n : y->n;
  int c = memcmp(x->p, y->p, m);
  if (c) return c;
  return x->n < y->n ? -1 : x->n > y->n;
}

int idx_encode_values(const idx_def *d, const bson_value_t *const *vals, nx_buf *out) {
  for (size_t i = 0; i < d->nfields; i++) {
    int rc = keyenc_append(out, vals[i], d->fields[i].desc);
    if (rc != NX_OK) return rc;
  }
  return NX_OK;
}

int idx_keys(const idx_def *d, const bson_t *doc, nx_buf *keys, size_t *nkeys, uint32_t *arrays) {
  *nkeys = 0;
  *arrays = 0;
  if (d->partial) {
    bool m = false;
    int rc = filter_match(d->partial, doc, &m);
    if (rc != NX_OK) return rc;
    if (!m) return NX_OK;
  }
  comp_list cl[IDX_MAX_FIELDS];
  memset(cl, 0, sizeof cl);
  bool any_found = false;
  int rc = NX_OK;
  size_t first_arr = SIZE_MAX;
  for (size_t i = 0; i < d->nfields && rc == NX_OK; i++) {
    nx_buf_init(&cl[i].b, 0);
    cl[i].desc = d->fields[i].desc;
    bool found = false;
    rc = doc_path_visit(doc, &d->fields[i].dp, true, comp_add, &cl[i], &found);
    if (rc != NX_OK) break;
    if (!found) {
      bson_value_t nul;
      memset(&nul, 0, sizeof nul);
      nul.value_type = BSON_TYPE_NULL;
      rc = comp_add(&nul, &cl[i]);
    } else {
      any_found = true;
    }
    if (rc == NX_OK && holds_array(doc, &d->fields[i].dp)) {
      *arrays |= 1u << i;
      if (first_arr != SIZE_MAX) {
        char ids[128];
        id_str(doc, ids, sizeof ids);
        rc = nx_err(NX_INVALID, "index '%s' of '%s': cannot index parallel arrays '%s' and '%s' (document _id %s)",
                    d->name, d->coll, d->fields[first_arr].path, d->fields[i].path, ids);
      }
      first_arr = i;
    }
  }
  if (rc == NX_OK && d->sparse && !any_found) { /* not indexed */
    for (size_t i = 0; i < d->nfields; i++) comp_free(&cl[i]);
    return NX_OK;
  }
  nx_buf id;
  nx_buf_init(&id, 0);
  if (rc == NX_OK) rc = idx_doc_id_key(doc, &id);
  /* The product: every field but (at most) one has a single component. */
  size_t total = 1;
  for (size_t i = 0; i < d->nfields && rc == NX_OK; i++) total *= cl[i].n;
  nx_buf all;
  nx_buf_init(&all, 0);
  key_ref *refs = NULL;
  if (rc == NX_OK && !(refs = nx_calloc(total, sizeof *refs))) rc = nx_err(NX_NOMEM, "index keys: out of memory");
  size_t *offs = refs ? nx_calloc(total, sizeof *offs) : NULL;
  size_t *lens = offs ? nx_calloc(total, sizeof *lens) : NULL;
  if (rc == NX_OK && !lens) rc = nx_err(NX_NOMEM, "index keys: out of memory");
  for (size_t k = 0; k < total && rc == NX_OK; k++) {
    size_t rem = k, at = all.len;
    for (size_t i = 0; i < d->nfields && rc == NX_OK; i++) {
      size_t j = rem % cl[i].n;
      rem /= cl[i].n;
      rc = nx_buf_append(&all, cl[i].b.data + cl[i].off[j], cl[i].len[j]);
    }
    if (rc == NX_OK) rc = nx_buf_append(&all, id.data, id.len);
    if (rc == NX_OK && all.len - at > ST_MAX_KEY)
      rc = nx_err(NX_LIMIT, "index '%s' of '%s': a key takes %zu bytes, the limit is %u", d->name, d->coll,
                  all.len - at, ST_MAX_KEY);
    offs[k] = at;
    lens[k] = all.len - at;
  }
  if (rc == NX_OK) {
    for (size_t k = 0; k < total; k++) refs[k] = (key_ref){all.data + offs[k], lens[k]};
    qsort(refs, total, sizeof *refs, key_ref_cmp);
    size_t n = 0;
    for (size_t k = 0; k < total && rc == NX_OK; k++) {
      if (k > 0 && key_ref_cmp(&refs[k - 1], &refs[k]) == 0) continue;
      uint8_t l[2];
      nx_put16(l, (uint16_t)refs[k].n);
      rc = nx_buf_append(keys, l, 2);
      if (rc == NX_OK) rc = nx_buf_append(keys, refs[k].p, refs[k].n);
      n++;
    }
    *nkeys = n;
  }
  nx_free(refs);
  nx_free(offs);
  nx_free(lens);
  nx_buf_free(&all);
  nx_buf_free(&id);
  for (size_t i = 0; i < d->nfields; i++) comp_free(&cl[i]);
  return rc;
}

void idx_values_json(const idx_def *d, const uint8_t *p, size_t n, nx_buf *b) {
  size_t pos = 0;
  nx_buf_append(b, "{", 1);
  for (size_t i = 0; i < d->nfields; i++) {
    bson_value_t v;
    if (pos >= n || keyenc_decode(p, n, &pos, d->fields[i].desc, &v) != NX_OK) {
      nx_buf_printf(b, "%s\"%s\": ?", i ? ", " : "", d->fields[i].path);
      break;
    }
    nx_buf_printf(b, "%s\"%s\": ", i ? ", " : "", d->fields[i].path);
    doc_value_to_json(&v, b);
    bson_value_destroy(&v);
  }
  nx_buf_append(b, "}", 1);
  nx_buf_append(b, "", 1);
  b->len--;
}
