/*
 * config.c: where each setting comes from.
 *
 * Precedence, highest first: command-line flags, NEXUSLITE_* environment variables, the config
 * file, defaults. The config file is --config FILE, else ./nexuslite.conf, else
 * $XDG_CONFIG_HOME/nexuslite/config (~/.config/nexuslite/config): `key = value` lines, '#'
 * comments, optional quotes around the value.
 *
 * Secrets: the key comes only from NEXUSLITE_KEY or from a key file (key_file /
 * NEXUSLITE_KEY_FILE). A `key = ...` line in a config file is ignored with a warning (a config
 * file is often committed or world-readable). Secret values are never printed: cfg_show()
 * masks them.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const struct {
  const char *key;  /* name in the config file */
  const char *env;  /* environment variable */
  const char *def;  /* default, NULL = unset */
  bool secret;
} specs[CFG_COUNT] = {
    [CFG_DB] = {"db", "NEXUSLITE_DB", "nexuslite.db", false},
    [CFG_DURABILITY] = {"durability", "NEXUSLITE_DURABILITY", "full", false},
    [CFG_PRETTY] = {"pretty", "NEXUSLITE_PRETTY", "false", false},
    [CFG_QUIET] = {"quiet", "NEXUSLITE_QUIET", "false", false},
    [CFG_COLOR] = {"color", "NEXUSLITE_COLOR", "auto", false},
    [CFG_CACHE_MB] = {"cache_mb", "NEXUSLITE_CACHE_MB", "64", false},
    [CFG_PAGE_SIZE] = {"page_size", "NEXUSLITE_PAGE_SIZE", "4096", false},
    [CFG_CKPT_THREAD] = {"checkpoint_thread", "NEXUSLITE_CHECKPOINT_THREAD", "false", false},
    [CFG_HISTORY] = {"history_file", "NEXUSLITE_HISTORY", NULL, false},
    [CFG_KEY] = {"key", "NEXUSLITE_KEY", NULL, true},
    [CFG_KEY_FILE] = {"key_file", "NEXUSLITE_KEY_FILE", NULL, false},
};

bool cfg_is_secret(int which) { return specs[which].secret; }

void cfg_set(cli_cfg *c, int which, const char *value, const char *source) {
  free(c->e[which].value);
  c->e[which].value = value ? strdup(value) : NULL;
  c->e[which].source = source;
}

const char *cfg_get(const cli_cfg *c, int which) { return c->e[which].value; }

void cfg_show(const cli_cfg *c, int which, sbuf *out) {
  const char *v = c->e[which].value;
  if (!v) sb_adds(out, "(unset)");
  else if (specs[which].secret) sb_adds(out, "****** (set)");
  else sb_adds(out, v);
}

void cfg_free(cli_cfg *c) {
  for (int i = 0; i < CFG_COUNT; i++) free(c->e[i].value);
  free(c->file);
  memset(c, 0, sizeof *c);
}

bool cfg_bool(const char *v, bool *out) {
  if (!v) return false;
  if (!strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcasecmp(v, "on")) {
    *out = true;
    return true;
  }
  if (!strcmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcasecmp(v, "off")) {
    *out = false;
    return true;
  }
  return false;
}

static char *trim(char *s) {
  while (isspace((unsigned char)*s)) s++;
  size_t n = strlen(s);
  while (n && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
  if (n >= 2 && (s[0] == '"' || s[0] == '\'') && s[n - 1] == s[0]) {
    s[n - 1] = '\0';
    s++;
  }
  return s;
}

/* Source strings must outlive the config: keep the file's label in c->file's storage. */
static char file_source[600];

static bool read_file(cli_cfg *c, const char *path, char *err, size_t errlen) {
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(err, errlen, "cannot read config file %s: %s", path, strerror(errno));
    return false;
  }
  c->file = strdup(path);
  snprintf(file_source, sizeof file_source, "file %s", path);
  char line[4096];
  int lineno = 0;
  bool ok = true;
  while (fgets(line, sizeof line, f)) {
    lineno++;
    char *s = trim(line);
    if (!*s || *s == '#' || *s == ';') continue;
    char *eq = strchr(s, '=');
    if (!eq) {
      snprintf(err, errlen, "%s:%d: 'key = value' expected", path, lineno);
      ok = false;
      break;
    }
    *eq = '\0';
    char *k = trim(s), *v = trim(eq + 1);
    int which = -1;
    for (int i = 0; i < CFG_COUNT; i++)
      if (!strcmp(k, specs[i].key)) which = i;
    if (which < 0) {
      snprintf(c->warn, sizeof c->warn, "%s:%d: unknown setting '%s' ignored", path, lineno, k);
      continue;
    }
    if (specs[which].secret) {
      snprintf(c->warn, sizeof c->warn,
               "%s:%d: a key in a config file is ignored; use NEXUSLITE_KEY or key_file", path, lineno);
      continue;
    }
    cfg_set(c, which, v, file_source);
  }
  fclose(f);
  return ok;
}

bool cfg_load(cli_cfg *c, const char *explicit_file, char *err, size_t errlen) {
  memset(c, 0, sizeof *c);
  for (int i = 0; i < CFG_COUNT; i++) cfg_set(c, i, specs[i].def, "default");
  if (explicit_file) {
    if (!read_file(c, explicit_file, err, errlen)) return false;
  } else {
    char path[1024];
    const char *xdg = getenv("XDG_CONFIG_HOME");
    const char *home = getenv("HOME");
    path[0] = '\0';
    FILE *f = fopen("nexuslite.conf", "r");
    if (f) {
      fclose(f);
      snprintf(path, sizeof path, "nexuslite.conf");
    } else if (xdg && *xdg) {
      snprintf(path, sizeof path, "%s/nexuslite/config", xdg);
    } else if (home && *home) {
      snprintf(path, sizeof path, "%s/.config/nexuslite/config", home);
    }
    if (path[0]) {
      f = fopen(path, "r");
      if (f) {
        fclose(f);
        if (!read_file(c, path, err, errlen)) return false;
      }
    }
  }
  for (int i = 0; i < CFG_COUNT; i++) {
    const char *v = getenv(specs[i].env);
    if (v && *v) cfg_set(c, i, v, specs[i].env);
  }
  return true;
}

const char *cfg_key_name(int which) { return specs[which].key; }
const char *cfg_env_name(int which) { return specs[which].env; }
