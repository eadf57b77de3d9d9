/*
 * test_docval.c: the stored form of a document (src/engine/docval.c, engine.h): format 2's
 * varint header round-trips every metadata combination and compression, format 1 values (the
 * fixed 32-byte header of earlier files) still decode, and damaged headers are NX_CORRUPT.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "engine.h"

static bson_t *sample(void) {
  bson_t *b = bson_new();
  BSON_APPEND_INT32(b, "_id", 7);
  BSON_APPEND_UTF8(b, "text", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
  return b;
}

static void round_trip(const nx_doc_meta *m, unsigned comp, size_t *stored) {
  bson_t *b = sample();
  nx_buf enc, scratch;
  nx_buf_init(&enc, 0);
  nx_buf_init(&scratch, 0);
  cr_assert_eq(eng_doc_encode(b, m, comp, 3, &enc), NX_OK);
  eng_doc d;
  cr_assert_eq(eng_doc_decode("c", (st_val){enc.data, enc.len}, &scratch, &d), NX_OK, "%s", nx_err_msg());
  cr_assert_eq(d.doc.len, b->len);
  cr_assert_eq(memcmp(bson_get_data(&d.doc), bson_get_data(b), b->len), 0);
  cr_assert_eq(d.meta.created_ms, m->created_ms);
  cr_assert_eq(d.meta.updated_ms, m->updated_ms);
  cr_assert_eq(d.meta.version, m->version);
  cr_assert_eq(d.meta.expires_ms, m->expires_ms);
  cr_assert_eq(d.flags & ENG_F_COMP_MASK, comp, "a 90-byte run compresses with zstd and lz4");
  *stored = enc.len;
  /* every truncation of the header is refused, never read past the value */
  for (size_t n = 0; n < enc.len - b->len && comp == ENG_COMP_NONE; n++) {
    eng_doc d2;
    cr_assert_neq(eng_doc_decode("c", (st_val){enc.data, n}, &scratch, &d2), NX_OK, "prefix of %zu bytes", n);
  }
  nx_buf_free(&enc);
  nx_buf_free(&scratch);
  bson_destroy(b);
}

Test(docval, format2_round_trips_metadata_and_compression) {
  size_t n;
  nx_doc_meta m = {0};
  m.created_ms = 1795000000000; /* 2026 */
  m.updated_ms = m.created_ms;
  m.version = 1;
  round_trip(&m, ENG_COMP_NONE, &n);
  bson_t *b = sample();
  cr_assert_leq(n, b->len + 10, "a fresh document's header takes 10 bytes (%zu)", n - b->len);
  m.updated_ms = m.created_ms + 86400000;
  m.version = 300;
  m.expires_ms = m.created_ms + 3600000;
  round_trip(&m, ENG_COMP_NONE, &n);
  round_trip(&m, ENG_COMP_ZSTD, &n);
  cr_assert_lt(n, b->len);
  round_trip(&m, ENG_COMP_LZ4, &n);
  cr_assert_lt(n, b->len);
  /* clocks before 1970 and updates stamped before the creation (a clock set back) */
  m.created_ms = -5000;
  m.updated_ms = -9000;
  m.expires_ms = 0;
  m.version = UINT64_MAX;
  round_trip(&m, ENG_COMP_NONE, &n);
  m.created_ms = INT64_MAX;
  m.updated_ms = INT64_MIN;
  round_trip(&m, ENG_COMP_NONE, &n);
  bson_destroy(b);
}

Test(docval, format1_values_still_decode) {
  bson_t *b = sample();
  uint8_t v[512];
  memset(v, 0, sizeof v);
  v[0] = 1;
  v[1] = ENG_F_EXPIRY;
  nx_put32(v + 4, b->len);
  nx_put64(v + 8, 1000);
  nx_put64(v + 16, 2000);
  nx_put64(v + 24, 3);
  nx_put64(v + 32, 4000);
  memcpy(v + 40, bson_get_data(b), b->len);
  nx_buf scratch;
  nx_buf_init(&scratch, 0);
  eng_doc d;
  cr_assert_eq(eng_doc_decode("c", (st_val){v, 40 + b->len}, &scratch, &d), NX_OK, "%s", nx_err_msg());
  cr_assert_eq(d.meta.created_ms, 1000);
  cr_assert_eq(d.meta.updated_ms, 2000);
  cr_assert_eq(d.meta.version, 3);
  cr_assert_eq(d.meta.expires_ms, 4000);
  cr_assert_eq(d.doc.len, b->len);
  cr_assert_eq(eng_doc_decode("c", (st_val){v, 30}, &scratch, &d), NX_CORRUPT);
  v[0] = 9;
  cr_assert_eq(eng_doc_decode("c", (st_val){v, 40 + b->len}, &scratch, &d), NX_CORRUPT);
  cr_assert(strstr(nx_err_msg(), "collection 'c'"), "%s", nx_err_msg());
  nx_buf_free(&scratch);
  bson_destroy(b);
}
