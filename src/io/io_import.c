/*
 * io_import.c: nx_import's body: a reader's documents inserted into a collection in batches.
 *
 * Invariants:
 *   1. Constant memory: one reader (fixed buffer + one record) and one batch (at most batch_size
 *      documents and IO_BATCH_BYTES bytes of BSON) are held at a time.
 *   2. Each batch is one write transaction through the engine's write path (eng_prepare_insert,
 *      eng_doc_write), so indexes and expiry are maintained as for any insert.
 *   3. Without skip_errors, the first bad record (unreadable, invalid for storage, bad ttl value,
 *      duplicate _id, ...) stops the import: the batch it belongs to is aborted, so nothing from
 *      it is committed; earlier batches stay committed (report.inserted counts them).
 *   4. With skip_errors, every bad record is written to PATH.errors.jsonl as one JSON object
 *      {"line", "offset", "reason", "raw"} (BSON: line 0 and "raw_hex", the document's bytes, at most
 *      IO_MAX_RAW_KEPT) and the import goes on; a record
 *      whose insert fails is dropped from its batch (the batch is replayed without it when the
 *      failed write left the transaction unusable). A fatal reader error (broken structure: an
 *      unclosed quote or array, a bad BSON length) still stops the import, after committing
 *      nothing from the current batch (the fatal error is logged in the sidecar too). A stale
 *      sidecar from an earlier run is removed first.
 *   5. The progress callback runs after each committed batch with (bytes read, file size); a
 *      non-zero return aborts the current batch and returns NX_CANCELLED (earlier batches stay).
 */
#include <stdio.h>
#include <string.h>

#include "doc.h"
#include "engine.h"
#include "io.h"

#define IO_BATCH_BYTES (64u * 1024u * 1024u)

typedef struct batch_ent {
  uint8_t *data;          /* owned copy of the BSON bytes (kept as bytes: a heap bson_t would
                             miss the 128-byte alignment libbson declares) */
  uint32_t len;           /* its length */
  int64_t expires_ms;     /* 0: none */
  uint64_t line, offset;  /* where it came from */
  bool failed;            /* dropped after an insert failure (skip_errors) */
} batch_ent;

typedef struct import_ctx {
  nx_db *db;
  const char *path;
  const char *coll;
  const nx_import_opts *o;
  nx_import_report *rep;
  io_reader *r;
  batch_ent *batch;       /* batch_size entries */
  size_t n;               /* entries in use */
  size_t bytes;           /* BSON bytes in the batch */
  char *err_path;         /* PATH.errors.jsonl, owned */
  os_file *err_file;      /* opened at the first bad record */
  uint64_t err_off;       /* bytes written to it */
  nx_buf line;            /* one sidecar line */
} import_ctx;

/* ---- the error sidecar ---- */
static int sidecar_write(import_ctx *x, uint64_t line, uint64_t offset, const char *reason,
                         const char *raw, size_t raw_len, bool raw_is_bytes) {
  int rc = NX_OK;
  if (!x->err_file) {
    rc = os_open(x->err_path, OS_CREATE, &x->err_file);
    if (rc) return nx_err_prefix(rc, "import %s: opening the error file: ", x->path);
  }
  x->line.len = 0;
  rc = nx_buf_printf(&x->line, "{\"line\": %llu, \"offset\": %llu, \"reason\": ",
                     (unsigned long long)line, (unsigned long long)offset);
  if (rc == NX_OK) rc = io_json_escape(&x->line, reason, strlen(reason));
  if (raw_is_bytes && raw) {
    /* BSON has no text: its bytes in hex */
    static const char hex[] = "0123456789abcdef";
    if (rc == NX_OK) rc = nx_buf_append(&x->line, ", \"raw_hex\": \"", 14);
    for (size_t i = 0; rc == NX_OK && i < raw_len; i++) {
      char h[2] = {hex[(uint8_t)raw[i] >> 4], hex[(uint8_t)raw[i] & 15]};
      rc = nx_buf_append(&x->line, h, 2);
    }
    if (rc == NX_OK) rc = nx_buf_append(&x->line, "\"", 1);
  } else {
    if (rc == NX_OK) rc = nx_buf_append(&x->line, ", \"raw\": ", 9);
    if (rc == NX_OK) rc = io_json_escape(&x->line, raw ? raw : "", raw ? raw_len : 0);
  }
  if (rc == NX_OK) rc = nx_buf_append(&x->line, "}\n", 2);
  if (rc == NX_OK) rc = os_pwrite(x->err_file, x->line.data, x->line.len, x->err_off);
  if (rc) return nx_err_prefix(rc, "import %s: writing %s: ", x->path, x->err_path);
  x->err_off += x->line.len;
  return NX_OK;
}

/* A bad record: stop (returns rc with the message kept) or log it and go on (returns NX_OK). */
static int bad_record(import_ctx *x, int rc, uint64_t line, uint64_t offset, const char *raw,
                      size_t raw_len, bool raw_is_bytes, bool fatal) {
  x->rep->failed++;
  if (!x->o->skip_errors) return rc;
  char reason[1024];
  snprintf(reason, sizeof reason, "%s", nx_err_msg());
  int rc2 = sidecar_write(x, line, offset, reason, raw, raw_len, raw_is_bytes);
  if (rc2) return rc2;
  if (fatal) return nx_err(rc, "%s", reason); /* logged too, but the reader cannot go on */
  nx_err_clear();
  return NX_OK;
}

/* Prefixes the message with where the record came from ("FILE: line L, byte offset O: ", or
 * "FILE: byte offset O: " for BSON). */
static void where_prefix(int rc, const char *path, uint64_t line, uint64_t offset) {
  if (line)
    nx_err_prefix(rc, "%s: line %llu, byte offset %llu: ", path, (unsigned long long)line,
                  (unsigned long long)offset);
  else
    nx_err_prefix(rc, "%s: byte offset %llu: ", path, (unsigned long long)offset);
}

/* ---- ttl_field ---- */
static int ttl_of(import_ctx *x, const bson_t *doc, int64_t now, int64_t *exp) {
  *exp = 0;
  if (!x->o->ttl_field || !x->o->ttl_field[0]) return NX_OK;
  bson_iter_t it;
  if (!doc_get_dotted(doc, x->o->ttl_field, &it)) return NX_OK;
  switch (bson_iter_type(&it)) {
  case BSON_TYPE_DATE_TIME: *exp = bson_iter_date_time(&it); break;
  case BSON_TYPE_INT32:
  case BSON_TYPE_INT64:
  case BSON_TYPE_DOUBLE: {
    double secs = bson_iter_as_double(&it);
    if (!(secs >= -9.0e12 && secs <= 9.0e12))
      return nx_err(NX_INVALID, "ttl_field '%s': %g seconds is out of range", x->o->ttl_field, secs);
    *exp = now + (int64_t)(secs * 1000.0);
    break;
  }
  case BSON_TYPE_UTF8: {
    uint32_t n;
    const char *s = bson_iter_utf8(&it, &n);
    if (!io_parse_iso8601(s, n, exp))
      return nx_err(NX_INVALID, "ttl_field '%s': the string \"%.40s\" is not an ISO-8601 date",
                    x->o->ttl_field, s);
    break;
  }
  case BSON_TYPE_NULL: break;
  default:
    return nx_err(NX_INVALID, "ttl_field '%s' holds a %s; expected a date, an ISO-8601 string or a "
                  "number of seconds", x->o->ttl_field, doc_type_name(bson_iter_type(&it)));
  }
  if (*exp == 0) *exp = -1; /* 0 means "never" in the engine: keep "expired at the epoch" */
  return NX_OK;
}

/* ---- batches ---- */
static void batch_clear(import_ctx *x) {
  for (size_t i = 0; i < x->n; i++) nx_free(x->batch[i].data);
  x->n = 0;
  x->bytes = 0;
}

/* Inserts the batch in one transaction. With skip_errors a failing document is logged and
 * dropped; when its failed write left changes behind, the transaction is aborted and the batch
 * replayed without it. */
static int batch_flush(import_ctx *x) {
  if (x->n == 0) return NX_OK;
  for (;;) {
    nx_txn *t;
    int rc = eng_txn_begin(x->db, true, false, &t);
    if (rc) return rc;
    eng_coll *c;
    rc = eng_coll_get(t, x->coll, true, &c);
    if (rc) {
      eng_txn_abort(t);
      return nx_err_prefix(rc, "import into '%s': ", x->coll);
    }
    bool replay = false;
    uint64_t ok = 0;
    for (size_t i = 0; i < x->n && rc == NX_OK; i++) {
      batch_ent *e = &x->batch[i];
      if (e->failed) continue;
      uint64_t before = t->writes;
      bson_t fin, doc;
      if (!bson_init_static(&doc, e->data, e->len)) {
        rc = nx_err(NX_INVALID, "malformed document");
      } else {
        rc = eng_prepare_insert(t, c, &doc, &fin);
      }
      if (rc == NX_OK) {
        rc = eng_doc_write(t, c, ENG_INSERT, NULL, NULL, &fin, e->expires_ms);
        bson_destroy(&fin);
      }
      if (rc == NX_OK) {
        ok++;
        continue;
      }
      /* this record failed */
      where_prefix(rc, x->path, e->line, e->offset);
      size_t jl = 0;
      char *json = bson_init_static(&doc, e->data, e->len) ? bson_as_relaxed_extended_json(&doc, &jl) : NULL;
      if (jl > IO_MAX_RAW_KEPT) jl = IO_MAX_RAW_KEPT;
      e->failed = true;
      int rc2 = bad_record(x, rc, e->line, e->offset, json, jl, false, false);
      bson_free(json);
      if (rc2) {
        eng_txn_abort(t);
        return rc2;
      }
      rc = NX_OK;
      if (t->writes != before || t->poisoned) {
        replay = true;
        break;
      }
    }
    if (replay) {
      eng_txn_abort(t);
      continue;
    }
    uint64_t done = io_reader_bytes(x->r), total = io_reader_size(x->r);
    if (total && done > total) done = total; /* UTF-16 input: done counts its UTF-8 transcoding */
    if (x->o->progress && x->o->progress(x->o->progress_ctx, done, total)) {
      eng_txn_abort(t);
      return nx_err(NX_CANCELLED, "import of %s into '%s' cancelled by the progress callback", x->path,
                    x->coll);
    }
    rc = eng_txn_commit(t);
    if (rc) return nx_err_prefix(rc, "import into '%s': committing a batch: ", x->coll);
    x->rep->inserted += ok;
    batch_clear(x);
    return NX_OK;
  }
}

static int run(import_ctx *x) {
  io_read_opts ro;
  memset(&ro, 0, sizeof ro);
  ro.format = x->o->format;
  ro.delimiter = x->o->delimiter;
  ro.no_header = x->o->no_header;
  ro.no_infer = x->o->no_infer;
  int rc = io_reader_open_file(x->path, &ro, &x->r);
  if (rc) return nx_err_prefix(rc, "import: ");
  size_t bsize = x->o->batch_size ? x->o->batch_size : 1000;
  x->batch = nx_calloc(bsize, sizeof *x->batch);
  if (!x->batch) return nx_err(NX_NOMEM, "import: out of memory for a batch of %zu", bsize);
  int64_t now = nx_now_ms();
  bool bson_in = io_reader_format(x->r) == NX_FORMAT_BSON; /* raw is bytes, not text */
  for (;;) {
    const bson_t *doc;
    rc = io_reader_next(x->r, &doc);
    if (rc == NX_DONE) break;
    io_where w;
    io_reader_where(x->r, &w);
    if (rc != NX_ROW) {
      x->rep->read++;
      rc = bad_record(x, rc, w.line, w.offset, w.raw, w.raw_len, bson_in, w.fatal);
      if (rc) return rc;
      continue;
    }
    x->rep->read++;
    int64_t exp = 0;
    rc = doc_validate_for_storage(doc);
    if (rc == NX_OK) rc = ttl_of(x, doc, now, &exp);
    if (rc) {
      where_prefix(rc, x->path, w.line, w.offset);
      rc = bad_record(x, rc, w.line, w.offset, w.raw, w.raw_len, bson_in, false);
      if (rc) return rc;
      continue;
    }
    batch_ent *e = &x->batch[x->n];
    e->data = nx_malloc(doc->len);
    if (!e->data) return nx_err(NX_NOMEM, "import: out of memory");
    memcpy(e->data, bson_get_data(doc), doc->len);
    e->len = doc->len;
    e->expires_ms = exp;
    e->line = w.line;
    e->offset = w.offset;
    e->failed = false;
    x->n++;
    x->bytes += doc->len;
    if (x->n == bsize || x->bytes >= IO_BATCH_BYTES) {
      rc = batch_flush(x);
      if (rc) return rc;
    }
  }
  return batch_flush(x);
}

int io_import(nx_db *db, const char *path, const char *coll, const nx_import_opts *o,
              nx_import_report *rep) {
  uint64_t t0 = nx_mono_ns();
  import_ctx x;
  memset(&x, 0, sizeof x);
  memset(rep, 0, sizeof *rep);
  x.db = db;
  x.path = path;
  x.coll = coll;
  x.o = o;
  x.rep = rep;
  nx_buf_init(&x.line, 0);
  nx_buf p;
  nx_buf_init(&p, 0);
  int rc = nx_buf_printf(&p, "%s.errors.jsonl", path);
  x.err_path = (char *)p.data;
  if (rc == NX_OK && o->skip_errors) {
    bool exists = false;
    rc = os_exists(x.err_path, &exists);
    if (rc == NX_OK && exists) rc = os_unlink(x.err_path);
  }
  if (rc == NX_OK) rc = run(&x);
  if (x.err_file) {
    int rc2 = os_sync(x.err_file);
    os_close(x.err_file);
    if (rc == NX_OK && rc2) rc = rc2;
  }
  if (x.r) rep->bytes = io_reader_bytes(x.r);
  if (x.batch) {
    batch_clear(&x);
    nx_free(x.batch);
  }
  io_reader_close(x.r);
  nx_buf_free(&x.line);
  nx_free(x.err_path);
  rep->seconds = (double)(nx_mono_ns() - t0) / 1e9;
  return rc;
}
