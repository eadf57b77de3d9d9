// ctest: timeout=300
/*
 * test_keyenc.c: the order-preserving key encoding (src/doc/keyenc.c) against MongoDB's order as
 * doc_cmp_values implements it: sign(memcmp(enc a, enc b)) == sign(doc_cmp_values(a, b)) for
 * random values of every type (numeric edge cases weighted heavily), ascending and descending,
 * single and compound keys; decode gives back an equal value; malformed keys are NX_CORRUPT.
 * Seeded; the seed is printed (NX_TEST_SEED overrides it).
 */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "doc.h"
#include "keyenc.h"

/* ---- Deterministic random numbers (splitmix64) ---- */
static uint64_t rng_state;
static uint64_t rnd(void) {
  uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
static uint32_t rn(uint32_t n) { return (uint32_t)(rnd() % n); }

static uint64_t seed_init(const char *what) {
  const char *env = getenv("NX_TEST_SEED");
  uint64_t seed = env ? strtoull(env, NULL, 10) : 0x6b6579656e63ull;
  rng_state = seed;
  fprintf(stderr, "%s: seed %llu (set NX_TEST_SEED to replay)\n", what, (unsigned long long)seed);
  return seed;
}

static bool asan_scale(void) {
  const char *s = getenv("NX_TEST_SCALE");
  return s && strcmp(s, "asan") == 0;
}

/* ---- Value generation ---- */
static bson_decimal128_t dec_of(const char *s) {
  bson_decimal128_t d;
  cr_assert(bson_decimal128_from_string(s, &d), "bad decimal literal %s", s);
  return d;
}

static const char *dec_pool[] = {
  "0", "-0", "0.0", "1", "1.0", "1.00", "-1", "0.1", "-0.1", "0.5", "0.3", "1E+6144", "-1E+6144",
  "1.0E+6144", "9.999999999999999999999999999999999E+6144", "1E-6176", "-1E-6176", "1E-6143",
  "9007199254740992", "9007199254740993", "9007199254740991", "-9007199254740993",
  "9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
  "18446744073709551616", "1.7976931348623157E+308", "1.797693134862315708145274237317044E+308",
  "1.797693134862315708145274237317043E+308", "1.8E+308", "-1.8E+308", "4.9E-324",
  "4.940656458412465441765687928682213E-324", "2.5E-324", "1E-400", "-1E-400",
  "0.1000000000000000055511151231257827", "0.1000000000000000055511151231257828",
  "0.1000000000000000055511151231257826", "NaN", "-NaN", "Infinity", "-Infinity", "123.456",
  "1E+1", "10", "100E-2", "3.14159265358979323846264338327950", "-2.5", "2.5", "1E+308",
  "1E+309", "-1E+309", "12345678901234567890123456789012E+2"};

static const double dbl_pool_fixed[] = {0.0, 1.0, -1.0, 0.1, -0.1, 0.5, 0.3, 2.5, -2.5, 1e308,
                                        DBL_MAX, -DBL_MAX, DBL_MIN, 4.9e-324, -4.9e-324,
                                        9007199254740992.0, 9007199254740994.0, 9007199254740990.0,
                                        9223372036854775808.0, -9223372036854775808.0,
                                        18446744073709551616.0, 123.456, 10.0, 1e-300, 3.0};

static double rand_double(void) {
  switch (rn(8)) {
  case 0: return dbl_pool_fixed[rn(sizeof dbl_pool_fixed / sizeof dbl_pool_fixed[0])];
  case 1: return rn(2) ? INFINITY : -INFINITY;
  case 2: return rn(2) ? NAN : -0.0;
  case 3: { /* near 2^53 or 2^63 */
    double base = rn(2) ? 9007199254740992.0 : 9223372036854775808.0;
    double d = base;
    int steps = (int)rn(5) - 2;
    for (int i = 0; i < abs(steps); i++) d = nextafter(d, steps < 0 ? 0 : INFINITY);
    return rn(2) ? -d : d;
  }
  case 4: return (double)((int64_t)rn(21) - 10) / (double)(1 + rn(8));
  case 5: { /* any bit pattern that is not NaN */
    uint64_t b = rnd();
    double d;
    memcpy(&d, &b, 8);
    return isnan(d) ? 1.5 : d;
  }
  default: return ldexp((double)(rnd() >> 11), (int)rn(200) - 120) * (rn(2) ? -1 : 1);
  }
}

static int64_t rand_int64(void) {
  switch (rn(6)) {
  case 0: return rn(2) ? INT64_MAX - (int64_t)rn(3) : INT64_MIN + (int64_t)rn(3);
  case 1: return (rn(2) ? 1 : -1) * ((int64_t)1 << 53) + (int64_t)rn(5) - 2;
  case 2: return (int64_t)rnd();
  case 3: return (int64_t)rn(21) - 10;
  case 4: return (rn(2) ? 1 : -1) * (((int64_t)1 << (30 + rn(33))) + (int64_t)rn(3) - 1);
  default: return (int64_t)(rnd() >> rn(64));
  }
}

/* A decimal128 close to a double: its 34-digit rounding, a neighbour of that in the last digit,
 * or a shorter rounding. These sit right at the boundaries of the double buckets. */
static bson_decimal128_t dec_near_double(void) {
  double d = rand_double();
  if (isnan(d) || isinf(d)) d = 0.75;
  char buf[80];
  int prec = rn(3) == 0 ? (int)rn(40) : 33;
  snprintf(buf, sizeof buf, "%.*e", prec, d);
  if (prec == 33 && rn(2)) { /* bump the last digit up or down */
    char *e = strchr(buf, 'e');
    char *last = e - 1;
    bool up = rn(2);
    while (last >= buf && (*last == '.' || (up ? *last == '9' : *last == '0'))) {
      if (*last != '.') *last = up ? '0' : '9';
      last--;
    }
    if (last >= buf && *last >= '0' && *last <= '9') *last = (char)(*last + (up ? 1 : -1));
  }
  bson_decimal128_t v;
  if (!bson_decimal128_from_string(buf, &v)) bson_decimal128_from_string("0", &v);
  return v;
}

static bson_decimal128_t rand_decimal(void) {
  switch (rn(4)) {
  case 0: return dec_of(dec_pool[rn(sizeof dec_pool / sizeof dec_pool[0])]);
  case 1: return dec_near_double();
  case 2: { /* random coefficient and exponent */
    char buf[80];
    int nd = 1 + (int)rn(34), k = 0;
    if (rn(2)) buf[k++] = '-';
    for (int i = 0; i < nd; i++) buf[k++] = (char)('0' + rn(10));
    int exp = rn(4) == 0 ? (int)rn(12287) - 6176 : (int)rn(700) - 350;
    if (exp + nd - 1 > 6144) exp = 6144 - nd + 1;
    snprintf(buf + k, sizeof buf - (size_t)k, "E%d", exp);
    bson_decimal128_t v;
    if (!bson_decimal128_from_string(buf, &v)) bson_decimal128_from_string("7", &v);
    return v;
  }
  default: { /* an int64 as a decimal */
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)rand_int64());
    return dec_of(buf);
  }
  }
}

static void append_number(bson_t *b, const char *k) {
  switch (rn(4)) {
  case 0: {
    int64_t i = rand_int64();
    BSON_APPEND_INT32(b, k, (int32_t)i);
    break;
  }
  case 1: BSON_APPEND_INT64(b, k, rand_int64()); break;
  case 2: BSON_APPEND_DOUBLE(b, k, rand_double()); break;
  default: {
    bson_decimal128_t d = rand_decimal();
    BSON_APPEND_DECIMAL128(b, k, &d);
  }
  }
}

static void rand_bytes_str(char *buf, size_t *len, size_t max) {
  static const char alpha[] = {'a', 'b', '\0', '\x01', '\xff', 'z', 'A', '\x7f'};
  size_t n = rn(5) == 0 ? (size_t)rn((uint32_t)max) : (size_t)rn(4);
  for (size_t i = 0; i < n; i++) buf[i] = alpha[rn(sizeof alpha)];
  *len = n;
}

static const char *names[] = {"a", "b", "ab", "", "_id", "a.b", "\x7f"};

static void append_value(bson_t *b, const char *k, int depth, int numeric_bias);

static void append_container(bson_t *b, const char *k, int depth, bool array, int numeric_bias) {
  bson_t child;
  if (array) bson_append_array_begin(b, k, -1, &child);
  else bson_append_document_begin(b, k, -1, &child);
  int n = (int)rn(4);
  for (int i = 0; i < n; i++) {
    char key[16];
    if (array) snprintf(key, sizeof key, "%d", i);
    append_value(&child, array ? key : names[rn(sizeof names / sizeof names[0])], depth + 1,
                 numeric_bias);
  }
  if (array) bson_append_array_end(b, &child);
  else bson_append_document_end(b, &child);
}

static void append_value(bson_t *b, const char *k, int depth, int numeric_bias) {
  if ((int)rn(100) < numeric_bias) {
    append_number(b, k);
    return;
  }
  char buf[600];
  size_t len;
  uint8_t bin[8];
  bson_oid_t oid;
  switch (rn(20)) {
  case 0: BSON_APPEND_MINKEY(b, k); break;
  case 1: BSON_APPEND_MAXKEY(b, k); break;
  case 2: BSON_APPEND_NULL(b, k); break;
  case 3: BSON_APPEND_UNDEFINED(b, k); break;
  case 4:
  case 5:
    rand_bytes_str(buf, &len, sizeof buf);
    bson_append_utf8(b, k, -1, buf, (int)len);
    break;
  case 6:
    rand_bytes_str(buf, &len, 8);
    bson_append_symbol(b, k, -1, buf, (int)len);
    break;
  case 7:
  case 8:
    if (depth < 4) append_container(b, k, depth, false, numeric_bias);
    else BSON_APPEND_NULL(b, k);
    break;
  case 9:
  case 10:
    if (depth < 4) append_container(b, k, depth, true, numeric_bias);
    else BSON_APPEND_BOOL(b, k, true);
    break;
  case 11:
    len = rn(4);
    for (size_t i = 0; i < len; i++) bin[i] = (uint8_t)rn(3);
    bson_append_binary(b, k, -1, (bson_subtype_t)(rn(2) ? 0 : 4), bin, (uint32_t)len);
    break;
  case 12:
    for (int i = 0; i < 12; i++) oid.bytes[i] = (uint8_t)(i < 10 ? 0 : rn(3));
    BSON_APPEND_OID(b, k, &oid);
    break;
  case 13: BSON_APPEND_BOOL(b, k, rn(2)); break;
  case 14: BSON_APPEND_DATE_TIME(b, k, rn(3) == 0 ? (int64_t)rnd() : (int64_t)rn(5) - 2); break;
  case 15: BSON_APPEND_TIMESTAMP(b, k, rn(3) == 0 ? (uint32_t)rnd() : rn(3), rn(3) == 0 ? (uint32_t)rnd() : rn(3)); break;
  case 16: {
    static const char *pats[] = {"", "a", "a.*", "ab", "b"};
    static const char *opts[] = {"", "i", "im", "s"};
    BSON_APPEND_REGEX(b, k, pats[rn(5)], opts[rn(4)]);
    break;
  }
  case 17: {
    static const char *codes[] = {"", "x", "function(){}", "y"};
    BSON_APPEND_CODE(b, k, codes[rn(4)]);
    break;
  }
  case 18: {
    bson_t scope = BSON_INITIALIZER;
    if (rn(2)) BSON_APPEND_INT32(&scope, "x", (int32_t)rn(3));
    BSON_APPEND_CODE_WITH_SCOPE(b, k, rn(2) ? "f" : "g", &scope);
    bson_destroy(&scope);
    break;
  }
  default:
    for (int i = 0; i < 12; i++) oid.bytes[i] = (uint8_t)rn(2);
    bson_append_dbpointer(b, k, -1, rn(2) ? "c" : "cd", &oid);
    break;
  }
}

/* Each value lives in its own one-field document {v: value}. */
typedef struct item {
  bson_t doc;
  bson_value_t v; /* borrows from doc */
} item;

static void item_value(item *it) {
  bson_iter_t i;
  cr_assert(bson_iter_init_find(&i, &it->doc, "v"));
  it->v = *bson_iter_value(&i);
}

static void make_items(item *items, size_t n, int numeric_bias) {
  for (size_t i = 0; i < n; i++) {
    bson_init(&items[i].doc);
    append_value(&items[i].doc, "v", 0, numeric_bias);
    item_value(&items[i]);
  }
}

static void free_items(item *items, size_t n) {
  for (size_t i = 0; i < n; i++) bson_destroy(&items[i].doc);
}

static int sgn(int x) { return (x > 0) - (x < 0); }

static int memcmp_keys(const nx_buf *a, const nx_buf *b) {
  size_t n = a->len < b->len ? a->len : b->len;
  int c = n ? memcmp(a->data, b->data, n) : 0;
  if (c) return sgn(c);
  return a->len == b->len ? 0 : (a->len < b->len ? -1 : 1);
}

static char *show(const bson_value_t *v) {
  bson_t d = BSON_INITIALIZER;
  bson_append_value(&d, "v", 1, v);
  char *s = bson_as_canonical_extended_json(&d, NULL);
  bson_destroy(&d);
  return s;
}

static void encode(const bson_value_t *v, bool desc, nx_buf *out) {
  out->len = 0;
  int rc = keyenc_append(out, v, desc);
  cr_assert(rc == NX_OK, "keyenc_append failed: %s", nx_err_msg());
}

/* Checks memcmp order against doc_cmp_values for one pair, both directions. */
static void check_pair(const bson_value_t *a, const bson_value_t *b, nx_buf *ea, nx_buf *eb,
                       nx_buf *da, nx_buf *db) {
  int want = sgn(doc_cmp_values(a, b));
  int got = memcmp_keys(ea, eb);
  int gotd = memcmp_keys(da, db);
  if (got != want || gotd != -want) {
    char *sa = show(a), *sb = show(b);
    cr_assert_fail("order mismatch: doc_cmp_values=%d memcmp asc=%d desc=%d\n  a=%s\n  b=%s", want,
                   got, gotd, sa, sb);
  }
}

static void check_pool(size_t n, size_t pairs, int numeric_bias, const char *what) {
  item *items = calloc(n, sizeof *items);
  nx_buf *asc = calloc(n, sizeof *asc), *desc = calloc(n, sizeof *desc);
  make_items(items, n, numeric_bias);
  for (size_t i = 0; i < n; i++) {
    nx_buf_init(&asc[i], 0);
    nx_buf_init(&desc[i], 0);
    encode(&items[i].v, false, &asc[i]);
    encode(&items[i].v, true, &desc[i]);
  }
  size_t equal = 0;
  for (size_t k = 0; k < pairs; k++) {
    size_t i = rn((uint32_t)n), j = rn((uint32_t)n);
    if (doc_cmp_values(&items[i].v, &items[j].v) == 0) equal++;
    check_pair(&items[i].v, &items[j].v, &asc[i], &asc[j], &desc[i], &desc[j]);
  }
  /* neighbours in a sort are where mistakes hide: sort by key bytes, check each adjacent pair */
  size_t *idx = calloc(n, sizeof *idx);
  for (size_t i = 0; i < n; i++) idx[i] = i;
  for (size_t i = 1; i < n; i++) { /* insertion sort by key; n is small */
    size_t x = idx[i], j = i;
    while (j > 0 && memcmp_keys(&asc[idx[j - 1]], &asc[x]) > 0) {
      idx[j] = idx[j - 1];
      j--;
    }
    idx[j] = x;
  }
  for (size_t i = 1; i < n; i++)
    check_pair(&items[idx[i - 1]].v, &items[idx[i]].v, &asc[idx[i - 1]], &asc[idx[i]],
               &desc[idx[i - 1]], &desc[idx[i]]);
  fprintf(stderr, "%s: %zu values, %zu random pairs (%zu equal), %zu sorted neighbours agree\n",
          what, n, pairs, equal, n - 1);
  for (size_t i = 0; i < n; i++) {
    nx_buf_free(&asc[i]);
    nx_buf_free(&desc[i]);
  }
  free(idx);
  free(asc);
  free(desc);
  free_items(items, n);
  free(items);
}

Test(keyenc, order_matches_doc_cmp_values_all_types) {
  seed_init("keyenc all types");
  check_pool(asan_scale() ? 800 : 3000, asan_scale() ? 60000 : 400000, 30, "all types");
}

Test(keyenc, order_matches_doc_cmp_values_numbers) {
  seed_init("keyenc numbers");
  check_pool(asan_scale() ? 1000 : 4000, asan_scale() ? 80000 : 600000, 100, "numbers");
}

Test(keyenc, order_matches_doc_cmp_values_nested_numbers) {
  /* containers whose elements are mostly numbers: ties inside, differences deep down */
  seed_init("keyenc nested");
  check_pool(asan_scale() ? 600 : 2000, asan_scale() ? 40000 : 200000, 60, "nested numbers");
}

/* ---- Known values, checked against the truth rather than against doc_cmp_values ---- */
typedef struct kv {
  bson_t doc;
  bson_value_t v;
  nx_buf k;
} kv;

static void kv_done(kv *x) {
  bson_iter_t i;
  cr_assert(bson_iter_init_find(&i, &x->doc, "v"));
  x->v = *bson_iter_value(&i);
  nx_buf_init(&x->k, 0);
  encode(&x->v, false, &x->k);
}
static void kv_free(kv *x) {
  bson_destroy(&x->doc);
  nx_buf_free(&x->k);
}
static void kv_i64(kv *x, int64_t v) { bson_init(&x->doc); BSON_APPEND_INT64(&x->doc, "v", v); kv_done(x); }
static void kv_i32(kv *x, int32_t v) { bson_init(&x->doc); BSON_APPEND_INT32(&x->doc, "v", v); kv_done(x); }
static void kv_dbl(kv *x, double v) { bson_init(&x->doc); BSON_APPEND_DOUBLE(&x->doc, "v", v); kv_done(x); }
static void kv_dec(kv *x, const char *s) {
  bson_init(&x->doc);
  bson_decimal128_t d = dec_of(s);
  BSON_APPEND_DECIMAL128(&x->doc, "v", &d);
  kv_done(x);
}
static void kv_str(kv *x, const char *s, size_t n) {
  bson_init(&x->doc);
  bson_append_utf8(&x->doc, "v", 1, s, (int)n);
  kv_done(x);
}

#define EXPECT_ORDER(a, b, want)                                                                 \
  do {                                                                                           \
    int got_ = memcmp_keys(&(a).k, &(b).k);                                                      \
    cr_expect(got_ == (want), "%s vs %s: memcmp %d, expected %d", #a, #b, got_, (want));          \
  } while (0)

Test(keyenc, numeric_edge_cases) {
  kv a, b, c, d, e, f;
  kv_i64(&a, ((int64_t)1 << 53) + 1);
  kv_dbl(&b, 9007199254740992.0);
  EXPECT_ORDER(a, b, 1); /* 2^53+1 as int64 > 2^53 as double */
  kv_dbl(&c, 9007199254740994.0);
  EXPECT_ORDER(a, c, -1);
  kv_dec(&d, "9007199254740993");
  EXPECT_ORDER(a, d, 0); /* int64 and decimal of the same value: same bytes */
  kv_free(&a); kv_free(&b); kv_free(&c); kv_free(&d);

  kv_dbl(&a, -0.0);
  kv_i32(&b, 0);
  kv_dec(&c, "-0.00");
  EXPECT_ORDER(a, b, 0);
  EXPECT_ORDER(b, c, 0);
  kv_free(&a); kv_free(&b); kv_free(&c);

  kv_dbl(&a, NAN);
  kv_dbl(&b, -INFINITY);
  kv_dec(&c, "NaN");
  kv_dec(&d, "-Infinity");
  kv_dbl(&e, INFINITY);
  kv_dec(&f, "1E+6144");
  EXPECT_ORDER(a, b, -1); /* NaN below -inf */
  EXPECT_ORDER(a, c, 0);  /* NaN == NaN across types */
  EXPECT_ORDER(b, d, 0);
  EXPECT_ORDER(f, e, -1); /* 1E+6144 < +inf */
  kv_free(&a); kv_free(&b); kv_free(&c); kv_free(&d); kv_free(&e); kv_free(&f);

  kv_dbl(&a, DBL_MAX);
  kv_dec(&b, "1.0E+6144");
  kv_dec(&c, "-1.0E+6144");
  kv_dbl(&d, -DBL_MAX);
  kv_dbl(&e, -INFINITY);
  EXPECT_ORDER(a, b, -1);
  EXPECT_ORDER(c, d, -1);
  EXPECT_ORDER(e, c, -1); /* -inf < -1E+6144 < -DBL_MAX */
  kv_free(&a); kv_free(&b); kv_free(&c); kv_free(&d); kv_free(&e);

  kv_i64(&a, INT64_MIN);
  kv_dbl(&b, -9223372036854775808.0);
  kv_i64(&c, INT64_MAX);
  kv_dbl(&d, 9223372036854775808.0);
  kv_i64(&e, INT64_MIN + 1);
  EXPECT_ORDER(a, b, 0);
  EXPECT_ORDER(c, d, -1); /* 2^63-1 < 2^63 */
  EXPECT_ORDER(b, e, -1);
  kv_free(&a); kv_free(&b); kv_free(&c); kv_free(&d); kv_free(&e);

  /* decimal 0.1 is below the double 0.1 (which is 0.1000000000000000055511151231257827...) */
  kv_dec(&a, "0.1");
  kv_dbl(&b, 0.1);
  kv_dec(&c, "0.10000000000000000555");
  kv_dec(&d, "1E-6176");
  kv_dbl(&e, 4.9e-324);
  kv_i32(&f, 0);
  EXPECT_ORDER(a, b, -1);
  EXPECT_ORDER(c, b, -1);
  EXPECT_ORDER(a, c, -1);
  EXPECT_ORDER(f, d, -1); /* 0 < 1E-6176 < smallest subnormal */
  EXPECT_ORDER(d, e, -1);
  kv_free(&a); kv_free(&b); kv_free(&c); kv_free(&d); kv_free(&e); kv_free(&f);

  kv_i32(&a, 1);
  kv_dec(&b, "1.000");
  kv_dbl(&c, 1.0);
  kv_i64(&d, 1);
  EXPECT_ORDER(a, b, 0);
  EXPECT_ORDER(a, c, 0);
  EXPECT_ORDER(a, d, 0);
  cr_expect(a.k.len == 10, "small numbers take 10 bytes, got %zu", a.k.len);
  kv_free(&a); kv_free(&b); kv_free(&c); kv_free(&d);
}

Test(keyenc, strings_escape_nul_and_stay_prefix_free) {
  kv a, b, c, d;
  kv_str(&a, "a", 1);
  kv_str(&b, "a\0", 2);
  kv_str(&c, "a\x01", 2);
  kv_str(&d, "ab", 2);
  EXPECT_ORDER(a, b, -1);
  EXPECT_ORDER(b, c, -1);
  EXPECT_ORDER(c, d, -1);
  /* "a" is a prefix of "a\0" as a string, but its key is not a prefix of the other key */
  cr_expect(b.k.len > a.k.len && memcmp(a.k.data, b.k.data, a.k.len) != 0);
  /* descending: compound (s desc, 1) keeps the order of s reversed even for prefixes */
  nx_buf ka, kb;
  nx_buf_init(&ka, 0);
  nx_buf_init(&kb, 0);
  bson_value_t one = {.value_type = BSON_TYPE_INT32, .value.v_int32 = 1};
  cr_assert(keyenc_append(&ka, &a.v, true) == NX_OK && keyenc_append(&ka, &one, false) == NX_OK);
  cr_assert(keyenc_append(&kb, &d.v, true) == NX_OK && keyenc_append(&kb, &one, false) == NX_OK);
  cr_expect(memcmp_keys(&ka, &kb) > 0, "descending 'a' must sort after descending 'ab'");
  nx_buf_free(&ka);
  nx_buf_free(&kb);
  kv_free(&a); kv_free(&b); kv_free(&c); kv_free(&d);
}

/* ---- Compound keys: lexicographic over components, each ascending or descending ---- */
Test(keyenc, compound_keys_order_component_by_component) {
  seed_init("keyenc compound");
  size_t n = asan_scale() ? 300 : 1200, pairs = asan_scale() ? 20000 : 150000;
  enum { NC = 3 };
  item *items = calloc(n * NC, sizeof *items);
  make_items(items, n * NC, 50);
  bool desc[NC];
  nx_buf *keys = calloc(n, sizeof *keys);
  for (int round = 0; round < 4; round++) {
    for (int c = 0; c < NC; c++) desc[c] = rn(2);
    for (size_t i = 0; i < n; i++) {
      nx_buf_init(&keys[i], 0);
      for (int c = 0; c < NC; c++)
        cr_assert(keyenc_append(&keys[i], &items[i * NC + c].v, desc[c]) == NX_OK);
    }
    for (size_t k = 0; k < pairs / 4; k++) {
      /* pick pairs that often share leading components */
      size_t i = rn((uint32_t)n), j = rn((uint32_t)n);
      int want = 0;
      for (int c = 0; c < NC && want == 0; c++) {
        int x = sgn(doc_cmp_values(&items[i * NC + c].v, &items[j * NC + c].v));
        want = desc[c] ? -x : x;
      }
      int got = memcmp_keys(&keys[i], &keys[j]);
      cr_assert(got == want, "compound order mismatch at pair %zu/%zu: got %d want %d", i, j, got,
                want);
    }
    /* shared prefixes: key i with its first component replaced by key j's */
    for (size_t i = 0; i + 1 < n; i++) {
      nx_buf x;
      nx_buf_init(&x, 0);
      cr_assert(keyenc_append(&x, &items[i * NC].v, desc[0]) == NX_OK);
      for (int c = 1; c < NC; c++)
        cr_assert(keyenc_append(&x, &items[(i + 1) * NC + c].v, desc[c]) == NX_OK);
      int want = 0;
      for (int c = 1; c < NC && want == 0; c++) {
        int s = sgn(doc_cmp_values(&items[i * NC + c].v, &items[(i + 1) * NC + c].v));
        want = desc[c] ? -s : s;
      }
      cr_assert(memcmp_keys(&keys[i], &x) == want, "shared first component, pair %zu", i);
      nx_buf_free(&x);
    }
    for (size_t i = 0; i < n; i++) nx_buf_free(&keys[i]);
  }
  free(keys);
  free_items(items, n * NC);
  free(items);
}

/* ---- Decoding ---- */
static void roundtrip_one(const bson_value_t *v, bool desc) {
  nx_buf k, k2;
  nx_buf_init(&k, 0);
  nx_buf_init(&k2, 0);
  encode(v, desc, &k);
  /* two components back to back: decode must stop exactly at the end of the first */
  size_t one = k.len;
  cr_assert(keyenc_append(&k, v, desc) == NX_OK);
  size_t pos = 0;
  bson_value_t out;
  int rc = keyenc_decode(k.data, k.len, &pos, desc, &out);
  if (rc != NX_OK) {
    char *s = show(v);
    cr_assert_fail("decode failed (%s) for %s", nx_err_msg(), s);
  }
  cr_assert(pos == one, "decode consumed %zu of %zu bytes", pos, one);
  if (doc_cmp_values(v, &out) != 0) {
    char *s = show(v), *t = show(&out);
    cr_assert_fail("decoded value differs: %s -> %s", s, t);
  }
  encode(&out, desc, &k2);
  cr_assert(k2.len == one && memcmp(k2.data, k.data, one) == 0, "re-encoding differs");
  bson_value_t out2;
  cr_assert(keyenc_decode(k.data, k.len, &pos, desc, &out2) == NX_OK && pos == k.len);
  bson_value_destroy(&out2);
  bson_value_destroy(&out);
  nx_buf_free(&k);
  nx_buf_free(&k2);
}

Test(keyenc, decode_gives_back_an_equal_value) {
  seed_init("keyenc decode");
  size_t n = asan_scale() ? 1500 : 6000;
  item *items = calloc(n, sizeof *items);
  make_items(items, n, 40);
  for (size_t i = 0; i < n; i++) roundtrip_one(&items[i].v, i % 2 == 1);
  free_items(items, n);
  free(items);
}

Test(keyenc, decode_canonical_numeric_types) {
  struct {
    const char *json;
    bson_type_t want;
  } cases[] = {
    {"{\"v\": {\"$numberDouble\": \"5.0\"}}", BSON_TYPE_INT32},
    {"{\"v\": {\"$numberLong\": \"5000000000\"}}", BSON_TYPE_INT64},
    {"{\"v\": {\"$numberLong\": \"9007199254740993\"}}", BSON_TYPE_INT64},
    {"{\"v\": {\"$numberDouble\": \"0.5\"}}", BSON_TYPE_DOUBLE},
    {"{\"v\": {\"$numberDecimal\": \"0.1\"}}", BSON_TYPE_DECIMAL128},
    {"{\"v\": {\"$numberDecimal\": \"0.5\"}}", BSON_TYPE_DOUBLE},
    {"{\"v\": {\"$numberDecimal\": \"1E+6144\"}}", BSON_TYPE_DECIMAL128},
    {"{\"v\": {\"$numberDecimal\": \"NaN\"}}", BSON_TYPE_DOUBLE},
    {"{\"v\": {\"$numberDouble\": \"-0.0\"}}", BSON_TYPE_INT32},
    {"{\"v\": {\"$symbol\": \"s\"}}", BSON_TYPE_UTF8},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    bson_t d;
    bson_error_t err;
    cr_assert(bson_init_from_json(&d, cases[i].json, -1, &err), "%s: %s", cases[i].json, err.message);
    bson_iter_t it;
    cr_assert(bson_iter_init_find(&it, &d, "v"));
    nx_buf k;
    nx_buf_init(&k, 0);
    cr_assert(keyenc_append_iter(&k, &it, false) == NX_OK);
    size_t pos = 0;
    bson_value_t out;
    cr_assert(keyenc_decode(k.data, k.len, &pos, false, &out) == NX_OK);
    cr_expect(out.value_type == cases[i].want, "%s decodes as type 0x%x, expected 0x%x", cases[i].json,
              out.value_type, cases[i].want);
    bson_value_destroy(&out);
    nx_buf_free(&k);
    bson_destroy(&d);
  }
}

Test(keyenc, malformed_keys_are_corrupt_never_crash) {
  seed_init("keyenc corrupt");
  size_t n = asan_scale() ? 300 : 1500;
  item *items = calloc(n, sizeof *items);
  make_items(items, n, 40);
  size_t truncations = 0, flips = 0, flip_ok = 0;
  for (size_t i = 0; i < n; i++) {
    nx_buf k;
    nx_buf_init(&k, 0);
    bool desc = i % 2;
    encode(&items[i].v, desc, &k);
    for (size_t cut = 0; cut < k.len; cut++) { /* every proper prefix is malformed */
      size_t pos = 0;
      bson_value_t out;
      int rc = keyenc_decode(k.data, cut, &pos, desc, &out);
      cr_assert(rc == NX_CORRUPT, "prefix of %zu/%zu bytes decoded (rc %d)", cut, k.len, rc);
      cr_assert(pos == 0);
      truncations++;
    }
    for (int f = 0; f < 8 && k.len; f++) { /* flipped bytes: NX_CORRUPT or a clean decode */
      size_t at = rn((uint32_t)k.len);
      uint8_t old = k.data[at];
      k.data[at] = (uint8_t)(old ^ (1u << rn(8)));
      size_t pos = 0;
      bson_value_t out;
      int rc = keyenc_decode(k.data, k.len, &pos, desc, &out);
      cr_assert(rc == NX_OK || rc == NX_CORRUPT, "rc %d", rc);
      if (rc == NX_OK) {
        cr_assert(pos <= k.len);
        bson_value_destroy(&out);
        flip_ok++;
      }
      flips++;
      k.data[at] = old;
    }
    nx_buf_free(&k);
  }
  fprintf(stderr, "keyenc corrupt: %zu truncations rejected, %zu flips (%zu decoded cleanly)\n",
          truncations, flips, flip_ok);
  free_items(items, n);
  free(items);
}

Test(keyenc, key_resets_and_append_keeps_buffer_on_error) {
  nx_buf k;
  nx_buf_init(&k, 0);
  bson_value_t v = {.value_type = BSON_TYPE_INT32, .value.v_int32 = 7};
  cr_assert(keyenc_append(&k, &v, false) == NX_OK);
  size_t one = k.len;
  cr_assert(keyenc_key(&k, &v) == NX_OK);
  cr_assert(k.len == one, "keyenc_key must reset the buffer");
  bson_value_t bad = {.value_type = BSON_TYPE_EOD};
  cr_assert(keyenc_append(&k, &bad, false) == NX_INVALID);
  cr_assert(k.len == one, "a failed append leaves the buffer as it was");
  nx_buf small;
  nx_buf_init(&small, 4);
  bson_value_t s = {.value_type = BSON_TYPE_UTF8, .value.v_utf8 = {.str = "hello world", .len = 11}};
  cr_assert(keyenc_append(&small, &s, false) == NX_LIMIT);
  cr_assert(small.len == 0);
  nx_buf_free(&small);
  nx_buf_free(&k);
}
