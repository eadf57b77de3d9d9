/*
 * engine.h: the engine layer's internal API: the database handle, transactions, the catalog of
 * collections, the stored form of documents, and THE write path (eng_doc_write), through which
 * every insert, replace and delete of a document passes, so that secondary indexes (and expiry,
 * ledgers, ...) can be maintained in the same transaction.
 *
 * Trees (storage.h names):
 *   "catalog"      key: collection name (bytes, no NUL); value: BSON
 *                  {name, options, formatVersion, created (date), hasExpiry?}
 *   "c:" + name    one per collection; key: keyenc_key(_id) (memcmp order = MongoDB order of
 *                  _id, so natural order is _id order); value: the stored document (below).
 *
 * Stored document value (docval.c), format 2 (10-12 bytes of header for a typical document):
 *   SIZE   MEANING
 *      1   format (ENG_DOC_FORMAT = 2)
 *      1   flags: bits 0-1 compression of the body (0 none, 1 zstd, 2 lz4), bit 2 an expiry
 *    var   created_ms, zigzag LEB128 varint (ms since the epoch)
 *    var   updated_ms - created_ms, zigzag varint
 *    var   version, varint (1 at insert, +1 per change)
 *   [var   expires_ms, zigzag varint, only with flag bit 2]
 *   [var   length of the uncompressed BSON, varint, only when compressed]
 *      .   body: the BSON (its length is the rest of the value), or its zstd / lz4 compression
 * Format 1 (the first files): a fixed 32-byte header (format, flags, 2 reserved, u32 BSON length,
 * then created, updated, version as u64, and an u64 expiry with flag bit 2) is still read.
 *
 * Invariants:
 *   1. A collection exists iff its catalog entry and its "c:" tree both exist (both are created
 *      and dropped in the same write transaction).
 *   2. Every stored body is a BSON document that passed doc_validate_for_storage and whose first
 *      field is _id; the tree key is keyenc_key of that _id.
 *   3. Every change of a stored document goes through eng_doc_write.
 *   4. nx_txn.writes counts st_* writes; cursors of a write txn re-seek by their last key when it
 *      has moved since their last step.
 */
#ifndef NX_ENGINE_H
#define NX_ENGINE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <bson/bson.h>

#include "base.h"
#include "doc.h"
#include "index.h"
#include "keyenc.h"
#include "match.h"
#include "storage.h"

/* ---- The database handle (defined here so that query/ and api/ may use it) ---- */
#define ENG_TXN_SPARES 4
struct nx_db {
  st_env *env;          /* storage environment, owned */
  char *path;           /* path given to nx_open, owned */
  bool read_only;       /* opened read-only: every write is NX_READONLY */
  /* Ended transactions kept for reuse (txn.c): a point read allocates nothing, and a read on
   * the same snapshot as the previous one reuses its opened collections. Owned. */
  _Atomic(nx_txn *) spare[ENG_TXN_SPARES];
};

/** Frees the spare transactions of db (nx_close, before the storage closes). */
void eng_txn_spares_free(nx_db *db);

/* ---- Collections in a transaction ---- */
#define ENG_COMP_NONE 0u
#define ENG_COMP_ZSTD 1u
#define ENG_COMP_LZ4 2u
#define ENG_ID_UUIDV7 0u
#define ENG_ID_UUIDV4 1u
#define ENG_NAME_MAX 120u          /* bytes of a collection name */
#define ENG_KV_COLLECTION "_nx_kv" /* the key-value API's reserved collection */

typedef struct eng_coll {
  char *name;              /* collection name, owned */
  st_tree tree;            /* its "c:" tree, valid in this txn */
  bool opts_loaded;        /* the fields below were read from the catalog */
  uint8_t compression;     /* ENG_COMP_* */
  int compression_level;   /* zstd level (1..19), default 1 */
  uint8_t id_format;       /* ENG_ID_* for generated _id */
  bool has_expiry;         /* some document was stored with an expiry */
  idx_set *idx;            /* the index layer's per-txn cache of its definitions (or NULL) */
  bool idx_checked;        /* stale indexes were rebuilt in this txn */
  struct eng_coll *next;   /* next in the txn's cache */
} eng_coll;

/* ---- Transactions ---- */
/* Something that lives inside a transaction (a cursor) and must let go of it when the
 * transaction ends first: detach(ctx) runs at commit/abort while storage is still usable. */
typedef struct eng_txn_watch {
  void (*detach)(void *ctx);      /* releases what the watcher holds of the txn */
  void *ctx;                      /* its argument */
  struct eng_txn_watch *prev;     /* neighbours in nx_txn.watchers */
  struct eng_txn_watch *next;
} eng_txn_watch;

struct nx_txn {
  nx_db *db;               /* owning database */
  st_txn *st;              /* storage transaction, owned */
  bool write;              /* NX_TXN_WRITE */
  bool user;               /* begun by nx_txn_begin (else auto-commit inside one call) */
  bool poisoned;           /* a write failed half-way: only abort is allowed */
  int64_t now_ms;          /* the clock, read once per txn at first use (eng_now): expiry,
                            * metadata, $currentDate; a point read of a document without a TTL
                            * never reads it */
  bool now_set;            /* now_ms has been read */
  uint64_t writes;         /* st_* writes so far (cursor re-seek, see invariant 4) */
  eng_coll *colls;         /* collections opened in this txn, owned */
  nx_buf enc;              /* scratch: the encoded value of the document being written */
  nx_buf key;              /* scratch: the key of the document being written */
  nx_buf old;              /* scratch: decompressed old version during a write */
  eng_txn_watch *watchers; /* cursors opened in this txn and still open */
};

/** Registers / unregisters w on t (see eng_txn_watch). */
void eng_txn_watch_add(nx_txn *t, eng_txn_watch *w);
void eng_txn_watch_remove(nx_txn *t, eng_txn_watch *w);

/** Begins a transaction on db (nx_txn_begin's body). */
int eng_txn_begin(nx_db *db, bool write, bool user, nx_txn **out);
/** Commits and frees t (also on failure). A poisoned txn is aborted and NX_MISUSE returned. */
int eng_txn_commit(nx_txn *t);
/** Aborts and frees t. Accepts NULL. */
void eng_txn_abort(nx_txn *t);

/**
 * The auto-commit helper used by every public call that takes `nx_txn *txn`:
 * when `txn` is NULL, begins a transaction of the needed kind into *t and sets *own; else checks
 * that `txn` belongs to `db`, is not poisoned, and is a write txn when `write` (NX_READONLY
 * "<what>: write inside a read transaction" otherwise) and uses it. `what` names the call.
 */
int eng_txn_use(nx_db *db, nx_txn *txn, bool write, const char *what, nx_txn **t, bool *own);
/** Ends what eng_txn_use began: when own, commits if rc == NX_OK else aborts; when not own and
 *  rc is a failure after writes happened (wrote == true), poisons the user's txn. Returns the
 *  final status (commit failure replaces NX_OK). */
int eng_txn_done(nx_txn *t, bool own, int rc, bool wrote);

/* ---- Catalog ---- */
/** Checks a user-supplied collection name (1..120 bytes UTF-8, no NUL or '$', not "system.*"
 *  or "_nx*"). NX_INVALID naming the problem. */
int eng_coll_name_check(const char *name);
/**
 * Finds collection `name` in transaction t (cached per txn). NX_NOTFOUND when missing (and
 * `create` is false). With `create` (write txn), a missing collection is created with default
 * options (implicit creation by the first write). Reserved names (ENG_KV_COLLECTION) are allowed
 * here: callers check user names with eng_coll_name_check first.
 */
int eng_coll_get(nx_txn *t, const char *name, bool create, eng_coll **out);
/** Loads the options of c from the catalog (done once per txn; eng_doc_write calls it). */
int eng_coll_load_opts(nx_txn *t, eng_coll *c);
/** Creates a collection with options (a BSON document, may be NULL). NX_EXISTS, NX_INVALID. */
int eng_coll_create(nx_txn *t, const char *name, const bson_t *options);
int eng_coll_drop(nx_txn *t, const char *name);                     /* NX_NOTFOUND */
int eng_coll_rename(nx_txn *t, const char *from, const char *to);   /* NX_NOTFOUND, NX_EXISTS */
/** Calls fn for each collection name in name order (reserved ones included when `all`). */
int eng_coll_list(nx_txn *t, bool all, int (*fn)(void *ctx, const char *name), void *ctx);
/** The catalog entry of a collection into *out (initialised on NX_OK). For the index layer:
 *  it may keep its definitions in the entry and write it back with eng_catalog_put. */
int eng_catalog_get(nx_txn *t, const char *name, bson_t *out);
int eng_catalog_put(nx_txn *t, const char *name, const bson_t *entry);

/* ---- Stored documents ---- */
#define ENG_DOC_FORMAT 2u
#define ENG_DOC_HDR_V1 32u  /* format 1's fixed header */
#define ENG_DOC_HDR_MAX 47u /* format 2: 2 + 4 varints of up to 10 bytes + 1 of up to 5 */
#define ENG_F_COMP_MASK 0x3u
#define ENG_F_EXPIRY 0x4u

/** A decoded stored document: `doc` is a read-only view of bytes borrowed from the storage value
 *  (uncompressed) or from `scratch` (decompressed), valid until the next cursor step / write. */
typedef struct eng_doc {
  bson_t doc;              /* static view, never bson_destroy'd */
  nx_doc_meta meta;        /* metadata */
  uint8_t flags;           /* header flags */
} eng_doc;

/** Decodes a storage value into *out, decompressing into scratch when needed. NX_CORRUPT names
 *  the collection on malformed bytes. */
int eng_doc_decode(const char *coll, st_val v, nx_buf *scratch, eng_doc *out);
/** Encodes doc with meta into out (reset first), compressed as `compression` asks (kept
 *  uncompressed when that does not save space). */
int eng_doc_encode(const bson_t *doc, const nx_doc_meta *meta, unsigned compression, int level,
                   nx_buf *out);
/** True when a document with this meta is expired at now_ms (invisible to reads). */
static inline bool eng_doc_expired(const nx_doc_meta *m, int64_t now_ms) {
  return m->expires_ms != 0 && m->expires_ms <= now_ms;
}
/** The txn's clock: read at its first use, then the same for the whole txn. */
static inline int64_t eng_now(nx_txn *t) {
  if (!t->now_set) {
    t->now_ms = nx_now_ms();
    t->now_set = true;
  }
  return t->now_ms;
}
/** eng_doc_expired at the txn's clock, reading the clock only for a document with a TTL. */
static inline bool eng_doc_expired_in(const nx_doc_meta *m, nx_txn *t) {
  return m->expires_ms != 0 && eng_doc_expired(m, eng_now(t));
}

/** Encodes the tree key of an _id value into out (reset first). */
int eng_id_key(nx_buf *out, const bson_value_t *id);
/** Renders an _id for messages into buf (truncated to cap with "..."). */
void eng_id_str(const bson_value_t *id, char *buf, size_t cap);

/**
 * Looks up the document whose tree key is `key`. NX_NOTFOUND when absent or expired. The view
 * in *out borrows as eng_doc_decode says.
 */
int eng_doc_get(nx_txn *t, eng_coll *c, st_val key, nx_buf *scratch, eng_doc *out);

/* ---- Scans for the index layer (idx_scan_fn / idx_get_fn) ---- */
typedef struct eng_scan_ctx {
  nx_txn *t;         /* the transaction */
  eng_coll *c;       /* the collection */
  bool with_expired; /* also feed documents whose expiry has passed (index builds) */
} eng_scan_ctx;
/** idx_scan_fn over ctx (an eng_scan_ctx): feeds every live document of the collection to each
 *  (and the expired ones too when ctx->with_expired). Safe when `each` writes (re-seeks). */
int eng_scan_docs(void *ctx, idx_each_doc_fn each, void *each_ctx);
/** idx_get_fn over ctx (an eng_scan_ctx): the live document stored under id_key, copied. */
int eng_get_by_key(void *ctx, st_val id_key, bson_t *doc);

/* ---- THE write path ---- */
typedef enum eng_op { ENG_INSERT, ENG_REPLACE, ENG_DELETE } eng_op;

/**
 * Writes one document change in transaction t (a write txn), the only function that changes a
 * collection tree:
 *   ENG_INSERT : new_doc (validated, _id first) is stored under its _id; NX_EXISTS names the
 *                collection and the id when present (an expired one is replaced).
 *   ENG_REPLACE: old_doc/old_meta (the stored version, caller-owned bytes) becomes new_doc (same
 *                _id); version + 1, updated_ms = t->now_ms.
 *   ENG_DELETE : old_doc is removed.
 * `expires_ms` (0 = none) sets the expiry of an insert or replace.
 * Index maintenance of the index layer is called from here, in the same transaction (see the
 * marked call point in write.c). On failure after a storage write the caller's txn is poisoned by
 * eng_txn_done.
 */
int eng_doc_write(nx_txn *t, eng_coll *c, eng_op op, const bson_t *old_doc,
                  const nx_doc_meta *old_meta, const bson_t *new_doc, int64_t expires_ms);

/**
 * Prepares a user document for insertion into out (initialised on NX_OK): validates it
 * (doc_validate_for_storage), and makes _id the first field, generating a UUID (v7, or v4 when
 * the collection says {"idFormat": "uuidv4"}) when missing.
 */
int eng_prepare_insert(nx_txn *t, eng_coll *c, const bson_t *doc, bson_t *out);
/** The same, skipping doc_validate_for_storage when the caller already ran it (`validated`). */
int eng_prepare_insert_ex(nx_txn *t, eng_coll *c, const bson_t *doc, bool validated, bson_t *out);

#endif
