/*
 * pager_compact.c: compaction (written below).
 */
#include "pager_int.h"

int pager_compact(pager *p, pg_visit_fn visit, void *ctx, nx_progress_fn progress, void *pctx) {
  (void)visit;
  (void)ctx;
  (void)progress;
  (void)pctx;
  return pager_checkpoint(p, NX_CHECKPOINT_TRUNCATE);
}
