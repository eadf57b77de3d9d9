/*
 * filter_eval.c: evaluates a parsed filter against a document, walking its bytes in place
 * (doc_raw_*: no copies, no allocation).
 *
 * MongoDB's rules, in the order the code applies them:
 *   1. Path traversal: a component names a field of a document; applied to an array, a numeric
 *      component takes that element, any other component descends into every element that is a
 *      document (one level: arrays inside arrays are not entered). A path that breaks (field
 *      absent, or a scalar where a document is needed) reaches "missing" on that branch; an array
 *      holding no documents at all reaches "missing" once.
 *   2. At the end of the path, a value that is an array is tested element by element and then as
 *      a whole ({a: 2} and {a: [1, 2]} both match a: [1, 2]); $size and $elemMatch test only the
 *      array itself, $exists only whether something is there.
 *   3. "missing" matches {a: null}, {$gte: null}, {$lte: null}, $in lists holding null, and $all
 *      of those; nothing else.
 *   4. Comparisons only match values of the operand's type bracket (doc_canonical_type_order),
 *      except against MinKey / MaxKey; NaN only equals NaN ($eq, $gte, $lte).
 *   5. $ne, $nin, $exists: false and $not negate the whole path test (so {a: {$ne: 1}} rejects
 *      a: [1, 2]), and $nor negates its clauses.
 *   6. The positional `$`: when tracking, the index of the array element through which a
 *      predicate matched is recorded; the outermost array along the path wins (it is recorded
 *      last). Negated predicates never record.
 * A regex that exceeds its limits sets fev.rc (NX_LIMIT) and evaluation returns false.
 */
#include <string.h>

#include "match_int.h"

typedef struct eval {
  fev *e;
  const char *where; /* path for messages */
} eval;

static bool value_node_match(const fnode *n, const bson_value_t *v, eval *ev);

static bool is_nan_value(const bson_value_t *v) {
  if (v->value_type == BSON_TYPE_DOUBLE) return v->value.v_double != v->value.v_double;
  if (v->value_type == BSON_TYPE_DECIMAL128) return ((v->value.v_decimal128.high >> 58) & 0x1Fu) == 0x1Fu;
  return false;
}

static bool cmp_ok(pred_kind k, const bson_value_t *operand, const bson_value_t *v) {
  bson_type_t ot = operand->value_type;
  int c;
  if (ot == BSON_TYPE_MINKEY || ot == BSON_TYPE_MAXKEY) {
    c = doc_cmp_values(v, operand);
  } else {
    if (doc_canonical_type_order(v->value_type) != doc_canonical_type_order(ot)) return false;
    if (doc_is_number(ot)) {
      bool nv = is_nan_value(v), no = is_nan_value(operand);
      if (nv || no) return nv && no && (k == P_EQ || k == P_GTE || k == P_LTE);
    }
    c = doc_cmp_values(v, operand);
  }
  switch (k) {
  case P_EQ:
    return c == 0;
  case P_GT:
    return c > 0;
  case P_GTE:
    return c >= 0;
  case P_LT:
    return c < 0;
  case P_LTE:
    return c <= 0;
  default:
    return false;
  }
}

static bool in_values(const pred *p, const bson_value_t *v) {
  size_t lo = 0, hi = p->nvalues;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = doc_cmp_values(&p->values[mid], v);
    if (c == 0) return true;
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return false;
}

/* A regex pattern against a string or symbol value (other types never match). */
static bool regex_on(const nx_regex *r, const bson_value_t *v, eval *ev) {
  const char *s;
  size_t len;
  if (v->value_type == BSON_TYPE_UTF8) {
    s = v->value.v_utf8.str;
    len = v->value.v_utf8.len;
  } else if (v->value_type == BSON_TYPE_SYMBOL) {
    s = v->value.v_symbol.symbol;
    len = v->value.v_symbol.len;
  } else {
    return false;
  }
  int m = nx_regex_match(r, s, len, ev->where ? ev->where : "");
  if (m < 0) {
    if (ev->e->rc == NX_OK) ev->e->rc = -m;
    return false;
  }
  return m == 1;
}

static int type_code(bson_type_t t) {
  if (t == BSON_TYPE_MINKEY) return -1;
  if (t == BSON_TYPE_MAXKEY) return 127;
  return (int)t;
}

static bool type_ok(const pred *p, bson_type_t t) {
  int code = type_code(t);
  int bit = code == 127 ? 21 : code + 1;
  if (bit < 0 || bit > 21) return false;
  return (p->type_mask >> bit) & 1u;
}

static bool mod_ok(const pred *p, const bson_value_t *v) {
  int64_t x;
  if (!doc_number_trunc_i64(v, &x)) return false;
  if (p->mod_d == -1) return p->mod_r == 0;
  return x % p->mod_d == p->mod_r;
}

/* The predicate on one value, without expanding it if it is an array. */
static bool leaf_single(const pred *p, const bson_value_t *v, eval *ev) {
  if (ev->e->rc != NX_OK) return false;
  switch (p->kind) {
  case P_EQ:
  case P_GT:
  case P_GTE:
  case P_LT:
  case P_LTE:
    return cmp_ok(p->kind, &p->value, v);
  case P_IN:
    if (in_values(p, v)) return true;
    for (size_t i = 0; i < p->nregexes; i++)
      if (regex_on(&p->regexes[i], v, ev)) return true;
    return false;
  case P_EXISTS:
    return true;
  case P_TYPE:
    return type_ok(p, v->value_type);
  case P_REGEX:
    if (v->value_type == BSON_TYPE_REGEX) {
      const char *o = v->value.v_regex.options ? v->value.v_regex.options : "";
      return strcmp(v->value.v_regex.regex, p->regexes[0].pattern) == 0 &&
             strcmp(o, p->regexes[0].options) == 0;
    }
    return regex_on(&p->regexes[0], v, ev);
  case P_MOD:
    return mod_ok(p, v);
  case P_SIZE: {
    if (v->value_type != BSON_TYPE_ARRAY) return false;
    doc_raw_iter it;
    doc_elem el;
    if (!doc_raw_init(&it, v->value.v_doc.data, v->value.v_doc.data_len)) return false;
    int64_t n = 0;
    while (doc_raw_next(&it, &el))
      n++;
    return n == p->value.value.v_int64;
  }
  case P_ELEMMATCH: {
    if (v->value_type != BSON_TYPE_ARRAY) return false;
    doc_raw_iter it;
    doc_elem el;
    if (!doc_raw_init(&it, v->value.v_doc.data, v->value.v_doc.data_len)) return false;
    int64_t k = 0;
    while (doc_raw_next(&it, &el)) {
      bool r;
      if (p->value_form) {
        bson_value_t ev2;
        doc_raw_value(&el, &ev2);
        r = value_node_match(p->sub, &ev2, ev);
      } else {
        if (el.type != BSON_TYPE_DOCUMENT && el.type != BSON_TYPE_ARRAY) {
          k++;
          continue;
        }
        bool saved = ev->e->track;
        ev->e->track = false;
        r = fnode_match_doc(p->sub, el.vp, el.vlen, ev->e);
        ev->e->track = saved;
      }
      if (ev->e->rc != NX_OK) return false;
      if (r) {
        if (ev->e->track) ev->e->pos = k;
        return true;
      }
      k++;
    }
    return false;
  }
  case P_ALL:
    if (p->nall == 0) return false;
    for (size_t i = 0; i < p->nall; i++)
      if (!leaf_single(&p->all[i], v, ev)) return false;
    return true;
  case P_NOT:
    return false; /* handled at node level */
  }
  return false;
}

/* The predicate at the end of a path: arrays element by element, then as a whole. */
static bool leaf(const pred *p, const bson_value_t *v, eval *ev) {
  if (v->value_type == BSON_TYPE_ARRAY && p->kind != P_SIZE && p->kind != P_ELEMMATCH &&
      p->kind != P_EXISTS) {
    doc_raw_iter it;
    doc_elem el;
    if (doc_raw_init(&it, v->value.v_doc.data, v->value.v_doc.data_len)) {
      int64_t k = 0;
      while (doc_raw_next(&it, &el)) {
        bson_value_t ev2;
        doc_raw_value(&el, &ev2);
        if (leaf_single(p, &ev2, ev)) {
          if (ev->e->track) ev->e->pos = k;
          return true;
        }
        k++;
      }
    }
  }
  return leaf_single(p, v, ev);
}

/* What a predicate says about a path that reaches nothing. */
static bool missing(const pred *p) {
  switch (p->kind) {
  case P_EQ:
  case P_GTE:
  case P_LTE:
    return p->value.value_type == BSON_TYPE_NULL;
  case P_IN:
    return p->has_null;
  case P_ALL:
    if (p->nall == 0) return false;
    for (size_t i = 0; i < p->nall; i++)
      if (!missing(&p->all[i])) return false;
    return true;
  default:
    return false;
  }
}

static bool value_at(const doc_path *path, const pred *p, const doc_elem *e, size_t next, eval *ev);

/* Components [i, n) looked up in the document bytes (data, len). */
static bool in_doc(const doc_path *path, const pred *p, const uint8_t *data, uint32_t len, size_t i,
                   eval *ev) {
  doc_elem e;
  if (!doc_raw_find(data, len, path->parts[i], path->lens[i], &e)) return missing(p);
  return value_at(path, p, &e, i + 1, ev);
}

/* Components [i, n) applied to the array element `arr` (MongoDB's array traversal):
 * - an element that is a document is searched for component i as a field name (a document
 *   without it reaches "missing");
 * - if component i is a number equal to the element's index, the element is also taken by
 *   position: at the end of the path it is tested whole (a positional leaf is not expanded),
 *   otherwise the rest of the path continues inside it (a document, or a nested array);
 * - other elements reach nothing. An array that reaches nothing at all makes the predicate false
 *   (not "missing"): {"a.b": null} does not match {a: [1, 2]}. */
static bool in_array(const doc_path *path, const pred *p, const doc_elem *arr, size_t i, eval *ev) {
  doc_elem c;
  doc_raw_iter it;
  if (!doc_raw_init(&it, arr->vp, arr->vlen)) return false;
  int64_t idx = path->index[i];
  bool last = i + 1 == path->n;
  int64_t k = 0;
  while (doc_raw_next(&it, &c)) {
    if (c.type == BSON_TYPE_DOCUMENT) {
      if (in_doc(path, p, c.vp, c.vlen, i, ev)) {
        if (ev->e->track) ev->e->pos = k;
        return true;
      }
      if (ev->e->rc != NX_OK) return false;
    }
    if (idx == k) {
      bool r = false;
      if (last) {
        bson_value_t v;
        doc_raw_value(&c, &v);
        r = leaf_single(p, &v, ev);
      } else if (c.type == BSON_TYPE_DOCUMENT) {
        r = in_doc(path, p, c.vp, c.vlen, i + 1, ev);
      } else if (c.type == BSON_TYPE_ARRAY) {
        r = in_array(path, p, &c, i + 1, ev);
      }
      if (r) return true;
      if (ev->e->rc != NX_OK) return false;
    }
    k++;
  }
  return false;
}

/* `e` is the element reached by components [0, next). */
static bool value_at(const doc_path *path, const pred *p, const doc_elem *e, size_t next, eval *ev) {
  if (next == path->n) {
    bson_value_t v;
    doc_raw_value(e, &v);
    return leaf(p, &v, ev);
  }
  if (e->type == BSON_TYPE_DOCUMENT) return in_doc(path, p, e->vp, e->vlen, next, ev);
  if (e->type == BSON_TYPE_ARRAY) return in_array(path, p, e, next, ev);
  return missing(p);
}

static bool path_pred(const fnode *n, const pred *p, const uint8_t *data, uint32_t len, eval *ev) {
  return in_doc(&n->path, p, data, len, 0, ev);
}

static bool path_node_match(const fnode *n, const uint8_t *data, uint32_t len, fev *e) {
  eval ev = {e, n->pstr};
  bool saved = e->track;
  if (n->negate) e->track = false;
  bool r;
  if (n->p.kind == P_ALL) {
    r = n->p.nall > 0;
    for (size_t i = 0; r && i < n->p.nall; i++)
      r = path_pred(n, &n->p.all[i], data, len, &ev);
  } else if (n->p.kind == P_NOT) {
    e->track = false;
    r = !fnode_match_doc(n->p.sub, data, len, e);
  } else {
    r = path_pred(n, &n->p, data, len, &ev);
  }
  e->track = saved;
  if (e->rc != NX_OK) return false;
  return n->negate ? !r : r;
}

/* Value form ($elemMatch with operators only): nodes apply to the element itself. */
static bool value_node_match(const fnode *n, const bson_value_t *v, eval *ev) {
  switch (n->kind) {
  case K_AND:
    for (size_t i = 0; i < n->nkids; i++)
      if (!value_node_match(n->kids[i], v, ev)) return false;
    return true;
  case K_OR:
    for (size_t i = 0; i < n->nkids; i++)
      if (value_node_match(n->kids[i], v, ev)) return true;
    return false;
  case K_NOR:
    for (size_t i = 0; i < n->nkids; i++)
      if (value_node_match(n->kids[i], v, ev)) return false;
    return true;
  case K_TRUE:
    return true;
  case K_FALSE:
    return false;
  case K_PATH:
    break;
  }
  bool saved = ev->e->track;
  ev->e->track = false;
  bool r;
  if (n->p.kind == P_NOT)
    r = !value_node_match(n->p.sub, v, ev);
  else
    r = leaf_single(&n->p, v, ev);
  ev->e->track = saved;
  if (ev->e->rc != NX_OK) return false;
  return n->negate ? !r : r;
}

bool fnode_match_doc(const fnode *n, const uint8_t *data, uint32_t len, fev *e) {
  if (e->rc != NX_OK) return false;
  switch (n->kind) {
  case K_AND:
    for (size_t i = 0; i < n->nkids; i++)
      if (!fnode_match_doc(n->kids[i], data, len, e)) return false;
    return true;
  case K_OR:
    for (size_t i = 0; i < n->nkids; i++)
      if (fnode_match_doc(n->kids[i], data, len, e)) return true;
    return false;
  case K_NOR: {
    bool saved = e->track;
    e->track = false;
    bool r = true;
    for (size_t i = 0; r && i < n->nkids; i++)
      if (fnode_match_doc(n->kids[i], data, len, e)) r = false;
    e->track = saved;
    return e->rc == NX_OK && r;
  }
  case K_TRUE:
    return true;
  case K_FALSE:
    return false;
  case K_PATH:
    return path_node_match(n, data, len, e);
  }
  return false;
}

bool fpred_elem_matches(const pred *p, const bson_value_t *elem, fev *e) {
  eval ev = {e, NULL};
  if (p->value_form) return value_node_match(p->sub, elem, &ev) && e->rc == NX_OK;
  bson_type_t t = elem->value_type;
  if (t != BSON_TYPE_DOCUMENT && t != BSON_TYPE_ARRAY) return false;
  return fnode_match_doc(p->sub, elem->value.v_doc.data, elem->value.v_doc.data_len, e);
}

int filter_match_pos(const filter_t *f, const bson_t *doc, bool *matched, int64_t *array_pos) {
  fev e = {NX_OK, array_pos != NULL, -1};
  bool r = fnode_match_doc(f->root, bson_get_data(doc), doc->len, &e);
  if (array_pos) *array_pos = e.pos;
  *matched = false;
  if (e.rc != NX_OK) return e.rc;
  *matched = r;
  return NX_OK;
}

int filter_match(const filter_t *f, const bson_t *doc, bool *matched) {
  return filter_match_pos(f, doc, matched, NULL);
}
