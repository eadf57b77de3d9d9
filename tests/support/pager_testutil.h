/*
 * pager_testutil.h: helpers shared by the pager, crash, fault and kill tests: temporary
 * directories and a tiny page-level workload (each txn writes one data page holding its txn id
 * and a counter, and records them in the roots) that can be verified after any crash.
 */
#ifndef NX_PAGER_TESTUTIL_H
#define NX_PAGER_TESTUTIL_H

#include <stdbool.h>
#include <stdint.h>

#include "os.h"
#include "pager.h"

/* Makes a fresh directory under /tmp and returns "dir/name" in buf. */
void pt_tmpfile(char *buf, size_t n, const char *name);
/* Removes path, path.wasp, path.lock and the directory (best effort). */
void pt_cleanup(const char *path);

/* Roots layout of the workload:
 *   0  8 counter (number of committed workload txns)
 *   8  4 number of data pages in the chain array
 *  12  4 reserved
 *  16 48 up to 12 page numbers of the live data pages (the newest first) */
#define PT_SLOTS 12u
typedef struct pt_state {
  uint64_t counter;
  uint32_t n;
  uint32_t pg[PT_SLOTS];
} pt_state;
void pt_roots_get(const uint8_t *roots, pt_state *s);
void pt_roots_put(uint8_t *roots, const pt_state *s);

/* One workload txn: rewrites (copy-on-write) the oldest data page with the new counter, or adds a
 * page while fewer than PT_SLOTS exist; also writes `extra` scratch pages that it frees at once
 * (to exercise allocation and spill). Returns the pager status of the first failing call. */
int pt_step(pager *p, uint32_t extra, uint64_t *counter_out);
/* Checks that every data page of the current snapshot holds a consistent (counter, pgno) and
 * the roots' counter; returns NX_OK or NX_CORRUPT with a message, and the counter. */
int pt_verify(pager *p, uint64_t *counter_out);

/* pg_visit_fn for pager_compact over the workload's pages. */
int pt_visit(pg_txn *t, void *ctx, int (*markfn)(void *mctx, uint32_t pgno), void *mctx);
/* pt_verify returns NX_ERROR (never NX_CORRUPT) when the pager returned pages whose content is
 * wrong, so that tests can tell detected corruption from silently wrong data. */

#endif
