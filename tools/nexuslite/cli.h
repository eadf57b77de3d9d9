/*
 * cli.h: the private interface between the files of the nexuslite tool.
 *
 * The tool is a program on the public API only (include/nexuslite.h plus libbson, which that
 * header exposes); it never includes a header from src/. Its files:
 *   sbuf.c      growable strings
 *   relaxed.c   the shell's relaxed object syntax (mongosh literals) -> canonical Extended JSON
 *   output.c    printing documents: NDJSON, indented JSON, mongosh style, tables, CSV; colour
 *   config.c    configuration: flags > NEXUSLITE_* environment > config file > defaults
 *   commands.c  the git-style commands (find, insert, kv, index, ...)
 *   admin.c     info, doctor, config, checkpoint, compact, import, export
 *   shell.c     the interactive shell and its script mode
 *   help.c      the help text of every command; the man page is generated from it
 *   main.c      global options, dispatch, exit codes
 *
 * Invariants:
 *  1. Every command returns one of the CLI_EXIT_* codes; main() returns it unchanged.
 *  2. Results go to stdout, diagnostics to stderr (prefixed "nexuslite: ").
 *  3. Secrets (the key) are never printed: cfg_mask() is applied to every configuration value
 *     whose key is secret before it reaches any output.
 */
#ifndef NX_CLI_H
#define NX_CLI_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "nexuslite.h"

#if defined(__GNUC__)
#define CLI_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define CLI_PRINTF(a, b)
#endif

/* ---- Exit codes (documented in `nexuslite --help` and the man page) ---- */
enum {
  CLI_EXIT_OK = 0,        /* success */
  CLI_EXIT_ERROR = 1,     /* the operation failed */
  CLI_EXIT_USAGE = 2,     /* bad command line or malformed input argument */
  CLI_EXIT_NOTFOUND = 3,  /* collection, key, index or document not found */
  CLI_EXIT_LOCKED = 4,    /* the database is locked by another process */
  CLI_EXIT_CORRUPT = 5,   /* the database is corrupt, of a newer format, or the key is wrong */
  CLI_EXIT_INTERRUPT = 130 /* cancelled with Ctrl-C */
};

/* ---- Growable strings (sbuf.c) ---- */
typedef struct sbuf {
  char *p;    /* NUL-terminated text, owned (NULL until the first append) */
  size_t len; /* bytes before the NUL */
  size_t cap; /* bytes allocated */
} sbuf;
void sb_init(sbuf *b);
void sb_free(sbuf *b);
void sb_clear(sbuf *b);
void sb_addn(sbuf *b, const char *s, size_t n);
void sb_adds(sbuf *b, const char *s);
void sb_addc(sbuf *b, char c);
void sb_printf(sbuf *b, const char *fmt, ...) CLI_PRINTF(2, 3);
/** Appends s as a JSON string literal with quotes and escapes. */
void sb_json_str(sbuf *b, const char *s, size_t n);
/** Appends n bytes as base64. */
void sb_base64(sbuf *b, const uint8_t *d, size_t n);
/** The text, "" when empty (never NULL). */
const char *sb_str(const sbuf *b);
/* bson_t is declared 128-byte aligned, which malloc and bson_copy do not give; the library's
 * sanitizer build checks it. Heap bson_t therefore come from these (never moved, never
 * realloc'ed: an allocated bson_t points into itself). */
bson_t *bsonx_copy(const bson_t *src);   /* copy of src; release with bsonx_free */
void bsonx_free(bson_t *b);              /* bson_destroy + free; accepts NULL */
bson_t *bsonx_array(size_t n);           /* n uninitialised aligned bson_t; release with free() */
/** Parses a whole decimal integer string; false when s is not exactly one. */
bool parse_i64(const char *s, int64_t *out);
bool parse_u64(const char *s, uint64_t *out);

/* ---- Relaxed syntax (relaxed.c) ---- */
/**
 * Parses one relaxed value (object, array, string, number, literal, constructor such as
 * ObjectId("..."), regex /re/flags) starting at *p, appending canonical Extended JSON to out.
 * Skips leading blanks and comments; on success *p points just after the value. On failure
 * returns false with a message naming the offset (relative to `base`) in err.
 */
bool rx_value(const char **p, const char *base, sbuf *out, char *err, size_t errlen);
/** Skips blanks and comments. */
void rx_skip(const char **p);
/** Converts a whole relaxed text (one value, nothing after it but blanks) to Extended JSON. */
bool rx_convert(const char *text, sbuf *out, char *err, size_t errlen);
/** Converts relaxed text to a BSON document (must be an object). */
bool rx_to_bson(const char *text, bson_t *out, char *err, size_t errlen);
/**
 * Bracket balance of shell input: >0 while brackets/quotes are open (more lines needed),
 * 0 when complete, <0 when a closing bracket has no opener.
 */
int rx_balance(const char *text);

/* ---- Output (output.c) ---- */
typedef enum out_style {
  OUT_NDJSON, /* one relaxed Extended JSON document per line */
  OUT_JSON,   /* a JSON array, indented when pretty */
  OUT_CSV,    /* header row then one row per document */
  OUT_TABLE,  /* aligned columns for people */
  OUT_SHELL   /* mongosh-style documents */
} out_style;

typedef struct out_opts {
  bool pretty; /* indent documents across lines */
  bool color;  /* ANSI colours (a terminal and no NO_COLOR) */
} out_opts;

/** Appends doc as relaxed Extended JSON, indented from `indent` when pretty. */
void out_json(sbuf *b, const bson_t *doc, const out_opts *o, int indent);
/** Appends doc in mongosh style: { name: 'alice', _id: ObjectId('...') }, pretty: multi-line
 *  when it does not fit in one line. */
void out_shell(sbuf *b, const bson_t *doc, const out_opts *o, int indent);
/** Appends one value in mongosh style (multi-line only when o->pretty and it does not fit). */
void out_shell_value(sbuf *b, const bson_iter_t *it, const out_opts *o, int indent);

/** A result set printer for find: collects rows when the style needs all of them (table, csv
 *  without fields, json). */
typedef struct out_rows out_rows;
out_rows *rows_new(out_style style, const out_opts *o, FILE *f, const char *fields);
void rows_add(out_rows *r, const bson_t *doc);
/** Writes what is pending and frees r. */
void rows_finish(out_rows *r);

/** Colour helpers: return "" when colour is off. */
const char *col_key(const out_opts *o);
const char *col_str(const out_opts *o);
const char *col_num(const out_opts *o);
const char *col_lit(const out_opts *o);
const char *col_err(const out_opts *o);
const char *col_dim(const out_opts *o);
const char *col_off(const out_opts *o);

/* ---- Configuration (config.c) ---- */
typedef struct cfg_entry {
  const char *key;    /* "db", "durability", ... */
  char *value;        /* owned, NULL when unset */
  const char *source; /* "flag", "env NEXUSLITE_DB", "file ./nexuslite.conf", "default" */
} cfg_entry;

enum { CFG_DB, CFG_DURABILITY, CFG_PRETTY, CFG_QUIET, CFG_COLOR, CFG_CACHE_MB, CFG_PAGE_SIZE,
       CFG_CKPT_THREAD, CFG_HISTORY, CFG_KEY, CFG_KEY_FILE, CFG_COUNT };

typedef struct cli_cfg {
  cfg_entry e[CFG_COUNT];
  char *file;           /* the config file read, or NULL */
  char warn[256];       /* a warning about the config file ("" when none) */
} cli_cfg;

/** Fills defaults, then the config file, then the environment (flags are set afterwards with
 *  cfg_set(..., "flag")). explicit_file: --config FILE or NULL. Returns false with a message
 *  in err when an explicit file is unreadable or a line is malformed. */
bool cfg_load(cli_cfg *c, const char *explicit_file, char *err, size_t errlen);
void cfg_set(cli_cfg *c, int which, const char *value, const char *source);
const char *cfg_get(const cli_cfg *c, int which);
bool cfg_is_secret(int which);
/** The value as it may be shown: secrets become "****** (set)". */
void cfg_show(const cli_cfg *c, int which, sbuf *out);
void cfg_free(cli_cfg *c);
bool cfg_bool(const char *v, bool *out);
/** The config-file key ("db") and environment variable ("NEXUSLITE_DB") of a setting. */
const char *cfg_key_name(int which);
const char *cfg_env_name(int which);

/* ---- The running tool ---- */
typedef struct cli {
  cli_cfg cfg;
  const char *db_path; /* from cfg */
  nx_durability durability;
  bool checkpoint_thread; /* automatic checkpoints in a background thread (nx_open_opts) */
  bool pretty, quiet;
  bool tty_out;        /* stdout is a terminal */
  out_opts oo;         /* pretty/colour for stdout */
  out_opts eo;         /* colour for stderr */
  nx_db *db;           /* open database or NULL */
} cli;

/** Set by the SIGINT handler; long loops poll it. */
extern volatile sig_atomic_t cli_interrupted;
void cli_install_sigint(void);
/** Called after each cursor step of a query (a test hook can raise SIGINT there). */
void cli_cursor_step(void);

/** Makes libbson use the library's allocator before any bson_t exists (main.c explains). */
void cli_settle_allocator(void);
/** Opens the database once (per cfg), reporting failures; returns an exit code. With create
 *  false a missing database is an error (read commands never create files). */
int cli_open(cli *c, bool create);
void cli_close(cli *c);
/** Maps a library status to an exit code. */
int cli_exit_for(int rc);
/** Prints "nexuslite: <what>: <nx_errmsg>" on stderr and returns the exit code for rc. */
int cli_fail(cli *c, int rc, const char *what);
/** Prints "nexuslite: <message>" on stderr. */
void cli_err(cli *c, const char *fmt, ...) CLI_PRINTF(2, 3);
/** Prints an informational line on stderr unless --quiet. */
void cli_note(cli *c, const char *fmt, ...) CLI_PRINTF(2, 3);

/* ---- Commands (commands.c, admin.c, shell.c) ---- */
typedef int (*cmd_fn)(cli *c, int argc, char **argv);
int cmd_collections(cli *c, int argc, char **argv);
int cmd_insert(cli *c, int argc, char **argv);
int cmd_find(cli *c, int argc, char **argv);
int cmd_count(cli *c, int argc, char **argv);
int cmd_update(cli *c, int argc, char **argv);
int cmd_update_one(cli *c, int argc, char **argv);
int cmd_delete(cli *c, int argc, char **argv);
int cmd_delete_one(cli *c, int argc, char **argv);
int cmd_index(cli *c, int argc, char **argv);
int cmd_kv(cli *c, int argc, char **argv);
int cmd_info(cli *c, int argc, char **argv);
int cmd_doctor(cli *c, int argc, char **argv);
int cmd_config(cli *c, int argc, char **argv);
int cmd_checkpoint(cli *c, int argc, char **argv);
int cmd_compact(cli *c, int argc, char **argv);
int cmd_version(cli *c, int argc, char **argv);
int cmd_import(cli *c, int argc, char **argv);
int cmd_export(cli *c, int argc, char **argv);
int cmd_shell(cli *c, int argc, char **argv);
int cmd_help(cli *c, int argc, char **argv);

/* ---- Help (help.c) ---- */
typedef struct help_entry {
  const char *name;     /* "find" */
  const char *synopsis; /* "find COLLECTION [--filter F] ..." */
  const char *summary;  /* one line */
  const char *details;  /* options, one per line: "--filter F\tthe filter (relaxed JSON)" */
} help_entry;
extern const help_entry cli_help_table[];
extern const size_t cli_help_count;
const help_entry *help_find(const char *name);
/** Prints the help of one command (or the overview when name is NULL) to f. */
void help_print(FILE *f, const char *name);
/** Prints the man page (roff) built from the same table. */
void help_man(FILE *f);
/** True when argv holds --help or -h (commands check this first). */
bool help_wanted(int argc, char **argv);

/* ---- Small option parser shared by commands ---- */
/** If argv[*i] is `--name VALUE` or `--name=VALUE`, stores VALUE, advances *i and returns 1;
 *  returns 0 when it is not this option, -1 when the value is missing (message printed). */
int opt_value(cli *c, int argc, char **argv, int *i, const char *name, const char **val);
/** Builds a projection {"a":1,"b":1} from "a,b" (or passes relaxed JSON through). */
bool spec_projection(const char *s, sbuf *out, char *err, size_t errlen);
/** Builds a sort {"age":-1,"name":1} from "-age,+name" (or passes relaxed JSON through). */
bool spec_sort(const char *s, sbuf *out, char *err, size_t errlen);

#endif /* NX_CLI_H */
