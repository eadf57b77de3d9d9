/*
 * io_fuzz.c: the one function every io fuzz target and the corpus replay test call
 * (io_fuzz_read, see io.h). Kept in the library so gcc builds replay exactly what libFuzzer runs.
 */
#include <stdlib.h>
#include <string.h>

#include "io.h"

static void check_doc(const bson_t *doc, bool exact) {
  if (!bson_validate(doc, BSON_VALIDATE_NONE, NULL)) abort();
  size_t n = 0;
  char *s = bson_as_canonical_extended_json(doc, &n);
  if (!s) abort();
  /* canonical JSON parses back; for documents libbson built from text, to the same bytes (BSON
   * input may hold deprecated types whose JSON form is not byte-exact) */
  bson_t back;
  bson_error_t e;
  if (bson_init_from_json(&back, s, (ssize_t)n, &e)) {
    if (exact && (back.len != doc->len || memcmp(bson_get_data(&back), bson_get_data(doc), doc->len) != 0))
      abort();
    bson_destroy(&back);
  } else if (exact) {
    abort();
  }
  bson_free(s);
  /* the CSV column collector and redaction accept whatever the readers produce */
  char **cols = NULL;
  size_t ncols = 0, cap = 0;
  if (io_csv_collect_columns(doc, &cols, &ncols, &cap) == NX_OK && ncols) {
    bson_t red;
    if (io_redact(doc, cols[0], ncols % 2 == 0, &red) == NX_OK) bson_destroy(&red);
  }
  for (size_t i = 0; i < ncols; i++) nx_free(cols[i]);
  nx_free(cols);
}

size_t io_fuzz_read(const uint8_t *data, size_t n, nx_format format) {
  io_read_opts o;
  memset(&o, 0, sizeof o);
  o.format = format;
  o.max_record = 1u << 16; /* small, so the limit paths are reachable */
  if (format == NX_FORMAT_CSV) {
    o.no_header = (n & 1) != 0;
    o.no_infer = (n & 2) != 0;
    o.delimiter = (n & 4) ? ';' : ',';
  }
  io_reader *r;
  if (io_reader_open_mem(data, n, "fuzz", &o, &r) != NX_OK) return 0;
  size_t records = 0;
  for (;;) {
    const bson_t *doc;
    int rc = io_reader_next(r, &doc);
    if (rc == NX_DONE) break;
    records++;
    if (rc == NX_ROW) {
      check_doc(doc, format != NX_FORMAT_BSON);
      continue;
    }
    io_where w;
    io_reader_where(r, &w);
    if (w.raw_len > IO_MAX_RAW_KEPT) abort();
    /* offsets stay inside the input (UTF-16 is counted in its UTF-8 transcoding: 3 bytes per unit) */
    if (w.offset > n * 2 + 3) abort();
    if (w.fatal) {
      const bson_t *again;
      if (io_reader_next(r, &again) == NX_ROW) abort(); /* fatal errors are sticky */
      break;
    }
    if (records > n + 1) abort(); /* every record consumes input: no endless loop */
  }
  io_reader_close(r);
  return records;
}
