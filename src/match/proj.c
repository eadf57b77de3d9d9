/*
 * proj.c: projections (MongoDB 4.4+ find semantics).
 *
 * The spec becomes a tree of path components:
 *
 *     {a.b: 1, a.c: 1, d: {$slice: 2}}   ->   root -- a (inner) -- b (include)
 *                                                  |            \- c (include)
 *                                                  \- d (slice 0, 2)
 *
 * Invariants:
 *   1. One mode: inclusion (listed fields only, plus _id unless {_id: 0}) or exclusion
 *      (everything but the listed fields). $elemMatch and positional `.$` count as inclusion;
 *      $slice alone does not choose a mode. Mixing is an error naming the field.
 *   2. Output keeps the document's field order, never the spec's.
 *   3. Through arrays, a sub-projection applies to each element that is a document (inclusion
 *      drops scalar elements, exclusion keeps them); arrays inside arrays are projected too.
 *   4. A path that is a prefix of another is a collision ("Path collision at a.b").
 */
#include <string.h>

#include "match_int.h"

typedef enum pkind { PN_INNER, PN_INCLUDE, PN_EXCLUDE, PN_SLICE, PN_ELEMMATCH, PN_POSITIONAL } pkind;

typedef struct pnode {
  const char *key; /* component (borrowed from the path buffer of its spec field) */
  uint32_t klen;
  pkind kind;
  struct pnode *kids; /* PN_INNER children */
  size_t n, cap;
  bool slice_pair;     /* PN_SLICE: [skip, limit] form */
  int64_t skip, limit; /* PN_SLICE: slice_pair ? (skip, limit) : (count in limit) */
  filter_t *em;        /* PN_ELEMMATCH: {"x": {"$elemMatch": cond}} */
  char *pstr;          /* full path for messages, owned (leaves only) */
} pnode;

struct proj {
  pnode root;
  bool inclusion;
  doc_path *paths; /* parsed spec paths (own the component strings), one per field */
  size_t npaths;
  bool positional;
};

static void pnode_clear(pnode *p) {
  for (size_t i = 0; i < p->n; i++)
    pnode_clear(&p->kids[i]);
  nx_free(p->kids);
  filter_free(p->em);
  nx_free(p->pstr);
  memset(p, 0, sizeof *p);
}

void proj_free(proj_t *p) {
  if (!p) return;
  pnode_clear(&p->root);
  for (size_t i = 0; i < p->npaths; i++)
    doc_path_free(&p->paths[i]);
  nx_free(p->paths);
  nx_free(p);
}

static pnode *kid_find(pnode *p, const char *k, uint32_t kl) {
  for (size_t i = 0; i < p->n; i++)
    if (p->kids[i].klen == kl && memcmp(p->kids[i].key, k, kl) == 0) return &p->kids[i];
  return NULL;
}

static pnode *kid_add(pnode *p, const char *k, uint32_t kl) {
  if (p->n == p->cap) {
    size_t cap = p->cap ? p->cap * 2 : 4;
    pnode *nk = nx_realloc(p->kids, cap * sizeof *nk);
    if (!nk) return NULL;
    p->kids = nk;
    p->cap = cap;
  }
  pnode *c = &p->kids[p->n++];
  memset(c, 0, sizeof *c);
  c->key = k;
  c->klen = kl;
  c->kind = PN_INNER;
  return c;
}

/* Inserts the leaf for `path` (components [0, n)); returns it via *leaf. */
static int insert_path(proj_t *pj, const doc_path *path, size_t n, const char *pstr, pnode **leaf) {
  pnode *cur = &pj->root;
  for (size_t i = 0; i < n; i++) {
    pnode *c = kid_find(cur, path->parts[i], path->lens[i]);
    bool last = i + 1 == n;
    if (c) {
      if (last || c->kind != PN_INNER) return nx_err(NX_INVALID, "projection: Path collision at %s", pstr);
    } else {
      c = kid_add(cur, path->parts[i], path->lens[i]);
      if (!c) return nx_err(NX_NOMEM, "projection: out of memory");
    }
    cur = c;
  }
  cur->pstr = nx_strdup(pstr);
  if (!cur->pstr) return nx_err(NX_NOMEM, "projection: out of memory");
  *leaf = cur;
  return NX_OK;
}

static bool int_of(const bson_value_t *v, int64_t *out) {
  if (!doc_is_number(v->value_type)) return false;
  double d = doc_number_as_double(v);
  if (!(d >= -9.2e18 && d <= 9.2e18) || d != (double)(int64_t)d) return false;
  *out = (int64_t)d;
  return true;
}

static int set_mode(proj_t *pj, int *mode, bool incl, const char *field) {
  int want = incl ? 1 : 2;
  if (*mode == 0) *mode = want;
  if (*mode != want)
    return nx_err(NX_INVALID, "projection: Cannot do %s on field '%s' in %s projection",
                  incl ? "inclusion" : "exclusion", field, incl ? "exclusion" : "inclusion");
  pj->inclusion = *mode == 1;
  return NX_OK;
}

static int parse_operator(proj_t *pj, pnode *leaf, const char *field, bson_iter_t *it, int *mode) {
  bson_iter_t sub;
  bson_iter_recurse(it, &sub);
  if (!bson_iter_next(&sub)) return nx_err(NX_INVALID, "projection: empty object for '%s'", field);
  const char *op = bson_iter_key(&sub);
  const bson_value_t *v = bson_iter_value(&sub);
  bson_iter_t more = sub;
  if (bson_iter_next(&more)) return nx_err(NX_INVALID, "projection: '%s' takes one operator", field);
  if (strcmp(op, "$slice") == 0) {
    leaf->kind = PN_SLICE;
    if (v->value_type == BSON_TYPE_ARRAY) {
      bson_iter_t a;
      bson_value_t args[2];
      int na = 0;
      bson_iter_recurse(&sub, &a);
      while (bson_iter_next(&a)) {
        if (na == 2) return nx_err(NX_INVALID, "projection: $slice array wrong size for '%s'", field);
        args[na++] = *bson_iter_value(&a);
      }
      if (na != 2 || !int_of(&args[0], &leaf->skip) || !int_of(&args[1], &leaf->limit))
        return nx_err(NX_INVALID, "projection: $slice needs [skip, limit] numbers for '%s'", field);
      if (leaf->limit <= 0)
        return nx_err(NX_INVALID, "projection: $slice limit must be positive for '%s'", field);
      leaf->slice_pair = true;
      return NX_OK;
    }
    if (!int_of(v, &leaf->limit))
      return nx_err(NX_INVALID, "projection: $slice needs a number or [skip, limit] for '%s'", field);
    return NX_OK;
  }
  if (strcmp(op, "$elemMatch") == 0) {
    if (v->value_type != BSON_TYPE_DOCUMENT)
      return nx_err(NX_INVALID, "projection: $elemMatch needs an object for '%s'", field);
    if (strchr(field, '.'))
      return nx_err(NX_INVALID,
                    "projection: Cannot use $elemMatch projection on a nested field "
                    "'%s'",
                    field);
    int rc = set_mode(pj, mode, true, field);
    if (rc != NX_OK) return rc;
    leaf->kind = PN_ELEMMATCH;
    bson_t w, x;
    bson_init(&w);
    bson_append_document_begin(&w, "x", 1, &x);
    bson_append_value(&x, "$elemMatch", -1, v);
    bson_append_document_end(&w, &x);
    rc = filter_parse(&w, &leaf->em);
    bson_destroy(&w);
    if (rc != NX_OK) return nx_err_prefix(rc, "projection: $elemMatch for '%s': ", field);
    return NX_OK;
  }
  return nx_err(NX_INVALID, "projection: unknown operator '%s' for '%s'", op, field);
}

int proj_parse(const bson_t *spec, proj_t **out) {
  *out = NULL;
  if (!spec) return nx_err(NX_INVALID, "projection: NULL");
  if (spec->len > FILTER_MAX_BYTES) return nx_err(NX_LIMIT, "projection: spec too large");
  if (doc_depth_capped(spec, FILTER_MAX_BSON_DEPTH) > FILTER_MAX_BSON_DEPTH)
    return nx_err(NX_LIMIT, "projection: nesting deeper than %d", FILTER_MAX_BSON_DEPTH);
  proj_t *pj = nx_calloc(1, sizeof *pj);
  if (!pj) return nx_err(NX_NOMEM, "projection: out of memory");
  uint32_t cnt = bson_count_keys(spec);
  int rc = NX_OK;
  if (cnt) {
    pj->paths = nx_calloc(cnt + 1, sizeof *pj->paths);
    if (!pj->paths) rc = nx_err(NX_NOMEM, "projection: out of memory");
  }
  int mode = 0;     /* 0 undecided, 1 inclusion, 2 exclusion */
  int id_mode = -1; /* -1 default, 0 excluded, 1 included */
  bson_iter_t it;
  if (rc == NX_OK && !bson_iter_init(&it, spec)) rc = nx_err(NX_INVALID, "projection: malformed BSON");
  while (rc == NX_OK && bson_iter_next(&it)) {
    const char *k = bson_iter_key(&it);
    const bson_value_t *v = bson_iter_value(&it);
    if (k[0] == '$') {
      rc = nx_err(NX_INVALID, "projection: unknown top-level operator '%s'", k);
      break;
    }
    doc_path *path = &pj->paths[pj->npaths];
    rc = doc_path_parse(k, -1, path);
    if (rc != NX_OK) {
      rc = nx_err_prefix(rc, "projection: ");
      break;
    }
    pj->npaths++;
    bool positional = false;
    for (size_t i = 0; i < path->n; i++) {
      if (path->parts[i][0] != '$') continue;
      if (strcmp(path->parts[i], "$") == 0 && i + 1 == path->n && i > 0) {
        positional = true;
      } else {
        rc = nx_err(NX_INVALID,
                    "projection: invalid field path '%s' (a '$' component is allowed "
                    "only as a trailing positional '.$')",
                    k);
      }
    }
    if (rc != NX_OK) break;
    size_t ncomp = positional ? path->n - 1 : path->n;
    bool is_id = strcmp(k, "_id") == 0;
    pnode *leaf = NULL;
    if (positional) {
      if (pj->positional) {
        rc = nx_err(NX_INVALID, "projection: Cannot specify more than one positional projection");
        break;
      }
      pj->positional = true;
      if (v->value_type == BSON_TYPE_DOCUMENT || !bson_iter_as_bool(&it)) {
        rc = nx_err(NX_INVALID, "projection: the positional projection '%s' needs a true value", k);
        break;
      }
      rc = set_mode(pj, &mode, true, k);
      if (rc == NX_OK) rc = insert_path(pj, path, ncomp, k, &leaf);
      if (rc == NX_OK) leaf->kind = PN_POSITIONAL;
      continue;
    }
    if (v->value_type == BSON_TYPE_DOCUMENT) {
      rc = insert_path(pj, path, ncomp, k, &leaf);
      if (rc == NX_OK) rc = parse_operator(pj, leaf, k, &it, &mode);
      continue;
    }
    if (v->value_type != BSON_TYPE_BOOL && !doc_is_number(v->value_type)) {
      rc = nx_err(NX_INVALID,
                  "projection: unsupported value for '%s': use 1/true, 0/false, "
                  "$slice or $elemMatch (expressions are not supported)",
                  k);
      break;
    }
    bool incl = bson_iter_as_bool(&it);
    if (is_id) {
      id_mode = incl ? 1 : 0;
      continue;
    }
    rc = set_mode(pj, &mode, incl, k);
    if (rc == NX_OK) rc = insert_path(pj, path, ncomp, k, &leaf);
    if (rc == NX_OK) leaf->kind = incl ? PN_INCLUDE : PN_EXCLUDE;
  }
  if (mode == 0 && id_mode == 1) mode = 1; /* {_id: 1} alone is an inclusion projection */
  pj->inclusion = mode == 1;
  if (rc == NX_OK && id_mode != -1) {
    /* _id: included by default in inclusion mode, kept by default in exclusion mode */
    if (id_mode == 0 || mode == 1) {
      doc_path *path = &pj->paths[pj->npaths];
      rc = doc_path_parse("_id", -1, path);
      if (rc == NX_OK) {
        pj->npaths++;
        pnode *leaf = NULL;
        rc = insert_path(pj, path, 1, "_id", &leaf);
        if (rc == NX_OK) leaf->kind = id_mode == 0 ? PN_EXCLUDE : PN_INCLUDE;
      }
    }
  } else if (rc == NX_OK && mode == 1) {
    doc_path *path = &pj->paths[pj->npaths];
    rc = doc_path_parse("_id", -1, path);
    if (rc == NX_OK) {
      pj->npaths++;
      pnode *leaf = NULL;
      if (!kid_find(&pj->root, "_id", 3)) {
        rc = insert_path(pj, path, 1, "_id", &leaf);
        if (rc == NX_OK) leaf->kind = PN_INCLUDE;
      }
    }
  }
  if (rc != NX_OK) {
    proj_free(pj);
    return rc;
  }
  *out = pj;
  return NX_OK;
}

/* ---- Application ---- */

typedef struct pctx2 {
  const proj_t *p;
  int64_t pos; /* positional index from the query, -1 if none */
} pctx2;

static int put(bson_t *out, const char *k, int kl, const bson_value_t *v) {
  if (!bson_append_value(out, k, kl, v)) return nx_err(NX_LIMIT, "projection: result too large");
  return NX_OK;
}

static int put_slice(bson_t *out, const char *k, int kl, const pnode *n, const bson_value_t *v) {
  if (v->value_type != BSON_TYPE_ARRAY) return put(out, k, kl, v);
  bson_iter_t it;
  int64_t len = 0;
  if (!bson_iter_init_from_data(&it, v->value.v_doc.data, v->value.v_doc.data_len))
    return nx_err(NX_INVALID, "projection: malformed array");
  bson_iter_t c = it;
  while (bson_iter_next(&c))
    len++;
  int64_t from, count;
  if (n->slice_pair) {
    from = n->skip < 0 ? (len + n->skip < 0 ? 0 : len + n->skip) : n->skip;
    count = n->limit;
  } else if (n->limit >= 0) {
    from = 0;
    count = n->limit;
  } else {
    from = len + n->limit < 0 ? 0 : len + n->limit;
    count = len;
  }
  bson_t child;
  if (!bson_append_array_begin(out, k, kl, &child)) return nx_err(NX_LIMIT, "projection: too large");
  int64_t i = 0, w = 0;
  char ib[16];
  int rc = NX_OK;
  while (rc == NX_OK && bson_iter_next(&it)) {
    if (i >= from && w < count) {
      const char *key;
      size_t kl2 = bson_uint32_to_string((uint32_t)w, &key, ib, sizeof ib);
      rc = put(&child, key, (int)kl2, bson_iter_value(&it));
      w++;
    }
    i++;
  }
  bson_append_array_end(out, &child);
  return rc;
}

static int apply_doc(const pctx2 *c, const pnode *node, bson_iter_t *doc, bson_t *out);

/* A sub-projection applied to an array: documents (and nested arrays) are projected; scalars are
 * dropped in inclusion mode and kept in exclusion mode. */
static int apply_array(const pctx2 *c, const pnode *node, bson_iter_t *arr, bson_t *out) {
  char ib[16];
  uint32_t w = 0;
  int rc = NX_OK;
  while (rc == NX_OK && bson_iter_next(arr)) {
    const char *key;
    size_t kl = bson_uint32_to_string(w, &key, ib, sizeof ib);
    bson_type_t t = bson_iter_type(arr);
    bson_iter_t sub;
    bson_t child;
    if (t == BSON_TYPE_DOCUMENT && bson_iter_recurse(arr, &sub)) {
      bson_append_document_begin(out, key, (int)kl, &child);
      rc = apply_doc(c, node, &sub, &child);
      bson_append_document_end(out, &child);
      w++;
    } else if (t == BSON_TYPE_ARRAY && bson_iter_recurse(arr, &sub)) {
      bson_append_array_begin(out, key, (int)kl, &child);
      rc = apply_array(c, node, &sub, &child);
      bson_append_array_end(out, &child);
      w++;
    } else if (!c->p->inclusion) {
      rc = put(out, key, (int)kl, bson_iter_value(arr));
      w++;
    }
  }
  return rc;
}

static int apply_field(const pctx2 *c, const pnode *n, bson_iter_t *it, bson_t *out) {
  const char *k = bson_iter_key(it);
  int kl = (int)bson_iter_key_len(it);
  const bson_value_t *v = bson_iter_value(it);
  switch (n->kind) {
  case PN_INCLUDE:
    return put(out, k, kl, v);
  case PN_EXCLUDE:
    return NX_OK;
  case PN_SLICE:
    return put_slice(out, k, kl, n, v);
  case PN_ELEMMATCH: {
    if (v->value_type != BSON_TYPE_ARRAY) return NX_OK;
    const pred *p = &filter_root(n->em)->kids[0]->p;
    bson_iter_t a;
    bson_iter_recurse(it, &a);
    while (bson_iter_next(&a)) {
      fev e = {NX_OK, false, -1};
      bool m = fpred_elem_matches(p, bson_iter_value(&a), &e);
      if (e.rc != NX_OK) return e.rc;
      if (m) {
        bson_t child;
        bson_append_array_begin(out, k, kl, &child);
        int rc = put(&child, "0", 1, bson_iter_value(&a));
        bson_append_array_end(out, &child);
        return rc;
      }
    }
    return NX_OK;
  }
  case PN_POSITIONAL: {
    if (v->value_type != BSON_TYPE_ARRAY) return put(out, k, kl, v);
    bson_iter_t a;
    bson_iter_recurse(it, &a);
    int64_t i = 0;
    while (c->pos >= 0 && bson_iter_next(&a)) {
      if (i++ == c->pos) {
        bson_t child;
        bson_append_array_begin(out, k, kl, &child);
        int rc = put(&child, "0", 1, bson_iter_value(&a));
        bson_append_array_end(out, &child);
        return rc;
      }
    }
    return nx_err(NX_INVALID,
                  "projection: positional operator '%s' couldn't find a matching "
                  "element in the array (the query must match an element of it)",
                  n->pstr);
  }
  case PN_INNER: {
    bson_type_t t = bson_iter_type(it);
    bson_iter_t sub;
    bson_t child;
    int rc;
    if (t == BSON_TYPE_DOCUMENT && bson_iter_recurse(it, &sub)) {
      bson_append_document_begin(out, k, kl, &child);
      rc = apply_doc(c, n, &sub, &child);
      bson_append_document_end(out, &child);
      return rc;
    }
    if (t == BSON_TYPE_ARRAY && bson_iter_recurse(it, &sub)) {
      bson_append_array_begin(out, k, kl, &child);
      rc = apply_array(c, n, &sub, &child);
      bson_append_array_end(out, &child);
      return rc;
    }
    return c->p->inclusion ? NX_OK : put(out, k, kl, v);
  }
  }
  return NX_OK;
}

static int apply_doc(const pctx2 *c, const pnode *node, bson_iter_t *doc, bson_t *out) {
  int rc = NX_OK;
  while (rc == NX_OK && bson_iter_next(doc)) {
    const pnode *n = kid_find((pnode *)node, bson_iter_key(doc), bson_iter_key_len(doc));
    if (!n) {
      if (!c->p->inclusion)
        rc = put(out, bson_iter_key(doc), (int)bson_iter_key_len(doc), bson_iter_value(doc));
      continue;
    }
    rc = apply_field(c, n, doc, out);
  }
  return rc;
}

int proj_apply(const proj_t *p, const bson_t *doc, const filter_t *query, bson_t *out) {
  pctx2 c = {p, -1};
  if (p->positional) {
    bool m = false;
    if (query) {
      int rc = filter_match_pos(query, doc, &m, &c.pos);
      if (rc != NX_OK) return rc;
    }
    if (!m) c.pos = -1;
  }
  bson_iter_t it;
  if (!bson_iter_init(&it, doc)) return nx_err(NX_INVALID, "projection: malformed document");
  bson_init(out);
  int rc = apply_doc(&c, &p->root, &it, out);
  if (rc != NX_OK) bson_destroy(out);
  return rc;
}
