/*
 * io_csv_read.c: the CSV reader, on libcsv (DESIGN.md section 10 lists its traps, handled here).
 *
 * libcsv unquotes and splits fields; a small "shadow scanner" walks the same bytes first, mirroring
 * libcsv's state machine (strict mode, no space trimming), because libcsv does not tell:
 *   - whether a field was quoted (type inference keeps a quoted "00123" or "true" as text);
 *   - where a row starts (line number, byte offset) and where a field starts (for UTF-8 errors);
 *   - where a strict-mode error is, in a way that lets the reader skip the bad row and go on.
 * The scanner hands libcsv exactly one row at a time (the bytes up to and including the row's
 * terminator), so libcsv's callbacks always belong to the row the scanner just described.
 *
 * Choices (docs/import-export.md):
 *   - csv_set_space_func says "no byte is a space": spaces are data (RFC 4180), `a, b` keeps " b".
 *   - CSV_STRICT | CSV_STRICT_FINI: a quote inside an unquoted field, or anything but a delimiter
 *     or a line end after a closing quote, is an error for that row; an unclosed quote at the end
 *     of the file is fatal ("unbalanced quote"), naming the line where the field opened.
 *   - Empty lines are skipped (libcsv's default). CR LF, LF and CR end rows.
 *   - Header: the first row names the columns; a dotted name ("address.zip") builds nested
 *     documents. Empty names become fieldN; duplicate or conflicting names ("a" and "a.b") are
 *     fatal. A row longer than the header names its extra columns fieldN.
 *   - Inference (unless no_infer), for unquoted fields only: empty -> null; null/NULL -> null;
 *     true/false (any case of the first letter, or all caps) -> bool; integers without leading
 *     zeros -> int32, else int64 (beyond int64: text); decimals/exponents -> double; ISO-8601
 *     dates (YYYY-MM-DD with an optional time and zone) -> date; anything else -> string.
 */
#include <csv.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io_int.h"

enum { SC_ROW_NOT_BEGUN, SC_FIELD_NOT_BEGUN, SC_FIELD_BEGUN, SC_MIGHT_END };

typedef struct csv_node {
  char *name;             /* this component, owned */
  size_t name_len;
  long col;               /* column index for a leaf, -1 for an inner node */
  size_t first_child;     /* index into nodes of the first child (inner), 0 = none */
  size_t next;            /* index of the next sibling, 0 = none */
} csv_node;

struct io_csv {
  struct csv_parser p;    /* libcsv */
  int st;                 /* shadow scanner state, SC_* */
  bool quoted;            /* scanner: the current field opened with a quote */
  uint64_t quote_line;    /* where the current quoted field opened */
  uint64_t quote_off;
  /* the row being scanned */
  uint64_t row_line;      /* line of the row's first byte */
  uint64_t row_off;       /* offset of the row's first byte */
  size_t row_bytes;       /* bytes of the row so far */
  uint8_t *qflag;         /* per field of the row: 1 when quoted */
  uint64_t *fstart;       /* per field of the row: offset of its first byte */
  size_t nq, qcap;
  nx_buf raw;             /* the row's first IO_MAX_RAW_KEPT bytes */
  /* the row as libcsv delivered it */
  nx_buf fbuf;            /* field bytes, concatenated */
  size_t *foff, *flen;    /* per field: offset into fbuf, length */
  size_t nf, fcap;
  bool row_done;          /* cb2 fired */
  bool cb_fail;           /* out of memory in a callback */
  uint64_t bad_utf8;      /* 1 + offset of invalid UTF-8 in this row, 0 if none */
  size_t bad_field;
  /* columns */
  bool have_header;
  char **cols;            /* column names, owned */
  size_t ncols;
  csv_node *nodes;        /* header tree; nodes[0] is the root */
  size_t nnodes, nodes_cap;
  bool finished;
};

/* ---- libcsv callbacks ---- */
static void cb_field(void *s, size_t len, void *data) {
  io_reader *r = data;
  io_csv *c = r->csv;
  if (c->cb_fail) return;
  if (c->nf == c->fcap) {
    size_t ncap = c->fcap ? c->fcap * 2 : 16;
    size_t *a = nx_realloc(c->foff, ncap * sizeof *a);
    if (!a) {
      c->cb_fail = true;
      return;
    }
    c->foff = a;
    size_t *b = nx_realloc(c->flen, ncap * sizeof *b);
    if (!b) {
      c->cb_fail = true;
      return;
    }
    c->flen = b;
    c->fcap = ncap;
  }
  if (!c->bad_utf8 && len) {
    size_t bad = io_utf8_check(s, len, true);
    if (bad < len) {
      uint64_t base = c->nf < c->nq ? c->fstart[c->nf] + c->qflag[c->nf] : c->row_off;
      c->bad_utf8 = 1 + base + bad;
      c->bad_field = c->nf;
    }
  }
  c->foff[c->nf] = c->fbuf.len;
  c->flen[c->nf] = len;
  if (nx_buf_append(&c->fbuf, len ? s : "", len)) c->cb_fail = true;
  c->nf++;
}

static void cb_row(int ch, void *data) {
  (void)ch;
  io_reader *r = data;
  r->csv->row_done = true;
}

static int never_space(unsigned char ch) {
  (void)ch;
  return 0;
}

static void *csv_realloc_fn(void *p, size_t n) { return nx_realloc(p, n); }

static int csv_parser_init(io_reader *r) {
  io_csv *c = r->csv;
  if (csv_init(&c->p, CSV_STRICT | CSV_STRICT_FINI) != 0)
    return nx_err(NX_NOMEM, "%s: cannot initialise the CSV parser", r->name);
  csv_set_delim(&c->p, (unsigned char)r->opts.delimiter);
  csv_set_space_func(&c->p, never_space);
  csv_set_realloc_func(&c->p, csv_realloc_fn);
  csv_set_free_func(&c->p, nx_free);
  csv_set_blk_size(&c->p, 64 * 1024);
  return NX_OK;
}

int io_csv_open(io_reader *r) {
  r->csv = nx_calloc(1, sizeof *r->csv);
  if (!r->csv) return nx_err(NX_NOMEM, "%s: out of memory", r->name);
  io_csv *c = r->csv;
  nx_buf_init(&c->raw, 0);
  nx_buf_init(&c->fbuf, r->opts.max_record + 16);
  c->have_header = r->opts.no_header;
  return csv_parser_init(r);
}

void io_csv_close(io_reader *r) {
  io_csv *c = r->csv;
  if (!c) return;
  csv_free(&c->p);
  nx_buf_free(&c->raw);
  nx_buf_free(&c->fbuf);
  nx_free(c->qflag);
  nx_free(c->fstart);
  nx_free(c->foff);
  nx_free(c->flen);
  for (size_t i = 0; i < c->ncols; i++) nx_free(c->cols[i]);
  nx_free(c->cols);
  for (size_t i = 0; i < c->nnodes; i++) nx_free(c->nodes[i].name);
  nx_free(c->nodes);
  nx_free(c);
  r->csv = NULL;
}

/* ---- the shadow scanner ---- */
static int scan_field_start(io_reader *r, bool quoted, uint64_t off) {
  io_csv *c = r->csv;
  if (c->nq >= IO_MAX_CSV_COLUMNS) /* capped before the per-field arrays grow */
    return nx_err(NX_LIMIT, "%s: the row at line %llu, byte offset %llu has more than %u fields",
                  r->name, (unsigned long long)c->row_line, (unsigned long long)c->row_off,
                  IO_MAX_CSV_COLUMNS);
  if (c->nq == c->qcap) {
    size_t ncap = c->qcap ? c->qcap * 2 : 16;
    uint8_t *q = nx_realloc(c->qflag, ncap);
    if (!q) return nx_err(NX_NOMEM, "%s: out of memory", r->name);
    c->qflag = q;
    uint64_t *f = nx_realloc(c->fstart, ncap * sizeof *f);
    if (!f) return nx_err(NX_NOMEM, "%s: out of memory", r->name);
    c->fstart = f;
    c->qcap = ncap;
  }
  c->qflag[c->nq] = quoted ? 1 : 0;
  c->fstart[c->nq] = off;
  c->nq++;
  return NX_OK;
}

static void row_reset(io_csv *c) {
  c->nq = 0;
  c->nf = 0;
  c->fbuf.len = 0;
  c->raw.len = 0;
  c->row_bytes = 0;
  c->row_done = false;
  c->bad_utf8 = 0;
}

/* Result of scanning: how far, and why it stopped. */
enum { SCAN_MORE, SCAN_ROW_END, SCAN_ERROR };

/* Scans buf[from..to) (offsets base + i); stops after a row terminator or before a strict error.
 * *stop receives the index where scanning stopped. *why names the strict error. */
static int scan(io_reader *r, const uint8_t *buf, size_t from, size_t to, uint64_t base,
                size_t *stop, const char **why, int *res) {
  io_csv *c = r->csv;
  uint8_t delim = (uint8_t)r->opts.delimiter;
  size_t i = from;
  *res = SCAN_MORE;
  for (; i < to; i++) {
    uint8_t ch = buf[i];
    uint64_t off = base + i;
    bool term = ch == '\r' || ch == '\n';
    switch (c->st) {
    case SC_ROW_NOT_BEGUN:
    case SC_FIELD_NOT_BEGUN:
      if (term) {
        if (ch == '\n') r->line++;
        if (c->st == SC_FIELD_NOT_BEGUN) {
          c->st = SC_ROW_NOT_BEGUN;
          *stop = i + 1;
          *res = SCAN_ROW_END;
          return NX_OK;
        }
        continue; /* empty line */
      }
      if (c->st == SC_ROW_NOT_BEGUN) {
        c->row_line = r->line;
        c->row_off = off;
      }
      if (ch == delim) {
        int rc = scan_field_start(r, false, off);
        if (rc) return rc;
        c->st = SC_FIELD_NOT_BEGUN;
      } else {
        int rc = scan_field_start(r, ch == '"', off);
        if (rc) return rc;
        c->quoted = ch == '"';
        if (c->quoted) {
          c->quote_line = r->line;
          c->quote_off = off;
        }
        c->st = SC_FIELD_BEGUN;
      }
      break;
    case SC_FIELD_BEGUN:
      if (ch == '"') {
        if (!c->quoted) {
          *stop = i;
          *why = "a quote inside an unquoted field";
          *res = SCAN_ERROR;
          return NX_OK;
        }
        c->st = SC_MIGHT_END;
      } else if (ch == delim && !c->quoted) {
        c->st = SC_FIELD_NOT_BEGUN;
      } else if (term && !c->quoted) {
        if (ch == '\n') r->line++;
        c->st = SC_ROW_NOT_BEGUN;
        *stop = i + 1;
        *res = SCAN_ROW_END;
        return NX_OK;
      } else if (ch == '\n') {
        r->line++; /* inside quotes */
      }
      break;
    case SC_MIGHT_END:
      if (ch == delim) {
        c->st = SC_FIELD_NOT_BEGUN;
      } else if (term) {
        if (ch == '\n') r->line++;
        c->st = SC_ROW_NOT_BEGUN;
        *stop = i + 1;
        *res = SCAN_ROW_END;
        return NX_OK;
      } else if (ch == '"') {
        c->st = SC_FIELD_BEGUN; /* "" inside a quoted field */
      } else {
        *stop = i;
        *why = "a character after a closing quote (expected a delimiter or a line end)";
        *res = SCAN_ERROR;
        return NX_OK;
      }
      break;
    default:
      break;
    }
  }
  *stop = i;
  return NX_OK;
}

/* ---- header and documents ---- */
static size_t node_add(io_csv *c, const char *name, size_t n, long col) {
  if (c->nnodes == c->nodes_cap) {
    size_t ncap = c->nodes_cap ? c->nodes_cap * 2 : 16;
    csv_node *a = nx_realloc(c->nodes, ncap * sizeof *a);
    if (!a) return SIZE_MAX;
    c->nodes = a;
    c->nodes_cap = ncap;
  }
  csv_node *nd = &c->nodes[c->nnodes];
  memset(nd, 0, sizeof *nd);
  nd->name = nx_strndup(name, n);
  if (!nd->name) return SIZE_MAX;
  nd->name_len = n;
  nd->col = col;
  return c->nnodes++;
}

/* Adds column `col` named `name` (dotted) to the header tree. */
static int header_add(io_reader *r, const char *name, size_t col) {
  io_csv *c = r->csv;
  size_t parent = 0;
  const char *p = name;
  size_t parts = 1;
  for (const char *q = name; *q; q++) parts += *q == '.';
  if (parts > 100) /* MongoDB's nesting limit; also bounds build_level's recursion */
    return io_reader_fatal(r, nx_err(NX_LIMIT, "%s: line %llu: column %zu name nests %zu levels "
                                     "(limit 100)", r->name, (unsigned long long)c->row_line,
                                     col + 1, parts));
  for (;;) {
    const char *dot = strchr(p, '.');
    size_t n = dot ? (size_t)(dot - p) : strlen(p);
    if (n == 0)
      return io_reader_fatal(r, nx_err(NX_INVALID, "%s: line %llu: column %zu name '%s' has an "
                                       "empty part", r->name, (unsigned long long)c->row_line,
                                       col + 1, name));
    if (p[0] == '$') /* {"$date": ...} and the like would be read back as a typed value */
      return io_reader_fatal(r, nx_err(NX_INVALID, "%s: line %llu: column %zu name '%s' has a part "
                                       "starting with '$' (reserved for operators and Extended JSON)",
                                       r->name, (unsigned long long)c->row_line, col + 1, name));
    size_t found = 0;
    for (size_t k = c->nodes[parent].first_child; k; k = c->nodes[k].next)
      if (c->nodes[k].name_len == n && memcmp(c->nodes[k].name, p, n) == 0) found = k;
    if (found && (!dot || c->nodes[found].col >= 0))
      return io_reader_fatal(r, nx_err(NX_INVALID, "%s: line %llu: column %zu name '%s' %s an "
                                       "earlier column", r->name, (unsigned long long)c->row_line,
                                       col + 1, name, dot ? "is nested under" : "repeats"));
    if (!found) {
      found = node_add(c, p, n, dot ? -1 : (long)col);
      if (found == SIZE_MAX) return io_reader_fatal(r, nx_err(NX_NOMEM, "%s: out of memory", r->name));
      /* append as the last child of parent */
      size_t *link = &c->nodes[parent].first_child;
      while (*link) link = &c->nodes[*link].next;
      *link = found;
    } else if (!dot) {
      return io_reader_fatal(r, nx_err(NX_INVALID, "%s: column %zu name '%s' conflicts with an "
                                       "earlier dotted column", r->name, col + 1, name));
    }
    if (!dot) return NX_OK;
    parent = found;
    p = dot + 1;
  }
}

static int header_take(io_reader *r) {
  io_csv *c = r->csv;
  if (c->nf > IO_MAX_CSV_COLUMNS)
    return io_reader_fatal(r, nx_err(NX_LIMIT, "%s: line %llu: %zu columns (limit %u)", r->name,
                                     (unsigned long long)c->row_line, c->nf, IO_MAX_CSV_COLUMNS));
  if (c->bad_utf8)
    return io_reader_fatal(r, nx_err(NX_PARSE, "%s: header line %llu, byte offset %llu: invalid "
                                     "UTF-8 in a column name", r->name,
                                     (unsigned long long)c->row_line,
                                     (unsigned long long)(c->bad_utf8 - 1)));
  c->cols = nx_calloc(c->nf ? c->nf : 1, sizeof *c->cols);
  if (!c->cols || node_add(c, "", 0, -1) != 0 /* the root is node 0 */)
    return io_reader_fatal(r, nx_err(NX_NOMEM, "%s: out of memory", r->name));
  for (size_t i = 0; i < c->nf; i++) {
    char gen[32];
    const char *nm = (const char *)c->fbuf.data + c->foff[i];
    size_t n = c->flen[i];
    if (n == 0) {
      snprintf(gen, sizeof gen, "field%zu", i + 1);
      nm = gen;
      n = strlen(gen);
    }
    c->cols[i] = nx_strndup(nm, n);
    if (!c->cols[i]) return io_reader_fatal(r, nx_err(NX_NOMEM, "%s: out of memory", r->name));
    c->ncols = i + 1;
    int rc = header_add(r, c->cols[i], i);
    if (rc) return rc;
  }
  c->have_header = true;
  return NX_OK;
}

static bool is_int(const char *s, size_t n) {
  size_t i = s[0] == '-' ? 1 : 0;
  if (i == n) return false;
  if (s[i] == '0' && n - i > 1) return false; /* leading zero: text (zip codes, ids) */
  for (; i < n; i++)
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}

static bool is_double(const char *s, size_t n) {
  size_t i = s[0] == '-' ? 1 : 0;
  size_t d0 = i;
  while (i < n && s[i] >= '0' && s[i] <= '9') i++;
  size_t nd = i - d0;
  if (nd == 0 || (s[d0] == '0' && nd > 1)) return false;
  bool frac_or_exp = false;
  if (i < n && s[i] == '.') {
    i++;
    size_t f0 = i;
    while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    if (i == f0) return false;
    frac_or_exp = true;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    if (i < n && (s[i] == '+' || s[i] == '-')) i++;
    size_t e0 = i;
    while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    if (i == e0) return false;
    frac_or_exp = true;
  }
  return i == n && frac_or_exp;
}

/* Appends field value s[0..n) under key as its inferred type. */
static bool append_value(bson_t *b, const char *key, int klen, const char *s, size_t n, bool quoted,
                         bool no_infer) {
  if (no_infer || quoted) return bson_append_utf8(b, key, klen, s, (int)n);
  if (n == 0) return bson_append_null(b, key, klen);
  if ((n == 4 && (memcmp(s, "null", 4) == 0 || memcmp(s, "NULL", 4) == 0)))
    return bson_append_null(b, key, klen);
  if (n == 4 && (memcmp(s, "true", 4) == 0 || memcmp(s, "True", 4) == 0 || memcmp(s, "TRUE", 4) == 0))
    return bson_append_bool(b, key, klen, true);
  if (n == 5 &&
      (memcmp(s, "false", 5) == 0 || memcmp(s, "False", 5) == 0 || memcmp(s, "FALSE", 5) == 0))
    return bson_append_bool(b, key, klen, false);
  char tmp[64];
  if (n < sizeof tmp && is_int(s, n)) {
    memcpy(tmp, s, n);
    tmp[n] = 0;
    errno = 0;
    long long v = strtoll(tmp, NULL, 10);
    if (errno == 0) {
      if (v >= INT32_MIN && v <= INT32_MAX) return bson_append_int32(b, key, klen, (int32_t)v);
      return bson_append_int64(b, key, klen, (int64_t)v);
    }
    return bson_append_utf8(b, key, klen, s, (int)n);
  }
  if (n < sizeof tmp && is_double(s, n)) {
    memcpy(tmp, s, n);
    tmp[n] = 0;
    return bson_append_double(b, key, klen, strtod(tmp, NULL));
  }
  int64_t ms;
  if (n >= 10 && s[4] == '-' && io_parse_iso8601(s, n, &ms)) return bson_append_date_time(b, key, klen, ms);
  return bson_append_utf8(b, key, klen, s, (int)n);
}

/* True when some leaf under node k has a field in the current row. */
static bool node_present(const io_csv *c, size_t k) {
  if (c->nodes[k].col >= 0) return (size_t)c->nodes[k].col < c->nf;
  for (size_t j = c->nodes[k].first_child; j; j = c->nodes[j].next)
    if (node_present(c, j)) return true;
  return false;
}

static bool build_level(io_reader *r, bson_t *b, size_t parent) {
  io_csv *c = r->csv;
  for (size_t k = c->nodes[parent].first_child; k; k = c->nodes[k].next) {
    csv_node *nd = &c->nodes[k];
    if (nd->col >= 0) {
      size_t col = (size_t)nd->col;
      if (col >= c->nf) continue; /* short row: the field is absent */
      bool quoted = col < c->nq && c->qflag[col];
      if (!append_value(b, nd->name, (int)nd->name_len, (const char *)c->fbuf.data + c->foff[col],
                        c->flen[col], quoted, r->opts.no_infer))
        return false;
    } else if (node_present(c, k)) {
      bson_t sub;
      if (!bson_append_document_begin(b, nd->name, (int)nd->name_len, &sub)) return false;
      if (!build_level(r, &sub, k)) return false;
      if (!bson_append_document_end(b, &sub)) return false;
    }
  }
  return true;
}

static int build_doc(io_reader *r, const bson_t **doc) {
  io_csv *c = r->csv;
  if (r->doc_live) bson_reinit(&r->doc);
  else bson_init(&r->doc);
  r->doc_live = true;
  bool ok = true;
  size_t first_extra = 0;
  if (c->nnodes) {
    ok = build_level(r, &r->doc, 0);
    first_extra = c->ncols;
  }
  for (size_t i = first_extra; ok && i < c->nf; i++) {
    char key[32];
    snprintf(key, sizeof key, "field%zu", i + 1);
    if (bson_has_field(&r->doc, key)) {
      return nx_err(NX_INVALID, "%s: line %llu, byte offset %llu: extra column %zu would be named "
                    "'%s', which a header column already uses", r->name,
                    (unsigned long long)c->row_line, (unsigned long long)c->row_off, i + 1, key);
    }
    bool quoted = i < c->nq && c->qflag[i];
    ok = append_value(&r->doc, key, -1, (const char *)c->fbuf.data + c->foff[i], c->flen[i], quoted,
                      r->opts.no_infer);
  }
  if (!ok)
    return nx_err(NX_LIMIT, "%s: line %llu, byte offset %llu: the row does not fit in a BSON "
                  "document", r->name, (unsigned long long)c->row_line,
                  (unsigned long long)c->row_off);
  *doc = &r->doc;
  return NX_ROW;
}

/* After a strict error at index `at` of the buffer: skip to the next '\n' and restart libcsv. */
static int recover_row(io_reader *r) {
  io_csv *c = r->csv;
  io_src *s = &r->src;
  for (;;) {
    const uint8_t *start = s->buf + s->pos;
    const uint8_t *nl = memchr(start, '\n', s->len - s->pos);
    size_t seg = nl ? (size_t)(nl - start) + 1 : s->len - s->pos;
    if (c->raw.len < IO_MAX_RAW_KEPT) {
      size_t k = seg < IO_MAX_RAW_KEPT - c->raw.len ? seg : IO_MAX_RAW_KEPT - c->raw.len;
      if (nx_buf_append(&c->raw, start, k)) return NX_NOMEM;
    }
    s->pos += seg;
    if (nl) {
      r->line++;
      break;
    }
    if (s->eof) break;
    int rc = io_src_fill(s);
    if (rc) return rc;
  }
  csv_free(&c->p);
  c->st = SC_ROW_NOT_BEGUN;
  return csv_parser_init(r);
}

static int row_finished(io_reader *r, const bson_t **doc) {
  io_csv *c = r->csv;
  r->where.line = c->row_line;
  r->where.offset = c->row_off;
  r->where.raw = (const char *)c->raw.data;
  r->where.raw_len = c->raw.len;
  r->where.fatal = false;
  if (c->cb_fail) return io_reader_fatal(r, nx_err(NX_NOMEM, "%s: out of memory", r->name));
  if (!c->have_header) {
    int rc = header_take(r);
    if (rc) return rc;
    return SCAN_MORE; /* no record: go on */
  }
  r->nrec++;
  if (c->bad_utf8) {
    const char *col = c->bad_field < c->ncols ? c->cols[c->bad_field] : "(extra)";
    return nx_err(NX_PARSE, "%s: line %llu, byte offset %llu: invalid UTF-8 in column %zu (%s)",
                  r->name, (unsigned long long)c->row_line,
                  (unsigned long long)(c->bad_utf8 - 1), c->bad_field + 1, col);
  }
  return build_doc(r, doc);
}

int io_csv_next(io_reader *r, const bson_t **doc) {
  io_csv *c = r->csv;
  io_src *s = &r->src;
  for (;;) {
    if (c->finished) return NX_DONE;
    if (c->st == SC_ROW_NOT_BEGUN && c->nq == 0) row_reset(c);
    if (s->pos >= s->len) {
      if (!s->eof) {
        int rc = io_src_fill(s);
        if (rc) return io_reader_fatal(r, rc);
        continue;
      }
      /* end of input */
      if ((c->st == SC_FIELD_BEGUN && c->quoted)) {
        r->where.line = c->quote_line;
        r->where.offset = c->quote_off;
        r->where.raw = (const char *)c->raw.data;
        r->where.raw_len = c->raw.len;
        c->finished = true;
        return io_reader_fatal(r, nx_err(NX_PARSE, "%s: unbalanced quote: the quoted field that "
                                         "opens at line %llu, byte offset %llu is never closed",
                                         r->name, (unsigned long long)c->quote_line,
                                         (unsigned long long)c->quote_off));
      }
      c->finished = true;
      if (c->st == SC_ROW_NOT_BEGUN) return NX_DONE;
      if (csv_fini(&c->p, cb_field, cb_row, r) != 0)
        return io_reader_fatal(r, nx_err(NX_PARSE, "%s: line %llu: malformed last row: %s", r->name,
                                         (unsigned long long)c->row_line,
                                         csv_strerror(csv_error(&c->p))));
      c->st = SC_ROW_NOT_BEGUN;
      int rc = row_finished(r, doc);
      if (rc == SCAN_MORE) return NX_DONE;
      return rc;
    }
    size_t stop = s->pos;
    const char *why = NULL;
    int res;
    int rc = scan(r, s->buf, s->pos, s->len, s->off, &stop, &why, &res);
    if (rc) return io_reader_fatal(r, rc);
    size_t seg = stop - s->pos;
    if (c->row_bytes + seg > r->opts.max_record) {
      r->where.line = c->row_line;
      r->where.offset = c->row_off;
      r->where.fatal = true;
      return io_reader_fatal(r, nx_err(NX_LIMIT, "%s: the row at line %llu, byte offset %llu is "
                                       "longer than the limit of %zu bytes", r->name,
                                       (unsigned long long)c->row_line,
                                       (unsigned long long)c->row_off, r->opts.max_record));
    }
    c->row_bytes += seg;
    if (c->raw.len < IO_MAX_RAW_KEPT && seg) {
      size_t k = seg < IO_MAX_RAW_KEPT - c->raw.len ? seg : IO_MAX_RAW_KEPT - c->raw.len;
      if (nx_buf_append(&c->raw, s->buf + s->pos, k)) return io_reader_fatal(r, NX_NOMEM);
    }
    if (seg && csv_parse(&c->p, s->buf + s->pos, seg, cb_field, cb_row, r) != seg) {
      /* the scanner mirrors libcsv, so this is out of memory (or a disagreement: a bug) */
      int e = csv_error(&c->p);
      return io_reader_fatal(r, nx_err(e == CSV_ENOMEM ? NX_NOMEM : NX_PARSE, "%s: line %llu, "
                                       "byte offset %llu: CSV parser: %s", r->name,
                                       (unsigned long long)c->row_line,
                                       (unsigned long long)c->row_off, csv_strerror(e)));
    }
    s->pos = stop;
    if (res == SCAN_ERROR) {
      uint64_t at = io_src_tell(s);
      uint64_t line = r->line;
      r->nrec++;
      rc = recover_row(r);
      if (rc) return io_reader_fatal(r, rc);
      r->where.line = c->row_line;
      r->where.offset = c->row_off;
      r->where.raw = (const char *)c->raw.data;
      r->where.raw_len = c->raw.len;
      r->where.fatal = false;
      nx_err(NX_PARSE, "%s: line %llu, byte offset %llu: %s (the row starts at line %llu, byte "
             "offset %llu)", r->name, (unsigned long long)line, (unsigned long long)at, why,
             (unsigned long long)c->row_line, (unsigned long long)c->row_off);
      c->nq = 0;
      if (!c->have_header) return io_reader_fatal(r, NX_PARSE);
      return NX_PARSE;
    }
    if (res == SCAN_ROW_END) {
      if (!c->row_done) {
        /* libcsv submits the row at the terminator it was just given */
        return io_reader_fatal(r, nx_err(NX_PARSE, "%s: line %llu: CSV parser did not end the row "
                                         "where expected", r->name,
                                         (unsigned long long)c->row_line));
      }
      rc = row_finished(r, doc);
      c->nq = 0;
      if (rc == SCAN_MORE) continue;
      return rc;
    }
  }
}
