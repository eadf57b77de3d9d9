/*
 * modify.c: update, replace, delete and find-and-modify, built on the find cursor and the one
 * write path (eng_doc_write).
 *
 * Invariants:
 *   1. The document a cursor returns is borrowed from the storage layer and dies at the next
 *      write, so it is copied (into `old`) before update_apply and eng_doc_write use it.
 *   2. A document whose update changes nothing (update_apply's `changed` false) is not written:
 *      it counts as matched, not modified, and keeps its version and updated time (MongoDB's
 *      nModified).
 *   3. An upsert inserts the seed built from the filter's equalities with the update applied
 *      ($setOnInsert included), through eng_prepare_insert (validation, _id first or generated),
 *      creating the collection if needed.
 *   4. The cursor re-seeks after each write (cursor.c invariant 1), so multi-document updates and
 *      deletes visit each document once.
 */
#include <string.h>

#include "query_int.h"

/* Copies doc into buf and makes *view a static view of the copy. */
static int copy_doc(const bson_t *doc, nx_buf *buf, bson_t *view) {
  buf->len = 0;
  int rc = nx_buf_reserve(buf, doc->len);
  if (rc != NX_OK) return rc;
  memcpy(buf->data, bson_get_data(doc), doc->len);
  buf->len = doc->len;
  bson_init_static(view, buf->data, buf->len);
  return NX_OK;
}

static int parse_update(const bson_t *spec, q_update_kind kind, const char *what, update_t **u) {
  /* a replacement may be empty ({} keeps only _id); operators are refused by the parser */
  /* the spec (the caller's) outlives the parsed update: borrow it */
  int rc = update_parse_ex(spec, UPDATE_PARSE_BORROW | (kind == Q_UPDATE_REPLACEMENT ? UPDATE_PARSE_REPLACEMENT : 0u), u);
  if (rc != NX_OK) return nx_err_prefix(rc, "%s: ", what);
  if (kind == Q_UPDATE_OPERATORS && update_is_replacement(*u)) {
    update_free(*u);
    return nx_err(NX_INVALID, "%s: the update document must use update operators such as $set "
                              "(to replace a whole document use a replace call)", what);
  }
  if (kind == Q_UPDATE_REPLACEMENT && !update_is_replacement(*u)) {
    update_free(*u);
    return nx_err(NX_INVALID, "%s: the replacement document may not contain update operators "
                              "(field names starting with '$')", what);
  }
  return NX_OK;
}

/* Inserts the upsert document; *inserted (may be NULL) receives a copy of it. */
static int do_upsert(nx_txn *t, const char *coll, const filter_t *f, const update_t *u, const char *what,
                     q_update_res *res, bson_t *inserted) {
  eng_coll *ec;
  int rc = eng_coll_get(t, coll, true, &ec);
  if (rc != NX_OK) return rc;
  bson_t seed, nd, fin;
  rc = update_build_upsert_seed(f, &seed);
  if (rc != NX_OK) return nx_err_prefix(rc, "%s: upsert: ", what);
  bool changed;
  rc = update_apply(u, &seed, f, true, eng_now(t), &nd, &changed);
  bson_destroy(&seed);
  if (rc != NX_OK) return nx_err_prefix(rc, "%s: upsert: ", what);
  rc = eng_prepare_insert(t, ec, &nd, &fin);
  bson_destroy(&nd);
  if (rc != NX_OK) return rc;
  rc = eng_doc_write(t, ec, ENG_INSERT, NULL, NULL, &fin, 0);
  if (rc == NX_OK && res) {
    bson_iter_t it;
    if (bson_iter_init_find(&it, &fin, "_id")) bson_value_copy(bson_iter_value(&it), &res->upserted_id);
    res->upserted = true;
  }
  if (rc == NX_OK && inserted) bson_copy_to(&fin, inserted);
  bson_destroy(&fin);
  return rc;
}

/* Applies u to the stored document old (with meta) and writes it back when it changed.
 * *after (may be NULL) receives the new version (a copy), also when unchanged. */
static int apply_one(nx_txn *t, eng_coll *c, const update_t *u, const filter_t *f, const bson_t *old,
                     const nx_doc_meta *meta, const char *what, bool *modified, bson_t *after) {
  bson_t nd;
  bool changed = false, in_place = false;
  int rc = update_apply_ex(u, old, f, false, eng_now(t), 0, &nd, &changed, &in_place);
  if (rc != NX_OK) return nx_err_prefix(rc, "%s in '%s': ", what, c->name);
  if (changed) {
    /* a stored document passed validation (engine.h invariant 2); an in-place result only has
     * fixed-size scalars of it overwritten (update_apply_ex), so it needs no second walk */
    rc = in_place ? NX_OK : doc_validate_for_storage(&nd);
    if (rc != NX_OK) rc = nx_err_prefix(rc, "%s in '%s': ", what, c->name);
    if (rc == NX_OK) rc = eng_doc_write(t, c, ENG_REPLACE, old, meta, &nd, meta->expires_ms);
  }
  *modified = changed && rc == NX_OK;
  if (rc == NX_OK && after) bson_copy_to(&nd, after);
  bson_destroy(&nd);
  return rc;
}

/* update_one with a filter that is exactly {_id: scalar}: one lookup instead of a cursor.
 * The parsed filter serves only the positional '$' and the upsert seed, so it is parsed when one
 * of them needs it: parsing {_id: scalar} (q_id_only, at most FILTER_MAX_BYTES) cannot fail but
 * for memory. The stored document is copied into the txn's scratch t->old (no allocation once it
 * has grown). */
static int update_point(nx_txn *t, const char *coll, const bson_t *filter, const bson_value_t *id,
                        const update_t *u, bool upsert, const char *what, q_update_res *res) {
  filter_t *f = NULL;
  int rc = NX_OK;
  if (update_is_positional(u) || filter->len > FILTER_MAX_BYTES) rc = filter_parse(filter, &f);
  if (rc != NX_OK) return rc;
  eng_coll *c = NULL;
  rc = eng_coll_get(t, coll, false, &c);
  if (rc == NX_OK) rc = eng_id_key(&t->key, id);
  nx_buf scratch;
  nx_buf_init(&scratch, ST_MAX_VALUE);
  if (rc == NX_OK) {
    eng_doc d;
    st_val k = {t->key.data, t->key.len};
    rc = eng_doc_get(t, c, k, &scratch, &d);
    if (rc == NX_OK) {
      bson_t oldv;
      nx_doc_meta meta = d.meta;
      rc = copy_doc(&d.doc, &t->old, &oldv);
      bool modified = false;
      if (rc == NX_OK) {
        res->matched = 1;
        rc = apply_one(t, c, u, f, &oldv, &meta, what, &modified, NULL);
      }
      if (rc == NX_OK && modified) res->modified = 1;
    }
  }
  if (rc == NX_NOTFOUND || rc == NX_LIMIT) { /* no such collection or _id: nothing matched */
    nx_err_clear();
    rc = NX_OK;
    if (upsert && !f) rc = filter_parse(filter, &f);
    if (upsert && rc == NX_OK) rc = do_upsert(t, coll, f, u, what, res, NULL);
  }
  nx_buf_free(&scratch);
  filter_free(f);
  return rc;
}

int q_update(nx_txn *t, const char *coll, const bson_t *filter, const bson_t *update, q_update_kind kind,
             bool multi, bool upsert, const char *what, q_update_res *res) {
  memset(res, 0, sizeof *res);
  update_t *u;
  int rc = parse_update(update, kind, what, &u);
  if (rc != NX_OK) return rc;
  bson_iter_t idit;
  if (!multi && q_id_only(filter, &idit)) {
    rc = update_point(t, coll, filter, bson_iter_value(&idit), u, upsert, what, res);
    update_free(u);
    return rc;
  }
  nx_cursor *c;
  rc = q_find(t, false, coll, filter, NULL, &c);
  if (rc != NX_OK) {
    update_free(u);
    return rc;
  }
  nx_buf old;
  nx_buf_init(&old, ST_MAX_VALUE);
  const bson_t *doc;
  nx_doc_meta meta;
  while ((rc = q_next_raw(c, &doc, &meta)) == NX_ROW) {
    bson_t oldv;
    rc = copy_doc(doc, &old, &oldv);
    if (rc != NX_OK) break;
    res->matched++;
    bool modified;
    rc = apply_one(t, c->coll, u, c->filter, &oldv, &meta, what, &modified, NULL);
    if (rc != NX_OK) break;
    if (modified) res->modified++;
    if (!multi) {
      rc = NX_DONE;
      break;
    }
  }
  if (rc == NX_DONE) {
    rc = NX_OK;
    if (res->matched == 0 && upsert) rc = do_upsert(t, coll, c->filter, u, what, res, NULL);
  }
  nx_buf_free(&old);
  q_close(c);
  update_free(u);
  return rc;
}

int q_delete(nx_txn *t, const char *coll, const bson_t *filter, bool multi, uint64_t *deleted) {
  *deleted = 0;
  nx_cursor *c;
  int rc = q_find(t, false, coll, filter, NULL, &c);
  if (rc != NX_OK) return rc;
  nx_buf old;
  nx_buf_init(&old, ST_MAX_VALUE);
  const bson_t *doc;
  nx_doc_meta meta;
  while ((rc = q_next_raw(c, &doc, &meta)) == NX_ROW) {
    bson_t oldv;
    rc = copy_doc(doc, &old, &oldv);
    if (rc == NX_OK) rc = eng_doc_write(t, c->coll, ENG_DELETE, &oldv, &meta, NULL, 0);
    if (rc != NX_OK) break;
    (*deleted)++;
    if (!multi) {
      rc = NX_DONE;
      break;
    }
  }
  nx_buf_free(&old);
  q_close(c);
  return rc == NX_DONE ? NX_OK : rc;
}

int q_find_and_modify(nx_txn *t, const char *coll, q_fam_kind kind, const bson_t *filter,
                      const bson_t *spec, const bson_t *sort, const bson_t *projection, bool upsert,
                      bool return_after, bson_t *out, bool *returned) {
  *returned = false;
  static const char *const names[] = {"find_one_and_update", "find_one_and_replace", "find_one_and_delete"};
  const char *what = names[kind];
  update_t *u = NULL;
  proj_t *p = NULL;
  int rc = NX_OK;
  if (kind != Q_FAM_DELETE)
    rc = parse_update(spec, kind == Q_FAM_UPDATE ? Q_UPDATE_OPERATORS : Q_UPDATE_REPLACEMENT, what, &u);
  if (rc == NX_OK && projection) {
    rc = proj_parse(projection, &p);
    if (rc != NX_OK) rc = nx_err_prefix(rc, "%s: ", what);
  }
  if (rc != NX_OK) {
    update_free(u);
    return rc;
  }
  q_opts o = {NULL, sort, 0, 1, 0};
  nx_cursor *c = NULL;
  rc = q_find(t, false, coll, filter, &o, &c);
  nx_buf old;
  nx_buf_init(&old, ST_MAX_VALUE);
  bson_t result;
  bool have = false;
  if (rc == NX_OK) {
    const bson_t *doc;
    nx_doc_meta meta;
    rc = q_next_raw(c, &doc, &meta);
    if (rc == NX_ROW) {
      bson_t oldv;
      rc = copy_doc(doc, &old, &oldv);
      if (rc == NX_OK && kind == Q_FAM_DELETE) {
        rc = eng_doc_write(t, c->coll, ENG_DELETE, &oldv, &meta, NULL, 0);
        if (rc == NX_OK) bson_copy_to(&oldv, &result);
        have = rc == NX_OK;
      } else if (rc == NX_OK) {
        bool modified;
        bson_t after;
        rc = apply_one(t, c->coll, u, c->filter, &oldv, &meta, what, &modified, &after);
        if (rc == NX_OK) {
          if (return_after) {
            result = after;
          } else {
            bson_destroy(&after);
            bson_copy_to(&oldv, &result);
          }
          have = true;
        }
      }
    } else if (rc == NX_DONE) {
      rc = NX_OK;
      if (upsert && kind != Q_FAM_DELETE) {
        bson_t ins;
        rc = do_upsert(t, coll, c->filter, u, what, NULL, &ins);
        if (rc == NX_OK && return_after) {
          result = ins;
          have = true;
        } else if (rc == NX_OK) {
          bson_destroy(&ins);
        }
      }
      if (rc == NX_OK && !have) nx_err(NX_NOTFOUND, "%s: no document in '%s' matches the filter", what, coll);
    }
  }
  if (rc == NX_OK && have) {
    if (p) {
      rc = proj_apply(p, &result, c->filter, out);
      if (rc != NX_OK) rc = nx_err_prefix(rc, "%s: ", what);
    } else {
      bson_copy_to(&result, out);
    }
    *returned = rc == NX_OK;
  }
  if (have) bson_destroy(&result);
  nx_buf_free(&old);
  q_close(c);
  update_free(u);
  proj_free(p);
  return rc;
}
