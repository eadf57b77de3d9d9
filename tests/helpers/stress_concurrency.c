/*
 * stress_concurrency.c: a standalone concurrency stress of the storage layer, for
 * ThreadSanitizer (`make tsan`; Criterion does not start under TSan here) and, as the ctest
 * test stress_concurrency, for the plain and ASan builds.
 *
 * Two point readers run against a writer that rewrites a seventh of the keys per commit, with
 * a 64-page cache (most reads evict), automatic checkpoints every 128 KiB of log in the
 * background checkpoint thread, and:
 *   - reader 0 begins a new txn each time and reads with st_get (lock-free leaf lookups);
 *   - reader 1 restarts one parked txn (its read hints outlive snapshots) and reads in two
 *     steps, st_locate one key ahead then st_get_located (its second hazard slot).
 * Every value must be the one of the reader's snapshot: round R rewrote key i (i % 7 == R % 7)
 * as "i:R", and a "round" key holds the last round. Exit status 0 when every read was right,
 * the thread ran checkpoints and the integrity check passes.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storage.h"

#define KEYS 3000
#define ROUNDS 150

static st_env *g_env;
static atomic_int g_stop, g_bad;
static char g_first_bad[160];

static st_val sv(const char *s) { return (st_val){(const uint8_t *)s, strlen(s)}; }

static int expected_round(int i, int R) {
  int r = R - (((R - i % 7) % 7) + 7) % 7;
  return r >= 0 ? r : -1;
}

static void bad(const char *what, int i, int R) {
  if (atomic_fetch_add(&g_bad, 1) == 0) snprintf(g_first_bad, sizeof g_first_bad, "%s: key %d, round %d (%s)", what, i, R, nx_err_msg());
}

static void *reader(void *arg) {
  bool two_step = (intptr_t)arg != 0;
  uint32_t seed = two_step ? 99u : 7u;
  st_txn *r = NULL;
  long gets = 0;
  while (!atomic_load(&g_stop)) {
    bool kept;
    if (r ? st_txn_restart(r, false, &kept) != NX_OK : st_txn_begin(g_env, false, &r) != NX_OK) {
      bad("begin", -1, -1);
      break;
    }
    st_tree t;
    if (st_tree_open(r, "t", false, &t) != NX_OK) {
      bad("tree open", -1, -1);
      st_txn_abort(r);
      r = NULL;
      break;
    }
    st_val m;
    int R = -1;
    if (st_get(r, t, sv("round"), &m) == NX_OK) {
      char b[16] = {0};
      memcpy(b, m.p, m.n < 15 ? m.n : 15);
      R = atoi(b);
    }
    int key[2];
    char kb[2][16];
    st_loc loc[2];
    seed = seed * 1103515245u + 12345u;
    key[0] = (int)((seed >> 8) % KEYS);
    snprintf(kb[0], sizeof kb[0], "%06d", key[0]);
    if (two_step && st_locate(r, t, sv(kb[0]), &loc[0]) != NX_OK) bad("locate", key[0], R);
    for (int j = 0; j < 200; j++) {
      int cur = j & 1, nxt = cur ^ 1;
      seed = seed * 1103515245u + 12345u;
      key[nxt] = (int)((seed >> 8) % KEYS);
      snprintf(kb[nxt], sizeof kb[nxt], "%06d", key[nxt]);
      st_val v;
      int rc;
      if (two_step) {
        if (st_locate(r, t, sv(kb[nxt]), &loc[nxt]) != NX_OK) bad("locate", key[nxt], R);
        rc = st_get_located(r, t, &loc[cur], sv(kb[cur]), &v);
      } else {
        rc = st_get(r, t, sv(kb[cur]), &v);
      }
      char want[32];
      snprintf(want, sizeof want, "%d:%d", key[cur], expected_round(key[cur], R));
      if (rc != NX_OK || v.n != strlen(want) || memcmp(v.p, want, v.n) != 0) bad("wrong value", key[cur], R);
      gets++;
    }
    if (two_step) {
      st_txn_abort_keep(r);
    } else {
      st_txn_abort(r);
      r = NULL;
    }
  }
  st_txn_free(r); /* parked or NULL */
  printf("reader %d: %ld gets\n", two_step ? 1 : 0, gets);
  return NULL;
}

int main(void) {
  char dir[] = "/tmp/nx_stressXXXXXX";
  if (!mkdtemp(dir)) return 2;
  char path[64];
  snprintf(path, sizeof path, "%s/s.db", dir);
  nx_open_opts o = NX_OPEN_OPTS_INIT;
  o.cache_bytes = 64 * 4096;
  o.checkpoint_bytes = 128 * 1024;
  o.checkpoint_thread = true;
  int rc = st_open(path, &o, &g_env);
  if (rc) {
    fprintf(stderr, "open: %s\n", nx_err_msg());
    return 1;
  }
  st_txn *w;
  st_tree tw;
  char k[16], v[32];
  rc = st_txn_begin(g_env, true, &w);
  if (rc == NX_OK) rc = st_tree_open(w, "t", true, &tw);
  for (int i = 0; rc == NX_OK && i < KEYS; i++) {
    snprintf(k, sizeof k, "%06d", i);
    snprintf(v, sizeof v, "%d:-1", i);
    rc = st_put(w, tw, sv(k), sv(v), 0);
  }
  if (rc == NX_OK) rc = st_put(w, tw, sv("round"), sv("-1"), 0);
  if (rc == NX_OK) rc = st_txn_commit(w);
  if (rc) {
    fprintf(stderr, "load: %s\n", nx_err_msg());
    return 1;
  }
  pthread_t th[2];
  for (intptr_t i = 0; i < 2; i++) pthread_create(&th[i], NULL, reader, (void *)i);
  for (int r = 0; rc == NX_OK && r < ROUNDS; r++) {
    rc = st_txn_begin(g_env, true, &w);
    if (rc == NX_OK) rc = st_tree_open(w, "t", false, &tw);
    for (int i = r % 7; rc == NX_OK && i < KEYS; i += 7) {
      snprintf(k, sizeof k, "%06d", i);
      snprintf(v, sizeof v, "%d:%d", i, r);
      rc = st_put(w, tw, sv(k), sv(v), 0);
    }
    snprintf(v, sizeof v, "%d", r);
    if (rc == NX_OK) rc = st_put(w, tw, sv("round"), sv(v), 0);
    if (rc == NX_OK) rc = st_txn_commit(w);
    if (rc) fprintf(stderr, "round %d: %s\n", r, nx_err_msg());
  }
  atomic_store(&g_stop, 1);
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
  nx_stats st;
  st_stats(g_env, &st);
  printf("%d commits, %llu checkpoints (%llu by the thread), %d bad reads%s%s\n", ROUNDS,
         (unsigned long long)st.checkpoints, (unsigned long long)st.checkpoints_background, atomic_load(&g_bad),
         g_bad ? ": first " : "", g_bad ? g_first_bad : "");
  int crc = st_check(g_env);
  if (crc) fprintf(stderr, "integrity check: %s\n", nx_err_msg());
  int close_rc = st_close(g_env);
  char cmd[96];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  return rc || crc || close_rc || atomic_load(&g_bad) || st.checkpoints_background == 0 ? 1 : 0;
}
