/*
 * storage.c: the storage layer's interface (storage.h) over the pager and the B+tree: an
 * environment, transactions, named trees through a catalog tree, entries and cursors, the
 * integrity walk and compaction's page visitor.
 *
 * Design notes:
 *  1. The catalog is a B+tree mapping a tree's name to its descriptor (value layout below). The
 *     catalog's own descriptor lives in the pager's user roots, which every commit record and
 *     meta page carries, so a commit switches every tree atomically.
 *  2. A transaction keeps the trees it opened in a small array (st_tree = index + 1). Writes
 *     change the in-memory descriptor and mark it dirty; commit writes dirty descriptors back into
 *     the catalog, stores the catalog's descriptor in the roots, then commits the pager txn.
 *  3. Creating, dropping and renaming a tree change the catalog at once, so st_tree_list in the
 *     same transaction sees them.
 *  4. The B+tree's scratch buffers belong to the environment: one writer at a time.
 *
 * User roots (PG_ROOTS = 64 bytes):
 *   OFFSET SIZE MEANING
 *        0   24 catalog descriptor (root u32, depth u32, root txn u64, count u64)
 *       24    4 magic "NXST" (all 64 bytes zero in a new file)
 *       28    4 storage format version (2; 1 had fixed 7-byte leaf cell headers)
 *       32   32 reserved, zero
 * Catalog entry: key = tree name (1..ST_MAX_NAME bytes, no NUL); value (32 bytes):
 *        0   24 the tree's descriptor
 *       24    8 reserved, zero
 */
#include "storage.h"

#include <string.h>

#include "btree.h"
#include "pager.h"

#define ST_ROOTS_MAGIC 0x5453584eu /* "NXST" little-endian */
#define ST_FORMAT 2u /* 2: varint leaf cell headers (third session) */
#define ST_CAT_VAL 32u

struct st_env {
  pager *p;            /* the pager */
  uint32_t ps;         /* page size */
  bt_scratch scratch;  /* the writer's B+tree scratch buffers */
};

typedef struct st_open_tree {
  char *name;     /* owned */
  bt_desc d;      /* current descriptor */
  bool dirty;     /* d changed since it was read from (or written to) the catalog */
  bool dropped;   /* dropped in this txn: the handle is dead */
} st_open_tree;

struct st_txn {
  st_env *env;
  pg_txn *pt;          /* the pager transaction */
  bt_desc cat;         /* catalog descriptor */
  bool cat_dirty;      /* cat changed */
  st_open_tree *trees; /* trees opened in this txn */
  uint32_t ntrees, cap;
  bt_read rd;          /* holds the value of the last st_get */
  bt_pincache pc;      /* read txns: branch pages kept pinned for point reads */
  int failed;          /* a write failed midway: the trees may be half changed; only abort */
  st_cursor *cursors;  /* open cursors (detached at the txn's end) */
  bool parked;         /* ended, kept for st_txn_restart (pt is NULL) */
  bool trees_valid;    /* parked after a clean read txn: trees[] belong to the snapshot its
                          pager txn keeps (pager_resume says whether the next one is the same) */
};

/* Codes after which a write left nothing half done (checked before any change). */
static bool clean_failure(int rc) {
  return rc == NX_OK || rc == NX_NOTFOUND || rc == NX_EXISTS || rc == NX_LIMIT || rc == NX_INVALID ||
         rc == NX_READONLY || rc == NX_MISUSE;
}

/* Records a failure that may have left a tree half changed (a split without its parent, a
 * descriptor ahead of its pages): the txn accepts nothing but an abort from then on. */
static int txn_fail(st_txn *t, int rc) {
  if (!clean_failure(rc) && !t->failed) t->failed = rc;
  return rc;
}

static int txn_usable(st_txn *t) {
  if (t->failed)
    return nx_err(NX_MISUSE, "transaction %llu: an earlier write failed (%s); abort it",
                  (unsigned long long)pg_txnid(t->pt), nx_code_name(t->failed));
  return NX_OK;
}

struct st_cursor {
  st_txn *t;              /* NULL once its txn ended (the cursor is then dead) */
  st_tree tree;
  bt_cursor bc;
  st_cursor *prev, *next; /* the txn's list of open cursors */
};

/* Releases the pins of every cursor still open on t and marks them dead (a later
 * st_cursor_close only frees them). */
static void detach_cursors(st_txn *t) {
  for (st_cursor *c = t->cursors; c; c = c->next) {
    bt_cursor_fini(&c->bc);
    c->t = NULL;
  }
  t->cursors = NULL;
}

/* ---- Environment ---- */
int st_open(const char *path, const nx_open_opts *opts, st_env **out) {
  *out = NULL;
  st_env *e = nx_calloc(1, sizeof *e);
  if (!e) return nx_err(NX_NOMEM, "opening %s: out of memory", path);
  int rc = pager_open(path, opts, &e->p);
  if (rc) goto fail_free;
  e->ps = pager_page_size(e->p);
  rc = bt_scratch_init(&e->scratch, e->ps);
  if (rc) goto fail_close;
  *out = e;
  return NX_OK;
fail_close:
  pager_close(e->p);
fail_free:
  nx_free(e);
  return rc;
}

int st_close(st_env *env) {
  if (!env) return NX_OK;
  int rc = pager_close(env->p);
  bt_scratch_free(&env->scratch);
  nx_free(env);
  return rc;
}

int st_checkpoint(st_env *env, nx_checkpoint_mode mode) { return pager_checkpoint(env->p, mode); }

int st_stats(st_env *env, nx_stats *out) {
  pager_stats(env->p, out);
  return NX_OK;
}

uint32_t st_page_size(const st_env *env) { return env->ps; }

/* ---- Transactions ---- */
static int load_roots(st_txn *t) {
  const uint8_t *r = pg_roots(t->pt);
  static const uint8_t k_zero[PG_ROOTS];
  /* every read starts here: the magic decides at once; only a database with no tree yet has
   * all-zero roots */
  if (nx_get32(r + 24) != ST_ROOTS_MAGIC && memcmp(r, k_zero, PG_ROOTS) == 0) {
    memset(&t->cat, 0, sizeof t->cat);
    return NX_OK;
  }
  if (nx_get32(r + 24) != ST_ROOTS_MAGIC)
    return NX_CORRUPT_BKPT("storage roots: bad magic 0x%08x", nx_get32(r + 24));
  if (nx_get32(r + 28) != ST_FORMAT) {
    uint32_t f = nx_get32(r + 28);
    if (f > ST_FORMAT)
      return nx_err(NX_VERSION, "storage format %u is newer than this library's %u", f, ST_FORMAT);
    return nx_err(NX_VERSION, "storage format %u was written by an earlier NexusLite (this library reads format %u: "
                  "leaf cells changed); export it with that version and import it here", f, ST_FORMAT);
  }
  bt_desc_load(&t->cat, r);
  return NX_OK;
}

int st_txn_begin(st_env *env, bool write, st_txn **out) {
  *out = NULL;
  st_txn *t = nx_calloc(1, sizeof *t);
  if (!t) return nx_err(NX_NOMEM, "beginning a transaction: out of memory");
  t->env = env;
  bt_read_init(&t->rd);
  int rc = pager_begin(env->p, write, &t->pt);
  if (rc) {
    nx_free(t);
    return rc;
  }
  rc = load_roots(t);
  if (rc) {
    pager_abort(t->pt);
    nx_free(t);
    return rc;
  }
  *out = t;
  return NX_OK;
}

static void park_drop(st_txn *t);

static void trees_forget(st_txn *t) {
  for (uint32_t i = 0; i < t->ntrees; i++) nx_free(t->trees[i].name);
  t->ntrees = 0;
  t->trees_valid = false;
}

static void txn_free(st_txn *t) {
  bt_pincache_free(&t->pc); /* its pins were dropped with the pager txn */
  trees_forget(t);
  nx_free(t->trees);
  nx_buf_free(&t->rd.buf);
  nx_free(t);
}

void st_txn_free(st_txn *t) {
  if (!t) return;
  park_drop(t);
  txn_free(t);
}

/* After the pager txn ended (or, for a kept read txn, was parked with its pins): free t, or
 * park it for st_txn_restart. */
static void txn_finish(st_txn *t, bool keep, bool was_read) {
  if (!keep) {
    txn_free(t);
    return;
  }
  if (!was_read) t->pt = NULL;
  t->parked = true;
  t->cat_dirty = false;
  t->cursors = NULL;
  if (was_read && !t->failed) {
    t->trees_valid = true;
  } else {
    trees_forget(t);
  }
  t->failed = 0;
}

/* Ends a parked read txn's pager txn for good (its pins dropped). */
static void park_drop(st_txn *t) {
  if (!t->pt) return;
  bt_pincache_release(t->pt, &t->pc);
  pager_park_free(t->pt);
  t->pt = NULL;
}

int st_txn_restart(st_txn *t, bool write, bool *trees_kept) {
  *trees_kept = false;
  if (!t->parked) return nx_err(NX_MISUSE, "st_txn_restart: the transaction is not parked");
  int rc;
  bool same = false;
  if (t->pt && !write) {
    /* a parked read txn: a new snapshot in the same object; on the same snapshot its pinned
     * pages (slots and the branch pin cache) and opened trees stay valid */
    rc = pager_resume(t->pt, &same);
    if (rc) return rc;
    if (!same) {
      bt_pincache_release(t->pt, &t->pc);
      pager_drop_pins(t->pt);
    }
  } else {
    park_drop(t);
    pg_txn *pt;
    rc = pager_begin(t->env->p, write, &pt);
    if (rc) return rc;
    t->pt = pt;
  }
  rc = load_roots(t);
  if (rc) {
    bt_pincache_release(t->pt, &t->pc);
    pager_abort(t->pt);
    t->pt = NULL;
    return rc;
  }
  t->parked = false;
  if (!write && same && t->trees_valid) {
    *trees_kept = true;
  } else {
    trees_forget(t);
  }
  t->trees_valid = false;
  return NX_OK;
}

static void cat_value(const bt_desc *d, uint8_t v[ST_CAT_VAL]) {
  memset(v, 0, ST_CAT_VAL);
  bt_desc_store(d, v);
}

/* Writes the dirty descriptors of the txn's open trees back into the catalog. */
static int flush_trees(st_txn *t) {
  int rc = NX_OK;
  for (uint32_t i = 0; rc == NX_OK && i < t->ntrees; i++) {
    st_open_tree *o = &t->trees[i];
    if (!o->dirty || o->dropped) continue;
    uint8_t v[ST_CAT_VAL];
    bool added;
    cat_value(&o->d, v);
    rc = bt_put(t->pt, &t->env->scratch, &t->cat, (const uint8_t *)o->name, strlen(o->name), v,
                ST_CAT_VAL, false, &added);
    t->cat_dirty = true;
    if (rc == NX_OK) o->dirty = false;
  }
  return rc;
}

static void txn_abort(st_txn *t, bool keep);

static int txn_commit(st_txn *t, bool keep) {
  if (!pg_is_write(t->pt)) { /* a read txn just ends */
    txn_abort(t, keep);
    return NX_OK;
  }
  detach_cursors(t);
  bt_read_release(t->pt, &t->rd);
  bt_pincache_release(t->pt, &t->pc);
  int rc = txn_usable(t);
  if (rc == NX_OK) {
    rc = flush_trees(t);
    if (rc == NX_OK && t->cat_dirty) {
      uint8_t roots[PG_ROOTS];
      memcpy(roots, pg_roots(t->pt), PG_ROOTS);
      bt_desc_store(&t->cat, roots);
      nx_put32(roots + 24, ST_ROOTS_MAGIC);
      nx_put32(roots + 28, ST_FORMAT);
      pg_set_roots(t->pt, roots);
    }
  }
  if (rc) pager_abort(t->pt); /* a failed write rolls back */
  else rc = pager_commit(t->pt);
  txn_finish(t, keep, false);
  return rc;
}

static void txn_abort(st_txn *t, bool keep) {
  detach_cursors(t);
  bt_read_release(t->pt, &t->rd);
  bool was_read = !pg_is_write(t->pt);
  if (keep && was_read) {
    pager_park(t->pt); /* keeps its pins and the branch pin cache for the same snapshot */
  } else {
    bt_pincache_release(t->pt, &t->pc);
    pager_abort(t->pt);
  }
  txn_finish(t, keep, was_read);
}

int st_txn_commit(st_txn *t) { return txn_commit(t, false); }
int st_txn_commit_keep(st_txn *t) { return txn_commit(t, true); }

void st_txn_abort(st_txn *t) {
  if (t) txn_abort(t, false);
}

void st_txn_abort_keep(st_txn *t) { txn_abort(t, true); }

uint64_t st_txn_id(const st_txn *t) { return pg_txnid(t->pt); }
bool st_txn_is_write(const st_txn *t) { return pg_is_write(t->pt); }

/* ---- Named trees ---- */
static int name_check(const char *name, size_t *len) {
  size_t n = name ? strlen(name) : 0;
  if (n == 0 || n > ST_MAX_NAME) return nx_err(NX_INVALID, "tree name of %zu bytes (1 to %u allowed)", n, ST_MAX_NAME);
  *len = n;
  return NX_OK;
}

static st_open_tree *tree_of(st_txn *t, st_tree h) {
  if (h == 0 || h > t->ntrees || t->trees[h - 1].dropped) return NULL;
  return &t->trees[h - 1];
}

static int find_open(st_txn *t, const char *name) {
  for (uint32_t i = 0; i < t->ntrees; i++)
    if (!t->trees[i].dropped && strcmp(t->trees[i].name, name) == 0) return (int)i;
  return -1;
}

static int add_open(st_txn *t, const char *name, const bt_desc *d, st_tree *out) {
  if (t->ntrees == t->cap) {
    uint32_t nc = t->cap ? t->cap * 2 : 8;
    st_open_tree *nt = nx_realloc(t->trees, nc * sizeof *nt);
    if (!nt) return nx_err(NX_NOMEM, "opening tree %s: out of memory", name);
    t->trees = nt;
    t->cap = nc;
  }
  char *nm = nx_strdup(name);
  if (!nm) return nx_err(NX_NOMEM, "opening tree %s: out of memory", name);
  t->trees[t->ntrees] = (st_open_tree){nm, *d, false, false};
  *out = ++t->ntrees;
  return NX_OK;
}

/* Reads a tree's descriptor from the catalog. */
static int cat_get(st_txn *t, const char *name, size_t n, bt_desc *d) {
  const uint8_t *v;
  size_t vn;
  int rc = bt_get(t->pt, &t->cat, (const uint8_t *)name, n, &t->rd, &v, &vn);
  if (rc) return rc;
  if (vn != ST_CAT_VAL) {
    bt_read_release(t->pt, &t->rd);
    return NX_CORRUPT_BKPT("catalog entry %s: value of %zu bytes", name, vn);
  }
  bt_desc_load(d, v);
  bt_read_release(t->pt, &t->rd);
  return NX_OK;
}

static int cat_put(st_txn *t, const char *name, size_t n, const bt_desc *d, bool noover) {
  uint8_t v[ST_CAT_VAL];
  bool added;
  cat_value(d, v);
  t->cat_dirty = true;
  return bt_put(t->pt, &t->env->scratch, &t->cat, (const uint8_t *)name, n, v, ST_CAT_VAL, noover, &added);
}

int st_tree_open(st_txn *t, const char *name, bool create, st_tree *out) {
  size_t n = 0;
  *out = 0;
  int rc = name_check(name, &n);
  if (rc) return rc;
  bt_read_release(t->pt, &t->rd);
  int i = find_open(t, name);
  if (i >= 0) {
    *out = (st_tree)i + 1;
    return NX_OK;
  }
  bt_desc d;
  rc = cat_get(t, name, n, &d);
  if (rc == NX_NOTFOUND) {
    if (!create) return nx_err(NX_NOTFOUND, "tree %s does not exist", name);
    if (!pg_is_write(t->pt)) return nx_err(NX_READONLY, "creating tree %s in a read transaction", name);
    if ((rc = txn_usable(t)) != NX_OK) return rc;
    memset(&d, 0, sizeof d);
    rc = txn_fail(t, cat_put(t, name, n, &d, true));
  }
  if (rc) return rc;
  return add_open(t, name, &d, out);
}

int st_tree_drop(st_txn *t, const char *name) {
  size_t n = 0;
  int rc = name_check(name, &n);
  if (rc) return rc;
  if (!pg_is_write(t->pt)) return nx_err(NX_READONLY, "dropping tree %s in a read transaction", name);
  bt_read_release(t->pt, &t->rd);
  bt_desc d;
  int i = find_open(t, name);
  if (i >= 0) {
    d = t->trees[i].d;
  } else {
    rc = cat_get(t, name, n, &d);
    if (rc == NX_NOTFOUND) return nx_err(NX_NOTFOUND, "dropping tree %s: it does not exist", name);
    if (rc) return rc;
  }
  if ((rc = txn_usable(t)) != NX_OK) return rc;
  rc = bt_drop(t->pt, &d);
  if (rc) return txn_fail(t, rc);
  t->cat_dirty = true;
  rc = bt_del(t->pt, &t->env->scratch, &t->cat, (const uint8_t *)name, n);
  if (rc) return txn_fail(t, rc == NX_NOTFOUND ? NX_CORRUPT_BKPT("dropping tree %s: catalog entry vanished", name) : rc);
  if (i >= 0) t->trees[i].dropped = true;
  return NX_OK;
}

int st_tree_rename(st_txn *t, const char *from, const char *to) {
  size_t fn = 0, tn = 0;
  int rc = name_check(from, &fn);
  if (rc == NX_OK) rc = name_check(to, &tn);
  if (rc) return rc;
  if (!pg_is_write(t->pt)) return nx_err(NX_READONLY, "renaming tree %s in a read transaction", from);
  bt_read_release(t->pt, &t->rd);
  if (strcmp(from, to) == 0) return NX_OK;
  bt_desc d, dummy;
  int i = find_open(t, from);
  if (i >= 0) {
    d = t->trees[i].d;
  } else {
    rc = cat_get(t, from, fn, &d);
    if (rc == NX_NOTFOUND) return nx_err(NX_NOTFOUND, "renaming tree %s: it does not exist", from);
    if (rc) return rc;
  }
  rc = cat_get(t, to, tn, &dummy);
  if (rc == NX_OK) return nx_err(NX_EXISTS, "renaming tree %s: %s already exists", from, to);
  if (rc != NX_NOTFOUND) return rc;
  char *nm = NULL;
  if (i >= 0 && !(nm = nx_strdup(to))) return nx_err(NX_NOMEM, "renaming tree %s: out of memory", from);
  if ((rc = txn_usable(t)) != NX_OK) {
    nx_free(nm);
    return rc;
  }
  t->cat_dirty = true;
  rc = bt_del(t->pt, &t->env->scratch, &t->cat, (const uint8_t *)from, fn);
  if (rc == NX_OK) rc = cat_put(t, to, tn, &d, true);
  if (rc) {
    nx_free(nm);
    return txn_fail(t, rc == NX_EXISTS || rc == NX_NOTFOUND ? NX_CORRUPT_BKPT("renaming tree %s: catalog changed", from) : rc);
  }
  if (i >= 0) {
    nx_free(t->trees[i].name);
    t->trees[i].name = nm;
    t->trees[i].dirty = false;
  }
  return NX_OK;
}

int st_tree_list(st_txn *t, const char *prefix, int (*fn)(void *ctx, const char *name), void *ctx) {
  size_t pn = prefix ? strlen(prefix) : 0;
  char name[ST_MAX_NAME + 1];
  bt_cursor c;
  bt_read_release(t->pt, &t->rd);
  bt_cursor_init(&c, t->pt, &t->cat);
  int rc = bt_cursor_seek(&c, (const uint8_t *)prefix, pn, 0);
  while (rc == NX_OK) {
    const uint8_t *k;
    size_t kn;
    rc = bt_cursor_get(&c, &k, &kn, NULL, NULL);
    if (rc) break;
    if (kn < pn || (pn && memcmp(k, prefix, pn) != 0)) break;
    if (kn > ST_MAX_NAME || memchr(k, 0, kn)) {
      rc = NX_CORRUPT_BKPT("catalog: bad tree name of %zu bytes", kn);
      break;
    }
    memcpy(name, k, kn);
    name[kn] = 0;
    rc = fn(ctx, name);
    if (rc) break;
    rc = bt_cursor_next(&c);
  }
  bt_cursor_fini(&c);
  return rc == NX_NOTFOUND ? NX_OK : rc;
}

int st_tree_count(st_txn *t, st_tree tree, uint64_t *out) {
  st_open_tree *o = tree_of(t, tree);
  if (!o) return nx_err(NX_MISUSE, "tree handle %u is not open in this transaction", tree);
  *out = o->d.count;
  return NX_OK;
}

/* ---- Entries ---- */
int st_get(st_txn *t, st_tree tree, st_val key, st_val *val) {
  st_open_tree *o = tree_of(t, tree);
  if (!o) return nx_err(NX_MISUSE, "tree handle %u is not open in this transaction", tree);
  return bt_get_cached(t->pt, pg_is_write(t->pt) ? NULL : &t->pc, &o->d, key.p, key.n, &t->rd, &val->p, &val->n);
}

_Static_assert(sizeof(bt_loc) <= sizeof(st_loc), "st_loc holds a bt_loc");

int st_locate(st_txn *t, st_tree tree, st_val key, st_loc *loc) {
  memset(loc, 0, sizeof *loc);
  st_open_tree *o = tree_of(t, tree);
  if (!o) return nx_err(NX_MISUSE, "tree handle %u is not open in this transaction", tree);
  if (pg_is_write(t->pt)) return NX_OK; /* st_get_located reads it all */
  bt_loc l;
  int rc = bt_locate_cached(t->pt, &t->pc, &o->d, key.p, key.n, &l);
  memcpy(loc, &l, sizeof l);
  return rc;
}

void st_prefetch_located(st_txn *t, const st_loc *loc) {
  if (pg_is_write(t->pt)) return;
  bt_loc l;
  memcpy(&l, loc, sizeof l);
  bt_prefetch_located(t->pt, &t->pc, &l);
}

int st_get_located(st_txn *t, st_tree tree, const st_loc *loc, st_val key, st_val *val) {
  st_open_tree *o = tree_of(t, tree);
  if (!o) return nx_err(NX_MISUSE, "tree handle %u is not open in this transaction", tree);
  bt_loc l;
  memcpy(&l, loc, sizeof l); /* a write txn's location is empty: the whole read, as st_get */
  return bt_get_located(t->pt, pg_is_write(t->pt) ? NULL : &t->pc, &o->d, &l, key.p, key.n, &t->rd, &val->p, &val->n);
}

int st_put(st_txn *t, st_tree tree, st_val key, st_val val, unsigned flags) {
  st_open_tree *o = tree_of(t, tree);
  if (!o) return nx_err(NX_MISUSE, "tree handle %u is not open in this transaction", tree);
  if (!pg_is_write(t->pt)) return nx_err(NX_READONLY, "put in a read transaction (tree %s)", o->name);
  bt_read_release(t->pt, &t->rd);
  int rc = txn_usable(t);
  if (rc) return rc;
  bool added;
  rc = bt_put(t->pt, &t->env->scratch, &o->d, key.p, key.n, val.p, val.n, (flags & ST_NOOVERWRITE) != 0, &added);
  if (rc == NX_EXISTS) return nx_err(NX_EXISTS, "tree %s: key of %zu bytes already present", o->name, key.n);
  o->dirty = true;
  return txn_fail(t, rc);
}

int st_del(st_txn *t, st_tree tree, st_val key) {
  st_open_tree *o = tree_of(t, tree);
  if (!o) return nx_err(NX_MISUSE, "tree handle %u is not open in this transaction", tree);
  if (!pg_is_write(t->pt)) return nx_err(NX_READONLY, "delete in a read transaction (tree %s)", o->name);
  bt_read_release(t->pt, &t->rd);
  int rc = txn_usable(t);
  if (rc) return rc;
  rc = bt_del(t->pt, &t->env->scratch, &o->d, key.p, key.n);
  if (rc != NX_NOTFOUND) o->dirty = true;
  return txn_fail(t, rc);
}

/* ---- Cursors ---- */
int st_cursor_open(st_txn *t, st_tree tree, st_cursor **out) {
  *out = NULL;
  st_open_tree *o = tree_of(t, tree);
  if (!o) return nx_err(NX_MISUSE, "tree handle %u is not open in this transaction", tree);
  st_cursor *c = nx_malloc(sizeof *c);
  if (!c) return nx_err(NX_NOMEM, "opening a cursor on tree %s: out of memory", o->name);
  c->t = t;
  c->tree = tree;
  bt_cursor_init(&c->bc, t->pt, &o->d);
  c->prev = NULL;
  c->next = t->cursors;
  if (t->cursors) t->cursors->prev = c;
  t->cursors = c;
  *out = c;
  return NX_OK;
}

void st_cursor_close(st_cursor *c) {
  if (!c) return;
  if (c->t) {
    if (c->prev) c->prev->next = c->next;
    else c->t->cursors = c->next;
    if (c->next) c->next->prev = c->prev;
    bt_cursor_fini(&c->bc);
  }
  nx_free(c);
}

static int cur_dead(void) { return nx_err(NX_MISUSE, "cursor used after its transaction ended"); }

/* Re-reads the tree's descriptor (writes in this txn may have moved the root). */
static int cur_refresh(st_cursor *c) {
  if (!c->t) return cur_dead();
  st_open_tree *o = tree_of(c->t, c->tree);
  if (!o) return nx_err(NX_MISUSE, "cursor on a dropped tree");
  c->bc.d = o->d;
  return NX_OK;
}

int st_cursor_first(st_cursor *c) {
  int rc = cur_refresh(c);
  return rc ? rc : bt_cursor_first(&c->bc);
}

int st_cursor_last(st_cursor *c) {
  int rc = cur_refresh(c);
  return rc ? rc : bt_cursor_last(&c->bc);
}

int st_cursor_next(st_cursor *c) { return c->t ? bt_cursor_next_fast(&c->bc) : cur_dead(); }
int st_cursor_prev(st_cursor *c) { return c->t ? bt_cursor_prev(&c->bc) : cur_dead(); }

int st_cursor_seek(st_cursor *c, st_val key, st_seek how) {
  int rc = cur_refresh(c);
  return rc ? rc : bt_cursor_seek(&c->bc, key.p, key.n, (int)how);
}

int st_cursor_get(st_cursor *c, st_val *key, st_val *val) {
  if (!c->t) return cur_dead();
  return bt_cursor_get(&c->bc, key ? &key->p : NULL, key ? &key->n : NULL, val ? &val->p : NULL,
                       val ? &val->n : NULL);
}

/* ---- Page count of one tree (index statistics; added by the index engineer) ---- */
static int count_page(void *ctx, uint32_t pgno) {
  (void)pgno;
  (*(uint64_t *)ctx)++;
  return 0;
}

int st_tree_pages(st_txn *t, st_tree tree, uint64_t *out) {
  st_open_tree *o = tree_of(t, tree);
  if (!o) return nx_err(NX_MISUSE, "tree handle %u is not open in this transaction", tree);
  *out = 0;
  return bt_visit(t->pt, &o->d, count_page, out);
}

/* ---- Integrity walk and compaction ---- */
/* Calls fn(ctx, name, desc) for every tree in the catalog of txn t (catalog cursor). */
static int each_tree(pg_txn *pt, const bt_desc *cat, int (*fn)(void *ctx, const uint8_t *name, size_t n, const bt_desc *d),
                     void *ctx) {
  bt_cursor c;
  bt_cursor_init(&c, pt, cat);
  int rc = bt_cursor_first(&c);
  while (rc == NX_OK) {
    const uint8_t *k, *v;
    size_t kn, vn;
    rc = bt_cursor_get(&c, &k, &kn, &v, &vn);
    if (rc) break;
    if (vn != ST_CAT_VAL) {
      rc = NX_CORRUPT_BKPT("catalog: entry of %zu bytes", vn);
      break;
    }
    bt_desc d;
    bt_desc_load(&d, v);
    rc = fn(ctx, k, kn, &d);
    if (rc) break;
    rc = bt_cursor_next(&c);
  }
  bt_cursor_fini(&c);
  return rc == NX_NOTFOUND ? NX_OK : rc;
}

/* Page accounting for st_check: one byte of state per page. */
enum { PS_NONE = 0, PS_TREE = 1, PS_PAGER = 2 };
typedef struct ck_acct {
  uint8_t *state;   /* per page: PS_* */
  uint32_t npages;  /* pages in the file */
  uint64_t reached; /* pages reached from the roots */
  pg_txn *pt;
} ck_acct;

static int acct_tree(void *ctx, uint32_t pgno) {
  ck_acct *a = ctx;
  if (pgno < 2 || pgno >= a->npages)
    return NX_CORRUPT_BKPT("page accounting: page %u reached from a tree, outside [2, %u)", pgno, a->npages);
  if (a->state[pgno] != PS_NONE) return NX_CORRUPT_BKPT("page accounting: page %u reached twice", pgno);
  a->state[pgno] = PS_TREE;
  a->reached++;
  return NX_OK;
}

static int acct_pager(void *ctx, uint32_t pgno) {
  ck_acct *a = ctx;
  if (pgno >= a->npages) return NX_CORRUPT_BKPT("page accounting: pager page %u beyond the file's %u pages", pgno, a->npages);
  if (a->state[pgno] == PS_TREE) return NX_CORRUPT_BKPT("page accounting: page %u is both reachable and free", pgno);
  if (a->state[pgno] == PS_PAGER) return NX_CORRUPT_BKPT("page accounting: page %u is listed free twice", pgno);
  a->state[pgno] = PS_PAGER;
  return NX_OK;
}

static int check_one(void *ctx, const uint8_t *name, size_t n, const bt_desc *d) {
  ck_acct *a = ctx;
  bt_check_stats st;
  int rc = bt_check(a->pt, d, acct_tree, a, &st);
  if (rc) return nx_err_prefix(rc, "tree %.*s: ", (int)n, (const char *)name);
  return NX_OK;
}

int st_check(st_env *env) {
  st_txn *t;
  /* A write txn: no commit can change the free lists while we compare them with the trees. */
  int rc = st_txn_begin(env, true, &t);
  if (rc) return rc;
  nx_stats s;
  pager_stats(env->p, &s);
  ck_acct a = {NULL, (uint32_t)s.pages_total, 0, t->pt};
  a.state = nx_calloc(a.npages ? a.npages : 1, 1);
  if (!a.state) {
    st_txn_abort(t);
    return nx_err(NX_NOMEM, "st_check: out of memory for %u pages", a.npages);
  }
  bt_check_stats st;
  rc = bt_check(t->pt, &t->cat, acct_tree, &a, &st);
  if (rc) rc = nx_err_prefix(rc, "catalog: ");
  if (rc == NX_OK) rc = each_tree(t->pt, &t->cat, check_one, &a);
  if (rc == NX_OK) {
    rc = pager_owned_pages(t->pt, acct_pager, &a);
    for (uint32_t i = 0; rc == NX_OK && i < a.npages; i++) {
      if (a.state[i] == PS_NONE)
        rc = NX_CORRUPT_BKPT("page accounting: page %u of %u is neither reachable nor free (leaked)", i, a.npages);
    }
  }
  nx_free(a.state);
  st_txn_abort(t);
  return rc;
}

typedef struct visit_ctx {
  pg_txn *pt;
  int (*mark)(void *mctx, uint32_t pgno);
  void *mctx;
} visit_ctx;

static int visit_one(void *ctx, const uint8_t *name, size_t n, const bt_desc *d) {
  (void)name;
  (void)n;
  visit_ctx *v = ctx;
  return bt_visit(v->pt, d, v->mark, v->mctx);
}

/* pg_visit_fn for pager_compact: every page reachable from the roots of t. */
static int st_visit(pg_txn *t, void *ctx, int (*mark)(void *mctx, uint32_t pgno), void *mctx) {
  (void)ctx;
  const uint8_t *r = pg_roots(t);
  bt_desc cat;
  bt_desc_load(&cat, r);
  if (nx_get32(r + 24) != ST_ROOTS_MAGIC) memset(&cat, 0, sizeof cat);
  visit_ctx v = {t, mark, mctx};
  int rc = bt_visit(t, &cat, mark, mctx);
  if (rc == NX_OK) rc = each_tree(t, &cat, visit_one, &v);
  return rc;
}

typedef struct name_list {
  char **v;
  size_t n, cap;
} name_list;

static int collect_name(void *ctx, const char *name) {
  name_list *l = ctx;
  if (l->n == l->cap) {
    size_t nc = l->cap ? l->cap * 2 : 16;
    char **nv = nx_realloc(l->v, nc * sizeof *nv);
    if (!nv) return nx_err(NX_NOMEM, "compaction: out of memory listing trees");
    l->v = nv;
    l->cap = nc;
  }
  if (!(l->v[l->n] = nx_strdup(name))) return nx_err(NX_NOMEM, "compaction: out of memory listing trees");
  l->n++;
  return NX_OK;
}

/* Rewrites one tree descriptor in place (a compaction step); d changes when pages moved. */
typedef int (*tree_rewrite_fn)(pg_txn *pt, st_env *env, bt_desc *d, uint32_t limit);

/* Rebuilt densely (leaves and branches 15/16 full) into the lowest free page numbers; the old
 * pages are freed. */
static int rewrite_rebuild(pg_txn *pt, st_env *env, bt_desc *d, uint32_t limit) {
  (void)limit;
  bt_desc nd;
  int rc = bt_rebuild(pt, &env->scratch, d, &nd);
  if (rc == NX_OK) rc = bt_drop(pt, d);
  if (rc == NX_OK) *d = nd;
  return rc;
}

/* Every page numbered >= limit moved into lower free pages. */
static int rewrite_relocate(pg_txn *pt, st_env *env, bt_desc *d, uint32_t limit) {
  (void)env;
  return bt_relocate(pt, d, limit);
}

/* Applies fn to every tree and then to the catalog, in one write txn. */
static int rewrite_all(st_env *env, tree_rewrite_fn fn, uint32_t limit) {
  st_txn *t;
  int rc = st_txn_begin(env, true, &t);
  if (rc) return rc;
  name_list names = {NULL, 0, 0};
  rc = st_tree_list(t, NULL, collect_name, &names);
  for (size_t i = 0; rc == NX_OK && i < names.n; i++) {
    st_tree h;
    rc = st_tree_open(t, names.v[i], false, &h);
    st_open_tree *o = rc == NX_OK ? tree_of(t, h) : NULL;
    if (o) {
      bt_desc before = o->d;
      rc = fn(t->pt, env, &o->d, limit);
      if (memcmp(&before, &o->d, sizeof before) != 0) o->dirty = true;
    }
  }
  if (rc == NX_OK) rc = flush_trees(t);
  if (rc == NX_OK) {
    rc = fn(t->pt, env, &t->cat, limit);
    t->cat_dirty = true;
  }
  for (size_t i = 0; i < names.n; i++) nx_free(names.v[i]);
  nx_free(names.v);
  if (rc) {
    st_txn_abort(t);
    return rc;
  }
  return st_txn_commit(t);
}

static int count_mark(void *ctx, uint32_t pgno) {
  (void)pgno;
  (*(uint64_t *)ctx)++;
  return NX_OK;
}

/* Pages reachable from the latest roots. */
static int live_pages(st_env *env, uint64_t *live) {
  st_txn *t;
  *live = 0;
  int rc = st_txn_begin(env, false, &t);
  if (rc) return rc;
  rc = st_visit(t->pt, NULL, count_mark, live);
  st_txn_abort(t);
  return rc;
}

/* Compaction: (1) two full checkpoints, so that every page freed earlier is reusable and both
 * metas are current; (2) when the free pages can hold a whole copy of the live ones (else the
 * copy would extend the file), every tree is rebuilt densely into the lowest free page numbers
 * in one txn, then two more checkpoints free the old pages; (3) a relocation pass moves the
 * pages numbered above the live count (plus slack) into the holes below it, two checkpoints;
 * (4) the pager copies the reachable pages into a new file that ends at the highest one and
 * renames it in place. */
int st_compact(st_env *env, nx_progress_fn progress, void *ctx) {
  int rc = NX_OK;
  for (int i = 0; rc == NX_OK && i < 2; i++) rc = pager_checkpoint(env->p, NX_CHECKPOINT_FULL);
  if (rc) return rc;
  /* Rebuild only when the free pages can hold a full copy of the live ones: otherwise the copy
   * would extend the file past its current end. */
  uint64_t live = 0;
  if ((rc = live_pages(env, &live)) != NX_OK) return rc;
  nx_stats s;
  pager_stats(env->p, &s);
  if (s.pages_free >= live) {
    rc = rewrite_all(env, rewrite_rebuild, 0);
    for (int i = 0; rc == NX_OK && i < 2; i++) rc = pager_checkpoint(env->p, NX_CHECKPOINT_FULL);
  }
  /* Then move whatever lies above the live count (plus slack for the pages the move rewrites
   * on the way, and the pager's own pages) down into the holes below it. */
  if (rc == NX_OK) rc = live_pages(env, &live);
  pager_stats(env->p, &s);
  uint64_t limit = live + live / 16 + 16;
  if (rc == NX_OK && s.pages_total > limit && limit < UINT32_MAX) {
    rc = rewrite_all(env, rewrite_relocate, (uint32_t)limit);
    for (int i = 0; rc == NX_OK && i < 2; i++) rc = pager_checkpoint(env->p, NX_CHECKPOINT_FULL);
  }
  if (rc == NX_OK) rc = pager_compact(env->p, st_visit, NULL, progress, ctx);
  return rc;
}
