# libFuzzer targets (clang, -fsanitize=fuzzer,address,undefined), included
# from the top Makefile.  The library modules are rebuilt with clang and
# the sanitizers into build-fuzz/; `make fuzz` runs every target for
# FUZZ_SECONDS (default 60) on a copy of its seed corpus and prints one
# summary line per target.  `make fuzz FUZZ_TARGETS=api` runs one.
# FUZZ_SECONDS_<target> gives one target another time: http (the whole
# HTTP front through a socket, slower per input, its bugs shallow) runs
# half of FUZZ_SECONDS, 30 s in `make check`.

FUZZ_BUILD   ?= build-fuzz
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= api tokscan config http
FUZZ_SECONDS_http ?= $(shell echo $$(( $(FUZZ_SECONDS) / 2 )))
FUZZ_SAN      = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
# The same strict warnings as gcc, less one: clang's -Wformat=2 also flags a
# va_list forwarded to vsnprintf (MHD's logger callback), which gcc accepts.
FUZZ_WARN     = $(WARN) -Wno-format-nonliteral
FUZZ_CFLAGS   = -std=c11 -D_GNU_SOURCE -O1 -g $(FUZZ_WARN) -Iinclude -MMD -MP \
                -DHARMONIC_VERSION='"$(VERSION)"' $(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(FUZZ_SAN)
FUZZ_LIB      = $(FUZZ_BUILD)/libharmonic.a
FUZZ_BINS     = $(patsubst %,$(FUZZ_BUILD)/fuzz_%,$(FUZZ_TARGETS))
fuzz_obj      = $(patsubst daemon/%.c,$(FUZZ_BUILD)/obj/%.o,$(1))

.PHONY: fuzz fuzz-build
fuzz: fuzz-build
	@fail=0; for t in $(foreach t,$(FUZZ_TARGETS),$(t):$(or $(FUZZ_SECONDS_$(t)),$(FUZZ_SECONDS))); do \
	    tests/fuzz/run.sh $(FUZZ_BUILD) $${t%%:*} $${t##*:} || fail=1; done; exit $$fail

fuzz-build: $(FUZZ_BINS)

$(FUZZ_BUILD)/obj/%.o: daemon/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_LIB): $(call fuzz_obj,$(LIB_SRCS))
	@rm -f $@
	ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_LIB)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_LIB) $(LDLIBS)

-include $(wildcard $(FUZZ_BUILD)/obj/*.d $(FUZZ_BUILD)/obj/*/*.d $(FUZZ_BUILD)/*.d)
