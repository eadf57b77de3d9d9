/*
 * filter_parse.c: a filter document -> the typed tree of match_int.h, checked once.
 *
 * Invariants:
 *   1. Parsing never evaluates anything: strings become paths, literal operands and compiled
 *      regexes; operand types are checked here so that evaluation cannot fail on them.
 *   2. Every node is attached to its parent as soon as it exists, so freeing the root on any
 *      error frees everything (one unwinding path).
 *   3. Limits (match.h): spec size, nesting depth, node count, $in/$all length, regex length.
 *   4. An operator document is recognised by its first key starting with '$' (MongoDB's rule);
 *      a later key without '$' in it is then an unknown operator.
 *   5. The root is an AND whose kids are the top-level conjuncts, nested top-level $and flattened.
 */
#include <stdlib.h>
#include <string.h>

#include "match_int.h"

typedef struct pctx {
  filter_t *f;
  size_t nodes; /* PATH and logical nodes made so far */
} pctx;

static int parse_doc_into(pctx *c, const bson_iter_t *doc_iter_in, int depth, fnode *into, const char *where);
static int parse_value_form(pctx *c, bson_iter_t *ops, const char *where, int depth, fnode *into);

/* ---- Nodes ---- */

static fnode *node_new(pctx *c, fnode_kind kind) {
  if (++c->nodes > FILTER_MAX_NODES) {
    nx_err(NX_LIMIT, "filter: more than %d predicates", FILTER_MAX_NODES);
    return NULL;
  }
  fnode *n = nx_calloc(1, sizeof *n);
  if (!n) {
    nx_err(NX_NOMEM, "filter: out of memory");
    return NULL;
  }
  n->kind = kind;
  return n;
}

/* The status of a failed node_new (its message is already recorded). */
static int node_fail(const pctx *c) { return c->nodes > FILTER_MAX_NODES ? NX_LIMIT : NX_NOMEM; }

static void pred_free(pred *p) {
  nx_free(p->values);
  for (size_t i = 0; i < p->nregexes; i++)
    nx_regex_free(&p->regexes[i]);
  nx_free(p->regexes);
  fnode_free(p->sub);
  for (size_t i = 0; i < p->nall; i++)
    pred_free(&p->all[i]);
  nx_free(p->all);
}

void fnode_free(fnode *n) {
  if (!n) return;
  for (size_t i = 0; i < n->nkids; i++)
    fnode_free(n->kids[i]);
  nx_free(n->kids);
  doc_path_free(&n->path);
  nx_free(n->pstr);
  pred_free(&n->p);
  nx_free(n);
}

/* Attaches kid to parent; on failure frees kid. */
static int add_kid(fnode *parent, fnode *kid) {
  if ((parent->nkids & (parent->nkids - 1)) == 0) { /* grow at powers of two */
    size_t cap = parent->nkids ? parent->nkids * 2 : 2;
    fnode **k = nx_realloc(parent->kids, cap * sizeof *k);
    if (!k) {
      fnode_free(kid);
      return nx_err(NX_NOMEM, "filter: out of memory");
    }
    parent->kids = k;
  }
  parent->kids[parent->nkids++] = kid;
  return NX_OK;
}

/* A new PATH node for `path` (NULL: the element itself, inside a value-form $elemMatch),
 * attached to `into`. */
static int path_node(pctx *c, fnode *into, const char *path, filter_op op, fnode **out) {
  fnode *n = node_new(c, K_PATH);
  if (!n) return node_fail(c);
  n->op = op;
  int rc = add_kid(into, n);
  if (rc != NX_OK) return rc;
  if (path) {
    n->pstr = nx_strdup(path);
    if (!n->pstr) return nx_err(NX_NOMEM, "filter: out of memory");
    rc = doc_path_parse(path, -1, &n->path);
    if (rc != NX_OK) return nx_err_prefix(rc, "filter: ");
  }
  *out = n;
  return NX_OK;
}

/* ---- Operand helpers ---- */


/* Truncating conversion used by $mod (MongoDB truncates toward zero). */
static bool number_trunc(const bson_value_t *v, int64_t *out) { return doc_number_trunc_i64(v, out); }

static bool value_truthy(const bson_value_t *v) {
  switch (v->value_type) {
  case BSON_TYPE_BOOL:
    return v->value.v_bool;
  case BSON_TYPE_NULL:
  case BSON_TYPE_UNDEFINED:
    return false;
  case BSON_TYPE_INT32:
  case BSON_TYPE_INT64:
  case BSON_TYPE_DOUBLE:
  case BSON_TYPE_DECIMAL128:
    return doc_number_as_double(v) != 0.0;
  default:
    return true;
  }
}

static int cmp_qsort(const void *a, const void *b) {
  return doc_cmp_values((const bson_value_t *)a, (const bson_value_t *)b);
}

static const struct {
  const char *name;
  int code;
} k_type_names[] = {
    {"double", 1},    {"string", 2},     {"object", 3},      {"array", 4},    {"binData", 5},
    {"undefined", 6}, {"objectId", 7},   {"bool", 8},        {"date", 9},     {"null", 10},
    {"regex", 11},    {"dbPointer", 12}, {"javascript", 13}, {"symbol", 14},  {"javascriptWithScope", 15},
    {"int", 16},      {"timestamp", 17}, {"long", 18},       {"decimal", 19}, {"minKey", -1},
    {"maxKey", 127},
};

static int type_bit(int code) { return code == 127 ? 21 : code + 1; }

static int add_type(pred *p, const bson_value_t *v, const char *where) {
  int64_t code;
  if (v->value_type == BSON_TYPE_UTF8) {
    const char *s = v->value.v_utf8.str;
    if (strcmp(s, "number") == 0) {
      p->type_mask |= 1u << type_bit(1) | 1u << type_bit(16) | 1u << type_bit(18) | 1u << type_bit(19);
      return NX_OK;
    }
    for (size_t i = 0; i < sizeof k_type_names / sizeof k_type_names[0]; i++) {
      if (strcmp(s, k_type_names[i].name) == 0) {
        p->type_mask |= 1u << type_bit(k_type_names[i].code);
        return NX_OK;
      }
    }
    return nx_err(NX_INVALID, "filter: unknown type name '%.64s' for $type at '%s'", s, where);
  }
  if (doc_number_integral_i64(v, &code)) {
    if ((code >= 1 && code <= 19) || code == -1 || code == 127) {
      p->type_mask |= 1u << type_bit((int)code);
      return NX_OK;
    }
    return nx_err(NX_INVALID, "filter: invalid numerical type code %lld for $type at '%s'", (long long)code,
                  where);
  }
  return nx_err(NX_INVALID, "filter: $type needs a type name or number at '%s', got %s", where,
                doc_type_name(v->value_type));
}

/* Fills an $in-style list (values sorted and de-duplicated, regexes compiled). */
static int parse_in_list(pred *p, bson_iter_t *arr_it, const char *op, const char *where) {
  bson_iter_t it;
  if (!BSON_ITER_HOLDS_ARRAY(arr_it) || !bson_iter_recurse(arr_it, &it))
    return nx_err(NX_INVALID, "filter: %s needs an array at '%s'", op, where);
  size_t n = 0, nre = 0;
  bson_iter_t count = it;
  while (bson_iter_next(&count)) {
    if (++n > FILTER_MAX_IN)
      return nx_err(NX_LIMIT, "filter: %s at '%s' has more than %d elements", op, where, FILTER_MAX_IN);
    if (BSON_ITER_HOLDS_REGEX(&count)) nre++;
  }
  p->values = n - nre ? nx_calloc(n - nre, sizeof *p->values) : NULL;
  p->regexes = nre ? nx_calloc(nre, sizeof *p->regexes) : NULL;
  if ((n - nre && !p->values) || (nre && !p->regexes)) return nx_err(NX_NOMEM, "filter: out of memory");
  while (bson_iter_next(&it)) {
    bson_type_t t = bson_iter_type(&it);
    if (t == BSON_TYPE_REGEX) {
      const char *opts = NULL;
      const char *pat = bson_iter_regex(&it, &opts);
      int rc = nx_regex_compile(pat, strlen(pat), opts, "filter", where, &p->regexes[p->nregexes]);
      if (rc != NX_OK) return rc;
      p->nregexes++;
      continue;
    }
    if (t == BSON_TYPE_DOCUMENT) {
      bson_iter_t sub;
      if (bson_iter_recurse(&it, &sub) && bson_iter_next(&sub) && bson_iter_key(&sub)[0] == '$')
        return nx_err(NX_INVALID, "filter: cannot nest operator '%s' under %s at '%s'", bson_iter_key(&sub),
                      op, where);
    }
    if (t == BSON_TYPE_NULL) p->has_null = true;
    p->values[p->nvalues++] = *bson_iter_value(&it);
  }
  if (p->nvalues > 1) {
    qsort(p->values, p->nvalues, sizeof *p->values, cmp_qsort);
    size_t w = 1;
    for (size_t r = 1; r < p->nvalues; r++)
      if (doc_cmp_values(&p->values[w - 1], &p->values[r]) != 0) p->values[w++] = p->values[r];
    p->nvalues = w;
  }
  return NX_OK;
}

static bool is_logical(const char *k) {
  return strcmp(k, "$and") == 0 || strcmp(k, "$or") == 0 || strcmp(k, "$nor") == 0 ||
         strcmp(k, "$where") == 0 || strcmp(k, "$expr") == 0 || strcmp(k, "$text") == 0 ||
         strcmp(k, "$comment") == 0 || strcmp(k, "$jsonSchema") == 0;
}

/* $elemMatch: the object form (a filter on element documents) or the value form (operators on
 * the element itself). */
static int parse_elem_match(pctx *c, bson_iter_t *it, const char *where, int depth, pred *p) {
  if (!BSON_ITER_HOLDS_DOCUMENT(it))
    return nx_err(NX_INVALID, "filter: $elemMatch needs an object at '%s'", where);
  if (depth + 1 > FILTER_MAX_DEPTH)
    return nx_err(NX_LIMIT, "filter: nesting depth exceeds %d at '%s'", FILTER_MAX_DEPTH, where);
  p->kind = P_ELEMMATCH;
  p->sub = node_new(c, K_AND);
  if (!p->sub) return node_fail(c);
  bson_iter_t sub;
  if (!bson_iter_recurse(it, &sub)) return nx_err(NX_INVALID, "filter: malformed $elemMatch");
  bson_iter_t peek = sub;
  if (bson_iter_next(&peek) && bson_iter_key(&peek)[0] == '$' && !is_logical(bson_iter_key(&peek))) {
    p->value_form = true;
    return parse_value_form(c, &sub, where, depth + 1, p->sub);
  }
  return parse_doc_into(c, it, depth + 1, p->sub, where);
}

/* One operator of an operator document on `path` (NULL: value form), appended to `into`.
 * `ops` is the iterator over the whole operator document (for $regex + $options). */
static int parse_op(pctx *c, fnode *into, const char *path, const char *where, bson_iter_t *opit,
                    const bson_iter_t *ops, int depth) {
  const char *op = bson_iter_key(opit);
  const bson_value_t *v = bson_iter_value(opit);
  fnode *n = NULL;
  int rc;
  static const struct {
    const char *name;
    pred_kind kind;
    filter_op fop;
    bool negate;
  } cmps[] = {{"$eq", P_EQ, FILTER_OP_EQ, false}, {"$ne", P_EQ, FILTER_OP_NE, true},
              {"$gt", P_GT, FILTER_OP_GT, false}, {"$gte", P_GTE, FILTER_OP_GTE, false},
              {"$lt", P_LT, FILTER_OP_LT, false}, {"$lte", P_LTE, FILTER_OP_LTE, false}};
  for (size_t i = 0; i < sizeof cmps / sizeof cmps[0]; i++) {
    if (strcmp(op, cmps[i].name) != 0) continue;
    rc = path_node(c, into, path, cmps[i].fop, &n);
    if (rc != NX_OK) return rc;
    n->p.kind = cmps[i].kind;
    n->p.value = *v;
    n->negate = cmps[i].negate;
    return NX_OK;
  }
  if (strcmp(op, "$in") == 0 || strcmp(op, "$nin") == 0) {
    bool nin = op[1] == 'n';
    rc = path_node(c, into, path, nin ? FILTER_OP_NIN : FILTER_OP_IN, &n);
    if (rc != NX_OK) return rc;
    n->p.kind = P_IN;
    n->negate = nin;
    return parse_in_list(&n->p, opit, op, where);
  }
  if (strcmp(op, "$exists") == 0) {
    rc = path_node(c, into, path, FILTER_OP_EXISTS, &n);
    if (rc != NX_OK) return rc;
    n->p.kind = P_EXISTS;
    n->negate = !value_truthy(v);
    n->p.value.value_type = BSON_TYPE_BOOL;
    n->p.value.value.v_bool = !n->negate;
    return NX_OK;
  }
  if (strcmp(op, "$type") == 0) {
    rc = path_node(c, into, path, FILTER_OP_TYPE, &n);
    if (rc != NX_OK) return rc;
    n->p.kind = P_TYPE;
    if (v->value_type == BSON_TYPE_ARRAY) {
      bson_iter_t a;
      bson_iter_recurse(opit, &a);
      while (bson_iter_next(&a)) {
        rc = add_type(&n->p, bson_iter_value(&a), where);
        if (rc != NX_OK) return rc;
      }
      return NX_OK;
    }
    return add_type(&n->p, v, where);
  }
  if (strcmp(op, "$size") == 0) {
    int64_t sz;
    if (!doc_number_integral_i64(v, &sz))
      return nx_err(NX_INVALID, "filter: $size needs a whole number at '%s'", where);
    if (sz < 0) return nx_err(NX_INVALID, "filter: $size may not be negative at '%s'", where);
    rc = path_node(c, into, path, FILTER_OP_SIZE, &n);
    if (rc != NX_OK) return rc;
    n->p.kind = P_SIZE;
    n->p.value.value_type = BSON_TYPE_INT64;
    n->p.value.value.v_int64 = sz;
    return NX_OK;
  }
  if (strcmp(op, "$mod") == 0) {
    bson_iter_t a;
    bson_value_t args[2];
    size_t na = 0;
    if (v->value_type != BSON_TYPE_ARRAY || !bson_iter_recurse(opit, &a))
      return nx_err(NX_INVALID, "filter: $mod needs an array [divisor, remainder] at '%s'", where);
    while (bson_iter_next(&a)) {
      if (na == 2) return nx_err(NX_INVALID, "filter: $mod has too many elements at '%s'", where);
      args[na++] = *bson_iter_value(&a);
    }
    if (na < 2) return nx_err(NX_INVALID, "filter: $mod has not enough elements at '%s'", where);
    int64_t d, r;
    if (!number_trunc(&args[0], &d) || !number_trunc(&args[1], &r))
      return nx_err(NX_INVALID, "filter: $mod needs finite numbers at '%s'", where);
    if (d == 0) return nx_err(NX_INVALID, "filter: $mod divisor cannot be 0 at '%s'", where);
    rc = path_node(c, into, path, FILTER_OP_MOD, &n);
    if (rc != NX_OK) return rc;
    n->p.kind = P_MOD;
    n->p.mod_d = d;
    n->p.mod_r = r;
    return NX_OK;
  }
  if (strcmp(op, "$regex") == 0) {
    const char *opts = NULL;
    bson_iter_t o = *ops;
    while (bson_iter_next(&o)) {
      if (strcmp(bson_iter_key(&o), "$options") == 0) {
        if (!BSON_ITER_HOLDS_UTF8(&o))
          return nx_err(NX_INVALID, "filter: $options needs a string at '%s'", where);
        opts = bson_iter_utf8(&o, NULL);
      }
    }
    const char *pat;
    size_t plen;
    if (v->value_type == BSON_TYPE_UTF8) {
      pat = v->value.v_utf8.str;
      plen = v->value.v_utf8.len;
    } else if (v->value_type == BSON_TYPE_REGEX) {
      pat = v->value.v_regex.regex;
      plen = strlen(pat);
      if (opts && v->value.v_regex.options && v->value.v_regex.options[0])
        return nx_err(NX_INVALID, "filter: options set in both $regex and $options at '%s'", where);
      if (!opts) opts = v->value.v_regex.options;
    } else {
      return nx_err(NX_INVALID, "filter: $regex needs a string or regex at '%s'", where);
    }
    rc = path_node(c, into, path, FILTER_OP_REGEX, &n);
    if (rc != NX_OK) return rc;
    n->p.kind = P_REGEX;
    n->p.regexes = nx_calloc(1, sizeof *n->p.regexes);
    if (!n->p.regexes) return nx_err(NX_NOMEM, "filter: out of memory");
    rc = nx_regex_compile(pat, plen, opts, "filter", where, &n->p.regexes[0]);
    if (rc != NX_OK) return rc;
    n->p.nregexes = 1;
    return NX_OK;
  }
  if (strcmp(op, "$options") == 0) {
    bson_iter_t o = *ops;
    while (bson_iter_next(&o))
      if (strcmp(bson_iter_key(&o), "$regex") == 0) return NX_OK; /* consumed by $regex */
    return nx_err(NX_INVALID, "filter: $options needs a $regex at '%s'", where);
  }
  if (strcmp(op, "$all") == 0) {
    rc = path_node(c, into, path, FILTER_OP_ALL, &n);
    if (rc != NX_OK) return rc;
    n->p.kind = P_ALL;
    bson_iter_t a;
    if (v->value_type != BSON_TYPE_ARRAY || !bson_iter_recurse(opit, &a))
      return nx_err(NX_INVALID, "filter: $all needs an array at '%s'", where);
    size_t cnt = 0;
    bson_iter_t cit = a;
    while (bson_iter_next(&cit))
      if (++cnt > FILTER_MAX_IN)
        return nx_err(NX_LIMIT, "filter: $all at '%s' has more than %d elements", where, FILTER_MAX_IN);
    if (cnt == 0) return NX_OK; /* matches nothing */
    n->p.all = nx_calloc(cnt, sizeof *n->p.all);
    n->p.values = nx_calloc(cnt, sizeof *n->p.values);
    if (!n->p.all || !n->p.values) return nx_err(NX_NOMEM, "filter: out of memory");
    while (bson_iter_next(&a)) {
      pred *m = &n->p.all[n->p.nall++];
      bson_type_t t = bson_iter_type(&a);
      bson_iter_t peek;
      if (t == BSON_TYPE_REGEX) {
        const char *opts = NULL;
        const char *pat = bson_iter_regex(&a, &opts);
        m->kind = P_REGEX;
        m->regexes = nx_calloc(1, sizeof *m->regexes);
        if (!m->regexes) return nx_err(NX_NOMEM, "filter: out of memory");
        rc = nx_regex_compile(pat, strlen(pat), opts, "filter", where, &m->regexes[0]);
        if (rc != NX_OK) return rc;
        m->nregexes = 1;
      } else if (t == BSON_TYPE_DOCUMENT && bson_iter_recurse(&a, &peek) && bson_iter_next(&peek) &&
                 bson_iter_key(&peek)[0] == '$') {
        if (strcmp(bson_iter_key(&peek), "$elemMatch") != 0)
          return nx_err(NX_INVALID,
                        "filter: no operator other than $elemMatch allowed in $all, "
                        "got '%s' at '%s'",
                        bson_iter_key(&peek), where);
        rc = parse_elem_match(c, &peek, where, depth, m);
        if (rc != NX_OK) return rc;
      } else {
        m->kind = P_EQ;
        m->value = *bson_iter_value(&a);
        n->p.values[n->p.nvalues++] = m->value;
      }
    }
    if (n->p.nvalues > 1) qsort(n->p.values, n->p.nvalues, sizeof *n->p.values, cmp_qsort);
    return NX_OK;
  }
  if (strcmp(op, "$elemMatch") == 0) {
    rc = path_node(c, into, path, FILTER_OP_ELEMMATCH, &n);
    if (rc != NX_OK) return rc;
    return parse_elem_match(c, opit, where, depth, &n->p);
  }
  if (strcmp(op, "$not") == 0) {
    if (depth + 1 > FILTER_MAX_DEPTH)
      return nx_err(NX_LIMIT, "filter: nesting depth exceeds %d at '%s'", FILTER_MAX_DEPTH, where);
    rc = path_node(c, into, path, FILTER_OP_NOT, &n);
    if (rc != NX_OK) return rc;
    n->p.kind = P_NOT;
    n->p.sub = node_new(c, K_AND);
    if (!n->p.sub) return node_fail(c);
    if (v->value_type == BSON_TYPE_REGEX) {
      fnode *r;
      rc = path_node(c, n->p.sub, path, FILTER_OP_REGEX, &r);
      if (rc != NX_OK) return rc;
      r->p.kind = P_REGEX;
      r->p.regexes = nx_calloc(1, sizeof *r->p.regexes);
      if (!r->p.regexes) return nx_err(NX_NOMEM, "filter: out of memory");
      rc = nx_regex_compile(v->value.v_regex.regex, strlen(v->value.v_regex.regex), v->value.v_regex.options,
                            "filter", where, &r->p.regexes[0]);
      if (rc != NX_OK) return rc;
      r->p.nregexes = 1;
      return NX_OK;
    }
    if (v->value_type != BSON_TYPE_DOCUMENT)
      return nx_err(NX_INVALID, "filter: $not needs a regex or a document at '%s'", where);
    bson_iter_t sub;
    bson_iter_recurse(opit, &sub);
    bson_iter_t peek = sub;
    if (!bson_iter_next(&peek)) return nx_err(NX_INVALID, "filter: $not cannot be empty at '%s'", where);
    if (bson_iter_key(&peek)[0] != '$')
      return nx_err(NX_INVALID, "filter: $not needs operators, got field '%s' at '%s'", bson_iter_key(&peek),
                    where);
    bson_iter_t all = sub;
    while (bson_iter_next(&sub)) {
      rc = parse_op(c, n->p.sub, path, where, &sub, &all, depth + 1);
      if (rc != NX_OK) return rc;
    }
    return NX_OK;
  }
  if (strcmp(op, "$comment") == 0) return NX_OK;
  return nx_err(NX_INVALID, "filter: unknown operator '%s' at '%s'", op, where);
}

/* The operators of a value-form $elemMatch: each applies to the element itself. */
static int parse_value_form(pctx *c, bson_iter_t *ops, const char *where, int depth, fnode *into) {
  bson_iter_t all = *ops;
  while (bson_iter_next(ops)) {
    const char *k = bson_iter_key(ops);
    if (k[0] != '$') return nx_err(NX_INVALID, "filter: unknown operator '%s' at '%s'", k, where);
    int rc = parse_op(c, into, NULL, where, ops, &all, depth);
    if (rc != NX_OK) return rc;
  }
  return NX_OK;
}

/* One field of a filter: {path: value}. */
static int parse_field(pctx *c, fnode *into, const char *path, bson_iter_t *it, int depth) {
  bson_type_t t = bson_iter_type(it);
  fnode *n;
  int rc;
  if (path[0] == '\0') return nx_err(NX_INVALID, "filter: empty field name");
  if (t == BSON_TYPE_DOCUMENT) {
    bson_iter_t sub;
    if (!bson_iter_recurse(it, &sub)) return nx_err(NX_INVALID, "filter: malformed BSON at '%s'", path);
    bson_iter_t peek = sub;
    if (bson_iter_next(&peek) && bson_iter_key(&peek)[0] == '$') {
      bson_iter_t all = sub;
      while (bson_iter_next(&sub)) {
        rc = parse_op(c, into, path, path, &sub, &all, depth);
        if (rc != NX_OK) return rc;
      }
      return NX_OK;
    }
  }
  if (t == BSON_TYPE_REGEX) {
    rc = path_node(c, into, path, FILTER_OP_REGEX, &n);
    if (rc != NX_OK) return rc;
    const char *opts = NULL;
    const char *pat = bson_iter_regex(it, &opts);
    n->p.kind = P_REGEX;
    n->p.value = *bson_iter_value(it);
    n->p.regexes = nx_calloc(1, sizeof *n->p.regexes);
    if (!n->p.regexes) return nx_err(NX_NOMEM, "filter: out of memory");
    rc = nx_regex_compile(pat, strlen(pat), opts, "filter", path, &n->p.regexes[0]);
    if (rc != NX_OK) return rc;
    n->p.nregexes = 1;
    return NX_OK;
  }
  rc = path_node(c, into, path, FILTER_OP_EQ, &n);
  if (rc != NX_OK) return rc;
  n->p.kind = P_EQ;
  n->p.value = *bson_iter_value(it);
  return NX_OK;
}

/* $and / $or / $nor: a non-empty array of filter documents. */
static int parse_logical(pctx *c, fnode *into, const char *op, bson_iter_t *it, int depth,
                         const char *where) {
  if (depth + 1 > FILTER_MAX_DEPTH)
    return nx_err(NX_LIMIT, "filter: nesting depth exceeds %d at '%s'", FILTER_MAX_DEPTH, op);
  fnode_kind kind = op[1] == 'a' ? K_AND : (op[2] == 'r' ? K_OR : K_NOR);
  fnode *n = node_new(c, kind);
  if (!n) return node_fail(c);
  int rc = add_kid(into, n);
  if (rc != NX_OK) return rc;
  bson_iter_t a;
  if (!BSON_ITER_HOLDS_ARRAY(it) || !bson_iter_recurse(it, &a))
    return nx_err(NX_INVALID, "filter: %s must be a nonempty array%s%s", op, where ? " at " : "",
                  where ? where : "");
  size_t cnt = 0;
  while (bson_iter_next(&a)) {
    cnt++;
    if (!BSON_ITER_HOLDS_DOCUMENT(&a)) return nx_err(NX_INVALID, "filter: %s entries must be objects", op);
    fnode *kid = node_new(c, K_AND);
    if (!kid) return node_fail(c);
    rc = add_kid(n, kid);
    if (rc != NX_OK) return rc;
    rc = parse_doc_into(c, &a, depth + 1, kid, where);
    if (rc != NX_OK) return rc;
  }
  if (cnt == 0) return nx_err(NX_INVALID, "filter: %s must be a nonempty array", op);
  return NX_OK;
}

/* The fields of the document under `doc_iter_in` become conjuncts of `into`. `where` is the
 * enclosing path ($elemMatch) for messages, or NULL at the top. */
static int parse_doc_into(pctx *c, const bson_iter_t *doc_iter_in, int depth, fnode *into,
                          const char *where) {
  if (depth > FILTER_MAX_DEPTH) return nx_err(NX_LIMIT, "filter: nesting depth exceeds %d", FILTER_MAX_DEPTH);
  bson_iter_t it;
  if (!bson_iter_recurse(doc_iter_in, &it)) return nx_err(NX_INVALID, "filter: malformed BSON");
  while (bson_iter_next(&it)) {
    const char *k = bson_iter_key(&it);
    int rc;
    if (k[0] == '$') {
      if (strcmp(k, "$and") == 0 || strcmp(k, "$or") == 0 || strcmp(k, "$nor") == 0)
        rc = parse_logical(c, into, k, &it, depth, where);
      else if (strcmp(k, "$comment") == 0)
        rc = NX_OK;
      else if (strcmp(k, "$where") == 0 || strcmp(k, "$expr") == 0 || strcmp(k, "$text") == 0 ||
               strcmp(k, "$jsonSchema") == 0)
        rc = nx_err(NX_INVALID, "filter: unsupported operator '%s'", k);
      else
        rc = nx_err(NX_INVALID, "filter: unknown top level operator '%s'", k);
    } else {
      rc = parse_field(c, into, k, &it, depth);
    }
    if (rc != NX_OK) return rc;
  }
  if (it.err_off) return nx_err(NX_INVALID, "filter: malformed BSON at offset %u", it.err_off);
  return NX_OK;
}

/* Splices nested AND nodes into the root, so the root's kids are the conjuncts. */
static int flatten_root(fnode *root) {
  size_t i = 0;
  while (i < root->nkids) {
    fnode *k = root->kids[i];
    if (k->kind != K_AND) {
      i++;
      continue;
    }
    /* replace kid i by its kids */
    size_t add = k->nkids;
    size_t newn = root->nkids - 1 + add;
    size_t cap = 1;
    while (cap < newn)
      cap *= 2;
    fnode **nk = nx_realloc(root->kids, (cap < 2 ? 2 : cap) * sizeof *nk);
    if (!nk) return nx_err(NX_NOMEM, "filter: out of memory");
    root->kids = nk;
    memmove(&nk[i + add], &nk[i + 1], (root->nkids - i - 1) * sizeof *nk);
    if (add) memcpy(&nk[i], k->kids, add * sizeof *nk);
    root->nkids = newn;
    k->nkids = 0;
    fnode_free(k);
  }
  return NX_OK;
}

int filter_parse(const bson_t *spec, filter_t **out) {
  *out = NULL;
  if (!spec) return nx_err(NX_INVALID, "filter: NULL");
  if (spec->len > FILTER_MAX_BYTES)
    return nx_err(NX_LIMIT, "filter: %u bytes exceeds the limit of %u bytes", spec->len, FILTER_MAX_BYTES);
  if (doc_depth_capped(spec, FILTER_MAX_BSON_DEPTH) > FILTER_MAX_BSON_DEPTH)
    return nx_err(NX_LIMIT, "filter: nesting depth exceeds %d (BSON nesting over %d)", FILTER_MAX_DEPTH,
                  FILTER_MAX_BSON_DEPTH);
  filter_t *f = nx_calloc(1, sizeof *f);
  if (!f) return nx_err(NX_NOMEM, "filter: out of memory");
  f->true_value.value_type = BSON_TYPE_BOOL;
  f->true_value.value.v_bool = true;
  f->false_value.value_type = BSON_TYPE_BOOL;
  f->false_value.value.v_bool = false;
  pctx c = {f, 0};
  int rc = NX_OK;
  f->spec = bson_copy(spec);
  f->root = node_new(&c, K_AND);
  if (!f->spec || !f->root) rc = nx_err(NX_NOMEM, "filter: out of memory");
  bson_iter_t top;
  if (rc == NX_OK) {
    if (!bson_iter_init(&top, f->spec)) rc = nx_err(NX_INVALID, "filter: malformed BSON");
  }
  if (rc == NX_OK) {
    while (bson_iter_next(&top)) {
      const char *k = bson_iter_key(&top);
      if (k[0] == '$') {
        if (strcmp(k, "$and") == 0 || strcmp(k, "$or") == 0 || strcmp(k, "$nor") == 0)
          rc = parse_logical(&c, f->root, k, &top, 0, NULL);
        else if (strcmp(k, "$comment") == 0)
          rc = NX_OK;
        else if (strcmp(k, "$where") == 0 || strcmp(k, "$expr") == 0 || strcmp(k, "$text") == 0 ||
                 strcmp(k, "$jsonSchema") == 0)
          rc = nx_err(NX_INVALID, "filter: unsupported operator '%s'", k);
        else
          rc = nx_err(NX_INVALID, "filter: unknown top level operator '%s'", k);
      } else {
        rc = parse_field(&c, f->root, k, &top, 0);
      }
      if (rc != NX_OK) break;
    }
    if (rc == NX_OK && top.err_off)
      rc = nx_err(NX_INVALID, "filter: malformed BSON at offset %u", top.err_off);
  }
  if (rc == NX_OK) rc = flatten_root(f->root);
  if (rc != NX_OK) {
    filter_free(f);
    return rc;
  }
  *out = f;
  return NX_OK;
}

void filter_free(filter_t *f) {
  if (!f) return;
  fnode_free(f->root);
  if (f->spec) bson_destroy(f->spec);
  nx_free(f);
}

bool filter_is_empty(const filter_t *f) { return f->root->nkids == 0; }

size_t filter_conjunct_count(const filter_t *f) { return f->root->nkids; }

void filter_conjunct_get(const filter_t *f, size_t i, filter_conjunct *out) {
  memset(out, 0, sizeof *out);
  const fnode *n = f->root->kids[i];
  switch (n->kind) {
  case K_OR:
    out->op = FILTER_OP_OR;
    return;
  case K_NOR:
    out->op = FILTER_OP_NOR;
    return;
  case K_AND:
    out->op = FILTER_OP_AND;
    return;
  case K_TRUE:
    out->op = FILTER_OP_TRUE;
    return;
  case K_FALSE:
    out->op = FILTER_OP_FALSE;
    return;
  case K_PATH:
    break;
  }
  out->path = n->pstr;
  out->op = n->op;
  switch (n->p.kind) {
  case P_EQ:
  case P_GT:
  case P_GTE:
  case P_LT:
  case P_LTE:
  case P_SIZE:
    out->value = &n->p.value;
    break;
  case P_EXISTS:
    out->value = n->negate ? &f->false_value : &f->true_value;
    break;
  case P_IN:
    out->values = n->p.values;
    out->n_values = n->p.nvalues;
    out->has_regex = n->p.nregexes > 0;
    break;
  case P_ALL:
    out->values = n->p.values;
    out->n_values = n->p.nvalues;
    out->has_regex = n->p.nvalues < n->p.nall;
    break;
  case P_REGEX:
    out->has_regex = true;
    break;
  default:
    break;
  }
}
