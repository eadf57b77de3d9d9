/*
 * api_crud.c: public entry points for documents: insert, update, replace, delete, find, cursors,
 * count, distinct, find-and-modify and metadata. Each converts its inputs, runs in the caller's
 * transaction or its own (auto-commit), and delegates to the engine (inserts) or the query layer.
 *
 * Missing collections behave as in MongoDB: reads find nothing; inserts and upserts create the
 * collection; updates and deletes without upsert match nothing.
 */
#include <string.h>

#include "api_int.h"

/* ---- Inserts ---- */

/* Inserts one document, already validated by the caller, into c. A document whose first field is
 * _id is stored as it is (eng_prepare_insert_ex would only copy it); else _id is moved to the
 * front or generated. */
static int insert_doc(nx_txn *t, eng_coll *c, const bson_t *doc, bson_value_t *out_id) {
  bson_t fin;
  int rc;
  const uint8_t *p = bson_get_data(doc);
  if (doc->len > 9 && memcmp(p + 5, "_id", 4) == 0)
    rc = bson_init_static(&fin, p, doc->len) ? NX_OK : nx_err(NX_INVALID, "insert into '%s': document is not BSON", c->name);
  else
    rc = eng_prepare_insert_ex(t, c, doc, true, &fin);
  if (rc != NX_OK) return rc;
  rc = eng_doc_write(t, c, ENG_INSERT, NULL, NULL, &fin, 0);
  if (rc == NX_OK && out_id) {
    bson_iter_t it;
    if (bson_iter_init_find(&it, &fin, "_id")) bson_value_copy(bson_iter_value(&it), out_id);
  }
  bson_destroy(&fin);
  return rc;
}

int nx_insert_one(nx_db *db, nx_txn *txn, const char *coll, nx_in doc, bson_value_t *out_id) {
  int rc = api_check(db, coll, "nx_insert_one");
  if (rc != NX_OK) return rc;
  api_doc d;
  rc = api_in(doc, "nx_insert_one document", true, &d);
  if (rc == NX_OK) {
    rc = doc_validate_for_storage(d.p); /* before the collection is created implicitly */
    if (rc != NX_OK) rc = nx_err_prefix(rc, "insert into '%s': ", coll);
  }
  nx_txn *t = NULL;
  bool own = false;
  if (rc == NX_OK) rc = eng_txn_use(db, txn, true, "nx_insert_one", &t, &own);
  if (rc == NX_OK) {
    uint64_t before = t->writes;
    eng_coll *c;
    rc = eng_coll_get(t, coll, true, &c);
    if (rc == NX_OK) rc = insert_doc(t, c, d.p, out_id);
    rc = eng_txn_done(t, own, rc, t->writes != before);
  }
  api_in_free(&d);
  return rc;
}

int nx_insert_many(nx_db *db, nx_txn *txn, const char *coll, const nx_in *docs, size_t n,
                   size_t *failed_index) {
  if (failed_index) *failed_index = 0;
  int rc = api_check(db, coll, "nx_insert_many");
  if (rc != NX_OK) return rc;
  if (n == 0) return NX_OK;
  if (!docs) return nx_err(NX_MISUSE, "nx_insert_many: docs is NULL");
  nx_txn *t;
  bool own;
  rc = eng_txn_use(db, txn, true, "nx_insert_many", &t, &own);
  if (rc != NX_OK) return rc;
  uint64_t before = t->writes;
  eng_coll *c = NULL;
  size_t i;
  for (i = 0; i < n && rc == NX_OK; i++) {
    api_doc d;
    rc = api_in(docs[i], "nx_insert_many document", true, &d);
    if (rc == NX_OK) {
      rc = doc_validate_for_storage(d.p);
      if (rc != NX_OK) rc = nx_err_prefix(rc, "insert into '%s': ", coll);
    }
    if (rc == NX_OK && !c) rc = eng_coll_get(t, coll, true, &c);
    if (rc == NX_OK) rc = insert_doc(t, c, d.p, NULL);
    api_in_free(&d);
  }
  if (rc != NX_OK) {
    if (failed_index) *failed_index = i - 1;
    nx_err_prefix(rc, "nx_insert_many: document %zu: ", i - 1);
  }
  return eng_txn_done(t, own, rc, t->writes != before);
}

/* ---- Updates, replacements, deletes ---- */

static int update_common(nx_db *db, nx_txn *txn, const char *coll, nx_in filter, nx_in update,
                         q_update_kind kind, bool multi, unsigned flags, nx_update_result *res,
                         const char *what) {
  if (res) memset(res, 0, sizeof *res);
  int rc = api_check(db, coll, what);
  if (rc != NX_OK) return rc;
  if (flags & ~NX_UPSERT) return nx_err(NX_MISUSE, "%s: unknown flags 0x%x", what, flags);
  api_doc f, u;
  rc = api_in(filter, "filter", false, &f);
  if (rc != NX_OK) {
    nx_err_prefix(rc, "%s: ", what);
    return rc;
  }
  rc = api_in(update, kind == Q_UPDATE_REPLACEMENT ? "replacement" : "update", true, &u);
  if (rc != NX_OK) {
    nx_err_prefix(rc, "%s: ", what);
    api_in_free(&f);
    return rc;
  }
  nx_txn *t;
  bool own;
  rc = eng_txn_use(db, txn, true, what, &t, &own);
  if (rc == NX_OK) {
    uint64_t before = t->writes;
    q_update_res qr;
    rc = q_update(t, coll, f.p, u.p, kind, multi, (flags & NX_UPSERT) != 0, what, &qr);
    bool wrote = t->writes != before;
    rc = eng_txn_done(t, own, rc, wrote);
    if (rc == NX_OK && res) {
      res->matched = qr.matched;
      res->modified = qr.modified;
      res->upserted = qr.upserted;
      if (qr.upserted) res->upserted_id = qr.upserted_id;
    } else if (qr.upserted) {
      bson_value_destroy(&qr.upserted_id);
    }
  }
  api_in_free(&f);
  api_in_free(&u);
  return rc;
}

int nx_update_one(nx_db *db, nx_txn *txn, const char *coll, nx_in filter, nx_in update, unsigned flags,
                  nx_update_result *res) {
  return update_common(db, txn, coll, filter, update, Q_UPDATE_ANY, false, flags, res, "nx_update_one");
}

int nx_update_many(nx_db *db, nx_txn *txn, const char *coll, nx_in filter, nx_in update, unsigned flags,
                   nx_update_result *res) {
  return update_common(db, txn, coll, filter, update, Q_UPDATE_OPERATORS, true, flags, res, "nx_update_many");
}

int nx_replace_one(nx_db *db, nx_txn *txn, const char *coll, nx_in filter, nx_in replacement, unsigned flags,
                   nx_update_result *res) {
  return update_common(db, txn, coll, filter, replacement, Q_UPDATE_REPLACEMENT, false, flags, res,
                       "nx_replace_one");
}

static int delete_common(nx_db *db, nx_txn *txn, const char *coll, nx_in filter, bool multi, uint64_t *deleted,
                         const char *what) {
  if (deleted) *deleted = 0;
  int rc = api_check(db, coll, what);
  if (rc != NX_OK) return rc;
  api_doc f;
  rc = api_in(filter, "filter", false, &f);
  if (rc != NX_OK) return nx_err_prefix(rc, "%s: ", what);
  nx_txn *t;
  bool own;
  rc = eng_txn_use(db, txn, true, what, &t, &own);
  if (rc == NX_OK) {
    uint64_t before = t->writes, n = 0;
    rc = q_delete(t, coll, f.p, multi, &n);
    rc = eng_txn_done(t, own, rc, t->writes != before);
    if (rc == NX_OK && deleted) *deleted = n;
  }
  api_in_free(&f);
  return rc;
}

int nx_delete_one(nx_db *db, nx_txn *txn, const char *coll, nx_in filter, uint64_t *deleted) {
  return delete_common(db, txn, coll, filter, false, deleted, "nx_delete_one");
}

int nx_delete_many(nx_db *db, nx_txn *txn, const char *coll, nx_in filter, uint64_t *deleted) {
  return delete_common(db, txn, coll, filter, true, deleted, "nx_delete_many");
}

/* ---- Reads ---- */

typedef struct find_in {
  api_doc filter, proj, sort;
  q_opts o;
} find_in;

static void find_in_free(find_in *fi) {
  api_in_free(&fi->filter);
  api_in_free(&fi->proj);
  api_in_free(&fi->sort);
}

static int find_in_get(nx_in filter, const nx_find_opts *opts, const char *what, find_in *fi) {
  memset(fi, 0, sizeof *fi);
  if (opts && opts->size != sizeof *opts)
    return nx_err(NX_MISUSE, "%s: opts->size is %zu; initialise options with NX_FIND_OPTS_INIT", what, opts->size);
  int rc = api_in(filter, "filter", false, &fi->filter);
  if (rc == NX_OK && opts) rc = api_in(opts->projection, "projection", false, &fi->proj);
  if (rc == NX_OK && opts) rc = api_in(opts->sort, "sort", false, &fi->sort);
  if (rc != NX_OK) {
    find_in_free(fi);
    return nx_err_prefix(rc, "%s: ", what);
  }
  fi->o.projection = fi->proj.p;
  fi->o.sort = fi->sort.p;
  if (opts) {
    fi->o.skip = opts->skip;
    fi->o.limit = opts->limit;
    fi->o.max_sort_bytes = opts->max_sort_bytes;
  }
  return NX_OK;
}

int nx_find(nx_db *db, nx_txn *txn, const char *coll, nx_in filter, const nx_find_opts *opts, nx_cursor **out) {
  if (!out) return nx_err(NX_MISUSE, "nx_find: out is NULL");
  *out = NULL;
  int rc = api_check(db, coll, "nx_find");
  if (rc != NX_OK) return rc;
  find_in fi;
  rc = find_in_get(filter, opts, "nx_find", &fi);
  if (rc != NX_OK) return rc;
  nx_txn *t;
  bool own;
  rc = eng_txn_use(db, txn, false, "nx_find", &t, &own);
  if (rc == NX_OK) {
    rc = q_find(t, own, coll, fi.filter.p, &fi.o, out); /* takes an owned t, also on failure */
    if (rc != NX_OK) nx_err_prefix(rc, "nx_find in '%s': ", coll);
  }
  find_in_free(&fi);
  return rc;
}

int nx_cursor_next(nx_cursor *c, const bson_t **doc) {
  if (!c || !doc) return nx_err(NX_MISUSE, "nx_cursor_next: NULL argument");
  return q_next(c, doc);
}

void nx_cursor_close(nx_cursor *c) { q_close(c); }

int nx_find_one(nx_db *db, nx_txn *txn, const char *coll, nx_in filter, const nx_find_opts *opts, bson_t *out) {
  if (!out) return nx_err(NX_MISUSE, "nx_find_one: out is NULL");
  int rc = api_check(db, coll, "nx_find_one");
  if (rc != NX_OK) return rc;
  find_in fi;
  rc = find_in_get(filter, opts, "nx_find_one", &fi);
  if (rc != NX_OK) return rc;
  fi.o.limit = 1;
  nx_txn *t;
  bool own;
  rc = eng_txn_use(db, txn, false, "nx_find_one", &t, &own);
  bool handled = false;
  if (rc == NX_OK && !fi.o.projection && !fi.o.sort && fi.o.skip == 0) {
    rc = q_find_one_by_id(t, coll, fi.filter.p, out, &handled);
    if (handled && rc == NX_NOTFOUND) rc = nx_err(NX_NOTFOUND, "nx_find_one: no document in '%s' matches the filter", coll);
    if (handled) rc = eng_txn_done(t, own, rc, false);
  }
  if (rc == NX_OK && !handled) {
    nx_cursor *c;
    rc = q_find(t, false, coll, fi.filter.p, &fi.o, &c);
    if (rc == NX_OK) {
      const bson_t *d;
      rc = q_next(c, &d);
      if (rc == NX_ROW) {
        bson_copy_to(d, out);
        rc = NX_OK;
      } else if (rc == NX_DONE) {
        rc = nx_err(NX_NOTFOUND, "nx_find_one: no document in '%s' matches the filter", coll);
      }
      q_close(c);
    }
    rc = eng_txn_done(t, own, rc, false);
  }
  find_in_free(&fi);
  return rc;
}

int nx_count(nx_db *db, nx_txn *txn, const char *coll, nx_in filter, uint64_t *out) {
  if (!out) return nx_err(NX_MISUSE, "nx_count: out is NULL");
  *out = 0;
  int rc = api_check(db, coll, "nx_count");
  if (rc != NX_OK) return rc;
  api_doc f;
  rc = api_in(filter, "nx_count filter", false, &f);
  if (rc != NX_OK) return rc;
  nx_txn *t;
  bool own;
  rc = eng_txn_use(db, txn, false, "nx_count", &t, &own);
  if (rc == NX_OK) rc = eng_txn_done(t, own, q_count(t, coll, f.p, out), false);
  api_in_free(&f);
  return rc;
}

int nx_distinct(nx_db *db, nx_txn *txn, const char *coll, const char *field, nx_in filter, bson_t *out) {
  if (!out || !field) return nx_err(NX_MISUSE, "nx_distinct: NULL argument");
  int rc = api_check(db, coll, "nx_distinct");
  if (rc != NX_OK) return rc;
  api_doc f;
  rc = api_in(filter, "nx_distinct filter", false, &f);
  if (rc != NX_OK) return rc;
  nx_txn *t;
  bool own;
  rc = eng_txn_use(db, txn, false, "nx_distinct", &t, &own);
  if (rc == NX_OK) rc = eng_txn_done(t, own, q_distinct(t, coll, field, f.p, out), false);
  api_in_free(&f);
  return rc;
}

/* ---- Find and modify ---- */

static int fam_common(nx_db *db, nx_txn *txn, const char *coll, q_fam_kind kind, nx_in filter, nx_in spec,
                      const nx_fam_opts *opts, bson_t *out, const char *what) {
  if (!out) return nx_err(NX_MISUSE, "%s: out is NULL", what);
  int rc = api_check(db, coll, what);
  if (rc != NX_OK) return rc;
  if (opts && opts->size != sizeof *opts)
    return nx_err(NX_MISUSE, "%s: opts->size is %zu; initialise options with NX_FAM_OPTS_INIT", what, opts->size);
  api_doc f, s = {0}, so = {0}, pr = {0};
  rc = api_in(filter, "filter", false, &f);
  if (rc == NX_OK && kind != Q_FAM_DELETE)
    rc = api_in(spec, kind == Q_FAM_UPDATE ? "update" : "replacement", true, &s);
  if (rc == NX_OK && opts) rc = api_in(opts->sort, "sort", false, &so);
  if (rc == NX_OK && opts) rc = api_in(opts->projection, "projection", false, &pr);
  if (rc != NX_OK) {
    nx_err_prefix(rc, "%s: ", what);
  } else {
    nx_txn *t;
    bool own;
    rc = eng_txn_use(db, txn, true, what, &t, &own);
    if (rc == NX_OK) {
      uint64_t before = t->writes;
      bool returned = false;
      rc = q_find_and_modify(t, coll, kind, f.p, s.p, so.p, pr.p, opts && opts->upsert,
                             opts && opts->return_after, out, &returned);
      char msg[256] = "";
      if (rc == NX_OK && !returned) snprintf(msg, sizeof msg, "%s", nx_err_msg());
      rc = eng_txn_done(t, own, rc, t->writes != before);
      if (rc != NX_OK && returned) bson_destroy(out);
      if (rc == NX_OK && !returned) rc = nx_err(NX_NOTFOUND, "%s", msg);
    }
  }
  api_in_free(&f);
  api_in_free(&s);
  api_in_free(&so);
  api_in_free(&pr);
  return rc;
}

int nx_find_one_and_update(nx_db *db, nx_txn *txn, const char *coll, nx_in filter, nx_in update,
                           const nx_fam_opts *opts, bson_t *out) {
  return fam_common(db, txn, coll, Q_FAM_UPDATE, filter, update, opts, out, "nx_find_one_and_update");
}

int nx_find_one_and_replace(nx_db *db, nx_txn *txn, const char *coll, nx_in filter, nx_in replacement,
                            const nx_fam_opts *opts, bson_t *out) {
  return fam_common(db, txn, coll, Q_FAM_REPLACE, filter, replacement, opts, out, "nx_find_one_and_replace");
}

int nx_find_one_and_delete(nx_db *db, nx_txn *txn, const char *coll, nx_in filter, const nx_fam_opts *opts,
                           bson_t *out) {
  return fam_common(db, txn, coll, Q_FAM_DELETE, filter, nx_none(), opts, out, "nx_find_one_and_delete");
}

/* ---- Metadata ---- */

int nx_get_meta(nx_db *db, nx_txn *txn, const char *coll, const bson_value_t *id, nx_doc_meta *out) {
  if (!id || !out) return nx_err(NX_MISUSE, "nx_get_meta: NULL argument");
  int rc = api_check(db, coll, "nx_get_meta");
  if (rc != NX_OK) return rc;
  nx_txn *t;
  bool own;
  rc = eng_txn_use(db, txn, false, "nx_get_meta", &t, &own);
  if (rc != NX_OK) return rc;
  eng_coll *c;
  char ids[160];
  rc = eng_coll_get(t, coll, false, &c);
  if (rc == NX_OK) rc = eng_id_key(&t->key, id);
  if (rc == NX_OK) {
    nx_buf scratch;
    nx_buf_init(&scratch, ST_MAX_VALUE);
    eng_doc d;
    st_val k = {t->key.data, t->key.len};
    rc = eng_doc_get(t, c, k, &scratch, &d);
    if (rc == NX_OK) *out = d.meta;
    nx_buf_free(&scratch);
  }
  if (rc == NX_NOTFOUND) {
    eng_id_str(id, ids, sizeof ids);
    rc = nx_err(NX_NOTFOUND, "nx_get_meta: no document with _id %s in '%s'", ids, coll);
  }
  return eng_txn_done(t, own, rc, false);
}
