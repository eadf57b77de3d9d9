/*
 * bench_storage.c: the storage layer (st_*) against LMDB on the same generated keys and values,
 * in one run (speedtest-style). Figures, each for both engines and their ratio:
 *   1. random inserts in durable transactions of 1000 entries (entries/s), including the final
 *      checkpoint the writes cause (NexusLite writes every page twice: log, then main file);
 *   2. single-entry durable commits: p50 and p99 latency, commits/s;
 *   3. random point reads, 1 and 2 threads (lookups/s);
 *   4. full scan (entries/s).
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

static void die(const char *what, int rc, const char *msg) {
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

/* ---------------------------------------------------------------- NexusLite */
static st_env *g_env;

typedef struct nx_reader {
  uint32_t start;
  uint64_t found;
} nx_reader;

static void *nx_read_thread(void *arg) {
  nx_reader *r = arg;
  st_txn *t;
  st_tree tr;
  if (st_txn_begin(g_env, false, &t) || st_tree_open(t, "bench", false, &tr)) die("nx read begin", 1, nx_err_msg());
  uint8_t k[KEY_LEN];
  uint64_t found = 0; /* a local count: the two readers' structs share a cache line */
  for (uint32_t i = 0; i < g_reads; i++) {
    make_key(g_order[(r->start + i) % g_n], k);
    st_val v;
    if (st_get(t, tr, (st_val){k, KEY_LEN}, &v) == NX_OK && v.n == VAL_LEN) found++;
  }
  r->found = found;
  st_txn_abort(t);
  return NULL;
}

static double nx_reads(int threads) {
  pthread_t th[2];
  nx_reader rd[2] = {{0, 0}, {g_n / 2, 0}};
  double t0 = now_s();
  for (int i = 0; i < threads; i++) pthread_create(&th[i], NULL, nx_read_thread, &rd[i]);
  for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
  double dt = now_s() - t0;
  for (int i = 0; i < threads; i++)
    if (rd[i].found != g_reads) die("nx reads (missing keys)", (int)rd[i].found, "");
  return (double)g_reads * threads / dt;
}

static void run_nx(figures *f) {
  char path[600];
  snprintf(path, sizeof path, "%s/nx.db", g_dir);
  nx_open_opts o = NX_OPEN_OPTS_INIT;
  o.durability = NX_DURABILITY_FULL;
  int rc = st_open(path, &o, &g_env);
  if (rc) die("st_open", rc, nx_err_msg());
  uint8_t k[KEY_LEN], v[VAL_LEN];
  st_txn *t;
  st_tree tr;
  /* 1. inserts in txns of 1000 */
  double t0 = now_s();
  for (uint32_t i = 0; i < g_n;) {
    if ((rc = st_txn_begin(g_env, true, &t)) || (rc = st_tree_open(t, "bench", true, &tr))) die("nx begin", rc, nx_err_msg());
    for (uint32_t j = 0; j < 1000 && i < g_n; j++, i++) {
      make_key(i, k);
      make_val(i, v);
      if ((rc = st_put(t, tr, (st_val){k, KEY_LEN}, (st_val){v, VAL_LEN}, 0))) die("st_put", rc, nx_err_msg());
    }
    if ((rc = st_txn_commit(t))) die("nx commit", rc, nx_err_msg());
  }
  if ((rc = st_checkpoint(g_env, NX_CHECKPOINT_FULL))) die("nx checkpoint", rc, nx_err_msg());
  f->insert_rate = g_n / (now_s() - t0);
  /* 2. single-entry commits */
  double *lat = malloc(sizeof(double) * g_commits);
  t0 = now_s();
  for (uint32_t c = 0; c < g_commits; c++) {
    double s = now_s();
    uint32_t i = g_n + c;
    make_key(i, k);
    make_val(i, v);
    if ((rc = st_txn_begin(g_env, true, &t)) || (rc = st_tree_open(t, "bench", false, &tr)) ||
        (rc = st_put(t, tr, (st_val){k, KEY_LEN}, (st_val){v, VAL_LEN}, 0)) || (rc = st_txn_commit(t)))
      die("nx single commit", rc, nx_err_msg());
    lat[c] = now_s() - s;
  }
  if ((rc = st_checkpoint(g_env, NX_CHECKPOINT_FULL))) die("nx checkpoint", rc, nx_err_msg());
  f->commit_rate = g_commits / (now_s() - t0);
  qsort(lat, g_commits, sizeof *lat, cmp_double);
  f->commit_p50 = lat[g_commits / 2];
  f->commit_p99 = lat[(size_t)g_commits * 99 / 100];
  free(lat);
  /* 3. point reads (warm the cache once first, as LMDB's mmap is warm) */
  nx_reads(1);
  f->read1_rate = nx_reads(1);
  f->read2_rate = nx_reads(2);
  /* 4. full scan */
  if ((rc = st_txn_begin(g_env, false, &t)) || (rc = st_tree_open(t, "bench", false, &tr))) die("nx begin", rc, nx_err_msg());
  st_cursor *c;
  if ((rc = st_cursor_open(t, tr, &c))) die("nx cursor", rc, nx_err_msg());
  uint64_t seen = 0, bytes = 0;
  t0 = now_s();
  for (int pass = 0; pass < 5; pass++) {
    for (rc = st_cursor_first(c); rc == NX_OK; rc = st_cursor_next(c)) {
      st_val kk, vv;
      st_cursor_get(c, &kk, &vv);
      bytes += vv.n + kk.n;
      seen++;
    }
  }
  f->scan_rate = (double)seen / (now_s() - t0);
  if (seen != 5ull * (g_n + g_commits)) die("nx scan count", (int)seen, "");
  (void)bytes;
  st_cursor_close(c);
  st_txn_abort(t);
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
  uint32_t start;
  uint64_t found;
} lm_reader;

static void *lm_read_thread(void *arg) {
  lm_reader *r = arg;
  MDB_txn *t;
  int rc = mdb_txn_begin(g_menv, NULL, MDB_RDONLY, &t);
  if (rc) die("mdb read begin", rc, mdb_strerror(rc));
  uint8_t k[KEY_LEN];
  uint64_t found = 0;
  for (uint32_t i = 0; i < g_reads; i++) {
    make_key(g_order[(r->start + i) % g_n], k);
    MDB_val kk = {KEY_LEN, k}, vv;
    if (mdb_get(t, g_dbi, &kk, &vv) == 0 && vv.mv_size == VAL_LEN) found++;
  }
  r->found = found;
  mdb_txn_abort(t);
  return NULL;
}

static double lm_reads(int threads) {
  pthread_t th[2];
  lm_reader rd[2] = {{0, 0}, {g_n / 2, 0}};
  double t0 = now_s();
  for (int i = 0; i < threads; i++) pthread_create(&th[i], NULL, lm_read_thread, &rd[i]);
  for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
  double dt = now_s() - t0;
  for (int i = 0; i < threads; i++)
    if (rd[i].found != g_reads) die("lmdb reads (missing keys)", (int)rd[i].found, "");
  return (double)g_reads * threads / dt;
}

static void run_lmdb(figures *f) {
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
  uint8_t k[KEY_LEN], v[VAL_LEN];
  double t0 = now_s();
  for (uint32_t i = 0; i < g_n;) {
    if ((rc = mdb_txn_begin(g_menv, NULL, 0, &t))) die("mdb begin", rc, mdb_strerror(rc));
    for (uint32_t j = 0; j < 1000 && i < g_n; j++, i++) {
      make_key(i, k);
      make_val(i, v);
      MDB_val kk = {KEY_LEN, k}, vv = {VAL_LEN, v};
      if ((rc = mdb_put(t, g_dbi, &kk, &vv, 0))) die("mdb_put", rc, mdb_strerror(rc));
    }
    if ((rc = mdb_txn_commit(t))) die("mdb commit", rc, mdb_strerror(rc));
  }
  f->insert_rate = g_n / (now_s() - t0);
  double *lat = malloc(sizeof(double) * g_commits);
  t0 = now_s();
  for (uint32_t c = 0; c < g_commits; c++) {
    double s = now_s();
    uint32_t i = g_n + c;
    make_key(i, k);
    make_val(i, v);
    MDB_val kk = {KEY_LEN, k}, vv = {VAL_LEN, v};
    if ((rc = mdb_txn_begin(g_menv, NULL, 0, &t)) || (rc = mdb_put(t, g_dbi, &kk, &vv, 0)) || (rc = mdb_txn_commit(t)))
      die("mdb single commit", rc, mdb_strerror(rc));
    lat[c] = now_s() - s;
  }
  f->commit_rate = g_commits / (now_s() - t0);
  qsort(lat, g_commits, sizeof *lat, cmp_double);
  f->commit_p50 = lat[g_commits / 2];
  f->commit_p99 = lat[(size_t)g_commits * 99 / 100];
  free(lat);
  lm_reads(1);
  f->read1_rate = lm_reads(1);
  f->read2_rate = lm_reads(2);
  if ((rc = mdb_txn_begin(g_menv, NULL, MDB_RDONLY, &t))) die("mdb begin", rc, mdb_strerror(rc));
  MDB_cursor *c;
  if ((rc = mdb_cursor_open(t, g_dbi, &c))) die("mdb cursor", rc, mdb_strerror(rc));
  uint64_t seen = 0, bytes = 0;
  t0 = now_s();
  for (int pass = 0; pass < 5; pass++) {
    MDB_val kk, vv;
    for (rc = mdb_cursor_get(c, &kk, &vv, MDB_FIRST); rc == 0; rc = mdb_cursor_get(c, &kk, &vv, MDB_NEXT)) {
      bytes += vv.mv_size + kk.mv_size;
      seen++;
    }
  }
  f->scan_rate = (double)seen / (now_s() - t0);
  if (seen != 5ull * (g_n + g_commits)) die("lmdb scan count", (int)seen, "");
  (void)bytes;
  mdb_cursor_close(c);
  mdb_txn_abort(t);
  mdb_env_close(g_menv);
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
  figures nx, lm;
  memset(&nx, 0, sizeof nx);
  memset(&lm, 0, sizeof lm);
  run_nx(&nx);
  run_lmdb(&lm);
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
