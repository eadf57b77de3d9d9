/* test_fuzz_replay_filter.c: runs every file of fuzz/corpus/filter through the fuzz target's
 * entry point (LLVMFuzzerTestOneInput of fuzz/fuzz_filter.c, compiled in here), so that plain gcc
 * builds and the sanitizer run exercise the corpus without libFuzzer. Also replays truncated and
 * bit-flipped variants of each seed (deterministic), and checks nothing leaks. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>

#include "../fuzz/fuzz_filter.c"

static uint8_t *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  uint8_t *buf = malloc(FUZZ_MAX_INPUT + 1);
  *n = fread(buf, 1, FUZZ_MAX_INPUT + 1, f);
  fclose(f);
  return buf;
}

Test(fuzz_replay, filter_corpus_runs_clean) {
  nx_alloc_init();
  const char *dir = NX_TEST_DATA_DIR "/../fuzz/corpus/filter";
  DIR *d = opendir(dir);
  cr_assert_not_null(d, "no corpus at %s", dir);
  struct dirent *e;
  int files = 0, runs = 0;
  uint32_t rng = 12345;
  const char *scale = getenv("NX_TEST_SCALE");
  int variants = scale && strcmp(scale, "asan") == 0 ? 2 : 6;
  nx_alloc_stats before, after;
  nx_alloc_get_stats(&before);
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    size_t n = 0;
    uint8_t *buf = slurp(path, &n);
    cr_assert_not_null(buf, "cannot read %s", path);
    files++;
    LLVMFuzzerTestOneInput(buf, n);
    runs++;
    for (int v = 0; v < variants && n > 1; v++) {
      uint8_t *copy = malloc(n);
      memcpy(copy, buf, n);
      rng = rng * 1103515245u + 12345u;
      size_t at = 1 + (rng >> 8) % (n - 1);
      if (v % 2 == 0) {
        copy[at] ^= (uint8_t)(1u << ((rng >> 3) & 7));
        LLVMFuzzerTestOneInput(copy, n);
      } else {
        LLVMFuzzerTestOneInput(copy, at);
      }
      runs++;
      free(copy);
    }
    free(buf);
  }
  closedir(d);
  nx_alloc_get_stats(&after);
  cr_assert_eq(after.current, before.current, "replay leaked %zu bytes", after.current - before.current);
  fprintf(stderr, "replayed %d corpus files, %d inputs\n", files, runs);
  cr_assert_gt(files, 10, "corpus too small: %d files", files);
}
