/*
 * api_kv.c: the key-value API over the reserved collection "_nx_kv".
 *
 * Each key is one document {_id: KEY (string), v: VALUE}: any JSON value (object, array, string,
 * number, bool, null) lives under "v". The _id key encoding keeps string order, so nx_kv_keys
 * with a prefix is a range scan from the prefix to the first key without it. Batches are ordinary
 * write transactions (several nx_kv_set / nx_kv_delete in one nx_txn, one commit).
 */
#include <string.h>

#include "api_int.h"

#define KV_MAX_KEY 1000u /* bytes; keeps the encoded _id under ST_MAX_KEY */

static int kv_key_check(const char *key, const char *what) {
  if (!key) return nx_err(NX_MISUSE, "%s: key is NULL", what);
  size_t n = strlen(key);
  if (n > KV_MAX_KEY) return nx_err(NX_LIMIT, "%s: key is %zu bytes long; the limit is %u", what, n, KV_MAX_KEY);
  if (!bson_utf8_validate(key, n, false)) return nx_err(NX_INVALID, "%s: key is not valid UTF-8", what);
  return NX_OK;
}

/* Encodes the tree key of string key into t->key. */
static int kv_tree_key(nx_txn *t, const char *key, st_val *out) {
  bson_value_t v;
  v.value_type = BSON_TYPE_UTF8;
  v.value.v_utf8.str = (char *)(uintptr_t)key;
  v.value.v_utf8.len = (uint32_t)strlen(key);
  int rc = eng_id_key(&t->key, &v);
  out->p = t->key.data;
  out->n = t->key.len;
  return rc;
}

/* Parses a JSON value by wrapping it as {"v": VALUE}; exactly one field must come out. */
static int kv_parse_value(const char *key, const char *json, bson_t *doc) {
  nx_buf b;
  nx_buf_init(&b, (size_t)DOC_MAX_BYTES * 2);
  int rc = nx_buf_append(&b, "{\"v\": ", 6);
  if (rc == NX_OK) rc = nx_buf_append(&b, json, strlen(json));
  if (rc == NX_OK) rc = nx_buf_append(&b, "\n}", 2);
  bson_t wrapped;
  if (rc != NX_OK) {
    nx_buf_free(&b);
    return nx_err_prefix(rc, "nx_kv_set '%s': ", key);
  }
  rc = doc_from_json((const char *)b.data, (ssize_t)b.len, &wrapped);
  nx_buf_free(&b);
  if (rc == NX_NOMEM) return nx_err_prefix(rc, "nx_kv_set '%s': ", key);
  if (rc != NX_OK) return nx_err_prefix(NX_PARSE, "nx_kv_set '%s': the value is not one JSON value (offsets count 6 bytes of a {\"v\": wrapper): ", key);
  bson_iter_t it;
  if (bson_count_keys(&wrapped) != 1 || !bson_iter_init_find(&it, &wrapped, "v")) {
    bson_destroy(&wrapped);
    return nx_err(NX_PARSE, "nx_kv_set '%s': the value is not one JSON value", key);
  }
  bson_init(doc);
  BSON_APPEND_UTF8(doc, "_id", key);
  bson_append_iter(doc, "v", 1, &it);
  bson_destroy(&wrapped);
  return NX_OK;
}

/* Writes the document stored under key k: replaces it with `doc` (ENG_REPLACE) or deletes it
 * (ENG_DELETE, doc NULL). Returns NX_NOTFOUND, with nothing written, when the key is absent. */
static int kv_rewrite(nx_txn *t, eng_coll *c, st_val k, eng_op op, const bson_t *doc) {
  nx_buf scratch;
  nx_buf_init(&scratch, ST_MAX_VALUE);
  eng_doc old;
  int rc = eng_doc_get(t, c, k, &scratch, &old);
  if (rc == NX_OK) {
    bson_t copy;
    bson_copy_to(&old.doc, &copy);
    nx_doc_meta m = old.meta;
    rc = eng_doc_write(t, c, op, &copy, &m, doc, 0);
    bson_destroy(&copy);
  }
  nx_buf_free(&scratch);
  return rc;
}

int nx_kv_set(nx_db *db, nx_txn *txn, const char *key, const char *json_value) {
  int rc = kv_key_check(key, "nx_kv_set");
  if (rc != NX_OK) return rc;
  if (!json_value) return nx_err(NX_MISUSE, "nx_kv_set '%s': value is NULL", key);
  bson_t doc;
  rc = kv_parse_value(key, json_value, &doc);
  if (rc != NX_OK) return rc;
  rc = doc_validate_for_storage(&doc);
  if (rc != NX_OK) {
    bson_destroy(&doc);
    return nx_err_prefix(rc, "nx_kv_set '%s': ", key);
  }
  nx_txn *t;
  bool own;
  rc = eng_txn_use(db, txn, true, "nx_kv_set", &t, &own);
  if (rc != NX_OK) {
    bson_destroy(&doc);
    return rc;
  }
  uint64_t before = t->writes;
  eng_coll *c;
  st_val k;
  rc = eng_coll_get(t, ENG_KV_COLLECTION, true, &c);
  if (rc == NX_OK) rc = kv_tree_key(t, key, &k);
  if (rc == NX_OK) {
    rc = kv_rewrite(t, c, k, ENG_REPLACE, &doc);
    if (rc == NX_NOTFOUND) rc = eng_doc_write(t, c, ENG_INSERT, NULL, NULL, &doc, 0);
  }
  bson_destroy(&doc);
  return eng_txn_done(t, own, rc, t->writes != before);
}

int nx_kv_get(nx_db *db, nx_txn *txn, const char *key, char **json_value) {
  if (!json_value) return nx_err(NX_MISUSE, "nx_kv_get: out is NULL");
  *json_value = NULL;
  int rc = kv_key_check(key, "nx_kv_get");
  if (rc != NX_OK) return rc;
  nx_txn *t;
  bool own;
  rc = eng_txn_use(db, txn, false, "nx_kv_get", &t, &own);
  if (rc != NX_OK) return rc;
  eng_coll *c;
  st_val k;
  rc = eng_coll_get(t, ENG_KV_COLLECTION, false, &c);
  if (rc == NX_OK) rc = kv_tree_key(t, key, &k);
  if (rc == NX_OK) {
    nx_buf scratch, out;
    nx_buf_init(&scratch, ST_MAX_VALUE);
    nx_buf_init(&out, 0);
    eng_doc d;
    rc = eng_doc_get(t, c, k, &scratch, &d);
    bson_iter_t it;
    if (rc == NX_OK) {
      if (!bson_iter_init_find(&it, &d.doc, "v")) {
        rc = NX_CORRUPT_BKPT("nx_kv_get '%s': stored entry has no value", key);
      } else {
        rc = doc_value_to_json(bson_iter_value(&it), &out);
        if (rc == NX_OK) {
          *json_value = nx_strndup(out.data ? (const char *)out.data : "", out.len);
          if (!*json_value) rc = nx_err(NX_NOMEM, "nx_kv_get: out of memory");
        }
      }
    }
    nx_buf_free(&scratch);
    nx_buf_free(&out);
  }
  if (rc == NX_NOTFOUND) rc = nx_err(NX_NOTFOUND, "nx_kv_get: no key '%s'", key);
  return eng_txn_done(t, own, rc, false);
}

int nx_kv_has(nx_db *db, nx_txn *txn, const char *key, bool *out) {
  if (!out) return nx_err(NX_MISUSE, "nx_kv_has: out is NULL");
  *out = false;
  int rc = kv_key_check(key, "nx_kv_has");
  if (rc != NX_OK) return rc;
  nx_txn *t;
  bool own;
  rc = eng_txn_use(db, txn, false, "nx_kv_has", &t, &own);
  if (rc != NX_OK) return rc;
  eng_coll *c;
  st_val k;
  rc = eng_coll_get(t, ENG_KV_COLLECTION, false, &c);
  if (rc == NX_OK) rc = kv_tree_key(t, key, &k);
  if (rc == NX_OK) {
    nx_buf scratch;
    nx_buf_init(&scratch, ST_MAX_VALUE);
    eng_doc d;
    rc = eng_doc_get(t, c, k, &scratch, &d);
    if (rc == NX_OK) *out = true;
    nx_buf_free(&scratch);
  }
  if (rc == NX_NOTFOUND) {
    rc = NX_OK;
    nx_err_clear();
  }
  return eng_txn_done(t, own, rc, false);
}

int nx_kv_delete(nx_db *db, nx_txn *txn, const char *key) {
  int rc = kv_key_check(key, "nx_kv_delete");
  if (rc != NX_OK) return rc;
  nx_txn *t;
  bool own;
  rc = eng_txn_use(db, txn, true, "nx_kv_delete", &t, &own);
  if (rc != NX_OK) return rc;
  uint64_t before = t->writes;
  eng_coll *c;
  st_val k;
  rc = eng_coll_get(t, ENG_KV_COLLECTION, false, &c);
  if (rc == NX_OK) rc = kv_tree_key(t, key, &k);
  if (rc == NX_OK) rc = kv_rewrite(t, c, k, ENG_DELETE, NULL);
  if (rc == NX_NOTFOUND) rc = nx_err(NX_NOTFOUND, "nx_kv_delete: no key '%s'", key);
  return eng_txn_done(t, own, rc, t->writes != before);
}

typedef struct kv_strv {
  char **v;
  size_t n, alloc;
} kv_strv;

static int kv_push(kv_strv *s, const char *k, size_t n) {
  if (s->n == s->alloc) {
    size_t na = s->alloc ? s->alloc * 2 : 16;
    char **p = nx_realloc(s->v, na * sizeof *p);
    if (!p) return nx_err(NX_NOMEM, "nx_kv_keys: out of memory");
    s->v = p;
    s->alloc = na;
  }
  s->v[s->n] = nx_strndup(k, n);
  if (!s->v[s->n]) return nx_err(NX_NOMEM, "nx_kv_keys: out of memory");
  s->n++;
  return NX_OK;
}

int nx_kv_keys(nx_db *db, nx_txn *txn, const char *prefix, char ***keys, size_t *count) {
  if (!keys || !count) return nx_err(NX_MISUSE, "nx_kv_keys: NULL output");
  *keys = NULL;
  *count = 0;
  if (!prefix) prefix = "";
  int rc = kv_key_check(prefix, "nx_kv_keys");
  if (rc != NX_OK) return rc;
  nx_txn *t;
  bool own;
  rc = eng_txn_use(db, txn, false, "nx_kv_keys", &t, &own);
  if (rc != NX_OK) return rc;
  size_t plen = strlen(prefix);
  kv_strv s = {0};
  eng_coll *c;
  st_cursor *sc = NULL;
  st_val k;
  rc = eng_coll_get(t, ENG_KV_COLLECTION, false, &c);
  if (rc == NX_OK) rc = kv_tree_key(t, prefix, &k);
  if (rc == NX_OK) rc = st_cursor_open(t->st, c->tree, &sc);
  if (rc == NX_OK) {
    /* Strings with the prefix are contiguous in string order and start at the prefix itself. */
    nx_buf scratch;
    nx_buf_init(&scratch, ST_MAX_VALUE);
    for (rc = st_cursor_seek(sc, k, ST_SEEK_GE); rc == NX_OK; rc = st_cursor_next(sc)) {
      st_val kk, v;
      eng_doc d;
      bson_iter_t it;
      rc = st_cursor_get(sc, &kk, &v);
      if (rc == NX_OK) rc = eng_doc_decode(c->name, v, &scratch, &d);
      if (rc != NX_OK) break;
      if (!bson_iter_init_find(&it, &d.doc, "_id") || !BSON_ITER_HOLDS_UTF8(&it)) break;
      uint32_t n;
      const char *id = bson_iter_utf8(&it, &n);
      if (n < plen || memcmp(id, prefix, plen) != 0) break;
      if (eng_doc_expired_in(&d.meta, t)) continue;
      rc = kv_push(&s, id, n);
      if (rc != NX_OK) break;
    }
    if (rc == NX_NOTFOUND) rc = NX_OK;
    nx_buf_free(&scratch);
  }
  st_cursor_close(sc);
  if (rc == NX_NOTFOUND) { /* no key-value collection yet: no keys */
    rc = NX_OK;
    nx_err_clear();
  }
  rc = eng_txn_done(t, own, rc, false);
  if (rc != NX_OK) {
    nx_free_strv(s.v, s.n);
    return rc;
  }
  *keys = s.v;
  *count = s.n;
  return NX_OK;
}

int nx_kv_clear(nx_db *db, nx_txn *txn) {
  nx_txn *t;
  bool own;
  int rc = eng_txn_use(db, txn, true, "nx_kv_clear", &t, &own);
  if (rc != NX_OK) return rc;
  uint64_t before = t->writes;
  uint64_t n;
  rc = q_delete(t, ENG_KV_COLLECTION, NULL, true, &n);
  return eng_txn_done(t, own, rc, t->writes != before);
}
