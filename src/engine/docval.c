/*
 * docval.c: the stored form of a document (the byte table is in engine.h): a small header with
 * the metadata, then the BSON, compressed with zstd or lz4 when the collection asks for it and
 * it saves space. Reading an uncompressed value costs no copy: the returned bson_t is a static
 * view of the storage layer's bytes.
 *
 * Bytes read from storage are hostile (STYLE 9): every length is checked and a failure is
 * NX_CORRUPT naming the collection.
 */
#include <string.h>

#include <lz4.h>
#include <zstd.h>

#include "engine.h"

int eng_doc_encode(const bson_t *doc, const nx_doc_meta *meta, unsigned compression, int level,
                   nx_buf *out) {
  out->len = 0;
  size_t hdr = ENG_DOC_HDR + (meta->expires_ms ? 8u : 0u);
  size_t blen = doc->len;
  int rc = nx_buf_reserve(out, hdr + blen + 64);
  if (rc != NX_OK) return rc;
  uint8_t *p = out->data;
  uint8_t flags = meta->expires_ms ? ENG_F_EXPIRY : 0;
  size_t body = blen;
  if (compression == ENG_COMP_ZSTD && blen > 64) {
    size_t bound = ZSTD_compressBound(blen);
    rc = nx_buf_reserve(out, hdr + bound);
    if (rc != NX_OK) return rc;
    p = out->data;
    size_t z = ZSTD_compress(p + hdr, bound, bson_get_data(doc), blen, level);
    if (!ZSTD_isError(z) && z < blen) {
      body = z;
      flags |= ENG_COMP_ZSTD;
    }
  } else if (compression == ENG_COMP_LZ4 && blen > 64) {
    int bound = LZ4_compressBound((int)blen);
    rc = nx_buf_reserve(out, hdr + (size_t)bound);
    if (rc != NX_OK) return rc;
    p = out->data;
    int z = LZ4_compress_default((const char *)bson_get_data(doc), (char *)(p + hdr), (int)blen, bound);
    if (z > 0 && (size_t)z < blen) {
      body = (size_t)z;
      flags |= ENG_COMP_LZ4;
    }
  }
  if ((flags & ENG_F_COMP_MASK) == 0) memcpy(p + hdr, bson_get_data(doc), blen);
  p[0] = ENG_DOC_FORMAT;
  p[1] = flags;
  p[2] = 0;
  p[3] = 0;
  nx_put32(p + 4, (uint32_t)blen);
  nx_put64(p + 8, (uint64_t)meta->created_ms);
  nx_put64(p + 16, (uint64_t)meta->updated_ms);
  nx_put64(p + 24, meta->version);
  if (meta->expires_ms) nx_put64(p + 32, (uint64_t)meta->expires_ms);
  out->len = hdr + body;
  return NX_OK;
}

int eng_doc_decode(const char *coll, st_val v, nx_buf *scratch, eng_doc *out) {
  if (v.n < ENG_DOC_HDR || v.p[0] != ENG_DOC_FORMAT)
    return NX_CORRUPT_BKPT("collection '%s': stored document has a bad header (%zu bytes, format %u)", coll,
                           v.n, v.n ? v.p[0] : 0u);
  uint8_t flags = v.p[1];
  size_t hdr = ENG_DOC_HDR + ((flags & ENG_F_EXPIRY) ? 8u : 0u);
  uint32_t blen = nx_get32(v.p + 4);
  if (v.n < hdr || blen < 5 || blen > DOC_MAX_BYTES + (1u << 20) || (flags & ~0x7u))
    return NX_CORRUPT_BKPT("collection '%s': stored document header is inconsistent", coll);
  out->flags = flags;
  out->meta.created_ms = (int64_t)nx_get64(v.p + 8);
  out->meta.updated_ms = (int64_t)nx_get64(v.p + 16);
  out->meta.version = nx_get64(v.p + 24);
  out->meta.expires_ms = (flags & ENG_F_EXPIRY) ? (int64_t)nx_get64(v.p + 32) : 0;
  const uint8_t *body = v.p + hdr;
  size_t bn = v.n - hdr;
  unsigned comp = flags & ENG_F_COMP_MASK;
  if (comp != ENG_COMP_NONE) {
    scratch->len = 0;
    if (nx_buf_reserve(scratch, blen) != NX_OK) return nx_err(NX_NOMEM, "collection '%s': out of memory", coll);
    bool ok;
    if (comp == ENG_COMP_ZSTD) {
      size_t z = ZSTD_decompress(scratch->data, blen, body, bn);
      ok = !ZSTD_isError(z) && z == blen;
    } else if (comp == ENG_COMP_LZ4) {
      int z = LZ4_decompress_safe((const char *)body, (char *)scratch->data, (int)bn, (int)blen);
      ok = z == (int)blen;
    } else {
      ok = false;
    }
    if (!ok) return NX_CORRUPT_BKPT("collection '%s': compressed document does not decompress", coll);
    scratch->len = blen;
    body = scratch->data;
    bn = blen;
  }
  if (bn != blen || !bson_init_static(&out->doc, body, bn))
    return NX_CORRUPT_BKPT("collection '%s': stored document is not BSON (%zu bytes)", coll, bn);
  return NX_OK;
}

int eng_id_key(nx_buf *out, const bson_value_t *id) {
  int rc = keyenc_key(out, id);
  if (rc != NX_OK) return rc;
  if (out->len > ST_MAX_KEY)
    return nx_err(NX_LIMIT, "_id is too long: its key takes %zu bytes, the limit is %u", out->len, ST_MAX_KEY);
  return NX_OK;
}

void eng_id_str(const bson_value_t *id, char *buf, size_t cap) {
  nx_buf b;
  nx_buf_init(&b, 0);
  if (cap == 0) return;
  buf[0] = '\0';
  if (doc_value_to_json(id, &b) == NX_OK && b.data) {
    size_t n = b.len;
    if (n >= cap) {
      n = cap > 4 ? cap - 4 : 0;
      memcpy(buf, b.data, n);
      memcpy(buf + n, "...", cap - n > 3 ? 4 : cap - n);
      buf[cap - 1] = '\0';
    } else {
      memcpy(buf, b.data, n);
      buf[n] = '\0';
    }
  }
  nx_buf_free(&b);
}

int eng_doc_get(nx_txn *t, eng_coll *c, st_val key, nx_buf *scratch, eng_doc *out) {
  st_val v;
  int rc = st_get(t->st, c->tree, key, &v);
  if (rc != NX_OK) return rc;
  rc = eng_doc_decode(c->name, v, scratch, out);
  if (rc != NX_OK) return rc;
  if (eng_doc_expired(&out->meta, t->now_ms)) return NX_NOTFOUND;
  return NX_OK;
}
