/*
 * fuzz_filter.c: libFuzzer target for the filter, update, projection and sort parsers and their
 * evaluation (DESIGN.md section 9).
 *
 * Input: one mode byte, then the payload.
 *   mode & 1 == 0: the payload is up to three BSON documents back to back (each with its own
 *                  length prefix), validated with bson_validate: SPEC, DOC, EXTRA.
 *   mode & 1 == 1: the payload is up to three JSON texts separated by '\n': SPEC, DOC, EXTRA.
 * SPEC is parsed as a filter, an update, a projection and a sort; DOC (if it passes
 * doc_validate_for_storage, as stored documents do) is matched, updated (with the filter for the
 * positional $, and as an upsert seed when mode & 2), and projected; EXTRA, if present, is used as
 * the update instead of SPEC. A DOC that is framed but malformed inside is still matched and
 * sorted (the raw walkers must stay in bounds on hostile bytes). Everything is freed: the sanitizers and the leak checker see it all.
 *
 * The same entry point runs under gcc in tests/test_fuzz_replay_filter.c over fuzz/corpus/filter.
 */
#include <stdint.h>
#include <string.h>

#include "match.h"

#define FUZZ_MAX_INPUT (64 * 1024)

/* 1: a valid BSON document; 2: framed (length and final NUL right) but invalid inside; 0: none. */
static int take_bson(const uint8_t **p, size_t *left, bson_t *out) {
  if (*left < 5) return 0;
  uint32_t len = nx_get32(*p);
  if (len < 5 || len > *left) return 0;
  if (!bson_init_static(out, *p, len)) return 0;
  *p += len;
  *left -= len;
  size_t off;
  return bson_validate(out, BSON_VALIDATE_NONE, &off) ? 1 : 2;
}

/* Hostile bytes straight from "storage": the raw walkers must stay in bounds. */
static void run_raw(const bson_t *spec, const bson_t *raw) {
  filter_t *f = NULL;
  sort_t *s = NULL;
  bool m;
  if (filter_parse(spec, &f) == NX_OK) (void)filter_match(f, raw, &m);
  if (sort_parse(spec, &s) == NX_OK) (void)sort_cmp(s, raw, raw);
  filter_free(f);
  sort_free(s);
}

static int take_json(const uint8_t **p, size_t *left, bson_t *out, bool *owned) {
  if (*left == 0) return 0;
  const uint8_t *nl = memchr(*p, '\n', *left);
  size_t n = nl ? (size_t)(nl - *p) : *left;
  int ok = doc_from_json((const char *)*p, (ssize_t)n, out) == NX_OK;
  *owned = ok;
  *p += nl ? n + 1 : n;
  *left -= nl ? n + 1 : n;
  return ok;
}

static void run(const bson_t *spec, const bson_t *doc, const bson_t *extra, int mode) {
  filter_t *f = NULL;
  update_t *u = NULL;
  proj_t *pj = NULL;
  sort_t *s = NULL;
  bool m = false, changed = false;
  bson_t out, seed;
  if (filter_parse(spec, &f) == NX_OK) {
    for (size_t i = 0; i < filter_conjunct_count(f); i++) {
      filter_conjunct c;
      filter_conjunct_get(f, i, &c);
    }
    if (doc) {
      int64_t pos;
      (void)filter_match_pos(f, doc, &m, &pos);
    }
    if ((mode & 2) && update_build_upsert_seed(f, &seed) == NX_OK) bson_destroy(&seed);
  }
  if (update_parse(extra ? extra : spec, &u) == NX_OK && doc) {
    if (update_apply(u, doc, f, (mode & 2) != 0, 1700000000000, &out, &changed) == NX_OK) {
      (void)doc_validate_for_storage(&out);
      bson_destroy(&out);
    }
  }
  if (proj_parse(extra ? extra : spec, &pj) == NX_OK && doc) {
    if (proj_apply(pj, doc, f, &out) == NX_OK) bson_destroy(&out);
  }
  if (sort_parse(spec, &s) == NX_OK && doc) {
    (void)sort_cmp(s, doc, doc);
    if (sort_key_extract(s, doc, &out) == NX_OK) {
      (void)sort_key_cmp(s, &out, &out);
      bson_destroy(&out);
    }
  }
  filter_free(f);
  update_free(u);
  proj_free(pj);
  sort_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > FUZZ_MAX_INPUT) return 0;
  nx_alloc_init();
  int mode = data[0];
  const uint8_t *p = data + 1;
  size_t left = size - 1;
  bson_t parts[3];
  bool owned[3] = {false, false, false};
  int n = 0;
  for (; n < 3; n++) {
    int ok = (mode & 1) ? take_json(&p, &left, &parts[n], &owned[n]) : take_bson(&p, &left, &parts[n]);
    if (ok == 2 && n == 1) run_raw(&parts[0], &parts[1]);
    if (ok != 1) break;
  }
  if (n >= 1) {
    const bson_t *doc = n >= 2 && doc_validate_for_storage(&parts[1]) == NX_OK ? &parts[1] : NULL;
    run(&parts[0], doc, n >= 3 ? &parts[2] : NULL, mode);
  }
  for (int i = 0; i < 3; i++)
    if (owned[i]) bson_destroy(&parts[i]);
  nx_err_clear();
  return 0;
}
