/*
 * main.c: `nexuslite [global options] COMMAND [args]`.
 *
 * Global options may appear anywhere before a "--" (git accepts them only first; people type
 * them last), are removed from argv, and then the command runs with the rest. Each command
 * returns an exit code (cli.h); main returns it.
 *
 * Invariants: 1. the database is opened lazily by the commands that need it (cli_open) and
 * closed once at exit; 2. every failure leaves exactly one message on stderr.
 */
#include <errno.h>
#include <locale.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

volatile sig_atomic_t cli_interrupted = 0;

static void on_sigint(int sig) {
  if (cli_interrupted) { /* a second Ctrl-C really quits */
    signal(sig, SIG_DFL);
    raise(sig);
    return;
  }
  cli_interrupted = 1;
}

/* Test hook: NEXUSLITE_TEST_SIGINT_AFTER=N raises SIGINT at the N-th cursor step, so that the
 * tests can check cancellation deterministically (a real Ctrl-C races with the query). */
void cli_cursor_step(void) {
  static uint64_t after = UINT64_MAX, steps = 0;
  if (after == UINT64_MAX) {
    const char *v = getenv("NEXUSLITE_TEST_SIGINT_AFTER");
    if (!v || !parse_u64(v, &after) || after == 0) after = 0;
  }
  if (after && ++steps == after) raise(SIGINT);
}

void cli_install_sigint(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0; /* no SA_RESTART: a blocking read returns EINTR */
  sigaction(SIGINT, &sa, NULL);
}

int cli_exit_for(int rc) {
  switch (rc) {
  case NX_OK:
  case NX_DONE: return CLI_EXIT_OK;
  case NX_NOTFOUND: return CLI_EXIT_NOTFOUND;
  case NX_LOCKED:
  case NX_BUSY: return CLI_EXIT_LOCKED;
  case NX_CORRUPT:
  case NX_VERSION:
  case NX_CRYPTO: return CLI_EXIT_CORRUPT;
  case NX_PARSE:
  case NX_INVALID: return CLI_EXIT_USAGE;
  case NX_CANCELLED: return CLI_EXIT_INTERRUPT;
  default: return CLI_EXIT_ERROR;
  }
}

void cli_err(cli *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%snexuslite: ", col_err(&c->eo));
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "%s\n", col_off(&c->eo));
  va_end(ap);
}

void cli_note(cli *c, const char *fmt, ...) {
  if (c->quiet) return;
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

int cli_fail(cli *c, int rc, const char *what) {
  const char *msg = nx_errmsg(c->db);
  if (!msg || !*msg) msg = nx_strerror(rc);
  cli_err(c, "%s: %s (%s)", what, msg, nx_code_name(rc));
  return cli_exit_for(rc);
}

int cli_open(cli *c, bool create) {
  if (c->db) return CLI_EXIT_OK;
  nx_open_opts o = NX_OPEN_OPTS_INIT;
  o.durability = c->durability;
  o.checkpoint_thread = c->checkpoint_thread;
  o.create_if_missing = create;
  uint64_t v;
  if (parse_u64(cfg_get(&c->cfg, CFG_CACHE_MB), &v) && v > 0 && v < (1u << 20)) o.cache_bytes = v << 20;
  if (parse_u64(cfg_get(&c->cfg, CFG_PAGE_SIZE), &v) && v >= 4096 && v <= 65536) o.page_size = (uint32_t)v;
  if (!create && strcmp(c->db_path, ":memory:") != 0 && access(c->db_path, F_OK) != 0) {
    cli_err(c, "database %s does not exist (use --db FILE, or a command that creates it)", c->db_path);
    return CLI_EXIT_NOTFOUND;
  }
  int rc = nx_open(c->db_path, &o, &c->db);
  if (rc != NX_OK) {
    const char *msg = nx_errmsg(NULL);
    cli_err(c, "cannot open %s: %s (%s)", c->db_path, msg && *msg ? msg : nx_strerror(rc),
            nx_code_name(rc));
    c->db = NULL;
    return cli_exit_for(rc);
  }
  return CLI_EXIT_OK;
}

void cli_close(cli *c) {
  if (!c->db) return;
  int rc = nx_close(c->db);
  if (rc != NX_OK) cli_err(c, "closing %s: %s", c->db_path, nx_strerror(rc));
  c->db = NULL;
}

int opt_value(cli *c, int argc, char **argv, int *i, const char *name, const char **val) {
  const char *a = argv[*i];
  size_t n = strlen(name);
  if (strncmp(a, name, n) != 0) return 0;
  if (a[n] == '=') {
    *val = a + n + 1;
    return 1;
  }
  if (a[n] != '\0') return 0;
  if (*i + 1 >= argc) {
    cli_err(c, "option %s needs a value", name);
    return -1;
  }
  *val = argv[++*i];
  return 1;
}

bool help_wanted(int argc, char **argv) {
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "--")) break;
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return true;
  }
  return false;
}

static const struct {
  const char *name;
  cmd_fn fn;
} commands[] = {
    {"shell", cmd_shell},           {"collections", cmd_collections}, {"insert", cmd_insert},
    {"find", cmd_find},             {"count", cmd_count},             {"update", cmd_update},
    {"update-one", cmd_update_one}, {"delete", cmd_delete},           {"delete-one", cmd_delete_one},
    {"index", cmd_index},           {"kv", cmd_kv},                   {"info", cmd_info},
    {"doctor", cmd_doctor},         {"config", cmd_config},           {"checkpoint", cmd_checkpoint},
    {"compact", cmd_compact},       {"version", cmd_version},         {"import", cmd_import},
    {"export", cmd_export},         {"help", cmd_help},
};

/* Removes global options from argv (anywhere before "--"); returns false on a usage error. */
static bool global_options(cli *c, int *argc, char **argv, const char **config_file, char *err,
                           size_t errlen) {
  const char *db = NULL, *dur = NULL, *color = NULL;
  bool pretty = false, quiet = false;
  int out = 1;
  bool rest = false;
  /* --config must be known before the file is read: a first pass finds it. */
  for (int i = 1; i < *argc; i++) {
    if (!strcmp(argv[i], "--")) break;
    if (!strcmp(argv[i], "--config") && i + 1 < *argc) *config_file = argv[i + 1];
    else if (!strncmp(argv[i], "--config=", 9)) *config_file = argv[i] + 9;
  }
  for (int i = 1; i < *argc; i++) {
    char *a = argv[i];
    const char *v = NULL;
    if (rest) {
      argv[out++] = a;
      continue;
    }
    if (!strcmp(a, "--")) {
      rest = true;
      argv[out++] = a;
      continue;
    }
    const char *with_value[] = {"--db", "--durability", "--color", "--config"};
    bool matched = false;
    for (size_t k = 0; k < sizeof with_value / sizeof *with_value && !matched; k++) {
      size_t n = strlen(with_value[k]);
      if (strncmp(a, with_value[k], n) != 0 || (a[n] != '\0' && a[n] != '=')) continue;
      matched = true;
      if (a[n] == '=') v = a + n + 1;
      else if (i + 1 < *argc) v = argv[++i];
      else {
        snprintf(err, errlen, "option %s needs a value", with_value[k]);
        return false;
      }
      if (k == 0) db = v;
      else if (k == 1) dur = v;
      else if (k == 2) color = v;
    }
    if (matched) continue;
    if (!strcmp(a, "--pretty")) pretty = true;
    else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) quiet = true;
    else if (!strcmp(a, "--no-color")) color = "never";
    else argv[out++] = a;
  }
  argv[out] = NULL;
  *argc = out;
  if (db) cfg_set(&c->cfg, CFG_DB, db, "flag");
  if (dur) cfg_set(&c->cfg, CFG_DURABILITY, dur, "flag");
  if (color) cfg_set(&c->cfg, CFG_COLOR, color, "flag");
  if (pretty) cfg_set(&c->cfg, CFG_PRETTY, "true", "flag");
  if (quiet) cfg_set(&c->cfg, CFG_QUIET, "true", "flag");
  return true;
}

static bool apply_config(cli *c, char *err, size_t errlen) {
  c->db_path = cfg_get(&c->cfg, CFG_DB);
  if (!c->db_path || !*c->db_path) {
    snprintf(err, errlen, "the database path is empty");
    return false;
  }
  const char *d = cfg_get(&c->cfg, CFG_DURABILITY);
  if (!strcasecmp(d, "full")) c->durability = NX_DURABILITY_FULL;
  else if (!strcasecmp(d, "normal")) c->durability = NX_DURABILITY_NORMAL;
  else if (!strcasecmp(d, "off")) c->durability = NX_DURABILITY_OFF;
  else {
    snprintf(err, errlen, "durability must be full, normal or off (not '%s')", d);
    return false;
  }
  if (!cfg_bool(cfg_get(&c->cfg, CFG_PRETTY), &c->pretty) ||
      !cfg_bool(cfg_get(&c->cfg, CFG_QUIET), &c->quiet)) {
    snprintf(err, errlen, "pretty and quiet take true or false");
    return false;
  }
  if (!cfg_bool(cfg_get(&c->cfg, CFG_CKPT_THREAD), &c->checkpoint_thread)) {
    snprintf(err, errlen, "checkpoint_thread takes true or false (not '%s')", cfg_get(&c->cfg, CFG_CKPT_THREAD));
    return false;
  }
  const char *col = cfg_get(&c->cfg, CFG_COLOR);
  const char *term = getenv("TERM");
  bool auto_col = getenv("NO_COLOR") == NULL && !(term && !strcmp(term, "dumb"));
  c->tty_out = isatty(STDOUT_FILENO) != 0;
  if (!strcmp(col, "always")) c->oo.color = c->eo.color = true;
  else if (!strcmp(col, "never")) c->oo.color = c->eo.color = false;
  else if (!strcmp(col, "auto")) {
    c->oo.color = auto_col && c->tty_out;
    c->eo.color = auto_col && isatty(STDERR_FILENO);
  } else {
    snprintf(err, errlen, "color must be auto, always or never (not '%s')", col);
    return false;
  }
  c->oo.pretty = c->pretty;
  return true;
}

/* libbson's allocator becomes NexusLite's at the first nx_open (src/base/alloc.c installs its
 * vtable there), so a bson_t made before that and destroyed after would be freed by the wrong
 * allocator. Opening and closing an in-memory database first makes every bson_t of this process
 * use one allocator; it costs well under a millisecond. Called before the first bson_t is made
 * (commands.c, admin.c), so that --help and version never touch the library. */
void cli_settle_allocator(void) {
  static bool done = false;
  if (done) return;
  done = true;
  nx_db *mem = NULL;
  if (nx_open(":memory:", NULL, &mem) == NX_OK) nx_close(mem);
}

int main(int argc, char **argv) {
  cli c;
  memset(&c, 0, sizeof c);
  char err[512];
  const char *config_file = NULL;
  /* First pass only to learn --config; the real parse overrides the loaded values. */
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--")) break;
    if (!strcmp(argv[i], "--config") && i + 1 < argc) config_file = argv[i + 1];
    else if (!strncmp(argv[i], "--config=", 9)) config_file = argv[i] + 9;
  }
  if (!cfg_load(&c.cfg, config_file, err, sizeof err)) {
    fprintf(stderr, "nexuslite: %s\n", err);
    cfg_free(&c.cfg);
    return CLI_EXIT_USAGE;
  }
  if (!global_options(&c, &argc, argv, &config_file, err, sizeof err) ||
      !apply_config(&c, err, sizeof err)) {
    fprintf(stderr, "nexuslite: %s\n", err);
    cfg_free(&c.cfg);
    return CLI_EXIT_USAGE;
  }
  if (c.cfg.warn[0]) cli_note(&c, "nexuslite: warning: %s", c.cfg.warn);

  int rc;
  if (argc < 2) {
    if (isatty(STDIN_FILENO)) {
      char *none[] = {NULL};
      rc = cmd_shell(&c, 0, none);
    } else {
      help_print(stderr, NULL);
      rc = CLI_EXIT_USAGE;
    }
  } else if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    help_print(stdout, NULL);
    rc = CLI_EXIT_OK;
  } else if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
    rc = cmd_version(&c, argc - 1, argv + 1);
  } else {
    cmd_fn fn = NULL;
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
      if (!strcmp(argv[1], commands[i].name)) fn = commands[i].fn;
    if (!fn) {
      cli_err(&c, "unknown command '%s' (see nexuslite --help)", argv[1]);
      rc = CLI_EXIT_USAGE;
    } else if (fn != cmd_help && help_wanted(argc - 2, argv + 2)) {
      help_print(stdout, argv[1]);
      rc = CLI_EXIT_OK;
    } else {
      rc = fn(&c, argc - 2, argv + 2);
    }
  }
  cli_close(&c);
  cfg_free(&c.cfg);
  fflush(stdout);
  if (ferror(stdout) && rc == CLI_EXIT_OK) rc = CLI_EXIT_ERROR;
  return rc;
}
