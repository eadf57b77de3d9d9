/*
 * plan_int.h: the plan structure shared by plan.c, plan_exec.c and explain.c. Private.
 */
#ifndef NX_PLAN_INT_H
#define NX_PLAN_INT_H

#include "index.h"
#include "planner.h"

/* One byte interval [lo, hi) of an index scan; bytes live in the candidate's arena. */
typedef struct plan_ival {
  size_t lo_off, lo_len;  /* low end (inclusive) */
  size_t hi_off, hi_len;  /* high end (exclusive) */
  bool hi_inf;            /* no high end */
} plan_ival;

/* One candidate index with its bounds. */
typedef struct plan_cand {
  idx_def *d;                          /* the index (borrowed from the plan's set) */
  bool usable;                         /* bounds were built */
  size_t nbound;                       /* leading fields with bounds */
  size_t npoints[IDX_MAX_FIELDS];      /* points of field i (0: a range or unbounded) */
  nx_buf arena;                        /* interval bytes */
  plan_ival *iv;                       /* intervals, sorted by lo */
  size_t niv, civ;                     /* used, allocated */
  idx_bytes bounds;                    /* {field: ["[1, 1]", ...]} for explain */
  bool sorts;                          /* provides the requested sort */
  bool backward;                       /* ... by walking the index backwards */
  bool exact;                          /* the bounds are the whole filter (no residual needed) */
  bool counted;                        /* keys_est was measured */
  uint64_t keys_est;                   /* keys in bounds, capped at PLAN_COST_CAP */
} plan_cand;

/* The set of _id keys already returned (open addressing over an arena of key records). */
typedef struct plan_seen {
  nx_buf arena;       /* u16 length + bytes per key */
  size_t *slots;      /* offset + 1 into arena, 0 = empty */
  size_t cap, n;      /* slots, used */
} plan_seen;
/* true when key was already present; else adds it. */
int plan_seen_add(plan_seen *s, const uint8_t *k, size_t n, bool *was);
void plan_seen_free(plan_seen *s);

/* A gathered id: its first 8 bytes big-endian (zero-padded) decide most comparisons without
 * touching the record; offset of the record (u16 length + bytes) in q_plan.ids. */
typedef struct plan_idref {
  uint64_t pfx;
  size_t off;
} plan_idref;

#define PLAN_RA 4 /* plan_peek sees up to PLAN_RA - 1 ids ahead */
struct q_plan {
  bool ixscan;          /* index scan (else collection scan) */
  bool idhack;          /* the executor's own _id point lookup */
  bool want_sort;       /* a sort was requested */
  bool residual;        /* the executor must re-check the filter on each fetched document */
  idx_set *set;         /* the collection's indexes, owned */
  plan_cand *cands;     /* usable candidates */
  size_t ncands;
  size_t win;           /* the chosen candidate */
  /* execution */
  nx_txn *t;            /* the transaction */
  st_tree tree;         /* the winner's entry tree */
  st_cursor *cur;       /* cursor on it, NULL before the first step */
  size_t at;            /* current interval */
  bool positioned;      /* cur is inside interval `at` */
  bool done;            /* no more intervals */
  nx_buf last;          /* last entry key (write txns re-seek after writes) */
  uint64_t writes_seen; /* t->writes at the last step */
  nx_buf idbuf;         /* the id key returned */
  bool dedupe;          /* de-duplicate by _id */
  plan_seen seen;
  bool collect;         /* no sort provided: gather the ids, sort them, return in _id order */
  bool collected;       /* the ids are gathered */
  nx_buf ids;           /* gathered ids: u16 length + bytes each */
  plan_idref *id_off;   /* the records, sorted by id */
  size_t nids, id_at;   /* gathered, next to return */
  uint64_t keys_ex, docs_ex; /* examined */
  /* backward walk (the sort is the reverse of the index): one group of equal values parts */
  bool backward;        /* walk from the last interval's high end down */
  nx_buf grp;           /* the group's ids: u16 length + bytes each, descending */
  size_t *grp_off;      /* their offsets */
  size_t grp_cap, grp_at; /* offsets allocated; still to return (from the end) */
  nx_buf grp_vals;      /* the group's values part */
  bool grp_end;         /* the walk has ended (after this group) */
  nx_buf pending;       /* the entry that ended the group: first of the next */
  size_t pending_idlen; /* its _id suffix length */
  bool has_pending;
  /* a walk without gathering (plan_next / plan_peek): ids read ahead of plan_next, copied into
   * a ring of PLAN_RA slots; at most PLAN_RA - 1 are queued, so the slot plan_next returned last
   * (just before ra_head) stays untouched until the next call */
  nx_buf ra_buf[PLAN_RA];
  size_t ra_head, ra_n;         /* oldest queued slot, queued ids */
  int ra_err;                   /* how the walk ended once it has (NX_NOTFOUND at the end) */
};

#endif
