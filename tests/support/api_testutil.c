/* api_testutil.c: see api_testutil.h. */
#include "api_testutil.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base.h"

nx_db *at_open_mem(void) {
  nx_db *db = NULL;
  nx_open_opts o = NX_OPEN_OPTS_INIT;
  o.durability = NX_DURABILITY_OFF;
  cr_assert_eq(nx_open(":memory:", &o, &db), NX_OK, "nx_open: %s", nx_errmsg(NULL));
  return db;
}

void at_mkindex(nx_db *db, const char *coll, const char *keys, const nx_index_opts *o) {
  int rc = nx_index_create(db, coll, nx_json(keys), o);
  cr_assert_eq(rc, NX_OK, "index %s: %s", keys, nx_errmsg(db));
}

char *at_find_str(nx_db *db, nx_txn *t, const char *coll, const char *filter, const char *sort, uint64_t skip,
                  uint64_t limit) {
  nx_find_opts o = NX_FIND_OPTS_INIT;
  if (sort) o.sort = nx_json(sort);
  o.skip = skip;
  o.limit = limit;
  nx_cursor *c;
  int rc = nx_find(db, t, coll, nx_json(filter), &o, &c);
  cr_assert_eq(rc, NX_OK, "find %s: %s", filter, nx_errmsg(db));
  nx_buf b;
  nx_buf_init(&b, 0);
  const bson_t *d;
  while ((rc = nx_cursor_next(c, &d)) == NX_ROW) {
    char *s = nx_to_json(d, false);
    nx_buf_printf(&b, "%s;", s);
    nx_free(s);
  }
  cr_assert_eq(rc, NX_DONE, "cursor: %s", nx_errmsg(db));
  nx_cursor_close(c);
  nx_buf_append(&b, "", 1);
  return (char *)b.data;
}

char *at_explain_str(nx_db *db, const char *coll, const char *filter, const char *sort) {
  nx_find_opts o = NX_FIND_OPTS_INIT;
  if (sort) o.sort = nx_json(sort);
  bson_t e;
  int rc = nx_explain(db, NULL, coll, nx_json(filter), &o, &e);
  cr_assert_eq(rc, NX_OK, "explain %s: %s", filter, nx_errmsg(db));
  char *s = nx_to_json(&e, false);
  bson_destroy(&e);
  return s;
}

void at_rm_rf(const char *path) {
  struct stat st;
  if (lstat(path, &st) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d))) {
      if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
      char sub[512];
      snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
      at_rm_rf(sub);
    }
    if (d) closedir(d);
    rmdir(path);
  } else {
    unlink(path);
  }
}
