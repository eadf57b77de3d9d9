/*
 * bench_index.c: secondary index benchmark, NexusLite against SQLite (JSON1 with an expression
 * index on json_extract(body, '$.age')), on the same generated documents, in one run:
 *   1. insert cost of a secondary index: N documents into a collection without and with an index
 *      on age (NexusLite), into a table without and with the expression index (SQLite);
 *   2. equality queries (age = x) and range queries (age between x and x + 2) through the index,
 *      each result document read in full (BSON for NexusLite, the JSON text for SQLite); the
 *      queries run in ten rounds that alternate between the engines.
 * Both sides run without fsync (NexusLite durability OFF, SQLite synchronous=OFF, WAL) in
 * transactions of 1000 inserts, with the same 64 MiB page cache. Each query kind prints the wall-clock
 * ratio and the per-CPU-second ratio (thread CPU time; steadier on a shared machine).
 * Usage: bench_index [N] [dir]   (default 100000, /tmp)
 */
#define _GNU_SOURCE
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_clock.h"
#include "nexuslite.h"

/* CPU time of this thread (both engines run in it): less sensitive to a shared machine. */
static double cpu_s(void) { return bench_seconds(CLOCK_THREAD_CPUTIME_ID); }

static uint64_t rng = 42;
static uint32_t rnd(uint32_t n) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t)(rng % n);
}

static void gen(char *buf, size_t cap, int i, int age) {
  static const char *cities[] = {"Paris", "Lyon", "Berlin", "Madrid", "Rome", "Oslo", "Vienna", "Prague"};
  snprintf(buf, cap,
           "{\"_id\": %d, \"name\": \"user%07d\", \"age\": %d, \"city\": \"%s\", \"score\": %u, "
           "\"tags\": [\"t%u\", \"t%u\"], \"bio\": \"lorem ipsum dolor sit amet %u\"}",
           i, i, age, cities[i % 8], rnd(1000), rnd(20), rnd(20), rnd(100000));
}

static void die(const char *what, const char *msg) {
  fprintf(stderr, "bench_index: %s: %s\n", what, msg);
  exit(1);
}

static double nx_load(nx_db *db, const char *coll, int n, const int *ages) {
  char buf[512];
  double t0 = now_s();
  nx_txn *t = NULL;
  for (int i = 0; i < n; i++) {
    if (i % 1000 == 0) {
      if (t && nx_txn_commit(t) != NX_OK) die("commit", nx_errmsg(db));
      if (nx_txn_begin(db, NX_TXN_WRITE, &t) != NX_OK) die("begin", nx_errmsg(db));
    }
    gen(buf, sizeof buf, i, ages[i]);
    if (nx_insert_one(db, t, coll, nx_json(buf), NULL) != NX_OK) die("insert", nx_errmsg(db));
  }
  if (nx_txn_commit(t) != NX_OK) die("commit", nx_errmsg(db));
  return now_s() - t0;
}

static double sq_load(sqlite3 *s, const char *table, int n, const int *ages) {
  char buf[512];
  char sql[128];
  snprintf(sql, sizeof sql, "INSERT INTO %s(id, body) VALUES (?, ?)", table);
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s, sql, -1, &st, NULL) != SQLITE_OK) die("prepare", sqlite3_errmsg(s));
  double t0 = now_s();
  for (int i = 0; i < n; i++) {
    if (i % 1000 == 0) {
      if (i) sqlite3_exec(s, "COMMIT", NULL, NULL, NULL);
      sqlite3_exec(s, "BEGIN", NULL, NULL, NULL);
    }
    gen(buf, sizeof buf, i, ages[i]);
    sqlite3_bind_int(st, 1, i);
    sqlite3_bind_text(st, 2, buf, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) die("sqlite insert", sqlite3_errmsg(s));
    sqlite3_reset(st);
  }
  sqlite3_exec(s, "COMMIT", NULL, NULL, NULL);
  sqlite3_finalize(st);
  return now_s() - t0;
}

/* Runs q queries; lo[i]..hi[i] inclusive. Returns seconds; *docs gets the documents read. */
static double nx_queries(nx_db *db, int q, const int *lo, const int *hi, uint64_t *docs, size_t *bytes) {
  char f[128];
  double t0 = now_s();
  *docs = 0;
  *bytes = 0;
  for (int i = 0; i < q; i++) {
    if (lo[i] == hi[i]) snprintf(f, sizeof f, "{\"age\": %d}", lo[i]);
    else snprintf(f, sizeof f, "{\"age\": {\"$gte\": %d, \"$lte\": %d}}", lo[i], hi[i]);
    nx_cursor *c;
    if (nx_find(db, NULL, "idx", nx_json(f), NULL, &c) != NX_OK) die("find", nx_errmsg(db));
    const bson_t *d;
    while (nx_cursor_next(c, &d) == NX_ROW) {
      (*docs)++;
      *bytes += d->len;
    }
    nx_cursor_close(c);
  }
  return now_s() - t0;
}

static double sq_queries(sqlite3 *s, int q, const int *lo, const int *hi, uint64_t *docs, size_t *bytes) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s, "SELECT body FROM idx WHERE json_extract(body, '$.age') BETWEEN ? AND ?", -1, &st,
                         NULL) != SQLITE_OK)
    die("prepare", sqlite3_errmsg(s));
  double t0 = now_s();
  *docs = 0;
  *bytes = 0;
  for (int i = 0; i < q; i++) {
    sqlite3_bind_int(st, 1, lo[i]);
    sqlite3_bind_int(st, 2, hi[i]);
    while (sqlite3_step(st) == SQLITE_ROW) {
      (*docs)++;
      *bytes += (size_t)sqlite3_column_bytes(st, 0);
      (void)sqlite3_column_text(st, 0);
    }
    sqlite3_reset(st);
  }
  sqlite3_finalize(st);
  return now_s() - t0;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 100000;
  const char *dir = argc > 2 ? argv[2] : "/tmp";
  if (n < 1000) n = 1000;
  char nxp[512], sqp[512], cmd[1200];
  snprintf(nxp, sizeof nxp, "%s/bench_index_%d.nxdb", dir, (int)getpid());
  snprintf(sqp, sizeof sqp, "%s/bench_index_%d.sqlite", dir, (int)getpid());
  int *ages = malloc(sizeof(int) * (size_t)n);
  for (int i = 0; i < n; i++) ages[i] = 18 + (int)rnd(63);

  nx_db *db;
  nx_open_opts o = NX_OPEN_OPTS_INIT;
  o.durability = NX_DURABILITY_OFF;
  if (nx_open(nxp, &o, &db) != NX_OK) die("nx_open", nx_errmsg(NULL));
  sqlite3 *s;
  if (sqlite3_open(sqp, &s) != SQLITE_OK) die("sqlite3_open", "failed");
  sqlite3_exec(s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF; PRAGMA cache_size=-65536;", NULL, NULL, NULL);
  sqlite3_exec(s, "CREATE TABLE noidx(id INTEGER PRIMARY KEY, body TEXT); CREATE TABLE idx(id INTEGER PRIMARY KEY, body TEXT);"
               "CREATE INDEX idx_age ON idx(json_extract(body, '$.age'));", NULL, NULL, NULL);
  nx_index_opts io = NX_INDEX_OPTS_INIT;
  if (nx_index_create(db, "idx", nx_json("{\"age\": 1}"), &io) != NX_OK) die("index", nx_errmsg(db));

  uint64_t seed = rng;
  double nx0 = nx_load(db, "noidx", n, ages);
  rng = seed;
  double nx1 = nx_load(db, "idx", n, ages);
  rng = seed;
  double sq0 = sq_load(s, "noidx", n, ages);
  rng = seed;
  double sq1 = sq_load(s, "idx", n, ages);
  sqlite3_exec(s, "ANALYZE", NULL, NULL, NULL);

  int q = 300;
  int *lo = malloc(sizeof(int) * (size_t)q), *hi = malloc(sizeof(int) * (size_t)q);
  printf("bench_index: %d documents, NexusLite %s vs SQLite %s\n", n, nx_version(), sqlite3_libversion());
  printf("insert (docs/s)         no index     age index    index cost\n");
  printf("  NexusLite          %10.0f   %10.0f       %+5.1f%%\n", n / nx0, n / nx1, 100.0 * (nx1 - nx0) / nx0);
  printf("  SQLite             %10.0f   %10.0f       %+5.1f%%\n", n / sq0, n / sq1, 100.0 * (sq1 - sq0) / sq0);
  const char *names[2] = {"equality (age = x)", "range (x <= age <= x+2)"};
  for (int kind = 0; kind < 2; kind++) {
    for (int i = 0; i < q; i++) {
      lo[i] = 18 + (int)rnd(61);
      hi[i] = lo[i] + (kind ? 2 : 0);
    }
    uint64_t d1, d2;
    size_t b1, b2;
    /* warm both caches once, then measure */
    nx_queries(db, 5, lo, hi, &d1, &b1);
    sq_queries(s, 5, lo, hi, &d2, &b2);
    /* ten rounds of q/10 queries, alternating between the engines (each goes first in half of
     * them), so a slow moment on a shared machine falls on both */
    nx_stats s0, s1;
    nx_stats_get(db, &s0);
    double tn = 0, ts = 0, cn = 0, cs = 0;
    d1 = d2 = 0;
    b1 = b2 = 0;
    for (int r = 0; r < 10; r++) {
      int from = q * r / 10, cnt = q * (r + 1) / 10 - from;
      for (int e = 0; e < 2; e++) {
        uint64_t dd;
        size_t bb;
        double c0 = cpu_s();
        if ((r + e) % 2 == 0) {
          tn += nx_queries(db, cnt, lo + from, hi + from, &dd, &bb);
          cn += cpu_s() - c0;
          d1 += dd;
          b1 += bb;
        } else {
          ts += sq_queries(s, cnt, lo + from, hi + from, &dd, &bb);
          cs += cpu_s() - c0;
          d2 += dd;
          b2 += bb;
        }
      }
    }
    nx_stats_get(db, &s1);
    if (d1 != d2) die("results differ", "document counts differ between NexusLite and SQLite");
    printf("%-26s %d queries, %llu docs: NexusLite %8.0f q/s (%6.0f ms), SQLite %8.0f q/s (%6.0f ms), ratio %.2fx\n",
           names[kind], q, (unsigned long long)d1, q / tn, tn * 1000, q / ts, ts * 1000, ts / tn);
    printf("%-26s CPU: NexusLite %6.0f ms, SQLite %6.0f ms, per-CPU-second ratio %.2fx\n", "", cn * 1000, cs * 1000,
           cs / cn);
    printf("%-26s NexusLite page cache: %llu hits, %llu misses\n", "",
           (unsigned long long)(s1.cache_hits - s0.cache_hits), (unsigned long long)(s1.cache_misses - s0.cache_misses));
  }
  bson_t l;
  if (nx_index_list(db, "idx", &l) == NX_OK) {
    char *js = nx_to_json(&l, false);
    printf("index list: %s\n", js);
    nx_free(js);
    bson_destroy(&l);
  }
  nx_close(db);
  sqlite3_close(s);
  snprintf(cmd, sizeof cmd, "rm -f '%s' '%s.wasp' '%s.lock' '%s' '%s-wal' '%s-shm'", nxp, nxp, nxp, sqp, sqp, sqp);
  if (system(cmd) != 0) fprintf(stderr, "bench_index: cleanup failed\n");
  free(ages);
  free(lo);
  free(hi);
  return 0;
}
