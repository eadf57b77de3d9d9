/*
 * crashchild.c: the child of the kill -9 test (tests/slow_killtest.c), started with posix_spawn.
 *
 *   crashchild PATH MAX_TXNS KILL_AT SEED
 *
 * Opens PATH (recovering whatever the previous child left), then commits up to MAX_TXNS page-level
 * workload transactions (durability FULL; some spill, automatic checkpoints) and after each
 * acknowledged commit writes its counter (8 bytes, little-endian) to stdout. With KILL_AT > 0 it
 * dies by SIGKILL at that OS-layer call (counted from the start, open and recovery included);
 * else the parent kills it after some acknowledgements. Exit status 0 when it ran to the end.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../support/pager_testutil.c" /* the shared workload (helpers get no support library) */

static uint64_t parse_u64(const char *s) {
  uint64_t v = 0;
  for (; *s >= '0' && *s <= '9'; s++) v = v * 10 + (uint64_t)(*s - '0');
  return v;
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: crashchild PATH MAX_TXNS KILL_AT SEED\n");
    return 2;
  }
  const char *path = argv[1];
  uint64_t max = parse_u64(argv[2]), kill_at = parse_u64(argv[3]), seed = parse_u64(argv[4]);
  if (kill_at) os_fault_kill_at(kill_at);
  nx_open_opts o = NX_OPEN_OPTS_INIT;
  o.cache_bytes = 64 * 4096;
  o.checkpoint_bytes = 40 * 1024;
  pager *p = NULL;
  int rc = pager_open(path, &o, &p);
  if (rc) {
    fprintf(stderr, "crashchild: open: %s %s\n", nx_code_name(rc), nx_err_msg());
    return 3;
  }
  for (uint64_t i = 0; i < max; i++) {
    uint64_t c = 0;
    uint32_t extra = (seed + i) % 9 == 4 ? 40 : (uint32_t)((seed + i) % 3);
    rc = pt_step(p, extra, &c);
    if (rc) {
      fprintf(stderr, "crashchild: commit: %s %s\n", nx_code_name(rc), nx_err_msg());
      return 4;
    }
    uint8_t b[8];
    nx_put64(b, c);
    if (write(1, b, 8) != 8) return 5;
  }
  rc = pager_close(p);
  return rc ? 6 : 0;
}
