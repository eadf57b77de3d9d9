// ctest: timeout=900
/*
 * slow_differential.c: the query language (src/match: filters, updates, projections, sorts)
 * against two implementations nobody here wrote: mongomock (Debian's python3-mongomock, run by
 * /usr/bin/python3 tests/oracle/mongomock_oracle.py) and mingo (npm, node
 * tests/oracle/mingo_oracle.js).
 *
 * A seeded generator makes cases (documents with arrays of documents, nested and empty arrays,
 * null versus missing, int32/int64/double/decimal128 mixed; filters over every operator, dot paths
 * with numeric components; updates; projections; sorts). NexusLite's answer is computed here;
 * then all cases go in one batch, as canonical Extended JSON lines in a file, through ONE process
 * of each oracle (posix_spawn, stdin/stdout redirected to files), and the answers are compared.
 *
 * The oracles depart from MongoDB's documented behaviour in known places. MongoDB is the truth:
 * each departure is a named normaliser (table `normalisers` below, and the "Oracle departures"
 * section of docs/query-semantics.md) that skips the case for that oracle or relaxes the
 * comparison, and counts how often it fired. A case counts as compared when at least one oracle
 * compared it. The test prints counts per operator and per normaliser and fails on any mismatch,
 * on fewer than the required number of compared cases, or when no oracle ran at all.
 * NX_TEST_SEED replays a seed; NX_DIFF_CASES overrides the number of cases; NX_DIFF_KEEP=1 keeps
 * the batch files (their directory is printed).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "doc.h"
#include "match.h"

extern char **environ;

/* Parts of the match layer this test drives (all of it once src/match has landed). */
#ifndef DIFF_HAVE_SORT
#define DIFF_HAVE_SORT 1
#endif
#ifndef DIFF_HAVE_PROJ
#define DIFF_HAVE_PROJ 1
#endif
#ifndef DIFF_HAVE_UPDATE
#define DIFF_HAVE_UPDATE 1
#endif

/* ---- Deterministic random numbers (splitmix64) ---- */
static uint64_t rng_state;
static uint64_t rnd(void) {
  uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
static uint32_t rn(uint32_t n) { return (uint32_t)(rnd() % n); }
static bool chance(int pct) { return (int)rn(100) < pct; }

/* =========================================================================================
 * Operator counters
 * ========================================================================================= */
enum {
  /* filters */
  C_EQ, C_NE, C_GT, C_GTE, C_LT, C_LTE, C_IN, C_NIN, C_AND, C_OR, C_NOR, C_NOT, C_EXISTS, C_TYPE,
  C_REGEX, C_MOD, C_ALL, C_ELEMMATCH, C_SIZE, C_DOTPATH, C_NUMPATH,
  /* updates */
  C_SET, C_UNSET, C_INC, C_MUL, C_MIN, C_MAX, C_RENAME, C_SETONINSERT, C_PUSH, C_EACH, C_SLICE,
  C_SORT, C_POSITION, C_ADDTOSET, C_POP, C_PULL, C_PULLALL, C_POSITIONAL, C_ALLPOS,
  /* projections and sorts */
  C_PROJ_INCL, C_PROJ_EXCL, C_PROJ_SLICE, C_PROJ_ELEMMATCH, C_SORT_KEYS,
  C_N
};
static const char *cnames[C_N] = {
  "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$and", "$or", "$nor", "$not",
  "$exists", "$type", "$regex", "$mod", "$all", "$elemMatch", "$size", "dot path", "numeric path",
  "$set", "$unset", "$inc", "$mul", "$min", "$max", "$rename", "$setOnInsert", "$push", "$each",
  "$slice (push)", "$sort (push)", "$position", "$addToSet", "$pop", "$pull", "$pullAll",
  "positional $", "$[]",
  "projection inclusion", "projection exclusion", "projection $slice", "projection $elemMatch",
  "sort"};
/* Counting uses per-case scratch counters, added to the totals when an oracle compared the case. */
static int case_counts[C_N];
static long total_counts[C_N];
static void cnt(int c) { case_counts[c]++; }

/* =========================================================================================
 * Values and documents
 * ========================================================================================= */
static bool case_dec; /* this case may hold decimal128 values (oracles skip those) */
static bool case_big; /* this case may hold int64 beyond 2^53 (mingo skips those) */
static bool case_ints; /* this case's documents hold only integers (so mingo's $mod is sound) */
static bool case_nest; /* arrays may hold arrays (the oracles flatten those) */

static const char *strs[] = {"", "x", "ab", "abc", "B", "xa"};

static void append_scalar(bson_t *b, const char *k) {
  bson_decimal128_t dec;
  if (case_ints) {
    switch (rn(3)) {
    case 0: BSON_APPEND_INT32(b, k, (int32_t)rn(9) - 2); break;
    case 1: BSON_APPEND_INT64(b, k, (int64_t)rn(9) - 2); break;
    default: BSON_APPEND_DOUBLE(b, k, (double)rn(9) - 2.0); break;
    }
    return;
  }
  switch (rn(17)) {
  case 0: BSON_APPEND_NULL(b, k); break;
  case 1: BSON_APPEND_BOOL(b, k, rn(2)); break;
  case 2:
  case 3:
  case 4: BSON_APPEND_INT32(b, k, (int32_t)rn(7) - 1); break;
  case 5: BSON_APPEND_INT64(b, k, case_big && rn(3) == 0 ? ((int64_t)1 << 53) + 1 : (int64_t)rn(7) - 1); break;
  case 6: {
    static const double ds[] = {0.0, -0.0, 1.5, 2.0, 2.5, -1.0, 5.0, 0.1};
    BSON_APPEND_DOUBLE(b, k, ds[rn(8)]);
    break;
  }
  case 7: {
    if (!case_dec) {
      BSON_APPEND_INT32(b, k, (int32_t)rn(7) - 1);
      break;
    }
    static const char *decs[] = {"2", "1.5", "0.1", "5.0", "-1"};
    bson_decimal128_from_string(decs[rn(5)], &dec);
    BSON_APPEND_DECIMAL128(b, k, &dec);
    break;
  }
  default: {
    const char *str = strs[rn(6)]; /* BSON_APPEND_UTF8 evaluates its value twice */
    BSON_APPEND_UTF8(b, k, str);
    break;
  }
  }
}

static const char *field_names[] = {"a", "b", "c"};

static void append_value(bson_t *b, const char *k, int depth);

static void append_array(bson_t *b, const char *k, int depth) {
  bson_t child;
  bson_append_array_begin(b, k, -1, &child);
  int n = rn(5) == 0 ? 0 : 1 + (int)rn(3);
  bool docs = depth < 2 && chance(35);
  for (int i = 0; i < n; i++) {
    char key[16];
    snprintf(key, sizeof key, "%d", i);
    if (docs && chance(85)) {
      bson_t sub;
      bson_append_document_begin(&child, key, -1, &sub);
      for (int f = 0; f < 3; f++)
        if (chance(55)) append_value(&sub, field_names[f], depth + 2);
      bson_append_document_end(&child, &sub);
    } else if (case_nest) {
      append_value(&child, key, depth + 1);
    } else {
      append_scalar(&child, key);
    }
  }
  bson_append_array_end(b, &child);
}

static void append_value(bson_t *b, const char *k, int depth) {
  int r = (int)rn(100);
  if (depth < 2 && r < 22) {
    append_array(b, k, depth);
  } else if (depth < 2 && r < 35) {
    bson_t sub;
    bson_append_document_begin(b, k, -1, &sub);
    for (int f = 0; f < 3; f++)
      if (chance(50)) append_value(&sub, field_names[f], depth + 1);
    bson_append_document_end(b, &sub);
  } else {
    append_scalar(b, k);
  }
}

static void gen_doc(bson_t *b, int id) {
  BSON_APPEND_INT32(b, "_id", id);
  for (int f = 0; f < 3; f++)
    if (chance(78)) append_value(b, field_names[f], 0);
}

/* =========================================================================================
 * Filters
 * ========================================================================================= */
static const char *paths[] = {"a", "b", "c", "a.b", "a.c", "b.a", "a.0", "a.1", "a.0.b",
                              "a.b.c", "b.0", "c.b", "_id"};
#define NPATHS (sizeof paths / sizeof paths[0])

static const char *gen_path(size_t i) {
  const char *p = paths[i];
  if (strchr(p, '.')) cnt(C_DOTPATH);
  for (const char *s = p; *s; s++)
    if (*s >= '0' && *s <= '9' && (s == p || s[-1] == '.')) {
      cnt(C_NUMPATH);
      break;
    }
  return p;
}

/* An operand: mostly scalars, sometimes an array or a document (whole-value comparisons). */
static void append_operand(bson_t *b, const char *k) {
  int r = (int)rn(100);
  if (r < 8) {
    append_array(b, k, 1);
  } else if (r < 13) {
    bson_t sub;
    bson_append_document_begin(b, k, -1, &sub);
    for (int f = 0; f < 3; f++)
      if (chance(50)) append_scalar(&sub, field_names[f]);
    bson_append_document_end(b, &sub);
  } else {
    append_scalar(b, k);
  }
}

static void append_list(bson_t *b, const char *k) {
  bson_t arr;
  bson_append_array_begin(b, k, -1, &arr);
  int n = (int)rn(4);
  for (int i = 0; i < n; i++) {
    char key[16];
    snprintf(key, sizeof key, "%d", i);
    append_operand(&arr, key);
  }
  bson_append_array_end(b, &arr);
}

static void gen_filter(bson_t *f, int depth);
static void gen_op_k(bson_t *ops, int depth, uint32_t *used);
static void gen_op(bson_t *ops, int depth) {
  uint32_t used = 0;
  gen_op_k(ops, depth, &used);
}

static const char *regex_pats[] = {"^a", "b", "^x", "a$", "^$", "A", "x.", "^ab"};
static const char *type_names[] = {"double", "string", "object", "array", "bool", "null", "int",
                                   "long", "decimal", "number"};

/* One operator clause {$op: operand} appended into `ops` (the value document of a path). */
static void gen_op_k(bson_t *ops, int depth, uint32_t *used) {
  bson_t sub, arr;
  int k = (int)rn(17);
  if (k == 16 || (k == 15 && depth >= 3)) k = 2; /* $gt */
  if (*used & (1u << k)) return;                 /* one of each operator per path */
  *used |= 1u << k;
  switch (k) {
  case 0: cnt(C_EQ); append_operand(ops, "$eq"); break;
  case 1: cnt(C_NE); append_operand(ops, "$ne"); break;
  case 2: cnt(C_GT); append_operand(ops, "$gt"); break;
  case 3: cnt(C_GTE); append_operand(ops, "$gte"); break;
  case 4: cnt(C_LT); append_operand(ops, "$lt"); break;
  case 5: cnt(C_LTE); append_operand(ops, "$lte"); break;
  case 6: cnt(C_IN); append_list(ops, "$in"); break;
  case 7: cnt(C_NIN); append_list(ops, "$nin"); break;
  case 8: cnt(C_EXISTS); BSON_APPEND_BOOL(ops, "$exists", rn(2)); break;
  case 9:
    cnt(C_TYPE);
    if (chance(70)) {
      const char *tn = type_names[rn(10)];
      BSON_APPEND_UTF8(ops, "$type", tn);
    } else {
      static const int nums[] = {1, 2, 3, 4, 8, 10, 16, 18, 19};
      BSON_APPEND_INT32(ops, "$type", nums[rn(9)]);
    }
    break;
  case 10: {
    cnt(C_REGEX);
    const char *pat = regex_pats[rn(8)];
    BSON_APPEND_UTF8(ops, "$regex", pat);
    if (chance(30)) BSON_APPEND_UTF8(ops, "$options", "i");
    break;
  }
  case 11:
    cnt(C_MOD);
    bson_append_array_begin(ops, "$mod", -1, &arr);
    BSON_APPEND_INT32(&arr, "0", 2 + (int32_t)rn(2));
    BSON_APPEND_INT32(&arr, "1", (int32_t)rn(2));
    bson_append_array_end(ops, &arr);
    break;
  case 12: {
    cnt(C_ALL);
    bson_append_array_begin(ops, "$all", -1, &arr);
    int n = 1 + (int)rn(2);
    for (int i = 0; i < n; i++) append_scalar(&arr, i ? "1" : "0");
    bson_append_array_end(ops, &arr);
    break;
  }
  case 13:
    cnt(C_ELEMMATCH);
    bson_append_document_begin(ops, "$elemMatch", -1, &sub);
    if (chance(50) && depth < 3) { /* object form: a query on element documents */
      bson_t inner;
      const char *fld = field_names[rn(3)];
      if (chance(50)) {
        append_scalar(&sub, fld);
      } else {
        bson_append_document_begin(&sub, fld, -1, &inner);
        gen_op(&inner, depth + 1);
        bson_append_document_end(&sub, &inner);
      }
    } else { /* value form: operators on the elements */
      gen_op(&sub, depth + 1);
    }
    bson_append_document_end(ops, &sub);
    break;
  case 14:
    cnt(C_SIZE);
    BSON_APPEND_INT32(ops, "$size", (int32_t)rn(4));
    break;
  default:
    cnt(C_NOT);
    bson_append_document_begin(ops, "$not", -1, &sub);
    gen_op(&sub, depth + 1);
    bson_append_document_end(ops, &sub);
    break;
  }
}

/* Appends one clause to the filter document `f`; `used` holds the keys already there (a filter
 * document with a repeated key cannot be expressed in Python or JavaScript). */
static bool key_used(uint64_t *used, int slot) {
  if (*used & (1ull << slot)) return true;
  *used |= 1ull << slot;
  return false;
}

static void gen_clause(bson_t *f, int depth, uint64_t *used) {
  int r = (int)rn(100);
  if (depth < 2 && r < 14) {
    static const char *logic[] = {"$and", "$or", "$nor"};
    int which = (int)rn(3);
    if (key_used(used, 60 + which)) return;
    cnt(which == 0 ? C_AND : which == 1 ? C_OR : C_NOR);
    bson_t arr;
    bson_append_array_begin(f, logic[which], -1, &arr);
    int n = 1 + (int)rn(3);
    for (int i = 0; i < n; i++) {
      char key[16];
      snprintf(key, sizeof key, "%d", i);
      bson_t sub;
      bson_append_document_begin(&arr, key, -1, &sub);
      gen_filter(&sub, depth + 1);
      bson_append_document_end(&arr, &sub);
    }
    bson_append_array_end(f, &arr);
    return;
  }
  size_t pi = chance(55) ? rn(3) : rn(NPATHS);
  if (key_used(used, (int)pi)) return;
  const char *p = gen_path(pi);
  if (r < 30) { /* implicit equality */
    cnt(C_EQ);
    append_operand(f, p);
  } else if (r < 34) { /* a regex value */
    cnt(C_REGEX);
    BSON_APPEND_REGEX(f, p, regex_pats[rn(8)], chance(30) ? "i" : "");
  } else {
    bson_t ops;
    uint32_t ops_used = 0;
    bson_append_document_begin(f, p, -1, &ops);
    gen_op_k(&ops, depth, &ops_used);
    if (chance(20)) gen_op_k(&ops, depth, &ops_used); /* two operators on one path */
    bson_append_document_end(f, &ops);
  }
}

static void gen_filter(bson_t *f, int depth) {
  int n = depth == 0 ? 1 + (chance(35) ? 1 : 0) + (chance(10) ? 1 : 0) : 1 + (int)rn(2);
  uint64_t used = 0;
  for (int i = 0; i < n; i++) gen_clause(f, depth, &used);
}

/* =========================================================================================
 * Updates, projections, sorts
 * ========================================================================================= */
/* Update paths: each operator takes its own top-level field (MongoDB rejects conflicting paths). */
static const char *upd_fields[] = {"a", "b", "c", "d"};

static void append_number_operand(bson_t *b, const char *k) {
  bson_decimal128_t dec;
  switch (rn(5)) {
  case 0: BSON_APPEND_INT32(b, k, (int32_t)rn(5) - 1); break;
  case 1: BSON_APPEND_INT64(b, k, rn(5) == 0 ? (int64_t)INT32_MAX : (int64_t)rn(5) - 1); break;
  case 2: BSON_APPEND_DOUBLE(b, k, rn(2) ? 1.5 : 2.0); break;
  case 3:
    if (!case_dec) {
      BSON_APPEND_INT64(b, k, 3);
      break;
    }
    bson_decimal128_from_string(rn(2) ? "2" : "0.5", &dec);
    BSON_APPEND_DECIMAL128(b, k, &dec);
    break;
  default: BSON_APPEND_INT32(b, k, rn(2) ? INT32_MAX : 2); break;
  }
}

/* A path under top-level field f: "f", "f.b", "f.0", "f.$", "f.$[]", "f.$[].b", "f.$.b". */
static void upd_path(char *buf, size_t n, const char *f, bool allow_pos, bool *positional) {
  int r = (int)rn(100);
  *positional = false;
  if (allow_pos && r < 12) {
    *positional = true;
    cnt(C_POSITIONAL);
    snprintf(buf, n, "%s.$%s", f, chance(30) ? ".b" : "");
  } else if (allow_pos && r < 30) {
    cnt(C_ALLPOS);
    snprintf(buf, n, "%s.$[]%s", f, chance(30) ? ".b" : "");
  } else if (r < 44) {
    cnt(C_DOTPATH);
    snprintf(buf, n, "%s.b", f);
  } else if (r < 50) {
    cnt(C_NUMPATH);
    snprintf(buf, n, "%s.%d", f, (int)rn(3));
  } else {
    snprintf(buf, n, "%s", f);
  }
}

static void gen_each_list(bson_t *b, const char *k, bool docs) {
  bson_t arr;
  bson_append_array_begin(b, k, -1, &arr);
  int n = (int)rn(4);
  for (int i = 0; i < n; i++) {
    char key[16];
    snprintf(key, sizeof key, "%d", i);
    if (docs) {
      bson_t sub;
      bson_append_document_begin(&arr, key, -1, &sub);
      BSON_APPEND_INT32(&sub, "b", (int32_t)rn(4));
      bson_append_document_end(&arr, &sub);
    } else {
      BSON_APPEND_INT32(&arr, key, (int32_t)rn(6) - 1);
    }
  }
  bson_append_array_end(b, &arr);
}

/* Generates an update with 1-3 operators; *positional tells whether it uses `$` (then the case's
 * filter must mention the array). Returns the field the positional path is under, or NULL. */
static const char *gen_update(bson_t *u, bool upsert) {
  int nops = 1 + (chance(35) ? 1 : 0) + (chance(10) ? 1 : 0);
  uint32_t used_fields = 0, used_ops = 0;
  const char *pos_field = NULL;
  for (int i = 0; i < nops; i++) {
    int op = (int)rn(upsert ? 15 : 14);
    if (op == 13) op = upsert ? 14 : 0; /* an upsert's extra field, else one more $set */
    if (op == 8) op = 7;                /* $push has two slots of probability */
    if (op == 3 && rn(2)) op = 2;
    if (used_ops & (1u << op)) continue; /* one of each operator: no repeated keys */
    used_ops |= 1u << op;
    int fi;
    int tries = 0;
    do fi = (int)rn(4);
    while ((used_fields & (1u << fi)) && ++tries < 20);
    if (used_fields & (1u << fi)) break;
    used_fields |= 1u << fi;
    const char *f = upd_fields[fi];
    char path[32];
    bool pos = false;
    bool allow_pos = nops == 1 && !upsert;
    bson_t o, sub;
    switch (op) {
    case 0:
      cnt(C_SET);
      upd_path(path, sizeof path, f, allow_pos, &pos);
      bson_append_document_begin(u, "$set", -1, &o);
      append_operand(&o, path);
      bson_append_document_end(u, &o);
      break;
    case 1:
      cnt(C_UNSET);
      upd_path(path, sizeof path, f, false, &pos);
      bson_append_document_begin(u, "$unset", -1, &o);
      BSON_APPEND_UTF8(&o, path, "");
      bson_append_document_end(u, &o);
      break;
    case 2:
    case 3:
      cnt(op == 2 ? C_INC : C_MUL);
      upd_path(path, sizeof path, f, allow_pos, &pos);
      bson_append_document_begin(u, op == 2 ? "$inc" : "$mul", -1, &o);
      append_number_operand(&o, path);
      bson_append_document_end(u, &o);
      break;
    case 4:
    case 5:
      cnt(op == 4 ? C_MIN : C_MAX);
      upd_path(path, sizeof path, f, allow_pos, &pos);
      bson_append_document_begin(u, op == 4 ? "$min" : "$max", -1, &o);
      append_scalar(&o, path);
      bson_append_document_end(u, &o);
      break;
    case 6: {
      int ti;
      tries = 0;
      do ti = (int)rn(4);
      while ((used_fields & (1u << ti)) && ++tries < 20);
      if (used_fields & (1u << ti)) break;
      used_fields |= 1u << ti;
      cnt(C_RENAME);
      bson_append_document_begin(u, "$rename", -1, &o);
      BSON_APPEND_UTF8(&o, f, upd_fields[ti]);
      bson_append_document_end(u, &o);
      break;
    }
    case 7:
    case 8: {
      cnt(C_PUSH);
      bool docs = chance(40);
      bson_append_document_begin(u, "$push", -1, &o);
      if (chance(40)) {
        if (docs) {
          bson_append_document_begin(&o, f, -1, &sub);
          BSON_APPEND_INT32(&sub, "b", (int32_t)rn(4));
          bson_append_document_end(&o, &sub);
        } else {
          append_scalar(&o, f);
        }
      } else {
        cnt(C_EACH);
        bson_append_document_begin(&o, f, -1, &sub);
        gen_each_list(&sub, "$each", docs);
        if (chance(40)) {
          cnt(C_SLICE);
          BSON_APPEND_INT32(&sub, "$slice", (int32_t)rn(7) - 3);
        }
        if (chance(40)) {
          cnt(C_SORT);
          if (docs && chance(70)) {
            bson_t so;
            bson_append_document_begin(&sub, "$sort", -1, &so);
            BSON_APPEND_INT32(&so, "b", rn(2) ? 1 : -1);
            bson_append_document_end(&sub, &so);
          } else {
            BSON_APPEND_INT32(&sub, "$sort", rn(2) ? 1 : -1);
          }
        }
        if (chance(30)) {
          cnt(C_POSITION);
          BSON_APPEND_INT32(&sub, "$position", (int32_t)rn(5) - 1);
        }
        bson_append_document_end(&o, &sub);
      }
      bson_append_document_end(u, &o);
      break;
    }
    case 9:
      cnt(C_ADDTOSET);
      bson_append_document_begin(u, "$addToSet", -1, &o);
      if (chance(50)) {
        append_scalar(&o, f);
      } else {
        cnt(C_EACH);
        bson_append_document_begin(&o, f, -1, &sub);
        gen_each_list(&sub, "$each", false);
        bson_append_document_end(&o, &sub);
      }
      bson_append_document_end(u, &o);
      break;
    case 10:
      cnt(C_POP);
      bson_append_document_begin(u, "$pop", -1, &o);
      BSON_APPEND_INT32(&o, f, rn(2) ? 1 : -1);
      bson_append_document_end(u, &o);
      break;
    case 11:
      cnt(C_PULL);
      bson_append_document_begin(u, "$pull", -1, &o);
      if (chance(40)) {
        append_scalar(&o, f);
      } else if (chance(50)) {
        bson_append_document_begin(&o, f, -1, &sub);
        static const char *cmp[] = {"$gte", "$lt", "$in", "$ne"};
        int c = (int)rn(4);
        if (c == 2) append_list(&sub, "$in");
        else BSON_APPEND_INT32(&sub, cmp[c], (int32_t)rn(4));
        bson_append_document_end(&o, &sub);
      } else { /* a condition on element documents */
        bson_append_document_begin(&o, f, -1, &sub);
        BSON_APPEND_INT32(&sub, "b", (int32_t)rn(4));
        bson_append_document_end(&o, &sub);
      }
      bson_append_document_end(u, &o);
      break;
    case 12:
      cnt(C_PULLALL);
      bson_append_document_begin(u, "$pullAll", -1, &o);
      gen_each_list(&o, f, false);
      bson_append_document_end(u, &o);
      break;
    case 13:
    case 14:
      if (op == 14) {
        cnt(C_SETONINSERT);
        bson_append_document_begin(u, "$setOnInsert", -1, &o);
        append_operand(&o, f);
        bson_append_document_end(u, &o);
      } else {
        cnt(C_SET);
        bson_append_document_begin(u, "$set", -1, &o);
        append_operand(&o, f);
        bson_append_document_end(u, &o);
      }
      break;
    }
    if (pos) pos_field = f;
  }
  if (bson_count_keys(u) == 0) {
    bson_t o;
    cnt(C_SET);
    bson_append_document_begin(u, "$set", -1, &o);
    BSON_APPEND_INT32(&o, "d", 1);
    bson_append_document_end(u, &o);
  }
  return pos_field;
}

static void gen_projection(bson_t *p) {
  int r = (int)rn(100);
  uint64_t used = 0;
  if (r < 45) { /* inclusion */
    cnt(C_PROJ_INCL);
    int n = 1 + (int)rn(2);
    for (int i = 0; i < n; i++) {
      size_t pi = rn(NPATHS - 1); /* not _id */
      if (key_used(&used, (int)pi)) continue;
      BSON_APPEND_INT32(p, paths[pi], 1);
    }
    if (chance(30)) BSON_APPEND_INT32(p, "_id", 0);
  } else if (r < 75) { /* exclusion */
    cnt(C_PROJ_EXCL);
    int n = 1 + (int)rn(2);
    for (int i = 0; i < n; i++) {
      size_t pi = rn(NPATHS);
      if (key_used(&used, (int)pi)) continue;
      BSON_APPEND_INT32(p, paths[pi], 0);
    }
  } else if (r < 82) {
    cnt(C_PROJ_SLICE);
    bson_t s;
    bson_append_document_begin(p, field_names[rn(3)], -1, &s);
    if (chance(60)) {
      BSON_APPEND_INT32(&s, "$slice", (int32_t)rn(5) - 2);
    } else {
      bson_t arr;
      bson_append_array_begin(&s, "$slice", -1, &arr);
      BSON_APPEND_INT32(&arr, "0", (int32_t)rn(4) - 1);
      BSON_APPEND_INT32(&arr, "1", 1 + (int32_t)rn(2));
      bson_append_array_end(&s, &arr);
    }
    bson_append_document_end(p, &s);
  } else {
    cnt(C_PROJ_ELEMMATCH);
    bson_t s, q;
    bson_append_document_begin(p, field_names[rn(3)], -1, &s);
    bson_append_document_begin(&s, "$elemMatch", -1, &q);
    if (chance(50)) BSON_APPEND_INT32(&q, "b", (int32_t)rn(4));
    else {
      bson_t o;
      bson_append_document_begin(&q, "b", -1, &o);
      BSON_APPEND_INT32(&o, "$gte", (int32_t)rn(4));
      bson_append_document_end(&q, &o);
    }
    bson_append_document_end(&s, &q);
    bson_append_document_end(p, &s);
  }
}

static void gen_sort(bson_t *s) {
  cnt(C_SORT_KEYS);
  int n = 1 + (chance(40) ? 1 : 0);
  uint64_t used = 0;
  for (int i = 0; i < n; i++) {
    static const size_t sp[] = {0, 1, 2, 3, 5, 4, 6};
    size_t pi = sp[rn(7)];
    if (key_used(&used, (int)pi)) continue;
    BSON_APPEND_INT32(s, paths[pi], rn(2) ? 1 : -1);
  }
}

/* =========================================================================================
 * Cases and NexusLite's answers
 * ========================================================================================= */
enum { K_FIND, K_PROJECT, K_SORT, K_UPDATE, K_UPSERT, K_N };
static const char *kind_names[K_N] = {"find", "project", "sort", "update", "upsert"};

typedef struct dcase {
  int kind;          /* K_* */
  bson_t c;          /* the case as sent to the oracles */
  bson_t nx;         /* NexusLite's answer, in the oracles' result format */
  int counts[C_N];   /* operators the case exercises */
  bool compared;     /* at least one oracle compared it */
} dcase;

static void gen_case(dcase *dc, int id) {
  memset(case_counts, 0, sizeof case_counts);
  case_dec = chance(12);
  case_big = chance(12);
  case_ints = false;
  case_nest = chance(20);
  bson_init(&dc->c);
  int r = (int)rn(100);
  dc->kind = r < 45 ? K_FIND : r < 58 ? K_PROJECT : r < 68 ? K_SORT : r < 93 ? K_UPDATE : K_UPSERT;
  if ((dc->kind == K_PROJECT && !DIFF_HAVE_PROJ) || (dc->kind == K_SORT && !DIFF_HAVE_SORT) ||
      ((dc->kind == K_UPDATE || dc->kind == K_UPSERT) && !DIFF_HAVE_UPDATE))
    dc->kind = K_FIND;
  BSON_APPEND_INT32(&dc->c, "id", id);
  BSON_APPEND_UTF8(&dc->c, "op", kind_names[dc->kind]);
  bson_t arr, sub;
  case_ints = dc->kind == K_FIND && chance(25);
  bson_append_array_begin(&dc->c, "docs", -1, &arr);
  int ndocs = dc->kind == K_UPSERT ? 0 : dc->kind == K_UPDATE ? 1 : 4 + (int)rn(6);
  for (int i = 0; i < ndocs; i++) {
    char key[16];
    snprintf(key, sizeof key, "%d", i);
    bson_append_document_begin(&arr, key, -1, &sub);
    gen_doc(&sub, i);
    bson_append_document_end(&arr, &sub);
  }
  bson_append_array_end(&dc->c, &arr);
  case_ints = false;
  if (dc->kind == K_UPDATE || dc->kind == K_UPSERT) {
    bson_t u = BSON_INITIALIZER;
    const char *pos_field = gen_update(&u, dc->kind == K_UPSERT);
    bson_append_document_begin(&dc->c, "filter", -1, &sub);
    if (dc->kind == K_UPSERT) {
      BSON_APPEND_INT32(&sub, "_id", 7);
      if (chance(50)) append_scalar(&sub, "a");
      if (chance(30)) append_scalar(&sub, "b.c");
    } else if (pos_field) { /* `$` needs the array in the query */
      char p[16];
      snprintf(p, sizeof p, chance(70) ? "%s" : "%s.b", pos_field);
      if (chance(50)) {
        append_scalar(&sub, p);
      } else {
        bson_t o;
        bson_append_document_begin(&sub, p, -1, &o);
        BSON_APPEND_INT32(&o, rn(2) ? "$gte" : "$lte", (int32_t)rn(4));
        bson_append_document_end(&sub, &o);
      }
    } else if (chance(30)) {
      gen_filter(&sub, 1);
    }
    bson_append_document_end(&dc->c, &sub);
    BSON_APPEND_DOCUMENT(&dc->c, "update", &u);
    bson_destroy(&u);
  } else {
    bson_append_document_begin(&dc->c, "filter", -1, &sub);
    if (dc->kind == K_FIND || chance(30)) gen_filter(&sub, 0);
    bson_append_document_end(&dc->c, &sub);
    if (dc->kind == K_PROJECT) {
      bson_append_document_begin(&dc->c, "proj", -1, &sub);
      gen_projection(&sub);
      bson_append_document_end(&dc->c, &sub);
    } else if (dc->kind == K_SORT) {
      bson_append_document_begin(&dc->c, "sort", -1, &sub);
      gen_sort(&sub);
      bson_append_document_end(&dc->c, &sub);
    }
  }
  memcpy(dc->counts, case_counts, sizeof case_counts);
}

static bool get_doc(const bson_t *b, const char *key, bson_t *out) {
  bson_iter_t it;
  uint32_t len;
  const uint8_t *data;
  if (!bson_iter_init_find(&it, b, key)) return false;
  if (!BSON_ITER_HOLDS_DOCUMENT(&it) && !BSON_ITER_HOLDS_ARRAY(&it)) return false;
  if (BSON_ITER_HOLDS_DOCUMENT(&it)) bson_iter_document(&it, &len, &data);
  else bson_iter_array(&it, &len, &data);
  return bson_init_static(out, data, len);
}

/* The documents of a case, borrowed. Returns how many (at most 16). */
static int case_docs(const bson_t *c, bson_t docs[16]) {
  bson_t arr;
  if (!get_doc(c, "docs", &arr)) return 0;
  bson_iter_t it;
  int n = 0;
  bson_iter_init(&it, &arr);
  while (bson_iter_next(&it) && n < 16) {
    uint32_t len;
    const uint8_t *data;
    bson_iter_document(&it, &len, &data);
    bson_init_static(&docs[n++], data, len);
  }
  return n;
}

static void nx_error(bson_t *res, int rc) {
  bson_reinit(res);
  const char *m = nx_err_msg();
  char buf[512];
  snprintf(buf, sizeof buf, "%s: %s", nx_code_name(rc), m ? m : "");
  BSON_APPEND_UTF8(res, "error", buf);
}

static void append_id(bson_t *arr, int i, const bson_t *doc) {
  bson_iter_t it;
  char key[16];
  snprintf(key, sizeof key, "%d", i);
  if (bson_iter_init_find(&it, doc, "_id")) bson_append_value(arr, key, -1, bson_iter_value(&it));
}

static void nx_eval(dcase *dc) {
  bson_t *res = &dc->nx;
  bson_init(res);
  bson_t docs[16], fspec;
  int n = case_docs(&dc->c, docs);
  if (!get_doc(&dc->c, "filter", &fspec)) bson_init(&fspec);
  filter_t *f = NULL;
  int rc = filter_parse(&fspec, &f);
  if (rc != NX_OK) {
    nx_error(res, rc);
    return;
  }
  bson_t arr;
  switch (dc->kind) {
  case K_FIND:
  case K_SORT: {
    int sel[16], ns = 0;
    bool ties[16] = {false};
    for (int i = 0; i < n; i++) {
      bool m = false;
      rc = filter_match(f, &docs[i], &m);
      if (rc != NX_OK) goto fail;
      if (m) sel[ns++] = i;
    }
#if DIFF_HAVE_SORT
    if (dc->kind == K_SORT) {
      bson_t sspec;
      sort_t *s = NULL;
      get_doc(&dc->c, "sort", &sspec);
      if ((rc = sort_parse(&sspec, &s)) != NX_OK) goto fail;
      for (int i = 1; i < ns; i++) { /* stable insertion sort */
        int x = sel[i], j = i;
        while (j > 0 && sort_cmp(s, &docs[sel[j - 1]], &docs[x]) > 0) {
          sel[j] = sel[j - 1];
          j--;
        }
        sel[j] = x;
      }
      for (int i = 1; i < ns; i++) ties[i] = sort_cmp(s, &docs[sel[i - 1]], &docs[sel[i]]) == 0;
      sort_free(s);
    }
#endif
    bson_append_array_begin(res, "ids", -1, &arr);
    for (int i = 0; i < ns; i++) append_id(&arr, i, &docs[sel[i]]);
    bson_append_array_end(res, &arr);
    if (dc->kind == K_SORT) {
      bson_append_array_begin(res, "ties", -1, &arr);
      for (int i = 0; i < ns; i++) {
        char key[16];
        snprintf(key, sizeof key, "%d", i);
        BSON_APPEND_BOOL(&arr, key, ties[i]);
      }
      bson_append_array_end(res, &arr);
    }
    break;
  }
#if DIFF_HAVE_PROJ
  case K_PROJECT: {
    bson_t pspec;
    proj_t *p = NULL;
    bson_t tmp;
    get_doc(&dc->c, "proj", &pspec);
    if ((rc = proj_parse(&pspec, &p)) != NX_OK) goto fail;
    bson_append_array_begin(res, "docs", -1, &arr);
    int k = 0;
    for (int i = 0; i < n; i++) {
      bool m = false;
      if ((rc = filter_match(f, &docs[i], &m)) != NX_OK) break;
      if (!m) continue;
      if ((rc = proj_apply(p, &docs[i], f, &tmp)) != NX_OK) break;
      char key[16];
      snprintf(key, sizeof key, "%d", k++);
      BSON_APPEND_DOCUMENT(&arr, key, &tmp);
      bson_destroy(&tmp);
    }
    bson_append_array_end(res, &arr);
    proj_free(p);
    if (rc != NX_OK) goto fail;
    break;
  }
#endif
#if DIFF_HAVE_UPDATE
  case K_UPDATE:
  case K_UPSERT: {
    bson_t uspec, seed, tmp;
    update_t *u = NULL;
    get_doc(&dc->c, "update", &uspec);
    if ((rc = update_parse(&uspec, &u)) != NX_OK) goto fail;
    const bson_t *target = NULL;
    if (dc->kind == K_UPSERT) {
      if ((rc = update_build_upsert_seed(f, &seed)) != NX_OK) {
        update_free(u);
        goto fail;
      }
      target = &seed;
    } else {
      bool m = false;
      if ((rc = filter_match(f, &docs[0], &m)) != NX_OK) {
        update_free(u);
        goto fail;
      }
      if (!m) {
        BSON_APPEND_BOOL(res, "nomatch", true);
        update_free(u);
        break;
      }
      target = &docs[0];
    }
    bool changed = false;
    rc = update_apply(u, target, f, dc->kind == K_UPSERT, 1700000000000, &tmp, &changed);
    if (dc->kind == K_UPSERT) bson_destroy(&seed);
    update_free(u);
    if (rc != NX_OK) goto fail;
    BSON_APPEND_DOCUMENT(res, "doc", &tmp);
    bson_destroy(&tmp);
    break;
  }
#endif
  default:
    BSON_APPEND_UTF8(res, "skip", "not built");
    break;
  }
  filter_free(f);
  return;
fail:
  filter_free(f);
  nx_error(res, rc);
}

/* =========================================================================================
 * Running an oracle: one process, the whole batch through files
 * ========================================================================================= */
enum { O_MONGOMOCK, O_MINGO, O_N };
static const char *oracle_names[O_N] = {"mongomock", "mingo"};

/* Spawns argv with stdin/stdout/stderr redirected to files. Returns the pid or -1. */
static pid_t spawn_redirected(const char *const argv[], const char *in, const char *out,
                              const char *err) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, in, O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid;
  int rc = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  return rc == 0 ? pid : -1;
}

static char *slurp(const char *path, size_t *len) {
  FILE *fp = fopen(path, "rb");
  if (!fp) return NULL;
  fseek(fp, 0, SEEK_END);
  long n = ftell(fp);
  fseek(fp, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  size_t got = fread(buf, 1, (size_t)n, fp);
  fclose(fp);
  buf[got] = 0;
  *len = got;
  return buf;
}

/* Parses the oracle's output file into results[id] (bson_t, initialised where present). */
static size_t read_results(const char *path, bson_t *results, bool *have, size_t ncases) {
  size_t len = 0, parsed = 0;
  char *text = slurp(path, &len);
  if (!text) return 0;
  char *line = text;
  while (line < text + len) {
    char *nl = strchr(line, '\n');
    if (!nl) nl = text + len;
    *nl = 0;
    if (nl > line) {
      bson_error_t err;
      bson_t b;
      if (bson_init_from_json(&b, line, nl - line, &err)) {
        bson_iter_t it;
        if (bson_iter_init_find(&it, &b, "id") && BSON_ITER_HOLDS_NUMBER(&it)) {
          int64_t id = bson_iter_as_int64(&it);
          if (id >= 0 && (size_t)id < ncases && !have[id]) {
            bson_copy_to(&b, &results[id]);
            have[id] = true;
            parsed++;
          }
        }
        bson_destroy(&b);
      } else {
        fprintf(stderr, "differential: unparsable oracle line (%s): %.200s\n", err.message, line);
      }
    }
    line = nl + 1;
  }
  free(text);
  return parsed;
}

/* =========================================================================================
 * Normalisers: each oracle departure from MongoDB's documented behaviour, by name
 * ========================================================================================= */
typedef struct normaliser {
  const char *name;   /* as listed in docs/query-semantics.md, "Oracle departures" */
  int oracle;         /* O_MONGOMOCK, O_MINGO */
  long fired;         /* cases it skipped or relaxed */
} normaliser;

enum {
  N_MM_UNSUPPORTED, N_MM_DECIMAL, N_MM_NO_MOD, N_MM_NUMERIC_TYPES,
  N_MI_UNSUPPORTED, N_MI_DECIMAL, N_MI_INT64, N_MI_NO_UPSERT, N_MI_NUMERIC_TYPES,
  N_ANY_FIELD_ORDER,
  N_MM_NULL, N_MM_TYPE_CODES, N_MM_SIZE, N_MM_TYPE_INT_LONG, N_MM_NOT, N_MM_EMPTY_DOC,
  N_MM_BOOL_NUMBER, N_MM_CRASH, N_MM_ELEMMATCH_VALUE,
  N_MI_NESTED_ARRAYS, N_MI_ORDERING, N_MI_NULL, N_MI_MOD, N_MI_TYPE_NUMERIC,
  N_MM_RANGE, N_MM_TYPE_NULL, N_MM_NESTED_ARRAYS, N_MI_ALL_SCALAR, N_MI_EMPTY_ARRAY,
  N_MM_ELEMMATCH_SCALARS, N_MI_ELEMMATCH_SCALARS, N_MI_TYPE_ARRAYS,
  N_MM_UPDATE_ERRORS, N_MI_UPDATE_ERRORS, N_MM_NO_MUL, N_UPDATE_FIELD_ORDER, N_MM_ADDTOSET_EACH,
  N_MM_SLICE_PROJ, N_MI_ELEMMATCH_PROJ, N_MM_EXCL_DOTTED, N_MI_DOTTED_INCL, N_MI_SLICE_PROJ,
  N_MM_SORT_ARRAYS, N_MI_SORT_ARRAYS, N_MI_SORT_DOCS,
  N_PROJ_COLLISION, N_MM_NUMPATH_UPDATE, N_MI_NUMPATH_PROJ, N_MI_ADDTOSET_DUPS, N_MI_PUSH_SORT,
  N_MM_NUMPATH_FILTER, N_MI_SIZE_ZERO, N_MM_MINMAX_TYPES,
  N_MM_WHOLE_ARRAY_IN, N_MM_ALLPOS, N_MM_EXISTS_PATHS, N_MM_TYPE_ARRAY, N_MM_EMPTY_IN,
  N_MI_SORT_NUMPATH, N_MI_CRASH, N_MM_REGEX_COMBINED, N_MI_SIZE_THROUGH_ARRAYS, N_MI_PULL_COND,
  N_COUNT
};
static normaliser norms[N_COUNT] = {
  [N_MM_UNSUPPORTED] = {"mongomock_not_implemented", O_MONGOMOCK, 0},
  [N_MM_DECIMAL] = {"mongomock_no_decimal128", O_MONGOMOCK, 0},
  [N_MM_NO_MOD] = {"mongomock_no_mod", O_MONGOMOCK, 0},
  [N_MM_NUMERIC_TYPES] = {"mongomock_numeric_type_promotion", O_MONGOMOCK, 0},
  [N_MI_UNSUPPORTED] = {"mingo_unsupported_type", O_MINGO, 0},
  [N_MI_DECIMAL] = {"mingo_no_decimal128", O_MINGO, 0},
  [N_MI_INT64] = {"mingo_int64_precision", O_MINGO, 0},
  [N_MI_NO_UPSERT] = {"mingo_no_upsert", O_MINGO, 0},
  [N_MI_NUMERIC_TYPES] = {"mingo_no_int_long_distinction", O_MINGO, 0},
  [N_ANY_FIELD_ORDER] = {"projection_field_order", -1, 0},
  [N_MM_NULL] = {"mongomock_null_vs_missing", O_MONGOMOCK, 0},
  [N_MM_TYPE_CODES] = {"mongomock_type_numeric_codes", O_MONGOMOCK, 0},
  [N_MM_SIZE] = {"mongomock_size_non_array", O_MONGOMOCK, 0},
  [N_MM_TYPE_INT_LONG] = {"mongomock_type_int_long", O_MONGOMOCK, 0},
  [N_MM_NOT] = {"mongomock_not_on_missing", O_MONGOMOCK, 0},
  [N_MM_EMPTY_DOC] = {"mongomock_empty_document_operand", O_MONGOMOCK, 0},
  [N_MM_BOOL_NUMBER] = {"mongomock_bool_equals_number", O_MONGOMOCK, 0},
  [N_MM_CRASH] = {"mongomock_internal_error", O_MONGOMOCK, 0},
  [N_MM_ELEMMATCH_VALUE] = {"mongomock_elemmatch_value_form", O_MONGOMOCK, 0},
  [N_MI_NESTED_ARRAYS] = {"mingo_nested_array_flattening", O_MINGO, 0},
  [N_MI_ORDERING] = {"mingo_object_array_ordering", O_MINGO, 0},
  [N_MI_NULL] = {"mingo_null_vs_missing", O_MINGO, 0},
  [N_MI_MOD] = {"mingo_mod_on_non_numbers", O_MINGO, 0},
  [N_MI_TYPE_NUMERIC] = {"mingo_type_numeric_subtypes", O_MINGO, 0},
  [N_MM_RANGE] = {"mongomock_range_cross_type_and_arrays", O_MONGOMOCK, 0},
  [N_MM_TYPE_NULL] = {"mongomock_type_null", O_MONGOMOCK, 0},
  [N_MM_NESTED_ARRAYS] = {"mongomock_nested_array_flattening", O_MONGOMOCK, 0},
  [N_MI_ALL_SCALAR] = {"mingo_all_on_non_array", O_MINGO, 0},
  [N_MI_EMPTY_ARRAY] = {"mingo_empty_array_operand", O_MINGO, 0},
  [N_MM_ELEMMATCH_SCALARS] = {"mongomock_elemmatch_object_on_scalars", O_MONGOMOCK, 0},
  [N_MI_ELEMMATCH_SCALARS] = {"mingo_elemmatch_object_on_scalars", O_MINGO, 0},
  [N_MI_TYPE_ARRAYS] = {"mingo_type_on_arrays", O_MINGO, 0},
  [N_MM_UPDATE_ERRORS] = {"mongomock_update_errors", O_MONGOMOCK, 0},
  [N_MI_UPDATE_ERRORS] = {"mingo_update_errors", O_MINGO, 0},
  [N_MM_NO_MUL] = {"mongomock_no_mul", O_MONGOMOCK, 0},
  [N_UPDATE_FIELD_ORDER] = {"update_new_field_order", -1, 0},
  [N_MM_ADDTOSET_EACH] = {"mongomock_addtoset_each_duplicates", O_MONGOMOCK, 0},
  [N_MM_SLICE_PROJ] = {"mongomock_slice_projection", O_MONGOMOCK, 0},
  [N_MI_ELEMMATCH_PROJ] = {"mingo_elemmatch_projection_non_array", O_MINGO, 0},
  [N_MM_EXCL_DOTTED] = {"mongomock_dotted_exclusion_on_scalar", O_MONGOMOCK, 0},
  [N_MI_DOTTED_INCL] = {"mingo_dotted_inclusion_projection", O_MINGO, 0},
  [N_MI_SLICE_PROJ] = {"oracle_slice_projection_drops_fields", -1, 0},
  [N_MM_SORT_ARRAYS] = {"mongomock_sort_array_min_max", O_MONGOMOCK, 0},
  [N_MI_SORT_ARRAYS] = {"mingo_sort_array_min_max", O_MINGO, 0},
  [N_MI_SORT_DOCS] = {"mingo_sort_documents", O_MINGO, 0},
  [N_PROJ_COLLISION] = {"oracle_projection_path_collision", -1, 0},
  [N_MM_NUMPATH_UPDATE] = {"mongomock_numeric_path_update", O_MONGOMOCK, 0},
  [N_MI_NUMPATH_PROJ] = {"mingo_projection_numeric_path", O_MINGO, 0},
  [N_MI_ADDTOSET_DUPS] = {"mingo_addtoset_dedupes_existing", O_MINGO, 0},
  [N_MI_PUSH_SORT] = {"mingo_push_sort", O_MINGO, 0},
  [N_MM_NUMPATH_FILTER] = {"mongomock_numeric_path_filter", O_MONGOMOCK, 0},
  [N_MI_SIZE_ZERO] = {"mingo_size_zero_on_missing", O_MINGO, 0},
  [N_MM_MINMAX_TYPES] = {"mongomock_minmax_cross_type", O_MONGOMOCK, 0},
  [N_MM_WHOLE_ARRAY_IN] = {"mongomock_whole_array_in", O_MONGOMOCK, 0},
  [N_MM_ALLPOS] = {"mongomock_all_positional_minmax", O_MONGOMOCK, 0},
  [N_MM_EXISTS_PATHS] = {"mongomock_exists_dotted_paths", O_MONGOMOCK, 0},
  [N_MM_TYPE_ARRAY] = {"mongomock_type_array", O_MONGOMOCK, 0},
  [N_MM_EMPTY_IN] = {"mongomock_empty_in", O_MONGOMOCK, 0},
  [N_MI_SORT_NUMPATH] = {"mingo_sort_numeric_path", O_MINGO, 0},
  [N_MI_CRASH] = {"mingo_internal_error", O_MINGO, 0},
  [N_MM_REGEX_COMBINED] = {"mongomock_regex_with_other_operators", O_MONGOMOCK, 0},
  [N_MI_SIZE_THROUGH_ARRAYS] = {"mingo_collects_values_through_arrays", O_MINGO, 0},
  [N_MI_PULL_COND] = {"mingo_pull_condition_on_scalars", O_MINGO, 0},
};

/* ---- Value comparison ---- */
static bool value_eq(const bson_value_t *a, const bson_value_t *b, bool strict, bool ordered);

static bool container_eq(const bson_value_t *a, const bson_value_t *b, bool strict, bool ordered) {
  bson_iter_t ia, ib;
  bson_iter_init_from_data(&ia, a->value.v_doc.data, a->value.v_doc.data_len);
  bson_iter_init_from_data(&ib, b->value.v_doc.data, b->value.v_doc.data_len);
  bool is_doc = a->value_type == BSON_TYPE_DOCUMENT;
  if (ordered || !is_doc) {
    for (;;) {
      bool na = bson_iter_next(&ia), nb = bson_iter_next(&ib);
      if (!na || !nb) return na == nb;
      if (is_doc && strcmp(bson_iter_key(&ia), bson_iter_key(&ib)) != 0) return false;
      if (!value_eq(bson_iter_value(&ia), bson_iter_value(&ib), strict, ordered)) return false;
    }
  }
  /* unordered documents: same number of fields, each found in the other with an equal value */
  uint32_t ca = 0, cb = 0;
  while (bson_iter_next(&ia)) ca++;
  while (bson_iter_next(&ib)) cb++;
  if (ca != cb) return false;
  bson_iter_init_from_data(&ia, a->value.v_doc.data, a->value.v_doc.data_len);
  while (bson_iter_next(&ia)) {
    bson_iter_t f;
    if (!bson_iter_init_from_data(&ib, b->value.v_doc.data, b->value.v_doc.data_len) ||
        !bson_iter_find_w_len(&ib, bson_iter_key(&ia), -1))
      return false;
    f = ib;
    if (!value_eq(bson_iter_value(&ia), bson_iter_value(&f), strict, ordered)) return false;
  }
  return true;
}

static bool value_eq(const bson_value_t *a, const bson_value_t *b, bool strict, bool ordered) {
  bool ca = a->value_type == BSON_TYPE_DOCUMENT || a->value_type == BSON_TYPE_ARRAY;
  bool cb = b->value_type == BSON_TYPE_DOCUMENT || b->value_type == BSON_TYPE_ARRAY;
  if (ca || cb) return a->value_type == b->value_type && container_eq(a, b, strict, ordered);
  if (strict && a->value_type != b->value_type) return false;
  if (doc_cmp_values(a, b) != 0) return false;
  if (strict && a->value_type == BSON_TYPE_DOUBLE) /* -0.0 is kept by MongoDB */
    return signbit(a->value.v_double) == signbit(b->value.v_double) || isnan(a->value.v_double);
  return true;
}

static bool field_eq(const bson_t *a, const bson_t *b, const char *key, bool strict, bool ordered) {
  bson_iter_t ia, ib;
  bool ha = bson_iter_init_find(&ia, a, key), hb = bson_iter_init_find(&ib, b, key);
  if (!ha || !hb) return ha == hb;
  return value_eq(bson_iter_value(&ia), bson_iter_value(&ib), strict, ordered);
}

static bool has_key(const bson_t *b, const char *key) {
  bson_iter_t it;
  return bson_iter_init_find(&it, b, key);
}

static const char *str_field(const bson_t *b, const char *key) {
  bson_iter_t it;
  if (!bson_iter_init_find(&it, b, key) || !BSON_ITER_HOLDS_UTF8(&it)) return "";
  return bson_iter_utf8(&it, NULL);
}

/* True when any value in `b` (recursively) has type t. */
static bool contains_type(const uint8_t *data, uint32_t len, bson_type_t t) {
  bson_iter_t it;
  if (!bson_iter_init_from_data(&it, data, len)) return false;
  while (bson_iter_next(&it)) {
    if (bson_iter_type(&it) == t) return true;
    if (BSON_ITER_HOLDS_DOCUMENT(&it) || BSON_ITER_HOLDS_ARRAY(&it)) {
      uint32_t l;
      const uint8_t *d;
      if (BSON_ITER_HOLDS_DOCUMENT(&it)) bson_iter_document(&it, &l, &d);
      else bson_iter_array(&it, &l, &d);
      if (contains_type(d, l, t)) return true;
    }
  }
  return false;
}

/* Projected documents: each field the oracle returned is in NexusLite's document, equal. */
static bool slice_fields_eq(const bson_t *nx, const bson_t *orc, bool strict) {
  bson_t a, b;
  if (!get_doc(nx, "docs", &a) || !get_doc(orc, "docs", &b)) return false;
  if (bson_count_keys(&a) != bson_count_keys(&b)) return false;
  bson_iter_t ia, ib;
  bson_iter_init(&ia, &a);
  bson_iter_init(&ib, &b);
  while (bson_iter_next(&ia) && bson_iter_next(&ib)) {
    bson_t da, db;
    uint32_t l;
    const uint8_t *d;
    bson_iter_document(&ia, &l, &d);
    bson_init_static(&da, d, l);
    bson_iter_document(&ib, &l, &d);
    bson_init_static(&db, d, l);
    bson_iter_t f;
    bson_iter_init(&f, &db);
    while (bson_iter_next(&f))
      if (!field_eq(&da, &db, bson_iter_key(&f), strict, false)) return false;
  }
  return true;
}

/* Sort results: the same ids, where runs that NexusLite's sort_cmp calls ties may come in any
 * order (MongoDB does not promise an order among equal keys). nx->"ties"[i] is true when
 * position i ties with position i - 1. */
static bool sort_ids_eq(const bson_t *nx, const bson_t *orc) {
  bson_t a, b, ties;
  if (!get_doc(nx, "ids", &a) || !get_doc(orc, "ids", &b)) return false;
  bool have_ties = get_doc(nx, "ties", &ties);
  bson_value_t va[16], vb[16];
  bool tie[16] = {false};
  int na = 0, nb = 0;
  bson_iter_t it;
  bson_iter_init(&it, &a);
  while (bson_iter_next(&it) && na < 16) va[na++] = *bson_iter_value(&it);
  bson_iter_init(&it, &b);
  while (bson_iter_next(&it) && nb < 16) vb[nb++] = *bson_iter_value(&it);
  if (na != nb) return false;
  if (have_ties) {
    int k = 0;
    bson_iter_init(&it, &ties);
    while (bson_iter_next(&it) && k < 16) tie[k++] = bson_iter_as_bool(&it);
  }
  for (int s = 0; s < na;) {
    int e = s + 1;
    while (e < na && tie[e]) e++;
    for (int i = s; i < e; i++) { /* every id of the run appears in the oracle's run */
      bool found = false;
      for (int j = s; j < e && !found; j++) found = doc_cmp_values(&va[i], &vb[j]) == 0;
      if (!found) return false;
    }
    s = e;
  }
  return true;
}

/* ---- Case-shape normalisers: decided from the case alone, before looking at any answer ---- */
static bool case_has_type(const dcase *dc, bson_type_t t) {
  return contains_type(bson_get_data(&dc->c), dc->c.len, t);
}

/* Walks a spec (filter, update, ...) and reports whether pred holds for some (key, value). */
typedef bool (*spec_pred)(const char *key, bson_iter_t *it);
static bool spec_any(const uint8_t *data, uint32_t len, spec_pred pred) {
  bson_iter_t it;
  if (!bson_iter_init_from_data(&it, data, len)) return false;
  while (bson_iter_next(&it)) {
    if (pred(bson_iter_key(&it), &it)) return true;
    if (BSON_ITER_HOLDS_DOCUMENT(&it) || BSON_ITER_HOLDS_ARRAY(&it)) {
      uint32_t l;
      const uint8_t *d;
      if (BSON_ITER_HOLDS_DOCUMENT(&it)) bson_iter_document(&it, &l, &d);
      else bson_iter_array(&it, &l, &d);
      if (spec_any(d, l, pred)) return true;
    }
  }
  return false;
}
static bool case_spec_any(const dcase *dc, const char *which, spec_pred pred) {
  bson_t sp;
  return get_doc(&dc->c, which, &sp) && spec_any(bson_get_data(&sp), sp.len, pred);
}
static bool is_null(const char *key, bson_iter_t *it) { (void)key; return BSON_ITER_HOLDS_NULL(it); }
static bool is_size(const char *key, bson_iter_t *it) { (void)it; return strcmp(key, "$size") == 0; }
static bool is_type_int_long(const char *key, bson_iter_t *it) {
  if (strcmp(key, "$type") != 0) return false;
  if (BSON_ITER_HOLDS_UTF8(it)) {
    const char *t = bson_iter_utf8(it, NULL);
    return strcmp(t, "int") == 0 || strcmp(t, "long") == 0 || strcmp(t, "number") == 0;
  }
  return BSON_ITER_HOLDS_NUMBER(it) && (bson_iter_as_int64(it) == 16 || bson_iter_as_int64(it) == 18);
}

static bool is_all_key(const char *key, bson_iter_t *it) { (void)it; return strcmp(key, "$all") == 0; }
static bool is_sort_key(const char *key, bson_iter_t *it) { (void)it; return strcmp(key, "$sort") == 0; }
static bool is_each_key(const char *key, bson_iter_t *it) { (void)it; return strcmp(key, "$each") == 0; }
static bool is_not(const char *key, bson_iter_t *it) { (void)it; return strcmp(key, "$not") == 0; }
static bool is_mod(const char *key, bson_iter_t *it) { (void)it; return strcmp(key, "$mod") == 0; }
static bool is_empty_doc(const char *key, bson_iter_t *it) {
  (void)key;
  if (!BSON_ITER_HOLDS_DOCUMENT(it)) return false;
  uint32_t l;
  const uint8_t *d;
  bson_iter_document(it, &l, &d);
  return l <= 5;
}
static bool is_bool_operand(const char *key, bson_iter_t *it) {
  return BSON_ITER_HOLDS_BOOL(it) && strcmp(key, "$exists") != 0;
}
static bool is_bool(const char *key, bson_iter_t *it) { (void)key; return BSON_ITER_HOLDS_BOOL(it); }
static bool is_zero_or_one(const char *key, bson_iter_t *it) {
  (void)key;
  if (!BSON_ITER_HOLDS_NUMBER(it)) return false;
  double d = bson_iter_as_double(it);
  return d == 0.0 || d == 1.0;
}
static bool is_range(const char *key, bson_iter_t *it) {
  (void)it;
  return strcmp(key, "$gt") == 0 || strcmp(key, "$gte") == 0 || strcmp(key, "$lt") == 0 ||
         strcmp(key, "$lte") == 0;
}
static bool is_type_null(const char *key, bson_iter_t *it) {
  if (strcmp(key, "$type") != 0) return false;
  return (BSON_ITER_HOLDS_UTF8(it) && strcmp(bson_iter_utf8(it, NULL), "null") == 0) ||
         (BSON_ITER_HOLDS_NUMBER(it) && bson_iter_as_int64(it) == 10);
}
static bool is_empty_array(const char *key, bson_iter_t *it) {
  (void)key;
  if (!BSON_ITER_HOLDS_ARRAY(it)) return false;
  uint32_t l;
  const uint8_t *d;
  bson_iter_array(it, &l, &d);
  return l <= 5;
}
/* Values JavaScript's % coerces or that MongoDB's $mod truncates: anything but integers. */
static bool is_non_integer(const char *key, bson_iter_t *it) {
  (void)key;
  if (BSON_ITER_HOLDS_DOCUMENT(it) || BSON_ITER_HOLDS_ARRAY(it)) return false;
  if (!BSON_ITER_HOLDS_NUMBER(it)) return true;
  double d = bson_iter_as_double(it);
  return d != floor(d);
}
static bool is_ordering_on_container(const char *key, bson_iter_t *it) {
  return (strcmp(key, "$gt") == 0 || strcmp(key, "$gte") == 0 || strcmp(key, "$lt") == 0 ||
          strcmp(key, "$lte") == 0) &&
         (BSON_ITER_HOLDS_DOCUMENT(it) || BSON_ITER_HOLDS_ARRAY(it));
}
static bool is_type_numeric_subtype(const char *key, bson_iter_t *it) {
  if (strcmp(key, "$type") != 0) return false;
  if (BSON_ITER_HOLDS_UTF8(it)) {
    const char *t = bson_iter_utf8(it, NULL);
    return strcmp(t, "int") == 0 || strcmp(t, "long") == 0 || strcmp(t, "double") == 0 ||
           strcmp(t, "decimal") == 0;
  }
  int64_t n = BSON_ITER_HOLDS_NUMBER(it) ? bson_iter_as_int64(it) : 0;
  return n == 1 || n == 16 || n == 18 || n == 19;
}
/* An array directly inside an array, anywhere in the data. */
static bool nested_arrays(const uint8_t *data, uint32_t len, bool in_array) {
  bson_iter_t it;
  if (!bson_iter_init_from_data(&it, data, len)) return false;
  while (bson_iter_next(&it)) {
    uint32_t l;
    const uint8_t *d;
    if (BSON_ITER_HOLDS_ARRAY(&it)) {
      if (in_array) return true;
      bson_iter_array(&it, &l, &d);
      if (nested_arrays(d, l, true)) return true;
    } else if (BSON_ITER_HOLDS_DOCUMENT(&it)) {
      bson_iter_document(&it, &l, &d);
      if (nested_arrays(d, l, false)) return true;
    }
  }
  return false;
}
static bool case_nested_arrays(const dcase *dc) {
  bson_t docs;
  if (!get_doc(&dc->c, "docs", &docs)) return false;
  bson_iter_t it;
  bson_iter_init(&it, &docs);
  while (bson_iter_next(&it)) { /* each document is an element of "docs" */
    uint32_t l;
    const uint8_t *d;
    bson_iter_document(&it, &l, &d);
    if (nested_arrays(d, l, false)) return true;
  }
  return false;
}

/* Paths of the filter whose operator document holds `op` (also under $not; through $and, $or,
 * $nor). With objform, only $elemMatch in object form ({$elemMatch: {field: ...}}). */
typedef struct pathlist {
  char p[24][48];
  int n;
} pathlist;

static bool opdoc_has(const uint8_t *data, uint32_t len, const char *op, bool objform) {
  bson_iter_t it;
  if (!bson_iter_init_from_data(&it, data, len)) return false;
  while (bson_iter_next(&it)) {
    const char *k = bson_iter_key(&it);
    uint32_t l;
    const uint8_t *d;
    if (strcmp(k, op) == 0) {
      if (!objform) return true;
      if (BSON_ITER_HOLDS_DOCUMENT(&it)) {
        bson_iter_t sub;
        bson_iter_document(&it, &l, &d);
        if (bson_iter_init_from_data(&sub, d, l) && bson_iter_next(&sub) && bson_iter_key(&sub)[0] != '$')
          return true;
      }
    }
    if (strcmp(k, "$not") == 0 && BSON_ITER_HOLDS_DOCUMENT(&it)) {
      bson_iter_document(&it, &l, &d);
      if (opdoc_has(d, l, op, objform)) return true;
    }
  }
  return false;
}

static void collect_paths(const uint8_t *data, uint32_t len, const char *op, bool objform,
                          pathlist *out) {
  bson_iter_t it;
  if (!bson_iter_init_from_data(&it, data, len)) return;
  while (bson_iter_next(&it)) {
    const char *k = bson_iter_key(&it);
    uint32_t l;
    const uint8_t *d;
    if (k[0] == '$') {
      if (BSON_ITER_HOLDS_ARRAY(&it)) {
        bson_iter_t el;
        bson_iter_array(&it, &l, &d);
        if (!bson_iter_init_from_data(&el, d, l)) continue;
        while (bson_iter_next(&el))
          if (BSON_ITER_HOLDS_DOCUMENT(&el)) {
            uint32_t l2;
            const uint8_t *d2;
            bson_iter_document(&el, &l2, &d2);
            collect_paths(d2, l2, op, objform, out);
          }
      }
    } else if (BSON_ITER_HOLDS_DOCUMENT(&it)) {
      bson_iter_document(&it, &l, &d);
      if (opdoc_has(d, l, op, objform) && out->n < 24) {
        snprintf(out->p[out->n++], sizeof out->p[0], "%s", k);
      }
    }
  }
}

typedef struct arr_probe {
  bool scalar_elems; /* only arrays holding a non-document count */
  bool found;
  bool docs_too;     /* documents count as well */
  bool non_array;    /* instead: any value that is not an array counts */
  int bracket;       /* instead, when non-zero: any value of another type bracket counts */
} arr_probe;

static int probe_cb(const bson_value_t *v, void *ctx) {
  arr_probe *pr = ctx;
  if (pr->bracket) {
    if (doc_canonical_type_order(v->value_type) != pr->bracket) pr->found = true;
    return 0;
  }
  if (pr->non_array) {
    if (v->value_type != BSON_TYPE_ARRAY) pr->found = true;
    return 0;
  }
  if (pr->docs_too && v->value_type == BSON_TYPE_DOCUMENT) pr->found = true;
  if (v->value_type != BSON_TYPE_ARRAY) return 0;
  if (!pr->scalar_elems) {
    pr->found = true;
    return 0;
  }
  bson_iter_t it;
  if (bson_iter_init_from_data(&it, v->value.v_doc.data, v->value.v_doc.data_len))
    while (bson_iter_next(&it))
      if (!BSON_ITER_HOLDS_DOCUMENT(&it)) pr->found = true;
  return 0;
}

/* True when, in some document, a path of the filter holding `op` reaches an array (with a
 * non-document element, when scalar_elems). */
static bool op_path_reaches_array_x(const dcase *dc, const char *spec, const char *op, bool objform,
                                    bool scalar_elems, bool prefixes_only);
static bool op_path_reaches_array_in(const dcase *dc, const char *spec, const char *op, bool objform,
                                     bool scalar_elems) {
  return op_path_reaches_array_x(dc, spec, op, objform, scalar_elems, false);
}
static bool op_path_reaches_array_x(const dcase *dc, const char *spec, const char *op, bool objform,
                                    bool scalar_elems, bool prefixes_only) {
  bson_t f, docs[16];
  if (!get_doc(&dc->c, spec, &f)) return false;
  pathlist pl = {.n = 0};
  collect_paths(bson_get_data(&f), f.len, op, objform, &pl);
  if (pl.n == 0) return false;
  int n = case_docs(&dc->c, docs);
  for (int i = 0; i < pl.n; i++) {
    char pre[64];
    snprintf(pre, sizeof pre, "%s", pl.p[i]);
    for (bool leaf = true;; leaf = false) { /* the path and its prefixes */
      doc_path path;
      if (!(leaf && prefixes_only) && doc_path_parse(pre, -1, &path) == NX_OK) {
        arr_probe pr = {leaf && scalar_elems, false, false, false, 0};
        for (int d = 0; d < n && !pr.found; d++) {
          bool found = false;
          doc_path_visit(&docs[d], &path, false, probe_cb, &pr, &found);
        }
        doc_path_free(&path);
        if (pr.found) return true;
      }
      char *dot = strrchr(pre, '.');
      if (!dot) break;
      *dot = 0;
    }
  }
  return false;
}

/* True when some document has, at a path holding `op`, a value that is not an array (the
 * path is missing there, or holds a scalar or a document). */
static bool op_path_reaches_non_array(const dcase *dc, const char *op) {
  bson_t f, docs[16];
  if (!get_doc(&dc->c, "filter", &f)) return false;
  pathlist pl = {.n = 0};
  collect_paths(bson_get_data(&f), f.len, op, false, &pl);
  int n = case_docs(&dc->c, docs);
  for (int i = 0; i < pl.n; i++) {
    doc_path path;
    if (doc_path_parse(pl.p[i], -1, &path) != NX_OK) continue;
    arr_probe pr = {false, false, false, true, 0};
    for (int d = 0; d < n && !pr.found; d++) {
      bool found = false;
      doc_path_visit(&docs[d], &path, false, probe_cb, &pr, &found);
    }
    doc_path_free(&path);
    if (pr.found) return true;
  }
  return false;
}

/* mongomock's $min/$max compare with Python's order (True == 1, and no type brackets): true
 * when an operand meets a value of another type bracket in the document. */
static bool minmax_cross_type(const dcase *dc) {
  bson_t u, docs[16];
  if (!get_doc(&dc->c, "update", &u)) return false;
  if (dc->kind == K_UPSERT) { /* the upsert seed comes from the filter's equalities */
    if (!get_doc(&dc->c, "filter", &docs[0])) return false;
  } else if (case_docs(&dc->c, docs) < 1) {
    return false;
  }
  bson_iter_t it;
  bson_iter_init(&it, &u);
  while (bson_iter_next(&it)) {
    if (strcmp(bson_iter_key(&it), "$min") != 0 && strcmp(bson_iter_key(&it), "$max") != 0) continue;
    bson_iter_t f;
    if (!bson_iter_recurse(&it, &f)) continue;
    while (bson_iter_next(&f)) {
      bson_iter_t cur;
      if (!doc_get_dotted(&docs[0], bson_iter_key(&f), &cur)) continue;
      if (doc_canonical_type_order(bson_iter_type(&cur)) !=
          doc_canonical_type_order(bson_iter_type(&f)))
        return true;
    }
  }
  return false;
}

/* mongomock orders values of different types by BSON order in $gt/$gte/$lt/$lte (MongoDB
 * matches only within a type bracket) and mishandles arrays along the path: true when a range
 * operand meets, in some document, a value of another bracket, a missing value or an array. */
static bool range_unsound_for_mongomock(const uint8_t *data, uint32_t len, const bson_t *docs,
                                        int n) {
  bson_iter_t it;
  if (!bson_iter_init_from_data(&it, data, len)) return false;
  while (bson_iter_next(&it)) {
    const char *k = bson_iter_key(&it);
    uint32_t l;
    const uint8_t *d;
    if (k[0] == '$') {
      if (!BSON_ITER_HOLDS_ARRAY(&it)) continue;
      bson_iter_t el;
      bson_iter_array(&it, &l, &d);
      if (!bson_iter_init_from_data(&el, d, l)) continue;
      while (bson_iter_next(&el))
        if (BSON_ITER_HOLDS_DOCUMENT(&el)) {
          uint32_t l2;
          const uint8_t *d2;
          bson_iter_document(&el, &l2, &d2);
          if (range_unsound_for_mongomock(d2, l2, docs, n)) return true;
        }
      continue;
    }
    if (!BSON_ITER_HOLDS_DOCUMENT(&it)) continue;
    bson_iter_document(&it, &l, &d);
    if (!spec_any(d, l, is_range)) continue;
    /* a nested $elemMatch/$not holding a range: not analysed, unsound */
    bson_iter_t op;
    bson_iter_init_from_data(&op, d, l);
    bool direct = false;
    int bracket = 0;
    while (bson_iter_next(&op)) {
      if (is_range(bson_iter_key(&op), &op)) {
        if (BSON_ITER_HOLDS_DOCUMENT(&op) || BSON_ITER_HOLDS_ARRAY(&op)) return true;
        int b = doc_canonical_type_order(bson_iter_type(&op));
        if (direct && b != bracket) return true;
        bracket = b;
        direct = true;
      }
    }
    if (!direct) return true;
    char pre[64];
    snprintf(pre, sizeof pre, "%s", k);
    for (bool leaf = true;; leaf = false) {
      doc_path path;
      if (doc_path_parse(pre, -1, &path) != NX_OK) return true;
      arr_probe pr = {false, false, false, false, leaf ? bracket : 0};
      for (int i = 0; i < n && !pr.found; i++) {
        bool found = false;
        doc_path_visit(&docs[i], &path, false, probe_cb, &pr, &found);
        if (!found && leaf) pr.found = true; /* missing */
      }
      doc_path_free(&path);
      if (pr.found) return true;
      char *dot = strrchr(pre, '.');
      if (!dot) break;
      *dot = 0;
    }
  }
  return false;
}

/* True when a sort path reaches an array (or, with docs_too, a document) in some document. */
static bool sort_path_reaches(const dcase *dc, bool docs_too) {
  bson_t sp, docs[16];
  if (!get_doc(&dc->c, "sort", &sp)) return false;
  int n = case_docs(&dc->c, docs);
  bson_iter_t it;
  bson_iter_init(&it, &sp);
  bool hit = false;
  while (!hit && bson_iter_next(&it)) {
    char pre[64];
    snprintf(pre, sizeof pre, "%s", bson_iter_key(&it));
    bool leaf_docs = docs_too;
    for (;;) { /* the path and each of its prefixes: arrays anywhere along it */
      doc_path path;
      if (doc_path_parse(pre, -1, &path) == NX_OK) {
        arr_probe pr = {false, false, leaf_docs, false, 0};
        for (int d = 0; d < n && !pr.found; d++) {
          bool found = false;
          doc_path_visit(&docs[d], &path, false, probe_cb, &pr, &found);
        }
        doc_path_free(&path);
        hit = hit || pr.found;
      }
      leaf_docs = false; /* documents matter at the leaf only */
      char *dot = strrchr(pre, '.');
      if (!dot || hit) break;
      *dot = 0;
    }
  }
  return hit;
}

static bool is_slice(const char *key, bson_iter_t *it) { (void)it; return strcmp(key, "$slice") == 0; }
static bool is_elemmatch(const char *key, bson_iter_t *it) { (void)it; return strcmp(key, "$elemMatch") == 0; }
static bool is_dotted_zero(const char *key, bson_iter_t *it) {
  return strchr(key, '.') && BSON_ITER_HOLDS_NUMBER(it) && bson_iter_as_int64(it) == 0;
}
static bool is_dotted_one(const char *key, bson_iter_t *it) {
  return strchr(key, '.') && BSON_ITER_HOLDS_NUMBER(it) && bson_iter_as_int64(it) == 1;
}
static bool is_addtoset_each(const char *key, bson_iter_t *it) {
  if (strcmp(key, "$addToSet") != 0 || !BSON_ITER_HOLDS_DOCUMENT(it)) return false;
  uint32_t l;
  const uint8_t *d;
  bson_iter_document(it, &l, &d);
  return spec_any(d, l, is_each_key);
}

static bool is_numeric_component(const char *key) {
  for (const char *p = key; *p; p++)
    if ((p == key || p[-1] == '.') && *p >= '0' && *p <= '9') return true;
  return false;
}
static bool is_size_zero(const char *key, bson_iter_t *it) {
  return strcmp(key, "$size") == 0 && BSON_ITER_HOLDS_NUMBER(it) && bson_iter_as_int64(it) == 0;
}
/* A dotted path with a numeric component ("a.0", "a.1.b"); array element keys do not count. */
static bool is_numpath_key(const char *key, bson_iter_t *it) {
  (void)it;
  return strchr(key, '.') && is_numeric_component(key);
}
static bool is_push_sort(const char *key, bson_iter_t *it) {
  if (strcmp(key, "$push") != 0 || !BSON_ITER_HOLDS_DOCUMENT(it)) return false;
  uint32_t l;
  const uint8_t *d;
  bson_iter_document(it, &l, &d);
  return spec_any(d, l, is_sort_key);
}
static bool is_addtoset(const char *key, bson_iter_t *it) { (void)it; return strcmp(key, "$addToSet") == 0; }
/* Some array (anywhere in the data) holds two equal elements. */
static bool dup_arrays(const uint8_t *data, uint32_t len, bool is_array) {
  bson_iter_t it, jt;
  if (!bson_iter_init_from_data(&it, data, len)) return false;
  while (bson_iter_next(&it)) {
    if (is_array) {
      jt = it;
      while (bson_iter_next(&jt))
        if (doc_cmp_iter(&it, &jt) == 0) return true;
    }
    uint32_t l;
    const uint8_t *d;
    if (BSON_ITER_HOLDS_ARRAY(&it)) {
      bson_iter_array(&it, &l, &d);
      if (dup_arrays(d, l, true)) return true;
    } else if (BSON_ITER_HOLDS_DOCUMENT(&it)) {
      bson_iter_document(&it, &l, &d);
      if (dup_arrays(d, l, false)) return true;
    }
  }
  return false;
}


static bool op_path_reaches_array(const dcase *dc, const char *op, bool objform, bool scalar_elems) {
  return op_path_reaches_array_in(dc, "filter", op, objform, scalar_elems);
}
static bool is_in_with_array(const char *key, bson_iter_t *it) {
  if ((strcmp(key, "$in") != 0 && strcmp(key, "$nin") != 0) || !BSON_ITER_HOLDS_ARRAY(it)) return false;
  uint32_t l;
  const uint8_t *d;
  bson_iter_array(it, &l, &d);
  bson_iter_t el;
  if (!bson_iter_init_from_data(&el, d, l)) return false;
  while (bson_iter_next(&el))
    if (BSON_ITER_HOLDS_ARRAY(&el)) return true;
  return false;
}
static bool is_empty_in(const char *key, bson_iter_t *it) {
  if (strcmp(key, "$in") != 0 && strcmp(key, "$nin") != 0) return false;
  return is_empty_array(key, it);
}
static bool is_allpos_key(const char *key, bson_iter_t *it) { (void)it; return strstr(key, "$[]") != NULL; }
static bool is_minmax_allpos(const char *key, bson_iter_t *it) {
  if ((strcmp(key, "$min") != 0 && strcmp(key, "$max") != 0) || !BSON_ITER_HOLDS_DOCUMENT(it)) return false;
  uint32_t l;
  const uint8_t *d;
  bson_iter_document(it, &l, &d);
  return spec_any(d, l, is_allpos_key);
}
static bool is_exists_dotted(const char *key, bson_iter_t *it) {
  (void)key;
  if (!BSON_ITER_HOLDS_DOCUMENT(it) || !strchr(key, '.')) return false;
  uint32_t l;
  const uint8_t *d;
  bson_iter_document(it, &l, &d);
  return opdoc_has(d, l, "$exists", false);
}
static bool is_type_array(const char *key, bson_iter_t *it) {
  if (strcmp(key, "$type") != 0) return false;
  return (BSON_ITER_HOLDS_UTF8(it) && strcmp(bson_iter_utf8(it, NULL), "array") == 0) ||
         (BSON_ITER_HOLDS_NUMBER(it) && bson_iter_as_int64(it) == 4);
}
static bool is_regex_combined(const char *key, bson_iter_t *it) {
  (void)key;
  if (!BSON_ITER_HOLDS_DOCUMENT(it)) return false;
  bson_iter_t f;
  if (!bson_iter_recurse(it, &f)) return false;
  bool re = false;
  int other = 0;
  while (bson_iter_next(&f)) {
    const char *k = bson_iter_key(&f);
    if (strcmp(k, "$regex") == 0) re = true;
    else if (strcmp(k, "$options") != 0) other++;
  }
  return re && other > 0;
}
static bool is_elemmatch_with_all(const char *key, bson_iter_t *it) {
  if (strcmp(key, "$elemMatch") != 0 || !BSON_ITER_HOLDS_DOCUMENT(it)) return false;
  uint32_t l;
  const uint8_t *d;
  bson_iter_document(it, &l, &d);
  return opdoc_has(d, l, "$all", false) || spec_any(d, l, is_all_key);
}
static bool is_pull_field_condition(const char *key, bson_iter_t *it) {
  if (strcmp(key, "$pull") != 0 || !BSON_ITER_HOLDS_DOCUMENT(it)) return false;
  bson_iter_t f, c;
  if (!bson_iter_recurse(it, &f)) return false;
  while (bson_iter_next(&f))
    if (BSON_ITER_HOLDS_DOCUMENT(&f) && bson_iter_recurse(&f, &c) && bson_iter_next(&c) &&
        bson_iter_key(&c)[0] != '$')
      return true;
  return false;
}
static bool is_sort_numpath(const char *key, bson_iter_t *it) { (void)it; return is_numeric_component(key); }

/* Returns the normaliser that excludes this case for this oracle, or -1. */
static int shape_normaliser(const dcase *dc, int oracle) {
  if (oracle == O_MINGO) {
    if (dc->kind == K_UPSERT) return N_MI_NO_UPSERT;
    if (case_has_type(dc, BSON_TYPE_DECIMAL128)) return N_MI_DECIMAL;
    if (case_nested_arrays(dc)) return N_MI_NESTED_ARRAYS;
    if (dc->kind == K_PROJECT && case_spec_any(dc, "proj", is_dotted_one)) return N_MI_DOTTED_INCL;
    if (dc->kind == K_PROJECT && case_spec_any(dc, "proj", is_numpath_key)) return N_MI_NUMPATH_PROJ;
    if (case_spec_any(dc, "update", is_push_sort)) return N_MI_PUSH_SORT;
    if (case_spec_any(dc, "filter", is_size_zero)) return N_MI_SIZE_ZERO;
    if (case_spec_any(dc, "update", is_addtoset)) {
      bson_t docs;
      if (get_doc(&dc->c, "docs", &docs) && dup_arrays(bson_get_data(&docs), docs.len, false))
        return N_MI_ADDTOSET_DUPS;
    }
    if (dc->kind == K_SORT && sort_path_reaches(dc, false)) return N_MI_SORT_ARRAYS;
    if (dc->kind == K_SORT && case_spec_any(dc, "sort", is_sort_numpath)) return N_MI_SORT_NUMPATH;
    if (dc->kind == K_PROJECT && op_path_reaches_array_in(dc, "proj", "$elemMatch", true, true))
      return N_MI_ELEMMATCH_SCALARS;
    if (dc->kind == K_SORT && sort_path_reaches(dc, true)) return N_MI_SORT_DOCS;
    if (case_spec_any(dc, "filter", is_null)) return N_MI_NULL;
    if (case_spec_any(dc, "filter", is_ordering_on_container)) return N_MI_ORDERING;
    if (case_spec_any(dc, "filter", is_type_numeric_subtype)) return N_MI_TYPE_NUMERIC;
    if (case_spec_any(dc, "filter", is_mod) && case_spec_any(dc, "docs", is_non_integer))
      return N_MI_MOD;
    if (op_path_reaches_non_array(dc, "$all")) return N_MI_ALL_SCALAR;
    if (case_spec_any(dc, "filter", is_elemmatch_with_all)) return N_MI_ALL_SCALAR;
    if (op_path_reaches_array_x(dc, "filter", "$size", false, false, true) ||
        op_path_reaches_array_x(dc, "filter", "$elemMatch", false, false, true))
      return N_MI_SIZE_THROUGH_ARRAYS;
    if (case_spec_any(dc, "update", is_pull_field_condition)) return N_MI_PULL_COND;
    if (op_path_reaches_array(dc, "$elemMatch", true, true)) return N_MI_ELEMMATCH_SCALARS;
    if (op_path_reaches_array(dc, "$type", false, false)) return N_MI_TYPE_ARRAYS;
    if (case_spec_any(dc, "filter", is_empty_array)) return N_MI_EMPTY_ARRAY;
  }
  if (oracle == O_MONGOMOCK) {
    if (case_has_type(dc, BSON_TYPE_DECIMAL128)) return N_MM_DECIMAL;
    if (case_spec_any(dc, "filter", is_mod)) return N_MM_NO_MOD;
    if (case_spec_any(dc, "filter", is_regex_combined)) return N_MM_REGEX_COMBINED;
    if (case_spec_any(dc, "filter", is_null)) return N_MM_NULL;
    if (case_spec_any(dc, "filter", is_size)) return N_MM_SIZE;
    if (case_spec_any(dc, "filter", is_type_int_long)) return N_MM_TYPE_INT_LONG;
    if (case_spec_any(dc, "filter", is_not)) return N_MM_NOT;
    if (case_spec_any(dc, "filter", is_empty_doc)) return N_MM_EMPTY_DOC;
    if (case_spec_any(dc, "filter", is_bool_operand) ||
        (case_spec_any(dc, "docs", is_bool) && (case_spec_any(dc, "filter", is_zero_or_one) ||
                                                case_spec_any(dc, "update", is_zero_or_one))))
      return N_MM_BOOL_NUMBER;
    if (case_spec_any(dc, "filter", is_range)) {
      bson_t f, docs[16];
      int n = case_docs(&dc->c, docs);
      if (!get_doc(&dc->c, "filter", &f) ||
          range_unsound_for_mongomock(bson_get_data(&f), f.len, docs, n))
        return N_MM_RANGE;
    }
    if (case_spec_any(dc, "filter", is_type_null)) return N_MM_TYPE_NULL;
    if (case_nested_arrays(dc)) return N_MM_NESTED_ARRAYS;
    if (dc->kind == K_PROJECT && case_spec_any(dc, "proj", is_dotted_zero)) return N_MM_EXCL_DOTTED;
    if (dc->kind == K_SORT && sort_path_reaches(dc, false)) return N_MM_SORT_ARRAYS;
    if (case_spec_any(dc, "update", is_addtoset_each)) return N_MM_ADDTOSET_EACH;
    if (case_spec_any(dc, "update", is_numpath_key)) return N_MM_NUMPATH_UPDATE;
    if (case_spec_any(dc, "filter", is_numpath_key)) return N_MM_NUMPATH_FILTER;
    if (minmax_cross_type(dc)) return N_MM_MINMAX_TYPES;
    if (case_spec_any(dc, "filter", is_in_with_array)) return N_MM_WHOLE_ARRAY_IN;
    if (case_spec_any(dc, "filter", is_empty_in)) return N_MM_EMPTY_IN;
    if (case_spec_any(dc, "update", is_minmax_allpos)) return N_MM_ALLPOS;
    if (case_spec_any(dc, "filter", is_exists_dotted)) return N_MM_EXISTS_PATHS;
    if (op_path_reaches_array(dc, "$exists", false, false)) return N_MM_EXISTS_PATHS;
    if (case_spec_any(dc, "filter", is_type_array)) return N_MM_TYPE_ARRAY;
    if (dc->kind == K_PROJECT && case_spec_any(dc, "proj", is_elemmatch) &&
        case_spec_any(dc, "docs", is_bool))
      return N_MM_BOOL_NUMBER;
    if (op_path_reaches_array(dc, "$elemMatch", true, true)) return N_MM_ELEMMATCH_SCALARS;
  }
  return -1;
}

/* Classifies an "unsupported" answer by its message. */
static int unsupported_normaliser(int oracle, const char *msg) {
  if (oracle == O_MINGO) {
    if (strstr(msg, "mingo_no_decimal128")) return N_MI_DECIMAL;
    if (strstr(msg, "mingo_int64_precision")) return N_MI_INT64;
    if (strstr(msg, "mingo_no_upsert")) return N_MI_NO_UPSERT;
    return N_MI_UNSUPPORTED;
  }
  if (strstr(msg, "Decimal128")) return N_MM_DECIMAL;
  return N_MM_UNSUPPORTED;
}

enum { R_COMPARED, R_SKIPPED, R_MISMATCH };

static const char *trace_op; /* NX_DIFF_TRACE=<operator>: print why its cases were skipped */
static int fire(int n) {
  norms[n].fired++;
  if (trace_op) fprintf(stderr, "trace %s: skipped by %s\n", trace_op, norms[n].name);
  return R_SKIPPED;
}

static int compare_answer(const dcase *dc, const bson_t *res, bool strict);
static char *json_of(const bson_t *b);
static int compare_case(const dcase *dc, int oracle, const bson_t *res) {
  int sn = shape_normaliser(dc, oracle);
  if (sn >= 0) return fire(sn);
  const bson_t *nx = &dc->nx;
  bool nx_err = has_key(nx, "error");
  if (has_key(res, "error")) {
    const char *msg = str_field(res, "error"), *etype = str_field(res, "etype");
    if (strcmp(etype, "unsupported") == 0) return fire(unsupported_normaliser(oracle, msg));
    if (nx_err) return R_COMPARED; /* both refuse */
    if (oracle == O_MONGOMOCK && strcmp(etype, "crash") == 0) return fire(N_MM_CRASH);
    if (oracle == O_MINGO && strcmp(etype, "crash") == 0) return fire(N_MI_CRASH);
    if (oracle == O_MONGOMOCK && strstr(msg, "$mul")) return fire(N_MM_NO_MUL);
    if (dc->kind == K_UPDATE || dc->kind == K_UPSERT) {
      if (getenv("NX_DIFF_AUDIT")) { /* review aid: the oracle refused, NexusLite applied */
        char *cj = json_of(&dc->c);
        fprintf(stderr, "audit-rev %s: %s\n  %s\n", oracle_names[oracle], msg, cj);
        bson_free(cj);
      }
      return fire(oracle == O_MONGOMOCK ? N_MM_UPDATE_ERRORS : N_MI_UPDATE_ERRORS);
    }
    if (dc->kind == K_PROJECT && oracle == O_MONGOMOCK && case_spec_any(dc, "proj", is_slice))
      return fire(N_MM_SLICE_PROJ);
    if (dc->kind == K_PROJECT && oracle == O_MINGO && case_spec_any(dc, "proj", is_elemmatch))
      return fire(N_MI_ELEMMATCH_PROJ);
    if (oracle == O_MONGOMOCK && strstr(msg, "$mod")) return fire(N_MM_NO_MOD);
    if (oracle == O_MONGOMOCK && strstr(msg, "is not a valid $type")) return fire(N_MM_TYPE_CODES);
    if (oracle == O_MONGOMOCK && strstr(msg, "$elemMatch needs an Object")) return fire(N_MM_ELEMMATCH_VALUE);
    return R_MISMATCH;
  }
  if (nx_err && dc->kind == K_PROJECT && strstr(str_field(nx, "error"), "Path collision"))
    return fire(N_PROJ_COLLISION);
  if (nx_err && (dc->kind == K_UPDATE || dc->kind == K_UPSERT)) {
    if (getenv("NX_DIFF_AUDIT")) { /* review aid: NexusLite refused, the oracle applied */
      char *cj = json_of(&dc->c);
      fprintf(stderr, "audit %s: %s\n  %s\n", oracle_names[oracle], str_field(nx, "error"), cj);
      bson_free(cj);
    }
    return fire(oracle == O_MONGOMOCK ? N_MM_UPDATE_ERRORS : N_MI_UPDATE_ERRORS);
  }
  if (nx_err) return R_MISMATCH;
  bool strict = oracle == O_MONGOMOCK;
  int r = compare_answer(dc, res, strict);
  if (r == R_COMPARED && oracle == O_MINGO && !has_key(res, "nomatch") &&
      !field_eq(nx, res, dc->kind == K_PROJECT ? "docs" : dc->kind == K_UPDATE ||
                dc->kind == K_UPSERT ? "doc" : "ids", true, false))
    norms[N_MI_NUMERIC_TYPES].fired++; /* matched by value only: mingo has one number type */
  return r;
}

/* Compares an answer that is not an error (see compare_case). */
static int compare_answer(const dcase *dc, const bson_t *res, bool strict) {
  const bson_t *nx = &dc->nx;
  switch (dc->kind) {
  case K_FIND:
    return field_eq(nx, res, "ids", false, true) ? R_COMPARED : R_MISMATCH;
  case K_SORT:
    return sort_ids_eq(nx, res) ? R_COMPARED : R_MISMATCH;
  case K_PROJECT:
    if (case_spec_any(dc, "proj", is_slice) && !field_eq(nx, res, "docs", false, false)) {
      /* both oracles treat {a: {$slice: n}} as an inclusion of a; MongoDB keeps the other
       * fields: compare the fields the oracle returned */
      if (!slice_fields_eq(nx, res, strict)) return R_MISMATCH;
      norms[N_MI_SLICE_PROJ].fired++;
      return R_COMPARED;
    }
    if (field_eq(nx, res, "docs", strict, true)) return R_COMPARED;
    if (field_eq(nx, res, "docs", strict, false)) {
      norms[N_ANY_FIELD_ORDER].fired++;
      return R_COMPARED;
    }
    if (!strict && field_eq(nx, res, "docs", false, false)) return R_COMPARED;
    return R_MISMATCH;
  default: /* update, upsert */
    if (has_key(nx, "nomatch") || has_key(res, "nomatch"))
      return has_key(nx, "nomatch") == has_key(res, "nomatch") ? R_COMPARED : R_MISMATCH;
    if (field_eq(nx, res, "doc", strict, true)) return R_COMPARED;
    if (field_eq(nx, res, "doc", false, true)) {
      norms[strict ? N_MM_NUMERIC_TYPES : N_MI_NUMERIC_TYPES].fired++;
      return R_COMPARED;
    }
    if (field_eq(nx, res, "doc", false, false)) { /* MongoDB 5 adds new fields in name order */
      norms[N_UPDATE_FIELD_ORDER].fired++;
      return R_COMPARED;
    }
    return R_MISMATCH;
  }
}

/* =========================================================================================
 * The test
 * ========================================================================================= */
static char *json_of(const bson_t *b) {
  return bson_as_canonical_extended_json(b, NULL);
}

Test(differential, query_language_against_mongomock_and_mingo) {
  const char *env = getenv("NX_TEST_SEED");
  uint64_t seed = env ? strtoull(env, NULL, 10) : 20261123;
  rng_state = seed;
  const char *scale = getenv("NX_TEST_SCALE");
  bool asan = scale && strcmp(scale, "asan") == 0;
  size_t ncases = asan ? 5000 : 22000;
  size_t min_compared = asan ? 2000 : 10000;
  if (getenv("NX_DIFF_CASES")) {
    ncases = strtoul(getenv("NX_DIFF_CASES"), NULL, 10);
    min_compared = ncases / 2;
  }
  fprintf(stderr, "differential: seed %llu, %zu cases (NX_TEST_SEED replays)\n",
          (unsigned long long)seed, ncases);

  dcase *cases = calloc(ncases, sizeof *cases);
  for (size_t i = 0; i < ncases; i++) {
    gen_case(&cases[i], (int)i);
    nx_eval(&cases[i]);
  }

  char dir[] = "/tmp/nx_diff_XXXXXX";
  cr_assert(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
  char in_path[256], out_path[O_N][256], err_path[O_N][256];
  snprintf(in_path, sizeof in_path, "%s/cases.jsonl", dir);
  FILE *fp = fopen(in_path, "w");
  cr_assert(fp);
  for (size_t i = 0; i < ncases; i++) {
    char *j = json_of(&cases[i].c);
    fprintf(fp, "%s\n", j);
    bson_free(j);
  }
  fclose(fp);

  /* both oracles at once, one process each */
  char mm_script[512], mi_script[512];
  snprintf(mm_script, sizeof mm_script, "%s/oracle/mongomock_oracle.py", NX_TEST_DATA_DIR);
  snprintf(mi_script, sizeof mi_script, "%s/oracle/mingo_oracle.js", NX_TEST_DATA_DIR);
  const char *mm_argv[] = {"/usr/bin/python3", mm_script, NULL};
  const char *mi_argv[] = {"node", mi_script, NULL};
  const char *const *argvs[O_N] = {mm_argv, mi_argv};
  pid_t pids[O_N];
  uint64_t t0 = nx_mono_ns();
  for (int o = 0; o < O_N; o++) {
    snprintf(out_path[o], sizeof out_path[o], "%s/%s.out", dir, oracle_names[o]);
    snprintf(err_path[o], sizeof err_path[o], "%s/%s.err", dir, oracle_names[o]);
    pids[o] = spawn_redirected(argvs[o], in_path, out_path[o], err_path[o]);
  }
  bool ran[O_N] = {false};
  for (int o = 0; o < O_N; o++) {
    int status = 0;
    if (pids[o] > 0 && waitpid(pids[o], &status, 0) == pids[o] && WIFEXITED(status) &&
        WEXITSTATUS(status) == 0)
      ran[o] = true;
    if (!ran[o]) {
      size_t n = 0;
      char *e = slurp(err_path[o], &n);
      fprintf(stderr,
              "\n*** differential: ORACLE %s DID NOT RUN (spawn %s, exit status 0x%x); its "
              "comparisons are MISSING from this run ***\n%.2000s\n",
              oracle_names[o], pids[o] > 0 ? "ok" : "failed", status, e ? e : "");
      free(e);
    }
  }
  fprintf(stderr, "differential: oracles answered in %.1f s\n", (double)(nx_mono_ns() - t0) / 1e9);

  long compared_by[O_N] = {0}, skipped_by[O_N] = {0}, mismatches = 0, compared_cases = 0;
  long mismatch_by[O_N] = {0};
  long mismatch_print = getenv("NX_DIFF_PRINT") ? atol(getenv("NX_DIFF_PRINT")) : 15;
  long kind_compared[K_N] = {0};
  for (int o = 0; o < O_N; o++) {
    if (!ran[o]) continue;
    bson_t *results = calloc(ncases, sizeof *results);
    bool *have = calloc(ncases, sizeof *have);
    size_t got = read_results(out_path[o], results, have, ncases);
    if (got != ncases)
      fprintf(stderr, "*** differential: %s answered %zu of %zu cases ***\n", oracle_names[o], got,
              ncases);
    for (size_t i = 0; i < ncases; i++) {
      if (!have[i]) continue;
      trace_op = NULL;
      if (getenv("NX_DIFF_TRACE")) {
        char *cj = json_of(&cases[i].c);
        if (strstr(cj, getenv("NX_DIFF_TRACE"))) trace_op = getenv("NX_DIFF_TRACE");
        bson_free(cj);
      }
      int r = compare_case(&cases[i], o, &results[i]);
      if (r == R_COMPARED) {
        compared_by[o]++;
        cases[i].compared = true;
      } else if (r == R_SKIPPED) {
        skipped_by[o]++;
      } else {
        mismatches++;
        if (++mismatch_by[o] <= mismatch_print) {
          char *cj = json_of(&cases[i].c), *nj = json_of(&cases[i].nx), *oj = json_of(&results[i]);
          fprintf(stderr, "\nMISMATCH %s case %zu (%s)\n  case: %s\n  nexuslite: %s\n  %s: %s\n",
                  oracle_names[o], i, kind_names[cases[i].kind], cj, nj, oracle_names[o], oj);
          bson_free(cj);
          bson_free(nj);
          bson_free(oj);
        }
      }
    }
    for (size_t i = 0; i < ncases; i++)
      if (have[i]) bson_destroy(&results[i]);
    free(results);
    free(have);
  }
  for (size_t i = 0; i < ncases; i++) {
    if (!cases[i].compared) continue;
    compared_cases++;
    kind_compared[cases[i].kind]++;
    for (int c = 0; c < C_N; c++) total_counts[c] += cases[i].counts[c];
  }

  fprintf(stderr, "\ndifferential: %ld cases compared by at least one oracle, %ld mismatches\n",
          compared_cases, mismatches);
  for (int o = 0; o < O_N; o++)
    fprintf(stderr, "  %-10s %s: compared %ld, skipped by normalisers %ld, mismatches %ld\n",
            oracle_names[o], ran[o] ? "ran" : "MISSING", compared_by[o], skipped_by[o],
            mismatch_by[o]);
  for (int k = 0; k < K_N; k++) fprintf(stderr, "  kind %-8s %ld\n", kind_names[k], kind_compared[k]);
  fprintf(stderr, "per operator (in compared cases):\n");
  for (int c = 0; c < C_N; c++) fprintf(stderr, "  %-22s %ld\n", cnames[c], total_counts[c]);
  fprintf(stderr, "normalisers fired:\n");
  for (int n = 0; n < N_COUNT; n++)
    fprintf(stderr, "  %-36s %s %ld\n", norms[n].name,
            norms[n].oracle < 0 ? "both" : oracle_names[norms[n].oracle], norms[n].fired);

  if (!getenv("NX_DIFF_KEEP")) {
    unlink(in_path);
    for (int o = 0; o < O_N; o++) {
      unlink(out_path[o]);
      unlink(err_path[o]);
    }
    rmdir(dir);
  } else {
    fprintf(stderr, "differential: batch files kept in %s\n", dir);
  }
  for (size_t i = 0; i < ncases; i++) {
    bson_destroy(&cases[i].c);
    bson_destroy(&cases[i].nx);
  }
  free(cases);

  cr_assert(ran[O_MONGOMOCK] || ran[O_MINGO], "no oracle ran: nothing was compared");
  cr_assert(mismatches == 0, "%ld mismatches (see above)", mismatches);
  cr_assert(compared_cases >= (long)min_compared, "only %ld cases compared, need %zu%s",
            compared_cases, min_compared,
            ran[O_MONGOMOCK] && ran[O_MINGO] ? "" : " (an oracle is MISSING: see above)");
  if (!asan && !getenv("NX_DIFF_CASES"))
    for (int c = 0; c < C_N; c++)
      if ((c < C_SET || DIFF_HAVE_UPDATE) && (c < C_PROJ_INCL || c == C_SORT_KEYS || DIFF_HAVE_PROJ) &&
          (c != C_SORT_KEYS || DIFF_HAVE_SORT))
        cr_expect(total_counts[c] >= 100, "operator %s exercised only %ld times", cnames[c],
                total_counts[c]);
}
