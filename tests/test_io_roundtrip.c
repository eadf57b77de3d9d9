/* test_io_roundtrip.c: nx_import and nx_export through the public API: round trips per format,
 * batches and atomicity, skip_errors and its sidecar, ttl_field, redaction, force, bad input,
 * progress and cancel, and constant memory. */
// ctest: timeout=600
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api_testutil.h"
#include "nexuslite.h"
#include "base.h"

static char g_dir[64];
static nx_db *g_db;

static void setup(void) {
  snprintf(g_dir, sizeof g_dir, "/tmp/nxio.XXXXXX");
  cr_assert(mkdtemp(g_dir));
  char db[128];
  snprintf(db, sizeof db, "%s/t.db", g_dir);
  nx_open_opts o = NX_OPEN_OPTS_INIT;
  o.durability = NX_DURABILITY_OFF;
  o.cache_bytes = 1u << 20;
  cr_assert_eq(nx_open(db, &o, &g_db), NX_OK, "%s", nx_errmsg(NULL));
}

static void teardown(void) {
  nx_close(g_db);
  g_db = NULL;
  nx_clock_set_ms(0);
  at_rm_rf(g_dir);
}

TestSuite(io_rt, .init = setup, .fini = teardown);

static char *path_of(const char *name) {
  static char p[4][256];
  static int k;
  k = (k + 1) % 4;
  snprintf(p[k], sizeof p[k], "%s/%s", g_dir, name);
  return p[k];
}

static void write_file(const char *name, const void *data, size_t n) {
  FILE *f = fopen(path_of(name), "wb");
  cr_assert(f);
  cr_assert_eq(fwrite(data, 1, n, f), n);
  fclose(f);
}

static char *read_file(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *b = malloc((size_t)len + 1);
  size_t got = fread(b, 1, (size_t)len, f);
  b[got] = 0;
  fclose(f);
  if (n) *n = got;
  return b;
}

static uint64_t count(const char *coll) {
  uint64_t n = 0;
  cr_assert_eq(nx_count(g_db, NULL, coll, nx_none(), &n), NX_OK, "%s", nx_errmsg(g_db));
  return n;
}

/* All documents of coll in _id order as canonical JSON, one per line (malloc'd). */
static char *dump(const char *coll) {
  nx_cursor *c;
  cr_assert_eq(nx_find(g_db, NULL, coll, nx_none(), NULL, &c), NX_OK, "%s", nx_errmsg(g_db));
  size_t cap = 1 << 16, len = 0;
  char *out = malloc(cap);
  out[0] = 0;
  const bson_t *d;
  int rc;
  while ((rc = nx_cursor_next(c, &d)) == NX_ROW) {
    char *s = bson_as_canonical_extended_json(d, NULL);
    size_t n = strlen(s);
    while (len + n + 2 > cap) out = realloc(out, cap *= 2);
    memcpy(out + len, s, n);
    len += n;
    out[len++] = '\n';
    out[len] = 0;
    bson_free(s);
  }
  cr_assert_eq(rc, NX_DONE, "%s", nx_errmsg(g_db));
  nx_cursor_close(c);
  return out;
}

/* A collection with every type the formats must carry. */
static void seed_types(const char *coll) {
  const char *docs[] = {
      "{\"_id\": 1, \"s\": \"text\", \"i\": {\"$numberInt\": \"42\"}, \"l\": {\"$numberLong\": \"9000000000\"},"
      " \"small_long\": {\"$numberLong\": \"7\"}, \"d\": 2.5, \"whole\": 3.0, \"b\": true, \"n\": null,"
      " \"when\": {\"$date\": \"2024-05-01T10:20:30.123Z\"}, \"oid\": {\"$oid\": \"65f0a1b2c3d4e5f601234567\"},"
      " \"sub\": {\"x\": 1, \"y\": {\"z\": \"deep\"}}, \"arr\": [1, \"two\", {\"three\": 3}],"
      " \"bin\": {\"$binary\": {\"base64\": \"AQID\", \"subType\": \"00\"}},"
      " \"dec\": {\"$numberDecimal\": \"1.10\"}, \"uni\": \"caf\u00e9 \u2603\", \"quote\": \"a \\\"q\\\", b\\nline\"}",
      "{\"_id\": 2, \"s\": \"00123\", \"i\": -5, \"d\": -0.5, \"b\": false, \"sub\": {\"x\": 2}}",
      "{\"_id\": {\"$oid\": \"65f0a1b2c3d4e5f601234568\"}, \"s\": \"\", \"empty\": {}}",
  };
  for (size_t i = 0; i < sizeof docs / sizeof *docs; i++)
    cr_assert_eq(nx_insert_one(g_db, NULL, coll, nx_json(docs[i]), NULL), NX_OK, "%s", nx_errmsg(g_db));
}

static void roundtrip_exact(const char *file, nx_format f, bool canonical) {
  seed_types("src");
  nx_export_opts eo = NX_EXPORT_OPTS_INIT;
  eo.format = f;
  eo.canonical = canonical;
  nx_export_report er;
  cr_assert_eq(nx_export(g_db, "src", path_of(file), &eo, &er), NX_OK, "%s", nx_errmsg(g_db));
  cr_assert_eq(er.written, 3);
  cr_assert_gt(er.bytes, 100);
  nx_import_opts io = NX_IMPORT_OPTS_INIT;
  io.format = f == NX_FORMAT_BSON ? NX_FORMAT_AUTO : f;
  nx_import_report ir;
  const char *in = f == NX_FORMAT_BSON ? path_of("dump/src.bson") : path_of(file);
  cr_assert_eq(nx_import(g_db, in, "dst", &io, &ir), NX_OK, "%s", nx_errmsg(g_db));
  cr_assert_eq(ir.read, 3);
  cr_assert_eq(ir.inserted, 3);
  cr_assert_eq(ir.failed, 0);
  char *a = dump("src"), *b = dump("dst");
  cr_assert_str_eq(b, a);
  free(a);
  free(b);
}

Test(io_rt, ndjson_canonical_round_trip_keeps_every_type) { roundtrip_exact("out.ndjson", NX_FORMAT_NDJSON, true); }
Test(io_rt, json_array_canonical_round_trip_keeps_every_type) { roundtrip_exact("out.json", NX_FORMAT_JSON, true); }
Test(io_rt, bson_dump_round_trip_is_exact) { roundtrip_exact("dump", NX_FORMAT_BSON, false); }

Test(io_rt, ndjson_relaxed_round_trip_is_equal_as_relaxed_json) {
  seed_types("src");
  cr_assert_eq(nx_export(g_db, "src", path_of("r.jsonl"), NULL, NULL), NX_OK, "%s", nx_errmsg(g_db));
  cr_assert_eq(nx_import(g_db, path_of("r.jsonl"), "dst", NULL, NULL), NX_OK, "%s", nx_errmsg(g_db));
  /* relaxed JSON writes a small int64 as a plain number, which comes back as int32: the one
   * documented loss; compared through relaxed JSON everything else is equal */
  for (int id = 1; id <= 2; id++) {
    char f[32];
    snprintf(f, sizeof f, "{\"_id\": %d}", id);
    bson_t a, b;
    cr_assert_eq(nx_find_one(g_db, NULL, "src", nx_json(f), NULL, &a), NX_OK);
    cr_assert_eq(nx_find_one(g_db, NULL, "dst", nx_json(f), NULL, &b), NX_OK);
    char *ja = nx_to_json(&a, false), *jb = nx_to_json(&b, false);
    cr_assert_str_eq(jb, ja);
    nx_free(ja);
    nx_free(jb);
    bson_iter_t it;
    if (id == 1) {
      cr_assert(bson_iter_init_find(&it, &b, "small_long") && BSON_ITER_HOLDS_INT32(&it));
      cr_assert(bson_iter_init_find(&it, &b, "l") && BSON_ITER_HOLDS_INT64(&it));
      cr_assert(bson_iter_init_find(&it, &b, "whole") && BSON_ITER_HOLDS_DOUBLE(&it));
    }
    bson_destroy(&a);
    bson_destroy(&b);
  }
}

Test(io_rt, csv_round_trip_keeps_what_csv_can_carry) {
  const char *docs[] = {
      "{\"_id\": 1, \"name\": \"ann\", \"age\": 30, \"big\": {\"$numberLong\": \"9000000000\"}, \"score\": 2.0,"
      " \"ok\": true, \"none\": null, \"zip\": \"00123\", \"num_text\": \"42\", \"when\": {\"$date\": \"2024-05-01T10:20:30.123Z\"},"
      " \"address\": {\"city\": \"Boston\", \"geo\": {\"lat\": 42.5}}, \"note\": \"a, \\\"b\\\"\\nc\"}",
      "{\"_id\": 2, \"name\": \"bob\", \"age\": -1, \"big\": {\"$numberLong\": \"-9000000000\"}, \"score\": -0.25,"
      " \"ok\": false, \"none\": null, \"zip\": \"\", \"num_text\": \"true\", \"when\": {\"$date\": \"1969-12-31T23:59:59.999Z\"},"
      " \"address\": {\"city\": \"Ely\", \"geo\": {\"lat\": 0.5}}, \"note\": \"\"}",
  };
  for (int i = 0; i < 2; i++) cr_assert_eq(nx_insert_one(g_db, NULL, "src", nx_json(docs[i]), NULL), NX_OK);
  cr_assert_eq(nx_export(g_db, "src", path_of("o.csv"), NULL, NULL), NX_OK, "%s", nx_errmsg(g_db));
  char *csv = read_file(path_of("o.csv"), NULL);
  const char *hdr = "\"_id\",\"name\",\"age\",\"big\",\"score\",\"ok\",\"none\",\"zip\",\"num_text\",\"when\","
                    "\"address.city\",\"address.geo.lat\",\"note\"\n";
  cr_assert(strncmp(csv, hdr, strlen(hdr)) == 0, "%s", csv);
  cr_assert(strstr(csv, "1,\"ann\",30,9000000000,2.0,true,,\"00123\",\"42\",2024-05-01T10:20:30.123Z,\"Boston\",42.5,\"a, \"\"b\"\"\nc\"\n"), "%s", csv);
  free(csv);
  cr_assert_eq(nx_import(g_db, path_of("o.csv"), "dst", NULL, NULL), NX_OK, "%s", nx_errmsg(g_db));
  char *a = dump("src"), *b = dump("dst");
  cr_assert_str_eq(b, a);
  free(a);
  free(b);
}

Test(io_rt, csv_export_field_list_arrays_as_json_and_tsv) {
  cr_assert_eq(nx_insert_one(g_db, NULL, "c", nx_json("{\"_id\": 1, \"a\": [1, \"x\"], \"b\": {\"c\": 2}, \"z\": 0}"), NULL), NX_OK);
  nx_export_opts eo = NX_EXPORT_OPTS_INIT;
  eo.fields = "b.c, a,missing";
  cr_assert_eq(nx_export(g_db, "c", path_of("f.tsv"), &eo, NULL), NX_OK, "%s", nx_errmsg(g_db));
  char *t = read_file(path_of("f.tsv"), NULL);
  cr_assert_str_eq(t, "\"b.c\"\t\"a\"\t\"missing\"\n2\t\"[ 1, \"\"x\"\" ]\"\t\n");
  free(t);
  /* re-import: the array comes back as its JSON text */
  cr_assert_eq(nx_import(g_db, path_of("f.tsv"), "back", NULL, NULL), NX_OK, "%s", nx_errmsg(g_db));
  char *d = dump("back");
  cr_assert(strstr(d, "\"b\" : { \"c\" : { \"$numberInt\" : \"2\" } }, \"a\" : \"[ 1, \\\"x\\\" ]\", \"missing\" : null"), "%s", d);
  free(d);
}

Test(io_rt, bson_export_writes_mongodump_layout_with_metadata) {
  seed_types("people");
  nx_index_opts xo = NX_INDEX_OPTS_INIT;
  xo.unique = true;
  cr_assert_eq(nx_index_create(g_db, "people", nx_json("{\"s\": 1}"), &xo), NX_OK, "%s", nx_errmsg(g_db));
  cr_assert_eq(nx_export(g_db, "people", path_of("dump"), NULL, NULL), NX_OK, "%s", nx_errmsg(g_db));
  char *meta = read_file(path_of("dump/people.metadata.json"), NULL);
  cr_assert(meta);
  bson_t m;
  bson_error_t e;
  cr_assert(bson_init_from_json(&m, meta, -1, &e), "%s", e.message);
  bson_iter_t it;
  cr_assert(bson_iter_init_find(&it, &m, "collectionName") && !strcmp(bson_iter_utf8(&it, NULL), "people"));
  cr_assert(strstr(meta, "{ \"v\" : { \"$numberInt\" : \"2\" }, \"key\" : { \"_id\" : { \"$numberInt\" : \"1\" } }, \"name\" : \"_id_\" }"), "%s", meta);
  cr_assert(strstr(meta, "\"key\" : { \"s\" : { \"$numberInt\" : \"1\" } }, \"name\" : \"s_1\", \"unique\" : true"), "%s", meta);
  bson_destroy(&m);
  free(meta);
  /* a second export refuses to overwrite, and leaves the files alone */
  size_t n1 = 0, n2 = 0;
  char *before = read_file(path_of("dump/people.bson"), &n1);
  cr_assert_eq(nx_insert_one(g_db, NULL, "people", nx_json("{\"_id\": 99}"), NULL), NX_OK);
  cr_assert_eq(nx_export(g_db, "people", path_of("dump"), NULL, NULL), NX_EXISTS);
  cr_assert(strstr(nx_errmsg(g_db), "already exists"), "%s", nx_errmsg(g_db));
  char *after = read_file(path_of("dump/people.bson"), &n2);
  cr_assert(n1 == n2 && memcmp(before, after, n1) == 0);
  free(after);
  nx_export_opts eo = NX_EXPORT_OPTS_INIT;
  eo.force = true;
  cr_assert_eq(nx_export(g_db, "people", path_of("dump"), &eo, NULL), NX_OK, "%s", nx_errmsg(g_db));
  after = read_file(path_of("dump/people.bson"), &n2);
  cr_assert_gt(n2, n1);
  free(after);
  free(before);
  /* no temporary files are left behind */
  DIR *d = opendir(path_of("dump"));
  struct dirent *de;
  int files = 0;
  while ((de = readdir(d))) {
    if (de->d_name[0] == '.' && strstr(de->d_name, "nxtmp")) cr_assert_fail("leftover %s", de->d_name);
    if (de->d_name[0] != '.') files++;
  }
  closedir(d);
  cr_assert_eq(files, 2);
}

Test(io_rt, export_filter_projection_sort_and_redaction) {
  for (int i = 0; i < 5; i++) {
    char j[160];
    snprintf(j, sizeof j, "{\"_id\": %d, \"age\": %d, \"ssn\": \"123-45-%04d\", \"card\": {\"number\": \"4111\", \"exp\": \"12/30\"}}", i, 20 + i, i);
    cr_assert_eq(nx_insert_one(g_db, NULL, "u", nx_json(j), NULL), NX_OK);
  }
  nx_export_opts eo = NX_EXPORT_OPTS_INIT;
  eo.filter = nx_json("{\"age\": {\"$gte\": 22}}");
  eo.sort = nx_json("{\"age\": -1}");
  eo.projection = nx_json("{\"age\": 1, \"ssn\": 1, \"card\": 1}");
  eo.redact = "ssn,card.number";
  nx_export_report r;
  cr_assert_eq(nx_export(g_db, "u", path_of("u.ndjson"), &eo, &r), NX_OK, "%s", nx_errmsg(g_db));
  cr_assert_eq(r.written, 3);
  char *t = read_file(path_of("u.ndjson"), NULL);
  cr_assert_str_eq(t,
                   "{ \"_id\" : 4, \"age\" : 24, \"ssn\" : \"***\", \"card\" : { \"number\" : \"***\", \"exp\" : \"12/30\" } }\n"
                   "{ \"_id\" : 3, \"age\" : 23, \"ssn\" : \"***\", \"card\" : { \"number\" : \"***\", \"exp\" : \"12/30\" } }\n"
                   "{ \"_id\" : 2, \"age\" : 22, \"ssn\" : \"***\", \"card\" : { \"number\" : \"***\", \"exp\" : \"12/30\" } }\n");
  free(t);
  eo.redact_drop = true;
  eo.format = NX_FORMAT_CSV;
  cr_assert_eq(nx_export(g_db, "u", path_of("u.csv"), &eo, &r), NX_OK, "%s", nx_errmsg(g_db));
  t = read_file(path_of("u.csv"), NULL);
  cr_assert_str_eq(t, "\"_id\",\"age\",\"card.exp\"\n4,24,\"12/30\"\n3,23,\"12/30\"\n2,22,\"12/30\"\n");
  free(t);
}

Test(io_rt, export_errors_missing_collection_unknown_format) {
  cr_assert_eq(nx_export(g_db, "nope", path_of("x.ndjson"), NULL, NULL), NX_NOTFOUND);
  cr_assert(strstr(nx_errmsg(g_db), "'nope' does not exist"), "%s", nx_errmsg(g_db));
  cr_assert_eq(nx_insert_one(g_db, NULL, "c", nx_json("{\"a\": 1}"), NULL), NX_OK);
  cr_assert_eq(nx_export(g_db, "c", path_of("x.weird"), NULL, NULL), NX_INVALID);
  struct stat st;
  cr_assert_neq(stat(path_of("x.ndjson"), &st), 0, "nothing written");
}

static void make_ndjson(const char *name, int n, int bad_at) {
  FILE *f = fopen(path_of(name), "wb");
  for (int i = 0; i < n; i++) {
    if (i == bad_at) fprintf(f, "{\"_id\": %d, \"broken\": \n", i);
    else fprintf(f, "{\"_id\": %d, \"v\": \"value %d\", \"k\": %d}\n", i, i, i % 7);
  }
  fclose(f);
}

Test(io_rt, import_batches_first_bad_record_stops_and_its_batch_is_not_committed) {
  make_ndjson("b.ndjson", 50, 25);
  nx_import_opts o = NX_IMPORT_OPTS_INIT;
  o.batch_size = 10;
  nx_import_report r;
  cr_assert_eq(nx_import(g_db, path_of("b.ndjson"), "c", &o, &r), NX_PARSE);
  cr_assert(strstr(nx_errmsg(g_db), "b.ndjson: line 26, byte offset"), "%s", nx_errmsg(g_db));
  cr_assert_eq(count("c"), 20, "batches 1 and 2 committed, batch 3 (records 21..30) not");
  cr_assert_eq(r.inserted, 20);
  cr_assert_eq(r.read, 26);
  cr_assert_eq(r.failed, 1);
}

Test(io_rt, import_skip_errors_writes_the_sidecar_and_goes_on) {
  const char *in = "{\"_id\": 1}\n{\"_id\": 2, bad}\n{\"_id\": 1}\n\xff\xfe{}\n{\"$set\": 1}\n{\"_id\": 3}\n";
  write_file("s.ndjson", in, strlen(in));
  write_file("s.ndjson.errors.jsonl", "stale\n", 6);
  nx_import_opts o = NX_IMPORT_OPTS_INIT;
  o.skip_errors = true;
  o.format = NX_FORMAT_NDJSON;
  nx_import_report r;
  cr_assert_eq(nx_import(g_db, path_of("s.ndjson"), "c", &o, &r), NX_OK, "%s", nx_errmsg(g_db));
  cr_assert_eq(r.read, 6);
  cr_assert_eq(r.inserted, 2);
  cr_assert_eq(r.failed, 4);
  cr_assert_eq(count("c"), 2);
  cr_assert_eq(r.bytes, strlen(in));
  char *side = read_file(path_of("s.ndjson.errors.jsonl"), NULL);
  cr_assert(side);
  /* one JSON object per bad record, in order: line 2 (bad JSON), line 4 (UTF-8), line 5 ($ name),
   * then line 3 (duplicate _id, found when its batch is inserted) */
  int lines = 0;
  long want_lines[] = {2, 4, 5, 3};
  for (char *p = side, *nl; (nl = strchr(p, '\n')); p = nl + 1) {
    *nl = 0;
    bson_t d;
    bson_error_t e;
    cr_assert(bson_init_from_json(&d, p, -1, &e), "sidecar line %d not JSON: %s (%s)", lines + 1, p, e.message);
    bson_iter_t it;
    cr_assert(bson_iter_init_find(&it, &d, "line"));
    cr_assert_eq(bson_iter_as_int64(&it), want_lines[lines], "%s", p);
    cr_assert(bson_iter_init_find(&it, &d, "offset"));
    cr_assert(bson_iter_init_find(&it, &d, "reason") && strlen(bson_iter_utf8(&it, NULL)) > 10);
    cr_assert(bson_iter_init_find(&it, &d, "raw"));
    bson_destroy(&d);
    lines++;
  }
  cr_assert_eq(lines, 4, "%s", side);
  cr_assert(strstr(side, "\"raw\": \"{\\\"_id\\\": 2, bad}\""), "%s", side);
  cr_assert(strstr(side, "\"offset\": 11"), "%s", side);
  free(side);
}

Test(io_rt, import_duplicate_id_without_skip_fails_the_batch) {
  const char *in = "{\"_id\": 1}\n{\"_id\": 2}\n{\"_id\": 1}\n";
  write_file("d.ndjson", in, strlen(in));
  cr_assert_eq(nx_import(g_db, path_of("d.ndjson"), "c", NULL, NULL), NX_EXISTS);
  cr_assert(strstr(nx_errmsg(g_db), "line 3"), "%s", nx_errmsg(g_db));
  cr_assert_eq(count("c"), 0);
}

Test(io_rt, import_generates_ids_and_maps_ttl_field) {
  nx_clock_set_ms(1700000000000LL);
  const char *in = "{\"name\": \"a\", \"exp\": 60}\n{\"name\": \"b\", \"exp\": {\"$date\": \"2030-01-01T00:00:00Z\"}}\n"
                   "{\"name\": \"c\"}\n{\"name\": \"d\", \"exp\": \"2031-01-01T00:00:00Z\"}\n{\"name\": \"e\", \"exp\": [1]}\n";
  write_file("t.ndjson", in, strlen(in));
  nx_import_opts o = NX_IMPORT_OPTS_INIT;
  o.ttl_field = "exp";
  o.skip_errors = true;
  nx_import_report r;
  cr_assert_eq(nx_import(g_db, path_of("t.ndjson"), "c", &o, &r), NX_OK, "%s", nx_errmsg(g_db));
  cr_assert_eq(r.inserted, 4);
  cr_assert_eq(r.failed, 1);
  const char *names[] = {"a", "b", "c", "d"};
  int64_t want[] = {1700000060000LL, 1893456000000LL, 0, 1924992000000LL};
  for (int i = 0; i < 4; i++) {
    char f[64];
    snprintf(f, sizeof f, "{\"name\": \"%s\"}", names[i]);
    bson_t d;
    cr_assert_eq(nx_find_one(g_db, NULL, "c", nx_json(f), NULL, &d), NX_OK, "%s", nx_errmsg(g_db));
    bson_iter_t it;
    cr_assert(bson_iter_init_find(&it, &d, "_id") && BSON_ITER_HOLDS_BINARY(&it), "generated UUID _id");
    nx_doc_meta m;
    cr_assert_eq(nx_get_meta(g_db, NULL, "c", bson_iter_value(&it), &m), NX_OK, "%s", nx_errmsg(g_db));
    cr_assert_eq(m.expires_ms, want[i], "%s: %lld", names[i], (long long)m.expires_ms);
    bson_destroy(&d);
  }
}

Test(io_rt, import_formats_detected_by_content) {
  const char *csv = "a;b\n1;x\n";
  write_file("noext1", csv, strlen(csv));
  const char *arr = "[{\"a\": 1}]";
  write_file("noext2", arr, strlen(arr));
  cr_assert_eq(nx_import(g_db, path_of("noext1"), "c1", NULL, NULL), NX_OK, "%s", nx_errmsg(g_db));
  cr_assert_eq(nx_import(g_db, path_of("noext2"), "c2", NULL, NULL), NX_OK, "%s", nx_errmsg(g_db));
  bson_t d;
  cr_assert_eq(nx_find_one(g_db, NULL, "c1", nx_none(), NULL, &d), NX_OK);
  bson_iter_t it;
  cr_assert(bson_iter_init_find(&it, &d, "b") && !strcmp(bson_iter_utf8(&it, NULL), "x"));
  bson_destroy(&d);
  cr_assert_eq(count("c2"), 1);
  /* an explicit format wins over the extension */
  write_file("x.csv", "{\"a\": 5}\n", 9);
  nx_import_opts o = NX_IMPORT_OPTS_INIT;
  o.format = NX_FORMAT_NDJSON;
  cr_assert_eq(nx_import(g_db, path_of("x.csv"), "c3", &o, NULL), NX_OK, "%s", nx_errmsg(g_db));
  cr_assert_eq(count("c3"), 1);
}

Test(io_rt, bad_inputs_give_positions_and_commit_nothing_from_the_batch) {
  struct {
    const char *name;
    const char *data;
    size_t len;
    int rc;
    const char *msg;
  } cases[] = {
      {"t1.json", "[{\"a\": 1}, {\"a\": 2}, {\"a\": ", 0, NX_PARSE, "truncated JSON: the file ends inside an element that starts at line 1, byte offset 21"},
      {"t2.csv", "a,b\n1,2\n3,\"x\n", 0, NX_PARSE, "unbalanced quote: the quoted field that opens at line 3, byte offset 10"},
      {"t3.csv", "a,b\n1,2\n3,\xc3\x28\n", 0, NX_PARSE, "line 3, byte offset 10: invalid UTF-8 in column 2 (b)"},
      {"t4.ndjson", "{\"a\": 1}\n{\"a\": \"\xe2\x82\"}\n", 0, NX_PARSE, "line 2, byte offset 16: invalid UTF-8"},
      {"t5.bson", "\x0c\x00\x00\x00\x10\x61\x00\x01\x00\x00\x00\x00\xff\xff\xff\x01\x10", 17, NX_PARSE, "bad BSON document length 33554431 at byte offset 12 (must be 5..16777216)"},
      {"t6.bson", "\x0c\x00\x00\x00\x10\x61\x00\x01\x00\x00\x00\x00\x0c\x00\x00\x00\x10\x61", 18, NX_PARSE, "truncated BSON: the document at byte offset 12 says 12 bytes, only 6 remain"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    size_t len = cases[i].len ? cases[i].len : strlen(cases[i].data);
    write_file(cases[i].name, cases[i].data, len);
    char coll[16];
    snprintf(coll, sizeof coll, "bad%zu", i);
    nx_import_report r;
    int rc = nx_import(g_db, path_of(cases[i].name), coll, NULL, &r);
    cr_assert_eq(rc, cases[i].rc, "%s: rc %d: %s", cases[i].name, rc, nx_errmsg(g_db));
    cr_assert(strstr(nx_errmsg(g_db), cases[i].msg), "%s: %s", cases[i].name, nx_errmsg(g_db));
    bool exists = false;
    nx_collection_exists(g_db, coll, &exists);
    cr_assert_eq(exists ? count(coll) : 0, 0, "%s: nothing committed", cases[i].name);
  }
}

Test(io_rt, huge_line_is_an_error_not_a_crash) {
  /* a 70 MB line without a newline, past the 64 MiB record limit */
  FILE *f = fopen(path_of("huge.ndjson"), "wb");
  fputs("{\"a\": 1}\n{\"big\": \"", f);
  static char chunk[1 << 20];
  memset(chunk, 'x', sizeof chunk);
  for (int i = 0; i < 70; i++) fwrite(chunk, 1, sizeof chunk, f);
  fclose(f);
  nx_alloc_reset_peak();
  nx_alloc_stats before, after;
  nx_alloc_get_stats(&before);
  nx_import_report r;
  cr_assert_eq(nx_import(g_db, path_of("huge.ndjson"), "c", NULL, &r), NX_LIMIT);
  nx_alloc_get_stats(&after);
  cr_assert(strstr(nx_errmsg(g_db), "line 2 (byte offset 9) is longer than the limit"), "%s", nx_errmsg(g_db));
  cr_assert_eq(count("c"), 0);
  cr_assert_lt(after.peak - before.current, (size_t)80 << 20, "peak %zu", after.peak - before.current);
}

static int g_calls;
static int cancel_at_second(void *ctx, uint64_t done, uint64_t total) {
  (void)ctx;
  cr_assert_leq(done, total);
  return ++g_calls == 2;
}

Test(io_rt, progress_reports_and_cancel_stops) {
  make_ndjson("p.ndjson", 100, -1);
  nx_import_opts o = NX_IMPORT_OPTS_INIT;
  o.batch_size = 30;
  o.progress = cancel_at_second;
  g_calls = 0;
  nx_import_report r;
  cr_assert_eq(nx_import(g_db, path_of("p.ndjson"), "c", &o, &r), NX_CANCELLED);
  cr_assert_eq(count("c"), 30, "the cancelled batch is not committed");
  cr_assert_eq(r.inserted, 30);
}

static size_t import_peak(int n) {
  char name[32];
  snprintf(name, sizeof name, "m%d.ndjson", n);
  make_ndjson(name, n, -1);
  char coll[32];
  snprintf(coll, sizeof coll, "m%d", n);
  nx_alloc_stats before, after;
  nx_alloc_reset_peak();
  nx_alloc_get_stats(&before);
  nx_import_report r;
  cr_assert_eq(nx_import(g_db, path_of(name), coll, NULL, &r), NX_OK, "%s", nx_errmsg(g_db));
  cr_assert_eq(r.inserted, (uint64_t)n);
  nx_alloc_get_stats(&after);
  return after.peak - before.current;
}

Test(io_rt, import_memory_does_not_grow_with_the_file) {
  bool asan = getenv("NX_TEST_SCALE") && !strcmp(getenv("NX_TEST_SCALE"), "asan");
  int small = asan ? 5000 : 10000, big = small * 10;
  /* a small page cache and log, so both runs fill them: what is left is the importer's memory */
  nx_close(g_db);
  nx_open_opts o = NX_OPEN_OPTS_INIT;
  o.durability = NX_DURABILITY_OFF;
  o.cache_bytes = 256u << 10;
  o.checkpoint_bytes = 1u << 20;
  cr_assert_eq(nx_open(path_of("mem.db"), &o, &g_db), NX_OK, "%s", nx_errmsg(NULL));
  size_t p_small = import_peak(small);
  size_t p_big = import_peak(big);
  cr_log_info("peak above baseline: %d docs %zu bytes, %d docs %zu bytes", small, p_small, big, p_big);
  /* the page cache and the log are full in both runs; allow 10% noise */
  cr_assert_leq(p_big, p_small + p_small / 10, "%d docs: %zu bytes, %d docs: %zu bytes", small, p_small, big, p_big);
}

Test(io_rt, skip_errors_stops_at_broken_structure_and_logs_it) {
  const char *in = "id,v\n1,a\n2,\"b\"x\n3,c\n4,\"open\n";
  write_file("s.csv", in, strlen(in));
  nx_import_opts o = NX_IMPORT_OPTS_INIT;
  o.skip_errors = true;
  nx_import_report r;
  cr_assert_eq(nx_import(g_db, path_of("s.csv"), "c", &o, &r), NX_PARSE);
  cr_assert(strstr(nx_errmsg(g_db), "unbalanced quote"), "%s", nx_errmsg(g_db));
  cr_assert_eq(r.failed, 2);
  cr_assert_eq(r.inserted, 0, "the batch holding rows 1 and 3 is not committed");
  char *side = read_file(path_of("s.csv.errors.jsonl"), NULL);
  cr_assert(side && strstr(side, "\"line\": 3") && strstr(side, "\"line\": 5") && strstr(side, "unbalanced quote"), "%s", side);
  free(side);
}

Test(io_rt, bson_export_file_names_cannot_leave_the_folder) {
  cr_assert_eq(nx_insert_one(g_db, NULL, "../up", nx_json("{\"_id\": 1}"), NULL), NX_OK, "%s", nx_errmsg(g_db));
  cr_assert_eq(nx_export(g_db, "../up", path_of("dump"), NULL, NULL), NX_OK, "%s", nx_errmsg(g_db));
  struct stat st;
  cr_assert_eq(stat(path_of("dump/..%2Fup.bson"), &st), 0);
  cr_assert_eq(stat(path_of("dump/..%2Fup.metadata.json"), &st), 0);
  cr_assert_neq(stat(path_of("up.bson"), &st), 0);
}

Test(io_rt, bson_bad_records_go_to_the_sidecar_as_hex) {
  /* {"a": 1}, then {"s": "a\xff"} (invalid UTF-8), then {"$x": 1} (invalid for storage) */
  const uint8_t in[] = {12, 0, 0, 0, 0x10, 'a', 0, 1, 0, 0, 0, 0,
                        15, 0, 0, 0, 2, 's', 0, 3, 0, 0, 0, 'a', 0xff, 0, 0,
                        13, 0, 0, 0, 0x10, '$', 'x', 0, 1, 0, 0, 0, 0};
  write_file("e.bson", in, sizeof in);
  nx_import_opts o = NX_IMPORT_OPTS_INIT;
  o.skip_errors = true;
  nx_import_report r;
  cr_assert_eq(nx_import(g_db, path_of("e.bson"), "c", &o, &r), NX_OK, "%s", nx_errmsg(g_db));
  cr_assert_eq(r.inserted, 1);
  cr_assert_eq(r.failed, 2);
  char *side = read_file(path_of("e.bson.errors.jsonl"), NULL);
  cr_assert(side && strstr(side, "\"line\": 0, \"offset\": 12,") && strstr(side, "\"raw_hex\": \"0f0000000273000300000061ff0000\""), "%s", side);
  cr_assert(strstr(side, "\"offset\": 27,") && strstr(side, "\"raw_hex\": \"0d0000001024780001000000"), "%s", side);
  free(side);
}

static uint64_t g_last_done;
static int cancel_export_at_2000(void *ctx, uint64_t done, uint64_t total) {
  (void)ctx;
  (void)total;
  g_last_done = done;
  return done >= 2000;
}

Test(io_rt, export_progress_and_cancel_leave_no_file) {
  make_ndjson("e.ndjson", 3000, -1);
  cr_assert_eq(nx_import(g_db, path_of("e.ndjson"), "c", NULL, NULL), NX_OK, "%s", nx_errmsg(g_db));
  nx_export_opts eo = NX_EXPORT_OPTS_INIT;
  eo.progress = cancel_export_at_2000;
  nx_export_report r;
  cr_assert_eq(nx_export(g_db, "c", path_of("out.json"), &eo, &r), NX_CANCELLED);
  cr_assert_eq(g_last_done, 2000);
  cr_assert_eq(r.written, 0);
  struct stat st;
  cr_assert_neq(stat(path_of("out.json"), &st), 0, "a cancelled export writes nothing");
  eo.progress = NULL;
  cr_assert_eq(nx_export(g_db, "c", path_of("out.json"), &eo, &r), NX_OK, "%s", nx_errmsg(g_db));
  cr_assert_eq(r.written, 3000);
}
