/*
 * ex_documents.c: documents, queries and updates on the public API (nexuslite.h): insert with a
 * generated _id and with your own, find with a filter, projection, sort and limit, count,
 * distinct, update with operators (matched and modified counts), upsert, find-and-modify,
 * delete, and the metadata kept beside each document.
 *
 * Usage: ex_documents [FILE.db]   (default: ex_documents.db in the current directory)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nexuslite.h"

static int check(int rc, nx_db *db, const char *what) {
  if (rc != NX_OK) {
    fprintf(stderr, "%s: %s: %s\n", what, nx_code_name(rc), nx_errmsg(db));
    exit(1);
  }
  return rc;
}

/* Prints every document a find returns, one JSON line each. */
static void print_find(nx_db *db, const char *title, const char *filter, const nx_find_opts *opts) {
  nx_cursor *c;
  check(nx_find(db, NULL, "people", nx_json(filter), opts, &c), db, "nx_find");
  printf("%s\n", title);
  const bson_t *doc;
  int rc;
  while ((rc = nx_cursor_next(c, &doc)) == NX_ROW) {
    char *s = nx_to_json(doc, false);
    printf("  %s\n", s);
    nx_free(s);
  }
  nx_cursor_close(c);
  if (rc != NX_DONE) check(rc, db, "nx_cursor_next");
}

int main(int argc, char **argv) {
  const char *path = argc > 1 ? argv[1] : "ex_documents.db";
  nx_db *db;
  if (nx_open(path, NULL, &db) != NX_OK) {
    fprintf(stderr, "open %s: %s\n", path, nx_errmsg(NULL));
    return 1;
  }
  nx_collection_drop(db, "people"); /* start afresh when run twice */

  /* Insert: without _id, a time-ordered UUID (v7, BSON binary subtype 4) is generated. */
  bson_value_t id;
  check(nx_insert_one(db, NULL, "people", nx_json("{\"name\": \"Zoe\", \"age\": 41, \"city\": \"Oslo\"}"), &id), db,
        "insert");
  printf("generated _id: binary subtype %d, %u bytes, UUID version %d\n", id.value.v_binary.subtype,
         id.value.v_binary.data_len, id.value.v_binary.data[6] >> 4);
  nx_doc_meta meta;
  check(nx_get_meta(db, NULL, "people", &id, &meta), db, "meta");
  printf("metadata: version %llu, created == updated: %s\n", (unsigned long long)meta.version,
         meta.created_ms == meta.updated_ms ? "yes" : "no");
  bson_value_destroy(&id);

  /* insert_many is atomic: all or nothing. */
  nx_in docs[] = {
      nx_json("{\"_id\": 1, \"name\": \"Ann\", \"age\": 30, \"city\": \"Paris\", \"tags\": [\"admin\", \"dev\"]}"),
      nx_json("{\"_id\": 2, \"name\": \"Bob\", \"age\": 25, \"city\": \"Rome\", \"tags\": [\"dev\"]}"),
      nx_json("{\"_id\": 3, \"name\": \"Cid\", \"age\": 35, \"city\": \"Paris\", \"address\": {\"zip\": \"75001\"}}"),
      nx_json("{\"_id\": 4, \"name\": \"Dee\", \"age\": 28, \"city\": \"Oslo\", \"tags\": []}")};
  check(nx_insert_many(db, NULL, "people", docs, 4, NULL), db, "insert_many");
  nx_in dup[] = {nx_json("{\"_id\": 5, \"name\": \"Eve\"}"), nx_json("{\"_id\": 1, \"name\": \"again\"}")};
  size_t failed = 0;
  int rc = nx_insert_many(db, NULL, "people", dup, 2, &failed);
  printf("insert_many with a duplicate: %s at document %zu (%s)\n", nx_code_name(rc), failed, nx_errmsg(db));
  uint64_t n;
  check(nx_count(db, NULL, "people", nx_none(), &n), db, "count");
  printf("count: %llu\n", (unsigned long long)n);

  /* Queries: filter, projection, sort, limit. */
  nx_find_opts o = NX_FIND_OPTS_INIT;
  o.projection = nx_json("{\"_id\": 0, \"name\": 1, \"age\": 1}");
  o.sort = nx_json("{\"age\": -1}");
  o.limit = 3;
  print_find(db, "three oldest:", "{}", &o);
  nx_find_opts o2 = NX_FIND_OPTS_INIT;
  o2.projection = nx_json("{\"name\": 1}");
  print_find(db, "in Paris or tagged dev, under 33:",
             "{\"$or\": [{\"city\": \"Paris\"}, {\"tags\": \"dev\"}], \"age\": {\"$lt\": 33}}", &o2);
  print_find(db, "with a zip code:", "{\"address.zip\": {\"$exists\": true}}", &o2);
  bson_t v;
  check(nx_distinct(db, NULL, "people", "city", nx_none(), &v), db, "distinct");
  char *s = nx_to_json(&v, false);
  printf("distinct cities: %s\n", s);
  nx_free(s);
  bson_destroy(&v);

  /* Updates report matched and modified counts; modified counts only real changes. */
  nx_update_result r;
  check(nx_update_many(db, NULL, "people", nx_json("{\"city\": \"Paris\"}"), nx_json("{\"$inc\": {\"age\": 1}, \"$set\": {\"fr\": true}}"),
                       0, &r),
        db, "update_many");
  printf("update_many: matched %llu, modified %llu\n", (unsigned long long)r.matched, (unsigned long long)r.modified);
  check(nx_update_many(db, NULL, "people", nx_json("{\"city\": \"Paris\"}"), nx_json("{\"$set\": {\"fr\": true}}"), 0, &r), db,
        "update_many");
  printf("same $set again: matched %llu, modified %llu\n", (unsigned long long)r.matched, (unsigned long long)r.modified);
  check(nx_update_one(db, NULL, "people", nx_json("{\"name\": \"Fay\"}"), nx_json("{\"$set\": {\"age\": 22}}"), NX_UPSERT, &r), db,
        "upsert");
  printf("upsert: matched %llu, upserted %s\n", (unsigned long long)r.matched, r.upserted ? "yes" : "no");
  if (r.upserted) bson_value_destroy(&r.upserted_id);
  check(nx_update_one(db, NULL, "people", nx_json("{\"_id\": 2}"), nx_json("{\"$push\": {\"tags\": \"ops\"}}"), 0, &r), db, "push");
  print_find(db, "Bob after $push:", "{\"_id\": 2}", NULL);

  /* find_one_and_update returns the document before (default) or after the change. */
  nx_fam_opts fo = NX_FAM_OPTS_INIT;
  fo.return_after = true;
  fo.projection = nx_json("{\"_id\": 0, \"name\": 1, \"age\": 1}");
  bson_t after;
  check(nx_find_one_and_update(db, NULL, "people", nx_json("{\"_id\": 4}"), nx_json("{\"$inc\": {\"age\": 10}}"), &fo, &after),
        db, "find_one_and_update");
  s = nx_to_json(&after, false);
  printf("find_one_and_update (after): %s\n", s);
  nx_free(s);
  bson_destroy(&after);

  /* Deletes. */
  uint64_t deleted;
  check(nx_delete_many(db, NULL, "people", nx_json("{\"age\": {\"$gte\": 36}}"), &deleted), db, "delete_many");
  printf("deleted %llu people aged 36 or more\n", (unsigned long long)deleted);
  check(nx_count(db, NULL, "people", nx_none(), &n), db, "count");
  printf("count: %llu\n", (unsigned long long)n);

  /* Errors say what and where. */
  rc = nx_insert_one(db, NULL, "people", nx_json("{\"$bad\": 1}"), NULL);
  printf("bad field name: %s: %s\n", nx_code_name(rc), nx_errmsg(db));
  rc = nx_count(db, NULL, "people", nx_json("{\"age\": {\"$gtx\": 1}}"), &n);
  printf("unknown operator: %s: %s\n", nx_code_name(rc), nx_errmsg(db));
  return nx_close(db) == NX_OK ? 0 : 1;
}
