/*
 * io.h: the import/export layer's internal API.
 *
 * Two halves, each usable without a database:
 *   - READERS turn a byte stream (a file through the OS layer, or memory for fuzzers and tests)
 *     into a stream of BSON documents, one record at a time, in constant memory: NDJSON, JSON
 *     (an array of objects, or objects one after another), CSV (libcsv) and BSON (concatenated,
 *     as mongodump writes it). Every bad record is reported with its line (text formats) and
 *     byte offset, and the reader says whether it can go on past it (`fatal`).
 *   - WRITERS turn a stream of documents into a file written atomically: a temporary file in the
 *     destination's folder, fsynced, renamed into place, the folder fsynced.
 * Then nx_import/nx_export (io_import.c, io_export.c) connect them to the engine and the query
 * layer.
 *
 * Invariants:
 *   1. A reader never holds more than one record (plus a fixed-size read buffer): memory does not
 *      grow with the file. Records are capped (io_read_opts.max_record) before they are buffered.
 *   2. Text is UTF-8 when it reaches a parser: a UTF-16 file (with a BOM) is transcoded on the fly;
 *      invalid UTF-8 is a record error with the offset of the first bad byte.
 *   3. Offsets are byte offsets in the file (for a UTF-16 file: in its UTF-8 transcoding, and the
 *      message says so); lines are 1-based.
 */
#ifndef NX_IO_H
#define NX_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <bson/bson.h>

#include "base.h"
#include "os.h"

/* ---- Limits ---- */
#define IO_MAX_DOC_BYTES (16u * 1024u * 1024u)   /* a BSON document (MongoDB's limit) */
#define IO_MAX_TEXT_RECORD (64u * 1024u * 1024u) /* a JSON line / element / CSV row, bytes */
#define IO_MAX_RAW_KEPT 4096u                    /* raw text kept for the error sidecar, bytes */
#define IO_MAX_CSV_COLUMNS 10000u                /* columns of a CSV file */

/* ---- Byte source: a file or memory, buffered, UTF-16 transcoded, offsets counted ---- */
typedef struct io_src {
  os_file *file;          /* the file, owned (NULL for memory) */
  const uint8_t *mem;     /* memory input (borrowed), when file is NULL */
  uint64_t raw_size;      /* bytes in the input */
  uint64_t raw_off;       /* next raw offset to read */
  uint8_t *buf;           /* UTF-8 bytes, owned */
  size_t cap;             /* bytes allocated in buf */
  size_t pos;             /* next byte to consume in buf */
  size_t len;             /* bytes valid in buf */
  uint64_t off;           /* offset (UTF-8 stream) of buf[0] */
  int utf16;              /* 0: UTF-8 input; 1: UTF-16LE; 2: UTF-16BE (transcoded) */
  uint8_t *raw;           /* raw read buffer for transcoding, owned */
  uint8_t carry[4];       /* raw bytes of a code unit / surrogate pair cut by a read */
  size_t ncarry;          /* bytes in carry */
  bool eof;               /* no more input after buf[len] */
  const char *name;       /* the input's name for messages (borrowed) */
} io_src;

/** Opens `path` through the OS layer. Detects and skips a UTF-8 BOM, sets up transcoding after a
 *  UTF-16 BOM, refuses UTF-32 (NX_INVALID). */
int io_src_open_file(io_src *s, const char *path);
/** Wraps memory (borrowed until io_src_close); same BOM handling. */
int io_src_open_mem(io_src *s, const void *data, size_t n, const char *name);
void io_src_close(io_src *s);
/** Makes more bytes available: moves the unconsumed bytes buf[pos..len) to the front, then reads.
 *  Leaves eof set and len unchanged at the end of the input. */
int io_src_fill(io_src *s);
/** Offset of the byte at buf[pos]. */
static inline uint64_t io_src_tell(const io_src *s) { return s->off + s->pos; }

/* ---- Readers ---- */
typedef struct io_read_opts {
  nx_format format;       /* NX_FORMAT_AUTO: by extension, then by sniffing */
  char delimiter;         /* CSV delimiter; 0 or ',' = comma (sniffed when AUTO) */
  bool no_header;         /* CSV: the first row is data; columns are field1, field2, ... */
  bool no_infer;          /* CSV: every value stays a string */
  size_t max_record;      /* cap on one text record, bytes; 0 = IO_MAX_TEXT_RECORD */
} io_read_opts;

/** Where the last record (good or bad) came from. */
typedef struct io_where {
  uint64_t line;          /* 1-based line of the record's first byte; 0 for BSON */
  uint64_t offset;        /* byte offset of the record's first byte */
  const char *raw;        /* the record's raw bytes (borrowed, at most IO_MAX_RAW_KEPT; BSON: none) */
  size_t raw_len;         /* bytes at raw */
  bool fatal;             /* after a bad record: the reader cannot go on */
} io_where;

typedef struct io_reader io_reader;

/** Opens a reader over a file. The format is opts->format, else guessed (io_detect). */
int io_reader_open_file(const char *path, const io_read_opts *opts, io_reader **out);
/** Opens a reader over memory (borrowed until close); `name` names it in messages. */
int io_reader_open_mem(const void *data, size_t n, const char *name, const io_read_opts *opts,
                       io_reader **out);
/**
 * Reads the next record. Returns NX_ROW with *doc borrowed until the next call, NX_DONE at the
 * end, or an error for a bad record (NX_PARSE, NX_LIMIT, NX_INVALID, NX_IO) whose message names
 * the input, the line and the byte offset; io_reader_where then says where, and whether the
 * reader can continue (a later call skips past the bad record) or not (fatal: later calls return
 * the same error).
 */
int io_reader_next(io_reader *r, const bson_t **doc);
void io_reader_where(const io_reader *r, io_where *out);
/** The format being read (after detection). */
nx_format io_reader_format(const io_reader *r);
/** Bytes consumed so far (of the UTF-8 stream). */
uint64_t io_reader_bytes(const io_reader *r);
/** Input size in bytes (0 when unknown), for progress. */
uint64_t io_reader_size(const io_reader *r);
void io_reader_close(io_reader *r);

/**
 * Guesses the format of `path` from its extension (.ndjson .jsonl .ldjson .json .csv .tsv
 * .bson), else from its first bytes `head` (n of them): a BSON length prefix, then JSON tokens
 * ('[' or '{'), else CSV. *delim receives a sniffed CSV delimiter (',' ';' '\t' '|'), or 0.
 */
nx_format io_detect(const char *path, const uint8_t *head, size_t n, char *delim);
/** Name of a format ("ndjson", "json", "csv", "bson", "auto"). */
const char *io_format_name(nx_format f);

/* ---- Text helpers ---- */
/** Index of the first byte of s[0..n) that is not valid UTF-8 (or is NUL when `no_nul`), or n. */
size_t io_utf8_check(const uint8_t *s, size_t n, bool no_nul);
/** Appends s as a JSON string (quotes included), escaping as JSON requires; invalid UTF-8 bytes
 *  become U+FFFD. */
int io_json_escape(nx_buf *b, const void *s, size_t n);
/** Parses an ISO-8601 date-time ("2024-05-01", "2024-05-01T10:20:30Z", "...30.123+02:00") into
 *  ms since the epoch. Returns false when s is not one. */
bool io_parse_iso8601(const char *s, size_t n, int64_t *ms);
/** Formats ms since the epoch as "YYYY-MM-DDTHH:MM:SS.mmmZ" into out (>= 32 bytes). */
void io_format_iso8601(int64_t ms, char out[32]);

/* ---- Writers: documents to a file, atomically ---- */
typedef struct io_write_opts {
  nx_format format;       /* NDJSON, JSON, CSV or BSON */
  bool force;             /* replace an existing destination */
  char delimiter;         /* CSV; 0 = ',' */
  const char *const *columns; /* CSV columns (dotted paths); required for CSV */
  size_t ncolumns;
} io_write_opts;

typedef struct io_writer io_writer;

/** Creates a temporary file beside `path` (NX_EXISTS when path exists and not force). */
int io_writer_open(const char *path, const io_write_opts *opts, io_writer **out);
/** JSON and NDJSON: write canonical Extended JSON (every type kept) instead of relaxed. */
void io_writer_set_canonical(io_writer *w, bool canonical);
/** Appends one document. */
int io_writer_write(io_writer *w, const bson_t *doc);
/** Finishes the format, fsyncs, renames over `path`, fsyncs the folder. Frees w (also on failure,
 *  removing the temporary file). */
int io_writer_commit(io_writer *w);
/** Removes the temporary file and frees w. Accepts NULL. */
void io_writer_abort(io_writer *w);
/** Bytes written so far. */
uint64_t io_writer_bytes(const io_writer *w);

/** Writes a whole small file atomically (temp, fsync, rename, folder fsync). */
int io_write_file_atomic(const char *path, const void *data, size_t n, bool force);

/** Flattens doc's fields into dotted column names, adding unseen ones to `cols` (first-seen
 *  order; *ncols and *cap track the array of owned strings). Arrays and empty documents are leaves. */
int io_csv_collect_columns(const bson_t *doc, char ***cols, size_t *ncols, size_t *cap);

/* ---- Import and export (the bodies of nx_import and nx_export) ---- */
/** Imports `path` into collection `coll` (checked by the caller) as io_import.c describes. */
int io_import(nx_db *db, const char *path, const char *coll, const nx_import_opts *o,
              nx_import_report *rep);
/** Exports `coll` to `path` as io_export.c describes; filter/projection/sort may be NULL. */
int io_export(nx_db *db, const char *coll, const char *path, const nx_export_opts *o,
              const bson_t *filter, const bson_t *projection, const bson_t *sort,
              nx_export_report *rep);

/* ---- Fuzzing ---- */
/**
 * Reads every record of `data` as `format` through a reader (options derived from n, so a corpus
 * file needs no option header), checks each document returned (valid BSON, renders as JSON,
 * writes through a CSV/NDJSON/BSON rendering) and returns the number of records read. Aborts on
 * a broken invariant: the entry point of fuzz/fuzz_*.c and of tests/test_fuzz_replay_io.c.
 */
size_t io_fuzz_read(const uint8_t *data, size_t n, nx_format format);

/* ---- Redaction ---- */
/** Copies doc into out (initialised by the call) with each dotted path of the comma-separated
 *  list `fields` replaced by the string "***" or, when drop, removed. Paths go through arrays of
 *  documents element by element. */
int io_redact(const bson_t *doc, const char *fields, bool drop, bson_t *out);

#endif
