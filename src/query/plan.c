/*
 * plan.c: choosing between the indexes of a collection and a collection scan (planner.h has the
 * contract and the cost).
 *
 * Bounds. Keys are byte strings (keyenc: each component starts with its type-bracket byte, is
 * self-delimiting, and a descending component is inverted), so bounds are built directly as byte
 * intervals [lo, hi):
 *   - fields 0..k-1 with equality or $in give points (the cartesian product, at most
 *     PLAN_MAX_INTERVALS intervals); field k may give one range; later fields are unbounded.
 *   - a point v is [enc(v), succ(enc(v))), where succ(s) is the least string above every string
 *     that starts with s (drop trailing 0xFF, increment the last byte).
 *   - a range stays inside v's type bracket, as MongoDB's comparison operators do: {$gt: 5} is
 *     (enc(5), [bracket byte + 1]); for a descending field the same values map to the inverted
 *     bytes and the ends swap.
 *   - several ranges on one field intersect (max of lows, min of highs) unless the field is
 *     multikey: then only the first is used (an array may satisfy $gt and $lt with different
 *     elements), the others stay in the residual filter.
 * Equality to null also takes `undefined` (an empty array indexes as undefined) and is used only
 * on an undotted path of a non-sparse index: a dotted path through an array of documents may
 * match null without producing a null key. Paths with numeric components are never planned
 * (MongoDB matches them both as array positions and as field names). $regex, $ne, $nin, $not,
 * $exists, $type, $size, $all, $elemMatch, $mod, $or and $nor never give bounds.
 *
 * Usability. A sparse index is used only when some field is bounded (bounds never include null
 * for it); a partial index only when the filter implies its partial filter (every conjunct of
 * the partial filter is implied by one of the query: the same equality, or a tighter range of
 * the same type bracket, or $exists: true implied by any bounded conjunct on the path).
 *
 * Sort. An index provides a sort {s1: d1, ..., sm: dm} when, after its leading fields bounded to
 * a single point, its remaining fields are exactly s1..sm with the same directions and none of
 * them multikey: the scan then yields documents in sort order, and equal sort keys in _id order
 * (the _id suffix), which is the executor's stable-sort tie rule. When every sort direction is
 * the reverse of the index's ({age: 1} for {age: -1}, {a: 1, b: -1} for {a: -1, b: 1}), the index
 * is walked backwards (plan_exec.c), which gives ties in reverse _id order; the executor
 * re-reverses each run of equal keys, so the tie rule holds in both directions.
 */
#include <stdlib.h>
#include <string.h>

#include "index.h"
#include "planner.h"
#include "plan_int.h"

/* ---- byte helpers ---- */
static int bcmp_(const uint8_t *a, size_t an, const uint8_t *b, size_t bn) {
  size_t m = an < bn ? an : bn;
  int c = m ? memcmp(a, b, m) : 0;
  if (c) return c;
  return an < bn ? -1 : an > bn;
}

/* succ in place: false when s was all 0xFF (no successor: unbounded). */
static bool succ(nx_buf *s) {
  while (s->len && s->data[s->len - 1] == 0xFF) s->len--;
  if (!s->len) return false;
  s->data[s->len - 1]++;
  return true;
}

/* ---- per-field bounds ---- */
static bool dotted(const char *p) { return strchr(p, '.') != NULL; }

static bool range_type_ok(bson_type_t t) {
  switch (t) {
  case BSON_TYPE_INT32: case BSON_TYPE_INT64: case BSON_TYPE_DOUBLE: case BSON_TYPE_DECIMAL128:
  case BSON_TYPE_UTF8: case BSON_TYPE_SYMBOL: case BSON_TYPE_DATE_TIME: case BSON_TYPE_OID:
  case BSON_TYPE_BOOL: case BSON_TYPE_TIMESTAMP: case BSON_TYPE_BINARY:
    return true;
  default:
    return false;
  }
}

static bool point_ok(const bson_value_t *v, const idx_def *d, const char *path) {
  if (v->value_type == BSON_TYPE_ARRAY || v->value_type == BSON_TYPE_REGEX) return false;
  if (v->value_type == BSON_TYPE_NULL || v->value_type == BSON_TYPE_UNDEFINED) return !dotted(path) && !d->sparse;
  return true;
}

static void render_value(nx_buf *b, const bson_value_t *v) {
  if (doc_value_to_json(v, b) != NX_OK) nx_buf_append(b, "?", 1);
}

/* The byte at the start of v's bracket (ascending) */
static uint8_t bracket_byte(const bson_value_t *v) {
  nx_buf b;
  nx_buf_init(&b, 0);
  uint8_t r = 0;
  if (keyenc_append(&b, v, false) == NX_OK && b.len) r = b.data[0];
  nx_buf_free(&b);
  return r;
}

static const char *bracket_lo_name(bson_type_t t) {
  return doc_is_number(t) ? "-inf.0" : (t == BSON_TYPE_UTF8 || t == BSON_TYPE_SYMBOL) ? "\"\"" : "MinKey";
}
static const char *bracket_hi_name(bson_type_t t) {
  return doc_is_number(t) ? "inf.0" : (t == BSON_TYPE_UTF8 || t == BSON_TYPE_SYMBOL) ? "{}" : "MaxKey";
}

/* Component-level range of one comparison on a field: [lo, hi) bytes. */
static int range_of(const filter_conjunct *fc, bool desc, nx_buf *lo, nx_buf *hi) {
  lo->len = hi->len = 0;
  nx_buf e;
  nx_buf_init(&e, 0);
  int rc = keyenc_append(&e, fc->value, desc);
  uint8_t b = bracket_byte(fc->value);
  uint8_t blo = desc ? (uint8_t)~b : b, bhi = (uint8_t)(blo + 1);
  bool greater = fc->op == FILTER_OP_GT || fc->op == FILTER_OP_GTE;
  bool strict = fc->op == FILTER_OP_GT || fc->op == FILTER_OP_LT;
  /* In byte space, "values above v" are above enc(v) when ascending, below when descending. */
  bool bytes_above = greater != desc;
  if (rc == NX_OK) {
    if (bytes_above) {
      rc = nx_buf_append(lo, e.data, e.len);
      if (rc == NX_OK && strict) succ(lo);
      if (rc == NX_OK) rc = nx_buf_append(hi, &bhi, 1);
    } else {
      rc = nx_buf_append(lo, &blo, 1);
      if (rc == NX_OK) rc = nx_buf_append(hi, e.data, e.len);
      if (rc == NX_OK && !strict) succ(hi);
    }
  }
  nx_buf_free(&e);
  return rc;
}

static void cand_free(plan_cand *c) {
  nx_buf_free(&c->arena);
  nx_free(c->iv);
  nx_free(c->bounds.p);
}

static int add_ival(plan_cand *c, const uint8_t *lo, size_t lon, const uint8_t *hi, size_t hin, bool hi_inf) {
  if (c->niv == c->civ) {
    size_t nc = c->civ ? c->civ * 2 : 8;
    plan_ival *n = nx_realloc(c->iv, nc * sizeof *n);
    if (!n) return nx_err(NX_NOMEM, "planner: out of memory");
    c->iv = n;
    c->civ = nc;
  }
  plan_ival *v = &c->iv[c->niv];
  v->lo_off = c->arena.len;
  v->lo_len = lon;
  int rc = nx_buf_append(&c->arena, lo, lon);
  v->hi_off = c->arena.len;
  v->hi_len = hin;
  v->hi_inf = hi_inf;
  if (rc == NX_OK) rc = nx_buf_append(&c->arena, hi, hin);
  if (rc == NX_OK) c->niv++;
  return rc;
}

static int ival_cmp(const void *a, const void *b, void *arena) {
  const plan_ival *x = a, *y = b;
  const uint8_t *ar = arena;
  return bcmp_(ar + x->lo_off, x->lo_len, ar + y->lo_off, y->lo_len);
}

/* Appends the rendered bounds of one field to bounds. */
static void render_field(bson_t *bounds, const char *path, const filter_conjunct *pts, size_t npts,
                         bool null_pt, const filter_conjunct *lo_fc, const filter_conjunct *hi_fc) {
  bson_t arr;
  BSON_APPEND_ARRAY_BEGIN(bounds, path, &arr);
  nx_buf b;
  nx_buf_init(&b, 0);
  size_t k = 0;
  char key[16];
  const char *kp;
  if (pts) {
    const bson_value_t *vals = pts->op == FILTER_OP_IN ? pts->values : pts->value;
    size_t n = pts->op == FILTER_OP_IN ? pts->n_values : 1;
    for (size_t i = 0; i < n; i++) {
      b.len = 0;
      nx_buf_append(&b, "[", 1);
      render_value(&b, &vals[i]);
      nx_buf_append(&b, ", ", 2);
      render_value(&b, &vals[i]);
      nx_buf_append(&b, "]", 2);
      bson_uint32_to_string((uint32_t)k++, &kp, key, sizeof key);
      bson_append_utf8(&arr, kp, -1, (const char *)b.data, -1);
    }
    if (null_pt) {
      bson_uint32_to_string((uint32_t)k++, &kp, key, sizeof key);
      bson_append_utf8(&arr, kp, -1, "[undefined, undefined]", -1);
    }
    (void)npts;
  } else if (lo_fc || hi_fc) {
    b.len = 0;
    if (lo_fc) {
      nx_buf_append(&b, lo_fc->op == FILTER_OP_GT ? "(" : "[", 1);
      render_value(&b, lo_fc->value);
    } else {
      nx_buf_printf(&b, "[%s", bracket_lo_name(hi_fc->value->value_type));
    }
    nx_buf_append(&b, ", ", 2);
    if (hi_fc) {
      render_value(&b, hi_fc->value);
      nx_buf_append(&b, hi_fc->op == FILTER_OP_LT ? ")" : "]", 1);
    } else {
      nx_buf_printf(&b, "%s]", bracket_hi_name(lo_fc->value->value_type));
    }
    nx_buf_append(&b, "", 1);
    bson_uint32_to_string((uint32_t)k++, &kp, key, sizeof key);
    bson_append_utf8(&arr, kp, -1, (const char *)b.data, -1);
  } else {
    bson_uint32_to_string((uint32_t)k++, &kp, key, sizeof key);
    bson_append_utf8(&arr, kp, -1, "[MinKey, MaxKey]", -1);
  }
  nx_buf_free(&b);
  bson_append_array_end(bounds, &arr);
}

/* Builds candidate c for index d under filter f. c->usable tells whether it can be used. */
static int build_cand(plan_cand *c, idx_def *d, const filter_t *f) {
  memset(c, 0, sizeof *c);
  c->d = d;
  nx_buf_init(&c->arena, 0);
  size_t nconj = filter_conjunct_count(f);
  for (size_t i = 0; i < d->nfields; i++)
    for (size_t j = 0; j < d->fields[i].dp.n; j++)
      if (d->fields[i].dp.index[j] >= 0) return NX_OK; /* numeric component: never planned */
  bson_t bounds = BSON_INITIALIZER; /* copied into c->bounds at the end */

  /* prefixes: the product of points so far, as records in `pre` */
  nx_buf pre, npre, lo, hi, tmp;
  nx_buf_init(&pre, 0);
  nx_buf_init(&npre, 0);
  nx_buf_init(&lo, 0);
  nx_buf_init(&hi, 0);
  nx_buf_init(&tmp, 0);
  size_t npfx = 1;
  uint8_t z[2] = {0, 0};
  int rc = nx_buf_append(&pre, z, 2); /* one empty prefix */
  bool have_range = false, empty = false;
  size_t fi;
  for (fi = 0; fi < d->nfields && rc == NX_OK; fi++) {
    const idx_field *fd = &d->fields[fi];
    filter_conjunct pts;
    memset(&pts, 0, sizeof pts);
    bool have_pts = false;
    for (size_t j = 0; j < nconj; j++) {
      filter_conjunct fc;
      filter_conjunct_get(f, j, &fc);
      if (!fc.path || strcmp(fc.path, fd->path) != 0 || fc.has_regex) continue;
      if (fc.op == FILTER_OP_EQ && fc.value && point_ok(fc.value, d, fd->path)) {
        if (!have_pts || pts.op != FILTER_OP_EQ) pts = fc;
        have_pts = true;
      } else if (fc.op == FILTER_OP_IN && fc.n_values > 0) {
        bool ok = true;
        for (size_t v = 0; v < fc.n_values && ok; v++) ok = point_ok(&fc.values[v], d, fd->path);
        if (ok && (!have_pts || (pts.op == FILTER_OP_IN && fc.n_values < pts.n_values))) {
          pts = fc;
          have_pts = true;
        }
      }
    }
    if (have_pts) {
      const bson_value_t *vals = pts.op == FILTER_OP_IN ? pts.values : pts.value;
      size_t nv = pts.op == FILTER_OP_IN ? pts.n_values : 1;
      bool has_null = false;
      for (size_t v = 0; v < nv; v++) has_null |= vals[v].value_type == BSON_TYPE_NULL;
      size_t npts = nv + (has_null ? 1 : 0);
      if (npfx * npts > PLAN_MAX_INTERVALS) break; /* stop bounding here */
      npre.len = 0;
      size_t off = 0, made = 0;
      for (size_t p = 0; p < npfx && rc == NX_OK; p++) {
        size_t pl = nx_get16(pre.data + off);
        const uint8_t *pp = pre.data + off + 2;
        off += 2 + pl;
        for (size_t v = 0; v < npts && rc == NX_OK; v++) {
          bson_value_t und;
          const bson_value_t *val = &vals[v < nv ? v : 0];
          if (v >= nv) {
            memset(&und, 0, sizeof und);
            und.value_type = BSON_TYPE_UNDEFINED;
            val = &und;
          }
          tmp.len = 0;
          rc = nx_buf_append(&tmp, pp, pl);
          if (rc == NX_OK) rc = keyenc_append(&tmp, val, fd->desc);
          if (rc == NX_OK && tmp.len > ST_MAX_KEY) continue; /* no key can be that long: no match */
          uint8_t l[2];
          nx_put16(l, (uint16_t)tmp.len);
          if (rc == NX_OK) rc = nx_buf_append(&npre, l, 2);
          if (rc == NX_OK) rc = nx_buf_append(&npre, tmp.data, tmp.len);
          made++;
        }
      }
      nx_buf sw = pre;
      pre = npre;
      npre = sw;
      npfx = made;
      if (made == 0) empty = true;
      c->nbound = fi + 1;
      c->npoints[fi] = npts;
      render_field(&bounds, fd->path, &pts, npts, has_null, NULL, NULL);
      continue;
    }
    /* ranges */
    const filter_conjunct *none = NULL;
    filter_conjunct rlo, rhi;
    memset(&rlo, 0, sizeof rlo);
    memset(&rhi, 0, sizeof rhi);
    bool have_lo = false, have_hi = false, any = false;
    nx_buf clo, chi;
    nx_buf_init(&clo, 0);
    nx_buf_init(&chi, 0);
    for (size_t j = 0; j < nconj && rc == NX_OK; j++) {
      filter_conjunct fc;
      filter_conjunct_get(f, j, &fc);
      if (!fc.path || strcmp(fc.path, fd->path) != 0 || !fc.value) continue;
      if (fc.op != FILTER_OP_GT && fc.op != FILTER_OP_GTE && fc.op != FILTER_OP_LT && fc.op != FILTER_OP_LTE) continue;
      if (!range_type_ok(fc.value->value_type)) continue;
      if (any && idx_field_multikey(d, fi)) continue; /* never intersect on a multikey field */
      rc = range_of(&fc, fd->desc, &lo, &hi);
      if (rc != NX_OK) break;
      if (!any || bcmp_(lo.data, lo.len, clo.data, clo.len) > 0) {
        clo.len = 0;
        rc = nx_buf_append(&clo, lo.data, lo.len);
      }
      if (rc == NX_OK && (!any || bcmp_(hi.data, hi.len, chi.data, chi.len) < 0)) {
        chi.len = 0;
        rc = nx_buf_append(&chi, hi.data, hi.len);
      }
      bool greater = fc.op == FILTER_OP_GT || fc.op == FILTER_OP_GTE;
      if (greater) {
        if (!have_lo || doc_cmp_values(fc.value, rlo.value) > 0) rlo = fc;
        have_lo = true;
      } else {
        if (!have_hi || doc_cmp_values(fc.value, rhi.value) < 0) rhi = fc;
        have_hi = true;
      }
      any = true;
    }
    if (rc == NX_OK && any) {
      have_range = true;
      c->nbound = fi + 1;
      if (bcmp_(clo.data, clo.len, chi.data, chi.len) >= 0) empty = true;
      size_t off = 0;
      for (size_t p = 0; p < npfx && rc == NX_OK && !empty; p++) {
        size_t pl = nx_get16(pre.data + off);
        const uint8_t *pp = pre.data + off + 2;
        off += 2 + pl;
        lo.len = hi.len = 0;
        rc = nx_buf_append(&lo, pp, pl);
        if (rc == NX_OK) rc = nx_buf_append(&lo, clo.data, clo.len);
        if (rc == NX_OK) rc = nx_buf_append(&hi, pp, pl);
        if (rc == NX_OK) rc = nx_buf_append(&hi, chi.data, chi.len);
        if (rc == NX_OK) rc = add_ival(c, lo.data, lo.len, hi.data, hi.len, false);
      }
      render_field(&bounds, fd->path, NULL, 0, false, have_lo ? &rlo : none, have_hi ? &rhi : none);
    }
    nx_buf_free(&clo);
    nx_buf_free(&chi);
    fi++;
    break;
  }
  /* unbounded rest */
  if (rc == NX_OK && !have_range && !empty) {
    size_t off = 0;
    for (size_t p = 0; p < npfx && rc == NX_OK; p++) {
      size_t pl = nx_get16(pre.data + off);
      const uint8_t *pp = pre.data + off + 2;
      off += 2 + pl;
      hi.len = 0;
      rc = nx_buf_append(&hi, pp, pl);
      bool fin = rc == NX_OK && succ(&hi);
      if (rc == NX_OK) rc = add_ival(c, pp, pl, hi.data, fin ? hi.len : 0, !fin);
    }
  }
  if (empty) c->niv = 0;
  for (size_t i = c->nbound; i < d->nfields && rc == NX_OK; i++)
    if (!have_range || i >= fi) render_field(&bounds, d->fields[i].path, NULL, 0, false, NULL, NULL);
  if (rc == NX_OK && c->niv > 1) {
    qsort_r(c->iv, c->niv, sizeof *c->iv, ival_cmp, c->arena.data);
  }
  nx_buf_free(&pre);
  nx_buf_free(&npre);
  nx_buf_free(&lo);
  nx_buf_free(&hi);
  nx_buf_free(&tmp);
  if (rc == NX_OK) {
    c->bounds.p = nx_malloc(bounds.len);
    if (c->bounds.p) {
      memcpy(c->bounds.p, bson_get_data(&bounds), bounds.len);
      c->bounds.n = bounds.len;
    } else {
      rc = nx_err(NX_NOMEM, "planner: out of memory");
    }
  }
  bson_destroy(&bounds);
  c->usable = true;
  return rc;
}

/* ---- partial filter implication ---- */
static bool same_bracket(const bson_value_t *a, const bson_value_t *b) {
  return doc_canonical_type_order(a->value_type) == doc_canonical_type_order(b->value_type);
}

static bool implies(const filter_conjunct *q, const filter_conjunct *p) {
  if (!q->path || !p->path || strcmp(q->path, p->path) != 0 || q->has_regex || p->has_regex) return false;
  if (p->op == FILTER_OP_EXISTS) {
    bool want = p->value && p->value->value_type == BSON_TYPE_BOOL && p->value->value.v_bool;
    if (!want) return false;
    if (q->op == FILTER_OP_EQ) return q->value && q->value->value_type != BSON_TYPE_NULL;
    return q->op == FILTER_OP_GT || q->op == FILTER_OP_GTE || q->op == FILTER_OP_LT || q->op == FILTER_OP_LTE;
  }
  if (p->op == FILTER_OP_EQ) return q->op == FILTER_OP_EQ && doc_cmp_values(q->value, p->value) == 0 &&
                                    q->value->value_type == p->value->value_type;
  bool pg = p->op == FILTER_OP_GT || p->op == FILTER_OP_GTE, pl = p->op == FILTER_OP_LT || p->op == FILTER_OP_LTE;
  if (!pg && !pl) {
    if (p->op != q->op || p->op != FILTER_OP_IN || p->n_values != q->n_values) return false;
    for (size_t i = 0; i < p->n_values; i++)
      if (doc_cmp_values(&p->values[i], &q->values[i]) != 0) return false;
    return true;
  }
  if (!q->value || !same_bracket(q->value, p->value)) return false;
  int c = doc_cmp_values(q->value, p->value);
  bool pstrict = p->op == FILTER_OP_GT || p->op == FILTER_OP_LT;
  if (q->op == FILTER_OP_EQ) return pg ? (pstrict ? c > 0 : c >= 0) : (pstrict ? c < 0 : c <= 0);
  if (pg && (q->op == FILTER_OP_GT || q->op == FILTER_OP_GTE)) {
    bool qstrict = q->op == FILTER_OP_GT;
    return c > 0 || (c == 0 && (qstrict || !pstrict));
  }
  if (pl && (q->op == FILTER_OP_LT || q->op == FILTER_OP_LTE)) {
    bool qstrict = q->op == FILTER_OP_LT;
    return c < 0 || (c == 0 && (qstrict || !pstrict));
  }
  return false;
}

static bool partial_implied(const idx_def *d, const filter_t *f) {
  size_t np = filter_conjunct_count(d->partial), nq = filter_conjunct_count(f);
  for (size_t i = 0; i < np; i++) {
    filter_conjunct p;
    filter_conjunct_get(d->partial, i, &p);
    if (p.op == FILTER_OP_TRUE) continue;
    bool ok = false;
    for (size_t j = 0; j < nq && !ok; j++) {
      filter_conjunct q;
      filter_conjunct_get(f, j, &q);
      ok = implies(&q, &p);
    }
    if (!ok) return false;
  }
  return true;
}

/* 0: c does not provide sort s; 1: a forward walk does; -1: a backward walk does (every sort
 * direction the reverse of the index's). */
static int provides_sort(const plan_cand *c, const sort_t *s) {
  if (!s) return 0;
  const idx_def *d = c->d;
  size_t e = 0;
  while (e < c->nbound && c->npoints[e] == 1) e++;
  size_t nk = sort_nkeys(s);
  if (d->nfields - e != nk) return 0;
  if (nk == 0) return 1;
  int way = 0;
  for (size_t j = 0; j < nk; j++) {
    int dir;
    const char *p = sort_key_path(s, j, &dir);
    const idx_field *fd = &d->fields[e + j];
    if (strcmp(p, fd->path) != 0 || idx_field_multikey(d, e + j)) return 0;
    int w = fd->desc == (dir < 0) ? 1 : -1;
    if (way && w != way) return 0;
    way = w;
  }
  return way;
}

/* Values whose index key stands for exactly the documents the filter's operator accepts on a
 * field that never held an array: encoded by exact value (keyenc.h), compared within one type
 * bracket. null (also matches missing fields and undefined), NaN, symbols, binary, timestamps and
 * anything nested keep the residual. */
static bool exact_value(const bson_value_t *v) {
  switch (v->value_type) {
  case BSON_TYPE_INT32: case BSON_TYPE_INT64: case BSON_TYPE_UTF8: case BSON_TYPE_DATE_TIME:
  case BSON_TYPE_OID: case BSON_TYPE_BOOL:
    return true;
  case BSON_TYPE_DOUBLE:
    return v->value.v_double == v->value.v_double; /* not NaN */
  default:
    return false;
  }
}

/* True when the documents in c's bounds are exactly the documents f matches (ignoring expiry),
 * so the executor may skip the residual filter: every conjunct of f is on a bounded field of
 * the index that never held an array (no multikey bit), each point field has exactly one
 * conjunct (the $eq or $in that gave its points), the range field only comparisons (all of them
 * intersected into the bounds, as on a non-multikey field), and every operand is an exact_value.
 * Anything else ($or, $exists, $ne, a second conjunct on a point field, a field past the bounded
 * prefix, null) keeps the residual. */
static bool cand_exact(const plan_cand *c, const filter_t *f) {
  const idx_def *d = c->d;
  size_t n = filter_conjunct_count(f);
  size_t per_field[IDX_MAX_FIELDS] = {0};
  for (size_t j = 0; j < n; j++) {
    filter_conjunct fc;
    filter_conjunct_get(f, j, &fc);
    if (fc.op == FILTER_OP_TRUE) continue;
    if (!fc.path || fc.has_regex) return false;
    size_t i = 0;
    while (i < c->nbound && strcmp(d->fields[i].path, fc.path) != 0) i++;
    if (i == c->nbound || idx_field_multikey(d, i)) return false;
    per_field[i]++;
    if (c->npoints[i] > 0) { /* a point field: its one $eq / $in */
      if (per_field[i] > 1) return false;
      if (fc.op == FILTER_OP_EQ) {
        if (!fc.value || !exact_value(fc.value)) return false;
      } else if (fc.op == FILTER_OP_IN) {
        if (fc.n_values != c->npoints[i]) return false;
        for (size_t v = 0; v < fc.n_values; v++)
          if (!exact_value(&fc.values[v])) return false;
      } else {
        return false;
      }
    } else { /* the range field (the last bounded one) */
      bool cmp = fc.op == FILTER_OP_GT || fc.op == FILTER_OP_GTE || fc.op == FILTER_OP_LT || fc.op == FILTER_OP_LTE;
      if (!cmp || !fc.value || !exact_value(fc.value)) return false;
    }
  }
  return true;
}

/* Counts keys in c's intervals, up to PLAN_COST_CAP. */
static int count_keys(st_txn *t, plan_cand *c) {
  st_tree tree;
  int rc = st_tree_open(t, c->d->tree, false, &tree);
  if (rc != NX_OK) return rc;
  st_cursor *cur;
  rc = st_cursor_open(t, tree, &cur);
  if (rc != NX_OK) return rc;
  uint64_t n = 0;
  for (size_t i = 0; i < c->niv && n < PLAN_COST_CAP && rc == NX_OK; i++) {
    const plan_ival *v = &c->iv[i];
    rc = st_cursor_seek(cur, (st_val){c->arena.data + v->lo_off, v->lo_len}, ST_SEEK_GE);
    while (rc == NX_OK && n < PLAN_COST_CAP) {
      st_val k, val;
      rc = st_cursor_get(cur, &k, &val);
      if (rc != NX_OK) break;
      if (!v->hi_inf && bcmp_(k.p, k.n, c->arena.data + v->hi_off, v->hi_len) >= 0) break;
      n++;
      rc = st_cursor_next(cur);
    }
    if (rc == NX_NOTFOUND) rc = NX_OK;
  }
  st_cursor_close(cur);
  c->keys_est = n;
  c->counted = true;
  return rc;
}

static int cand_better(const plan_cand *a, const plan_cand *b) {
  if (a->keys_est != b->keys_est) return a->keys_est < b->keys_est;
  if (a->sorts != b->sorts) return a->sorts;
  if (a->nbound != b->nbound) return a->nbound > b->nbound;
  return strcmp(a->d->name, b->d->name) < 0;
}

int plan_make_idhack(q_plan **out) {
  q_plan *p = nx_calloc(1, sizeof *p);
  if (!p) return nx_err(NX_NOMEM, "planner: out of memory");
  p->idhack = true;
  nx_buf_init(&p->last, 0);
  nx_buf_init(&p->idbuf, 0);
  *out = p;
  return NX_OK;
}

int plan_make(nx_txn *t, eng_coll *coll, const filter_t *f, const sort_t *s, q_plan **out) {
  *out = NULL;
  q_plan *p = nx_calloc(1, sizeof *p);
  if (!p) return nx_err(NX_NOMEM, "planner: out of memory");
  nx_buf_init(&p->last, 0);
  nx_buf_init(&p->idbuf, 0);
  nx_buf_init(&p->grp, 0);
  nx_buf_init(&p->grp_vals, 0);
  nx_buf_init(&p->pending, 0);
  p->t = t;
  p->want_sort = s != NULL;
  int rc = idx_set_get(t->st, coll->name, NULL, &p->set);
  if (rc != NX_OK) {
    nx_free(p);
    return rc;
  }
  if (p->set->n) p->cands = nx_calloc(p->set->n, sizeof *p->cands);
  if (p->set->n && !p->cands) rc = nx_err(NX_NOMEM, "planner: out of memory");
  for (size_t i = 0; i < p->set->n && rc == NX_OK; i++) {
    idx_def *d = p->set->defs[i];
    if (d->stale) continue;
    if (d->partial && !partial_implied(d, f)) continue;
    plan_cand *c = &p->cands[p->ncands];
    rc = build_cand(c, d, f);
    if (rc != NX_OK) {
      cand_free(c);
      break;
    }
    int way = provides_sort(c, s);
    c->sorts = way != 0;
    c->backward = way < 0;
    c->exact = c->usable && cand_exact(c, f);
    bool ok = c->usable && (c->nbound > 0 || c->sorts) && !(d->sparse && c->nbound == 0);
    if (!ok) {
      cand_free(c);
      continue;
    }
    p->ncands++;
  }
  /* a unique index with every field bound to one point matches at most one document: taken
   * at once, without counting the others */
  size_t point = SIZE_MAX;
  for (size_t i = 0; i < p->ncands && point == SIZE_MAX; i++) {
    const plan_cand *c = &p->cands[i];
    bool one = c->d->unique && c->nbound == c->d->nfields && (!s || c->sorts);
    for (size_t k = 0; one && k < c->d->nfields; k++) one = c->npoints[k] == 1;
    if (one) point = i;
  }
  if (rc == NX_OK && p->ncands > 1 && point == SIZE_MAX)
    for (size_t i = 0; i < p->ncands && rc == NX_OK; i++) rc = count_keys(t->st, &p->cands[i]);
  if (rc == NX_OK && p->ncands > 0) {
    size_t w = 0;
    for (size_t i = 1; i < p->ncands; i++)
      if (cand_better(&p->cands[i], &p->cands[w])) w = i;
    if (point != SIZE_MAX) w = point;
    p->win = w;
    p->ixscan = true;
    idx_note_lookup(coll->name, p->cands[w].d->name);
    const plan_cand *c = &p->cands[w];
    p->collect = !c->sorts;
    /* Every field bound to one point: the interval is one run of equal values parts, whose
     * entries ascend by _id with no _id twice (a document's keys are de-duplicated), so a read
     * txn streams it in _id order without gathering. */
    bool one_run = c->niv == 1 && c->nbound == c->d->nfields;
    for (size_t k = 0; one_run && k < c->d->nfields; k++) one_run = c->npoints[k] == 1;
    bool stream_run = p->collect && one_run && !t->write;
    if (stream_run) p->collect = false;
    p->backward = c->sorts && c->backward;
    p->dedupe = !p->collect && !stream_run && (c->d->multikey != 0 || t->write);
    /* a write txn may add arrays (multikey) under the scan: it always re-checks */
    p->residual = !c->exact || t->write;
    rc = st_tree_open(t->st, c->d->tree, false, &p->tree);
  }
  if (rc != NX_OK) {
    plan_free(p);
    return rc;
  }
  *out = p;
  return NX_OK;
}

bool plan_is_ixscan(const q_plan *p) { return p && p->ixscan; }
bool plan_needs_filter(const q_plan *p) { return !p || !p->ixscan || p->residual; }
bool plan_provides_sort(const q_plan *p) { return p && p->ixscan && p->cands[p->win].sorts; }
void plan_note_doc(q_plan *p) {
  if (p) p->docs_ex++;
}
uint64_t plan_keys_examined(const q_plan *p) { return p ? p->keys_ex : 0; }
uint64_t plan_docs_examined(const q_plan *p) { return p ? p->docs_ex : 0; }

void plan_free(q_plan *p) {
  if (!p) return;
  for (size_t i = 0; i < p->ncands; i++) cand_free(&p->cands[i]);
  nx_free(p->cands);
  idx_set_free(p->set);
  st_cursor_close(p->cur);
  nx_buf_free(&p->last);
  nx_buf_free(&p->idbuf);
  plan_seen_free(&p->seen);
  nx_buf_free(&p->grp);
  nx_buf_free(&p->grp_vals);
  nx_buf_free(&p->pending);
  for (size_t i = 0; i < PLAN_RA; i++) nx_buf_free(&p->ra_buf[i]);
  nx_free(p->grp_off);
  if (p->collected || p->ids.data) nx_buf_free(&p->ids);
  nx_free(p->id_off);
  nx_free(p);
}
