/*
 * admin.c: the commands about the database rather than its documents: info, doctor, config,
 * checkpoint, compact, version, import and export.
 *
 * doctor works even when the database cannot be opened: it looks at the files first (present,
 * readable, sizes), then tries to open and reports the lock holder, a newer format or
 * corruption as findings, and ends with the configuration (secrets masked). Its exit code is the
 * worst finding's (cli.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

/* ---- Progress bar (stderr, on a terminal only) ---- */

typedef struct progress {
  cli *c;
  const char *label;
  int last_pct;       /* last percentage drawn */
  uint64_t last_done; /* last count drawn when the total is unknown */
  bool drawn;
} progress;

static int on_progress(void *ctx, uint64_t done, uint64_t total) {
  progress *p = ctx;
  if (cli_interrupted) return 1;
  if (total) {
    int pct = (int)(done * 100 / total);
    if (pct == p->last_pct) return 0;
    p->last_pct = pct;
    char bar[41];
    int fill = pct * 40 / 100;
    for (int i = 0; i < 40; i++) bar[i] = i < fill ? '#' : '.';
    bar[40] = '\0';
    fprintf(stderr, "\r%s [%s] %3d%% %" PRIu64 "/%" PRIu64, p->label, bar, pct, done, total);
  } else {
    if (done - p->last_done < 1000 && done) return 0;
    p->last_done = done;
    fprintf(stderr, "\r%s %" PRIu64 " ...", p->label, done);
  }
  p->drawn = true;
  return 0;
}

static void progress_end(progress *p) {
  if (p->drawn) fputc('\n', stderr);
}

static bool want_progress(cli *c) { return !c->quiet && isatty(STDERR_FILENO); }

/* ---- version ---- */

int cmd_version(cli *c, int argc, char **argv) {
  (void)c;
  (void)argv;
  if (argc > 0 && strcmp(argv[0], "--short") == 0) {
    printf("%s\n", NX_VERSION_STRING);
    return CLI_EXIT_OK;
  }
  printf("nexuslite %s (library %s, file format %d)\n", NX_VERSION_STRING, nx_version(), NX_FORMAT_VERSION);
  return CLI_EXIT_OK;
}

/* ---- checkpoint / compact ---- */

int cmd_checkpoint(cli *c, int argc, char **argv) {
  nx_checkpoint_mode mode = NX_CHECKPOINT_FULL;
  for (int i = 0; i < argc; i++) {
    const char *v;
    int r = opt_value(c, argc, argv, &i, "--mode", &v);
    if (r < 0) return CLI_EXIT_USAGE;
    if (r == 0) {
      cli_err(c, "checkpoint: unexpected argument '%s'", argv[i]);
      return CLI_EXIT_USAGE;
    }
    if (!strcmp(v, "passive")) mode = NX_CHECKPOINT_PASSIVE;
    else if (!strcmp(v, "full")) mode = NX_CHECKPOINT_FULL;
    else if (!strcmp(v, "truncate")) mode = NX_CHECKPOINT_TRUNCATE;
    else {
      cli_err(c, "checkpoint: --mode is passive, full or truncate");
      return CLI_EXIT_USAGE;
    }
  }
  int rc = cli_open(c, false);
  if (rc != CLI_EXIT_OK) return rc;
  int st = nx_checkpoint(c->db, mode);
  if (st != NX_OK) return cli_fail(c, st, "checkpoint");
  cli_note(c, "checkpoint done");
  return CLI_EXIT_OK;
}

static off_t file_size(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0 ? sb.st_size : -1;
}

int cmd_compact(cli *c, int argc, char **argv) {
  (void)argv;
  if (argc) {
    cli_err(c, "compact: takes no arguments");
    return CLI_EXIT_USAGE;
  }
  int rc = cli_open(c, false);
  if (rc != CLI_EXIT_OK) return rc;
  off_t before = file_size(c->db_path);
  progress p = {c, "compacting", -1, 0, false};
  cli_install_sigint();
  int st = nx_compact(c->db, want_progress(c) ? on_progress : NULL, &p);
  progress_end(&p);
  if (st != NX_OK) return cli_fail(c, st, "compact");
  off_t after = file_size(c->db_path);
  cli_note(c, "compacted %s: %lld -> %lld bytes", c->db_path, (long long)before, (long long)after);
  return CLI_EXIT_OK;
}

/* ---- info ---- */

static void kv_line(const char *k, const char *fmt, ...) CLI_PRINTF(2, 3);
static void kv_line(const char *k, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("%-13s ", k);
  vprintf(fmt, ap);
  putchar('\n');
  va_end(ap);
}

int cmd_info(cli *c, int argc, char **argv) {
  (void)argv;
  if (argc) {
    cli_err(c, "info: takes no arguments");
    return CLI_EXIT_USAGE;
  }
  int rc = cli_open(c, false);
  if (rc != CLI_EXIT_OK) return rc;
  nx_stats s;
  memset(&s, 0, sizeof s);
  int st = nx_stats_get(c->db, &s);
  if (st != NX_OK) return cli_fail(c, st, "info");
  char **names = NULL;
  size_t n = 0;
  st = nx_collection_list(c->db, &names, &n);
  if (st != NX_OK) return cli_fail(c, st, "listing collections");
  bson_t info = BSON_INITIALIZER, colls;
  BSON_APPEND_UTF8(&info, "db", c->db_path);
  BSON_APPEND_INT64(&info, "fileBytes", (int64_t)file_size(c->db_path));
  BSON_APPEND_INT32(&info, "pageSize", (int32_t)s.page_size);
  BSON_APPEND_INT64(&info, "pagesTotal", (int64_t)s.pages_total);
  BSON_APPEND_INT64(&info, "pagesFree", (int64_t)s.pages_free);
  BSON_APPEND_INT64(&info, "logBytes", (int64_t)s.log_bytes);
  BSON_APPEND_INT64(&info, "cacheHits", (int64_t)s.cache_hits);
  BSON_APPEND_INT64(&info, "cacheMisses", (int64_t)s.cache_misses);
  BSON_APPEND_INT64(&info, "commits", (int64_t)s.commits);
  BSON_APPEND_INT64(&info, "checkpoints", (int64_t)s.checkpoints);
  BSON_APPEND_INT64(&info, "checkpointsBackground", (int64_t)s.checkpoints_background);
  BSON_APPEND_INT64(&info, "txnId", (int64_t)s.txn_id);
  BSON_APPEND_ARRAY_BEGIN(&info, "collections", &colls);
  bson_t *cst = bsonx_array(n);
  for (size_t i = 0; i < n; i++) {
    char key[24];
    snprintf(key, sizeof key, "%zu", i);
    if (nx_collection_stats(c->db, names[i], &cst[i]) != NX_OK) {
      bson_init(&cst[i]);
      BSON_APPEND_UTF8(&cst[i], "name", names[i]);
    }
    BSON_APPEND_DOCUMENT(&colls, key, &cst[i]);
  }
  bson_append_array_end(&info, &colls);
  if (!c->tty_out) {
    sbuf b;
    sb_init(&b);
    out_json(&b, &info, &c->oo, 0);
    printf("%s\n", sb_str(&b));
    sb_free(&b);
  } else {
    kv_line("database", "%s (%lld bytes)", c->db_path, (long long)file_size(c->db_path));
    kv_line("pages", "%" PRIu64 " of %u bytes, %" PRIu64 " free", s.pages_total, s.page_size, s.pages_free);
    kv_line("log", "%" PRIu64 " bytes in the current generation", s.log_bytes);
    uint64_t acc = s.cache_hits + s.cache_misses;
    kv_line("page cache", "%" PRIu64 " hits, %" PRIu64 " misses (%.1f%% hits)", s.cache_hits, s.cache_misses,
            acc ? 100.0 * (double)s.cache_hits / (double)acc : 0.0);
    kv_line("commits", "%" PRIu64 " since open; last txn %" PRIu64 "; %" PRIu64 " checkpoints (%" PRIu64
            " by the checkpoint thread)", s.commits, s.txn_id, s.checkpoints, s.checkpoints_background);
    kv_line("collections", "%zu", n);
    if (n) {
      putchar('\n');
      out_rows *rows = rows_new(OUT_TABLE, &c->oo, stdout, "name,count,size,avgObjSize,storageSize,nindexes");
      for (size_t i = 0; i < n; i++) rows_add(rows, &cst[i]);
      rows_finish(rows);
    }
  }
  for (size_t i = 0; i < n; i++) bson_destroy(&cst[i]);
  free(cst);
  bson_destroy(&info);
  nx_free_strv(names, n);
  return CLI_EXIT_OK;
}

/* ---- config ---- */

static const char *source_label(const char *src, char *buf, size_t cap) {
  if (!strncmp(src, "NEXUSLITE_", 10)) snprintf(buf, cap, "environment %s", src);
  else snprintf(buf, cap, "%s", src);
  return buf;
}

static void print_config(cli *c, const char *indent) {
  for (int i = 0; i < CFG_COUNT; i++) {
    sbuf v;
    sb_init(&v);
    cfg_show(&c->cfg, i, &v);
    char lab[600];
    printf("%s%-17s %-28s %s\n", indent, cfg_key_name(i), sb_str(&v),
           source_label(c->cfg.e[i].source, lab, sizeof lab));
    sb_free(&v);
  }
}

int cmd_config(cli *c, int argc, char **argv) {
  (void)argv;
  if (argc) {
    cli_err(c, "config: takes no arguments (it shows the effective configuration)");
    return CLI_EXIT_USAGE;
  }
  printf("config file   %s\n", c->cfg.file ? c->cfg.file : "(none)");
  print_config(c, "");
  return CLI_EXIT_OK;
}

/* ---- doctor ---- */

typedef struct finding {
  cli *c;
  int worst; /* exit code of the worst finding */
} finding;

static void report(finding *f, const char *level, int code, const char *fmt, ...) CLI_PRINTF(4, 5);
static void report(finding *f, const char *level, int code, const char *fmt, ...) {
  const out_opts *o = &f->c->oo;
  const char *col = !strcmp(level, "ok") ? "\033[32m" : !strcmp(level, "warn") ? "\033[33m" : "\033[31m";
  printf("[%s%-4s%s] ", o->color ? col : "", level, col_off(o));
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  putchar('\n');
  if (code > f->worst) f->worst = code;
}

static void check_file(finding *f, const char *path, const char *what, bool required) {
  struct stat sb;
  if (stat(path, &sb) != 0) {
    if (required) report(f, "fail", CLI_EXIT_NOTFOUND, "%s %s: missing (%s)", what, path, strerror(errno));
    else report(f, "ok", 0, "%s %s: not present (created on demand)", what, path);
    return;
  }
  if (!S_ISREG(sb.st_mode)) {
    report(f, "fail", CLI_EXIT_ERROR, "%s %s: not a regular file", what, path);
    return;
  }
  int fd = open(path, O_RDONLY);
  if (fd < 0) {
    report(f, "fail", CLI_EXIT_ERROR, "%s %s: not readable (%s)", what, path, strerror(errno));
    return;
  }
  close(fd);
  bool writable = access(path, W_OK) == 0;
  report(f, writable ? "ok" : "warn", 0, "%s %s: %lld bytes, readable%s", what, path, (long long)sb.st_size,
         writable ? " and writable" : ", NOT writable");
}

/* Reads the documented header of meta page `which` (docs/format.md: magic "NEXUSLT\0" at 24,
 * format version at 32, page size at 36, little-endian). Returns false when unreadable. */
static bool read_meta(const char *path, uint64_t at, char magic[8], uint32_t *version, uint32_t *page_size) {
  uint8_t h[40];
  int fd = open(path, O_RDONLY);
  if (fd < 0) return false;
  ssize_t n = pread(fd, h, sizeof h, (off_t)at);
  close(fd);
  if (n != (ssize_t)sizeof h) return false;
  memcpy(magic, h + 24, 8);
  *version = (uint32_t)h[32] | (uint32_t)h[33] << 8 | (uint32_t)h[34] << 16 | (uint32_t)h[35] << 24;
  *page_size = (uint32_t)h[36] | (uint32_t)h[37] << 8 | (uint32_t)h[38] << 16 | (uint32_t)h[39] << 24;
  return true;
}

static void check_format(finding *f, const char *path) {
  char magic[8];
  uint32_t v0 = 0, ps = 0, v1 = 0, ps1 = 0;
  if (!read_meta(path, 0, magic, &v0, &ps)) {
    report(f, "fail", CLI_EXIT_CORRUPT, "format: %s is too short to hold a meta page", path);
    return;
  }
  if (memcmp(magic, "NEXUSLT", 8) != 0) {
    report(f, "fail", CLI_EXIT_CORRUPT, "format: %s is not a NexusLite database (no NEXUSLT magic in meta page 0)", path);
    return;
  }
  bool second = ps >= 4096 && ps <= 65536 && (ps & (ps - 1)) == 0 && read_meta(path, ps, magic, &v1, &ps1) &&
                memcmp(magic, "NEXUSLT", 8) == 0;
  uint32_t v = second && v1 > v0 ? v1 : v0;
  if (v > NX_FORMAT_VERSION)
    report(f, "fail", CLI_EXIT_CORRUPT, "format: version %u, newer than this build reads (%d): upgrade nexuslite", v,
           NX_FORMAT_VERSION);
  else
    report(f, "ok", 0, "format: version %u (this build reads %d), page size %u%s", v, NX_FORMAT_VERSION, ps,
           second ? "" : "; meta page 1 not yet written or unreadable");
}

int cmd_doctor(cli *c, int argc, char **argv) {
  (void)argv;
  if (argc) {
    cli_err(c, "doctor: takes no arguments");
    return CLI_EXIT_USAGE;
  }
  finding f = {c, 0};
  char path[2048];
  printf("nexuslite %s doctor: %s\n", nx_version(), c->db_path);
  check_file(&f, c->db_path, "database", true);
  snprintf(path, sizeof path, "%s.wasp", c->db_path);
  check_file(&f, path, "log", false);
  snprintf(path, sizeof path, "%s.lock", c->db_path);
  check_file(&f, path, "lock file", false);
  if (access(c->db_path, F_OK) == 0) {
    check_format(&f, c->db_path);
    nx_open_opts o = NX_OPEN_OPTS_INIT;
    o.create_if_missing = false;
    o.durability = c->durability;
    nx_db *db = NULL;
    int st = nx_open(c->db_path, &o, &db);
    if (st == NX_OK) {
      report(&f, "ok", 0, "lock: free (this process could take it)");
      nx_stats s;
      memset(&s, 0, sizeof s);
      if (nx_stats_get(db, &s) == NX_OK) {
        report(&f, "ok", 0, "pages: %" PRIu64 " of %u bytes, %" PRIu64 " free; last txn %" PRIu64, s.pages_total,
               s.page_size, s.pages_free, s.txn_id);
        report(&f, s.log_bytes > (64u << 20) ? "warn" : "ok", 0, "log: %" PRIu64 " bytes after recovery%s",
               s.log_bytes, s.log_bytes > (64u << 20) ? " (large: run nexuslite checkpoint)" : "");
      }
      nx_close(db);
    } else {
      const char *msg = nx_errmsg(NULL);
      if (!msg || !*msg) msg = nx_strerror(st);
      if (st == NX_LOCKED || st == NX_BUSY)
        report(&f, "warn", CLI_EXIT_LOCKED, "lock: held by another process: %s", msg);
      else if (st == NX_VERSION)
        report(&f, "fail", CLI_EXIT_CORRUPT, "format: not readable by this build (format %d): %s", NX_FORMAT_VERSION, msg);
      else if (st == NX_CORRUPT || st == NX_CRYPTO)
        report(&f, "fail", CLI_EXIT_CORRUPT, "open: %s (%s)", msg, nx_code_name(st));
      else
        report(&f, "fail", cli_exit_for(st), "open: %s (%s)", msg, nx_code_name(st));
    }
  }
  const char *key = cfg_get(&c->cfg, CFG_KEY), *kf = cfg_get(&c->cfg, CFG_KEY_FILE);
  if (key) report(&f, "warn", 0, "key: ****** set by %s; encryption is not available in this version, so it is unused",
                  c->cfg.e[CFG_KEY].source);
  if (kf) {
    struct stat sb;
    if (stat(kf, &sb) != 0) report(&f, "fail", CLI_EXIT_ERROR, "key file %s: missing (%s)", kf, strerror(errno));
    else if (sb.st_mode & 077) report(&f, "warn", 0, "key file %s: readable by group or others (chmod 600 it)", kf);
    else report(&f, "ok", 0, "key file %s: present, private", kf);
  }
  if (c->cfg.warn[0]) report(&f, "warn", 0, "config: %s", c->cfg.warn);
  printf("configuration (file: %s):\n", c->cfg.file ? c->cfg.file : "none");
  print_config(c, "  ");
  return f.worst;
}

/* ---- import / export (semantics owned by the import/export layer, issue 6) ---- */

static bool parse_format(cli *c, const char *v, nx_format *out) {
  if (!strcmp(v, "auto")) *out = NX_FORMAT_AUTO;
  else if (!strcmp(v, "ndjson") || !strcmp(v, "jsonl")) *out = NX_FORMAT_NDJSON;
  else if (!strcmp(v, "json")) *out = NX_FORMAT_JSON;
  else if (!strcmp(v, "csv")) *out = NX_FORMAT_CSV;
  else if (!strcmp(v, "bson")) *out = NX_FORMAT_BSON;
  else {
    cli_err(c, "--format is auto, ndjson, json, csv or bson (not '%s')", v);
    return false;
  }
  return true;
}

int cmd_import(cli *c, int argc, char **argv) {
  nx_import_opts o = NX_IMPORT_OPTS_INIT;
  const char *file = NULL, *coll = NULL, *v;
  for (int i = 0; i < argc; i++) {
    int r;
    if ((r = opt_value(c, argc, argv, &i, "--collection", &coll)) != 0) {
      if (r < 0) return CLI_EXIT_USAGE;
    } else if ((r = opt_value(c, argc, argv, &i, "--format", &v)) != 0) {
      if (r < 0 || !parse_format(c, v, &o.format)) return CLI_EXIT_USAGE;
    } else if ((r = opt_value(c, argc, argv, &i, "--delimiter", &v)) != 0) {
      if (r < 0) return CLI_EXIT_USAGE;
      if (!strcmp(v, "\\t") || !strcmp(v, "tab")) v = "\t";
      if (strlen(v) != 1) {
        cli_err(c, "import: --delimiter is one character");
        return CLI_EXIT_USAGE;
      }
      o.delimiter = v[0];
    } else if ((r = opt_value(c, argc, argv, &i, "--batch", &v)) != 0) {
      uint64_t n;
      if (r < 0 || !parse_u64(v, &n) || n == 0 || n > UINT32_MAX) {
        cli_err(c, "import: --batch is a positive integer");
        return CLI_EXIT_USAGE;
      }
      o.batch_size = (uint32_t)n;
    } else if ((r = opt_value(c, argc, argv, &i, "--ttl-field", &o.ttl_field)) != 0) {
      if (r < 0) return CLI_EXIT_USAGE;
    } else if (!strcmp(argv[i], "--no-header")) {
      o.no_header = true;
    } else if (!strcmp(argv[i], "--no-infer")) {
      o.no_infer = true;
    } else if (!strcmp(argv[i], "--skip-errors")) {
      o.skip_errors = true;
    } else if (argv[i][0] == '-' && argv[i][1] == '-') {
      cli_err(c, "import: unknown option %s (see nexuslite import --help)", argv[i]);
      return CLI_EXIT_USAGE;
    } else if (!file) {
      file = argv[i];
    } else {
      cli_err(c, "import: unexpected argument '%s'", argv[i]);
      return CLI_EXIT_USAGE;
    }
  }
  if (!file || !coll) {
    cli_err(c, "import: FILE and --collection C are required (see nexuslite import --help)");
    return CLI_EXIT_USAGE;
  }
  int rc = cli_open(c, true);
  if (rc != CLI_EXIT_OK) return rc;
  progress p = {c, "importing", -1, 0, false};
  if (want_progress(c)) {
    o.progress = on_progress;
    o.progress_ctx = &p;
  }
  cli_install_sigint();
  nx_import_report r;
  memset(&r, 0, sizeof r);
  int st = nx_import(c->db, file, coll, &o, &r);
  progress_end(&p);
  if (st != NX_OK) return cli_fail(c, st, "import");
  cli_note(c, "imported %" PRIu64 " of %" PRIu64 " records into %s (%" PRIu64 " failed) in %.2f s", r.inserted,
           r.read, coll, r.failed, r.seconds);
  return CLI_EXIT_OK;
}

int cmd_export(cli *c, int argc, char **argv) {
  nx_export_opts o = NX_EXPORT_OPTS_INIT;
  const char *coll = NULL, *file = NULL, *v, *filter = NULL, *sort = NULL, *project = NULL;
  for (int i = 0; i < argc; i++) {
    int r;
    if ((r = opt_value(c, argc, argv, &i, "--format", &v)) != 0) {
      if (r < 0 || !parse_format(c, v, &o.format)) return CLI_EXIT_USAGE;
    } else if ((r = opt_value(c, argc, argv, &i, "--filter", &filter)) != 0 ||
               (r = opt_value(c, argc, argv, &i, "--sort", &sort)) != 0 ||
               (r = opt_value(c, argc, argv, &i, "--project", &project)) != 0 ||
               (r = opt_value(c, argc, argv, &i, "--fields", &o.fields)) != 0 ||
               (r = opt_value(c, argc, argv, &i, "--redact", &o.redact)) != 0) {
      if (r < 0) return CLI_EXIT_USAGE;
    } else if (!strcmp(argv[i], "--redact-drop")) {
      o.redact_drop = true;
    } else if (!strcmp(argv[i], "--force")) {
      o.force = true;
    } else if (!strcmp(argv[i], "--canonical")) {
      o.canonical = true;
    } else if (argv[i][0] == '-' && argv[i][1] == '-') {
      cli_err(c, "export: unknown option %s (see nexuslite export --help)", argv[i]);
      return CLI_EXIT_USAGE;
    } else if (!coll) {
      coll = argv[i];
    } else if (!file) {
      file = argv[i];
    } else {
      cli_err(c, "export: unexpected argument '%s'", argv[i]);
      return CLI_EXIT_USAGE;
    }
  }
  if (!coll || !file) {
    cli_err(c, "export: COLLECTION and FILE are required (see nexuslite export --help)");
    return CLI_EXIT_USAGE;
  }
  sbuf ef, es, ep;
  sb_init(&ef);
  sb_init(&es);
  sb_init(&ep);
  char err[300];
  int rc = CLI_EXIT_OK;
  if (filter && !rx_convert(filter, &ef, err, sizeof err)) {
    cli_err(c, "--filter: %s", err);
    rc = CLI_EXIT_USAGE;
  } else if (sort && !spec_sort(sort, &es, err, sizeof err)) {
    cli_err(c, "--sort: %s", err);
    rc = CLI_EXIT_USAGE;
  } else if (project && !spec_projection(project, &ep, err, sizeof err)) {
    cli_err(c, "--project: %s", err);
    rc = CLI_EXIT_USAGE;
  }
  if (filter) o.filter = nx_json(sb_str(&ef));
  if (sort) o.sort = nx_json(sb_str(&es));
  if (project) o.projection = nx_json(sb_str(&ep));
  if (rc == CLI_EXIT_OK) rc = cli_open(c, false);
  if (rc == CLI_EXIT_OK) {
    bool exists = false;
    int st = nx_collection_exists(c->db, coll, &exists);
    if (st != NX_OK) rc = cli_fail(c, st, coll);
    else if (!exists) {
      cli_err(c, "no collection named '%s' in %s", coll, c->db_path);
      rc = CLI_EXIT_NOTFOUND;
    }
  }
  if (rc == CLI_EXIT_OK) {
    progress p = {c, "exporting", -1, 0, false};
    if (want_progress(c)) {
      o.progress = on_progress;
      o.progress_ctx = &p;
    }
    cli_install_sigint();
    nx_export_report r;
    memset(&r, 0, sizeof r);
    int st = nx_export(c->db, coll, file, &o, &r);
    progress_end(&p);
    if (st != NX_OK) rc = cli_fail(c, st, "export");
    else cli_note(c, "exported %" PRIu64 " documents (%" PRIu64 " bytes) from %s to %s in %.2f s", r.written,
                  r.bytes, coll, file, r.seconds);
  }
  sb_free(&ef);
  sb_free(&es);
  sb_free(&ep);
  return rc;
}
