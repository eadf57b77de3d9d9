/* fuzz_ndjson.c: libFuzzer target for the NDJSON and JSON import readers (built with -DNX_FUZZ=ON under clang).
 * The body is io_fuzz_read (src/io/io_fuzz.c), which tests/test_fuzz_replay_io.c also runs over
 * fuzz/corpus/ndjson/ in every build. Seeds: fuzz/corpus/ndjson/; dictionary: fuzz/ndjson.dict. */
#include <stddef.h>
#include <stdint.h>

#include "io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  nx_alloc_init();
  (void)io_fuzz_read(data, size, NX_FORMAT_NDJSON);
  (void)io_fuzz_read(data, size, NX_FORMAT_JSON); /* the array / object-sequence reader too */
  return 0;
}
