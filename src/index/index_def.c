/*
 * index_def.c: index definitions: parsing a key pattern and options, the stored form in the
 * "idx.defs" tree, the fingerprint that detects a definition that does not match what its
 * entries were built for, and the per-collection set of definitions a transaction sees.
 *
 * Invariants:
 *   1. A definition record's key is COLL NUL NAME, so one cursor range holds a collection's
 *      indexes in name order.
 *   2. fp = CRC32C over (IDX_FORMAT_VERSION, name, key pattern bytes, unique, sparse, partial
 *      spec bytes). It covers everything that decides which entries exist, and not the
 *      collection name (a rename keeps the entries valid) nor multikey or build figures.
 *   3. idx_ddl_seq only grows; a cached idx_set whose seq differs is reloaded.
 */
#include <stdatomic.h>
#include <string.h>

#include "index_int.h"

static _Atomic uint64_t g_ddl_seq = 1;

uint64_t idx_ddl_seq(void) { return atomic_load(&g_ddl_seq); }
void idx_ddl_bump(void) { atomic_fetch_add(&g_ddl_seq, 1); }

void idx_def_free(idx_def *d) {
  if (!d) return;
  for (size_t i = 0; i < d->nfields; i++) {
    nx_free(d->fields[i].path);
    doc_path_free(&d->fields[i].dp);
  }
  nx_free(d->fields);
  nx_free(d->key.p);
  nx_free(d->partial_spec.p);
  filter_free(d->partial);
  nx_free(d->coll);
  nx_free(d->name);
  nx_free(d->tree);
  nx_free(d);
}

/* Reads a direction: 1 / -1 in any number type. */
static int key_dir(const bson_iter_t *it, bool *desc) {
  double v;
  switch (bson_iter_type(it)) {
  case BSON_TYPE_INT32: v = bson_iter_int32(it); break;
  case BSON_TYPE_INT64: v = (double)bson_iter_int64(it); break;
  case BSON_TYPE_DOUBLE: v = bson_iter_double(it); break;
  default: return NX_INVALID;
  }
  if (v == 1.0) *desc = false;
  else if (v == -1.0) *desc = true;
  else return NX_INVALID;
  return NX_OK;
}

static int gen_name(idx_def *d, nx_buf *b) {
  for (size_t i = 0; i < d->nfields; i++) {
    int rc = nx_buf_printf(b, "%s%s_%d", i ? "_" : "", d->fields[i].path, d->fields[i].desc ? -1 : 1);
    if (rc != NX_OK) return rc;
  }
  return nx_buf_append(b, "", 1);
}

static int bytes_dup(idx_bytes *b, const bson_t *doc) {
  b->p = nx_malloc(doc->len);
  if (!b->p) return nx_err(NX_NOMEM, "index definition: out of memory");
  memcpy(b->p, bson_get_data(doc), doc->len);
  b->n = doc->len;
  return NX_OK;
}

int idx_def_new(const char *coll, const bson_t *key, const char *name, bool unique, bool sparse,
                const bson_t *partial, idx_def **out) {
  *out = NULL;
  if (!coll || !*coll || strchr(coll, '$'))
    return nx_err(NX_INVALID, "index: bad collection name '%s'", coll ? coll : "(null)");
  uint32_t n = bson_count_keys(key);
  if (n == 0) return nx_err(NX_INVALID, "index on '%s': the key pattern is empty", coll);
  if (n > IDX_MAX_FIELDS)
    return nx_err(NX_INVALID, "index on '%s': %u key fields, the limit is %d", coll, n, IDX_MAX_FIELDS);
  idx_def *d = nx_calloc(1, sizeof *d);
  if (!d) return nx_err(NX_NOMEM, "index on '%s': out of memory", coll);
  bson_t kb = BSON_INITIALIZER; /* the key pattern, copied into d->key at the end */
  d->fields = nx_calloc(n, sizeof *d->fields);
  d->coll = nx_strdup(coll);
  int rc = (d->fields && d->coll) ? NX_OK : nx_err(NX_NOMEM, "index on '%s': out of memory", coll);
  bson_iter_t it;
  if (rc == NX_OK && !bson_iter_init(&it, key)) rc = nx_err(NX_INVALID, "index on '%s': bad key pattern", coll);
  while (rc == NX_OK && bson_iter_next(&it)) {
    idx_field *f = &d->fields[d->nfields];
    const char *p = bson_iter_key(&it);
    if (!*p || p[0] == '$') {
      rc = nx_err(NX_INVALID, "index on '%s': bad key field '%s'", coll, p);
      break;
    }
    for (size_t j = 0; j < d->nfields; j++)
      if (strcmp(d->fields[j].path, p) == 0) rc = nx_err(NX_INVALID, "index on '%s': field '%s' twice in the key", coll, p);
    if (rc != NX_OK) break;
    if (key_dir(&it, &f->desc) != NX_OK) {
      rc = nx_err(NX_INVALID, "index on '%s': direction of '%s' must be 1 or -1", coll, p);
      break;
    }
    rc = doc_path_parse(p, -1, &f->dp);
    if (rc != NX_OK) {
      rc = nx_err_prefix(rc, "index on '%s': ", coll);
      break;
    }
    f->path = nx_strdup(p);
    d->nfields++;
    if (!f->path) rc = nx_err(NX_NOMEM, "index on '%s': out of memory", coll);
    else BSON_APPEND_INT32(&kb, p, f->desc ? -1 : 1);
  }
  if (rc == NX_OK) {
    if (name) {
      size_t nl = strlen(name);
      if (nl == 0 || nl > IDX_NAME_MAX || strchr(name, '$'))
        rc = nx_err(NX_INVALID, "index on '%s': bad index name '%s' (1..%d bytes, no '$')", coll, name, IDX_NAME_MAX);
      else if (!(d->name = nx_strdup(name)))
        rc = nx_err(NX_NOMEM, "index on '%s': out of memory", coll);
    } else {
      nx_buf b;
      nx_buf_init(&b, 0);
      rc = gen_name(d, &b);
      if (rc == NX_OK && (b.len - 1 > IDX_NAME_MAX || strchr((char *)b.data, '$')))
        rc = nx_err(NX_INVALID, "index on '%s': the generated name '%s' is too long or has '$'; give a name",
                    coll, (char *)b.data);
      if (rc == NX_OK) d->name = (char *)b.data;
      else nx_buf_free(&b);
    }
  }
  if (rc == NX_OK) {
    nx_buf b;
    nx_buf_init(&b, 0);
    rc = nx_buf_printf(&b, "i:%s$%s", coll, d->name);
    if (rc == NX_OK) rc = nx_buf_append(&b, "", 1);
    if (rc == NX_OK) d->tree = (char *)b.data;
    else nx_buf_free(&b);
  }
  d->unique = unique;
  d->sparse = sparse;
  if (rc == NX_OK && partial && !bson_empty(partial)) {
    rc = bytes_dup(&d->partial_spec, partial);
    if (rc == NX_OK) rc = filter_parse(partial, &d->partial);
    if (rc != NX_OK) rc = nx_err_prefix(rc, "index '%s' on '%s': partialFilterExpression: ", d->name, coll);
  }
  if (rc == NX_OK) rc = bytes_dup(&d->key, &kb);
  bson_destroy(&kb);
  if (rc != NX_OK) {
    idx_def_free(d);
    return rc;
  }
  *out = d;
  return NX_OK;
}

static int64_t def_fp(const idx_def *d) {
  uint8_t v[4];
  nx_put32(v, IDX_FORMAT_VERSION);
  uint32_t c = nx_crc32c(0, v, 4);
  c = nx_crc32c(c, d->name, strlen(d->name) + 1);
  c = nx_crc32c(c, d->key.p, d->key.n);
  uint8_t flags[2] = {d->unique, d->sparse};
  c = nx_crc32c(c, flags, 2);
  if (d->partial_spec.p) c = nx_crc32c(c, d->partial_spec.p, d->partial_spec.n);
  return (int64_t)c;
}

int idx_def_to_bson(const idx_def *d, bson_t *out) {
  bson_init(out);
  BSON_APPEND_INT32(out, "v", d->stale ? 0 : IDX_FORMAT_VERSION); /* a stale index stays stale */
  BSON_APPEND_UTF8(out, "name", d->name);
  bson_t v;
  if (idx_bson(&d->key, &v)) BSON_APPEND_DOCUMENT(out, "key", &v);
  BSON_APPEND_BOOL(out, "unique", d->unique);
  BSON_APPEND_BOOL(out, "sparse", d->sparse);
  if (idx_bson(&d->partial_spec, &v)) BSON_APPEND_DOCUMENT(out, "partialFilterExpression", &v);
  BSON_APPEND_INT32(out, "multikey", (int32_t)d->multikey);
  BSON_APPEND_INT64(out, "fp", def_fp(d));
  BSON_APPEND_INT64(out, "buildMs", d->build_ms);
  BSON_APPEND_DATE_TIME(out, "builtAt", d->built_at);
  return NX_OK;
}

/* The defs-tree key of (coll, name) into b (reset first). */
int idx_def_key(nx_buf *b, const char *coll, const char *name) {
  b->len = 0;
  int rc = nx_buf_append(b, coll, strlen(coll) + 1);
  if (rc == NX_OK && name) rc = nx_buf_append(b, name, strlen(name));
  return rc;
}

/* Writes d's record into the defs tree (created when missing). */
int idx_def_store(st_txn *t, const idx_def *d) {
  st_tree defs;
  int rc = st_tree_open(t, IDX_DEFS_TREE, true, &defs);
  if (rc != NX_OK) return rc;
  nx_buf k;
  nx_buf_init(&k, 0);
  rc = idx_def_key(&k, d->coll, d->name);
  bson_t v;
  if (rc == NX_OK) {
    idx_def_to_bson(d, &v);
    rc = st_put(t, defs, (st_val){k.data, k.len}, (st_val){bson_get_data(&v), v.len}, 0);
    bson_destroy(&v);
  }
  nx_buf_free(&k);
  return rc;
}

int idx_def_erase(st_txn *t, const char *coll, const char *name) {
  st_tree defs;
  int rc = st_tree_open(t, IDX_DEFS_TREE, false, &defs);
  if (rc != NX_OK) return rc;
  nx_buf k;
  nx_buf_init(&k, 0);
  rc = idx_def_key(&k, coll, name);
  if (rc == NX_OK) rc = st_del(t, defs, (st_val){k.data, k.len});
  nx_buf_free(&k);
  return rc;
}

/* Parses a stored record (bytes from disk: hostile). */
static int def_from_record(const char *coll, const char *name, st_val v, idx_def **out) {
  bson_t rec;
  if (v.n < 5 || !bson_init_static(&rec, v.p, v.n) || !bson_validate(&rec, BSON_VALIDATE_NONE, NULL))
    return NX_CORRUPT_BKPT("index '%s' of '%s': definition record is not BSON", name, coll);
  bson_iter_t it;
  int32_t ver = 0;
  int64_t fp = -1, build_ms = 0, built_at = 0;
  uint32_t multikey = 0;
  bool unique = false, sparse = false;
  bson_t key, partial;
  bool have_key = false, have_partial = false;
  if (!bson_iter_init(&it, &rec)) return NX_CORRUPT_BKPT("index '%s' of '%s': bad record", name, coll);
  while (bson_iter_next(&it)) {
    const char *k = bson_iter_key(&it);
    if (strcmp(k, "v") == 0 && BSON_ITER_HOLDS_INT32(&it)) ver = bson_iter_int32(&it);
    else if (strcmp(k, "fp") == 0 && BSON_ITER_HOLDS_INT64(&it)) fp = bson_iter_int64(&it);
    else if (strcmp(k, "buildMs") == 0 && BSON_ITER_HOLDS_INT64(&it)) build_ms = bson_iter_int64(&it);
    else if (strcmp(k, "builtAt") == 0 && BSON_ITER_HOLDS_DATE_TIME(&it)) built_at = bson_iter_date_time(&it);
    else if (strcmp(k, "multikey") == 0 && BSON_ITER_HOLDS_INT32(&it)) multikey = (uint32_t)bson_iter_int32(&it);
    else if (strcmp(k, "unique") == 0 && BSON_ITER_HOLDS_BOOL(&it)) unique = bson_iter_bool(&it);
    else if (strcmp(k, "sparse") == 0 && BSON_ITER_HOLDS_BOOL(&it)) sparse = bson_iter_bool(&it);
    else if ((strcmp(k, "key") == 0 || strcmp(k, "partialFilterExpression") == 0) && BSON_ITER_HOLDS_DOCUMENT(&it)) {
      uint32_t len;
      const uint8_t *data;
      bson_iter_document(&it, &len, &data);
      bool isk = strcmp(k, "key") == 0;
      if (!bson_init_static(isk ? &key : &partial, data, len))
        return NX_CORRUPT_BKPT("index '%s' of '%s': bad %s in definition", name, coll, k);
      if (isk) have_key = true;
      else have_partial = true;
    }
  }
  if (!have_key) return NX_CORRUPT_BKPT("index '%s' of '%s': definition has no key", name, coll);
  idx_def *d;
  int rc = idx_def_new(coll, &key, name, unique, sparse, have_partial ? &partial : NULL, &d);
  if (rc != NX_OK) return nx_err(NX_CORRUPT, "index '%s' of '%s': stored definition: %s", name, coll, nx_err_msg());
  d->multikey = multikey;
  d->build_ms = build_ms;
  d->built_at = built_at;
  d->stale = ver != IDX_FORMAT_VERSION || fp != def_fp(d);
  *out = d;
  return NX_OK;
}

void idx_set_free(idx_set *s) {
  if (!s) return;
  for (size_t i = 0; i < s->n; i++) idx_def_free(s->defs[i]);
  nx_free(s->defs);
  nx_free(s->coll);
  nx_free(s);
}

idx_def *idx_set_find(const idx_set *s, const char *name) {
  for (size_t i = 0; s && i < s->n; i++)
    if (strcmp(s->defs[i]->name, name) == 0) return s->defs[i];
  return NULL;
}

int idx_set_load(st_txn *t, const char *coll, idx_set **out) {
  *out = NULL;
  idx_set *s = nx_calloc(1, sizeof *s);
  if (!s || !(s->coll = nx_strdup(coll))) {
    nx_free(s);
    return nx_err(NX_NOMEM, "indexes of '%s': out of memory", coll);
  }
  s->seq = idx_ddl_seq();
  st_tree defs;
  int rc = st_tree_open(t, IDX_DEFS_TREE, false, &defs);
  if (rc == NX_NOTFOUND) {
    *out = s;
    return NX_OK;
  }
  st_cursor *c = NULL;
  nx_buf k;
  nx_buf_init(&k, 0);
  if (rc == NX_OK) rc = idx_def_key(&k, coll, NULL);
  if (rc == NX_OK) rc = st_cursor_open(t, defs, &c);
  if (rc == NX_OK) rc = st_cursor_seek(c, (st_val){k.data, k.len}, ST_SEEK_GE);
  size_t cap = 0;
  while (rc == NX_OK) {
    st_val key, val;
    rc = st_cursor_get(c, &key, &val);
    if (rc != NX_OK) break;
    if (key.n < k.len || memcmp(key.p, k.data, k.len) != 0) break;
    char name[IDX_NAME_MAX + 1];
    size_t nl = key.n - k.len;
    if (nl == 0 || nl > IDX_NAME_MAX || memchr(key.p + k.len, 0, nl)) {
      rc = NX_CORRUPT_BKPT("indexes of '%s': bad definition key of %zu bytes", coll, key.n);
      break;
    }
    memcpy(name, key.p + k.len, nl);
    name[nl] = 0;
    if (s->n == cap) {
      size_t nc = cap ? cap * 2 : 4;
      idx_def **nd = nx_realloc(s->defs, nc * sizeof *nd);
      if (!nd) {
        rc = nx_err(NX_NOMEM, "indexes of '%s': out of memory", coll);
        break;
      }
      s->defs = nd;
      cap = nc;
    }
    rc = def_from_record(coll, name, val, &s->defs[s->n]);
    if (rc != NX_OK) break;
    s->n++;
    rc = st_cursor_next(c);
  }
  st_cursor_close(c);
  nx_buf_free(&k);
  if (rc != NX_OK && rc != NX_NOTFOUND) {
    idx_set_free(s);
    return rc;
  }
  *out = s;
  return NX_OK;
}

int idx_set_get(st_txn *t, const char *coll, idx_set **cache, idx_set **out) {
  if (cache && *cache && (*cache)->seq == idx_ddl_seq() && strcmp((*cache)->coll, coll) == 0) {
    *out = *cache;
    return NX_OK;
  }
  idx_set *s;
  int rc = idx_set_load(t, coll, &s);
  if (rc != NX_OK) return rc;
  if (cache) {
    idx_set_free(*cache);
    *cache = s;
  }
  *out = s;
  return NX_OK;
}
