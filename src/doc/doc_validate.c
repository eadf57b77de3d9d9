/*
 * doc_validate.c: the checks a document passes before it is stored (MongoDB's rules):
 *   1. well-formed BSON (libbson's structural validation), at most DOC_MAX_BYTES;
 *   2. nesting depth at most DOC_MAX_DEPTH (a flat document has depth 1);
 *   3. no top-level field name starting with '$' (nested ones are allowed, as in MongoDB 5+);
 *   4. field names and strings are valid UTF-8 without NUL;
 *   5. `_id`, if present, is not an array, a regex or undefined.
 * Each failure is NX_INVALID with a message naming the field path.
 */
#include <string.h>

#include "doc.h"

typedef struct vpath {
  char buf[512]; /* dotted path of the current field, truncated with "..." */
  size_t len;
} vpath;

static size_t vpath_push(vpath *p, const char *key) {
  size_t old = p->len;
  size_t klen = strlen(key);
  size_t need = (old ? 1 : 0) + klen;
  if (old + need + 4 >= sizeof p->buf) {
    if (old + 4 < sizeof p->buf) {
      memcpy(p->buf + old, "...", 4);
      p->len = old + 3;
    }
    return old;
  }
  if (old) p->buf[p->len++] = '.';
  memcpy(p->buf + p->len, key, klen);
  p->len += klen;
  p->buf[p->len] = '\0';
  return old;
}

static void vpath_pop(vpath *p, size_t old) {
  p->len = old;
  p->buf[old] = '\0';
}

/* bson_utf8_validate (no NUL allowed), with a fast path for pure ASCII, the common case: libbson's
 * validator costs ~25 instructions a byte, which made it the largest cost of an insert. */
static bool utf8_ok(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == 0 || c >= 0x80) return bson_utf8_validate(s, n, false);
  }
  return true;
}

/* *exotic is set when a value of a type whose inner structure only libbson's bson_validate checks
 * (code, code with scope, symbol, dbpointer, regex, and anything unknown) is seen. */
static int walk(bson_iter_t *it, int depth, vpath *path, bool top, bool *exotic) {
  if (depth > DOC_MAX_DEPTH)
    return nx_err(NX_INVALID, "document: nesting depth exceeds %d at '%s'", DOC_MAX_DEPTH, path->buf);
  while (bson_iter_next(it)) {
    const char *key = bson_iter_key(it);
    uint32_t klen = bson_iter_key_len(it);
    size_t mark = vpath_push(path, key);
    if (!utf8_ok(key, klen))
      return nx_err(NX_INVALID, "document: field name at '%s' is not valid UTF-8", path->buf);
    if (top && key[0] == '$')
      return nx_err(NX_INVALID, "document: field name '%s' at top level may not start with '$'", key);
    bson_type_t t = bson_iter_type(it);
    if (top && klen == 3 && memcmp(key, "_id", 3) == 0 &&
        (t == BSON_TYPE_ARRAY || t == BSON_TYPE_REGEX || t == BSON_TYPE_UNDEFINED))
      return nx_err(NX_INVALID, "document: field '_id' may not be of type %s", doc_type_name(t));
    if (t == BSON_TYPE_UTF8) {
      uint32_t sl = 0;
      const char *s = bson_iter_utf8(it, &sl);
      if (!utf8_ok(s, sl))
        return nx_err(NX_INVALID, "document: string at '%s' is not valid UTF-8 or contains NUL", path->buf);
    } else if (t == BSON_TYPE_CODE || t == BSON_TYPE_CODEWSCOPE || t == BSON_TYPE_SYMBOL ||
               t == BSON_TYPE_DBPOINTER || t == BSON_TYPE_REGEX || t > BSON_TYPE_DECIMAL128) {
      *exotic = true;
    } else if (t == BSON_TYPE_DOCUMENT || t == BSON_TYPE_ARRAY) {
      bson_iter_t child;
      if (!bson_iter_recurse(it, &child))
        return nx_err(NX_INVALID, "document: malformed subdocument at '%s'", path->buf);
      int rc = walk(&child, depth + 1, path, false, exotic);
      if (rc != NX_OK) return rc;
    }
    vpath_pop(path, mark);
  }
  if (it->err_off != 0)
    return nx_err(NX_INVALID, "document: malformed BSON at offset %u", (unsigned)it->err_off);
  return NX_OK;
}

int doc_validate_for_storage(const bson_t *doc) {
  if (!doc) return nx_err(NX_INVALID, "document: NULL");
  if (doc->len > DOC_MAX_BYTES)
    return nx_err(NX_INVALID, "document: size %u bytes exceeds the limit of %d bytes", (unsigned)doc->len,
                  DOC_MAX_BYTES);
  /* Our depth-limited walk runs first, so libbson's recursive validation never sees a
   * pathologically deep document. */
  bson_iter_t it;
  if (!bson_iter_init(&it, doc)) return nx_err(NX_INVALID, "document: malformed BSON");
  vpath p;
  p.len = 0;
  p.buf[0] = '\0';
  bool exotic = false;
  int rc = walk(&it, 1, &p, true, &exotic);
  if (rc != NX_OK) return rc;
  /* The walk has already checked every element's bounds (bson_iter), every name and string
   * (UTF-8, no NUL) and every nested document; libbson's full validation, which validates all
   * strings again with a slow UTF-8 decoder (~40% of an insert), is kept for the types whose
   * inner structure only it checks. */
  if (!exotic) return NX_OK;
  size_t off = 0;
  if (!bson_validate(doc, BSON_VALIDATE_NONE, &off))
    return nx_err(NX_INVALID, "document: malformed BSON at offset %zu", off);
  return NX_OK;
}

/* Stops descending past DOC_MAX_DEPTH + 1 so hostile nesting cannot exhaust the stack. */
static int depth_of(bson_iter_t *it, int level, int cap) {
  int best = 0;
  if (level > cap) return 1;
  while (bson_iter_next(it)) {
    bson_type_t t = bson_iter_type(it);
    if (t == BSON_TYPE_DOCUMENT || t == BSON_TYPE_ARRAY) {
      bson_iter_t child;
      if (bson_iter_recurse(it, &child)) {
        int d = depth_of(&child, level + 1, cap);
        if (d > best) best = d;
      }
    }
  }
  return best + 1;
}

int doc_depth_capped(const bson_t *doc, int cap) {
  bson_iter_t it;
  if (!bson_iter_init(&it, doc)) return 0;
  return depth_of(&it, 1, cap);
}

int doc_depth(const bson_t *doc) { return doc_depth_capped(doc, DOC_MAX_DEPTH); }
