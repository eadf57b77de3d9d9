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
/** Frees memory that a NexusLite call returned as owned (strings, arrays). Accepts NULL. */
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
  uint64_t checkpoint_bytes; /**< automatic checkpoint when the log passes this; default 16 MiB */
} nx_open_opts;

#define NX_OPEN_OPTS_INIT {sizeof(nx_open_opts), 4096, 64u << 20, NX_DURABILITY_FULL, false, true, 16u << 20}

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

/** Progress callback for long operations: return non-zero to cancel (the call then returns
 *  NX_CANCELLED and changes nothing). `total` is 0 when unknown. */
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
} nx_stats;

/** Fills `out` with current figures. Example: `nx_stats s; nx_stats_get(db, &s);` */
NX_API int nx_stats_get(nx_db *db, nx_stats *out);

#ifdef __cplusplus
}
#endif
#endif /* NEXUSLITE_H */
