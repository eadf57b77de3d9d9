/*
 * storage.h: the storage layer's interface for the layers above (index, engine). Named ordered
 * trees of byte keys and byte values in one file, with ACID transactions. Knows nothing of
 * documents.
 *
 * Ownership: values and keys returned by st_get and st_cursor_get are borrowed until the next
 * call on the same cursor, the next write in the txn, or the end of the txn.
 * Cursors of a write txn must be re-positioned (st_cursor_seek) after a write in that txn.
 *
 * Failures: NX_NOTFOUND, NX_EXISTS, NX_LIMIT, NX_INVALID, NX_READONLY and NX_MISUSE change
 * nothing. Any other failure of a write (NX_NOMEM, NX_IO, NX_FULL, NX_CORRUPT...) may leave a tree
 * half changed: the transaction then refuses every further write and its commit (NX_MISUSE naming
 * the first failure); the caller must abort it. Committed data is never affected.
 */
#ifndef NX_STORAGE_H
#define NX_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"

typedef struct st_env st_env;
typedef struct st_txn st_txn;
typedef struct st_cursor st_cursor;
typedef uint32_t st_tree; /* a handle valid within one txn (and its children) */

typedef struct st_val {
  const uint8_t *p; /* bytes */
  size_t n;         /* length */
} st_val;

#define ST_MAX_KEY 1024u              /* longest key at any page size (NX_LIMIT beyond) */
#define ST_MAX_VALUE (64u << 20)      /* longest value (documents are at most 16 MiB) */
#define ST_MAX_NAME 255u              /* longest tree name in bytes (no NUL inside) */

/* ---- Environment ---- */
int st_open(const char *path, const nx_open_opts *opts, st_env **out);
int st_close(st_env *env); /* accepts NULL */
int st_checkpoint(st_env *env, nx_checkpoint_mode mode);
int st_compact(st_env *env, nx_progress_fn progress, void *ctx);
int st_stats(st_env *env, nx_stats *out);
uint32_t st_page_size(const st_env *env);
/* Integrity walk: every tree's order, fill, separators, page accounting (no page both reachable
 * and free, none leaked). Returns NX_OK or NX_CORRUPT with the first problem in the message. */
int st_check(st_env *env);

/* ---- Transactions ---- */
int st_txn_begin(st_env *env, bool write, st_txn **out);
int st_txn_commit(st_txn *t); /* frees t, also on failure */
void st_txn_abort(st_txn *t); /* accepts NULL */
/* Reuse of transaction objects (the engine keeps a few per database, so that a point read does
 * not allocate): st_txn_commit_keep / st_txn_abort_keep end t exactly like st_txn_commit /
 * st_txn_abort but keep the object "parked"; st_txn_restart begins a new transaction in it, and
 * sets *trees_kept when the trees opened before (and their st_tree handles) are still valid,
 * which is the case only from a read transaction to a read transaction on the same snapshot
 * (same committed txn id: copy-on-write makes the descriptors identical). Otherwise the open
 * trees are forgotten. On failure t stays parked. st_txn_free frees a parked t (accepts NULL). */
int st_txn_commit_keep(st_txn *t);
void st_txn_abort_keep(st_txn *t);
int st_txn_restart(st_txn *t, bool write, bool *trees_kept);
void st_txn_free(st_txn *t);
uint64_t st_txn_id(const st_txn *t);
bool st_txn_is_write(const st_txn *t);

/* ---- Named trees (a catalog tree maps names to roots) ---- */
int st_tree_open(st_txn *t, const char *name, bool create, st_tree *out); /* NX_NOTFOUND */
int st_tree_drop(st_txn *t, const char *name);                           /* frees its pages */
int st_tree_rename(st_txn *t, const char *from, const char *to);
/* Calls fn for each tree name starting with prefix, in name order; fn returning non-zero stops
 * the walk and that value is returned. */
int st_tree_list(st_txn *t, const char *prefix, int (*fn)(void *ctx, const char *name), void *ctx);
int st_tree_count(st_txn *t, st_tree tree, uint64_t *out); /* entries, kept in the root: O(1) */
/* Pages of the tree (branch, leaf, overflow), by walking it: O(pages). For index statistics. */
int st_tree_pages(st_txn *t, st_tree tree, uint64_t *out);

/* ---- Entries ---- */
#define ST_NOOVERWRITE 0x1u /* st_put fails with NX_EXISTS if the key is present */
int st_get(st_txn *t, st_tree tree, st_val key, st_val *val);   /* NX_NOTFOUND */
/* st_get in two steps for a caller that knows its next keys: st_locate finds the leaf of key
 * (read txns: through the branch pin cache) and starts its memory fetch; st_get_located, later
 * in the same txn and on the same tree, reads key from it without a second descent. Results are
 * those of st_get; any number of locations may be outstanding. */
typedef struct st_loc {
  uint64_t w[6]; /* opaque */
} st_loc;
int st_locate(st_txn *t, st_tree tree, st_val key, st_loc *loc);
int st_get_located(st_txn *t, st_tree tree, const st_loc *loc, st_val key, st_val *val); /* NX_NOTFOUND */
/* Between the two: requests the located leaf's cells (its header was requested by st_locate). */
void st_prefetch_located(st_txn *t, const st_loc *loc);
int st_put(st_txn *t, st_tree tree, st_val key, st_val val, unsigned flags);
int st_del(st_txn *t, st_tree tree, st_val key);                 /* NX_NOTFOUND */

/* ---- Cursors: NX_OK when positioned on an entry, NX_NOTFOUND when off either end ----
 * A cursor belongs to its txn: when the txn ends, its open cursors release their pages and every
 * call on them but st_cursor_close returns NX_MISUSE; st_cursor_close still frees them. */
int st_cursor_open(st_txn *t, st_tree tree, st_cursor **out);
void st_cursor_close(st_cursor *c); /* accepts NULL */
int st_cursor_first(st_cursor *c);
int st_cursor_last(st_cursor *c);
int st_cursor_next(st_cursor *c);
int st_cursor_prev(st_cursor *c);
/* Positions on the first key >= key (ST_SEEK_GE), or exactly key (ST_SEEK_EQ), or the last key
 * <= key (ST_SEEK_LE). */
typedef enum st_seek { ST_SEEK_GE, ST_SEEK_EQ, ST_SEEK_LE } st_seek;
int st_cursor_seek(st_cursor *c, st_val key, st_seek how);
int st_cursor_get(st_cursor *c, st_val *key, st_val *val);

#endif
