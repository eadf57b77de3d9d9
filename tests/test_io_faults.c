/* test_io_faults.c: import and export under injected OS failures (os_fault_fail_nth): a failed
 * read names the file and the offset; a failed write, fsync or rename of an export leaves the
 * destination as it was and no temporary file behind. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nexuslite.h"
#include "os.h"

static char g_dir[64];
static nx_db *g_db;

static char *path_of(const char *name) {
  static char p[4][256];
  static int k;
  k = (k + 1) % 4;
  snprintf(p[k], sizeof p[k], "%s/%s", g_dir, name);
  return p[k];
}

static int count_entries(void) {
  DIR *d = opendir(g_dir);
  struct dirent *e;
  int n = 0;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
  closedir(d);
  return n;
}

static void setup(void) {
  snprintf(g_dir, sizeof g_dir, "/tmp/nxiof.XXXXXX");
  cr_assert(mkdtemp(g_dir));
  nx_open_opts o = NX_OPEN_OPTS_INIT;
  o.durability = NX_DURABILITY_OFF;
  cr_assert_eq(nx_open(path_of("t.db"), &o, &g_db), NX_OK, "%s", nx_errmsg(NULL));
  for (int i = 0; i < 50; i++) {
    char j[64];
    snprintf(j, sizeof j, "{\"_id\": %d, \"v\": \"x%d\"}", i, i);
    cr_assert_eq(nx_insert_one(g_db, NULL, "c", nx_json(j), NULL), NX_OK, "%s", nx_errmsg(g_db));
  }
  FILE *f = fopen(path_of("in.ndjson"), "w");
  for (int i = 0; i < 10; i++) fprintf(f, "{\"_id\": %d}\n", 100 + i);
  fclose(f);
}

static void teardown(void) {
  os_fault_reset();
  os_fault_fail_nth(OS_OP_ANY, 0, 0);
  nx_close(g_db);
  DIR *d = opendir(g_dir);
  struct dirent *e;
  while (d && (e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    unlink(path_of(e->d_name));
  }
  if (d) closedir(d);
  rmdir(g_dir);
}

TestSuite(io_faults, .init = setup, .fini = teardown);

Test(io_faults, export_failures_leave_nothing_behind) {
  os_op ops[] = {OS_OP_OPEN, OS_OP_WRITE, OS_OP_SYNC, OS_OP_RENAME};
  const char *names[] = {"open", "write", "sync", "rename"};
  int before = count_entries();
  for (size_t i = 0; i < sizeof ops / sizeof *ops; i++) {
    os_fault_reset();
    os_fault_fail_nth(ops[i], 1, EIO);
    int rc = nx_export(g_db, "c", path_of("out.ndjson"), NULL, NULL);
    os_fault_fail_nth(ops[i], 0, 0);
    cr_assert_eq(rc, NX_IO, "%s: rc %d %s", names[i], rc, nx_errmsg(g_db));
    cr_assert(strstr(nx_errmsg(g_db), "out.ndjson"), "%s: %s", names[i], nx_errmsg(g_db));
    struct stat st;
    cr_assert_neq(stat(path_of("out.ndjson"), &st), 0, "%s: no destination", names[i]);
    cr_assert_eq(count_entries(), before, "%s: no temporary file left", names[i]);
  }
  /* and with no fault, it works */
  os_fault_reset();
  nx_export_report r;
  cr_assert_eq(nx_export(g_db, "c", path_of("out.ndjson"), NULL, &r), NX_OK, "%s", nx_errmsg(g_db));
  cr_assert_eq(r.written, 50);
  cr_assert_eq(count_entries(), before + 1);
}

Test(io_faults, forced_export_that_fails_keeps_the_old_file) {
  cr_assert_eq(nx_export(g_db, "c", path_of("keep.csv"), NULL, NULL), NX_OK, "%s", nx_errmsg(g_db));
  struct stat a, b;
  cr_assert_eq(stat(path_of("keep.csv"), &a), 0);
  cr_assert_eq(nx_insert_one(g_db, NULL, "c", nx_json("{\"_id\": 999, \"v\": \"new\"}"), NULL), NX_OK);
  nx_export_opts eo = NX_EXPORT_OPTS_INIT;
  eo.force = true;
  os_fault_reset();
  os_fault_fail_nth(OS_OP_SYNC, 1, EIO);
  cr_assert_eq(nx_export(g_db, "c", path_of("keep.csv"), &eo, NULL), NX_IO);
  os_fault_fail_nth(OS_OP_SYNC, 0, 0);
  cr_assert_eq(stat(path_of("keep.csv"), &b), 0);
  cr_assert_eq(a.st_size, b.st_size, "the old export is intact");
  cr_assert_eq(a.st_ino, b.st_ino);
}

Test(io_faults, import_read_failure_names_file_and_offset) {
  os_fault_reset();
  os_fault_fail_nth(OS_OP_READ, 1, EIO);
  nx_import_report r;
  int rc = nx_import(g_db, path_of("in.ndjson"), "d", NULL, &r);
  os_fault_fail_nth(OS_OP_READ, 0, 0);
  cr_assert_eq(rc, NX_IO, "rc %d: %s", rc, nx_errmsg(g_db));
  cr_assert(strstr(nx_errmsg(g_db), "in.ndjson") && strstr(nx_errmsg(g_db), "byte offset 0"), "%s", nx_errmsg(g_db));
  bool exists = true;
  nx_collection_exists(g_db, "d", &exists);
  cr_assert_not(exists, "nothing imported");
  /* a missing input file */
  cr_assert_eq(nx_import(g_db, path_of("missing.ndjson"), "d", NULL, &r), NX_NOTFOUND, "%s", nx_errmsg(g_db));
  cr_assert(strstr(nx_errmsg(g_db), "missing.ndjson"), "%s", nx_errmsg(g_db));
}

Test(io_faults, sidecar_write_failure_stops_a_skip_errors_import) {
  FILE *f = fopen(path_of("bad.ndjson"), "w");
  fprintf(f, "{\"_id\": 1}\nnot json\n{\"_id\": 2}\n");
  fclose(f);
  nx_import_opts o = NX_IMPORT_OPTS_INIT;
  o.skip_errors = true;
  os_fault_reset();
  os_fault_fail_nth(OS_OP_WRITE, 1, ENOSPC);
  int rc = nx_import(g_db, path_of("bad.ndjson"), "d", &o, NULL);
  os_fault_fail_nth(OS_OP_WRITE, 0, 0);
  cr_assert_eq(rc, NX_FULL, "rc %d: %s", rc, nx_errmsg(g_db));
  cr_assert(strstr(nx_errmsg(g_db), "errors.jsonl"), "%s", nx_errmsg(g_db));
}
