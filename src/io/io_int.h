/*
 * io_int.h: private to the io layer's readers: the reader structure shared by the format files
 * (io_reader.c: dispatch, NDJSON, JSON, BSON; io_csv_read.c: CSV).
 */
#ifndef NX_IO_INT_H
#define NX_IO_INT_H

#include "io.h"

typedef struct io_csv io_csv;

struct io_reader {
  void *alloc_base;       /* what nx_calloc returned (the struct is 128-aligned inside it,
                             because bson_t demands 128-byte alignment) */
  io_src src;             /* the bytes */
  io_read_opts opts;      /* options (max_record resolved) */
  nx_format format;       /* the format being read */
  char *name;             /* input name for messages, owned */
  bson_t doc;             /* the last parsed document (when doc_live) */
  bool doc_live;          /* doc must be destroyed before reuse */
  bson_t view;            /* BSON: a static view into src.buf */
  nx_buf rec;             /* bytes of a text record that spans reads */
  io_where where;         /* where the last record came from */
  uint64_t line;          /* line number at src's read position (1-based) */
  uint64_t nrec;          /* records seen, good or bad */
  int fatal_rc;           /* sticky status after a fatal error (0: none) */
  char *fatal_msg;        /* its message, owned (repeated on later calls) */
  bool discard_line;      /* NDJSON: skipping the rest of an over-long line */
  int json_state;         /* JSON: 0 start, 1 in array, 2 object sequence, 3 done */
  bool json_need_elem;    /* JSON array: a ',' was seen, an element must follow */
  io_csv *csv;            /* CSV state (io_csv_read.c), owned */
};

/** Records a fatal error: later calls return it again. Returns rc. */
int io_reader_fatal(io_reader *r, int rc);

int io_csv_open(io_reader *r);
int io_csv_next(io_reader *r, const bson_t **doc);
void io_csv_close(io_reader *r);

#endif
