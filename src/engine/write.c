/*
 * write.c: THE write path. Every insert, replacement and deletion of a stored document passes
 * through eng_doc_write, with both its old and its new version, so that everything kept beside a
 * document (secondary index entries, expiry, a ledger) is maintained in the same transaction.
 *
 * Invariants:
 *   1. The tree key is eng_id_key(_id) and _id is the first field of every stored document.
 *   2. An insert fails with NX_EXISTS before anything is written (ST_NOOVERWRITE), so a duplicate
 *      _id leaves a user's transaction usable. A stored but expired document with the same _id
 *      is replaced (an expired document is gone for every read).
 *   3. Metadata: insert sets created = updated = txn clock, version 1; a replacement keeps
 *      created, sets updated and increments version.
 *   4. t->writes grows on every storage change (cursors of the txn re-seek when it moved).
 */
#include <string.h>

#include "engine.h"

static bool first_id(const bson_t *doc, bson_iter_t *it) {
  if (!bson_iter_init(it, doc) || !bson_iter_next(it)) return false;
  if (strcmp(bson_iter_key(it), "_id") == 0) return true;
  return bson_iter_init_find(it, doc, "_id");
}

int eng_prepare_insert(nx_txn *t, eng_coll *c, const bson_t *doc, bson_t *out) {
  return eng_prepare_insert_ex(t, c, doc, false, out);
}

int eng_prepare_insert_ex(nx_txn *t, eng_coll *c, const bson_t *doc, bool validated, bson_t *out) {
  int rc = validated ? NX_OK : doc_validate_for_storage(doc);
  if (rc != NX_OK) return nx_err_prefix(rc, "insert into '%s': ", c->name);
  bson_iter_t it;
  if (!bson_iter_init(&it, doc)) return nx_err(NX_INVALID, "insert into '%s': document is not BSON", c->name);
  if (bson_iter_next(&it) && strcmp(bson_iter_key(&it), "_id") == 0) {
    bson_copy_to(doc, out);
    return NX_OK;
  }
  bson_init(out);
  if (bson_iter_init_find(&it, doc, "_id")) {
    /* Move the user's _id to the front, as MongoDB does. */
    bson_append_iter(out, "_id", 3, &it);
  } else {
    rc = eng_coll_load_opts(t, c);
    if (rc != NX_OK) {
      bson_destroy(out);
      return rc;
    }
    uint8_t uuid[16];
    rc = c->id_format == ENG_ID_UUIDV4 ? doc_gen_uuid_v4(uuid) : doc_gen_uuid_v7(nx_now_ms(), uuid);
    if (rc != NX_OK || !doc_append_uuid(out, "_id", uuid)) {
      bson_destroy(out);
      return rc != NX_OK ? rc : nx_err(NX_NOMEM, "insert into '%s': cannot append _id", c->name);
    }
  }
  bson_iter_init(&it, doc);
  while (bson_iter_next(&it)) {
    if (strcmp(bson_iter_key(&it), "_id") == 0) continue;
    if (!bson_append_iter(out, bson_iter_key(&it), (int)bson_iter_key_len(&it), &it)) {
      bson_destroy(out);
      return nx_err(NX_LIMIT, "insert into '%s': document exceeds %d bytes", c->name, DOC_MAX_BYTES);
    }
  }
  if (out->len > DOC_MAX_BYTES) {
    bson_destroy(out);
    return nx_err(NX_INVALID, "insert into '%s': document is %u bytes with its _id; the limit is %d", c->name,
                  out->len, DOC_MAX_BYTES);
  }
  return NX_OK;
}

/* Records that collection c now holds documents with an expiry (read by fast counts). */
static int note_expiry(nx_txn *t, eng_coll *c) {
  bson_t entry;
  int rc = eng_catalog_get(t, c->name, &entry);
  if (rc != NX_OK) return rc;
  bson_t fresh = BSON_INITIALIZER;
  bson_iter_t it;
  bson_iter_init(&it, &entry);
  while (bson_iter_next(&it))
    if (strcmp(bson_iter_key(&it), "hasExpiry") != 0) bson_append_iter(&fresh, NULL, 0, &it);
  BSON_APPEND_BOOL(&fresh, "hasExpiry", true);
  rc = eng_catalog_put(t, c->name, &fresh);
  bson_destroy(&fresh);
  bson_destroy(&entry);
  if (rc == NX_OK) c->has_expiry = true;
  return rc;
}

/* An insert found the key taken: if the stored document is expired, delete it (through the write
 * path, so its index entries go too) and report NX_OK so the insert is retried; else NX_EXISTS. */
static int insert_collision(nx_txn *t, eng_coll *c, st_val key, const bson_value_t *id) {
  st_val v;
  int rc = st_get(t->st, c->tree, key, &v);
  if (rc != NX_OK) return rc;
  eng_doc old;
  nx_buf scratch;
  nx_buf_init(&scratch, ST_MAX_VALUE);
  rc = eng_doc_decode(c->name, v, &scratch, &old);
  if (rc == NX_OK && eng_doc_expired_in(&old.meta, t)) {
    bson_t copy;
    bson_copy_to(&old.doc, &copy);
    nx_doc_meta m = old.meta;
    rc = eng_doc_write(t, c, ENG_DELETE, &copy, &m, NULL, 0);
    bson_destroy(&copy);
    nx_buf_free(&scratch);
    return rc;
  }
  nx_buf_free(&scratch);
  if (rc != NX_OK) return rc;
  char ids[160];
  eng_id_str(id, ids, sizeof ids);
  return nx_err(NX_EXISTS, "insert into '%s': duplicate _id %s", c->name, ids);
}

int eng_scan_docs(void *ctx, idx_each_doc_fn each, void *each_ctx) {
  eng_scan_ctx *sc = ctx;
  st_cursor *cur;
  int rc = st_cursor_open(sc->t->st, sc->c->tree, &cur);
  if (rc != NX_OK) return rc;
  nx_buf scratch, last;
  nx_buf_init(&scratch, ST_MAX_VALUE);
  nx_buf_init(&last, 0);
  rc = st_cursor_first(cur);
  while (rc == NX_OK) {
    st_val k, v;
    eng_doc d;
    rc = st_cursor_get(cur, &k, &v);
    if (rc == NX_OK) {
      last.len = 0;
      rc = nx_buf_append(&last, k.p, k.n);
    }
    if (rc == NX_OK) rc = eng_doc_decode(sc->c->name, v, &scratch, &d);
    if (rc != NX_OK) break;
    if (sc->with_expired || !eng_doc_expired_in(&d.meta, sc->t)) {
      rc = each(each_ctx, &d.doc);
      if (rc != NX_OK) break;
    }
    /* `each` may write (an index build): storage cursors of a write txn must then be
     * re-positioned, so step by re-seeking past the last key in write txns. */
    if (sc->t->write) {
      st_val lk = {last.data, last.len};
      rc = st_cursor_seek(cur, lk, ST_SEEK_GE);
      if (rc == NX_OK) {
        rc = st_cursor_get(cur, &k, &v);
        if (rc == NX_OK && k.n == lk.n && memcmp(k.p, lk.p, lk.n) == 0) rc = st_cursor_next(cur);
      }
    } else {
      rc = st_cursor_next(cur);
    }
  }
  nx_buf_free(&scratch);
  nx_buf_free(&last);
  st_cursor_close(cur);
  return rc == NX_NOTFOUND ? NX_OK : rc;
}

int eng_get_by_key(void *ctx, st_val id_key, bson_t *doc) {
  eng_scan_ctx *sc = ctx;
  nx_buf scratch;
  nx_buf_init(&scratch, ST_MAX_VALUE);
  eng_doc d;
  int rc = eng_doc_get(sc->t, sc->c, id_key, &scratch, &d);
  if (rc == NX_OK) bson_copy_to(&d.doc, doc);
  nx_buf_free(&scratch);
  return rc;
}

int eng_doc_write(nx_txn *t, eng_coll *c, eng_op op, const bson_t *old_doc,
                  const nx_doc_meta *old_meta, const bson_t *new_doc, int64_t expires_ms) {
  if (!t->write) return nx_err(NX_READONLY, "collection '%s': write inside a read transaction", c->name);
  int rc = eng_coll_load_opts(t, c);
  if (rc != NX_OK) return rc;
  const bson_t *keydoc = op == ENG_INSERT ? new_doc : old_doc;
  bson_iter_t it;
  if (!keydoc || !first_id(keydoc, &it))
    return nx_err(NX_INVALID, "collection '%s': document has no _id", c->name);
  const bson_value_t *id = bson_iter_value(&it);
  rc = eng_id_key(&t->key, id);
  if (rc != NX_OK) return nx_err_prefix(rc, "collection '%s': ", c->name);
  st_val key = {t->key.data, t->key.len};

  /* Indexes: rebuild stale ones at the first write of the txn, then check the change before the
   * collection tree is touched, so that a refused change (unique violation, parallel arrays)
   * leaves the transaction usable. */
  idx_set *is;
  rc = idx_set_get(t->st, c->name, &c->idx, &is);
  if (rc != NX_OK) return rc;
  if (is->n && !c->idx_checked) {
    bool stale = false;
    for (size_t i = 0; i < is->n; i++) stale = stale || is->defs[i]->stale;
    if (stale) {
      eng_scan_ctx sc = {t, c, false};
      size_t rebuilt = 0;
      rc = idx_rebuild_stale(t->st, c->name, eng_scan_docs, &sc, &rebuilt);
      if (rc != NX_OK) return rc;
      t->writes++;
      rc = idx_set_get(t->st, c->name, &c->idx, &is);
      if (rc != NX_OK) return rc;
      /* the scan reused t->key: encode the key again */
      rc = eng_id_key(&t->key, id);
      if (rc != NX_OK) return rc;
      key.p = t->key.data;
      key.n = t->key.len;
    }
    c->idx_checked = true;
  }
  if (is->n && op != ENG_DELETE) {
    rc = idx_write_check(t->st, c->name, &c->idx, old_doc, new_doc);
    if (rc != NX_OK) return rc;
  }

  nx_doc_meta meta = {0};
  if (op != ENG_DELETE) {
    meta.created_ms = op == ENG_INSERT ? eng_now(t) : old_meta->created_ms;
    meta.updated_ms = eng_now(t);
    meta.version = op == ENG_INSERT ? 1 : old_meta->version + 1;
    meta.expires_ms = expires_ms;
    if (expires_ms && !c->has_expiry) {
      rc = note_expiry(t, c);
      if (rc != NX_OK) return rc;
    }
    rc = eng_doc_encode(new_doc, &meta, c->compression, c->compression_level, &t->enc);
    if (rc != NX_OK) return nx_err_prefix(rc, "collection '%s': ", c->name);
  }

  switch (op) {
  case ENG_INSERT: {
    st_val v = {t->enc.data, t->enc.len};
    rc = st_put(t->st, c->tree, key, v, ST_NOOVERWRITE);
    if (rc == NX_EXISTS) {
      rc = insert_collision(t, c, key, id);
      if (rc != NX_OK) return rc;
      /* the expired document is gone; t->key/t->enc may have been reused: rebuild them */
      return eng_doc_write(t, c, op, old_doc, old_meta, new_doc, expires_ms);
    }
    break;
  }
  case ENG_REPLACE: {
    st_val v = {t->enc.data, t->enc.len};
    rc = st_put(t->st, c->tree, key, v, 0);
    break;
  }
  case ENG_DELETE:
    rc = st_del(t->st, c->tree, key);
    if (rc == NX_NOTFOUND) {
      char ids[160];
      eng_id_str(id, ids, sizeof ids);
      rc = nx_err(NX_NOTFOUND, "delete from '%s': no document with _id %s", c->name, ids);
    }
    break;
  }
  if (rc != NX_OK) return rc;
  t->writes++;

  /* ==== INDEX MAINTENANCE ===================================================================
   * The document change is in the collection tree; old_doc (ENG_REPLACE, ENG_DELETE) and new_doc
   * (ENG_INSERT, ENG_REPLACE) are valid, caller-owned BSON. The index layer removes the entries
   * of old_doc and adds those of new_doc for every index of c, in this same transaction. Its
   * checks already passed above; a failure here is an I/O or memory error, and the caller's
   * transaction is then aborted (auto-commit) or poisoned (user txn, see txn.c).
   * ========================================================================================= */
  if (is->n) {
    uint64_t w = 0;
    rc = idx_on_write(t->st, c->name, &c->idx, op == ENG_INSERT ? NULL : old_doc,
                      op == ENG_DELETE ? NULL : new_doc, &w);
    t->writes += w;
    if (rc != NX_OK) return rc;
  }
  return NX_OK;
}
