/*
 * bench_docs.c: documents in NexusLite vs SQLite (JSON text in a table, WAL, json_extract).
 *
 * Both engines get the same generated documents (about 250-300 bytes of JSON each: name, age,
 * city, score, active, tags array, nested address, bio) and run:
 *   1. durable batch insert: batches of 1000 in one transaction each, fsync per commit
 *      (NexusLite NX_DURABILITY_FULL; SQLite journal_mode=WAL, synchronous=FULL);
 *   2. get by _id: random ids, one auto-commit read each, the document returned to the caller;
 *   3. filter scan: city == X and score > 50 over the whole collection, every match returned
 *      (warm cache, six passes, docs scanned per second);
 *   4. batch update: batches of 1000 random ids in one durable transaction, $inc score and
 *      $set active (SQLite: json_set over json_extract).
 * Each engine gets its natural input: NexusLite BSON documents, SQLite JSON text (NexusLite's
 * insert from JSON text is measured too, as a second line, after the other figures so that it does
 * not change the cache the gets find). The page cache is 64 MiB for both.
 * The writes (1, 4) run one engine after the other; the reads (2, 3) run side by side, in rounds
 * that alternate between the engines, so that a slow moment on a shared machine falls on both.
 * Usage: bench_docs [N (default 200000)] [DIR (default /tmp)]. Prints both figures and the ratio,
 * per second of wall time and per second of process CPU time (the latter is less disturbed by
 * other load on the machine, and leaves out the time spent waiting for fsync).
 * Not run by the test suite.
 */
#define _GNU_SOURCE
#include <bson/bson.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_clock.h"
#include "nexuslite.h"

#define BATCH 1000
#define UPDATE_BATCHES 20
#define SCAN_REPEAT 3

static double cpu_s(void) { return bench_seconds(CLOCK_PROCESS_CPUTIME_ID); }

static uint64_t g_rng = 0x2545F4914F6CDD1Dull;
static uint32_t rnd(void) {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 7;
  g_rng ^= g_rng << 17;
  return (uint32_t)(g_rng >> 16);
}

static const char *const k_cities[] = {"Paris", "Rome", "Oslo", "Berlin", "Madrid", "Lisbon", "Vienna", "Prague",
                                       "Dublin", "Athens", "Warsaw", "Helsinki", "Zurich", "Brussels", "Amsterdam",
                                       "Copenhagen", "Stockholm", "Budapest", "Sofia", "Riga"};
static const char *const k_tags[] = {"red", "green", "blue", "gold", "silver", "vip", "new", "old", "beta", "pro"};
static const char *const k_first[] = {"Alice", "Bob", "Carol", "David", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy"};
static const char *const k_last[] = {"Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand"};
static const char *const k_words[] = {"lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit",
                                      "sed", "do", "eiusmod", "tempor", "incididunt", "labore", "magna", "aliqua"};

/* Generates document i as JSON text (for SQLite and the JSON insert) and as BSON. */
static void gen_doc(int i, char *json, size_t cap, bson_t *b) {
  uint64_t save = g_rng;
  g_rng = 0x9E3779B97F4A7C15ull * ((uint64_t)i + 1u);
  char name[48], bio[160], street[48], zip[8], tags[64];
  snprintf(name, sizeof name, "%s %s", k_first[rnd() % 10], k_last[rnd() % 8]);
  int age = 18 + (int)(rnd() % 60);
  const char *city = k_cities[rnd() % 20];
  int score = (int)(rnd() % 101);
  int active = (int)(rnd() % 2);
  int ntags = 2 + (int)(rnd() % 3);
  const char *tg[4];
  tags[0] = 0;
  for (int t = 0; t < ntags; t++) {
    tg[t] = k_tags[rnd() % 10];
    snprintf(tags + strlen(tags), sizeof tags - strlen(tags), "%s\"%s\"", t ? ", " : "", tg[t]);
  }
  snprintf(street, sizeof street, "%u %s street", 1 + rnd() % 200, k_words[rnd() % 16]);
  snprintf(zip, sizeof zip, "%05u", rnd() % 100000);
  bio[0] = 0;
  while (strlen(bio) < 68) snprintf(bio + strlen(bio), sizeof bio - strlen(bio), "%s%s", bio[0] ? " " : "", k_words[rnd() % 16]);
  snprintf(json, cap,
           "{\"_id\": %d, \"name\": \"%s\", \"age\": %d, \"city\": \"%s\", \"score\": %d, \"active\": %s, "
           "\"tags\": [%s], \"address\": {\"street\": \"%s\", \"city\": \"%s\", \"zip\": \"%s\"}, \"bio\": \"%s\"}",
           i, name, age, city, score, active ? "true" : "false", tags, street, city, zip, bio);
  bson_init(b);
  BSON_APPEND_INT32(b, "_id", i);
  BSON_APPEND_UTF8(b, "name", name);
  BSON_APPEND_INT32(b, "age", age);
  BSON_APPEND_UTF8(b, "city", city);
  BSON_APPEND_INT32(b, "score", score);
  BSON_APPEND_BOOL(b, "active", active != 0);
  bson_t arr, addr;
  BSON_APPEND_ARRAY_BEGIN(b, "tags", &arr);
  for (int t = 0; t < ntags; t++) {
    char k[4];
    snprintf(k, sizeof k, "%d", t);
    BSON_APPEND_UTF8(&arr, k, tg[t]);
  }
  bson_append_array_end(b, &arr);
  BSON_APPEND_DOCUMENT_BEGIN(b, "address", &addr);
  BSON_APPEND_UTF8(&addr, "street", street);
  BSON_APPEND_UTF8(&addr, "city", city);
  BSON_APPEND_UTF8(&addr, "zip", zip);
  bson_append_document_end(b, &addr);
  BSON_APPEND_UTF8(b, "bio", bio);
  g_rng = save;
}

static void die_nx(nx_db *db, const char *what, int rc) {
  fprintf(stderr, "%s: %s: %s\n", what, nx_code_name(rc), nx_errmsg(db));
  exit(1);
}

static void die_sq(sqlite3 *db, const char *what) {
  fprintf(stderr, "%s: %s\n", what, sqlite3_errmsg(db));
  exit(1);
}

static void sq_exec(sqlite3 *db, const char *sql) {
  char *err = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
    fprintf(stderr, "%s: %s\n", sql, err);
    exit(1);
  }
}

typedef struct figures {
  double insert, insert_json, get, scan, update;      /* per second of wall time */
  double c_insert, c_insert_json, c_get, c_scan, c_update; /* per second of process CPU time */
  uint64_t scan_matches;
} figures;

static nx_db *g_nx;

/* Opens a new NexusLite database and inserts the n documents from BSON (figure 1). */
static void nx_setup(const char *dir, int n, figures *f) {
  char path[512];
  snprintf(path, sizeof path, "%s/bench_docs.nx", dir);
  char p2[600];
  unlink(path);
  snprintf(p2, sizeof p2, "%s.wasp", path);
  unlink(p2);
  nx_open_opts o = NX_OPEN_OPTS_INIT;
  o.durability = NX_DURABILITY_FULL;
  o.cache_bytes = 64u << 20;
  /* automatic checkpoints in the background thread (the option a write-heavy application sets;
   * NX_BENCH_CKPT_INLINE=1 measures the default, checkpoints in the committing thread) */
  o.checkpoint_thread = getenv("NX_BENCH_CKPT_INLINE") == NULL;
  nx_db *db;
  int rc = nx_open(path, &o, &db);
  if (rc) die_nx(NULL, "nx_open", rc);
  static char json[BATCH][512];
  static bson_t docs[BATCH];
  nx_in in[BATCH];
  /* 1. durable batch insert from BSON */
  double t = 0, ct = 0;
  for (int b0 = 0; b0 < n; b0 += BATCH) {
    int m = n - b0 < BATCH ? n - b0 : BATCH;
    for (int i = 0; i < m; i++) {
      gen_doc(b0 + i, json[i], sizeof json[i], &docs[i]);
      in[i] = nx_bson(&docs[i]);
    }
    double t0 = now_s(), c0 = cpu_s();
    rc = nx_insert_many(db, NULL, "docs", in, (size_t)m, NULL);
    t += now_s() - t0;
    ct += cpu_s() - c0;
    if (rc) die_nx(db, "nx_insert_many", rc);
    for (int i = 0; i < m; i++) bson_destroy(&docs[i]);
  }
  f->insert = n / t;
  f->c_insert = n / ct;
  g_nx = db;
}

/* count gets by random _id; returns wall seconds, adds CPU seconds to *cpu */
static double nx_gets(int n, int count, double *cpu) {
  nx_db *db = g_nx;
  double t0 = now_s(), c0 = cpu_s();
  for (int i = 0; i < count; i++) {
    bson_t q, out;
    bson_init(&q);
    BSON_APPEND_INT32(&q, "_id", (int32_t)(rnd() % (uint32_t)n));
    int rc = nx_find_one(db, NULL, "docs", nx_bson(&q), NULL, &out);
    if (rc) die_nx(db, "nx_find_one", rc);
    bson_destroy(&out);
    bson_destroy(&q);
  }
  *cpu += cpu_s() - c0;
  return now_s() - t0;
}

/* One filter scan; returns wall seconds, adds CPU seconds to *cpu and sets f->scan_matches. */
static double nx_scan(figures *f, double *cpu) {
  nx_db *db = g_nx;
  bson_t q = BSON_INITIALIZER, gt;
  BSON_APPEND_UTF8(&q, "city", "Paris");
  BSON_APPEND_DOCUMENT_BEGIN(&q, "score", &gt);
  BSON_APPEND_INT32(&gt, "$gt", 50);
  bson_append_document_end(&q, &gt);
  double t0 = now_s(), c0 = cpu_s();
  nx_cursor *c;
  int rc = nx_find(db, NULL, "docs", nx_bson(&q), NULL, &c);
  if (rc) die_nx(db, "nx_find", rc);
  const bson_t *d;
  uint64_t m = 0, bytes = 0;
  while ((rc = nx_cursor_next(c, &d)) == NX_ROW) {
    m++;
    bytes += d->len;
  }
  if (rc != NX_DONE) die_nx(db, "nx_cursor_next", rc);
  nx_cursor_close(c);
  double dt = now_s() - t0;
  *cpu += cpu_s() - c0;
  f->scan_matches = m;
  (void)bytes;
  bson_destroy(&q);
  return dt;
}

/* The batch update (figure 4), the insert from JSON text, and close. */
static void nx_finish(int n, figures *f) {
  nx_db *db = g_nx;
  static char json[BATCH][512];
  static bson_t docs[BATCH];
  nx_in in[BATCH];
  double t, ct, t0, c0;
  int rc;
  /* 4. batch update */
  g_rng = 777;
  t0 = now_s();
  c0 = cpu_s();
  for (int b = 0; b < UPDATE_BATCHES; b++) {
    nx_txn *tx;
    rc = nx_txn_begin(db, NX_TXN_WRITE, &tx);
    if (rc) die_nx(db, "nx_txn_begin", rc);
    for (int i = 0; i < BATCH; i++) {
      bson_t fq, u, inc, set;
      bson_init(&fq);
      BSON_APPEND_INT32(&fq, "_id", (int32_t)(rnd() % (uint32_t)n));
      bson_init(&u);
      BSON_APPEND_DOCUMENT_BEGIN(&u, "$inc", &inc);
      BSON_APPEND_INT32(&inc, "score", 1);
      bson_append_document_end(&u, &inc);
      BSON_APPEND_DOCUMENT_BEGIN(&u, "$set", &set);
      BSON_APPEND_BOOL(&set, "active", false);
      bson_append_document_end(&u, &set);
      rc = nx_update_one(db, tx, "docs", nx_bson(&fq), nx_bson(&u), 0, NULL);
      if (rc) die_nx(db, "nx_update_one", rc);
      bson_destroy(&fq);
      bson_destroy(&u);
    }
    rc = nx_txn_commit(tx);
    if (rc) die_nx(db, "nx_txn_commit", rc);
  }
  f->update = (double)UPDATE_BATCHES * BATCH / (now_s() - t0);
  f->c_update = (double)UPDATE_BATCHES * BATCH / (cpu_s() - c0);
  /* 5. the insert from JSON text, into a second collection. Last, so that its pages do not
   * take cache room that SQLite's run never gives up before its gets (it has no such step). */
  int nj = n < 50000 ? n : 50000;
  t = 0;
  ct = 0;
  for (int b0 = 0; b0 < nj; b0 += BATCH) {
    int m = nj - b0 < BATCH ? nj - b0 : BATCH;
    for (int i = 0; i < m; i++) {
      gen_doc(b0 + i, json[i], sizeof json[i], &docs[i]);
      bson_destroy(&docs[i]);
      in[i] = nx_json(json[i]);
    }
    double tj = now_s(), cj = cpu_s();
    rc = nx_insert_many(db, NULL, "docs_json", in, (size_t)m, NULL);
    t += now_s() - tj;
    ct += cpu_s() - cj;
    if (rc) die_nx(db, "nx_insert_many json", rc);
  }
  f->insert_json = nj / t;
  f->c_insert_json = nj / ct;
  nx_stats st;
  nx_stats_get(db, &st);
  printf("nexuslite: %llu pages of %u bytes (%llu free), cache %llu hits %llu misses, %llu commits, %llu checkpoints, %llu fsyncs\n",
         (unsigned long long)st.pages_total, st.page_size, (unsigned long long)st.pages_free,
         (unsigned long long)st.cache_hits, (unsigned long long)st.cache_misses, (unsigned long long)st.commits,
         (unsigned long long)st.checkpoints, (unsigned long long)st.fsyncs);
  rc = nx_close(db);
  if (rc) die_nx(NULL, "nx_close", rc);
}

static sqlite3 *g_sq;
static sqlite3_stmt *g_ins, *g_get, *g_scan, *g_upd;

static void sq_setup(const char *dir, int n, figures *f) {
  char path[512], p2[600];
  snprintf(path, sizeof path, "%s/bench_docs.sqlite", dir);
  unlink(path);
  snprintf(p2, sizeof p2, "%s-wal", path);
  unlink(p2);
  snprintf(p2, sizeof p2, "%s-shm", path);
  unlink(p2);
  sqlite3 *db;
  if (sqlite3_open(path, &db) != SQLITE_OK) die_sq(db, "open");
  sq_exec(db, "PRAGMA journal_mode=WAL");
  sq_exec(db, "PRAGMA synchronous=FULL");
  sq_exec(db, "PRAGMA cache_size=-65536");
  sq_exec(db, "CREATE TABLE docs(id INTEGER PRIMARY KEY, doc TEXT NOT NULL)");
  sqlite3_stmt *ins, *get, *scan, *upd;
  if (sqlite3_prepare_v2(db, "INSERT INTO docs(id, doc) VALUES(?, ?)", -1, &ins, NULL)) die_sq(db, "prepare");
  if (sqlite3_prepare_v2(db, "SELECT doc FROM docs WHERE id = ?", -1, &get, NULL)) die_sq(db, "prepare");
  if (sqlite3_prepare_v2(db, "SELECT doc FROM docs WHERE json_extract(doc, '$.city') = ? AND json_extract(doc, '$.score') > 50",
                         -1, &scan, NULL))
    die_sq(db, "prepare");
  if (sqlite3_prepare_v2(db, "UPDATE docs SET doc = json_set(doc, '$.score', json_extract(doc, '$.score') + 1, "
                             "'$.active', json('false')) WHERE id = ?", -1, &upd, NULL))
    die_sq(db, "prepare");
  static char json[BATCH][512];
  bson_t scratch;
  double t = 0, ct = 0;
  for (int b0 = 0; b0 < n; b0 += BATCH) {
    int m = n - b0 < BATCH ? n - b0 : BATCH;
    for (int i = 0; i < m; i++) {
      gen_doc(b0 + i, json[i], sizeof json[i], &scratch);
      bson_destroy(&scratch);
    }
    double t0 = now_s(), c0 = cpu_s();
    sq_exec(db, "BEGIN");
    for (int i = 0; i < m; i++) {
      sqlite3_bind_int64(ins, 1, b0 + i);
      sqlite3_bind_text(ins, 2, json[i], -1, SQLITE_STATIC);
      if (sqlite3_step(ins) != SQLITE_DONE) die_sq(db, "insert");
      sqlite3_reset(ins);
    }
    sq_exec(db, "COMMIT");
    t += now_s() - t0;
    ct += cpu_s() - c0;
  }
  f->insert = n / t;
  f->c_insert = n / ct;
  g_sq = db;
  g_ins = ins;
  g_get = get;
  g_scan = scan;
  g_upd = upd;
}

static double sq_gets(int n, int count, double *cpu) {
  sqlite3 *db = g_sq;
  sqlite3_stmt *get = g_get;
  double t0 = now_s(), c0 = cpu_s();
  size_t bytes = 0;
  for (int i = 0; i < count; i++) {
    sqlite3_bind_int64(get, 1, rnd() % (uint32_t)n);
    if (sqlite3_step(get) != SQLITE_ROW) die_sq(db, "get");
    const unsigned char *s = sqlite3_column_text(get, 0);
    bytes += strlen((const char *)s);
    sqlite3_reset(get);
  }
  *cpu += cpu_s() - c0;
  (void)bytes;
  return now_s() - t0;
}

static double sq_scan(figures *f, double *cpu) {
  sqlite3 *db = g_sq;
  sqlite3_stmt *scan = g_scan;
  double t0 = now_s(), c0 = cpu_s();
  sqlite3_bind_text(scan, 1, "Paris", -1, SQLITE_STATIC);
  uint64_t m = 0;
  size_t bytes = 0;
  int src;
  while ((src = sqlite3_step(scan)) == SQLITE_ROW) {
    m++;
    bytes += (size_t)sqlite3_column_bytes(scan, 0);
  }
  if (src != SQLITE_DONE) die_sq(db, "scan");
  sqlite3_reset(scan);
  double dt = now_s() - t0;
  *cpu += cpu_s() - c0;
  f->scan_matches = m;
  (void)bytes;
  return dt;
}

static void sq_finish(int n, figures *f) {
  sqlite3 *db = g_sq;
  sqlite3_stmt *ins = g_ins, *get = g_get, *scan = g_scan, *upd = g_upd;
  double t0, c0;
  g_rng = 777;
  t0 = now_s();
  c0 = cpu_s();
  for (int b = 0; b < UPDATE_BATCHES; b++) {
    sq_exec(db, "BEGIN");
    for (int i = 0; i < BATCH; i++) {
      sqlite3_bind_int64(upd, 1, rnd() % (uint32_t)n);
      if (sqlite3_step(upd) != SQLITE_DONE) die_sq(db, "update");
      sqlite3_reset(upd);
    }
    sq_exec(db, "COMMIT");
  }
  f->update = (double)UPDATE_BATCHES * BATCH / (now_s() - t0);
  f->c_update = (double)UPDATE_BATCHES * BATCH / (cpu_s() - c0);
  sqlite3_finalize(ins);
  sqlite3_finalize(get);
  sqlite3_finalize(scan);
  sqlite3_finalize(upd);
  sqlite3_close(db);
}

int main(int argc, char **argv) {
  int n = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 200000;
  const char *dir = argc > 2 ? argv[2] : "/tmp";
  if (n < BATCH) n = BATCH;
  char sample[512];
  bson_t b;
  gen_doc(0, sample, sizeof sample, &b);
  bson_destroy(&b);
  printf("bench_docs: %d documents, sample (%zu bytes of JSON): %s\n", n, strlen(sample), sample);
  printf("SQLite %s, NexusLite %s, directory %s, NexusLite checkpoints %s\n", sqlite3_libversion(), nx_version(), dir,
         getenv("NX_BENCH_CKPT_INLINE") ? "in the committing thread (NX_BENCH_CKPT_INLINE)" : "in the background thread");
  figures nx = {0}, sq = {0};
  /* The writes run one engine after the other: NexusLite's checkpoint thread may still work
   * after its last commit, and that work must not fall into SQLite's timed writes. Both engines
   * stay open until the end, so each pays for the memory its cache touches first (on this VM a
   * first touch costs ~12 us per 4 KiB page, ~200 ms for a 64 MiB cache); before, SQLite was
   * closed first and NexusLite's cache reused the memory SQLite's had given back. */
  sq_setup(dir, n, &sq);
  nx_setup(dir, n, &nx);
  /* The reads run side by side: ten rounds, alternating between the engines (each goes first
   * in half of them), so a slow moment on a shared machine falls on both. Each engine draws its
   * ids from its own copy of the same random sequence. */
  int gets = n < 100000 ? n : 100000;
  uint64_t rng[2] = {12345, 12345};
  double wall[2] = {0, 0}, cpu[2] = {0, 0}, swall[2] = {0, 0}, scpu[2] = {0, 0};
  for (int r = 0; r < 10; r++) {
    int cnt = gets * (r + 1) / 10 - gets * r / 10;
    for (int e = 0; e < 2; e++) {
      int w = (r + e) % 2; /* 0 NexusLite, 1 SQLite */
      g_rng = rng[w];
      wall[w] += w ? sq_gets(n, cnt, &cpu[w]) : nx_gets(n, cnt, &cpu[w]);
      rng[w] = g_rng;
    }
  }
  for (int r = 0; r < SCAN_REPEAT * 2; r++)
    for (int e = 0; e < 2; e++) {
      int w = (r + e) % 2;
      swall[w] += w ? sq_scan(&sq, &scpu[w]) : nx_scan(&nx, &scpu[w]);
    }
  nx.get = gets / wall[0];
  nx.c_get = gets / cpu[0];
  sq.get = gets / wall[1];
  sq.c_get = gets / cpu[1];
  nx.scan = (double)n * SCAN_REPEAT * 2 / swall[0];
  nx.c_scan = (double)n * SCAN_REPEAT * 2 / scpu[0];
  sq.scan = (double)n * SCAN_REPEAT * 2 / swall[1];
  sq.c_scan = (double)n * SCAN_REPEAT * 2 / scpu[1];
  nx_finish(n, &nx);
  sq_finish(n, &sq);
  if (nx.scan_matches != sq.scan_matches)
    printf("WARNING: scan matched %llu documents in NexusLite, %llu in SQLite\n", (unsigned long long)nx.scan_matches,
           (unsigned long long)sq.scan_matches);
  printf("%-32s %12s %12s %7s | %12s %12s %7s | %6s\n", "operation (per second)", "nexuslite", "sqlite", "ratio",
         "nx per CPU-s", "sq per CPU-s", "ratio", "target");
#define ROW(label, a, b, ca, cb, target)                                                                  \
  printf("%-32s %12.0f %12.0f %6.2fx | %12.0f %12.0f %6.2fx | %6s\n", label, a, b, (a) / (b), ca, cb, (ca) / (cb), target)
  ROW("durable batch insert (BSON in)", nx.insert, sq.insert, nx.c_insert, sq.c_insert, ">=2x");
  ROW("durable batch insert (JSON in)", nx.insert_json, sq.insert, nx.c_insert_json, sq.c_insert, "");
  ROW("get by _id", nx.get, sq.get, nx.c_get, sq.c_get, ">=5x");
  ROW("filter scan (docs scanned)", nx.scan, sq.scan, nx.c_scan, sq.c_scan, ">=3x");
  ROW("durable batch update", nx.update, sq.update, nx.c_update, sq.c_update, ">=2x");
#undef ROW
  printf("scan matched %llu documents per pass\n", (unsigned long long)nx.scan_matches);
  char p[600];
  snprintf(p, sizeof p, "rm -f '%s'/bench_docs.nx* '%s'/bench_docs.sqlite*", dir, dir);
  if (system(p) != 0) fprintf(stderr, "cleanup failed\n");
  return 0;
}
