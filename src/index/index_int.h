/*
 * index_int.h: private helpers shared by the files of src/index/ (never included from above).
 */
#ifndef NX_INDEX_INT_H
#define NX_INDEX_INT_H

#include "index.h"

/* index_def.c */
void idx_ddl_bump(void);
int idx_def_key(nx_buf *b, const char *coll, const char *name);
int idx_def_store(st_txn *t, const idx_def *d);
int idx_def_erase(st_txn *t, const char *coll, const char *name);

/* index_keys.c: iterate the records written by idx_keys */
static inline const uint8_t *idx_key_rec(const nx_buf *keys, size_t *off, size_t *len) {
  const uint8_t *p = keys->data + *off;
  *len = nx_get16(p);
  *off += 2 + *len;
  return p + 2;
}
/* Renders the values part of an entry key as {field: value, ...} JSON into b (best effort). */
void idx_values_json(const idx_def *d, const uint8_t *p, size_t n, nx_buf *b);
/* The _id suffix length of key (the collection tree key) from the document, appended to buf. */
int idx_doc_id_key(const bson_t *doc, nx_buf *buf);

/* index_write.c: unique check of one key (values part = key minus id suffix). An entry held by
 * an expired document (idx_set_expired_probe) is no conflict; with self_stored (index builds,
 * where the document being indexed is already stored) neither is any when that document is
 * itself expired. */
int idx_unique_check(st_txn *t, st_tree tree, const idx_def *d, const uint8_t *key, size_t klen,
                     size_t idlen, bool self_stored);
/* Value stored beside each entry: the id suffix length. */
static inline st_val idx_entry_val(uint8_t v[2], size_t idlen) {
  nx_put16(v, (uint16_t)idlen);
  return (st_val){v, 2};
}

#endif
