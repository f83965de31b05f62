# Taina: the one build. Out of tree in $(BUILD); every library through pkg-config.
#
#   make deps    install the Debian packages in tools/deps/packages.txt (as root), or print the command
#   make         build the common library, services, tools and tests
#   make demo    the whole suite on its embedded defaults: ingest, ask, speak, book, summary, stop
#   make up      the same stack left running for exploring by hand (source build/demo/env)
#   make down    stop what make up started
#   make test    unit + integration tests; ends with "N passed, N failed"
#   make asan    the whole test suite under ASan + UBSan (in build/asan)
#   make portable  the text scans' unit tests built without SSE2 (the 8-byte steps alone, as on arm64)
#   make valgrind  the unit tests under valgrind: no leaks, no errors
#   make bench   every benchmark under tests/bench/, each figure next to its anchor; writes
#                build/bench/results.json and results.md (BENCH=name runs a subset, BENCH_SKIP=name leaves one out)
#   make lint    clang-format check, cppcheck, banned functions, deployment checks (tools/lint/deploy.sh)
#   make fuzz    every libFuzzer target in tests/fuzz/ (clang) for FUZZ_SECONDS each; FUZZ=name runs one
#   make docs    regenerate the README's configuration reference from the config tables
#   make clean   remove build/
#
# Knobs: TESTS=pattern (run a subset), TEST_LEAVE=1 (keep temp dirs), TN_TEST_TIMEOUT_MULT=N.

BUILD    ?= build
CC       ?= cc
CFLAGS   ?= -O2 -g
SANITIZE ?=
V        ?=
Q        := $(if $(V),,@)

# Libraries the common library wraps (one wrapper module each, see common/README.md).
PKGS      := rdkafka libmicrohttpd libcurl jansson libpcre2-8 libcrypto libutf8proc libpq opus \
             speexdsp libwebsockets espeak-ng pocketsphinx
TEST_PKGS := cmocka

WARN     := -std=c11 -Wall -Wextra -Wformat=2 -Wshadow -Wstrict-prototypes -Wvla -Werror
# Recursive (=) on purpose: pkg-config runs only when a recipe needs it, after `deps`.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
# libev (ws.c owns the loop libwebsockets runs on) ships no pkg-config file in Debian: -lev.
PKG_LIBS   = $(shell pkg-config --libs $(PKGS)) -lev -lpthread -lm
TEST_CFLAGS = $(shell pkg-config --cflags $(TEST_PKGS))
TEST_LIBS   = $(shell pkg-config --libs $(TEST_PKGS))

ifneq ($(SANITIZE),)
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
endif

ALL_CFLAGS = $(CFLAGS) $(WARN) $(SANFLAGS) -D_GNU_SOURCE -Icommon/include -MMD -MP $(PKG_CFLAGS)
ALL_LDFLAGS = $(LDFLAGS) $(SANFLAGS)

# ---------------------------------------------------------------------------------------------
# Sources
LIB_SRCS   := $(wildcard common/src/*.c)
LIB_OBJS   := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
LIB        := $(BUILD)/lib/libtaina.a

SUP_SRCS   := $(wildcard tests/support/*.c)
SUP_OBJS   := $(SUP_SRCS:%.c=$(BUILD)/obj/%.o)
SUP_LIB    := $(BUILD)/lib/libtaina_test.a

# A tool or service is a folder of .c files; its program is build/bin/taina-<folder>.
TOOLS      := $(sort $(notdir $(patsubst %/,%,$(dir $(wildcard tools/*/*.c)))))
SERVICES   := $(sort $(notdir $(patsubst %/,%,$(dir $(wildcard services/*/*.c)))))
# A fake of an external API is a folder tests/fakes/<name>/; its program is build/bin/taina-fake-<name>.
FAKES      := $(sort $(notdir $(patsubst %/,%,$(dir $(wildcard tests/fakes/*/*.c)))))
PROGRAMS   := $(foreach p,$(TOOLS) $(SERVICES),$(BUILD)/bin/taina-$(p))
FAKE_BINS  := $(FAKES:%=$(BUILD)/bin/taina-fake-%)

UNIT_SRCS  := $(wildcard tests/unit/common/*_test.c)
UNIT_BINS  := $(UNIT_SRCS:tests/unit/common/%.c=$(BUILD)/tests/unit/%)
# A service's unit tests mirror its path: tests/unit/services/<svc>/<file>_test.c, linked with the
# service's logic (libsvc-<svc>.a), as build/tests/unit/<svc>_<file>_test.
SVC_UNIT_SRCS := $(wildcard tests/unit/services/*/*_test.c)
svc_unit_bin = $(BUILD)/tests/unit/$(word 4,$(subst /, ,$(1)))_$(basename $(notdir $(1)))
SVC_UNIT_BINS := $(foreach f,$(SVC_UNIT_SRCS),$(call svc_unit_bin,$(f)))
ITEST_SRCS := $(wildcard tests/integration/[0-9]*.c)
ITEST_BINS := $(ITEST_SRCS:tests/integration/%.c=$(BUILD)/tests/integration/%)

# A benchmark is a folder tests/bench/<name>/ with .c files (program build/bench/bench-<name>)
# and a run.sh that runs it next to its anchor.
# A fuzz target is tests/fuzz/<name>.c (LLVMFuzzerTestOneInput). `make fuzz` builds it with clang
# and libFuzzer in $(BUILD)/fuzz; the normal build also links it with tests/fuzz/replay.c (gcc, no
# libFuzzer) into $(BUILD)/tests/unit/fuzz_<name>, which replays its corpus and regression inputs.
FUZZ_TARGETS := $(filter-out replay,$(sort $(basename $(notdir $(wildcard tests/fuzz/*.c)))))
FUZZ_REPLAY  := $(FUZZ_TARGETS:%=$(BUILD)/tests/unit/fuzz_%)
# The service whose logic a target drives: its .c files but main.c, as an archive.
FUZZ_SVC_enrich      := ingest
FUZZ_SVC_ingest_body := ingest
FUZZ_SVC_rag_body    := rag
svc_objs = $(patsubst %.c,$(2)/obj/%.o,$(filter-out services/$(1)/main.c,$(wildcard services/$(1)/*.c)))

BENCHES    := $(sort $(notdir $(patsubst %/,%,$(dir $(wildcard tests/bench/*/*.c)))))
BENCH_BINS := $(BENCHES:%=$(BUILD)/bench/bench-%)

.PHONY: all deps test asan portable valgrind lint clean install demo up down bench docs fuzz
.SECONDARY:
.DEFAULT_GOAL := all

all: deps $(LIB) $(PROGRAMS) $(FAKE_BINS) $(UNIT_BINS) $(SVC_UNIT_BINS) $(ITEST_BINS) $(BENCH_BINS) $(FUZZ_REPLAY)

deps:
	@tools/deps/install.sh

# ---------------------------------------------------------------------------------------------
# Rules
$(BUILD)/obj/%.o: %.c | deps
	@mkdir -p $(@D)
	@$(if $(Q),echo '  CC      $<')
	$(Q)$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/obj/tests/%.o: tests/%.c | deps
	@mkdir -p $(@D)
	@$(if $(Q),echo '  CC      $<')
	$(Q)$(CC) $(ALL_CFLAGS) -Itests/support $(TEST_CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJS)
	@mkdir -p $(@D)
	$(Q)rm -f $@ && ar rcs $@ $^

$(SUP_LIB): $(SUP_OBJS)
	@mkdir -p $(@D)
	$(Q)rm -f $@ && ar rcs $@ $^

# A program is every .c in tools/<name>/ or services/<name>/, linked with the common library.
define program_rule
$(BUILD)/bin/taina-$(1): $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard $(2)/$(1)/*.c)) $(LIB)
	@mkdir -p $$(@D)
	@$(if $(Q),echo '  LD      $$@')
	$(Q)$$(CC) $$(ALL_LDFLAGS) -o $$@ $$^ $$(PKG_LIBS)
endef
$(foreach t,$(TOOLS),$(eval $(call program_rule,$(t),tools)))
$(foreach s,$(SERVICES),$(eval $(call program_rule,$(s),services)))

$(BUILD)/tests/unit/%: $(BUILD)/obj/tests/unit/common/%.o $(SUP_LIB) $(LIB)
	@mkdir -p $(@D)
	@$(if $(Q),echo '  LD      $@')
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) $(TEST_LIBS)

$(BUILD)/tests/integration/%: $(BUILD)/obj/tests/integration/%.o $(SUP_LIB) $(LIB)
	@mkdir -p $(@D)
	@$(if $(Q),echo '  LD      $@')
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) $(TEST_LIBS)

define fake_rule
$(BUILD)/bin/taina-fake-$(1): $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard tests/fakes/$(1)/*.c)) $(SUP_LIB) $(LIB)
	@mkdir -p $$(@D)
	@$(if $(Q),echo '  LD      $$@')
	$(Q)$$(CC) $$(ALL_LDFLAGS) -o $$@ $$^ $$(PKG_LIBS)
endef
$(foreach f,$(FAKES),$(eval $(call fake_rule,$(f))))

# The replay program of a fuzz target: the target, the replay main, its service's logic.
define svc_lib_rule
$(2)/lib/libsvc-$(1).a: $(call svc_objs,$(1),$(2))
	@mkdir -p $$(@D)
	$(Q)rm -f $$@ && ar rcs $$@ $$^
endef
$(foreach s,$(SERVICES),$(eval $(call svc_lib_rule,$(s),$(BUILD))))

define fuzz_replay_rule
$(BUILD)/tests/unit/fuzz_$(1): $(BUILD)/obj/tests/fuzz/$(1).o $(BUILD)/obj/tests/fuzz/replay.o \
        $(if $(FUZZ_SVC_$(1)),$(BUILD)/lib/libsvc-$(FUZZ_SVC_$(1)).a) $(SUP_LIB) $(LIB)
	@mkdir -p $$(@D)
	@$(if $(Q),echo '  LD      $$@')
	$(Q)$$(CC) $$(ALL_LDFLAGS) -o $$@ $$^ $$(PKG_LIBS)
endef
$(foreach t,$(FUZZ_TARGETS),$(eval $(call fuzz_replay_rule,$(t))))

define svc_unit_rule
$(call svc_unit_bin,$(1)): $(patsubst %.c,$(BUILD)/obj/%.o,$(1)) \
        $(BUILD)/lib/libsvc-$(word 4,$(subst /, ,$(1))).a $(SUP_LIB) $(LIB)
	@mkdir -p $$(@D)
	@$(if $(Q),echo '  LD      $$@')
	$(Q)$$(CC) $$(ALL_LDFLAGS) -o $$@ $$^ $$(PKG_LIBS) $$(TEST_LIBS)
endef
$(foreach f,$(SVC_UNIT_SRCS),$(eval $(call svc_unit_rule,$(f))))

define bench_rule
$(BUILD)/bench/bench-$(1): $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard tests/bench/$(1)/*.c)) $(SUP_LIB) $(LIB)
	@mkdir -p $$(@D)
	@$(if $(Q),echo '  LD      $$@')
	$(Q)$$(CC) $$(ALL_LDFLAGS) -o $$@ $$^ $$(PKG_LIBS) $$(TEST_LIBS)
endef
$(foreach b,$(BENCHES),$(eval $(call bench_rule,$(b))))

# ---------------------------------------------------------------------------------------------
# Tests
test: all
	@BUILD=$(BUILD) tests/run.sh

bench: all
	@BUILD=$(BUILD) tests/bench/run.sh

demo: all
	@tools/demo/run.sh demo

up: all
	@tools/demo/run.sh up

down:
	@tools/demo/run.sh down

asan:
	@$(MAKE) --no-print-directory BUILD=build/asan SANITIZE=1 test

# The scans of text.c, category.c, lang.c and pii.c take 16 bytes at a time with SSE2 and 8
# without: their tests, and the enrichment digests, on the 8-byte path too.
PORTABLE_TESTS = text_test category_test lang_test pii_test ingest_enrich_test
portable:
	@$(MAKE) --no-print-directory BUILD=build/portable CFLAGS="$(CFLAGS) -DTN_NO_SSE2" \
	    $(PORTABLE_TESTS:%=build/portable/tests/unit/%)
	@set -e; for t in $(PORTABLE_TESTS); do build/portable/tests/unit/$$t >/dev/null 2>&1 || \
	    { echo "portable: $$t failed without SSE2"; build/portable/tests/unit/$$t; exit 1; }; done; \
	    echo "portable: $(PORTABLE_TESTS) pass without SSE2"

valgrind: all
	@fail=0; for t in $(UNIT_BINS) $(SVC_UNIT_BINS); do \
	    if valgrind -q --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
	        --error-exitcode=9 --suppressions=tests/valgrind.supp $$t >$(BUILD)/test-logs/vg-$$(basename $$t).log 2>&1; \
	    then echo "PASS  valgrind $$(basename $$t)"; \
	    else echo "FAIL  valgrind $$(basename $$t) (log: $(BUILD)/test-logs/vg-$$(basename $$t).log)"; fail=1; fi; \
	done; exit $$fail

LINT_FILES = $(shell git ls-files '*.c' '*.h' 2>/dev/null || find common services tools tests -name '*.[ch]')
BANNED := \b(sprintf|vsprintf|strcpy|strcat|strtok|atoi|atol|gets)\s*\(

lint: deps
	@echo "clang-format: $(words $(LINT_FILES)) files"
	@clang-format --dry-run --Werror $(LINT_FILES)
	@echo "cppcheck"
	@cppcheck --quiet --error-exitcode=1 --std=c11 --enable=warning,portability,performance \
	    --inline-suppr --suppress=missingIncludeSystem -Icommon/include -Itests/support \
	    -D__GNUC__ common services tools tests
	@echo "banned functions"
	@! grep -nE '$(BANNED)' $(LINT_FILES) || { echo "lint: banned function (see STYLE rule 23)"; exit 1; }
	@! grep -nE '\bgetenv\s*\(' $(filter-out common/src/config.c,$(LINT_FILES)) \
	    || { echo "lint: getenv() outside common/src/config.c"; exit 1; }
	@echo "deployment (docker/ k8s/ terraform/, YAML)"
	@BUILD=$(BUILD) tools/lint/deploy.sh
	@echo "lint: ok"

# ---------------------------------------------------------------------------------------------
# Fuzzing: clang + libFuzzer + ASan + UBSan, every object compiled again in $(FUZZ_DIR).
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ         ?=
FUZZ_DIR     := $(BUILD)/fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS   = -O1 -g $(WARN) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -DTN_FUZZING -D_GNU_SOURCE \
                -Icommon/include -Itests/support $(PKG_CFLAGS)
FUZZ_LIB     := $(FUZZ_DIR)/lib/libtaina.a
FUZZ_BINS    := $(FUZZ_TARGETS:%=$(FUZZ_DIR)/%)

$(FUZZ_DIR)/obj/%.o: %.c | deps
	@mkdir -p $(@D)
	@$(if $(Q),echo '  CLANG   $<')
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -c $< -o $@

# clang refuses vecstore's 32-byte GNU vector helpers without AVX (gcc only notes the ABI): no
# target fuzzes the vector store, which rag_body links but never calls, so build it for AVX2.
# Its three files take the same flags: TN_VECSTORE_NO_CLONES decides in vecstore_int.h which
# kernels exist.
$(FUZZ_DIR)/obj/common/src/vecstore.o $(FUZZ_DIR)/obj/common/src/vecstore_kernels.o \
$(FUZZ_DIR)/obj/common/src/vecstore_scan.o: FUZZ_CFLAGS += -mavx2 -mfma -DTN_VECSTORE_NO_CLONES

$(FUZZ_LIB): $(LIB_SRCS:%.c=$(FUZZ_DIR)/obj/%.o)
	@mkdir -p $(@D)
	$(Q)rm -f $@ && ar rcs $@ $^

$(foreach s,$(SERVICES),$(eval $(call svc_lib_rule,$(s),$(FUZZ_DIR))))

define fuzz_rule
$(FUZZ_DIR)/$(1): $(FUZZ_DIR)/obj/tests/fuzz/$(1).o \
        $(if $(FUZZ_SVC_$(1)),$(FUZZ_DIR)/lib/libsvc-$(FUZZ_SVC_$(1)).a) $(FUZZ_LIB)
	@$(if $(Q),echo '  LD      $$@')
	$(Q)$$(FUZZ_CC) $$(FUZZ_SAN) -fsanitize=fuzzer -o $$@ $$^ $$(PKG_LIBS)
endef
$(foreach t,$(FUZZ_TARGETS),$(eval $(call fuzz_rule,$(t))))

# Each target for FUZZ_SECONDS (FUZZ=name: only that one); fails on a crash, leak or timeout.
fuzz: deps $(if $(FUZZ),$(FUZZ_DIR)/$(FUZZ),$(FUZZ_BINS))
	@FUZZ_DIR=$(FUZZ_DIR) FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run.sh $(or $(FUZZ),$(FUZZ_TARGETS))

# The README's configuration reference, regenerated from the programs' config tables.
docs: all
	@tools/docs/config_reference.py --write README.md

PREFIX ?= /usr/local
install: all
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(PROGRAMS) $(DESTDIR)$(PREFIX)/bin/
	install -d $(DESTDIR)$(PREFIX)/share/taina
	cp -r schemas $(DESTDIR)$(PREFIX)/share/taina/
	install -d $(DESTDIR)$(PREFIX)/share/taina/services/appointments
	cp -r services/appointments/sql $(DESTDIR)$(PREFIX)/share/taina/services/appointments/

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj $(FUZZ_DIR)/obj -name '*.d' 2>/dev/null)
