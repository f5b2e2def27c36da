# mcpwarden: one build entry point.
#   make            release build in build/rel (daemon, wardenctl, BPF object and skeleton)
#   make deps       install Debian packages and the pinned npm test tools (idempotent)
#   make run        deps + build + start the sidecar on examples/mcpwarden.json
#   make test       deps + sanitizer build in build/test + every test suite
#   make bench      benchmarks (tools/bench), of the build make pgo makes
#   make pgo        the profile-guided release build in build/pgo (what make image ships)
#   make tsan       ThreadSanitizer build in build/tsan + the suites that run threads
#   make fuzz       libFuzzer targets (tests/fuzz, clang, build/fuzz), each run FUZZ_SECONDS (20)
#   make image      the OCI image localhost/mcpwarden:$(VERSION) with buildah, offline (FROM scratch)

MODE      ?= rel
B         := build/$(MODE)
CC        ?= gcc
CLANG     ?= clang
BPFTOOL   ?= bpftool
PKGS      := libevent libevent_pthreads libcurl libcjson sqlite3 libbpf openssl libpcre2-8 hiredis libpq
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN      := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-unused-parameter
VERSION   := 0.1.0
CFLAGS    := -std=c17 -D_GNU_SOURCE -DWARDEN_VERSION=\"$(VERSION)\" -g $(WARN) -Iinclude -Iuserspace -I$(B) $(PKG_CFLAGS)
LDLIBS    := $(PKG_LIBS) -lpthread -lm
ifeq ($(MODE),test)
CFLAGS    += -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDFLAGS   += -fsanitize=address,undefined
else ifeq ($(MODE),tsan)
# ThreadSanitizer (docs/security.md): the threads' hand-offs (store, log, resolver, reload).
CFLAGS    += -O1 -fno-omit-frame-pointer -fsanitize=thread
LDFLAGS   += -fsanitize=thread
else ifeq ($(MODE),fuzz)
# libFuzzer (docs/fuzzing.md): the library is instrumented, the fuzzer's main() is linked last.
CC        := $(CLANG)
# clang warns where gcc does not: a log helper's forwarded format, a deliberate literal split.
CFLAGS    += -O1 -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined \
	-fno-sanitize-recover=undefined -Wno-format-nonliteral -Wno-string-concatenation
LDFLAGS   += -fsanitize=fuzzer,address,undefined
else
# Link-time optimisation: the request path crosses many small modules (base/htab, base/jsonw,
# base/alloc, the parsers); inlined across them it runs ~3 % fewer instructions a call
# (docs/performance.md). An archive of LTO objects needs gcc-ar's symbol index. At the link,
# inlined across units, -Wmaybe-uninitialized misreads out-parameters set only on success
# (x in `if (get(&x) == 0) use(x)`); each unit's own compile still checks it under -Werror.
# -fno-plt: a call into a shared library (libc's string functions, cJSON, libevent: hundreds a
# request) jumps through the GOT, not a PLT stub first: 2 % fewer instructions and 6 % fewer
# instruction-cache misses a call (docs/performance.md). Symbols are bound at load.
CFLAGS    += -O2 -flto=auto -fno-plt
LDFLAGS   += -O2 -flto=auto -fno-plt -Wno-maybe-uninitialized
AR        := gcc-ar
endif
# MODE=pgo: the release build laid out by a profile of the request path, in two phases that
# scripts/pgo.sh runs (`make pgo`): PGO_PHASE=gen counts what a training run executes, then
# PGO_PHASE=use builds again from those counts in the same directory (gcc finds them beside
# the objects). Code the training never ran (wardenctl's own files) has no profile.
ifeq ($(MODE),pgo)
ifeq ($(PGO_PHASE),gen)
CFLAGS    += -fprofile-generate -fprofile-update=atomic
LDFLAGS   += -fprofile-generate -fprofile-update=atomic
else ifeq ($(PGO_PHASE),use)
CFLAGS    += -fprofile-use -fprofile-partial-training -Wno-missing-profile
LDFLAGS   += -fprofile-use -fprofile-partial-training -Wno-missing-profile
else
$(error MODE=pgo needs PGO_PHASE=gen or use: run make pgo)
endif
endif

BPF_SRCS  := $(wildcard bpf/*.bpf.c)
BPF_OBJS  := $(patsubst bpf/%.bpf.c,$(B)/%.bpf.o,$(BPF_SRCS))
SKELS     := $(patsubst bpf/%.bpf.c,$(B)/%.skel.h,$(BPF_SRCS))
ARCH      := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')
BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -Iinclude -Ibpf -Wall -Werror \
	$(shell $(CLANG) -v -E - </dev/null 2>&1 | sed -n '/<...> search starts here:/,/End of search list./{ s| \(/.*\)|-idirafter \1|p }')

# userspace/<layer>/<module>.c: every module but main goes into one static library.
LIB_SRCS  := $(filter-out userspace/main.c,$(shell find userspace -name '*.c' | sort))
LIB_OBJS  := $(patsubst userspace/%.c,$(B)/obj/%.o,$(LIB_SRCS))
HDRS      := $(shell find userspace include -name '*.h')
LIB       := $(B)/libwarden.a
TOOLS     := $(B)/wardenctl
CTL_SRCS  := $(wildcard tools/wardenctl/*.c)
UNIT      := $(patsubst tests/unit/%.c,$(B)/tests/%,$(wildcard tests/unit/test_*.c))
KTESTS    := $(patsubst tests/kernel/%.c,$(B)/tests/%,$(wildcard tests/kernel/ktest_*.c))
# tools/bench/run.sh runs every program in $(B)/bench; the programs a benchmark drives (an
# upstream server, a client) live in $(B)/bench-bin so that it does not run them by themselves.
BENCH_BIN_SRCS := tools/bench/mcp_upstream.c tools/bench/llm_upstream.c
BENCH     := $(patsubst tools/bench/%.c,$(B)/bench/%,$(filter-out $(BENCH_BIN_SRCS),$(wildcard tools/bench/*.c)))
BENCH_BIN := $(patsubst tools/bench/%.c,$(B)/bench-bin/%,$(BENCH_BIN_SRCS))
FUZZ      := $(patsubst tests/fuzz/%.c,$(B)/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_SECONDS ?= 20

.PHONY: all deps run test bench clean check-build image fuzz fuzz-build tsan pgo bench-build FORCE
.DELETE_ON_ERROR:
.SECONDARY:

all: $(B)/mcpwarden $(TOOLS) $(BPF_OBJS)

deps:
	@scripts/deps.sh

# Everything the test suites run, in the current MODE.
# The benchmarks' programs too: an interface they use that changes fails here, not in the next
# make bench.
check-build: all $(UNIT) $(KTESTS) $(BENCH) $(BENCH_BIN)

$(B)/%.bpf.o: bpf/%.bpf.c $(wildcard bpf/lib/*.h) $(wildcard include/*.h) | $(B)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(B)/%.skel.h: $(B)/%.bpf.o
	$(BPFTOOL) gen skeleton $< > $@

# The compiler and flags a build directory was made with: when they change (an option added
# here, CC=clang), what they built is rebuilt; make itself compares only files' times. The
# file is rewritten only when its text differs.
FLAGS_FILE := $(B)/flags
FLAGS_TEXT  = $(CC) $(CFLAGS) | $(LDFLAGS) | $(LDLIBS)
$(FLAGS_FILE): FORCE | $(B)
	@printf '%s\n' '$(FLAGS_TEXT)' | cmp -s - $@ || printf '%s\n' '$(FLAGS_TEXT)' >$@
FORCE:

$(B)/obj/%.o: userspace/%.c $(HDRS) $(FLAGS_FILE) | $(SKELS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c $< -o $@

# The dashboard's assets (HTML, JS, CSS) are compiled into the daemon: no files to install.
DASH_ASSETS := $(sort $(wildcard userspace/admin/dashboard/*.html userspace/admin/dashboard/*.js userspace/admin/dashboard/*.css userspace/admin/dashboard/*.svg))
$(B)/dashboard_assets.h: $(DASH_ASSETS) scripts/embed-assets.sh | $(B)
	scripts/embed-assets.sh $@ $(DASH_ASSETS)
$(B)/obj/admin/admin_dashboard.o: $(B)/dashboard_assets.h

# The skeleton embeds the BPF object: the enforcer must be rebuilt when it changes.
$(B)/obj/enforce/enforcer.o: $(SKELS)

$(LIB): $(LIB_OBJS)
	rm -f $@ && $(AR) rcs $@ $^

$(B)/mcpwarden: $(B)/obj/main.o $(LIB) $(FLAGS_FILE)
	$(CC) $(LDFLAGS) -o $@ $(B)/obj/main.o $(LIB) $(LDLIBS)

# wardenctl: one file per command group (tools/wardenctl/), linked with the library.
$(B)/wardenctl: $(CTL_SRCS) tools/wardenctl/wardenctl.h $(LIB) $(HDRS) $(FLAGS_FILE) | $(SKELS)
	$(CC) $(CFLAGS) -Itools/wardenctl $(LDFLAGS) -o $@ $(CTL_SRCS) $(LIB) $(LDLIBS)

$(B)/tests/%: tests/unit/%.c $(LIB) $(wildcard tests/*.h tests/unit/*.h) $(FLAGS_FILE) | $(B)/tests
	$(CC) $(CFLAGS) -Itests -Itests/unit $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS) -lcunit

$(B)/tests/%: tests/kernel/%.c $(LIB) $(wildcard tests/*.h tests/kernel/*.h) $(FLAGS_FILE) | $(B)/tests
	$(CC) $(CFLAGS) -Itests -Itests/kernel $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS) -lcunit

$(B)/bench/%: tools/bench/%.c $(LIB) $(FLAGS_FILE) | $(B)/bench
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

# Standalone: they use the libraries, not libwarden (what they measure is the daemon).
$(B)/bench-bin/%: tools/bench/%.c $(FLAGS_FILE) | $(B)/bench-bin
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(shell pkg-config --libs libevent libcjson)

$(B)/fuzz/%: tests/fuzz/%.c $(LIB) $(wildcard tests/fuzz/*.h tests/*.h) $(FLAGS_FILE) | $(B)/fuzz
	$(CC) $(CFLAGS) -Itests/fuzz $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

fuzz-build: $(FUZZ)

$(B) $(B)/tests $(B)/bench $(B)/bench-bin $(B)/fuzz:
	mkdir -p $@

run: deps
	$(MAKE) all
	@scripts/run.sh

# The release build is part of the test: -O2 finds warnings (-Werror) that -O1 does not.
test: deps
	$(MAKE) MODE=rel all
	$(MAKE) MODE=test check-build
	@tests/run.sh build/test

# The benchmarks measure what users run: the profile-guided build of make image.
bench: pgo
	@tools/bench/run.sh build/pgo

bench-build: $(BENCH) $(BENCH_BIN)

# The release build with a profile (docs/performance.md): instrumented, trained on the proxy
# benchmark's workload, built again from the profile, in build/pgo.
pgo: deps
	@scripts/pgo.sh

# ThreadSanitizer build in build/tsan and the suites that exercise the threads (tests/tsan.sh).
tsan:
	$(MAKE) MODE=tsan check-build
	@tests/tsan.sh build/tsan

# Builds every target in build/fuzz (clang) and runs each for FUZZ_SECONDS over its corpus.
fuzz:
	$(MAKE) MODE=fuzz fuzz-build
	@tests/fuzz/run.sh build/fuzz $(FUZZ_SECONDS)

# Always the profile-guided release build, whatever MODE says: the image is what users run.
image: pgo
	@scripts/image.sh build/pgo $(VERSION)

clean:
	rm -rf build
