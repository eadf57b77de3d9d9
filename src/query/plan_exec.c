/*
 * plan_exec.c: running an index scan: the intervals of the chosen index in order, yielding the
 * collection keys of candidate documents (the fetch and the residual filter are the executor's,
 * cursor.c).
 *
 * Invariants:
 *   1. Intervals are sorted by their low end and disjoint, so a forward walk yields entries in
 *      index order (this is what lets an index provide a sort).
 *   2. In a write transaction a write may move the tree under the storage cursor: the next step
 *      re-seeks to the first key >= the last entry (<= when walking backwards) and steps over it
 *      if it is still there.
 *   3. With dedupe, an _id is returned at most once (multikey entries, and documents that an
 *      update moved forward in the index: the Halloween problem).
 *   4. When the index does not provide the requested order (or none was requested), the ids in
 *      the bounds are gathered first, sorted and de-duplicated, and the documents fetched in _id
 *      order: natural order stays _id order (DESIGN.md 5), an in-memory sort keeps ties in _id
 *      order, update_one/delete_one take the first match by _id, and a write txn cannot revisit
 *      a document. The cost is memory for the ids in the bounds (not the documents); a plan that
 *      provides the sort streams instead, and so does, in a read txn, an equality on every field
 *      of the index (one run of equal values parts: its entries already ascend by _id, once each).
 *   5. A plan whose sort is the reverse of the index walks the intervals from the last down, each
 *      from its high end (exclusive) to its low end, and returns each run of entries with equal
 *      values parts in ascending _id order (it holds one such run at a time), so ties keep _id
 *      order as with a forward walk or an in-memory sort.
 */
#include <string.h>

#include "plan_int.h"

static uint32_t hash_key(const uint8_t *k, size_t n) { return nx_crc32c(0x9E3779B9u, k, n); }

static bool seen_eq(const plan_seen *s, size_t slot, const uint8_t *k, size_t n) {
  const uint8_t *r = s->arena.data + (s->slots[slot] - 1);
  return nx_get16(r) == n && memcmp(r + 2, k, n) == 0;
}

static int seen_grow(plan_seen *s) {
  size_t nc = s->cap ? s->cap * 2 : 256;
  size_t *ns = nx_calloc(nc, sizeof *ns);
  if (!ns) return nx_err(NX_NOMEM, "index scan: out of memory");
  for (size_t i = 0; i < s->cap; i++) {
    if (!s->slots[i]) continue;
    const uint8_t *r = s->arena.data + (s->slots[i] - 1);
    size_t h = hash_key(r + 2, nx_get16(r)) & (nc - 1);
    while (ns[h]) h = (h + 1) & (nc - 1);
    ns[h] = s->slots[i];
  }
  nx_free(s->slots);
  s->slots = ns;
  s->cap = nc;
  return NX_OK;
}

int plan_seen_add(plan_seen *s, const uint8_t *k, size_t n, bool *was) {
  *was = false;
  if (!s->arena.max) nx_buf_init(&s->arena, 0);
  if ((s->n + 1) * 2 > s->cap) {
    int rc = seen_grow(s);
    if (rc != NX_OK) return rc;
  }
  size_t h = hash_key(k, n) & (s->cap - 1);
  while (s->slots[h]) {
    if (seen_eq(s, h, k, n)) {
      *was = true;
      return NX_OK;
    }
    h = (h + 1) & (s->cap - 1);
  }
  size_t at = s->arena.len;
  uint8_t l[2];
  nx_put16(l, (uint16_t)n);
  int rc = nx_buf_append(&s->arena, l, 2);
  if (rc == NX_OK) rc = nx_buf_append(&s->arena, k, n);
  if (rc != NX_OK) return rc;
  s->slots[h] = at + 1;
  s->n++;
  return NX_OK;
}

void plan_seen_free(plan_seen *s) {
  nx_buf_free(&s->arena);
  nx_free(s->slots);
  memset(s, 0, sizeof *s);
}

static int cmp_bytes(const uint8_t *a, size_t an, const uint8_t *b, size_t bn) {
  size_t m = an < bn ? an : bn;
  int c = m ? memcmp(a, b, m) : 0;
  if (c) return c;
  return an < bn ? -1 : an > bn;
}

/* The interval the walk is in: forward from the first, backward from the last. */
static inline const plan_ival *cur_ival(const q_plan *p, const plan_cand *c) {
  return &c->iv[p->backward ? c->niv - 1 - p->at : p->at];
}

/* Positions the cursor on the next entry in the walk's direction (see invariant 2): forward the
 * first key >= lo of the interval, backward the last key < hi. NX_OK or NX_NOTFOUND. */
static int step(q_plan *p, const plan_cand *c) {
  int rc;
  bool back = p->backward;
  if (!p->positioned) {
    const plan_ival *v = cur_ival(p, c);
    if (!back) {
      rc = st_cursor_seek(p->cur, (st_val){c->arena.data + v->lo_off, v->lo_len}, ST_SEEK_GE);
    } else if (v->hi_inf) {
      rc = st_cursor_last(p->cur);
    } else {
      st_val hk = {c->arena.data + v->hi_off, v->hi_len};
      rc = st_cursor_seek(p->cur, hk, ST_SEEK_LE);
      if (rc == NX_OK) {
        st_val k2, v2;
        rc = st_cursor_get(p->cur, &k2, &v2);
        if (rc == NX_OK && k2.n == hk.n && memcmp(k2.p, hk.p, hk.n) == 0) rc = st_cursor_prev(p->cur);
      }
    }
    p->positioned = true;
  } else if (p->t->writes != p->writes_seen) {
    st_val k = {p->last.data, p->last.len};
    rc = st_cursor_seek(p->cur, k, back ? ST_SEEK_LE : ST_SEEK_GE);
    if (rc == NX_OK) {
      st_val k2, v2;
      rc = st_cursor_get(p->cur, &k2, &v2);
      if (rc == NX_OK && k2.n == k.n && memcmp(k2.p, k.p, k.n) == 0)
        rc = back ? st_cursor_prev(p->cur) : st_cursor_next(p->cur);
    }
  } else {
    rc = back ? st_cursor_prev(p->cur) : st_cursor_next(p->cur);
  }
  p->writes_seen = p->t->writes;
  return rc;
}

static int scan_next(q_plan *p, st_val *id_key);

static inline int id_rec_cmp(const uint8_t *x, const uint8_t *y) {
  return cmp_bytes(x + 2, nx_get16(x), y + 2, nx_get16(y));
}

/* Byte order of two gathered ids: the prefixes first (zero padding keeps a proper prefix below
 * its extensions), the records only when those are equal. */
static inline int idref_cmp(const plan_idref *a, const plan_idref *b, const uint8_t *ar) {
  if (a->pfx != b->pfx) return a->pfx < b->pfx ? -1 : 1;
  return id_rec_cmp(ar + a->off, ar + b->off);
}

static inline uint64_t id_prefix(const uint8_t *p, size_t n) {
  if (n >= 8) /* compilers make this one load and a byte swap */
    return (uint64_t)p[0] << 56 | (uint64_t)p[1] << 48 | (uint64_t)p[2] << 40 | (uint64_t)p[3] << 32 |
           (uint64_t)p[4] << 24 | (uint64_t)p[5] << 16 | (uint64_t)p[6] << 8 | (uint64_t)p[7];
  uint64_t v = 0;
  for (size_t i = 0; i < 8; i++) v = (v << 8) | (i < n ? p[i] : 0u);
  return v;
}

/* Sorts ids[0..n) ascending: a natural merge sort, O(n log r) for r ascending runs. The scan
 * yields one run per distinct values part of a non-multikey index (ids ascend within equal
 * values), so a range over a few values costs a few linear merges, and a point interval none. */
static int sort_ids(plan_idref *ids, size_t n, const uint8_t *ar) {
  if (n < 2) return NX_OK;
  size_t *run = NULL, nrun = 0, crun = 0;
  for (size_t i = 0; i < n; i++) {
    if (i > 0 && idref_cmp(&ids[i - 1], &ids[i], ar) <= 0) continue;
    if (nrun == crun) {
      size_t nc = crun ? crun * 2 : 16;
      size_t *nr = nx_realloc(run, (nc + 1) * sizeof *nr);
      if (!nr) {
        nx_free(run);
        return nx_err(NX_NOMEM, "index scan: out of memory sorting ids");
      }
      run = nr;
      crun = nc;
    }
    run[nrun++] = i;
  }
  if (nrun <= 1) {
    nx_free(run);
    return NX_OK;
  }
  run[nrun] = n;
  plan_idref *tmp = nx_malloc(n * sizeof *tmp);
  if (!tmp) {
    nx_free(run);
    return nx_err(NX_NOMEM, "index scan: out of memory sorting ids");
  }
  plan_idref *src = ids, *dst = tmp;
  while (nrun > 1) {
    size_t w = 0;
    for (size_t r = 0; r < nrun; r += 2) {
      size_t a = run[r], am = run[r + 1];
      run[w++] = a;
      if (r + 1 == nrun) { /* odd run out: copied */
        memcpy(dst + a, src + a, (am - a) * sizeof *src);
        continue;
      }
      size_t b = am, bm = run[r + 2], o = a;
      while (a < am && b < bm) dst[o++] = idref_cmp(&src[b], &src[a], ar) < 0 ? src[b++] : src[a++];
      while (a < am) dst[o++] = src[a++];
      while (b < bm) dst[o++] = src[b++];
    }
    run[w] = n;
    nrun = w;
    plan_idref *sw = src;
    src = dst;
    dst = sw;
  }
  if (src != ids) memcpy(ids, src, n * sizeof *ids);
  nx_free(tmp);
  nx_free(run);
  return NX_OK;
}

static int gather(q_plan *p) {
  nx_buf_init(&p->ids, 0);
  size_t cap = 0;
  st_val id;
  int rc;
  while ((rc = scan_next(p, &id)) == NX_OK) {
    if (p->nids == cap) {
      size_t nc = cap ? cap * 2 : 64;
      plan_idref *no = nx_realloc(p->id_off, nc * sizeof *no);
      if (!no) return nx_err(NX_NOMEM, "index scan: out of memory gathering ids");
      p->id_off = no;
      cap = nc;
    }
    if (p->ids.cap - p->ids.len < 2 + id.n || p->ids.max - p->ids.len < 2 + id.n) { /* grow, or NX_LIMIT */
      rc = nx_buf_reserve(&p->ids, 2 + id.n);
      if (rc != NX_OK) return rc;
    }
    uint8_t *r = p->ids.data + p->ids.len;
    nx_put16(r, (uint16_t)id.n);
    memcpy(r + 2, id.p, id.n);
    p->id_off[p->nids++] = (plan_idref){id_prefix(id.p, id.n), p->ids.len};
    p->ids.len += 2 + id.n;
  }
  if (rc != NX_NOTFOUND) return rc;
  rc = sort_ids(p->id_off, p->nids, p->ids.data);
  if (rc != NX_OK) return rc;
  size_t w = 0;
  for (size_t i = 0; i < p->nids; i++)
    if (w == 0 || idref_cmp(&p->id_off[w - 1], &p->id_off[i], p->ids.data) != 0) p->id_off[w++] = p->id_off[i];
  p->nids = w;
  p->collected = true;
  return NX_OK;
}

/* Reads one more id of a walk into the ring (p->ra_n < PLAN_RA - 1). */
static int ra_fill(q_plan *p) {
  if (p->ra_err) return p->ra_err;
  st_val k;
  int rc = scan_next(p, &k);
  if (rc != NX_OK) {
    p->ra_err = rc;
    return rc;
  }
  nx_buf *b = &p->ra_buf[(p->ra_head + p->ra_n) % PLAN_RA];
  if (!b->max) nx_buf_init(b, 0);
  b->len = 0;
  rc = nx_buf_append(b, k.p, k.n);
  if (rc != NX_OK) return p->ra_err = rc;
  p->ra_n++;
  return NX_OK;
}

/* The id plan_next returns `ahead` (>= 1) calls from now, without taking it; errors as
 * plan_next's (a gathered plan has gathered). */
static int peek(q_plan *p, size_t ahead, st_val *id_key) {
  if (!p->collect) {
    if (ahead >= PLAN_RA) return NX_NOTFOUND;
    while (p->ra_n < ahead) {
      int rc = ra_fill(p);
      if (rc != NX_OK) return rc;
    }
    const nx_buf *b = &p->ra_buf[(p->ra_head + ahead - 1) % PLAN_RA];
    *id_key = (st_val){b->data, b->len};
    return NX_OK;
  }
  if (p->id_at + ahead - 1 >= p->nids) return NX_NOTFOUND;
  const uint8_t *r = p->ids.data + p->id_off[p->id_at + ahead - 1].off;
  *id_key = (st_val){r + 2, nx_get16(r)};
  return NX_OK;
}

int plan_next(q_plan *p, st_val *id_key) {
  if (!p->ixscan) return NX_NOTFOUND;
  if (p->collect && !p->collected) {
    int rc = gather(p);
    if (rc != NX_OK) return rc;
  }
  /* a walk's key is borrowed from the storage cursor, which a read-ahead moves: peek returns
   * the copy in the ring */
  int rc = peek(p, 1, id_key);
  if (rc != NX_OK) return rc;
  if (p->collect) {
    p->id_at++;
  } else {
    p->ra_head = (p->ra_head + 1) % PLAN_RA;
    p->ra_n--;
  }
  return NX_OK;
}

int plan_peek(q_plan *p, size_t ahead, st_val *id_key) {
  if (!p->ixscan || ahead == 0 || (p->collect && !p->collected)) return NX_NOTFOUND;
  return peek(p, ahead, id_key) == NX_OK ? NX_OK : NX_NOTFOUND; /* the end, or an error plan_next returns */
}

/* The next entry of the walk in its direction: *key (borrowed until the next step) and the
 * length of its _id suffix. Counts keys examined; in a write txn remembers the key (re-seek). */
static int scan_raw(q_plan *p, st_val *key, size_t *idlen) {
  if (p->done) return NX_NOTFOUND;
  const plan_cand *c = &p->cands[p->win];
  int rc;
  if (!p->cur) {
    rc = st_cursor_open(p->t->st, p->tree, &p->cur);
    if (rc != NX_OK) return rc;
  }
  for (;;) {
    if (p->at >= c->niv) {
      p->done = true;
      return NX_NOTFOUND;
    }
    rc = step(p, c);
    st_val k, v;
    if (rc == NX_OK) rc = st_cursor_get(p->cur, &k, &v);
    const plan_ival *iv = cur_ival(p, c);
    bool out = rc == NX_NOTFOUND;
    if (rc == NX_OK)
      out = p->backward ? cmp_bytes(k.p, k.n, c->arena.data + iv->lo_off, iv->lo_len) < 0
                        : !iv->hi_inf && cmp_bytes(k.p, k.n, c->arena.data + iv->hi_off, iv->hi_len) >= 0;
    if (out) {
      p->at++;
      p->positioned = false;
      continue;
    }
    if (rc != NX_OK) return rc;
    p->keys_ex++;
    if (v.n != 2 || nx_get16(v.p) == 0 || nx_get16(v.p) > k.n)
      return NX_CORRUPT_BKPT("index '%s' of '%s': entry with a bad value of %zu bytes", c->d->name, c->d->coll, v.n);
    if (p->t->write) {
      p->last.len = 0;
      rc = nx_buf_append(&p->last, k.p, k.n);
      if (rc != NX_OK) return rc;
    }
    *key = k;
    *idlen = nx_get16(v.p);
    return NX_OK;
  }
}

/* True (after recording it) when dedupe is on and id was returned before. */
static int seen_before(q_plan *p, const uint8_t *id, size_t n, bool *was) {
  *was = false;
  return p->dedupe ? plan_seen_add(&p->seen, id, n, was) : NX_OK;
}

/* Backward walk: entries with equal values parts come in descending _id order; they are
 * gathered as one group (its values part in grp_vals, its ids in grp) and returned in ascending
 * _id order, the tie rule of every sort (invariant 5). The entry that ended a group is kept in
 * `pending` for the next one. */
static int back_next(q_plan *p, st_val *id_key) {
  for (;;) {
    if (p->grp_at > 0) {
      const uint8_t *r = p->grp.data + p->grp_off[--p->grp_at];
      *id_key = (st_val){r + 2, nx_get16(r)};
      return NX_OK;
    }
    if (p->grp_end) return NX_NOTFOUND;
    p->grp.len = 0;
    p->grp_vals.len = 0;
    size_t n = 0;
    bool have = false;
    int rc = NX_OK;
    for (;;) {
      st_val k;
      size_t idlen;
      if (p->has_pending) {
        k = (st_val){p->pending.data, p->pending.len};
        idlen = p->pending_idlen;
        p->has_pending = false;
      } else {
        rc = scan_raw(p, &k, &idlen);
        if (rc == NX_NOTFOUND) {
          p->grp_end = true;
          rc = NX_OK;
          break;
        }
        if (rc != NX_OK) return rc;
      }
      size_t vl = k.n - idlen;
      if (have && (vl != p->grp_vals.len || memcmp(k.p, p->grp_vals.data, vl) != 0)) {
        if (k.p != p->pending.data) { /* the first of the next group */
          p->pending.len = 0;
          rc = nx_buf_append(&p->pending, k.p, k.n);
          if (rc != NX_OK) return rc;
        }
        p->pending_idlen = idlen;
        p->has_pending = true;
        break;
      }
      if (!have) {
        rc = nx_buf_append(&p->grp_vals, k.p, vl);
        if (rc != NX_OK) return rc;
        have = true;
      }
      const uint8_t *id = k.p + vl;
      bool was;
      rc = seen_before(p, id, idlen, &was);
      if (rc != NX_OK) return rc;
      if (was) continue;
      if (n == p->grp_cap) {
        size_t nc = p->grp_cap ? p->grp_cap * 2 : 16;
        size_t *no = nx_realloc(p->grp_off, nc * sizeof *no);
        if (!no) return nx_err(NX_NOMEM, "index scan: out of memory");
        p->grp_off = no;
        p->grp_cap = nc;
      }
      p->grp_off[n++] = p->grp.len;
      uint8_t l[2];
      nx_put16(l, (uint16_t)idlen);
      rc = nx_buf_append(&p->grp, l, 2);
      if (rc == NX_OK) rc = nx_buf_append(&p->grp, id, idlen);
      if (rc != NX_OK) return rc;
    }
    p->grp_at = n;
  }
}

static int scan_next(q_plan *p, st_val *id_key) {
  if (p->backward) return back_next(p, id_key);
  for (;;) {
    st_val k;
    size_t idlen;
    int rc = scan_raw(p, &k, &idlen);
    if (rc != NX_OK) return rc;
    const uint8_t *id = k.p + k.n - idlen;
    bool was;
    rc = seen_before(p, id, idlen, &was);
    if (rc != NX_OK) return rc;
    if (was) continue;
    if (!p->t->write) { /* borrowed from the cursor's pinned leaf until its next step */
      *id_key = (st_val){id, idlen};
      return NX_OK;
    }
    p->idbuf.len = 0; /* a write (between steps) may change the leaf: a copy */
    rc = nx_buf_append(&p->idbuf, id, idlen);
    if (rc != NX_OK) return rc;
    *id_key = (st_val){p->idbuf.data, p->idbuf.len};
    return NX_OK;
  }
}
