/* test_io_read.c: the import readers (NDJSON, JSON, CSV, BSON), detection and text helpers,
 * on in-memory inputs. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "io.h"

/* Reads everything; returns the documents as canonical JSON joined by '\n', and the errors as
 * "ERR@line:offset:fatal" lines, in order. */
static char *read_all(const void *data, size_t n, const io_read_opts *o) {
  io_reader *r;
  int rc = io_reader_open_mem(data, n, "t", o, &r);
  cr_assert_eq(rc, NX_OK, "open: %s", nx_err_msg());
  nx_buf out;
  nx_buf_init(&out, 0);
  for (int guard = 0; guard < 100000; guard++) {
    const bson_t *d;
    rc = io_reader_next(r, &d);
    if (rc == NX_DONE) break;
    if (rc == NX_ROW) {
      char *s = bson_as_canonical_extended_json(d, NULL);
      nx_buf_printf(&out, "%s\n", s);
      bson_free(s);
      continue;
    }
    io_where w;
    io_reader_where(r, &w);
    nx_buf_printf(&out, "ERR@%llu:%llu:%d\n", (unsigned long long)w.line,
                  (unsigned long long)w.offset, w.fatal ? 1 : 0);
    if (w.fatal) break;
  }
  io_reader_close(r);
  if (!out.data) nx_buf_append(&out, "", 0);
  return (char *)out.data;
}

static char *read_str(const char *s, const io_read_opts *o) { return read_all(s, strlen(s), o); }

static io_read_opts fmt(nx_format f) {
  io_read_opts o;
  memset(&o, 0, sizeof o);
  o.format = f;
  return o;
}

#define EXPECT_READ(input, opts, expected)                                                       \
  do {                                                                                           \
    io_read_opts o_ = (opts);                                                                    \
    char *got_ = read_str((input), &o_);                                                         \
    cr_assert_str_eq(got_, (expected));                                                          \
    nx_free(got_);                                                                               \
  } while (0)

Test(io_read, ndjson_lines_blank_lines_and_crlf) {
  EXPECT_READ("{\"a\":1}\r\n\n  \n{\"b\":\"x\"}\n{\"c\":true}", fmt(NX_FORMAT_NDJSON),
              "{ \"a\" : { \"$numberInt\" : \"1\" } }\n{ \"b\" : \"x\" }\n{ \"c\" : true }\n");
}

Test(io_read, ndjson_bad_line_is_reported_and_skipped) {
  const char *in = "{\"a\":1}\n{\"a\":\n{\"a\":3}\n";
  io_reader *r;
  io_read_opts o = fmt(NX_FORMAT_NDJSON);
  cr_assert_eq(io_reader_open_mem(in, strlen(in), "in.ndjson", &o, &r), NX_OK);
  const bson_t *d;
  cr_assert_eq(io_reader_next(r, &d), NX_ROW);
  cr_assert_eq(io_reader_next(r, &d), NX_PARSE);
  cr_assert(strstr(nx_err_msg(), "in.ndjson: line 2, byte offset 8"), "msg: %s", nx_err_msg());
  io_where w;
  io_reader_where(r, &w);
  cr_assert_eq(w.line, 2);
  cr_assert_eq(w.offset, 8);
  cr_assert_not(w.fatal);
  cr_assert_eq(w.raw_len, 5);
  cr_assert_eq(memcmp(w.raw, "{\"a\":", 5), 0);
  cr_assert_eq(io_reader_next(r, &d), NX_ROW);
  bson_iter_t it;
  cr_assert(bson_iter_init_find(&it, d, "a") && bson_iter_int32(&it) == 3);
  cr_assert_eq(io_reader_next(r, &d), NX_DONE);
  io_reader_close(r);
}

Test(io_read, ndjson_non_object_and_invalid_utf8_with_offsets) {
  EXPECT_READ("[1,2]\n{\"s\":\"a\xff\"}\n{\"ok\":1}\n", fmt(NX_FORMAT_NDJSON),
              "ERR@1:0:0\nERR@2:6:0\n{ \"ok\" : { \"$numberInt\" : \"1\" } }\n");
  const char *in = "{\"s\":\"a\xc3\x28\"}\n";
  io_reader *r;
  io_read_opts o = fmt(NX_FORMAT_NDJSON);
  cr_assert_eq(io_reader_open_mem(in, strlen(in), "u", &o, &r), NX_OK);
  const bson_t *d;
  cr_assert_eq(io_reader_next(r, &d), NX_PARSE);
  cr_assert(strstr(nx_err_msg(), "byte offset 7: invalid UTF-8"), "msg: %s", nx_err_msg());
  io_reader_close(r);
}

Test(io_read, ndjson_huge_line_is_refused_without_buffering_it) {
  size_t n = 1000000;
  char *in = nx_malloc(n + 64);
  size_t k = 0;
  k += (size_t)snprintf(in, 64, "{\"a\":1}\n{\"big\":\"");
  memset(in + k, 'x', n - k - 20);
  k = n - 20;
  memcpy(in + k, "\"}\n{\"a\":2}\n", 11);
  k += 11;
  io_read_opts o = fmt(NX_FORMAT_NDJSON);
  o.max_record = 4096;
  nx_alloc_reset_peak();
  nx_alloc_stats before;
  nx_alloc_get_stats(&before);
  char *got = read_all(in, k, &o);
  nx_alloc_stats after;
  nx_alloc_get_stats(&after);
  cr_assert_str_eq(got, "{ \"a\" : { \"$numberInt\" : \"1\" } }\nERR@2:8:0\n{ \"a\" : { \"$numberInt\" : \"2\" } }\n");
  cr_assert_lt(after.peak - before.current, 600u * 1024, "peak grew by %zu", after.peak - before.current);
  nx_free(got);
  nx_free(in);
}

Test(io_read, json_array_pretty_with_extended_json_types) {
  const char *in = "[\n  {\"_id\": {\"$oid\": \"65f0a1b2c3d4e5f601234567\"},\n   \"n\": {\"$numberLong\": \"5\"},\n"
                   "   \"d\": {\"$date\": \"2024-05-01T10:20:30.123Z\"}, \"s\": \"a]b}\\\"c\"},\n"
                   "  {\"x\": [1, {\"y\": 2.5}]}\n]\n";
  EXPECT_READ(in, fmt(NX_FORMAT_JSON),
              "{ \"_id\" : { \"$oid\" : \"65f0a1b2c3d4e5f601234567\" }, \"n\" : { \"$numberLong\" : \"5\" }, "
              "\"d\" : { \"$date\" : { \"$numberLong\" : \"1714558830123\" } }, \"s\" : \"a]b}\\\"c\" }\n"
              "{ \"x\" : [ { \"$numberInt\" : \"1\" }, { \"y\" : { \"$numberDouble\" : \"2.5\" } } ] }\n");
}

Test(io_read, json_object_sequence_and_empty_inputs) {
  EXPECT_READ("{\"a\":1}\n{\n \"b\": 2\n}\n", fmt(NX_FORMAT_JSON),
              "{ \"a\" : { \"$numberInt\" : \"1\" } }\n{ \"b\" : { \"$numberInt\" : \"2\" } }\n");
  EXPECT_READ("[]", fmt(NX_FORMAT_JSON), "");
  EXPECT_READ("  \n", fmt(NX_FORMAT_JSON), "");
  EXPECT_READ("", fmt(NX_FORMAT_NDJSON), "");
}

Test(io_read, json_bad_element_is_skipped_bad_structure_is_fatal) {
  /* a number element: a record error; the reader goes on */
  EXPECT_READ("[{\"a\":1}, 42, {\"a\":3}]", fmt(NX_FORMAT_JSON),
              "{ \"a\" : { \"$numberInt\" : \"1\" } }\nERR@1:10:0\n{ \"a\" : { \"$numberInt\" : \"3\" } }\n");
  /* truncated inside an element */
  EXPECT_READ("[{\"a\":1},\n {\"b\": \"xx", fmt(NX_FORMAT_JSON), "{ \"a\" : { \"$numberInt\" : \"1\" } }\nERR@2:11:1\n");
  /* no closing bracket */
  EXPECT_READ("[{\"a\":1}", fmt(NX_FORMAT_JSON), "ERR@1:1:1\n");
  /* missing comma */
  EXPECT_READ("[{\"a\":1} {\"a\":2}]", fmt(NX_FORMAT_JSON), "ERR@1:1:1\n");
  /* data after the array */
  EXPECT_READ("[{\"a\":1}] x", fmt(NX_FORMAT_JSON), "{ \"a\" : { \"$numberInt\" : \"1\" } }\nERR@1:10:1\n");
  /* not JSON at all */
  EXPECT_READ("hello", fmt(NX_FORMAT_JSON), "ERR@1:0:1\n");
  /* trailing comma */
  EXPECT_READ("[{\"a\":1},]", fmt(NX_FORMAT_JSON), "{ \"a\" : { \"$numberInt\" : \"1\" } }\nERR@1:9:1\n");
}

static void append_doc(nx_buf *b, const char *json) {
  bson_t d;
  bson_error_t e;
  cr_assert(bson_init_from_json(&d, json, -1, &e), "%s", e.message);
  nx_buf_append(b, bson_get_data(&d), d.len);
  bson_destroy(&d);
}

Test(io_read, bson_concatenated_documents) {
  nx_buf b;
  nx_buf_init(&b, 0);
  append_doc(&b, "{\"a\": 1}");
  append_doc(&b, "{\"b\": {\"$numberLong\": \"7\"}, \"c\": [1, 2]}");
  char *got = read_all(b.data, b.len, &(io_read_opts){NX_FORMAT_BSON, 0, false, false, 0});
  cr_assert_str_eq(got, "{ \"a\" : { \"$numberInt\" : \"1\" } }\n"
                        "{ \"b\" : { \"$numberLong\" : \"7\" }, \"c\" : [ { \"$numberInt\" : \"1\" }, { \"$numberInt\" : \"2\" } ] }\n");
  nx_free(got);
  nx_buf_free(&b);
}

Test(io_read, bson_wrong_lengths_and_truncation_are_fatal_with_offsets) {
  nx_buf b;
  nx_buf_init(&b, 0);
  append_doc(&b, "{\"a\": 1}"); /* 12 bytes */
  append_doc(&b, "{\"a\": 2}");
  io_read_opts o = fmt(NX_FORMAT_BSON);
  /* second length too large for the file: truncated */
  nx_put32(b.data + 12, 1000);
  char *got = read_all(b.data, b.len, &o);
  cr_assert_str_eq(got, "{ \"a\" : { \"$numberInt\" : \"1\" } }\nERR@0:12:1\n");
  nx_free(got);
  /* length beyond 16 MiB: refused before anything is buffered */
  nx_put32(b.data + 12, 0x7fffffff);
  io_reader *r;
  cr_assert_eq(io_reader_open_mem(b.data, b.len, "dump.bson", &o, &r), NX_OK);
  const bson_t *d;
  cr_assert_eq(io_reader_next(r, &d), NX_ROW);
  cr_assert_eq(io_reader_next(r, &d), NX_PARSE);
  cr_assert(strstr(nx_err_msg(), "bad BSON document length 2147483647 at byte offset 12"), "%s", nx_err_msg());
  cr_assert_eq(io_reader_next(r, &d), NX_PARSE, "fatal errors repeat");
  io_reader_close(r);
  /* length too small */
  nx_put32(b.data + 12, 3);
  got = read_all(b.data, b.len, &o);
  cr_assert_str_eq(got, "{ \"a\" : { \"$numberInt\" : \"1\" } }\nERR@0:12:1\n");
  nx_free(got);
  /* stray bytes at the end */
  nx_put32(b.data + 12, 12);
  got = read_all(b.data, b.len + 0 - 10, &o);
  cr_assert_str_eq(got, "{ \"a\" : { \"$numberInt\" : \"1\" } }\nERR@0:12:1\n");
  nx_free(got);
  /* a lying inner length: the document is bad, the next one is still read */
  nx_buf c;
  nx_buf_init(&c, 0);
  append_doc(&c, "{\"s\": \"abc\"}");
  append_doc(&c, "{\"a\": 2}");
  c.data[4 + 1 + 2] = 0x40; /* string length of "s" -> 64 */
  got = read_all(c.data, c.len, &o);
  cr_assert_str_eq(got, "ERR@0:0:0\n{ \"a\" : { \"$numberInt\" : \"2\" } }\n");
  nx_free(got);
  nx_buf_free(&c);
  nx_buf_free(&b);
}

Test(io_read, csv_header_inference_and_quoting) {
  const char *in = "name,age,big,score,ok,none,zip,when,day,qnum,note\n"
                   "alice,30,5000000000,1.5,true,,00123,2024-05-01T10:20:30Z,2024-05-02,\"123\",\"a,b\"\n"
                   "bob,-7,0,-2e3,FALSE,null,\"00123\",2024-13-01,x,\"\",\" sp \"\n";
  EXPECT_READ(in, fmt(NX_FORMAT_CSV),
              "{ \"name\" : \"alice\", \"age\" : { \"$numberInt\" : \"30\" }, \"big\" : { \"$numberLong\" : \"5000000000\" }, "
              "\"score\" : { \"$numberDouble\" : \"1.5\" }, \"ok\" : true, \"none\" : null, \"zip\" : \"00123\", "
              "\"when\" : { \"$date\" : { \"$numberLong\" : \"1714558830000\" } }, "
              "\"day\" : { \"$date\" : { \"$numberLong\" : \"1714608000000\" } }, \"qnum\" : \"123\", \"note\" : \"a,b\" }\n"
              "{ \"name\" : \"bob\", \"age\" : { \"$numberInt\" : \"-7\" }, \"big\" : { \"$numberInt\" : \"0\" }, "
              "\"score\" : { \"$numberDouble\" : \"-2000.0\" }, \"ok\" : false, \"none\" : null, \"zip\" : \"00123\", "
              "\"when\" : \"2024-13-01\", \"day\" : \"x\", \"qnum\" : \"\", \"note\" : \" sp \" }\n");
}

Test(io_read, csv_no_infer_no_header_and_spaces_kept) {
  io_read_opts o = fmt(NX_FORMAT_CSV);
  o.no_infer = true;
  EXPECT_READ("a,b\n1, true\n", o, "{ \"a\" : \"1\", \"b\" : \" true\" }\n");
  o = fmt(NX_FORMAT_CSV);
  o.no_header = true;
  EXPECT_READ("1,x\n2,y,z\n", o,
              "{ \"field1\" : { \"$numberInt\" : \"1\" }, \"field2\" : \"x\" }\n"
              "{ \"field1\" : { \"$numberInt\" : \"2\" }, \"field2\" : \"y\", \"field3\" : \"z\" }\n");
}

Test(io_read, csv_dotted_headers_build_nested_documents) {
  EXPECT_READ("name,address.zip,address.city,address.geo.lat,tags\nann,\"02134\",Boston,42.5,x\nbo\n",
              fmt(NX_FORMAT_CSV),
              "{ \"name\" : \"ann\", \"address\" : { \"zip\" : \"02134\", \"city\" : \"Boston\", \"geo\" : "
              "{ \"lat\" : { \"$numberDouble\" : \"42.5\" } } }, \"tags\" : \"x\" }\n"
              "{ \"name\" : \"bo\" }\n");
  /* conflicting headers are fatal */
  EXPECT_READ("a,a.b\n1,2\n", fmt(NX_FORMAT_CSV), "ERR@1:0:1\n");
  EXPECT_READ("a,a\n1,2\n", fmt(NX_FORMAT_CSV), "ERR@1:0:1\n");
}

/* Found by the fuzz smoke run: a column "x.$date" built {x: {$date: ...}}, whose JSON form reads
 * back as a date (or not at all). A name part starting with '$' is refused, naming the column. */
Test(io_read, csv_header_part_starting_with_dollar_is_refused) {
  EXPECT_READ("a,x.$date\n1,2\n", fmt(NX_FORMAT_CSV), "ERR@1:0:1\n");
  EXPECT_READ("$set\n1\n", fmt(NX_FORMAT_CSV), "ERR@1:0:1\n");
  const char *in = "a,!.$date\n1,2\n";
  io_reader *r;
  io_read_opts o = fmt(NX_FORMAT_CSV);
  cr_assert_eq(io_reader_open_mem(in, strlen(in), "d.csv", &o, &r), NX_OK);
  const bson_t *d;
  cr_assert_eq(io_reader_next(r, &d), NX_INVALID);
  cr_assert(strstr(nx_err_msg(), "column 2 name '!.$date'") && strstr(nx_err_msg(), "starting with '$'"), "%s",
            nx_err_msg());
  io_reader_close(r);
  /* the fuzzer's input itself */
  static const uint8_t crash[] = {0x61, 0x2c, 0x21, 0x2e, 0x24, 0x64, 0x61, 0x74, 0x65, 0x2c, 0xa, 0xa, 0x2d, 0xa,
                                  0x62, 0x61, 0x2c, 0xa, 0x2c, 0x61, 0xd, 0x63, 0xd, 0x2c, 0x7a, 0xd, 0x61, 0xa};
  (void)io_fuzz_read(crash, sizeof crash, NX_FORMAT_CSV);
}

Test(io_read, csv_quoted_newlines_crlf_and_escaped_quotes) {
  EXPECT_READ("k,v\r\n1,\"line1\nline2\"\r\n2,\"say \"\"hi\"\"\"\r\n3,last", fmt(NX_FORMAT_CSV),
              "{ \"k\" : { \"$numberInt\" : \"1\" }, \"v\" : \"line1\\nline2\" }\n"
              "{ \"k\" : { \"$numberInt\" : \"2\" }, \"v\" : \"say \\\"hi\\\"\" }\n"
              "{ \"k\" : { \"$numberInt\" : \"3\" }, \"v\" : \"last\" }\n");
}

Test(io_read, csv_unbalanced_quote_is_fatal_and_names_the_opening_line) {
  const char *in = "a,b\n1,2\n3,\"open\n4,5\n";
  io_reader *r;
  io_read_opts o = fmt(NX_FORMAT_CSV);
  cr_assert_eq(io_reader_open_mem(in, strlen(in), "q.csv", &o, &r), NX_OK);
  const bson_t *d;
  cr_assert_eq(io_reader_next(r, &d), NX_ROW);
  cr_assert_eq(io_reader_next(r, &d), NX_PARSE);
  cr_assert(strstr(nx_err_msg(), "unbalanced quote") && strstr(nx_err_msg(), "line 3, byte offset 10"),
            "%s", nx_err_msg());
  io_where w;
  io_reader_where(r, &w);
  cr_assert(w.fatal);
  io_reader_close(r);
}

Test(io_read, csv_strict_errors_skip_the_row) {
  EXPECT_READ("a,b\n1,x\"y\n2,\"q\"z\n3,ok\n", fmt(NX_FORMAT_CSV),
              "ERR@2:4:0\nERR@3:10:0\n{ \"a\" : { \"$numberInt\" : \"3\" }, \"b\" : \"ok\" }\n");
  const char *in = "a,b\n1,x\"y\n";
  io_reader *r;
  io_read_opts o = fmt(NX_FORMAT_CSV);
  cr_assert_eq(io_reader_open_mem(in, strlen(in), "s.csv", &o, &r), NX_OK);
  const bson_t *d;
  cr_assert_eq(io_reader_next(r, &d), NX_PARSE);
  cr_assert(strstr(nx_err_msg(), "line 2, byte offset 7: a quote inside an unquoted field"), "%s", nx_err_msg());
  io_where w;
  io_reader_where(r, &w);
  cr_assert_eq(w.raw_len, 6);
  cr_assert_eq(memcmp(w.raw, "1,x\"y\n", 6), 0);
  io_reader_close(r);
}

Test(io_read, csv_invalid_utf8_names_the_column_and_offset) {
  const char *in = "a,b\n1,ok\n2,\"b\xff\"\n";
  io_reader *r;
  io_read_opts o = fmt(NX_FORMAT_CSV);
  cr_assert_eq(io_reader_open_mem(in, strlen(in), "u.csv", &o, &r), NX_OK);
  const bson_t *d;
  cr_assert_eq(io_reader_next(r, &d), NX_ROW);
  cr_assert_eq(io_reader_next(r, &d), NX_PARSE);
  cr_assert(strstr(nx_err_msg(), "line 3, byte offset 13: invalid UTF-8 in column 2 (b)"), "%s", nx_err_msg());
  cr_assert_eq(io_reader_next(r, &d), NX_DONE);
  io_reader_close(r);
}

Test(io_read, csv_rows_spanning_read_buffers) {
  nx_buf b;
  nx_buf_init(&b, 0);
  nx_buf_printf(&b, "i,text\n");
  for (int i = 0; i < 20000; i++) nx_buf_printf(&b, "%d,\"row %d, with a \"\"quote\"\"\nand a newline\"\n", i, i);
  io_reader *r;
  io_read_opts o = fmt(NX_FORMAT_CSV);
  cr_assert_eq(io_reader_open_mem(b.data, b.len, "big.csv", &o, &r), NX_OK);
  const bson_t *d;
  int n = 0;
  int rc;
  while ((rc = io_reader_next(r, &d)) == NX_ROW) {
    bson_iter_t it;
    cr_assert(bson_iter_init_find(&it, d, "i") && bson_iter_int32(&it) == n);
    cr_assert(bson_iter_init_find(&it, d, "text"));
    char want[64];
    snprintf(want, sizeof want, "row %d, with a \"quote\"\nand a newline", n);
    cr_assert_str_eq(bson_iter_utf8(&it, NULL), want);
    io_where w;
    io_reader_where(r, &w);
    cr_assert_eq(w.line, (uint64_t)(2 + 2 * n));
    n++;
  }
  cr_assert_eq(rc, NX_DONE, "%s", nx_err_msg());
  cr_assert_eq(n, 20000);
  io_reader_close(r);
  nx_buf_free(&b);
}

Test(io_read, utf16_with_bom_is_transcoded_without_bom_refused) {
  /* {"s":"é😀"}\n in UTF-16LE with a BOM */
  const uint16_t units[] = {0xFEFF, '{', '"', 's', '"', ':', '"', 0x00E9, 0xD83D, 0xDE00, '"', '}', '\n'};
  uint8_t le[sizeof units], be[sizeof units];
  for (size_t i = 0; i < sizeof units / 2; i++) {
    le[2 * i] = (uint8_t)units[i];
    le[2 * i + 1] = (uint8_t)(units[i] >> 8);
    be[2 * i] = (uint8_t)(units[i] >> 8);
    be[2 * i + 1] = (uint8_t)units[i];
  }
  io_read_opts o = fmt(NX_FORMAT_AUTO);
  char *got = read_all(le, sizeof le, &o);
  cr_assert_str_eq(got, "{ \"s\" : \"\xc3\xa9\xf0\x9f\x98\x80\" }\n");
  nx_free(got);
  got = read_all(be, sizeof be, &o);
  cr_assert_str_eq(got, "{ \"s\" : \"\xc3\xa9\xf0\x9f\x98\x80\" }\n");
  nx_free(got);
  /* without the BOM: refused at open */
  io_reader *r;
  cr_assert_eq(io_reader_open_mem(le + 2, sizeof le - 2, "w.json", &o, &r), NX_INVALID);
  cr_assert(strstr(nx_err_msg(), "UTF-16"), "%s", nx_err_msg());
  /* an unpaired surrogate */
  uint8_t bad[] = {0xFF, 0xFE, '{', 0, 0x3D, 0xD8, '}', 0};
  cr_assert_eq(io_reader_open_mem(bad, sizeof bad, "s.json", &o, &r), NX_PARSE);
  cr_assert(strstr(nx_err_msg(), "unpaired high surrogate at byte offset 4"), "%s", nx_err_msg());
}

Test(io_read, detection_by_extension_then_content) {
  char d;
  cr_assert_eq(io_detect("x.ndjson", NULL, 0, &d), NX_FORMAT_NDJSON);
  cr_assert_eq(io_detect("x.JSONL", NULL, 0, &d), NX_FORMAT_NDJSON);
  cr_assert_eq(io_detect("x.json", NULL, 0, &d), NX_FORMAT_JSON);
  cr_assert_eq(io_detect("x.bson", NULL, 0, &d), NX_FORMAT_BSON);
  cr_assert_eq(io_detect("x.tsv", NULL, 0, &d), NX_FORMAT_CSV);
  cr_assert_eq(d, '\t');
  const uint8_t bson_head[] = {12, 0, 0, 0, 0x10, 'a', 0, 1, 0, 0, 0, 0};
  cr_assert_eq(io_detect("x.dat", bson_head, sizeof bson_head, &d), NX_FORMAT_BSON);
  cr_assert_eq(io_detect(NULL, (const uint8_t *)" [ {", 4, &d), NX_FORMAT_JSON);
  cr_assert_eq(io_detect(NULL, (const uint8_t *)"{\"a\":1}\n{\"a\":2}\n", 16, &d), NX_FORMAT_NDJSON);
  cr_assert_eq(io_detect(NULL, (const uint8_t *)"{\n \"a\": 1\n}\n", 12, &d), NX_FORMAT_JSON);
  cr_assert_eq(io_detect(NULL, (const uint8_t *)"a;b;c\n1;2;3\n", 12, &d), NX_FORMAT_CSV);
  cr_assert_eq(d, ';');
  cr_assert_eq(io_detect("x.csv", (const uint8_t *)"a|b\n", 4, &d), NX_FORMAT_CSV);
  cr_assert_eq(d, '|');
  /* a sniffed ';' delimiter is used when reading */
  EXPECT_READ("a;b\n1;\"x;y\"\n", fmt(NX_FORMAT_AUTO), "{ \"a\" : { \"$numberInt\" : \"1\" }, \"b\" : \"x;y\" }\n");
  /* a UTF-8 BOM is skipped */
  EXPECT_READ("\xEF\xBB\xBF{\"a\":1}\n", fmt(NX_FORMAT_AUTO), "{ \"a\" : { \"$numberInt\" : \"1\" } }\n");
}

Test(io_read, iso8601_parse_and_format) {
  int64_t ms;
  cr_assert(io_parse_iso8601("1970-01-01", 10, &ms) && ms == 0);
  cr_assert(io_parse_iso8601("2024-02-29T23:59:59.999Z", 24, &ms) && ms == 1709251199999LL);
  cr_assert(io_parse_iso8601("2024-05-01T12:00:00+02:00", 25, &ms) && ms == 1714557600000LL);
  cr_assert(io_parse_iso8601("1969-12-31T23:59:59Z", 20, &ms) && ms == -1000);
  cr_assert_not(io_parse_iso8601("2023-02-29", 10, &ms));
  cr_assert_not(io_parse_iso8601("2024-05-01T25:00:00Z", 20, &ms));
  cr_assert_not(io_parse_iso8601("2024-05-01Tjunk", 15, &ms));
  char out[32];
  io_format_iso8601(1709251199999LL, out);
  cr_assert_str_eq(out, "2024-02-29T23:59:59.999Z");
  io_format_iso8601(-1, out);
  cr_assert_str_eq(out, "1969-12-31T23:59:59.999Z");
}

Test(io_read, utf8_checker_rejects_overlongs_surrogates_and_nul) {
  cr_assert_eq(io_utf8_check((const uint8_t *)"ok\xc3\xa9", 4, true), 4);
  cr_assert_eq(io_utf8_check((const uint8_t *)"a\xc0\xaf", 3, true), 1);
  cr_assert_eq(io_utf8_check((const uint8_t *)"ab\xed\xa0\x80", 5, true), 2);
  cr_assert_eq(io_utf8_check((const uint8_t *)"a\xf4\x90\x80\x80", 5, true), 1);
  cr_assert_eq(io_utf8_check((const uint8_t *)"a\0b", 3, true), 1);
  cr_assert_eq(io_utf8_check((const uint8_t *)"a\0b", 3, false), 3);
}

Test(io_read, bson_invalid_utf8_in_a_string_value_is_a_record_error_with_its_offset) {
  /* libbson's own validation does not look inside string values: the reader does */
  uint8_t b[] = {15, 0, 0, 0, 2, 's', 0, 3, 0, 0, 0, 'a', 0xff, 0, 0, /* then a good one */
                 12, 0, 0, 0, 0x10, 'a', 0, 2, 0, 0, 0, 0};
  io_reader *r;
  io_read_opts o = fmt(NX_FORMAT_BSON);
  cr_assert_eq(io_reader_open_mem(b, sizeof b, "u.bson", &o, &r), NX_OK);
  const bson_t *d;
  cr_assert_eq(io_reader_next(r, &d), NX_PARSE);
  cr_assert(strstr(nx_err_msg(), "invalid UTF-8 at byte offset 12"), "%s", nx_err_msg());
  cr_assert_eq(io_reader_next(r, &d), NX_ROW);
  cr_assert_eq(io_reader_next(r, &d), NX_DONE);
  io_reader_close(r);
}

/* Fails the 1st, 2nd, ... allocation of a whole read in turn (STYLE 22): every run ends with the
 * full result or an error, and leaks nothing. */
static void alloc_failure_loop(const char *in, nx_format f) {
  io_read_opts o = fmt(f);
  char *want = read_str(in, &o);
  int failures_seen = 0;
  for (uint64_t n = 1; n < 2000; n++) {
    nx_alloc_stats before, after;
    nx_alloc_get_stats(&before);
    nx_alloc_fail_nth(n);
    io_reader *r;
    int rc = io_reader_open_mem(in, strlen(in), "a", &o, &r);
    bool complete = false;
    if (rc == NX_OK) {
      nx_buf out;
      nx_buf_init(&out, 0);
      for (;;) {
        const bson_t *d;
        rc = io_reader_next(r, &d);
        if (rc == NX_DONE) {
          complete = true;
          break;
        }
        if (rc != NX_ROW) break;
        char *s = bson_as_canonical_extended_json(d, NULL);
        nx_buf_printf(&out, "%s\n", s);
        bson_free(s);
      }
      io_reader_close(r);
      bool fired = nx_alloc_fault_fired();
      nx_alloc_fail_nth(0);
      if (complete && !fired) cr_assert_str_eq((char *)out.data, want);
      nx_buf_free(&out);
    }
    bool fired = nx_alloc_fault_fired();
    nx_alloc_fail_nth(0);
    nx_alloc_get_stats(&after);
    cr_assert_eq(after.current, before.current, "allocation %llu failed: %zu bytes leaked",
                 (unsigned long long)n, after.current - before.current);
    if (!fired) break; /* every allocation of the read has been failed once */
    if (!complete) failures_seen++;
  }
  cr_log_info("%d allocation failures reported as errors", failures_seen);
  cr_assert_gt(failures_seen, 2, "allocation failures were reported as errors");
  nx_free(want);
}

Test(io_read, allocation_failures_are_errors_and_leak_nothing) {
  alloc_failure_loop("name,address.zip,n\n\"a,b\",\"00123\",1\nc,d,2.5\n", NX_FORMAT_CSV);
  alloc_failure_loop("{\"a\": 1}\n{\"b\": [1, 2]}\n", NX_FORMAT_NDJSON);
  alloc_failure_loop("[{\"a\": 1}, {\"b\": {\"c\": 2}}]", NX_FORMAT_JSON);
}

Test(io_read, json_array_elements_spanning_read_buffers) {
  nx_buf b;
  nx_buf_init(&b, 0);
  nx_buf_printf(&b, "[\n");
  for (int i = 0; i < 20000; i++)
    nx_buf_printf(&b, "%s  {\"i\": %d, \"s\": \"tricky ]}, \\\"quoted\\\" \\\\ %d\",\n   \"n\": {\"a\": [%d, {\"b\": \"}\"}]}}",
                  i ? ",\n" : "", i, i, i);
  nx_buf_printf(&b, "\n]\n");
  for (int pass = 0; pass < 2; pass++) {
    /* pass 1: the same elements as a sequence of objects, no array */
    io_reader *r;
    io_read_opts o = fmt(NX_FORMAT_JSON);
    const uint8_t *data = b.data;
    size_t n = b.len;
    nx_buf seq;
    nx_buf_init(&seq, 0);
    if (pass == 1) {
      /* drop the brackets and the commas between elements */
      for (size_t k = 2; k + 3 < b.len; k++) {
        if (b.data[k] == ',' && b.data[k + 1] == '\n' && b.data[k + 2] == ' ' && b.data[k + 3] == ' ' &&
            b.data[k + 4] == '{')
          continue;
        nx_buf_append(&seq, b.data + k, 1);
      }
      data = seq.data;
      n = seq.len;
    }
    cr_assert_eq(io_reader_open_mem(data, n, "big.json", &o, &r), NX_OK);
    const bson_t *d;
    int count = 0, rc;
    while ((rc = io_reader_next(r, &d)) == NX_ROW) {
      bson_iter_t it;
      cr_assert(bson_iter_init_find(&it, d, "i") && bson_iter_int32(&it) == count, "pass %d", pass);
      char want[64];
      snprintf(want, sizeof want, "tricky ]}, \"quoted\" \\ %d", count);
      cr_assert(bson_iter_init_find(&it, d, "s"));
      cr_assert_str_eq(bson_iter_utf8(&it, NULL), want);
      io_where w;
      io_reader_where(r, &w);
      cr_assert_eq(w.line, (uint64_t)(2 - pass + 2 * count), "pass %d element %d line %llu", pass, count, (unsigned long long)w.line);
      count++;
    }
    cr_assert_eq(rc, NX_DONE, "pass %d: %s", pass, nx_err_msg());
    cr_assert_eq(count, 20000);
    io_reader_close(r);
    nx_buf_free(&seq);
  }
  nx_buf_free(&b);
}

Test(io_read, csv_row_with_too_many_fields_is_refused_before_allocating) {
  size_t n = 50000;
  char *in = nx_malloc(n + 16);
  memcpy(in, "a\n", 2);
  memset(in + 2, ',', n);
  memcpy(in + 2 + n, "\n", 2);
  io_reader *r;
  io_read_opts o = fmt(NX_FORMAT_CSV);
  cr_assert_eq(io_reader_open_mem(in, n + 3, "wide.csv", &o, &r), NX_OK);
  const bson_t *d;
  cr_assert_eq(io_reader_next(r, &d), NX_LIMIT);
  cr_assert(strstr(nx_err_msg(), "line 2, byte offset 2 has more than 10000 fields"), "%s", nx_err_msg());
  io_reader_close(r);
  nx_free(in);
}

Test(io_read, bson_every_type_passes_and_deep_nesting_is_refused_without_recursion) {
  /* every BSON type (python3-bson wrote good.bson), plus code with scope */
  char p[512];
  snprintf(p, sizeof p, "%s/../fuzz/corpus/bson/good.bson", NX_TEST_DATA_DIR);
  FILE *f = fopen(p, "rb");
  cr_assert(f);
  static uint8_t buf[1 << 16];
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  bson_t cws, scope;
  bson_init(&cws);
  bson_init(&scope);
  bson_append_int32(&scope, "x", 1, 1);
  bson_append_code_with_scope(&cws, "f", 1, "return x", &scope);
  bson_append_regex(&cws, "r", 1, "^a", "i");
  memcpy(buf + n, bson_get_data(&cws), cws.len);
  n += cws.len;
  bson_destroy(&scope);
  bson_destroy(&cws);
  io_read_opts o = fmt(NX_FORMAT_BSON);
  io_reader *r;
  cr_assert_eq(io_reader_open_mem(buf, n, "all.bson", &o, &r), NX_OK);
  const bson_t *d;
  int rows = 0, rc;
  while ((rc = io_reader_next(r, &d)) == NX_ROW) rows++;
  cr_assert_eq(rc, NX_DONE, "%s", nx_err_msg());
  cr_assert_eq(rows, 4);
  io_reader_close(r);
  /* 200,000 nested documents (1.6 MB): libbson's recursive validation would overflow the stack */
  size_t depth = 200000, len = 5 + 8 * depth;
  uint8_t *deep = nx_malloc(len + 12);
  for (size_t k = 0; k < depth; k++) {
    nx_put32(deep + 7 * k, (uint32_t)(5 + 8 * (depth - k)));
    memcpy(deep + 7 * k + 4, "\x03" "a", 3);
  }
  memcpy(deep + 7 * depth, "\x05\x00\x00\x00\x00", 5);
  memset(deep + 7 * depth + 5, 0, depth);
  memcpy(deep + len, "\x0c\x00\x00\x00\x10" "a\x00\x01\x00\x00\x00\x00", 12);
  cr_assert_eq(io_reader_open_mem(deep, len + 12, "deep.bson", &o, &r), NX_OK);
  cr_assert_eq(io_reader_next(r, &d), NX_LIMIT);
  cr_assert(strstr(nx_err_msg(), "nested deeper than 100 levels"), "%s", nx_err_msg());
  cr_assert_eq(io_reader_next(r, &d), NX_ROW, "the next document is still read");
  io_reader_close(r);
  nx_free(deep);
}
