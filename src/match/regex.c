/*
 * regex.c: $regex through PCRE2 (8-bit, UTF mode), bounded.
 *
 * Invariants:
 *   1. Patterns longer than FILTER_MAX_REGEX bytes or containing NUL are refused at parse time.
 *   2. Every match runs with a match limit, a depth limit and a heap limit
 *      (FILTER_REGEX_*); hitting one is NX_LIMIT naming the path, never a silent "no match".
 *   3. PCRE2's memory goes through nx_malloc/nx_free via a general context.
 *   4. MongoDB's option letters: i (caseless), m (multiline), s (dotall), x (extended),
 *      u (accepted, UTF is always on); anything else is NX_INVALID.
 */
#include <string.h>

#include "match_int.h"

static void *re_malloc(PCRE2_SIZE n, void *ud) {
  (void)ud;
  return nx_malloc(n);
}

static void re_free(void *p, void *ud) {
  (void)ud;
  nx_free(p);
}

int nx_regex_compile(const char *pattern, size_t plen, const char *options, const char *who,
                     const char *where, nx_regex *out) {
  memset(out, 0, sizeof *out);
  if (plen > FILTER_MAX_REGEX)
    return nx_err(NX_LIMIT, "%s: regex of %zu bytes at '%s' exceeds the limit of %d bytes", who, plen, where,
                  FILTER_MAX_REGEX);
  if (memchr(pattern, '\0', plen))
    return nx_err(NX_INVALID, "%s: regular expression at '%s' contains a NUL byte", who, where);
  uint32_t flags = PCRE2_UTF;
  for (const char *o = options ? options : ""; *o; o++) {
    switch (*o) {
    case 'i':
      flags |= PCRE2_CASELESS;
      break;
    case 'm':
      flags |= PCRE2_MULTILINE;
      break;
    case 's':
      flags |= PCRE2_DOTALL;
      break;
    case 'x':
      flags |= PCRE2_EXTENDED;
      break;
    case 'u':
      break;
    default:
      return nx_err(NX_INVALID, "%s: invalid regex option '%c' at '%s'", who, *o, where);
    }
  }
  pcre2_general_context *gc = pcre2_general_context_create(re_malloc, re_free, NULL);
  if (!gc) return nx_err(NX_NOMEM, "%s: out of memory compiling regex at '%s'", who, where);
  pcre2_compile_context *cc = pcre2_compile_context_create(gc);
  if (!cc) {
    pcre2_general_context_free(gc);
    return nx_err(NX_NOMEM, "%s: out of memory compiling regex at '%s'", who, where);
  }
  int ecode = 0;
  PCRE2_SIZE eoff = 0;
  out->code = pcre2_compile((PCRE2_SPTR)pattern, plen, flags, &ecode, &eoff, cc);
  pcre2_compile_context_free(cc);
  if (!out->code) {
    pcre2_general_context_free(gc);
    PCRE2_UCHAR msg[256];
    if (pcre2_get_error_message(ecode, msg, sizeof msg) < 0) memcpy(msg, "unknown error", 14);
    if (ecode == PCRE2_ERROR_NOMEMORY || ecode == PCRE2_ERROR_HEAP_FAILED)
      return nx_err(NX_NOMEM, "%s: out of memory compiling regex at '%s'", who, where);
    return nx_err(NX_INVALID, "%s: invalid regular expression at '%s': %s at offset %zu", who, where,
                  (const char *)msg, (size_t)eoff);
  }
  /* The match context is read-only once set up, so threads may share it. */
  out->mctx = pcre2_match_context_create(gc);
  if (!out->mctx) {
    pcre2_code_free(out->code);
    pcre2_general_context_free(gc);
    out->code = NULL;
    return nx_err(NX_NOMEM, "%s: out of memory compiling regex at '%s'", who, where);
  }
  pcre2_set_match_limit(out->mctx, FILTER_REGEX_MATCH_LIMIT);
  pcre2_set_depth_limit(out->mctx, FILTER_REGEX_DEPTH_LIMIT);
  pcre2_set_heap_limit(out->mctx, FILTER_REGEX_HEAP_KB);
  out->gctx = gc;
  out->pattern = pattern;
  out->options = options ? options : "";
  return NX_OK;
}

void nx_regex_free(nx_regex *r) {
  if (!r) return;
  pcre2_code_free(r->code);
  pcre2_match_context_free(r->mctx);
  pcre2_general_context_free(r->gctx);
  r->code = NULL;
  r->mctx = NULL;
  r->gctx = NULL;
}

int nx_regex_match(const nx_regex *r, const char *s, size_t len, const char *where) {
  pcre2_match_data *md = pcre2_match_data_create(1, r->gctx);
  if (!md) return -nx_err(NX_NOMEM, "filter: out of memory matching regex at '%s'", where);
  int result;
  int rc = pcre2_match(r->code, (PCRE2_SPTR)s, len, 0, 0, md, r->mctx);
  if (rc >= 0) {
    result = 1;
  } else if (rc == PCRE2_ERROR_NOMATCH) {
    result = 0;
  } else if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT || rc == PCRE2_ERROR_HEAPLIMIT) {
    result = -nx_err(NX_LIMIT, "filter: regex /%.100s/ at '%s' exceeded its %s limit", r->pattern, where,
                     rc == PCRE2_ERROR_MATCHLIMIT   ? "match"
                     : rc == PCRE2_ERROR_DEPTHLIMIT ? "depth"
                                                    : "heap");
  } else if (rc == PCRE2_ERROR_NOMEMORY) {
    result = -nx_err(NX_NOMEM, "filter: out of memory matching regex at '%s'", where);
  } else {
    /* invalid UTF-8 in the subject and the like: no match */
    result = 0;
  }
  pcre2_match_data_free(md);
  return result;
}
