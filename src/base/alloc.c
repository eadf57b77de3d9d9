/*
 * alloc.c: the one allocator hook. Every allocation of NexusLite (and of libbson, through
 * bson_mem_set_vtable) goes through here, so that:
 *   1. an application can substitute its own allocator (nx_set_allocator);
 *   2. tests can measure live and peak bytes (a streaming cursor must not grow with the result);
 *   3. tests can fail the N-th allocation and check that NX_NOMEM comes back cleanly.
 * Each block carries a 16-byte header holding its size (see place() for alignment). libbson aborts on NULL, so its
 * allocations are counted but never failed on purpose (DESIGN.md section 10).
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <bson/bson.h>

#include "base.h"

#define HDR 16u

static void *(*g_malloc)(size_t) = malloc;
static void *(*g_realloc)(void *, size_t) = realloc;
static void (*g_free)(void *) = free;
static atomic_bool g_used;
static atomic_size_t g_current;
static atomic_size_t g_peak;
static atomic_uint_fast64_t g_count;
static atomic_uint_fast64_t g_fail_countdown;
static atomic_bool g_fired;

int nx_set_allocator(void *(*malloc_fn)(size_t), void *(*realloc_fn)(void *, size_t),
                     void (*free_fn)(void *)) {
  if (atomic_load(&g_used))
    return nx_err(NX_MISUSE, "nx_set_allocator: must be called before any other NexusLite call");
  if (malloc_fn) g_malloc = malloc_fn;
  if (realloc_fn) g_realloc = realloc_fn;
  if (free_fn) g_free = free_fn;
  return NX_OK;
}

/* One atomic add per allocation (the size change, wrapping), the peak only when it is passed:
 * these counters sit on every allocation of every thread, so they use relaxed atomics and as
 * few read-modify-writes as possible (each is a locked instruction). */
static void account(size_t add, size_t sub) {
  size_t cur = atomic_fetch_add_explicit(&g_current, add - sub, memory_order_relaxed) + add - sub;
  size_t peak = atomic_load_explicit(&g_peak, memory_order_relaxed);
  while (cur > peak && !atomic_compare_exchange_weak_explicit(&g_peak, &peak, cur, memory_order_relaxed,
                                                              memory_order_relaxed)) {
  }
}

static bool inject_failure(void) {
  uint_fast64_t c = atomic_load_explicit(&g_fail_countdown, memory_order_relaxed);
  while (c > 0) {
    if (atomic_compare_exchange_weak(&g_fail_countdown, &c, c - 1)) {
      if (c == 1) {
        atomic_store(&g_fired, true);
        return true;
      }
      return false;
    }
  }
  return false;
}

/* Block layout: [slack][size_t size][size_t offset][user bytes...]. The 16 bytes before the
 * user pointer hold the requested size and the distance back to the start of the underlying
 * block. Blocks of BIG_ALIGN bytes or more are aligned to BIG_ALIGN: libbson declares bson_t and
 * bson_iter_t with 128-byte alignment, so any struct that embeds one (a cursor, a parsed filter)
 * is at least 128 bytes long and must be 128-byte aligned, which malloc alone does not promise
 * (UBSan checks it). Smaller blocks cannot hold such a type and keep malloc's 16 bytes. */
#define BIG_ALIGN 128u

static void *place(unsigned char *raw, size_t n) {
  uintptr_t start = (uintptr_t)raw + HDR;
  uintptr_t user = start;
  if (n >= BIG_ALIGN) user = (start + (BIG_ALIGN - 1)) & ~(uintptr_t)(BIG_ALIGN - 1);
  size_t off = (size_t)(user - (uintptr_t)raw);
  unsigned char *u = raw + off;
  memcpy(u - HDR, &n, sizeof n);
  memcpy(u - HDR + sizeof n, &off, sizeof off);
  return u;
}

static size_t block_size(const void *p) {
  size_t n;
  memcpy(&n, (const unsigned char *)p - HDR, sizeof n);
  return n;
}

static unsigned char *block_base(void *p) {
  size_t off;
  memcpy(&off, (unsigned char *)p - HDR + sizeof(size_t), sizeof off);
  return (unsigned char *)p - off;
}

static size_t raw_size(size_t n) { return n + (n >= BIG_ALIGN ? BIG_ALIGN : HDR); }

static void *raw_malloc(size_t n, bool may_fail) {
  if (!atomic_load_explicit(&g_used, memory_order_relaxed)) atomic_store(&g_used, true);
  if (n > SIZE_MAX - BIG_ALIGN) return NULL;
  if (may_fail && inject_failure()) return NULL;
  unsigned char *p = g_malloc(raw_size(n));
  if (!p) return NULL;
  account(n, 0);
  atomic_fetch_add_explicit(&g_count, 1, memory_order_relaxed);
  return place(p, n);
}

static void *raw_realloc(void *old, size_t n, bool may_fail) {
  if (!old) return raw_malloc(n, may_fail);
  if (n > SIZE_MAX - BIG_ALIGN) return NULL;
  if (may_fail && inject_failure()) return NULL;
  size_t oldn = block_size(old);
  if (oldn < BIG_ALIGN && n < BIG_ALIGN) {
    /* both small: the user pointer sits HDR bytes into the block, realloc keeps that */
    unsigned char *p = g_realloc(block_base(old), raw_size(n));
    if (!p) return NULL;
    account(n, oldn);
    atomic_fetch_add_explicit(&g_count, 1, memory_order_relaxed);
    return place(p, n);
  }
  /* an aligned block may land at another offset: allocate, copy, free */
  unsigned char *p = g_malloc(raw_size(n));
  if (!p) return NULL;
  void *u = place(p, n);
  memcpy(u, old, oldn < n ? oldn : n);
  account(n, oldn);
  atomic_fetch_add_explicit(&g_count, 1, memory_order_relaxed);
  g_free(block_base(old));
  return u;
}

void *nx_malloc(size_t n) { return raw_malloc(n ? n : 1, true); }

void *nx_calloc(size_t count, size_t n) {
  if (n && count > SIZE_MAX / n) return NULL;
  void *p = nx_malloc(count * n);
  if (p) memset(p, 0, count * n);
  return p;
}

void *nx_realloc(void *p, size_t n) { return raw_realloc(p, n ? n : 1, true); }

void nx_free(void *p) {
  if (!p) return;
  atomic_fetch_sub_explicit(&g_current, block_size(p), memory_order_relaxed);
  g_free(block_base(p));
}

char *nx_strdup(const char *s) { return nx_strndup(s, strlen(s)); }

char *nx_strndup(const char *s, size_t n) {
  size_t len = strnlen(s, n);
  char *d = nx_malloc(len + 1);
  if (!d) return NULL;
  memcpy(d, s, len);
  d[len] = '\0';
  return d;
}

/* libbson's vtable: counted, never failed on purpose, abort on real exhaustion is libbson's. */
static void *bson_malloc_hook(size_t n) { return raw_malloc(n ? n : 1, false); }
static void *bson_calloc_hook(size_t count, size_t n) {
  if (n && count > SIZE_MAX / n) return NULL;
  size_t total = count * n;
  void *p = raw_malloc(total > 0 ? total : 1, false);
  if (p) memset(p, 0, count * n);
  return p;
}
static void *bson_realloc_hook(void *p, size_t n) {
  if (n == 0) {
    nx_free(p);
    return NULL;
  }
  return raw_realloc(p, n, false);
}

void nx_alloc_init(void) {
  static atomic_bool done;
  bool expected = false;
  if (!atomic_compare_exchange_strong(&done, &expected, true)) return;
  bson_mem_vtable_t vt;
  memset(&vt, 0, sizeof vt);
  vt.malloc = bson_malloc_hook;
  vt.calloc = bson_calloc_hook;
  vt.realloc = bson_realloc_hook;
  vt.free = nx_free;
  bson_mem_set_vtable(&vt);
}

/* libbson's vtable is installed when the library is loaded, before main() runs: a bson_t that an
 * application allocates before its first nx_open and frees after it would otherwise be freed by
 * another allocator than the one that allocated it. */
__attribute__((constructor)) static void nx_alloc_load(void) { nx_alloc_init(); }

void nx_alloc_get_stats(nx_alloc_stats *out) {
  out->current = atomic_load(&g_current);
  out->peak = atomic_load(&g_peak);
  out->allocations = (uint64_t)atomic_load(&g_count);
}

void nx_alloc_reset_peak(void) { atomic_store(&g_peak, atomic_load(&g_current)); }

void nx_alloc_fail_nth(uint64_t n) {
  atomic_store(&g_fired, false);
  atomic_store(&g_fail_countdown, (uint_fast64_t)n);
}

bool nx_alloc_fault_fired(void) { return atomic_load(&g_fired); }
