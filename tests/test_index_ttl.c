// ctest: timeout=300
/*
 * test_index_ttl.c: a unique index treats an expired (TTL) document as gone. Inserting or
 * updating to the unique key of an expired document succeeds; the expired document stays
 * invisible and keeps its entries until it is deleted (an insert of its _id replaces it); a
 * live holder still conflicts; a unique index builds over an expired duplicate; the index and
 * the documents agree entry for entry throughout (idx_verify). Expiry comes from nx_import's
 * ttl_field, the clock from nx_clock_set_ms.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nexuslite.h"
#include "engine.h"
#include "planner.h"

#define T0 1700000000000LL

static char g_dir[64];

static void setup(void) {
  snprintf(g_dir, sizeof g_dir, "/tmp/nx_ttl_XXXXXX");
  cr_assert_not_null(mkdtemp(g_dir));
  nx_clock_set_ms(T0);
}

static void teardown(void) {
  nx_clock_set_ms(0);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
  cr_assert_eq(system(cmd), 0);
}

static nx_db *open_db(void) {
  char p[128];
  snprintf(p, sizeof p, "%s/t.nxdb", g_dir);
  nx_db *db = NULL;
  nx_open_opts o = NX_OPEN_OPTS_INIT;
  o.durability = NX_DURABILITY_OFF;
  cr_assert_eq(nx_open(p, &o, &db), NX_OK, "nx_open: %s", nx_errmsg(NULL));
  return db;
}

/* Imports NDJSON lines into coll with "exp" (seconds from now) as the TTL field. */
static void import(nx_db *db, const char *coll, const char *ndjson) {
  char p[128];
  snprintf(p, sizeof p, "%s/in.ndjson", g_dir);
  FILE *f = fopen(p, "w");
  cr_assert_not_null(f);
  fputs(ndjson, f);
  fclose(f);
  nx_import_opts o = NX_IMPORT_OPTS_INIT;
  o.ttl_field = "exp";
  nx_import_report r;
  cr_assert_eq(nx_import(db, p, coll, &o, &r), NX_OK, "import: %s", nx_errmsg(db));
}

static int ins(nx_db *db, const char *coll, const char *json) { return nx_insert_one(db, NULL, coll, nx_json(json), NULL); }

static void unique_index(nx_db *db, const char *coll, const char *keys, int want) {
  nx_index_opts o = NX_INDEX_OPTS_INIT;
  o.unique = true;
  int rc = nx_index_create(db, coll, nx_json(keys), &o);
  cr_assert_eq(rc, want, "unique index %s: %d %s", keys, rc, nx_errmsg(db));
}

static char *ids(nx_db *db, const char *coll, const char *filter) {
  nx_find_opts o = NX_FIND_OPTS_INIT;
  o.projection = nx_json("{\"_id\": 1}");
  nx_cursor *c;
  cr_assert_eq(nx_find(db, NULL, coll, nx_json(filter), &o, &c), NX_OK, "%s", nx_errmsg(db));
  static char out[512];
  out[0] = 0;
  const bson_t *d;
  int rc;
  while ((rc = nx_cursor_next(c, &d)) == NX_ROW) {
    bson_iter_t it;
    cr_assert(bson_iter_init_find(&it, d, "_id"));
    size_t n = strlen(out);
    snprintf(out + n, sizeof out - n, "%d;", bson_iter_int32(&it));
  }
  cr_assert_eq(rc, NX_DONE);
  nx_cursor_close(c);
  return out;
}

static int verify(nx_db *db, const char *coll) {
  nx_txn *t;
  cr_assert_eq(nx_txn_begin(db, NX_TXN_READ, &t), NX_OK);
  int rc = q_index_verify(t, coll);
  nx_txn_abort(t);
  return rc;
}

TestSuite(index_ttl, .init = setup, .fini = teardown);

Test(index_ttl, unique_key_of_an_expired_document_can_be_taken) {
  nx_db *db = open_db();
  unique_index(db, "u", "{\"email\": 1}", NX_OK);
  import(db, "u", "{\"_id\": 1, \"email\": \"a\", \"exp\": 60}\n{\"_id\": 2, \"email\": \"b\"}\n");
  /* not yet expired: the key is taken */
  cr_assert_eq(ins(db, "u", "{\"_id\": 3, \"email\": \"a\"}"), NX_EXISTS);
  cr_assert(strstr(nx_errmsg(db), "email_1"), "%s", nx_errmsg(db));
  /* expired: the key is free */
  nx_clock_set_ms(T0 + 61000);
  cr_assert_str_eq(ids(db, "u", "{\"email\": \"a\"}"), "");
  cr_assert_eq(ins(db, "u", "{\"_id\": 3, \"email\": \"a\"}"), NX_OK, "%s", nx_errmsg(db));
  cr_assert_str_eq(ids(db, "u", "{\"email\": \"a\"}"), "3;");
  cr_assert_str_eq(ids(db, "u", "{}"), "2;3;");
  cr_assert_eq(verify(db, "u"), NX_OK, "%s", nx_errmsg(db));
  /* a live holder still conflicts, and the message names it */
  cr_assert_eq(ins(db, "u", "{\"_id\": 4, \"email\": \"a\"}"), NX_EXISTS);
  cr_assert(strstr(nx_errmsg(db), "held by _id 3"), "%s", nx_errmsg(db));
  cr_assert_eq(ins(db, "u", "{\"_id\": 4, \"email\": \"b\"}"), NX_EXISTS);
  /* an update may take the expired document's key too */
  cr_assert_eq(ins(db, "u", "{\"_id\": 5, \"email\": \"e\"}"), NX_OK);
  cr_assert_eq(nx_update_one(db, NULL, "u", nx_json("{\"_id\": 3}"), nx_json("{\"$set\": {\"email\": \"c\"}}"), 0, NULL),
               NX_OK, "%s", nx_errmsg(db));
  cr_assert_eq(nx_update_one(db, NULL, "u", nx_json("{\"_id\": 5}"), nx_json("{\"$set\": {\"email\": \"a\"}}"), 0, NULL),
               NX_OK, "%s", nx_errmsg(db));
  cr_assert_str_eq(ids(db, "u", "{\"email\": \"a\"}"), "5;");
  cr_assert_eq(verify(db, "u"), NX_OK, "%s", nx_errmsg(db));
  /* the expired document's _id: the insert replaces it (its entries go with it) */
  cr_assert_eq(ins(db, "u", "{\"_id\": 1, \"email\": \"z\"}"), NX_OK, "%s", nx_errmsg(db));
  cr_assert_str_eq(ids(db, "u", "{}"), "1;2;3;5;");
  cr_assert_eq(verify(db, "u"), NX_OK, "%s", nx_errmsg(db));
  cr_assert_eq(ins(db, "u", "{\"_id\": 6, \"email\": \"z\"}"), NX_EXISTS);
  nx_close(db);
}

Test(index_ttl, unique_index_builds_over_an_expired_duplicate) {
  nx_db *db = open_db();
  import(db, "v", "{\"_id\": 1, \"k\": 7, \"exp\": 60}\n{\"_id\": 2, \"k\": 8}\n");
  cr_assert_eq(ins(db, "v", "{\"_id\": 3, \"k\": 7}"), NX_OK); /* no index yet */
  unique_index(db, "v", "{\"k\": 1}", NX_EXISTS);                /* 1 is live: a duplicate */
  nx_clock_set_ms(T0 + 61000);
  unique_index(db, "v", "{\"k\": 1}", NX_OK); /* 1 has expired */
  cr_assert_str_eq(ids(db, "v", "{\"k\": 7}"), "3;");
  cr_assert_eq(verify(db, "v"), NX_OK, "%s", nx_errmsg(db));
  cr_assert_eq(ins(db, "v", "{\"_id\": 4, \"k\": 7}"), NX_EXISTS);
  nx_close(db);
}
