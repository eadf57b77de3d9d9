/* test_fuzz_replay_io.c: replays the io fuzz corpora (fuzz/corpus/{csv,ndjson,bson}/) through the
 * fuzz targets' own entry function, io_fuzz_read, in every build (gcc included), so seeds and any
 * crash reproducers saved there keep being checked without libFuzzer. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io.h"

static size_t replay_dir(const char *kind, nx_format f, nx_format also, size_t *files) {
  char dir[512];
  snprintf(dir, sizeof dir, "%s/../fuzz/corpus/%s", NX_TEST_DATA_DIR, kind);
  DIR *d = opendir(dir);
  cr_assert(d, "no corpus folder %s", dir);
  struct dirent *e;
  size_t records = 0;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    FILE *fp = fopen(p, "rb");
    cr_assert(fp, "%s", p);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)n + 1);
    cr_assert_eq(fread(buf, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    records += io_fuzz_read(buf, (size_t)n, f);
    if (also != NX_FORMAT_AUTO) records += io_fuzz_read(buf, (size_t)n, also);
    free(buf);
    (*files)++;
  }
  closedir(d);
  return records;
}

Test(fuzz_replay_io, csv_corpus) {
  size_t files = 0, recs = replay_dir("csv", NX_FORMAT_CSV, NX_FORMAT_AUTO, &files);
  cr_assert_geq(files, 10);
  cr_assert_gt(recs, files, "the seeds hold records");
}

Test(fuzz_replay_io, ndjson_and_json_corpus) {
  size_t files = 0, recs = replay_dir("ndjson", NX_FORMAT_NDJSON, NX_FORMAT_JSON, &files);
  cr_assert_geq(files, 10);
  cr_assert_gt(recs, files);
}

Test(fuzz_replay_io, bson_corpus) {
  size_t files = 0, recs = replay_dir("bson", NX_FORMAT_BSON, NX_FORMAT_AUTO, &files);
  cr_assert_geq(files, 8);
  cr_assert_gt(recs, files);
}

Test(fuzz_replay_io, entry_function_survives_every_prefix_of_the_seeds) {
  /* truncation at every byte of a few seeds: the cheapest structured mutation */
  const char *seeds[][2] = {{"csv", "quoted.csv"}, {"ndjson", "extjson.ndjson"}, {"ndjson", "array.json"}, {"bson", "good.bson"}};
  nx_format fmts[] = {NX_FORMAT_CSV, NX_FORMAT_NDJSON, NX_FORMAT_JSON, NX_FORMAT_BSON};
  for (int s = 0; s < 4; s++) {
    char p[1024];
    snprintf(p, sizeof p, "%s/../fuzz/corpus/%s/%s", NX_TEST_DATA_DIR, seeds[s][0], seeds[s][1]);
    FILE *fp = fopen(p, "rb");
    cr_assert(fp, "%s", p);
    uint8_t buf[4096];
    size_t n = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    for (size_t k = 0; k <= n; k++) {
      uint8_t *copy = malloc(k ? k : 1); /* exact size: ASan sees any overread */
      memcpy(copy, buf, k);
      io_fuzz_read(copy, k, fmts[s]);
      free(copy);
    }
  }
}
