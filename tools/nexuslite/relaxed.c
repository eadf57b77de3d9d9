/*
 * relaxed.c: the shell's relaxed object syntax, translated to canonical Extended JSON.
 *
 * People type mongosh literals: {name: 'alice', tags: ['a',], born: ISODate("1990-05-01"),
 * n: NumberLong(5), re: /^a/i}. We translate them to canonical Extended JSON text, which
 * nx_from_json (or any EJSON reader) turns into BSON with the exact types. Strict JSON is a
 * subset of the syntax, so the same translator serves the CLI's --filter and friends.
 *
 * Grammar (JavaScript literal subset):
 *   value   = object | array | string | number | regex | literal | ctor
 *   object  = '{' [ key ':' value { ',' key ':' value } [','] ] '}'
 *   key     = identifier | string | number            identifiers may hold $ and _
 *   array   = '[' [ value { ',' value } [','] ] ']'
 *   string  = '...' | "..."                           JS escapes, \uXXXX with surrogates
 *   number  = ['-'|'+'] digits ['.' digits] [exp] | 0x hex | Infinity | NaN
 *   regex   = '/' body '/' flags                      flags of i m s x u (g is refused)
 *   literal = true | false | null | undefined | MinKey | MaxKey
 *   ctor    = ['new'] Name '(' args ')'               ObjectId ISODate Date UUID NumberLong Long
 *             NumberInt Int32 NumberDecimal Decimal128 Double Timestamp BinData MinKey MaxKey
 *   comments: // to end of line, and block comments.
 *
 * Types: an integer literal that fits 32 bits is Int32 (as mongosh stores it), a larger one
 * Int64, anything with a fraction or exponent a Double.
 *
 * Invariants: 1. on success the output is one complete canonical EJSON value; 2. on failure the
 * message names the byte offset and what was expected; 3. nesting is limited to RX_MAX_DEPTH.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

#define RX_MAX_DEPTH 100

typedef struct rx {
  const char *p;    /* next byte */
  const char *base; /* start of the text, for offsets in messages */
  sbuf *out;        /* canonical EJSON being written */
  char *err;        /* message buffer */
  size_t errlen;
  int depth;        /* current nesting */
} rx;

static bool value(rx *r);

static bool fail(rx *r, const char *fmt, ...) CLI_PRINTF(2, 3);
static bool fail(rx *r, const char *fmt, ...) {
  char msg[200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  long off = (long)(r->p - r->base);
  int near = 0;
  while (near < 12 && r->p[near] && r->p[near] != '\n') near++;
  if (*r->p && *r->p != '\n')
    snprintf(r->err, r->errlen, "syntax error at offset %ld (near '%.*s'): %s", off, near, r->p, msg);
  else
    snprintf(r->err, r->errlen, "syntax error at offset %ld (end of input): %s", off, msg);
  return false;
}

void rx_skip(const char **pp) {
  const char *p = *pp;
  for (;;) {
    while (*p && isspace((unsigned char)*p)) p++;
    if (p[0] == '/' && p[1] == '/') {
      while (*p && *p != '\n') p++;
    } else if (p[0] == '/' && p[1] == '*') {
      const char *e = strstr(p + 2, "*/");
      p = e ? e + 2 : p + strlen(p);
    } else {
      break;
    }
  }
  *pp = p;
}

static bool is_ident_start(char ch) {
  unsigned char u = (unsigned char)ch;
  return isalpha(u) || ch == '_' || ch == '$' || u >= 0x80;
}
static bool is_ident_char(char ch) { return is_ident_start(ch) || isdigit((unsigned char)ch); }

/* Reads an identifier at r->p into buf (truncated); returns its length, 0 when none. */
static size_t ident(rx *r, char *buf, size_t cap) {
  size_t n = 0;
  if (!is_ident_start(*r->p)) return 0;
  while (is_ident_char(*r->p)) {
    if (n + 1 < cap) buf[n] = *r->p;
    n++;
    r->p++;
  }
  buf[n < cap ? n : cap - 1] = '\0';
  return n;
}

/* Appends code point cp as UTF-8. */
static void utf8(sbuf *b, uint32_t cp) {
  char t[4];
  if (cp < 0x80) {
    sb_addc(b, (char)cp);
  } else if (cp < 0x800) {
    t[0] = (char)(0xC0 | (cp >> 6));
    t[1] = (char)(0x80 | (cp & 0x3F));
    sb_addn(b, t, 2);
  } else if (cp < 0x10000) {
    t[0] = (char)(0xE0 | (cp >> 12));
    t[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    t[2] = (char)(0x80 | (cp & 0x3F));
    sb_addn(b, t, 3);
  } else {
    t[0] = (char)(0xF0 | (cp >> 18));
    t[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    t[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    t[3] = (char)(0x80 | (cp & 0x3F));
    sb_addn(b, t, 4);
  }
}

static int hexval(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

static bool hex4(rx *r, uint32_t *out) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) {
    int h = hexval(r->p[i]);
    if (h < 0) return fail(r, "bad \\u escape (4 hex digits expected)");
    v = v * 16 + (uint32_t)h;
  }
  r->p += 4;
  *out = v;
  return true;
}

/* Decodes a quoted string at r->p (either quote) into raw UTF-8 bytes in s. */
static bool string_raw(rx *r, sbuf *s) {
  char q = *r->p++;
  for (;;) {
    char ch = *r->p;
    if (!ch || ch == '\n') return fail(r, "unterminated string");
    r->p++;
    if (ch == q) return true;
    if (ch != '\\') {
      sb_addc(s, ch);
      continue;
    }
    char e = *r->p++;
    switch (e) {
    case 'n': sb_addc(s, '\n'); break;
    case 't': sb_addc(s, '\t'); break;
    case 'r': sb_addc(s, '\r'); break;
    case 'b': sb_addc(s, '\b'); break;
    case 'f': sb_addc(s, '\f'); break;
    case 'v': sb_addc(s, '\v'); break;
    case '0': sb_addc(s, '\0'); break;
    case 'x': {
      int a = hexval(r->p[0]), b = a >= 0 ? hexval(r->p[1]) : -1;
      if (b < 0) return fail(r, "bad \\x escape (2 hex digits expected)");
      utf8(s, (uint32_t)(a * 16 + b));
      r->p += 2;
      break;
    }
    case 'u': {
      uint32_t cp = 0;
      if (!hex4(r, &cp)) return false;
      if (cp >= 0xD800 && cp < 0xDC00 && r->p[0] == '\\' && r->p[1] == 'u') {
        uint32_t lo = 0;
        r->p += 2;
        if (!hex4(r, &lo)) return false;
        if (lo >= 0xDC00 && lo < 0xE000) cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
      }
      utf8(s, cp);
      break;
    }
    case '\0': r->p--; return fail(r, "unterminated string");
    default: sb_addc(s, e); break; /* \' \" \\ \/ and JS's identity escapes */
    }
  }
}

static bool string_value(rx *r) {
  sbuf s;
  sb_init(&s);
  bool ok = string_raw(r, &s);
  if (ok) sb_json_str(r->out, sb_str(&s), s.len);
  sb_free(&s);
  return ok;
}

/* Scans a numeric literal at r->p; canonical output into r->out. `neg` when a '-' preceded. */
static bool number(rx *r) {
  const char *start = r->p;
  bool neg = false;
  if (*r->p == '+' || *r->p == '-') {
    neg = *r->p == '-';
    r->p++;
  }
  if (strncmp(r->p, "Infinity", 8) == 0 && !is_ident_char(r->p[8])) {
    r->p += 8;
    sb_printf(r->out, "{\"$numberDouble\":\"%sInfinity\"}", neg ? "-" : "");
    return true;
  }
  if (r->p[0] == '0' && (r->p[1] == 'x' || r->p[1] == 'X')) {
    r->p += 2;
    uint64_t v = 0;
    int nd = 0;
    for (; hexval(*r->p) >= 0; r->p++, nd++) {
      if (v >> 60) return fail(r, "hex number too large");
      v = v * 16 + (uint64_t)hexval(*r->p);
    }
    if (!nd) return fail(r, "hex digits expected");
    if (v <= 2147483647u) sb_printf(r->out, "{\"$numberInt\":\"%s%llu\"}", neg ? "-" : "", (unsigned long long)v);
    else sb_printf(r->out, "{\"$numberLong\":\"%s%llu\"}", neg ? "-" : "", (unsigned long long)v);
    return true;
  }
  bool is_float = false;
  int digits = 0;
  while (isdigit((unsigned char)*r->p)) r->p++, digits++;
  if (*r->p == '.') {
    is_float = true;
    r->p++;
    while (isdigit((unsigned char)*r->p)) r->p++, digits++;
  }
  if (!digits) {
    r->p = start;
    return fail(r, "a value was expected");
  }
  if (*r->p == 'e' || *r->p == 'E') {
    is_float = true;
    r->p++;
    if (*r->p == '+' || *r->p == '-') r->p++;
    if (!isdigit((unsigned char)*r->p)) return fail(r, "exponent digits expected");
    while (isdigit((unsigned char)*r->p)) r->p++;
  }
  if (is_ident_char(*r->p)) return fail(r, "unexpected character after a number");
  char text[64];
  size_t n = (size_t)(r->p - start);
  if (n >= sizeof text) return fail(r, "number too long");
  memcpy(text, start, n);
  text[n] = '\0';
  if (!is_float) {
    errno = 0;
    char *end;
    long long v = strtoll(text, &end, 10);
    if (errno == 0 && *end == '\0') {
      if (v == 0 && neg) {
        sb_adds(r->out, "{\"$numberDouble\":\"-0.0\"}"); /* JavaScript's -0 */
      } else if (v >= INT32_MIN && v <= INT32_MAX) {
        sb_printf(r->out, "{\"$numberInt\":\"%lld\"}", v);
      } else {
        sb_printf(r->out, "{\"$numberLong\":\"%lld\"}", v);
      }
      return true;
    }
  }
  double d = strtod(text, NULL);
  if (isinf(d)) sb_printf(r->out, "{\"$numberDouble\":\"%sInfinity\"}", d < 0 ? "-" : "");
  else {
    char dt[40];
    for (int prec = 15; prec <= 17; prec++) { /* the shortest text that reads back the same */
      snprintf(dt, sizeof dt, "%.*g", prec, d);
      if (strtod(dt, NULL) == d) break;
    }
    if (!strpbrk(dt, ".eEn")) {
      size_t l = strlen(dt);
      snprintf(dt + l, sizeof dt - l, ".0");
    }
    sb_printf(r->out, "{\"$numberDouble\":\"%s\"}", dt);
  }
  return true;
}

static bool regex(rx *r) {
  const char *start = ++r->p;
  bool in_class = false;
  for (;; r->p++) {
    char ch = *r->p;
    if (!ch || ch == '\n') return fail(r, "unterminated regular expression");
    if (ch == '\\') {
      if (r->p[1]) r->p++;
      continue;
    }
    if (ch == '[') in_class = true;
    else if (ch == ']') in_class = false;
    else if (ch == '/' && !in_class) break;
  }
  size_t plen = (size_t)(r->p - start);
  r->p++;
  char flags[8] = "";
  const char *order = "imsux";
  bool seen[5] = {false, false, false, false, false};
  while (isalpha((unsigned char)*r->p)) {
    const char *f = strchr(order, *r->p);
    if (!f) return fail(r, "regular expression flag '%c' is not supported (use i, m, s, x or u)", *r->p);
    seen[f - order] = true;
    r->p++;
  }
  size_t k = 0;
  for (int i = 0; i < 5; i++)
    if (seen[i] && order[i] != 'u') flags[k++] = order[i]; /* u: PCRE2 is UTF-aware already */
  flags[k] = '\0';
  /* The pattern is raw text: JSON-escape it as is (a "\/" stays an escaped slash). */
  sbuf pat;
  sb_init(&pat);
  for (size_t i = 0; i < plen; i++) {
    if (start[i] == '\\' && i + 1 < plen && start[i + 1] == '/') continue;
    sb_addc(&pat, start[i]);
  }
  sb_adds(r->out, "{\"$regularExpression\":{\"pattern\":");
  sb_json_str(r->out, sb_str(&pat), pat.len);
  sb_printf(r->out, ",\"options\":\"%s\"}}", flags);
  sb_free(&pat);
  return true;
}

/* ---- Constructor arguments ---- */

/* One argument of a constructor: a string (raw text in s, *is_str) or a number (text in s). */
static bool ctor_arg(rx *r, sbuf *s, bool *is_str) {
  rx_skip(&r->p);
  if (*r->p == '"' || *r->p == '\'') {
    *is_str = true;
    return string_raw(r, s);
  }
  *is_str = false;
  const char *st = r->p;
  if (*r->p == '-' || *r->p == '+') r->p++;
  while (isalnum((unsigned char)*r->p) || *r->p == '.' ||
         ((*r->p == '-' || *r->p == '+') && (r->p[-1] == 'e' || r->p[-1] == 'E')))
    r->p++;
  if (r->p == st) return fail(r, "a string or number argument was expected");
  sb_addn(s, st, (size_t)(r->p - st));
  return true;
}

/* Parses "(" [arg {, arg}] ")" into up to `max` args; returns the count or -1. */
static int ctor_args(rx *r, const char *name, sbuf *args, bool *is_str, int max) {
  rx_skip(&r->p);
  if (*r->p != '(') return 0; /* MinKey without parentheses, etc. */
  r->p++;
  rx_skip(&r->p);
  int n = 0;
  if (*r->p == ')') {
    r->p++;
    return 0;
  }
  for (;;) {
    if (n == max) {
      fail(r, "too many arguments to %s()", name);
      return -1;
    }
    if (!ctor_arg(r, &args[n], &is_str[n])) return -1;
    n++;
    rx_skip(&r->p);
    if (*r->p == ',') {
      r->p++;
      continue;
    }
    if (*r->p == ')') {
      r->p++;
      return n;
    }
    fail(r, "',' or ')' expected in %s()", name);
    return -1;
  }
}

static int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static int digits_at(const char *s, int n, int64_t *out) {
  int64_t v = 0;
  for (int i = 0; i < n; i++) {
    if (!isdigit((unsigned char)s[i])) return 0;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return 1;
}

/* Parses ISO-8601: YYYY-MM-DD[(T| )HH:MM[:SS[.fff]]][Z|+HH:MM|+HHMM]; no zone means UTC. */
static bool parse_iso(const char *s, int64_t *ms) {
  int64_t y, mo, d, h = 0, mi = 0, sec = 0, frac = 0, tz = 0;
  if (!digits_at(s, 4, &y) || s[4] != '-' || !digits_at(s + 5, 2, &mo) || s[7] != '-' ||
      !digits_at(s + 8, 2, &d))
    return false;
  s += 10;
  if (*s == 'T' || *s == ' ') {
    if (!digits_at(s + 1, 2, &h) || s[3] != ':' || !digits_at(s + 4, 2, &mi)) return false;
    s += 6;
    if (*s == ':') {
      if (!digits_at(s + 1, 2, &sec)) return false;
      s += 3;
      if (*s == '.') {
        s++;
        int nd = 0;
        while (isdigit((unsigned char)*s)) {
          if (nd < 3) frac = frac * 10 + (*s - '0');
          nd++;
          s++;
        }
        if (!nd) return false;
        for (int i = nd; i < 3; i++) frac *= 10;
      }
    }
  }
  if (*s == 'Z') {
    s++;
  } else if (*s == '+' || *s == '-') {
    int64_t th, tm = 0;
    int sign = *s == '-' ? -1 : 1;
    if (!digits_at(s + 1, 2, &th)) return false;
    s += 3;
    if (*s == ':') s++;
    if (isdigit((unsigned char)*s)) {
      if (!digits_at(s, 2, &tm)) return false;
      s += 2;
    }
    tz = sign * (th * 60 + tm);
  }
  if (*s) return false;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return false;
  int64_t days = days_from_civil(y, mo, d);
  *ms = ((days * 24 + h) * 60 + mi) * 60000 + sec * 1000 + frac - tz * 60000;
  return true;
}

static void random_bytes(uint8_t *b, size_t n) {
  FILE *f = fopen("/dev/urandom", "rb");
  size_t got = f ? fread(b, 1, n, f) : 0;
  if (f) fclose(f);
  for (size_t i = got; i < n; i++) b[i] = (uint8_t)rand();
}

static bool ctor(rx *r, const char *name) {
  sbuf a[3];
  bool is_str[3] = {false, false, false};
  for (int i = 0; i < 3; i++) sb_init(&a[i]);
  bool ok = false;
  const char *at = r->p;
  int n = ctor_args(r, name, a, is_str, 3);
  if (n < 0) goto done;
#define ARGS(lo, hi)                                                                          \
  if (n < (lo) || n > (hi)) {                                                                 \
    r->p = at;                                                                                \
    fail(r, "%s() takes %s", name, (lo) == (hi) ? #lo " argument(s)" : #lo " to " #hi " arguments"); \
    goto done;                                                                                \
  }
  if (!strcmp(name, "ObjectId")) {
    ARGS(0, 1);
    if (n == 0) {
      bson_oid_t oid;
      char hex[25];
      bson_oid_init(&oid, NULL);
      bson_oid_to_string(&oid, hex);
      sb_printf(r->out, "{\"$oid\":\"%s\"}", hex);
    } else {
      const char *h = sb_str(&a[0]);
      if (a[0].len != 24 || strspn(h, "0123456789abcdefABCDEF") != 24) {
        r->p = at;
        fail(r, "ObjectId() needs 24 hex digits");
        goto done;
      }
      sb_adds(r->out, "{\"$oid\":\"");
      for (size_t i = 0; i < 24; i++) sb_addc(r->out, (char)tolower((unsigned char)h[i]));
      sb_adds(r->out, "\"}");
    }
  } else if (!strcmp(name, "ISODate") || !strcmp(name, "Date")) {
    ARGS(0, 1);
    int64_t ms;
    if (n == 0) {
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    } else if (is_str[0]) {
      if (!parse_iso(sb_str(&a[0]), &ms)) {
        r->p = at;
        fail(r, "%s(\"%s\"): a date like 2024-01-31 or 2024-01-31T12:00:00.000Z was expected", name,
             sb_str(&a[0]));
        goto done;
      }
    } else if (!parse_i64(sb_str(&a[0]), &ms)) {
      r->p = at;
      fail(r, "%s(): milliseconds since the epoch (an integer) or an ISO date string expected", name);
      goto done;
    }
    sb_printf(r->out, "{\"$date\":{\"$numberLong\":\"%lld\"}}", (long long)ms);
  } else if (!strcmp(name, "UUID")) {
    ARGS(0, 1);
    uint8_t u[16];
    if (n == 0) {
      random_bytes(u, 16);
      u[6] = (uint8_t)((u[6] & 0x0F) | 0x40);
      u[8] = (uint8_t)((u[8] & 0x3F) | 0x80);
    } else {
      const char *h = sb_str(&a[0]);
      size_t k = 0;
      for (; *h && k < 32; h++) {
        if (*h == '-') continue;
        int v = hexval(*h);
        if (v < 0) break;
        if (k % 2 == 0) u[k / 2] = (uint8_t)(v << 4);
        else u[k / 2] = (uint8_t)(u[k / 2] | v);
        k++;
      }
      if (k != 32 || *h) {
        r->p = at;
        fail(r, "UUID() needs 32 hex digits (dashes allowed)");
        goto done;
      }
    }
    sb_adds(r->out, "{\"$binary\":{\"base64\":\"");
    sb_base64(r->out, u, 16);
    sb_adds(r->out, "\",\"subType\":\"04\"}}");
  } else if (!strcmp(name, "NumberLong") || !strcmp(name, "Long") || !strcmp(name, "NumberInt") ||
             !strcmp(name, "Int32")) {
    ARGS(1, 1);
    int64_t v;
    bool is_long = name[0] == 'L' || !strcmp(name, "NumberLong");
    if (!parse_i64(sb_str(&a[0]), &v) || (!is_long && (v < INT32_MIN || v > INT32_MAX))) {
      r->p = at;
      fail(r, "%s() needs an integer%s", name, is_long ? "" : " that fits 32 bits");
      goto done;
    }
    sb_printf(r->out, "{\"%s\":\"%lld\"}", is_long ? "$numberLong" : "$numberInt", (long long)v);
  } else if (!strcmp(name, "NumberDecimal") || !strcmp(name, "Decimal128")) {
    ARGS(1, 1);
    bson_decimal128_t dec;
    if (!bson_decimal128_from_string(sb_str(&a[0]), &dec)) {
      r->p = at;
      fail(r, "%s(): not a decimal number", name);
      goto done;
    }
    sb_adds(r->out, "{\"$numberDecimal\":");
    sb_json_str(r->out, sb_str(&a[0]), a[0].len);
    sb_addc(r->out, '}');
  } else if (!strcmp(name, "Double") || !strcmp(name, "Number")) {
    ARGS(1, 1);
    char *end;
    double d = strtod(sb_str(&a[0]), &end);
    if (*end || !a[0].len) {
      r->p = at;
      fail(r, "%s(): not a number", name);
      goto done;
    }
    char dt[40];
    snprintf(dt, sizeof dt, "%.17g", d);
    if (!strpbrk(dt, ".eEni")) {
      size_t l = strlen(dt);
      snprintf(dt + l, sizeof dt - l, ".0");
    }
    sb_printf(r->out, "{\"$numberDouble\":\"%s\"}", dt);
  } else if (!strcmp(name, "Timestamp")) {
    ARGS(2, 2);
    uint64_t t, i;
    if (!parse_u64(sb_str(&a[0]), &t) || !parse_u64(sb_str(&a[1]), &i) || t > UINT32_MAX ||
        i > UINT32_MAX) {
      r->p = at;
      fail(r, "Timestamp(t, i) needs two unsigned 32-bit integers");
      goto done;
    }
    sb_printf(r->out, "{\"$timestamp\":{\"t\":%llu,\"i\":%llu}}", (unsigned long long)t,
              (unsigned long long)i);
  } else if (!strcmp(name, "BinData")) {
    ARGS(2, 2);
    uint64_t st;
    if (!parse_u64(sb_str(&a[0]), &st) || st > 255 || !is_str[1]) {
      r->p = at;
      fail(r, "BinData(subtype, \"base64\") expected");
      goto done;
    }
    sb_adds(r->out, "{\"$binary\":{\"base64\":");
    sb_json_str(r->out, sb_str(&a[1]), a[1].len);
    sb_printf(r->out, ",\"subType\":\"%02x\"}}", (unsigned)st);
  } else if (!strcmp(name, "MinKey") || !strcmp(name, "MaxKey")) {
    ARGS(0, 0);
    sb_printf(r->out, "{\"$%s\":1}", name[1] == 'i' ? "minKey" : "maxKey");
  } else {
    r->p = at;
    fail(r, "unknown name '%s'", name);
    goto done;
  }
#undef ARGS
  ok = true;
done:
  for (int i = 0; i < 3; i++) sb_free(&a[i]);
  return ok;
}

static bool word(rx *r) {
  const char *at = r->p;
  char name[40];
  ident(r, name, sizeof name);
  if (!strcmp(name, "true") || !strcmp(name, "false") || !strcmp(name, "null")) {
    sb_adds(r->out, name);
    return true;
  }
  if (!strcmp(name, "undefined")) {
    sb_adds(r->out, "null");
    return true;
  }
  if (!strcmp(name, "NaN")) {
    sb_adds(r->out, "{\"$numberDouble\":\"NaN\"}");
    return true;
  }
  if (!strcmp(name, "Infinity")) {
    sb_adds(r->out, "{\"$numberDouble\":\"Infinity\"}");
    return true;
  }
  if (!strcmp(name, "new")) {
    rx_skip(&r->p);
    if (!ident(r, name, sizeof name)) return fail(r, "a constructor name was expected after 'new'");
  }
  rx_skip(&r->p);
  if (*r->p != '(' && strcmp(name, "MinKey") && strcmp(name, "MaxKey")) {
    r->p = at;
    return fail(r, "unexpected word '%s' (strings need quotes)", name);
  }
  return ctor(r, name);
}

static bool key(rx *r) {
  rx_skip(&r->p);
  if (*r->p == '"' || *r->p == '\'') return string_value(r);
  if (is_ident_start(*r->p) || isdigit((unsigned char)*r->p)) {
    const char *st = r->p;
    while (is_ident_char(*r->p) || *r->p == '.') r->p++; /* 'a.b' paths unquoted are common */
    sb_json_str(r->out, st, (size_t)(r->p - st));
    return true;
  }
  return fail(r, "a field name was expected");
}

static bool object(rx *r) {
  r->p++;
  sb_addc(r->out, '{');
  bool first = true;
  for (;;) {
    rx_skip(&r->p);
    if (*r->p == '}') {
      r->p++;
      sb_addc(r->out, '}');
      return true;
    }
    if (!first) {
      if (*r->p != ',') return fail(r, "',' or '}' expected in an object");
      r->p++;
      rx_skip(&r->p);
      if (*r->p == '}') continue; /* trailing comma */
      sb_addc(r->out, ',');
    }
    first = false;
    if (!key(r)) return false;
    rx_skip(&r->p);
    if (*r->p != ':') return fail(r, "':' expected after a field name");
    r->p++;
    sb_addc(r->out, ':');
    if (!value(r)) return false;
  }
}

static bool array(rx *r) {
  r->p++;
  sb_addc(r->out, '[');
  bool first = true;
  for (;;) {
    rx_skip(&r->p);
    if (*r->p == ']') {
      r->p++;
      sb_addc(r->out, ']');
      return true;
    }
    if (!first) {
      if (*r->p != ',') return fail(r, "',' or ']' expected in an array");
      r->p++;
      rx_skip(&r->p);
      if (*r->p == ']') continue;
      sb_addc(r->out, ',');
    }
    first = false;
    if (!value(r)) return false;
  }
}

static bool value(rx *r) {
  rx_skip(&r->p);
  if (r->depth >= RX_MAX_DEPTH) return fail(r, "nesting deeper than %d", RX_MAX_DEPTH);
  r->depth++;
  bool ok;
  char ch = *r->p;
  if (ch == '{') ok = object(r);
  else if (ch == '[') ok = array(r);
  else if (ch == '"' || ch == '\'') ok = string_value(r);
  else if (ch == '/') ok = regex(r);
  else if (ch == '-' || ch == '+' || ch == '.' || isdigit((unsigned char)ch)) ok = number(r);
  else if (is_ident_start(ch)) ok = word(r);
  else if (!ch) ok = fail(r, "a value was expected");
  else ok = fail(r, "unexpected character '%c'", ch);
  r->depth--;
  return ok;
}

bool rx_value(const char **p, const char *base, sbuf *out, char *err, size_t errlen) {
  rx r = {*p, base, out, err, errlen, 0};
  if (!value(&r)) {
    *p = r.p;
    return false;
  }
  *p = r.p;
  return true;
}

bool rx_convert(const char *text, sbuf *out, char *err, size_t errlen) {
  const char *p = text;
  if (!rx_value(&p, text, out, err, errlen)) return false;
  rx_skip(&p);
  if (*p) {
    snprintf(err, errlen, "syntax error at offset %ld: unexpected text after the value",
             (long)(p - text));
    return false;
  }
  return true;
}

bool rx_to_bson(const char *text, bson_t *out, char *err, size_t errlen) {
  sbuf ej;
  sb_init(&ej);
  const char *p = text;
  rx_skip(&p);
  if (*p != '{') {
    snprintf(err, errlen, "a document {...} was expected");
    sb_free(&ej);
    return false;
  }
  bool ok = rx_convert(text, &ej, err, errlen);
  if (ok) {
    if (nx_from_json(sb_str(&ej), out) != NX_OK) {
      snprintf(err, errlen, "%s", nx_errmsg(NULL));
      ok = false;
    }
  }
  sb_free(&ej);
  return ok;
}

int rx_balance(const char *s) {
  int depth = 0;
  while (*s) {
    char ch = *s;
    if (ch == '"' || ch == '\'' || ch == '`') {
      s++;
      while (*s && *s != ch) {
        if (*s == '\n' && ch != '`') break; /* unterminated: let the parser report it */
        if (*s == '\\' && s[1]) s++;
        s++;
      }
      if (*s == ch) s++;
      continue;
    }
    if (ch == '/' && s[1] == '/') {
      while (*s && *s != '\n') s++;
      continue;
    }
    if (ch == '/' && s[1] == '*') {
      const char *e = strstr(s + 2, "*/");
      if (!e) return depth + 1;
      s = e + 2;
      continue;
    }
    if (ch == '/') { /* a regex literal on one line: skip it so '(' inside it does not count */
      const char *q = s + 1;
      bool cls = false;
      while (*q && *q != '\n' && (*q != '/' || cls)) {
        if (*q == '\\' && q[1]) q++;
        else if (*q == '[') cls = true;
        else if (*q == ']') cls = false;
        q++;
      }
      if (*q == '/') {
        s = q + 1;
        continue;
      }
    }
    if (ch == '{' || ch == '[' || ch == '(') depth++;
    else if (ch == '}' || ch == ']' || ch == ')') {
      depth--;
      if (depth < 0) return -1;
    }
    s++;
  }
  return depth;
}
