/*
 * doc_path.c: dotted paths ("a.b.0.c"): split once, then looked up exactly (doc_path_get) or
 * visited under MongoDB's array rules (doc_path_visit, for index and sort keys).
 *
 * Invariants:
 *   1. A parsed path owns one buffer holding its components; nothing else is allocated.
 *   2. Lookups borrow: iterators and values point into the caller's document.
 *   3. A component is an array index only if it is all decimal digits, without a leading zero
 *      (except "0" itself) and at most 18 digits long.
 */
#include <string.h>

#include "doc.h"

static int64_t component_index(const char *s, size_t n) {
  if (n == 0 || n > 18) return -1;
  if (n > 1 && s[0] == '0') return -1;
  int64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

int doc_path_parse(const char *path, ssize_t len, doc_path *out) {
  memset(out, 0, sizeof *out);
  if (!path) return nx_err(NX_INVALID, "path: NULL");
  size_t n = len < 0 ? strlen(path) : (size_t)len;
  if (n == 0) return nx_err(NX_INVALID, "path: empty field path");
  if (memchr(path, '\0', n)) return nx_err(NX_INVALID, "path: embedded NUL in field path");
  size_t parts = 1;
  for (size_t i = 0; i < n; i++)
    if (path[i] == '.') parts++;
  if (parts > DOC_PATH_MAX_PARTS)
    return nx_err(NX_LIMIT, "path: '%.*s' has more than %d components", (int)(n > 64 ? 64 : n), path,
                  DOC_PATH_MAX_PARTS);
  size_t sz = n + 1 + parts * (sizeof(char *) + sizeof(uint32_t) + sizeof(int64_t)) + 16;
  uint8_t *mem = nx_malloc(sz);
  if (!mem) return nx_err(NX_NOMEM, "path: out of memory");
  /* layout: index[parts] | parts[parts] | lens[parts] | buf[n+1] (alignment descending) */
  out->index = (int64_t *)(void *)mem;
  out->parts = (const char **)(void *)(mem + parts * sizeof(int64_t));
  out->lens = (uint32_t *)(void *)(mem + parts * (sizeof(int64_t) + sizeof(char *)));
  out->buf = (char *)(mem + parts * (sizeof(int64_t) + sizeof(char *) + sizeof(uint32_t)));
  memcpy(out->buf, path, n);
  out->buf[n] = '\0';
  out->len = n;
  size_t k = 0, start = 0;
  for (size_t i = 0; i <= n; i++) {
    if (i == n || out->buf[i] == '.') {
      if (i == start) {
        nx_free(mem);
        memset(out, 0, sizeof *out);
        return nx_err(NX_INVALID, "path: empty component in field path '%.*s'", (int)(n > 200 ? 200 : n),
                      path);
      }
      out->buf[i] = '\0';
      out->parts[k] = out->buf + start;
      out->lens[k] = (uint32_t)(i - start);
      out->index[k] = component_index(out->buf + start, i - start);
      k++;
      start = i + 1;
    }
  }
  out->n = k;
  return NX_OK;
}

void doc_path_free(doc_path *p) {
  if (!p) return;
  nx_free(p->index);
  memset(p, 0, sizeof *p);
}

static bool find_key(bson_iter_t *it, const char *key, uint32_t klen) {
  while (bson_iter_next(it)) {
    if (bson_iter_key_len(it) == klen && memcmp(bson_iter_key(it), key, klen) == 0) return true;
  }
  return false;
}

static bool get_parts(const bson_t *doc, const char *const *parts, const uint32_t *lens, size_t n,
                      bson_iter_t *out) {
  bson_iter_t it;
  if (!bson_iter_init(&it, doc)) return false;
  for (size_t i = 0; i < n; i++) {
    if (!find_key(&it, parts[i], lens[i])) return false;
    if (i + 1 == n) break;
    bson_type_t t = bson_iter_type(&it);
    if (t != BSON_TYPE_DOCUMENT && t != BSON_TYPE_ARRAY) return false;
    bson_iter_t child;
    if (!bson_iter_recurse(&it, &child)) return false;
    it = child;
  }
  *out = it;
  return true;
}

bool doc_path_get(const bson_t *doc, const doc_path *path, bson_iter_t *out) {
  return get_parts(doc, path->parts, path->lens, path->n, out);
}

bool doc_get_dotted(const bson_t *doc, const char *dotted, bson_iter_t *out) {
  const char *parts[32];
  uint32_t lens[32];
  size_t n = 0;
  const char *p = dotted;
  for (;;) {
    const char *dot = strchr(p, '.');
    size_t l = dot ? (size_t)(dot - p) : strlen(p);
    if (n == 32) {
      doc_path dp;
      if (doc_path_parse(dotted, -1, &dp) != NX_OK) return false;
      bool ok = doc_path_get(doc, &dp, out);
      doc_path_free(&dp);
      return ok;
    }
    parts[n] = p;
    lens[n] = (uint32_t)l;
    n++;
    if (!dot) break;
    p = dot + 1;
  }
  return get_parts(doc, parts, lens, n, out);
}

/* ---- Visiting under MongoDB's array rules ---- */

typedef struct visit_ctx {
  const doc_path *path;
  bool expand;
  doc_visit_fn cb;
  void *ctx;
  bool found;
} visit_ctx;

static int visit_value(visit_ctx *vc, const doc_elem *e, size_t i);

/* `e` is a document or array; components [i, n) remain. Walks the raw bytes (doc_raw_*). */
static int visit_from_container(visit_ctx *vc, const doc_elem *e, bool is_array, size_t i) {
  const char *key = vc->path->parts[i];
  uint32_t klen = vc->path->lens[i];
  doc_elem c;
  if (!is_array || vc->path->index[i] >= 0) {
    if (doc_raw_find(e->vp, e->vlen, key, klen, &c)) return visit_value(vc, &c, i + 1);
    return NX_OK;
  }
  /* non-numeric component over an array: into each element that is a document */
  doc_raw_iter it;
  if (!doc_raw_init(&it, e->vp, e->vlen)) return NX_OK;
  while (doc_raw_next(&it, &c)) {
    if (c.type != BSON_TYPE_DOCUMENT) continue;
    doc_elem sub;
    if (doc_raw_find(c.vp, c.vlen, key, klen, &sub)) {
      int rc = visit_value(vc, &sub, i + 1);
      if (rc != NX_OK) return rc;
    }
  }
  return NX_OK;
}

static int visit_value(visit_ctx *vc, const doc_elem *e, size_t i) {
  bson_value_t v;
  if (i == vc->path->n) {
    if (e->type == BSON_TYPE_ARRAY && vc->expand) {
      doc_raw_iter it;
      doc_elem c;
      bool any = false;
      if (doc_raw_init(&it, e->vp, e->vlen)) {
        while (doc_raw_next(&it, &c)) {
          any = true;
          vc->found = true;
          doc_raw_value(&c, &v);
          int rc = vc->cb(&v, vc->ctx);
          if (rc != NX_OK) return rc;
        }
      }
      if (!any) {
        memset(&v, 0, sizeof v);
        v.value_type = BSON_TYPE_UNDEFINED;
        vc->found = true;
        return vc->cb(&v, vc->ctx);
      }
      return NX_OK;
    }
    vc->found = true;
    doc_raw_value(e, &v);
    return vc->cb(&v, vc->ctx);
  }
  if (e->type == BSON_TYPE_DOCUMENT) return visit_from_container(vc, e, false, i);
  if (e->type == BSON_TYPE_ARRAY) return visit_from_container(vc, e, true, i);
  return NX_OK;
}

int doc_path_visit(const bson_t *doc, const doc_path *path, bool expand_leaf_arrays, doc_visit_fn cb,
                   void *ctx, bool *found) {
  visit_ctx vc = {path, expand_leaf_arrays, cb, ctx, false};
  doc_elem e;
  int rc = NX_OK;
  if (path->n > 0 && doc_raw_find(bson_get_data(doc), doc->len, path->parts[0], path->lens[0], &e))
    rc = visit_value(&vc, &e, 1);
  if (found) *found = vc.found;
  return rc;
}
