/*
 * io_reader.c: format detection, the reader handle, and the NDJSON, JSON and BSON readers (CSV is
 * in io_csv_read.c).
 *
 * NDJSON: one JSON object per line ('\n', an optional '\r' before it); blank lines are skipped.
 *   A bad line is a record error; the reader goes on at the next line. A line longer than
 *   max_record is an error reported as soon as the limit is passed, without buffering the rest
 *   (the rest of the line is skipped).
 * JSON: either an array of objects ("[{...}, {...}]") or objects one after another (what
 *   mongoexport writes without --jsonArray, and pretty-printed NDJSON). A tokenizer finds where
 *   each top-level element ends (strings, escapes and nesting depth) without parsing it, copies
 *   it into one record buffer, and libbson parses that element alone. A bad element (bad JSON
 *   inside, not an object) is a record error; broken structure (EOF inside an element, no ',' or
 *   ']' between elements, data after the closing ']') is fatal.
 * BSON: int32 length, then length - 4 bytes ending in NUL. The length is checked (5..16 MiB) before
 *   anything is buffered; a bad length or a truncated document is fatal (there is no way to find
 *   the next document); a document whose content fails bson_validate is a record error (its length
 *   says where the next one starts).
 * Extended JSON (canonical or relaxed, e.g. {"$oid": ...}, {"$date": ...}, {"$numberLong": ...})
 * is understood by libbson's parser in both JSON formats.
 */
#include <string.h>
#include <strings.h>

#include "io_int.h"

/* ---- Detection ---- */
static bool ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && strcasecmp(s + n - k, suffix) == 0;
}

static char sniff_delim(const uint8_t *h, size_t n) {
  static const char cand[] = {',', ';', '\t', '|'};
  size_t counts[4] = {0, 0, 0, 0};
  bool q = false;
  for (size_t i = 0; i < n; i++) {
    if (h[i] == '"') q = !q;
    if (q) continue;
    if (h[i] == '\n') break;
    for (int k = 0; k < 4; k++)
      if (h[i] == (uint8_t)cand[k]) counts[k]++;
  }
  int best = 0;
  for (int k = 1; k < 4; k++)
    if (counts[k] > counts[best]) best = k;
  return counts[best] ? cand[best] : 0;
}

nx_format io_detect(const char *path, const uint8_t *h, size_t n, char *delim) {
  *delim = 0;
  if (path) {
    if (ends_with(path, ".ndjson") || ends_with(path, ".jsonl") || ends_with(path, ".ldjson"))
      return NX_FORMAT_NDJSON;
    if (ends_with(path, ".json")) return NX_FORMAT_JSON;
    if (ends_with(path, ".bson")) return NX_FORMAT_BSON;
    if (ends_with(path, ".tsv")) {
      *delim = '\t';
      return NX_FORMAT_CSV;
    }
    if (ends_with(path, ".csv")) {
      *delim = sniff_delim(h, n);
      return NX_FORMAT_CSV;
    }
  }
  /* A BSON document starts with a little-endian length 5..16 MiB: its 4th byte is 0, which no
   * text file has there; the 5th byte is an element type or the terminating NUL. */
  if (n >= 5 && h[3] == 0) {
    uint32_t len = nx_get32(h);
    uint8_t t = h[4];
    if (len >= 5 && len <= IO_MAX_DOC_BYTES && (t <= 0x13 || t == 0x7F || t == 0xFF))
      return NX_FORMAT_BSON;
  }
  size_t i = 0;
  while (i < n && (h[i] == ' ' || h[i] == '\t' || h[i] == '\r' || h[i] == '\n')) i++;
  if (i < n && h[i] == '[') return NX_FORMAT_JSON;
  if (i < n && h[i] == '{') {
    /* NDJSON when the first object closes on its first line, else (pretty) JSON */
    int depth = 0;
    bool str = false, esc = false;
    for (size_t j = i; j < n; j++) {
      uint8_t c = h[j];
      if (str) {
        if (esc) esc = false;
        else if (c == '\\') esc = true;
        else if (c == '"') str = false;
        continue;
      }
      if (c == '"') str = true;
      else if (c == '{' || c == '[') depth++;
      else if (c == '}' || c == ']') {
        if (--depth == 0) return NX_FORMAT_NDJSON;
      } else if (c == '\n') {
        return NX_FORMAT_JSON;
      }
    }
    return NX_FORMAT_NDJSON;
  }
  *delim = sniff_delim(h, n);
  return NX_FORMAT_CSV;
}

/* ---- The handle ---- */
int io_reader_fatal(io_reader *r, int rc) {
  r->fatal_rc = rc;
  r->where.fatal = true;
  nx_free(r->fatal_msg);
  r->fatal_msg = nx_strdup(nx_err_msg());
  return rc;
}

static int reader_start(io_reader *r, const char *path_for_ext) {
  if (r->opts.max_record == 0) r->opts.max_record = IO_MAX_TEXT_RECORD;
  r->line = 1;
  nx_buf_init(&r->rec, r->opts.max_record + 16);
  int rc = io_src_fill(&r->src);
  if (rc) return rc;
  size_t hn = r->src.len < 1024 ? r->src.len : 1024;
  char sniffed = 0;
  nx_format f = io_detect(path_for_ext, r->src.buf, hn, &sniffed);
  if (r->format == NX_FORMAT_AUTO) {
    r->format = f;
    if (f == NX_FORMAT_CSV && (r->opts.delimiter == 0 || r->opts.delimiter == ',') && sniffed)
      r->opts.delimiter = sniffed;
  } else if (r->format == NX_FORMAT_CSV && r->opts.delimiter == 0) {
    r->opts.delimiter = sniffed ? sniffed : ',';
  }
  if (r->opts.delimiter == 0) r->opts.delimiter = ',';
  if (r->format != NX_FORMAT_BSON && !r->src.utf16) {
    /* NUL bytes in a text file: most likely UTF-16 without a byte order mark */
    const uint8_t *z = memchr(r->src.buf, 0, hn);
    if (z)
      return nx_err(NX_INVALID, "%s: NUL byte at offset %llu in a %s file: UTF-16 without a byte "
                    "order mark? Convert it to UTF-8 (e.g. iconv -f UTF-16 -t UTF-8)", r->name,
                    (unsigned long long)(r->src.off + (size_t)(z - r->src.buf)),
                    io_format_name(r->format));
  }
  if (r->format == NX_FORMAT_CSV) return io_csv_open(r);
  return NX_OK;
}

static int reader_alloc(const char *name, const io_read_opts *opts, io_reader **out) {
  *out = NULL;
  void *base = nx_calloc(1, sizeof(io_reader) + 128);
  if (!base) return nx_err(NX_NOMEM, "%s: out of memory", name);
  io_reader *r = (io_reader *)(((uintptr_t)base + 127) & ~(uintptr_t)127);
  r->alloc_base = base;
  r->name = nx_strdup(name);
  if (!r->name) {
    nx_free(base);
    return nx_err(NX_NOMEM, "%s: out of memory", name);
  }
  if (opts) r->opts = *opts;
  else r->opts.format = NX_FORMAT_AUTO;
  r->format = r->opts.format;
  *out = r;
  return NX_OK;
}

int io_reader_open_file(const char *path, const io_read_opts *opts, io_reader **out) {
  io_reader *r;
  int rc = reader_alloc(path, opts, &r);
  if (rc) return rc;
  rc = io_src_open_file(&r->src, path);
  if (rc == NX_OK) {
    r->src.name = r->name;
    rc = reader_start(r, path);
  }
  if (rc) {
    io_reader_close(r);
    return rc;
  }
  *out = r;
  return NX_OK;
}

int io_reader_open_mem(const void *data, size_t n, const char *name, const io_read_opts *opts,
                       io_reader **out) {
  io_reader *r;
  if (!name) name = "<memory>";
  int rc = reader_alloc(name, opts, &r);
  if (rc) return rc;
  rc = io_src_open_mem(&r->src, data, n, r->name);
  if (rc == NX_OK) rc = reader_start(r, NULL);
  if (rc) {
    io_reader_close(r);
    return rc;
  }
  *out = r;
  return NX_OK;
}

void io_reader_close(io_reader *r) {
  if (!r) return;
  if (r->csv) io_csv_close(r);
  if (r->doc_live) bson_destroy(&r->doc);
  nx_buf_free(&r->rec);
  io_src_close(&r->src);
  nx_free(r->fatal_msg);
  nx_free(r->name);
  nx_free(r->alloc_base);
}

void io_reader_where(const io_reader *r, io_where *out) { *out = r->where; }
nx_format io_reader_format(const io_reader *r) { return r->format; }
uint64_t io_reader_bytes(const io_reader *r) { return io_src_tell(&r->src); }
uint64_t io_reader_size(const io_reader *r) { return r->src.raw_size; }

/* ---- Parsing one JSON object from text ---- */
static void set_raw(io_reader *r, const uint8_t *p, size_t n) {
  r->where.raw = (const char *)p;
  r->where.raw_len = n < IO_MAX_RAW_KEPT ? n : IO_MAX_RAW_KEPT;
}

static const char *json_kind(uint8_t c) {
  if (c == '[') return "an array";
  if (c == '"') return "a string";
  if (c == 't' || c == 'f') return "a boolean";
  if (c == 'n') return "null";
  if (c == '-' || (c >= '0' && c <= '9')) return "a number";
  return "not JSON";
}

/* Parses text p[0..n) (one record whose first byte is at r->where.offset) into r->doc. */
static int parse_json_record(io_reader *r, const uint8_t *p, size_t n, const char *what) {
  size_t bad = io_utf8_check(p, n, true);
  if (bad < n)
    return nx_err(NX_PARSE, "%s: %s %llu, byte offset %llu: %s", r->name, what,
                  (unsigned long long)r->where.line, (unsigned long long)(r->where.offset + bad),
                  p[bad] == 0 ? "NUL byte in JSON text" : "invalid UTF-8");
  size_t i = 0;
  while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n')) i++;
  if (i == n || p[i] != '{')
    return nx_err(NX_PARSE, "%s: %s %llu, byte offset %llu: expected a JSON object, found %s",
                  r->name, what, (unsigned long long)r->where.line,
                  (unsigned long long)(r->where.offset + i), i == n ? "nothing" : json_kind(p[i]));
  if (r->doc_live) {
    bson_destroy(&r->doc);
    r->doc_live = false;
  }
  bson_error_t err;
  if (!bson_init_from_json(&r->doc, (const char *)p, (ssize_t)n, &err))
    return nx_err(NX_PARSE, "%s: %s %llu, byte offset %llu: bad JSON: %s", r->name, what,
                  (unsigned long long)r->where.line, (unsigned long long)r->where.offset,
                  err.message);
  r->doc_live = true;
  return NX_OK;
}

/* ---- NDJSON ---- */
static bool all_space(const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r') return false;
  return true;
}

static int ndjson_next(io_reader *r, const bson_t **doc) {
  io_src *s = &r->src;
  for (;;) {
    if (r->discard_line) {
      /* the rest of an over-long line */
      for (;;) {
        const uint8_t *nl = memchr(s->buf + s->pos, '\n', s->len - s->pos);
        if (nl) {
          s->pos = (size_t)(nl - s->buf) + 1;
          r->line++;
          break;
        }
        s->pos = s->len;
        if (s->eof) break;
        int rc = io_src_fill(s);
        if (rc) return io_reader_fatal(r, rc);
      }
      r->discard_line = false;
    }
    r->rec.len = 0;
    r->where.line = r->line;
    r->where.offset = io_src_tell(s);
    r->where.fatal = false;
    r->where.raw = NULL;
    r->where.raw_len = 0;
    const uint8_t *line = NULL;
    size_t n = 0;
    bool got_nl = false;
    for (;;) {
      size_t avail = s->len - s->pos;
      const uint8_t *start = s->buf + s->pos;
      const uint8_t *nl = memchr(start, '\n', avail);
      size_t seg = nl ? (size_t)(nl - start) : avail;
      if (r->rec.len + seg > r->opts.max_record) {
        /* too long: report now, skip the rest later */
        if (r->rec.len == 0) set_raw(r, start, seg);
        else set_raw(r, r->rec.data, r->rec.len);
        uint64_t off = r->where.offset;
        s->pos += seg;
        r->discard_line = true;
        r->nrec++;
        return nx_err(NX_LIMIT, "%s: line %llu (byte offset %llu) is longer than the limit of %zu "
                      "bytes", r->name, (unsigned long long)r->where.line,
                      (unsigned long long)off, r->opts.max_record);
      }
      if (nl && r->rec.len == 0) {
        line = start; /* the whole line is in the buffer: no copy */
        n = seg;
        s->pos += seg + 1;
        got_nl = true;
        break;
      }
      if (nx_buf_append(&r->rec, start, seg)) return io_reader_fatal(r, NX_NOMEM);
      s->pos += seg;
      if (nl) {
        s->pos++;
        got_nl = true;
        line = r->rec.data;
        n = r->rec.len;
        break;
      }
      if (s->eof) {
        line = r->rec.data;
        n = r->rec.len;
        break;
      }
      int rc = io_src_fill(s);
      if (rc) return io_reader_fatal(r, rc);
    }
    if (got_nl) r->line++;
    if (n > 0 && line[n - 1] == '\r') n--;
    if (n == 0 || all_space(line, n)) {
      if (!got_nl && s->eof) return NX_DONE;
      continue;
    }
    set_raw(r, line, n);
    r->nrec++;
    int rc = parse_json_record(r, line, n, "line");
    if (rc) return rc;
    *doc = &r->doc;
    return NX_ROW;
  }
}

/* ---- JSON array / object sequence ---- */
/* Makes at least one byte available; false at the end of the input. */
static int need_byte(io_reader *r, bool *have) {
  io_src *s = &r->src;
  while (s->pos >= s->len && !s->eof) {
    int rc = io_src_fill(s);
    if (rc) return rc;
  }
  *have = s->pos < s->len;
  return NX_OK;
}

static int skip_ws(io_reader *r, bool *have) {
  io_src *s = &r->src;
  for (;;) {
    int rc = need_byte(r, have);
    if (rc || !*have) return rc;
    uint8_t c = s->buf[s->pos];
    if (c == '\n') r->line++;
    else if (c != ' ' && c != '\t' && c != '\r') return NX_OK;
    s->pos++;
  }
}

/* Copies one element (starting at the current byte) into r->rec: a container up to its matching
 * close, a scalar up to the next ',' ']' or whitespace at depth 0. */
static int json_scan_element(io_reader *r) {
  io_src *s = &r->src;
  r->rec.len = 0;
  int depth = 0;
  bool str = false, esc = false;
  bool container = s->buf[s->pos] == '{' || s->buf[s->pos] == '[';
  uint64_t start_line = r->where.line;
  for (;;) {
    bool have;
    int rc = need_byte(r, &have);
    if (rc) return io_reader_fatal(r, rc);
    if (!have) {
      if (!container && !str) return NX_OK;
      set_raw(r, r->rec.data, r->rec.len);
      return io_reader_fatal(r, nx_err(NX_PARSE, "%s: truncated JSON: the file ends inside %s "
                                       "that starts at line %llu, byte offset %llu", r->name,
                                       str ? "a string" : "an element",
                                       (unsigned long long)start_line,
                                       (unsigned long long)r->where.offset));
    }
    size_t i = s->pos, end = s->len;
    bool done = false;
    for (; i < end; i++) {
      uint8_t c = s->buf[i];
      if (c == '\n') r->line++;
      if (str) {
        if (esc) esc = false;
        else if (c == '\\') esc = true;
        else if (c == '"') str = false;
        continue;
      }
      if (c == '"') {
        str = true;
      } else if (c == '{' || c == '[') {
        depth++;
      } else if (c == '}' || c == ']') {
        if (!container) {
          done = true;
          break;
        }
        if (--depth == 0) {
          i++;
          done = true;
          break;
        }
      } else if (!container && (c == ',' || c == ' ' || c == '\t' || c == '\r' || c == '\n')) {
        if (c == '\n') r->line--; /* not consumed */
        done = true;
        break;
      }
    }
    size_t seg = i - s->pos;
    if (r->rec.len + seg > r->opts.max_record) {
      set_raw(r, r->rec.len ? r->rec.data : s->buf + s->pos, r->rec.len ? r->rec.len : seg);
      return io_reader_fatal(r, nx_err(NX_LIMIT, "%s: the JSON element at line %llu, byte offset "
                                       "%llu is longer than the limit of %zu bytes", r->name,
                                       (unsigned long long)start_line,
                                       (unsigned long long)r->where.offset, r->opts.max_record));
    }
    if (nx_buf_append(&r->rec, s->buf + s->pos, seg)) return io_reader_fatal(r, NX_NOMEM);
    s->pos = i;
    if (done) return NX_OK;
  }
}

static int json_next(io_reader *r, const bson_t **doc) {
  io_src *s = &r->src;
  bool have;
  int rc;
  r->where.fatal = false;
  r->where.raw = NULL;
  r->where.raw_len = 0;
  if (r->json_state == 3) return NX_DONE;
  if ((rc = skip_ws(r, &have))) return io_reader_fatal(r, rc);
  r->where.line = r->line;
  r->where.offset = io_src_tell(s);
  if (r->json_state == 0) {
    if (!have) {
      r->json_state = 3;
      return NX_DONE;
    }
    uint8_t c = s->buf[s->pos];
    if (c == '[') {
      r->json_state = 1;
      s->pos++;
      if ((rc = skip_ws(r, &have))) return io_reader_fatal(r, rc);
      r->where.line = r->line;
      r->where.offset = io_src_tell(s);
    } else if (c == '{') {
      r->json_state = 2;
    } else {
      return io_reader_fatal(r, nx_err(NX_PARSE, "%s: line %llu, byte offset %llu: expected '[' "
                                       "or '{' at the start of a JSON file, found %s", r->name,
                                       (unsigned long long)r->line,
                                       (unsigned long long)r->where.offset, json_kind(c)));
    }
  }
  if (!have) {
    if (r->json_state == 2) {
      r->json_state = 3;
      return NX_DONE;
    }
    return io_reader_fatal(r, nx_err(NX_PARSE, "%s: truncated JSON: the file ends at byte offset "
                                     "%llu inside the array (no closing ']')", r->name,
                                     (unsigned long long)r->where.offset));
  }
  uint8_t c = s->buf[s->pos];
  if (r->json_state == 1 && c == ']') {
    if (r->json_need_elem)
      return io_reader_fatal(r, nx_err(NX_PARSE, "%s: line %llu, byte offset %llu: ']' after ',' "
                                       "(trailing comma)", r->name, (unsigned long long)r->line,
                                       (unsigned long long)r->where.offset));
    s->pos++;
    if ((rc = skip_ws(r, &have))) return io_reader_fatal(r, rc);
    r->where.offset = io_src_tell(s);
    r->where.line = r->line;
    if (have)
      return io_reader_fatal(r, nx_err(NX_PARSE, "%s: line %llu, byte offset %llu: data after the "
                                       "closing ']'", r->name, (unsigned long long)r->line,
                                       (unsigned long long)io_src_tell(s)));
    r->json_state = 3;
    return NX_DONE;
  }
  if (c == ',' || (r->json_state == 1 && c == ']') || c == '}')
    return io_reader_fatal(r, nx_err(NX_PARSE, "%s: line %llu, byte offset %llu: unexpected '%c' "
                                     "where a JSON element should start", r->name,
                                     (unsigned long long)r->line,
                                     (unsigned long long)r->where.offset, (char)c));
  if (r->json_state == 2 && c != '{')
    return io_reader_fatal(r, nx_err(NX_PARSE, "%s: line %llu, byte offset %llu: expected '{' "
                                     "(the next object), found %s", r->name,
                                     (unsigned long long)r->line,
                                     (unsigned long long)r->where.offset, json_kind(c)));
  if ((rc = json_scan_element(r))) return rc;
  r->nrec++;
  set_raw(r, r->rec.data, r->rec.len);
  /* what follows the element: ',' or ']' in an array */
  if (r->json_state == 1) {
    if ((rc = skip_ws(r, &have))) return io_reader_fatal(r, rc);
    if (!have)
      return io_reader_fatal(r, nx_err(NX_PARSE, "%s: truncated JSON: the file ends after the "
                                       "element at line %llu (no ',' or closing ']')", r->name,
                                       (unsigned long long)r->where.line));
    c = s->buf[s->pos];
    if (c == ',') {
      s->pos++;
      r->json_need_elem = true;
    } else if (c == ']') {
      r->json_need_elem = false;
    } else {
      return io_reader_fatal(r, nx_err(NX_PARSE, "%s: line %llu, byte offset %llu: expected ',' "
                                       "or ']' after an array element, found '%c'", r->name,
                                       (unsigned long long)r->line,
                                       (unsigned long long)io_src_tell(s), (char)c));
    }
  }
  rc = parse_json_record(r, r->rec.data, r->rec.len, "element at line");
  if (rc) return rc;
  *doc = &r->doc;
  return NX_ROW;
}

/* ---- BSON ---- */
static int need_bytes(io_reader *r, size_t n) {
  io_src *s = &r->src;
  while (s->len - s->pos < n && !s->eof) {
    int rc = io_src_fill(s);
    if (rc) return rc;
  }
  return NX_OK;
}

/* libbson's BSON_VALIDATE_UTF8 does not look inside string values (1.23): every key and string
 * is checked here. Returns false with *bad = offset (from the document's start) of the first
 * invalid byte. */
static bool strings_valid(bson_iter_t *it, const uint8_t *base, size_t *bad) {
  while (bson_iter_next(it)) {
    const char *k = bson_iter_key(it);
    size_t kl = strlen(k);
    size_t at = io_utf8_check((const uint8_t *)k, kl, true);
    if (at < kl) {
      *bad = (size_t)((const uint8_t *)k - base) + at;
      return false;
    }
    const char *str = NULL;
    uint32_t sl = 0;
    switch (bson_iter_type(it)) {
    case BSON_TYPE_UTF8: str = bson_iter_utf8(it, &sl); break;
    case BSON_TYPE_SYMBOL: str = bson_iter_symbol(it, &sl); break;
    case BSON_TYPE_CODE: str = bson_iter_code(it, &sl); break;
    case BSON_TYPE_CODEWSCOPE: {
      const uint8_t *sd;
      uint32_t sdl;
      str = bson_iter_codewscope(it, &sl, &sdl, &sd);
      break;
    }
    case BSON_TYPE_REGEX: {
      const char *opts = NULL;
      str = bson_iter_regex(it, &opts);
      sl = (uint32_t)strlen(str);
      break;
    }
    case BSON_TYPE_DOCUMENT:
    case BSON_TYPE_ARRAY: {
      bson_iter_t child;
      if (bson_iter_recurse(it, &child) && !strings_valid(&child, base, bad)) return false;
      break;
    }
    default: break;
    }
    if (str) {
      at = io_utf8_check((const uint8_t *)str, sl, false); /* embedded NUL is legal in BSON strings */
      if (at < sl) {
        *bad = (size_t)((const uint8_t *)str - base) + at;
        return false;
      }
    }
  }
  return true;
}

/* libbson's bson_validate recurses once per nesting level without a limit, so a hostile file of
 * nested empty documents overflows the stack. This walk checks the structure first without
 * recursion (a stack of end offsets, at most IO_MAX_BSON_DEPTH deep): element types, key
 * terminators and every length against its container. Returns 0 when bson_validate may run,
 * 1 (malformed) or 2 (too deep) with *at the offset of the problem. */
#define IO_MAX_BSON_DEPTH 100 /* MongoDB's nesting limit */
static int bson_shape(const uint8_t *p, size_t len, size_t *at) {
  size_t ends[IO_MAX_BSON_DEPTH + 1]; /* index of the terminating NUL of each open document */
  int sp = 0;
  size_t i = 4;
  ends[0] = len - 1;
  for (;;) {
    *at = i;
    if (i == ends[sp]) {
      if (p[i] != 0) return 1;
      i++;
      if (sp == 0) return i == len ? 0 : 1;
      sp--;
      continue;
    }
    uint8_t t = p[i++];
    const uint8_t *z = memchr(p + i, 0, ends[sp] - i);
    if (!z) return 1;
    i = (size_t)(z - p) + 1;
    size_t room = ends[sp] - i; /* bytes available to the value */
    size_t need;
    switch (t) {
    case 0x01: case 0x09: case 0x11: case 0x12: need = 8; break;
    case 0x07: need = 12; break;
    case 0x08: need = 1; break;
    case 0x10: need = 4; break;
    case 0x13: need = 16; break;
    case 0x06: case 0x0A: case 0x7F: case 0xFF: need = 0; break;
    case 0x02: case 0x0D: case 0x0E: case 0x0C: {
      if (room < 4) return 1;
      uint32_t l = nx_get32(p + i);
      need = 4 + (size_t)l + (t == 0x0C ? 12 : 0);
      if (l < 1 || need > room) return 1;
      break;
    }
    case 0x05: {
      if (room < 5) return 1;
      need = 5 + (size_t)nx_get32(p + i);
      break;
    }
    case 0x0B: {
      const uint8_t *z1 = memchr(p + i, 0, room);
      if (!z1) return 1;
      const uint8_t *z2 = memchr(z1 + 1, 0, (size_t)(p + ends[sp] - (z1 + 1)));
      if (!z2) return 1;
      need = (size_t)(z2 - (p + i)) + 1;
      break;
    }
    case 0x03: case 0x04: case 0x0F: {
      size_t doc_at = i;
      if (t == 0x0F) { /* int32 total, string, scope document ending the element */
        if (room < 14) return 1;
        uint32_t total = nx_get32(p + i), sl = nx_get32(p + i + 4);
        if (total < 14 || total > room || sl < 1 || (size_t)sl + 13 > total) return 1;
        doc_at = i + 8 + sl;
        if (nx_get32(p + doc_at) != total - 8 - sl) return 1;
      }
      if (ends[sp] - doc_at < 5) return 1;
      uint32_t l = nx_get32(p + doc_at);
      if (l < 5 || l > ends[sp] - doc_at) return 1;
      if (sp + 1 >= IO_MAX_BSON_DEPTH) return 2;
      ends[++sp] = doc_at + l - 1;
      i = doc_at + 4;
      continue;
    }
    default: return 1;
    }
    if (need > room) return 1;
    i += need;
  }
}

static int bson_next(io_reader *r, const bson_t **doc) {
  io_src *s = &r->src;
  r->where.line = 0;
  r->where.offset = io_src_tell(s);
  r->where.raw = NULL;
  r->where.raw_len = 0;
  r->where.fatal = false;
  int rc = need_bytes(r, 4);
  if (rc) return io_reader_fatal(r, rc);
  size_t avail = s->len - s->pos;
  if (avail == 0) return NX_DONE;
  r->nrec++;
  if (avail < 4)
    return io_reader_fatal(r, nx_err(NX_PARSE, "%s: truncated BSON: %zu stray byte%s at byte "
                                     "offset %llu (a document needs at least 5)", r->name, avail,
                                     avail == 1 ? "" : "s", (unsigned long long)r->where.offset));
  uint32_t len = nx_get32(s->buf + s->pos);
  if (len < 5 || len > IO_MAX_DOC_BYTES)
    return io_reader_fatal(r, nx_err(NX_PARSE, "%s: bad BSON document length %u at byte offset "
                                     "%llu (must be 5..%u)", r->name, len,
                                     (unsigned long long)r->where.offset, IO_MAX_DOC_BYTES));
  rc = need_bytes(r, len);
  if (rc) return io_reader_fatal(r, rc);
  avail = s->len - s->pos;
  if (avail < len)
    return io_reader_fatal(r, nx_err(NX_PARSE, "%s: truncated BSON: the document at byte offset "
                                     "%llu says %u bytes, only %zu remain", r->name,
                                     (unsigned long long)r->where.offset, len, avail));
  const uint8_t *p = s->buf + s->pos;
  set_raw(r, p, len); /* bytes: the sidecar writes them as hex */
  s->pos += len;
  if (p[len - 1] != 0)
    return nx_err(NX_PARSE, "%s: bad BSON document at byte offset %llu: its last byte (offset "
                  "%llu) is not NUL", r->name, (unsigned long long)r->where.offset,
                  (unsigned long long)(r->where.offset + len - 1));
  if (!bson_init_static(&r->view, p, len))
    return nx_err(NX_PARSE, "%s: bad BSON document at byte offset %llu", r->name,
                  (unsigned long long)r->where.offset);
  size_t bad_off = 0;
  int shape = bson_shape(p, len, &bad_off);
  if (shape == 2)
    return nx_err(NX_LIMIT, "%s: bad BSON document at byte offset %llu: nested deeper than %d levels "
                  "(at byte offset %llu)", r->name, (unsigned long long)r->where.offset,
                  IO_MAX_BSON_DEPTH, (unsigned long long)(r->where.offset + bad_off));
  if (shape)
    return nx_err(NX_PARSE, "%s: bad BSON document at byte offset %llu: malformed element at byte "
                  "offset %llu", r->name, (unsigned long long)r->where.offset,
                  (unsigned long long)(r->where.offset + bad_off));
  if (!bson_validate(&r->view, BSON_VALIDATE_UTF8, &bad_off)) {
    bson_error_t err;
    memset(&err, 0, sizeof err);
    bson_validate_with_error(&r->view, BSON_VALIDATE_UTF8, &err);
    return nx_err(NX_PARSE, "%s: bad BSON document at byte offset %llu: %s (at byte offset %llu)",
                  r->name, (unsigned long long)r->where.offset,
                  err.message[0] ? err.message : "invalid",
                  (unsigned long long)(r->where.offset + bad_off));
  }
  bson_iter_t it;
  if (bson_iter_init(&it, &r->view) && !strings_valid(&it, p, &bad_off))
    return nx_err(NX_PARSE, "%s: bad BSON document at byte offset %llu: invalid UTF-8 at byte offset "
                  "%llu", r->name, (unsigned long long)r->where.offset,
                  (unsigned long long)(r->where.offset + bad_off));
  *doc = &r->view;
  return NX_ROW;
}

int io_reader_next(io_reader *r, const bson_t **doc) {
  *doc = NULL;
  if (r->fatal_rc) {
    nx_err(r->fatal_rc, "%s", r->fatal_msg ? r->fatal_msg : "reader failed");
    return r->fatal_rc;
  }
  switch (r->format) {
  case NX_FORMAT_NDJSON: return ndjson_next(r, doc);
  case NX_FORMAT_JSON: return json_next(r, doc);
  case NX_FORMAT_BSON: return bson_next(r, doc);
  case NX_FORMAT_CSV: return io_csv_next(r, doc);
  default: return nx_err(NX_INVALID, "%s: unknown format %d", r->name, (int)r->format);
  }
}
