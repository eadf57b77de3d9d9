// ctest: timeout=300
/*
 * test_storage_api.c: the storage layer's interface (storage.h): named trees, snapshots, abort,
 * 16 MiB values, counts, cursors after writes, reopen, the integrity walk.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pager.h"
#include "storage.h"

static char g_dir[256];

static void mkdir_tmp(void) {
  snprintf(g_dir, sizeof g_dir, "/tmp/nx_stapi_XXXXXX");
  cr_assert_not_null(mkdtemp(g_dir));
}

static void rm_tmp(void) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
  cr_assert_eq(system(cmd), 0);
}

static void path_in(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", g_dir, name); }

static st_val sv(const char *s) { return (st_val){(const uint8_t *)s, strlen(s)}; }

static st_env *open_env(const char *path, uint32_t ps) {
  nx_open_opts o = NX_OPEN_OPTS_INIT;
  o.page_size = ps;
  o.durability = NX_DURABILITY_NORMAL;
  st_env *e;
  cr_assert_eq(st_open(path, &o, &e), NX_OK, "st_open %s: %s", path, nx_err_msg());
  return e;
}

static void assert_check(st_env *e) { cr_assert_eq(st_check(e), NX_OK, "st_check: %s", nx_err_msg()); }

static int collect(void *ctx, const char *name) {
  char *buf = ctx;
  strcat(buf, name);
  strcat(buf, ";");
  return 0;
}

static int stop_at_second(void *ctx, const char *name) {
  (void)name;
  return ++*(int *)ctx == 2 ? 42 : 0;
}

Test(storage_api, named_trees_create_list_rename_drop_persist) {
  mkdir_tmp();
  char path[300];
  path_in(path, sizeof path, "trees.db");
  st_env *e = open_env(path, 4096);
  st_txn *t;
  st_tree a, b, cx, cy, again;
  cr_assert_eq(st_txn_begin(e, true, &t), NX_OK);
  cr_assert_eq(st_tree_open(t, "a", false, &a), NX_NOTFOUND);
  cr_assert_eq(st_tree_open(t, "a", true, &a), NX_OK);
  cr_assert_eq(st_tree_open(t, "b", true, &b), NX_OK);
  cr_assert_eq(st_tree_open(t, "c/x", true, &cx), NX_OK);
  cr_assert_eq(st_tree_open(t, "c/y", true, &cy), NX_OK);
  cr_assert_eq(st_tree_open(t, "a", true, &again), NX_OK);
  cr_assert_eq(again, a);
  cr_assert_eq(st_tree_open(t, "", true, &again), NX_INVALID);
  for (int i = 0; i < 500; i++) {
    char k[16];
    snprintf(k, sizeof k, "%05d", i);
    cr_assert_eq(st_put(t, a, sv(k), sv("A"), 0), NX_OK);
    cr_assert_eq(st_put(t, b, sv(k), sv("B"), 0), NX_OK);
    if (i < 10) cr_assert_eq(st_put(t, cx, sv(k), sv("X"), 0), NX_OK);
  }
  char names[256] = "";
  cr_assert_eq(st_tree_list(t, "c/", collect, names), NX_OK);
  cr_assert_str_eq(names, "c/x;c/y;");
  int seen = 0;
  cr_assert_eq(st_tree_list(t, "", stop_at_second, &seen), 42);
  cr_assert_eq(st_txn_commit(t), NX_OK, "%s", nx_err_msg());

  cr_assert_eq(st_txn_begin(e, true, &t), NX_OK);
  cr_assert_eq(st_tree_rename(t, "b", "a"), NX_EXISTS);
  cr_assert_eq(st_tree_rename(t, "b", "d"), NX_OK);
  cr_assert_eq(st_tree_open(t, "b", false, &b), NX_NOTFOUND);
  cr_assert_eq(st_tree_drop(t, "c/y"), NX_OK);
  cr_assert_eq(st_tree_drop(t, "c/y"), NX_NOTFOUND);
  cr_assert_eq(st_tree_open(t, "c/x", false, &cx), NX_OK);
  cr_assert_eq(st_put(t, cx, sv("z"), sv("Z"), 0), NX_OK);
  cr_assert_eq(st_tree_rename(t, "c/x", "e"), NX_OK); /* renamed while open with changes */
  cr_assert_eq(st_txn_commit(t), NX_OK, "%s", nx_err_msg());
  assert_check(e);
  cr_assert_eq(st_close(e), NX_OK);

  e = open_env(path, 4096);
  assert_check(e);
  cr_assert_eq(st_txn_begin(e, false, &t), NX_OK);
  names[0] = 0;
  cr_assert_eq(st_tree_list(t, NULL, collect, names), NX_OK);
  cr_assert_str_eq(names, "a;d;e;");
  st_tree d, ee;
  uint64_t n;
  cr_assert_eq(st_tree_open(t, "d", false, &d), NX_OK);
  cr_assert_eq(st_tree_count(t, d, &n), NX_OK);
  cr_assert_eq(n, 500);
  cr_assert_eq(st_tree_open(t, "e", false, &ee), NX_OK);
  cr_assert_eq(st_tree_count(t, ee, &n), NX_OK);
  cr_assert_eq(n, 11);
  st_val v;
  cr_assert_eq(st_get(t, d, sv("00042"), &v), NX_OK);
  cr_assert(v.n == 1 && v.p[0] == 'B');
  cr_assert_eq(st_get(t, ee, sv("z"), &v), NX_OK);
  cr_assert_eq(st_tree_open(t, "new", true, &ee), NX_READONLY);
  st_txn_abort(t);
  cr_assert_eq(st_close(e), NX_OK);
  rm_tmp();
}

Test(storage_api, reader_keeps_its_snapshot_while_writer_commits) {
  st_env *e = open_env(":memory:", 4096);
  st_txn *w, *r;
  st_tree tw, tr;
  cr_assert_eq(st_txn_begin(e, true, &w), NX_OK);
  cr_assert_eq(st_tree_open(w, "t", true, &tw), NX_OK);
  char k[16], val[16];
  for (int i = 0; i < 3000; i++) {
    snprintf(k, sizeof k, "%06d", i);
    cr_assert_eq(st_put(w, tw, sv(k), sv("old"), 0), NX_OK);
  }
  cr_assert_eq(st_txn_commit(w), NX_OK);
  cr_assert_eq(st_txn_begin(e, false, &r), NX_OK);
  uint64_t snap = st_txn_id(r);
  cr_assert_eq(st_tree_open(r, "t", false, &tr), NX_OK);
  /* the writer rewrites everything, deletes half, commits several times, checkpoints */
  for (int round = 0; round < 4; round++) {
    cr_assert_eq(st_txn_begin(e, true, &w), NX_OK);
    cr_assert_eq(st_tree_open(w, "t", false, &tw), NX_OK);
    for (int i = 0; i < 3000; i++) {
      snprintf(k, sizeof k, "%06d", i);
      snprintf(val, sizeof val, "new%d", round);
      if (i % 2) cr_assert_eq(st_del(w, tw, sv(k)), round == 0 ? NX_OK : NX_NOTFOUND);
      else cr_assert_eq(st_put(w, tw, sv(k), sv(val), 0), NX_OK);
    }
    cr_assert_eq(st_txn_commit(w), NX_OK);
    cr_assert_eq(st_checkpoint(e, NX_CHECKPOINT_PASSIVE), NX_OK, "%s", nx_err_msg());
  }
  /* the reader still sees the old state, entirely */
  cr_assert_eq(st_txn_id(r), snap);
  uint64_t n;
  cr_assert_eq(st_tree_count(r, tr, &n), NX_OK);
  cr_assert_eq(n, 3000);
  st_cursor *c;
  cr_assert_eq(st_cursor_open(r, tr, &c), NX_OK);
  int seen = 0;
  for (int rc = st_cursor_first(c); rc == NX_OK; rc = st_cursor_next(c)) {
    st_val kk, vv;
    cr_assert_eq(st_cursor_get(c, &kk, &vv), NX_OK);
    cr_assert(vv.n == 3 && memcmp(vv.p, "old", 3) == 0, "entry %d changed under the reader", seen);
    seen++;
  }
  cr_assert_eq(seen, 3000);
  st_cursor_close(c);
  st_txn_abort(r);
  /* a new reader sees the last commit */
  cr_assert_eq(st_txn_begin(e, false, &r), NX_OK);
  cr_assert_gt(st_txn_id(r), snap);
  cr_assert_eq(st_tree_open(r, "t", false, &tr), NX_OK);
  cr_assert_eq(st_tree_count(r, tr, &n), NX_OK);
  cr_assert_eq(n, 1500);
  st_val v;
  cr_assert_eq(st_get(r, tr, sv("000002"), &v), NX_OK);
  cr_assert(v.n == 4 && memcmp(v.p, "new3", 4) == 0);
  cr_assert_eq(st_get(r, tr, sv("000003"), &v), NX_NOTFOUND);
  st_txn_abort(r);
  assert_check(e);
  cr_assert_eq(st_close(e), NX_OK);
}

typedef struct rd_arg {
  st_env *e;
  int bad;     /* entries that did not match the snapshot */
  int seen;
  pthread_barrier_t *bar;
} rd_arg;

static void *reader_thread(void *arg) {
  rd_arg *a = arg;
  st_txn *r;
  st_tree t;
  if (st_txn_begin(a->e, false, &r) || st_tree_open(r, "t", false, &t)) {
    a->bad = -1;
    pthread_barrier_wait(a->bar);
    pthread_barrier_wait(a->bar);
    return NULL;
  }
  pthread_barrier_wait(a->bar); /* the writer starts now */
  for (int pass = 0; pass < 20; pass++) {
    st_cursor *c;
    if (st_cursor_open(r, t, &c)) { a->bad++; break; }
    for (int rc = st_cursor_first(c); rc == NX_OK; rc = st_cursor_next(c)) {
      st_val k, v;
      if (st_cursor_get(c, &k, &v) || v.n != 1 || v.p[0] != 'a') a->bad++;
      a->seen++;
    }
    st_cursor_close(c);
  }
  pthread_barrier_wait(a->bar);
  st_txn_abort(r);
  return NULL;
}

Test(storage_api, reader_thread_keeps_snapshot) {
  st_env *e = open_env(":memory:", 4096);
  st_txn *w;
  st_tree tw;
  cr_assert_eq(st_txn_begin(e, true, &w), NX_OK);
  cr_assert_eq(st_tree_open(w, "t", true, &tw), NX_OK);
  char k[16];
  for (int i = 0; i < 2000; i++) {
    snprintf(k, sizeof k, "%06d", i);
    cr_assert_eq(st_put(w, tw, sv(k), sv("a"), 0), NX_OK);
  }
  cr_assert_eq(st_txn_commit(w), NX_OK);
  pthread_barrier_t bar;
  pthread_barrier_init(&bar, NULL, 2);
  rd_arg a = {e, 0, 0, &bar};
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, reader_thread, &a), 0);
  pthread_barrier_wait(&bar);
  for (int round = 0; round < 20; round++) {
    cr_assert_eq(st_txn_begin(e, true, &w), NX_OK);
    cr_assert_eq(st_tree_open(w, "t", false, &tw), NX_OK);
    for (int i = round; i < 2000; i += 7) {
      snprintf(k, sizeof k, "%06d", i);
      cr_assert_eq(st_put(w, tw, sv(k), sv("bb"), 0), NX_OK);
    }
    cr_assert_eq(st_txn_commit(w), NX_OK);
    if (round % 5 == 4) cr_assert_eq(st_checkpoint(e, NX_CHECKPOINT_PASSIVE), NX_OK);
  }
  pthread_barrier_wait(&bar);
  pthread_join(th, NULL);
  pthread_barrier_destroy(&bar);
  cr_assert_eq(a.bad, 0);
  cr_assert_eq(a.seen, 20 * 2000);
  assert_check(e);
  cr_assert_eq(st_close(e), NX_OK);
}

Test(storage_api, abort_leaves_no_trace) {
  st_env *e = open_env(":memory:", 4096);
  st_txn *t;
  st_tree tr;
  cr_assert_eq(st_txn_begin(e, true, &t), NX_OK);
  cr_assert_eq(st_tree_open(t, "keep", true, &tr), NX_OK);
  cr_assert_eq(st_put(t, tr, sv("k"), sv("v1"), 0), NX_OK);
  cr_assert_eq(st_txn_commit(t), NX_OK);
  cr_assert_eq(st_checkpoint(e, NX_CHECKPOINT_FULL), NX_OK);
  nx_stats before, after;
  cr_assert_eq(st_stats(e, &before), NX_OK);

  cr_assert_eq(st_txn_begin(e, true, &t), NX_OK);
  st_tree gone;
  cr_assert_eq(st_tree_open(t, "gone", true, &gone), NX_OK);
  cr_assert_eq(st_tree_open(t, "keep", false, &tr), NX_OK);
  static uint8_t big[300000];
  memset(big, 'x', sizeof big);
  char k[16];
  for (int i = 0; i < 2000; i++) {
    snprintf(k, sizeof k, "%06d", i);
    cr_assert_eq(st_put(t, gone, sv(k), sv("zzz"), 0), NX_OK);
    cr_assert_eq(st_put(t, tr, sv(k), (st_val){big, (size_t)(i % 100 == 0 ? sizeof big : 10)}, 0), NX_OK);
  }
  cr_assert_eq(st_put(t, tr, sv("k"), sv("v2"), 0), NX_OK);
  cr_assert_eq(st_tree_drop(t, "keep"), NX_OK);
  st_txn_abort(t);

  cr_assert_eq(st_txn_begin(e, false, &t), NX_OK);
  cr_assert_eq(st_tree_open(t, "gone", false, &gone), NX_NOTFOUND);
  cr_assert_eq(st_tree_open(t, "keep", false, &tr), NX_OK);
  uint64_t n;
  st_tree_count(t, tr, &n);
  cr_assert_eq(n, 1);
  st_val v;
  cr_assert_eq(st_get(t, tr, sv("k"), &v), NX_OK);
  cr_assert(v.n == 2 && memcmp(v.p, "v1", 2) == 0);
  st_txn_abort(t);
  cr_assert_eq(st_checkpoint(e, NX_CHECKPOINT_FULL), NX_OK);
  cr_assert_eq(st_stats(e, &after), NX_OK);
  cr_assert_eq(after.txn_id, before.txn_id);
  cr_assert_eq(after.pages_total - after.pages_free, before.pages_total - before.pages_free,
               "pages in use %llu -> %llu", (unsigned long long)(before.pages_total - before.pages_free),
               (unsigned long long)(after.pages_total - after.pages_free));
  assert_check(e);
  cr_assert_eq(st_close(e), NX_OK);
}

static void fill(uint8_t *p, size_t n, uint32_t seed) {
  uint32_t x = seed;
  for (size_t i = 0; i < n; i++) {
    x = x * 1664525u + 1013904223u;
    p[i] = (uint8_t)(x >> 24);
  }
}

Test(storage_api, values_of_16_mib) {
  mkdir_tmp();
  char path[300];
  path_in(path, sizeof path, "big.db");
  const size_t big = 16u << 20;
  uint8_t *buf = malloc(big), *buf2 = malloc(big);
  fill(buf, big, 1);
  fill(buf2, big / 2 + 3, 2);
  st_env *e = open_env(path, 4096);
  st_txn *t;
  st_tree tr;
  cr_assert_eq(st_txn_begin(e, true, &t), NX_OK);
  cr_assert_eq(st_tree_open(t, "docs", true, &tr), NX_OK);
  cr_assert_eq(st_put(t, tr, sv("big"), (st_val){buf, big}, 0), NX_OK, "%s", nx_err_msg());
  cr_assert_eq(st_put(t, tr, sv("half"), (st_val){buf2, big / 2 + 3}, 0), NX_OK);
  cr_assert_eq(st_put(t, tr, sv("small"), sv("s"), 0), NX_OK);
  cr_assert_eq(st_put(t, tr, sv("toolong"), (st_val){buf, (size_t)ST_MAX_VALUE + 1}, 0), NX_LIMIT);
  cr_assert_eq(st_txn_commit(t), NX_OK, "%s", nx_err_msg());
  cr_assert_eq(st_close(e), NX_OK);

  e = open_env(path, 4096);
  assert_check(e);
  cr_assert_eq(st_txn_begin(e, true, &t), NX_OK);
  cr_assert_eq(st_tree_open(t, "docs", false, &tr), NX_OK);
  st_val v;
  cr_assert_eq(st_get(t, tr, sv("big"), &v), NX_OK);
  cr_assert_eq(v.n, big);
  cr_assert(memcmp(v.p, buf, big) == 0, "16 MiB value differs");
  st_cursor *c;
  cr_assert_eq(st_cursor_open(t, tr, &c), NX_OK);
  cr_assert_eq(st_cursor_seek(c, sv("half"), ST_SEEK_EQ), NX_OK);
  st_val k;
  cr_assert_eq(st_cursor_get(c, &k, &v), NX_OK);
  cr_assert(v.n == big / 2 + 3 && memcmp(v.p, buf2, v.n) == 0);
  st_cursor_close(c);
  cr_assert_eq(st_del(t, tr, sv("big")), NX_OK);
  cr_assert_eq(st_put(t, tr, sv("half"), sv("now small"), 0), NX_OK);
  cr_assert_eq(st_txn_commit(t), NX_OK);
  cr_assert_eq(st_checkpoint(e, NX_CHECKPOINT_FULL), NX_OK);
  assert_check(e);
  nx_stats s;
  st_stats(e, &s);
  /* the 24 MiB of chains are free again */
  cr_assert_geq(s.pages_free * 4096, (uint64_t)big, "free pages %llu", (unsigned long long)s.pages_free);
  cr_assert_eq(st_close(e), NX_OK);
  free(buf);
  free(buf2);
  rm_tmp();
}

Test(storage_api, counts_and_cursors_after_writes) {
  st_env *e = open_env(":memory:", 16384);
  st_txn *t;
  st_tree tr;
  cr_assert_eq(st_txn_begin(e, true, &t), NX_OK);
  cr_assert_eq(st_tree_open(t, "t", true, &tr), NX_OK);
  char k[16];
  uint64_t n;
  for (int i = 0; i < 5000; i++) {
    snprintf(k, sizeof k, "%06d", i);
    cr_assert_eq(st_put(t, tr, sv(k), sv("v"), ST_NOOVERWRITE), NX_OK);
  }
  cr_assert_eq(st_put(t, tr, sv("000001"), sv("w"), ST_NOOVERWRITE), NX_EXISTS);
  cr_assert_eq(st_put(t, tr, sv("000001"), sv("w"), 0), NX_OK);
  st_tree_count(t, tr, &n);
  cr_assert_eq(n, 5000);
  /* delete every entry the cursor visits, re-seeking after each write */
  st_cursor *c;
  cr_assert_eq(st_cursor_open(t, tr, &c), NX_OK);
  int deleted = 0;
  int rc = st_cursor_seek(c, sv("001000"), ST_SEEK_GE);
  while (rc == NX_OK) {
    st_val kk;
    cr_assert_eq(st_cursor_get(c, &kk, NULL), NX_OK);
    char key[16];
    memcpy(key, kk.p, kk.n);
    key[kk.n] = 0;
    if (strcmp(key, "002000") >= 0) break;
    cr_assert_eq(st_del(t, tr, sv(key)), NX_OK);
    deleted++;
    rc = st_cursor_seek(c, sv(key), ST_SEEK_GE);
  }
  cr_assert_eq(deleted, 1000);
  cr_assert_eq(st_cursor_seek(c, sv("001500"), ST_SEEK_LE), NX_OK);
  st_val kk;
  cr_assert_eq(st_cursor_get(c, &kk, NULL), NX_OK);
  cr_assert(kk.n == 6 && memcmp(kk.p, "000999", 6) == 0);
  st_cursor_close(c);
  st_tree_count(t, tr, &n);
  cr_assert_eq(n, 4000);
  cr_assert_eq(st_txn_commit(t), NX_OK);
  assert_check(e);
  cr_assert_eq(st_close(e), NX_OK);
}

/* st_check's page accounting: a page neither reachable nor free (leaked), and a page both
 * reachable and free, are both NX_CORRUPT. The damage is done through the pager directly. */
Test(storage_api, check_reports_leaked_and_doubly_used_pages) {
  mkdir_tmp();
  char path[300];
  path_in(path, sizeof path, "acct.db");
  for (int kind = 0; kind < 2; kind++) {
    st_env *e = open_env(path, 4096);
    st_txn *t;
    st_tree tr;
    cr_assert_eq(st_txn_begin(e, true, &t), NX_OK);
    cr_assert_eq(st_tree_open(t, kind ? "b" : "a", true, &tr), NX_OK);
    for (int i = 0; i < 300; i++) {
      char k[16];
      snprintf(k, sizeof k, "%05d", i);
      cr_assert_eq(st_put(t, tr, sv(k), sv("some value"), 0), NX_OK);
    }
    cr_assert_eq(st_txn_commit(t), NX_OK);
    assert_check(e);
    cr_assert_eq(st_close(e), NX_OK);

    nx_open_opts o = NX_OPEN_OPTS_INIT;
    pager *p;
    pg_txn *pt;
    cr_assert_eq(pager_open(path, &o, &p), NX_OK, "%s", nx_err_msg());
    cr_assert_eq(pager_begin(p, true, &pt), NX_OK);
    if (kind == 0) {
      pg_page pg;
      cr_assert_eq(pg_alloc(pt, PG_T_LEAF, &pg), NX_OK); /* allocated, never referenced */
      pg_release(pt, &pg);
    } else {
      uint32_t catalog_root = nx_get32(pg_roots(pt)); /* still referenced by the roots */
      cr_assert_gt(catalog_root, 1);
      cr_assert_eq(pg_free(pt, catalog_root), NX_OK);
    }
    cr_assert_eq(pager_commit(pt), NX_OK);
    cr_assert_eq(pager_close(p), NX_OK);

    e = open_env(path, 4096);
    cr_assert_eq(st_check(e), NX_CORRUPT, "kind %d: damage not found", kind);
    cr_assert(strstr(nx_err_msg(), kind ? "both reachable and free" : "leaked") != NULL, "message: %s", nx_err_msg());
    int rc = st_close(e); /* the file is damaged on purpose: only a clean close of kind 0 is required */
    if (kind == 0) cr_assert_eq(rc, NX_OK, "close: %s", nx_err_msg());
    char db[300];
    snprintf(db, sizeof db, "rm -f '%s'*", path);
    cr_assert_eq(system(db), 0);
  }
  rm_tmp();
}

/* The N-th allocation fails, for every N of a small write workload in turn (STYLE 22): the call
 * fails cleanly (NX_NOMEM), the transaction refuses further writes until aborted, nothing leaks
 * (ASan), and after reopening the committed data is intact and the integrity walk passes.
 * (It first found a commit that reported NX_NOMEM after writing its commit record; the pager now
 * reserves that memory before the record.) */
Test(storage_api, allocation_failures_leave_committed_data_intact) {
  mkdir_tmp();
  char path[300];
  path_in(path, sizeof path, "alloc.db");
  st_env *e = open_env(path, 4096);
  st_txn *t;
  st_tree tr;
  char k[16];
  static uint8_t big[20000];
  memset(big, 'B', sizeof big);
  cr_assert_eq(st_txn_begin(e, true, &t), NX_OK);
  cr_assert_eq(st_tree_open(t, "base", true, &tr), NX_OK);
  for (int i = 0; i < 100; i++) {
    snprintf(k, sizeof k, "%05d", i);
    cr_assert_eq(st_put(t, tr, sv(k), sv("base value"), 0), NX_OK);
  }
  cr_assert_eq(st_txn_commit(t), NX_OK);
  cr_assert_eq(st_close(e), NX_OK);
  uint32_t n, failures = 0;
  for (n = 1; n < 100000; n++) {
    e = open_env(path, 4096);
    nx_alloc_fail_nth(n);
    int rc = st_txn_begin(e, true, &t);
    if (rc == NX_OK) rc = st_tree_open(t, "w", true, &tr);
    for (int i = 0; rc == NX_OK && i < 1500; i++) {
      snprintf(k, sizeof k, "%05d", i);
      rc = st_put(t, tr, sv(k), i == 150 ? (st_val){big, sizeof big} : sv("value of w"), 0);
    }
    for (int i = 0; rc == NX_OK && i < 1500; i += 6) {
      snprintf(k, sizeof k, "%05d", i);
      rc = st_del(t, tr, sv(k));
    }
    if (rc == NX_OK) {
      rc = st_txn_commit(t);
    } else {
      cr_assert_eq(rc, NX_NOMEM, "N=%u: %s", n, nx_err_msg());
      if (t) {
        /* after a failed write the txn takes nothing but an abort */
        cr_assert_neq(st_put(t, tr, sv("x"), sv("y"), 0), NX_OK);
        st_txn_abort(t);
      }
    }
    bool fired = nx_alloc_fault_fired();
    nx_alloc_fail_nth(0);
    char failmsg[256];
    snprintf(failmsg, sizeof failmsg, "%s", nx_err_msg());
    if (rc != NX_OK) {
      cr_assert(fired, "N=%u: failed without an injected fault: %s", n, nx_err_msg());
      failures++;
    }
    st_close(e);
    e = open_env(path, 4096);
    assert_check(e);
    uint64_t cnt;
    cr_assert_eq(st_txn_begin(e, true, &t), NX_OK);
    cr_assert_eq(st_tree_open(t, "base", false, &tr), NX_OK);
    cr_assert_eq(st_tree_count(t, tr, &cnt), NX_OK);
    cr_assert_eq(cnt, 100, "N=%u: base tree has %llu entries", n, (unsigned long long)cnt);
    int wrc = st_tree_open(t, "w", false, &tr);
    if (rc == NX_OK) {
      cr_assert_eq(wrc, NX_OK);
      cr_assert_eq(st_tree_count(t, tr, &cnt), NX_OK);
      cr_assert_eq(cnt, 1250);
      cr_assert_eq(st_tree_drop(t, "w"), NX_OK);
    } else {
      cr_assert_eq(wrc, NX_NOTFOUND, "N=%u: a failed txn left tree w behind (it failed with: %s)", n, failmsg);
    }
    cr_assert_eq(st_txn_commit(t), NX_OK);
    cr_assert_eq(st_close(e), NX_OK);
    if (!fired) break;
  }
  cr_assert_gt(failures, 20);
  printf("allocation failures: %u injected, workload completed at N=%u\n", failures, n);
  rm_tmp();
}

/* The N-th allocation fails, for every N of a read workload (read txn, tree open, point reads of
 * inline and overflow values, cursor scans, tree listing): each call fails cleanly with NX_NOMEM
 * or succeeds, nothing leaks (ASan), and the data reads back whole afterwards. */
static int count_names(void *ctx, const char *name) {
  (void)name;
  (*(int *)ctx)++;
  return 0;
}

Test(storage_api, allocation_failures_on_the_read_path) {
  st_env *e = open_env(":memory:", 4096);
  st_txn *t;
  st_tree tr;
  static uint8_t big[50000];
  memset(big, 'R', sizeof big);
  char k[16];
  cr_assert_eq(st_txn_begin(e, true, &t), NX_OK);
  cr_assert_eq(st_tree_open(t, "r", true, &tr), NX_OK);
  for (int i = 0; i < 400; i++) {
    snprintf(k, sizeof k, "%05d", i);
    cr_assert_eq(st_put(t, tr, sv(k), i % 100 == 7 ? (st_val){big, sizeof big} : sv("small"), 0), NX_OK);
  }
  cr_assert_eq(st_txn_commit(t), NX_OK);
  uint32_t n, failures = 0;
  for (n = 1; n < 10000; n++) {
    nx_alloc_fail_nth(n);
    int seen = 0, names = 0;
    int rc = st_txn_begin(e, false, &t);
    if (rc == NX_OK) {
      rc = st_tree_open(t, "r", false, &tr);
      st_val v;
      for (int i = 0; rc == NX_OK && i < 400; i += 50) {
        snprintf(k, sizeof k, "%05d", i + 7);
        rc = st_get(t, tr, sv(k), &v);
        if (rc == NX_OK) cr_assert_eq(v.n, i % 100 == 0 ? sizeof big : 5);
      }
      st_cursor *c = NULL;
      if (rc == NX_OK) rc = st_cursor_open(t, tr, &c);
      if (rc == NX_OK) {
        for (rc = st_cursor_first(c); rc == NX_OK; rc = st_cursor_next(c)) {
          st_val kk, vv;
          rc = st_cursor_get(c, &kk, &vv);
          if (rc) break;
          seen++;
        }
        if (rc == NX_NOTFOUND) rc = seen == 400 ? NX_OK : NX_ERROR;
      }
      st_cursor_close(c);
      if (rc == NX_OK) rc = st_tree_list(t, "", count_names, &names);
      st_txn_abort(t);
    }
    bool fired = nx_alloc_fault_fired();
    nx_alloc_fail_nth(0);
    if (rc != NX_OK) {
      cr_assert_eq(rc, NX_NOMEM, "N=%u: rc %d: %s", n, rc, nx_err_msg());
      cr_assert(fired);
      failures++;
    } else {
      cr_assert_eq(names, 1);
    }
    if (!fired) break;
  }
  cr_assert_gt(failures, 3);
  assert_check(e);
  cr_assert_eq(st_close(e), NX_OK);
}

Test(storage_api, cursor_outliving_its_txn_is_dead_not_dangling) {
  st_env *e = open_env(":memory:", 4096);
  st_txn *t;
  st_tree tr;
  cr_assert_eq(st_txn_begin(e, true, &t), NX_OK);
  cr_assert_eq(st_tree_open(t, "t", true, &tr), NX_OK);
  cr_assert_eq(st_put(t, tr, sv("a"), sv("1"), 0), NX_OK);
  cr_assert_eq(st_put(t, tr, sv("b"), sv("2"), 0), NX_OK);
  st_cursor *c1, *c2;
  cr_assert_eq(st_cursor_open(t, tr, &c1), NX_OK);
  cr_assert_eq(st_cursor_open(t, tr, &c2), NX_OK);
  cr_assert_eq(st_cursor_first(c1), NX_OK);
  cr_assert_eq(st_cursor_last(c2), NX_OK);
  st_cursor_close(c2); /* closing one in the middle of the list */
  cr_assert_eq(st_txn_commit(t), NX_OK);
  st_val k, v;
  cr_assert_eq(st_cursor_get(c1, &k, &v), NX_MISUSE);
  cr_assert_eq(st_cursor_next(c1), NX_MISUSE);
  cr_assert_eq(st_cursor_seek(c1, sv("a"), ST_SEEK_GE), NX_MISUSE);
  st_cursor_close(c1);
  cr_assert_eq(st_txn_begin(e, false, &t), NX_OK);
  cr_assert_eq(st_tree_open(t, "t", false, &tr), NX_OK);
  cr_assert_eq(st_cursor_open(t, tr, &c1), NX_OK);
  cr_assert_eq(st_cursor_first(c1), NX_OK);
  st_txn_abort(t);
  st_cursor_close(c1);
  assert_check(e);
  cr_assert_eq(st_close(e), NX_OK);
}

/* Reads the hot keys (every `stride`-th of n) in one read txn; returns the cache misses it caused. */
static uint64_t read_hot(st_env *e, uint32_t n, uint32_t stride) {
  nx_stats a, b;
  cr_assert_eq(st_stats(e, &a), NX_OK);
  st_txn *r;
  cr_assert_eq(st_txn_begin(e, false, &r), NX_OK);
  st_tree tr;
  cr_assert_eq(st_tree_open(r, "big", false, &tr), NX_OK);
  char k[16];
  for (uint32_t i = 0; i < n; i += stride) {
    snprintf(k, sizeof k, "k%08u", i);
    st_val v;
    cr_assert_eq(st_get(r, tr, sv(k), &v), NX_OK, "%s", k);
    cr_assert_eq(v.n, 400u);
  }
  st_txn_abort(r);
  cr_assert_eq(st_stats(e, &b), NX_OK);
  return b.cache_misses - a.cache_misses;
}

/* The page cache resists scans: a full scan of a tree four times the cache does not evict the
 * pages that point reads keep using (sequential-cursor pages enter the cache cold). */
Test(storage_api, full_scan_does_not_flush_the_working_set) {
  mkdir_tmp();
  char path[300];
  path_in(path, sizeof path, "scan.db");
  nx_open_opts o = NX_OPEN_OPTS_INIT;
  o.durability = NX_DURABILITY_OFF;
  o.cache_bytes = 1024u * 4096u; /* 1024 pages (16 per cache stripe) */
  st_env *e;
  cr_assert_eq(st_open(path, &o, &e), NX_OK, "%s", nx_err_msg());
  const uint32_t n = 36000, stride = 400; /* ~4000 leaves of ~9 entries; 90 hot keys */
  uint8_t val[400];
  memset(val, 'v', sizeof val);
  char k[16];
  for (uint32_t b0 = 0; b0 < n; b0 += 1000) {
    st_txn *w;
    cr_assert_eq(st_txn_begin(e, true, &w), NX_OK);
    st_tree tr;
    cr_assert_eq(st_tree_open(w, "big", true, &tr), NX_OK);
    for (uint32_t i = b0; i < b0 + 1000; i++) {
      snprintf(k, sizeof k, "k%08u", i);
      cr_assert_eq(st_put(w, tr, sv(k), (st_val){val, sizeof val}, 0), NX_OK);
    }
    cr_assert_eq(st_txn_commit(w), NX_OK);
  }
  /* warm the hot set (twice: the second pass must hit) */
  (void)read_hot(e, n, stride);
  uint64_t again = read_hot(e, n, stride);
  cr_assert_eq(again, 0, "%llu misses on the warm hot set", (unsigned long long)again);
  /* scan everything, in a read txn of its own */
  st_txn *r;
  cr_assert_eq(st_txn_begin(e, false, &r), NX_OK);
  st_tree tr;
  cr_assert_eq(st_tree_open(r, "big", false, &tr), NX_OK);
  st_cursor *c;
  cr_assert_eq(st_cursor_open(r, tr, &c), NX_OK);
  uint32_t seen = 0;
  nx_stats a, b;
  cr_assert_eq(st_stats(e, &a), NX_OK);
  for (int rc = st_cursor_first(c); rc == NX_OK; rc = st_cursor_next(c)) seen++;
  st_cursor_close(c);
  st_txn_abort(r); /* a txn's hits and misses are added to the totals when it ends */
  cr_assert_eq(st_stats(e, &b), NX_OK);
  cr_assert_eq(seen, n);
  uint64_t scan_misses = b.cache_misses - a.cache_misses;
  cr_assert_gt(scan_misses, 2500, "the tree must not fit the cache (%llu misses)", (unsigned long long)scan_misses);
  /* the hot pages are still cached: at most a handful of the 90 reads miss */
  uint64_t m = read_hot(e, n, stride);
  cr_log_info("scan: %llu misses; hot set re-read after it: %llu misses of %u reads",
              (unsigned long long)scan_misses, (unsigned long long)m, n / stride);
  cr_assert_leq(m, 5, "the scan flushed the working set: %llu of %u hot reads missed", (unsigned long long)m,
                n / stride);
  st_close(e);
  rm_tmp();
}

/* ---- lock-free point reads (pager_cache.c notes 6 and 7) ----
 * Point readers in two threads, a 64-page cache that evicts on nearly every read, and a writer
 * that replaces cached pages in every commit and checkpoints: each get must return the value of
 * its own snapshot. One reader begins a new txn each time, the other restarts one parked txn,
 * whose read hints (note 7) then meet pages evicted and replaced under other snapshots. The writer's round r rewrites the keys with i % 7 == r % 7 as "i:r", and a
 * marker key holds the last round, so a snapshot that reads round R expects key i to hold
 * "i:R'" with R' the last round <= R of its residue class ("i:-1" before any). */
#define PR_KEYS 3000
#define PR_ROUNDS 60

typedef struct pr_arg {
  st_env *e;
  uint32_t seed;
  int bad, gets, txns;
  char first_bad[96];
  _Atomic int *stop;
  bool keep; /* one parked txn restarted on each new snapshot: its read hints outlive snapshots */
} pr_arg;

static int pr_expected_round(int i, int R) {
  int r = R - (((R - i % 7) % 7) + 7) % 7;
  return r >= 0 ? r : -1;
}

static void *point_reader(void *arg) {
  pr_arg *a = arg;
  st_txn *r = NULL;
  while (!atomic_load(a->stop) || a->txns < 50) {
    st_tree t;
    bool kept;
    if (r ? st_txn_restart(r, false, &kept) != NX_OK : st_txn_begin(a->e, false, &r) != NX_OK) {
      a->bad++;
      break;
    }
    if (st_tree_open(r, "t", false, &t) != NX_OK) {
      a->bad++;
      st_txn_abort(r);
      r = NULL;
      break;
    }
    st_val m;
    int R = -2;
    if (st_get(r, t, sv("round"), &m) == NX_OK) {
      char b[16] = {0};
      memcpy(b, m.p, m.n < 15 ? m.n : 15);
      R = atoi(b);
    }
    /* the parked-txn reader also reads in two steps: it locates the next key's leaf (holding
     * the leaf through its second hazard slot while it reads the slot array) before reading
     * the current key from the leaf located one step earlier */
    st_loc loc[2];
    char kbuf[2][16];
    a->seed = a->seed * 1103515245u + 12345u;
    snprintf(kbuf[0], sizeof kbuf[0], "%06d", (int)((a->seed >> 8) % PR_KEYS));
    if (a->keep && st_locate(r, t, sv(kbuf[0]), &loc[0]) != NX_OK) a->bad++;
    for (int j = 0; j < 200; j++) {
      char *k = kbuf[j & 1], want[32];
      a->seed = a->seed * 1103515245u + 12345u;
      snprintf(kbuf[(j + 1) & 1], sizeof kbuf[0], "%06d", (int)((a->seed >> 8) % PR_KEYS));
      int i = atoi(k);
      snprintf(want, sizeof want, "%d:%d", i, pr_expected_round(i, R));
      st_val v;
      int rc;
      if (a->keep) {
        if (st_locate(r, t, sv(kbuf[(j + 1) & 1]), &loc[(j + 1) & 1]) != NX_OK) a->bad++;
        rc = st_get_located(r, t, &loc[j & 1], sv(k), &v);
      } else {
        rc = st_get(r, t, sv(k), &v);
      }
      a->gets++;
      if (rc != NX_OK || v.n != strlen(want) || memcmp(v.p, want, v.n) != 0) {
        if (!a->bad++)
          snprintf(a->first_bad, sizeof a->first_bad, "key %s rc %d: got %.*s, want %s (round %d)", k, rc,
                   rc == NX_OK ? (int)v.n : 0, rc == NX_OK ? (const char *)v.p : "", want, R);
      }
    }
    if (a->keep) {
      st_txn_abort_keep(r);
    } else {
      st_txn_abort(r);
      r = NULL;
    }
    a->txns++;
  }
  st_txn_free(r); /* parked (or NULL) */
  return NULL;
}

Test(storage_api, lock_free_point_reads_see_their_snapshot_under_eviction_and_commits) {
  mkdir_tmp();
  char path[300];
  path_in(path, sizeof path, "pr.db");
  nx_open_opts o = NX_OPEN_OPTS_INIT;
  o.durability = NX_DURABILITY_OFF;
  o.cache_bytes = 64 * 4096; /* the floor: most reads evict */
  st_env *e;
  cr_assert_eq(st_open(path, &o, &e), NX_OK, "%s", nx_err_msg());
  st_txn *w;
  st_tree tw;
  char k[16], v[32];
  cr_assert_eq(st_txn_begin(e, true, &w), NX_OK);
  cr_assert_eq(st_tree_open(w, "t", true, &tw), NX_OK);
  for (int i = 0; i < PR_KEYS; i++) {
    snprintf(k, sizeof k, "%06d", i);
    snprintf(v, sizeof v, "%d:-1", i);
    cr_assert_eq(st_put(w, tw, sv(k), sv(v), 0), NX_OK);
  }
  cr_assert_eq(st_put(w, tw, sv("round"), sv("-1"), 0), NX_OK);
  cr_assert_eq(st_txn_commit(w), NX_OK);
  _Atomic int stop = 0;
  pr_arg a[2] = {{e, 1, 0, 0, 0, "", &stop, false}, {e, 2, 0, 0, 0, "", &stop, true}};
  pthread_t th[2];
  for (int i = 0; i < 2; i++) cr_assert_eq(pthread_create(&th[i], NULL, point_reader, &a[i]), 0);
  for (int r = 0; r < PR_ROUNDS; r++) {
    cr_assert_eq(st_txn_begin(e, true, &w), NX_OK);
    cr_assert_eq(st_tree_open(w, "t", false, &tw), NX_OK);
    for (int i = r % 7; i < PR_KEYS; i += 7) {
      snprintf(k, sizeof k, "%06d", i);
      snprintf(v, sizeof v, "%d:%d", i, r);
      cr_assert_eq(st_put(w, tw, sv(k), sv(v), 0), NX_OK);
    }
    snprintf(v, sizeof v, "%d", r);
    cr_assert_eq(st_put(w, tw, sv("round"), sv(v), 0), NX_OK);
    cr_assert_eq(st_txn_commit(w), NX_OK);
    if (r % 5 == 4) cr_assert_eq(st_checkpoint(e, NX_CHECKPOINT_PASSIVE), NX_OK);
  }
  atomic_store(&stop, 1);
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < 2; i++) {
    cr_assert_eq(a[i].bad, 0, "reader %d: %d bad of %d gets (%s)", i, a[i].bad, a[i].gets, a[i].first_bad);
    cr_assert_geq(a[i].txns, 50);
  }
  assert_check(e);
  cr_assert_eq(st_close(e), NX_OK);
  rm_tmp();
}

/* Storage format 2 changed the leaf cells; a file whose roots say format 1 is refused with
 * NX_VERSION and a message saying what to do, never read with the wrong cell layout. */
Test(storage_api, earlier_storage_format_is_refused_with_a_clear_message) {
  mkdir_tmp();
  char path[300];
  path_in(path, sizeof path, "old.db");
  st_env *e = open_env(path, 4096);
  st_txn *w;
  st_tree t;
  cr_assert_eq(st_txn_begin(e, true, &w), NX_OK);
  cr_assert_eq(st_tree_open(w, "t", true, &t), NX_OK);
  cr_assert_eq(st_put(w, t, sv("k"), sv("v"), 0), NX_OK);
  cr_assert_eq(st_txn_commit(w), NX_OK);
  cr_assert_eq(st_close(e), NX_OK);
  /* rewrite the roots' format field (offset 28) to 1 through the pager */
  nx_open_opts o = NX_OPEN_OPTS_INIT;
  pager *p;
  cr_assert_eq(pager_open(path, &o, &p), NX_OK, "%s", nx_err_msg());
  pg_txn *pt;
  cr_assert_eq(pager_begin(p, true, &pt), NX_OK);
  uint8_t roots[PG_ROOTS];
  memcpy(roots, pg_roots(pt), PG_ROOTS);
  cr_assert_eq(nx_get32(roots + 28), 2);
  nx_put32(roots + 28, 1);
  pg_set_roots(pt, roots);
  cr_assert_eq(pager_commit(pt), NX_OK, "%s", nx_err_msg());
  cr_assert_eq(pager_close(p), NX_OK);
  int rc = st_open(path, &o, &e);
  if (rc == NX_OK) {
    rc = st_txn_begin(e, false, &w);
    if (rc == NX_OK) st_txn_abort(w);
    st_close(e);
  }
  cr_assert_eq(rc, NX_VERSION, "%s", nx_code_name(rc));
  cr_assert(strstr(nx_err_msg(), "storage format 1") && strstr(nx_err_msg(), "earlier NexusLite"), "%s",
            nx_err_msg());
  rm_tmp();
}

/* ---- the background checkpointer (wasp.c, "background checkpoint") ----
 * Commits with a small checkpoint threshold, so that the thread's passes run between and during
 * them, and a reader that checks its snapshot meanwhile: every commit stays readable, the
 * checkpoints happen, and the file reopens (without the thread) to the same content. */
#define BG_ROUNDS 300

static void bg_key(char *k, size_t n, int i) { snprintf(k, n, "k%05d", i); }

static void *bg_reader(void *arg) {
  pr_arg *a = arg;
  while (!atomic_load(a->stop)) {
    st_txn *r;
    st_tree t;
    if (st_txn_begin(a->e, false, &r) != NX_OK) {
      a->bad++;
      break;
    }
    if (st_tree_open(r, "t", false, &t) == NX_OK) {
      /* round R's keys 5R..5R+4 hold "R"; a snapshot that sees round R sees every round before */
      st_val m;
      int R = st_get(r, t, sv("round"), &m) == NX_OK ? atoi((const char *)m.p) : -1;
      for (int j = 0; j < 50 && R >= 0; j++) {
        a->seed = a->seed * 1103515245u + 12345u;
        int i = (int)((a->seed >> 8) % (uint32_t)(5 * (R + 1)));
        char k[16], want[16];
        bg_key(k, sizeof k, i);
        snprintf(want, sizeof want, "%d", i / 5);
        st_val v;
        int rc = st_get(r, t, sv(k), &v);
        a->gets++;
        if (rc != NX_OK || v.n != strlen(want) || memcmp(v.p, want, v.n) != 0) {
          if (!a->bad++) snprintf(a->first_bad, sizeof a->first_bad, "key %s rc %d (round %d)", k, rc, R);
        }
      }
    }
    st_txn_abort(r);
    a->txns++;
  }
  return NULL;
}

Test(storage_api, background_checkpoints_keep_every_commit) {
  mkdir_tmp();
  char path[300];
  path_in(path, sizeof path, "bg.db");
  nx_open_opts o = NX_OPEN_OPTS_INIT;
  o.durability = NX_DURABILITY_FULL; /* commits wait for fsyncs: the thread keeps up with them */
  o.checkpoint_bytes = 64 * 1024;
  o.checkpoint_thread = true;
  st_env *e;
  cr_assert_eq(st_open(path, &o, &e), NX_OK, "%s", nx_err_msg());
  st_txn *w;
  st_tree tw;
  cr_assert_eq(st_txn_begin(e, true, &w), NX_OK);
  cr_assert_eq(st_tree_open(w, "t", true, &tw), NX_OK);
  cr_assert_eq(st_txn_commit(w), NX_OK);
  _Atomic int stop = 0;
  pr_arg a = {e, 7, 0, 0, 0, "", &stop, false};
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, bg_reader, &a), 0);
  char k[16], v[16];
  for (int r = 0; r < BG_ROUNDS; r++) {
    cr_assert_eq(st_txn_begin(e, true, &w), NX_OK);
    cr_assert_eq(st_tree_open(w, "t", false, &tw), NX_OK);
    snprintf(v, sizeof v, "%d", r);
    for (int i = 5 * r; i < 5 * r + 5; i++) {
      bg_key(k, sizeof k, i);
      cr_assert_eq(st_put(w, tw, sv(k), sv(v), 0), NX_OK);
    }
    cr_assert_eq(st_put(w, tw, sv("round"), sv(v), 0), NX_OK);
    cr_assert_eq(st_txn_commit(w), NX_OK, "round %d: %s", r, nx_err_msg());
  }
  atomic_store(&stop, 1);
  pthread_join(th, NULL);
  cr_assert_eq(a.bad, 0, "reader: %d bad of %d gets (%s)", a.bad, a.gets, a.first_bad);
  nx_stats st;
  cr_assert_eq(st_stats(e, &st), NX_OK);
  cr_log_info("checkpoints: %llu in %d commits, %llu by the thread; reader %d txns",
              (unsigned long long)st.checkpoints, BG_ROUNDS, (unsigned long long)st.checkpoints_background, a.txns);
  cr_assert_geq(st.checkpoints_background, 3, "only %llu background checkpoints ran (%llu in all)",
                (unsigned long long)st.checkpoints_background, (unsigned long long)st.checkpoints);
  assert_check(e);
  cr_assert_eq(st_close(e), NX_OK, "%s", nx_err_msg());
  o.checkpoint_thread = false;
  cr_assert_eq(st_open(path, &o, &e), NX_OK, "%s", nx_err_msg());
  cr_assert_eq(st_txn_begin(e, false, &w), NX_OK);
  cr_assert_eq(st_tree_open(w, "t", false, &tw), NX_OK);
  for (int i = 0; i < 5 * BG_ROUNDS; i++) {
    bg_key(k, sizeof k, i);
    snprintf(v, sizeof v, "%d", i / 5);
    st_val got;
    cr_assert_eq(st_get(w, tw, sv(k), &got), NX_OK, "key %s lost", k);
    cr_assert(got.n == strlen(v) && memcmp(got.p, v, got.n) == 0, "key %s: %.*s, want %s", k, (int)got.n,
              (const char *)got.p, v);
  }
  st_txn_abort(w);
  assert_check(e);
  cr_assert_eq(st_close(e), NX_OK);
  rm_tmp();
}

/* Point reads in a read txn descend through the pin cache's separator words (btree.c
 * pc_branch_find): keys that are prefixes of each other, that share their first 8 bytes or
 * differ only after them, and empty-padded short keys must all be found, and absent keys not. */
static size_t pfx_key(char *k, int i) {
  static const char *stems[] = {"", "a", "ab", "abcdefgh", "abcdefghi", "abcdefgh\x01", "abcdefg", "zz"};
  int n = snprintf(k, 40, "%s", stems[i % 8]);
  for (int j = i / 8; j > 0; j /= 3) k[n++] = (char)('0' + j % 3); /* varying tails, some empty */
  k[n] = '\0';
  return (size_t)n;
}

Test(storage_api, point_reads_find_keys_that_share_prefixes_through_cached_branches) {
  mkdir_tmp();
  char path[300];
  path_in(path, sizeof path, "pfx.db");
  st_env *e = open_env(path, 4096);
  st_txn *w;
  st_tree t;
  char k[48];
  char v[300];
  memset(v, 'v', sizeof v);
  cr_assert_eq(st_txn_begin(e, true, &w), NX_OK);
  cr_assert_eq(st_tree_open(w, "t", true, &t), NX_OK);
  for (int i = 0; i < 24000; i += 2) { /* even ones stored; 300-byte values: a 3-level tree */
    size_t n = pfx_key(k, i);
    int rc = st_put(w, t, (st_val){(const uint8_t *)k, n}, (st_val){(const uint8_t *)v, 100 + (size_t)i % 200}, 0);
    cr_assert(rc == NX_OK, "put %d: %s", i, nx_err_msg());
  }
  cr_assert_eq(st_txn_commit(w), NX_OK);
  cr_assert_eq(st_txn_begin(e, false, &w), NX_OK);
  cr_assert_eq(st_tree_open(w, "t", false, &t), NX_OK);
  for (int pass = 0; pass < 2; pass++) /* the second pass hits the cached branches */
    for (int i = 0; i < 24000; i++) {
      size_t n = pfx_key(k, i);
      char k2[48];
      bool stored = false;
      for (int j = i % 2 ? i - 1 : i; j >= 0 && j >= i - 1 && !stored; j -= 2) /* a duplicate key of an even i? */
        stored = j % 2 == 0 && pfx_key(k2, j) == n && memcmp(k2, k, n) == 0;
      st_val got;
      int rc = st_get(w, t, (st_val){(const uint8_t *)k, n}, &got);
      if (i % 2 == 0) cr_assert_eq(rc, NX_OK, "key %d (%zu bytes) not found", i, n);
      else if (!stored) cr_assert_eq(rc, NX_NOTFOUND, "absent key %d (%zu bytes): %d", i, n, rc);
    }
  st_txn_abort(w);
  cr_assert_eq(st_close(e), NX_OK);
  rm_tmp();
}

/* Reads in key order start their branch search from the child the last search chose (btree.c
 * finger_find) and gallop forward. Every order and stride must find exactly the stored keys:
 * ascending, descending, strides from 1 to 5000, for keys whose first 8 bytes all differ (the
 * words settle every step) and for keys that share them in runs of ten (the cells decide). */
static size_t ord_key(char *k, int fam, uint32_t i) {
  if (fam == 0) { /* 8-byte big-endian words, all different */
    for (int b = 0; b < 8; b++) k[b] = (char)((uint64_t)i * 0x10001u >> (56 - 8 * b));
    return 8;
  }
  return (size_t)snprintf(k, 24, "k%08u", i); /* 9 bytes: runs of ten share the first 8 */
}

Test(storage_api, point_reads_in_key_order_from_the_last_child_find_every_key) {
  mkdir_tmp();
  char path[300];
  path_in(path, sizeof path, "order.db");
  st_env *e = open_env(path, 4096);
  st_txn *w;
  st_tree t[2];
  char k[24], v[200];
  memset(v, 'v', sizeof v);
  const uint32_t N = 30000; /* even i stored; 200-byte values: three levels */
  cr_assert_eq(st_txn_begin(e, true, &w), NX_OK);
  cr_assert_eq(st_tree_open(w, "words", true, &t[0]), NX_OK);
  cr_assert_eq(st_tree_open(w, "cells", true, &t[1]), NX_OK);
  for (int fam = 0; fam < 2; fam++)
    for (uint32_t i = 0; i < N; i += 2) {
      size_t n = ord_key(k, fam, i);
      cr_assert_eq(st_put(w, t[fam], (st_val){(const uint8_t *)k, n}, (st_val){(const uint8_t *)v, sizeof v}, 0), NX_OK);
    }
  cr_assert_eq(st_txn_commit(w), NX_OK);
  cr_assert_eq(st_txn_begin(e, false, &w), NX_OK);
  cr_assert_eq(st_tree_open(w, "words", false, &t[0]), NX_OK);
  cr_assert_eq(st_tree_open(w, "cells", false, &t[1]), NX_OK);
  static const uint32_t strides[] = {1, 3, 37, 501, 5003};
  uint64_t reads = 0;
  for (int fam = 0; fam < 2; fam++)
    for (size_t s = 0; s < sizeof strides / sizeof *strides; s++)
      for (int down = 0; down < 2; down++)
        for (uint32_t start = 0; start < (strides[s] > 1 ? 2u : 1u); start++)
          for (uint32_t x = start; x < N; x += strides[s]) {
            uint32_t i = down ? N - 1 - x : x;
            size_t n = ord_key(k, fam, i);
            st_val got;
            int rc = st_get(w, t[fam], (st_val){(const uint8_t *)k, n}, &got);
            reads++;
            if (i % 2 == 0)
              cr_assert(rc == NX_OK && got.n == sizeof v, "family %d stride %u %s: key %u not found (%d)", fam,
                        strides[s], down ? "down" : "up", i, rc);
            else
              cr_assert_eq(rc, NX_NOTFOUND, "family %d stride %u %s: absent key %u found", fam, strides[s],
                           down ? "down" : "up", i);
          }
  cr_assert_gt(reads, 200000);
  st_txn_abort(w);
  cr_assert_eq(st_close(e), NX_OK);
  rm_tmp();
}
