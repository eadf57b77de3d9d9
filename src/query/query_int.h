/*
 * query_int.h: what the files of the query layer share: the cursor structure and the sort
 * buffer. Private to src/query/.
 */
#ifndef NX_QUERY_INT_H
#define NX_QUERY_INT_H

#include "query.h"

/* One buffered document of an in-memory sort. */
/* Documents are kept as raw bytes, not heap bson_t: libbson declares bson_t 128-byte aligned and
 * heap blocks are only 16-byte aligned, so views are made on the stack (or in the cursor). */
typedef struct q_item {
  uint8_t *key;       /* bytes of the extracted sort key (sort_key_extract), owned */
  uint32_t key_len;   /* their length */
  uint32_t doc_len;   /* length of doc */
  uint8_t *doc;       /* bytes of a copy of the stored document, owned */
  nx_doc_meta meta;   /* its metadata */
  uint64_t seq;       /* scan position: ties keep _id order (stable sort) */
} q_item;

/* The sort buffer: everything (no limit) or a max-heap of the best `cap` items (limit). */
typedef struct q_sorter {
  const sort_t *sort; /* borrowed from the cursor */
  q_item *items;      /* heap (cap > 0) or plain array; sorted ascending after q_sorter_finish */
  size_t n;           /* items held */
  size_t alloc;       /* slots allocated */
  size_t cap;         /* bounded heap size (skip + limit), 0 = unbounded */
  uint64_t bytes;     /* memory held, approximately */
  uint64_t max_bytes; /* NX_LIMIT beyond */
  uint64_t seq;       /* next sequence number */
} q_sorter;

void q_sorter_init(q_sorter *s, const sort_t *sort, size_t cap, uint64_t max_bytes);
/** Offers a document (copied if kept). NX_LIMIT when the memory limit would be exceeded. */
int q_sorter_add(q_sorter *s, const bson_t *doc, const nx_doc_meta *meta, const char *coll);
/** Sorts what is held, ascending. */
void q_sorter_finish(q_sorter *s);
void q_sorter_free(q_sorter *s);

/** True when filter is exactly {_id: v} with v a scalar usable as a key (point.c); *it is then
 *  positioned on v. */
bool q_id_only(const bson_t *filter, bson_iter_t *it);

/* The cursor. */
#define Q_READ_AHEAD 4
struct nx_cursor {
  nx_txn *t;            /* transaction (owned when own_txn) */
  bool own_txn;         /* end t at close */
  eng_coll *coll;       /* NULL when the collection does not exist: the cursor is empty */
  filter_t *filter;     /* parsed filter, owned (never NULL) */
  proj_t *proj;         /* parsed projection, owned, NULL = whole documents */
  sort_t *sort;         /* parsed sort, owned, NULL = natural order */
  uint64_t skip;        /* still to skip (streaming) / to skip (sorted) */
  uint64_t limit;       /* 0 = none */
  uint64_t returned;    /* documents returned so far */
  uint64_t max_sort_bytes; /* in-memory sort limit */
  int status;           /* NX_OK while running; NX_DONE or the error once finished */
  /* scan */
  st_cursor *sc;        /* storage cursor, NULL before the first step */
  bool point;           /* point lookup of one _id key (point_key) */
  bool point_done;      /* the point lookup ran */
  nx_buf point_key;     /* encoded _id of the point lookup */
  nx_buf last_key;      /* key of the last document (write txns: re-seek after writes) */
  uint64_t writes_seen; /* t->writes at the last step */
  nx_buf scratch;       /* decompression buffer */
  eng_doc cur;          /* current raw document (borrowed view) */
  /* sorted */
  bool sorted_ready;    /* the sort buffer is filled and sorted */
  q_sorter sorter;      /* the buffered documents */
  size_t pos;           /* next item to return */
  /* output */
  bson_t item_view;     /* static view of the current sorted item */
  bson_t out;           /* projected document returned by q_next */
  bool out_init;        /* out holds a document to destroy */
  /* planner (planner.h; index engineer) */
  struct q_plan *plan;    /* the chosen plan, owned; NULL when the collection is missing */
  eng_txn_watch watch;    /* registered on a caller's txn (not own_txn): detach at its end */
  bool watching;          /* watch is registered */
  /* fetch read-ahead of a gathered index scan (read txns; cursor.c next_match): the leaves of
   * the next Q_READ_AHEAD - 1 ids are located (and their first lines requested) before the
   * current id is read, so their memory misses overlap */
  uint64_t ra_n;          /* ids fetched so far */
  uint64_t ra_upto;       /* ids located so far (ra[i % Q_READ_AHEAD] holds id i's leaf) */
  st_loc ra[Q_READ_AHEAD];
};

#endif
