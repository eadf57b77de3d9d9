/*
 * base.h: the bottom layer. Status codes and messages, the allocator hook, growable buffers,
 * CRC32C and the clock. Everything above may call it; it calls only libc and libbson.
 */
#ifndef NX_BASE_H
#define NX_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nexuslite.h"

#if defined(__GNUC__)
#define NX_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define NX_UNUSED __attribute__((unused))
#else
#define NX_PRINTF(a, b)
#define NX_UNUSED
#endif

/* ---- Errors: a code plus a per-thread message that says what and where ---- */
/** Records `fmt` as this thread's last error message and returns rc (for `return nx_err(...)`). */
int nx_err(int rc, const char *fmt, ...) NX_PRINTF(2, 3);
/** Prefixes the current message with more context ("opening app.db: " + old). Returns rc. */
int nx_err_prefix(int rc, const char *fmt, ...) NX_PRINTF(2, 3);
/** This thread's last error message ("" when none). */
const char *nx_err_msg(void);
/** Clears this thread's message. */
void nx_err_clear(void);
/** NX_CORRUPT with the source line recorded, for checks on bytes read from disk (never asserts). */
#define NX_CORRUPT_BKPT(...) nx_err_corrupt(__FILE__, __LINE__, __VA_ARGS__)
int nx_err_corrupt(const char *file, int line, const char *fmt, ...) NX_PRINTF(3, 4);

/* ---- Memory: every allocation goes through these (and libbson's, via its vtable) ---- */
void *nx_malloc(size_t n);
void *nx_calloc(size_t count, size_t n);
void *nx_realloc(void *p, size_t n);
/* nx_free is public (nexuslite.h). */
char *nx_strdup(const char *s);
char *nx_strndup(const char *s, size_t n);
/** Installs libbson's vtable onto our allocator (idempotent; called by nx_open). */
void nx_alloc_init(void);

/** Allocation accounting, for tests and nx_stats. */
typedef struct nx_alloc_stats {
  size_t current;       /* bytes live now */
  size_t peak;          /* high-water mark since the last reset */
  uint64_t allocations; /* successful allocations since start */
} nx_alloc_stats;
void nx_alloc_get_stats(nx_alloc_stats *out);
void nx_alloc_reset_peak(void);
/** Fault injection: the n-th allocation from now (1 = the next one) fails; 0 turns it off.
 *  Allocations made for libbson are never failed (libbson aborts on NULL). */
void nx_alloc_fail_nth(uint64_t n);
/** True once the injected failure has fired. */
bool nx_alloc_fault_fired(void);

/* ---- Growable byte buffer with a hard cap ---- */
typedef struct nx_buf {
  uint8_t *data; /* bytes, owned */
  size_t len;    /* bytes in use */
  size_t cap;    /* bytes allocated */
  size_t max;    /* hard cap on len (0 = 1 GiB) */
} nx_buf;
void nx_buf_init(nx_buf *b, size_t max);
int nx_buf_reserve(nx_buf *b, size_t extra);
int nx_buf_append(nx_buf *b, const void *p, size_t n);
int nx_buf_printf(nx_buf *b, const char *fmt, ...) NX_PRINTF(2, 3);
void nx_buf_free(nx_buf *b);

/* ---- CRC32C (Castagnoli): SSE4.2 instruction when present, table otherwise ---- */
uint32_t nx_crc32c(uint32_t crc, const void *p, size_t n);

/* ---- Clock: injectable for tests ---- */
/** Milliseconds since the Unix epoch (wall clock; tests may pin it). */
int64_t nx_now_ms(void);
/** Monotonic nanoseconds, for durations. */
uint64_t nx_mono_ns(void);
/** Tests: pin the wall clock to ms (0 = real clock again). */
void nx_clock_set_ms(int64_t ms);

/* ---- Little-endian load/store of on-disk integers ---- */
static inline uint16_t nx_get16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t nx_get32(const uint8_t *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t nx_get64(const uint8_t *p) {
  return (uint64_t)nx_get32(p) | ((uint64_t)nx_get32(p + 4) << 32);
}
static inline void nx_put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void nx_put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static inline void nx_put64(uint8_t *p, uint64_t v) { nx_put32(p, (uint32_t)v); nx_put32(p + 4, (uint32_t)(v >> 32)); }
/* Big-endian 8 bytes (order-preserving key images, whose words compare in memcmp order); gcc
 * and clang compile it to one load and a byte swap. */
static inline uint64_t nx_get64be(const uint8_t *p) {
  return ((uint64_t)p[0] << 56) | ((uint64_t)p[1] << 48) | ((uint64_t)p[2] << 40) | ((uint64_t)p[3] << 32) |
         ((uint64_t)p[4] << 24) | ((uint64_t)p[5] << 16) | ((uint64_t)p[6] << 8) | (uint64_t)p[7];
}

#endif
