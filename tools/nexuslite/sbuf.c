/*
 * sbuf.c: growable NUL-terminated strings for the tool, and whole-string number parsing.
 *
 * The tool is a short-lived program: running out of memory prints a message and exits with
 * CLI_EXIT_ERROR rather than threading a status through every printer.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

void sb_init(sbuf *b) {
  b->p = NULL;
  b->len = 0;
  b->cap = 0;
}

void sb_free(sbuf *b) {
  free(b->p);
  sb_init(b);
}

void sb_clear(sbuf *b) {
  b->len = 0;
  if (b->p) b->p[0] = '\0';
}

/* Makes room for `extra` more bytes plus the NUL. */
static void sb_grow(sbuf *b, size_t extra) {
  if (b->len + extra + 1 <= b->cap) return;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < b->len + extra + 1) cap *= 2;
  char *p = realloc(b->p, cap);
  if (!p) {
    fputs("nexuslite: out of memory\n", stderr);
    exit(CLI_EXIT_ERROR);
  }
  b->p = p;
  b->cap = cap;
}

void sb_addn(sbuf *b, const char *s, size_t n) {
  sb_grow(b, n);
  if (n) memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

void sb_adds(sbuf *b, const char *s) { sb_addn(b, s, strlen(s)); }

void sb_addc(sbuf *b, char c) { sb_addn(b, &c, 1); }

void sb_printf(sbuf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char small[256];
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n < sizeof small) {
    sb_addn(b, small, (size_t)n);
    return;
  }
  sb_grow(b, (size_t)n);
  va_start(ap, fmt);
  vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

void sb_json_str(sbuf *b, const char *s, size_t n) {
  sb_addc(b, '"');
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    switch (ch) {
    case '"': sb_adds(b, "\\\""); break;
    case '\\': sb_adds(b, "\\\\"); break;
    case '\n': sb_adds(b, "\\n"); break;
    case '\r': sb_adds(b, "\\r"); break;
    case '\t': sb_adds(b, "\\t"); break;
    case '\b': sb_adds(b, "\\b"); break;
    case '\f': sb_adds(b, "\\f"); break;
    default:
      if (ch < 0x20) sb_printf(b, "\\u%04x", ch);
      else sb_addc(b, (char)ch);
    }
  }
  sb_addc(b, '"');
}

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void sb_base64(sbuf *b, const uint8_t *d, size_t n) {
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)d[i] << 16;
    if (i + 1 < n) v |= (uint32_t)d[i + 1] << 8;
    if (i + 2 < n) v |= d[i + 2];
    sb_addc(b, b64chars[(v >> 18) & 63]);
    sb_addc(b, b64chars[(v >> 12) & 63]);
    sb_addc(b, i + 1 < n ? b64chars[(v >> 6) & 63] : '=');
    sb_addc(b, i + 2 < n ? b64chars[v & 63] : '=');
  }
}

const char *sb_str(const sbuf *b) { return b->p ? b->p : ""; }

bool parse_i64(const char *s, int64_t *out) {
  if (!s || !*s) return false;
  char *end = NULL;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || !end || *end) return false;
  *out = (int64_t)v;
  return true;
}

bool parse_u64(const char *s, uint64_t *out) {
  if (!s || !*s || *s == '-' || *s == '+') return false;
  char *end = NULL;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || !end || *end) return false;
  *out = (uint64_t)v;
  return true;
}

bson_t *bsonx_array(size_t n) {
  bson_t *b = aligned_alloc(128, (n ? n : 1) * sizeof(bson_t));
  if (!b) {
    fputs("nexuslite: out of memory\n", stderr);
    exit(CLI_EXIT_ERROR);
  }
  return b;
}

bson_t *bsonx_copy(const bson_t *src) {
  bson_t *b = bsonx_array(1);
  bson_copy_to(src, b);
  return b;
}

void bsonx_free(bson_t *b) {
  if (!b) return;
  bson_destroy(b);
  free(b);
}
