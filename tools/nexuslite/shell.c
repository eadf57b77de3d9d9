/*
 * shell.c: the interactive shell, for people who know mongosh.
 *
 *   nexuslite> db.users.insertOne({name: "alice", age: 30})
 *   nexuslite> db.users.find({age: {$gt: 25}}, {name: 1}).sort({age: -1}).limit(5)
 *
 * Input: on a terminal, libedit (line editing, history in ~/.nexuslite_history); otherwise lines
 * from stdin, so `nexuslite shell < script.js` works (with --echo, each statement is echoed after
 * the prompt, which makes a readable transcript). A statement may span lines: input is gathered
 * until brackets balance (rx_balance). Several statements on a line are separated by ';'.
 *
 * Statements: help, exit/quit, show collections|dbs, use, it, and expressions
 *   db.NAME[.NAME...].method(args)[.cursorMethod(args)...]
 *   db.method(args)            (stats, getCollectionNames, createCollection, getCollection, ...)
 * Arguments are relaxed literals (relaxed.c), all parsed at once as {"a": [arg, ...]}.
 *
 * Invariants: 1. an error prints one "Error: ..." line and the shell goes on; 2. at most one
 * cursor stays open (for "it") and it is closed before the next statement runs; 3. Ctrl-C sets
 * cli_interrupted, which the cursor loops poll between steps: a query stops, the shell does not.
 * In script mode the exit status is 1 when any statement failed.
 */
#include <errno.h>
#include <histedit.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wchar.h>

#include "cli.h"

#define SHELL_BATCH 20
#define MAX_PARTS 24

typedef struct part {
  char *name;     /* owned: method or collection name segment */
  bool call;      /* followed by (args) */
  bson_t args;    /* {"a": [args...]} when call */
  uint32_t nargs;
} part;

typedef struct shell {
  cli *c;
  out_opts o;          /* stdout rendering: pretty, colour on a terminal */
  bool interactive;    /* libedit */
  bool echo;           /* print statements (script transcripts) */
  int errors;          /* statements that failed */
  bool quit;
  nx_cursor *cur;      /* open cursor for "it", or NULL */
  bson_t *peeked;      /* the next document of cur, already fetched */
  EditLine *el;
  History *hist;
  char histfile[1024];
} shell;

static const char *g_prompt = "nexuslite> ";
/* Test hook: NEXUSLITE_TEST_SIGINT_AT_CONTINUATION=1 raises SIGINT the first time the "... "
 * prompt is drawn, which is exactly the window where a real Ctrl-C reaches the terminal before
 * libedit has switched it to edit mode (see read_key). */
static char *prompt_fn(EditLine *el) {
  (void)el;
  static int hook = -1;
  if (hook < 0) {
    const char *v = getenv("NEXUSLITE_TEST_SIGINT_AT_CONTINUATION");
    hook = v && !strcmp(v, "1");
  }
  if (hook && g_prompt[0] == '.') {
    hook = 0;
    raise(SIGINT);
  }
  return (char *)g_prompt;
}

static void sh_error(shell *s, const char *fmt, ...) CLI_PRINTF(2, 3);
static void sh_error(shell *s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fflush(stdout);
  printf("%sError: ", col_err(&s->o));
  vprintf(fmt, ap);
  printf("%s\n", col_off(&s->o));
  va_end(ap);
  s->errors++;
}

/* Reports a library failure; returns false for `return lib_error(...)`. */
static bool lib_error(shell *s, int rc, const char *what) {
  const char *msg = nx_errmsg(s->c->db);
  if (!msg || !*msg) msg = nx_strerror(rc);
  sh_error(s, "%s: %s (%s)", what, msg, nx_code_name(rc));
  return false;
}

static void print_doc(shell *s, const bson_t *d) {
  sbuf b;
  sb_init(&b);
  out_shell(&b, d, &s->o, 0);
  printf("%s\n", sb_str(&b));
  sb_free(&b);
}

/* Prints the value under key "v" of a wrapper document. */
static void print_wrapped(shell *s, const bson_t *w, const char *key) {
  bson_iter_t it;
  if (!bson_iter_init_find(&it, w, key)) return;
  sbuf b;
  sb_init(&b);
  out_shell_value(&b, &it, &s->o, 0);
  printf("%s\n", sb_str(&b));
  sb_free(&b);
}

static void close_cursor(shell *s) {
  nx_cursor_close(s->cur);
  s->cur = NULL;
  bsonx_free(s->peeked);
  s->peeked = NULL;
}

/* ---- Statement parsing ---- */

static void free_parts(part *p, int n) {
  for (int i = 0; i < n; i++) {
    free(p[i].name);
    if (p[i].call) bson_destroy(&p[i].args);
  }
}

static bool ident_char(char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
         ch == '$' || (unsigned char)ch >= 0x80;
}

/* Parses "(a, b, ...)" at *pp into p->args. */
static bool parse_args(shell *s, const char **pp, const char *base, part *p) {
  const char *q = *pp + 1;
  sbuf ej;
  char err[300];
  sb_init(&ej);
  sb_adds(&ej, "{\"a\":[");
  p->nargs = 0;
  rx_skip(&q);
  while (*q != ')') {
    if (p->nargs) {
      if (*q != ',') {
        sh_error(s, "',' or ')' expected at offset %ld in the arguments of %s()", (long)(q - base), p->name);
        sb_free(&ej);
        return false;
      }
      q++;
      rx_skip(&q);
      if (*q == ')') break;
      sb_addc(&ej, ',');
    }
    if (!rx_value(&q, base, &ej, err, sizeof err)) {
      sh_error(s, "%s", err);
      sb_free(&ej);
      return false;
    }
    p->nargs++;
    rx_skip(&q);
  }
  sb_adds(&ej, "]}");
  bson_error_t be;
  if (!bson_init_from_json(&p->args, sb_str(&ej), (ssize_t)ej.len, &be)) {
    sh_error(s, "in the arguments of %s(): %s", p->name, be.message);
    sb_free(&ej);
    return false;
  }
  p->call = true;
  sb_free(&ej);
  *pp = q + 1;
  return true;
}

/* Parses one expression statement starting with "db" into parts; *pp moves past it. */
static int parse_expr(shell *s, const char **pp, const char *base, part *parts) {
  const char *p = *pp;
  int n = 0;
  for (;;) {
    rx_skip(&p);
    if (n == MAX_PARTS) {
      sh_error(s, "expression too long");
      break;
    }
    if (*p == '[' && n > 0) { /* db["name with spaces"] */
      p++;
      rx_skip(&p);
      sbuf ej;
      char err[300];
      sb_init(&ej);
      const char *st = p;
      if ((*p != '"' && *p != '\'') || !rx_value(&p, base, &ej, err, sizeof err)) {
        sh_error(s, "a quoted name was expected after '[' at offset %ld", (long)(st - base));
        sb_free(&ej);
        break;
      }
      rx_skip(&p);
      if (*p != ']') {
        sh_error(s, "']' expected at offset %ld", (long)(p - base));
        sb_free(&ej);
        break;
      }
      p++;
      /* ej holds a JSON string: decode it through libbson. */
      sbuf w;
      sb_init(&w);
      sb_adds(&w, "{\"n\":");
      sb_adds(&w, sb_str(&ej));
      sb_addc(&w, '}');
      bson_t d;
      bson_iter_t it;
      if (bson_init_from_json(&d, sb_str(&w), -1, NULL)) {
        if (bson_iter_init_find(&it, &d, "n") && BSON_ITER_HOLDS_UTF8(&it)) {
          parts[n].name = strdup(bson_iter_utf8(&it, NULL));
          parts[n].call = false;
          n++;
        }
        bson_destroy(&d);
      }
      sb_free(&w);
      sb_free(&ej);
    } else {
      if (n > 0) {
        if (*p != '.') break;
        p++;
        rx_skip(&p);
      }
      const char *st = p;
      while (ident_char(*p)) p++;
      if (p == st) {
        sh_error(s, "a name was expected at offset %ld", (long)(p - base));
        free_parts(parts, n);
        return -1;
      }
      parts[n].name = strndup(st, (size_t)(p - st));
      parts[n].call = false;
      n++;
    }
    rx_skip(&p);
    if (*p == '(') {
      if (!parse_args(s, &p, base, &parts[n - 1])) {
        free_parts(parts, n);
        return -1;
      }
    }
  }
  if (n == MAX_PARTS || (n > 0 && !parts[n - 1].name)) {
    free_parts(parts, n);
    return -1;
  }
  *pp = p;
  return n;
}

/* ---- Argument access ---- */

/* The i-th argument of a call, or false when absent. */
static bool arg(const part *p, uint32_t i, bson_iter_t *out) {
  bson_iter_t it, a;
  if (!p->call || i >= p->nargs) return false;
  if (!bson_iter_init_find(&it, &p->args, "a") || !bson_iter_recurse(&it, &a)) return false;
  for (uint32_t k = 0; k <= i; k++)
    if (!bson_iter_next(&a)) return false;
  *out = a;
  return true;
}

/* The i-th argument as a document (static view into args); absent -> false without error
 * unless required. Sets *bad on a type error. */
static bool arg_doc(shell *s, const part *p, uint32_t i, bson_t *out, bool required, bool *bad) {
  bson_iter_t it;
  if (!arg(p, i, &it)) {
    if (required) {
      sh_error(s, "%s() needs a document as argument %u", p->name, i + 1);
      *bad = true;
    }
    return false;
  }
  if (BSON_ITER_HOLDS_NULL(&it) && !required) return false;
  if (!BSON_ITER_HOLDS_DOCUMENT(&it)) {
    sh_error(s, "%s(): argument %u must be a document", p->name, i + 1);
    *bad = true;
    return false;
  }
  uint32_t len;
  const uint8_t *data;
  bson_iter_document(&it, &len, &data);
  if (!bson_init_static(out, data, len)) {
    *bad = true;
    return false;
  }
  return true;
}

static bool arg_str(shell *s, const part *p, uint32_t i, const char **out) {
  bson_iter_t it;
  if (!arg(p, i, &it) || !BSON_ITER_HOLDS_UTF8(&it)) {
    sh_error(s, "%s() needs a string as argument %u", p->name, i + 1);
    return false;
  }
  *out = bson_iter_utf8(&it, NULL);
  return true;
}

static bool arg_int(shell *s, const part *p, uint32_t i, int64_t *out) {
  bson_iter_t it;
  if (!arg(p, i, &it) || !BSON_ITER_HOLDS_NUMBER(&it)) {
    sh_error(s, "%s() needs a number as argument %u", p->name, i + 1);
    return false;
  }
  *out = bson_iter_as_int64(&it);
  return true;
}

/* A boolean option in an options document ({upsert: true}). */
static bool opt_bool(const bson_t *opts, const char *key) {
  bson_iter_t it;
  return opts && bson_iter_init_find(&it, opts, key) && bson_iter_as_bool(&it);
}

/* ---- Cursor output ---- */

/* Prints up to SHELL_BATCH documents of s->cur as an array (all when `all`); keeps the cursor
 * open when more remain. */
static bool print_batch(shell *s, bool all) {
  const bson_t *d;
  int rc = NX_ROW;
  size_t shown = 0;
  bool open = false;
  bool first = true;
  cli_interrupted = 0;
  for (;;) {
    bson_t *doc = NULL;
    bool owned = false;
    if (s->peeked) {
      doc = s->peeked;
      s->peeked = NULL;
      owned = true;
    } else {
      rc = nx_cursor_next(s->cur, &d);
      if (rc != NX_ROW) break;
      doc = (bson_t *)d;
    }
    if (!all && shown == SHELL_BATCH) {
      s->peeked = owned ? doc : bsonx_copy(doc);
      open = true;
      break;
    }
    if (first) printf("[\n");
    sbuf b;
    sb_init(&b);
    sb_adds(&b, "  ");
    out_shell(&b, doc, &s->o, 2);
    printf("%s%s", first ? "" : ",\n", sb_str(&b));
    sb_free(&b);
    first = false;
    if (owned) bsonx_free(doc);
    shown++;
    cli_cursor_step();
    if (cli_interrupted) break;
  }
  if (!first) printf("\n]\n");
  else if (rc == NX_DONE && !open) printf("[]\n");
  if (cli_interrupted) {
    cli_interrupted = 0;
    close_cursor(s);
    sh_error(s, "interrupted");
    return false;
  }
  if (rc != NX_ROW && rc != NX_DONE) {
    lib_error(s, rc, "find");
    close_cursor(s);
    return false;
  }
  if (open) {
    printf("Type \"it\" for more\n");
  } else {
    close_cursor(s);
  }
  return true;
}

/* ---- Collection methods ---- */

static void index_name(const bson_t *keys, sbuf *out) {
  bson_iter_t it;
  bool first = true;
  if (!bson_iter_init(&it, keys)) return;
  while (bson_iter_next(&it)) {
    if (!first) sb_addc(out, '_');
    first = false;
    sb_adds(out, bson_iter_key(&it));
    sb_addc(out, '_');
    if (BSON_ITER_HOLDS_UTF8(&it)) sb_adds(out, bson_iter_utf8(&it, NULL));
    else sb_printf(out, "%lld", (long long)bson_iter_as_int64(&it));
  }
}

static void write_result(shell *s, const nx_update_result *r) {
  bson_t out = BSON_INITIALIZER;
  BSON_APPEND_BOOL(&out, "acknowledged", true);
  if (r->upserted) BSON_APPEND_VALUE(&out, "insertedId", &r->upserted_id);
  else BSON_APPEND_NULL(&out, "insertedId");
  BSON_APPEND_INT32(&out, "matchedCount", (int32_t)r->matched);
  BSON_APPEND_INT32(&out, "modifiedCount", (int32_t)r->modified);
  BSON_APPEND_INT32(&out, "upsertedCount", r->upserted ? 1 : 0);
  print_doc(s, &out);
  bson_destroy(&out);
}

/* find(...) with its chained cursor methods parts[1..n-1]. */
static bool run_find(shell *s, const char *coll, part *parts, int n) {
  part *f = &parts[0];
  bson_t filter, proj, sort;
  bool bad = false;
  bool hf = arg_doc(s, f, 0, &filter, false, &bad);
  bool hp = !bad && arg_doc(s, f, 1, &proj, false, &bad);
  bool hs = false;
  if (bad) return false;
  nx_find_opts fo = NX_FIND_OPTS_INIT;
  enum { T_PRINT, T_COUNT, T_EXPLAIN, T_ARRAY, T_ITCOUNT } term = T_PRINT;
  bool one = !strcmp(f->name, "findOne");
  for (int i = 1; i < n; i++) {
    part *m = &parts[i];
    int64_t v;
    if (!m->call) {
      sh_error(s, "'%s' is not a cursor method (did you mean %s()?)", m->name, m->name);
      return false;
    }
    if (term != T_PRINT) {
      sh_error(s, "%s() cannot follow %s()", m->name, parts[i - 1].name);
      return false;
    }
    if (one) {
      sh_error(s, "findOne() returns a document, not a cursor: %s() does not apply", m->name);
      return false;
    }
    if (!strcmp(m->name, "sort")) {
      if (!(hs = arg_doc(s, m, 0, &sort, true, &bad))) return false;
    } else if (!strcmp(m->name, "limit")) {
      if (!arg_int(s, m, 0, &v)) return false;
      fo.limit = (uint64_t)(v < 0 ? -v : v);
    } else if (!strcmp(m->name, "skip")) {
      if (!arg_int(s, m, 0, &v)) return false;
      if (v < 0) {
        sh_error(s, "skip() needs a non-negative number");
        return false;
      }
      fo.skip = (uint64_t)v;
    } else if (!strcmp(m->name, "projection") || !strcmp(m->name, "project")) {
      if (!(hp = arg_doc(s, m, 0, &proj, true, &bad))) return false;
    } else if (!strcmp(m->name, "count") || !strcmp(m->name, "size")) {
      term = T_COUNT;
    } else if (!strcmp(m->name, "explain")) {
      term = T_EXPLAIN;
    } else if (!strcmp(m->name, "toArray")) {
      term = T_ARRAY;
    } else if (!strcmp(m->name, "itcount")) {
      term = T_ITCOUNT;
    } else if (!strcmp(m->name, "pretty") || !strcmp(m->name, "batchSize") || !strcmp(m->name, "maxTimeMS") ||
               !strcmp(m->name, "comment")) {
      /* accepted, nothing to do: output is always pretty */
    } else {
      sh_error(s, "unknown cursor method %s() (sort, limit, skip, projection, count, explain, toArray, itcount, pretty)",
               m->name);
      return false;
    }
  }
  if (hp) fo.projection = nx_bson(&proj);
  if (hs) fo.sort = nx_bson(&sort);
  nx_in fin = hf ? nx_bson(&filter) : nx_none();
  int rc;
  if (one) {
    bson_t d;
    rc = nx_find_one(s->c->db, NULL, coll, fin, &fo, &d);
    if (rc == NX_NOTFOUND) {
      printf("null\n");
      return true;
    }
    if (rc != NX_OK) return lib_error(s, rc, "findOne");
    print_doc(s, &d);
    bson_destroy(&d);
    return true;
  }
  if (term == T_COUNT) {
    uint64_t cnt;
    rc = nx_count(s->c->db, NULL, coll, fin, &cnt);
    if (rc != NX_OK) return lib_error(s, rc, "count");
    if (strcmp(parts[n - 1].name, "size") == 0) { /* size() honours skip and limit */
      cnt = cnt > fo.skip ? cnt - fo.skip : 0;
      if (fo.limit && cnt > fo.limit) cnt = fo.limit;
    }
    printf("%llu\n", (unsigned long long)cnt);
    return true;
  }
  if (term == T_EXPLAIN) {
    bson_t e;
    rc = nx_explain(s->c->db, NULL, coll, fin, &fo, &e);
    if (rc != NX_OK) return lib_error(s, rc, "explain");
    print_doc(s, &e);
    bson_destroy(&e);
    return true;
  }
  rc = nx_find(s->c->db, NULL, coll, fin, &fo, &s->cur);
  if (rc != NX_OK) {
    s->cur = NULL;
    return lib_error(s, rc, "find");
  }
  if (term == T_ITCOUNT) {
    const bson_t *d;
    uint64_t cnt = 0;
    while (!cli_interrupted && (rc = nx_cursor_next(s->cur, &d)) == NX_ROW) {
      cnt++;
      cli_cursor_step();
    }
    close_cursor(s);
    if (cli_interrupted) {
      cli_interrupted = 0;
      sh_error(s, "interrupted");
      return false;
    }
    if (rc != NX_DONE) return lib_error(s, rc, "itcount");
    printf("%llu\n", (unsigned long long)cnt);
    return true;
  }
  return print_batch(s, term == T_ARRAY);
}

static bool run_collection(shell *s, const char *coll, part *parts, int n) {
  part *m = &parts[0];
  const char *name = m->name;
  nx_db *db = s->c->db;
  bool bad = false;
  int rc;
  if (!m->call) {
    sh_error(s, "%s.%s is not a method call (did you mean db.%s.%s()?)", coll, name, coll, name);
    return false;
  }
  if (!strcmp(name, "find") || !strcmp(name, "findOne")) return run_find(s, coll, parts, n);
  if (n > 1) {
    sh_error(s, "%s() does not return a cursor: .%s() cannot follow it", name, parts[1].name);
    return false;
  }
  bson_t a0, a1, a2;
  if (!strcmp(name, "insertOne")) {
    if (!arg_doc(s, m, 0, &a0, true, &bad)) return false;
    bson_value_t id;
    rc = nx_insert_one(db, NULL, coll, nx_bson(&a0), &id);
    if (rc != NX_OK) return lib_error(s, rc, "insertOne");
    bson_t out = BSON_INITIALIZER;
    BSON_APPEND_BOOL(&out, "acknowledged", true);
    BSON_APPEND_VALUE(&out, "insertedId", &id);
    bson_value_destroy(&id);
    print_doc(s, &out);
    bson_destroy(&out);
    return true;
  }
  if (!strcmp(name, "insertMany") || !strcmp(name, "insert")) {
    bson_iter_t it, ai;
    if (!arg(m, 0, &it) || !(BSON_ITER_HOLDS_ARRAY(&it) || BSON_ITER_HOLDS_DOCUMENT(&it))) {
      sh_error(s, "%s() needs an array of documents", name);
      return false;
    }
    /* Sized once: a bson_t points into itself and must never move (no realloc of the array). */
    size_t cnt = 0, cap = 1;
    if (BSON_ITER_HOLDS_ARRAY(&it)) {
      cap = 0;
      bson_iter_recurse(&it, &ai);
      while (bson_iter_next(&ai)) cap++;
    }
    nx_in *in = calloc(cap ? cap : 1, sizeof *in);
    bson_t *docs = bsonx_array(cap);
    if (!in || !docs) exit(CLI_EXIT_ERROR);
    if (BSON_ITER_HOLDS_DOCUMENT(&it)) {
      uint32_t len;
      const uint8_t *data;
      bson_iter_document(&it, &len, &data);
      bson_init_static(&docs[cnt++], data, len);
    } else {
      bson_iter_recurse(&it, &ai);
      while (bson_iter_next(&ai) && cnt < cap) {
        if (!BSON_ITER_HOLDS_DOCUMENT(&ai)) {
          sh_error(s, "%s(): element %s is not a document", name, bson_iter_key(&ai));
          free(in);
          free(docs);
          return false;
        }
        uint32_t len;
        const uint8_t *data;
        bson_iter_document(&ai, &len, &data);
        bson_init_static(&docs[cnt++], data, len);
      }
    }
    for (size_t i = 0; i < cnt; i++) in[i] = nx_bson(&docs[i]);
    size_t failed = 0;
    rc = cnt ? nx_insert_many(db, NULL, coll, in, cnt, &failed) : NX_OK;
    free(in);
    free(docs);
    if (rc != NX_OK) {
      char what[64];
      snprintf(what, sizeof what, "%s (document %zu; nothing was inserted)", name, failed);
      return lib_error(s, rc, what);
    }
    bson_t out = BSON_INITIALIZER;
    BSON_APPEND_BOOL(&out, "acknowledged", true);
    BSON_APPEND_INT32(&out, "insertedCount", (int32_t)cnt);
    print_doc(s, &out);
    bson_destroy(&out);
    return true;
  }
  if (!strcmp(name, "countDocuments") || !strcmp(name, "count") || !strcmp(name, "estimatedDocumentCount")) {
    bool hf = name[0] != 'e' && arg_doc(s, m, 0, &a0, false, &bad);
    if (bad) return false;
    uint64_t cnt;
    rc = nx_count(db, NULL, coll, hf ? nx_bson(&a0) : nx_none(), &cnt);
    if (rc != NX_OK) return lib_error(s, rc, name);
    printf("%llu\n", (unsigned long long)cnt);
    return true;
  }
  if (!strcmp(name, "distinct")) {
    const char *field;
    if (!arg_str(s, m, 0, &field)) return false;
    bool hf = arg_doc(s, m, 1, &a1, false, &bad);
    if (bad) return false;
    bson_t out;
    rc = nx_distinct(db, NULL, coll, field, hf ? nx_bson(&a1) : nx_none(), &out);
    if (rc != NX_OK) return lib_error(s, rc, "distinct");
    print_wrapped(s, &out, "values");
    bson_destroy(&out);
    return true;
  }
  if (!strcmp(name, "updateOne") || !strcmp(name, "updateMany") || !strcmp(name, "replaceOne")) {
    if (!arg_doc(s, m, 0, &a0, true, &bad) || !arg_doc(s, m, 1, &a1, true, &bad)) return false;
    bool ho = arg_doc(s, m, 2, &a2, false, &bad);
    if (bad) return false;
    unsigned flags = ho && opt_bool(&a2, "upsert") ? NX_UPSERT : 0;
    nx_update_result r;
    memset(&r, 0, sizeof r);
    if (name[0] == 'r') rc = nx_replace_one(db, NULL, coll, nx_bson(&a0), nx_bson(&a1), flags, &r);
    else if (name[6] == 'O') rc = nx_update_one(db, NULL, coll, nx_bson(&a0), nx_bson(&a1), flags, &r);
    else rc = nx_update_many(db, NULL, coll, nx_bson(&a0), nx_bson(&a1), flags, &r);
    if (rc != NX_OK) return lib_error(s, rc, name);
    write_result(s, &r);
    if (r.upserted) bson_value_destroy(&r.upserted_id);
    return true;
  }
  if (!strcmp(name, "deleteOne") || !strcmp(name, "deleteMany") || !strcmp(name, "remove")) {
    if (!arg_doc(s, m, 0, &a0, true, &bad)) return false;
    uint64_t cnt = 0;
    rc = name[6] == 'O' ? nx_delete_one(db, NULL, coll, nx_bson(&a0), &cnt)
                        : nx_delete_many(db, NULL, coll, nx_bson(&a0), &cnt);
    if (rc != NX_OK) return lib_error(s, rc, name);
    bson_t out = BSON_INITIALIZER;
    BSON_APPEND_BOOL(&out, "acknowledged", true);
    BSON_APPEND_INT32(&out, "deletedCount", (int32_t)cnt);
    print_doc(s, &out);
    bson_destroy(&out);
    return true;
  }
  if (!strcmp(name, "findOneAndUpdate") || !strcmp(name, "findOneAndReplace") || !strcmp(name, "findOneAndDelete")) {
    bool del = !strcmp(name, "findOneAndDelete");
    if (!arg_doc(s, m, 0, &a0, true, &bad)) return false;
    if (!del && !arg_doc(s, m, 1, &a1, true, &bad)) return false;
    bool ho = arg_doc(s, m, del ? 1 : 2, &a2, false, &bad);
    if (bad) return false;
    nx_fam_opts fo = NX_FAM_OPTS_INIT;
    bson_iter_t it;
    bson_t sub_sort, sub_proj;
    if (ho) {
      fo.upsert = opt_bool(&a2, "upsert");
      fo.return_after = opt_bool(&a2, "returnNewDocument") ||
                        (bson_iter_init_find(&it, &a2, "returnDocument") && BSON_ITER_HOLDS_UTF8(&it) &&
                         !strcmp(bson_iter_utf8(&it, NULL), "after"));
      uint32_t len;
      const uint8_t *data;
      if (bson_iter_init_find(&it, &a2, "sort") && BSON_ITER_HOLDS_DOCUMENT(&it)) {
        bson_iter_document(&it, &len, &data);
        if (bson_init_static(&sub_sort, data, len)) fo.sort = nx_bson(&sub_sort);
      }
      if (bson_iter_init_find(&it, &a2, "projection") && BSON_ITER_HOLDS_DOCUMENT(&it)) {
        bson_iter_document(&it, &len, &data);
        if (bson_init_static(&sub_proj, data, len)) fo.projection = nx_bson(&sub_proj);
      }
    }
    bson_t out;
    if (del) rc = nx_find_one_and_delete(db, NULL, coll, nx_bson(&a0), &fo, &out);
    else if (name[9] == 'U') rc = nx_find_one_and_update(db, NULL, coll, nx_bson(&a0), nx_bson(&a1), &fo, &out);
    else rc = nx_find_one_and_replace(db, NULL, coll, nx_bson(&a0), nx_bson(&a1), &fo, &out);
    if (rc == NX_NOTFOUND) {
      printf("null\n");
      return true;
    }
    if (rc != NX_OK) return lib_error(s, rc, name);
    print_doc(s, &out);
    bson_destroy(&out);
    return true;
  }
  if (!strcmp(name, "createIndex")) {
    if (!arg_doc(s, m, 0, &a0, true, &bad)) return false;
    bool ho = arg_doc(s, m, 1, &a1, false, &bad);
    if (bad) return false;
    nx_index_opts o = NX_INDEX_OPTS_INIT;
    sbuf nm;
    sb_init(&nm);
    bson_iter_t it;
    bson_t pf;
    if (ho && bson_iter_init_find(&it, &a1, "name") && BSON_ITER_HOLDS_UTF8(&it)) sb_adds(&nm, bson_iter_utf8(&it, NULL));
    else index_name(&a0, &nm);
    o.name = sb_str(&nm);
    o.unique = ho && opt_bool(&a1, "unique");
    o.sparse = ho && opt_bool(&a1, "sparse");
    if (ho && bson_iter_init_find(&it, &a1, "partialFilterExpression") && BSON_ITER_HOLDS_DOCUMENT(&it)) {
      uint32_t len;
      const uint8_t *data;
      bson_iter_document(&it, &len, &data);
      if (bson_init_static(&pf, data, len)) o.partial_filter = nx_bson(&pf);
    }
    rc = nx_index_create(db, coll, nx_bson(&a0), &o);
    if (rc != NX_OK) {
      sb_free(&nm);
      return lib_error(s, rc, "createIndex");
    }
    printf("%s\n", sb_str(&nm));
    sb_free(&nm);
    return true;
  }
  if (!strcmp(name, "dropIndex")) {
    bson_iter_t it;
    sbuf nm;
    sb_init(&nm);
    if (arg(m, 0, &it) && BSON_ITER_HOLDS_DOCUMENT(&it)) {
      arg_doc(s, m, 0, &a0, true, &bad);
      index_name(&a0, &nm);
    } else {
      const char *str;
      if (!arg_str(s, m, 0, &str)) return false;
      sb_adds(&nm, str);
    }
    rc = nx_index_drop(db, coll, sb_str(&nm));
    sb_free(&nm);
    if (rc != NX_OK) return lib_error(s, rc, "dropIndex");
    bson_t out = BSON_INITIALIZER;
    BSON_APPEND_INT32(&out, "ok", 1);
    print_doc(s, &out);
    bson_destroy(&out);
    return true;
  }
  if (!strcmp(name, "getIndexes")) {
    bson_t out;
    rc = nx_index_list(db, coll, &out);
    if (rc != NX_OK) return lib_error(s, rc, "getIndexes");
    print_wrapped(s, &out, "indexes");
    bson_destroy(&out);
    return true;
  }
  if (!strcmp(name, "stats")) {
    bson_t out;
    rc = nx_collection_stats(db, coll, &out);
    if (rc != NX_OK) return lib_error(s, rc, "stats");
    print_doc(s, &out);
    bson_destroy(&out);
    return true;
  }
  if (!strcmp(name, "drop")) {
    rc = nx_collection_drop(db, coll);
    if (rc == NX_NOTFOUND) {
      printf("false\n");
      return true;
    }
    if (rc != NX_OK) return lib_error(s, rc, "drop");
    printf("true\n");
    return true;
  }
  if (!strcmp(name, "renameCollection")) {
    const char *to;
    if (!arg_str(s, m, 0, &to)) return false;
    rc = nx_collection_rename(db, coll, to);
    if (rc != NX_OK) return lib_error(s, rc, "renameCollection");
    bson_t out = BSON_INITIALIZER;
    BSON_APPEND_INT32(&out, "ok", 1);
    print_doc(s, &out);
    bson_destroy(&out);
    return true;
  }
  if (!strcmp(name, "aggregate") || !strcmp(name, "mapReduce") || !strcmp(name, "watch") ||
      !strcmp(name, "bulkWrite")) {
    sh_error(s, "%s() is not supported by NexusLite", name);
    return false;
  }
  sh_error(s, "unknown collection method %s() (type help)", name);
  return false;
}

/* ---- Database methods ---- */

static bool db_stats(shell *s) {
  nx_stats st;
  memset(&st, 0, sizeof st);
  int rc = nx_stats_get(s->c->db, &st);
  if (rc != NX_OK) return lib_error(s, rc, "stats");
  char **names = NULL;
  size_t n = 0;
  rc = nx_collection_list(s->c->db, &names, &n);
  if (rc != NX_OK) return lib_error(s, rc, "stats");
  int64_t objects = 0, data = 0, storage = 0, indexes = 0;
  for (size_t i = 0; i < n; i++) {
    bson_t cs;
    bson_iter_t it;
    if (nx_collection_stats(s->c->db, names[i], &cs) != NX_OK) continue;
    if (bson_iter_init_find(&it, &cs, "count")) objects += bson_iter_as_int64(&it);
    if (bson_iter_init_find(&it, &cs, "size")) data += bson_iter_as_int64(&it);
    if (bson_iter_init_find(&it, &cs, "storageSize")) storage += bson_iter_as_int64(&it);
    if (bson_iter_init_find(&it, &cs, "nindexes")) indexes += bson_iter_as_int64(&it);
    bson_destroy(&cs);
  }
  nx_free_strv(names, n);
  bson_t out = BSON_INITIALIZER;
  BSON_APPEND_UTF8(&out, "db", s->c->db_path);
  BSON_APPEND_INT64(&out, "collections", (int64_t)n);
  BSON_APPEND_INT64(&out, "objects", objects);
  BSON_APPEND_INT64(&out, "dataSize", data);
  BSON_APPEND_INT64(&out, "storageSize", storage);
  BSON_APPEND_INT64(&out, "indexes", indexes);
  BSON_APPEND_INT32(&out, "pageSize", (int32_t)st.page_size);
  BSON_APPEND_INT64(&out, "pages", (int64_t)st.pages_total);
  BSON_APPEND_INT64(&out, "freePages", (int64_t)st.pages_free);
  BSON_APPEND_INT64(&out, "logBytes", (int64_t)st.log_bytes);
  BSON_APPEND_INT64(&out, "cacheHits", (int64_t)st.cache_hits);
  BSON_APPEND_INT64(&out, "cacheMisses", (int64_t)st.cache_misses);
  print_doc(s, &out);
  bson_destroy(&out);
  return true;
}

static bool show_collections(shell *s) {
  char **names = NULL;
  size_t n = 0;
  int rc = nx_collection_list(s->c->db, &names, &n);
  if (rc != NX_OK) return lib_error(s, rc, "show collections");
  for (size_t i = 0; i < n; i++) printf("%s\n", names[i]);
  nx_free_strv(names, n);
  return true;
}

static bool run_db(shell *s, part *parts, int n) {
  if (n < 2) {
    printf("%s\n", s->c->db_path);
    return true;
  }
  part *m = &parts[1];
  if (m->call) {
    const char *name = m->name;
    if (!strcmp(name, "getCollection")) {
      const char *coll;
      if (!arg_str(s, m, 0, &coll)) return false;
      if (n < 3) {
        printf("%s\n", coll);
        return true;
      }
      return run_collection(s, coll, parts + 2, n - 2);
    }
    if (n > 2) {
      sh_error(s, "db.%s() cannot be chained", name);
      return false;
    }
    if (!strcmp(name, "stats")) return db_stats(s);
    if (!strcmp(name, "getName")) {
      printf("%s\n", s->c->db_path);
      return true;
    }
    if (!strcmp(name, "getCollectionNames")) {
      char **names = NULL;
      size_t cnt = 0;
      int rc = nx_collection_list(s->c->db, &names, &cnt);
      if (rc != NX_OK) return lib_error(s, rc, name);
      bson_t w = BSON_INITIALIZER, arr;
      BSON_APPEND_ARRAY_BEGIN(&w, "v", &arr);
      for (size_t i = 0; i < cnt; i++) {
        char k[24];
        snprintf(k, sizeof k, "%zu", i);
        BSON_APPEND_UTF8(&arr, k, names[i]);
      }
      bson_append_array_end(&w, &arr);
      print_wrapped(s, &w, "v");
      bson_destroy(&w);
      nx_free_strv(names, cnt);
      return true;
    }
    if (!strcmp(name, "createCollection")) {
      const char *coll;
      bson_t o;
      bool bad = false;
      if (!arg_str(s, m, 0, &coll)) return false;
      bool ho = arg_doc(s, m, 1, &o, false, &bad);
      if (bad) return false;
      int rc = nx_collection_create(s->c->db, coll, ho ? nx_bson(&o) : nx_none());
      if (rc != NX_OK) return lib_error(s, rc, name);
      bson_t out = BSON_INITIALIZER;
      BSON_APPEND_INT32(&out, "ok", 1);
      print_doc(s, &out);
      bson_destroy(&out);
      return true;
    }
    if (!strcmp(name, "dropDatabase")) {
      sh_error(s, "dropDatabase() is not supported: the database is the file %s; delete it (and %s.wasp) to drop it",
               s->c->db_path, s->c->db_path);
      return false;
    }
    if (!strcmp(name, "help")) {
      printf("db.stats()  db.getName()  db.getCollectionNames()  db.createCollection(name[, options])\n"
             "db.getCollection(name)  db.COLLECTION.help()\n");
      return true;
    }
    /* db.coll() typo or unknown method */
    sh_error(s, "unknown database method db.%s() (try db.stats(), db.getCollectionNames(), db.createCollection())",
             name);
    return false;
  }
  /* db.NAME[.NAME...].method(...): the collection name is every segment before the first call. */
  int k = 1;
  while (k < n && !parts[k].call) k++;
  if (k == n) {
    if (n == 2) { /* db.users: mongosh prints the namespace */
      printf("%s\n", parts[1].name);
      return true;
    }
    sh_error(s, "%s is not a method call (did you mean %s()?)", parts[n - 1].name, parts[n - 1].name);
    return false;
  }
  sbuf coll;
  sb_init(&coll);
  for (int i = 1; i < k; i++) {
    if (i > 1) sb_addc(&coll, '.');
    sb_adds(&coll, parts[i].name);
  }
  bool ok;
  if (!strcmp(parts[k].name, "help")) {
    printf("db.%s: find(filter, projection) findOne countDocuments distinct insertOne insertMany updateOne\n"
           "updateMany replaceOne deleteOne deleteMany findOneAndUpdate findOneAndReplace findOneAndDelete\n"
           "createIndex(keys, options) dropIndex(name) getIndexes() stats() drop() renameCollection(name)\n",
           sb_str(&coll));
    ok = true;
  } else {
    ok = run_collection(s, sb_str(&coll), parts + k, n - k);
  }
  sb_free(&coll);
  return ok;
}

/* ---- Statements ---- */

static void help(void) {
  printf("NexusLite shell: mongosh-style commands on one database file.\n"
         "  show collections                list collections      show dbs   the database file\n"
         "  db.stats()                      database figures      db.getCollectionNames()\n"
         "  db.createCollection('c')        create a collection   db.c.drop()  drop one\n"
         "  db.c.insertOne({...})           insertMany([...])\n"
         "  db.c.find({age: {$gt: 25}}, {name: 1}).sort({age: -1}).skip(1).limit(5)\n"
         "                                  also .count() .explain() .toArray() .pretty()\n"
         "  db.c.findOne(filter)            countDocuments(filter)   distinct('field', filter)\n"
         "  db.c.updateOne(f, {$set: {...}}, {upsert: true})   updateMany   replaceOne\n"
         "  db.c.deleteOne(f)  deleteMany(f)  findOneAndUpdate(f, u, {returnDocument: 'after'})\n"
         "  db.c.createIndex({age: 1}, {unique: true})   getIndexes()   dropIndex('age_1')\n"
         "  db.c.stats()                    it (more results)     exit\n"
         "Literals: {name: 'x'} unquoted keys, 'single quotes', trailing commas, // comments,\n"
         "  ObjectId('...') ISODate('2024-01-31') new Date(ms) UUID('...') NumberLong(5)\n"
         "  NumberInt(5) NumberDecimal('1.10') Timestamp(t, i) /regex/i true false null\n"
         "A statement may span lines until its brackets balance; Tab completes names; Ctrl-C cancels a query.\n");
}

/* Runs one statement at *pp; moves *pp past it (and a following ';'). */
static void run_statement(shell *s, const char **pp, const char *base) {
  const char *p = *pp;
  rx_skip(&p);
  if (!*p) {
    *pp = p;
    return;
  }
  if (*p == ';') {
    *pp = p + 1;
    return;
  }
  const char *st = p;
  while (ident_char(*p)) p++;
  size_t wl = (size_t)(p - st);
  char word[32];
  snprintf(word, sizeof word, "%.*s", (int)(wl < 31 ? wl : 31), st);
  const char *after = p;
  rx_skip(&after);
  bool simple_end = !*after || *after == ';';

  if (strcmp(word, "it") == 0 && simple_end) {
    if (!s->cur) printf("no cursor\n");
    else print_batch(s, false);
    *pp = after;
    return;
  }
  close_cursor(s);
  if ((!strcmp(word, "exit") || !strcmp(word, "quit")) &&
      (simple_end || (after[0] == '(' && after[1] == ')'))) {
    s->quit = true;
    *pp = st + strlen(st);
    return;
  }
  if (!strcmp(word, "help") && (simple_end || *after == '(')) {
    help();
    *pp = st + strlen(st);
    return;
  }
  if (!strcmp(word, "show") || !strcmp(word, "use")) {
    /* rest of the statement up to ';' or end of line is the argument */
    const char *a = after;
    const char *e = a;
    while (*e && *e != ';' && *e != '\n') e++;
    char argw[64];
    size_t al = (size_t)(e - a);
    while (al && (a[al - 1] == ' ' || a[al - 1] == '\t' || a[al - 1] == '\r')) al--;
    snprintf(argw, sizeof argw, "%.*s", (int)(al < 63 ? al : 63), a);
    if (!strcmp(word, "use")) {
      sh_error(s, "'use' does not apply: this shell works on one database file (%s); start "
                  "nexuslite --db FILE shell for another",
               s->c->db_path);
    } else if (!strcmp(argw, "collections") || !strcmp(argw, "tables")) {
      show_collections(s);
    } else if (!strcmp(argw, "dbs") || !strcmp(argw, "databases")) {
      printf("%s\n", s->c->db_path);
    } else {
      sh_error(s, "show what? (show collections, show dbs)");
    }
    *pp = e;
    return;
  }
  if (strcmp(word, "db") != 0) {
    if (!wl) sh_error(s, "syntax error at offset %ld: a statement starts with db., show, help or exit", (long)(st - base));
    else sh_error(s, "'%s' is not defined (statements start with db., show, use, it, help or exit)", word);
    *pp = st + strlen(st); /* skip the rest of the input: it would only cascade */
    return;
  }
  part parts[MAX_PARTS];
  const char *q = st;
  int n = parse_expr(s, &q, base, parts);
  if (n < 0) {
    *pp = st + strlen(st);
    return;
  }
  rx_skip(&q);
  if (*q && *q != ';') {
    sh_error(s, "syntax error at offset %ld: unexpected '%c'", (long)(q - base), *q);
    free_parts(parts, n);
    *pp = st + strlen(st);
    return;
  }
  run_db(s, parts, n);
  free_parts(parts, n);
  fflush(stdout);
  *pp = q;
}

static void run_input(shell *s, const char *text) {
  const char *p = text;
  while (*p && !s->quit) {
    const char *before = p;
    run_statement(s, &p, text);
    rx_skip(&p);
    if (*p == ';') p++;
    if (p == before) break;
  }
}

/* ---- Input loop ---- */

static void history_path(shell *s) {
  const char *h = cfg_get(&s->c->cfg, CFG_HISTORY);
  const char *home = getenv("HOME");
  if (h && *h) snprintf(s->histfile, sizeof s->histfile, "%s", h);
  else if (home && *home) snprintf(s->histfile, sizeof s->histfile, "%s/.nexuslite_history", home);
  else s->histfile[0] = '\0';
}

/* ---- Tab completion (libedit) ---- */

static shell *g_shell; /* the shell that completion reads collection names from */

static const char *const coll_methods[] = {
    "find(", "findOne(", "countDocuments(", "estimatedDocumentCount(", "distinct(", "insertOne(",
    "insertMany(", "updateOne(", "updateMany(", "replaceOne(", "deleteOne(", "deleteMany(",
    "findOneAndUpdate(", "findOneAndReplace(", "findOneAndDelete(", "createIndex(", "dropIndex(",
    "getIndexes()", "stats()", "drop()", "renameCollection(", NULL};
static const char *const cursor_methods[] = {"sort(", "limit(", "skip(", "count()", "explain()", "toArray()",
                                             "pretty()", "itcount()", "projection(", NULL};
static const char *const db_methods[] = {"stats()", "getName()", "getCollectionNames()", "createCollection(",
                                         "getCollection(", NULL};
static const char *const top_words[] = {"db.", "show collections", "show dbs", "help", "exit", "it", NULL};

/* Adds the candidates of `list` that start with word (len n) to out. */
static void cands(const char *const *list, const char *word, size_t n, char **out, size_t *k, size_t max) {
  for (size_t i = 0; list[i] && *k < max; i++)
    if (!strncmp(list[i], word, n)) out[(*k)++] = strdup(list[i]);
}

static unsigned char complete(EditLine *el, int ch) {
  (void)ch;
  const LineInfo *li = el_line(el);
  const char *start = li->buffer, *cur = li->cursor;
  const char *w = cur;
  while (w > start && (ident_char(w[-1]))) w--;
  size_t n = (size_t)(cur - w);
  char word[128];
  snprintf(word, sizeof word, "%.*s", (int)(n < 127 ? n : 127), w);
  char *out[64];
  size_t k = 0;
  char **names = NULL;
  size_t nn = 0;
  /* What comes before the word decides the kind: "db." / "db.coll." / ")." / nothing. */
  const char *b = w;
  if (b > start && b[-1] == '.') {
    const char *q = b - 1;
    if (q > start && q[-1] == ')') {
      cands(cursor_methods, word, n, out, &k, 64);
    } else {
      const char *t = q;
      while (t > start && ident_char(t[-1])) t--;
      if ((size_t)(q - t) == 2 && !strncmp(t, "db", 2) && (t == start || !ident_char(t[-1])) &&
          (t == start || t[-1] != '.')) {
        cands(db_methods, word, n, out, &k, 64);
        if (g_shell && g_shell->c->db && nx_collection_list(g_shell->c->db, &names, &nn) == NX_OK) {
          for (size_t i = 0; i < nn && k < 64; i++)
            if (!strncmp(names[i], word, n)) out[k++] = strdup(names[i]);
          nx_free_strv(names, nn);
        }
      } else {
        cands(coll_methods, word, n, out, &k, 64);
      }
    }
  } else {
    cands(top_words, word, n, out, &k, 64);
  }
  unsigned char rc = CC_REFRESH_BEEP;
  if (k == 1) {
    el_insertstr(el, out[0] + n);
    rc = CC_REFRESH;
  } else if (k > 1) {
    /* the common prefix, then the list */
    size_t common = strlen(out[0]);
    for (size_t i = 1; i < k; i++) {
      size_t j = 0;
      while (j < common && out[i][j] == out[0][j]) j++;
      common = j;
    }
    if (common > n) {
      char *ins = strndup(out[0] + n, common - n);
      if (ins) el_insertstr(el, ins);
      free(ins);
    }
    printf("\n");
    for (size_t i = 0; i < k; i++) printf("%s%s", out[i], i + 1 < k ? "  " : "\n");
    rc = CC_REDISPLAY;
  }
  for (size_t i = 0; i < k; i++) free(out[i]);
  return rc;
}

/* Ctrl-C at the prompt is a key, not a signal: the edit-mode terminal has ISIG off (EL_SETTY
 * below), so ^C reaches this function synchronously; a SIGINT that arrives anyway (the key typed
 * before edit mode is on) becomes the same key in read_key(). */
static volatile int g_line_cancel;
static unsigned char cancel_line(EditLine *el, int ch) {
  (void)el;
  (void)ch;
  g_line_cancel = 1;
  return CC_NEWLINE;
}

/* libedit prints the prompt before it switches the terminal to edit mode, so a ^C typed right
 * after the prompt can still reach the terminal in its normal mode and arrive as SIGINT, whose
 * handler only sets cli_interrupted; libedit's own read() would then block with the Ctrl-C lost.
 * This reader closes that window: SIGINT is blocked while the flag is checked and unblocked only
 * inside ppoll(), so a pending or arriving SIGINT always wakes it, and it hands libedit a ^C
 * key (bound to nx-cancel). Bytes are decoded to wide characters with the locale's mbrtowc. */
static int read_key(EditLine *el, wchar_t *wc) {
  (void)el;
  mbstate_t st;
  memset(&st, 0, sizeof st);
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  for (;;) {
    sigprocmask(SIG_BLOCK, &block, &old);
    if (cli_interrupted) {
      cli_interrupted = 0;
      sigprocmask(SIG_SETMASK, &old, NULL);
      *wc = L'\003';
      return 1;
    }
    struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
    int r = ppoll(&pfd, 1, NULL, &old);
    int err = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (r < 0) {
      if (err == EINTR) continue; /* the loop looks at cli_interrupted again */
      errno = err;
      return -1;
    }
    char ch;
    ssize_t n = read(STDIN_FILENO, &ch, 1);
    if (n == 0) return 0;
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return -1;
    }
    size_t k = mbrtowc(wc, &ch, 1, &st);
    if (k == (size_t)-2) continue; /* the middle of a multi-byte character */
    if (k == (size_t)-1) {       /* not valid in this locale: pass the byte through */
      memset(&st, 0, sizeof st);
      *wc = (wchar_t)(unsigned char)ch;
    }
    return 1;
  }
}

static bool editline_start(shell *s) {
  setlocale(LC_CTYPE, "");
  s->el = el_init("nexuslite", stdin, stdout, stderr);
  if (!s->el) return false;
  s->hist = history_init();
  if (!s->hist) {
    el_end(s->el);
    s->el = NULL;
    return false;
  }
  HistEvent ev;
  history(s->hist, &ev, H_SETSIZE, 1000);
  history(s->hist, &ev, H_SETUNIQUE, 1);
  history_path(s);
  if (s->histfile[0]) history(s->hist, &ev, H_LOAD, s->histfile);
  el_set(s->el, EL_EDITOR, "emacs");
  el_set(s->el, EL_PROMPT, prompt_fn);
  el_set(s->el, EL_HIST, history, s->hist);
  g_shell = s;
  el_set(s->el, EL_ADDFN, "nx-complete", "complete a name", complete);
  el_set(s->el, EL_BIND, "^I", "nx-complete", NULL);
  el_set(s->el, EL_ADDFN, "nx-cancel", "drop the pending input", cancel_line);
  el_set(s->el, EL_BIND, "^C", "nx-cancel", NULL);
  el_set(s->el, EL_SETTY, "-d", "-isig", NULL);
  el_set(s->el, EL_GETCFN, read_key);
  el_source(s->el, NULL);
  return true;
}

static void editline_end(shell *s) {
  if (s->hist) {
    HistEvent ev;
    if (s->histfile[0]) history(s->hist, &ev, H_SAVE, s->histfile);
    history_end(s->hist);
  }
  if (s->el) el_end(s->el);
}

/* Reads one line (without the newline) into line; false at end of input. */
static bool read_line(shell *s, sbuf *line) {
  sb_clear(line);
  if (s->el) {
    int count = 0;
    errno = 0;
    const char *l = el_gets(s->el, &count);
    if (g_line_cancel) {
      g_line_cancel = 0;
      sb_adds(line, "\x03"); /* marker: cancel the pending input */
      return true;
    }
    if (!l || count <= 0) {
      if (cli_interrupted || errno == EINTR) {
        cli_interrupted = 0;
        sb_adds(line, "\x03"); /* marker: cancel the pending input */
        return true;
      }
      return false;
    }
    sb_adds(line, l);
  } else {
    if (s->interactive) {
      fputs(g_prompt, stdout);
      fflush(stdout);
    }
    int ch;
    for (;;) {
      ch = getc(stdin);
      if (ch == EOF) {
        if (ferror(stdin) && errno == EINTR) {
          clearerr(stdin);
          if (cli_interrupted && s->interactive) {
            cli_interrupted = 0;
            sb_clear(line);
            sb_adds(line, "\x03");
            return true;
          }
          continue;
        }
        if (!line->len) return false;
        break;
      }
      if (ch == '\n') break;
      sb_addc(line, (char)ch);
    }
  }
  while (line->len && (line->p[line->len - 1] == '\n' || line->p[line->len - 1] == '\r')) line->p[--line->len] = '\0';
  return true;
}

static void echo_statement(shell *s, const char *text) {
  const char *p = text;
  bool first = true;
  while (*p) {
    const char *e = strchr(p, '\n');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    printf("%s%.*s\n", first ? "nexuslite> " : "... ", (int)n, p);
    first = false;
    p += n;
    if (*p == '\n') p++;
  }
  (void)s;
}

static int translate(void) {
  sbuf line, out;
  sb_init(&line);
  sb_init(&out);
  char buf[4096];
  int rc = CLI_EXIT_OK;
  for (;;) {
    bool eof = !fgets(buf, sizeof buf, stdin);
    if (!eof) sb_adds(&line, buf);
    if (!eof && rx_balance(sb_str(&line)) > 0) continue;
    if (eof && !line.len) break;
    const char *p = sb_str(&line);
    rx_skip(&p);
    if (*p) {
      char err[300];
      sb_clear(&out);
      if (rx_convert(sb_str(&line), &out, err, sizeof err)) printf("%s\n", sb_str(&out));
      else {
        printf("error: %s\n", err);
        rc = CLI_EXIT_USAGE;
      }
    }
    sb_clear(&line);
    if (eof) break;
  }
  sb_free(&line);
  sb_free(&out);
  return rc;
}

int cmd_shell(cli *c, int argc, char **argv) {
  shell s;
  memset(&s, 0, sizeof s);
  s.c = c;
  const char *eval = NULL;
  for (int i = 0; i < argc; i++) {
    int r;
    if (!strcmp(argv[i], "--translate")) return translate();
    if (!strcmp(argv[i], "--echo")) s.echo = true;
    else if ((r = opt_value(c, argc, argv, &i, "--eval", &eval)) != 0) {
      if (r < 0) return CLI_EXIT_USAGE;
    } else {
      cli_err(c, "shell: unexpected argument '%s' (see nexuslite shell --help)", argv[i]);
      return CLI_EXIT_USAGE;
    }
  }
  int rc = cli_open(c, true);
  if (rc != CLI_EXIT_OK) return rc;
  s.o = c->oo;
  s.o.pretty = true;
  cli_install_sigint();
  if (eval) {
    if (s.echo) echo_statement(&s, eval);
    run_input(&s, eval);
    close_cursor(&s);
    return s.errors ? CLI_EXIT_ERROR : CLI_EXIT_OK;
  }
  s.interactive = isatty(STDIN_FILENO) != 0;
  if (s.interactive) {
    if (!editline_start(&s)) s.el = NULL;
    if (!c->quiet)
      printf("NexusLite %s shell on %s. Type help for help, exit to leave.\n", nx_version(), c->db_path);
  }
  sbuf pending, line;
  sb_init(&pending);
  sb_init(&line);
  while (!s.quit) {
    g_prompt = pending.len ? "... " : "nexuslite> ";
    if (!read_line(&s, &line)) break;
    if (line.len == 1 && line.p[0] == '\x03') { /* Ctrl-C at the prompt: drop the pending input */
      sb_clear(&pending);
      printf("\n");
      continue;
    }
    if (pending.len) sb_addc(&pending, '\n');
    sb_adds(&pending, sb_str(&line));
    int bal = rx_balance(sb_str(&pending));
    if (bal > 0) continue;
    const char *p = sb_str(&pending);
    rx_skip(&p);
    if (*p) {
      if (s.hist) {
        HistEvent ev;
        sbuf h;
        sb_init(&h);
        for (const char *q = sb_str(&pending); *q; q++) sb_addc(&h, *q == '\n' ? ' ' : *q);
        history(s.hist, &ev, H_ENTER, sb_str(&h));
        sb_free(&h);
      }
      if (s.echo) echo_statement(&s, sb_str(&pending));
      if (bal < 0) sh_error(&s, "unbalanced closing bracket");
      else run_input(&s, sb_str(&pending));
    }
    sb_clear(&pending);
  }
  if (pending.len && !s.quit) sh_error(&s, "unexpected end of input: unclosed bracket");
  close_cursor(&s);
  sb_free(&pending);
  sb_free(&line);
  if (s.interactive) {
    editline_end(&s);
    return CLI_EXIT_OK;
  }
  return s.errors ? CLI_EXIT_ERROR : CLI_EXIT_OK;
}
