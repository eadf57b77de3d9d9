/*
 * keyenc.c: order-preserving key encoding (DESIGN.md section 4, contract in keyenc.h).
 *
 * memcmp order of two encodings equals MongoDB's order of the two values (doc_cmp_values), and
 * two values that compare equal encode to identical bytes (so 1, 1L, 1.0 and 1.0m are one key).
 *
 * Invariants:
 *  1. Every component starts with a type-bracket byte (table below); brackets are ordered as
 *     MongoDB orders types, and no bracket byte is 0x00 (0x00 ends objects and arrays).
 *  2. Every encoding is self-delimiting (a prefix code): no encoding is a proper prefix of
 *     another, so compound keys (several components, then the _id) compare component by
 *     component. Inverting every byte (descending) keeps this property.
 *  3. Numbers are encoded by exact value; the encoding does not remember the BSON numeric type.
 *     keyenc_decode therefore returns a canonical type (see "Decoding" below).
 *
 * Component layout (ascending; descending = every byte of the component XOR 0xFF):
 *
 *   BYTE  BRACKET            PAYLOAD
 *   0x0A  MinKey             -
 *   0x0F  undefined          -
 *   0x14  null               -
 *   0x1E  number             F8 M [DEC]                       (below)
 *   0x28  string, symbol     bytes with 00 -> 00 FF, then 00 00
 *   0x32  object             { T name 00 PAYLOAD(T) }* 00      (T = bracket byte of the value)
 *   0x3C  array              { T PAYLOAD(T) }* 00
 *   0x46  binary             length u32 BE, subtype u8, bytes  (MongoDB: length, subtype, bytes)
 *   0x50  ObjectId           12 bytes
 *   0x5A  bool               00 | 01
 *   0x64  date               int64 ms BE, sign bit flipped
 *   0x6E  timestamp          t u32 BE, i u32 BE
 *   0x78  regex              pattern 00 options 00
 *   0x82  dbPointer          length u32 BE, collection bytes, oid 12 bytes
 *   0x8C  javascript         as string
 *   0x96  javascriptWScope   code as string, scope as object payload
 *   0xF0  MaxKey             -
 *
 * Numbers. MongoDB's order (doc_cmp_values): integers and decimals by exact value, int/long
 * against double exactly, and decimal128 against double after rounding the double to 34
 * significant digits (kRoundTo34Digits); so for ordering a double d stands for the decimal
 * R34(d), which equals d for every double that is an integer in int64 range. Let x be a value
 * in that sense and f the largest double with f <= x (f = -inf for x below -DBL_MAX). The values
 * sharing f lie in [f, next(f)), and f itself is the least of them.
 *   F8   8 bytes: f's IEEE bits big-endian, sign bit flipped if f >= 0, all bits inverted if f < 0
 *        (-0.0 is taken as +0.0); NaN is 8 zero bytes (below -inf's 00 0F FF .. FF).
 *   M    0x00 if x == f (every double, int32, int64 up to 2^53, decimals equal to a double) or
 *        NaN; else 0x01 followed by DEC, the exact value of x, which orders x within [f, next(f)).
 *   DEC  sign byte (0x01 negative, 0x02 positive), then E = A + 0x8000 as u16 BE where
 *        |x| = d1.d2d3... * 10^A, then the significant digits (no trailing zeros, first digit
 *        non-zero) as nibbles d+1, ended by a 0 nibble and padded with 0 to a whole byte. For
 *        negative x the bytes after the sign byte are inverted. Only int64 beyond 2^53 (<= 19
 *        digits) and decimal128 (<= 34 digits) ever need DEC, so a number payload is at most
 *        8 + 1 + 1 + 2 + 18 = 30 bytes.
 *
 * Decoding returns a value equal (doc_cmp_values == 0) to the one encoded, in canonical form:
 *   numbers: exact doubles that are integers in int32 range -> int32, other integers in int64
 *   range -> int64, other doubles -> double (NaN -> double NaN, -0.0 -> int32 0); inexact values
 *   -> int64 if an integer in range, else decimal128; symbol -> string. Nested regex options pass
 *   through bson_append_value (which libbson may normalise).
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyenc.h"

/* ---- Type bracket bytes ---- */
enum {
  KT_END = 0x00, /* end of an object or array */
  KT_MINKEY = 0x0A,
  KT_UNDEFINED = 0x0F,
  KT_NULL = 0x14,
  KT_NUMBER = 0x1E,
  KT_STRING = 0x28,
  KT_OBJECT = 0x32,
  KT_ARRAY = 0x3C,
  KT_BINARY = 0x46,
  KT_OID = 0x50,
  KT_BOOL = 0x5A,
  KT_DATE = 0x64,
  KT_TIMESTAMP = 0x6E,
  KT_REGEX = 0x78,
  KT_DBPOINTER = 0x82,
  KT_CODE = 0x8C,
  KT_CODEWSCOPE = 0x96,
  KT_MAXKEY = 0xF0
};

#define KEYENC_MAX_DEPTH 200 /* nesting accepted when encoding or decoding */
#define NUM_MAX 40           /* bytes of a number payload, at most 31 */
#define DEC_DIGITS 40        /* digits of a decimal number we hold (decimal128 has 34) */

/* =========================================================================================
 * Exact decimal numbers: value = (-1)^neg * D * 10^q, D the digits d[0..n) as an integer with
 * no trailing zero (n == 0 means zero).
 * ========================================================================================= */
typedef struct decnum {
  bool neg;                /* sign */
  uint8_t d[DEC_DIGITS];   /* digits 0..9, most significant first */
  int n;                   /* number of digits (0 = zero) */
  int32_t q;               /* exponent of the last digit */
} decnum;

static void dec_strip(decnum *x) {
  int lead = 0;
  while (lead < x->n && x->d[lead] == 0) lead++;
  if (lead) {
    memmove(x->d, x->d + lead, (size_t)(x->n - lead));
    x->n -= lead;
  }
  while (x->n > 0 && x->d[x->n - 1] == 0) {
    x->n--;
    x->q++;
  }
  if (x->n == 0) x->q = 0;
}

static void dec_from_u64(uint64_t mag, bool neg, decnum *x) {
  uint8_t tmp[24];
  int k = 0;
  do {
    tmp[k++] = (uint8_t)(mag % 10u);
    mag /= 10u;
  } while (mag);
  x->neg = neg;
  x->n = k;
  x->q = 0;
  for (int i = 0; i < k; i++) x->d[i] = tmp[k - 1 - i];
  dec_strip(x);
}

/* decimal128 (BID encoding) classes */
enum { D128_FINITE, D128_INF, D128_NAN };

/* Splits a decimal128 into class and exact value. Non-canonical coefficients (> 10^34 - 1) are
 * zero, as IEEE 754-2008 says. */
static int dec_from_d128(const bson_decimal128_t *v, decnum *x) {
  uint64_t hi = v->high, lo = v->low;
  x->neg = (hi >> 63) != 0;
  x->n = 0;
  x->q = 0;
  unsigned comb = (unsigned)((hi >> 58) & 0x1Fu);
  if (comb == 0x1Fu) return D128_NAN;
  if (comb == 0x1Eu) return D128_INF;
  uint64_t chi, clo;
  int32_t biased;
  if (((hi >> 61) & 3u) == 3u) { /* 11 form: coefficient 100b + 111 bits > 10^34 - 1 */
    biased = (int32_t)((hi >> 47) & 0x3FFFu);
    chi = clo = 0;
  } else {
    biased = (int32_t)((hi >> 49) & 0x3FFFu);
    chi = hi & 0x1FFFFFFFFFFFFull;
    clo = lo;
  }
  const uint64_t max_hi = 0x1ed09bead87c0ull, max_lo = 0x378d8e63ffffffffull; /* 10^34 - 1 */
  if (chi > max_hi || (chi == max_hi && clo > max_lo)) chi = clo = 0;
  /* digits of the 113-bit coefficient by repeated division of four 32-bit limbs */
  uint32_t w[4] = {(uint32_t)(chi >> 32), (uint32_t)chi, (uint32_t)(clo >> 32), (uint32_t)clo};
  uint8_t tmp[DEC_DIGITS];
  int k = 0;
  while (w[0] | w[1] | w[2] | w[3]) {
    uint64_t rem = 0;
    for (int i = 0; i < 4; i++) {
      uint64_t cur = (rem << 32) | w[i];
      w[i] = (uint32_t)(cur / 10u);
      rem = cur % 10u;
    }
    tmp[k++] = (uint8_t)rem;
  }
  x->n = k;
  for (int i = 0; i < k; i++) x->d[i] = tmp[k - 1 - i];
  x->q = biased - 6176;
  dec_strip(x);
  return D128_FINITE;
}

/* =========================================================================================
 * Doubles against decimals. MongoDB compares a decimal128 with a double after rounding the double
 * to 34 significant digits (Decimal128(double, kRoundTo34Digits)), and so does doc_cmp_values:
 * a double d "is" the decimal R34(d) for ordering. R34 is strictly increasing over doubles, and
 * is the identity on every double that is an integer of at most 34 digits (all int64-range ones),
 * so int64 against double stays exact.
 * ========================================================================================= */

/* R34(d) for a finite double: glibc's printf rounds correctly (to nearest, ties to even, as the
 * Intel decimal library MongoDB uses does). */
static void dec_from_double34(double d, decnum *x) {
  char buf[64];
  snprintf(buf, sizeof buf, "%.33e", d);
  const char *s = buf;
  x->neg = false;
  if (*s == '-') {
    x->neg = true;
    s++;
  }
  x->n = 0;
  while (*s && *s != 'e') {
    if (*s >= '0' && *s <= '9' && x->n < DEC_DIGITS) x->d[x->n++] = (uint8_t)(*s - '0');
    s++;
  }
  int e = 0;
  bool eneg = false;
  if (*s == 'e') {
    s++;
    if (*s == '-' || *s == '+') eneg = *s++ == '-';
    while (*s >= '0' && *s <= '9') e = e * 10 + (*s++ - '0');
  }
  x->q = (int32_t)((eneg ? -e : e) - (x->n - 1));
  dec_strip(x);
}

/* Signed comparison of two finite decimals. */
static int dec_cmp(const decnum *a, const decnum *b) {
  int sa = a->n == 0 ? 0 : (a->neg ? -1 : 1);
  int sb = b->n == 0 ? 0 : (b->neg ? -1 : 1);
  if (sa != sb) return sa < sb ? -1 : 1;
  if (sa == 0) return 0;
  int32_t ea = a->n + a->q, eb = b->n + b->q; /* adjusted exponents + 1 */
  int mag;
  if (ea != eb) {
    mag = ea < eb ? -1 : 1;
  } else {
    int n = a->n < b->n ? a->n : b->n;
    int c = memcmp(a->d, b->d, (size_t)n);
    mag = c != 0 ? (c < 0 ? -1 : 1) : (a->n == b->n ? 0 : (a->n < b->n ? -1 : 1));
  }
  return sa < 0 ? -mag : mag;
}

/* Compares the double d (possibly infinite) with the finite decimal x in MongoDB's order. */
static int double_vs_dec(double d, const decnum *x) {
  if (isinf(d)) return d < 0 ? -1 : 1;
  decnum r;
  dec_from_double34(d, &r);
  return dec_cmp(&r, x);
}

/* The bucket of a finite decimal x: the largest double f (-inf allowed) with f <= x in MongoDB's
 * order, and whether f == x. */
static void dec_floor(const decnum *x, double *f, bool *exact) {
  if (x->n == 0) {
    *f = 0.0;
    *exact = true;
    return;
  }
  char s[DEC_DIGITS + 24];
  int k = 0;
  if (x->neg) s[k++] = '-';
  for (int i = 0; i < x->n; i++) s[k++] = (char)('0' + x->d[i]);
  snprintf(s + k, sizeof s - (size_t)k, "e%d", (int)x->q);
  double m = strtod(s, NULL); /* nearest double; +-inf or 0 when out of range */
  if (isinf(m)) m = m < 0 ? -DBL_MAX : DBL_MAX;
  int c = double_vs_dec(m, x);
  while (c > 0) { /* m above x: step down (at most a step or two) */
    m = nextafter(m, -INFINITY);
    c = double_vs_dec(m, x);
  }
  while (c < 0 && !isinf(m)) { /* is the next double still <= x? */
    double up = nextafter(m, INFINITY);
    int cu = double_vs_dec(up, x);
    if (cu > 0) break;
    m = up;
    c = cu;
  }
  *f = m;
  *exact = c == 0;
}

/* Largest double <= v and whether it equals v. */
static int cmp_int_double(double d, int64_t v) { /* d integral and finite */
  if (d >= 9223372036854775808.0) return 1;
  if (d < -9223372036854775808.0) return -1;
  int64_t di = (int64_t)d;
  return di < v ? -1 : di > v;
}

static void int64_floor(int64_t v, double *f, bool *exact) {
  double d = (double)v;
  if (cmp_int_double(d, v) > 0) d = nextafter(d, -INFINITY);
  *f = d;
  *exact = cmp_int_double(d, v) == 0;
}

/* =========================================================================================
 * Number payloads
 * ========================================================================================= */
static void put_be64(uint8_t *p, uint64_t v) {
  for (int i = 7; i >= 0; i--) {
    p[i] = (uint8_t)v;
    v >>= 8;
  }
}

static uint64_t double_image(double f) {
  if (f == 0) f = 0.0; /* -0.0 -> +0.0 */
  uint64_t bits;
  memcpy(&bits, &f, 8);
  return (bits >> 63) ? ~bits : bits ^ 0x8000000000000000ull;
}

/* Writes F8 M [DEC] to out (NUM_MAX bytes); returns the length. */
static size_t num_payload(double f, bool exact, const decnum *x, bool is_nan, uint8_t *out) {
  if (is_nan) {
    memset(out, 0, 9);
    return 9;
  }
  put_be64(out, double_image(f));
  if (exact) {
    out[8] = 0x00;
    return 9;
  }
  size_t k = 9;
  out[8] = 0x01;
  out[k++] = x->neg ? 0x01 : 0x02;
  int32_t adj = x->n + x->q - 1;
  uint16_t e = (uint16_t)(adj + 0x8000);
  size_t body = k;
  out[k++] = (uint8_t)(e >> 8);
  out[k++] = (uint8_t)e;
  for (int i = 0; i <= x->n; i += 2) {
    unsigned hi = i < x->n ? (unsigned)x->d[i] + 1u : 0u;
    unsigned lo = i + 1 < x->n ? (unsigned)x->d[i + 1] + 1u : 0u;
    out[k++] = (uint8_t)((hi << 4) | lo);
  }
  if (x->neg)
    for (size_t i = body; i < k; i++) out[i] = (uint8_t)~out[i];
  return k;
}

/* Number payload of a numeric value; false if v is not a number. */
static bool number_payload(const bson_value_t *v, uint8_t *out, size_t *len) {
  decnum x;
  double f = 0;
  bool exact = true, is_nan = false;
  x.n = 0;
  x.q = 0;
  x.neg = false;
  switch (v->value_type) {
  case BSON_TYPE_INT32:
    f = (double)v->value.v_int32;
    break;
  case BSON_TYPE_INT64: {
    int64_t i = v->value.v_int64;
    int64_floor(i, &f, &exact);
    if (!exact) dec_from_u64(i < 0 ? (uint64_t)0 - (uint64_t)i : (uint64_t)i, i < 0, &x);
    break;
  }
  case BSON_TYPE_DOUBLE:
    f = v->value.v_double;
    is_nan = isnan(f);
    break;
  case BSON_TYPE_DECIMAL128: {
    int cls = dec_from_d128(&v->value.v_decimal128, &x);
    if (cls == D128_NAN) is_nan = true;
    else if (cls == D128_INF) f = x.neg ? -INFINITY : INFINITY;
    else dec_floor(&x, &f, &exact);
    break;
  }
  default:
    return false;
  }
  *len = num_payload(f, exact, &x, is_nan, out);
  return true;
}

/* =========================================================================================
 * Encoding
 * ========================================================================================= */
static uint8_t bracket_of(bson_type_t t) {
  switch (t) {
  case BSON_TYPE_MINKEY: return KT_MINKEY;
  case BSON_TYPE_UNDEFINED: return KT_UNDEFINED;
  case BSON_TYPE_NULL: return KT_NULL;
  case BSON_TYPE_INT32:
  case BSON_TYPE_INT64:
  case BSON_TYPE_DOUBLE:
  case BSON_TYPE_DECIMAL128: return KT_NUMBER;
  case BSON_TYPE_UTF8:
  case BSON_TYPE_SYMBOL: return KT_STRING;
  case BSON_TYPE_DOCUMENT: return KT_OBJECT;
  case BSON_TYPE_ARRAY: return KT_ARRAY;
  case BSON_TYPE_BINARY: return KT_BINARY;
  case BSON_TYPE_OID: return KT_OID;
  case BSON_TYPE_BOOL: return KT_BOOL;
  case BSON_TYPE_DATE_TIME: return KT_DATE;
  case BSON_TYPE_TIMESTAMP: return KT_TIMESTAMP;
  case BSON_TYPE_REGEX: return KT_REGEX;
  case BSON_TYPE_DBPOINTER: return KT_DBPOINTER;
  case BSON_TYPE_CODE: return KT_CODE;
  case BSON_TYPE_CODEWSCOPE: return KT_CODEWSCOPE;
  case BSON_TYPE_MAXKEY: return KT_MAXKEY;
  case BSON_TYPE_EOD:
  default: return KT_END;
  }
}

static int put_byte(nx_buf *out, uint8_t b) { return nx_buf_append(out, &b, 1); }

static int put_be32(nx_buf *out, uint32_t v) {
  uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
  return nx_buf_append(out, b, 4);
}

/* Escaped string: 00 -> 00 FF, then 00 00. */
static int put_escaped(nx_buf *out, const char *s, size_t n) {
  static const uint8_t esc[2] = {0x00, 0xFF}, term[2] = {0x00, 0x00};
  const uint8_t *p = (const uint8_t *)s;
  size_t start = 0;
  int rc;
  for (size_t i = 0; i < n; i++) {
    if (p[i] != 0) continue;
    if ((rc = nx_buf_append(out, p + start, i - start)) != NX_OK) return rc;
    if ((rc = nx_buf_append(out, esc, 2)) != NX_OK) return rc;
    start = i + 1;
  }
  if ((rc = nx_buf_append(out, p + start, n - start)) != NX_OK) return rc;
  return nx_buf_append(out, term, 2);
}

static int put_payload(nx_buf *out, const bson_value_t *v, int depth);

/* Object or array payload from the raw BSON of the subdocument. */
static int put_container(nx_buf *out, const uint8_t *data, uint32_t len, bool with_names,
                         int depth) {
  if (depth > KEYENC_MAX_DEPTH)
    return nx_err(NX_LIMIT, "keyenc: value nested deeper than %d levels", KEYENC_MAX_DEPTH);
  bson_iter_t it;
  if (!bson_iter_init_from_data(&it, data, len))
    return nx_err(NX_INVALID, "keyenc: malformed embedded document");
  int rc;
  while (bson_iter_next(&it)) {
    const bson_value_t *ev = bson_iter_value(&it);
    uint8_t t = bracket_of(ev->value_type);
    if (t == KT_END) return nx_err(NX_INVALID, "keyenc: unsupported BSON type 0x%02x", (unsigned)ev->value_type);
    if ((rc = put_byte(out, t)) != NX_OK) return rc;
    if (with_names) {
      const char *k = bson_iter_key(&it);
      if ((rc = nx_buf_append(out, k, strlen(k) + 1)) != NX_OK) return rc;
    }
    if ((rc = put_payload(out, ev, depth + 1)) != NX_OK) return rc;
  }
  return put_byte(out, KT_END);
}

static int put_payload(nx_buf *out, const bson_value_t *v, int depth) {
  uint8_t b[NUM_MAX];
  size_t n;
  int rc;
  switch (v->value_type) {
  case BSON_TYPE_MINKEY:
  case BSON_TYPE_MAXKEY:
  case BSON_TYPE_NULL:
  case BSON_TYPE_UNDEFINED:
    return NX_OK;
  case BSON_TYPE_INT32:
  case BSON_TYPE_INT64:
  case BSON_TYPE_DOUBLE:
  case BSON_TYPE_DECIMAL128:
    number_payload(v, b, &n);
    return nx_buf_append(out, b, n);
  case BSON_TYPE_UTF8:
    return put_escaped(out, v->value.v_utf8.str, v->value.v_utf8.len);
  case BSON_TYPE_SYMBOL:
    return put_escaped(out, v->value.v_symbol.symbol, v->value.v_symbol.len);
  case BSON_TYPE_DOCUMENT:
    return put_container(out, v->value.v_doc.data, v->value.v_doc.data_len, true, depth);
  case BSON_TYPE_ARRAY:
    return put_container(out, v->value.v_doc.data, v->value.v_doc.data_len, false, depth);
  case BSON_TYPE_BINARY:
    if ((rc = put_be32(out, v->value.v_binary.data_len)) != NX_OK) return rc;
    if ((rc = put_byte(out, (uint8_t)v->value.v_binary.subtype)) != NX_OK) return rc;
    return nx_buf_append(out, v->value.v_binary.data, v->value.v_binary.data_len);
  case BSON_TYPE_OID:
    return nx_buf_append(out, v->value.v_oid.bytes, 12);
  case BSON_TYPE_BOOL:
    return put_byte(out, v->value.v_bool ? 1 : 0);
  case BSON_TYPE_DATE_TIME:
    put_be64(b, (uint64_t)v->value.v_datetime ^ 0x8000000000000000ull);
    return nx_buf_append(out, b, 8);
  case BSON_TYPE_TIMESTAMP:
    if ((rc = put_be32(out, v->value.v_timestamp.timestamp)) != NX_OK) return rc;
    return put_be32(out, v->value.v_timestamp.increment);
  case BSON_TYPE_REGEX: {
    const char *re = v->value.v_regex.regex ? v->value.v_regex.regex : "";
    const char *op = v->value.v_regex.options ? v->value.v_regex.options : "";
    if ((rc = nx_buf_append(out, re, strlen(re) + 1)) != NX_OK) return rc;
    return nx_buf_append(out, op, strlen(op) + 1);
  }
  case BSON_TYPE_DBPOINTER:
    if ((rc = put_be32(out, v->value.v_dbpointer.collection_len)) != NX_OK) return rc;
    if ((rc = nx_buf_append(out, v->value.v_dbpointer.collection,
                            v->value.v_dbpointer.collection_len)) != NX_OK)
      return rc;
    return nx_buf_append(out, v->value.v_dbpointer.oid.bytes, 12);
  case BSON_TYPE_CODE:
    return put_escaped(out, v->value.v_code.code, v->value.v_code.code_len);
  case BSON_TYPE_CODEWSCOPE:
    if ((rc = put_escaped(out, v->value.v_codewscope.code, v->value.v_codewscope.code_len)) != NX_OK)
      return rc;
    return put_container(out, v->value.v_codewscope.scope_data, v->value.v_codewscope.scope_len,
                         true, depth);
  default:
    return nx_err(NX_INVALID, "keyenc: unsupported BSON type 0x%02x", (unsigned)v->value_type);
  }
}

int keyenc_append(nx_buf *out, const bson_value_t *v, bool descending) {
  size_t start = out->len;
  uint8_t t = bracket_of(v->value_type);
  if (t == KT_END) return nx_err(NX_INVALID, "keyenc: unsupported BSON type 0x%02x", (unsigned)v->value_type);
  int rc = put_byte(out, t);
  if (rc == NX_OK) rc = put_payload(out, v, 0);
  if (rc != NX_OK) {
    out->len = start; /* leave the buffer as it was */
    return rc;
  }
  if (descending)
    for (size_t i = start; i < out->len; i++) out->data[i] = (uint8_t)~out->data[i];
  return NX_OK;
}

int keyenc_append_iter(nx_buf *out, const bson_iter_t *it, bool descending) {
  return keyenc_append(out, bson_iter_value((bson_iter_t *)it), descending);
}

int keyenc_key(nx_buf *out, const bson_value_t *v) {
  out->len = 0;
  return keyenc_append(out, v, false);
}

/* =========================================================================================
 * Decoding
 * ========================================================================================= */
typedef struct rd {
  const uint8_t *p; /* the key */
  size_t n;         /* its length */
  size_t pos;       /* read position */
  uint8_t mask;     /* 0xFF for a descending component, else 0 */
} rd;

static bool rd_byte(rd *r, uint8_t *b) {
  if (r->pos >= r->n) return false;
  *b = (uint8_t)(r->p[r->pos++] ^ r->mask);
  return true;
}

static bool rd_bytes(rd *r, uint8_t *dst, size_t n) {
  if (r->n - r->pos < n) return false;
  for (size_t i = 0; i < n; i++) dst[i] = (uint8_t)(r->p[r->pos + i] ^ r->mask);
  r->pos += n;
  return true;
}

static bool rd_be32(rd *r, uint32_t *v) {
  uint8_t b[4];
  if (!rd_bytes(r, b, 4)) return false;
  *v = ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3];
  return true;
}

/* Reads a NUL-terminated name; returns a bson_malloc'd copy or NULL if truncated. */
static char *rd_cstr(rd *r, size_t *len) {
  size_t i = r->pos;
  while (i < r->n && (uint8_t)(r->p[i] ^ r->mask) != 0) i++;
  if (i >= r->n) return NULL;
  size_t n = i - r->pos;
  char *s = bson_malloc(n + 1);
  for (size_t k = 0; k < n; k++) s[k] = (char)(r->p[r->pos + k] ^ r->mask);
  s[n] = 0;
  r->pos = i + 1;
  if (len) *len = n;
  return s;
}

/* Reads an escaped string; returns a bson_malloc'd NUL-terminated copy or NULL if malformed. */
static char *rd_escaped(rd *r, uint32_t *len) {
  size_t cap = 16, n = 0;
  char *s = bson_malloc(cap);
  for (;;) {
    uint8_t b, c;
    if (!rd_byte(r, &b)) goto fail;
    if (b == 0) {
      if (!rd_byte(r, &c)) goto fail;
      if (c == 0x00) break;
      if (c != 0xFF) goto fail;
    }
    if (n + 2 > cap) {
      cap *= 2;
      s = bson_realloc(s, cap);
    }
    s[n++] = (char)b;
    if (n > UINT32_MAX - 2) goto fail;
  }
  s[n] = 0;
  *len = (uint32_t)n;
  return s;
fail:
  bson_free(s);
  return NULL;
}

#define CORRUPT(r) NX_CORRUPT_BKPT("keyenc: malformed key at byte %zu", (r)->pos)

/* Builds a decimal128 from an exact decimal (|D| <= 34 digits after padding). */
static bool dec_to_d128(const decnum *x, bson_decimal128_t *out) {
  int n = x->n;
  int32_t q = x->q;
  uint8_t d[DEC_DIGITS];
  memcpy(d, x->d, (size_t)n);
  while (q > 6111 && n < 34) { /* clamp the exponent by padding the coefficient */
    d[n++] = 0;
    q--;
  }
  if (n > 34 || q > 6111 || q < -6176) return false;
  uint64_t hi = 0, lo = 0;
  for (int i = 0; i < n; i++) { /* (hi,lo) = (hi,lo) * 10 + d */
    uint64_t lo_lo = (lo & 0xFFFFFFFFu) * 10u + d[i];
    uint64_t lo_hi = (lo >> 32) * 10u + (lo_lo >> 32);
    lo = (lo_hi << 32) | (lo_lo & 0xFFFFFFFFu);
    hi = hi * 10u + (lo_hi >> 32);
  }
  out->high = (x->neg ? 0x8000000000000000ull : 0) | ((uint64_t)(q + 6176) << 49) | hi;
  out->low = lo;
  return true;
}

static int rd_number(rd *r, bson_value_t *out) {
  size_t start = r->pos;
  uint8_t b[NUM_MAX];
  if (!rd_bytes(r, b, 9)) return CORRUPT(r);
  uint64_t img = nx_get64be(b);
  if (img == 0) { /* NaN */
    if (b[8] != 0) return CORRUPT(r);
    out->value_type = BSON_TYPE_DOUBLE;
    out->value.v_double = NAN;
    return NX_OK;
  }
  uint64_t bits = (img >> 63) ? img ^ 0x8000000000000000ull : ~img;
  double f;
  memcpy(&f, &bits, 8);
  if (isnan(f)) return CORRUPT(r);
  if (b[8] == 0x00) {
    if (f == floor(f) && f >= -2147483648.0 && f <= 2147483647.0) {
      out->value_type = BSON_TYPE_INT32;
      out->value.v_int32 = (int32_t)f;
    } else if (f == floor(f) && f >= -9223372036854775808.0 && f < 9223372036854775808.0) {
      out->value_type = BSON_TYPE_INT64;
      out->value.v_int64 = (int64_t)f;
    } else {
      out->value_type = BSON_TYPE_DOUBLE;
      out->value.v_double = f;
    }
  } else if (b[8] == 0x01) {
    decnum x;
    uint8_t sign, e[2];
    if (!rd_byte(r, &sign) || (sign != 0x01 && sign != 0x02)) return CORRUPT(r);
    x.neg = sign == 0x01;
    uint8_t inv = x.neg ? 0xFF : 0x00;
    if (!rd_bytes(r, e, 2)) return CORRUPT(r);
    int32_t adj = (int32_t)(((unsigned)(e[0] ^ inv) << 8) | (unsigned)(e[1] ^ inv)) - 0x8000;
    x.n = 0;
    for (bool done = false; !done;) {
      uint8_t c;
      if (!rd_byte(r, &c)) return CORRUPT(r);
      c ^= inv;
      unsigned nib[2] = {(unsigned)c >> 4, (unsigned)c & 15u};
      for (int k = 0; k < 2 && !done; k++) {
        if (nib[k] == 0) done = true;
        else if (nib[k] > 10 || x.n >= 34) return CORRUPT(r);
        else x.d[x.n++] = (uint8_t)(nib[k] - 1);
      }
    }
    if (x.n == 0) return CORRUPT(r);
    x.q = adj - x.n + 1;
    uint64_t mag = 0;
    bool fits = x.q >= 0 && adj <= 18;
    for (int i = 0; fits && i < x.n; i++) mag = mag * 10u + x.d[i];
    for (int i = 0; fits && i < x.q; i++) mag *= 10u;
    if (fits && !x.neg && mag <= (uint64_t)INT64_MAX) {
      out->value_type = BSON_TYPE_INT64;
      out->value.v_int64 = (int64_t)mag;
    } else if (fits && x.neg && mag <= (uint64_t)INT64_MAX + 1u) {
      out->value_type = BSON_TYPE_INT64;
      out->value.v_int64 = (int64_t)(0u - mag);
    } else {
      out->value_type = BSON_TYPE_DECIMAL128;
      if (!dec_to_d128(&x, &out->value.v_decimal128)) return CORRUPT(r);
    }
  } else {
    return CORRUPT(r);
  }
  /* Canonical form check: re-encoding must give back exactly the bytes read. */
  uint8_t again[NUM_MAX];
  size_t n;
  number_payload(out, again, &n);
  if (n != r->pos - start) return CORRUPT(r);
  for (size_t i = 0; i < n; i++)
    if (again[i] != (uint8_t)(r->p[start + i] ^ r->mask)) return CORRUPT(r);
  return NX_OK;
}

static int rd_value(rd *r, uint8_t t, bson_value_t *out, int depth);

/* Decodes an object or array payload into a new BSON document, stored into out->value.v_doc. */
static int rd_container(rd *r, bool with_names, bson_t *doc, int depth) {
  if (depth > KEYENC_MAX_DEPTH) return CORRUPT(r);
  uint32_t idx = 0;
  for (;;) {
    uint8_t t;
    if (!rd_byte(r, &t)) return CORRUPT(r);
    if (t == KT_END) return NX_OK;
    char *name = NULL;
    char ibuf[16];
    const char *key;
    if (with_names) {
      name = rd_cstr(r, NULL);
      if (!name) return CORRUPT(r);
      key = name;
    } else {
      snprintf(ibuf, sizeof ibuf, "%u", (unsigned)idx);
      key = ibuf;
    }
    bson_value_t ev;
    int rc = rd_value(r, t, &ev, depth + 1);
    if (rc == NX_OK) {
      if (!bson_append_value(doc, key, -1, &ev)) rc = nx_err(NX_LIMIT, "keyenc: decoded document too large");
      bson_value_destroy(&ev);
    }
    bson_free(name);
    if (rc != NX_OK) return rc;
    idx++;
  }
}

static int rd_doc_value(rd *r, bool with_names, bson_value_t *out, int depth) {
  bson_t doc = BSON_INITIALIZER;
  int rc = rd_container(r, with_names, &doc, depth);
  if (rc == NX_OK) {
    out->value_type = with_names ? BSON_TYPE_DOCUMENT : BSON_TYPE_ARRAY;
    out->value.v_doc.data_len = doc.len;
    out->value.v_doc.data = bson_malloc(doc.len);
    memcpy(out->value.v_doc.data, bson_get_data(&doc), doc.len);
  }
  bson_destroy(&doc);
  return rc;
}

static int rd_value(rd *r, uint8_t t, bson_value_t *out, int depth) {
  memset(out, 0, sizeof *out);
  uint8_t b[12];
  uint32_t u, u2;
  switch (t) {
  case KT_MINKEY: out->value_type = BSON_TYPE_MINKEY; return NX_OK;
  case KT_MAXKEY: out->value_type = BSON_TYPE_MAXKEY; return NX_OK;
  case KT_NULL: out->value_type = BSON_TYPE_NULL; return NX_OK;
  case KT_UNDEFINED: out->value_type = BSON_TYPE_UNDEFINED; return NX_OK;
  case KT_NUMBER: return rd_number(r, out);
  case KT_STRING:
    out->value.v_utf8.str = rd_escaped(r, &out->value.v_utf8.len);
    if (!out->value.v_utf8.str) return CORRUPT(r);
    out->value_type = BSON_TYPE_UTF8;
    return NX_OK;
  case KT_CODE:
    out->value.v_code.code = rd_escaped(r, &out->value.v_code.code_len);
    if (!out->value.v_code.code) return CORRUPT(r);
    out->value_type = BSON_TYPE_CODE;
    return NX_OK;
  case KT_OBJECT: return rd_doc_value(r, true, out, depth);
  case KT_ARRAY: return rd_doc_value(r, false, out, depth);
  case KT_BINARY: {
    if (!rd_be32(r, &u) || !rd_bytes(r, b, 1) || r->n - r->pos < u) return CORRUPT(r);
    out->value_type = BSON_TYPE_BINARY;
    out->value.v_binary.subtype = (bson_subtype_t)b[0];
    out->value.v_binary.data_len = u;
    out->value.v_binary.data = bson_malloc(u ? u : 1);
    rd_bytes(r, out->value.v_binary.data, u);
    return NX_OK;
  }
  case KT_OID:
    if (!rd_bytes(r, out->value.v_oid.bytes, 12)) return CORRUPT(r);
    out->value_type = BSON_TYPE_OID;
    return NX_OK;
  case KT_BOOL:
    if (!rd_bytes(r, b, 1) || b[0] > 1) return CORRUPT(r);
    out->value_type = BSON_TYPE_BOOL;
    out->value.v_bool = b[0] == 1;
    return NX_OK;
  case KT_DATE:
    if (!rd_bytes(r, b, 8)) return CORRUPT(r);
    out->value_type = BSON_TYPE_DATE_TIME;
    out->value.v_datetime = (int64_t)(nx_get64be(b) ^ 0x8000000000000000ull);
    return NX_OK;
  case KT_TIMESTAMP:
    if (!rd_be32(r, &u) || !rd_be32(r, &u2)) return CORRUPT(r);
    out->value_type = BSON_TYPE_TIMESTAMP;
    out->value.v_timestamp.timestamp = u;
    out->value.v_timestamp.increment = u2;
    return NX_OK;
  case KT_REGEX:
    out->value.v_regex.regex = rd_cstr(r, NULL);
    if (!out->value.v_regex.regex) return CORRUPT(r);
    out->value.v_regex.options = rd_cstr(r, NULL);
    if (!out->value.v_regex.options) {
      bson_free(out->value.v_regex.regex);
      return CORRUPT(r);
    }
    out->value_type = BSON_TYPE_REGEX;
    return NX_OK;
  case KT_DBPOINTER: {
    if (!rd_be32(r, &u) || r->n - r->pos < (size_t)u + 12) return CORRUPT(r);
    char *c = bson_malloc((size_t)u + 1);
    rd_bytes(r, (uint8_t *)c, u);
    c[u] = 0;
    rd_bytes(r, out->value.v_dbpointer.oid.bytes, 12);
    out->value_type = BSON_TYPE_DBPOINTER;
    out->value.v_dbpointer.collection = c;
    out->value.v_dbpointer.collection_len = u;
    return NX_OK;
  }
  case KT_CODEWSCOPE: {
    uint32_t clen;
    char *code = rd_escaped(r, &clen);
    if (!code) return CORRUPT(r);
    bson_t scope = BSON_INITIALIZER;
    int rc = rd_container(r, true, &scope, depth);
    if (rc == NX_OK) {
      out->value_type = BSON_TYPE_CODEWSCOPE;
      out->value.v_codewscope.code = code;
      out->value.v_codewscope.code_len = clen;
      out->value.v_codewscope.scope_len = scope.len;
      out->value.v_codewscope.scope_data = bson_malloc(scope.len);
      memcpy(out->value.v_codewscope.scope_data, bson_get_data(&scope), scope.len);
    } else {
      bson_free(code);
    }
    bson_destroy(&scope);
    return rc;
  }
  default:
    r->pos--;
    return CORRUPT(r);
  }
}

int keyenc_decode(const uint8_t *p, size_t n, size_t *pos, bool descending, bson_value_t *out) {
  rd r = {p, n, *pos, descending ? 0xFF : 0x00};
  uint8_t t;
  memset(out, 0, sizeof *out);
  if (!rd_byte(&r, &t)) return CORRUPT(&r);
  int rc = rd_value(&r, t, out, 0);
  if (rc != NX_OK) {
    memset(out, 0, sizeof *out);
    out->value_type = BSON_TYPE_NULL;
    return rc;
  }
  *pos = r.pos;
  return NX_OK;
}
