// ctest: timeout=300
/*
 * test_pager.c: the pager and WASP at the page level: create and reopen, snapshots across commits
 * and checkpoints, free-page reuse that respects a long reader, spill, group commit, version and
 * lock refusal, and corruption of the main file and the log.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pager_testutil.h"

static bool asan_scale(void) {
  const char *s = getenv("NX_TEST_SCALE");
  return s && strcmp(s, "asan") == 0;
}

static pager *open_db(const char *path, nx_durability d, uint64_t cache, uint64_t ckpt) {
  nx_open_opts o = NX_OPEN_OPTS_INIT;
  o.durability = d;
  if (cache) o.cache_bytes = cache;
  if (ckpt) o.checkpoint_bytes = ckpt;
  pager *p = NULL;
  int rc = pager_open(path, &o, &p);
  cr_assert_eq(rc, NX_OK, "pager_open(%s): %s %s", path, nx_code_name(rc), nx_err_msg());
  return p;
}

static void step(pager *p, uint32_t extra) {
  int rc = pt_step(p, extra, NULL);
  cr_assert_eq(rc, NX_OK, "pt_step: %s %s", nx_code_name(rc), nx_err_msg());
}

static uint64_t verify(pager *p) {
  uint64_t c = 0;
  int rc = pt_verify(p, &c);
  cr_assert_eq(rc, NX_OK, "pt_verify: %s %s", nx_code_name(rc), nx_err_msg());
  return c;
}

Test(pager, create_commit_reopen_keeps_data) {
  char path[256];
  pt_tmpfile(path, sizeof path, "a.db");
  pager *p = open_db(path, NX_DURABILITY_FULL, 0, 0);
  for (int i = 0; i < 30; i++) step(p, (uint32_t)(i % 5));
  cr_assert_eq(verify(p), 30);
  nx_stats st;
  pager_stats(p, &st);
  cr_assert_eq(st.commits, 30);
  cr_assert_eq(st.txn_id, 30);
  cr_assert(st.fsyncs >= 30);
  cr_assert_eq(pager_close(p), NX_OK);
  p = open_db(path, NX_DURABILITY_FULL, 0, 0);
  cr_assert_eq(verify(p), 30);
  for (int i = 0; i < 5; i++) step(p, 2);
  cr_assert_eq(verify(p), 35);
  cr_assert_eq(pager_close(p), NX_OK);
  p = open_db(path, NX_DURABILITY_FULL, 0, 0);
  cr_assert_eq(verify(p), 35);
  cr_assert_eq(pager_close(p), NX_OK);
  pt_cleanup(path);
}

Test(pager, memory_database_works_without_files) {
  pager *p = open_db(":memory:", NX_DURABILITY_FULL, 0, 64 * 1024);
  int n = asan_scale() ? 100 : 200;
  for (int i = 0; i < n; i++) step(p, 3);
  cr_assert_eq(verify(p), (uint64_t)n);
  nx_stats st;
  pager_stats(p, &st);
  cr_assert(st.checkpoints > 0, "automatic checkpoints in memory too");
  cr_assert_eq(pager_close(p), NX_OK);
}

Test(pager, abort_leaves_no_trace) {
  char path[256];
  pt_tmpfile(path, sizeof path, "ab.db");
  pager *p = open_db(path, NX_DURABILITY_FULL, 0, 0);
  step(p, 1);
  nx_stats before;
  pager_stats(p, &before);
  pg_txn *t;
  cr_assert_eq(pager_begin(p, true, &t), NX_OK);
  for (int i = 0; i < 10; i++) {
    pg_page pg;
    cr_assert_eq(pg_alloc(t, PG_T_LEAF, &pg), NX_OK);
    pg_release(t, &pg);
  }
  uint8_t r[PG_ROOTS] = {9};
  pg_set_roots(t, r);
  pager_abort(t);
  cr_assert_eq(verify(p), 1);
  step(p, 1);
  cr_assert_eq(verify(p), 2);
  nx_stats after;
  pager_stats(p, &after);
  cr_assert_eq(after.txn_id, before.txn_id + 1, "an aborted txn consumes no txn id");
  cr_assert_eq(pager_close(p), NX_OK);
  p = open_db(path, NX_DURABILITY_FULL, 0, 0);
  cr_assert_eq(verify(p), 2);
  cr_assert_eq(pager_close(p), NX_OK);
  pt_cleanup(path);
}

Test(pager, reader_snapshot_survives_commits_and_checkpoints) {
  char path[256];
  pt_tmpfile(path, sizeof path, "snap.db");
  pager *p = open_db(path, NX_DURABILITY_NORMAL, 256 * 1024, 32 * 1024);
  for (int i = 0; i < 12; i++) step(p, 2);
  pg_txn *r;
  cr_assert_eq(pager_begin(p, false, &r), NX_OK);
  pt_state s0;
  pt_roots_get(pg_roots(r), &s0);
  cr_assert_eq(s0.counter, 12);
  /* many commits: every data page of the snapshot is rewritten and freed several times over */
  for (int i = 0; i < 100; i++) step(p, 4);
  cr_assert_eq(pager_checkpoint(p, NX_CHECKPOINT_FULL), NX_OK, "%s", nx_err_msg());
  nx_stats st;
  pager_stats(p, &st);
  cr_assert(st.checkpoints >= 2);
  /* the old snapshot still reads its pages intact */
  for (uint32_t i = 0; i < s0.n; i++) {
    pg_page d;
    cr_assert_eq(pg_get(r, s0.pg[i], 0, &d), NX_OK, "%s", nx_err_msg());
    cr_assert_eq(nx_get64(d.data + 24), 12 - i);
    pg_release(r, &d);
  }
  pager_abort(r);
  cr_assert_eq(verify(p), 112);
  cr_assert_eq(pager_close(p), NX_OK);
  pt_cleanup(path);
}

Test(pager, freed_pages_reused_only_after_the_long_reader_ends) {
  pager *p = open_db(":memory:", NX_DURABILITY_OFF, 0, 1u << 30);
  for (int i = 0; i < 12; i++) step(p, 0);
  pg_txn *r;
  cr_assert_eq(pager_begin(p, false, &r), NX_OK);
  for (int i = 0; i < 50; i++) {
    step(p, 0);
    if (i % 10 == 0) cr_assert_eq(pager_checkpoint(p, NX_CHECKPOINT_FULL), NX_OK, "%s", nx_err_msg());
  }
  nx_stats held;
  pager_stats(p, &held);
  /* with the reader alive nothing it can reach was reused: the file grew by one page per txn */
  cr_assert(held.pages_total >= 2 + 12 + 50, "pages %llu", (unsigned long long)held.pages_total);
  pager_abort(r);
  cr_assert_eq(pager_checkpoint(p, NX_CHECKPOINT_FULL), NX_OK, "%s", nx_err_msg());
  cr_assert_eq(pager_checkpoint(p, NX_CHECKPOINT_FULL), NX_OK, "%s", nx_err_msg());
  for (int i = 0; i < 50; i++) step(p, 0);
  nx_stats after;
  pager_stats(p, &after);
  cr_assert(after.pages_total <= held.pages_total + 2, "freed pages reused: %llu -> %llu",
            (unsigned long long)held.pages_total, (unsigned long long)after.pages_total);
  cr_assert_eq(verify(p), 112);
  cr_assert_eq(pager_close(p), NX_OK);
}

Test(pager, trailing_free_pages_given_back_at_checkpoint) {
  pager *p = open_db(":memory:", NX_DURABILITY_OFF, 0, 1u << 30);
  for (int i = 0; i < 12; i++) step(p, 0);
  step(p, 200); /* the newest data page owns 200 extras at the end of the file */
  nx_stats big;
  pager_stats(p, &big);
  for (int i = 0; i < 12; i++) {
    /* two checkpoints make the pages freed so far reusable: the small steps take low pages */
    cr_assert_eq(pager_checkpoint(p, NX_CHECKPOINT_FULL), NX_OK, "%s", nx_err_msg());
    cr_assert_eq(pager_checkpoint(p, NX_CHECKPOINT_FULL), NX_OK, "%s", nx_err_msg());
    step(p, 0);
  }
  /* the big page rotated out: its extras are free and trailing */
  for (int i = 0; i < 3; i++) cr_assert_eq(pager_checkpoint(p, NX_CHECKPOINT_TRUNCATE), NX_OK, "%s", nx_err_msg());
  nx_stats small;
  pager_stats(p, &small);
  cr_assert(small.pages_total < 40, "pages %llu -> %llu", (unsigned long long)big.pages_total,
            (unsigned long long)small.pages_total);
  cr_assert_eq(verify(p), 25);
  cr_assert_eq(pager_close(p), NX_OK);
}
