/* bench_clock.h: the clocks the benchmark programs time with (each program includes it). */
#ifndef NX_BENCH_CLOCK_H
#define NX_BENCH_CLOCK_H

#include <time.h>

/* Seconds on clock c (CLOCK_MONOTONIC for wall time, a CPU-time clock for CPU time). */
static inline double bench_seconds(clockid_t c) {
  struct timespec ts;
  clock_gettime(c, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Wall-clock seconds. */
static inline double now_s(void) { return bench_seconds(CLOCK_MONOTONIC); }

#endif
