/* test_io_interop.c: files written by tools nobody here wrote import correctly (Python's csv and
 * json modules, python3-bson), and NexusLite's exports read back in Python (json.loads per line,
 * bson.decode_all). Python runs as /usr/bin/python3 through posix_spawn (tests/io/interop.py). */
// ctest: timeout=300
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api_testutil.h"
#include "nexuslite.h"

extern char **environ;

static char g_dir[64];
static nx_db *g_db;

static char *path_of(const char *name) {
  static char p[4][256];
  static int k;
  k = (k + 1) % 4;
  snprintf(p[k], sizeof p[k], "%s/%s", g_dir, name);
  return p[k];
}

/* Runs interop.py MODE DIR; returns its exit status; its output goes to DIR/py.out. */
static int python(const char *mode) {
  char script[512];
  snprintf(script, sizeof script, "%s/io/interop.py", NX_TEST_DATA_DIR);
  char *argv[] = {"/usr/bin/python3", script, (char *)mode, g_dir, NULL};
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, path_of("py.out"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid;
  int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  cr_assert_eq(rc, 0, "posix_spawn /usr/bin/python3: %s", strerror(rc));
  int st;
  cr_assert_eq(waitpid(pid, &st, 0), pid);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void show_py_out(void) {
  FILE *f = fopen(path_of("py.out"), "r");
  char line[512];
  while (f && fgets(line, sizeof line, f)) cr_log_error("python: %s", line);
  if (f) fclose(f);
}

static void setup(void) {
  snprintf(g_dir, sizeof g_dir, "/tmp/nxinterop.XXXXXX");
  cr_assert(mkdtemp(g_dir));
  nx_open_opts o = NX_OPEN_OPTS_INIT;
  o.durability = NX_DURABILITY_OFF;
  cr_assert_eq(nx_open(path_of("t.db"), &o, &g_db), NX_OK, "%s", nx_errmsg(NULL));
  int st = python("gen");
  if (st) show_py_out();
  cr_assert_eq(st, 0, "interop.py gen failed");
}

static void teardown(void) {
  nx_close(g_db);
  at_rm_rf(g_dir);
}

TestSuite(io_interop, .init = setup, .fini = teardown);

static bson_t *get(const char *coll, int id) {
  static bson_t d;
  char f[64];
  snprintf(f, sizeof f, "{\"_id\": %d}", id);
  cr_assert_eq(nx_find_one(g_db, NULL, coll, nx_json(f), NULL, &d), NX_OK, "%s _id %d: %s", coll, id, nx_errmsg(g_db));
  return &d;
}

static void import_ok(const char *file, const char *coll, uint64_t n) {
  nx_import_report r;
  cr_assert_eq(nx_import(g_db, path_of(file), coll, NULL, &r), NX_OK, "%s: %s", file, nx_errmsg(g_db));
  cr_assert_eq(r.inserted, n, "%s: %llu inserted", file, (unsigned long long)r.inserted);
  cr_assert_eq(r.failed, 0);
}

Test(io_interop, python_csv_json_ndjson_import_to_the_same_documents) {
  import_ok("py.csv", "csv", 200);
  import_ok("py.json", "json", 200);
  import_ok("py.ndjson", "nd", 200);
  for (int id = 0; id < 200; id += 7) {
    bson_t *d = get("csv", id);
    char *c = nx_to_json(d, true);
    bson_destroy(d);
    d = get("json", id);
    char *j = nx_to_json(d, true);
    bson_destroy(d);
    d = get("nd", id);
    char *n = nx_to_json(d, true);
    bson_destroy(d);
    cr_assert_str_eq(j, n, "json vs ndjson");
    /* CSV: the same values, with city nested under address by the dotted header */
    bson_t cd;
    bson_error_t e;
    cr_assert(bson_init_from_json(&cd, c, -1, &e));
    bson_iter_t it;
    cr_assert(bson_iter_init_find(&it, &cd, "_id") && BSON_ITER_HOLDS_INT32(&it) && bson_iter_int32(&it) == id);
    cr_assert(bson_iter_init_find(&it, &cd, "age") && BSON_ITER_HOLDS_INT32(&it));
    cr_assert(bson_iter_init_find(&it, &cd, "score") && BSON_ITER_HOLDS_DOUBLE(&it) && bson_iter_double(&it) == id * 0.5 + 0.25);
    cr_assert(bson_iter_init_find(&it, &cd, "active") && BSON_ITER_HOLDS_BOOL(&it) && bson_iter_bool(&it) == (id % 2 == 0));
    cr_assert(bson_iter_init_find(&it, &cd, "zip") && BSON_ITER_HOLDS_UTF8(&it), "zip with leading zeros stays text");
    cr_assert(bson_iter_init_find(&it, &cd, "big") && BSON_ITER_HOLDS_INT64(&it) && bson_iter_int64(&it) == 5000000000LL + id);
    bson_iter_t city;
    cr_assert(bson_iter_init_find(&it, &cd, "address") && bson_iter_recurse(&it, &city) && bson_iter_find(&city, "city"));
    const char *want = id % 3 == 0 ? "Z\xc3\xbcrich" : id % 3 == 1 ? "\xc5\x8csaka \xe2\x98\x83" : "Paris\nNord";
    cr_assert_str_eq(bson_iter_utf8(&city, NULL), want);
    cr_assert(bson_iter_init_find(&it, &cd, "name"));
    char wname[64];
    if (id % 7 == 0) snprintf(wname, sizeof wname, "user %d, \"quoted\"", id);
    else snprintf(wname, sizeof wname, "user%d", id);
    cr_assert_str_eq(bson_iter_utf8(&it, NULL), wname);
    bson_destroy(&cd);
    nx_free(c);
    nx_free(j);
    nx_free(n);
  }
}

Test(io_interop, python_bson_imports_and_our_exports_read_back_in_python) {
  import_ok("py.bson", "c", 200);
  import_ok("py.ndjson", "nd", 200);
  bson_t one;
  cr_assert_eq(nx_find_one(g_db, NULL, "c", nx_json("{\"_id\": {\"$oid\": \"65f0a1b2c3d4e5f600000005\"}}"), NULL, &one), NX_OK, "%s", nx_errmsg(g_db));
  bson_iter_t it;
  cr_assert(bson_iter_init_find(&it, &one, "when") && BSON_ITER_HOLDS_DATE_TIME(&it) &&
            bson_iter_date_time(&it) == 1704067200000LL + 5 * 3600000LL);
  cr_assert(bson_iter_init_find(&it, &one, "big") && BSON_ITER_HOLDS_INT64(&it));
  cr_assert(bson_iter_init_find(&it, &one, "blob") && BSON_ITER_HOLDS_BINARY(&it));
  bson_destroy(&one);
  cr_assert_eq(nx_export(g_db, "nd", path_of("exp.ndjson"), NULL, NULL), NX_OK, "%s", nx_errmsg(g_db));
  cr_assert_eq(nx_export(g_db, "c", path_of("dump"), NULL, NULL), NX_OK, "%s", nx_errmsg(g_db));
  int st = python("check");
  if (st) show_py_out();
  cr_assert_eq(st, 0, "interop.py check found problems (see the log)");
}
