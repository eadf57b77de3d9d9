/*
 * doc_json.c: JSON in and out through libbson's Extended JSON (relaxed and canonical).
 *
 * Invariants:
 *   1. Input must be exactly one JSON object; libbson's parse error (which names the position)
 *      is passed on in the NX_PARSE message.
 *   2. Output strings are allocated by libbson, hence through our allocator (nx_alloc_init routes
 *      libbson's vtable), and are released with bson_free.
 */
#include <string.h>

#include "doc.h"

int doc_from_json(const char *json, ssize_t len, bson_t *out) {
  if (!json) return nx_err(NX_INVALID, "json: NULL text");
  size_t n = len < 0 ? strlen(json) : (size_t)len;
  size_t i = 0;
  while (i < n && (json[i] == ' ' || json[i] == '\t' || json[i] == '\n' || json[i] == '\r')) i++;
  if (i == n) return nx_err(NX_PARSE, "json: empty input");
  if (json[i] != '{')
    return nx_err(NX_INVALID, "json: a document must be a JSON object, found '%c' at offset %zu",
                  json[i], i);
  bson_error_t err;
  if (!bson_init_from_json(out, json, (ssize_t)n, &err))
    return nx_err(NX_PARSE, "json: %s", err.message);
  return NX_OK;
}

char *doc_to_json(const bson_t *doc, size_t *len) {
  return bson_as_relaxed_extended_json(doc, len);
}

char *doc_to_json_canonical(const bson_t *doc, size_t *len) {
  return bson_as_canonical_extended_json(doc, len);
}

int doc_value_to_json(const bson_value_t *v, nx_buf *buf) {
  bson_t tmp;
  bson_init(&tmp);
  if (!bson_append_value(&tmp, "v", 1, v)) {
    bson_destroy(&tmp);
    return nx_err(NX_LIMIT, "json: value too large to render");
  }
  size_t n = 0;
  char *s = bson_as_relaxed_extended_json(&tmp, &n);
  bson_destroy(&tmp);
  if (!s) return nx_err(NX_INVALID, "json: value cannot be rendered");
  /* s is `{ "v" : VALUE }` */
  const char *p = strchr(s, ':');
  int rc = NX_INVALID;
  if (p && n >= 2) {
    p++;
    while (*p == ' ') p++;
    const char *e = s + n - 1; /* the closing brace */
    while (e > p && (e[-1] == ' ')) e--;
    rc = nx_buf_append(buf, p, (size_t)(e - p));
  }
  bson_free(s);
  return rc;
}
