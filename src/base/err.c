/*
 * err.c: the per-thread last-error message. A failing function records what failed and where
 * (file, page, offset, collection, field) with nx_err() and returns the status code; callers may
 * add context in front with nx_err_prefix(). nx_errmsg() in the API reads it back.
 */
#include <stdio.h>
#include <string.h>

#include "base.h"

#define NX_ERRMSG_MAX 1024
static _Thread_local char g_msg[NX_ERRMSG_MAX];

static void set_msg(const char *fmt, va_list ap) NX_PRINTF(1, 0);
static void set_msg(const char *fmt, va_list ap) { vsnprintf(g_msg, sizeof g_msg, fmt, ap); }

int nx_err(int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  set_msg(fmt, ap);
  va_end(ap);
  return rc;
}

int nx_err_prefix(int rc, const char *fmt, ...) {
  char old[NX_ERRMSG_MAX];
  char pre[NX_ERRMSG_MAX];
  va_list ap;
  memcpy(old, g_msg, sizeof old);
  va_start(ap, fmt);
  vsnprintf(pre, sizeof pre, fmt, ap);
  va_end(ap);
  snprintf(g_msg, sizeof g_msg, "%s%s", pre, old[0] ? old : nx_strerror(rc));
  return rc;
}

int nx_err_corrupt(const char *file, int line, const char *fmt, ...) {
  char tmp[NX_ERRMSG_MAX];
  va_list ap;
  const char *base = strrchr(file, '/');
  va_start(ap, fmt);
  vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  snprintf(g_msg, sizeof g_msg, "%s (corruption detected at %s:%d)", tmp, base ? base + 1 : file, line);
  return NX_CORRUPT;
}

const char *nx_err_msg(void) { return g_msg; }
void nx_err_clear(void) { g_msg[0] = '\0'; }
