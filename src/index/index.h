/*
 * index.h: the index layer's internal API: secondary index definitions, index keys extracted from
 * documents, index maintenance on every document write, index builds, drop, list, statistics and
 * an entry-for-entry integrity check. This is where documents (doc/, match/) meet storage.
 *
 * Trees (storage.h names):
 *   "idx.defs"              key: collection name, NUL, index name; value: BSON definition
 *                           {v, name, key, unique, sparse, partialFilterExpression?, multikey
 *                           (int32 bit i: field i of the key held an array in some document),
 *                           fp (int64 fingerprint of the definition), buildMs, builtAt (date)}
 *   "i:" COLL "$" NAME      one per index; key: keyenc of each field's value (descending fields
 *                           inverted), then keyenc_key(_id) (= the collection tree's key);
 *                           value: 2 bytes LE, the length of that _id suffix.
 *   Collection names never contain '$', index names are refused when they do, so tree names are
 *   unambiguous.
 *
 *     entry key:  [ enc(v1) | enc(v2) | ... | enc(vn) ][ enc(_id) ]     value: [ len(enc(_id)) ]
 *                 <------- the "values" part -------->  <- suffix ->
 *
 * Invariants:
 *   1. For every index I of collection C, the entries of I are exactly the union over the live
 *      documents d of C of keys(I, d) (after sparse / partial selection), in one transaction.
 *   2. Every entry key is unique (the _id suffix makes it so); a unique index additionally never
 *      holds two entries with the same values part and different _id suffixes, except that an
 *      expired document (TTL: invisible to every read) is no conflict: its entries stay until
 *      its document is deleted, beside the entry of the live document that took its key.
 *   3. A definition's `v` is IDX_FORMAT_VERSION and its `fp` the fingerprint of its own fields;
 *      otherwise the index is "stale": writes do not maintain it, the planner never uses it, and
 *      idx_rebuild_stale rebuilds it (called at open and at first write of the collection).
 *   4. A build runs entirely inside the caller's write transaction, so a crash leaves either no
 *      index (the txn never committed) or a complete one; there is no "building" state on disk.
 *
 * Engine hooks (the engine's write path and catalog call these, in the same st_txn):
 *   - idx_write_check (optional, before the collection write: no writes, so a unique violation
 *     leaves a user transaction usable) and idx_on_write (after the collection write).
 *   - idx_coll_dropped / idx_coll_renamed from eng_coll_drop / eng_coll_rename.
 *   Both take `idx_set **cache`: a per-transaction slot the caller keeps (NULL initially, freed
 *   with idx_set_free); pass NULL to load the definitions on every call.
 */
#ifndef NX_INDEX_H
#define NX_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <bson/bson.h>

#include "base.h"
#include "doc.h"
#include "keyenc.h"
#include "match.h"
#include "storage.h"

#define IDX_FORMAT_VERSION 1           /* bump when keys or definitions change meaning */
#define IDX_MAX_FIELDS 32              /* fields in one compound key */
#define IDX_NAME_MAX 128               /* bytes of an index name */
#define IDX_DEFS_TREE "idx.defs"       /* the definitions tree */

/* ---- Definitions ---- */
/* An owned BSON document kept as bytes. Heap structs never embed a bson_t: libbson declares it
 * 128-byte aligned and our allocator returns 16-byte aligned blocks (UBSan reports the access).
 * View one with idx_bson(). */
typedef struct idx_bytes {
  uint8_t *p;   /* the document's bytes, owned; NULL when absent */
  uint32_t n;   /* their length */
} idx_bytes;
/** Points the stack bson_t `out` at b's bytes (read-only view). False when b is absent. */
static inline bool idx_bson(const idx_bytes *b, bson_t *out) { return b->p && bson_init_static(out, b->p, b->n); }

typedef struct idx_field {
  char *path;          /* dotted path, owned */
  doc_path dp;         /* parsed path */
  bool desc;           /* descending (-1) */
} idx_field;

typedef struct idx_def {
  char *coll;              /* collection name, owned */
  char *name;              /* index name, owned */
  char *tree;              /* entry tree name "i:" coll "$" name, owned */
  size_t nfields;          /* number of key fields (1..IDX_MAX_FIELDS) */
  idx_field *fields;       /* the key fields, in key order */
  idx_bytes key;           /* the key pattern, e.g. {age: 1, name: -1} */
  bool unique;             /* duplicate values parts are refused */
  bool sparse;             /* documents missing every key field are not indexed */
  idx_bytes partial_spec;  /* partial filter spec (p NULL when none) */
  filter_t *partial;       /* parsed partial filter, or NULL */
  uint32_t multikey;       /* bit i: field i held an array in some document (never cleared) */
  bool stale;              /* version or fingerprint mismatch: not maintained, not used */
  int64_t build_ms;        /* duration of the last build, ms */
  int64_t built_at;        /* when the last build finished, ms since the epoch */
} idx_def;

/** Parses an index definition from a key pattern ({"age": 1, "b.c": -1}) and options. `name` NULL
 *  generates "age_1_b.c_-1". NX_INVALID names the problem (empty key, direction not 1/-1, '$' or
 *  NUL in the name, more than IDX_MAX_FIELDS fields, a bad partial filter). */
int idx_def_new(const char *coll, const bson_t *key, const char *name, bool unique, bool sparse,
                const bson_t *partial, idx_def **out);
void idx_def_free(idx_def *d); /* accepts NULL */
/** The definition as stored / listed: {v, name, key, unique, sparse, partialFilterExpression?,
 *  multikey, fp, buildMs, builtAt}. `out` is uninitialised on entry. */
int idx_def_to_bson(const idx_def *d, bson_t *out);
/** True when field i of d may hold several keys per document. */
static inline bool idx_field_multikey(const idx_def *d, size_t i) { return (d->multikey >> i) & 1u; }

/* ---- The indexes of one collection, as seen by one transaction ---- */
typedef struct idx_set {
  char *coll;        /* collection name, owned */
  size_t n;          /* number of indexes */
  idx_def **defs;    /* the definitions, in name order, owned */
  uint64_t seq;      /* idx_ddl_seq() when loaded: a later create/drop makes the set stale */
} idx_set;

/** Loads the definitions of `coll` (an empty set when it has none). */
int idx_set_load(st_txn *t, const char *coll, idx_set **out);
/** Returns *cache when still current, else (re)loads it into *cache. `cache` may be NULL: then
 *  *out is a fresh set the caller frees. */
int idx_set_get(st_txn *t, const char *coll, idx_set **cache, idx_set **out);
void idx_set_free(idx_set *s); /* accepts NULL */
/** Finds an index by name in s (NULL when absent). */
idx_def *idx_set_find(const idx_set *s, const char *name);
/** A counter bumped by every create, drop and rebuild in this process (cache invalidation). */
uint64_t idx_ddl_seq(void);

/* ---- Keys ---- */
/**
 * The keys of document `doc` for index d: each an encoded values part followed by the encoded
 * _id, sorted and de-duplicated, appended to `keys` as (u16 LE total length, key bytes) records;
 * *nkeys gets their number. Nothing is appended when the document is not indexed (sparse and
 * missing every field, or not matching the partial filter). *arrays gets bit i set when field i
 * held an array. Errors: NX_INVALID for parallel arrays ("index 'a_1_b_1' of 'c': cannot index
 * parallel arrays 'a' and 'b' (document _id ...)"), NX_LIMIT for a key over ST_MAX_KEY bytes.
 */
int idx_keys(const idx_def *d, const bson_t *doc, nx_buf *keys, size_t *nkeys, uint32_t *arrays);
/** Encodes a values part from the values of each field (vals[i] for field i) into out. */
int idx_encode_values(const idx_def *d, const bson_value_t *const *vals, nx_buf *out);

/* ---- Engine hooks ---- */
/**
 * Checks, without writing, that the change old_doc -> new_doc (either may be NULL: insert,
 * delete) would be accepted by every index of `coll`: no unique violation (NX_EXISTS naming the
 * index, the collection and the duplicate key), no parallel arrays (NX_INVALID), no oversized key
 * (NX_LIMIT). Call it before changing the collection tree when a failure must leave the
 * transaction usable.
 */
int idx_write_check(st_txn *t, const char *coll, idx_set **cache, const bson_t *old_doc,
                    const bson_t *new_doc);
/**
 * Maintains every index of `coll` for the change old_doc -> new_doc (NULL old: insert; NULL new:
 * delete): removes entries only old_doc has, adds entries only new_doc has. It checks first (as
 * idx_write_check) and writes nothing when a check fails; an I/O error while writing leaves the
 * transaction half-done (the caller aborts or poisons it). *writes (may be NULL) grows by the
 * number of st_put/st_del calls made.
 */
int idx_on_write(st_txn *t, const char *coll, idx_set **cache, const bson_t *old_doc,
                 const bson_t *new_doc, uint64_t *writes);
/** Drops every index of `coll` (its trees and definitions). */
int idx_coll_dropped(st_txn *t, const char *coll);
/** Moves every index of `from` to `to` (trees renamed, definitions re-keyed). */
int idx_coll_renamed(st_txn *t, const char *from, const char *to);

/** Tells whether the stored document of `coll` whose collection tree key is id_key is expired
 *  (invisible to every read) in t: NX_OK with *expired (false when there is no such document).
 *  Supplied by the layer that knows the stored form of documents. */
typedef int (*idx_expired_fn)(st_txn *t, const char *coll, st_val id_key, bool *expired);
/** Installs the probe the unique checks use (process-wide; the API layer installs the engine's
 *  at every nx_open). Without one, no document counts as expired. */
void idx_set_expired_probe(idx_expired_fn fn);

/* ---- Build, drop, rebuild ---- */
/** Feeds every live document of the collection to `each` (supplied by the layer that knows the
 *  stored form of documents); `each` returning non-zero stops the walk with that status. */
typedef int (*idx_each_doc_fn)(void *ctx, const bson_t *doc);
typedef int (*idx_scan_fn)(void *scan_ctx, idx_each_doc_fn each, void *each_ctx);

/**
 * Creates index d (taken: freed on every path) on `coll` in write txn t and builds it from the
 * documents `scan` produces; `total` (0 = unknown) is the number of documents for `progress`
 * (may be NULL; non-zero from it cancels: NX_CANCELLED). NX_EXISTS when an index of that name or
 * of the same key pattern and options exists (the message names it). The caller commits or, on
 * failure, aborts t (nothing of the index then remains).
 */
int idx_create(st_txn *t, idx_def *d, idx_scan_fn scan, void *scan_ctx, uint64_t total,
               nx_progress_fn progress, void *progress_ctx);
/** Drops index `name` of `coll`. NX_NOTFOUND names both. */
int idx_drop(st_txn *t, const char *coll, const char *name);
/** Rebuilds every stale index of `coll` (see invariant 3) in write txn t; *rebuilt (may be NULL)
 *  gets their number. */
int idx_rebuild_stale(st_txn *t, const char *coll, idx_scan_fn scan, void *scan_ctx, size_t *rebuilt);

/* ---- Listing and statistics ---- */
/** Appends to `arr` (an open BSON array) one document per index of coll:
 *  {name, key, unique, sparse, partialFilterExpression?, multikey, v, entries, pages, lookups,
 *  buildMs, builtAt, stale}. `pages` is estimated from the entry bytes (see index_stats.c). */
int idx_list(st_txn *t, const char *coll, bson_t *arr);
/** Counts a use of index (coll, name) by the planner (in-memory statistic "lookups"). */
void idx_note_lookup(const char *coll, const char *name);
uint64_t idx_lookups(const char *coll, const char *name);

/* ---- Integrity ---- */
/** Looks up a document by its collection tree key (the _id suffix of an entry): NX_OK with *doc
 *  initialised (caller destroys), or NX_NOTFOUND. */
typedef int (*idx_get_fn)(void *ctx, st_val id_key, bson_t *doc);
/**
 * Verifies that every index of `coll` and the documents agree entry for entry: every key of
 * every document is present, and every entry belongs to a document that produces it. Returns
 * NX_OK or NX_CORRUPT with the first disagreement (index, key in JSON, _id, missing or extra).
 */
int idx_verify(st_txn *t, const char *coll, idx_scan_fn scan, void *scan_ctx, idx_get_fn get,
               void *get_ctx);

#endif
