# Taina: the one build. Out of tree in $(BUILD); every library through pkg-config.
#
#   make deps    install the Debian packages in tools/deps/packages.txt (as root), or print the command
#   make         build the common library, services, tools and tests
#   make demo    run the suite on its embedded defaults (local Kafka, services as they land)
#   make test    unit + integration tests; ends with "N passed, N failed"
#   make asan    the whole test suite under ASan + UBSan (in build/asan)
#   make valgrind  the unit tests under valgrind: no leaks, no errors
#   make bench   every benchmark under tests/bench/, each figure next to its anchor
#   make lint    clang-format check, cppcheck, banned functions, deployment checks (tools/lint/deploy.sh)
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
ITEST_SRCS := $(wildcard tests/integration/[0-9]*.c)
ITEST_BINS := $(ITEST_SRCS:tests/integration/%.c=$(BUILD)/tests/integration/%)

# A benchmark is a folder tests/bench/<name>/ with .c files (program build/bench/bench-<name>)
# and a run.sh that runs it next to its anchor.
BENCHES    := $(sort $(notdir $(patsubst %/,%,$(dir $(wildcard tests/bench/*/*.c)))))
BENCH_BINS := $(BENCHES:%=$(BUILD)/bench/bench-%)

.PHONY: all deps test asan valgrind lint clean install demo bench docs
.SECONDARY:
.DEFAULT_GOAL := all

all: deps $(LIB) $(PROGRAMS) $(FAKE_BINS) $(UNIT_BINS) $(ITEST_BINS) $(BENCH_BINS)

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
	@tools/demo/run.sh

asan:
	@$(MAKE) --no-print-directory BUILD=build/asan SANITIZE=1 test

valgrind: all
	@fail=0; for t in $(UNIT_BINS); do \
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

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
