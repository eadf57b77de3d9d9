/*
 * match.h: the match layer's internal API: filters, update operators, projection and sort, all
 * pure functions of BSON documents (MongoDB semantics; docs/query-semantics.md lists the edge
 * cases). Specs are parsed once into typed trees; evaluation walks bson_iter without copying.
 *
 * Conventions: parsed objects are opaque, made by *_parse(spec, &out) and released by *_free
 * (which accept NULL). A parsed object *copies* what it needs from its spec, so the spec may be
 * destroyed after parsing. A parsed object is immutable and may be used by several threads at
 * once. Out-parameters of type `bson_t *` are uninitialised on entry; on NX_OK the callee has
 * initialised them and the caller must bson_destroy() them; on error there is nothing to destroy.
 * Errors: NX_INVALID (bad spec, message names the operator and path), NX_LIMIT (a hostile-input
 * limit below), NX_NOMEM; messages begin with "filter: ", "update: ", "projection: " or "sort: ".
 */
#ifndef NX_MATCH_H
#define NX_MATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <bson/bson.h>

#include "doc.h"

/* ---- Limits on hostile input ---- */
#define FILTER_MAX_DEPTH 100             /* nesting of $and/$or/$nor/$not/$elemMatch and subdocs */
#define FILTER_MAX_IN 100000             /* elements of one $in / $nin / $all list */
#define FILTER_MAX_REGEX 8192            /* bytes of one regex pattern */
#define FILTER_MAX_BYTES (16u << 20)     /* bytes of a whole filter / update / projection spec */
#define FILTER_MAX_NODES 200000          /* predicates in one parsed filter */
#define FILTER_MAX_BSON_DEPTH 210        /* BSON nesting of any spec (bounds recursion on operands) */
#define FILTER_REGEX_MATCH_LIMIT 100000u /* PCRE2 match limit per regex call */
#define FILTER_REGEX_DEPTH_LIMIT 10000u  /* PCRE2 depth limit per regex call */
#define FILTER_REGEX_HEAP_KB 4096u       /* PCRE2 heap limit per regex call, KiB */

/* =========================================================================================
 * Filters
 * ========================================================================================= */
typedef struct filter filter_t;

/**
 * Parses a MongoDB filter document, e.g. {age: {$gt: 30}, $or: [{city: "Paris"}, {vip: true}]}.
 * Supported: $eq $ne $gt $gte $lt $lte $in $nin $and $or $nor $not $exists $type $regex
 * ($options i m s x) $mod $all $elemMatch $size, BSON regex values ({a: /x/}), and $comment
 * (ignored). An empty document matches everything.
 * Errors: NX_INVALID, e.g. "filter: unknown operator '$gtx' at 'age'", "filter: $in needs an
 * array at 'a'"; NX_LIMIT for the limits above (message names the limit and the path).
 * Example: `filter_t *f; if (filter_parse(&spec, &f) == NX_OK) { ...; filter_free(f); }`
 */
int filter_parse(const bson_t *spec, filter_t **out);

/** Sets `*matched` to whether `doc` satisfies `f`. Returns NX_OK, or NX_LIMIT when a regex
 *  exceeds its match/depth/heap limit (the message names the path). `doc` should have passed
 *  doc_validate_for_storage (its nesting bounds the recursion of value comparisons); malformed
 *  bytes end the walk as if the rest were absent. Evaluation reads the bytes in place and
 *  allocates nothing except regex match data. */
int filter_match(const filter_t *f, const bson_t *doc, bool *matched);

/** As filter_match, and also reports, for the positional operator `$` of updates and projections,
 *  the index of the array element that matched in the first array traversed along a matching
 *  path (-1 when none). MongoDB's rule: the array must appear in the query. */
int filter_match_pos(const filter_t *f, const bson_t *doc, bool *matched, int64_t *array_pos);

void filter_free(filter_t *f);

/** True when the filter is empty (matches every document). */
bool filter_is_empty(const filter_t *f);

/* ---- Introspection for the planner ----
 * The top level of a filter is a conjunction: the fields of the spec, with nested top-level
 * $and flattened into it. Each conjunct is one (path, operator, operand) triple: {a: {$gt: 1,
 * $lt: 5}} gives two conjuncts on 'a'. Conjuncts that the planner cannot use for an index
 * ($or, $nor, $not, $regex, ...) are reported too, with their op, so it can tell "exact" from
 * "needs the filter": the planner must still run filter_match on every candidate document. */
typedef enum filter_op {
  FILTER_OP_EQ,        /* {a: v} or {a: {$eq: v}}; v is not a regex */
  FILTER_OP_NE,        /* $ne */
  FILTER_OP_GT,        /* $gt */
  FILTER_OP_GTE,       /* $gte */
  FILTER_OP_LT,        /* $lt */
  FILTER_OP_LTE,       /* $lte */
  FILTER_OP_IN,        /* $in (values; regex elements make it not index-exact) */
  FILTER_OP_NIN,       /* $nin */
  FILTER_OP_EXISTS,    /* $exists (value: bool) */
  FILTER_OP_TYPE,      /* $type */
  FILTER_OP_REGEX,     /* $regex or a regex value */
  FILTER_OP_MOD,       /* $mod */
  FILTER_OP_ALL,       /* $all */
  FILTER_OP_ELEMMATCH, /* $elemMatch */
  FILTER_OP_SIZE,      /* $size */
  FILTER_OP_NOT,       /* $not on a path */
  FILTER_OP_AND,       /* a nested $and that could not be flattened (never at top level) */
  FILTER_OP_OR,        /* $or (path NULL) */
  FILTER_OP_NOR,       /* $nor (path NULL) */
  FILTER_OP_TRUE,      /* reserved: matches everything (the parser folds such conjuncts away today) */
  FILTER_OP_FALSE      /* reserved: matches nothing ($in: [] is reported as IN with 0 values) */
} filter_op;

typedef struct filter_conjunct {
  const char *path;           /* dotted path ("a.b"), NULL for $or/$nor; borrowed from f */
  filter_op op;               /* the operator */
  const bson_value_t *value;  /* operand of EQ/NE/GT/GTE/LT/LTE/EXISTS/SIZE; NULL otherwise */
  const bson_value_t *values; /* operands of IN/NIN/ALL (sorted ascending, de-duplicated) */
  size_t n_values;            /* number of `values` */
  bool has_regex;             /* IN contains a regex, or op is REGEX: not index-exact */
} filter_conjunct;

/** Number of top-level conjuncts of `f`. */
size_t filter_conjunct_count(const filter_t *f);
/** Fills `*out` with conjunct i (< filter_conjunct_count). Pointers borrow from `f`. */
void filter_conjunct_get(const filter_t *f, size_t i, filter_conjunct *out);

/* =========================================================================================
 * Updates
 * ========================================================================================= */
typedef struct update update_t;

/**
 * Parses an update: either operators ($set $unset $inc $mul $min $max $rename $currentDate
 * $setOnInsert $push [$each $slice $sort $position] $addToSet [$each] $pop $pull $pullAll, with
 * positional `$` and `$[]` in paths) or a replacement document (no top-level '$' names).
 * Errors (NX_INVALID): an empty update ("update: empty update document"), operators mixed with
 * plain fields, an unknown operator ("update: unknown operator '$foo'"), conflicting paths
 * ("update: Updating the path 'a.b' would create a conflict at 'a'"), an operand of the wrong type
 * ("update: $inc needs a number for 'n', got string"), $rename to/from the same or nested paths.
 */
int update_parse(const bson_t *spec, update_t **out);
/** Parses `spec` as a replacement document only (replace_one): an empty document is allowed and
 *  any top-level '$' field is NX_INVALID. */
int update_parse_replacement(const bson_t *spec, update_t **out);
/** update_parse_ex flags: parse as a replacement only (update_parse_replacement); borrow `spec`
 *  instead of copying it (it must then outlive the update). */
#define UPDATE_PARSE_REPLACEMENT 1u
#define UPDATE_PARSE_BORROW 2u
/** update_parse or update_parse_replacement (UPDATE_PARSE_REPLACEMENT), with UPDATE_PARSE_BORROW. */
int update_parse_ex(const bson_t *spec, unsigned flags, update_t **out);
void update_free(update_t *u);
/** True when `u` is a replacement document rather than operators. */
bool update_is_replacement(const update_t *u);
/** True when some path of `u` uses the positional `$` (update_apply then needs the query). */
bool update_is_positional(const update_t *u);

/**
 * Applies `u` to `doc`, writing the new document to `out` (uninitialised on entry; initialised on
 * NX_OK). `query` (may be NULL) is the filter that selected `doc`, needed for the positional `$`.
 * `is_upsert_insert` enables $setOnInsert. `now_ms` feeds $currentDate. `*changed` is true when
 * `out` differs from `doc` byte for byte. Field order: existing fields keep their place, new ones
 * are appended, operations running in path order whatever the spec's order (MongoDB 5.0+). `_id` may not change ("update: Performing an update on the
 * path '_id' would modify the immutable field '_id'"); a replacement keeps the original `_id`.
 * Errors: NX_INVALID naming the path and the types (e.g. "update: Cannot apply $inc to a value of
 * non-numeric type. {_id: 1} has the field 'a' of non-numeric type string"), NX_LIMIT if the
 * result would exceed DOC_MAX_BYTES or DOC_MAX_DEPTH.
 */
int update_apply(const update_t *u, const bson_t *doc, const filter_t *query, bool is_upsert_insert,
                 int64_t now_ms, bson_t *out, bool *changed);
/** update_apply_ex flag: always take the general (tree) path; tests compare it with the in-place
 *  path byte for byte. */
#define UPDATE_APPLY_NO_IN_PLACE 1u
/**
 * update_apply with `flags` (UPDATE_APPLY_NO_IN_PLACE) and `*in_place` (may be NULL): set when the
 * result was made by overwriting fixed-size scalar values of `doc` with values of the same size
 * ($set/$inc/$mul/$min/$max/$currentDate of existing numbers, booleans, dates, ...). Such a result
 * has the layout, size, nesting and `_id` of `doc`, and holds no new string, name or subdocument:
 * when `doc` passed doc_validate_for_storage, so does the result, and callers may skip it.
 */
int update_apply_ex(const update_t *u, const bson_t *doc, const filter_t *query, bool is_upsert_insert,
                    int64_t now_ms, unsigned flags, bson_t *out, bool *changed, bool *in_place);

/**
 * Builds the seed document of an upsert from `query` as MongoDB does: every top-level equality
 * conjunct (`{a: 1}`, `{"b.c": 2}`, `{a: {$eq: 1}}`, `$and` members, single-element `$in`)
 * becomes a field (dot paths create subdocuments). The caller then runs update_apply on the seed
 * with is_upsert_insert = true, and adds a generated `_id` if none. NX_INVALID if two equalities
 * conflict on a path.
 */
int update_build_upsert_seed(const filter_t *query, bson_t *out);

/* =========================================================================================
 * Projection
 * ========================================================================================= */
typedef struct proj proj_t;

/**
 * Parses a projection: inclusion ({a: 1, "b.c": true}) or exclusion ({a: 0}), never both except
 * for `_id` (included by default, `{_id: 0}` drops it); `{"a.$": 1}` (positional, needs the query
 * at apply time), `{a: {$slice: n}}`, `{a: {$slice: [skip, limit]}}`, `{a: {$elemMatch: {...}}}`.
 * Errors (NX_INVALID): mixing inclusion and exclusion ("projection: Cannot do exclusion on field
 * 'b' in inclusion projection"), path collisions ("projection: Path collision at a.b"), more than
 * one positional, unknown $ operators, bad $slice arguments.
 */
int proj_parse(const bson_t *spec, proj_t **out);
/** Applies `p` to `doc` into `out`. `query` (may be NULL) serves the positional `$`: without a
 *  matching array position it is NX_INVALID ("projection: positional operator 'a.$' couldn't find
 *  a matching element in the array ..."). */
int proj_apply(const proj_t *p, const bson_t *doc, const filter_t *query, bson_t *out);
void proj_free(proj_t *p);

/* =========================================================================================
 * Sort
 * ========================================================================================= */
typedef struct sort sort_t;

/**
 * Parses a sort spec {a: 1, "b.c": -1}: one or more keys, each 1 or -1 (any number type).
 * Errors (NX_INVALID): empty spec, a value other than 1/-1, duplicate or empty paths.
 * Ordering (MongoDB's): values compare across types by doc_cmp_values; a field holding an array
 * sorts by its smallest element ascending and its largest descending (an empty array sorts as
 * `undefined`, below null); a missing field sorts as null. Ties compare 0: the caller keeps them
 * in `_id` order (stable sort).
 */
int sort_parse(const bson_t *spec, sort_t **out);
void sort_free(sort_t *s);
/** Number of keys. */
size_t sort_nkeys(const sort_t *s);
/** Path and direction (+1 / -1) of key i. The path is borrowed from `s`. */
const char *sort_key_path(const sort_t *s, size_t i, int *dir);

/** Compares two documents under `s` (<0: a first). Extracts keys on each call; for big sorts
 *  extract once with sort_key_extract and compare with sort_key_cmp. */
int sort_cmp(const sort_t *s, const bson_t *a, const bson_t *b);

/**
 * Extracts the sort key of `doc` once: `out` (uninitialised on entry) becomes a small owned
 * document {"0": k0, "1": k1, ...} holding for each key the value it sorts by (min or max array
 * element already chosen, null for missing). Compare keys with sort_key_cmp. NX_NOMEM only.
 */
int sort_key_extract(const sort_t *s, const bson_t *doc, bson_t *out);
/** Compares two extracted keys under the directions of `s`. */
int sort_key_cmp(const sort_t *s, const bson_t *ka, const bson_t *kb);

#endif
