/*
 * doc_cmp.c: MongoDB's total order over BSON values (doc.h lists the brackets).
 *
 * Invariants:
 *   1. The order is total and consistent with equality: cmp(a,b) == -cmp(b,a), and values of
 *      different brackets never compare equal. Numbers of different BSON types that have the same
 *      value compare equal (1 == 1L == 1.0 == NumberDecimal("1.00")).
 *   2. Numbers compare exactly where MongoDB does: int32/int64 against double without going
 *      through double (2^53+1 > 2^53.0); decimal128 against integers exactly; decimal128 against
 *      a double after rounding the double to 34 significant digits (MongoDB's kRoundTo34Digits).
 *   3. NaN (double or decimal) equals NaN and is below every other number, -Infinity included.
 *   4. Nothing here allocates: nested documents are walked in place with bson_iter.
 */
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "doc.h"

int doc_canonical_type_order(bson_type_t t) {
  switch (t) {
  case BSON_TYPE_MINKEY:
    return -1;
  case BSON_TYPE_EOD:
  case BSON_TYPE_UNDEFINED:
    return 0;
  case BSON_TYPE_NULL:
    return 5;
  case BSON_TYPE_DOUBLE:
  case BSON_TYPE_INT32:
  case BSON_TYPE_INT64:
  case BSON_TYPE_DECIMAL128:
    return 10;
  case BSON_TYPE_UTF8:
  case BSON_TYPE_SYMBOL:
    return 15;
  case BSON_TYPE_DOCUMENT:
    return 20;
  case BSON_TYPE_ARRAY:
    return 25;
  case BSON_TYPE_BINARY:
    return 30;
  case BSON_TYPE_OID:
    return 35;
  case BSON_TYPE_BOOL:
    return 40;
  case BSON_TYPE_DATE_TIME:
    return 45;
  case BSON_TYPE_TIMESTAMP:
    return 47;
  case BSON_TYPE_REGEX:
    return 50;
  case BSON_TYPE_DBPOINTER:
    return 55;
  case BSON_TYPE_CODE:
    return 60;
  case BSON_TYPE_CODEWSCOPE:
    return 65;
  case BSON_TYPE_MAXKEY:
    return 127;
  default:
    return 127;
  }
}

bool doc_is_number(bson_type_t t) {
  return t == BSON_TYPE_INT32 || t == BSON_TYPE_INT64 || t == BSON_TYPE_DOUBLE || t == BSON_TYPE_DECIMAL128;
}

/* ---- Numbers ------------------------------------------------------------------------------ */

/* A number in a form every type converts to: NaN, +-Inf, or sign * 0.d1d2d3... * 10^exp10 with
 * the digits stripped of leading and trailing zeros (zero has no digits). */
typedef struct num_repr {
  int kind;     /* 0 NaN, 1 -Inf, 2 finite, 3 +Inf */
  bool neg;     /* sign of a finite non-zero value */
  int ndig;     /* number of significant digits (0 for zero) */
  int exp10;    /* value = 0.digits * 10^exp10 */
  char dig[48]; /* the significant digits, ASCII */
} num_repr;

static void repr_from_digits(num_repr *r, bool neg, const char *digits, int n, int exp_of_last) {
  /* digits[0..n) is an integer coefficient; value = coeff * 10^exp_of_last */
  int start = 0;
  while (start < n && digits[start] == '0')
    start++;
  int end = n;
  while (end > start && digits[end - 1] == '0')
    end--;
  r->kind = 2;
  r->ndig = end - start;
  if (r->ndig == 0) {
    r->neg = false;
    r->exp10 = 0;
    return;
  }
  r->neg = neg;
  memcpy(r->dig, digits + start, (size_t)r->ndig);
  /* coeff = D * 10^(n - end) where D has ndig digits; D = 0.D * 10^ndig */
  r->exp10 = r->ndig + (n - end) + exp_of_last;
}

static void repr_from_int64(num_repr *r, int64_t v) {
  char buf[32];
  bool neg = v < 0;
  uint64_t mag = neg ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  int n = 0;
  char tmp[32];
  do {
    tmp[n++] = (char)('0' + (int)(mag % 10u));
    mag /= 10u;
  } while (mag);
  for (int i = 0; i < n; i++)
    buf[i] = tmp[n - 1 - i];
  repr_from_digits(r, neg, buf, n, 0);
}

static void repr_from_double(num_repr *r, double d) {
  if (isnan(d)) {
    r->kind = 0;
    return;
  }
  if (isinf(d)) {
    r->kind = d < 0 ? 1 : 3;
    return;
  }
  if (d == 0) {
    repr_from_digits(r, false, "0", 1, 0);
    return;
  }
  /* 34 significant digits, correctly rounded by glibc: "-d.ddd...e+XX" */
  char buf[64];
  snprintf(buf, sizeof buf, "%.33e", d);
  const char *p = buf;
  bool neg = false;
  if (*p == '-') {
    neg = true;
    p++;
  }
  char digits[40];
  int n = 0;
  while (*p && *p != 'e') {
    if (*p >= '0' && *p <= '9' && n < 40) digits[n++] = *p;
    p++;
  }
  int e = 0;
  if (*p == 'e') {
    p++;
    bool eneg = *p == '-';
    if (*p == '-' || *p == '+') p++;
    while (*p >= '0' && *p <= '9')
      e = e * 10 + (*p++ - '0');
    if (eneg) e = -e;
  }
  /* value = d.ddd * 10^e = (integer of n digits) * 10^(e - (n - 1)) */
  repr_from_digits(r, neg, digits, n, e - (n - 1));
}

__extension__ typedef unsigned __int128 nx_u128;

/* The finite decimal128 (hi, lo) as its exponent and its coefficient's decimal digits, most
 * significant first, in digits[0..*n) (at most 34; a non-canonical coefficient reads as 0, as
 * IEEE 754-2008 says). The caller has already handled NaN and infinities. */
static void dec_unpack(uint64_t hi, uint64_t lo, int *exponent, char digits[48], int *n) {
  nx_u128 coeff;
  if (((hi >> 61) & 3u) == 3u) {
    /* "11" form: implied coefficient >= 2^113 > 10^34 - 1: non-canonical, value zero */
    *exponent = (int)((hi >> 47) & 0x3FFFu) - 6176;
    coeff = 0;
  } else {
    *exponent = (int)((hi >> 49) & 0x3FFFu) - 6176;
    coeff = ((nx_u128)(hi & 0x1FFFFFFFFFFFFull) << 64) | lo;
    nx_u128 max = 1;
    for (int i = 0; i < 34; i++)
      max *= 10u;
    if (coeff >= max) coeff = 0;
  }
  char tmp[48];
  int k = 0;
  do {
    tmp[k++] = (char)('0' + (int)(coeff % 10u));
    coeff /= 10u;
  } while (coeff);
  for (int i = 0; i < k; i++)
    digits[i] = tmp[k - 1 - i];
  *n = k;
}

static void repr_from_decimal(num_repr *r, const bson_decimal128_t *dec) {
  uint64_t hi = dec->high, lo = dec->low;
  bool neg = (hi >> 63) != 0;
  unsigned comb = (unsigned)((hi >> 58) & 0x1Fu);
  if (comb == 0x1F) {
    r->kind = 0;
    return;
  }
  if (comb == 0x1E) {
    r->kind = neg ? 1 : 3;
    return;
  }
  int exponent, n;
  char buf[48];
  dec_unpack(hi, lo, &exponent, buf, &n);
  repr_from_digits(r, neg, buf, n, exponent);
}

static int repr_cmp(const num_repr *a, const num_repr *b) {
  if (a->kind != 2 || b->kind != 2) {
    if (a->kind == b->kind) return 0;
    /* NaN(0) < -Inf(1) < finite(2) < +Inf(3) */
    return a->kind < b->kind ? -1 : 1;
  }
  int sa = a->ndig == 0 ? 0 : (a->neg ? -1 : 1);
  int sb = b->ndig == 0 ? 0 : (b->neg ? -1 : 1);
  if (sa != sb) return sa < sb ? -1 : 1;
  if (sa == 0) return 0;
  int mag; /* compare magnitudes */
  if (a->exp10 != b->exp10) {
    mag = a->exp10 < b->exp10 ? -1 : 1;
  } else {
    int n = a->ndig < b->ndig ? a->ndig : b->ndig;
    int c = memcmp(a->dig, b->dig, (size_t)n);
    if (c != 0)
      mag = c < 0 ? -1 : 1;
    else
      mag = a->ndig == b->ndig ? 0 : (a->ndig < b->ndig ? -1 : 1);
  }
  return sa < 0 ? -mag : mag;
}

static void repr_of(const bson_value_t *v, num_repr *r) {
  switch (v->value_type) {
  case BSON_TYPE_INT32:
    repr_from_int64(r, v->value.v_int32);
    break;
  case BSON_TYPE_INT64:
    repr_from_int64(r, v->value.v_int64);
    break;
  case BSON_TYPE_DOUBLE:
    repr_from_double(r, v->value.v_double);
    break;
  default:
    repr_from_decimal(r, &v->value.v_decimal128);
    break;
  }
}

static int cmp_i64(int64_t a, int64_t b) { return a < b ? -1 : (a > b ? 1 : 0); }

/* Exact comparison of an integer with a double (MongoDB compareLongToDouble). */
static int cmp_i64_double(int64_t i, double d) {
  if (isnan(d)) return 1;
  if (d >= 9223372036854775808.0) return -1; /* 2^63 */
  if (d < -9223372036854775808.0) return 1;
  double t = trunc(d);
  int64_t di = (int64_t)t;
  if (i != di) return i < di ? -1 : 1;
  if (d > t) return -1;
  if (d < t) return 1;
  return 0;
}

static int cmp_double(double a, double b) {
  bool na = isnan(a), nb = isnan(b);
  if (na || nb) return na && nb ? 0 : (na ? -1 : 1);
  return a < b ? -1 : (a > b ? 1 : 0);
}

static int64_t as_i64(const bson_value_t *v) {
  return v->value_type == BSON_TYPE_INT32 ? v->value.v_int32 : v->value.v_int64;
}

static int cmp_numbers(const bson_value_t *a, const bson_value_t *b) {
  bson_type_t ta = a->value_type, tb = b->value_type;
  bool ia = ta == BSON_TYPE_INT32 || ta == BSON_TYPE_INT64;
  bool ib = tb == BSON_TYPE_INT32 || tb == BSON_TYPE_INT64;
  if (ia && ib) return cmp_i64(as_i64(a), as_i64(b));
  if (ia && tb == BSON_TYPE_DOUBLE) return cmp_i64_double(as_i64(a), b->value.v_double);
  if (ta == BSON_TYPE_DOUBLE && ib) return -cmp_i64_double(as_i64(b), a->value.v_double);
  if (ta == BSON_TYPE_DOUBLE && tb == BSON_TYPE_DOUBLE)
    return cmp_double(a->value.v_double, b->value.v_double);
  num_repr ra, rb;
  repr_of(a, &ra);
  repr_of(b, &rb);
  return repr_cmp(&ra, &rb);
}

double doc_number_as_double(const bson_value_t *v) {
  switch (v->value_type) {
  case BSON_TYPE_INT32:
    return v->value.v_int32;
  case BSON_TYPE_INT64:
    return (double)v->value.v_int64;
  case BSON_TYPE_DOUBLE:
    return v->value.v_double;
  case BSON_TYPE_DECIMAL128: {
    num_repr r;
    repr_from_decimal(&r, &v->value.v_decimal128);
    if (r.kind == 0) return NAN;
    if (r.kind == 1) return -INFINITY;
    if (r.kind == 3) return INFINITY;
    if (r.ndig == 0) return 0.0;
    char buf[96];
    snprintf(buf, sizeof buf, "%s0.%.*se%d", r.neg ? "-" : "", r.ndig, r.dig, r.exp10);
    return strtod(buf, NULL);
  }
  default:
    return 0.0;
  }
}

/* True with *out set when v is a number with an integral value within about +-9.2e18 (doubles
 * and decimals must be whole). Used for $mod, $size, $slice, $position and the like. */
bool doc_number_integral_i64(const bson_value_t *v, int64_t *out) {
  switch (v->value_type) {
  case BSON_TYPE_INT32:
    *out = v->value.v_int32;
    return true;
  case BSON_TYPE_INT64:
    *out = v->value.v_int64;
    return true;
  case BSON_TYPE_DOUBLE: {
    double d = v->value.v_double;
    if (!(d >= -9.2e18 && d <= 9.2e18) || d != (double)(int64_t)d) return false;
    *out = (int64_t)d;
    return true;
  }
  case BSON_TYPE_DECIMAL128: {
    double d = doc_number_as_double(v);
    if (!(d >= -9.2e18 && d <= 9.2e18) || d != (double)(int64_t)d) return false;
    *out = (int64_t)d;
    return true;
  }
  default:
    return false;
  }
}

bool doc_number_trunc_i64(const bson_value_t *v, int64_t *out) {
  switch (v->value_type) {
  case BSON_TYPE_INT32:
    *out = v->value.v_int32;
    return true;
  case BSON_TYPE_INT64:
    *out = v->value.v_int64;
    return true;
  case BSON_TYPE_DOUBLE: {
    double d = v->value.v_double;
    if (!(d > -9223372036854775808.0 - 1.0 && d < 9223372036854775808.0)) return false;
    if (d < -9223372036854775808.0) return false;
    *out = (int64_t)d;
    return true;
  }
  case BSON_TYPE_DECIMAL128: {
    num_repr r;
    repr_from_decimal(&r, &v->value.v_decimal128);
    if (r.kind != 2) return false;
    if (r.ndig == 0 || r.exp10 <= 0) {
      *out = 0;
      return true;
    }
    if (r.exp10 > 19) return false;
    uint64_t mag = 0;
    for (int i = 0; i < r.exp10; i++) {
      unsigned dgt = i < r.ndig ? (unsigned)(r.dig[i] - '0') : 0u;
      if (mag > (UINT64_MAX - dgt) / 10u) return false;
      mag = mag * 10u + dgt;
    }
    if (r.neg) {
      if (mag > (uint64_t)INT64_MAX + 1u) return false;
      *out = mag == (uint64_t)INT64_MAX + 1u ? INT64_MIN : -(int64_t)mag;
    } else {
      if (mag > (uint64_t)INT64_MAX) return false;
      *out = (int64_t)mag;
    }
    return true;
  }
  default:
    return false;
  }
}

/* ---- decimal128 arithmetic ----------------------------------------------------------------
 * A finite operand is sign * C * 10^E with C a decimal digit string (no leading zeros, "0" for
 * zero). Sums align exponents exactly (unless they are more than DEC_MAX_SHIFT apart, when the
 * smaller operand is below the result's precision and the larger is returned); products multiply
 * digit strings. The exact result is then rounded half-even to 34 digits. */
#define DEC_DIGITS 34
#define DEC_MAX_SHIFT 80
#define DEC_EMAX 6111
#define DEC_EMIN (-6176)

typedef struct dnum {
  int kind; /* 0 NaN, 1 infinity, 2 finite */
  bool neg;
  int n;       /* digits in c */
  int e;       /* exponent of the last digit */
  char c[200]; /* coefficient digits */
} dnum;

static void dnum_set_digits(dnum *d, const char *digits, int n) {
  int s = 0;
  while (s < n - 1 && digits[s] == '0')
    s++;
  d->n = n - s;
  memmove(d->c, digits + s, (size_t)d->n);
}

static bool dnum_from(const bson_value_t *v, dnum *d) {
  memset(d, 0, sizeof *d);
  d->kind = 2;
  switch (v->value_type) {
  case BSON_TYPE_INT32:
  case BSON_TYPE_INT64: {
    int64_t x = v->value_type == BSON_TYPE_INT32 ? v->value.v_int32 : v->value.v_int64;
    d->neg = x < 0;
    uint64_t mag = d->neg ? (uint64_t)0 - (uint64_t)x : (uint64_t)x;
    char tmp[24];
    int n = 0;
    do {
      tmp[n++] = (char)('0' + (int)(mag % 10u));
      mag /= 10u;
    } while (mag);
    for (int i = 0; i < n; i++)
      d->c[i] = tmp[n - 1 - i];
    d->n = n;
    return true;
  }
  case BSON_TYPE_DOUBLE: {
    double x = v->value.v_double;
    if (isnan(x)) {
      d->kind = 0;
      return true;
    }
    d->neg = signbit(x) != 0;
    if (isinf(x)) {
      d->kind = 1;
      return true;
    }
    char buf[48];
    snprintf(buf, sizeof buf, "%.14e", fabs(x));
    char digits[20];
    int n = 0;
    const char *p = buf;
    while (*p && *p != 'e') {
      if (*p >= '0' && *p <= '9') digits[n++] = *p;
      p++;
    }
    int ex = p[0] == 'e' ? (int)strtol(p + 1, NULL, 10) : 0;
    dnum_set_digits(d, digits, n);
    d->e = ex - (n - 1);
    if (d->n == 1 && d->c[0] == '0') d->e = 0;
    return true;
  }
  case BSON_TYPE_DECIMAL128: {
    uint64_t hi = v->value.v_decimal128.high, lo = v->value.v_decimal128.low;
    d->neg = (hi >> 63) != 0;
    unsigned comb = (unsigned)((hi >> 58) & 0x1Fu);
    if (comb == 0x1F) {
      d->kind = 0;
      return true;
    }
    if (comb == 0x1E) {
      d->kind = 1;
      return true;
    }
    dec_unpack(hi, lo, &d->e, d->c, &d->n);
    return true;
  }
  default:
    return false;
  }
}

static bool dnum_is_zero(const dnum *d) { return d->n == 1 && d->c[0] == '0'; }

/* |A| vs |B| for digit strings without leading zeros */
static int digits_cmp(const char *a, int na, const char *b, int nb) {
  if (na != nb) return na < nb ? -1 : 1;
  int c = memcmp(a, b, (size_t)na);
  return c < 0 ? -1 : (c > 0 ? 1 : 0);
}

/* r = a + b (digit strings, right aligned); returns length */
static int digits_add(const char *a, int na, const char *b, int nb, char *r) {
  int n = (na > nb ? na : nb) + 1, carry = 0;
  for (int i = 0; i < n; i++) {
    int da = i < na ? a[na - 1 - i] - '0' : 0;
    int db = i < nb ? b[nb - 1 - i] - '0' : 0;
    int s = da + db + carry;
    r[n - 1 - i] = (char)('0' + s % 10);
    carry = s / 10;
  }
  return n;
}

/* r = a - b with |a| >= |b| */
static int digits_sub(const char *a, int na, const char *b, int nb, char *r) {
  int borrow = 0;
  for (int i = 0; i < na; i++) {
    int da = a[na - 1 - i] - '0' - borrow;
    int db = i < nb ? b[nb - 1 - i] - '0' : 0;
    borrow = da < db;
    r[na - 1 - i] = (char)('0' + da - db + (borrow ? 10 : 0));
  }
  return na;
}

static int digits_mul(const char *a, int na, const char *b, int nb, char *r) {
  int n = na + nb;
  int acc[200] = {0};
  for (int i = na - 1; i >= 0; i--)
    for (int j = nb - 1; j >= 0; j--)
      acc[i + j + 1] += (a[i] - '0') * (b[j] - '0');
  for (int k = n - 1; k > 0; k--) {
    acc[k - 1] += acc[k] / 10;
    acc[k] %= 10;
  }
  for (int k = 0; k < n; k++)
    r[k] = (char)('0' + acc[k]);
  return n;
}

/* Rounds d to DEC_DIGITS digits half-even and into the exponent range, then encodes. */
static void dnum_encode(dnum *d, bson_decimal128_t *out) {
  char buf[300];
  if (d->kind == 0) {
    bson_decimal128_from_string("NaN", out);
    return;
  }
  if (d->kind == 1) {
    bson_decimal128_from_string(d->neg ? "-Infinity" : "Infinity", out);
    return;
  }
  dnum_set_digits(d, d->c, d->n);
  int drop = d->n > DEC_DIGITS ? d->n - DEC_DIGITS : 0;
  if (d->e + drop < DEC_EMIN) drop = DEC_EMIN - d->e;
  if (drop > 0) {
    if (drop > d->n) {
      /* everything is below the smallest exponent: rounds to zero */
      d->c[0] = '0';
      d->n = 1;
      d->e = DEC_EMIN;
    } else {
      int keep = d->n - drop;
      int first = d->c[keep] - '0';
      bool rest_zero = true;
      for (int i = keep + 1; i < d->n; i++)
        if (d->c[i] != '0') rest_zero = false;
      bool up = first > 5 || (first == 5 && !rest_zero) ||
                (first == 5 && rest_zero && keep > 0 && ((d->c[keep - 1] - '0') & 1));
      d->n = keep;
      d->e += drop;
      if (d->n == 0) {
        d->c[0] = up ? '1' : '0';
        d->n = 1;
      } else if (up) {
        int i = d->n - 1;
        while (i >= 0 && d->c[i] == '9')
          d->c[i--] = '0';
        if (i >= 0) {
          d->c[i]++;
        } else {
          memmove(d->c + 1, d->c, (size_t)d->n);
          d->c[0] = '1';
          d->n++;
          if (d->n > DEC_DIGITS) {
            d->n--;
            d->e++;
          }
        }
      }
    }
  }
  while (d->e > DEC_EMAX && d->n < DEC_DIGITS && !dnum_is_zero(d)) {
    d->c[d->n++] = '0';
    d->e--;
  }
  if (dnum_is_zero(d) && d->e > DEC_EMAX) d->e = DEC_EMAX;
  if (d->e > DEC_EMAX) {
    bson_decimal128_from_string(d->neg ? "-Infinity" : "Infinity", out);
    return;
  }
  snprintf(buf, sizeof buf, "%s%.*sE%d", d->neg ? "-" : "", d->n, d->c, d->e);
  if (!bson_decimal128_from_string(buf, out)) bson_decimal128_from_string("NaN", out);
}

bool doc_decimal_arith(const bson_value_t *a, const bson_value_t *b, bool mul, bson_decimal128_t *out) {
  dnum x, y, r;
  if (!dnum_from(a, &x) || !dnum_from(b, &y)) return false;
  memset(&r, 0, sizeof r);
  r.kind = 2;
  if (x.kind == 0 || y.kind == 0) {
    r.kind = 0;
  } else if (mul) {
    r.neg = x.neg != y.neg;
    if (x.kind == 1 || y.kind == 1) {
      r.kind = (x.kind == 2 && dnum_is_zero(&x)) || (y.kind == 2 && dnum_is_zero(&y)) ? 0 : 1;
    } else {
      r.n = digits_mul(x.c, x.n, y.c, y.n, r.c);
      r.e = x.e + y.e;
    }
  } else if (x.kind == 1 || y.kind == 1) {
    if (x.kind == 1 && y.kind == 1 && x.neg != y.neg) {
      r.kind = 0;
    } else {
      r.kind = 1;
      r.neg = x.kind == 1 ? x.neg : y.neg;
    }
  } else if (dnum_is_zero(&x) || dnum_is_zero(&y)) {
    const dnum *nz = dnum_is_zero(&x) ? &y : &x;
    r = *nz;
    r.e = x.e < y.e ? x.e : y.e; /* IEEE: the smaller exponent */
    if (nz->e > r.e && !dnum_is_zero(nz)) {
      int pad = nz->e - r.e;
      if (pad > DEC_MAX_SHIFT) {
        r = *nz;
      } else {
        memset(r.c + nz->n, '0', (size_t)pad);
        r.n = nz->n + pad;
      }
    }
    if (dnum_is_zero(&x) && dnum_is_zero(&y)) r.neg = x.neg && y.neg;
  } else {
    int e = x.e < y.e ? x.e : y.e;
    int px = x.e - e, py = y.e - e;
    if (px > DEC_MAX_SHIFT || py > DEC_MAX_SHIFT) {
      /* exponents far apart: compare magnitudes through the exact order and keep the larger */
      bson_value_t va = *a, vb = *b;
      num_repr ra, rb;
      repr_of(&va, &ra);
      repr_of(&vb, &rb);
      ra.neg = rb.neg = false;
      r = repr_cmp(&ra, &rb) >= 0 ? x : y;
    } else {
      char A[200], B[200];
      memcpy(A, x.c, (size_t)x.n);
      memset(A + x.n, '0', (size_t)px);
      memcpy(B, y.c, (size_t)y.n);
      memset(B + y.n, '0', (size_t)py);
      int na = x.n + px, nb = y.n + py;
      r.e = e;
      if (x.neg == y.neg) {
        r.neg = x.neg;
        r.n = digits_add(A, na, B, nb, r.c);
      } else {
        int c = digits_cmp(A, na, B, nb);
        if (c == 0) {
          r.c[0] = '0';
          r.n = 1;
          r.neg = false;
        } else if (c > 0) {
          r.neg = x.neg;
          r.n = digits_sub(A, na, B, nb, r.c);
        } else {
          r.neg = y.neg;
          r.n = digits_sub(B, nb, A, na, r.c);
        }
      }
    }
  }
  dnum_encode(&r, out);
  return true;
}

/* ---- Everything else ---------------------------------------------------------------------- */

static int cmp_bytes(const void *a, size_t la, const void *b, size_t lb) {
  size_t n = la < lb ? la : lb;
  int c = n ? memcmp(a, b, n) : 0;
  if (c != 0) return c < 0 ? -1 : 1;
  return la == lb ? 0 : (la < lb ? -1 : 1);
}

static int cmp_cstr(const char *a, const char *b) {
  int c = strcmp(a ? a : "", b ? b : "");
  return c < 0 ? -1 : (c > 0 ? 1 : 0);
}

/* Compares two embedded documents (or arrays) element by element: canonical type, then field
 * name (objects only), then value. A prefix is lower. */
static int cmp_containers(const uint8_t *da, uint32_t la, const uint8_t *db, uint32_t lb, bool names) {
  bson_iter_t ia, ib;
  bool oka = bson_iter_init_from_data(&ia, da, la);
  bool okb = bson_iter_init_from_data(&ib, db, lb);
  if (!oka || !okb) return oka == okb ? 0 : (oka ? 1 : -1);
  for (;;) {
    bool na = bson_iter_next(&ia);
    bool nb = bson_iter_next(&ib);
    if (!na || !nb) return na == nb ? 0 : (na ? 1 : -1);
    int ca = doc_canonical_type_order(bson_iter_type(&ia));
    int cb = doc_canonical_type_order(bson_iter_type(&ib));
    if (ca != cb) return ca < cb ? -1 : 1;
    if (names) {
      int c = cmp_cstr(bson_iter_key(&ia), bson_iter_key(&ib));
      if (c != 0) return c;
    }
    int c = doc_cmp_iter(&ia, &ib);
    if (c != 0) return c;
  }
}

int doc_cmp_values(const bson_value_t *a, const bson_value_t *b) {
  int ca = doc_canonical_type_order(a->value_type);
  int cb = doc_canonical_type_order(b->value_type);
  if (ca != cb) return ca < cb ? -1 : 1;
  switch (a->value_type) {
  case BSON_TYPE_MINKEY:
  case BSON_TYPE_MAXKEY:
  case BSON_TYPE_NULL:
  case BSON_TYPE_UNDEFINED:
  case BSON_TYPE_EOD:
    return 0;
  case BSON_TYPE_DOUBLE:
  case BSON_TYPE_INT32:
  case BSON_TYPE_INT64:
  case BSON_TYPE_DECIMAL128:
    return cmp_numbers(a, b);
  case BSON_TYPE_UTF8:
  case BSON_TYPE_SYMBOL: {
    /* string and symbol share the bracket; their payloads sit in the same union layout */
    const char *sa = a->value_type == BSON_TYPE_UTF8 ? a->value.v_utf8.str : a->value.v_symbol.symbol;
    size_t la = a->value_type == BSON_TYPE_UTF8 ? a->value.v_utf8.len : a->value.v_symbol.len;
    const char *sb = b->value_type == BSON_TYPE_UTF8 ? b->value.v_utf8.str : b->value.v_symbol.symbol;
    size_t lb = b->value_type == BSON_TYPE_UTF8 ? b->value.v_utf8.len : b->value.v_symbol.len;
    return cmp_bytes(sa, la, sb, lb);
  }
  case BSON_TYPE_DOCUMENT:
  case BSON_TYPE_ARRAY:
    return cmp_containers(a->value.v_doc.data, a->value.v_doc.data_len, b->value.v_doc.data,
                          b->value.v_doc.data_len, a->value_type == BSON_TYPE_DOCUMENT);
  case BSON_TYPE_BINARY: {
    uint32_t la = a->value.v_binary.data_len, lb = b->value.v_binary.data_len;
    if (la != lb) return la < lb ? -1 : 1;
    if (a->value.v_binary.subtype != b->value.v_binary.subtype)
      return a->value.v_binary.subtype < b->value.v_binary.subtype ? -1 : 1;
    return cmp_bytes(a->value.v_binary.data, la, b->value.v_binary.data, lb);
  }
  case BSON_TYPE_OID:
    return cmp_bytes(a->value.v_oid.bytes, 12, b->value.v_oid.bytes, 12);
  case BSON_TYPE_BOOL:
    return (int)a->value.v_bool - (int)b->value.v_bool;
  case BSON_TYPE_DATE_TIME:
    return cmp_i64(a->value.v_datetime, b->value.v_datetime);
  case BSON_TYPE_TIMESTAMP: {
    if (a->value.v_timestamp.timestamp != b->value.v_timestamp.timestamp)
      return a->value.v_timestamp.timestamp < b->value.v_timestamp.timestamp ? -1 : 1;
    if (a->value.v_timestamp.increment != b->value.v_timestamp.increment)
      return a->value.v_timestamp.increment < b->value.v_timestamp.increment ? -1 : 1;
    return 0;
  }
  case BSON_TYPE_REGEX: {
    int c = cmp_cstr(a->value.v_regex.regex, b->value.v_regex.regex);
    return c != 0 ? c : cmp_cstr(a->value.v_regex.options, b->value.v_regex.options);
  }
  case BSON_TYPE_DBPOINTER: {
    uint32_t la = a->value.v_dbpointer.collection_len, lb = b->value.v_dbpointer.collection_len;
    if (la != lb) return la < lb ? -1 : 1;
    int c = cmp_bytes(a->value.v_dbpointer.collection, la, b->value.v_dbpointer.collection, lb);
    if (c != 0) return c;
    return cmp_bytes(a->value.v_dbpointer.oid.bytes, 12, b->value.v_dbpointer.oid.bytes, 12);
  }
  case BSON_TYPE_CODE:
    return cmp_bytes(a->value.v_code.code, a->value.v_code.code_len, b->value.v_code.code,
                     b->value.v_code.code_len);
  case BSON_TYPE_CODEWSCOPE: {
    int c = cmp_bytes(a->value.v_codewscope.code, a->value.v_codewscope.code_len, b->value.v_codewscope.code,
                      b->value.v_codewscope.code_len);
    if (c != 0) return c;
    return cmp_containers(a->value.v_codewscope.scope_data, a->value.v_codewscope.scope_len,
                          b->value.v_codewscope.scope_data, b->value.v_codewscope.scope_len, true);
  }
  default:
    return 0;
  }
}

int doc_cmp_iter(const bson_iter_t *a, const bson_iter_t *b) {
  bson_value_t va, vb;
  /* bson_iter_value borrows (pointers into the iterated buffer); it needs a mutable iterator */
  bson_iter_t ca = *a, cb = *b;
  va = *bson_iter_value(&ca);
  vb = *bson_iter_value(&cb);
  return doc_cmp_values(&va, &vb);
}

int doc_cmp_docs(const bson_t *a, const bson_t *b) {
  return cmp_containers(bson_get_data(a), a->len, bson_get_data(b), b->len, true);
}

const char *doc_type_name(bson_type_t t) {
  switch (t) {
  case BSON_TYPE_DOUBLE:
    return "double";
  case BSON_TYPE_UTF8:
    return "string";
  case BSON_TYPE_DOCUMENT:
    return "object";
  case BSON_TYPE_ARRAY:
    return "array";
  case BSON_TYPE_BINARY:
    return "binData";
  case BSON_TYPE_UNDEFINED:
    return "undefined";
  case BSON_TYPE_OID:
    return "objectId";
  case BSON_TYPE_BOOL:
    return "bool";
  case BSON_TYPE_DATE_TIME:
    return "date";
  case BSON_TYPE_NULL:
    return "null";
  case BSON_TYPE_REGEX:
    return "regex";
  case BSON_TYPE_DBPOINTER:
    return "dbPointer";
  case BSON_TYPE_CODE:
    return "javascript";
  case BSON_TYPE_SYMBOL:
    return "symbol";
  case BSON_TYPE_CODEWSCOPE:
    return "javascriptWithScope";
  case BSON_TYPE_INT32:
    return "int";
  case BSON_TYPE_TIMESTAMP:
    return "timestamp";
  case BSON_TYPE_INT64:
    return "long";
  case BSON_TYPE_DECIMAL128:
    return "decimal";
  case BSON_TYPE_MINKEY:
    return "minKey";
  case BSON_TYPE_MAXKEY:
    return "maxKey";
  case BSON_TYPE_EOD:
    return "missing";
  default:
    return "unknown";
  }
}
