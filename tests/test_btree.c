// ctest: timeout=300
/*
 * test_btree.c: unit tests of the copy-on-write B+tree (src/storage/btree*.c) on the pager,
 * in-memory databases: splits, merges, overflow chains, cursors, limits, corrupt pages.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "btree.h"
#include "pager.h"

typedef struct bt_fix {
  pager *p;
  pg_txn *t;
  bt_scratch s;
  bt_desc d;
} bt_fix;

static void fix_open(bt_fix *f, uint32_t page_size) {
  nx_open_opts o = NX_OPEN_OPTS_INIT;
  o.page_size = page_size;
  o.durability = NX_DURABILITY_OFF;
  memset(f, 0, sizeof *f);
  cr_assert_eq(pager_open(":memory:", &o, &f->p), NX_OK, "%s", nx_err_msg());
  cr_assert_eq(bt_scratch_init(&f->s, pager_page_size(f->p)), NX_OK);
  cr_assert_eq(pager_begin(f->p, true, &f->t), NX_OK, "%s", nx_err_msg());
}

static void fix_close(bt_fix *f) {
  if (f->t) pager_abort(f->t);
  bt_scratch_free(&f->s);
  cr_assert_eq(pager_close(f->p), NX_OK);
}

/* Commits and starts a new write txn. */
static void fix_commit(bt_fix *f) {
  cr_assert_eq(pager_commit(f->t), NX_OK, "%s", nx_err_msg());
  cr_assert_eq(pager_begin(f->p, true, &f->t), NX_OK);
}

static size_t mkkey(char *buf, uint32_t i) { return (size_t)snprintf(buf, 32, "k%08u", i); }

static void put(bt_fix *f, const void *k, size_t kn, const void *v, size_t vn) {
  bool added;
  int rc = bt_put(f->t, &f->s, &f->d, k, kn, v, vn, false, &added);
  cr_assert_eq(rc, NX_OK, "bt_put: %s", nx_err_msg());
}

static void check(bt_fix *f) {
  bt_check_stats st;
  int rc = bt_check(f->t, &f->d, NULL, NULL, &st);
  cr_assert_eq(rc, NX_OK, "bt_check: %s", nx_err_msg());
  cr_assert_eq(st.entries, f->d.count);
}

static uint32_t perm(uint32_t i, uint32_t n) { return (uint32_t)(((uint64_t)i * 2654435761u) % n); }

Test(btree, empty_tree_get_and_cursor_notfound) {
  bt_fix f;
  fix_open(&f, 4096);
  bt_read r;
  bt_read_init(&r);
  const uint8_t *v;
  size_t vn;
  cr_assert_eq(bt_get(f.t, &f.d, (const uint8_t *)"a", 1, &r, &v, &vn), NX_NOTFOUND);
  bt_cursor c;
  bt_cursor_init(&c, f.t, &f.d);
  cr_assert_eq(bt_cursor_first(&c), NX_NOTFOUND);
  cr_assert_eq(bt_cursor_last(&c), NX_NOTFOUND);
  cr_assert_eq(bt_cursor_seek(&c, (const uint8_t *)"a", 1, 0), NX_NOTFOUND);
  bt_cursor_fini(&c);
  bt_read_free(f.t, &r);
  cr_assert_eq(bt_del(f.t, &f.s, &f.d, (const uint8_t *)"a", 1), NX_NOTFOUND);
  check(&f);
  fix_close(&f);
}

Test(btree, split_keeps_order_random_inserts) {
  uint32_t sizes[] = {4096, 65536};
  for (int z = 0; z < 2; z++) {
    bt_fix f;
    fix_open(&f, sizes[z]);
    const uint32_t n = 20000;
    char k[32];
    for (uint32_t i = 0; i < n; i++) {
      uint32_t x = perm(i, n);
      size_t kn = mkkey(k, x);
      put(&f, k, kn, &x, sizeof x);
      if (i % 5000 == 4999) fix_commit(&f);
    }
    cr_assert_eq(f.d.count, n);
    cr_assert_geq(f.d.depth, 2u, "depth %u", f.d.depth);
    check(&f);
    bt_read r;
    bt_read_init(&r);
    for (uint32_t x = 0; x < n; x++) {
      size_t kn = mkkey(k, x);
      const uint8_t *v;
      size_t vn;
      cr_assert_eq(bt_get(f.t, &f.d, (uint8_t *)k, kn, &r, &v, &vn), NX_OK, "key %u", x);
      uint32_t got;
      cr_assert_eq(vn, sizeof got);
      memcpy(&got, v, sizeof got);
      cr_assert_eq(got, x);
    }
    bt_read_free(f.t, &r);
    bt_cursor c;
    bt_cursor_init(&c, f.t, &f.d);
    uint32_t seen = 0;
    for (int rc = bt_cursor_first(&c); rc == NX_OK; rc = bt_cursor_next(&c)) {
      const uint8_t *kp, *vp;
      size_t kn, vn;
      cr_assert_eq(bt_cursor_get(&c, &kp, &kn, &vp, &vn), NX_OK);
      size_t en = mkkey(k, seen);
      cr_assert(kn == en && memcmp(kp, k, kn) == 0, "entry %u out of order", seen);
      seen++;
    }
    cr_assert_eq(seen, n);
    seen = 0;
    for (int rc = bt_cursor_last(&c); rc == NX_OK; rc = bt_cursor_prev(&c)) seen++;
    cr_assert_eq(seen, n);
    bt_cursor_fini(&c);
    fix_close(&f);
  }
}

Test(btree, variable_keys_up_to_the_limit) {
  uint32_t sizes[] = {4096, 16384};
  for (int z = 0; z < 2; z++) {
    bt_fix f;
    fix_open(&f, sizes[z]);
    static uint8_t key[BT_MAX_KEY + 1];
    const uint32_t n = 600;
    for (uint32_t i = 0; i < n; i++) {
      uint32_t x = perm(i, n);
      size_t kn = 4 + (x * 37u) % (BT_MAX_KEY - 3); /* 4 .. 1024 */
      memset(key, 'a' + (int)(x % 26), kn);
      nx_put32(key, __builtin_bswap32(x)); /* unique, big-endian first */
      uint8_t val[40];
      memset(val, (int)x, sizeof val);
      put(&f, key, kn, val, (x % 3) ? sizeof val : 0);
    }
    cr_assert_eq(f.d.count, n);
    check(&f);
    /* a key one byte too long is refused */
    bool added;
    memset(key, 'z', sizeof key);
    cr_assert_eq(bt_put(f.t, &f.s, &f.d, key, BT_MAX_KEY + 1, key, 1, false, &added), NX_LIMIT);
    cr_assert_eq(bt_put(f.t, &f.s, &f.d, key, BT_MAX_KEY, key, 1, false, &added), NX_OK);
    /* delete them all: the tree shrinks back to nothing */
    for (uint32_t i = 0; i < n; i++) {
      uint32_t x = perm(i, n);
      size_t kn = 4 + (x * 37u) % (BT_MAX_KEY - 3);
      memset(key, 'a' + (int)(x % 26), kn);
      nx_put32(key, __builtin_bswap32(x));
      cr_assert_eq(bt_del(f.t, &f.s, &f.d, key, kn), NX_OK, "del %u: %s", x, nx_err_msg());
      if (i % 50 == 0) check(&f);
    }
    memset(key, 'z', BT_MAX_KEY);
    cr_assert_eq(bt_del(f.t, &f.s, &f.d, key, BT_MAX_KEY), NX_OK);
    cr_assert_eq(f.d.count, 0);
    cr_assert_eq(f.d.root, 0);
    cr_assert_eq(f.d.depth, 0);
    check(&f);
    fix_close(&f);
  }
}

Test(btree, overflow_values_at_the_boundaries) {
  bt_fix f;
  fix_open(&f, 4096);
  uint32_t maxc = bt_max_cell(4096), per = 4096 - 32;
  size_t klen = 5;
  size_t lens[] = {0, 1, maxc - 7 - klen, maxc - 7 - klen + 1, per - 1, per, per + 1, 3 * per, 100000, 1u << 20};
  size_t nl = sizeof lens / sizeof lens[0];
  uint8_t *buf = malloc(1u << 20);
  for (size_t i = 0; i < nl; i++) {
    char k[8];
    snprintf(k, sizeof k, "v%04zu", i);
    for (size_t j = 0; j < lens[i]; j++) buf[j] = (uint8_t)(j * 7 + i);
    put(&f, k, klen, buf, lens[i]);
  }
  check(&f);
  fix_commit(&f);
  bt_read r;
  bt_read_init(&r);
  for (size_t i = 0; i < nl; i++) {
    char k[8];
    snprintf(k, sizeof k, "v%04zu", i);
    for (size_t j = 0; j < lens[i]; j++) buf[j] = (uint8_t)(j * 7 + i);
    const uint8_t *v;
    size_t vn;
    cr_assert_eq(bt_get(f.t, &f.d, (uint8_t *)k, klen, &r, &v, &vn), NX_OK);
    cr_assert_eq(vn, lens[i]);
    cr_assert(vn == 0 || memcmp(v, buf, vn) == 0, "value %zu differs", i);
  }
  /* replace: overflow -> inline -> overflow, count unchanged */
  put(&f, "v0009", klen, "x", 1);
  put(&f, "v0000", klen, buf, 50000);
  cr_assert_eq(f.d.count, nl);
  const uint8_t *v;
  size_t vn;
  cr_assert_eq(bt_get(f.t, &f.d, (const uint8_t *)"v0009", klen, &r, &v, &vn), NX_OK);
  cr_assert(vn == 1 && v[0] == 'x');
  cr_assert_eq(bt_get(f.t, &f.d, (const uint8_t *)"v0000", klen, &r, &v, &vn), NX_OK);
  cr_assert(vn == 50000 && memcmp(v, buf, vn) == 0);
  bt_read_free(f.t, &r);
  check(&f);
  free(buf);
  fix_close(&f);
}

static int count_mark(void *ctx, uint32_t pgno) {
  (void)pgno;
  (*(uint64_t *)ctx)++;
  return 0;
}

Test(btree, delete_merges_and_drop_frees) {
  bt_fix f;
  fix_open(&f, 4096);
  const uint32_t n = 30000;
  char k[32];
  uint8_t val[100];
  memset(val, 7, sizeof val);
  for (uint32_t i = 0; i < n; i++) put(&f, k, mkkey(k, perm(i, n)), val, sizeof val);
  bt_check_stats full;
  cr_assert_eq(bt_check(f.t, &f.d, NULL, NULL, &full), NX_OK);
  uint32_t depth0 = f.d.depth;
  /* delete 95% in random order: pages merge, the tree gets shallower or stays, and the fill of
   * what remains stays reasonable */
  for (uint32_t i = 0; i < n; i++) {
    uint32_t x = perm(i, n);
    if (x % 20 == 0) continue;
    cr_assert_eq(bt_del(f.t, &f.s, &f.d, (uint8_t *)k, mkkey(k, x)), NX_OK);
    if (i % 3000 == 0) check(&f);
  }
  cr_assert_eq(bt_del(f.t, &f.s, &f.d, (uint8_t *)k, mkkey(k, 1)), NX_NOTFOUND);
  bt_check_stats st;
  cr_assert_eq(bt_check(f.t, &f.d, NULL, NULL, &st), NX_OK, "%s", nx_err_msg());
  cr_assert_eq(st.entries, n / 20);
  cr_assert_leq(f.d.depth, depth0);
  cr_assert_lt(st.leaf_pages, full.leaf_pages / 5, "%llu leaves of %llu left", (unsigned long long)st.leaf_pages,
               (unsigned long long)full.leaf_pages);
  uint64_t pages = 0;
  cr_assert_eq(bt_visit(f.t, &f.d, count_mark, &pages), NX_OK);
  cr_assert_eq(pages, st.leaf_pages + st.branch_pages);
  cr_assert_eq(bt_drop(f.t, &f.d), NX_OK);
  cr_assert_eq(f.d.root, 0);
  check(&f);
  fix_close(&f);
}

Test(btree, cursor_seek_ge_eq_le_and_edges) {
  bt_fix f;
  fix_open(&f, 4096);
  char k[32];
  /* even keys 0..19998 */
  for (uint32_t i = 0; i < 10000; i++) put(&f, k, mkkey(k, perm(i, 10000) * 2), "v", 1);
  bt_cursor c;
  bt_cursor_init(&c, f.t, &f.d);
  for (uint32_t x = 0; x <= 20000; x += 7) {
    size_t kn = mkkey(k, x);
    const uint8_t *kp;
    size_t kl;
    char want[32];
    int rc = bt_cursor_seek(&c, (uint8_t *)k, kn, 0);
    if (x > 19998) {
      cr_assert_eq(rc, NX_NOTFOUND);
    } else {
      cr_assert_eq(rc, NX_OK);
      cr_assert_eq(bt_cursor_get(&c, &kp, &kl, NULL, NULL), NX_OK);
      mkkey(want, (x + 1) / 2 * 2);
      cr_assert(kl == 9 && memcmp(kp, want, 9) == 0, "GE %u gave %.*s", x, (int)kl, kp);
    }
    rc = bt_cursor_seek(&c, (uint8_t *)k, kn, 1);
    cr_assert_eq(rc, (x % 2 == 0 && x <= 19998) ? NX_OK : NX_NOTFOUND, "EQ %u", x);
    rc = bt_cursor_seek(&c, (uint8_t *)k, kn, 2);
    cr_assert_eq(rc, NX_OK);
    cr_assert_eq(bt_cursor_get(&c, &kp, &kl, NULL, NULL), NX_OK);
    mkkey(want, x > 19998 ? 19998 : x / 2 * 2);
    cr_assert(kl == 9 && memcmp(kp, want, 9) == 0, "LE %u gave %.*s", x, (int)kl, kp);
    /* after LE, next gives the following even key (or the end) */
    rc = bt_cursor_next(&c);
    if (x >= 19998) cr_assert_eq(rc, NX_NOTFOUND);
    else cr_assert_eq(rc, NX_OK);
  }
  cr_assert_eq(bt_cursor_seek(&c, (const uint8_t *)"a", 1, 2), NX_NOTFOUND); /* below all */
  cr_assert_eq(bt_cursor_seek(&c, (const uint8_t *)"a", 1, 0), NX_OK);
  cr_assert_eq(bt_cursor_prev(&c), NX_NOTFOUND);
  cr_assert_eq(bt_cursor_next(&c), NX_NOTFOUND); /* unpositioned stays so */
  bt_cursor_fini(&c);
  fix_close(&f);
}

Test(btree, noover_and_update_keep_count) {
  bt_fix f;
  fix_open(&f, 4096);
  bool added;
  cr_assert_eq(bt_put(f.t, &f.s, &f.d, (const uint8_t *)"a", 1, (const uint8_t *)"1", 1, true, &added), NX_OK);
  cr_assert(added);
  cr_assert_eq(bt_put(f.t, &f.s, &f.d, (const uint8_t *)"a", 1, (const uint8_t *)"2", 1, true, &added), NX_EXISTS);
  cr_assert_eq(bt_put(f.t, &f.s, &f.d, (const uint8_t *)"a", 1, (const uint8_t *)"22", 2, false, &added), NX_OK);
  cr_assert(!added);
  cr_assert_eq(f.d.count, 1);
  cr_assert_eq(bt_put(f.t, &f.s, &f.d, (const uint8_t *)"", 0, (const uint8_t *)"e", 1, false, &added), NX_OK);
  cr_assert_eq(f.d.count, 2);
  bt_read r;
  bt_read_init(&r);
  const uint8_t *v;
  size_t vn;
  cr_assert_eq(bt_get(f.t, &f.d, (const uint8_t *)"a", 1, &r, &v, &vn), NX_OK);
  cr_assert(vn == 2 && memcmp(v, "22", 2) == 0);
  cr_assert_eq(bt_get(f.t, &f.d, (const uint8_t *)"", 0, &r, &v, &vn), NX_OK);
  cr_assert(vn == 1 && v[0] == 'e');
  bt_read_free(f.t, &r);
  check(&f);
  fix_close(&f);
}

Test(btree, corrupt_pages_are_reported_not_trusted) {
  bt_fix f;
  fix_open(&f, 4096);
  char k[32];
  for (uint32_t i = 0; i < 2000; i++) put(&f, k, mkkey(k, i), "value", 5);
  check(&f);
  /* Corrupt a leaf written by this txn (the pager's checksum cannot catch what we wrote):
   * each kind of damage must give NX_CORRUPT from reads, cursors and the checker. */
  bt_cursor c;
  bt_cursor_init(&c, f.t, &f.d);
  cr_assert_eq(bt_cursor_first(&c), NX_OK);
  uint32_t leafno = c.pg[c.depth - 1].pgno;
  bt_cursor_fini(&c);
  uint8_t saved[4096];
  for (int kind = 0; kind < 4; kind++) {
    pg_page pg;
    cr_assert_eq(pg_get(f.t, leafno, 0, &pg), NX_OK);
    cr_assert_eq(pg_write(f.t, &pg), NX_OK);
    cr_assert_eq(pg.pgno, leafno, "a dirty page keeps its number");
    memcpy(saved, pg.data, 4096);
    switch (kind) {
    case 0: nx_put16(pg.data + 24, 4000); break;                 /* n beyond the slots */
    case 1: nx_put16(pg.data + BT_HDR_END, 4090); break;         /* slot near the end */
    case 2: nx_put16(pg.data + nx_get16(pg.data + BT_HDR_END), 5000); break; /* klen huge */
    case 3: nx_put16(pg.data + BT_HDR_END + 2, nx_get16(pg.data + BT_HDR_END + 4)); break; /* order */
    }
    bt_check_stats st;
    cr_assert_eq(bt_check(f.t, &f.d, NULL, NULL, &st), NX_CORRUPT, "kind %d", kind);
    bt_cursor_init(&c, f.t, &f.d);
    int rc = bt_cursor_first(&c);
    for (int i = 0; rc == NX_OK && i < 3000; i++) {
      rc = bt_cursor_get(&c, NULL, NULL, NULL, NULL);
      if (rc == NX_OK) rc = bt_cursor_next(&c);
    }
    if (kind < 3) cr_assert_eq(rc, NX_CORRUPT, "kind %d: cursor gave %d", kind, rc);
    bt_cursor_fini(&c);
    memcpy(pg.data, saved, 4096);
    pg_release(f.t, &pg);
  }
  check(&f);
  fix_close(&f);
}

Test(btree, rebuild_packs_pages_and_keeps_entries) {
  bt_fix f;
  fix_open(&f, 4096);
  char k[32];
  static uint8_t big[9000];
  memset(big, 'b', sizeof big);
  const uint32_t n = 8000;
  for (uint32_t i = 0; i < n; i++) {
    uint32_t x = perm(i, n);
    size_t vn = x % 97 == 0 ? sizeof big : 20 + x % 60;
    put(&f, k, mkkey(k, x), big, vn);
  }
  for (uint32_t x = 0; x < n; x += 3) cr_assert_eq(bt_del(f.t, &f.s, &f.d, (uint8_t *)k, mkkey(k, x)), NX_OK);
  bt_check_stats before, after;
  cr_assert_eq(bt_check(f.t, &f.d, NULL, NULL, &before), NX_OK);
  bt_desc nd;
  cr_assert_eq(bt_rebuild(f.t, &f.s, &f.d, &nd), NX_OK, "%s", nx_err_msg());
  cr_assert_eq(bt_check(f.t, &nd, NULL, NULL, &after), NX_OK, "%s", nx_err_msg());
  cr_assert_eq(after.entries, before.entries);
  cr_assert_eq(after.overflow_pages, before.overflow_pages);
  cr_assert_lt(after.leaf_pages * 10, before.leaf_pages * 8, "leaves %llu -> %llu",
               (unsigned long long)before.leaf_pages, (unsigned long long)after.leaf_pages);
  bt_cursor a, b;
  bt_cursor_init(&a, f.t, &f.d);
  bt_cursor_init(&b, f.t, &nd);
  int ra = bt_cursor_first(&a), rb = bt_cursor_first(&b);
  uint64_t seen = 0;
  while (ra == NX_OK && rb == NX_OK) {
    const uint8_t *ka, *va, *kb, *vb;
    size_t kan, van, kbn, vbn;
    cr_assert_eq(bt_cursor_get(&a, &ka, &kan, &va, &van), NX_OK);
    cr_assert_eq(bt_cursor_get(&b, &kb, &kbn, &vb, &vbn), NX_OK);
    cr_assert(kan == kbn && memcmp(ka, kb, kan) == 0 && van == vbn && memcmp(va, vb, van) == 0, "entry %llu differs",
              (unsigned long long)seen);
    seen++;
    ra = bt_cursor_next(&a);
    rb = bt_cursor_next(&b);
  }
  cr_assert(ra == NX_NOTFOUND && rb == NX_NOTFOUND);
  cr_assert_eq(seen, before.entries);
  bt_cursor_fini(&a);
  bt_cursor_fini(&b);
  cr_assert_eq(bt_drop(f.t, &f.d), NX_OK);
  f.d = nd;
  check(&f);
  /* the rebuilt tree takes further writes normally */
  for (uint32_t x = 0; x < n; x += 3) put(&f, k, mkkey(k, x), "again", 5);
  cr_assert_eq(f.d.count, n);
  check(&f);
  bt_desc empty = {0, 0, 0, 0}, out;
  cr_assert_eq(bt_rebuild(f.t, &f.s, &empty, &out), NX_OK);
  cr_assert_eq(out.root, 0);
  fix_close(&f);
}

static int max_mark(void *ctx, uint32_t pgno) {
  uint32_t *m = ctx;
  if (pgno > *m) *m = pgno;
  return 0;
}

Test(btree, relocate_moves_high_pages_into_low_holes) {
  bt_fix f;
  fix_open(&f, 4096);
  char k[32];
  static uint8_t big[10000];
  memset(big, 'o', sizeof big);
  const uint32_t n = 6000;
  for (uint32_t i = 0; i < n; i++) put(&f, k, mkkey(k, i), big, i % 500 == 499 ? sizeof big : 60);
  fix_commit(&f);
  /* free the low pages: delete the first two thirds (inserted first, so mostly low numbers) */
  for (uint32_t i = 0; i < n * 2 / 3; i++) cr_assert_eq(bt_del(f.t, &f.s, &f.d, (uint8_t *)k, mkkey(k, i)), NX_OK);
  cr_assert_eq(pager_commit(f.t), NX_OK); /* no write txn open: a FULL checkpoint waits for it */
  cr_assert_eq(pager_checkpoint(f.p, NX_CHECKPOINT_FULL), NX_OK);
  cr_assert_eq(pager_checkpoint(f.p, NX_CHECKPOINT_FULL), NX_OK);
  cr_assert_eq(pager_begin(f.p, true, &f.t), NX_OK);
  uint64_t live = 0;
  uint32_t hi_before = 0, hi_after = 0;
  cr_assert_eq(bt_visit(f.t, &f.d, count_mark, &live), NX_OK);
  cr_assert_eq(bt_visit(f.t, &f.d, max_mark, &hi_before), NX_OK);
  uint32_t limit = (uint32_t)live + 20;
  cr_assert_gt(hi_before, limit);
  cr_assert_eq(bt_relocate(f.t, &f.d, limit), NX_OK, "%s", nx_err_msg());
  cr_assert_eq(bt_visit(f.t, &f.d, max_mark, &hi_after), NX_OK);
  cr_assert_lt(hi_after, limit, "highest page %u -> %u (limit %u)", hi_before, hi_after, limit);
  check(&f);
  cr_assert_eq(f.d.count, n - n * 2 / 3);
  bt_read r;
  bt_read_init(&r);
  for (uint32_t i = n * 2 / 3; i < n; i++) {
    const uint8_t *v;
    size_t vn;
    cr_assert_eq(bt_get(f.t, &f.d, (uint8_t *)k, mkkey(k, i), &r, &v, &vn), NX_OK);
    cr_assert_eq(vn, i % 500 == 499 ? sizeof big : 60);
    cr_assert(memcmp(v, big, vn) == 0);
  }
  bt_read_free(f.t, &r);
  fix_close(&f);
}

/* A branch entry records the txn id that wrote its child: a child whose header names another
 * txn (a lost or stale write) is NX_CORRUPT on read, not data. */
Test(btree, stale_child_txn_id_is_caught) {
  bt_fix f;
  fix_open(&f, 4096);
  char k[32];
  for (uint32_t i = 0; i < 3000; i++) put(&f, k, mkkey(k, i), "value", 5);
  cr_assert_geq(f.d.depth, 2u);
  fix_commit(&f);
  pg_page root;
  cr_assert_eq(pg_get(f.t, f.d.root, f.d.root_txn, &root), NX_OK);
  cr_assert_eq(pg_write(f.t, &root), NX_OK);
  f.d.root = root.pgno;
  f.d.root_txn = pg_txnid(f.t);
  uint8_t *cell = root.data + nx_get16(root.data + BT_HDR_END); /* entry 0 */
  uint64_t good = nx_get64(cell + 6);
  nx_put64(cell + 6, good + 1); /* the parent now expects a newer write than the child holds */
  bt_read r;
  bt_read_init(&r);
  const uint8_t *v;
  size_t vn;
  cr_assert_eq(bt_get(f.t, &f.d, (uint8_t *)k, mkkey(k, 0), &r, &v, &vn), NX_CORRUPT);
  bt_check_stats st;
  cr_assert_eq(bt_check(f.t, &f.d, NULL, NULL, &st), NX_CORRUPT);
  nx_put64(cell + 6, good);
  cr_assert_eq(bt_get(f.t, &f.d, (uint8_t *)k, mkkey(k, 0), &r, &v, &vn), NX_OK);
  bt_read_free(f.t, &r);
  pg_release(f.t, &root);
  check(&f);
  fix_close(&f);
}

/* Ascending inserts (sequential _ids) split at the right edge: the left page stays full, so the
 * leaves end up nearly full instead of half full; a random order still splits by halves. */
Test(btree, ascending_inserts_fill_pages) {
  bt_fix f;
  fix_open(&f, 4096);
  char k[32];
  uint8_t val[100];
  memset(val, 7, sizeof val);
  const uint32_t n = 20000;
  for (uint32_t i = 0; i < n; i++) put(&f, k, mkkey(k, i), val, sizeof val);
  bt_check_stats st;
  cr_assert_eq(bt_check(f.t, &f.d, NULL, NULL, &st), NX_OK, "%s", nx_err_msg());
  cr_assert_eq(st.entries, n);
  /* a leaf holds at most (4096 - header) / (7 + 9 + 100 + 2) = 34 of these entries */
  double per_leaf = (double)n / (double)st.leaf_pages;
  cr_log_info("ascending: %llu leaves, %.1f entries per leaf", (unsigned long long)st.leaf_pages, per_leaf);
  cr_assert_geq(per_leaf, 32.0, "leaves only %.1f entries full on ascending inserts", per_leaf);
  /* the same keys in a random order: splits by halves (fill between 50% and 100%) */
  bt_fix g;
  fix_open(&g, 4096);
  for (uint32_t i = 0; i < n; i++) put(&g, k, mkkey(k, perm(i, n)), val, sizeof val);
  bt_check_stats sr;
  cr_assert_eq(bt_check(g.t, &g.d, NULL, NULL, &sr), NX_OK, "%s", nx_err_msg());
  cr_assert_eq(sr.entries, n);
  cr_assert_gt(sr.leaf_pages, st.leaf_pages);
  fix_close(&g);
  fix_close(&f);
}

/* bt_cmp takes shortcuts (the first 8 bytes as one word, the last 8 common bytes as another);
 * it must order exactly as memcmp on the common prefix, then the shorter key first. Keys share
 * prefixes of every length so that each shortcut meets equal and unequal words. */
static int ref_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn) {
  size_t m = an < bn ? an : bn;
  int c = m ? memcmp(a, b, m) : 0;
  if (c) return c < 0 ? -1 : 1;
  return an < bn ? -1 : (an > bn ? 1 : 0);
}

Test(btree, key_compare_orders_as_memcmp_then_length) {
  uint32_t seed = 12345;
  uint8_t a[40], b[40];
  for (int iter = 0; iter < 200000; iter++) {
    size_t an = 0, bn = 0, shared;
    seed = seed * 1103515245u + 12345u;
    an = (seed >> 8) % 25;
    seed = seed * 1103515245u + 12345u;
    bn = (seed >> 8) % 25;
    seed = seed * 1103515245u + 12345u;
    shared = (seed >> 8) % 25;
    for (size_t i = 0; i < sizeof a; i++) {
      seed = seed * 1103515245u + 12345u;
      a[i] = (uint8_t)(seed >> 16) & 3; /* few byte values: many equal bytes */
      seed = seed * 1103515245u + 12345u;
      b[i] = i < shared ? a[i] : (uint8_t)(seed >> 16) & 3;
    }
    int want = ref_cmp(a, an, b, bn), got = bt_cmp(a, an, b, bn);
    got = got < 0 ? -1 : got > 0;
    cr_assert_eq(got, want, "lengths %zu and %zu, shared prefix %zu: bt_cmp %d, memcmp order %d", an, bn, shared, got,
                 want);
  }
}
