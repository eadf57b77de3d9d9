/*
 * bench_storage.c: the storage layer (st_*) against LMDB on the same generated keys and values,
 * in one run (speedtest-style). Figures, each for both engines and their ratio:
 *   1. random inserts in durable transactions of 1000 entries (entries/s), including the final
 *      checkpoint the writes cause (NexusLite writes every page twice: log, then main file);
 *   2. single-entry durable commits: p50 and p99 latency, commits/s;
 *   3. random point reads, 1 and 2 threads (lookups/s);
 *   4. full scan (entries/s), ten passes.
 * The engines run side by side in one process: each phase is cut into ten rounds that alternate
 * between them (see ROUNDS), and a figure is the engine's work over the sum of its rounds' time.
 * Durability is FULL for NexusLite and the default (sync at commit) for LMDB.
 *
 * Usage: bench_storage [-n ENTRIES] [-c COMMITS] [-r READS] [-d DIR]
 * Not run by `make test` (it only builds); `make bench` runs it.
 */
#include <errno.h>
#include <inttypes.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench_clock.h"
#include "storage.h"

#define KEY_LEN 16
#define VAL_LEN 100

static uint32_t g_n = 200000;      /* entries loaded */
static uint32_t g_commits = 1000;  /* single-entry commits */
static uint32_t g_reads = 1000000; /* point reads per thread */
static char g_dir[512];

static uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}

/* Key i: 16 pseudo-random bytes (random insertion order across the key space). */
static void make_key(uint32_t i, uint8_t *k) {
  uint64_t a = mix(i * 2 + 1), b = mix(a + i);
  memcpy(k, &a, 8);
  memcpy(k + 8, &b, 8);
}

static void make_val(uint32_t i, uint8_t *v) {
  uint64_t x = mix(i ^ 0x5555);
  for (int j = 0; j < VAL_LEN; j++) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    v[j] = (uint8_t)(x >> 56);
  }
}

_Noreturn static void die(const char *what, int rc, const char *msg) {
  fprintf(stderr, "bench_storage: %s failed: %d %s\n", what, rc, msg ? msg : "");
  exit(1);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

typedef struct figures {
  double insert_rate;   /* entries/s in txns of 1000 */
  double commit_p50;    /* seconds */
  double commit_p99;
  double commit_rate;   /* commits/s */
  double read1_rate;    /* lookups/s, one thread */
  double read2_rate;    /* lookups/s, two threads together */
  double scan_rate;     /* entries/s */
} figures;

static uint32_t *g_order; /* read order: a permutation of [0, n) */

/* The two engines run side by side: every phase is cut into ROUNDS rounds, and the rounds
 * alternate between the engines (the first engine alternates too). A slow minute on a shared
 * machine then falls on both engines' rounds instead of on one engine's whole phase. */
#define ROUNDS 10

/* ---------------------------------------------------------------- NexusLite */
static st_env *g_env;

typedef struct nx_reader {
  uint32_t start, count;
  uint64_t found;
} nx_reader;

static void *nx_read_thread(void *arg) {
  nx_reader *r = arg;
  st_txn *t;
  st_tree tr;
  if (st_txn_begin(g_env, false, &t) || st_tree_open(t, "bench", false, &tr)) die("nx read begin", 1, nx_err_msg());
  uint8_t k[KEY_LEN];
  uint64_t found = 0; /* a local count: the two readers' structs share a cache line */
  for (uint32_t i = 0; i < r->count; i++) {
    make_key(g_order[(r->start + i) % g_n], k);
    st_val v;
    if (st_get(t, tr, (st_val){k, KEY_LEN}, &v) == NX_OK && v.n == VAL_LEN) found++;
  }
  r->found = found;
  st_txn_abort(t);
  return NULL;
}

/* count reads per thread from position start of the read order; returns seconds */
static double nx_reads(int threads, uint32_t start, uint32_t count) {
  pthread_t th[2];
  nx_reader rd[2] = {{start, count, 0}, {start + g_n / 2, count, 0}};
  double t0 = now_s();
  for (int i = 0; i < threads; i++) pthread_create(&th[i], NULL, nx_read_thread, &rd[i]);
  for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
  double dt = now_s() - t0;
  for (int i = 0; i < threads; i++)
    if (rd[i].found != count) die("nx reads (missing keys)", (int)rd[i].found, "");
  return dt;
}

static void nx_open_env(void) {
  char path[600];
  snprintf(path, sizeof path, "%s/nx.db", g_dir);
  nx_open_opts o = NX_OPEN_OPTS_INIT;
  o.durability = NX_DURABILITY_FULL;
  int rc = st_open(path, &o, &g_env);
  if (rc) die("st_open", rc, nx_err_msg());
}

/* Inserts entries [from, to) in txns of 1000; the last round ends with a full checkpoint, so
 * the timed regions include the checkpoint work the writes cause. Returns seconds. */
static double nx_insert(uint32_t from, uint32_t to, bool last) {
  uint8_t k[KEY_LEN], v[VAL_LEN];
  st_txn *t;
  st_tree tr;
  int rc;
  double t0 = now_s();
  for (uint32_t i = from; i < to;) {
    if ((rc = st_txn_begin(g_env, true, &t)) || (rc = st_tree_open(t, "bench", true, &tr))) die("nx begin", rc, nx_err_msg());
    for (uint32_t j = 0; j < 1000 && i < to; j++, i++) {
      make_key(i, k);
      make_val(i, v);
      if ((rc = st_put(t, tr, (st_val){k, KEY_LEN}, (st_val){v, VAL_LEN}, 0))) die("st_put", rc, nx_err_msg());
    }
    if ((rc = st_txn_commit(t))) die("nx commit", rc, nx_err_msg());
  }
  if (last && (rc = st_checkpoint(g_env, NX_CHECKPOINT_FULL))) die("nx checkpoint", rc, nx_err_msg());
  return now_s() - t0;
}

/* Single-entry commits number [from, to) (entry g_n + c); lat[c] gets each latency. */
static double nx_commits(uint32_t from, uint32_t to, bool last, double *lat) {
  uint8_t k[KEY_LEN], v[VAL_LEN];
  st_txn *t;
  st_tree tr;
  int rc;
  double t0 = now_s();
  for (uint32_t c = from; c < to; c++) {
    double s = now_s();
    uint32_t i = g_n + c;
    make_key(i, k);
    make_val(i, v);
    if ((rc = st_txn_begin(g_env, true, &t)) || (rc = st_tree_open(t, "bench", false, &tr)) ||
        (rc = st_put(t, tr, (st_val){k, KEY_LEN}, (st_val){v, VAL_LEN}, 0)) || (rc = st_txn_commit(t)))
      die("nx single commit", rc, nx_err_msg());
    lat[c] = now_s() - s;
  }
  if (last && (rc = st_checkpoint(g_env, NX_CHECKPOINT_FULL))) die("nx checkpoint", rc, nx_err_msg());
  return now_s() - t0;
}

/* One pass over the whole tree; returns seconds, adds the entries to *seen. */
static double nx_scan(uint64_t *seen) {
  st_txn *t;
  st_tree tr;
  st_cursor *c;
  int rc;
  if ((rc = st_txn_begin(g_env, false, &t)) || (rc = st_tree_open(t, "bench", false, &tr))) die("nx begin", rc, nx_err_msg());
  if ((rc = st_cursor_open(t, tr, &c))) die("nx cursor", rc, nx_err_msg());
  uint64_t n = 0, bytes = 0;
  double t0 = now_s();
  for (rc = st_cursor_first(c); rc == NX_OK; rc = st_cursor_next(c)) {
    st_val kk, vv;
    st_cursor_get(c, &kk, &vv);
    bytes += vv.n + kk.n;
    n++;
  }
  double dt = now_s() - t0;
  if (n != g_n + g_commits || bytes != n * (KEY_LEN + VAL_LEN)) die("nx scan count", (int)n, "");
  *seen += n;
  st_cursor_close(c);
  st_txn_abort(t);
  return dt;
}

static void nx_close_env(void) {
  nx_stats s;
  st_stats(g_env, &s);
  printf("nexuslite: %" PRIu64 " pages of %u bytes, %" PRIu64 " commits, %" PRIu64 " checkpoints, %" PRIu64 " log fsyncs\n",
         s.pages_total, s.page_size, s.commits, s.checkpoints, s.fsyncs);
  st_close(g_env);
}

/* ---------------------------------------------------------------- LMDB */
static MDB_env *g_menv;
static MDB_dbi g_dbi;

typedef struct lm_reader {
  uint32_t start, count;
  uint64_t found;
} lm_reader;

static void *lm_read_thread(void *arg) {
  lm_reader *r = arg;
  MDB_txn *t;
  int rc = mdb_txn_begin(g_menv, NULL, MDB_RDONLY, &t);
  if (rc) die("mdb read begin", rc, mdb_strerror(rc));
  uint8_t k[KEY_LEN];
  uint64_t found = 0;
  for (uint32_t i = 0; i < r->count; i++) {
    make_key(g_order[(r->start + i) % g_n], k);
    MDB_val kk = {KEY_LEN, k}, vv;
    if (mdb_get(t, g_dbi, &kk, &vv) == 0 && vv.mv_size == VAL_LEN) found++;
  }
  r->found = found;
  mdb_txn_abort(t);
  return NULL;
}

static double lm_reads(int threads, uint32_t start, uint32_t count) {
  pthread_t th[2];
  lm_reader rd[2] = {{start, count, 0}, {start + g_n / 2, count, 0}};
  double t0 = now_s();
  for (int i = 0; i < threads; i++) pthread_create(&th[i], NULL, lm_read_thread, &rd[i]);
  for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
  double dt = now_s() - t0;
  for (int i = 0; i < threads; i++)
    if (rd[i].found != count) die("lmdb reads (missing keys)", (int)rd[i].found, "");
  return dt;
}

static void lm_open_env(void) {
  char path[600];
  snprintf(path, sizeof path, "%s/lmdb", g_dir);
  if (mkdir(path, 0700) && errno != EEXIST) die("mkdir", errno, path);
  int rc = mdb_env_create(&g_menv);
  if (!rc) rc = mdb_env_set_mapsize(g_menv, (size_t)4 << 30);
  if (!rc) rc = mdb_env_set_maxreaders(g_menv, 16);
  if (!rc) rc = mdb_env_open(g_menv, path, 0, 0600);
  if (rc) die("mdb_env_open", rc, mdb_strerror(rc));
  MDB_txn *t;
  if ((rc = mdb_txn_begin(g_menv, NULL, 0, &t)) || (rc = mdb_dbi_open(t, NULL, 0, &g_dbi)) || (rc = mdb_txn_commit(t)))
    die("mdb dbi", rc, mdb_strerror(rc));
}

static double lm_insert(uint32_t from, uint32_t to, bool last) {
  (void)last; /* LMDB has no checkpoint: its pages are written in place at commit */
  uint8_t k[KEY_LEN], v[VAL_LEN];
  MDB_txn *t;
  int rc;
  double t0 = now_s();
  for (uint32_t i = from; i < to;) {
    if ((rc = mdb_txn_begin(g_menv, NULL, 0, &t))) die("mdb begin", rc, mdb_strerror(rc));
    for (uint32_t j = 0; j < 1000 && i < to; j++, i++) {
      make_key(i, k);
      make_val(i, v);
      MDB_val kk = {KEY_LEN, k}, vv = {VAL_LEN, v};
      if ((rc = mdb_put(t, g_dbi, &kk, &vv, 0))) die("mdb_put", rc, mdb_strerror(rc));
    }
    if ((rc = mdb_txn_commit(t))) die("mdb commit", rc, mdb_strerror(rc));
  }
  return now_s() - t0;
}

static double lm_commits(uint32_t from, uint32_t to, bool last, double *lat) {
  (void)last;
  uint8_t k[KEY_LEN], v[VAL_LEN];
  MDB_txn *t;
  int rc;
  double t0 = now_s();
  for (uint32_t c = from; c < to; c++) {
    double s = now_s();
    uint32_t i = g_n + c;
    make_key(i, k);
    make_val(i, v);
    MDB_val kk = {KEY_LEN, k}, vv = {VAL_LEN, v};
    if ((rc = mdb_txn_begin(g_menv, NULL, 0, &t)) || (rc = mdb_put(t, g_dbi, &kk, &vv, 0)) || (rc = mdb_txn_commit(t)))
      die("mdb single commit", rc, mdb_strerror(rc));
    lat[c] = now_s() - s;
  }
  return now_s() - t0;
}

static double lm_scan(uint64_t *seen) {
  MDB_txn *t;
  MDB_cursor *c;
  int rc;
  if ((rc = mdb_txn_begin(g_menv, NULL, MDB_RDONLY, &t))) die("mdb begin", rc, mdb_strerror(rc));
  if ((rc = mdb_cursor_open(t, g_dbi, &c))) die("mdb cursor", rc, mdb_strerror(rc));
  uint64_t n = 0, bytes = 0;
  double t0 = now_s();
  MDB_val kk, vv;
  for (rc = mdb_cursor_get(c, &kk, &vv, MDB_FIRST); rc == 0; rc = mdb_cursor_get(c, &kk, &vv, MDB_NEXT)) {
    bytes += vv.mv_size + kk.mv_size;
    n++;
  }
  double dt = now_s() - t0;
  if (n != g_n + g_commits || bytes != n * (KEY_LEN + VAL_LEN)) die("lmdb scan count", (int)n, "");
  *seen += n;
  mdb_cursor_close(c);
  mdb_txn_abort(t);
  return dt;
}

static void lm_close_env(void) { mdb_env_close(g_menv); }

/* ---------------------------------------------------------------- both, round by round */
typedef struct engine {
  double (*insert)(uint32_t from, uint32_t to, bool last);
  double (*commits)(uint32_t from, uint32_t to, bool last, double *lat);
  double (*reads)(int threads, uint32_t start, uint32_t count);
  double (*scan)(uint64_t *seen);
} engine;

static const engine g_eng[2] = {{nx_insert, nx_commits, nx_reads, nx_scan},
                                {lm_insert, lm_commits, lm_reads, lm_scan}};

/* Round r of a phase runs engine (r + e) % 2 e-th: each engine goes first in half the rounds. */
static int order(int r, int e) { return (r + e) % 2; }

/* Part r of [0, n) cut into ROUNDS parts, each a multiple of unit (the last takes the rest). */
static void part(uint32_t n, uint32_t unit, int r, uint32_t *from, uint32_t *to) {
  uint32_t per = (n / ROUNDS + unit - 1) / unit * unit;
  *from = per * (uint32_t)r < n ? per * (uint32_t)r : n;
  *to = r == ROUNDS - 1 ? n : (per * (uint32_t)(r + 1) < n ? per * (uint32_t)(r + 1) : n);
}

static void run_both(figures f[2]) {
  double dt[2] = {0, 0};
  /* 1. inserts in txns of 1000 */
  for (int r = 0; r < ROUNDS; r++)
    for (int e = 0; e < 2; e++) {
      int w = order(r, e);
      uint32_t from, to;
      part(g_n, 1000, r, &from, &to);
      dt[w] += g_eng[w].insert(from, to, r == ROUNDS - 1);
    }
  for (int w = 0; w < 2; w++) f[w].insert_rate = g_n / dt[w];
  /* 2. single-entry commits */
  double *lat[2] = {malloc(sizeof(double) * g_commits), malloc(sizeof(double) * g_commits)};
  dt[0] = dt[1] = 0;
  for (int r = 0; r < ROUNDS; r++)
    for (int e = 0; e < 2; e++) {
      int w = order(r, e);
      uint32_t from, to;
      part(g_commits, 1, r, &from, &to);
      dt[w] += g_eng[w].commits(from, to, r == ROUNDS - 1, lat[w]);
    }
  for (int w = 0; w < 2; w++) {
    f[w].commit_rate = g_commits / dt[w];
    qsort(lat[w], g_commits, sizeof *lat[w], cmp_double);
    f[w].commit_p50 = lat[w][g_commits / 2];
    f[w].commit_p99 = lat[w][(size_t)g_commits * 99 / 100];
    free(lat[w]);
  }
  /* 3. point reads (warm the cache once first, as LMDB's mmap is warm) */
  for (int w = 0; w < 2; w++) g_eng[w].reads(1, 0, g_reads);
  for (int threads = 1; threads <= 2; threads++) {
    dt[0] = dt[1] = 0;
    for (int r = 0; r < ROUNDS; r++)
      for (int e = 0; e < 2; e++) {
        int w = order(r, e);
        uint32_t from, to;
        part(g_reads, 1, r, &from, &to);
        dt[w] += g_eng[w].reads(threads, from, to - from);
      }
    for (int w = 0; w < 2; w++) {
      double rate = (double)g_reads * threads / dt[w];
      if (threads == 1) f[w].read1_rate = rate;
      else f[w].read2_rate = rate;
    }
  }
  /* 4. full scan: ROUNDS passes each */
  uint64_t seen[2] = {0, 0};
  dt[0] = dt[1] = 0;
  for (int r = 0; r < ROUNDS; r++)
    for (int e = 0; e < 2; e++) {
      int w = order(r, e);
      dt[w] += g_eng[w].scan(&seen[w]);
    }
  for (int w = 0; w < 2; w++) f[w].scan_rate = (double)seen[w] / dt[w];
}

static void row(const char *name, double nx, double lm, const char *unit, bool lower_better, double target) {
  double ratio = lower_better ? lm / nx : nx / lm;
  printf("%-34s %14.1f %14.1f %-10s %6.2fx", name, nx, lm, unit, ratio);
  if (target > 0) printf("  (target >= %.1fx: %s)", target, ratio >= target ? "met" : "NOT met");
  printf("\n");
}

int main(int argc, char **argv) {
  const char *dir = NULL;
  int opt;
  while ((opt = getopt(argc, argv, "n:c:r:d:")) != -1) {
    switch (opt) {
    case 'n': g_n = (uint32_t)strtoul(optarg, NULL, 10); break;
    case 'c': g_commits = (uint32_t)strtoul(optarg, NULL, 10); break;
    case 'r': g_reads = (uint32_t)strtoul(optarg, NULL, 10); break;
    case 'd': dir = optarg; break;
    default:
      fprintf(stderr, "usage: %s [-n entries] [-c commits] [-r reads] [-d dir]\n", argv[0]);
      return 2;
    }
  }
  if (g_n < 1000 || g_commits < 100 || g_reads < 1000) {
    fprintf(stderr, "bench_storage: need -n >= 1000, -c >= 100, -r >= 1000\n");
    return 2;
  }
  if (dir) {
    /* a given directory may hold an earlier run's files: both engines start empty */
    snprintf(g_dir, sizeof g_dir, "%s", dir);
    static const char *const old[] = {"nx.db", "nx.db.wasp", "nx.db.lock", "lmdb/data.mdb", "lmdb/lock.mdb"};
    for (size_t i = 0; i < sizeof old / sizeof *old; i++) {
      char p[700];
      snprintf(p, sizeof p, "%s/%s", g_dir, old[i]);
      (void)unlink(p);
    }
  } else {
    snprintf(g_dir, sizeof g_dir, "/tmp/nx_bench_XXXXXX");
    if (!mkdtemp(g_dir)) die("mkdtemp", errno, g_dir);
  }
  g_order = malloc(sizeof(uint32_t) * g_n);
  for (uint32_t i = 0; i < g_n; i++) g_order[i] = i;
  for (uint32_t i = g_n - 1; i > 0; i--) {
    uint32_t j = (uint32_t)(mix(i) % (i + 1));
    uint32_t x = g_order[i];
    g_order[i] = g_order[j];
    g_order[j] = x;
  }
  printf("bench_storage: %u entries (%d-byte keys, %d-byte values), %u single commits, %u reads per thread, in %s\n",
         g_n, KEY_LEN, VAL_LEN, g_commits, g_reads, g_dir);
  figures f[2];
  memset(f, 0, sizeof f);
  nx_open_env();
  lm_open_env();
  run_both(f);
  nx_close_env();
  lm_close_env();
  const figures nx = f[0], lm = f[1];
  printf("%-34s %14s %14s %-10s %7s\n", "figure", "nexuslite", "lmdb", "unit", "ratio");
  row("inserts, durable txns of 1000", nx.insert_rate, lm.insert_rate, "entries/s", false, 1.0);
  row("single-entry durable commits", nx.commit_rate, lm.commit_rate, "commits/s", false, 2.0);
  row("  commit latency p50", nx.commit_p50 * 1e6, lm.commit_p50 * 1e6, "us", true, 0);
  row("  commit latency p99", nx.commit_p99 * 1e6, lm.commit_p99 * 1e6, "us", true, 0);
  row("random point reads, 1 thread", nx.read1_rate, lm.read1_rate, "reads/s", false, 0.7);
  row("random point reads, 2 threads", nx.read2_rate, lm.read2_rate, "reads/s", false, 0.7);
  row("full scan", nx.scan_rate, lm.scan_rate, "entries/s", false, 0.7);
  free(g_order);
  if (!dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "bench_storage: could not remove %s\n", g_dir);
  }
  return 0;
}
