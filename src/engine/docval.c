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

/* LEB128 varints of the stored header (format 2); zigzag for the signed times. */
static size_t put_varint(uint8_t *p, uint64_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    p[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  p[n++] = (uint8_t)v;
  return n;
}

static bool get_varint(const uint8_t *p, size_t n, size_t *at, uint64_t *out) {
  uint64_t v = 0;
  for (unsigned shift = 0; shift < 64 && *at < n; shift += 7) {
    uint8_t b = p[(*at)++];
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *out = v;
      return true;
    }
  }
  return false;
}

static size_t vsize(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

static uint64_t zz(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }
static int64_t unzz(uint64_t v) { return (int64_t)(v >> 1) ^ -(int64_t)(v & 1); }

int eng_doc_encode(const bson_t *doc, const nx_doc_meta *meta, unsigned compression, int level,
                   nx_buf *out) {
  out->len = 0;
  uint8_t hb[ENG_DOC_HDR_MAX];
  uint8_t flags = meta->expires_ms ? ENG_F_EXPIRY : 0;
  size_t blen = doc->len, body = blen;
  int rc = nx_buf_reserve(out, ENG_DOC_HDR_MAX + blen);
  if (rc != NX_OK) return rc;
  uint8_t *zbuf = NULL;
  size_t zcap = 0;
  if (compression == ENG_COMP_ZSTD && blen > 64) {
    zcap = ZSTD_compressBound(blen);
    rc = nx_buf_reserve(out, ENG_DOC_HDR_MAX + zcap);
    if (rc != NX_OK) return rc;
    zbuf = out->data + ENG_DOC_HDR_MAX; /* compressed in place after the widest header, moved below */
    size_t z = ZSTD_compress(zbuf, zcap, bson_get_data(doc), blen, level);
    if (!ZSTD_isError(z) && z + vsize(blen) < blen) { /* a win after the length it adds */
      body = z;
      flags |= ENG_COMP_ZSTD;
    }
  } else if (compression == ENG_COMP_LZ4 && blen > 64) {
    int bound = LZ4_compressBound((int)blen);
    rc = nx_buf_reserve(out, ENG_DOC_HDR_MAX + (size_t)bound);
    if (rc != NX_OK) return rc;
    zbuf = out->data + ENG_DOC_HDR_MAX;
    int z = LZ4_compress_default((const char *)bson_get_data(doc), (char *)zbuf, (int)blen, bound);
    if (z > 0 && (size_t)z + vsize(blen) < blen) {
      body = (size_t)z;
      flags |= ENG_COMP_LZ4;
    }
  }
  size_t h = 0;
  hb[h++] = ENG_DOC_FORMAT;
  hb[h++] = flags;
  h += put_varint(hb + h, zz(meta->created_ms));
  h += put_varint(hb + h, zz((int64_t)((uint64_t)meta->updated_ms - (uint64_t)meta->created_ms)));
  h += put_varint(hb + h, meta->version);
  if (meta->expires_ms) h += put_varint(hb + h, zz(meta->expires_ms));
  if (flags & ENG_F_COMP_MASK) h += put_varint(hb + h, blen);
  uint8_t *p = out->data;
  if (flags & ENG_F_COMP_MASK) memmove(p + h, zbuf, body);
  else memcpy(p + h, bson_get_data(doc), blen);
  memcpy(p, hb, h);
  out->len = h + body;
  return NX_OK;
}

/* Format 1 (files of the first two sessions): a fixed 32-byte header (40 with an expiry). */
static int decode_v1(const char *coll, st_val v, size_t *hdr, uint32_t *blen, eng_doc *out) {
  if (v.n < ENG_DOC_HDR_V1)
    return NX_CORRUPT_BKPT("collection '%s': stored document has a bad header (%zu bytes)", coll, v.n);
  uint8_t flags = v.p[1];
  *hdr = ENG_DOC_HDR_V1 + ((flags & ENG_F_EXPIRY) ? 8u : 0u);
  *blen = nx_get32(v.p + 4);
  out->flags = flags;
  out->meta.created_ms = (int64_t)nx_get64(v.p + 8);
  out->meta.updated_ms = (int64_t)nx_get64(v.p + 16);
  out->meta.version = nx_get64(v.p + 24);
  out->meta.expires_ms = (flags & ENG_F_EXPIRY) ? (int64_t)nx_get64(v.p + 32) : 0;
  if (v.n < *hdr) return NX_CORRUPT_BKPT("collection '%s': stored document header is inconsistent", coll);
  return NX_OK;
}

int eng_doc_decode(const char *coll, st_val v, nx_buf *scratch, eng_doc *out) {
  if (v.n < 2 || (v.p[0] != ENG_DOC_FORMAT && v.p[0] != 1))
    return NX_CORRUPT_BKPT("collection '%s': stored document has a bad header (%zu bytes, format %u)", coll,
                           v.n, v.n ? v.p[0] : 0u);
  uint8_t flags = v.p[1];
  if (flags & ~0x7u) return NX_CORRUPT_BKPT("collection '%s': stored document header is inconsistent", coll);
  size_t hdr = 0;
  uint32_t blen = 0;
  if (v.p[0] == 1) {
    int rc = decode_v1(coll, v, &hdr, &blen, out);
    if (rc) return rc;
  } else {
    uint64_t c, u, ver, x = 0, bl = 0;
    size_t at = 2;
    bool ok = get_varint(v.p, v.n, &at, &c) && get_varint(v.p, v.n, &at, &u) && get_varint(v.p, v.n, &at, &ver);
    if (ok && (flags & ENG_F_EXPIRY)) ok = get_varint(v.p, v.n, &at, &x);
    if (ok && (flags & ENG_F_COMP_MASK)) ok = get_varint(v.p, v.n, &at, &bl);
    if (!ok || bl > UINT32_MAX)
      return NX_CORRUPT_BKPT("collection '%s': stored document header is inconsistent", coll);
    out->flags = flags;
    out->meta.created_ms = unzz(c);
    out->meta.updated_ms = (int64_t)((uint64_t)out->meta.created_ms + (uint64_t)unzz(u));
    out->meta.version = ver;
    out->meta.expires_ms = (flags & ENG_F_EXPIRY) ? unzz(x) : 0;
    hdr = at;
    blen = (flags & ENG_F_COMP_MASK) ? (uint32_t)bl : (uint32_t)(v.n - at);
  }
  if (blen < 5 || blen > DOC_MAX_BYTES + (1u << 20))
    return NX_CORRUPT_BKPT("collection '%s': stored document header is inconsistent", coll);
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
  if (eng_doc_expired_in(&out->meta, t)) return NX_NOTFOUND;
  return NX_OK;
}
