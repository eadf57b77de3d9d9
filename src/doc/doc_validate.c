/*
 * doc_validate.c: the checks a document passes before it is stored (MongoDB's rules):
 *   1. well-formed BSON (libbson's structural validation), at most DOC_MAX_BYTES;
 *   2. nesting depth at most DOC_MAX_DEPTH (a flat document has depth 1);
 *   3. no top-level field name starting with '$' (nested ones are allowed, as in MongoDB 5+);
 *   4. field names and strings are valid UTF-8 without NUL;
 *   5. `_id`, if present, is not an array, a regex or undefined.
 * Each failure is NX_INVALID with a message naming the field path.
 *
 * Two implementations: a fast pass over the raw bytes that only answers "certainly valid", and
 * the reference walk (libbson's iterator, then bson_validate for exotic types) that runs when the
 * fast pass is unsure and words every error. tests/test_doc.c checks on mutated documents that
 * the fast pass never accepts what the walk refuses.
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

/* ---- The fast path ----------------------------------------------------------------------
 * One pass over the raw bytes, without libbson's iterator (which re-checks every element and was
 * half of an insert's instructions). It only says "certainly valid": whatever it does not handle
 * (an exotic type, binary subtype 2, undefined, a top-level '$' name, a bad _id type, a malformed
 * or suspicious byte, too deep a nesting) makes it answer false, and the reference walk below
 * then decides and words the error. What it accepts is a subset of what the walk accepts:
 * elements tile the document exactly up to its final NUL, each within the bounds libbson's
 * bson_iter_next checks, with names and strings checked by the same UTF-8 rule. */

#define W_ONES 0x0101010101010101ull
#define W_HIGHS 0x8080808080808080ull

/* utf8_ok, eight bytes at a time for pure ASCII without NUL. cap (>= n) is how many bytes may be
 * read from s: the tail is checked as one word, the last 8 bytes of the string (overlapping the
 * words before it) or, for a string shorter than 8, the first 8 readable bytes masked to it. A
 * zero-byte flag can be wrong only above a real zero byte, so masking keeps the test exact. */
static bool str_ok(const uint8_t *s, size_t n, size_t cap) {
  uint64_t v;
  if (n < 8) {
    if (n == 0) return true;
    if (cap < 8) return utf8_ok((const char *)s, n);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(&v, s, 8);
    uint64_t m = ((uint64_t)1 << (8 * n)) - 1; /* the string's bytes: the low n on little-endian */
    if ((v | ((v - W_ONES) & ~v)) & W_HIGHS & m) return utf8_ok((const char *)s, n);
    return true;
#else
    return utf8_ok((const char *)s, n);
#endif
  }
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    memcpy(&v, s + i, 8);
    if ((v | ((v - W_ONES) & ~v)) & W_HIGHS) return utf8_ok((const char *)s, n);
  }
  if (i < n) {
    memcpy(&v, s + n - 8, 8);
    if ((v | ((v - W_ONES) & ~v)) & W_HIGHS) return utf8_ok((const char *)s, n);
  }
  return true;
}

/* The value size of the fixed-size types the raw passes accept (0 for the others). */
static uint32_t fixed_width(uint8_t t) {
  switch (t) {
  case BSON_TYPE_DOUBLE:
  case BSON_TYPE_DATE_TIME:
  case BSON_TYPE_INT64:
  case BSON_TYPE_TIMESTAMP: return 8;
  case BSON_TYPE_INT32: return 4;
  case BSON_TYPE_OID: return 12;
  case BSON_TYPE_DECIMAL128: return 16;
  default: return 0;
  }
}

static bool fast_ok(const uint8_t *d, uint32_t len, int depth, bool top) {
  if (depth > DOC_MAX_DEPTH || len < 5 || nx_get32(d) != len || d[len - 1] != 0) return false;
  const uint32_t end = len - 1; /* offset of the final NUL */
  uint32_t off = 4;
  while (off < end) {
    uint8_t t = d[off];
    const uint8_t *key = d + off + 1;
    uint32_t kmax = end - (off + 1), kl = 0;
    uint64_t hi = 0;
    uint64_t w, z;
    if (kmax >= 8 && (memcpy(&w, key, 8), z = (w - W_ONES) & ~w & W_HIGHS) != 0) {
      /* a key shorter than 8 bytes, found in one word: the lowest flagged byte is its NUL */
      kl = (uint32_t)__builtin_ctzll(z) / 8;
      hi = w & (((uint64_t)1 << (kl * 8)) - 1);
    } else {
      while (kl < kmax && key[kl] != 0)
        hi |= key[kl++];
      if (kl == kmax) return false;
    }
    if ((hi & W_HIGHS) && !bson_utf8_validate((const char *)key, kl, false)) return false;
    uint32_t v = off + 1 + kl + 1;
    uint32_t rem = end - v; /* value bytes available before the final NUL */
    if (top && (key[0] == '$' || (kl == 3 && memcmp(key, "_id", 3) == 0 && t == BSON_TYPE_ARRAY))) return false;
    uint32_t need;
    switch (t) {
    case BSON_TYPE_DOUBLE:
    case BSON_TYPE_DATE_TIME:
    case BSON_TYPE_INT64:
    case BSON_TYPE_TIMESTAMP:
    case BSON_TYPE_INT32:
    case BSON_TYPE_OID:
    case BSON_TYPE_DECIMAL128:
    case BSON_TYPE_NULL:
      need = fixed_width(t);
      break;
    case BSON_TYPE_BOOL:
      if (rem < 1 || d[v] > 1) return false;
      need = 1;
      break;
    case BSON_TYPE_UTF8: {
      if (rem < 4) return false;
      uint32_t l = nx_get32(d + v);
      if (l < 1 || l > rem - 4 || d[v + 4 + l - 1] != 0 || !str_ok(d + v + 4, l - 1, len - (v + 4))) return false;
      need = 4 + l;
      break;
    }
    case BSON_TYPE_DOCUMENT:
    case BSON_TYPE_ARRAY: {
      if (rem < 5) return false;
      uint32_t l = nx_get32(d + v);
      if (l > rem || !fast_ok(d + v, l, depth + 1, false)) return false;
      need = l;
      break;
    }
    case BSON_TYPE_BINARY: {
      if (rem < 5) return false;
      uint32_t l = nx_get32(d + v);
      if (l > rem - 5 || d[v + 4] == BSON_SUBTYPE_BINARY_DEPRECATED) return false;
      need = 5 + l;
      break;
    }
    default: /* undefined and the exotic types: the walk decides */
      return false;
    }
    if (need > rem) return false;
    off = v + need;
  }
  return true;
}

bool doc_valid_fast(const uint8_t *data, uint32_t len) {
  return data && len <= DOC_MAX_BYTES && fast_ok(data, len, 1, true);
}

int doc_validate_for_storage(const bson_t *doc) {
  if (doc && doc->len <= DOC_MAX_BYTES && fast_ok(bson_get_data(doc), doc->len, 1, true)) return NX_OK;
  return doc_validate_for_storage_walk(doc);
}

int doc_validate_for_storage_walk(const bson_t *doc) {
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

/* depth_of over the raw bytes, or -1 when unsure: for every element it accepts, libbson's
 * iterator sees the same element with the same bounds (the types and checks of fast_ok), so when
 * it answers, depth_of would give the same depth. Anything else is left to depth_of. */
static int raw_depth(const uint8_t *d, uint32_t len, int level, int cap) {
  if (len < 5 || nx_get32(d) != len || d[len - 1] != 0) return -1;
  if (level > cap) return 1;
  const uint32_t end = len - 1;
  uint32_t off = 4;
  int best = 0;
  while (off < end) {
    uint8_t t = d[off];
    uint32_t k = off + 1;
    while (k < end && d[k] != 0)
      k++;
    if (k == end) return -1;
    uint32_t v = k + 1, rem = end - v, need;
    switch (t) {
    case BSON_TYPE_DOUBLE:
    case BSON_TYPE_DATE_TIME:
    case BSON_TYPE_INT64:
    case BSON_TYPE_TIMESTAMP:
    case BSON_TYPE_INT32:
    case BSON_TYPE_OID:
    case BSON_TYPE_DECIMAL128:
    case BSON_TYPE_NULL:
      need = fixed_width(t);
      break;
    case BSON_TYPE_BOOL:
      if (rem < 1 || d[v] > 1) return -1;
      need = 1;
      break;
    case BSON_TYPE_UTF8: {
      if (rem < 4) return -1;
      uint32_t l = nx_get32(d + v);
      if (l < 1 || l > rem - 4 || d[v + 4 + l - 1] != 0) return -1;
      need = 4 + l;
      break;
    }
    case BSON_TYPE_DOCUMENT:
    case BSON_TYPE_ARRAY: {
      if (rem < 5) return -1;
      uint32_t l = nx_get32(d + v);
      if (l > rem) return -1;
      int c = raw_depth(d + v, l, level + 1, cap);
      if (c < 0) return -1;
      if (c > best) best = c;
      need = l;
      break;
    }
    default:
      return -1;
    }
    if (need > rem) return -1;
    off = v + need;
  }
  return best + 1;
}

int doc_depth_capped(const bson_t *doc, int cap) {
  bson_iter_t it;
  if (!bson_iter_init(&it, doc)) return 0;
  int r = raw_depth(bson_get_data(doc), doc->len, 1, cap);
  return r >= 0 ? r : depth_of(&it, 1, cap);
}

int doc_depth_capped_walk(const bson_t *doc, int cap) {
  bson_iter_t it;
  if (!bson_iter_init(&it, doc)) return 0;
  return depth_of(&it, 1, cap);
}

int doc_depth(const bson_t *doc) { return doc_depth_capped(doc, DOC_MAX_DEPTH); }
