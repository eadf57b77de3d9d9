/* buf.c: a growable byte buffer with a hard cap (curl's dynbuf). */
#include <stdio.h>
#include <string.h>

#include "base.h"

#define NX_BUF_DEFAULT_MAX ((size_t)1 << 30)

void nx_buf_init(nx_buf *b, size_t max) {
  b->data = NULL;
  b->len = b->cap = 0;
  b->max = max ? max : NX_BUF_DEFAULT_MAX;
}

int nx_buf_reserve(nx_buf *b, size_t extra) {
  if (extra > b->max - b->len) return nx_err(NX_LIMIT, "buffer would exceed its cap of %zu bytes", b->max);
  size_t need = b->len + extra;
  if (need <= b->cap) return NX_OK;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  uint8_t *p = nx_realloc(b->data, cap);
  if (!p) return nx_err(NX_NOMEM, "out of memory growing a buffer to %zu bytes", cap);
  b->data = p;
  b->cap = cap;
  return NX_OK;
}

int nx_buf_append(nx_buf *b, const void *p, size_t n) {
  int rc = nx_buf_reserve(b, n + 1);
  if (rc) return rc;
  if (n) memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = 0; /* always NUL-terminated for text use */
  return NX_OK;
}

int nx_buf_printf(nx_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) return nx_err(NX_INVALID, "bad format string");
  int rc = nx_buf_reserve(b, (size_t)n + 1);
  if (rc) return rc;
  va_start(ap, fmt);
  vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return NX_OK;
}

void nx_buf_free(nx_buf *b) {
  nx_free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}
