/*
 * doc.h: the document layer's internal API. Pure functions of BSON values (libbson), knowing
 * nothing of storage: MongoDB's total order across types, JSON in and out, dot-path lookup,
 * validation of documents before they are stored, and UUID generation for `_id`.
 *
 * Ownership vocabulary (STYLE 11): a `bson_value_t` or `bson_iter_t` handed out by a lookup
 * *borrows* from the document it came from and is valid while that document's bytes are.
 * Out-parameters of type `bson_t *` are *uninitialised* on entry; on NX_OK the callee has
 * initialised them and the caller must bson_destroy() them; on error there is nothing to destroy.
 *
 * Errors follow base.h: the function returns the code and records a message with nx_err().
 * The order-preserving key encoding (keyenc.h) is a separate module of this layer.
 */
#ifndef NX_DOC_H
#define NX_DOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <bson/bson.h>

#include "base.h"

/* ---- Limits (MongoDB's) ---- */
#define DOC_MAX_BYTES (16 * 1024 * 1024) /* largest stored document, bytes */
#define DOC_MAX_DEPTH 100                /* deepest nesting of documents/arrays in a stored doc */

/* ---- Comparison: MongoDB's total order ----
 * Type brackets, lowest first:
 *   MinKey < undefined < null < numbers (int32, int64, double, decimal128) < string, symbol <
 *   object < array < binary < ObjectId < bool < date < timestamp < regex < MaxKey
 * (dbpointer, code and code-with-scope sort after regex and before MaxKey.)
 * Numbers compare by exact value across all four types (2^53+1 as int64 is greater than the
 * double 2^53); -0.0 == 0; NaN equals NaN and is lower than every other number; +-Infinity are
 * ordinary extremes. Strings compare bytewise (simple binary collation), shorter prefix first.
 * Objects compare field by field: first by the canonical type of the value, then the field name,
 * then the value; a document that is a prefix of another is lower. Arrays compare element-wise
 * the same way (without names). Binary: length, then subtype, then bytes. Regex: pattern, then
 * options. Timestamps as unsigned (t, i). Dates as signed int64 ms. */

/** Rank of a BSON type's bracket in the order above (MinKey lowest). Equal ranks compare by value. */
int doc_canonical_type_order(bson_type_t t);
/** Compares two values in MongoDB's order. Returns <0, 0 or >0. Never fails. */
int doc_cmp_values(const bson_value_t *a, const bson_value_t *b);
/** Same, for the values under two iterators (no copies are made). */
int doc_cmp_iter(const bson_iter_t *a, const bson_iter_t *b);
/** Compares two whole documents as objects (as doc_cmp_values does for nested documents). */
int doc_cmp_docs(const bson_t *a, const bson_t *b);
/** True when t is one of int32, int64, double, decimal128. */
bool doc_is_number(bson_type_t t);
/** The number under `v` as a double (decimal128 converted through its string; 0 if not a number). */
double doc_number_as_double(const bson_value_t *v);
/** The number under `v` truncated toward zero to an int64, exactly (also for decimal128 and
 *  large int64 values). False for non-numbers, NaN, infinities and values out of int64 range. */
bool doc_number_trunc_i64(const bson_value_t *v, int64_t *out);
/* True with *out set when v is a whole number (int32, int64, or an integral double/decimal128
 * within about +-9.2e18). */
bool doc_number_integral_i64(const bson_value_t *v, int64_t *out);
/** decimal128 arithmetic for $inc / $mul: `*out` = a + b (or a * b when `mul`), where either
 *  operand may be any number type (a double operand is first rounded to 15 significant digits, as
 *  MongoDB converts doubles to decimals in arithmetic). Exact, then rounded half-even to 34 digits;
 *  IEEE 754-2008 special values (NaN, +-Infinity, Inf - Inf = NaN, Inf * 0 = NaN); overflow gives
 *  +-Infinity. False only if an operand is not a number. */
bool doc_decimal_arith(const bson_value_t *a, const bson_value_t *b, bool mul, bson_decimal128_t *out);
/** MongoDB's name of a type as $type spells it ("double", "string", "object", "array", "binData",
 *  "undefined", "objectId", "bool", "date", "null", "regex", "dbPointer", "javascript", "symbol",
 *  "javascriptWithScope", "int", "timestamp", "long", "decimal", "minKey", "maxKey"). */
const char *doc_type_name(bson_type_t t);

/* ---- JSON (Extended JSON through libbson) ---- */
/**
 * Parses one JSON document (relaxed or canonical Extended JSON) into `out` (uninitialised on
 * entry). `len` < 0 means NUL-terminated. Returns NX_OK, or NX_PARSE with libbson's message
 * (which carries the position), or NX_INVALID if the text is not a single JSON object.
 * Example: `bson_t d; if (doc_from_json("{\"a\": 1}", -1, &d) == NX_OK) { ...; bson_destroy(&d); }`
 */
int doc_from_json(const char *json, ssize_t len, bson_t *out);
/** Relaxed Extended JSON of `doc`, NUL-terminated, owned by the caller (free with bson_free);
 *  `len` (may be NULL) receives its length. NULL only if `doc` is malformed. */
char *doc_to_json(const bson_t *doc, size_t *len);
/** Canonical Extended JSON (type-preserving: {"$numberInt": "1"}); same ownership as above. */
char *doc_to_json_canonical(const bson_t *doc, size_t *len);
/** Relaxed JSON of a single value (e.g. `1`, `"x"`, `{"a": 1}`), appended to `buf`. */
int doc_value_to_json(const bson_value_t *v, nx_buf *buf);

/* ---- Dot paths ----
 * A path is a dotted field name, e.g. "a.b.0.c". Components are split once (doc_path_parse);
 * a component that is a non-negative decimal integer without a leading zero ("0", "12") also
 * carries its number, so it can index into an array. */
#define DOC_PATH_MAX_PARTS 128
typedef struct doc_path {
  char *buf;          /* copy of the whole path with '.' replaced by NUL, owned */
  size_t n;           /* number of components */
  const char **parts; /* component i, NUL-terminated, points into buf */
  uint32_t *lens;     /* byte length of component i */
  int64_t *index;     /* numeric value of component i, or -1 if not an array index */
  size_t len;         /* length of the whole dotted path */
} doc_path;

/** Splits `path` (length `len`, or NUL-terminated if len < 0) into `out`. Empty components
 *  ("a..b", ".a", "a.") and more than DOC_PATH_MAX_PARTS components are NX_INVALID naming the
 *  path. On NX_OK release with doc_path_free(). */
int doc_path_parse(const char *path, ssize_t len, doc_path *out);
void doc_path_free(doc_path *p);

/**
 * Exact lookup without array expansion: each component names a field of a document or (if
 * numeric) an element of an array. On true `out` is positioned on the value (borrowed from `doc`).
 * Example: doc {a: [{b: 7}]} and "a.0.b" -> 7; "a.b" -> false.
 */
bool doc_path_get(const bson_t *doc, const doc_path *path, bson_iter_t *out);
/** Same with a dotted string (convenience; no allocation for paths up to 32 components). */
bool doc_get_dotted(const bson_t *doc, const char *dotted, bson_iter_t *out);

/**
 * Visits every value that `path` reaches in `doc` under MongoDB's array rules, the way index keys
 * and sort keys are generated: a non-numeric component applied to an array descends into each
 * element that is a document (one level: arrays nested in arrays are not entered); a numeric
 * component applied to an array takes that element only; a final value that is an
 * array is visited element by element when `expand_leaf_arrays` (an empty array is then visited
 * once as `undefined`, as MongoDB's sort does), else as the array itself.
 * `cb` gets each value (borrowed) and returns 0 to go on or a status code to stop (returned as is).
 * If nothing is reached, `*found` is false (the caller treats it as missing / null).
 */
typedef int (*doc_visit_fn)(const bson_value_t *v, void *ctx);
int doc_path_visit(const bson_t *doc, const doc_path *path, bool expand_leaf_arrays, doc_visit_fn cb,
                   void *ctx, bool *found);

/* ---- Raw element walking, for hot paths (filters) ----
 * A thin bounds-checked walker over BSON bytes that skips libbson's iterator setup: elements are
 * found by key with one memcmp and decoded only when asked. Malformed bytes end the walk. */
typedef struct doc_raw_iter {
  const uint8_t *data; /* the document (4-byte length, elements, NUL) */
  uint32_t len;        /* its length */
  uint32_t off;        /* offset of the next element */
} doc_raw_iter;

typedef struct doc_elem {
  bson_type_t type;  /* element type */
  const char *key;   /* key, NUL-terminated, borrowed */
  uint32_t klen;     /* key length */
  const uint8_t *vp; /* value bytes, borrowed */
  uint32_t vlen;     /* value length in bytes */
} doc_elem;

/** Starts a walk over a document or array given as bytes. False if the header is malformed. */
bool doc_raw_init(doc_raw_iter *it, const uint8_t *data, uint32_t len);
/** The next element; false at the end or on malformed bytes. */
bool doc_raw_next(doc_raw_iter *it, doc_elem *e);
/** Finds the first element named key (klen bytes) in the document bytes. */
bool doc_raw_find(const uint8_t *data, uint32_t len, const char *key, uint32_t klen, doc_elem *e);
/** Decodes an element's value (borrowing from the document bytes, like bson_iter_value). */
void doc_raw_value(const doc_elem *e, bson_value_t *out);

/* ---- Validation before storage ---- */
/**
 * Checks what MongoDB checks on insert: the document is valid BSON (bson_validate), at most
 * DOC_MAX_BYTES, nesting at most DOC_MAX_DEPTH, no top-level field name beginning with '$'
 * (nested '$' names and empty names are allowed, as in MongoDB 5+), no NUL inside names or
 * strings, valid UTF-8 in names and strings, and `_id` not an array, regex or undefined. Returns NX_OK or
 * NX_INVALID with a message naming the field path, e.g. "document: field name '$set' at top level may not
 * start with '$'".
 */
int doc_validate_for_storage(const bson_t *doc);
/** The reference implementation of doc_validate_for_storage (libbson's iterator and validator):
 *  doc_validate_for_storage runs it only when its fast pass over the bytes is unsure. For tests. */
int doc_validate_for_storage_walk(const bson_t *doc);
/** The fast pass alone: true only when the BSON bytes certainly pass doc_validate_for_storage
 *  (false means "unsure", not "invalid"). */
bool doc_valid_fast(const uint8_t *data, uint32_t len);
/** Depth of nesting of `doc` (a flat document is 1), counting arrays and subdocuments; the walk
 *  stops below DOC_MAX_DEPTH + 1, so deeper documents report DOC_MAX_DEPTH + 1. */
int doc_depth(const bson_t *doc);
/** Same with a caller's cap: returns min(depth, cap + 1) without recursing deeper than that. */
int doc_depth_capped(const bson_t *doc, int cap);
/** The reference implementation of doc_depth_capped (libbson's iterator), which runs it only when
 *  its pass over the raw bytes is unsure. For tests. */
int doc_depth_capped_walk(const bson_t *doc, int cap);

/* ---- UUIDs for generated _id (BSON binary subtype 4, BSON_SUBTYPE_UUID) ---- */
/** RFC 9562 version 4: 122 random bits (OpenSSL RAND_bytes). NX_CRYPTO if RAND_bytes fails. */
int doc_gen_uuid_v4(uint8_t out[16]);
/** RFC 9562 version 7: 48-bit big-endian Unix ms `now_ms`, then random bits. Within one process
 *  successive values are strictly increasing (bytewise), also when the clock stalls or steps back
 *  (the previous value is incremented instead), so generated _ids append at the tree's right edge. */
int doc_gen_uuid_v7(int64_t now_ms, uint8_t out[16]);
/** Appends `uuid` to `doc` as a binary subtype 4 field named `key`. */
bool doc_append_uuid(bson_t *doc, const char *key, const uint8_t uuid[16]);

#endif
