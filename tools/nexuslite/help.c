/*
 * help.c: the help text of the tool, in one table. `nexuslite COMMAND --help` prints one entry,
 * `nexuslite --help` the overview, and `nexuslite help --man` the man page (roff) built from
 * the same table, so docs/nexuslite.1 cannot drift from the help (a test compares them).
 *
 * Details are lines "OPTION\tDESCRIPTION"; a line without a tab is a paragraph.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

const help_entry cli_help_table[] = {
    {"shell", "shell [--echo] [--eval CODE]",
     "interactive mongosh-style shell (the default on a terminal)",
     "--echo\techo each statement after a prompt (for transcripts of scripts)\n"
     "--eval CODE\trun the statements in CODE and exit\n"
     "On a terminal the shell edits lines, completes names with Tab and keeps history in ~/.nexuslite_history; otherwise it "
     "reads statements from standard input, so `nexuslite shell < script.js` runs a script and exits "
     "with 1 when a statement failed. Type help inside the shell for its commands."},
    {"collections", "collections [list | create NAME [--options JSON] | drop NAME | rename FROM TO]",
     "list, create, drop or rename collections", "--options JSON\tcollection options, e.g. {compression: 'zstd'}"},
    {"insert", "insert COLLECTION [JSON...]",
     "insert documents given as arguments (a document or an array) or as NDJSON on stdin",
     "--batch N\tdocuments per transaction when reading stdin (default 1000)\n"
     "Arguments are inserted atomically, all or none. Standard input is inserted in batches; on an error "
     "the message names the line, and earlier batches stay inserted."},
    {"find", "find COLLECTION [FILTER] [--filter F] [--project a,b] [--sort -age,+name] [--limit N] [--skip N] [--output FMT]",
     "print matching documents",
     "--filter F\ta filter document, e.g. '{age: {$gt: 25}}'\n"
     "--project a,b\tfields to return (or a projection document)\n"
     "--sort S\t'-age,+name' (or a sort document)\n"
     "--limit N\tat most N documents\n"
     "--skip N\tskip the first N documents\n"
     "--output FMT\tndjson, json, csv, table or shell (default: table on a terminal, else ndjson)\n"
     "--fields a,b\tcolumns of csv and table output"},
    {"count", "count COLLECTION [--filter F]", "count matching documents", "--filter F\ta filter document"},
    {"update", "update COLLECTION --filter F --update U [--upsert]", "update every matching document",
     "--filter F\twhich documents (default: all)\n"
     "--update U\tupdate operators, e.g. '{$set: {active: true}}'\n"
     "--upsert\tinsert a document when nothing matches"},
    {"update-one", "update-one COLLECTION --filter F --update U [--upsert]",
     "update (or replace) the first matching document",
     "--filter F\twhich document\n--update U\tupdate operators or a replacement document\n"
     "--upsert\tinsert a document when nothing matches"},
    {"delete", "delete COLLECTION --filter F | --confirm", "delete every matching document",
     "--filter F\twhich documents\n--confirm\trequired to delete without a filter (every document)"},
    {"delete-one", "delete-one COLLECTION --filter F | --confirm", "delete the first matching document",
     "--filter F\twhich document\n--confirm\trequired to delete without a filter"},
    {"index", "index create COLLECTION KEYS [--name N] [--unique] [--sparse] [--partial F] | drop COLLECTION NAME | list COLLECTION | explain COLLECTION [--filter F] [--sort S]",
     "create, drop, list indexes; explain a query",
     "KEYS\t'age' or '-age,name' or '{age: 1}'\n--name N\tindex name (default from the keys, e.g. age_1)\n"
     "--unique\trefuse duplicate keys\n--sparse\tskip documents without the fields\n"
     "--partial F\tindex only documents matching F"},
    {"kv", "kv set KEY VALUE [--string] | get KEY | has KEY | delete KEY | keys [PREFIX] | clear --confirm",
     "the key-value store",
     "VALUE\tany JSON value; '-' reads it from stdin\n--string\tstore VALUE as a string as is\n"
     "has exits with 0 when the key exists and 3 when it does not."},
    {"info", "info", "collections, counts, sizes, page and cache figures", ""},
    {"doctor", "doctor",
     "check the files, the lock, the format, the log and the configuration (secrets masked)",
     "The exit status is that of the worst finding: 3 missing, 4 locked, 5 corrupt or newer format."},
    {"config", "config", "show the effective configuration and where each value comes from", ""},
    {"checkpoint", "checkpoint [--mode passive|full|truncate]", "copy the log into the database file",
     "--mode M\tpassive, full (default) or truncate (also shrink the log)"},
    {"compact", "compact", "rewrite the database file without free pages", ""},
    {"import", "import FILE --collection C [--format auto|ndjson|json|csv|bson] [--delimiter ,] [--no-header] [--no-infer] [--batch N] [--ttl-field F] [--skip-errors]",
     "import a file into a collection",
     "--collection C\tthe target collection (created when missing)\n"
     "--format F\tauto (by extension, then by content), ndjson, json, csv or bson\n"
     "--delimiter D\tCSV delimiter (default ,; 'tab' for a tab)\n"
     "--no-header\tthe first CSV row is data (columns field1, field2, ...)\n"
     "--no-infer\tkeep every CSV value a string\n"
     "--batch N\tdocuments per transaction (default 1000)\n"
     "--ttl-field F\ta date or seconds field that becomes the document's expiry\n"
     "--skip-errors\tgo on past bad records (written to FILE.errors.jsonl)"},
    {"export", "export COLLECTION FILE [--format auto|ndjson|json|csv|bson] [--filter F] [--sort S] [--project P] [--fields a,b] [--redact f,g] [--redact-drop] [--canonical] [--force]",
     "export a collection to a file",
     "--format F\tby the file's extension when auto\n--filter F\twhich documents\n--sort S\torder\n"
     "--project P\tfields\n--fields a,b\tCSV columns\n--redact f,g\tmask these fields\n"
     "--redact-drop\tdrop redacted fields instead of masking them\n"
     "--canonical\tNDJSON/JSON in canonical Extended JSON (every BSON type kept exactly)\n"
     "--force\toverwrite an existing file"},
    {"version", "version [--short]", "print the version", ""},
    {"help", "help [COMMAND | --man]", "print help, or the man page in roff", ""},
};
const size_t cli_help_count = sizeof cli_help_table / sizeof cli_help_table[0];

static const char *global_opts =
    "--db FILE\tdatabase file (default ./nexuslite.db; NEXUSLITE_DB)\n"
    "--durability D\tfull (default), normal or off (NEXUSLITE_DURABILITY)\n"
    "--pretty\tindent JSON output\n"
    "--quiet, -q\tno progress or summary messages\n"
    "--color WHEN\tauto (default), always or never; NO_COLOR turns colour off\n"
    "--config FILE\tread this config file instead of ./nexuslite.conf or $XDG_CONFIG_HOME/nexuslite/config";

static const char *exit_codes =
    "0\tsuccess\n"
    "1\tthe operation failed (or a shell script had a failing statement)\n"
    "2\tusage: bad command line, or malformed input (JSON, filter, update)\n"
    "3\tnot found: database, collection, key or index\n"
    "4\tthe database is locked by another process\n"
    "5\tthe database is corrupt, of a newer format, or the key is wrong\n"
    "130\tinterrupted (Ctrl-C)";

static const char *config_text =
    "Settings come from, highest first: command-line flags, NEXUSLITE_* environment variables, the "
    "config file, defaults. The config file (./nexuslite.conf, else $XDG_CONFIG_HOME/nexuslite/config, "
    "else ~/.config/nexuslite/config) holds 'key = value' lines and # comments. Keys: db, durability, "
    "pretty, quiet, color, cache_mb, page_size, checkpoint_thread (true: automatic checkpoints in a "
    "background thread), history_file, key_file. Environment: NEXUSLITE_DB, "
    "NEXUSLITE_DURABILITY, NEXUSLITE_PRETTY, NEXUSLITE_QUIET, NEXUSLITE_COLOR, NEXUSLITE_CACHE_MB, "
    "NEXUSLITE_PAGE_SIZE, NEXUSLITE_CHECKPOINT_THREAD, NEXUSLITE_HISTORY, NEXUSLITE_KEY, NEXUSLITE_KEY_FILE.\n"
    "Secrets: the encryption key comes only from NEXUSLITE_KEY or a key file (key_file); a key in a "
    "config file is ignored with a warning. Keys are never printed: doctor and config show them masked.";

const help_entry *help_find(const char *name) {
  for (size_t i = 0; i < cli_help_count; i++)
    if (!strcmp(cli_help_table[i].name, name)) return &cli_help_table[i];
  return NULL;
}

/* Prints "OPT\tTEXT" lines as an aligned list; paragraphs as they are. */
static void print_details(FILE *f, const char *d) {
  while (d && *d) {
    const char *e = strchr(d, '\n');
    size_t n = e ? (size_t)(e - d) : strlen(d);
    const char *tab = memchr(d, '\t', n);
    if (tab) fprintf(f, "  %-16.*s %.*s\n", (int)(tab - d), d, (int)(n - (size_t)(tab - d) - 1), tab + 1);
    else fprintf(f, "  %.*s\n", (int)n, d);
    d += n;
    if (*d == '\n') d++;
  }
}

void help_print(FILE *f, const char *name) {
  if (name) {
    const help_entry *h = help_find(name);
    if (!h) {
      fprintf(f, "nexuslite: no help for '%s'\n", name);
      return;
    }
    fprintf(f, "usage: nexuslite [global options] %s\n\n%s.\n", h->synopsis, h->summary);
    if (h->details[0]) {
      fputc('\n', f);
      print_details(f, h->details);
    }
    return;
  }
  fprintf(f, "usage: nexuslite [global options] COMMAND [args]\n\n"
             "NexusLite %s: an embedded document database. Commands:\n", NX_VERSION_STRING);
  for (size_t i = 0; i < cli_help_count; i++)
    fprintf(f, "  %-12s %s\n", cli_help_table[i].name, cli_help_table[i].summary);
  fprintf(f, "\nGlobal options (anywhere on the line):\n");
  print_details(f, global_opts);
  fprintf(f, "\nExit status:\n");
  print_details(f, exit_codes);
  fprintf(f, "\nJSON arguments accept the shell's relaxed syntax: {age: {$gt: 25}}, 'quotes', "
             "ISODate('2024-01-31').\nRun nexuslite COMMAND --help for a command's options; "
             "man nexuslite for everything.\n");
}

/* Writes text escaped for roff: backslashes, leading dots and quotes, hyphens in options. */
static void roff(FILE *f, const char *s, size_t n, bool at_line_start) {
  for (size_t i = 0; i < n; i++) {
    char ch = s[i];
    if (at_line_start && (ch == '.' || ch == '\'')) fputs("\\&", f);
    at_line_start = false;
    if (ch == '\\') fputs("\\e", f);
    else if (ch == '-') fputs("\\-", f);
    else if (ch == '\n') {
      fputc('\n', f);
      at_line_start = true;
    } else fputc(ch, f);
  }
}

static void roff_s(FILE *f, const char *s) { roff(f, s, strlen(s), true); }

static void man_details(FILE *f, const char *d) {
  while (d && *d) {
    const char *e = strchr(d, '\n');
    size_t n = e ? (size_t)(e - d) : strlen(d);
    const char *tab = memchr(d, '\t', n);
    if (tab) {
      fputs(".TP\n.B ", f);
      roff(f, d, (size_t)(tab - d), false);
      fputc('\n', f);
      roff(f, tab + 1, n - (size_t)(tab - d) - 1, true);
      fputc('\n', f);
    } else {
      fputs(".PP\n", f);
      roff(f, d, n, true);
      fputc('\n', f);
    }
    d += n;
    if (*d == '\n') d++;
  }
}

void help_man(FILE *f) {
  fprintf(f, ".\\\" Generated by `nexuslite help --man` from tools/nexuslite/help.c; do not edit.\n");
  fprintf(f, ".TH NEXUSLITE 1 \"\" \"NexusLite %s\" \"User Commands\"\n", NX_VERSION_STRING);
  fputs(".SH NAME\nnexuslite \\- command-line tool and shell of the NexusLite document database\n", f);
  fputs(".SH SYNOPSIS\n.B nexuslite\n[\\fIglobal options\\fR] \\fICOMMAND\\fR [\\fIargs\\fR]\n", f);
  fputs(".SH DESCRIPTION\n", f);
  roff_s(f, "nexuslite works on one NexusLite database file: it inserts, finds, updates and deletes "
            "documents, manages collections, indexes and the key-value store, imports and exports "
            "files, and checks the database. With no command on a terminal it starts the interactive "
            "shell. Output is made for people on a terminal (aligned tables, colour unless NO_COLOR) "
            "and for programs otherwise (NDJSON). Errors go to standard error.\n");
  fputs(".PP\n", f);
  roff_s(f, "JSON arguments accept the shell's relaxed syntax: unquoted keys, single quotes, trailing "
            "commas, comments, ObjectId(), ISODate(), UUID(), NumberLong(), NumberDecimal() and /regex/i.\n");
  fputs(".SH GLOBAL OPTIONS\n", f);
  man_details(f, global_opts);
  fputs(".SH COMMANDS\n", f);
  for (size_t i = 0; i < cli_help_count; i++) {
    const help_entry *h = &cli_help_table[i];
    fputs(".SS ", f);
    roff(f, h->name, strlen(h->name), false);
    fputs("\n.B nexuslite ", f);
    roff(f, h->synopsis, strlen(h->synopsis), false);
    fputs("\n.PP\n", f);
    roff_s(f, h->summary);
    fputs(".\n", f);
    if (h->details[0]) man_details(f, h->details);
  }
  fputs(".SH SHELL\n", f);
  roff_s(f, "The shell accepts mongosh statements: db.users.insertOne({name: 'alice', age: 30}), "
            "db.users.find({age: {$gt: 25}}, {name: 1}).sort({age: -1}).limit(5) (also .skip(), "
            ".count(), .explain(), .toArray(), .pretty()), findOne, countDocuments, distinct, "
            "updateOne, updateMany, replaceOne, deleteOne, deleteMany, findOneAndUpdate, createIndex, "
            "dropIndex, getIndexes, stats, drop, db.stats(), db.createCollection(), show collections, "
            "show dbs, it, help and exit. A statement may span lines until its brackets balance. "
            "An error prints a message and the shell goes on; Ctrl-C cancels a running query.\n");
  fputs(".SH CONFIGURATION\n", f);
  roff_s(f, config_text);
  fputs("\n.SH EXIT STATUS\n", f);
  man_details(f, exit_codes);
  fputs(".SH FILES\n", f);
  man_details(f, "DB\tthe database file\nDB.wasp\tits write-ahead log\nDB.lock\tthe lock file, holding the owner's pid\n"
                 "~/.nexuslite_history\tshell history\n./nexuslite.conf\tconfig file");
  fputs(".SH EXAMPLES\n.nf\n", f);
  roff_s(f, "nexuslite --db app.db insert users '{name: \"alice\", age: 30}'\n"
            "nexuslite --db app.db find users --filter '{age: {$gt: 25}}' --sort -age --limit 5\n"
            "nexuslite --db app.db import users.csv --collection users\n"
            "nexuslite --db app.db shell\n");
  fputs(".fi\n", f);
}

int cmd_help(cli *c, int argc, char **argv) {
  (void)c;
  if (argc > 0 && !strcmp(argv[0], "--man")) {
    help_man(stdout);
    return CLI_EXIT_OK;
  }
  if (argc > 0 && !help_find(argv[0])) {
    cli_err(c, "help: no command '%s'", argv[0]);
    return CLI_EXIT_USAGE;
  }
  help_print(stdout, argc > 0 ? argv[0] : NULL);
  return CLI_EXIT_OK;
}
