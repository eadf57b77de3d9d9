/*
 * output.c: how documents look on the way out.
 *
 * Two renderings of one BSON walk:
 *  - JSON: relaxed Extended JSON (numbers plain, dates as ISO strings when in 1970..9999, other
 *    special types as {"$type": ...}), compact for NDJSON or indented with --pretty.
 *  - Shell: mongosh's look ({ name: 'alice', born: ISODate('1990-05-01T00:00:00.000Z'),
 *    n: Long('5') }), one line when it fits in SHELL_WIDTH columns, else one field per line.
 * and three result-set styles built on them: table (aligned columns), CSV and a JSON array.
 *
 * Invariants: 1. colour codes are emitted only when out_opts.color is set; 2. the rendering of
 * a document is a pure function of its bytes and the options (goldens depend on it).
 */
#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

#define SHELL_WIDTH 72
#define TABLE_CELL_MAX 40

/* ---- Colours ---- */
const char *col_key(const out_opts *o) { return o->color ? "\033[0m" : ""; }
const char *col_str(const out_opts *o) { return o->color ? "\033[32m" : ""; }
const char *col_num(const out_opts *o) { return o->color ? "\033[33m" : ""; }
const char *col_lit(const out_opts *o) { return o->color ? "\033[35m" : ""; }
const char *col_err(const out_opts *o) { return o->color ? "\033[31m" : ""; }
const char *col_dim(const out_opts *o) { return o->color ? "\033[36m" : ""; }
const char *col_off(const out_opts *o) { return o->color ? "\033[0m" : ""; }

static void indent_to(sbuf *b, int n) {
  for (int i = 0; i < n; i++) sb_addc(b, ' ');
}

/* Shortest text that reads back as the same double. */
static void fmt_double(char *t, size_t cap, double d, bool force_point) {
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(t, cap, "%.*g", prec, d);
    if (strtod(t, NULL) == d) break;
  }
  if (force_point && !strpbrk(t, ".eEni")) {
    size_t l = strlen(t);
    snprintf(t + l, cap - l, ".0");
  }
}

static void fmt_iso(char *t, size_t cap, int64_t ms) {
  int64_t secs = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
  int64_t rem = ms - secs * 1000;
  time_t tt = (time_t)secs;
  struct tm tm;
  gmtime_r(&tt, &tm);
  snprintf(t, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)rem);
}

/* ---- JSON (relaxed Extended JSON) ---- */

static void json_doc(sbuf *b, const bson_t *doc, bool is_array, const out_opts *o, int indent);

static void json_value(sbuf *b, const bson_iter_t *it, const out_opts *o, int indent) {
  char t[64];
  switch (bson_iter_type(it)) {
  case BSON_TYPE_DOUBLE: {
    double d = bson_iter_double(it);
    if (isnan(d) || isinf(d)) {
      sb_printf(b, "{\"$numberDouble\":\"%s\"}", isnan(d) ? "NaN" : d > 0 ? "Infinity" : "-Infinity");
    } else {
      fmt_double(t, sizeof t, d, true);
      sb_printf(b, "%s%s%s", col_num(o), t, col_off(o));
    }
    break;
  }
  case BSON_TYPE_UTF8: {
    uint32_t len;
    const char *s = bson_iter_utf8(it, &len);
    sb_adds(b, col_str(o));
    sb_json_str(b, s, len);
    sb_adds(b, col_off(o));
    break;
  }
  case BSON_TYPE_DOCUMENT:
  case BSON_TYPE_ARRAY: {
    uint32_t len;
    const uint8_t *data;
    bson_t sub;
    if (BSON_ITER_HOLDS_DOCUMENT(it)) bson_iter_document(it, &len, &data);
    else bson_iter_array(it, &len, &data);
    if (bson_init_static(&sub, data, len)) json_doc(b, &sub, BSON_ITER_HOLDS_ARRAY(it), o, indent);
    break;
  }
  case BSON_TYPE_BINARY: {
    bson_subtype_t st;
    uint32_t len;
    const uint8_t *data;
    bson_iter_binary(it, &st, &len, &data);
    sb_adds(b, "{\"$binary\":{\"base64\":\"");
    sb_base64(b, data, len);
    sb_printf(b, "\",\"subType\":\"%02x\"}}", (unsigned)st);
    break;
  }
  case BSON_TYPE_UNDEFINED: sb_adds(b, "{\"$undefined\":true}"); break;
  case BSON_TYPE_OID: {
    char hex[25];
    bson_oid_to_string(bson_iter_oid(it), hex);
    sb_printf(b, "{\"$oid\":\"%s\"}", hex);
    break;
  }
  case BSON_TYPE_BOOL: sb_printf(b, "%s%s%s", col_lit(o), bson_iter_bool(it) ? "true" : "false", col_off(o)); break;
  case BSON_TYPE_DATE_TIME: {
    int64_t ms = bson_iter_date_time(it);
    if (ms >= 0 && ms <= INT64_C(253402300799999)) {
      fmt_iso(t, sizeof t, ms);
      sb_printf(b, "{\"$date\":\"%s\"}", t);
    } else {
      sb_printf(b, "{\"$date\":{\"$numberLong\":\"%" PRId64 "\"}}", ms);
    }
    break;
  }
  case BSON_TYPE_NULL: sb_printf(b, "%snull%s", col_lit(o), col_off(o)); break;
  case BSON_TYPE_REGEX: {
    const char *opts;
    const char *re = bson_iter_regex(it, &opts);
    sb_adds(b, "{\"$regularExpression\":{\"pattern\":");
    sb_json_str(b, re, strlen(re));
    sb_adds(b, ",\"options\":");
    sb_json_str(b, opts, strlen(opts));
    sb_adds(b, "}}");
    break;
  }
  case BSON_TYPE_CODE: {
    uint32_t len;
    const char *code = bson_iter_code(it, &len);
    sb_adds(b, "{\"$code\":");
    sb_json_str(b, code, len);
    sb_addc(b, '}');
    break;
  }
  case BSON_TYPE_SYMBOL: {
    uint32_t len;
    const char *sym = bson_iter_symbol(it, &len);
    sb_adds(b, "{\"$symbol\":");
    sb_json_str(b, sym, len);
    sb_addc(b, '}');
    break;
  }
  case BSON_TYPE_INT32: sb_printf(b, "%s%d%s", col_num(o), bson_iter_int32(it), col_off(o)); break;
  case BSON_TYPE_INT64: sb_printf(b, "%s%" PRId64 "%s", col_num(o), bson_iter_int64(it), col_off(o)); break;
  case BSON_TYPE_TIMESTAMP: {
    uint32_t ts, inc;
    bson_iter_timestamp(it, &ts, &inc);
    sb_printf(b, "{\"$timestamp\":{\"t\":%u,\"i\":%u}}", ts, inc);
    break;
  }
  case BSON_TYPE_DECIMAL128: {
    bson_decimal128_t dec;
    char s[BSON_DECIMAL128_STRING];
    bson_iter_decimal128(it, &dec);
    bson_decimal128_to_string(&dec, s);
    sb_printf(b, "{\"$numberDecimal\":\"%s\"}", s);
    break;
  }
  case BSON_TYPE_MAXKEY: sb_adds(b, "{\"$maxKey\":1}"); break;
  case BSON_TYPE_MINKEY: sb_adds(b, "{\"$minKey\":1}"); break;
  case BSON_TYPE_DBPOINTER:
  case BSON_TYPE_CODEWSCOPE:
  case BSON_TYPE_EOD:
  default: sb_adds(b, "null"); break;
  }
}

static void json_doc(sbuf *b, const bson_t *doc, bool is_array, const out_opts *o, int indent) {
  bson_iter_t it;
  sb_addc(b, is_array ? '[' : '{');
  bool first = true;
  if (bson_iter_init(&it, doc)) {
    while (bson_iter_next(&it)) {
      if (!first) sb_addc(b, ',');
      first = false;
      if (o->pretty) {
        sb_addc(b, '\n');
        indent_to(b, indent + 2);
      }
      if (!is_array) {
        const char *k = bson_iter_key(&it);
        sb_json_str(b, k, strlen(k));
        sb_adds(b, o->pretty ? ": " : ":");
      }
      json_value(b, &it, o, indent + 2);
    }
  }
  if (o->pretty && !first) {
    sb_addc(b, '\n');
    indent_to(b, indent);
  }
  sb_addc(b, is_array ? ']' : '}');
}

void out_json(sbuf *b, const bson_t *doc, const out_opts *o, int indent) {
  json_doc(b, doc, false, o, indent);
}

/* ---- Shell (mongosh style) ---- */

static void shell_doc(sbuf *b, const bson_t *doc, bool is_array, const out_opts *o, int indent,
                      bool multi);

static void shell_str(sbuf *b, const char *s, size_t n) {
  sb_addc(b, '\'');
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == '\'') sb_adds(b, "\\'");
    else if (ch == '\\') sb_adds(b, "\\\\");
    else if (ch == '\n') sb_adds(b, "\\n");
    else if (ch == '\t') sb_adds(b, "\\t");
    else if (ch == '\r') sb_adds(b, "\\r");
    else if (ch < 0x20) sb_printf(b, "\\x%02x", ch);
    else sb_addc(b, (char)ch);
  }
  sb_addc(b, '\'');
}

static bool plain_key(const char *k) {
  if (!*k || isdigit((unsigned char)*k)) return false;
  for (; *k; k++)
    if (!isalnum((unsigned char)*k) && *k != '_' && *k != '$') return false;
  return true;
}

static void shell_scalar(sbuf *b, const bson_iter_t *it, const out_opts *o) {
  char t[64];
  switch (bson_iter_type(it)) {
  case BSON_TYPE_DOUBLE: {
    double d = bson_iter_double(it);
    if (isnan(d)) sb_printf(b, "%sNaN%s", col_num(o), col_off(o));
    else if (isinf(d)) sb_printf(b, "%s%sInfinity%s", col_num(o), d < 0 ? "-" : "", col_off(o));
    else {
      fmt_double(t, sizeof t, d, false);
      sb_printf(b, "%s%s%s", col_num(o), t, col_off(o));
    }
    break;
  }
  case BSON_TYPE_UTF8: {
    uint32_t len;
    const char *s = bson_iter_utf8(it, &len);
    sb_adds(b, col_str(o));
    shell_str(b, s, len);
    sb_adds(b, col_off(o));
    break;
  }
  case BSON_TYPE_BINARY: {
    bson_subtype_t st;
    uint32_t len;
    const uint8_t *data;
    bson_iter_binary(it, &st, &len, &data);
    if ((st == BSON_SUBTYPE_UUID || st == BSON_SUBTYPE_UUID_DEPRECATED) && len == 16) {
      sb_printf(b, "%sUUID('", col_dim(o));
      for (uint32_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) sb_addc(b, '-');
        sb_printf(b, "%02x", data[i]);
      }
      sb_printf(b, "')%s", col_off(o));
    } else {
      sb_printf(b, "%sBinary.createFromBase64('", col_dim(o));
      sb_base64(b, data, len);
      sb_printf(b, "', %u)%s", (unsigned)st, col_off(o));
    }
    break;
  }
  case BSON_TYPE_UNDEFINED: sb_printf(b, "%sundefined%s", col_lit(o), col_off(o)); break;
  case BSON_TYPE_OID: {
    char hex[25];
    bson_oid_to_string(bson_iter_oid(it), hex);
    sb_printf(b, "%sObjectId('%s')%s", col_dim(o), hex, col_off(o));
    break;
  }
  case BSON_TYPE_BOOL: sb_printf(b, "%s%s%s", col_lit(o), bson_iter_bool(it) ? "true" : "false", col_off(o)); break;
  case BSON_TYPE_DATE_TIME: {
    int64_t ms = bson_iter_date_time(it);
    if (ms >= INT64_C(-62135596800000) && ms <= INT64_C(253402300799999)) {
      fmt_iso(t, sizeof t, ms);
      sb_printf(b, "%sISODate('%s')%s", col_dim(o), t, col_off(o));
    } else {
      sb_printf(b, "%snew Date(%" PRId64 ")%s", col_dim(o), ms, col_off(o));
    }
    break;
  }
  case BSON_TYPE_NULL: sb_printf(b, "%snull%s", col_lit(o), col_off(o)); break;
  case BSON_TYPE_REGEX: {
    const char *opts;
    const char *re = bson_iter_regex(it, &opts);
    sb_printf(b, "%s/", col_str(o));
    for (const char *p = re; *p; p++) {
      if (*p == '/' && (p == re || p[-1] != '\\')) sb_addc(b, '\\');
      sb_addc(b, *p);
    }
    sb_printf(b, "/%s%s", opts, col_off(o));
    break;
  }
  case BSON_TYPE_CODE: {
    uint32_t len;
    const char *code = bson_iter_code(it, &len);
    sb_adds(b, "Code(");
    shell_str(b, code, len);
    sb_addc(b, ')');
    break;
  }
  case BSON_TYPE_SYMBOL: {
    uint32_t len;
    const char *sym = bson_iter_symbol(it, &len);
    shell_str(b, sym, len);
    break;
  }
  case BSON_TYPE_INT32: sb_printf(b, "%s%d%s", col_num(o), bson_iter_int32(it), col_off(o)); break;
  case BSON_TYPE_INT64: sb_printf(b, "%sLong('%" PRId64 "')%s", col_num(o), bson_iter_int64(it), col_off(o)); break;
  case BSON_TYPE_TIMESTAMP: {
    uint32_t ts, inc;
    bson_iter_timestamp(it, &ts, &inc);
    sb_printf(b, "%sTimestamp({ t: %u, i: %u })%s", col_dim(o), ts, inc, col_off(o));
    break;
  }
  case BSON_TYPE_DECIMAL128: {
    bson_decimal128_t dec;
    char s[BSON_DECIMAL128_STRING];
    bson_iter_decimal128(it, &dec);
    bson_decimal128_to_string(&dec, s);
    sb_printf(b, "%sDecimal128('%s')%s", col_num(o), s, col_off(o));
    break;
  }
  case BSON_TYPE_MAXKEY: sb_adds(b, "MaxKey()"); break;
  case BSON_TYPE_MINKEY: sb_adds(b, "MinKey()"); break;
  default: sb_adds(b, "null"); break;
  }
}

static bool sub_doc(const bson_iter_t *it, bson_t *sub) {
  uint32_t len;
  const uint8_t *data;
  if (BSON_ITER_HOLDS_DOCUMENT(it)) bson_iter_document(it, &len, &data);
  else bson_iter_array(it, &len, &data);
  return bson_init_static(sub, data, len);
}

static void shell_value(sbuf *b, const bson_iter_t *it, const out_opts *o, int indent, bool multi) {
  if (BSON_ITER_HOLDS_DOCUMENT(it) || BSON_ITER_HOLDS_ARRAY(it)) {
    bson_t sub;
    if (sub_doc(it, &sub)) shell_doc(b, &sub, BSON_ITER_HOLDS_ARRAY(it), o, indent, multi);
  } else {
    shell_scalar(b, it, o);
  }
}

/* Renders one level; `multi` allows breaking lines (each child decides again for itself). */
static void shell_doc(sbuf *b, const bson_t *doc, bool is_array, const out_opts *o, int indent,
                      bool multi) {
  bson_iter_t it;
  if (bson_count_keys(doc) == 0) {
    sb_adds(b, is_array ? "[]" : "{}");
    return;
  }
  if (multi) {
    /* Fits on the rest of the line? Measure the compact form without colour. */
    sbuf m;
    sb_init(&m);
    out_opts plain = {false, false};
    shell_doc(&m, doc, is_array, &plain, 0, false);
    bool fits = (size_t)indent + m.len <= SHELL_WIDTH;
    sb_free(&m);
    if (fits) multi = false;
  }
  sb_adds(b, is_array ? "[" : "{");
  bool first = true;
  if (bson_iter_init(&it, doc)) {
    while (bson_iter_next(&it)) {
      if (!first) sb_addc(b, ',');
      first = false;
      if (multi) {
        sb_addc(b, '\n');
        indent_to(b, indent + 2);
      } else {
        sb_addc(b, ' ');
      }
      if (!is_array) {
        const char *k = bson_iter_key(&it);
        if (plain_key(k)) sb_adds(b, k);
        else shell_str(b, k, strlen(k));
        sb_adds(b, ": ");
      }
      shell_value(b, &it, o, indent + 2, multi);
    }
  }
  if (multi) {
    sb_addc(b, '\n');
    indent_to(b, indent);
  } else {
    sb_addc(b, ' ');
  }
  sb_adds(b, is_array ? "]" : "}");
}

void out_shell(sbuf *b, const bson_t *doc, const out_opts *o, int indent) {
  shell_doc(b, doc, false, o, indent, o->pretty);
}

void out_shell_value(sbuf *b, const bson_iter_t *it, const out_opts *o, int indent) {
  shell_value(b, it, o, indent, o->pretty);
}

/* ---- Result sets ---- */

struct out_rows {
  out_style style;
  out_opts o;
  FILE *f;
  char **fields;    /* CSV/table columns given by the user, or NULL */
  size_t nfields;
  bson_t **docs;    /* buffered rows (table, csv without fields) */
  size_t ndocs, cap;
  uint64_t written; /* rows written so far (json: for the commas) */
};

static void split_fields(out_rows *r, const char *fields) {
  if (!fields || !*fields) return;
  const char *p = fields;
  while (*p) {
    const char *e = strchr(p, ',');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    if (n) {
      r->fields = realloc(r->fields, (r->nfields + 1) * sizeof *r->fields);
      if (!r->fields) exit(CLI_EXIT_ERROR);
      r->fields[r->nfields] = strndup(p, n);
      r->nfields++;
    }
    p += n;
    if (*p == ',') p++;
  }
}

out_rows *rows_new(out_style style, const out_opts *o, FILE *f, const char *fields) {
  out_rows *r = calloc(1, sizeof *r);
  if (!r) exit(CLI_EXIT_ERROR);
  r->style = style;
  r->o = *o;
  r->f = f;
  split_fields(r, fields);
  return r;
}

static void add_field(out_rows *r, const char *k) {
  for (size_t i = 0; i < r->nfields; i++)
    if (!strcmp(r->fields[i], k)) return;
  r->fields = realloc(r->fields, (r->nfields + 1) * sizeof *r->fields);
  if (!r->fields) exit(CLI_EXIT_ERROR);
  r->fields[r->nfields++] = strdup(k);
}

void rows_add(out_rows *r, const bson_t *doc) {
  sbuf b;
  sb_init(&b);
  switch (r->style) {
  case OUT_NDJSON: {
    out_opts compact = r->o;
    compact.pretty = false;
    out_json(&b, doc, &compact, 0);
    fprintf(r->f, "%s\n", sb_str(&b));
    break;
  }
  case OUT_JSON:
    fputs(r->written ? ",\n" : "[\n", r->f);
    if (r->o.pretty) sb_adds(&b, "  ");
    out_json(&b, doc, &r->o, r->o.pretty ? 2 : 0);
    fputs(sb_str(&b), r->f);
    break;
  case OUT_SHELL:
    out_shell(&b, doc, &r->o, 0);
    fprintf(r->f, "%s\n", sb_str(&b));
    break;
  case OUT_CSV:
  case OUT_TABLE:
    if (r->ndocs == r->cap) {
      r->cap = r->cap ? r->cap * 2 : 64;
      r->docs = realloc(r->docs, r->cap * sizeof *r->docs);
      if (!r->docs) exit(CLI_EXIT_ERROR);
    }
    r->docs[r->ndocs++] = bsonx_copy(doc);
    break;
  }
  r->written++;
  sb_free(&b);
}

/* The cell text of field `path` (dot path) in doc: strings raw, others compact. */
static void cell(sbuf *b, const bson_t *doc, const char *path, bool json_style) {
  bson_iter_t it, d;
  if (!bson_iter_init(&it, doc)) return;
  if (!bson_iter_find_descendant(&it, path, &d)) return;
  if (BSON_ITER_HOLDS_UTF8(&d)) {
    uint32_t len;
    const char *s = bson_iter_utf8(&d, &len);
    sb_addn(b, s, len);
    return;
  }
  out_opts plain = {false, false};
  if (json_style) {
    json_value(b, &d, &plain, 0);
    return;
  }
  /* Tables show bare values: 500, not Long('500'); dates and ids as their text. */
  char t[64];
  switch (bson_iter_type(&d)) {
  case BSON_TYPE_INT64: sb_printf(b, "%" PRId64, bson_iter_int64(&d)); return;
  case BSON_TYPE_DATE_TIME: fmt_iso(t, sizeof t, bson_iter_date_time(&d)); sb_adds(b, t); return;
  case BSON_TYPE_OID: bson_oid_to_string(bson_iter_oid(&d), t); sb_adds(b, t); return;
  case BSON_TYPE_DECIMAL128: {
    bson_decimal128_t dec;
    char s[BSON_DECIMAL128_STRING];
    bson_iter_decimal128(&d, &dec);
    bson_decimal128_to_string(&dec, s);
    sb_adds(b, s);
    return;
  }
  default: shell_value(b, &d, &plain, 0, false); return;
  }
}

static void csv_field(FILE *f, const char *s) {
  if (!strpbrk(s, ",\"\n\r") && s[0] != ' ' && (!*s || s[strlen(s) - 1] != ' ')) {
    fputs(s, f);
    return;
  }
  fputc('"', f);
  for (; *s; s++) {
    if (*s == '"') fputc('"', f);
    fputc(*s, f);
  }
  fputc('"', f);
}

/* Display width of UTF-8 text (code points; good enough for tables). */
static size_t width(const char *s) {
  size_t w = 0;
  for (; *s; s++)
    if (((unsigned char)*s & 0xC0) != 0x80) w++;
  return w;
}

/* Cuts s to at most max display columns, ending with "..." when cut. */
static void clip(sbuf *b, size_t max) {
  if (width(sb_str(b)) <= max) return;
  size_t w = 0, i = 0;
  while (i < b->len && w < max - 3) {
    i++;
    while (i < b->len && ((unsigned char)b->p[i] & 0xC0) == 0x80) i++;
    w++;
  }
  b->len = i;
  b->p[i] = '\0';
  sb_adds(b, "...");
}

static void rows_columns(out_rows *r) {
  if (r->nfields) return;
  for (size_t i = 0; i < r->ndocs; i++) {
    bson_iter_t it;
    if (!bson_iter_init(&it, r->docs[i])) continue;
    while (bson_iter_next(&it)) add_field(r, bson_iter_key(&it));
  }
}

static void rows_table(out_rows *r) {
  rows_columns(r);
  size_t nc = r->nfields;
  if (!nc) return;
  size_t *w = calloc(nc, sizeof *w);
  sbuf *cells = calloc(nc * (r->ndocs ? r->ndocs : 1), sizeof *cells);
  if (!w || !cells) exit(CLI_EXIT_ERROR);
  for (size_t c = 0; c < nc; c++) w[c] = width(r->fields[c]);
  for (size_t i = 0; i < r->ndocs; i++)
    for (size_t c = 0; c < nc; c++) {
      sbuf *s = &cells[i * nc + c];
      sb_init(s);
      cell(s, r->docs[i], r->fields[c], false);
      for (size_t k = 0; k < s->len; k++)
        if (s->p[k] == '\n' || s->p[k] == '\t') s->p[k] = ' ';
      clip(s, TABLE_CELL_MAX);
      if (width(sb_str(s)) > w[c]) w[c] = width(sb_str(s));
    }
  for (size_t c = 0; c < nc; c++) {
    fprintf(r->f, "%s%s%s%s", c ? "  " : "", r->o.color ? "\033[1m" : "", r->fields[c], col_off(&r->o));
    if (c + 1 < nc)
      for (size_t k = width(r->fields[c]); k < w[c]; k++) fputc(' ', r->f);
  }
  fputc('\n', r->f);
  for (size_t c = 0; c < nc; c++) {
    fputs(c ? "  " : "", r->f);
    for (size_t k = 0; k < w[c]; k++) fputc('-', r->f);
  }
  fputc('\n', r->f);
  for (size_t i = 0; i < r->ndocs; i++) {
    for (size_t c = 0; c < nc; c++) {
      sbuf *s = &cells[i * nc + c];
      fprintf(r->f, "%s%s", c ? "  " : "", sb_str(s));
      if (c + 1 < nc)
        for (size_t k = width(sb_str(s)); k < w[c]; k++) fputc(' ', r->f);
      sb_free(s);
    }
    fputc('\n', r->f);
  }
  fprintf(r->f, "(%zu row%s)\n", r->ndocs, r->ndocs == 1 ? "" : "s");
  free(cells);
  free(w);
}

static void rows_csv(out_rows *r) {
  rows_columns(r);
  for (size_t c = 0; c < r->nfields; c++) {
    if (c) fputc(',', r->f);
    csv_field(r->f, r->fields[c]);
  }
  if (r->nfields) fputc('\n', r->f);
  for (size_t i = 0; i < r->ndocs; i++) {
    for (size_t c = 0; c < r->nfields; c++) {
      sbuf s;
      sb_init(&s);
      cell(&s, r->docs[i], r->fields[c], true);
      if (c) fputc(',', r->f);
      csv_field(r->f, sb_str(&s));
      sb_free(&s);
    }
    fputc('\n', r->f);
  }
}

void rows_finish(out_rows *r) {
  if (!r) return;
  if (r->style == OUT_TABLE) rows_table(r);
  else if (r->style == OUT_CSV) rows_csv(r);
  else if (r->style == OUT_JSON) fputs(r->written ? "\n]\n" : "[]\n", r->f);
  for (size_t i = 0; i < r->ndocs; i++) bsonx_free(r->docs[i]);
  for (size_t i = 0; i < r->nfields; i++) free(r->fields[i]);
  free(r->docs);
  free(r->fields);
  free(r);
  fflush(stdout);
}
