/*
 * update.c: update operators and replacement documents (MongoDB 5+ semantics).
 *
 * How an update is applied: the document is opened as a lazy tree (mnode): a node is either a
 * raw BSON value borrowed from the input document or the update's spec, or an expanded
 * document/array whose fields are nodes. Only what an operator walks through is expanded; the
 * rest is copied back as raw bytes when the tree is written out. So an update touching one field
 * of a large document expands one path.
 *
 *     root (expanded doc) -- _id (raw) -- a (expanded doc) -- b (raw, replaced by $set)
 *                          \- tags (raw array, untouched, copied as bytes)
 *
 * Invariants:
 *   1. Parsing checks everything that does not depend on the document: operator names, operand
 *      types, path syntax and conflicts ("Updating the path 'a.b' would create a conflict at
 *      'a'"). Application only fails on document-dependent errors (types, arrays, _id).
 *   2. Items are applied in path order (component by component, numbers numerically), which is
 *      MongoDB 5.0's order; new fields are appended to their document in that order.
 *   3. Raw nodes borrow from the input document and the spec copy; both outlive the tree.
 *   4. `_id` may not change; a replacement keeps the original `_id` first.
 *   5. `changed` is a byte comparison of the output with the input.
 *   6. In place: when every item changes an existing fixed-size scalar (reached through documents
 *      only) into a value of the same size, the output is the input's bytes with those values
 *      overwritten (apply_in_place), byte for byte what the tree would write; anything else,
 *      errors included, goes through the tree (tests/test_match.c compares the two).
 */
#include <stdlib.h>
#include <string.h>

#include "match_int.h"

typedef enum uop {
  U_SET,
  U_UNSET,
  U_INC,
  U_MUL,
  U_MIN,
  U_MAX,
  U_RENAME,
  U_CURDATE,
  U_SETONINSERT,
  U_PUSH,
  U_ADDTOSET,
  U_POP,
  U_PULL,
  U_PULLALL
} uop;

typedef struct k_op_t {
  const char *name;
  uop op;
} k_op_t;
static const k_op_t k_ops[] = {{"$set", U_SET},
             {"$unset", U_UNSET},
             {"$inc", U_INC},
             {"$mul", U_MUL},
             {"$min", U_MIN},
             {"$max", U_MAX},
             {"$rename", U_RENAME},
             {"$currentDate", U_CURDATE},
             {"$setOnInsert", U_SETONINSERT},
             {"$push", U_PUSH},
             {"$addToSet", U_ADDTOSET},
             {"$pop", U_POP},
             {"$pull", U_PULL},
             {"$pullAll", U_PULLALL}};

#define POS_DOLLAR (-2) /* path component "$" */
#define POS_ALL (-3)    /* path component "$[]" */
#define MAX_BACKFILL 1500000

typedef struct uitem {
  uop op;
  const char *opname; /* "$set" ... */
  const char *pstr;   /* the path as written (a key of the spec, borrowed) */
  doc_path path;      /* parsed; index[i] is POS_DOLLAR / POS_ALL for "$" / "$[]" */
  bson_value_t val;   /* the operand (borrowed from the spec copy) */
  /* $push / $addToSet */
  bson_value_t *each; /* values to add (owned array of borrowed values) */
  size_t neach;
  bool has_slice; /* $slice given */
  int64_t slice;
  bool has_position; /* $position given */
  int64_t position;
  int sort_kind; /* 0 none, 1 by whole value (sort_dir), 2 by fields (sort) */
  int sort_dir;
  sort_t *sort;
  filter_t *pull; /* $pull: {"x": {"$elemMatch": cond}} */
  /* $rename */
  const char *to_str; /* the target as written (a string of the spec, borrowed) */
  doc_path to;
  /* $currentDate */
  bool timestamp;
} uitem;

struct update {
  const bson_t *spec; /* spec_copy, or the caller's spec (UPDATE_PARSE_BORROW) */
  bson_t *spec_copy;  /* owned copy, or NULL */
  bool replacement;   /* spec is a replacement document */
  uitem *items;       /* sorted by path; = item_store */
  size_t n;
  bool positional; /* some path uses "$" */
  bool in_place;   /* every item may be applied by patching bytes (see apply_in_place) */
  uitem item_store[]; /* allocated with the update */
};

/* =========================================================================================
 * The lazy document tree
 * ========================================================================================= */
typedef struct mfield mfield;
typedef struct mnode {
  bson_type_t type; /* BSON type of the value */
  bool expanded;    /* true: f[0..n) hold the fields/elements; false: v is the value */
  bson_value_t v;   /* raw value (borrowed) when !expanded */
  mfield *f;
  uint32_t n, cap;
} mnode;

struct mfield {
  const char *key; /* borrowed; unused in arrays */
  uint32_t klen;
  mnode node;
};

static void mnode_clear(mnode *m) {
  if (m->expanded) {
    for (uint32_t i = 0; i < m->n; i++)
      mnode_clear(&m->f[i].node);
    nx_free(m->f);
  }
  memset(m, 0, sizeof *m);
}

static void mnode_set_raw(mnode *m, const bson_value_t *v) {
  mnode_clear(m);
  m->type = v->value_type;
  m->v = *v;
}

static void mnode_set_null(mnode *m) {
  mnode_clear(m);
  m->type = BSON_TYPE_NULL;
  m->v.value_type = BSON_TYPE_NULL;
}

static void mnode_set_empty(mnode *m, bson_type_t t) {
  mnode_clear(m);
  m->type = t;
  m->expanded = true;
}

static int reserve(mnode *m, uint32_t extra) {
  if (m->n + extra <= m->cap) return NX_OK;
  uint32_t cap = m->cap ? m->cap : 4;
  while (cap < m->n + extra)
    cap *= 2;
  mfield *f = nx_realloc(m->f, (size_t)cap * sizeof *f);
  if (!f) return nx_err(NX_NOMEM, "update: out of memory");
  m->f = f;
  m->cap = cap;
  return NX_OK;
}

/* Expands a raw document or array node into its fields (one level). */
static int mnode_expand(mnode *m) {
  if (m->expanded) return NX_OK;
  bson_iter_t it;
  if (!bson_iter_init_from_data(&it, m->v.value.v_doc.data, m->v.value.v_doc.data_len))
    return nx_err(NX_INVALID, "update: malformed BSON");
  m->expanded = true;
  m->f = NULL;
  m->n = m->cap = 0;
  while (bson_iter_next(&it)) {
    int rc = reserve(m, 1);
    if (rc != NX_OK) return rc;
    mfield *f = &m->f[m->n++];
    memset(f, 0, sizeof *f);
    f->key = bson_iter_key(&it);
    f->klen = bson_iter_key_len(&it);
    f->node.type = bson_iter_type(&it);
    f->node.v = *bson_iter_value(&it);
  }
  return NX_OK;
}

static mfield *mdoc_find(mnode *m, const char *key, uint32_t klen) {
  for (uint32_t i = 0; i < m->n; i++)
    if (m->f[i].klen == klen && memcmp(m->f[i].key, key, klen) == 0) return &m->f[i];
  return NULL;
}

static mfield *mdoc_add(mnode *m, const char *key, uint32_t klen) {
  if (reserve(m, 1) != NX_OK) return NULL;
  mfield *f = &m->f[m->n++];
  memset(f, 0, sizeof *f);
  f->key = key;
  f->klen = klen;
  mnode_set_null(&f->node);
  return f;
}

static void mremove(mnode *m, uint32_t idx) {
  mnode_clear(&m->f[idx].node);
  memmove(&m->f[idx], &m->f[idx + 1], (size_t)(m->n - idx - 1) * sizeof *m->f);
  m->n--;
}

static int mnode_write(bson_t *out, const char *key, int klen, const mnode *m);

static int write_fields(bson_t *out, const mnode *m) {
  char ibuf[16];
  for (uint32_t i = 0; i < m->n; i++) {
    const char *k;
    int kl;
    if (m->type == BSON_TYPE_ARRAY) {
      kl = (int)bson_uint32_to_string(i, &k, ibuf, sizeof ibuf);
    } else {
      k = m->f[i].key;
      kl = (int)m->f[i].klen;
    }
    int rc = mnode_write(out, k, kl, &m->f[i].node);
    if (rc != NX_OK) return rc;
  }
  return NX_OK;
}

static int mnode_write(bson_t *out, const char *key, int klen, const mnode *m) {
  if (!m->expanded) {
    if (!bson_append_value(out, key, klen, &m->v))
      return nx_err(NX_LIMIT, "update: document exceeds the BSON size limit");
    return NX_OK;
  }
  bson_t child;
  bool ok = m->type == BSON_TYPE_ARRAY ? bson_append_array_begin(out, key, klen, &child)
                                       : bson_append_document_begin(out, key, klen, &child);
  if (!ok) return nx_err(NX_LIMIT, "update: document exceeds the BSON size limit");
  int rc = write_fields(&child, m);
  ok =
      m->type == BSON_TYPE_ARRAY ? bson_append_array_end(out, &child) : bson_append_document_end(out, &child);
  if (rc == NX_OK && !ok) rc = nx_err(NX_LIMIT, "update: document exceeds the BSON size limit");
  return rc;
}

/* The value of a node; an expanded node is serialised into `tmp` (caller destroys it when
 * *used_tmp). */
static int mnode_value(const mnode *m, bson_t *tmp, bool *used_tmp, bson_value_t *out) {
  *used_tmp = false;
  if (!m->expanded) {
    *out = m->v;
    return NX_OK;
  }
  bson_init(tmp);
  *used_tmp = true;
  int rc = write_fields(tmp, m);
  if (rc != NX_OK) return rc;
  out->value_type = m->type;
  out->value.v_doc.data = (uint8_t *)(uintptr_t)bson_get_data(tmp);
  out->value.v_doc.data_len = tmp->len;
  return NX_OK;
}

/* =========================================================================================
 * Parsing
 * ========================================================================================= */

static void uitem_free(uitem *it) {
  doc_path_free(&it->path);
  nx_free(it->each);
  sort_free(it->sort);
  filter_free(it->pull);
  doc_path_free(&it->to);
}

void update_free(update_t *u) {
  if (!u) return;
  for (size_t i = 0; i < u->n; i++)
    uitem_free(&u->items[i]);
  if (u->spec_copy) bson_destroy(u->spec_copy);
  nx_free(u);
}

bool update_is_replacement(const update_t *u) { return u->replacement; }

bool update_is_positional(const update_t *u) { return u->positional; }

/* Parses and checks an update path: no empty components, '$' only as "$" (once) or "$[]". */
static int parse_upath(const char *op, const char *s, doc_path *p, bool allow_positional, bool *positional) {
  if (s[0] == '\0') return nx_err(NX_INVALID, "update: an empty field name in %s", op);
  int rc = doc_path_parse(s, -1, p);
  if (rc != NX_OK) return nx_err_prefix(rc, "update: %s: ", op);
  int dollars = 0;
  for (size_t i = 0; i < p->n; i++) {
    const char *c = p->parts[i];
    if (c[0] != '$') continue;
    if (allow_positional && strcmp(c, "$") == 0) {
      p->index[i] = POS_DOLLAR;
      if (++dollars > 1) return nx_err(NX_INVALID, "update: too many positional ($) elements in '%s'", s);
      if (i == 0)
        return nx_err(NX_INVALID, "update: cannot use the positional operator at the start of '%s'", s);
      *positional = true;
    } else if (allow_positional && strcmp(c, "$[]") == 0) {
      if (i == 0) return nx_err(NX_INVALID, "update: cannot use '$[]' at the start of '%s'", s);
      p->index[i] = POS_ALL;
    } else if (c[1] == '[') {
      return nx_err(NX_INVALID,
                    "update: filtered positional operator '%s' in '%s' is not "
                    "supported (no arrayFilters)",
                    c, s);
    } else {
      return nx_err(NX_INVALID,
                    "update: the dollar ($) prefixed field '%s' in '%s' is not valid "
                    "for %s",
                    c, s, op);
    }
  }
  return NX_OK;
}


/* Collects an array's elements as borrowed values. */
static int collect_array(const bson_value_t *arr, bson_value_t **out, size_t *n) {
  bson_iter_t it;
  *out = NULL;
  *n = 0;
  if (!bson_iter_init_from_data(&it, arr->value.v_doc.data, arr->value.v_doc.data_len))
    return nx_err(NX_INVALID, "update: malformed array");
  size_t cnt = 0;
  bson_iter_t c = it;
  while (bson_iter_next(&c))
    cnt++;
  if (cnt > FILTER_MAX_IN)
    return nx_err(NX_LIMIT, "update: more than %d values in one $each/$pullAll list", FILTER_MAX_IN);
  if (cnt == 0) return NX_OK;
  *out = nx_calloc(cnt, sizeof **out);
  if (!*out) return nx_err(NX_NOMEM, "update: out of memory");
  while (bson_iter_next(&it))
    (*out)[(*n)++] = *bson_iter_value(&it);
  return NX_OK;
}

/* $push / $addToSet operand: a value, or {$each: [...], $slice, $sort, $position}. */
static int parse_push(uitem *it, bson_iter_t *vit) {
  bool push = it->op == U_PUSH;
  bson_iter_t sub, probe;
  bool has_each = false;
  if (BSON_ITER_HOLDS_DOCUMENT(vit) && bson_iter_recurse(vit, &probe)) {
    while (bson_iter_next(&probe))
      if (strcmp(bson_iter_key(&probe), "$each") == 0) has_each = true;
  }
  if (!has_each) {
    it->each = nx_calloc(1, sizeof *it->each);
    if (!it->each) return nx_err(NX_NOMEM, "update: out of memory");
    it->each[0] = it->val;
    it->neach = 1;
    return NX_OK;
  }
  bson_iter_recurse(vit, &sub);
  while (bson_iter_next(&sub)) {
    const char *k = bson_iter_key(&sub);
    const bson_value_t *v = bson_iter_value(&sub);
    if (strcmp(k, "$each") == 0) {
      if (v->value_type != BSON_TYPE_ARRAY)
        return nx_err(NX_INVALID,
                      "update: the argument to $each in %s must be an array but it "
                      "was of type %s at '%s'",
                      it->opname, doc_type_name(v->value_type), it->pstr);
      int rc = collect_array(v, &it->each, &it->neach);
      if (rc != NX_OK) return rc;
    } else if (!push) {
      return nx_err(NX_INVALID,
                    "update: found unexpected field '%s' after $each in $addToSet at "
                    "'%s'",
                    k, it->pstr);
    } else if (strcmp(k, "$slice") == 0) {
      if (!doc_number_integral_i64(v, &it->slice))
        return nx_err(NX_INVALID, "update: the value for $slice must be an integer at '%s'", it->pstr);
      it->has_slice = true;
    } else if (strcmp(k, "$position") == 0) {
      if (!doc_number_integral_i64(v, &it->position))
        return nx_err(NX_INVALID, "update: the value for $position must be an integer at '%s'", it->pstr);
      it->has_position = true;
    } else if (strcmp(k, "$sort") == 0) {
      int64_t d;
      if (doc_number_integral_i64(v, &d)) {
        if (d != 1 && d != -1)
          return nx_err(NX_INVALID,
                        "update: the $sort element value must be either 1 or -1 at "
                        "'%s'",
                        it->pstr);
        it->sort_kind = 1;
        it->sort_dir = (int)d;
      } else if (v->value_type == BSON_TYPE_DOCUMENT) {
        bson_t sd;
        if (!bson_init_static(&sd, v->value.v_doc.data, v->value.v_doc.data_len))
          return nx_err(NX_INVALID, "update: malformed $sort");
        int rc = sort_parse(&sd, &it->sort);
        if (rc != NX_OK) return nx_err_prefix(rc, "update: $push $sort at '%s': ", it->pstr);
        it->sort_kind = 2;
      } else {
        return nx_err(NX_INVALID,
                      "update: the $sort is invalid: use 1/-1 to sort the whole "
                      "element, or {field: 1/-1} to sort embedded fields, at '%s'",
                      it->pstr);
      }
    } else {
      return nx_err(NX_INVALID, "update: unrecognized clause in $push: %s at '%s'", k, it->pstr);
    }
  }
  return NX_OK;
}

static int parse_pull(uitem *it) {
  bson_t w, x, em;
  bson_init(&w);
  bson_append_document_begin(&w, "x", 1, &x);
  const bson_value_t *v = &it->val;
  bool opdoc = false;
  if (v->value_type == BSON_TYPE_DOCUMENT) {
    bson_iter_t probe;
    if (bson_iter_init_from_data(&probe, v->value.v_doc.data, v->value.v_doc.data_len) &&
        bson_iter_next(&probe)) {
      const char *k = bson_iter_key(&probe);
      opdoc = k[0] == '$' && strcmp(k, "$and") != 0 && strcmp(k, "$or") != 0 && strcmp(k, "$nor") != 0;
    }
  }
  if (v->value_type == BSON_TYPE_DOCUMENT) {
    bson_append_value(&x, "$elemMatch", -1, v);
    (void)opdoc;
  } else {
    bson_append_document_begin(&x, "$elemMatch", -1, &em);
    bson_append_value(&em, v->value_type == BSON_TYPE_REGEX ? "$regex" : "$eq", -1, v);
    bson_append_document_end(&x, &em);
  }
  bson_append_document_end(&w, &x);
  int rc = filter_parse(&w, &it->pull);
  bson_destroy(&w);
  if (rc != NX_OK) return nx_err_prefix(rc, "update: $pull condition at '%s': ", it->pstr);
  return NX_OK;
}

static int parse_item(update_t *u, uitem *it, uop op, const char *opname, bson_iter_t *fit) {
  it->op = op;
  it->opname = opname;
  it->val = *bson_iter_value(fit);
  it->pstr = bson_iter_key(fit);
  int rc = parse_upath(opname, it->pstr, &it->path, op != U_RENAME, &u->positional);
  if (rc != NX_OK) return rc;
  const bson_value_t *v = &it->val;
  switch (op) {
  case U_INC:
  case U_MUL:
    if (!doc_is_number(v->value_type))
      return nx_err(NX_INVALID, "update: %s needs a number for '%s', got %s", opname, it->pstr,
                    doc_type_name(v->value_type));
    return NX_OK;
  case U_CURDATE:
    if (v->value_type == BSON_TYPE_BOOL) return NX_OK;
    if (v->value_type == BSON_TYPE_DOCUMENT) {
      bson_iter_t d;
      if (bson_iter_init_from_data(&d, v->value.v_doc.data, v->value.v_doc.data_len) && bson_iter_next(&d) &&
          strcmp(bson_iter_key(&d), "$type") == 0 && BSON_ITER_HOLDS_UTF8(&d)) {
        const char *t = bson_iter_utf8(&d, NULL);
        if (strcmp(t, "date") == 0) return NX_OK;
        if (strcmp(t, "timestamp") == 0) {
          it->timestamp = true;
          return NX_OK;
        }
      }
    }
    return nx_err(NX_INVALID,
                  "update: $currentDate needs true or {$type: \"date\"|\"timestamp\"} "
                  "for '%s'",
                  it->pstr);
  case U_RENAME: {
    if (v->value_type != BSON_TYPE_UTF8)
      return nx_err(NX_INVALID, "update: the 'to' field for $rename must be a string for '%s'", it->pstr);
    it->to_str = v->value.v_utf8.str;
    rc = parse_upath("$rename", it->to_str, &it->to, false, &u->positional);
    if (rc != NX_OK) return rc;
    if (strcmp(it->pstr, it->to_str) == 0)
      return nx_err(NX_INVALID,
                    "update: the source and target field for $rename must differ: "
                    "'%s'",
                    it->pstr);
    size_t m = it->path.n < it->to.n ? it->path.n : it->to.n;
    bool prefix = true;
    for (size_t i = 0; i < m; i++)
      if (strcmp(it->path.parts[i], it->to.parts[i]) != 0) prefix = false;
    if (prefix)
      return nx_err(NX_INVALID,
                    "update: the source and target field for $rename must not be on "
                    "the same path: '%s' and '%s'",
                    it->pstr, it->to_str);
    return NX_OK;
  }
  case U_PUSH:
  case U_ADDTOSET:
    return parse_push(it, fit);
  case U_POP: {
    int64_t d;
    if (!doc_number_integral_i64(v, &d) || (d != 1 && d != -1))
      return nx_err(NX_INVALID, "update: $pop expects 1 or -1 for '%s'", it->pstr);
    it->position = d;
    return NX_OK;
  }
  case U_PULLALL:
    if (v->value_type != BSON_TYPE_ARRAY)
      return nx_err(NX_INVALID,
                    "update: $pullAll requires an array argument but was given %s for "
                    "'%s'",
                    doc_type_name(v->value_type), it->pstr);
    return collect_array(v, &it->each, &it->neach);
  case U_PULL:
    return parse_pull(it);
  default:
    return NX_OK;
  }
}

/* Component-wise path order: numeric components numerically, others bytewise. */
static int path_cmp(const doc_path *a, const doc_path *b) {
  size_t m = a->n < b->n ? a->n : b->n;
  for (size_t i = 0; i < m; i++) {
    if (a->index[i] >= 0 && b->index[i] >= 0) {
      if (a->index[i] != b->index[i]) return a->index[i] < b->index[i] ? -1 : 1;
      continue;
    }
    int c = strcmp(a->parts[i], b->parts[i]);
    if (c != 0) return c < 0 ? -1 : 1;
  }
  return a->n == b->n ? 0 : (a->n < b->n ? -1 : 1);
}

static bool path_is_prefix(const doc_path *a, const doc_path *b) {
  if (a->n > b->n) return false;
  for (size_t i = 0; i < a->n; i++)
    if (strcmp(a->parts[i], b->parts[i]) != 0) return false;
  return true;
}

static int item_cmp(const void *x, const void *y) {
  return path_cmp(&((const uitem *)x)->path, &((const uitem *)y)->path);
}

typedef struct pref {
  const doc_path *p;
  const char *s;
} pref;

static int pref_cmp(const void *x, const void *y) {
  return path_cmp(((const pref *)x)->p, ((const pref *)y)->p);
}

/* Small arrays are sorted by insertion, larger ones by qsort (glibc's is a stable merge sort,
 * as insertion is: equal keys keep their order either way, so messages do not change). */
#define SMALL_SORT 16

static void sort_items(uitem *items, size_t n) {
  if (n > SMALL_SORT) {
    qsort(items, n, sizeof *items, item_cmp);
    return;
  }
  for (size_t i = 1; i < n; i++) {
    uitem t = items[i];
    size_t j = i;
    while (j > 0 && item_cmp(&items[j - 1], &t) > 0) {
      items[j] = items[j - 1];
      j--;
    }
    items[j] = t;
  }
}

static int check_conflicts(update_t *u) {
  size_t n = 0;
  for (size_t i = 0; i < u->n; i++)
    n += u->items[i].op == U_RENAME ? 2 : 1;
  if (n < 2) return NX_OK;
  pref small[SMALL_SORT];
  pref *ps = n <= SMALL_SORT ? small : nx_calloc(n, sizeof *ps);
  if (!ps) return nx_err(NX_NOMEM, "update: out of memory");
  size_t k = 0;
  for (size_t i = 0; i < u->n; i++) {
    ps[k].p = &u->items[i].path;
    ps[k++].s = u->items[i].pstr;
    if (u->items[i].op == U_RENAME) {
      ps[k].p = &u->items[i].to;
      ps[k++].s = u->items[i].to_str;
    }
  }
  if (n > SMALL_SORT) {
    qsort(ps, n, sizeof *ps, pref_cmp);
  } else {
    for (size_t i = 1; i < n; i++) {
      pref t = ps[i];
      size_t j = i;
      while (j > 0 && pref_cmp(&ps[j - 1], &t) > 0) {
        ps[j] = ps[j - 1];
        j--;
      }
      ps[j] = t;
    }
  }
  int rc = NX_OK;
  for (size_t i = 0; i + 1 < n; i++) {
    if (path_is_prefix(ps[i].p, ps[i + 1].p)) {
      rc = nx_err(NX_INVALID, "update: Updating the path '%s' would create a conflict at '%s'", ps[i + 1].s,
                  ps[i].s);
      break;
    }
  }
  if (ps != small) nx_free(ps);
  return rc;
}

/* Items apply_in_place may handle: scalar operators on plain document paths, not on _id. */
#define IN_PLACE_MAX_ITEMS 16
static bool in_place_candidate(const update_t *u) {
  if (u->replacement || u->positional || u->n == 0 || u->n > IN_PLACE_MAX_ITEMS) return false;
  for (size_t i = 0; i < u->n; i++) {
    const uitem *it = &u->items[i];
    switch (it->op) {
    case U_SET:
    case U_SETONINSERT:
    case U_INC:
    case U_MUL:
    case U_MIN:
    case U_MAX:
    case U_CURDATE:
      break;
    default:
      return false;
    }
    if (it->path.n == 0 || (it->path.lens[0] == 3 && memcmp(it->path.parts[0], "_id", 3) == 0)) return false;
    for (size_t c = 0; c < it->path.n; c++)
      if (it->path.index[c] == POS_DOLLAR || it->path.index[c] == POS_ALL) return false;
  }
  return true;
}

/* The operator named k ("$set" ...), or -1. */
static int op_index(const char *k) {
  for (size_t i = 0; i < sizeof k_ops / sizeof k_ops[0]; i++)
    if (k[1] == k_ops[i].name[1] && strcmp(k, k_ops[i].name) == 0) return (int)i;
  return -1;
}

static int parse_common(const bson_t *spec, unsigned flags, update_t **out) {
  *out = NULL;
  bool force_replacement = (flags & UPDATE_PARSE_REPLACEMENT) != 0;
  if (!spec) return nx_err(NX_INVALID, "update: NULL");
  if (spec->len > FILTER_MAX_BYTES)
    return nx_err(NX_LIMIT, "update: %u bytes exceeds the limit of %u bytes", spec->len, FILTER_MAX_BYTES);
  if (doc_depth_capped(spec, FILTER_MAX_BSON_DEPTH) > FILTER_MAX_BSON_DEPTH)
    return nx_err(NX_LIMIT, "update: nesting deeper than %d", FILTER_MAX_BSON_DEPTH);
  /* Checks that need only the spec run first, on the caller's bytes (the copy is identical). */
  bson_iter_t it;
  if (!bson_iter_init(&it, spec)) return nx_err(NX_INVALID, "update: malformed BSON");
  bson_iter_t probe = it;
  bool first = bson_iter_next(&probe);
  if (!first && !force_replacement) return nx_err(NX_INVALID, "update: empty update document");
  bool replacement = force_replacement || !first || bson_iter_key(&probe)[0] != '$';
  size_t total = 0;
  if (replacement) {
    bson_iter_t c = it;
    while (bson_iter_next(&c)) {
      if (bson_iter_key(&c)[0] == '$')
        return nx_err(NX_INVALID,
                      "update: the replacement document may not contain operator '%s' "
                      "(operators and fields cannot be mixed)",
                      bson_iter_key(&c));
    }
  } else {
    bson_iter_t c = it;
    while (bson_iter_next(&c)) {
      const char *k = bson_iter_key(&c);
      if (k[0] != '$')
        return nx_err(NX_INVALID,
                      "update: operators and fields cannot be mixed: found field '%s' "
                      "in an update with operators",
                      k);
      if (op_index(k) < 0) return nx_err(NX_INVALID, "update: unknown operator '%s'", k);
      if (!BSON_ITER_HOLDS_DOCUMENT(&c))
        return nx_err(NX_INVALID,
                      "update: modifiers operate on fields but we found type %s "
                      "instead: {%s: ...} needs a document like {%s: {<field>: ...}}",
                      doc_type_name(bson_iter_type(&c)), k, k);
      bson_iter_t f;
      bson_iter_recurse(&c, &f);
      while (bson_iter_next(&f))
        total++;
    }
    if (total > FILTER_MAX_NODES) return nx_err(NX_LIMIT, "update: more than %d fields", FILTER_MAX_NODES);
  }
  /* One allocation for the update and its items. */
  update_t *u = nx_calloc(1, sizeof *u + total * sizeof(uitem));
  if (!u) return nx_err(NX_NOMEM, "update: out of memory");
  u->items = u->item_store;
  u->replacement = replacement;
  int rc = NX_OK;
  if (flags & UPDATE_PARSE_BORROW) {
    u->spec = spec;
  } else {
    u->spec_copy = bson_copy(spec);
    u->spec = u->spec_copy;
  }
  if (!u->spec || !bson_iter_init(&it, u->spec)) rc = nx_err(NX_INVALID, "update: malformed BSON");
  if (rc == NX_OK && !replacement) {
    while (rc == NX_OK && bson_iter_next(&it)) {
      const k_op_t *o = &k_ops[op_index(bson_iter_key(&it))];
      bson_iter_t f;
      bson_iter_recurse(&it, &f);
      while (rc == NX_OK && bson_iter_next(&f))
        rc = parse_item(u, &u->items[u->n++], o->op, o->name, &f);
    }
    if (rc == NX_OK) rc = check_conflicts(u);
    if (rc == NX_OK && u->n > 1) sort_items(u->items, u->n);
    if (rc == NX_OK) u->in_place = in_place_candidate(u);
  }
  if (rc != NX_OK) {
    update_free(u);
    return rc;
  }
  *out = u;
  return NX_OK;
}

int update_parse_ex(const bson_t *spec, unsigned flags, update_t **out) { return parse_common(spec, flags, out); }

int update_parse(const bson_t *spec, update_t **out) { return parse_common(spec, 0, out); }

int update_parse_replacement(const bson_t *spec, update_t **out) {
  return parse_common(spec, UPDATE_PARSE_REPLACEMENT, out);
}

/* =========================================================================================
 * Application
 * ========================================================================================= */
typedef struct actx {
  const update_t *u;
  const bson_t *doc; /* the input document, for messages */
  bool upsert;
  int64_t now_ms;
  int64_t pos; /* positional $ index, -1 if none */
} actx;

/* "{_id: 1}" for messages. */
static const char *id_str(const actx *a, char *buf, size_t cap) {
  bson_iter_t it;
  nx_buf b;
  nx_buf_init(&b, cap);
  if (bson_iter_init_find(&it, a->doc, "_id")) {
    bson_value_t v = *bson_iter_value(&it);
    if (doc_value_to_json(&v, &b) == NX_OK && b.len < cap) {
      memcpy(buf, "{_id: ", 6);
      size_t n = b.len < cap - 9 ? b.len : cap - 9;
      memcpy(buf + 6, b.data, n);
      memcpy(buf + 6 + n, "}", 2);
      nx_buf_free(&b);
      return buf;
    }
  }
  nx_buf_free(&b);
  memcpy(buf, "{}", 3);
  return buf;
}

static bool creates(uop op) {
  return op != U_UNSET && op != U_POP && op != U_PULL && op != U_PULLALL && op != U_RENAME;
}

static int arith(const actx *a, const uitem *it, const bson_value_t *cur, bson_value_t *out) {
  const bson_value_t *arg = &it->val;
  bool mul = it->op == U_MUL;
  bson_type_t tc = cur->value_type, ta = arg->value_type;
  char idb[128];
  memset(out, 0, sizeof *out);
  if (tc == BSON_TYPE_DECIMAL128 || ta == BSON_TYPE_DECIMAL128) {
    out->value_type = BSON_TYPE_DECIMAL128;
    if (!doc_decimal_arith(cur, arg, mul, &out->value.v_decimal128))
      return nx_err(NX_INVALID, "update: %s needs numbers (field '%s' in %s)", it->opname, it->pstr,
                    id_str(a, idb, sizeof idb));
    return NX_OK;
  }
  if (tc == BSON_TYPE_DOUBLE || ta == BSON_TYPE_DOUBLE) {
    double x = doc_number_as_double(cur), y = doc_number_as_double(arg);
    out->value_type = BSON_TYPE_DOUBLE;
    out->value.v_double = mul ? x * y : x + y;
    return NX_OK;
  }
  int64_t x = tc == BSON_TYPE_INT32 ? cur->value.v_int32 : cur->value.v_int64;
  int64_t y = ta == BSON_TYPE_INT32 ? arg->value.v_int32 : arg->value.v_int64;
  int64_t r;
  bool ovf = mul ? __builtin_mul_overflow(x, y, &r) : __builtin_add_overflow(x, y, &r);
  if (ovf)
    return nx_err(NX_INVALID,
                  "update: failed to apply %s to the current value of '%s' in %s: "
                  "the result overflows a 64-bit integer",
                  it->opname, it->pstr, id_str(a, idb, sizeof idb));
  if (tc == BSON_TYPE_INT32 && ta == BSON_TYPE_INT32 && r >= INT32_MIN && r <= INT32_MAX) {
    out->value_type = BSON_TYPE_INT32;
    out->value.v_int32 = (int32_t)r;
  } else {
    out->value_type = BSON_TYPE_INT64;
    out->value.v_int64 = r;
  }
  return NX_OK;
}

/* Element comparison for $push $sort (qsort has no context: the update is applied on one thread
 * at a time per call, so a thread-local pair carries it). */
static _Thread_local int tl_sort_kind;
static _Thread_local int tl_sort_dir;
static _Thread_local const sort_t *tl_sort;

static int elem_cmp(const void *x, const void *y) {
  const mnode *a = &((const mfield *)x)->node, *b = &((const mfield *)y)->node;
  /* elements being sorted are raw: the array was expanded one level by this item only */
  if (tl_sort_kind == 1) return tl_sort_dir * doc_cmp_values(&a->v, &b->v);
  bson_t da, db;
  static const uint8_t empty[5] = {5, 0, 0, 0, 0};
  bool oka = a->type == BSON_TYPE_DOCUMENT &&
             bson_init_static(&da, a->v.value.v_doc.data, a->v.value.v_doc.data_len);
  bool okb = b->type == BSON_TYPE_DOCUMENT &&
             bson_init_static(&db, b->v.value.v_doc.data, b->v.value.v_doc.data_len);
  if (!oka) bson_init_static(&da, empty, 5);
  if (!okb) bson_init_static(&db, empty, 5);
  return sort_cmp(tl_sort, &da, &db);
}

/* Stable sort of array elements (insertion sort for small arrays, merge through qsort keys). */
static int sort_elems(mnode *arr, const uitem *it) {
  tl_sort_kind = it->sort_kind;
  tl_sort_dir = it->sort_dir;
  tl_sort = it->sort;
  /* stable insertion sort: arrays updated by $push are modest; O(n^2) is bounded by the 16 MiB
   * document limit and keeps ties in place as MongoDB does */
  if (arr->n > 4096) {
    qsort(arr->f, arr->n, sizeof *arr->f, elem_cmp);
    return NX_OK;
  }
  for (uint32_t i = 1; i < arr->n; i++) {
    mfield t = arr->f[i];
    uint32_t j = i;
    while (j > 0 && elem_cmp(&arr->f[j - 1], &t) > 0) {
      arr->f[j] = arr->f[j - 1];
      j--;
    }
    arr->f[j] = t;
  }
  return NX_OK;
}

static int do_push(const actx *a, const uitem *it, mnode *arr) {
  (void)a;
  int rc = reserve(arr, (uint32_t)it->neach);
  if (rc != NX_OK) return rc;
  uint32_t at = arr->n;
  if (it->has_position) {
    int64_t p = it->position;
    if (p < 0) p = (int64_t)arr->n + p < 0 ? 0 : (int64_t)arr->n + p;
    if (p < (int64_t)arr->n) at = (uint32_t)p;
  }
  if (arr->n > at) memmove(&arr->f[at + it->neach], &arr->f[at], (size_t)(arr->n - at) * sizeof *arr->f);
  for (size_t i = 0; i < it->neach; i++) {
    mfield *f = &arr->f[at + i];
    memset(f, 0, sizeof *f);
    mnode_set_raw(&f->node, &it->each[i]);
  }
  arr->n += (uint32_t)it->neach;
  if (it->sort_kind) {
    for (uint32_t i = 0; i < arr->n; i++) {
      if (arr->f[i].node.expanded) {
        /* cannot happen: no other item of this update touches inside this array */
        return nx_err(NX_INVALID, "update: $sort on a modified array at '%s'", it->pstr);
      }
    }
    rc = sort_elems(arr, it);
    if (rc != NX_OK) return rc;
  }
  if (it->has_slice) {
    int64_t s = it->slice;
    if (s >= 0) {
      while ((int64_t)arr->n > s)
        mremove(arr, arr->n - 1);
    } else {
      int64_t keep = -s;
      while ((int64_t)arr->n > keep)
        mremove(arr, 0);
    }
  }
  return NX_OK;
}

static int do_add_to_set(const uitem *it, mnode *arr) {
  for (size_t i = 0; i < it->neach; i++) {
    bool present = false;
    for (uint32_t j = 0; j < arr->n && !present; j++) {
      bson_t tmp;
      bool used;
      bson_value_t v;
      int rc = mnode_value(&arr->f[j].node, &tmp, &used, &v);
      if (rc == NX_OK) present = doc_cmp_values(&v, &it->each[i]) == 0;
      if (used) bson_destroy(&tmp);
      if (rc != NX_OK) return rc;
    }
    if (present) continue;
    int rc = reserve(arr, 1);
    if (rc != NX_OK) return rc;
    mfield *f = &arr->f[arr->n++];
    memset(f, 0, sizeof *f);
    mnode_set_raw(&f->node, &it->each[i]);
  }
  return NX_OK;
}

static int do_pull(const uitem *it, mnode *arr) {
  const pred *p = it->op == U_PULL ? &filter_root(it->pull)->kids[0]->p : NULL;
  uint32_t j = 0;
  while (j < arr->n) {
    bson_t tmp;
    bool used;
    bson_value_t v;
    int rc = mnode_value(&arr->f[j].node, &tmp, &used, &v);
    bool hit = false;
    if (rc == NX_OK) {
      if (it->op == U_PULL) {
        fev e = {NX_OK, false, -1};
        hit = fpred_elem_matches(p, &v, &e);
        rc = e.rc;
      } else {
        for (size_t i = 0; i < it->neach && !hit; i++)
          hit = doc_cmp_values(&v, &it->each[i]) == 0;
      }
    }
    if (used) bson_destroy(&tmp);
    if (rc != NX_OK) return rc;
    if (hit)
      mremove(arr, j);
    else
      j++;
  }
  return NX_OK;
}

/* Applies item `it` at the end of its path: `slot` is the field (existing when `existed`). */
static int terminal(const actx *a, const uitem *it, mnode *parent, mfield *slot, bool existed) {
  char idb[128];
  mnode *m = &slot->node;
  switch (it->op) {
  case U_SET:
  case U_SETONINSERT:
    mnode_set_raw(m, &it->val);
    return NX_OK;
  case U_UNSET:
    if (!existed) return NX_OK;
    if (parent->type == BSON_TYPE_ARRAY)
      mnode_set_null(m);
    else
      mremove(parent, (uint32_t)(slot - parent->f));
    return NX_OK;
  case U_INC:
  case U_MUL: {
    if (!existed) {
      if (it->op == U_INC) {
        mnode_set_raw(m, &it->val);
      } else {
        bson_value_t z;
        memset(&z, 0, sizeof z);
        z.value_type = it->val.value_type;
        if (z.value_type == BSON_TYPE_DECIMAL128) bson_decimal128_from_string("0", &z.value.v_decimal128);
        mnode_set_raw(m, &z);
      }
      return NX_OK;
    }
    if (m->expanded || !doc_is_number(m->type))
      return nx_err(NX_INVALID,
                    "update: Cannot apply %s to a value of non-numeric type. %s has "
                    "the field '%s' of non-numeric type %s",
                    it->opname, id_str(a, idb, sizeof idb), it->pstr, doc_type_name(m->type));
    bson_value_t r;
    int rc = arith(a, it, &m->v, &r);
    if (rc != NX_OK) return rc;
    mnode_set_raw(m, &r);
    return NX_OK;
  }
  case U_MIN:
  case U_MAX: {
    if (!existed) {
      mnode_set_raw(m, &it->val);
      return NX_OK;
    }
    bson_t tmp;
    bool used;
    bson_value_t cur;
    int rc = mnode_value(m, &tmp, &used, &cur);
    int c = rc == NX_OK ? doc_cmp_values(&it->val, &cur) : 0;
    if (used) bson_destroy(&tmp);
    if (rc != NX_OK) return rc;
    if ((it->op == U_MIN && c < 0) || (it->op == U_MAX && c > 0)) mnode_set_raw(m, &it->val);
    return NX_OK;
  }
  case U_CURDATE: {
    bson_value_t v;
    memset(&v, 0, sizeof v);
    if (it->timestamp) {
      v.value_type = BSON_TYPE_TIMESTAMP;
      v.value.v_timestamp.timestamp = (uint32_t)(a->now_ms / 1000);
      v.value.v_timestamp.increment = 1;
    } else {
      v.value_type = BSON_TYPE_DATE_TIME;
      v.value.v_datetime = a->now_ms;
    }
    mnode_set_raw(m, &v);
    return NX_OK;
  }
  case U_PUSH:
  case U_ADDTOSET:
  case U_POP:
  case U_PULL:
  case U_PULLALL: {
    if (!existed) {
      if (it->op != U_PUSH && it->op != U_ADDTOSET) return NX_OK;
      mnode_set_empty(m, BSON_TYPE_ARRAY);
    } else if (m->type != BSON_TYPE_ARRAY) {
      return nx_err(NX_INVALID,
                    "update: The field '%s' must be an array but is of type %s in "
                    "document %s",
                    it->pstr, doc_type_name(m->type), id_str(a, idb, sizeof idb));
    }
    int rc = mnode_expand(m);
    if (rc != NX_OK) return rc;
    switch (it->op) {
    case U_PUSH:
      return do_push(a, it, m);
    case U_ADDTOSET:
      return do_add_to_set(it, m);
    case U_POP:
      if (m->n) mremove(m, it->position == 1 ? m->n - 1 : 0);
      return NX_OK;
    default:
      return do_pull(it, m);
    }
  }
  case U_RENAME:
    return NX_OK;
  }
  return NX_OK;
}

static int walk(const actx *a, const uitem *it, mnode *cont, size_t i);

/* Descends from field `f` (at component i-1) to component i. */
static int descend(const actx *a, const uitem *it, mfield *f, size_t i, const char *fkey) {
  mnode *c = &f->node;
  if (c->type == BSON_TYPE_DOCUMENT || c->type == BSON_TYPE_ARRAY) {
    int rc = mnode_expand(c);
    if (rc != NX_OK) return rc;
    return walk(a, it, c, i);
  }
  if (!creates(it->op)) return NX_OK;
  char idb[128];
  if (it->path.index[i] == POS_ALL)
    return nx_err(NX_INVALID,
                  "update: Cannot apply array updates to non-array element %s at '%s' "
                  "in %s",
                  fkey, it->pstr, id_str(a, idb, sizeof idb));
  nx_buf b;
  nx_buf_init(&b, 256);
  bson_value_t v = c->v;
  doc_value_to_json(&v, &b);
  int rc = nx_err(NX_INVALID,
                  "update: Cannot create field '%s' in element {%s: %.*s} (path '%s' "
                  "in %s)",
                  it->path.parts[i], fkey, (int)(b.len > 200 ? 200 : b.len),
                  b.data ? (const char *)b.data : "", it->pstr, id_str(a, idb, sizeof idb));
  nx_buf_free(&b);
  return rc;
}

static int walk(const actx *a, const uitem *it, mnode *cont, size_t i) {
  const char *comp = it->path.parts[i];
  uint32_t clen = it->path.lens[i];
  int64_t idx = it->path.index[i];
  bool last = i + 1 == it->path.n;
  char idb[128];
  if (idx == POS_DOLLAR) {
    if (a->pos < 0)
      return nx_err(NX_INVALID,
                    "update: The positional operator did not find the match needed "
                    "from the query (path '%s')",
                    it->pstr);
    idx = a->pos;
  }
  if (idx == POS_ALL) {
    if (cont->type != BSON_TYPE_ARRAY)
      return nx_err(NX_INVALID,
                    "update: Cannot apply array updates to non-array element at '%s' "
                    "in %s",
                    it->pstr, id_str(a, idb, sizeof idb));
    for (uint32_t j = 0; j < cont->n; j++) {
      int rc = last ? terminal(a, it, cont, &cont->f[j], true) : descend(a, it, &cont->f[j], i + 1, "$[]");
      if (rc != NX_OK) return rc;
    }
    return NX_OK;
  }
  if (cont->type == BSON_TYPE_ARRAY) {
    if (idx < 0) {
      if (!creates(it->op)) return NX_OK;
      return nx_err(NX_INVALID, "update: Cannot create field '%s' in an array (path '%s' in %s)", comp,
                    it->pstr, id_str(a, idb, sizeof idb));
    }
    if ((uint64_t)idx < cont->n) {
      mfield *f = &cont->f[idx];
      return last ? terminal(a, it, cont, f, true) : descend(a, it, f, i + 1, comp);
    }
    if (!creates(it->op)) return NX_OK;
    if (idx > MAX_BACKFILL)
      return nx_err(NX_LIMIT,
                    "update: can't backfill an array to more than %d elements (path "
                    "'%s')",
                    MAX_BACKFILL, it->pstr);
    int rc = reserve(cont, (uint32_t)(idx + 1 - cont->n));
    if (rc != NX_OK) return rc;
    while (cont->n <= (uint64_t)idx) {
      mfield *f = &cont->f[cont->n++];
      memset(f, 0, sizeof *f);
      mnode_set_null(&f->node);
    }
    mfield *f = &cont->f[idx];
    if (last) return terminal(a, it, cont, f, false);
    mnode_set_empty(&f->node, BSON_TYPE_DOCUMENT);
    return walk(a, it, &f->node, i + 1);
  }
  /* a document */
  mfield *f = mdoc_find(cont, comp, clen);
  if (last) {
    if (f) return terminal(a, it, cont, f, true);
    if (!creates(it->op)) return NX_OK;
    f = mdoc_add(cont, comp, clen);
    if (!f) return nx_err(NX_NOMEM, "update: out of memory");
    return terminal(a, it, cont, f, false);
  }
  if (!f) {
    if (!creates(it->op)) return NX_OK;
    f = mdoc_add(cont, comp, clen);
    if (!f) return nx_err(NX_NOMEM, "update: out of memory");
    mnode_set_empty(&f->node, BSON_TYPE_DOCUMENT);
    return walk(a, it, &f->node, i + 1);
  }
  return descend(a, it, f, i + 1, comp);
}

/* $rename: take the source out (documents only), then set it at the target. */
static int do_rename(const actx *a, const uitem *it, mnode *root) {
  char idb[128];
  mnode *cont = root;
  for (size_t i = 0; i + 1 < it->path.n; i++) {
    mfield *f = mdoc_find(cont, it->path.parts[i], it->path.lens[i]);
    if (!f) return NX_OK;
    if (f->node.type == BSON_TYPE_ARRAY)
      return nx_err(NX_INVALID,
                    "update: The source field for $rename may not be inside an "
                    "array: '%s' in %s",
                    it->pstr, id_str(a, idb, sizeof idb));
    if (f->node.type != BSON_TYPE_DOCUMENT) return NX_OK;
    int rc = mnode_expand(&f->node);
    if (rc != NX_OK) return rc;
    cont = &f->node;
  }
  size_t last = it->path.n - 1;
  mfield *src = mdoc_find(cont, it->path.parts[last], it->path.lens[last]);
  if (!src) return NX_OK;
  mnode moved = src->node;
  memset(&src->node, 0, sizeof src->node);
  src->node.type = BSON_TYPE_NULL;
  src->node.v.value_type = BSON_TYPE_NULL;
  mremove(cont, (uint32_t)(src - cont->f));
  /* target: create documents along the way; arrays are refused */
  mnode *t = root;
  int rc = NX_OK;
  for (size_t i = 0; i < it->to.n && rc == NX_OK; i++) {
    bool lastc = i + 1 == it->to.n;
    mfield *f = mdoc_find(t, it->to.parts[i], it->to.lens[i]);
    if (lastc) {
      if (!f) f = mdoc_add(t, it->to.parts[i], it->to.lens[i]);
      if (!f) {
        rc = nx_err(NX_NOMEM, "update: out of memory");
        break;
      }
      mnode_clear(&f->node);
      f->node = moved;
      memset(&moved, 0, sizeof moved);
      break;
    }
    if (!f) {
      f = mdoc_add(t, it->to.parts[i], it->to.lens[i]);
      if (!f) {
        rc = nx_err(NX_NOMEM, "update: out of memory");
        break;
      }
      mnode_set_empty(&f->node, BSON_TYPE_DOCUMENT);
    } else if (f->node.type == BSON_TYPE_ARRAY) {
      rc = nx_err(NX_INVALID,
                  "update: The destination field for $rename may not be inside an "
                  "array: '%s' in %s",
                  it->to_str, id_str(a, idb, sizeof idb));
      break;
    } else if (f->node.type != BSON_TYPE_DOCUMENT) {
      rc = nx_err(NX_INVALID, "update: Cannot create field '%s' for $rename target '%s' in %s",
                  it->to.parts[i + 1], it->to_str, id_str(a, idb, sizeof idb));
      break;
    } else {
      rc = mnode_expand(&f->node);
    }
    t = &f->node;
  }
  mnode_clear(&moved);
  return rc;
}

static bool same_bytes(const bson_t *a, const bson_t *b) {
  return a->len == b->len && memcmp(bson_get_data(a), bson_get_data(b), a->len) == 0;
}

static int finish(const actx *a, bson_t *out) {
  if (out->len > DOC_MAX_BYTES)
    return nx_err(NX_LIMIT, "update: the resulting document is %u bytes, over the limit of %d", out->len,
                  DOC_MAX_BYTES);
  if (doc_depth(out) > DOC_MAX_DEPTH)
    return nx_err(NX_LIMIT, "update: the resulting document nests deeper than %d", DOC_MAX_DEPTH);
  bson_iter_t oi, ni;
  if (bson_iter_init_find(&oi, a->doc, "_id")) {
    bool has = bson_iter_init_find(&ni, out, "_id");
    if (!has || bson_iter_type(&oi) != bson_iter_type(&ni) || doc_cmp_iter(&oi, &ni) != 0)
      return nx_err(NX_INVALID, "update: Performing an update on the path '_id' would modify the "
                                "immutable field '_id'");
  }
  return NX_OK;
}

static int apply_replacement(const actx *a, bson_t *out) {
  bson_iter_t oi, ri;
  bson_init(out);
  bool have_id = bson_iter_init_find(&oi, a->doc, "_id");
  bool rep_id = bson_iter_init_find(&ri, a->u->spec, "_id");
  int rc = NX_OK;
  if (have_id && !rep_id) {
    bson_value_t v = *bson_iter_value(&oi);
    if (!bson_append_value(out, "_id", 3, &v)) rc = nx_err(NX_LIMIT, "update: too large");
  } else if (rep_id) {
    bson_value_t v = *bson_iter_value(&ri);
    if (!bson_append_value(out, "_id", 3, &v)) rc = nx_err(NX_LIMIT, "update: too large");
  }
  bson_iter_t it;
  bson_iter_init(&it, a->u->spec);
  while (rc == NX_OK && bson_iter_next(&it)) {
    if (strcmp(bson_iter_key(&it), "_id") == 0) continue;
    bson_value_t v = *bson_iter_value(&it);
    if (!bson_append_value(out, bson_iter_key(&it), (int)bson_iter_key_len(&it), &v))
      rc = nx_err(NX_LIMIT, "update: the resulting document exceeds the BSON size limit");
  }
  if (rc == NX_OK) rc = finish(a, out);
  if (rc != NX_OK) bson_destroy(out);
  return rc;
}

/* ---- In place ---------------------------------------------------------------------------
 * The common update ($inc a counter, $set a flag) changes fixed-size scalars into fixed-size
 * scalars of the same size. Then the result is the input's bytes with those values (and type
 * bytes) overwritten: no tree, no re-encoding, and the layout, size, depth and _id are unchanged.
 * apply_in_place tries that and gives up (nothing done, no error) on anything else: a missing
 * field (it would be appended), a path through an array or a scalar, a string/document/array on
 * either side, a size change (int32 + 1 overflowing into int64), or any error (the tree path
 * then reports it with its usual message). Items touch distinct fields (check_conflicts), so
 * their order does not matter here. */

/* Bytes of a value of a fixed-size type, or -1 for the others (strings, documents, ...). */
static int fixed_size(bson_type_t t) {
  switch (t) {
  case BSON_TYPE_DOUBLE:
  case BSON_TYPE_INT64:
  case BSON_TYPE_DATE_TIME:
  case BSON_TYPE_TIMESTAMP:
    return 8;
  case BSON_TYPE_INT32:
    return 4;
  case BSON_TYPE_BOOL:
    return 1;
  case BSON_TYPE_NULL:
    return 0;
  case BSON_TYPE_OID:
    return 12;
  case BSON_TYPE_DECIMAL128:
    return 16;
  default:
    return -1;
  }
}

/* Writes the little-endian bytes of v (a fixed_size type) at p. */
static void put_fixed(uint8_t *p, const bson_value_t *v) {
  switch (v->value_type) {
  case BSON_TYPE_DOUBLE: {
    uint64_t bits;
    memcpy(&bits, &v->value.v_double, 8);
    nx_put64(p, bits);
    break;
  }
  case BSON_TYPE_INT64:
    nx_put64(p, (uint64_t)v->value.v_int64);
    break;
  case BSON_TYPE_DATE_TIME:
    nx_put64(p, (uint64_t)v->value.v_datetime);
    break;
  case BSON_TYPE_TIMESTAMP:
    nx_put32(p, v->value.v_timestamp.increment);
    nx_put32(p + 4, v->value.v_timestamp.timestamp);
    break;
  case BSON_TYPE_INT32:
    nx_put32(p, (uint32_t)v->value.v_int32);
    break;
  case BSON_TYPE_BOOL:
    p[0] = v->value.v_bool ? 1 : 0;
    break;
  case BSON_TYPE_OID:
    memcpy(p, v->value.v_oid.bytes, 12);
    break;
  case BSON_TYPE_DECIMAL128:
    nx_put64(p, v->value.v_decimal128.low);
    nx_put64(p + 8, v->value.v_decimal128.high);
    break;
  default:
    break;
  }
}

typedef struct patch {
  uint32_t type_off; /* offset of the element's type byte */
  uint32_t val_off;  /* offset of its value */
  bson_value_t v;    /* the new value (same size as the old one) */
} patch;

/* The new value of item `it` over the existing value `cur` into *nv (*keep when the value stays
 * as it is). False when the item is not a plain scalar change. */
static bool in_place_value(const actx *a, const uitem *it, const bson_value_t *cur, bson_value_t *nv, bool *keep) {
  *keep = false;
  switch (it->op) {
  case U_SET:
    *nv = it->val;
    return true;
  case U_INC:
  case U_MUL:
    if (!doc_is_number(cur->value_type)) return false;
    if (cur->value_type == BSON_TYPE_DECIMAL128 || it->val.value_type == BSON_TYPE_DECIMAL128) return false;
    if (cur->value_type != BSON_TYPE_DOUBLE && it->val.value_type != BSON_TYPE_DOUBLE) {
      /* integers: an overflow is the tree path's error to report */
      int64_t x = cur->value_type == BSON_TYPE_INT32 ? cur->value.v_int32 : cur->value.v_int64;
      int64_t y = it->val.value_type == BSON_TYPE_INT32 ? it->val.value.v_int32 : it->val.value.v_int64;
      int64_t r;
      if (it->op == U_MUL ? __builtin_mul_overflow(x, y, &r) : __builtin_add_overflow(x, y, &r)) return false;
    }
    return arith(a, it, cur, nv) == NX_OK;
  case U_MIN:
  case U_MAX: {
    int c = doc_cmp_values(&it->val, cur);
    if ((it->op == U_MIN && c < 0) || (it->op == U_MAX && c > 0))
      *nv = it->val;
    else
      *keep = true;
    return true;
  }
  case U_CURDATE:
    memset(nv, 0, sizeof *nv);
    if (it->timestamp) {
      nv->value_type = BSON_TYPE_TIMESTAMP;
      nv->value.v_timestamp.timestamp = (uint32_t)(a->now_ms / 1000);
      nv->value.v_timestamp.increment = 1;
    } else {
      nv->value_type = BSON_TYPE_DATE_TIME;
      nv->value.v_datetime = a->now_ms;
    }
    return true;
  default:
    return false;
  }
}

/* True when done: *out holds the result (initialised), *changed is set. False: nothing done. */
static bool apply_in_place(const actx *a, bson_t *out, bool *changed) {
  const update_t *u = a->u;
  const uint8_t *src = bson_get_data(a->doc);
  uint32_t n = a->doc->len;
  patch ps[IN_PLACE_MAX_ITEMS];
  size_t np = 0;
  for (size_t i = 0; i < u->n; i++) {
    const uitem *it = &u->items[i];
    if (it->op == U_SETONINSERT) continue; /* not an upsert insert here */
    const uint8_t *d = src;
    uint32_t len = n;
    doc_elem e;
    for (size_t c = 0; c < it->path.n; c++) {
      if (!doc_raw_find(d, len, it->path.parts[c], it->path.lens[c], &e)) return false;
      if (c + 1 < it->path.n) {
        if (e.type != BSON_TYPE_DOCUMENT) return false;
        d = e.vp;
        len = e.vlen;
      }
    }
    int osz = fixed_size(e.type);
    if (osz < 0) return false;
    bson_value_t cur, nv;
    doc_raw_value(&e, &cur);
    bool keep;
    if (!in_place_value(a, it, &cur, &nv, &keep)) return false;
    if (keep) continue;
    if (fixed_size(nv.value_type) != osz) return false;
    ps[np].type_off = (uint32_t)((const uint8_t *)e.key - 1 - src);
    ps[np].val_off = (uint32_t)(e.vp - src);
    ps[np].v = nv;
    np++;
  }
  bson_init(out);
  uint8_t *p = bson_reserve_buffer(out, n);
  if (!p) {
    bson_destroy(out);
    return false;
  }
  memcpy(p, src, n);
  for (size_t i = 0; i < np; i++) {
    p[ps[i].type_off] = (uint8_t)ps[i].v.value_type;
    put_fixed(p + ps[i].val_off, &ps[i].v);
  }
  *changed = memcmp(p, src, n) != 0;
  return true;
}

int update_apply(const update_t *u, const bson_t *doc, const filter_t *query, bool is_upsert_insert,
                 int64_t now_ms, bson_t *out, bool *changed) {
  return update_apply_ex(u, doc, query, is_upsert_insert, now_ms, 0, out, changed, NULL);
}

int update_apply_ex(const update_t *u, const bson_t *doc, const filter_t *query, bool is_upsert_insert,
                    int64_t now_ms, unsigned flags, bson_t *out, bool *changed, bool *in_place) {
  actx a = {u, doc, is_upsert_insert, now_ms, -1};
  *changed = false;
  if (in_place) *in_place = false;
  if (u->in_place && !is_upsert_insert && !(flags & UPDATE_APPLY_NO_IN_PLACE) && apply_in_place(&a, out, changed)) {
    if (in_place) *in_place = true;
    return NX_OK;
  }
  int rc;
  if (u->replacement) {
    rc = apply_replacement(&a, out);
    if (rc == NX_OK) *changed = !same_bytes(doc, out);
    return rc;
  }
  if (u->positional && query) {
    bool m = false;
    rc = filter_match_pos(query, doc, &m, &a.pos);
    if (rc != NX_OK) return rc;
    if (!m) a.pos = -1;
  }
  mnode root;
  memset(&root, 0, sizeof root);
  root.type = BSON_TYPE_DOCUMENT;
  root.v.value_type = BSON_TYPE_DOCUMENT;
  root.v.value.v_doc.data = (uint8_t *)(uintptr_t)bson_get_data(doc);
  root.v.value.v_doc.data_len = doc->len;
  rc = mnode_expand(&root);
  for (size_t i = 0; rc == NX_OK && i < u->n; i++) {
    const uitem *it = &u->items[i];
    if (it->op == U_SETONINSERT && !is_upsert_insert) continue;
    if (it->op == U_RENAME)
      rc = do_rename(&a, it, &root);
    else
      rc = walk(&a, it, &root, 0);
  }
  if (rc == NX_OK) {
    bson_init(out);
    rc = write_fields(out, &root);
    if (rc == NX_OK) rc = finish(&a, out);
    if (rc != NX_OK) bson_destroy(out);
  }
  mnode_clear(&root);
  if (rc == NX_OK) *changed = !same_bytes(doc, out);
  return rc;
}

/* =========================================================================================
 * Upsert seed
 * ========================================================================================= */

typedef struct seed_item {
  const doc_path *path;
  const char *pstr;
  const bson_value_t *v;
} seed_item;

static int seed_cmp(const void *x, const void *y) {
  return path_cmp(((const seed_item *)x)->path, ((const seed_item *)y)->path);
}

int update_build_upsert_seed(const filter_t *query, bson_t *out) {
  const fnode *root = query ? filter_root(query) : NULL;
  size_t n = 0;
  seed_item *items = NULL;
  if (root && root->nkids) {
    items = nx_calloc(root->nkids, sizeof *items);
    if (!items) return nx_err(NX_NOMEM, "update: out of memory");
  }
  for (size_t i = 0; root && i < root->nkids; i++) {
    const fnode *k = root->kids[i];
    if (k->kind != K_PATH || k->negate || k->path.n == 0) continue;
    if (k->p.kind == P_EQ || (k->p.kind == P_IN && k->p.nvalues == 1 && k->p.nregexes == 0)) {
      items[n].path = &k->path;
      items[n].pstr = k->pstr;
      items[n].v = k->p.kind == P_EQ ? &k->p.value : &k->p.values[0];
      n++;
    }
  }
  if (n > 1) qsort(items, n, sizeof *items, seed_cmp);
  int rc = NX_OK;
  for (size_t i = 0; i + 1 < n && rc == NX_OK; i++) {
    if (path_cmp(items[i].path, items[i + 1].path) == 0)
      rc = nx_err(NX_INVALID,
                  "update: cannot infer query fields to set, path '%s' is matched "
                  "twice",
                  items[i].pstr);
    else if (path_is_prefix(items[i].path, items[i + 1].path))
      rc = nx_err(NX_INVALID,
                  "update: cannot infer query fields to set, both paths '%s' and '%s' "
                  "are matched",
                  items[i].pstr, items[i + 1].pstr);
  }
  mnode r;
  memset(&r, 0, sizeof r);
  mnode_set_empty(&r, BSON_TYPE_DOCUMENT);
  /* _id first, as MongoDB places it */
  for (int pass = 0; pass < 2 && rc == NX_OK; pass++) {
    for (size_t i = 0; i < n && rc == NX_OK; i++) {
      bool is_id = items[i].path->n >= 1 && strcmp(items[i].path->parts[0], "_id") == 0;
      if (is_id != (pass == 0)) continue;
      mnode *cont = &r;
      const doc_path *p = items[i].path;
      for (size_t c = 0; c < p->n && rc == NX_OK; c++) {
        mfield *f = mdoc_find(cont, p->parts[c], p->lens[c]);
        if (c + 1 == p->n) {
          if (!f) f = mdoc_add(cont, p->parts[c], p->lens[c]);
          if (!f) {
            rc = nx_err(NX_NOMEM, "update: out of memory");
            break;
          }
          mnode_set_raw(&f->node, items[i].v);
          break;
        }
        if (!f) {
          f = mdoc_add(cont, p->parts[c], p->lens[c]);
          if (!f) {
            rc = nx_err(NX_NOMEM, "update: out of memory");
            break;
          }
          mnode_set_empty(&f->node, BSON_TYPE_DOCUMENT);
        }
        cont = &f->node;
      }
    }
  }
  if (rc == NX_OK) {
    bson_init(out);
    rc = write_fields(out, &r);
    if (rc != NX_OK) bson_destroy(out);
  }
  mnode_clear(&r);
  nx_free(items);
  return rc;
}
