/*
 * crc32c.c: CRC-32C (Castagnoli, polynomial 0x82F63B78, as in iSCSI and ext4), used for page and
 * log-frame checksums. Uses the SSE4.2 crc32 instruction when the CPU has it (checked once at
 * run time), else a slicing-by-8 table.
 */
#include <stdatomic.h>
#include <string.h>

#include "base.h"

static uint32_t g_table[8][256];
static atomic_int g_mode; /* 0 unknown, 1 table, 2 hardware */

static void build_table(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    g_table[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; i++)
    for (int t = 1; t < 8; t++) g_table[t][i] = (g_table[t - 1][i] >> 8) ^ g_table[0][g_table[t - 1][i] & 0xff];
}

static uint32_t crc_table(uint32_t crc, const uint8_t *p, size_t n) {
  while (n >= 8) {
    uint32_t a = crc ^ nx_get32(p);
    uint32_t b = nx_get32(p + 4);
    crc = g_table[7][a & 0xff] ^ g_table[6][(a >> 8) & 0xff] ^ g_table[5][(a >> 16) & 0xff] ^
          g_table[4][a >> 24] ^ g_table[3][b & 0xff] ^ g_table[2][(b >> 8) & 0xff] ^
          g_table[1][(b >> 16) & 0xff] ^ g_table[0][b >> 24];
    p += 8;
    n -= 8;
  }
  while (n--) crc = (crc >> 8) ^ g_table[0][(crc ^ *p++) & 0xff];
  return crc;
}

#if defined(__x86_64__)
#include <nmmintrin.h>
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const uint8_t *p, size_t n) {
  uint64_t c = crc;
  while (n >= 8) {
    uint64_t v;
    memcpy(&v, p, 8);
    c = _mm_crc32_u64(c, v);
    p += 8;
    n -= 8;
  }
  uint32_t c32 = (uint32_t)c;
  while (n--) c32 = _mm_crc32_u8(c32, *p++);
  return c32;
}
#endif

uint32_t nx_crc32c(uint32_t crc, const void *data, size_t n) {
  int mode = atomic_load(&g_mode);
  if (mode == 0) {
    build_table();
#if defined(__x86_64__)
    __builtin_cpu_init();
    mode = __builtin_cpu_supports("sse4.2") ? 2 : 1;
#else
    mode = 1;
#endif
    atomic_store(&g_mode, mode);
  }
  crc = ~crc;
#if defined(__x86_64__)
  if (mode == 2) return ~crc_hw(crc, data, n);
#endif
  return ~crc_table(crc, data, n);
}
