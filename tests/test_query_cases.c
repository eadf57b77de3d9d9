/*
 * test_query_cases.c: runs the data-driven query cases in tests/query/NAME.txt (STYLE 21).
 *
 * File format (one command line, then one expectation line starting with "->"):
 *
 *   # comment
 *   docs                               a document set, one JSON document per line, until "end";
 *   {"_id": 1, "a": 5}                 later `find` and `sort` cases run against it
 *   end
 *   find {"a": 5}                      filter -> the _ids of matching documents, in set order
 *   -> [1]
 *   find {"a": {"$gtx": 1}}            an expected error: status name, then a substring of the
 *   -> !INVALID unknown operator '$gtx' at 'a'    message
 *   update [DOC, UPDATE]               or [DOC, UPDATE, QUERY] (positional $)
 *   -> {"_id": 1, "a": 6}              compared in canonical Extended JSON (types and order count);
 *                                      `changed` must be true exactly when the result differs
 *   upsert [QUERY, UPDATE]             seed from the query, then the update as an insert
 *   proj [DOC, PROJECTION]             or [DOC, PROJECTION, QUERY]
 *   sort {"a": 1}                      the set's _ids in sorted order (ties keep set order)
 *
 * Every case also checks that it leaks nothing through the allocator hook.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "match.h"

typedef struct runner {
  bson_t docs[256];
  size_t ndocs;
  int cases;
  int failures;
  char report[8192];
  size_t rlen;
  const char *file;
  int line;
} runner;

static void fail(runner *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(runner *r, const char *fmt, ...) {
  r->failures++;
  if (r->rlen + 200 >= sizeof r->report) return;
  int n = snprintf(r->report + r->rlen, sizeof r->report - r->rlen, "%s:%d: ", r->file, r->line);
  if (n > 0) r->rlen += (size_t)n;
  va_list ap;
  va_start(ap, fmt);
  n = vsnprintf(r->report + r->rlen, sizeof r->report - r->rlen, fmt, ap);
  va_end(ap);
  if (n > 0) r->rlen += (size_t)n;
  if (r->rlen >= sizeof r->report - 2) r->rlen = sizeof r->report - 2;
  r->report[r->rlen++] = '\n';
  r->report[r->rlen] = '\0';
}

static char *canon(const bson_t *b) { return doc_to_json_canonical(b, NULL); }

/* Parses a JSON array "[a, b, c]" of documents into parts. Returns count or -1. */
static int parse_parts(const char *json, bson_t *holder, bson_t parts[3]) {
  size_t n = strlen(json);
  char *wrapped = malloc(n + 16);
  memcpy(wrapped, "{\"p\": ", 6);
  memcpy(wrapped + 6, json, n);
  memcpy(wrapped + 6 + n, "}", 2);
  int rc = doc_from_json(wrapped, -1, holder);
  free(wrapped);
  if (rc != NX_OK) return -1;
  bson_iter_t it, a;
  if (!bson_iter_init_find(&it, holder, "p") || !BSON_ITER_HOLDS_ARRAY(&it) || !bson_iter_recurse(&it, &a)) {
    bson_destroy(holder);
    return -1;
  }
  int k = 0;
  while (bson_iter_next(&a) && k < 3) {
    uint32_t len;
    const uint8_t *data;
    if (!BSON_ITER_HOLDS_DOCUMENT(&a)) {
      bson_destroy(holder);
      return -1;
    }
    bson_iter_document(&a, &len, &data);
    bson_init_static(&parts[k++], data, len);
  }
  return k;
}

/* "!CODE text": checks rc and message. Returns true when the expectation is an error. */
static bool expect_error(runner *r, const char *exp, int rc) {
  if (exp[0] != '!') return false;
  char code[32];
  size_t i = 0;
  exp++;
  while (*exp && *exp != ' ' && i < sizeof code - 1)
    code[i++] = *exp++;
  code[i] = '\0';
  while (*exp == ' ')
    exp++;
  char want[40];
  snprintf(want, sizeof want, "NX_%s", code);
  if (rc == NX_OK) {
    fail(r, "expected %s (%s), got success", want, exp);
  } else if (strcmp(nx_code_name(rc), want) != 0) {
    fail(r, "expected %s, got %s: %s", want, nx_code_name(rc), nx_err_msg());
  } else if (*exp && !strstr(nx_err_msg(), exp)) {
    fail(r, "expected message containing \"%s\", got \"%s\"", exp, nx_err_msg());
  }
  return true;
}

static void check_doc(runner *r, const char *exp, const bson_t *got) {
  bson_t e;
  if (doc_from_json(exp, -1, &e) != NX_OK) {
    fail(r, "bad expected JSON: %s (%s)", exp, nx_err_msg());
    return;
  }
  char *a = canon(&e), *b = canon(got);
  if (strcmp(a, b) != 0) fail(r, "expected %s\n      got %s", a, b);
  bson_free(a);
  bson_free(b);
  bson_destroy(&e);
}

static void check_ids(runner *r, const char *exp, const bson_t *const *docs, size_t n) {
  bson_t got;
  bson_init(&got);
  bson_t arr;
  bson_append_array_begin(&got, "r", 1, &arr);
  char ib[16];
  for (size_t i = 0; i < n; i++) {
    bson_iter_t it;
    const char *k;
    size_t kl = bson_uint32_to_string((uint32_t)i, &k, ib, sizeof ib);
    if (bson_iter_init_find(&it, docs[i], "_id")) {
      bson_value_t v = *bson_iter_value(&it);
      bson_append_value(&arr, k, (int)kl, &v);
    } else {
      bson_append_null(&arr, k, (int)kl);
    }
  }
  bson_append_array_end(&got, &arr);
  size_t el = strlen(exp);
  char *w = malloc(el + 16);
  memcpy(w, "{\"r\": ", 6);
  memcpy(w + 6, exp, el);
  memcpy(w + 6 + el, "}", 2);
  bson_t e;
  if (doc_from_json(w, -1, &e) != NX_OK) {
    fail(r, "bad expected ids: %s", exp);
  } else {
    char *a = canon(&e), *b = canon(&got);
    if (strcmp(a, b) != 0) fail(r, "expected %s\n      got %s", a, b);
    bson_free(a);
    bson_free(b);
    bson_destroy(&e);
  }
  free(w);
  bson_destroy(&got);
}

static void run_find(runner *r, const char *arg, const char *exp) {
  bson_t spec;
  if (doc_from_json(arg, -1, &spec) != NX_OK) {
    fail(r, "bad filter JSON: %s", nx_err_msg());
    return;
  }
  filter_t *f = NULL;
  int rc = filter_parse(&spec, &f);
  const bson_t *hits[256];
  size_t nh = 0;
  for (size_t i = 0; rc == NX_OK && i < r->ndocs; i++) {
    bool m = false;
    rc = filter_match(f, &r->docs[i], &m);
    if (m) hits[nh++] = &r->docs[i];
  }
  if (!expect_error(r, exp, rc)) {
    if (rc != NX_OK)
      fail(r, "unexpected %s: %s", nx_code_name(rc), nx_err_msg());
    else
      check_ids(r, exp, hits, nh);
  }
  filter_free(f);
  bson_destroy(&spec);
}

static void run_update(runner *r, const char *arg, const char *exp, bool upsert) {
  bson_t holder, parts[3];
  int np = parse_parts(arg, &holder, parts);
  if (np < 2) {
    fail(r, "bad update case (want [doc, update(, query)]): %s", arg);
    return;
  }
  update_t *u = NULL;
  filter_t *q = NULL;
  bson_t out, seed;
  bool seeded = false, changed = false, have_out = false;
  int rc = update_parse(&parts[1], &u);
  if (rc == NX_OK && upsert) rc = filter_parse(&parts[0], &q);
  if (rc == NX_OK && !upsert && np == 3) rc = filter_parse(&parts[2], &q);
  const bson_t *in = &parts[0];
  if (rc == NX_OK && upsert) {
    rc = update_build_upsert_seed(q, &seed);
    seeded = rc == NX_OK;
    in = &seed;
  }
  if (rc == NX_OK) {
    rc = update_apply(u, in, q, upsert, 1700000000000, &out, &changed);
    have_out = rc == NX_OK;
  }
  if (!expect_error(r, exp, rc)) {
    if (rc != NX_OK) {
      fail(r, "unexpected %s: %s", nx_code_name(rc), nx_err_msg());
    } else {
      bool same = out.len == in->len && memcmp(bson_get_data(&out), bson_get_data(in), in->len) == 0;
      if (changed == same)
        fail(r, "changed=%d but the output %s the input", changed, same ? "equals" : "differs from");
      if (strcmp(exp, "same") == 0) {
        if (!same) {
          char *b = canon(&out);
          fail(r, "expected no change, got %s", b);
          bson_free(b);
        }
      } else {
        check_doc(r, exp, &out);
      }
    }
  }
  if (have_out) bson_destroy(&out);
  if (seeded) bson_destroy(&seed);
  update_free(u);
  filter_free(q);
  bson_destroy(&holder);
}

static void run_proj(runner *r, const char *arg, const char *exp) {
  bson_t holder, parts[3];
  int np = parse_parts(arg, &holder, parts);
  if (np < 2) {
    fail(r, "bad proj case (want [doc, projection(, query)]): %s", arg);
    return;
  }
  proj_t *p = NULL;
  filter_t *q = NULL;
  bson_t out;
  bool have_out = false;
  int rc = proj_parse(&parts[1], &p);
  if (rc == NX_OK && np == 3) rc = filter_parse(&parts[2], &q);
  if (rc == NX_OK) {
    rc = proj_apply(p, &parts[0], q, &out);
    have_out = rc == NX_OK;
  }
  if (!expect_error(r, exp, rc)) {
    if (rc != NX_OK)
      fail(r, "unexpected %s: %s", nx_code_name(rc), nx_err_msg());
    else
      check_doc(r, exp, &out);
  }
  if (have_out) bson_destroy(&out);
  proj_free(p);
  filter_free(q);
  bson_destroy(&holder);
}

static void run_sort(runner *r, const char *arg, const char *exp) {
  bson_t spec;
  if (doc_from_json(arg, -1, &spec) != NX_OK) {
    fail(r, "bad sort JSON: %s", nx_err_msg());
    return;
  }
  sort_t *s = NULL;
  int rc = sort_parse(&spec, &s);
  if (!expect_error(r, exp, rc)) {
    if (rc != NX_OK) {
      fail(r, "unexpected %s: %s", nx_code_name(rc), nx_err_msg());
    } else {
      const bson_t *order[256];
      bson_t keys[256];
      for (size_t i = 0; i < r->ndocs; i++) {
        order[i] = &r->docs[i];
        sort_key_extract(s, &r->docs[i], &keys[i]);
      }
      /* stable insertion sort with sort_cmp */
      for (size_t i = 1; i < r->ndocs; i++) {
        const bson_t *t = order[i];
        size_t j = i;
        while (j > 0 && sort_cmp(s, order[j - 1], t) > 0) {
          order[j] = order[j - 1];
          j--;
        }
        order[j] = t;
      }
      /* the extracted keys must order every pair as sort_cmp does */
      for (size_t i = 0; i < r->ndocs; i++)
        for (size_t j = 0; j < r->ndocs; j++) {
          int a = sort_cmp(s, &r->docs[i], &r->docs[j]);
          int b = sort_key_cmp(s, &keys[i], &keys[j]);
          if ((a > 0) != (b > 0) || (a < 0) != (b < 0))
            fail(r, "sort_key_cmp disagrees with sort_cmp on docs %zu and %zu", i, j);
        }
      for (size_t i = 0; i < r->ndocs; i++)
        bson_destroy(&keys[i]);
      check_ids(r, exp, order, r->ndocs);
    }
  }
  sort_free(s);
  bson_destroy(&spec);
}

static void run_file(runner *r, const char *path) {
  FILE *fp = fopen(path, "r");
  cr_assert_not_null(fp, "cannot open %s", path);
  char *line = NULL, *cmd = NULL;
  size_t cap = 0;
  ssize_t n;
  int cmd_line = 0;
  bool in_docs = false;
  r->line = 0;
  while ((n = getline(&line, &cap, fp)) >= 0) {
    r->line++;
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
      line[--n] = '\0';
    if (in_docs) {
      if (strcmp(line, "end") == 0) {
        in_docs = false;
        continue;
      }
      if (n == 0 || line[0] == '#') continue;
      if (r->ndocs == 256 || doc_from_json(line, -1, &r->docs[r->ndocs]) != NX_OK) {
        fail(r, "bad document: %s", nx_err_msg());
        continue;
      }
      r->ndocs++;
      continue;
    }
    if (n == 0 || line[0] == '#') continue;
    if (strcmp(line, "docs") == 0) {
      for (size_t i = 0; i < r->ndocs; i++)
        bson_destroy(&r->docs[i]);
      r->ndocs = 0;
      in_docs = true;
      continue;
    }
    if (strncmp(line, "->", 2) == 0) {
      if (!cmd) {
        fail(r, "expectation without a case");
        continue;
      }
      const char *exp = line + 2;
      while (*exp == ' ')
        exp++;
      int save = r->line;
      r->line = cmd_line;
      char *sp = strchr(cmd, ' ');
      const char *arg = sp ? sp + 1 : "";
      if (sp) *sp = '\0';
      nx_alloc_stats before, after;
      nx_alloc_get_stats(&before);
      r->cases++;
      if (strcmp(cmd, "find") == 0)
        run_find(r, arg, exp);
      else if (strcmp(cmd, "update") == 0)
        run_update(r, arg, exp, false);
      else if (strcmp(cmd, "upsert") == 0)
        run_update(r, arg, exp, true);
      else if (strcmp(cmd, "proj") == 0)
        run_proj(r, arg, exp);
      else if (strcmp(cmd, "sort") == 0)
        run_sort(r, arg, exp);
      else
        fail(r, "unknown command '%s'", cmd);
      nx_alloc_get_stats(&after);
      if (after.current != before.current)
        fail(r, "leak: %zu bytes live before, %zu after", before.current, after.current);
      r->line = save;
      free(cmd);
      cmd = NULL;
      continue;
    }
    if (cmd) fail(r, "case without an expectation");
    free(cmd);
    cmd = strdup(line);
    cmd_line = r->line;
  }
  if (cmd) fail(r, "case without an expectation at end of file");
  free(cmd);
  free(line);
  fclose(fp);
  for (size_t i = 0; i < r->ndocs; i++)
    bson_destroy(&r->docs[i]);
  r->ndocs = 0;
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

Test(query_cases, every_case_in_tests_query_passes) {
  nx_alloc_init();
  static runner r;
  memset(&r, 0, sizeof r);
  const char *dir = NX_TEST_DATA_DIR "/query";
  DIR *d = opendir(dir);
  cr_assert_not_null(d, "cannot open %s", dir);
  char *names[128];
  size_t nn = 0;
  struct dirent *e;
  while ((e = readdir(d)) && nn < 128) {
    size_t l = strlen(e->d_name);
    if (l > 4 && strcmp(e->d_name + l - 4, ".txt") == 0) names[nn++] = strdup(e->d_name);
  }
  closedir(d);
  qsort(names, nn, sizeof *names, cmp_names);
  cr_assert_gt(nn, 0, "no case files in %s", dir);
  for (size_t i = 0; i < nn; i++) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    int before = r.cases, fb = r.failures;
    r.file = names[i];
    run_file(&r, path);
    cr_log_info("%s: %d cases, %d failures", names[i], r.cases - before, r.failures - fb);
    fprintf(stderr, "%s: %d cases, %d failures\n", names[i], r.cases - before, r.failures - fb);
  }
  fprintf(stderr, "total: %d cases, %d failures\n", r.cases, r.failures);
  cr_assert_eq(r.failures, 0, "%d of %d query cases failed:\n%s", r.failures, r.cases, r.report);
  cr_assert_geq(r.cases, 300, "only %d query cases", r.cases);
  for (size_t i = 0; i < nn; i++)
    free(names[i]);
}
