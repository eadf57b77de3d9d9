/*
 * alloc.c: the one allocator hook. Every allocation of NexusLite (and of libbson, through
 * bson_mem_set_vtable) goes through here, so that:
 *   1. an application can substitute its own allocator (nx_set_allocator);
 *   2. tests can measure live and peak bytes (a streaming cursor must not grow with the result);
 *   3. tests can fail the N-th allocation and check that NX_NOMEM comes back cleanly.
 * Each block carries a 16-byte header holding its size. libbson aborts on NULL, so its
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

static void account(size_t add, size_t sub) {
  size_t cur = atomic_fetch_add(&g_current, add) + add;
  atomic_fetch_sub(&g_current, sub);
  cur -= sub;
  size_t peak = atomic_load(&g_peak);
  while (cur > peak && !atomic_compare_exchange_weak(&g_peak, &peak, cur)) {
  }
}

static bool inject_failure(void) {
  uint_fast64_t c = atomic_load(&g_fail_countdown);
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

static void *raw_malloc(size_t n, bool may_fail) {
  atomic_store(&g_used, true);
  if (n > SIZE_MAX - HDR) return NULL;
  if (may_fail && inject_failure()) return NULL;
  unsigned char *p = g_malloc(n + HDR);
  if (!p) return NULL;
  memcpy(p, &n, sizeof n);
  account(n, 0);
  atomic_fetch_add(&g_count, 1);
  return p + HDR;
}

static void *raw_realloc(void *old, size_t n, bool may_fail) {
  if (!old) return raw_malloc(n, may_fail);
  if (n > SIZE_MAX - HDR) return NULL;
  if (may_fail && inject_failure()) return NULL;
  unsigned char *base = (unsigned char *)old - HDR;
  size_t oldn;
  memcpy(&oldn, base, sizeof oldn);
  unsigned char *p = g_realloc(base, n + HDR);
  if (!p) return NULL;
  memcpy(p, &n, sizeof n);
  account(n, oldn);
  atomic_fetch_add(&g_count, 1);
  return p + HDR;
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
  unsigned char *base = (unsigned char *)p - HDR;
  size_t n;
  memcpy(&n, base, sizeof n);
  atomic_fetch_sub(&g_current, n);
  g_free(base);
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
