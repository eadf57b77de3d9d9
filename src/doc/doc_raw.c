/*
 * doc_raw.c: a minimal bounds-checked BSON element walker for hot paths.
 *
 * Layout walked (bsonspec.org):   int32 total_len | element* | 0x00
 *                       element:  type byte | key cstring | value
 * Value sizes by type:  double, date, int64, timestamp 8; int32 4; decimal128 16; ObjectId 12;
 * bool 1; null, undefined, MinKey, MaxKey 0; string, code, symbol int32 n + n bytes (NUL last);
 * document, array, code-with-scope int32 n (n bytes in all); binary int32 n + subtype + n;
 * regex two cstrings; dbPointer string + 12.
 *
 * Invariants: no read outside [data, data + len); anything malformed or unknown ends the walk
 * (callers treat the rest of the document as absent, as libbson's iterator does).
 */
#include <string.h>

#include "doc.h"

bool doc_raw_init(doc_raw_iter *it, const uint8_t *data, uint32_t len) {
  it->data = data;
  it->len = 0;
  it->off = 4;
  if (!data || len < 5 || nx_get32(data) != len || data[len - 1] != 0) return false;
  it->len = len;
  return true;
}

static bool string_len(const uint8_t *vp, uint32_t rem, uint32_t *vlen) {
  if (rem < 4) return false;
  uint32_t l = nx_get32(vp);
  if (l < 1 || l > rem - 4 || vp[4 + l - 1] != 0) return false;
  *vlen = 4 + l;
  return true;
}

bool doc_raw_next(doc_raw_iter *it, doc_elem *e) {
  if (it->len == 0 || it->off >= it->len - 1) return false;
  const uint8_t *d = it->data;
  uint8_t t = d[it->off];
  uint32_t kstart = it->off + 1;
  uint32_t avail = it->len - 1 - kstart; /* bytes before the document's final NUL */
  /* keys are short: one 8-byte word usually holds the key and its NUL (the lowest zero byte
   * found by the classic has-zero test is the first NUL); else a plain loop, which beats memchr */
  uint32_t klen = 0;
  uint64_t w, z;
  if (avail >= 8 && (memcpy(&w, d + kstart, 8), z = (w - 0x0101010101010101ull) & ~w & 0x8080808080808080ull) != 0) {
    klen = (uint32_t)__builtin_ctzll(z) / 8;
  } else {
    while (klen < avail && d[kstart + klen] != 0)
      klen++;
    if (klen == avail) goto bad;
  }
  uint32_t vstart = kstart + klen + 1;
  uint32_t rem = it->len - 1 - vstart;
  const uint8_t *vp = d + vstart;
  uint32_t vlen;
  switch (t) {
  case BSON_TYPE_DOUBLE:
  case BSON_TYPE_DATE_TIME:
  case BSON_TYPE_INT64:
  case BSON_TYPE_TIMESTAMP:
    vlen = 8;
    break;
  case BSON_TYPE_INT32:
    vlen = 4;
    break;
  case BSON_TYPE_DECIMAL128:
    vlen = 16;
    break;
  case BSON_TYPE_OID:
    vlen = 12;
    break;
  case BSON_TYPE_BOOL:
    vlen = 1;
    break;
  case BSON_TYPE_NULL:
  case BSON_TYPE_UNDEFINED:
  case BSON_TYPE_MINKEY:
  case BSON_TYPE_MAXKEY:
    vlen = 0;
    break;
  case BSON_TYPE_UTF8:
  case BSON_TYPE_CODE:
  case BSON_TYPE_SYMBOL:
    if (!string_len(vp, rem, &vlen)) goto bad;
    break;
  case BSON_TYPE_DOCUMENT:
  case BSON_TYPE_ARRAY:
  case BSON_TYPE_CODEWSCOPE: {
    if (rem < 5) goto bad;
    uint32_t l = nx_get32(vp);
    if (l < 5 || l > rem || vp[l - 1] != 0) goto bad;
    vlen = l;
    break;
  }
  case BSON_TYPE_BINARY: {
    if (rem < 5) goto bad;
    uint32_t l = nx_get32(vp);
    if (l > rem - 5) goto bad;
    vlen = 5 + l;
    break;
  }
  case BSON_TYPE_REGEX: {
    const uint8_t *a = memchr(vp, 0, rem);
    if (!a) goto bad;
    uint32_t used = (uint32_t)(a - vp) + 1;
    const uint8_t *b = memchr(a + 1, 0, rem - used);
    if (!b) goto bad;
    vlen = (uint32_t)(b - vp) + 1;
    break;
  }
  case BSON_TYPE_DBPOINTER:
    if (!string_len(vp, rem, &vlen) || vlen > rem - 12) goto bad;
    vlen += 12;
    break;
  default:
    goto bad;
  }
  if (vlen > rem) goto bad;
  e->type = (bson_type_t)t;
  e->key = (const char *)(d + kstart);
  e->klen = klen;
  e->vp = vp;
  e->vlen = vlen;
  it->off = vstart + vlen;
  return true;
bad:
  it->len = 0;
  return false;
}

bool doc_raw_find(const uint8_t *data, uint32_t len, const char *key, uint32_t klen, doc_elem *e) {
  doc_raw_iter it;
  if (!doc_raw_init(&it, data, len)) return false;
  while (doc_raw_next(&it, e))
    if (e->klen == klen && (klen == 0 || (e->key[0] == key[0] && memcmp(e->key, key, klen) == 0)))
      return true;
  return false;
}

void doc_raw_value(const doc_elem *e, bson_value_t *out) {
  const uint8_t *vp = e->vp;
  out->value_type = e->type;
  switch (e->type) {
  case BSON_TYPE_DOUBLE: {
    uint64_t bits = nx_get64(vp);
    memcpy(&out->value.v_double, &bits, 8);
    break;
  }
  case BSON_TYPE_UTF8:
    out->value.v_utf8.str = (char *)(uintptr_t)(vp + 4);
    out->value.v_utf8.len = nx_get32(vp) - 1;
    break;
  case BSON_TYPE_DOCUMENT:
  case BSON_TYPE_ARRAY:
    out->value.v_doc.data = (uint8_t *)(uintptr_t)vp;
    out->value.v_doc.data_len = e->vlen;
    break;
  case BSON_TYPE_BINARY:
    out->value.v_binary.data_len = nx_get32(vp);
    out->value.v_binary.subtype = (bson_subtype_t)vp[4];
    out->value.v_binary.data = (uint8_t *)(uintptr_t)(vp + 5);
    break;
  case BSON_TYPE_OID:
    memcpy(out->value.v_oid.bytes, vp, 12);
    break;
  case BSON_TYPE_BOOL:
    out->value.v_bool = vp[0] != 0;
    break;
  case BSON_TYPE_DATE_TIME:
    out->value.v_datetime = (int64_t)nx_get64(vp);
    break;
  case BSON_TYPE_REGEX: {
    size_t pl = strlen((const char *)vp);
    out->value.v_regex.regex = (char *)(uintptr_t)vp;
    out->value.v_regex.options = (char *)(uintptr_t)(vp + pl + 1);
    break;
  }
  case BSON_TYPE_DBPOINTER: {
    uint32_t l = nx_get32(vp);
    out->value.v_dbpointer.collection = (char *)(uintptr_t)(vp + 4);
    out->value.v_dbpointer.collection_len = l - 1;
    memcpy(out->value.v_dbpointer.oid.bytes, vp + 4 + l, 12);
    break;
  }
  case BSON_TYPE_CODE:
    out->value.v_code.code = (char *)(uintptr_t)(vp + 4);
    out->value.v_code.code_len = nx_get32(vp) - 1;
    break;
  case BSON_TYPE_SYMBOL:
    out->value.v_symbol.symbol = (char *)(uintptr_t)(vp + 4);
    out->value.v_symbol.len = nx_get32(vp) - 1;
    break;
  case BSON_TYPE_CODEWSCOPE: {
    uint32_t l = e->vlen >= 8 ? nx_get32(vp + 4) : 0;
    if (e->vlen < 8 || l < 1 || (uint64_t)8 + l + 5 > e->vlen) {
      /* malformed: present it as empty code with an empty scope */
      static const uint8_t empty[5] = {5, 0, 0, 0, 0};
      out->value.v_codewscope.code = (char *)(uintptr_t) "";
      out->value.v_codewscope.code_len = 0;
      out->value.v_codewscope.scope_data = (uint8_t *)(uintptr_t)empty;
      out->value.v_codewscope.scope_len = 5;
      break;
    }
    out->value.v_codewscope.code = (char *)(uintptr_t)(vp + 8);
    out->value.v_codewscope.code_len = l - 1;
    out->value.v_codewscope.scope_data = (uint8_t *)(uintptr_t)(vp + 8 + l);
    out->value.v_codewscope.scope_len = e->vlen - 8 - l;
    break;
  }
  case BSON_TYPE_INT32:
    out->value.v_int32 = (int32_t)nx_get32(vp);
    break;
  case BSON_TYPE_TIMESTAMP:
    out->value.v_timestamp.increment = nx_get32(vp);
    out->value.v_timestamp.timestamp = nx_get32(vp + 4);
    break;
  case BSON_TYPE_INT64:
    out->value.v_int64 = (int64_t)nx_get64(vp);
    break;
  case BSON_TYPE_DECIMAL128:
    out->value.v_decimal128.low = nx_get64(vp);
    out->value.v_decimal128.high = nx_get64(vp + 8);
    break;
  default:
    break;
  }
}
