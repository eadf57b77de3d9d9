/*
 * cursor.c: the find executor and its streaming cursor.
 *
 * A cursor walks the collection tree in _id order (or looks up one _id when the filter has an
 * equality on _id), keeps the documents that filter_match accepts, applies skip and limit, and
 * projects each result into one reusable bson_t. It holds at most one document at a time, so
 * iterating N documents needs memory independent of N (a test measures the allocator's peak).
 * With a sort, the matching documents are first buffered in a q_sorter (sort.c): a bounded heap of
 * skip + limit documents when there is a limit, else everything up to max_sort_bytes.
 *
 * Invariants:
 *   1. In a write transaction, any write (t->writes moved since the last step) may have changed
 *      the tree under the storage cursor: the next step re-seeks to the first key >= last_key and
 *      steps over it if it is still there. Documents are keyed by _id and updates never change
 *      _id, so an update-many visits every document once.
 *   2. Expired documents (expires_ms <= txn clock) are invisible.
 *   3. Once a cursor returns NX_DONE or an error, it returns the same again.
 */
#include <string.h>

#include "planner.h"
#include "query_int.h"

/* Parses the filter and, for an equality on _id, prepares a point lookup. */
static int plan(nx_cursor *c, const bson_t *filter) {
  bson_t empty = BSON_INITIALIZER;
  int rc = filter_parse(filter ? filter : &empty, &c->filter);
  bson_destroy(&empty);
  if (rc != NX_OK) return rc;
  size_t n = filter_conjunct_count(c->filter);
  for (size_t i = 0; i < n; i++) {
    filter_conjunct fc;
    filter_conjunct_get(c->filter, i, &fc);
    if (fc.op == FILTER_OP_FALSE) { /* matches nothing */
      c->point = true;
      c->point_done = true;
      return NX_OK;
    }
    if (fc.path && strcmp(fc.path, "_id") == 0 && fc.op == FILTER_OP_EQ && fc.value && !fc.has_regex &&
        fc.value->value_type != BSON_TYPE_ARRAY && fc.value->value_type != BSON_TYPE_NULL) {
      rc = eng_id_key(&c->point_key, fc.value);
      if (rc == NX_LIMIT) { /* no stored _id can have such a key: nothing matches */
        c->point = true;
        c->point_done = true;
        return NX_OK;
      }
      if (rc != NX_OK) return rc;
      c->point = true;
      return NX_OK;
    }
  }
  return NX_OK;
}

/* The cursor embeds bson_t values, which libbson declares 128-byte aligned; our allocator
 * aligns to 16. So the cursor is placed at a 128-byte boundary inside a larger block whose
 * address is kept just before it. */
#define CURSOR_ALIGN 128u

static nx_cursor *cursor_alloc(void) {
  uint8_t *raw = nx_calloc(1, sizeof(nx_cursor) + CURSOR_ALIGN + sizeof(void *));
  if (!raw) return NULL;
  uintptr_t p = ((uintptr_t)(raw + sizeof(void *)) + CURSOR_ALIGN - 1) & ~(uintptr_t)(CURSOR_ALIGN - 1);
  memcpy((void *)(p - sizeof(void *)), &raw, sizeof raw);
  return (nx_cursor *)p;
}

static void cursor_free(nx_cursor *c) {
  void *raw;
  memcpy(&raw, (uint8_t *)c - sizeof(void *), sizeof raw);
  nx_free(raw);
}

/* The caller's transaction ends before the cursor is closed: let go of everything it holds of
 * the transaction; the cursor then only answers NX_MISUSE (see eng_txn_watch). */
static void cursor_detach(void *ctx) {
  nx_cursor *c = ctx;
  st_cursor_close(c->sc);
  c->sc = NULL;
  plan_free(c->plan);
  c->plan = NULL;
  c->watching = false;
  c->t = NULL;
  c->coll = NULL;
  c->status = NX_MISUSE;
}

int q_find(nx_txn *t, bool own_txn, const char *coll, const bson_t *filter, const q_opts *o,
           nx_cursor **out) {
  *out = NULL;
  nx_cursor *c = cursor_alloc();
  if (!c) {
    if (own_txn) eng_txn_abort(t);
    return nx_err(NX_NOMEM, "find in '%s': out of memory", coll);
  }
  c->t = t;
  c->own_txn = own_txn;
  if (!own_txn) {
    c->watch.detach = cursor_detach;
    c->watch.ctx = c;
    eng_txn_watch_add(t, &c->watch);
    c->watching = true;
  }
  nx_buf_init(&c->point_key, 0);
  nx_buf_init(&c->last_key, 0);
  nx_buf_init(&c->scratch, ST_MAX_VALUE);
  c->status = NX_OK;
  int rc = plan(c, filter);
  if (rc == NX_OK && o && o->projection) rc = proj_parse(o->projection, &c->proj);
  if (rc == NX_OK && o && o->sort) rc = sort_parse(o->sort, &c->sort);
  if (rc != NX_OK) {
    q_close(c);
    return rc;
  }
  if (o) {
    c->skip = o->skip;
    c->limit = o->limit;
    c->max_sort_bytes = o->max_sort_bytes;
  }
  if (!c->max_sort_bytes) c->max_sort_bytes = Q_DEFAULT_SORT_BYTES;
  rc = eng_coll_get(t, coll, false, &c->coll);
  if (rc == NX_NOTFOUND) {
    c->coll = NULL; /* reads of a missing collection return nothing (MongoDB) */
    c->status = NX_DONE;
    nx_err_clear();
  } else if (rc != NX_OK) {
    q_close(c);
    return rc;
  }
  if (c->coll) { /* the planner: an index scan or this file's scan / point lookup */
    rc = c->point ? plan_make_idhack(&c->plan) : plan_make(t, c->coll, c->filter, c->sort, &c->plan);
    if (rc != NX_OK) {
      q_close(c);
      return rc;
    }
  }
  *out = c;
  return NX_OK;
}

/* Moves the storage cursor to the next entry (see invariant 1). NX_OK or NX_NOTFOUND at the end. */
static int scan_step(nx_cursor *c) {
  int rc;
  if (!c->sc) {
    rc = st_cursor_open(c->t->st, c->coll->tree, &c->sc);
    if (rc != NX_OK) return rc;
    rc = st_cursor_first(c->sc);
  } else if (c->t->writes != c->writes_seen) {
    st_val k = {c->last_key.data, c->last_key.len};
    rc = st_cursor_seek(c->sc, k, ST_SEEK_GE);
    if (rc == NX_OK) {
      st_val k2, v2;
      rc = st_cursor_get(c->sc, &k2, &v2);
      if (rc == NX_OK && k2.n == k.n && memcmp(k2.p, k.p, k.n) == 0) rc = st_cursor_next(c->sc);
    }
  } else {
    rc = st_cursor_next(c->sc);
  }
  c->writes_seen = c->t->writes;
  return rc;
}

/* The next matching, visible stored document into c->cur. NX_ROW, NX_DONE or an error. */
static int next_match(nx_cursor *c) {
  for (;;) {
    st_val k, v;
    int rc;
    if (c->point) {
      if (c->point_done) return NX_DONE;
      c->point_done = true;
      st_val pk = {c->point_key.data, c->point_key.len};
      rc = st_get(c->t->st, c->coll->tree, pk, &v);
      if (rc == NX_NOTFOUND) return NX_DONE;
      if (rc != NX_OK) return rc;
    } else if (plan_is_ixscan(c->plan)) {
      st_val ik;
      rc = plan_next(c->plan, &ik);
      if (rc == NX_NOTFOUND) return NX_DONE;
      if (rc == NX_OK && !c->t->write && c->limit == 0) { /* (a limit may stop early: no entries examined ahead) */
        /* read-ahead: locate the next ids' leaves first (their misses overlap this read's) */
        uint64_t n = ++c->ra_n;
        bool have = c->ra_upto >= n;
        st_loc here;
        if (have) here = c->ra[n % Q_READ_AHEAD];
        for (uint64_t m = c->ra_upto < n ? n + 1 : c->ra_upto + 1; m < n + Q_READ_AHEAD; m++) {
          st_val nk;
          if (plan_peek(c->plan, m - n, &nk) != NX_OK || st_locate(c->t->st, c->coll->tree, nk, &c->ra[m % Q_READ_AHEAD]) != NX_OK)
            break; /* no more ids, or a failure the read itself will report */
          c->ra_upto = m;
        }
        /* the id two ahead was located a result ago: its header has arrived, request its cells */
        if (c->ra_upto >= n + 2) st_prefetch_located(c->t->st, &c->ra[(n + 2) % Q_READ_AHEAD]);
        rc = have ? st_get_located(c->t->st, c->coll->tree, &here, ik, &v) : st_get(c->t->st, c->coll->tree, ik, &v);
      } else if (rc == NX_OK) {
        rc = st_get(c->t->st, c->coll->tree, ik, &v);
      }
      if (rc == NX_NOTFOUND) return NX_CORRUPT_BKPT("collection '%s': an index entry names a missing document", c->coll->name);
      if (rc != NX_OK) return rc;
    } else {
      rc = scan_step(c);
      if (rc == NX_NOTFOUND) return NX_DONE;
      if (rc != NX_OK) return rc;
      rc = st_cursor_get(c->sc, &k, &v);
      if (rc != NX_OK) return rc;
      if (c->t->write) {
        c->last_key.len = 0;
        rc = nx_buf_append(&c->last_key, k.p, k.n);
        if (rc != NX_OK) return rc;
      }
    }
    rc = eng_doc_decode(c->coll->name, v, &c->scratch, &c->cur);
    if (rc != NX_OK) return rc;
    plan_note_doc(c->plan);
    if (eng_doc_expired_in(&c->cur.meta, c->t)) continue;
    bool m = true;
    if (!filter_is_empty(c->filter) && plan_needs_filter(c->plan)) {
      rc = filter_match(c->filter, &c->cur.doc, &m);
      if (rc != NX_OK) return nx_err_prefix(rc, "find in '%s': ", c->coll->name);
    }
    if (m) return NX_ROW;
  }
}

/* Fills and sorts the sort buffer. */
static int fill_sorted(nx_cursor *c) {
  size_t cap = 0;
  if (c->limit) {
    uint64_t want = c->skip + c->limit;
    cap = want < c->skip || want > SIZE_MAX / 4 ? SIZE_MAX / 4 : (size_t)want;
  }
  q_sorter_init(&c->sorter, c->sort, cap, c->max_sort_bytes);
  int rc;
  while ((rc = next_match(c)) == NX_ROW) {
    rc = q_sorter_add(&c->sorter, &c->cur.doc, &c->cur.meta, c->coll->name);
    if (rc != NX_OK) return rc;
  }
  if (rc != NX_DONE) return rc;
  q_sorter_finish(&c->sorter);
  c->pos = (size_t)(c->skip < c->sorter.n ? c->skip : c->sorter.n);
  c->skip = 0;
  c->sorted_ready = true;
  return NX_OK;
}

/* The next result before projection (doc borrowed). */
static int next_raw(nx_cursor *c, const bson_t **doc, nx_doc_meta *meta) {
  if (!c->t) return nx_err(NX_MISUSE, "cursor: its transaction has ended; close the cursor first");
  if (c->status != NX_OK) return c->status;
  int rc;
  if (c->limit && c->returned >= c->limit) {
    rc = NX_DONE;
  } else if (c->sort && !plan_provides_sort(c->plan)) {
    rc = c->sorted_ready ? NX_OK : fill_sorted(c);
    if (rc == NX_OK) {
      if (c->pos < c->sorter.n) {
        q_item *it = &c->sorter.items[c->pos++];
        bson_init_static(&c->item_view, it->doc, it->doc_len);
        *doc = &c->item_view;
        if (meta) *meta = it->meta;
        rc = NX_ROW;
      } else {
        rc = NX_DONE;
      }
    }
  } else {
    while ((rc = next_match(c)) == NX_ROW && c->skip > 0) c->skip--;
    if (rc == NX_ROW) {
      *doc = &c->cur.doc;
      if (meta) *meta = c->cur.meta;
    }
  }
  if (rc == NX_ROW) {
    c->returned++;
    return NX_ROW;
  }
  c->status = rc;
  return rc;
}

int q_next_raw(nx_cursor *c, const bson_t **doc, nx_doc_meta *meta) { return next_raw(c, doc, meta); }

int q_next(nx_cursor *c, const bson_t **doc) {
  const bson_t *raw = NULL;
  int rc = next_raw(c, &raw, NULL);
  if (rc != NX_ROW) return rc;
  if (!c->proj) {
    *doc = raw;
    return NX_ROW;
  }
  if (c->out_init) {
    bson_destroy(&c->out);
    c->out_init = false;
  }
  rc = proj_apply(c->proj, raw, c->filter, &c->out);
  if (rc != NX_OK) {
    c->status = rc;
    return rc;
  }
  c->out_init = true;
  *doc = &c->out;
  return NX_ROW;
}

void q_close(nx_cursor *c) {
  if (!c) return;
  if (c->watching) eng_txn_watch_remove(c->t, &c->watch);
  st_cursor_close(c->sc);
  if (c->sorted_ready || c->sorter.items) q_sorter_free(&c->sorter);
  if (c->out_init) bson_destroy(&c->out);
  filter_free(c->filter);
  proj_free(c->proj);
  sort_free(c->sort);
  plan_free(c->plan);
  nx_buf_free(&c->point_key);
  nx_buf_free(&c->last_key);
  nx_buf_free(&c->scratch);
  if (c->own_txn) eng_txn_abort(c->t);
  cursor_free(c);
}
