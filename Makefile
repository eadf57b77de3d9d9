# NexusLite: the two commands a newcomer types are `make demo` and `make test`.
# This Makefile only drives CMake; the real build is CMakeLists.txt.
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
BUILD ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
RELEASE_BUILD ?= build-release

.PHONY: all deps build build-asan build-release check test test-plain test-asan tsan demo bench install clean

all: build

deps:
	@bash scripts/install-deps

build:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

build-asan:
	@CC=clang cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DNX_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)

# A Release build (-O3) compiles too: gcc's deeper inlining finds maybe-uninitialized warnings
# that -O2 does not, and warnings are errors (built by `make test`, not run).
build-release:
	@cmake -S . -B $(RELEASE_BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(RELEASE_BUILD) -j $(JOBS)

# Inner loop: plain build, fast tests only.
check: build
	@cd $(BUILD) && CRITERION_JOBS=1 ctest -L fast --output-on-failure -j $(JOBS)

test-plain: build
	@cd $(BUILD) && CRITERION_JOBS=1 ctest --output-on-failure -j $(JOBS)

test-asan: build-asan
	@cd $(ASAN_BUILD) && CRITERION_JOBS=1 NX_TEST_SCALE=asan \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest -LE plain-only --output-on-failure -j $(JOBS)

# The whole suite, twice: plain, then AddressSanitizer + UndefinedBehaviorSanitizer; and the
# Release build compiles.
test: deps
	@$(MAKE) --no-print-directory build-release
	@$(MAKE) --no-print-directory test-plain
	@$(MAKE) --no-print-directory test-asan

# ThreadSanitizer over the concurrency stress (tests/helpers/stress_concurrency.c): lock-free
# reads, read hints, two-step reads and the background checkpointer. A standalone program, since
# Criterion does not start under TSan here; not part of `make test` (a third build).
tsan: deps
	@CC=clang cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_C_FLAGS=-fsanitize=thread -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread >/dev/null
	@cmake --build $(TSAN_BUILD) --target stress_concurrency -j $(JOBS)
	@TSAN_OPTIONS=halt_on_error=1:exitcode=66 $(TSAN_BUILD)/tests/stress_concurrency

demo: deps build
	@if [ -x $(BUILD)/nexuslite ]; then bash scripts/demo $(BUILD); else $(BUILD)/examples/ex_storage_basics demo.db; fi

bench: deps build
	@cmake --build $(BUILD) --target benchmarks -j $(JOBS)
	@$(BUILD)/bench/bench_storage

install: build
	@cmake --install $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(RELEASE_BUILD)
