/* test_base.c: status codes, messages, the allocator hook, buffers, CRC32C. */
#include <criterion/criterion.h>
#include <string.h>

#include "base.h"
#include <bson/bson.h>

Test(base, strerror_names_every_code) {
  cr_assert_str_eq(nx_strerror(NX_OK), "not an error");
  cr_assert_str_eq(nx_code_name(NX_CORRUPT), "NX_CORRUPT");
  cr_assert_str_eq(nx_code_name(12345), "NX_UNKNOWN");
}

Test(base, err_keeps_message_and_prefix) {
  int rc = nx_err(NX_NOTFOUND, "collection '%s' not found", "users");
  cr_assert_eq(rc, NX_NOTFOUND);
  nx_err_prefix(rc, "find: ");
  cr_assert_str_eq(nx_err_msg(), "find: collection 'users' not found");
}

Test(base, crc32c_known_vector) {
  /* RFC 3720 B.4: 32 bytes of zeros -> 0x8A9136AA; "123456789" -> 0xE3069283 */
  uint8_t z[32] = {0};
  cr_assert_eq(nx_crc32c(0, z, sizeof z), 0x8A9136AAu);
  cr_assert_eq(nx_crc32c(0, "123456789", 9), 0xE3069283u);
  /* incremental equals one shot */
  uint32_t c = nx_crc32c(0, "1234", 4);
  cr_assert_eq(nx_crc32c(c, "56789", 5), 0xE3069283u);
}

Test(base, alloc_counts_and_fails_nth) {
  nx_alloc_stats s0, s1;
  nx_alloc_get_stats(&s0);
  void *p = nx_malloc(1000);
  cr_assert_not_null(p);
  nx_alloc_get_stats(&s1);
  cr_assert_geq(s1.current, s0.current + 1000);
  nx_free(p);
  nx_alloc_fail_nth(2);
  void *a = nx_malloc(10);
  void *b = nx_malloc(10);
  cr_assert_not_null(a);
  cr_assert_null(b);
  cr_assert(nx_alloc_fault_fired());
  nx_free(a);
  nx_alloc_fail_nth(0);
}

Test(base, buf_appends_and_caps) {
  nx_buf b;
  nx_buf_init(&b, 16);
  cr_assert_eq(nx_buf_append(&b, "hello", 5), NX_OK);
  cr_assert_eq(nx_buf_printf(&b, " %d", 42), NX_OK);
  cr_assert_str_eq((char *)b.data, "hello 42");
  cr_assert_eq(nx_buf_append(&b, "0123456789", 10), NX_LIMIT);
  nx_buf_free(&b);
}

Test(base, alloc_aligns_blocks_that_can_hold_bson_t) {
  /* libbson declares bson_t 128-byte aligned: blocks big enough to hold one must be aligned. */
  for (size_t n = 100; n < 5000; n += 37) {
    void *p = nx_malloc(n);
    cr_assert_not_null(p);
    if (n >= 128) cr_assert_eq((uintptr_t)p % 128, 0, "block of %zu bytes at %p", n, p);
    cr_assert_eq((uintptr_t)p % 16, 0);
    memset(p, 0xab, n);
    p = nx_realloc(p, n * 2);
    cr_assert_not_null(p);
    cr_assert_eq((uintptr_t)p % 128, 0);
    cr_assert_eq(((unsigned char *)p)[n - 1], 0xab);
    p = nx_realloc(p, 20);
    cr_assert_eq(((unsigned char *)p)[19], 0xab);
    nx_free(p);
  }
  nx_alloc_init(); /* libbson allocates through nx_malloc from here on */
  bson_t *b = bson_new();
  cr_assert_eq((uintptr_t)b % 128, 0);
  bson_destroy(b);
}

Test(base, bson_made_before_first_open_is_freed_after_it) {
  /* libbson's allocator is installed at load time, so this bson_t (allocated before any
   * nx_open) is freed by the allocator that made it. */
  bson_t *b = bson_new();
  for (int i = 0; i < 100; i++) BSON_APPEND_UTF8(b, "k", "a value long enough to make libbson grow its buffer");
  nx_db *db = NULL;
  cr_assert_eq(nx_open(":memory:", NULL, &db), NX_OK, "%s", nx_errmsg(NULL));
  nx_close(db);
  bson_destroy(b);
}
