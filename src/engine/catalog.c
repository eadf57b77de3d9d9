/*
 * catalog.c: collections. The "catalog" tree maps a collection name to its definition
 * {name, options, formatVersion, created, hasExpiry?}; the documents live in the tree "c:NAME".
 *
 * Invariants:
 *   1. Both the catalog entry and the tree are created, renamed and dropped in one write txn, so
 *      a collection exists iff both do (engine.h invariant 1).
 *   2. Options are validated once, at creation; unknown options are refused (NX_INVALID naming
 *      the option) so that a typo never silently means "default". Layers above that add options
 *      (cache collections, field encryption) add their names to k_known_options.
 *   3. The per-txn cache (nx_txn.colls) holds tree handles valid in that txn only; drop and
 *      rename evict the names they touch.
 */
#include <string.h>

#include "engine.h"

#define CATALOG_TREE "catalog"
#define TREE_PREFIX "c:"

/* Options accepted at creation. Only compression, compressionLevel and idFormat are interpreted
 * by the engine; the others belong to layers above and are stored as given. */
static const char *const k_known_options[] = {"compression", "compressionLevel", "idFormat",
                                               "capped", "capacity", "maxDocuments", "maxBytes",
                                               "eviction", "maxSamples", "batchSize", "ttl",
                                               "encryptedFields", "validator", NULL};

static int tree_name(const char *coll, char *buf, size_t cap) {
  size_t n = strlen(coll);
  if (n + sizeof TREE_PREFIX > cap) return nx_err(NX_INVALID, "collection name '%.40s...' is too long", coll);
  memcpy(buf, TREE_PREFIX, sizeof TREE_PREFIX - 1);
  memcpy(buf + sizeof TREE_PREFIX - 1, coll, n + 1);
  return NX_OK;
}

static bool utf8_valid(const char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint8_t c = (uint8_t)s[i];
    size_t k;
    if (c < 0x80) k = 0;
    else if (c >= 0xC2 && c <= 0xDF) k = 1;
    else if ((c & 0xF0) == 0xE0) k = 2;
    else if (c >= 0xF0 && c <= 0xF4) k = 3;
    else return false;
    if (k > n - i - 1) return false;
    for (size_t j = 1; j <= k; j++)
      if (((uint8_t)s[i + j] & 0xC0) != 0x80) return false;
    i += k + 1;
  }
  return true;
}

int eng_coll_name_check(const char *name) {
  if (!name) return nx_err(NX_INVALID, "collection name is NULL");
  size_t n = strlen(name);
  if (n == 0) return nx_err(NX_INVALID, "collection name is empty");
  if (n > ENG_NAME_MAX)
    return nx_err(NX_INVALID, "collection name '%.40s...' is %zu bytes long; the limit is %u", name, n,
                  ENG_NAME_MAX);
  const char *dollar = strchr(name, '$');
  if (dollar)
    return nx_err(NX_INVALID, "collection name '%s' may not contain '$' (at byte %zu)", name,
                  (size_t)(dollar - name));
  if (!utf8_valid(name, n)) return nx_err(NX_INVALID, "collection name is not valid UTF-8");
  if (strncmp(name, "system.", 7) == 0)
    return nx_err(NX_INVALID, "collection name '%s' is reserved: names may not start with 'system.'", name);
  if (strncmp(name, "_nx", 3) == 0)
    return nx_err(NX_INVALID, "collection name '%s' is reserved: names may not start with '_nx'", name);
  return NX_OK;
}

static st_val key_of(const char *name) {
  st_val k = {(const uint8_t *)name, strlen(name)};
  return k;
}

static int catalog_tree(nx_txn *t, bool create, st_tree *out) {
  return st_tree_open(t->st, CATALOG_TREE, create && t->write, out);
}

int eng_catalog_get(nx_txn *t, const char *name, bson_t *out) {
  st_tree cat;
  int rc = catalog_tree(t, false, &cat);
  if (rc != NX_OK) return rc == NX_NOTFOUND ? nx_err(NX_NOTFOUND, "collection '%s' does not exist", name) : rc;
  st_val v;
  rc = st_get(t->st, cat, key_of(name), &v);
  if (rc == NX_NOTFOUND) return nx_err(NX_NOTFOUND, "collection '%s' does not exist", name);
  if (rc != NX_OK) return rc;
  if (v.n < 5 || v.n > ST_MAX_VALUE || !bson_init_static(out, v.p, v.n))
    return NX_CORRUPT_BKPT("catalog entry of collection '%s' is not a BSON document", name);
  bson_t view = *out;
  bson_copy_to(&view, out); /* own the bytes: the borrowed value dies at the next write */
  return NX_OK;
}

int eng_catalog_put(nx_txn *t, const char *name, const bson_t *entry) {
  st_tree cat;
  int rc = catalog_tree(t, true, &cat);
  if (rc != NX_OK) return rc;
  st_val v = {bson_get_data(entry), entry->len};
  t->writes++;
  return st_put(t->st, cat, key_of(name), v, 0);
}

/* Interprets the options document into c (defaults for what is absent). */
static int opts_apply(const char *name, const bson_t *opts, eng_coll *c) {
  c->compression = ENG_COMP_NONE;
  c->compression_level = 1;
  c->id_format = ENG_ID_UUIDV7;
  if (!opts) return NX_OK;
  bson_iter_t it;
  if (!bson_iter_init(&it, opts)) return nx_err(NX_INVALID, "collection '%s': options are not a document", name);
  while (bson_iter_next(&it)) {
    const char *k = bson_iter_key(&it);
    bool known = false;
    for (size_t i = 0; k_known_options[i]; i++)
      if (strcmp(k, k_known_options[i]) == 0) known = true;
    if (!known) return nx_err(NX_INVALID, "collection '%s': unknown option '%s'", name, k);
    if (strcmp(k, "compression") == 0) {
      const char *s = BSON_ITER_HOLDS_UTF8(&it) ? bson_iter_utf8(&it, NULL) : NULL;
      if (s && strcmp(s, "none") == 0) c->compression = ENG_COMP_NONE;
      else if (s && strcmp(s, "zstd") == 0) c->compression = ENG_COMP_ZSTD;
      else if (s && strcmp(s, "lz4") == 0) c->compression = ENG_COMP_LZ4;
      else
        return nx_err(NX_INVALID, "collection '%s': option 'compression' must be \"none\", \"zstd\" or \"lz4\"", name);
    } else if (strcmp(k, "compressionLevel") == 0) {
      if (!BSON_ITER_HOLDS_NUMBER(&it) || bson_iter_as_int64(&it) < 1 || bson_iter_as_int64(&it) > 19)
        return nx_err(NX_INVALID, "collection '%s': option 'compressionLevel' must be a number 1..19", name);
      c->compression_level = (int)bson_iter_as_int64(&it);
    } else if (strcmp(k, "idFormat") == 0) {
      const char *s = BSON_ITER_HOLDS_UTF8(&it) ? bson_iter_utf8(&it, NULL) : NULL;
      if (s && strcmp(s, "uuidv7") == 0) c->id_format = ENG_ID_UUIDV7;
      else if (s && strcmp(s, "uuidv4") == 0) c->id_format = ENG_ID_UUIDV4;
      else return nx_err(NX_INVALID, "collection '%s': option 'idFormat' must be \"uuidv7\" or \"uuidv4\"", name);
    }
  }
  return NX_OK;
}

int eng_coll_load_opts(nx_txn *t, eng_coll *c) {
  if (c->opts_loaded) return NX_OK;
  bson_t entry;
  int rc = eng_catalog_get(t, c->name, &entry);
  if (rc != NX_OK) return rc;
  bson_t opts;
  bson_iter_t it;
  bool have = bson_iter_init_find(&it, &entry, "options") && BSON_ITER_HOLDS_DOCUMENT(&it);
  if (have) {
    uint32_t len;
    const uint8_t *data;
    bson_iter_document(&it, &len, &data);
    if (!bson_init_static(&opts, data, len)) have = false;
  }
  rc = opts_apply(c->name, have ? &opts : NULL, c);
  if (rc == NX_OK) {
    c->has_expiry = bson_iter_init_find(&it, &entry, "hasExpiry") && bson_iter_as_bool(&it);
    c->opts_loaded = true;
  }
  bson_destroy(&entry);
  return rc == NX_OK ? NX_OK : NX_CORRUPT_BKPT("catalog entry of '%s': %s", c->name, nx_err_msg());
}

static eng_coll *cache_find(nx_txn *t, const char *name) {
  for (eng_coll *c = t->colls; c; c = c->next)
    if (strcmp(c->name, name) == 0) return c;
  return NULL;
}

static void cache_evict(nx_txn *t, const char *name) {
  for (eng_coll **pp = &t->colls; *pp; pp = &(*pp)->next) {
    if (strcmp((*pp)->name, name) == 0) {
      eng_coll *c = *pp;
      *pp = c->next;
      idx_set_free(c->idx);
      nx_free(c->name);
      nx_free(c);
      return;
    }
  }
}

static int cache_add(nx_txn *t, const char *name, st_tree tree, eng_coll **out) {
  eng_coll *c = nx_calloc(1, sizeof *c);
  if (!c) return nx_err(NX_NOMEM, "collection '%s': out of memory", name);
  c->name = nx_strdup(name);
  if (!c->name) {
    nx_free(c);
    return nx_err(NX_NOMEM, "collection '%s': out of memory", name);
  }
  c->tree = tree;
  c->next = t->colls;
  t->colls = c;
  *out = c;
  return NX_OK;
}

/* Writes the catalog entry and creates the tree of a new collection. */
static int create_entry(nx_txn *t, const char *name, const bson_t *options) {
  char tn[ENG_NAME_MAX + 8];
  int rc = tree_name(name, tn, sizeof tn);
  if (rc != NX_OK) return rc;
  eng_coll probe = {0};
  probe.name = (char *)(uintptr_t)name;
  rc = opts_apply(name, options, &probe);
  if (rc != NX_OK) return rc;
  bson_t entry = BSON_INITIALIZER;
  bson_t empty = BSON_INITIALIZER;
  BSON_APPEND_UTF8(&entry, "name", name);
  BSON_APPEND_DOCUMENT(&entry, "options", options ? options : &empty);
  BSON_APPEND_INT32(&entry, "formatVersion", NX_FORMAT_VERSION);
  BSON_APPEND_DATE_TIME(&entry, "created", eng_now(t));
  rc = eng_catalog_put(t, name, &entry);
  bson_destroy(&entry);
  bson_destroy(&empty);
  if (rc != NX_OK) return rc;
  st_tree tree;
  t->writes++;
  return st_tree_open(t->st, tn, true, &tree);
}

int eng_coll_get(nx_txn *t, const char *name, bool create, eng_coll **out) {
  *out = cache_find(t, name);
  if (*out) return NX_OK;
  char tn[ENG_NAME_MAX + 8];
  int rc = tree_name(name, tn, sizeof tn);
  if (rc != NX_OK) return rc;
  st_tree tree;
  rc = st_tree_open(t->st, tn, false, &tree);
  if (rc == NX_NOTFOUND) {
    if (!create || !t->write) return nx_err(NX_NOTFOUND, "collection '%s' does not exist", name);
    rc = create_entry(t, name, NULL);
    if (rc == NX_OK) rc = st_tree_open(t->st, tn, false, &tree);
  }
  if (rc != NX_OK) return rc;
  return cache_add(t, name, tree, out);
}

int eng_coll_create(nx_txn *t, const char *name, const bson_t *options) {
  char tn[ENG_NAME_MAX + 8];
  int rc = tree_name(name, tn, sizeof tn);
  if (rc != NX_OK) return rc;
  st_tree tree;
  rc = st_tree_open(t->st, tn, false, &tree);
  if (rc == NX_OK) return nx_err(NX_EXISTS, "collection '%s' already exists", name);
  if (rc != NX_NOTFOUND) return rc;
  return create_entry(t, name, options);
}

int eng_coll_drop(nx_txn *t, const char *name) {
  char tn[ENG_NAME_MAX + 8];
  int rc = tree_name(name, tn, sizeof tn);
  if (rc != NX_OK) return rc;
  st_tree tree;
  rc = st_tree_open(t->st, tn, false, &tree);
  if (rc == NX_NOTFOUND) return nx_err(NX_NOTFOUND, "collection '%s' does not exist", name);
  if (rc != NX_OK) return rc;
  /* The index layer drops the collection's index trees and definitions, in the same txn. */
  cache_evict(t, name);
  t->writes++;
  rc = idx_coll_dropped(t->st, name);
  if (rc != NX_OK) return rc;
  rc = st_tree_drop(t->st, tn);
  if (rc != NX_OK) return rc;
  st_tree cat;
  rc = catalog_tree(t, false, &cat);
  if (rc != NX_OK) return rc;
  t->writes++;
  rc = st_del(t->st, cat, key_of(name));
  return rc == NX_NOTFOUND ? NX_CORRUPT_BKPT("collection '%s' has a tree but no catalog entry", name) : rc;
}

int eng_coll_rename(nx_txn *t, const char *from, const char *to) {
  char tf[ENG_NAME_MAX + 8], tt[ENG_NAME_MAX + 8];
  int rc = tree_name(from, tf, sizeof tf);
  if (rc == NX_OK) rc = tree_name(to, tt, sizeof tt);
  if (rc != NX_OK) return rc;
  st_tree tree;
  rc = st_tree_open(t->st, tf, false, &tree);
  if (rc == NX_NOTFOUND) return nx_err(NX_NOTFOUND, "rename: collection '%s' does not exist", from);
  if (rc != NX_OK) return rc;
  rc = st_tree_open(t->st, tt, false, &tree);
  if (rc == NX_OK) return nx_err(NX_EXISTS, "rename: collection '%s' already exists", to);
  if (rc != NX_NOTFOUND) return rc;
  bson_t entry;
  rc = eng_catalog_get(t, from, &entry);
  if (rc != NX_OK) return rc;
  /* Rewrite the entry under the new name, keeping options and creation time. */
  bson_t fresh = BSON_INITIALIZER;
  bson_iter_t it;
  bson_iter_init(&it, &entry);
  while (bson_iter_next(&it)) {
    if (strcmp(bson_iter_key(&it), "name") == 0) BSON_APPEND_UTF8(&fresh, "name", to);
    else bson_append_iter(&fresh, bson_iter_key(&it), -1, &it);
  }
  bson_destroy(&entry);
  cache_evict(t, from);
  cache_evict(t, to);
  /* The index layer moves the index trees and definitions named after the collection. */
  t->writes++;
  rc = idx_coll_renamed(t->st, from, to);
  if (rc == NX_OK) rc = st_tree_rename(t->st, tf, tt);
  if (rc == NX_OK) rc = eng_catalog_put(t, to, &fresh);
  bson_destroy(&fresh);
  if (rc != NX_OK) return rc;
  st_tree cat;
  rc = catalog_tree(t, false, &cat);
  if (rc != NX_OK) return rc;
  t->writes++;
  return st_del(t->st, cat, key_of(from));
}

typedef struct list_ctx {
  bool all;
  int (*fn)(void *ctx, const char *name);
  void *ctx;
} list_ctx;

static int list_cb(void *ctx, const char *tree) {
  list_ctx *lc = ctx;
  const char *name = tree + sizeof TREE_PREFIX - 1;
  if (!lc->all && strncmp(name, "_nx", 3) == 0) return 0;
  return lc->fn(lc->ctx, name);
}

int eng_coll_list(nx_txn *t, bool all, int (*fn)(void *ctx, const char *name), void *ctx) {
  list_ctx lc = {all, fn, ctx};
  return st_tree_list(t->st, TREE_PREFIX, list_cb, &lc);
}
