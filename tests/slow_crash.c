// ctest: timeout=600
/*
 * slow_crash.c: simulated power loss at every write and fsync boundary of a page-level workload
 * that covers commit, spill, checkpoint, meta write, log restart and compaction, in three modes
 * (drop all unsynced data; keep a seeded random subset; tear the last write). After each crash:
 * reopen, check that every commit acknowledged under FULL durability is there, that nothing
 * uncommitted is visible, and that the integrity walk (content + page accounting) passes.
 *
 * Crash points are classified by a trace of the OS layer's counted calls: what the workload was
 * doing (commit, spill, explicit checkpoint, compaction, open) and, inside checkpoints, which file
 * and offset the call touched (meta pages, log header = log restart, other main-file pages).
 */
#include <criterion/criterion.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pager_testutil.h"

enum { PH_COMMIT, PH_SPILL, PH_CHECKPOINT, PH_META, PH_RESTART, PH_COMPACT, PH_OPEN, PH_N };
static const char *ph_name[PH_N] = {"commit", "spill", "checkpoint", "meta write", "log restart", "compaction",
                                    "open/recovery"};

enum { ACT_OPEN, ACT_COMMIT, ACT_SPILL, ACT_CKPT, ACT_COMPACT };

typedef struct tracer {
  int act;            /* what the workload is doing */
  uint8_t *phase;     /* per counted call: PH_* */
  size_t cap;
  uint64_t max_idx;
  bool after_meta;    /* the last main-file write was a meta page */
  bool after_header;  /* the last log write was the header */
  const char *dbpath;
} tracer;

static tracer g_tr;

static void trace_fn(void *ctx, uint64_t idx, os_op op, const char *path, uint64_t off, uint64_t n) {
  tracer *t = ctx;
  (void)n;
  int ph;
  bool is_log = path && strstr(path, ".wasp") != NULL;
  bool is_main = path && strcmp(path, t->dbpath) == 0;
  if (t->act == ACT_COMPACT) ph = PH_COMPACT;
  else if (t->act == ACT_OPEN) ph = PH_OPEN;
  else if (is_main && op == OS_OP_WRITE && off < 2 * 4096) {
    ph = PH_META;
    t->after_meta = true;
  } else if (is_main && op == OS_OP_SYNC && t->after_meta) {
    ph = PH_META;
    t->after_meta = false;
  } else if (is_main) {
    ph = PH_CHECKPOINT;
    t->after_meta = false;
  } else if (is_log && (op == OS_OP_TRUNCATE ? t->act == ACT_CKPT : false)) {
    ph = PH_RESTART;
  } else if (is_log && op == OS_OP_WRITE && off == 0) {
    ph = PH_RESTART;
    t->after_header = true;
  } else if (is_log && op == OS_OP_SYNC && t->after_header) {
    ph = PH_RESTART;
    t->after_header = false;
  } else {
    ph = t->act == ACT_SPILL ? PH_SPILL : t->act == ACT_CKPT ? PH_CHECKPOINT : PH_COMMIT;
  }
  if (idx >= t->cap) {
    size_t nc = t->cap ? t->cap * 2 : 4096;
    while (nc <= idx) nc *= 2;
    t->phase = realloc(t->phase, nc);
    memset(t->phase + t->cap, PH_OPEN, nc - t->cap);
    t->cap = nc;
  }
  t->phase[idx] = (uint8_t)ph;
  if (idx > t->max_idx) t->max_idx = idx;
}

static pager *wl_open(const char *path, int *rc) {
  nx_open_opts o = NX_OPEN_OPTS_INIT;
  o.cache_bytes = 64 * 4096;      /* 64 pages: txns with 40+ dirty pages spill */
  o.checkpoint_bytes = 48 * 1024; /* automatic checkpoints inside commits too */
  pager *p = NULL;
  g_tr.act = ACT_OPEN;
  *rc = pager_open(path, &o, &p);
  return p;
}

typedef struct wl_result {
  uint64_t acked;     /* last counter acknowledged (commit returned NX_OK) */
  uint64_t attempted; /* counter of the commit in flight when it stopped (acked if none) */
  bool finished;
} wl_result;

/* The workload. Stops at the first failure (the armed crash). */
static void workload(const char *path, wl_result *r) {
  memset(r, 0, sizeof *r);
  int rc;
  pager *p = wl_open(path, &rc);
  if (rc) return;
  for (int i = 1; i <= 66; i++) {
    bool spill = i % 6 == 4;
    g_tr.act = spill ? ACT_SPILL : ACT_COMMIT;
    r->attempted = r->acked + 1;
    uint64_t c = 0;
    rc = pt_step(p, spill ? 44 : (uint32_t)(i % 3), &c);
    if (rc) goto out;
    r->acked = c;
    if (i % 4 == 2) {
      /* a background checkpoint's pass 1 (copy and fsync without the writer lock), a commit
       * meanwhile, then the pass 2 below, which copies only what pass 1 did not */
      g_tr.act = ACT_CKPT;
      rc = pager_checkpoint_pass1(p);
      if (rc) goto out;
      g_tr.act = ACT_COMMIT;
      r->attempted = r->acked + 1;
      rc = pt_step(p, 1, &c);
      if (rc) goto out;
      r->acked = c;
    }
    if (i % 4 == 3) {
      /* the checkpoint thread's growth of the log ahead of the writer (zeros, then a sync) */
      g_tr.act = ACT_CKPT;
      rc = pager_grow_log_ahead(p);
      if (rc) goto out;
    }
    if (i % 2 == 0) {
      g_tr.act = ACT_CKPT;
      rc = pager_checkpoint(p, i % 10 == 0 ? NX_CHECKPOINT_TRUNCATE : NX_CHECKPOINT_FULL);
      if (rc) goto out;
    }
    if (i == 23) {
      g_tr.act = ACT_COMPACT;
      rc = pager_compact(p, pt_visit, NULL, NULL, NULL);
      if (rc) goto out;
    }
  }
  r->finished = true;
out:
  g_tr.act = ACT_CKPT;
  rc = pager_close(p);
  if (rc && r->finished) r->finished = false;
}

static bool asan_scale(void) {
  const char *s = getenv("NX_TEST_SCALE");
  return s && strcmp(s, "asan") == 0;
}

Test(crash, power_loss_at_every_io_boundary) {
  char path[256];
  pt_tmpfile(path, sizeof path, "crash.db"); /* only the name is used: files live in the simulator */
  memset(&g_tr, 0, sizeof g_tr);
  g_tr.dbpath = path;
  /* the simulator allocates and frees file images of a few hundred KiB per crash state: keep them
   * on the heap instead of fresh mmaps (page faults dominated the run time otherwise) */
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  /* reference run: how many counted calls, and the phase of each */
  os_sim_enable(true);
  os_sim_set_trace(trace_fn, &g_tr);
  wl_result ref;
  workload(path, &ref);
  cr_assert(ref.finished, "reference run failed: %s", nx_err_msg());
  uint64_t total = g_tr.max_idx;
  uint8_t *phase = malloc(total + 1);
  memcpy(phase, g_tr.phase, total + 1);
  os_sim_set_trace(NULL, NULL);
  os_sim_enable(false);
  uint64_t stride = asan_scale() ? 13 : 1;
  uint64_t per_phase[PH_N] = {0}, states = 0, recovered_extra = 0;
  static const os_crash_mode modes[3] = {OS_CRASH_DROP_ALL, OS_CRASH_RANDOM, OS_CRASH_TORN};
  for (uint64_t k = 1; k <= total; k += stride) {
    for (int m = 0; m < 3; m++) {
      os_sim_enable(true);
      os_sim_crash_after(k);
      wl_result r;
      workload(path, &r);
      cr_assert(!r.finished, "crash point %llu did not stop the workload", (unsigned long long)k);
      cr_assert_eq(os_sim_power_loss(modes[m], k * 3 + (uint64_t)m), NX_OK);
      int rc;
      pager *p = wl_open(path, &rc);
      cr_assert_eq(rc, NX_OK, "crash point %llu (%s, mode %d): reopen: %s %s", (unsigned long long)k,
                   ph_name[phase[k]], m, nx_code_name(rc), nx_err_msg());
      uint64_t c = 0;
      rc = pt_verify(p, &c);
      cr_assert_eq(rc, NX_OK, "crash point %llu (%s, mode %d): verify: %s %s", (unsigned long long)k,
                   ph_name[phase[k]], m, nx_code_name(rc), nx_err_msg());
      cr_assert(c >= r.acked, "crash point %llu (%s, mode %d): acknowledged commit %llu lost (found %llu)",
                (unsigned long long)k, ph_name[phase[k]], m, (unsigned long long)r.acked, (unsigned long long)c);
      cr_assert(c <= r.attempted, "crash point %llu (%s, mode %d): counter %llu beyond the last attempted %llu",
                (unsigned long long)k, ph_name[phase[k]], m, (unsigned long long)c, (unsigned long long)r.attempted);
      if (c > r.acked) recovered_extra++;
      /* the recovered database keeps working */
      rc = pt_step(p, 2, NULL);
      cr_assert_eq(rc, NX_OK, "crash point %llu: commit after recovery: %s", (unsigned long long)k, nx_err_msg());
      rc = pt_verify(p, NULL);
      cr_assert_eq(rc, NX_OK, "crash point %llu: verify after recovery commit: %s", (unsigned long long)k, nx_err_msg());
      cr_assert_eq(pager_close(p), NX_OK);
      os_sim_enable(false);
      per_phase[phase[k]]++;
      states++;
    }
  }
  printf("slow_crash: %llu crash points (%llu counted I/O calls x 3 modes%s)\n", (unsigned long long)states,
         (unsigned long long)total, stride > 1 ? ", every 13th call under ASan" : "");
  for (int i = 0; i < PH_N; i++) printf("  %-14s %llu\n", ph_name[i], (unsigned long long)per_phase[i]);
  printf("  (in-flight commits found durable after the crash: %llu)\n", (unsigned long long)recovered_extra);
  fflush(stdout);
  if (stride == 1) {
    cr_assert(states >= 2000, "only %llu crash states", (unsigned long long)states);
    for (int i = 0; i < PH_COMPACT + 1; i++)
      cr_assert(per_phase[i] >= 100, "phase %s: only %llu crash states", ph_name[i], (unsigned long long)per_phase[i]);
  }
  free(phase);
  free(g_tr.phase);
  pt_cleanup(path);
}
