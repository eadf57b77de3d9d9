/*
 * io_write.c: the writers: documents to NDJSON, a JSON array, CSV or concatenated BSON, written
 * atomically.
 *
 * Invariants:
 *   1. The destination is never seen half-written: bytes go to a temporary file in the same
 *      folder (".NAME.nxtmp.PID.N", created exclusively), which is fsynced, renamed over the
 *      destination, and the folder fsynced. On any failure the temporary file is removed.
 *   2. An existing destination is refused (NX_EXISTS) unless `force`.
 *   3. Memory is one output buffer (flushed at IO_WBUF bytes) plus one document's rendering.
 *
 * Renderings (docs/import-export.md):
 *   NDJSON / JSON: relaxed Extended JSON per document, or canonical (types kept exactly) when
 *   asked; JSON is "[\n" doc ",\n" doc "\n]\n".
 *   CSV: a header row, then one row per document; each column is a dotted path looked up without
 *   array expansion. Strings are always quoted (so "123" or "true" stay strings on re-import);
 *   null and missing are empty; numbers, booleans and dates (ISO-8601, UTC) are bare; a double
 *   always shows a '.' or an exponent, so it re-imports as a double; documents, arrays and the
 *   other BSON types are quoted relaxed Extended JSON text. Rows end with "\n".
 *   BSON: the documents' bytes, concatenated (mongodump's COLLECTION.bson).
 */
#include <csv.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "doc.h"
#include "io.h"

#define IO_WBUF (256u * 1024u)

struct io_writer {
  io_write_opts o;        /* options; columns copied below */
  char *path;             /* destination, owned */
  char *tmp;              /* temporary file, owned */
  os_file *f;             /* the temporary file */
  nx_buf out;             /* bytes not yet written */
  uint64_t off;           /* bytes written to f */
  uint64_t ndocs;         /* documents written */
  char **cols;            /* CSV columns, owned */
  size_t ncols;
  nx_buf cell;            /* CSV: one value's text */
  bool canonical;         /* JSON: canonical Extended JSON */
};

static atomic_uint g_tmp_counter;

static char *tmp_name(const char *path) {
  const char *slash = strrchr(path, '/');
  size_t dl = slash ? (size_t)(slash - path) + 1 : 0;
  nx_buf b;
  nx_buf_init(&b, 0);
  if (nx_buf_append(&b, path, dl) || nx_buf_printf(&b, ".%s.nxtmp.%ld.%u", path + dl, (long)getpid(),
                                                    atomic_fetch_add(&g_tmp_counter, 1))) {
    nx_buf_free(&b);
    return NULL;
  }
  return (char *)b.data;
}

static int create_tmp(const char *path, bool force, char **tmp, os_file **f) {
  bool exists = false;
  int rc = os_exists(path, &exists);
  if (rc) return rc;
  if (exists && !force)
    return nx_err(NX_EXISTS, "%s already exists (set force to overwrite it)", path);
  *tmp = tmp_name(path);
  if (!*tmp) return nx_err(NX_NOMEM, "%s: out of memory", path);
  rc = os_open(*tmp, OS_CREATE | OS_EXCL, f);
  if (rc) {
    nx_free(*tmp);
    *tmp = NULL;
    return nx_err_prefix(rc, "exporting to %s: creating the temporary file: ", path);
  }
  return NX_OK;
}

/* fsync, close, rename into place, fsync the folder. Removes tmp on failure. */
static int publish(os_file *f, const char *tmp, const char *path) {
  int rc = os_sync(f);
  int rc2 = os_close(f);
  if (rc == NX_OK) rc = rc2;
  if (rc == NX_OK) rc = os_rename(tmp, path);
  if (rc) {
    int keep = rc;
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", nx_err_msg());
    os_unlink(tmp);
    return nx_err(keep, "writing %s: %s", path, msg);
  }
  rc = os_sync_dir(path);
  if (rc) return nx_err_prefix(rc, "writing %s: syncing its folder: ", path);
  return NX_OK;
}

int io_write_file_atomic(const char *path, const void *data, size_t n, bool force) {
  char *tmp = NULL;
  os_file *f = NULL;
  int rc = create_tmp(path, force, &tmp, &f);
  if (rc) return rc;
  rc = os_pwrite(f, data, n, 0);
  if (rc) {
    os_close(f);
    os_unlink(tmp);
  } else {
    rc = publish(f, tmp, path);
  }
  nx_free(tmp);
  return rc;
}

static int flush(io_writer *w) {
  if (w->out.len == 0) return NX_OK;
  int rc = os_pwrite(w->f, w->out.data, w->out.len, w->off);
  if (rc) return nx_err_prefix(rc, "exporting to %s: ", w->path);
  w->off += w->out.len;
  w->out.len = 0;
  return NX_OK;
}

static int csv_cell(nx_buf *b, const void *s, size_t n) {
  size_t need = csv_write(NULL, 0, s, n);
  int rc = nx_buf_reserve(b, need + 1);
  if (rc) return rc;
  csv_write(b->data + b->len, need, s, n);
  b->len += need;
  b->data[b->len] = 0;
  return NX_OK;
}

static int write_header(io_writer *w) {
  char d = w->o.delimiter ? w->o.delimiter : ',';
  for (size_t i = 0; i < w->ncols; i++) {
    if (i && nx_buf_append(&w->out, &d, 1)) return NX_NOMEM;
    if (csv_cell(&w->out, w->cols[i], strlen(w->cols[i]))) return NX_NOMEM;
  }
  return nx_buf_append(&w->out, "\n", 1);
}

int io_writer_open(const char *path, const io_write_opts *opts, io_writer **out) {
  *out = NULL;
  if (opts->format < NX_FORMAT_NDJSON || opts->format > NX_FORMAT_BSON)
    return nx_err(NX_INVALID, "exporting to %s: no output format given", path);
  if (opts->format == NX_FORMAT_CSV && opts->ncolumns == 0)
    return nx_err(NX_INVALID, "exporting to %s: CSV needs at least one column", path);
  io_writer *w = nx_calloc(1, sizeof *w);
  if (!w) return nx_err(NX_NOMEM, "exporting to %s: out of memory", path);
  w->o = *opts;
  w->o.columns = NULL;
  nx_buf_init(&w->out, 0);
  nx_buf_init(&w->cell, 0);
  w->path = nx_strdup(path);
  int rc = w->path ? NX_OK : nx_err(NX_NOMEM, "out of memory");
  if (rc == NX_OK && opts->format == NX_FORMAT_CSV) {
    w->cols = nx_calloc(opts->ncolumns, sizeof *w->cols);
    if (!w->cols) rc = nx_err(NX_NOMEM, "out of memory");
    for (size_t i = 0; rc == NX_OK && i < opts->ncolumns; i++) {
      w->cols[i] = nx_strdup(opts->columns[i]);
      if (!w->cols[i]) rc = nx_err(NX_NOMEM, "out of memory");
      else w->ncols = i + 1;
    }
  }
  if (rc == NX_OK) rc = create_tmp(path, opts->force, &w->tmp, &w->f);
  if (rc == NX_OK && opts->format == NX_FORMAT_JSON) rc = nx_buf_append(&w->out, "[", 1);
  if (rc == NX_OK && opts->format == NX_FORMAT_CSV) rc = write_header(w);
  if (rc) {
    io_writer_abort(w);
    return rc;
  }
  *out = w;
  return NX_OK;
}

void io_writer_set_canonical(io_writer *w, bool canonical) { w->canonical = canonical; }

/* One CSV value (the value under it) into w->cell, unquoted or quoted as the rules above say. */
static int csv_value(io_writer *w, const bson_iter_t *it) {
  nx_buf *c = &w->cell;
  char tmp[64];
  switch (bson_iter_type(it)) {
  case BSON_TYPE_UTF8: {
    uint32_t n;
    const char *s = bson_iter_utf8(it, &n);
    return csv_cell(c, s, n);
  }
  case BSON_TYPE_NULL:
  case BSON_TYPE_UNDEFINED: return NX_OK;
  case BSON_TYPE_INT32: return nx_buf_printf(c, "%d", bson_iter_int32(it));
  case BSON_TYPE_INT64: return nx_buf_printf(c, "%lld", (long long)bson_iter_int64(it));
  case BSON_TYPE_BOOL: return nx_buf_printf(c, "%s", bson_iter_bool(it) ? "true" : "false");
  case BSON_TYPE_DOUBLE: {
    double d = bson_iter_double(it);
    if (!isfinite(d)) {
      const char *t = isnan(d) ? "NaN" : d > 0 ? "Infinity" : "-Infinity";
      return csv_cell(c, t, strlen(t));
    }
    snprintf(tmp, sizeof tmp, "%.17g", d);
    if (!strpbrk(tmp, ".eE")) return nx_buf_printf(c, "%s.0", tmp);
    return nx_buf_printf(c, "%s", tmp);
  }
  case BSON_TYPE_DATE_TIME:
    io_format_iso8601(bson_iter_date_time(it), tmp);
    return nx_buf_printf(c, "%s", tmp);
  default: {
    bson_value_t v;
    bson_value_copy(bson_iter_value((bson_iter_t *)it), &v);
    nx_buf j;
    nx_buf_init(&j, 0);
    int rc = doc_value_to_json(&v, &j);
    bson_value_destroy(&v);
    if (rc == NX_OK) rc = csv_cell(c, j.data ? (const char *)j.data : "", j.len);
    nx_buf_free(&j);
    return rc;
  }
  }
}

static int write_csv_row(io_writer *w, const bson_t *doc) {
  char d = w->o.delimiter ? w->o.delimiter : ',';
  for (size_t i = 0; i < w->ncols; i++) {
    if (i && nx_buf_append(&w->out, &d, 1)) return NX_NOMEM;
    bson_iter_t it;
    if (!doc_get_dotted(doc, w->cols[i], &it)) continue;
    w->cell.len = 0;
    int rc = csv_value(w, &it);
    if (rc == NX_OK && w->cell.len) rc = nx_buf_append(&w->out, w->cell.data, w->cell.len);
    if (rc) return rc;
  }
  return nx_buf_append(&w->out, "\n", 1);
}

int io_writer_write(io_writer *w, const bson_t *doc) {
  int rc = NX_OK;
  switch (w->o.format) {
  case NX_FORMAT_NDJSON:
  case NX_FORMAT_JSON: {
    size_t n = 0;
    char *s = w->canonical ? bson_as_canonical_extended_json(doc, &n)
                           : bson_as_relaxed_extended_json(doc, &n);
    if (!s) return nx_err(NX_INVALID, "exporting to %s: document %llu is not valid BSON", w->path,
                          (unsigned long long)w->ndocs + 1);
    if (w->o.format == NX_FORMAT_JSON) rc = nx_buf_append(&w->out, w->ndocs ? ",\n" : "\n", w->ndocs ? 2 : 1);
    if (rc == NX_OK) rc = nx_buf_append(&w->out, s, n);
    if (rc == NX_OK && w->o.format == NX_FORMAT_NDJSON) rc = nx_buf_append(&w->out, "\n", 1);
    bson_free(s);
    break;
  }
  case NX_FORMAT_CSV: rc = write_csv_row(w, doc); break;
  case NX_FORMAT_BSON: rc = nx_buf_append(&w->out, bson_get_data(doc), doc->len); break;
  default: rc = nx_err(NX_INVALID, "bad format");
  }
  if (rc) return rc == NX_NOMEM ? nx_err(rc, "exporting to %s: out of memory", w->path) : rc;
  w->ndocs++;
  if (w->out.len >= IO_WBUF) return flush(w);
  return NX_OK;
}

uint64_t io_writer_bytes(const io_writer *w) { return w->off + w->out.len; }

static void writer_free(io_writer *w) {
  nx_buf_free(&w->out);
  nx_buf_free(&w->cell);
  for (size_t i = 0; i < w->ncols; i++) nx_free(w->cols[i]);
  nx_free(w->cols);
  nx_free(w->path);
  nx_free(w->tmp);
  nx_free(w);
}

int io_writer_commit(io_writer *w) {
  int rc = NX_OK;
  if (w->o.format == NX_FORMAT_JSON) rc = nx_buf_append(&w->out, w->ndocs ? "\n]\n" : "]\n", w->ndocs ? 3 : 2);
  if (rc == NX_OK) rc = flush(w);
  if (rc) {
    io_writer_abort(w);
    return rc;
  }
  rc = publish(w->f, w->tmp, w->path);
  w->f = NULL;
  writer_free(w);
  return rc;
}

void io_writer_abort(io_writer *w) {
  if (!w) return;
  if (w->f) {
    os_close(w->f);
    os_unlink(w->tmp);
  }
  writer_free(w);
}

/* ---- CSV columns from documents ---- */
static int add_col(const char *name, size_t n, char ***cols, size_t *ncols, size_t *cap, size_t *hint) {
  if (*hint < *ncols && strlen((*cols)[*hint]) == n && memcmp((*cols)[*hint], name, n) == 0) {
    (*hint)++;
    return NX_OK;
  }
  for (size_t i = 0; i < *ncols; i++)
    if (strlen((*cols)[i]) == n && memcmp((*cols)[i], name, n) == 0) {
      *hint = i + 1;
      return NX_OK;
    }
  if (*ncols >= IO_MAX_CSV_COLUMNS)
    return nx_err(NX_LIMIT, "CSV export: more than %u distinct fields", IO_MAX_CSV_COLUMNS);
  if (*ncols == *cap) {
    size_t nc = *cap ? *cap * 2 : 16;
    char **a = nx_realloc(*cols, nc * sizeof *a);
    if (!a) return nx_err(NX_NOMEM, "out of memory");
    *cols = a;
    *cap = nc;
  }
  (*cols)[*ncols] = nx_strndup(name, n);
  if (!(*cols)[*ncols]) return nx_err(NX_NOMEM, "out of memory");
  (*ncols)++;
  *hint = *ncols;
  return NX_OK;
}

static int collect(const bson_t *doc, nx_buf *prefix, char ***cols, size_t *ncols, size_t *cap,
                   size_t *hint) {
  bson_iter_t it;
  if (!bson_iter_init(&it, doc)) return nx_err(NX_INVALID, "CSV export: malformed document");
  while (bson_iter_next(&it)) {
    size_t plen = prefix->len;
    const char *k = bson_iter_key(&it);
    int rc = NX_OK;
    if (plen) rc = nx_buf_append(prefix, ".", 1);
    if (rc == NX_OK) rc = nx_buf_append(prefix, k, strlen(k));
    if (rc) return nx_err(NX_NOMEM, "out of memory");
    bson_t sub;
    const uint8_t *data;
    uint32_t len;
    if (BSON_ITER_HOLDS_DOCUMENT(&it)) {
      bson_iter_document(&it, &len, &data);
      if (len > 5 && bson_init_static(&sub, data, len)) {
        rc = collect(&sub, prefix, cols, ncols, cap, hint);
        prefix->len = plen;
        if (rc) return rc;
        continue;
      }
    }
    rc = add_col((const char *)prefix->data, prefix->len, cols, ncols, cap, hint);
    prefix->len = plen;
    if (rc) return rc;
  }
  return NX_OK;
}

int io_csv_collect_columns(const bson_t *doc, char ***cols, size_t *ncols, size_t *cap) {
  nx_buf prefix;
  nx_buf_init(&prefix, 0);
  size_t hint = 0;
  int rc = collect(doc, &prefix, cols, ncols, cap, &hint);
  nx_buf_free(&prefix);
  return rc;
}

/* ---- Redaction ---- */
typedef struct redact_list {
  char **paths;
  size_t n;
} redact_list;

static bool path_is(const redact_list *l, const char *p, size_t n) {
  for (size_t i = 0; i < l->n; i++)
    if (strlen(l->paths[i]) == n && memcmp(l->paths[i], p, n) == 0) return true;
  return false;
}

static bool path_under(const redact_list *l, const char *p, size_t n) {
  for (size_t i = 0; i < l->n; i++)
    if (strlen(l->paths[i]) > n && memcmp(l->paths[i], p, n) == 0 && l->paths[i][n] == '.') return true;
  return false;
}

static bool redact_copy(const redact_list *l, bson_iter_t *it, bson_t *out, nx_buf *prefix,
                        bool drop, bool in_array);

static bool redact_value(const redact_list *l, bson_iter_t *it, bson_t *out, nx_buf *prefix,
                         bool drop, const char *key, int klen) {
  size_t n = prefix->len;
  if (path_is(l, (const char *)prefix->data, n)) {
    if (drop) return true;
    return bson_append_utf8(out, key, klen, "***", 3);
  }
  if ((BSON_ITER_HOLDS_DOCUMENT(it) || BSON_ITER_HOLDS_ARRAY(it)) &&
      path_under(l, (const char *)prefix->data, n)) {
    bson_iter_t child;
    bson_t sub;
    bool arr = BSON_ITER_HOLDS_ARRAY(it);
    if (!bson_iter_recurse(it, &child)) return false;
    bool ok = arr ? bson_append_array_begin(out, key, klen, &sub)
                  : bson_append_document_begin(out, key, klen, &sub);
    ok = ok && redact_copy(l, &child, &sub, prefix, drop, arr);
    ok = ok && (arr ? bson_append_array_end(out, &sub) : bson_append_document_end(out, &sub));
    return ok;
  }
  return bson_append_iter(out, key, klen, it);
}

/* Copies the elements under `it` into out; array elements keep the prefix (paths go through
 * arrays), document fields extend it. */
static bool redact_copy(const redact_list *l, bson_iter_t *it, bson_t *out, nx_buf *prefix,
                        bool drop, bool in_array) {
  size_t base = prefix->len;
  uint32_t idx = 0;
  while (bson_iter_next(it)) {
    const char *k = bson_iter_key(it);
    bool ok;
    if (in_array) {
      char key[16];
      snprintf(key, sizeof key, "%u", idx++);
      if (!BSON_ITER_HOLDS_DOCUMENT(it)) {
        ok = bson_append_iter(out, key, -1, it);
      } else {
        bson_iter_t child;
        bson_t sub;
        ok = bson_iter_recurse(it, &child) && bson_append_document_begin(out, key, -1, &sub) &&
             redact_copy(l, &child, &sub, prefix, drop, false) && bson_append_document_end(out, &sub);
      }
    } else {
      if ((base && nx_buf_append(prefix, ".", 1)) || nx_buf_append(prefix, k, strlen(k))) return false;
      ok = redact_value(l, it, out, prefix, drop, k, -1);
    }
    prefix->len = base;
    if (prefix->data) prefix->data[base] = 0;
    if (!ok) return false;
  }
  return true;
}

int io_redact(const bson_t *doc, const char *fields, bool drop, bson_t *out) {
  redact_list l = {NULL, 0};
  char *copy = nx_strdup(fields ? fields : "");
  if (!copy) return nx_err(NX_NOMEM, "out of memory");
  size_t cap = 1;
  for (const char *p = copy; *p; p++) cap += *p == ',';
  l.paths = nx_calloc(cap, sizeof *l.paths);
  if (!l.paths) {
    nx_free(copy);
    return nx_err(NX_NOMEM, "out of memory");
  }
  for (char *save = NULL, *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    while (*t == ' ') t++;
    size_t n = strlen(t);
    while (n && t[n - 1] == ' ') t[--n] = 0;
    if (n) l.paths[l.n++] = t;
  }
  nx_buf prefix;
  nx_buf_init(&prefix, 0);
  bson_iter_t it;
  bson_init(out);
  bool ok = bson_iter_init(&it, doc) && redact_copy(&l, &it, out, &prefix, drop, false);
  nx_buf_free(&prefix);
  nx_free(l.paths);
  nx_free(copy);
  if (!ok) {
    bson_destroy(out);
    return nx_err(NX_INVALID, "redaction: malformed document or out of memory");
  }
  return NX_OK;
}
