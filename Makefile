# adamcore: `make` builds everything into build/, `make demo` runs the main example, `make test` runs every test,
# `make install PREFIX=...` installs the library, header and pkg-config file.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := all

PREFIX ?= /usr/local
VERSION := $(shell sed -n 's/^\#define ADAMCORE_VERSION_STRING "\(.*\)"/\1/p' include/adamcore.h)
SOMAJOR := $(firstword $(subst ., ,$(VERSION)))

BUILD := $(CURDIR)/build
STAGE := $(BUILD)/stage
LIB := $(BUILD)/lib/libadamcore.so.$(VERSION)
SWIFT_LIB_SCRATCH := $(BUILD)/swift
SWIFT_TEST_SCRATCH := $(BUILD)/swift-test
SWIFT_SOURCES := Package.swift $(shell find Sources -type f) include/adamcore.h
CC ?= cc
CFLAGS ?= -O2 -g -std=c11 -Wall -Wextra -Werror

# The shared library: static Swift runtime (loads without a toolchain), only adamcore_* exported, a SONAME.
SWIFT_LIB_FLAGS := -c release --product adamcore --scratch-path $(SWIFT_LIB_SCRATCH) \
	-Xswiftc -static-stdlib \
	-Xlinker --version-script=$(CURDIR)/Sources/AdamCoreABI/exports.map \
	-Xlinker -soname=libadamcore.so.$(SOMAJOR)

.PHONY: all help deps system-deps demo-deps bench-deps lib python wheel test-wheel demo-torch python-hooks demo demo-c seeds test test-swift test-tsan test-abi test-c test-swift-example test-python test-stubs test-pip test-bench bench \
	fuzz test-fuzz test-asan asan-lib install uninstall clean

all: lib python $(BUILD)/logreg
	@echo "built: $(LIB), the Python package in $(BUILD)/python (PYTHONPATH=$(BUILD)/python), $(BUILD)/logreg"

help:
	@echo "make            build the library, the Python package (build/python) and the C example"
	@echo "make demo       build, install what the demo imports, run the main demo (examples/python)"
	@echo "make demo-c     build and run the C example (examples/c/logreg.c)"
	@echo "make demo-torch a tiny transformer trained with torch's fused AdamW and adamcore.torch.AdamW (installs torch)"
	@echo "make seeds      the research seeds' claims, measured (docs/SEEDS.md)"
	@echo "make test       install the test stack (make deps) and run every test; CI runs exactly this"
	@echo "make bench      the benchmarks, side by side with gcc, a roofline and whatever of torch and DeepSpeed is installed"
	@echo "make bench-deps install every bench contender (torch, DeepSpeed) and matplotlib for its plot"
	@echo "make lib        only the C library (needs Swift, nothing else)"
	@echo "make install    PREFIX=/usr/local: library, header, adamcore.pc (needs neither Python nor network)"
	@echo "make wheel      a manylinux wheel in build/wheel (offline; pip install it where no Swift is)"
	@echo "make fuzz       FUZZ_SECONDS=300 of libFuzzer on the C API (ASan, UBSan)"
	@echo "make test-asan  the C and Swift tests under AddressSanitizer"
	@echo "make deps | demo-deps | system-deps   install the test stack | what the demos import | Debian tools"
	@echo "make clean      remove build/ and .build/"

# ---------------------------------------------------------------------------------------------------------------
# Set-up, in three levels, so that each target installs only what it uses. Building the library and `make install`
# need the Swift toolchain and nothing else (no Python package, no network). `system-deps`: the Debian packages
# the Python extension and the examples build with (installed when run as root, else named). `demo-deps`: what the
# demos import. `deps`: the whole test stack (pip, into the interpreter that runs the tests; module:package where
# the names differ).
PYTHON ?= python3
DEBIAN_TOOLS := pkg-config:pkg-config objdump:binutils nm:binutils
DEMO_PACKAGES := numpy sklearn:scikit-learn matplotlib tqdm
TEST_PACKAGES := $(DEMO_PACKAGES) pytest hypothesis wheel safetensors torch mypy ml_dtypes
# pip-install the module:package pairs of $(1) that do not import.
define pip_missing
	@pip_missing=""; for pair in $(1); do $(PYTHON) -c "import $${pair%%:*}" 2>/dev/null || pip_missing="$$pip_missing $${pair##*:}"; done; \
	if [ -n "$${pip_missing:-}" ]; then echo "pip installing:$$pip_missing"; $(PYTHON) -m pip install -q $$pip_missing; fi
endef

system-deps:
	@missing=""; for pair in $(DEBIAN_TOOLS); do \
	  command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair##*:}"; done; \
	$(PYTHON) -c "import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))" \
	  || missing="$$missing python3-dev"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "missing packages; run: sudo apt-get install$$missing"; exit 1; fi; \
	fi

demo-deps: system-deps
	$(call pip_missing,$(DEMO_PACKAGES))

deps: system-deps
	$(call pip_missing,$(TEST_PACKAGES))

# The Swift toolchain, checked only when something is to be compiled with it.
SWIFT_CHECK = @command -v swift >/dev/null 2>&1 || { echo "building adamcore needs the Swift toolchain (swift, swiftc) on PATH"; exit 1; }

# ---------------------------------------------------------------------------------------------------------------
# The library, staged as an install tree under build/ (lib, include, pkgconfig) for the examples and tests.
lib: $(LIB)

$(LIB): $(SWIFT_SOURCES)
	$(SWIFT_CHECK)
	swift build $(SWIFT_LIB_FLAGS)
	mkdir -p $(BUILD)/lib/pkgconfig $(BUILD)/include
	cp $(SWIFT_LIB_SCRATCH)/release/libadamcore.so $@
	ln -sf libadamcore.so.$(VERSION) $(BUILD)/lib/libadamcore.so.$(SOMAJOR)
	ln -sf libadamcore.so.$(VERSION) $(BUILD)/lib/libadamcore.so
	cp include/adamcore.h $(BUILD)/include/
	sed -e 's|@PREFIX@|$(BUILD)|' -e 's|@VERSION@|$(VERSION)|' Sources/AdamCoreABI/adamcore.pc.in \
		> $(BUILD)/lib/pkgconfig/adamcore.pc

# ---------------------------------------------------------------------------------------------------------------
# The Python package, built in place under build/python (PYTHONPATH=build/python). The extension finds
# libadamcore.so.0 in build/lib through its RUNPATH.
PY_SRC := bindings/python/adamcore
PY_OUT := $(BUILD)/python/adamcore
PY_EXT := $(PY_OUT)/_core$(shell $(PYTHON) -c "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))" 2>/dev/null)
PY_INCLUDE := $(shell $(PYTHON) -c "import sysconfig; print(sysconfig.get_paths()['include'])" 2>/dev/null)
PY_FILES := $(filter-out %.c %.h,$(wildcard $(PY_SRC)/*))
PY_C_SOURCES := $(addprefix $(PY_SRC)/,_core.c _buffers.c _config.c _stateless.c _optimizer.c _torch.c)

python: $(PY_EXT) $(patsubst $(PY_SRC)/%,$(PY_OUT)/%,$(PY_FILES))

$(PY_EXT): $(PY_C_SOURCES) $(PY_SRC)/_core.h include/adamcore.h $(LIB) | system-deps
	mkdir -p $(PY_OUT)
	$(CC) -O2 -g -std=c11 -Wall -Wextra -Werror -Wno-missing-field-initializers -fPIC -shared \
		-I$(PY_INCLUDE) -Iinclude $(PY_C_SOURCES) -o $@ -L$(BUILD)/lib -ladamcore -lm -Wl,-rpath,'$$ORIGIN/../../lib'

$(PY_OUT)/%: $(PY_SRC)/%
	mkdir -p $(PY_OUT)
	cp $< $@

# A second copy of the package for tests only, its extension built with ADAMCORE_TEST_HOOKS (the GIL probe), so the
# production module carries no test hooks. Its RUNPATH reaches the same build/lib.
PY_HOOKS_OUT := $(BUILD)/python-hooks/adamcore
PY_HOOKS_EXT := $(PY_HOOKS_OUT)/$(notdir $(PY_EXT))

python-hooks: $(PY_HOOKS_EXT) $(patsubst $(PY_SRC)/%,$(PY_HOOKS_OUT)/%,$(PY_FILES))

$(PY_HOOKS_EXT): $(PY_C_SOURCES) $(PY_SRC)/_core.h include/adamcore.h $(LIB)
	mkdir -p $(PY_HOOKS_OUT)
	$(CC) -O2 -g -std=c11 -Wall -Wextra -Werror -Wno-missing-field-initializers -fPIC -shared -DADAMCORE_TEST_HOOKS \
		-I$(PY_INCLUDE) -Iinclude $(PY_C_SOURCES) -o $@ -L$(BUILD)/lib -ladamcore -lm -Wl,-rpath,'$$ORIGIN/../../lib'

$(PY_HOOKS_OUT)/%: $(PY_SRC)/%
	mkdir -p $(PY_HOOKS_OUT)
	cp $< $@

# ---------------------------------------------------------------------------------------------------------------
# Examples and demo
export PKG_CONFIG_PATH := $(BUILD)/lib/pkgconfig$(if $(PKG_CONFIG_PATH),:$(PKG_CONFIG_PATH))

$(BUILD)/logreg: examples/c/logreg.c $(LIB) | system-deps
	$(CC) $(CFLAGS) $< -o $@ $$(pkg-config --cflags --libs adamcore) -lm

# The main demo: the AdaFix paper's optimizer comparison in miniature (Python); the C example is `make demo-c`.
demo: all demo-deps
	PYTHONPATH=$(BUILD)/python $(PYTHON) examples/python/digits_demo.py --out $(BUILD)/demo

demo-c: all
	$(BUILD)/logreg

# The drop-in story in one picture: a tiny transformer trained from scratch with torch's fused AdamW and with
# adamcore.torch.AdamW (same weights, same data): same loss curve, the step times side by side.
demo-torch: all demo-deps
	$(call pip_missing,torch)
	PYTHONPATH=$(BUILD)/python $(PYTHON) examples/python/transformer_demo.py --out $(BUILD)/demo-torch

# The research seeds' claims, measured (docs/SEEDS.md).
seeds: all demo-deps
	PYTHONPATH=$(BUILD)/python $(PYTHON) examples/seeds/seeds.py all --out $(BUILD)/seeds

# ---------------------------------------------------------------------------------------------------------------
# Tests
test: test-swift test-tsan test-abi test-swift-example test-python test-stubs test-pip test-wheel test-bench test-c test-fuzz
	@echo "make test: all suites passed"

# Swift unit tests (release: the kernels are SIMD code that is meaningless to test unoptimised).
test-swift: | deps
	swift test -c release --disable-swift-testing --scratch-path $(SWIFT_TEST_SCRATCH)

# The hand-written lock-free worker pool under ThreadSanitizer: the tests that split steps across its threads.
test-tsan: | deps
	swift test -c release --sanitize=thread --disable-swift-testing --filter 'ThreadTests|SubsetTests' \
		--scratch-path $(BUILD)/swift-tsan

# The library's promises: exports = header = Swift's view with the same types; the Swift product's public API =
# its reviewed list; the statuses' docs = their list; each tier's code only behind its cpuid check; no Swift
# runtime dependency; a SONAME.
test-abi: $(LIB) | system-deps
	Tests/abi/check_header.sh $(LIB) $(SWIFT_LIB_SCRATCH)/release/Modules
	Tests/abi/check_swift_api.sh $(SWIFT_LIB_SCRATCH)/release/Modules
	Tests/abi/check_errors.sh
	Tests/abi/check_isa.sh $(LIB)
	Tests/abi/check_linkage.sh $(LIB) libadamcore.so.$(SOMAJOR)

# The C test program, compiled against an installed copy (make install into build/) through pkg-config, run on
# every kernel tier (the CPU's preferred one, AVX-512, then capped to AVX2 and to the baseline; it also compares the
# tiers);
# and a 0.1.0 caller, compiled against 0.1.0's header, run against this library.
test-c: $(LIB) | system-deps
	$(MAKE) --no-print-directory install PREFIX=$(BUILD)/test-install
	$(CC) $(CFLAGS) -pthread Tests/c/test_abi.c -o $(BUILD)/test_abi \
		$$(PKG_CONFIG_PATH=$(BUILD)/test-install/lib/pkgconfig pkg-config --cflags --libs adamcore) -lm
	$(BUILD)/test_abi
	ADAMCORE_ISA=avx512 $(BUILD)/test_abi
	ADAMCORE_ISA=avx2_fma $(BUILD)/test_abi
	ADAMCORE_ISA=baseline $(BUILD)/test_abi
	@# README's C program, as printed there, against the installed copy through pkg-config.
	awk '/^## C$$/{c=1} c && /^```c$$/{p=1; next} p && /^```$$/{exit} p' README.md > $(BUILD)/readme_app.c
	$(CC) $(CFLAGS) $(BUILD)/readme_app.c -o $(BUILD)/readme_app \
		$$(PKG_CONFIG_PATH=$(BUILD)/test-install/lib/pkgconfig pkg-config --cflags --libs adamcore)
	$(BUILD)/readme_app | grep -q '^w\[0\] = 0\.09' && echo "README's C program: ok"
	$(CC) $(CFLAGS) Tests/c/test_v010_caller.c -o $(BUILD)/test_v010_caller -ITests/fixtures/v0.1.0 \
		-L$(BUILD)/test-install/lib -ladamcore -Wl,-rpath,$(BUILD)/test-install/lib
	$(BUILD)/test_v010_caller

# Python: pytest over the in-place build (run from Tests/python so the source tree is not imported instead).
# The torch drop-in tests run twice: against adamcore.torch, and with torch.optim in its place, which proves that
# each of them states torch's own behaviour.
test-python: python python-hooks | deps
	cd Tests/python && PYTHONPATH=$(BUILD)/python $(PYTHON) -m pytest -q -p no:cacheprovider --ignore=test_gil.py
	cd Tests/python && PYTHONPATH=$(BUILD)/python-hooks $(PYTHON) -m pytest -q -p no:cacheprovider test_gil.py
	cd Tests/python && ADAMCORE_TORCH_SELFTEST=1 PYTHONPATH=$(BUILD)/python $(PYTHON) -m pytest -q -p no:cacheprovider \
		-W ignore test_torch_dropin.py test_torch_distributed.py

# The type stubs of the C extension say what the module is (mypy's stubtest against the built module).
test-stubs: python | deps
	PYTHONPATH=$(BUILD)/python $(PYTHON) -m mypy.stubtest adamcore._core

# `pip install` as a user would, offline (no build isolation), into a throwaway virtual environment.
test-pip: $(LIB) | deps
	rm -rf $(BUILD)/pip-venv
	$(PYTHON) -m venv --system-site-packages $(BUILD)/pip-venv
	$(BUILD)/pip-venv/bin/python -m pip install -q --no-build-isolation ./bindings/python
	cd / && $(BUILD)/pip-venv/bin/python -c "import adamcore, numpy as np; \
		assert adamcore.__file__.startswith('$(BUILD)/pip-venv'), adamcore.__file__; \
		w = np.ones(3, np.float32); adamcore.SGD([w], lr=0.5).step([np.ones(3, np.float32)]); \
		assert (w == 0.5).all(); print('pip install: ok', adamcore.__version__, adamcore.__file__)"

# The binary wheel (bindings/python/make_wheel.py: standard library only, offline): the package, its extension
# linked with RUNPATH $ORIGIN, and the stripped library beside it, tagged manylinux_2_N by the glibc and libstdc++
# versions the two use. test-wheel installs it offline into a fresh venv, with no Swift on PATH, and runs the
# Python tests against that installed copy.
WHEEL_EXT := $(BUILD)/wheel-ext/$(notdir $(PY_EXT))
$(WHEEL_EXT): $(PY_C_SOURCES) $(PY_SRC)/_core.h include/adamcore.h $(LIB) | system-deps
	mkdir -p $(dir $@)
	$(CC) -O2 -std=c11 -Wall -Wextra -Werror -Wno-missing-field-initializers -fPIC -shared -s \
		-I$(PY_INCLUDE) -Iinclude $(PY_C_SOURCES) -o $@ -L$(BUILD)/lib -ladamcore -lm -Wl,-rpath,'$$ORIGIN'

wheel: $(WHEEL_EXT) $(LIB)
	rm -rf $(BUILD)/wheel
	$(PYTHON) bindings/python/make_wheel.py --library $(LIB) --extension $(WHEEL_EXT) --out $(BUILD)/wheel

test-wheel: wheel | deps
	rm -rf $(BUILD)/wheel-venv
	$(PYTHON) -m venv --system-site-packages $(BUILD)/wheel-venv
	env PATH=/usr/bin:/bin $(BUILD)/wheel-venv/bin/python -m pip install -q --no-index --no-deps $(BUILD)/wheel/*.whl
	cd / && env PATH=/usr/bin:/bin $(BUILD)/wheel-venv/bin/python -c "import adamcore, numpy as np; \
		assert adamcore.__file__.startswith('$(BUILD)/wheel-venv'), adamcore.__file__; \
		w = np.ones(3, np.float32); adamcore.SGD([w], lr=0.5).step([np.ones(3, np.float32)]); \
		assert (w == 0.5).all(); print('wheel installed:', adamcore.__file__)"
	cd Tests/python && env -u PYTHONPATH PATH=/usr/bin:/bin $(BUILD)/wheel-venv/bin/python -m pytest -q -p no:cacheprovider \
		--ignore=test_gil.py

# A separate package that depends on AdamCore by path, as a user's would.
test-swift-example: | deps
	swift build -c release --package-path examples/swift --scratch-path $(BUILD)/swift-example --disable-build-manifest-caching
	$(BUILD)/swift-example/release/adamcore-swift-example

# ---------------------------------------------------------------------------------------------------------------
# Sanitizers. The library is rebuilt with AddressSanitizer (Swift has no UBSan on Linux; its own overflow and
# bounds traps stay on in release builds), the C harness and tests with ASan and UBSan, using the toolchain's clang
# (which carries libFuzzer and the sanitizer runtimes). The library is also instrumented for coverage, so the
# fuzzer is guided by the branches it reaches inside the library, not only in the harness (SwiftPM does not
# rebuild for changed -Xswiftc flags: after editing these, remove $(ASAN_SCRATCH)).
SWIFT_CLANG = $(dir $(shell command -v swift))clang
ASAN_SCRATCH := $(BUILD)/swift-asan
ASAN_LIB := $(BUILD)/asan/libadamcore.so.$(SOMAJOR)
SANITIZE_C := -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined -fuse-ld=lld
FUZZ_SECONDS ?= 300
# LeakSanitizer runs too; the Swift runtime's metadata caches live for the process and are not leaks.
export LSAN_OPTIONS := suppressions=$(CURDIR)/Tests/fuzz/lsan.supp:print_suppressions=0

asan-lib: $(ASAN_LIB)
$(ASAN_LIB): $(SWIFT_SOURCES) | deps
	$(SWIFT_CHECK)
	swift build -c release --product adamcore --scratch-path $(ASAN_SCRATCH) --sanitize=address -Xswiftc -static-stdlib \
		-Xswiftc -sanitize=fuzzer \
		-Xlinker --version-script=$(CURDIR)/Sources/AdamCoreABI/exports.map -Xlinker -soname=libadamcore.so.$(SOMAJOR)
	mkdir -p $(BUILD)/asan
	cp $(ASAN_SCRATCH)/release/libadamcore.so $@
	ln -sf libadamcore.so.$(SOMAJOR) $(BUILD)/asan/libadamcore.so

$(BUILD)/fuzz_abi: Tests/fuzz/fuzz_abi.c include/adamcore.h $(ASAN_LIB)
	$(SWIFT_CLANG) $(SANITIZE_C) -fsanitize=fuzzer -Iinclude $< -o $@ -L$(BUILD)/asan -ladamcore -Wl,-rpath,$(BUILD)/asan

# `make fuzz` runs FUZZ_SECONDS (default 300) on both cores; the corpus persists in build/fuzz-corpus.
fuzz: $(BUILD)/fuzz_abi
	mkdir -p $(BUILD)/fuzz-corpus
	ADAMCORE_FUZZ_SEEDS=$(BUILD)/fuzz-corpus $(BUILD)/fuzz_abi -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
		-artifact_prefix=$(BUILD)/fuzz- \
		-print_final_stats=1 -fork=2 $(BUILD)/fuzz-corpus 2>&1 | tee $(BUILD)/fuzz.log | grep -E "stat::|DONE|ERROR|INFO: fuzzed"

# The short run inside `make test`: 30 seconds from a fresh corpus.
test-fuzz: $(BUILD)/fuzz_abi
	rm -rf $(BUILD)/fuzz-corpus-quick && mkdir -p $(BUILD)/fuzz-corpus-quick
	ADAMCORE_FUZZ_SEEDS=$(BUILD)/fuzz-corpus-quick $(BUILD)/fuzz_abi -max_total_time=30 -max_len=4096 \
		-artifact_prefix=$(BUILD)/fuzz- \
		-print_final_stats=1 $(BUILD)/fuzz-corpus-quick 2>&1 | tee $(BUILD)/fuzz-quick.log | grep -E "stat::number_of_executed_units|ERROR" 

# The C tests and the Swift tests under AddressSanitizer (the C test's 16 PiB allocation must fail softly).
test-asan: $(ASAN_LIB)
	$(SWIFT_CLANG) $(SANITIZE_C) -std=c11 -Wall -Wextra -Werror -pthread Tests/c/test_abi.c -o $(BUILD)/test_abi_asan \
		-Iinclude -L$(BUILD)/asan -ladamcore -Wl,-rpath,$(BUILD)/asan -lm
	ASAN_OPTIONS=allocator_may_return_null=1 $(BUILD)/test_abi_asan
	ASAN_OPTIONS=allocator_may_return_null=1 ADAMCORE_ISA=baseline $(BUILD)/test_abi_asan
	swift test -c release --disable-swift-testing --scratch-path $(BUILD)/swift-test-asan --sanitize=address

# ---------------------------------------------------------------------------------------------------------------
# Benchmarks: never part of the tests' verdicts (machines are shared and noisy); `make bench` takes a few minutes.
# torch and DeepSpeed are used when importable (ADAMCORE_BENCH_PYTHONPATH can point at them), else reported missing.
$(BUILD)/bench_c: bench/bench_c.c $(LIB)
	$(CC) -O3 -march=native -fno-math-errno -fopenmp -std=gnu11 $< -o $@ $$(pkg-config --cflags --libs adamcore) -lm

# `make bench` installs nothing: it runs the contenders that are installed and reports the others as missing,
# with the reason. `make bench-deps` installs them all: torch (fused, foreach, adamcore.torch), DeepSpeed's CPUAdam
# (its op builds on first use, with ninja), and matplotlib for the plot.
bench-deps: system-deps
	$(call pip_missing,numpy torch matplotlib)
	$(PYTHON) -c "import deepspeed" 2>/dev/null || $(PYTHON) -m pip install -q deepspeed ninja py-cpuinfo \
		|| echo "deepspeed did not install: the bench will report it as missing"

bench: $(BUILD)/bench_c python
	mkdir -p $(BUILD)/bench
	$(BUILD)/bench_c | tee $(BUILD)/bench/c.txt
	PYTHONPATH=$(BUILD)/python$${ADAMCORE_BENCH_PYTHONPATH:+:$$ADAMCORE_BENCH_PYTHONPATH} \
		$(PYTHON) bench/bench_py.py | tee $(BUILD)/bench/py.txt
	$(PYTHON) bench/report.py $(BUILD)/bench/c.txt $(BUILD)/bench/py.txt --markdown $(BUILD)/bench/report.md \
		$$($(PYTHON) -c "import matplotlib" 2>/dev/null && echo --png $(BUILD)/bench/bench.png || echo "")

# A quick smoke run: the benchmark programs work (their timings are not judged).
test-bench: $(BUILD)/bench_c python | deps
	mkdir -p $(BUILD)/bench
	$(BUILD)/bench_c quick > $(BUILD)/bench/c-quick.txt
	PYTHONPATH=$(BUILD)/python $(PYTHON) bench/bench_py.py --quick > $(BUILD)/bench/py-quick.txt
	$(PYTHON) bench/report.py $(BUILD)/bench/c-quick.txt $(BUILD)/bench/py-quick.txt > $(BUILD)/bench/quick-report.md
	@grep -q "adamcore_py" $(BUILD)/bench/quick-report.md && grep -q "Mixed precision, C" $(BUILD)/bench/quick-report.md \
		&& grep -q "adamcore_torch_fp32_state" $(BUILD)/bench/quick-report.md && echo "bench smoke run: ok"

# ---------------------------------------------------------------------------------------------------------------
install: $(LIB)
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include
	install -m 0755 $(LIB) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libadamcore.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libadamcore.so.$(SOMAJOR)
	ln -sf libadamcore.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libadamcore.so
	install -m 0644 include/adamcore.h $(DESTDIR)$(PREFIX)/include/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' Sources/AdamCoreABI/adamcore.pc.in \
		> $(DESTDIR)$(PREFIX)/lib/pkgconfig/adamcore.pc

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/lib/libadamcore.so* $(DESTDIR)$(PREFIX)/include/adamcore.h \
		$(DESTDIR)$(PREFIX)/lib/pkgconfig/adamcore.pc

clean:
	rm -rf $(BUILD) .build
