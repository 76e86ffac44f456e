# harmonicd — plain GNU make.  Targets: all run check install uninstall clean.
# SANITIZE=address,undefined builds into build-asan/ with sanitizers.

PREFIX     ?= /usr/local
SYSCONFDIR ?= /etc
DESTDIR    ?=
BINDIR      = $(PREFIX)/bin
SBINDIR     = $(PREFIX)/sbin
MANDIR      = $(PREFIX)/share/man
DATADIR     = $(PREFIX)/share/harmonicd
UNITDIR    ?= $(PREFIX)/lib/systemd/system

CC      ?= cc
PKGS     = libmicrohttpd libcurl jansson libconfig libsystemd
VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)

WARN = -Wall -Wextra -Werror -Wformat=2 -Wshadow -Wstrict-prototypes \
       -Wmissing-prototypes -Wwrite-strings -Wpointer-arith -Wcast-qual \
       -Wundef -Wvla -Wno-unused-parameter -Wimplicit-fallthrough
OPT     ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) -Iinclude -MMD -MP \
           -DHARMONIC_VERSION='"$(VERSION)"' $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm -lpthread

ifneq ($(SANITIZE),)
BUILD   ?= build-asan
CFLAGS  += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=$(SANITIZE)
OPT      = -O1 -g
else
BUILD   ?= build
endif

# Sources, by the layers of docs/architecture.md (bottom to top; an
# include may point down this list, never up: scripts/check-layers.sh).
# The daemon's modules form libharmonic.a, which the tests and the other
# two programs link; each program's own files live in its folder.
BASE      := log xmalloc utf8 jsonx ev stats auth
LOGIC     := config budget tokscan autoslot affinity dialect dialect_ollama dialect_openai dialect_anthropic dialect_responses xlate api status agents sched
ADAPTERS  := upstream backend backend_ollama backend_llamacpp backend_openai health notify autotune
REQUEST   := request relay
FRONT     := http route local admin statsview metrics dashboard
TOP       := server
LIB_SRCS  := $(patsubst %,daemon/%.c,$(BASE) $(LOGIC) $(ADAPTERS) $(REQUEST) $(FRONT) $(TOP))
CTL_SRCS  := $(wildcard daemon/ctl/*.c)   # harmonicctl
SIM_SRCS  := $(wildcard daemon/sim/*.c)   # harmonic-sim
obj        = $(patsubst daemon/%.c,$(BUILD)/obj/%.o,$(1))
LIB        = $(BUILD)/libharmonic.a

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))

PROGS = $(BUILD)/harmonicd $(BUILD)/harmonicctl $(BUILD)/harmonic-sim

.PHONY: all run check check-layers check-unit check-integration check-asan check-valgrind deps install uninstall clean format fuzz
all: $(PROGS)

$(BUILD)/obj/%.o: daemon/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(LIB): $(call obj,$(LIB_SRCS))
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/harmonicd: $(call obj,daemon/main.c) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/harmonicctl: $(call obj,$(CTL_SRCS)) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/harmonic-sim: $(call obj,$(SIM_SRCS)) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS) -lcmocka

# Unit tests of harmonic-sim's pure modules link those objects too.
SIM_UNIT_OBJS_test_sim_cache := $(call obj,daemon/sim/sim_cache.c)
$(BUILD)/tests/test_sim_cache: tests/unit/test_sim_cache.c $(SIM_UNIT_OBJS_test_sim_cache) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit -Idaemon/sim $(LDFLAGS) -o $@ $< $(SIM_UNIT_OBJS_test_sim_cache) $(LIB) $(LDLIBS) -lcmocka

deps:
	@scripts/deps.sh

# The embedded default stack: two simulated hosts and the daemon.
run:
	@scripts/deps.sh --build
	@$(MAKE) --no-print-directory all
	@scripts/run-demo.sh $(BUILD)

# Each runner appends "passed failed" to $(HARMONIC_COUNTS); the last line
# of `make check` is the sum over all of them.
export HARMONIC_COUNTS := $(CURDIR)/build/check-counts

check: deps
	@mkdir -p build && rm -f $(HARMONIC_COUNTS)
	@$(MAKE) --no-print-directory check-layers
	@$(MAKE) --no-print-directory all $(UNIT_BINS)
	@$(MAKE) --no-print-directory check-unit check-integration
	@$(MAKE) --no-print-directory SANITIZE=address,undefined check-asan
	@$(MAKE) --no-print-directory check-valgrind
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=60
	@awk '{p += $$1; f += $$2} END {printf "check: %d passed, %d failed\n", p, f; exit f > 0}' $(HARMONIC_COUNTS)

# The include graph against the layers of docs/architecture.md.
check-layers:
	@if scripts/check-layers.sh; then r="1 0"; else r="0 1"; fi; echo "$$r" >> $(HARMONIC_COUNTS); [ "$$r" = "1 0" ]

check-unit: $(UNIT_BINS)
	@scripts/run-unit.sh $(BUILD) $(UNIT_BINS)

check-integration: $(PROGS)
	@scripts/run-integration.sh $(BUILD)

# The core integration cases with harmonicd and the sims under valgrind
# memcheck: any error or definite/indirect leak makes a process exit 99.
check-valgrind: $(PROGS)
	@HARMONIC_VALGRIND=1 HARMONIC_TESTS="$(VALGRIND_TESTS)" scripts/run-integration.sh $(BUILD)
VALGRIND_TESTS ?= routing.test.mjs clients.test.mjs service.test.mjs malformed.test.mjs backends.test.mjs

check-asan:
	@$(MAKE) --no-print-directory all $(UNIT_BINS)
	@$(MAKE) --no-print-directory check-unit check-integration

install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(SYSCONFDIR)/harmonicd \
	    $(DESTDIR)$(DATADIR)/sim $(DESTDIR)$(DATADIR)/examples $(DESTDIR)$(UNITDIR) \
	    $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8
	install -m 0755 $(BUILD)/harmonicd $(DESTDIR)$(SBINDIR)/harmonicd
	install -m 0755 $(BUILD)/harmonicctl $(BUILD)/harmonic-sim $(DESTDIR)$(BINDIR)/
	test -e $(DESTDIR)$(SYSCONFDIR)/harmonicd/harmonicd.conf || \
	    install -m 0644 etc/harmonicd.conf $(DESTDIR)$(SYSCONFDIR)/harmonicd/harmonicd.conf
	install -m 0644 etc/examples/*.conf $(DESTDIR)$(DATADIR)/examples/
	install -m 0644 etc/sim/*.conf $(DESTDIR)$(DATADIR)/sim/
	for u in systemd/*.service systemd/*.socket; do [ -e "$$u" ] || continue; \
	    sed 's|@SBINDIR@|$(SBINDIR)|g' $$u > $(DESTDIR)$(UNITDIR)/$${u##*/} && \
	    chmod 0644 $(DESTDIR)$(UNITDIR)/$${u##*/} || exit 1; done
	for m in docs/man/*.[158]; do [ -e "$$m" ] || continue; \
	    install -m 0644 $$m $(DESTDIR)$(MANDIR)/man$${m##*.}/ || exit 1; done

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/harmonicd $(DESTDIR)$(BINDIR)/harmonicctl $(DESTDIR)$(BINDIR)/harmonic-sim
	rm -rf $(DESTDIR)$(DATADIR)
	rm -f $(DESTDIR)$(UNITDIR)/harmonicd.service $(DESTDIR)$(UNITDIR)/harmonicd.socket
	rm -f $(DESTDIR)$(MANDIR)/man8/harmonicd.8 $(DESTDIR)$(MANDIR)/man5/harmonicd.conf.5 \
	    $(DESTDIR)$(MANDIR)/man1/harmonicctl.1 $(DESTDIR)$(MANDIR)/man1/harmonic-sim.1

format:
	clang-format -i daemon/*.c daemon/*/*.[ch] include/*.h tests/unit/*.c

clean:
	rm -rf build build-asan build-fuzz

include tests/fuzz/fuzz.mk
-include $(wildcard $(BUILD)/obj/*.d $(BUILD)/obj/*/*.d $(BUILD)/tests/*.d)
