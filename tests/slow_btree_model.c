// ctest: timeout=900
/*
 * slow_btree_model.c: the B+tree against a simple in-memory reference. Random inserts, updates,
 * deletes, point reads, seeks (GE/EQ/LE) and range scans in both directions, with commits, aborts,
 * checkpoints and reopens mixed in, at page sizes 4 KiB, 16 KiB and 64 KiB; st_check (order,
 * fill, separators, page accounting) runs along the way. At least 100k operations per page size
 * in the plain run (NX_TEST_SCALE=asan divides by 5).
 *
 * The reference: a pool of candidate keys sorted once; the state of key i is (present, value
 * length, value seed), and values are generated from (i, seed), so an abort is one memcpy of the
 * state array and ordered scans walk the pool.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage.h"

static uint32_t scaled(uint32_t n);

typedef struct mkey {
  uint8_t *p;
  size_t n;
} mkey;

typedef struct mstate {
  uint8_t present;
  uint32_t vlen;
  uint32_t seed;
} mstate;

static uint64_t rng_state;
static uint32_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (uint32_t)(rng_state >> 11);
}
static uint32_t rnd_n(uint32_t n) { return rnd() % n; }

static int key_cmp(const void *a, const void *b) {
  const mkey *x = a, *y = b;
  size_t m = x->n < y->n ? x->n : y->n;
  int c = memcmp(x->p, y->p, m);
  return c ? c : (x->n < y->n ? -1 : x->n > y->n);
}

static uint32_t g_long_pct = 2; /* percentage of keys of 100..1024 bytes */

static void gen_key(mkey *k) {
  uint32_t r = rnd_n(100);
  size_t n = r < g_long_pct ? 100 + rnd_n(925) : 1 + rnd_n(24);
  k->p = malloc(n);
  k->n = n;
  for (size_t i = 0; i < n; i++) k->p[i] = (uint8_t)("abcdefgh"[rnd_n(8)]); /* shared prefixes */
}

static void gen_value(uint8_t *out, uint32_t key, uint32_t seed, uint32_t n) {
  uint32_t x = key * 2654435761u ^ seed;
  for (uint32_t i = 0; i < n; i++) {
    x = x * 1103515245u + 12345u;
    out[i] = (uint8_t)(x >> 16);
  }
}

static uint32_t pick_vlen(void) {
  uint32_t r = rnd_n(1000);
  if (r < 15) return 2000 + rnd_n(70000); /* overflow chains */
  if (r < 100) return 200 + rnd_n(1500);
  return rnd_n(120);
}

/* Position of the first pool key >= k (or > k when strict). */
static size_t pool_lower(const mkey *pool, size_t n, const mkey *k, bool strict) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int c = key_cmp(&pool[mid], k);
    if (c < 0 || (strict && c == 0)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

typedef struct model_run {
  const char *path;
  uint32_t page_size;
  uint32_t ops;
  mkey *pool;
  size_t npool;
  mstate *cur, *committed;
  uint8_t *vbuf;
  st_env *env;
  st_txn *t;
  st_tree tree;
  uint64_t count_cur, count_committed;
  uint64_t n_commit, n_abort, n_reopen, n_check, n_scan_entries;
} model_run;

static void begin(model_run *m) {
  cr_assert_eq(st_txn_begin(m->env, true, &m->t), NX_OK, "%s", nx_err_msg());
  cr_assert_eq(st_tree_open(m->t, "model", true, &m->tree), NX_OK, "%s", nx_err_msg());
}

static void open_env(model_run *m) {
  nx_open_opts o = NX_OPEN_OPTS_INIT;
  o.page_size = m->page_size;
  o.durability = NX_DURABILITY_OFF;
  o.cache_bytes = 8u << 20;
  o.checkpoint_bytes = 4u << 20;
  cr_assert_eq(st_open(m->path, &o, &m->env), NX_OK, "%s", nx_err_msg());
}

static void verify_value(model_run *m, size_t i, st_val v) {
  cr_assert_eq(v.n, m->cur[i].vlen, "key %zu: value of %zu bytes, expected %u", i, v.n, m->cur[i].vlen);
  gen_value(m->vbuf, (uint32_t)i, m->cur[i].seed, m->cur[i].vlen);
  cr_assert(v.n == 0 || memcmp(v.p, m->vbuf, v.n) == 0, "key %zu: value differs", i);
}

static void verify_at(model_run *m, st_cursor *c, size_t i) {
  st_val k, v;
  cr_assert_eq(st_cursor_get(c, &k, &v), NX_OK, "%s", nx_err_msg());
  cr_assert(k.n == m->pool[i].n && memcmp(k.p, m->pool[i].p, k.n) == 0, "cursor on the wrong key (pool %zu)", i);
  verify_value(m, i, v);
}

/* A seek with a random key, then a scan of up to 30 entries forward or backward. */
static void op_seek_scan(model_run *m) {
  mkey probe;
  bool from_pool = rnd_n(2) == 0;
  if (from_pool) probe = m->pool[rnd_n((uint32_t)m->npool)];
  else gen_key(&probe);
  int how = (int)rnd_n(3);
  size_t pos;
  bool found;
  if (how == ST_SEEK_GE) {
    pos = pool_lower(m->pool, m->npool, &probe, false);
    while (pos < m->npool && !m->cur[pos].present) pos++;
    found = pos < m->npool;
  } else if (how == ST_SEEK_EQ) {
    pos = pool_lower(m->pool, m->npool, &probe, false);
    found = pos < m->npool && key_cmp(&m->pool[pos], &probe) == 0 && m->cur[pos].present;
  } else {
    pos = pool_lower(m->pool, m->npool, &probe, true); /* first > probe */
    found = false;
    while (pos > 0) {
      pos--;
      if (m->cur[pos].present) {
        found = true;
        break;
      }
    }
  }
  st_cursor *c;
  cr_assert_eq(st_cursor_open(m->t, m->tree, &c), NX_OK);
  int rc = st_cursor_seek(c, (st_val){probe.p, probe.n}, (st_seek)how);
  cr_assert_eq(rc, found ? NX_OK : NX_NOTFOUND, "seek %d: rc %d (%s)", how, rc, nx_err_msg());
  if (found) {
    verify_at(m, c, pos);
    bool fwd = rnd_n(2) == 0;
    uint32_t steps = rnd_n(30);
    for (uint32_t s = 0; s < steps; s++) {
      size_t np = pos;
      bool more = false;
      if (fwd) {
        while (++np < m->npool)
          if (m->cur[np].present) {
            more = true;
            break;
          }
      } else {
        while (np-- > 0)
          if (m->cur[np].present) {
            more = true;
            break;
          }
      }
      rc = fwd ? st_cursor_next(c) : st_cursor_prev(c);
      cr_assert_eq(rc, more ? NX_OK : NX_NOTFOUND, "scan step: rc %d (%s)", rc, nx_err_msg());
      if (!more) break;
      pos = np;
      verify_at(m, c, pos);
      m->n_scan_entries++;
    }
  }
  st_cursor_close(c);
  if (!from_pool) free(probe.p);
}

static void full_compare(model_run *m) {
  st_cursor *c;
  cr_assert_eq(st_cursor_open(m->t, m->tree, &c), NX_OK);
  size_t i = 0;
  for (int rc = st_cursor_first(c); rc == NX_OK; rc = st_cursor_next(c)) {
    while (i < m->npool && !m->cur[i].present) i++;
    cr_assert_lt(i, m->npool, "tree has more entries than the model");
    verify_at(m, c, i);
    i++;
  }
  while (i < m->npool && !m->cur[i].present) i++;
  cr_assert_eq(i, m->npool, "tree lacks entries of the model");
  st_cursor_close(c);
  uint64_t n;
  cr_assert_eq(st_tree_count(m->t, m->tree, &n), NX_OK);
  cr_assert_eq(n, m->count_cur);
}

static void run_model(uint32_t page_size, uint32_t ops, uint64_t seed) {
  model_run m;
  uint32_t npool = g_long_pct > 10 ? 3000 : 12000;
  memset(&m, 0, sizeof m);
  char dir[] = "/tmp/nx_model_XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  char path[64];
  snprintf(path, sizeof path, "%s/model.db", dir);
  m.path = path;
  m.page_size = page_size;
  rng_state = seed;
  m.npool = npool;
  m.pool = calloc(m.npool, sizeof *m.pool);
  for (size_t i = 0; i < m.npool; i++) gen_key(&m.pool[i]);
  qsort(m.pool, m.npool, sizeof *m.pool, key_cmp);
  size_t w = 0; /* drop duplicates */
  for (size_t i = 0; i < m.npool; i++) {
    if (w > 0 && key_cmp(&m.pool[w - 1], &m.pool[i]) == 0) {
      free(m.pool[i].p);
      continue;
    }
    m.pool[w++] = m.pool[i];
  }
  m.npool = w;
  m.cur = calloc(m.npool, sizeof *m.cur);
  m.committed = calloc(m.npool, sizeof *m.committed);
  m.vbuf = malloc(1u << 17);
  open_env(&m);
  begin(&m);
  uint32_t check_every = ops / 12;
  for (uint32_t op = 1; op <= ops; op++) {
    uint32_t r = rnd_n(1000);
    size_t i = rnd_n((uint32_t)m.npool);
    if (r < 400) { /* insert or update */
      uint32_t vlen = pick_vlen(), vseed = rnd();
      gen_value(m.vbuf, (uint32_t)i, vseed, vlen);
      bool noover = rnd_n(10) == 0;
      int rc = st_put(m.t, m.tree, (st_val){m.pool[i].p, m.pool[i].n}, (st_val){m.vbuf, vlen},
                      noover ? ST_NOOVERWRITE : 0);
      if (noover && m.cur[i].present) {
        cr_assert_eq(rc, NX_EXISTS);
      } else {
        cr_assert_eq(rc, NX_OK, "put: %s", nx_err_msg());
        if (!m.cur[i].present) m.count_cur++;
        m.cur[i] = (mstate){1, vlen, vseed};
      }
    } else if (r < 650) { /* delete */
      int rc = st_del(m.t, m.tree, (st_val){m.pool[i].p, m.pool[i].n});
      cr_assert_eq(rc, m.cur[i].present ? NX_OK : NX_NOTFOUND, "del: rc %d %s", rc, nx_err_msg());
      if (m.cur[i].present) m.count_cur--;
      m.cur[i].present = 0;
    } else if (r < 850) { /* point read */
      st_val v;
      int rc = st_get(m.t, m.tree, (st_val){m.pool[i].p, m.pool[i].n}, &v);
      cr_assert_eq(rc, m.cur[i].present ? NX_OK : NX_NOTFOUND, "get: rc %d %s", rc, nx_err_msg());
      if (rc == NX_OK) verify_value(&m, i, v);
    } else if (r < 990) {
      op_seek_scan(&m);
    } else if (r < 996) { /* commit */
      cr_assert_eq(st_txn_commit(m.t), NX_OK, "commit: %s", nx_err_msg());
      memcpy(m.committed, m.cur, m.npool * sizeof *m.cur);
      m.count_committed = m.count_cur;
      m.n_commit++;
      begin(&m);
    } else { /* abort */
      st_txn_abort(m.t);
      memcpy(m.cur, m.committed, m.npool * sizeof *m.cur);
      m.count_cur = m.count_committed;
      m.n_abort++;
      begin(&m);
    }
    if (op % check_every == 0) {
      cr_assert_eq(st_txn_commit(m.t), NX_OK, "commit: %s", nx_err_msg());
      memcpy(m.committed, m.cur, m.npool * sizeof *m.cur);
      m.count_committed = m.count_cur;
      cr_assert_eq(st_check(m.env), NX_OK, "st_check after %u ops: %s", op, nx_err_msg());
      m.n_check++;
      if ((op / check_every) % 3 == 0) {
        cr_assert_eq(st_close(m.env), NX_OK, "%s", nx_err_msg());
        open_env(&m);
        m.n_reopen++;
      } else {
        cr_assert_eq(st_checkpoint(m.env, NX_CHECKPOINT_FULL), NX_OK, "%s", nx_err_msg());
      }
      begin(&m);
      full_compare(&m);
    }
  }
  cr_assert_eq(st_txn_commit(m.t), NX_OK);
  cr_assert_eq(st_check(m.env), NX_OK, "final st_check: %s", nx_err_msg());
  cr_assert_eq(st_close(m.env), NX_OK);
  printf("model %u-byte pages: %u ops, %llu commits, %llu aborts, %llu reopens, %llu checks, %llu entries "
         "scanned, %llu live keys at the end\n",
         page_size, ops, (unsigned long long)m.n_commit, (unsigned long long)m.n_abort,
         (unsigned long long)m.n_reopen, (unsigned long long)m.n_check, (unsigned long long)m.n_scan_entries,
         (unsigned long long)m.count_cur);
  for (size_t i = 0; i < m.npool; i++) free(m.pool[i].p);
  free(m.pool);
  free(m.cur);
  free(m.committed);
  free(m.vbuf);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  cr_assert_eq(system(cmd), 0);
}

static uint32_t scaled(uint32_t n) {
  const char *s = getenv("NX_TEST_SCALE");
  return s && strcmp(s, "asan") == 0 ? n / 5 : n;
}

Test(btree_model, random_ops_4k) { run_model(4096, scaled(100000), 0x9e3779b97f4a7c15ull); }
Test(btree_model, random_ops_16k) { run_model(16384, scaled(100000), 0x2545f4914f6cdd1dull); }
Test(btree_model, random_ops_64k) { run_model(65536, scaled(100000), 0x5851f42d4c957f2dull); }
/* Mostly long keys on small pages: few entries per branch, so merges often do not fit and
 * lone children and empty pages occur. */
Test(btree_model, long_keys_4k) {
  g_long_pct = 60;
  run_model(4096, scaled(40000), 0x853c49e6748fea9bull);
}

/* ---- Space ---- */
#include <sys/stat.h>

static uint64_t file_size(const char *path) {
  struct stat st;
  cr_assert_eq(stat(path, &st), 0, "stat %s", path);
  return (uint64_t)st.st_size;
}

static void key_of(char *k, uint32_t i) { snprintf(k, 24, "%08x-%u", i * 2654435761u, i); }

/* A long insert/delete churn: no page leaks, and the file's page count stays within twice the
 * live pages plus one log generation. The pager reuses a freed page once the newest meta page is
 * past the txn that freed it (pager.c note 2), i.e. after one checkpoint, so one log generation
 * of freed pages waits at most. */
Test(btree_space, churn_keeps_page_count_bounded) {
  char dir[] = "/tmp/nx_space_XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  char path[64];
  snprintf(path, sizeof path, "%s/churn.db", dir);
  nx_open_opts o = NX_OPEN_OPTS_INIT;
  o.durability = NX_DURABILITY_FULL;
  o.checkpoint_bytes = 1u << 20;
  st_env *e;
  cr_assert_eq(st_open(path, &o, &e), NX_OK, "%s", nx_err_msg());
  uint64_t gen_pages = o.checkpoint_bytes / 4096;
  uint8_t val[100];
  memset(val, 'v', sizeof val);
  char k[24];
  const uint32_t live = 20000, rounds = scaled(100), per = 500;
  uint32_t lo = 0, hi = 0; /* keys [lo, hi) are live */
  uint64_t worst_total = 0, worst_live = 0, over_one_gen = 0, at_half = 0, late_max = 0;
  for (uint32_t r = 0; r <= rounds; r++) {
    st_txn *t;
    st_tree tr;
    uint32_t ins = r == 0 ? live : per, del = r == 0 ? 0 : per;
    for (uint32_t b = 0; b < ins; b += 250) {
      cr_assert_eq(st_txn_begin(e, true, &t), NX_OK);
      cr_assert_eq(st_tree_open(t, "churn", true, &tr), NX_OK);
      for (uint32_t j = 0; j < 250 && b + j < ins; j++) {
        key_of(k, hi++);
        cr_assert_eq(st_put(t, tr, (st_val){(uint8_t *)k, strlen(k)}, (st_val){val, 20 + hi % 80}, 0), NX_OK);
      }
      for (uint32_t j = 0; j < 250 && del > 0; j++, del--) {
        key_of(k, lo++);
        cr_assert_eq(st_del(t, tr, (st_val){(uint8_t *)k, strlen(k)}), NX_OK, "%s", nx_err_msg());
      }
      cr_assert_eq(st_txn_commit(t), NX_OK, "%s", nx_err_msg());
    }
    cr_assert_eq(st_txn_begin(e, false, &t), NX_OK);
    cr_assert_eq(st_tree_open(t, "churn", false, &tr), NX_OK);
    uint64_t tree_pages;
    cr_assert_eq(st_tree_pages(t, tr, &tree_pages), NX_OK);
    st_txn_abort(t);
    nx_stats s;
    st_stats(e, &s);
    uint64_t live_pages = tree_pages + 3; /* + catalog leaf + two meta pages */
    cr_assert_leq(s.pages_total, 2 * live_pages + gen_pages, "round %u: %llu pages for %llu live (+ %llu log)", r,
                  (unsigned long long)s.pages_total, (unsigned long long)live_pages, (unsigned long long)gen_pages);
    if (s.pages_total > 2 * live_pages + gen_pages) over_one_gen++;
    if (s.pages_total > worst_total) {
      worst_total = s.pages_total;
      worst_live = live_pages;
    }
    if (r == rounds / 2) at_half = s.pages_total;
    if (r > rounds / 2 && s.pages_total > late_max) late_max = s.pages_total;
  }
  /* no leak: the second half of the churn does not grow the file beyond the first half's size
   * (plus one log generation of slack) */
  cr_assert_leq(late_max, at_half + gen_pages, "file grew from %llu to %llu pages", (unsigned long long)at_half,
                (unsigned long long)late_max);
  cr_assert_eq(st_check(e), NX_OK, "%s", nx_err_msg());
  printf("churn: %u rounds of %u inserts + %u deletes over %u live keys: at most %llu pages (live %llu, log "
         "generation %llu pages); rounds over 2 x live + 1 generation: %llu of %u\n",
         rounds, per, per, live, (unsigned long long)worst_total, (unsigned long long)worst_live,
         (unsigned long long)gen_pages, (unsigned long long)over_one_gen, rounds + 1);
  cr_assert_eq(st_close(e), NX_OK, "%s", nx_err_msg());
  char cmd[96];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  cr_assert_eq(system(cmd), 0);
}

/* After deleting 90% of the data, compaction leaves a main file at most 15% of its former size,
 * with every remaining entry intact. */
Test(btree_space, compaction_after_deleting_90_percent) {
  char dir[] = "/tmp/nx_space_XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  char path[64];
  snprintf(path, sizeof path, "%s/compact.db", dir);
  nx_open_opts o = NX_OPEN_OPTS_INIT; /* FULL durability */
  st_env *e;
  cr_assert_eq(st_open(path, &o, &e), NX_OK, "%s", nx_err_msg());
  const uint32_t n = scaled(40000);
  uint8_t *val = malloc(20000);
  char k[24];
  st_txn *t;
  st_tree tr;
  for (uint32_t b = 0; b < n; b += 1000) {
    cr_assert_eq(st_txn_begin(e, true, &t), NX_OK);
    cr_assert_eq(st_tree_open(t, "data", true, &tr), NX_OK);
    for (uint32_t i = b; i < b + 1000 && i < n; i++) {
      key_of(k, i);
      uint32_t vn = i % 500 == 0 ? 20000 : 150 + i % 100; /* some overflow values too */
      gen_value(val, i, 7, vn);
      cr_assert_eq(st_put(t, tr, (st_val){(uint8_t *)k, strlen(k)}, (st_val){val, vn}, 0), NX_OK);
    }
    cr_assert_eq(st_txn_commit(t), NX_OK);
  }
  /* the former size: the full data set, itself compacted (no slack from the load) */
  uint64_t loaded = file_size(path);
  cr_assert_eq(st_compact(e, NULL, NULL), NX_OK, "st_compact: %s", nx_err_msg());
  uint64_t before = file_size(path);
  cr_assert_eq(st_check(e), NX_OK, "%s", nx_err_msg());
  printf("compaction of the loaded file: %llu -> %llu bytes\n", (unsigned long long)loaded, (unsigned long long)before);
  cr_assert_eq(st_txn_begin(e, true, &t), NX_OK);
  cr_assert_eq(st_tree_open(t, "data", false, &tr), NX_OK);
  for (uint32_t i = 0; i < n; i++) {
    if (i % 10 == 3) continue;
    key_of(k, i);
    cr_assert_eq(st_del(t, tr, (st_val){(uint8_t *)k, strlen(k)}), NX_OK);
  }
  cr_assert_eq(st_txn_commit(t), NX_OK);
  cr_assert_eq(st_compact(e, NULL, NULL), NX_OK, "st_compact: %s", nx_err_msg());
  uint64_t after = file_size(path);
  printf("compaction: main file %llu -> %llu bytes (%.1f%%) after deleting 90%% of %u entries\n",
         (unsigned long long)before, (unsigned long long)after, 100.0 * (double)after / (double)before, n);
  cr_assert_leq(after * 100, before * 15, "file %llu -> %llu bytes", (unsigned long long)before,
                (unsigned long long)after);
  cr_assert_eq(st_check(e), NX_OK, "%s", nx_err_msg());
  /* compacting a compact file does not grow it */
  cr_assert_eq(st_compact(e, NULL, NULL), NX_OK, "st_compact: %s", nx_err_msg());
  cr_assert_leq(file_size(path), after, "second compaction grew the file to %llu bytes", (unsigned long long)file_size(path));
  cr_assert_eq(st_check(e), NX_OK, "%s", nx_err_msg());
  int crc = st_close(e);
  cr_assert_eq(crc, NX_OK, "close after compaction: %d %s (%s)", crc, nx_code_name(crc), nx_err_msg());
  cr_assert_eq(st_open(path, &o, &e), NX_OK, "%s", nx_err_msg());
  cr_assert_eq(st_check(e), NX_OK, "%s", nx_err_msg());
  cr_assert_eq(st_txn_begin(e, false, &t), NX_OK);
  cr_assert_eq(st_tree_open(t, "data", false, &tr), NX_OK);
  uint64_t cnt;
  cr_assert_eq(st_tree_count(t, tr, &cnt), NX_OK);
  cr_assert_eq(cnt, n / 10);
  for (uint32_t i = 3; i < n; i += 10) {
    key_of(k, i);
    st_val v;
    cr_assert_eq(st_get(t, tr, (st_val){(uint8_t *)k, strlen(k)}, &v), NX_OK, "key %u lost", i);
    uint32_t vn = i % 500 == 0 ? 20000 : 150 + i % 100;
    gen_value(val, i, 7, vn);
    cr_assert(v.n == vn && memcmp(v.p, val, vn) == 0, "key %u: value differs", i);
  }
  st_txn_abort(t);
  cr_assert_eq(st_close(e), NX_OK);
  free(val);
  char cmd[96];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  cr_assert_eq(system(cmd), 0);
}
