/* clock.c: wall clock (pinnable by tests, for expiry and document times) and a monotonic clock. */
#include <stdatomic.h>
#include <time.h>

#include "base.h"

static atomic_llong g_pinned_ms;

int64_t nx_now_ms(void) {
  long long pinned = atomic_load(&g_pinned_ms);
  if (pinned) return (int64_t)pinned;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t nx_mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void nx_clock_set_ms(int64_t ms) { atomic_store(&g_pinned_ms, (long long)ms); }
