/*
 * commands.c: the data commands: collections, insert, find, count, update, delete, index, kv.
 *
 * Every JSON argument (documents, --filter, --update, --sort, ...) accepts the shell's relaxed
 * syntax ({age: {$gt: 25}}), translated by relaxed.c and parsed by libbson. Read commands never
 * create a database or a collection: a missing one is reported (exit 3) rather than silently
 * answered with nothing, since at a command line that is nearly always a typo.
 *
 * Output: results on stdout, as a table on a terminal and NDJSON otherwise (--output chooses);
 * write commands print a one-line summary document (for people: mongosh style; for programs:
 * JSON).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* ---- Shared helpers ---- */

/* Parses relaxed text (what: the option name for messages) into a document. */
static bool parse_doc(cli *c, const char *what, const char *text, bson_t *out) {
  cli_settle_allocator();
  sbuf ej;
  char err[300];
  sb_init(&ej);
  const char *p = text;
  rx_skip(&p);
  if (*p != '{') {
    cli_err(c, "%s: a document {...} was expected", what);
    sb_free(&ej);
    return false;
  }
  if (!rx_convert(text, &ej, err, sizeof err)) {
    cli_err(c, "%s: %s", what, err);
    sb_free(&ej);
    return false;
  }
  bson_error_t be;
  if (!bson_init_from_json(out, sb_str(&ej), (ssize_t)ej.len, &be)) {
    cli_err(c, "%s: %s", what, be.message);
    sb_free(&ej);
    return false;
  }
  sb_free(&ej);
  return true;
}

/* Parses any relaxed value as {"v": value}. */
static bool parse_wrapped(cli *c, const char *what, const char *text, bson_t *out) {
  cli_settle_allocator();
  sbuf ej;
  char err[300];
  sb_init(&ej);
  sb_adds(&ej, "{\"v\":");
  if (!rx_convert(text, &ej, err, sizeof err)) {
    cli_err(c, "%s: %s", what, err);
    sb_free(&ej);
    return false;
  }
  sb_addc(&ej, '}');
  bson_error_t be;
  bool ok = bson_init_from_json(out, sb_str(&ej), (ssize_t)ej.len, &be);
  if (!ok) cli_err(c, "%s: %s", what, be.message);
  sb_free(&ej);
  return ok;
}

/* Builds {"a":1,"b":1} from "a,b", or {"a":-1,"b":1} from "-a,+b" (sort); JSON passes through. */
static bool spec_list(const char *s, sbuf *out, bool signs, char *err, size_t errlen) {
  const char *p = s;
  rx_skip(&p);
  if (*p == '{') return rx_convert(s, out, err, errlen);
  sb_addc(out, '{');
  bool first = true;
  while (*p) {
    while (*p == ' ' || *p == ',') p++;
    if (!*p) break;
    int dir = 1;
    if (*p == '-' || *p == '+') {
      if (!signs) {
        if (*p == '-') dir = 0;
      } else {
        dir = *p == '-' ? -1 : 1;
      }
      p++;
    }
    const char *e = p;
    while (*e && *e != ',' && *e != ' ') e++;
    if (e == p) {
      snprintf(err, errlen, "an empty field name in '%s'", s);
      return false;
    }
    if (!first) sb_addc(out, ',');
    first = false;
    sb_json_str(out, p, (size_t)(e - p));
    sb_printf(out, ":%d", dir);
    p = e;
  }
  sb_addc(out, '}');
  if (first) {
    snprintf(err, errlen, "no fields in '%s'", s);
    return false;
  }
  return true;
}

bool spec_projection(const char *s, sbuf *out, char *err, size_t errlen) {
  return spec_list(s, out, false, err, errlen);
}
bool spec_sort(const char *s, sbuf *out, char *err, size_t errlen) {
  return spec_list(s, out, true, err, errlen);
}

/* Converts a spec to a bson document; `what` names the option in messages. */
static bool parse_spec(cli *c, const char *what, const char *s, bool sort, bson_t *out) {
  cli_settle_allocator();
  sbuf ej;
  char err[300];
  sb_init(&ej);
  bool ok = sort ? spec_sort(s, &ej, err, sizeof err) : spec_projection(s, &ej, err, sizeof err);
  if (!ok) {
    cli_err(c, "%s: %s", what, err);
  } else {
    bson_error_t be;
    ok = bson_init_from_json(out, sb_str(&ej), (ssize_t)ej.len, &be);
    if (!ok) cli_err(c, "%s: %s", what, be.message);
  }
  sb_free(&ej);
  return ok;
}

/* Prints a small result document: mongosh style for people, compact JSON for programs. */
static void emit(cli *c, const bson_t *doc) {
  sbuf b;
  sb_init(&b);
  if (c->tty_out) out_shell(&b, doc, &c->oo, 0);
  else out_json(&b, doc, &c->oo, 0);
  printf("%s\n", sb_str(&b));
  sb_free(&b);
}

/* Requires the collection to exist (read commands). Returns an exit code. */
static int need_collection(cli *c, const char *coll) {
  bool exists = false;
  int rc = nx_collection_exists(c->db, coll, &exists);
  if (rc != NX_OK) return cli_fail(c, rc, coll);
  if (!exists) {
    cli_err(c, "no collection named '%s' in %s", coll, c->db_path);
    return CLI_EXIT_NOTFOUND;
  }
  return CLI_EXIT_OK;
}

static int usage(cli *c, const char *cmd, const char *msg) {
  cli_err(c, "%s: %s (see nexuslite %s --help)", cmd, msg, cmd);
  return CLI_EXIT_USAGE;
}

static bool parse_count_opt(cli *c, const char *name, const char *v, uint64_t *out) {
  if (!parse_u64(v, out)) {
    cli_err(c, "%s: a non-negative integer was expected, not '%s'", name, v);
    return false;
  }
  return true;
}

/* ---- collections ---- */

int cmd_collections(cli *c, int argc, char **argv) {
  const char *sub = argc > 0 ? argv[0] : "list";
  int rc;
  if (!strcmp(sub, "list")) {
    if (argc > 1) return usage(c, "collections", "list takes no arguments");
    if ((rc = cli_open(c, false)) != CLI_EXIT_OK) return rc;
    char **names = NULL;
    size_t n = 0;
    int st = nx_collection_list(c->db, &names, &n);
    if (st != NX_OK) return cli_fail(c, st, "listing collections");
    for (size_t i = 0; i < n; i++) printf("%s\n", names[i]);
    nx_free_strv(names, n);
    return CLI_EXIT_OK;
  }
  if (!strcmp(sub, "create")) {
    const char *name = NULL, *opts = NULL;
    for (int i = 1; i < argc; i++) {
      int r = opt_value(c, argc, argv, &i, "--options", &opts);
      if (r < 0) return CLI_EXIT_USAGE;
      if (r) continue;
      if (argv[i][0] == '-' || name) return usage(c, "collections", "create NAME [--options JSON]");
      name = argv[i];
    }
    if (!name) return usage(c, "collections", "create needs a NAME");
    bson_t o;
    bool have = false;
    if (opts) {
      if (!parse_doc(c, "--options", opts, &o)) return CLI_EXIT_USAGE;
      have = true;
    }
    if ((rc = cli_open(c, true)) != CLI_EXIT_OK) {
      if (have) bson_destroy(&o);
      return rc;
    }
    int st = nx_collection_create(c->db, name, have ? nx_bson(&o) : nx_none());
    if (have) bson_destroy(&o);
    if (st != NX_OK) return cli_fail(c, st, "creating collection");
    cli_note(c, "created collection %s", name);
    return CLI_EXIT_OK;
  }
  if (!strcmp(sub, "drop")) {
    if (argc != 2) return usage(c, "collections", "drop NAME");
    if ((rc = cli_open(c, false)) != CLI_EXIT_OK) return rc;
    int st = nx_collection_drop(c->db, argv[1]);
    if (st != NX_OK) return cli_fail(c, st, "dropping collection");
    cli_note(c, "dropped collection %s", argv[1]);
    return CLI_EXIT_OK;
  }
  if (!strcmp(sub, "rename")) {
    if (argc != 3) return usage(c, "collections", "rename FROM TO");
    if ((rc = cli_open(c, false)) != CLI_EXIT_OK) return rc;
    int st = nx_collection_rename(c->db, argv[1], argv[2]);
    if (st != NX_OK) return cli_fail(c, st, "renaming collection");
    cli_note(c, "renamed collection %s to %s", argv[1], argv[2]);
    return CLI_EXIT_OK;
  }
  cli_err(c, "collections: unknown subcommand '%s' (list, create, drop, rename)", sub);
  return CLI_EXIT_USAGE;
}

/* ---- insert ---- */

typedef struct batch {
  bson_t **docs;    /* owned copies (pointers: a bson_t must not move once allocated) */
  nx_in *in;
  size_t n, cap;
  uint64_t total;   /* committed so far */
} batch;

static void batch_push(batch *b, const bson_t *doc) {
  if (b->n == b->cap) {
    b->cap = b->cap ? b->cap * 2 : 64;
    b->docs = realloc(b->docs, b->cap * sizeof *b->docs);
    b->in = realloc(b->in, b->cap * sizeof *b->in);
    if (!b->docs || !b->in) exit(CLI_EXIT_ERROR);
  }
  b->docs[b->n] = bsonx_copy(doc);
  b->n++;
}

static void batch_clear(batch *b) {
  for (size_t i = 0; i < b->n; i++) bsonx_free(b->docs[i]);
  b->n = 0;
}

/* Inserts the pending documents atomically. `first_line` numbers them in messages. */
static int batch_flush(cli *c, batch *b, const char *coll, const char *where) {
  if (!b->n) return CLI_EXIT_OK;
  for (size_t i = 0; i < b->n; i++) b->in[i] = nx_bson(b->docs[i]);
  size_t failed = 0;
  int st = b->n == 1 ? nx_insert_one(c->db, NULL, coll, b->in[0], NULL)
                     : nx_insert_many(c->db, NULL, coll, b->in, b->n, &failed);
  if (st != NX_OK) {
    char what[160];
    snprintf(what, sizeof what, "inserting into %s (%s document %zu of this batch; %llu inserted before it)",
             coll, where, failed + 1, (unsigned long long)b->total);
    batch_clear(b);
    return cli_fail(c, st, what);
  }
  b->total += b->n;
  batch_clear(b);
  return CLI_EXIT_OK;
}

/* Adds a parsed argument: a document, or an array of documents. */
static bool batch_add_value(cli *c, batch *b, const bson_t *wrapped, const char *where) {
  bson_iter_t it;
  if (!bson_iter_init_find(&it, wrapped, "v")) return false;
  if (BSON_ITER_HOLDS_DOCUMENT(&it) || BSON_ITER_HOLDS_ARRAY(&it)) {
    uint32_t len;
    const uint8_t *data;
    bson_t sub;
    bool arr = BSON_ITER_HOLDS_ARRAY(&it);
    if (arr) bson_iter_array(&it, &len, &data);
    else bson_iter_document(&it, &len, &data);
    if (!bson_init_static(&sub, data, len)) return false;
    if (!arr) {
      batch_push(b, &sub);
      return true;
    }
    bson_iter_t ai;
    bson_iter_init(&ai, &sub);
    while (bson_iter_next(&ai)) {
      if (!BSON_ITER_HOLDS_DOCUMENT(&ai)) {
        cli_err(c, "%s: array element %s is not a document", where, bson_iter_key(&ai));
        return false;
      }
      bson_t d;
      bson_iter_document(&ai, &len, &data);
      if (!bson_init_static(&d, data, len)) return false;
      batch_push(b, &d);
    }
    return true;
  }
  cli_err(c, "%s: a document or an array of documents was expected", where);
  return false;
}

int cmd_insert(cli *c, int argc, char **argv) {
  const char *coll = NULL, *bs = NULL;
  uint64_t bsize = 1000;
  char **docs = calloc((size_t)argc + 1, sizeof *docs);
  size_t ndocs = 0;
  int rc = CLI_EXIT_OK;
  if (!docs) return CLI_EXIT_ERROR;
  for (int i = 0; i < argc; i++) {
    int r = opt_value(c, argc, argv, &i, "--batch", &bs);
    if (r < 0) { rc = CLI_EXIT_USAGE; goto out; }
    if (r) {
      if (!parse_count_opt(c, "--batch", bs, &bsize) || bsize == 0) { rc = CLI_EXIT_USAGE; goto out; }
      continue;
    }
    if (argv[i][0] == '-' && argv[i][1] == '-') {
      rc = usage(c, "insert", "unknown option");
      goto out;
    }
    if (!coll) coll = argv[i];
    else docs[ndocs++] = argv[i];
  }
  if (!coll) {
    rc = usage(c, "insert", "insert COLLECTION [JSON...] (or NDJSON on stdin)");
    goto out;
  }
  batch b = {0};
  /* Arguments are all parsed before anything is written: a typo inserts nothing. */
  for (size_t i = 0; i < ndocs; i++) {
    bson_t w;
    char where[64];
    snprintf(where, sizeof where, "argument %zu", i + 1);
    if (!parse_wrapped(c, where, docs[i], &w)) { rc = CLI_EXIT_USAGE; break; }
    bool ok = batch_add_value(c, &b, &w, where);
    bson_destroy(&w);
    if (!ok) { rc = CLI_EXIT_USAGE; break; }
  }
  if (rc == CLI_EXIT_OK && ndocs == 0 && isatty(STDIN_FILENO)) {
    rc = usage(c, "insert", "give documents as arguments or NDJSON on stdin");
  }
  if (rc == CLI_EXIT_OK) rc = cli_open(c, true);
  if (rc == CLI_EXIT_OK && ndocs) {
    rc = batch_flush(c, &b, coll, "argument");
  } else if (rc == CLI_EXIT_OK) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    uint64_t lineno = 0;
    cli_install_sigint();
    while ((len = getline(&line, &cap, stdin)) >= 0) {
      lineno++;
      if (cli_interrupted) { rc = CLI_EXIT_INTERRUPT; break; }
      const char *p = line;
      rx_skip(&p);
      if (!*p) continue;
      bson_t w;
      char where[64];
      snprintf(where, sizeof where, "stdin line %llu", (unsigned long long)lineno);
      if (!parse_wrapped(c, where, line, &w)) { rc = CLI_EXIT_USAGE; break; }
      bool ok = batch_add_value(c, &b, &w, where);
      bson_destroy(&w);
      if (!ok) { rc = CLI_EXIT_USAGE; break; }
      if (b.n >= bsize && (rc = batch_flush(c, &b, coll, "stdin")) != CLI_EXIT_OK) break;
    }
    free(line);
    if (rc == CLI_EXIT_OK) rc = batch_flush(c, &b, coll, "stdin");
    else if (b.total) cli_err(c, "%llu document(s) were inserted before the error", (unsigned long long)b.total);
  }
  batch_clear(&b);
  free(b.docs);
  free(b.in);
  if (rc == CLI_EXIT_OK)
    cli_note(c, "inserted %llu document%s into %s", (unsigned long long)b.total, b.total == 1 ? "" : "s", coll);
out:
  free(docs);
  return rc;
}

/* ---- find / count ---- */

typedef struct query_args {
  const char *coll;
  const char *filter, *project, *sort, *output, *fields;
  uint64_t limit, skip;
  bool upsert, confirm;
  const char *update;
} query_args;

/* Parses the options shared by find, count, update and delete. `allowed` lists the options. */
static int parse_query(cli *c, const char *cmd, int argc, char **argv, query_args *q, const char *allowed) {
  memset(q, 0, sizeof *q);
  for (int i = 0; i < argc; i++) {
    const char *v;
    int r;
    struct { const char *name; const char **dst; } vals[] = {
        {"--filter", &q->filter}, {"--project", &q->project}, {"--sort", &q->sort},
        {"--output", &q->output}, {"--fields", &q->fields},   {"--update", &q->update}};
    bool done = false;
    for (size_t k = 0; k < sizeof vals / sizeof *vals && !done; k++) {
      if (!strstr(allowed, vals[k].name)) continue;
      r = opt_value(c, argc, argv, &i, vals[k].name, vals[k].dst);
      if (r < 0) return CLI_EXIT_USAGE;
      done = r > 0;
    }
    if (done) continue;
    if (strstr(allowed, "--limit") && (r = opt_value(c, argc, argv, &i, "--limit", &v)) != 0) {
      if (r < 0 || !parse_count_opt(c, "--limit", v, &q->limit)) return CLI_EXIT_USAGE;
      continue;
    }
    if (strstr(allowed, "--skip") && (r = opt_value(c, argc, argv, &i, "--skip", &v)) != 0) {
      if (r < 0 || !parse_count_opt(c, "--skip", v, &q->skip)) return CLI_EXIT_USAGE;
      continue;
    }
    if (strstr(allowed, "--upsert") && !strcmp(argv[i], "--upsert")) { q->upsert = true; continue; }
    if (strstr(allowed, "--confirm") && !strcmp(argv[i], "--confirm")) { q->confirm = true; continue; }
    if (argv[i][0] == '-' && argv[i][1] == '-') {
      cli_err(c, "%s: unknown option %s (see nexuslite %s --help)", cmd, argv[i], cmd);
      return CLI_EXIT_USAGE;
    }
    if (!q->coll) q->coll = argv[i];
    else if (!q->filter) q->filter = argv[i]; /* the filter may also be the second argument */
    else {
      cli_err(c, "%s: unexpected argument '%s'", cmd, argv[i]);
      return CLI_EXIT_USAGE;
    }
  }
  if (!q->coll) {
    cli_err(c, "%s: a COLLECTION is needed (see nexuslite %s --help)", cmd, cmd);
    return CLI_EXIT_USAGE;
  }
  return CLI_EXIT_OK;
}

int cmd_find(cli *c, int argc, char **argv) {
  query_args q;
  int rc = parse_query(c, "find", argc, argv, &q, "--filter --project --sort --output --fields --limit --skip");
  if (rc != CLI_EXIT_OK) return rc;
  out_style style = c->tty_out ? OUT_TABLE : OUT_NDJSON;
  if (q.output) {
    if (!strcmp(q.output, "ndjson")) style = OUT_NDJSON;
    else if (!strcmp(q.output, "json")) style = OUT_JSON;
    else if (!strcmp(q.output, "csv")) style = OUT_CSV;
    else if (!strcmp(q.output, "table")) style = OUT_TABLE;
    else if (!strcmp(q.output, "shell")) style = OUT_SHELL;
    else return usage(c, "find", "--output is ndjson, json, csv, table or shell");
  }
  if (style == OUT_NDJSON && c->pretty) style = OUT_JSON;
  bson_t filter, proj, sort;
  bool hf = false, hp = false, hs = false;
  if (q.filter && !(hf = parse_doc(c, "--filter", q.filter, &filter))) return CLI_EXIT_USAGE;
  if (q.project && !(hp = parse_spec(c, "--project", q.project, false, &proj))) rc = CLI_EXIT_USAGE;
  if (rc == CLI_EXIT_OK && q.sort && !(hs = parse_spec(c, "--sort", q.sort, true, &sort))) rc = CLI_EXIT_USAGE;
  if (rc == CLI_EXIT_OK) rc = cli_open(c, false);
  if (rc == CLI_EXIT_OK) rc = need_collection(c, q.coll);
  if (rc == CLI_EXIT_OK) {
    nx_find_opts fo = NX_FIND_OPTS_INIT;
    if (hp) fo.projection = nx_bson(&proj);
    if (hs) fo.sort = nx_bson(&sort);
    fo.limit = q.limit;
    fo.skip = q.skip;
    nx_cursor *cur = NULL;
    int st = nx_find(c->db, NULL, q.coll, hf ? nx_bson(&filter) : nx_none(), &fo, &cur);
    if (st != NX_OK) {
      rc = cli_fail(c, st, "find");
    } else {
      const char *fields = q.fields;
      if (!fields && hp && q.project[0] != '{' && q.project[0] != '-') fields = q.project;
      out_rows *rows = rows_new(style, &c->oo, stdout, (style == OUT_CSV || style == OUT_TABLE) ? fields : NULL);
      const bson_t *doc;
      cli_install_sigint();
      while ((st = nx_cursor_next(cur, &doc)) == NX_ROW) {
        rows_add(rows, doc);
        cli_cursor_step();
        if (cli_interrupted) break;
      }
      rows_finish(rows);
      if (cli_interrupted) {
        cli_err(c, "find: interrupted");
        rc = CLI_EXIT_INTERRUPT;
      } else if (st != NX_DONE) {
        rc = cli_fail(c, st, "find");
      }
      nx_cursor_close(cur);
    }
  }
  if (hf) bson_destroy(&filter);
  if (hp) bson_destroy(&proj);
  if (hs) bson_destroy(&sort);
  return rc;
}

int cmd_count(cli *c, int argc, char **argv) {
  query_args q;
  int rc = parse_query(c, "count", argc, argv, &q, "--filter");
  if (rc != CLI_EXIT_OK) return rc;
  bson_t filter;
  bool hf = false;
  if (q.filter && !(hf = parse_doc(c, "--filter", q.filter, &filter))) return CLI_EXIT_USAGE;
  if ((rc = cli_open(c, false)) == CLI_EXIT_OK && (rc = need_collection(c, q.coll)) == CLI_EXIT_OK) {
    uint64_t n = 0;
    int st = nx_count(c->db, NULL, q.coll, hf ? nx_bson(&filter) : nx_none(), &n);
    if (st != NX_OK) rc = cli_fail(c, st, "count");
    else printf("%llu\n", (unsigned long long)n);
  }
  if (hf) bson_destroy(&filter);
  return rc;
}

/* ---- update / delete ---- */

static int do_update(cli *c, const char *cmd, int argc, char **argv, bool one) {
  query_args q;
  int rc = parse_query(c, cmd, argc, argv, &q, "--filter --update --upsert");
  if (rc != CLI_EXIT_OK) return rc;
  if (!q.update) return usage(c, cmd, "--update is required");
  bson_t filter, upd;
  bool hf = false;
  if (q.filter && !(hf = parse_doc(c, "--filter", q.filter, &filter))) return CLI_EXIT_USAGE;
  if (!parse_doc(c, "--update", q.update, &upd)) {
    if (hf) bson_destroy(&filter);
    return CLI_EXIT_USAGE;
  }
  rc = cli_open(c, q.upsert);
  if (rc == CLI_EXIT_OK && !q.upsert) rc = need_collection(c, q.coll);
  if (rc == CLI_EXIT_OK) {
    nx_update_result r;
    memset(&r, 0, sizeof r);
    unsigned flags = q.upsert ? NX_UPSERT : 0;
    nx_in f = hf ? nx_bson(&filter) : nx_none();
    int st = one ? nx_update_one(c->db, NULL, q.coll, f, nx_bson(&upd), flags, &r)
                 : nx_update_many(c->db, NULL, q.coll, f, nx_bson(&upd), flags, &r);
    if (st != NX_OK) {
      rc = cli_fail(c, st, cmd);
    } else {
      bson_t out = BSON_INITIALIZER;
      BSON_APPEND_INT64(&out, "matched", (int64_t)r.matched);
      BSON_APPEND_INT64(&out, "modified", (int64_t)r.modified);
      if (r.upserted) {
        BSON_APPEND_VALUE(&out, "upsertedId", &r.upserted_id);
        bson_value_destroy(&r.upserted_id);
      }
      emit(c, &out);
      bson_destroy(&out);
    }
  }
  if (hf) bson_destroy(&filter);
  bson_destroy(&upd);
  return rc;
}

int cmd_update(cli *c, int argc, char **argv) { return do_update(c, "update", argc, argv, false); }
int cmd_update_one(cli *c, int argc, char **argv) { return do_update(c, "update-one", argc, argv, true); }

static int do_delete(cli *c, const char *cmd, int argc, char **argv, bool one) {
  query_args q;
  int rc = parse_query(c, cmd, argc, argv, &q, "--filter --confirm");
  if (rc != CLI_EXIT_OK) return rc;
  bson_t filter;
  bool hf = false;
  if (q.filter && !(hf = parse_doc(c, "--filter", q.filter, &filter))) return CLI_EXIT_USAGE;
  if ((!hf || bson_count_keys(&filter) == 0) && !q.confirm) {
    if (hf) bson_destroy(&filter);
    cli_err(c, "%s: without a filter this deletes %s; add --confirm to do so", cmd,
            one ? "the first document" : "every document in the collection");
    return CLI_EXIT_USAGE;
  }
  if ((rc = cli_open(c, false)) == CLI_EXIT_OK && (rc = need_collection(c, q.coll)) == CLI_EXIT_OK) {
    uint64_t n = 0;
    nx_in f = hf ? nx_bson(&filter) : nx_none();
    int st = one ? nx_delete_one(c->db, NULL, q.coll, f, &n) : nx_delete_many(c->db, NULL, q.coll, f, &n);
    if (st != NX_OK) {
      rc = cli_fail(c, st, cmd);
    } else {
      bson_t out = BSON_INITIALIZER;
      BSON_APPEND_INT64(&out, "deleted", (int64_t)n);
      emit(c, &out);
      bson_destroy(&out);
    }
  }
  if (hf) bson_destroy(&filter);
  return rc;
}

int cmd_delete(cli *c, int argc, char **argv) { return do_delete(c, "delete", argc, argv, false); }
int cmd_delete_one(cli *c, int argc, char **argv) { return do_delete(c, "delete-one", argc, argv, true); }

/* ---- index ---- */

static void print_index_table(cli *c, const bson_t *list) {
  bson_iter_t it, arr;
  out_rows *rows = rows_new(c->tty_out ? OUT_TABLE : OUT_NDJSON, &c->oo, stdout,
                            c->tty_out ? "name,key,unique,sparse,entries" : NULL);
  if (bson_iter_init_find(&it, list, "indexes") && BSON_ITER_HOLDS_ARRAY(&it) &&
      bson_iter_recurse(&it, &arr)) {
    while (bson_iter_next(&arr)) {
      if (!BSON_ITER_HOLDS_DOCUMENT(&arr)) continue;
      uint32_t len;
      const uint8_t *data;
      bson_t d;
      bson_iter_document(&arr, &len, &data);
      if (bson_init_static(&d, data, len)) rows_add(rows, &d);
    }
  }
  rows_finish(rows);
}

int cmd_index(cli *c, int argc, char **argv) {
  if (argc < 1) return usage(c, "index", "index create|drop|list|explain COLLECTION ...");
  const char *sub = argv[0];
  int rc;
  if (!strcmp(sub, "create")) {
    const char *coll = NULL, *keys = NULL, *name = NULL, *partial = NULL;
    bool unique = false, sparse = false;
    for (int i = 1; i < argc; i++) {
      int r;
      if ((r = opt_value(c, argc, argv, &i, "--name", &name)) != 0) {
        if (r < 0) return CLI_EXIT_USAGE;
        continue;
      }
      if ((r = opt_value(c, argc, argv, &i, "--partial", &partial)) != 0) {
        if (r < 0) return CLI_EXIT_USAGE;
        continue;
      }
      if (!strcmp(argv[i], "--unique")) unique = true;
      else if (!strcmp(argv[i], "--sparse")) sparse = true;
      else if (argv[i][0] == '-' && argv[i][1] == '-') return usage(c, "index", "unknown option");
      else if (!coll) coll = argv[i];
      else if (!keys) keys = argv[i];
      else return usage(c, "index", "create COLLECTION KEYS [--name N] [--unique] [--sparse] [--partial F]");
    }
    if (!coll || !keys) return usage(c, "index", "create COLLECTION KEYS (e.g. 'age' or '-age,name' or '{age: 1}')");
    bson_t k, pf;
    bool hp = false;
    if (!parse_spec(c, "KEYS", keys, true, &k)) return CLI_EXIT_USAGE;
    if (partial && !(hp = parse_doc(c, "--partial", partial, &pf))) {
      bson_destroy(&k);
      return CLI_EXIT_USAGE;
    }
    rc = cli_open(c, false);
    if (rc == CLI_EXIT_OK) rc = need_collection(c, coll);
    if (rc == CLI_EXIT_OK) {
      nx_index_opts o = NX_INDEX_OPTS_INIT;
      o.name = name;
      o.unique = unique;
      o.sparse = sparse;
      if (hp) o.partial_filter = nx_bson(&pf);
      int st = nx_index_create(c->db, coll, nx_bson(&k), &o);
      if (st != NX_OK) rc = cli_fail(c, st, "creating index");
      else cli_note(c, "created index on %s", coll);
    }
    bson_destroy(&k);
    if (hp) bson_destroy(&pf);
    return rc;
  }
  if (!strcmp(sub, "drop")) {
    if (argc != 3) return usage(c, "index", "drop COLLECTION NAME");
    if ((rc = cli_open(c, false)) != CLI_EXIT_OK || (rc = need_collection(c, argv[1])) != CLI_EXIT_OK) return rc;
    int st = nx_index_drop(c->db, argv[1], argv[2]);
    if (st != NX_OK) return cli_fail(c, st, "dropping index");
    cli_note(c, "dropped index %s on %s", argv[2], argv[1]);
    return CLI_EXIT_OK;
  }
  if (!strcmp(sub, "list")) {
    if (argc != 2) return usage(c, "index", "list COLLECTION");
    if ((rc = cli_open(c, false)) != CLI_EXIT_OK || (rc = need_collection(c, argv[1])) != CLI_EXIT_OK) return rc;
    bson_t l;
    int st = nx_index_list(c->db, argv[1], &l);
    if (st != NX_OK) return cli_fail(c, st, "listing indexes");
    print_index_table(c, &l);
    bson_destroy(&l);
    return CLI_EXIT_OK;
  }
  if (!strcmp(sub, "explain")) {
    query_args q;
    rc = parse_query(c, "index explain", argc - 1, argv + 1, &q, "--filter --project --sort --limit --skip");
    if (rc != CLI_EXIT_OK) return rc;
    bson_t filter, proj, sort;
    bool hf = false, hp = false, hs = false;
    if (q.filter && !(hf = parse_doc(c, "--filter", q.filter, &filter))) return CLI_EXIT_USAGE;
    if (q.project && !(hp = parse_spec(c, "--project", q.project, false, &proj))) rc = CLI_EXIT_USAGE;
    if (rc == CLI_EXIT_OK && q.sort && !(hs = parse_spec(c, "--sort", q.sort, true, &sort))) rc = CLI_EXIT_USAGE;
    if (rc == CLI_EXIT_OK) rc = cli_open(c, false);
    if (rc == CLI_EXIT_OK) rc = need_collection(c, q.coll);
    if (rc == CLI_EXIT_OK) {
      nx_find_opts fo = NX_FIND_OPTS_INIT;
      if (hp) fo.projection = nx_bson(&proj);
      if (hs) fo.sort = nx_bson(&sort);
      fo.limit = q.limit;
      fo.skip = q.skip;
      bson_t e;
      int st = nx_explain(c->db, NULL, q.coll, hf ? nx_bson(&filter) : nx_none(), &fo, &e);
      if (st != NX_OK) {
        rc = cli_fail(c, st, "explain");
      } else {
        sbuf b;
        sb_init(&b);
        out_opts o = c->oo;
        o.pretty = true;
        if (c->tty_out) out_shell(&b, &e, &o, 0);
        else out_json(&b, &e, &c->oo, 0);
        printf("%s\n", sb_str(&b));
        sb_free(&b);
        bson_destroy(&e);
      }
    }
    if (hf) bson_destroy(&filter);
    if (hp) bson_destroy(&proj);
    if (hs) bson_destroy(&sort);
    return rc;
  }
  cli_err(c, "index: unknown subcommand '%s' (create, drop, list, explain)", sub);
  return CLI_EXIT_USAGE;
}

/* ---- kv ---- */

static char *read_all(FILE *f) {
  sbuf b;
  sb_init(&b);
  char tmp[4096];
  size_t n;
  while ((n = fread(tmp, 1, sizeof tmp, f)) > 0) sb_addn(&b, tmp, n);
  if (!b.p) sb_adds(&b, "");
  return b.p;
}

int cmd_kv(cli *c, int argc, char **argv) {
  if (argc < 1) return usage(c, "kv", "kv set|get|has|delete|keys|clear ...");
  const char *sub = argv[0];
  int rc, st;
  if (!strcmp(sub, "set")) {
    bool as_string = false;
    const char *key = NULL, *val = NULL;
    for (int i = 1; i < argc; i++) {
      if (!strcmp(argv[i], "--string")) as_string = true;
      else if (!key) key = argv[i];
      else if (!val) val = argv[i];
      else return usage(c, "kv", "set KEY VALUE");
    }
    if (!key || !val) return usage(c, "kv", "set KEY VALUE (VALUE is JSON; '-' reads it from stdin)");
    char *owned = NULL;
    if (!strcmp(val, "-")) val = owned = read_all(stdin);
    sbuf ej;
    sb_init(&ej);
    char err[300];
    if (as_string) {
      sb_json_str(&ej, val, strlen(val));
    } else if (!rx_convert(val, &ej, err, sizeof err)) {
      cli_err(c, "kv set: VALUE is not JSON (%s); quote strings, e.g. '\"hello\"', or use --string", err);
      sb_free(&ej);
      free(owned);
      return CLI_EXIT_USAGE;
    }
    free(owned);
    if ((rc = cli_open(c, true)) == CLI_EXIT_OK) {
      st = nx_kv_set(c->db, NULL, key, sb_str(&ej));
      if (st != NX_OK) rc = cli_fail(c, st, "kv set");
    }
    sb_free(&ej);
    return rc;
  }
  if (!strcmp(sub, "get") || !strcmp(sub, "has") || !strcmp(sub, "delete")) {
    if (argc != 2) return usage(c, "kv", "get|has|delete KEY");
    if ((rc = cli_open(c, false)) != CLI_EXIT_OK) return rc;
    if (sub[0] == 'g') {
      char *v = NULL;
      st = nx_kv_get(c->db, NULL, argv[1], &v);
      if (st == NX_NOTFOUND) {
        cli_err(c, "kv get: no key '%s'", argv[1]);
        return CLI_EXIT_NOTFOUND;
      }
      if (st != NX_OK) return cli_fail(c, st, "kv get");
      printf("%s\n", v);
      nx_free(v);
      return CLI_EXIT_OK;
    }
    if (sub[0] == 'h') {
      bool h = false;
      st = nx_kv_has(c->db, NULL, argv[1], &h);
      if (st != NX_OK) return cli_fail(c, st, "kv has");
      printf("%s\n", h ? "true" : "false");
      return h ? CLI_EXIT_OK : CLI_EXIT_NOTFOUND;
    }
    st = nx_kv_delete(c->db, NULL, argv[1]);
    if (st == NX_NOTFOUND) {
      cli_err(c, "kv delete: no key '%s'", argv[1]);
      return CLI_EXIT_NOTFOUND;
    }
    if (st != NX_OK) return cli_fail(c, st, "kv delete");
    return CLI_EXIT_OK;
  }
  if (!strcmp(sub, "keys")) {
    if (argc > 2) return usage(c, "kv", "keys [PREFIX]");
    if ((rc = cli_open(c, false)) != CLI_EXIT_OK) return rc;
    char **keys = NULL;
    size_t n = 0;
    st = nx_kv_keys(c->db, NULL, argc == 2 ? argv[1] : "", &keys, &n);
    if (st != NX_OK) return cli_fail(c, st, "kv keys");
    for (size_t i = 0; i < n; i++) printf("%s\n", keys[i]);
    nx_free_strv(keys, n);
    return CLI_EXIT_OK;
  }
  if (!strcmp(sub, "clear")) {
    if (argc != 2 || strcmp(argv[1], "--confirm") != 0) {
      cli_err(c, "kv clear: this deletes every key; add --confirm to do so");
      return CLI_EXIT_USAGE;
    }
    if ((rc = cli_open(c, false)) != CLI_EXIT_OK) return rc;
    st = nx_kv_clear(c->db, NULL);
    if (st != NX_OK) return cli_fail(c, st, "kv clear");
    return CLI_EXIT_OK;
  }
  cli_err(c, "kv: unknown subcommand '%s' (set, get, has, delete, keys, clear)", sub);
  return CLI_EXIT_USAGE;
}
