/*
 * nexuslite.h: the whole public API of NexusLite, an embedded document database.
 *
 * Anything not declared in this header is private and may change without notice. The header is
 * usable from C (C11) and C++. Documents are BSON through libbson (<bson/bson.h>).
 *
 * Conventions (read once, they hold everywhere):
 *  - Every fallible call returns an int status code: NX_OK (0) or one of the NX_* codes below.
 *    nx_strerror(rc) names the code; nx_errmsg(db) says what failed and where (file, page,
 *    byte offset, collection, field). The message is kept per thread.
 *  - Handles are opaque; constructors return them through a trailing `**out`; every destructor
 *    accepts NULL.
 *  - Ownership: "borrowed" results are valid until the next call on the same cursor or the end
 *    of the transaction; "owned" results are released by the caller with the named function.
 *  - A `nx_txn *txn` argument may be NULL: the call then runs in its own transaction
 *    (auto-commit). A transaction belongs to one thread at a time; nx_db may be shared.
 *
 * ABI promise: within a major version, functions are only added; structs that carry options
 * begin with a `size` field set by the caller (NX_OPTS_INIT) so that they can grow.
 */
#ifndef NEXUSLITE_H
#define NEXUSLITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <bson/bson.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(NX_BUILDING_LIBRARY)
#define NX_API __attribute__((visibility("default")))
#else
#define NX_API
#endif

/* ---- Versions -------------------------------------------------------------------------- */
#define NX_VERSION_MAJOR 0
#define NX_VERSION_MINOR 1
#define NX_VERSION_PATCH 0
#define NX_VERSION_STRING "0.1.0"
/** On-disk format version written into every file this library creates. */
#define NX_FORMAT_VERSION 1

/** Returns the library version, "MAJOR.MINOR.PATCH". Example: `puts(nx_version());` */
NX_API const char *nx_version(void);

/* ---- Status codes ---------------------------------------------------------------------- */
/* One table generates the enum, nx_strerror() and nx_code_name(). */
#define NX_STATUS_MAP(X)                                                                     \
  X(OK, 0, "not an error")                                                                 \
  X(ERROR, 1, "generic error")                                                             \
  X(NOMEM, 2, "out of memory")                                                             \
  X(IO, 3, "I/O error")                                                                    \
  X(CORRUPT, 4, "database file is corrupt")                                                \
  X(LOCKED, 5, "database is locked by another process")                                    \
  X(NOTFOUND, 6, "not found")                                                              \
  X(EXISTS, 7, "already exists")                                                           \
  X(INVALID, 8, "invalid argument")                                                        \
  X(FULL, 9, "disk or database is full")                                                   \
  X(READONLY, 10, "database is read-only")                                                 \
  X(BUSY, 11, "resource busy")                                                             \
  X(FATAL, 12, "handle is unusable after a failed fsync; reopen the database")             \
  X(VERSION, 13, "unsupported file format version")                                        \
  X(CRYPTO, 14, "wrong key or failed authentication")                                      \
  X(LIMIT, 15, "a limit was exceeded")                                                     \
  X(CANCELLED, 16, "operation cancelled")                                                  \
  X(MISUSE, 17, "API misuse")                                                              \
  X(PARSE, 18, "malformed input")                                                          \
  X(ROW, 100, "another row is available")                                                  \
  X(DONE, 101, "no more rows")

typedef enum nx_status {
#define NX_STATUS_ENUM_(name, value, text) NX_##name = value,
  NX_STATUS_MAP(NX_STATUS_ENUM_)
#undef NX_STATUS_ENUM_
} nx_status;

/** Returns a static English description of a status code. Example: `puts(nx_strerror(rc));` */
NX_API const char *nx_strerror(int rc);
/** Returns the code's name, e.g. "NX_CORRUPT". Example: `printf("%s\n", nx_code_name(rc));` */
NX_API const char *nx_code_name(int rc);

/* ---- Memory ------------------------------------------------------------------------------ */
/**
 * Replaces the allocator used for all of NexusLite's memory (and libbson's). Call it before any
 * other NexusLite call; NULL members keep the default. Returns NX_OK or NX_MISUSE when called too
 * late. Example: `nx_set_allocator(my_malloc, my_realloc, my_free);`
 */
NX_API int nx_set_allocator(void *(*malloc_fn)(size_t), void *(*realloc_fn)(void *, size_t),
                            void (*free_fn)(void *));
/** Frees memory that a NexusLite call returned as owned (strings, arrays). Accepts NULL.
 *  Example: `char *s = nx_to_json(doc, false); puts(s); nx_free(s);` */
NX_API void nx_free(void *p);

/* ---- Databases --------------------------------------------------------------------------- */
typedef struct nx_db nx_db;
typedef struct nx_txn nx_txn;

/** Durability of commits. */
typedef enum nx_durability {
  NX_DURABILITY_FULL = 0,   /**< fsync per commit (group commit shares it): never loses a commit */
  NX_DURABILITY_NORMAL = 1, /**< fsync at checkpoint: a crash may lose recent commits, never corrupts */
  NX_DURABILITY_OFF = 2     /**< no fsync: bulk loads and tests */
} nx_durability;

/** Options for nx_open. Initialise with NX_OPEN_OPTS_INIT, then change what you need. */
typedef struct nx_open_opts {
  size_t size;               /**< sizeof(nx_open_opts), set by NX_OPEN_OPTS_INIT */
  uint32_t page_size;        /**< for new files: power of two, 4096..65536; default 4096 */
  uint64_t cache_bytes;      /**< page cache size in bytes; default 64 MiB */
  nx_durability durability;  /**< default NX_DURABILITY_FULL */
  bool read_only;            /**< open without writing anything */
  bool create_if_missing;    /**< create the file if it does not exist (default true) */
  uint64_t checkpoint_bytes; /**< automatic checkpoint when the log passes this; default 64 MiB */
  /** Run automatic checkpoints in a background thread (default false: in the committing
   *  thread). The thread copies the log's committed pages into the main file and fsyncs it
   *  while writers go on; only the short last step (pages committed meanwhile, the meta page,
   *  the log restart) holds the writer lock. Durability is the same either way. With
   *  NX_DURABILITY_FULL the thread also keeps the log's preallocated space (written zeros,
   *  synced) ahead of the writer, so a commit's fsync flushes only its own frames. */
  bool checkpoint_thread;
} nx_open_opts;

#define NX_OPEN_OPTS_INIT {sizeof(nx_open_opts), 4096, 64u << 20, NX_DURABILITY_FULL, false, true, 64u << 20, false}

/**
 * Opens (or creates) the database at `path`, or an in-memory one when path is ":memory:".
 * [in] path: main file name, e.g. "app.db"; the log is "app.db.wasp", the lock "app.db.lock".
 * [in] opts: NULL for defaults. [out] out: the handle, to be closed with nx_close.
 * Returns NX_OK, NX_LOCKED (another process holds it; the message names its pid), NX_CORRUPT,
 * NX_VERSION (written by a newer NexusLite), NX_IO, NX_NOTFOUND (missing and not creating).
 * Recovery of the log runs here.
 * Example:
 *   nx_db *db; if (nx_open("app.db", NULL, &db) != NX_OK) { fprintf(stderr, "%s\n", nx_errmsg(NULL)); }
 */
NX_API int nx_open(const char *path, const nx_open_opts *opts, nx_db **out);

/** Closes the database, checkpointing when the log holds commits. Accepts NULL.
 *  Example: `nx_close(db);` */
NX_API int nx_close(nx_db *db);

/**
 * Returns the last error message of this thread for calls on `db` (db may be NULL, e.g. after a
 * failed nx_open). The string is borrowed until the next NexusLite call on this thread.
 * Example: `if (rc) fprintf(stderr, "nexuslite: %s\n", nx_errmsg(db));`
 */
NX_API const char *nx_errmsg(const nx_db *db);

/* ---- Transactions -------------------------------------------------------------------------- */
/** Flags for nx_txn_begin. */
#define NX_TXN_READ 0x0  /**< a snapshot: sees the state at begin, whatever commits meanwhile */
#define NX_TXN_WRITE 0x1 /**< the one writer; others wait */

/**
 * Begins a transaction. Write transactions span any number of collections and commit atomically;
 * they see their own writes. Example:
 *   nx_txn *t; nx_txn_begin(db, NX_TXN_WRITE, &t); ...; rc = nx_txn_commit(t);
 */
NX_API int nx_txn_begin(nx_db *db, unsigned flags, nx_txn **out);
/** Commits and frees the transaction (also on failure). Durable on return under FULL.
 *  Example: `if (nx_txn_commit(t) != NX_OK) puts(nx_errmsg(db));` */
NX_API int nx_txn_commit(nx_txn *txn);
/** Aborts and frees the transaction; leaves no trace. Accepts NULL. Example: `nx_txn_abort(t);` */
NX_API void nx_txn_abort(nx_txn *txn);

/* ---- Maintenance ------------------------------------------------------------------------- */
typedef enum nx_checkpoint_mode {
  NX_CHECKPOINT_PASSIVE = 0,  /**< copy what it can without waiting for readers */
  NX_CHECKPOINT_FULL = 1,     /**< wait for the writer, copy everything */
  NX_CHECKPOINT_TRUNCATE = 2  /**< FULL, then shrink the log file to its header */
} nx_checkpoint_mode;

/** Copies committed log frames into the main file. Example: `nx_checkpoint(db, NX_CHECKPOINT_FULL);` */
NX_API int nx_checkpoint(nx_db *db, nx_checkpoint_mode mode);

/** Progress callback for long operations: return non-zero to cancel; the call then returns
 *  NX_CANCELLED (an index build or compaction then changes nothing; an import keeps the batches
 *  it committed before, see nx_import). `total` is 0 when unknown. */
typedef int (*nx_progress_fn)(void *ctx, uint64_t done, uint64_t total);

/** Rewrites the live pages into a new file and renames it into place, shrinking the file.
 *  Example: `nx_compact(db, NULL, NULL);` */
NX_API int nx_compact(nx_db *db, nx_progress_fn progress, void *ctx);

/** Figures about a database. */
typedef struct nx_stats {
  uint32_t page_size;        /**< bytes per page */
  uint64_t pages_total;      /**< pages in the main file */
  uint64_t pages_free;       /**< pages free for reuse */
  uint64_t log_bytes;        /**< bytes of the current log generation */
  uint64_t cache_hits;       /**< page cache hits since open */
  uint64_t cache_misses;     /**< page cache misses since open */
  uint64_t commits;          /**< write transactions committed since open */
  uint64_t checkpoints;      /**< checkpoints since open */
  uint64_t fsyncs;           /**< fsync calls on the log since open */
  uint64_t txn_id;           /**< id of the last committed transaction */
  uint64_t checkpoints_background; /**< of the checkpoints, those the checkpoint thread ran */
} nx_stats;

/** Fills `out` with current figures. Example: `nx_stats s; nx_stats_get(db, &s);` */
NX_API int nx_stats_get(nx_db *db, nx_stats *out);


/* ---- Documents: input ----------------------------------------------------------------------
 * Every call that takes a document, filter, update, projection or sort takes an nx_in: either a
 * bson_t or JSON text (relaxed or canonical Extended JSON). Build one with nx_bson() or nx_json();
 * nx_none() means "absent" (e.g. no projection). */
typedef struct nx_in {
  const bson_t *bson; /**< used when not NULL */
  const char *json;   /**< else JSON text, NUL-terminated (or json_len bytes) */
  size_t json_len;    /**< (size_t)-1: strlen(json) */
} nx_in;

/** Wraps a BSON document (borrowed for the call). Example: `nx_insert_one(db, NULL, "users", nx_bson(doc), NULL);` */
static inline nx_in nx_bson(const bson_t *doc) { nx_in v; v.bson = doc; v.json = NULL; v.json_len = 0; return v; }
/** Wraps JSON text (borrowed for the call). Example: `nx_count(db, NULL, "users", nx_json("{\"age\": {\"$gt\": 30}}"), &n);` */
static inline nx_in nx_json(const char *json) { nx_in v; v.bson = NULL; v.json = json; v.json_len = (size_t)-1; return v; }
/** The absent input. Example: `nx_find(db, NULL, "users", nx_none(), NULL, &cur);` (all documents) */
static inline nx_in nx_none(void) { nx_in v; v.bson = NULL; v.json = NULL; v.json_len = 0; return v; }

/* ---- Collections --------------------------------------------------------------------------- */
/**
 * Creates a collection. Names: 1..120 bytes of UTF-8, no NUL or '$', not starting with "system."
 * or "_nx" (reserved). options: nx_none() or a document such as {"compression": "zstd"}.
 * Returns NX_OK, NX_EXISTS, NX_INVALID (the message names the offending character or option).
 * Collections are also created implicitly by the first insert.
 * Example: `nx_collection_create(db, "users", nx_none());`
 */
NX_API int nx_collection_create(nx_db *db, const char *name, nx_in options);
/** Drops a collection, its documents and indexes. NX_NOTFOUND if absent. Example: `nx_collection_drop(db, "users");` */
NX_API int nx_collection_drop(nx_db *db, const char *name);
/** Renames a collection. NX_NOTFOUND, NX_EXISTS. Example: `nx_collection_rename(db, "users", "people");` */
NX_API int nx_collection_rename(nx_db *db, const char *from, const char *to);
/** Sets *out to whether the collection exists. Example: `bool e; nx_collection_exists(db, "users", &e);` */
NX_API int nx_collection_exists(nx_db *db, const char *name, bool *out);
/**
 * Lists collection names in name order. [out] names: an owned array of owned strings, *count of
 * them; release with nx_free_strv(names, count).
 * Example: `char **v; size_t n; nx_collection_list(db, &v, &n); ...; nx_free_strv(v, n);`
 */
NX_API int nx_collection_list(nx_db *db, char ***names, size_t *count);
/** Frees an array returned by nx_collection_list or nx_kv_keys. Accepts NULL.
 *  Example: `char **v; size_t n; nx_kv_keys(db, NULL, "user:", &v, &n); nx_free_strv(v, n);` */
NX_API void nx_free_strv(char **v, size_t count);
/**
 * Statistics of a collection as a document: {name, count, size (bytes of BSON), avgObjSize,
 * storageSize, nindexes, indexes: [...], options}. [out] out: initialised by the call; the caller
 * bson_destroy()s it. Example: `bson_t st; nx_collection_stats(db, "users", &st); ... bson_destroy(&st);`
 */
NX_API int nx_collection_stats(nx_db *db, const char *name, bson_t *out);

/* ---- Writes ---------------------------------------------------------------------------------- */
/**
 * Inserts one document. Without an _id field, a UUID (BSON binary subtype 4) is generated and
 * prepended. [out] out_id: may be NULL; else receives a copy of the _id (bson_value_destroy it).
 * Returns NX_OK, NX_EXISTS (duplicate _id or unique index; the message names the collection and
 * the key), NX_INVALID (the message names the field), NX_PARSE (bad JSON, with the offset).
 * Example: `nx_insert_one(db, NULL, "users", nx_json("{\"name\": \"alice\", \"age\": 30}"), NULL);`
 */
NX_API int nx_insert_one(nx_db *db, nx_txn *txn, const char *coll, nx_in doc, bson_value_t *out_id);
/**
 * Inserts n documents atomically: all or none. On failure *failed_index (may be NULL) receives the
 * position of the first failing document and the message names it.
 * Example: `nx_in docs[2] = {nx_json("{\"a\":1}"), nx_json("{\"a\":2}")}; nx_insert_many(db, NULL, "t", docs, 2, NULL);`
 */
NX_API int nx_insert_many(nx_db *db, nx_txn *txn, const char *coll, const nx_in *docs, size_t n,
                          size_t *failed_index);

/** Result of an update or replace. */
typedef struct nx_update_result {
  uint64_t matched;     /**< documents the filter matched */
  uint64_t modified;    /**< documents actually changed */
  bool upserted;        /**< true when an upsert inserted a document */
  bson_value_t upserted_id; /**< its _id when upserted (owned: bson_value_destroy it) */
} nx_update_result;

#define NX_UPSERT 0x1u /**< flag: insert a document when nothing matches */

/**
 * Updates the first matching document (natural _id order) with update operators ({"$set": ...})
 * or replaces it by a replacement document. flags: 0 or NX_UPSERT. res may be NULL.
 * Example: `nx_update_one(db, NULL, "users", nx_json("{\"name\":\"alice\"}"), nx_json("{\"$inc\":{\"age\":1}}"), 0, &r);`
 */
NX_API int nx_update_one(nx_db *db, nx_txn *txn, const char *coll, nx_in filter, nx_in update,
                         unsigned flags, nx_update_result *res);
/** Updates every matching document (update operators only). Example: see nx_update_one. */
NX_API int nx_update_many(nx_db *db, nx_txn *txn, const char *coll, nx_in filter, nx_in update,
                          unsigned flags, nx_update_result *res);
/** Replaces the first matching document, keeping its _id. Operators are refused (NX_INVALID).
 *  Example: `nx_replace_one(db, NULL, "users", nx_json("{\"_id\":1}"), nx_json("{\"name\":\"bob\"}"), 0, NULL);` */
NX_API int nx_replace_one(nx_db *db, nx_txn *txn, const char *coll, nx_in filter, nx_in replacement,
                          unsigned flags, nx_update_result *res);
/** Deletes the first matching document; *deleted (may be NULL) gets 0 or 1.
 *  Example: `nx_delete_one(db, NULL, "users", nx_json("{\"name\":\"bob\"}"), &n);` */
NX_API int nx_delete_one(nx_db *db, nx_txn *txn, const char *coll, nx_in filter, uint64_t *deleted);
/** Deletes every matching document (nx_none() or {} deletes all).
 *  Example: `nx_delete_many(db, NULL, "users", nx_json("{\"age\":{\"$lt\":18}}"), &n);` */
NX_API int nx_delete_many(nx_db *db, nx_txn *txn, const char *coll, nx_in filter, uint64_t *deleted);

/* ---- Reads ------------------------------------------------------------------------------------ */
typedef struct nx_cursor nx_cursor;

/** Options of nx_find and friends; NULL means none. Initialise with NX_FIND_OPTS_INIT. */
typedef struct nx_find_opts {
  size_t size;       /**< sizeof(nx_find_opts) */
  nx_in projection;  /**< e.g. {"name": 1, "_id": 0}; nx_none() for whole documents */
  nx_in sort;        /**< e.g. {"age": -1, "name": 1}; nx_none() for natural (_id) order */
  uint64_t skip;     /**< documents to skip */
  uint64_t limit;    /**< at most this many (0 = no limit) */
  uint64_t max_sort_bytes; /**< memory limit of an in-memory sort; 0 = 100 MiB (NX_LIMIT beyond) */
} nx_find_opts;
#define NX_FIND_OPTS_INIT {sizeof(nx_find_opts), {NULL, NULL, 0}, {NULL, NULL, 0}, 0, 0, 0}

/**
 * Finds documents matching filter (nx_none() or {} for all) and returns a streaming cursor. With
 * txn == NULL the cursor owns a read snapshot until nx_cursor_close. Results stream: memory does
 * not grow with the number of documents (except an in-memory sort, bounded by max_sort_bytes; with
 * a limit, sort keeps only `skip + limit` documents).
 * Example:
 *   nx_cursor *c; const bson_t *d;
 *   nx_find(db, NULL, "users", nx_json("{\"age\":{\"$gte\":21}}"), NULL, &c);
 *   while (nx_cursor_next(c, &d) == NX_ROW) { char *s = bson_as_relaxed_extended_json(d, NULL); puts(s); bson_free(s); }
 *   nx_cursor_close(c);
 */
NX_API int nx_find(nx_db *db, nx_txn *txn, const char *coll, nx_in filter, const nx_find_opts *opts,
                   nx_cursor **out);
/** Advances: NX_ROW with *doc borrowed until the next call on the cursor, NX_DONE at the end, or an
 *  error (the cursor is then finished). Example: see nx_find. */
NX_API int nx_cursor_next(nx_cursor *c, const bson_t **doc);
/** Closes a cursor and releases its snapshot. Accepts NULL. Example: `nx_cursor_close(c);` (see
 *  nx_find; also after nx_cursor_next failed) */
NX_API void nx_cursor_close(nx_cursor *c);
/** Finds the first matching document (after sort/skip) into *out (initialised by the call when
 *  found; bson_destroy it). NX_NOTFOUND when none.
 *  Example: `bson_t d; if (nx_find_one(db, NULL, "users", nx_json("{\"name\":\"alice\"}"), NULL, &d) == NX_OK) bson_destroy(&d);` */
NX_API int nx_find_one(nx_db *db, nx_txn *txn, const char *coll, nx_in filter, const nx_find_opts *opts,
                       bson_t *out);
/** Counts matching documents. Example: `uint64_t n; nx_count(db, NULL, "users", nx_none(), &n);` */
NX_API int nx_count(nx_db *db, nx_txn *txn, const char *coll, nx_in filter, uint64_t *out);
/**
 * Distinct values of a field (dot path; array elements count one by one) among matching documents,
 * in MongoDB order, as {"values": [...]} in *out (initialised by the call; bson_destroy it).
 * Example: `bson_t v; nx_distinct(db, NULL, "users", "city", nx_none(), &v);`
 */
NX_API int nx_distinct(nx_db *db, nx_txn *txn, const char *coll, const char *field, nx_in filter, bson_t *out);

/** Options of the find-and-modify family. */
typedef struct nx_fam_opts {
  size_t size;       /**< sizeof(nx_fam_opts) */
  nx_in sort;        /**< which document is first when several match */
  nx_in projection;  /**< applied to the returned document */
  bool upsert;       /**< insert when nothing matches (update and replace only) */
  bool return_after; /**< return the document after the change (default: before) */
} nx_fam_opts;
#define NX_FAM_OPTS_INIT {sizeof(nx_fam_opts), {NULL, NULL, 0}, {NULL, NULL, 0}, false, false}

/** Atomically updates the first match and returns it (before or after) in *out (initialised when
 *  found; bson_destroy it). NX_NOTFOUND when there is no document to return: nothing matched and
 *  nothing was upserted, or an upsert inserted one while the before version was asked for (MongoDB
 *  returns null there; the insert is committed all the same).
 *  Example: `nx_find_one_and_update(db, NULL, "ctr", nx_json("{\"_id\":\"n\"}"), nx_json("{\"$inc\":{\"v\":1}}"), &o, &d);` */
NX_API int nx_find_one_and_update(nx_db *db, nx_txn *txn, const char *coll, nx_in filter, nx_in update,
                                  const nx_fam_opts *opts, bson_t *out);
/** Like nx_find_one_and_update with a replacement document.
 *  Example: `bson_t d; nx_find_one_and_replace(db, NULL, "users", nx_json("{\"_id\":1}"), nx_json("{\"name\":\"Ann\"}"), NULL, &d);` */
NX_API int nx_find_one_and_replace(nx_db *db, nx_txn *txn, const char *coll, nx_in filter, nx_in replacement,
                                   const nx_fam_opts *opts, bson_t *out);
/** Atomically deletes the first match and returns it in *out. NX_NOTFOUND when none.
 *  Example: `bson_t d; if (nx_find_one_and_delete(db, NULL, "jobs", nx_json("{}"), NULL, &d) == NX_OK) bson_destroy(&d);` */
NX_API int nx_find_one_and_delete(nx_db *db, nx_txn *txn, const char *coll, nx_in filter,
                                  const nx_fam_opts *opts, bson_t *out);

/** Per-document metadata, kept beside the document (not inside it). */
typedef struct nx_doc_meta {
  int64_t created_ms;  /**< insert time, ms since the epoch */
  int64_t updated_ms;  /**< last change time */
  uint64_t version;    /**< 1 at insert, +1 per change */
  int64_t expires_ms;  /**< 0 = never */
} nx_doc_meta;
/** Reads the metadata of the document whose _id is `id`. NX_NOTFOUND when absent.
 *  Example: `bson_value_t id; ...; nx_doc_meta m; nx_get_meta(db, NULL, "users", &id, &m);` */
NX_API int nx_get_meta(nx_db *db, nx_txn *txn, const char *coll, const bson_value_t *id, nx_doc_meta *out);

/* ---- JSON helpers ------------------------------------------------------------------------------ */
/** Renders a document as relaxed Extended JSON (canonical when `canonical`); owned, nx_free it.
 *  Example: `char *s = nx_to_json(doc, false); puts(s); nx_free(s);` */
NX_API char *nx_to_json(const bson_t *doc, bool canonical);
/** Parses JSON text into *out (initialised by the call on success; bson_destroy it). NX_PARSE with
 *  the byte offset in the message. Example: `bson_t d; nx_from_json("{\"a\":1}", &d);` */
NX_API int nx_from_json(const char *json, bson_t *out);

/* ---- Key-value API -----------------------------------------------------------------------------
 * For users of key-value stores: any JSON value under a string key, kept in the reserved
 * collection "_nx_kv". Batches are transactions: several sets and deletes inside one nx_txn. */
/** Sets key to a JSON value (object, array, string, number, bool or null).
 *  Example: `nx_kv_set(db, NULL, "user:1", "{\"name\":\"John\"}");` */
NX_API int nx_kv_set(nx_db *db, nx_txn *txn, const char *key, const char *json_value);
/** Gets key's value as JSON text (owned; nx_free it). NX_NOTFOUND when absent.
 *  Example: `char *v; if (nx_kv_get(db, NULL, "user:1", &v) == NX_OK) { puts(v); nx_free(v); }` */
NX_API int nx_kv_get(nx_db *db, nx_txn *txn, const char *key, char **json_value);
/** Sets *out to whether key exists. Example: `bool h; nx_kv_has(db, NULL, "user:1", &h);` */
NX_API int nx_kv_has(nx_db *db, nx_txn *txn, const char *key, bool *out);
/** Deletes key. NX_NOTFOUND when absent. Example: `nx_kv_delete(db, NULL, "user:1");` */
NX_API int nx_kv_delete(nx_db *db, nx_txn *txn, const char *key);
/** Keys starting with prefix ("" for all), in order; release with nx_free_strv.
 *  Example: `char **k; size_t n; nx_kv_keys(db, NULL, "user:", &k, &n);` */
NX_API int nx_kv_keys(nx_db *db, nx_txn *txn, const char *prefix, char ***keys, size_t *count);
/** Deletes every key. Example: `nx_kv_clear(db, NULL);` */
NX_API int nx_kv_clear(nx_db *db, nx_txn *txn);

/* ---- Indexes (secondary) ------------------------------------------------------------------------ */
/** Options of nx_index_create. */
typedef struct nx_index_opts {
  size_t size;          /**< sizeof(nx_index_opts) */
  const char *name;     /**< NULL: generated from the keys, e.g. "age_1_name_-1" */
  bool unique;          /**< duplicate keys are refused with NX_EXISTS */
  bool sparse;          /**< documents missing every indexed field are not indexed */
  nx_in partial_filter; /**< nx_none(), or a filter choosing the documents indexed */
  nx_progress_fn progress; /**< build progress on a populated collection; may be NULL */
  void *progress_ctx;
} nx_index_opts;
#define NX_INDEX_OPTS_INIT {sizeof(nx_index_opts), NULL, false, false, {NULL, NULL, 0}, NULL, NULL}

/** Creates an index; keys like {"age": 1} or {"city": 1, "score": -1}; dot paths allowed.
 *  Example: `nx_index_create(db, "users", nx_json("{\"age\":1}"), NULL);` */
NX_API int nx_index_create(nx_db *db, const char *coll, nx_in keys, const nx_index_opts *opts);
/** Drops an index by name. Example: `nx_index_drop(db, "users", "age_1");` */
NX_API int nx_index_drop(nx_db *db, const char *coll, const char *name);
/** Lists indexes with definitions and statistics as {"indexes": [{name, key, unique, sparse,
 *  partialFilterExpression?, entries, pages, lookups, buildMs}, ...]} (bson_destroy it).
 *  Example: `bson_t l; nx_index_list(db, "users", &l);` */
NX_API int nx_index_list(nx_db *db, const char *coll, bson_t *out);
/** Explains how nx_find would run, and runs it: {queryPlanner: {winningPlan, rejectedPlans},
 *  executionStats: {nReturned, totalKeysExamined, totalDocsExamined, executionTimeMillis}}.
 *  Example: `bson_t e; nx_explain(db, NULL, "users", nx_json("{\"age\":30}"), NULL, &e);` */
NX_API int nx_explain(nx_db *db, nx_txn *txn, const char *coll, nx_in filter, const nx_find_opts *opts,
                      bson_t *out);

/* ---- Import and export ------------------------------------------------------------------------- */
typedef enum nx_format {
  NX_FORMAT_AUTO = 0, NX_FORMAT_NDJSON, NX_FORMAT_JSON, NX_FORMAT_CSV, NX_FORMAT_BSON
} nx_format;

/** Options of nx_import. */
typedef struct nx_import_opts {
  size_t size;            /**< sizeof(nx_import_opts) */
  nx_format format;       /**< NX_FORMAT_AUTO: by extension, then by sniffing the first KiB */
  char delimiter;         /**< CSV: ',' by default */
  bool no_header;         /**< CSV: the first row is data; columns are named field1.. */
  bool no_infer;          /**< CSV: keep every value a string */
  uint32_t batch_size;    /**< documents per transaction; default 1000 */
  const char *ttl_field;  /**< a field whose date or seconds value becomes the document's expiry */
  bool skip_errors;       /**< go on past bad records, writing them to FILE.errors.jsonl */
  nx_progress_fn progress; void *progress_ctx;
} nx_import_opts;
#define NX_IMPORT_OPTS_INIT {sizeof(nx_import_opts), NX_FORMAT_AUTO, ',', false, false, 1000, NULL, false, NULL, NULL}

/** What an import did. */
typedef struct nx_import_report {
  uint64_t read, inserted, failed, bytes; /**< records read, inserted, failed; bytes read */
  double seconds;                          /**< wall time */
} nx_import_report;

/** Imports a file into a collection, streaming in constant memory, one transaction per batch of
 *  batch_size documents. The first bad record (without skip_errors), a failure or a cancel rolls
 *  back the current batch; batches committed before it stay (report->inserted counts them).
 *  Returns NX_OK, NX_PARSE (the message names file, line and byte offset), NX_EXISTS, NX_INVALID,
 *  NX_IO, NX_CANCELLED.
 *  Example: `nx_import_report r; nx_import(db, "users.ndjson", "users", NULL, &r);` */
NX_API int nx_import(nx_db *db, const char *path, const char *coll, const nx_import_opts *opts,
                     nx_import_report *report);

/** Options of nx_export. */
typedef struct nx_export_opts {
  size_t size;          /**< sizeof(nx_export_opts) */
  nx_format format;     /**< NX_FORMAT_AUTO: by the destination's extension */
  nx_in filter, projection, sort;
  const char *fields;   /**< CSV columns "a,b.c" (NULL: inferred from the documents) */
  const char *redact;   /**< fields to mask, "ssn,card.number" */
  bool redact_drop;     /**< drop redacted fields instead of masking them */
  bool force;           /**< overwrite an existing destination */
  nx_progress_fn progress; void *progress_ctx;
  bool canonical;       /**< NDJSON/JSON: canonical Extended JSON (every BSON type kept exactly)
                             instead of relaxed (plain JSON numbers, readable by any JSON tool) */
} nx_export_opts;
#define NX_EXPORT_OPTS_INIT {sizeof(nx_export_opts), NX_FORMAT_AUTO, {NULL, NULL, 0}, {NULL, NULL, 0}, {NULL, NULL, 0}, NULL, NULL, false, false, NULL, NULL, false}

/** What an export did. */
typedef struct nx_export_report {
  uint64_t written, bytes; /**< documents and bytes written */
  double seconds;
} nx_export_report;

/** Exports a collection (written to a temporary file, fsynced, renamed into place). For BSON the
 *  destination is a folder receiving COLLECTION.bson and COLLECTION.metadata.json (mongodump's layout).
 *  Example: `nx_export(db, "users", "users.ndjson", NULL, NULL);` */
NX_API int nx_export(nx_db *db, const char *coll, const char *path, const nx_export_opts *opts,
                     nx_export_report *report);

#ifdef __cplusplus
}
#endif
#endif /* NEXUSLITE_H */
