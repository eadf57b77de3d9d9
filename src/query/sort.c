/*
 * sort.c: the in-memory sort of a find.
 *
 * Each offered document gets its sort key extracted once (sort_key_extract) and a sequence
 * number (its position in _id order), so ties keep _id order: the sort is stable.
 *   - With a limit, only the best skip + limit documents are kept, in a max-heap whose root is
 *     the worst kept document: memory is bounded by the limit, whatever the collection size.
 *   - Without one, every matching document is kept; the buffer counts its bytes and fails with
 *     NX_LIMIT beyond max_bytes (the message says to add a limit or an index).
 */
#include <stdlib.h>
#include <string.h>

#include "query_int.h"

#define ITEM_OVERHEAD (sizeof(q_item) + 32u)

void q_sorter_init(q_sorter *s, const sort_t *sort, size_t cap, uint64_t max_bytes) {
  memset(s, 0, sizeof *s);
  s->sort = sort;
  s->cap = cap;
  s->max_bytes = max_bytes;
}

static int item_cmp(const sort_t *sort, const q_item *a, const q_item *b) {
  bson_t ka, kb;
  bson_init_static(&ka, a->key, a->key_len);
  bson_init_static(&kb, b->key, b->key_len);
  int c = sort_key_cmp(sort, &ka, &kb);
  if (c) return c;
  return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static void item_free(q_item *it) {
  nx_free(it->key);
  nx_free(it->doc);
  it->key = it->doc = NULL;
}

/* Fills it with copies of key and doc. NX_NOMEM. */
static int item_set(q_item *it, const bson_t *key, const bson_t *doc, const nx_doc_meta *meta, uint64_t seq) {
  uint8_t *k = nx_malloc(key->len), *d = nx_malloc(doc->len);
  if (!k || !d) {
    nx_free(k);
    nx_free(d);
    return NX_NOMEM;
  }
  memcpy(k, bson_get_data(key), key->len);
  memcpy(d, bson_get_data(doc), doc->len);
  it->key = k;
  it->key_len = key->len;
  it->doc = d;
  it->doc_len = doc->len;
  it->meta = *meta;
  it->seq = seq;
  return NX_OK;
}

static void sift_up(q_sorter *s, size_t i) {
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (item_cmp(s->sort, &s->items[p], &s->items[i]) >= 0) break;
    q_item tmp = s->items[p];
    s->items[p] = s->items[i];
    s->items[i] = tmp;
    i = p;
  }
}

static void sift_down(q_sorter *s, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < s->n && item_cmp(s->sort, &s->items[l], &s->items[m]) > 0) m = l;
    if (r < s->n && item_cmp(s->sort, &s->items[r], &s->items[m]) > 0) m = r;
    if (m == i) return;
    q_item tmp = s->items[m];
    s->items[m] = s->items[i];
    s->items[i] = tmp;
    i = m;
  }
}

static int limit_err(const q_sorter *s, const char *coll) {
  return nx_err(NX_LIMIT,
                "sort in '%s': the in-memory sort would exceed its memory limit of %llu bytes; "
                "add a limit, a narrower filter, or an index on the sort key (max_sort_bytes)",
                coll, (unsigned long long)s->max_bytes);
}

int q_sorter_add(q_sorter *s, const bson_t *doc, const nx_doc_meta *meta, const char *coll) {
  bson_t key;
  int rc = sort_key_extract(s->sort, doc, &key);
  if (rc != NX_OK) return rc;
  uint64_t seq = s->seq++;
  uint64_t add = doc->len + key.len + ITEM_OVERHEAD;
  if (s->cap && s->n == s->cap) {
    /* Full heap: keep the candidate only if it sorts before the worst kept document. */
    q_item cand = {(uint8_t *)(uintptr_t)bson_get_data(&key), key.len, doc->len, NULL, *meta, seq};
    if (item_cmp(s->sort, &cand, &s->items[0]) >= 0) {
      bson_destroy(&key);
      return NX_OK;
    }
    uint64_t sub = s->items[0].doc_len + s->items[0].key_len + ITEM_OVERHEAD;
    if (s->bytes - sub + add > s->max_bytes) {
      bson_destroy(&key);
      return limit_err(s, coll);
    }
    q_item fresh;
    rc = item_set(&fresh, &key, doc, meta, seq);
    bson_destroy(&key);
    if (rc != NX_OK) return nx_err(rc, "sort in '%s': out of memory", coll);
    item_free(&s->items[0]);
    s->items[0] = fresh;
    s->bytes = s->bytes - sub + add;
    sift_down(s, 0);
    return NX_OK;
  }
  if (s->bytes + add > s->max_bytes) {
    bson_destroy(&key);
    return limit_err(s, coll);
  }
  if (s->n == s->alloc) {
    size_t na = s->alloc ? s->alloc * 2 : 64;
    if (s->cap && na > s->cap) na = s->cap;
    q_item *p = nx_realloc(s->items, na * sizeof *p);
    if (!p) {
      bson_destroy(&key);
      return nx_err(NX_NOMEM, "sort in '%s': out of memory", coll);
    }
    s->items = p;
    s->alloc = na;
  }
  rc = item_set(&s->items[s->n], &key, doc, meta, seq);
  bson_destroy(&key);
  if (rc != NX_OK) return nx_err(rc, "sort in '%s': out of memory", coll);
  s->n++;
  s->bytes += add;
  if (s->cap) sift_up(s, s->n - 1);
  return NX_OK;
}

static int qcmp(const void *a, const void *b, void *ctx) { return item_cmp(ctx, a, b); }

void q_sorter_finish(q_sorter *s) {
  if (s->n > 1) qsort_r(s->items, s->n, sizeof *s->items, qcmp, (void *)(uintptr_t)s->sort);
}

void q_sorter_free(q_sorter *s) {
  for (size_t i = 0; i < s->n; i++) item_free(&s->items[i]);
  nx_free(s->items);
  s->items = NULL;
  s->n = s->alloc = 0;
}
