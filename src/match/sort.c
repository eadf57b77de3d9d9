/*
 * sort.c: MongoDB's sort order over documents.
 *
 * Invariants:
 *   1. A key's value is found with doc_path_visit (arrays expanded, one level, as index keys
 *      are): ascending takes the smallest value reached, descending the largest; an empty array
 *      counts as `undefined` (below null); nothing reached counts as null.
 *   2. sort_cmp allocates nothing: chosen values borrow from the two documents.
 *   3. Ties return 0; stability (ties in _id order) is the caller's business.
 */
#include <string.h>

#include "match_int.h"

struct sort {
  size_t n;        /* number of keys */
  doc_path *paths; /* parsed paths */
  char **pstr;     /* paths as written */
  int *dir;        /* +1 ascending, -1 descending */
};

void sort_free(sort_t *s) {
  if (!s) return;
  for (size_t i = 0; i < s->n; i++) {
    doc_path_free(&s->paths[i]);
    nx_free(s->pstr[i]);
  }
  nx_free(s->paths);
  nx_free(s->pstr);
  nx_free(s->dir);
  nx_free(s);
}

int sort_parse(const bson_t *spec, sort_t **out) {
  *out = NULL;
  if (!spec) return nx_err(NX_INVALID, "sort: NULL");
  uint32_t cnt = bson_count_keys(spec);
  if (cnt == 0) return nx_err(NX_INVALID, "sort: empty sort specification");
  if (cnt > DOC_PATH_MAX_PARTS * 8)
    return nx_err(NX_LIMIT, "sort: more than %d keys", DOC_PATH_MAX_PARTS * 8);
  sort_t *s = nx_calloc(1, sizeof *s);
  if (!s) return nx_err(NX_NOMEM, "sort: out of memory");
  s->paths = nx_calloc(cnt, sizeof *s->paths);
  s->pstr = nx_calloc(cnt, sizeof *s->pstr);
  s->dir = nx_calloc(cnt, sizeof *s->dir);
  int rc = NX_OK;
  if (!s->paths || !s->pstr || !s->dir) rc = nx_err(NX_NOMEM, "sort: out of memory");
  bson_iter_t it;
  if (rc == NX_OK && !bson_iter_init(&it, spec)) rc = nx_err(NX_INVALID, "sort: malformed BSON");
  while (rc == NX_OK && bson_iter_next(&it)) {
    const char *k = bson_iter_key(&it);
    const bson_value_t *v = bson_iter_value(&it);
    double d = doc_is_number(v->value_type) ? doc_number_as_double(v) : 0.0;
    if (d != 1.0 && d != -1.0) {
      rc = nx_err(NX_INVALID, "sort: invalid sort value for '%s': must be 1 or -1", k);
      break;
    }
    for (size_t j = 0; j < s->n; j++)
      if (strcmp(s->pstr[j], k) == 0) rc = nx_err(NX_INVALID, "sort: duplicate key '%s'", k);
    if (rc != NX_OK) break;
    if (k[0] == '$') {
      rc = nx_err(NX_INVALID, "sort: unsupported key '%s'", k);
      break;
    }
    s->pstr[s->n] = nx_strdup(k);
    if (!s->pstr[s->n]) {
      rc = nx_err(NX_NOMEM, "sort: out of memory");
      break;
    }
    rc = doc_path_parse(k, -1, &s->paths[s->n]);
    if (rc != NX_OK) {
      nx_free(s->pstr[s->n]);
      rc = nx_err_prefix(rc, "sort: ");
      break;
    }
    s->dir[s->n] = d > 0 ? 1 : -1;
    s->n++;
  }
  if (rc != NX_OK) {
    sort_free(s);
    return rc;
  }
  *out = s;
  return NX_OK;
}

size_t sort_nkeys(const sort_t *s) { return s->n; }

const char *sort_key_path(const sort_t *s, size_t i, int *dir) {
  if (dir) *dir = s->dir[i];
  return s->pstr[i];
}

typedef struct pick_ctx {
  int dir;
  bool have;
  bson_value_t best;
} pick_ctx;

static int pick_cb(const bson_value_t *v, void *ctx) {
  pick_ctx *p = ctx;
  if (!p->have || (p->dir > 0 ? doc_cmp_values(v, &p->best) < 0 : doc_cmp_values(v, &p->best) > 0)) {
    p->best = *v;
    p->have = true;
  }
  return NX_OK;
}

/* The value key i of `doc` sorts by (borrowed from doc, or null). */
static void pick(const sort_t *s, size_t i, const bson_t *doc, bson_value_t *out) {
  pick_ctx p = {s->dir[i], false, {0}};
  bool found = false;
  doc_path_visit(doc, &s->paths[i], true, pick_cb, &p, &found);
  if (p.have) {
    *out = p.best;
  } else {
    memset(out, 0, sizeof *out);
    out->value_type = BSON_TYPE_NULL;
  }
}

int sort_cmp(const sort_t *s, const bson_t *a, const bson_t *b) {
  for (size_t i = 0; i < s->n; i++) {
    bson_value_t va, vb;
    pick(s, i, a, &va);
    pick(s, i, b, &vb);
    int c = doc_cmp_values(&va, &vb);
    if (c != 0) return s->dir[i] * c;
  }
  return 0;
}

int sort_key_extract(const sort_t *s, const bson_t *doc, bson_t *out) {
  bson_init(out);
  char ibuf[16];
  for (size_t i = 0; i < s->n; i++) {
    bson_value_t v;
    pick(s, i, doc, &v);
    const char *k;
    size_t kl = bson_uint32_to_string((uint32_t)i, &k, ibuf, sizeof ibuf);
    if (!bson_append_value(out, k, (int)kl, &v)) {
      bson_destroy(out);
      return nx_err(NX_LIMIT, "sort: key too large");
    }
  }
  return NX_OK;
}

int sort_key_cmp(const sort_t *s, const bson_t *ka, const bson_t *kb) {
  doc_raw_iter ia, ib;
  doc_elem ea, eb;
  if (!doc_raw_init(&ia, bson_get_data(ka), ka->len) || !doc_raw_init(&ib, bson_get_data(kb), kb->len))
    return 0;
  for (size_t i = 0; i < s->n; i++) {
    if (!doc_raw_next(&ia, &ea) || !doc_raw_next(&ib, &eb)) return 0;
    bson_value_t va, vb;
    doc_raw_value(&ea, &va);
    doc_raw_value(&eb, &vb);
    int c = doc_cmp_values(&va, &vb);
    if (c != 0) return s->dir[i] * c;
  }
  return 0;
}
