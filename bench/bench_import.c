/*
 * bench_import.c: import of a generated NDJSON file, NexusLite (nx_import) against SQLite (the
 * same records parsed by json() into a table with an INTEGER PRIMARY KEY, same batching: one
 * transaction per `batch` records, WAL with synchronous=FULL vs NexusLite's FULL durability, so
 * both fsync once per batch).
 *
 * Usage: bench_import [N [BATCH [DIR]]]   (defaults: 1000000, 1000, /tmp)
 * Each run happens in a child process (this program re-executed through posix_spawn) so that its
 * peak resident memory (ru_maxrss from wait4) is its own. NexusLite is also run on N/10 records,
 * to show that peak memory does not grow with the file (it is bounded by the page cache,
 * 64 MiB by default; NX_BENCH_CACHE_MB=N sets it). Not run by `make test`.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <spawn.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_clock.h"
#include "nexuslite.h"

extern char **environ;

static void gen(const char *path, long n) {
  static const char *cities[] = {"Paris", "Z\\u00fcrich", "Osaka", "Lima", "Oslo", "Cairo", "Quito", "Perth"};
  FILE *f = fopen(path, "w");
  if (!f) {
    perror(path);
    exit(1);
  }
  for (long i = 0; i < n; i++)
    fprintf(f,
            "{\"_id\": %ld, \"name\": \"user%ld\", \"age\": %ld, \"city\": \"%s\", \"score\": %.3f, "
            "\"active\": %s, \"tags\": [\"t%ld\", \"u%ld\"], \"address\": {\"zip\": \"%05ld\", "
            "\"street\": \"%ld Main Street\"}}\n",
            i, i, 18 + i % 60, cities[i % 8], (double)i * 0.37, i % 2 ? "true" : "false", i % 10,
            i % 7, i % 100000, i % 997);
  fclose(f);
}

static int child_nexus(const char *file, const char *db, long batch) {
  nx_db *h;
  nx_open_opts oo = NX_OPEN_OPTS_INIT;
  const char *mb = getenv("NX_BENCH_CACHE_MB"); /* page cache size; default 64 MiB */
  if (mb && atol(mb) > 0) oo.cache_bytes = (uint64_t)atol(mb) << 20;
  if (nx_open(db, &oo, &h) != NX_OK) {
    fprintf(stderr, "open: %s\n", nx_errmsg(NULL));
    return 1;
  }
  nx_import_opts o = NX_IMPORT_OPTS_INIT;
  o.batch_size = (uint32_t)batch;
  o.format = NX_FORMAT_NDJSON;
  nx_import_report r;
  double t0 = now_s();
  int rc = nx_import(h, file, "docs", &o, &r);
  double t1 = now_s();
  if (rc != NX_OK) {
    fprintf(stderr, "import: %s\n", nx_errmsg(h));
    return 1;
  }
  nx_close(h);
  double t2 = now_s();
  printf("%llu %.3f %.3f\n", (unsigned long long)r.inserted, t1 - t0, t2 - t0);
  return 0;
}

static int child_sqlite(const char *file, const char *db, long batch) {
  sqlite3 *s;
  if (sqlite3_open(db, &s) != SQLITE_OK) return 1;
  sqlite3_exec(s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                  "CREATE TABLE docs(id INTEGER PRIMARY KEY, body TEXT NOT NULL)", NULL, NULL, NULL);
  sqlite3_stmt *ins;
  if (sqlite3_prepare_v2(s, "INSERT INTO docs(id, body) VALUES (json_extract(?1, '$._id'), json(?1))", -1, &ins,
                         NULL) != SQLITE_OK) {
    fprintf(stderr, "prepare: %s\n", sqlite3_errmsg(s));
    return 1;
  }
  FILE *f = fopen(file, "r");
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  long n = 0;
  double t0 = now_s();
  sqlite3_exec(s, "BEGIN", NULL, NULL, NULL);
  while ((len = getline(&line, &cap, f)) > 0) {
    sqlite3_bind_text(ins, 1, line, (int)len, SQLITE_STATIC);
    if (sqlite3_step(ins) != SQLITE_DONE) {
      fprintf(stderr, "insert: %s\n", sqlite3_errmsg(s));
      return 1;
    }
    sqlite3_reset(ins);
    if (++n % batch == 0) {
      sqlite3_exec(s, "COMMIT", NULL, NULL, NULL);
      sqlite3_exec(s, "BEGIN", NULL, NULL, NULL);
    }
  }
  sqlite3_exec(s, "COMMIT", NULL, NULL, NULL);
  double t1 = now_s();
  sqlite3_finalize(ins);
  sqlite3_close(s);
  double t2 = now_s();
  free(line);
  fclose(f);
  printf("%ld %.3f %.3f\n", n, t1 - t0, t2 - t0);
  return 0;
}

/* Runs this program as a child in `mode`; prints its result line and peak RSS. */
static void run_child(const char *self, const char *mode, const char *file, const char *db, long batch,
                      const char *label, long n_expect) {
  char bs[32];
  snprintf(bs, sizeof bs, "%ld", batch);
  char out[256];
  snprintf(out, sizeof out, "%s.out", db);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  char *argv[] = {(char *)self, "--child", (char *)mode, (char *)file, (char *)db, bs, NULL};
  pid_t pid;
  if (posix_spawn(&pid, self, &fa, NULL, argv, environ) != 0) {
    perror("posix_spawn");
    exit(1);
  }
  posix_spawn_file_actions_destroy(&fa);
  int st;
  struct rusage ru;
  wait4(pid, &st, 0, &ru);
  FILE *f = fopen(out, "r");
  unsigned long long docs = 0;
  double t_import = 0, t_total = 0;
  if (!f || fscanf(f, "%llu %lf %lf", &docs, &t_import, &t_total) != 3 || !WIFEXITED(st) ||
      WEXITSTATUS(st) != 0) {
    fprintf(stderr, "%s: child failed\n", label);
    exit(1);
  }
  fclose(f);
  unlink(out);
  if ((long)docs != n_expect) fprintf(stderr, "%s: %llu documents, expected %ld\n", label, docs, n_expect);
  printf("%-28s %9llu docs  %7.2f s  %9.0f docs/s  (%.2f s incl. close)  peak RSS %6.1f MiB\n", label, docs,
         t_import, (double)docs / t_import, t_total, (double)ru.ru_maxrss / 1024.0);
  fflush(stdout);
}

static void rm_db(const char *db) {
  char p[600];
  const char *suffixes[] = {"", ".wasp", ".lock", "-wal", "-shm", "-journal"};
  for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++) {
    snprintf(p, sizeof p, "%s%s", db, suffixes[i]);
    unlink(p);
  }
}

int main(int argc, char **argv) {
  if (argc == 6 && strcmp(argv[1], "--child") == 0) {
    long batch = atol(argv[5]);
    if (strcmp(argv[2], "nexus") == 0) return child_nexus(argv[3], argv[4], batch);
    return child_sqlite(argv[3], argv[4], batch);
  }
  long n = argc > 1 ? atol(argv[1]) : 1000000;
  long batch = argc > 2 ? atol(argv[2]) : 1000;
  const char *dir = argc > 3 ? argv[3] : "/tmp";
  if (n < 10 || batch < 1) {
    fprintf(stderr, "usage: bench_import [N>=10 [BATCH [DIR]]]\n");
    return 2;
  }
  char self[512];
  ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
  if (k <= 0) return 1;
  self[k] = 0;
  char big[512], small[512], db[512];
  snprintf(big, sizeof big, "%s/bench_import.%d.big.ndjson", dir, (int)getpid());
  snprintf(small, sizeof small, "%s/bench_import.%d.small.ndjson", dir, (int)getpid());
  double t0 = now_s();
  gen(big, n);
  gen(small, n / 10);
  struct stat st;
  stat(big, &st);
  printf("bench_import: %ld documents, %.1f MiB of NDJSON (generated in %.1f s), batches of %ld\n", n,
         (double)st.st_size / 1048576.0, now_s() - t0, batch);
  printf("NexusLite durability FULL; SQLite WAL + synchronous=FULL; both commit once per batch\n");
  fflush(stdout);
  snprintf(db, sizeof db, "%s/bench_import.%d.nx.db", dir, (int)getpid());
  rm_db(db);
  run_child(self, "nexus", small, db, batch, "NexusLite nx_import (N/10)", n / 10);
  rm_db(db);
  run_child(self, "nexus", big, db, batch, "NexusLite nx_import", n);
  rm_db(db);
  snprintf(db, sizeof db, "%s/bench_import.%d.sqlite", dir, (int)getpid());
  rm_db(db);
  run_child(self, "sqlite", big, db, batch, "SQLite json() INSERT", n);
  rm_db(db);
  unlink(big);
  unlink(small);
  return 0;
}
