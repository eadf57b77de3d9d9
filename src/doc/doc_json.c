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

/* libbson reads {"$type": ...}, {"$regex": ...} and {"$options": ...} as legacy Extended JSON
 * (binary data and regular expressions) and then fails or folds them into a BSON regex, yet all
 * three are query operators. So object keys spelled exactly "$type", "$regex" or "$options" are
 * renamed to a placeholder ("\x01nx" + the key) in the text before parsing and renamed back in the
 * BSON afterwards. Only JSON object keys are touched (a small scanner skips string values and
 * escapes). A "$type" key whose object also holds a "$binary" key is left alone: that object is
 * legacy binary {"$binary": "..", "$type": "00"}. Consequence: legacy regex Extended JSON
 * {"$regex": "x", "$options": "i"} stays a document; use {"$regularExpression": {...}}. */
#define PH_PREFIX "\x01nx"
#define PH_PREFIX_JSON "\\u0001nx"

static const char *const k_renamed[] = {"$type", "$regex", "$options"};

typedef struct jscan {
  const char *json; /* the text */
  size_t n;         /* its length */
  bool *binary;     /* per object (numbered by its '{' in text order): holds a "$binary" key */
  size_t nobj;      /* objects in the text */
  size_t *stack;    /* ids of the enclosing objects */
} jscan;

/* One walk over the text. mode 0: mark objects holding "$binary"; mode 1: count renames;
 * mode 2: write the renamed text to out. Returns the count (mode 1) or the length (mode 2). */
static size_t jwalk(jscan *s, int mode, char *out) {
  const char *json = s->json;
  size_t n = s->n, i = 0, w = 0, hits = 0, depth = 0, next_obj = 0;
  while (i < n) {
    char ch = json[i];
    if (ch != '"') {
      if (ch == '{' && next_obj < s->nobj) s->stack[depth++] = next_obj++;
      else if (ch == '}' && depth > 0) depth--;
      if (mode == 2) out[w++] = ch;
      i++;
      continue;
    }
    size_t start = i++;
    while (i < n && json[i] != '"')
      i += json[i] == '\\' ? 2 : 1;
    size_t end = i < n ? i + 1 : n; /* one past the closing quote */
    size_t j = end;
    while (j < n && (json[j] == ' ' || json[j] == '\t' || json[j] == '\n' || json[j] == '\r'))
      j++;
    bool is_key = j < n && json[j] == ':' && depth > 0;
    int which = -1;
    if (is_key) {
      size_t obj = s->stack[depth - 1];
      if (mode == 0 && end - start == 9 && memcmp(json + start, "\"$binary\"", 9) == 0)
        s->binary[obj] = true;
      for (int q = 0; q < 3 && mode != 0; q++) {
        size_t kl = strlen(k_renamed[q]);
        if (end - start == kl + 2 && memcmp(json + start + 1, k_renamed[q], kl) == 0) which = q;
      }
      if (which == 0 && s->binary[obj]) which = -1;
    }
    if (which >= 0) {
      hits++;
      if (mode == 2) {
        size_t kl = strlen(k_renamed[which]);
        out[w++] = '"';
        memcpy(out + w, PH_PREFIX_JSON, sizeof PH_PREFIX_JSON - 1);
        w += sizeof PH_PREFIX_JSON - 1;
        memcpy(out + w, k_renamed[which], kl);
        w += kl;
        out[w++] = '"';
      }
    } else if (mode == 2) {
      memcpy(out + w, json + start, end - start);
      w += end - start;
    }
    i = end;
  }
  return mode == 1 ? hits : w;
}

/* Returns a copy of json with the keys replaced, or NULL if there is none to replace (or no
 * memory; then *nomem is set). */
static char *rename_type_keys(const char *json, size_t n, size_t *out_len, bool *nomem) {
  *nomem = false;
  jscan s = {json, n, NULL, 0, NULL};
  /* quick exit: no candidate key text at all */
  if (!memmem(json, n, "\"$type\"", 7) && !memmem(json, n, "\"$regex\"", 8) &&
      !memmem(json, n, "\"$options\"", 10))
    return NULL;
  for (size_t i = 0; i < n; i++)
    s.nobj += json[i] == '{';
  s.binary = nx_calloc(s.nobj ? s.nobj : 1, sizeof *s.binary);
  s.stack = nx_calloc(s.nobj ? s.nobj : 1, sizeof *s.stack);
  char *out = NULL;
  if (!s.binary || !s.stack) {
    *nomem = true;
  } else {
    jwalk(&s, 0, NULL);
    size_t hits = jwalk(&s, 1, NULL);
    if (hits) {
      out = nx_malloc(n + hits * 16 + 1);
      if (!out) {
        *nomem = true;
      } else {
        *out_len = jwalk(&s, 2, out);
        out[*out_len] = '\0';
      }
    }
  }
  nx_free(s.binary);
  nx_free(s.stack);
  return out;
}

/* Copies src into dst renaming placeholder keys back, at every depth. */
static bool restore_type_keys(const bson_t *src, bson_t *dst, int depth) {
  bson_iter_t it;
  if (depth > 200 || !bson_iter_init(&it, src)) return false;
  while (bson_iter_next(&it)) {
    const char *k = bson_iter_key(&it);
    if (strncmp(k, PH_PREFIX, sizeof PH_PREFIX - 1) == 0) {
      for (int q = 0; q < 3; q++)
        if (strcmp(k + sizeof PH_PREFIX - 1, k_renamed[q]) == 0) k = k_renamed[q];
    }
    bson_type_t t = bson_iter_type(&it);
    if (t == BSON_TYPE_DOCUMENT || t == BSON_TYPE_ARRAY) {
      uint32_t len;
      const uint8_t *data;
      bson_t sub, child;
      if (t == BSON_TYPE_DOCUMENT)
        bson_iter_document(&it, &len, &data);
      else
        bson_iter_array(&it, &len, &data);
      if (!bson_init_static(&sub, data, len)) return false;
      bool ok = t == BSON_TYPE_DOCUMENT ? bson_append_document_begin(dst, k, -1, &child)
                                        : bson_append_array_begin(dst, k, -1, &child);
      ok = ok && restore_type_keys(&sub, &child, depth + 1);
      ok = (t == BSON_TYPE_DOCUMENT ? bson_append_document_end(dst, &child)
                                    : bson_append_array_end(dst, &child)) &&
           ok;
      if (!ok) return false;
    } else {
      bson_value_t v = *bson_iter_value(&it);
      if (!bson_append_value(dst, k, -1, &v)) return false;
    }
  }
  return true;
}

int doc_from_json(const char *json, ssize_t len, bson_t *out) {
  if (!json) return nx_err(NX_INVALID, "json: NULL text");
  size_t n = len < 0 ? strlen(json) : (size_t)len;
  size_t i = 0;
  while (i < n && (json[i] == ' ' || json[i] == '\t' || json[i] == '\n' || json[i] == '\r'))
    i++;
  if (i == n) return nx_err(NX_PARSE, "json: empty input");
  if (json[i] != '{')
    return nx_err(NX_INVALID, "json: a document must be a JSON object, found '%c' at offset %zu", json[i], i);
  bool nomem = false;
  size_t rn = 0;
  char *renamed = rename_type_keys(json, n, &rn, &nomem);
  if (nomem) return nx_err(NX_NOMEM, "json: out of memory");
  bson_error_t err;
  bson_t tmp;
  bool ok =
      bson_init_from_json(renamed ? &tmp : out, renamed ? renamed : json, (ssize_t)(renamed ? rn : n), &err);
  nx_free(renamed);
  if (!ok) return nx_err(NX_PARSE, "json: %s", err.message);
  if (renamed) {
    bson_init(out);
    bool good = restore_type_keys(&tmp, out, 0);
    bson_destroy(&tmp);
    if (!good) {
      bson_destroy(out);
      return nx_err(NX_LIMIT, "json: document too large or too deep");
    }
  }
  return NX_OK;
}

char *doc_to_json(const bson_t *doc, size_t *len) { return bson_as_relaxed_extended_json(doc, len); }

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
    while (*p == ' ')
      p++;
    const char *e = s + n - 1; /* the closing brace */
    while (e > p && (e[-1] == ' '))
      e--;
    rc = nx_buf_append(buf, p, (size_t)(e - p));
  }
  bson_free(s);
  return rc;
}
