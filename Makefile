# cellvisor - the Makefile wraps Meson + ninja.
#
#   make          build build/cellvisor
#   make demo     install missing Debian packages, build, run an example cell
#   make check    install missing packages, build, run every test (unit, fuzz corpus
#                 replay, ASan+UBSan build, black-box pytest suite)
#   make fuzz     run the libFuzzer harness for FUZZ_SECONDS (clang)

BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
PYTEST     ?= /usr/bin/python3 -m pytest
TESTDATA   ?= $(abspath ../shared/testdata)

MAKEFLAGS += --no-print-directory

.PHONY: all deps demo lint check unit asan fuzz-replay integration integration-asan fuzz bench clean format

all: $(BUILD)/build.ninja
	ninja -C $(BUILD)

$(BUILD)/build.ninja:
	meson setup $(BUILD) --buildtype=debugoptimized -Dwerror=true

deps:
	./scripts/install-deps.sh

demo: deps all
	@echo "== cellvisor run examples/hello.json (events on stdout)"
	$(BUILD)/cellvisor run --events - examples/hello.json
	@echo "== the same machine seen from a sandbox cell (own namespaces, read-only view, no caps)"
	$(BUILD)/cellvisor run --backend sandbox examples/sandboxed.json
	@echo "== a cell that outlives its timeout is stopped: exit status 124"
	-$(BUILD)/cellvisor run --timeout 300 --events - examples/sleepy.json

$(ASAN_BUILD)/build.ninja:
	CC=clang meson setup $(ASAN_BUILD) --buildtype=debug -Db_sanitize=address,undefined \
	    -Db_lundef=false

unit: all
	meson test -C $(BUILD) --suite unit --print-errorlogs

asan: $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
	    meson test -C $(ASAN_BUILD) --suite unit --print-errorlogs
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
	    $(ASAN_BUILD)/tests/fuzz_spec tests/fuzz/corpus tests/fuzz/corpus/found $(TESTDATA)/json-test-suite

fuzz-replay: all
	$(BUILD)/tests/fuzz_spec tests/fuzz/corpus tests/fuzz/corpus/found $(TESTDATA)/json-test-suite

integration: all
	CELLVISOR_BIN=$(abspath $(BUILD))/cellvisor CELLVISOR_TESTDATA=$(TESTDATA) \
	    $(PYTEST) tests/integration

# The black-box suite against the ASan + UBSan binary: memory errors in real runs. It also
# takes the sandbox path of kernels before 6.15 (CELLVISOR_SANDBOX_ASSEMBLE=0: the cell
# attaches every mount itself), so both paths run every sandbox test.
integration-asan: $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)
	CELLVISOR_BIN=$(abspath $(ASAN_BUILD))/cellvisor CELLVISOR_TESTDATA=$(TESTDATA) \
	    ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=halt_on_error=1 \
	    CELLVISOR_SANDBOX_ASSEMBLE=0 $(PYTEST) tests/integration

lint:
	./scripts/lint-cloexec.sh

check: deps
	$(MAKE) lint
	$(MAKE) all
	$(MAKE) unit fuzz-replay
	$(MAKE) asan
	$(MAKE) integration-asan
	$(MAKE) integration

$(FUZZ_BUILD)/fuzz_spec: tests/fuzz/fuzz_spec.c all
	mkdir -p $(FUZZ_BUILD)
	clang -std=gnu17 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Isrc \
	    tests/fuzz/fuzz_spec.c src/spec/spec.c src/base/fd.c \
	    $$(pkg-config --cflags --libs jansson) -o $@

fuzz: $(FUZZ_BUILD)/fuzz_spec
	mkdir -p $(FUZZ_BUILD)/corpus
	$(FUZZ_BUILD)/fuzz_spec -max_total_time=$(FUZZ_SECONDS) -max_len=65536 \
	    $(FUZZ_BUILD)/corpus tests/fuzz/corpus tests/fuzz/corpus/found $(TESTDATA)/json-test-suite

bench: all
	./scripts/install-deps.sh --bench
	./bench/run-overhead
	if [ -x bench/sandbox-start ]; then ./bench/sandbox-start; fi

format:
	clang-format -i $$(git ls-files 'src/*.c' 'src/*.h' 'tests/*.c')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
