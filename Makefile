# xen-dm build. ./configure writes config.mak; objects go to the directory
# make runs in (the source tree, or an out-of-tree build directory).
-include config.mak
SRCDIR ?= .
ifeq ($(wildcard config.mak),)
$(error run ./configure first)
endif

VERSION = 0.1.0
WARN = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
       -Wno-unused-parameter
CFLAGS += -std=gnu11 $(OPT_CFLAGS) $(SAN_FLAGS) $(WARN) -MMD -MP \
          -D_GNU_SOURCE -DXEN_DM_VERSION='"$(VERSION)"' \
          $(XEN_CFLAGS) $(JSON_CFLAGS) $(ZLIB_CFLAGS)
LDFLAGS += $(SAN_FLAGS)
LIBS = $(JSON_LIBS) $(XEN_LIBS) $(ZLIB_LIBS)

# Every .c in these folders is part of the daemon's library, except main.c.
LIB_DIRS = lib hw ioreq dm xenstore block x86emu
LIB_SRCS = $(filter-out dm/main.c, \
             $(patsubst $(SRCDIR)/%,%,$(foreach d,$(LIB_DIRS),$(wildcard $(SRCDIR)/$(d)/*.c))))
LIB_OBJS = $(LIB_SRCS:%.c=obj/%.o)

UNIT_SRCS = $(patsubst $(SRCDIR)/%,%,$(wildcard $(SRCDIR)/tests/unit/test_*.c))
UNIT_BINS = $(UNIT_SRCS:tests/unit/%.c=tests-bin/%)
BENCH_SRCS = $(patsubst $(SRCDIR)/%,%,$(wildcard $(SRCDIR)/tests/bench/bench_*.c))
BENCH_BINS = $(BENCH_SRCS:tests/bench/%.c=tests-bin/%)

.PHONY: all check unit integration bench sst install clean distclean xenstored-fetch guests
# Keep objects of test and bench programs between runs.
.SECONDARY:
all: xen-dm guests

# Test guests for -machine sim: tests/guests/NAME.asm -> tests-bin/guests/NAME.bin,
# flat BIOS images assembled by nasm; %include finds files in tests/guests/.
NASM ?= nasm
GUEST_SRCS = $(patsubst $(SRCDIR)/%,%,$(wildcard $(SRCDIR)/tests/guests/*.asm))
GUEST_BINS = $(GUEST_SRCS:tests/guests/%.asm=tests-bin/guests/%.bin)
GUEST_INCS = $(wildcard $(SRCDIR)/tests/guests/*.inc)
guests: $(GUEST_BINS)
tests-bin/guests/%.bin: $(SRCDIR)/tests/guests/%.asm $(GUEST_INCS)
	@mkdir -p $(dir $@)
	@$(if $(V),,echo "  NASM    $<")
	$(Q)$(NASM) -f bin -i $(SRCDIR)/tests/guests/ -o $@ $<

# V=1 shows the full commands.
Q = $(if $(V),,@)
obj/%.o: $(SRCDIR)/%.c
	@mkdir -p $(dir $@)
	@$(if $(V),,echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -c -o $@ $<

libxendm.a: $(LIB_OBJS)
	$(Q)rm -f $@
	$(Q)$(AR) rcs $@ $^

xen-dm: obj/dm/main.o libxendm.a
	@$(if $(V),,echo "  LINK    $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

tests-bin/%: obj/tests/unit/%.o obj/tests/unit/log_capture.o libxendm.a
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(CMOCKA_LIBS) $(LIBS)

tests-bin/bench_%: obj/tests/bench/bench_%.o libxendm.a
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

obj/tests/unit/%.o: CFLAGS += $(CMOCKA_CFLAGS)

# Unit tests that start a real xenstored link its helper.
XENSTORED_TESTS = tests-bin/test_xenstore tests-bin/test_vbd
$(XENSTORED_TESTS): obj/tests/unit/xenstored_helper.o

# x86emu against hardware-captured single-instruction tests (tests/x86).
SST_DIR = $(SRCDIR)/../shared/testdata/sst-80286/v1_real_mode_first200
tests-bin/sst-run: obj/tests/x86/sst_run.o libxendm.a
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

sst: tests-bin/sst-run
	@if [ -d "$(SST_DIR)" ]; then ./tests-bin/sst-run "$(SST_DIR)"; \
	else echo "sst: skipped, $(SST_DIR) is absent"; fi

# A real xenstored for the tests: Debian's C daemon (downloaded and unpacked,
# never installed; see tests/xenstored/fetch-xenstored) run under an
# LD_PRELOAD shim that fakes the hypervisor. The shim is loaded into a
# program built without sanitizers, so it is built without them too.
XS_SHIM = tests-bin/libxsshim.so
XENSTORED_DIR = tests-bin/xenstored
XENSTORED_ENV = XEN_DM_XSSHIM=$(abspath $(XS_SHIM)) \
                XEN_DM_XENSTORED_DIR=$(abspath $(XENSTORED_DIR))

$(XS_SHIM): $(SRCDIR)/tests/xenstored/shim.c
	@mkdir -p $(dir $@)
	@$(if $(V),,echo "  CC      $@")
	$(Q)$(CC) -std=gnu11 -O2 -g $(WARN) -D_GNU_SOURCE $(XEN_CFLAGS) -fPIC \
	    -shared -o $@ $< -ldl

# Tests that need xenstored skip (saying why) if it cannot be fetched.
xenstored-fetch:
	@$(SRCDIR)/tests/xenstored/fetch-xenstored $(XENSTORED_DIR) || \
	    echo "warning: no xenstored: tests that need it will be skipped"

# The test double of the Xen libraries (tests/xendouble/README.md): a
# library preloaded into the daemon, a ctypes helper for the Python harness
# and a small client that exercises the double on its own.
XENDOUBLE_SRCS = $(patsubst $(SRCDIR)/%,%,$(wildcard $(SRCDIR)/tests/xendouble/double_*.c))
XENDOUBLE_BINS = tests-bin/libxendouble.so tests-bin/libxendouble_harness.so tests-bin/xendouble_selftest
obj/tests/xendouble/%.o: CFLAGS += -fPIC

tests-bin/libxendouble.so: $(XENDOUBLE_SRCS:%.c=obj/%.o)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -shared -o $@ $^ $(JSON_LIBS) -lpthread

# Loaded into Python with ctypes, so never sanitized.
tests-bin/libxendouble_harness.so: SAN_FLAGS =
tests-bin/libxendouble_harness.so: obj/tests/xendouble/harness_atomic.o obj/tests/xendouble/harness_bench.o
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -shared -o $@ $^

tests-bin/xendouble_selftest: obj/tests/xendouble/client_selftest.o
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(XEN_LIBS)

unit: $(UNIT_BINS) $(XS_SHIM) xenstored-fetch
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $(XENSTORED_ENV) ./$$t; done

integration: xen-dm $(GUEST_BINS) $(XS_SHIM) xenstored-fetch $(XENDOUBLE_BINS)
	XEN_DM=$(abspath xen-dm) $(XENSTORED_ENV) $(PYTHON) -m pytest -q $(SRCDIR)/tests/integration

# Unit tests, then the integration tests against the real daemon.
check: xen-dm $(GUEST_BINS) $(UNIT_BINS) $(XS_SHIM) xenstored-fetch $(XENDOUBLE_BINS) tests-bin/sst-run
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $(XENSTORED_ENV) ./$$t; done
	@$(MAKE) --no-print-directory sst
	XEN_DM=$(abspath xen-dm) $(XENSTORED_ENV) $(PYTHON) -m pytest -q $(SRCDIR)/tests/integration

bench: xen-dm $(GUEST_BINS) $(BENCH_BINS) $(XS_SHIM) xenstored-fetch $(XENDOUBLE_BINS)
	@set -e; for b in $(BENCH_BINS); do ./$$b; done
	@set -e; for b in $(SRCDIR)/tests/bench/*.py; do XEN_DM=$(abspath xen-dm) $(XENSTORED_ENV) $(PYTHON) $$b; done

# x86emu fuzzing (tests/fuzz/README.md). `make fuzz` runs the libFuzzer
# target under ASan/UBSan for FUZZ_SECONDS (or FUZZ_RUNS inputs), growing a
# scratch corpus from the seeds; `make check` replays the seeds and every
# saved finding with fuzz-replay, built like the other test programs.
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_RUNS ?= 100000000
# -O0: clang needs ~10 minutes for exec.c at -O1 with these sanitizers,
# and runs it only about twice as fast. ASan would otherwise madvise the
# stack's shadow away at every longjmp (each guest exception), which made
# it ten times slower.
FUZZ_CFLAGS = -std=gnu11 -O0 -g -fsanitize=fuzzer,address,undefined \
              -fno-sanitize-recover=all $(WARN)
FUZZ_ENV = ASAN_OPTIONS=clear_shadow_mmap_threshold=1000000000
FUZZ_SEEDS = $(SRCDIR)/tests/fuzz/corpus $(SRCDIR)/tests/fuzz/regressions
.PHONY: fuzz fuzz-replay
check: fuzz-replay

tests-bin/fuzz_x86emu: $(SRCDIR)/tests/fuzz/fuzz_x86emu.c \
                       $(wildcard $(SRCDIR)/x86emu/*.c $(SRCDIR)/x86emu/*.h)
	@command -v $(FUZZ_CC) >/dev/null 2>&1 || { echo "fuzz: $(FUZZ_CC) not found; install clang (libFuzzer comes with it)" >&2; exit 1; }
	@mkdir -p $(dir $@)
	@$(if $(V),,echo "  FUZZCC  $@")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $(filter %.c,$^) || { echo "fuzz: $(FUZZ_CC) cannot link -fsanitize=fuzzer (is libFuzzer installed?)" >&2; exit 1; }

tests-bin/fuzz-replay: obj/tests/fuzz/replay.o obj/tests/fuzz/fuzz_x86emu.o libxendm.a
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

fuzz-replay: tests-bin/fuzz-replay
	./tests-bin/fuzz-replay $(FUZZ_SEEDS)

fuzz: tests-bin/fuzz_x86emu
	@mkdir -p tests-bin/fuzz-corpus tests-bin/fuzz-findings
	$(FUZZ_ENV) ./tests-bin/fuzz_x86emu -max_total_time=$(FUZZ_SECONDS) -runs=$(FUZZ_RUNS) \
	    -print_final_stats=1 -artifact_prefix=tests-bin/fuzz-findings/ \
	    tests-bin/fuzz-corpus $(FUZZ_SEEDS)

install: xen-dm
	install -D -m 0755 xen-dm $(DESTDIR)$(PREFIX)/bin/xen-dm
	install -D -m 0644 $(SRCDIR)/doc/xen-dm.8 $(DESTDIR)$(PREFIX)/share/man/man8/xen-dm.8

clean:
	rm -rf obj tests-bin libxendm.a xen-dm

distclean: clean
	rm -f config.mak

-include $(shell find obj -name '*.d' 2>/dev/null)
