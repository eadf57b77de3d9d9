/*
 * io_export.c: nx_export's body: a collection, through the query layer's streaming cursor
 * (filter, projection, sort), into a writer (io_write.c).
 *
 * Invariants:
 *   1. One read transaction (a snapshot) serves the whole export, including the first pass that
 *      infers CSV columns, so both passes see the same documents.
 *   2. Nothing is visible at the destination until the writer commits (temp + fsync + rename +
 *      folder fsync); a failure or a cancel leaves the destination as it was.
 *   3. BSON follows mongodump's layout: a folder receiving COLLECTION.bson and
 *      COLLECTION.metadata.json ({"indexes": [{"v": 2, "key": {...}, "name": ..., "unique"?,
 *      "sparse"?, "partialFilterExpression"?}], "collectionName": ..., "type": "collection"}, in
 *      canonical Extended JSON as mongodump writes it). A destination ending in ".bson" is taken
 *      as the data file itself, with NAME.metadata.json beside it.
 *   4. Redaction happens after projection; CSV columns are inferred after redaction, so dropped
 *      fields never become columns.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "doc.h"
#include "index.h"
#include "io.h"
#include "query.h"

static bool has_suffix(const char *s, const char *suf) {
  size_t n = strlen(s), k = strlen(suf);
  return n >= k && strcasecmp(s + n - k, suf) == 0;
}

static bool is_dir(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static nx_format format_for(const char *path) {
  if (has_suffix(path, ".ndjson") || has_suffix(path, ".jsonl") || has_suffix(path, ".ldjson"))
    return NX_FORMAT_NDJSON;
  if (has_suffix(path, ".json")) return NX_FORMAT_JSON;
  if (has_suffix(path, ".csv") || has_suffix(path, ".tsv")) return NX_FORMAT_CSV;
  if (has_suffix(path, ".bson") || is_dir(path)) return NX_FORMAT_BSON;
  /* a name without an extension is a folder to create, as mongodump's --out */
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  if (!strchr(base, '.')) return NX_FORMAT_BSON;
  return NX_FORMAT_AUTO;
}

/* The next document to write (projected by the cursor, then redacted into *tmp). */
static int next_doc(nx_cursor *cur, const nx_export_opts *o, bson_t *tmp, bool *tmp_live,
                    const bson_t **doc) {
  int rc = q_next(cur, doc);
  if (rc != NX_ROW) return rc;
  if (o->redact && o->redact[0]) {
    if (*tmp_live) bson_destroy(tmp);
    *tmp_live = false;
    int rc2 = io_redact(*doc, o->redact, o->redact_drop, tmp);
    if (rc2) return rc2;
    *tmp_live = true;
    *doc = tmp;
  }
  return NX_ROW;
}

static void free_cols(char **cols, size_t n) {
  for (size_t i = 0; i < n; i++) nx_free(cols[i]);
  nx_free(cols);
}

static int split_fields(const char *fields, char ***cols, size_t *n, size_t *cap) {
  const char *p = fields;
  while (*p) {
    const char *e = strchr(p, ',');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    const char *s = p;
    while (len && *s == ' ') {
      s++;
      len--;
    }
    while (len && s[len - 1] == ' ') len--;
    if (len) {
      if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        char **a = nx_realloc(*cols, nc * sizeof *a);
        if (!a) return nx_err(NX_NOMEM, "out of memory");
        *cols = a;
        *cap = nc;
      }
      (*cols)[*n] = nx_strndup(s, len);
      if (!(*cols)[*n]) return nx_err(NX_NOMEM, "out of memory");
      (*n)++;
    }
    if (!e) break;
    p = e + 1;
  }
  if (*n == 0) return nx_err(NX_INVALID, "export: the field list \"%s\" names no field", fields);
  return NX_OK;
}

/* mongodump's metadata: the _id index, then the collection's secondary indexes. */
static int metadata_json(nx_txn *t, const char *coll, nx_buf *out) {
  bson_t list, arr, meta, ids, idkey, marr;
  bson_init(&list);
  bson_append_array_begin(&list, "indexes", -1, &arr);
  int rc = idx_list(t->st, coll, &arr);
  bson_append_array_end(&list, &arr);
  if (rc) {
    bson_destroy(&list);
    return nx_err_prefix(rc, "export of '%s': listing indexes: ", coll);
  }
  bson_init(&meta);
  bson_append_array_begin(&meta, "indexes", -1, &marr);
  bson_append_document_begin(&marr, "0", -1, &ids);
  bson_append_int32(&ids, "v", -1, 2);
  bson_append_document_begin(&ids, "key", -1, &idkey);
  bson_append_int32(&idkey, "_id", -1, 1);
  bson_append_document_end(&ids, &idkey);
  bson_append_utf8(&ids, "name", -1, "_id_", -1);
  bson_append_document_end(&marr, &ids);
  uint32_t k = 1;
  bson_iter_t it, ai;
  if (bson_iter_init_find(&it, &list, "indexes") && bson_iter_recurse(&it, &ai)) {
    while (bson_iter_next(&ai)) {
      bson_t def, ent;
      const uint8_t *d;
      uint32_t dl;
      if (!BSON_ITER_HOLDS_DOCUMENT(&ai)) continue;
      bson_iter_document(&ai, &dl, &d);
      if (!bson_init_static(&def, d, dl)) continue;
      char key[16];
      snprintf(key, sizeof key, "%u", k++);
      bson_append_document_begin(&marr, key, -1, &ent);
      bson_append_int32(&ent, "v", -1, 2);
      bson_iter_t f;
      if (bson_iter_init_find(&f, &def, "key")) bson_append_iter(&ent, "key", -1, &f);
      if (bson_iter_init_find(&f, &def, "name")) bson_append_iter(&ent, "name", -1, &f);
      if (bson_iter_init_find(&f, &def, "unique") && bson_iter_as_bool(&f))
        bson_append_bool(&ent, "unique", -1, true);
      if (bson_iter_init_find(&f, &def, "sparse") && bson_iter_as_bool(&f))
        bson_append_bool(&ent, "sparse", -1, true);
      if (bson_iter_init_find(&f, &def, "partialFilterExpression"))
        bson_append_iter(&ent, "partialFilterExpression", -1, &f);
      bson_append_document_end(&marr, &ent);
    }
  }
  bson_append_array_end(&meta, &marr);
  bson_append_utf8(&meta, "collectionName", -1, coll, -1);
  bson_append_utf8(&meta, "type", -1, "collection", -1);
  size_t n = 0;
  char *s = bson_as_canonical_extended_json(&meta, &n);
  rc = s ? nx_buf_append(out, s, n) : nx_err(NX_INVALID, "export: cannot render metadata");
  if (rc == NX_OK) rc = nx_buf_append(out, "\n", 1);
  bson_free(s);
  bson_destroy(&meta);
  bson_destroy(&list);
  return rc;
}

typedef struct export_ctx {
  nx_db *db;
  const char *coll;
  const char *path;
  const nx_export_opts *o;
  const bson_t *filter;
  q_opts qo;
  nx_export_report *rep;
  nx_txn *t;
  char **cols;
  size_t ncols, cols_cap;
  char *data_path;        /* where the documents go, owned */
  char *meta_path;        /* BSON: the metadata file, owned */
} export_ctx;

static int infer_columns(export_ctx *x) {
  nx_cursor *cur;
  int rc = q_find(x->t, false, x->coll, x->filter, &x->qo, &cur);
  if (rc) return rc;
  bson_t tmp;
  bool live = false;
  const bson_t *doc;
  while ((rc = next_doc(cur, x->o, &tmp, &live, &doc)) == NX_ROW) {
    rc = io_csv_collect_columns(doc, &x->cols, &x->ncols, &x->cols_cap);
    if (rc) break;
  }
  if (live) bson_destroy(&tmp);
  q_close(cur);
  if (rc == NX_DONE) rc = NX_OK;
  if (rc == NX_OK && x->ncols == 0) {
    /* no document, or only empty ones: a lone _id column keeps the file a valid CSV */
    rc = split_fields("_id", &x->cols, &x->ncols, &x->cols_cap);
  }
  return rc;
}

static int paths_for(export_ctx *x, nx_format f) {
  nx_buf b;
  nx_buf_init(&b, 0);
  if (f != NX_FORMAT_BSON) {
    x->data_path = nx_strdup(x->path);
    return x->data_path ? NX_OK : nx_err(NX_NOMEM, "out of memory");
  }
  int rc;
  if (has_suffix(x->path, ".bson")) {
    size_t stem = strlen(x->path) - 5;
    x->data_path = nx_strdup(x->path);
    rc = nx_buf_append(&b, x->path, stem);
    if (rc == NX_OK) rc = nx_buf_append(&b, ".metadata.json", 14);
  } else {
    if (!is_dir(x->path)) {
      bool exists = false;
      rc = os_exists(x->path, &exists);
      if (rc) return rc;
      if (exists) return nx_err(NX_EXISTS, "export: %s exists and is not a folder (BSON exports go "
                                "to a folder, mongodump's layout)", x->path);
      /* the OS layer has no directory creation; a folder is not data that needs a fault path */
      if (mkdir(x->path, 0755) != 0 && errno != EEXIST)
        return nx_err(NX_IO, "export: creating the folder %s: %s", x->path, strerror(errno));
    }
    size_t n = strlen(x->path);
    while (n > 1 && x->path[n - 1] == '/') n--;
    /* the collection name becomes a file name: '/', '\\' and '%' are percent-encoded (as
     * mongodump does for '/'), so a name like "../x" cannot leave the folder */
    nx_buf name;
    nx_buf_init(&name, 0);
    rc = NX_OK;
    for (const char *p = x->coll; rc == NX_OK && *p; p++) {
      if (*p == '/' || *p == '\\' || *p == '%') rc = nx_buf_printf(&name, "%%%02X", (unsigned)(unsigned char)*p);
      else rc = nx_buf_append(&name, p, 1);
    }
    nx_buf d;
    nx_buf_init(&d, 0);
    if (rc == NX_OK) rc = nx_buf_printf(&d, "%.*s/%s.bson", (int)n, x->path, (const char *)name.data);
    x->data_path = (char *)d.data;
    if (rc == NX_OK) rc = nx_buf_printf(&b, "%.*s/%s.metadata.json", (int)n, x->path, (const char *)name.data);
    nx_buf_free(&name);
  }
  x->meta_path = (char *)b.data;
  if (rc == NX_OK && !x->data_path) rc = nx_err(NX_NOMEM, "out of memory");
  if (rc == NX_OK && !x->o->force) {
    bool exists = false;
    rc = os_exists(x->meta_path, &exists);
    if (rc == NX_OK && exists)
      rc = nx_err(NX_EXISTS, "%s already exists (set force to overwrite it)", x->meta_path);
  }
  return rc;
}

static int run(export_ctx *x, nx_format f) {
  int rc = eng_txn_begin(x->db, false, false, &x->t);
  if (rc) return rc;
  eng_coll *c;
  rc = eng_coll_get(x->t, x->coll, false, &c);
  if (rc == NX_NOTFOUND) return nx_err(NX_NOTFOUND, "export: collection '%s' does not exist", x->coll);
  if (rc) return rc;
  rc = paths_for(x, f);
  if (rc) return rc;
  if (f == NX_FORMAT_CSV) {
    if (x->o->fields && x->o->fields[0]) rc = split_fields(x->o->fields, &x->cols, &x->ncols, &x->cols_cap);
    else rc = infer_columns(x);
    if (rc) return rc;
  }
  io_write_opts wo;
  memset(&wo, 0, sizeof wo);
  wo.format = f;
  wo.force = x->o->force;
  wo.delimiter = has_suffix(x->path, ".tsv") ? '\t' : ',';
  wo.columns = (const char *const *)x->cols;
  wo.ncolumns = x->ncols;
  io_writer *w;
  rc = io_writer_open(x->data_path, &wo, &w);
  if (rc) return rc;
  io_writer_set_canonical(w, x->o->size >= offsetof(nx_export_opts, canonical) + sizeof(bool) &&
                                 x->o->canonical);
  nx_cursor *cur;
  rc = q_find(x->t, false, x->coll, x->filter, &x->qo, &cur);
  if (rc) {
    io_writer_abort(w);
    return rc;
  }
  bson_t tmp;
  bool live = false;
  const bson_t *doc;
  while ((rc = next_doc(cur, x->o, &tmp, &live, &doc)) == NX_ROW) {
    rc = io_writer_write(w, doc);
    if (rc) break;
    x->rep->written++;
    if (x->o->progress && x->rep->written % 1000 == 0 &&
        x->o->progress(x->o->progress_ctx, x->rep->written, 0)) {
      rc = nx_err(NX_CANCELLED, "export of '%s' to %s cancelled by the progress callback", x->coll,
                  x->path);
      break;
    }
  }
  if (live) bson_destroy(&tmp);
  q_close(cur);
  if (rc != NX_DONE) {
    io_writer_abort(w);
    x->rep->written = 0;
    return rc;
  }
  x->rep->bytes = io_writer_bytes(w);
  nx_buf meta;
  nx_buf_init(&meta, 0);
  rc = f == NX_FORMAT_BSON ? metadata_json(x->t, x->coll, &meta) : NX_OK;
  if (rc) {
    io_writer_abort(w);
    nx_buf_free(&meta);
    return rc;
  }
  rc = io_writer_commit(w);
  if (rc == NX_OK && f == NX_FORMAT_BSON) {
    rc = io_write_file_atomic(x->meta_path, meta.data, meta.len, x->o->force);
    x->rep->bytes += meta.len;
  }
  nx_buf_free(&meta);
  if (rc == NX_OK && x->o->progress) x->o->progress(x->o->progress_ctx, x->rep->written, x->rep->written);
  return rc;
}

int io_export(nx_db *db, const char *coll, const char *path, const nx_export_opts *o,
              const bson_t *filter, const bson_t *projection, const bson_t *sort,
              nx_export_report *rep) {
  uint64_t t0 = nx_mono_ns();
  memset(rep, 0, sizeof *rep);
  nx_format f = o->format != NX_FORMAT_AUTO ? o->format : format_for(path);
  if (f == NX_FORMAT_AUTO)
    return nx_err(NX_INVALID, "export to %s: cannot tell the format from the name (use .ndjson, "
                  ".jsonl, .json, .csv, .tsv, .bson or a folder, or set the format)", path);
  export_ctx x;
  memset(&x, 0, sizeof x);
  x.db = db;
  x.coll = coll;
  x.path = path;
  x.o = o;
  x.filter = filter;
  x.qo.projection = projection;
  x.qo.sort = sort;
  x.rep = rep;
  int rc = run(&x, f);
  if (x.t) eng_txn_abort(x.t);
  free_cols(x.cols, x.ncols);
  nx_free(x.data_path);
  nx_free(x.meta_path);
  if (rc) rep->written = 0;
  rep->seconds = (double)(nx_mono_ns() - t0) / 1e9;
  return rc;
}
