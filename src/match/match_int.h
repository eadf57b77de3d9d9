/*
 * match_int.h: private to src/match/. The parsed filter tree shared by filter_parse.c (which
 * builds it), filter_eval.c (which walks it), and update.c / proj.c (positional `$`, upsert seeds).
 *
 * A filter is a tree of nodes:
 *
 *     AND ----+---- PATH "age"  GT 30
 *             +---- PATH "tags" IN ["a","b"]
 *             +---- OR ----+---- PATH "city" EQ "Paris"
 *                          +---- PATH "vip" EQ true
 *
 * Each PATH node holds one parsed dot path and one predicate. `negate` turns EQ into $ne, IN into
 * $nin and EXISTS into $exists:false (MongoDB defines those as the negation over the whole path,
 * so {a: {$ne: 1}} rejects [1, 2]). All bson_value_t operands borrow from `spec`, the filter's
 * own copy of its spec document.
 */
#ifndef NX_MATCH_INT_H
#define NX_MATCH_INT_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "match.h"

typedef struct fnode fnode;

/* ---- Regexes (regex.c) ---- */
typedef struct nx_regex {
  pcre2_code *code;            /* compiled pattern, owned */
  pcre2_match_context *mctx;   /* limits, owned, read-only after compile */
  pcre2_general_context *gctx; /* routes PCRE2 memory to nx_malloc, owned */
  const char *pattern;         /* borrowed from the spec copy */
  const char *options;         /* borrowed, "" when none */
} nx_regex;

/** Compiles `pattern` with MongoDB's options letters (i m s x u). `where` names the path for
 *  messages. NX_INVALID on a bad pattern or option, NX_LIMIT past FILTER_MAX_REGEX bytes. */
int nx_regex_compile(const char *pattern, size_t plen, const char *options, const char *who,
                     const char *where, nx_regex *out);
void nx_regex_free(nx_regex *r);
/** 1 on a match, 0 on none, or a negative NX_ status (NX_LIMIT with a message) as -rc. */
int nx_regex_match(const nx_regex *r, const char *s, size_t len, const char *where);

/* ---- Predicates ---- */
typedef enum pred_kind {
  P_EQ,
  P_GT,
  P_GTE,
  P_LT,
  P_LTE,       /* comparisons against `value` */
  P_IN,        /* `values` (sorted, non-regex) and `regexes` */
  P_EXISTS,    /* exists (negate for $exists: false) */
  P_TYPE,      /* type_mask / type_number */
  P_REGEX,     /* regexes[0]; also matches an equal BSON regex value */
  P_MOD,       /* mod_d, mod_r */
  P_ALL,       /* all[0..nall): each must match along the path */
  P_ELEMMATCH, /* sub: object form (on element documents) or value form */
  P_SIZE,      /* size */
  P_NOT        /* sub: negated subtree on the same path */
} pred_kind;

typedef struct pred {
  pred_kind kind;
  bson_value_t value;   /* operand of comparisons, SIZE (as int64), EXISTS (bool) */
  bson_value_t *values; /* P_IN: sorted, de-duplicated non-regex values; P_ALL: EQ operands */
  size_t nvalues;
  nx_regex *regexes; /* P_IN regex elements; P_REGEX: one */
  size_t nregexes;
  bool has_null;        /* P_IN holds null (so a missing field matches) */
  int64_t mod_d, mod_r; /* P_MOD divisor (non-zero) and remainder */
  uint32_t type_mask;   /* P_TYPE: bit (code + 1) for codes -1..19; bit 21 = maxKey (127) */
  fnode *sub;           /* P_ELEMMATCH, P_NOT */
  bool value_form;      /* P_ELEMMATCH: operators apply to the element itself */
  struct pred *all;     /* P_ALL members (P_EQ, P_REGEX or P_ELEMMATCH) */
  size_t nall;
} pred;

typedef enum fnode_kind { K_AND, K_OR, K_NOR, K_PATH, K_TRUE, K_FALSE } fnode_kind;

struct fnode {
  fnode_kind kind;
  fnode **kids; /* K_AND / K_OR / K_NOR children */
  size_t nkids;
  doc_path path; /* K_PATH: parsed path; n == 0 inside a value-form $elemMatch */
  char *pstr;    /* K_PATH: the dotted path as written (for messages and introspection), owned */
  bool negate;   /* K_PATH: result is inverted ($ne, $nin, $exists: false) */
  filter_op op;  /* K_PATH: the operator as the user wrote it (introspection) */
  pred p;        /* K_PATH: the predicate */
};

struct filter {
  bson_t *spec;                         /* owned copy of the spec; every operand borrows from it */
  fnode *root;                          /* K_AND at the top, its kids the conjuncts */
  bson_value_t true_value, false_value; /* operands reported for $exists */
};

/* Evaluation state (filter_eval.c). */
typedef struct fev {
  int rc;      /* first error (NX_LIMIT from a regex); evaluation then returns false */
  bool track;  /* record the array position for `$` */
  int64_t pos; /* recorded position, -1 when none */
} fev;

/** Evaluates `n` against the document bytes (data, len). */
bool fnode_match_doc(const fnode *n, const uint8_t *data, uint32_t len, fev *e);

void fnode_free(fnode *n);

/** True when one array element satisfies an $elemMatch predicate (used by $pull): the value form
 *  tests the element itself, the object form an element that is a document or array. */
bool fpred_elem_matches(const pred *p, const bson_value_t *elem, fev *e);

/** The root conjunct list of a filter (update.c reads equality conjuncts and $pull conditions). */
static inline const fnode *filter_root(const filter_t *f) { return f->root; }

#endif
