// ctest: timeout=120
/*
 * test_os.c: the OS layer: real files, in-memory files, locks naming the pid, the fault injector
 * (n-th call of a kind, short writes, counters, sync hook) and the power-loss simulator (durable
 * data and names survive; unsynced writes and undirsynced names go, per mode; dead handles).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "pager_testutil.h"

static void put(os_file *f, const char *s, uint64_t off) {
  cr_assert_eq(os_pwrite(f, s, strlen(s), off), NX_OK, "%s", nx_err_msg());
}

static void expect(os_file *f, const char *s, uint64_t off) {
  char buf[256];
  size_t got = 0;
  cr_assert_eq(os_pread(f, buf, strlen(s), off, &got), NX_OK, "%s", nx_err_msg());
  cr_assert_eq(got, strlen(s));
  cr_assert(memcmp(buf, s, got) == 0, "read %.*s, want %s", (int)got, buf, s);
}

static uint64_t size_of(os_file *f) {
  uint64_t n = 0;
  cr_assert_eq(os_size(f, &n), NX_OK);
  return n;
}

Test(os, real_file_write_read_truncate_rename_unlink) {
  char path[256], other[300];
  pt_tmpfile(path, sizeof path, "f.bin");
  snprintf(other, sizeof other, "%s.2", path);
  os_file *f;
  cr_assert_eq(os_open(path, 0, &f), NX_NOTFOUND);
  cr_assert_eq(os_open(path, OS_CREATE, &f), NX_OK);
  put(f, "hello", 0);
  put(f, "world", 100);
  cr_assert_eq(size_of(f), 105);
  expect(f, "world", 100);
  size_t got = 9;
  char buf[16];
  cr_assert_eq(os_pread(f, buf, 16, 100, &got), NX_OK);
  cr_assert_eq(got, 5, "short read only at end of file");
  cr_assert_eq(os_sync(f), NX_OK);
  cr_assert_eq(os_truncate(f, 3), NX_OK);
  cr_assert_eq(size_of(f), 3);
  cr_assert_eq(os_preallocate(f, 8192), NX_OK);
  cr_assert(size_of(f) >= 8192);
  expect(f, "hel", 0);
  cr_assert_eq(os_close(f), NX_OK);
  os_file *g;
  cr_assert_eq(os_open(path, OS_CREATE | OS_EXCL, &g), NX_EXISTS);
  cr_assert_eq(os_rename(path, other), NX_OK);
  cr_assert_eq(os_sync_dir(other), NX_OK);
  bool ex = true;
  cr_assert_eq(os_exists(path, &ex), NX_OK);
  cr_assert(!ex);
  cr_assert_eq(os_exists(other, &ex), NX_OK);
  cr_assert(ex);
  cr_assert_eq(os_open(other, OS_RDONLY, &g), NX_OK);
  expect(g, "hel", 0);
  cr_assert_eq(os_pwrite(g, "x", 1, 0), NX_READONLY);
  cr_assert_eq(os_close(g), NX_OK);
  cr_assert_eq(os_unlink(other), NX_OK);
  cr_assert_eq(os_unlink(other), NX_NOTFOUND);
  pt_cleanup(path);
}

Test(os, memory_files_never_touch_the_disk) {
  os_file *f;
  cr_assert_eq(os_open(":memory:", OS_MEMORY | OS_CREATE, &f), NX_OK);
  put(f, "abc", 10);
  cr_assert_eq(size_of(f), 13);
  expect(f, "abc", 10);
  char z[10];
  size_t got;
  cr_assert_eq(os_pread(f, z, 10, 0, &got), NX_OK);
  for (int i = 0; i < 10; i++) cr_assert_eq(z[i], 0);
  cr_assert_eq(os_sync(f), NX_OK);
  bool ex = true;
  cr_assert_eq(os_exists(":memory:", &ex), NX_OK);
  cr_assert(!ex);
  cr_assert_eq(os_close(f), NX_OK);
}

Test(os, lock_is_exclusive_and_names_the_pid) {
  char path[256];
  pt_tmpfile(path, sizeof path, "x.lock");
  os_file *a, *b;
  cr_assert_eq(os_open(path, OS_CREATE, &a), NX_OK);
  cr_assert_eq(os_open(path, OS_CREATE, &b), NX_OK);
  cr_assert_eq(os_lock(a), NX_OK);
  cr_assert_eq(os_lock(b), NX_LOCKED);
  char want[64];
  snprintf(want, sizeof want, "process %ld", (long)getpid());
  cr_assert(strstr(nx_err_msg(), want) != NULL, "%s", nx_err_msg());
  os_unlock(a);
  cr_assert_eq(os_lock(b), NX_OK);
  cr_assert_eq(os_close(a), NX_OK);
  cr_assert_eq(os_close(b), NX_OK);
  pt_cleanup(path);
}

Test(os, fault_injector_fails_the_nth_call_once) {
  char path[256];
  pt_tmpfile(path, sizeof path, "fi.bin");
  os_file *f;
  cr_assert_eq(os_open(path, OS_CREATE, &f), NX_OK);
  os_fault_reset();
  os_fault_fail_nth(OS_OP_WRITE, 3, ENOSPC);
  put(f, "a", 0);
  put(f, "b", 1);
  cr_assert_eq(os_pwrite(f, "c", 1, 2), NX_FULL);
  cr_assert(strstr(nx_err_msg(), "fi.bin") != NULL, "message names the path: %s", nx_err_msg());
  put(f, "d", 3);
  cr_assert_eq(os_fault_count(OS_OP_WRITE), 4);
  os_fault_fail_nth(OS_OP_SYNC, 1, EIO);
  cr_assert_eq(os_sync(f), NX_IO);
  cr_assert_eq(os_sync(f), NX_OK);
  /* EINTR is retried inside the layer */
  os_fault_fail_nth(OS_OP_WRITE, 1, EINTR);
  put(f, "e", 4);
  /* a short write keeps a prefix and fails */
  os_fault_short_write_nth(1, 2);
  cr_assert_eq(os_pwrite(f, "XYZW", 4, 10), NX_IO);
  expect(f, "XY", 10);
  cr_assert_eq(size_of(f), 12);
  /* any kind */
  os_fault_fail_nth(OS_OP_ANY, 2, EIO);
  size_t got;
  char c;
  cr_assert_eq(os_pread(f, &c, 1, 0, &got), NX_OK);
  cr_assert_eq(os_truncate(f, 5), NX_IO);
  cr_assert(os_fault_count(OS_OP_ANY) >= 8);
  os_fault_reset();
  cr_assert_eq(os_fault_count(OS_OP_ANY), 0);
  cr_assert_eq(os_close(f), NX_OK);
  pt_cleanup(path);
}

static int g_hook_calls;
static void hook(void *ctx) { (*(int *)ctx)++; }

Test(os, sync_hook_sees_every_fsync) {
  os_file *f;
  cr_assert_eq(os_open("m", OS_MEMORY | OS_CREATE, &f), NX_OK);
  os_fault_set_sync_hook(hook, &g_hook_calls);
  cr_assert_eq(os_sync(f), NX_OK);
  cr_assert_eq(os_sync(f), NX_OK);
  os_fault_set_sync_hook(NULL, NULL);
  cr_assert_eq(os_sync(f), NX_OK);
  cr_assert_eq(g_hook_calls, 2);
  os_close(f);
}

Test(os, power_loss_keeps_synced_data_and_names_only) {
  os_sim_enable(true);
  os_file *f, *g;
  cr_assert_eq(os_open("/sim/a", OS_CREATE, &f), NX_OK);
  put(f, "durable", 0);
  cr_assert_eq(os_sync(f), NX_OK);
  cr_assert_eq(os_sync_dir("/sim/a"), NX_OK);
  put(f, "LOST", 0);
  put(f, "tail", 100);
  cr_assert_eq(os_open("/sim/b", OS_CREATE, &g), NX_OK); /* created, synced, but never dirsynced */
  put(g, "b", 0);
  cr_assert_eq(os_sync(g), NX_OK);
  cr_assert(os_sim_io_count() >= 8);
  cr_assert_eq(os_sim_power_loss(OS_CRASH_DROP_ALL, 1), NX_OK);
  /* old handles are dead: no I/O */
  char c;
  size_t got;
  cr_assert_eq(os_pread(f, &c, 1, 0, &got), NX_IO);
  cr_assert_eq(os_pwrite(f, "x", 1, 0), NX_IO);
  os_close(f);
  os_close(g);
  bool ex = true;
  cr_assert_eq(os_exists("/sim/b", &ex), NX_OK);
  cr_assert(!ex, "a name never dirsynced is gone");
  cr_assert_eq(os_open("/sim/a", 0, &f), NX_OK);
  cr_assert_eq(size_of(f), 7);
  expect(f, "durable", 0);
  /* renames follow the same rule */
  cr_assert_eq(os_rename("/sim/a", "/sim/c"), NX_OK);
  cr_assert_eq(os_sim_power_loss(OS_CRASH_DROP_ALL, 2), NX_OK);
  os_close(f);
  cr_assert_eq(os_exists("/sim/a", &ex), NX_OK);
  cr_assert(ex, "an undirsynced rename is undone");
  cr_assert_eq(os_rename("/sim/a", "/sim/c"), NX_OK);
  cr_assert_eq(os_sync_dir("/sim/c"), NX_OK);
  cr_assert_eq(os_sim_power_loss(OS_CRASH_DROP_ALL, 3), NX_OK);
  cr_assert_eq(os_exists("/sim/a", &ex), NX_OK);
  cr_assert(!ex);
  cr_assert_eq(os_open("/sim/c", 0, &f), NX_OK);
  expect(f, "durable", 0);
  os_close(f);
  os_sim_enable(false);
}

Test(os, power_loss_modes_random_subset_and_torn_last_write) {
  int kept_some = 0, dropped_some = 0, torn_partial = 0;
  for (uint64_t seed = 1; seed <= 40; seed++) {
    os_sim_enable(true);
    os_file *f;
    cr_assert_eq(os_open("/sim/r", OS_CREATE, &f), NX_OK);
    cr_assert_eq(os_sync_dir("/sim/r"), NX_OK);
    char block[2048];
    memset(block, '.', sizeof block);
    cr_assert_eq(os_pwrite(f, block, sizeof block, 0), NX_OK);
    cr_assert_eq(os_sync(f), NX_OK);
    for (int i = 0; i < 4; i++) {
      char b[512];
      memset(b, 'A' + i, sizeof b);
      cr_assert_eq(os_pwrite(f, b, sizeof b, (uint64_t)i * 512), NX_OK);
    }
    cr_assert_eq(os_sim_power_loss(seed % 2 ? OS_CRASH_RANDOM : OS_CRASH_TORN, seed), NX_OK);
    os_close(f);
    cr_assert_eq(os_open("/sim/r", 0, &f), NX_OK);
    char got[2048];
    size_t n;
    cr_assert_eq(os_pread(f, got, sizeof got, 0, &n), NX_OK);
    cr_assert_eq(n, sizeof got);
    for (int i = 0; i < 4; i++) {
      int a = 0, dots = 0;
      for (int k = 0; k < 512; k++) {
        if (got[i * 512 + k] == 'A' + i) a++;
        else if (got[i * 512 + k] == '.') dots++;
      }
      cr_assert_eq(a + dots, 512, "block %d holds only old or new bytes", i);
      if (seed % 2) {
        cr_assert(a == 0 || a == 512, "random mode keeps whole writes");
        if (a) kept_some++;
        else dropped_some++;
      } else {
        if (i < 3) cr_assert_eq(a, 0, "torn mode drops all but the last write");
        else if (a > 0 && a < 512) torn_partial++;
        cr_assert(i < 3 || a < 512, "the last write is torn (a strict prefix survives)");
      }
    }
    os_close(f);
    os_sim_enable(false);
  }
  cr_assert(kept_some > 0 && dropped_some > 0, "random mode keeps some and drops some");
  cr_assert(torn_partial > 0, "torn mode leaves a strict prefix of the last write");
}

Test(os, simulated_crash_after_n_calls_stops_all_io) {
  os_sim_enable(true);
  os_file *f;
  cr_assert_eq(os_open("/sim/k", OS_CREATE, &f), NX_OK);
  os_sim_crash_after(3);
  put(f, "1", 0);
  put(f, "2", 1);
  cr_assert(!os_sim_crashed());
  cr_assert_eq(os_pwrite(f, "3", 1, 2), NX_IO);
  cr_assert(os_sim_crashed());
  cr_assert_eq(os_sync(f), NX_IO);
  char c;
  size_t got;
  cr_assert_eq(os_pread(f, &c, 1, 0, &got), NX_IO);
  cr_assert_eq(os_sim_power_loss(OS_CRASH_DROP_ALL, 0), NX_OK);
  cr_assert(!os_sim_crashed());
  os_close(f);
  bool ex = true;
  cr_assert_eq(os_exists("/sim/k", &ex), NX_OK);
  cr_assert(!ex, "the create was never dirsynced");
  os_sim_enable(false);
}
