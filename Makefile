# flamingo.c - build, test, benchmark.
#
#   make            build ./flamingo (installs missing Debian packages first)
#   make test       quick suite: every test in its own process with a timeout
#   make test-full  adds the full-size checks (ViT-L/14 against PyTorch)
#   make asan       the quick suite under AddressSanitizer + UBSan
#   make tsan       the engine and server tests under ThreadSanitizer
#   make eval       the bundled model's accuracy on 1,000 held-out images (C engine)
#   make eval-foreign  the same on 1,000 images drawn by another tool (matplotlib)
#   make run        build, then serve the bundled model on http://127.0.0.1:8080/
#                   (HOST=, PORT=, MODEL= to change)
#   make golden     regenerate the committed fixtures (tests/fixtures/)
#   make golden-tok regenerate the tokenizer fixtures (needs node and the npm registry)
#   make bench      flamingo bench --synthetic vit-l-14 and openflamingo-3b
#   make bench-compare  openflamingo-3b: flamingo.c (f32, bf16, q8_0) next to PyTorch f32, and bf16 where the CPU has it
#   make deps       install the Debian packages (apt-get; sudo when not root)
#
# Objects go to $(BUILD)/ (build/ or build-asan/), so sanitizer and normal
# builds never mix.  CC=clang works too.

CC ?= cc
PYTHON ?= /usr/bin/python3
BUILD ?= build
OPT ?= -O2
SAN ?=
PKGS := libmicrohttpd libcjson stb openblas libjpeg zlib libutf8proc libcrypto

ifeq ($(BUILD),build)
BIN := flamingo
else
BIN := $(BUILD)/flamingo
endif

# Install what is missing before anything calls pkg-config (make deps, by hand,
# does the same).
ifeq ($(filter deps clean distclean,$(MAKECMDGOALS)),)
DEPS_MISSING := $(shell tools/deps.sh --check)
ifneq ($(DEPS_MISSING),)
$(info make: missing Debian packages:$(DEPS_MISSING); running tools/deps.sh)
DEPS_RC := $(shell tools/deps.sh >&2; echo $$?)
ifneq ($(DEPS_RC),0)
$(error tools/deps.sh failed; install$(DEPS_MISSING) by hand)
endif
endif
endif

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla
CFLAGS_ALL = -std=c11 -D_GNU_SOURCE -ffp-contract=off $(OPT) -g $(SAN) $(WARN) -MMD -MP \
             $(shell pkg-config --cflags $(PKGS)) $(CFLAGS)
LDLIBS_ALL = $(SAN) $(shell pkg-config --libs $(PKGS)) -lm -lpthread $(LDFLAGS)

LIB_SRC := $(sort $(wildcard core/*.c weights/*.c vision/*.c model/*.c server/*.c))
APP_SRC := $(sort $(wildcard cli/*.c bench/*.c))
TEST_SRC := $(sort $(wildcard tests/test_*.c))

LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o) $(BUILD)/server/web_index.o
APP_OBJ := $(APP_SRC:%.c=$(BUILD)/%.o)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)

.SECONDARY:
.PHONY: all tests deps test test-full asan tsan run eval eval-foreign golden golden-tok bench bench-compare clean distclean check-clang
all: $(BIN)
tests: $(TEST_BIN)

deps:
	tools/deps.sh

$(BIN): $(APP_OBJ) $(BUILD)/libflamingo.a
	$(CC) -o $@ $^ $(LDLIBS_ALL)

$(BUILD)/libflamingo.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(KFLAGS) -c $< -o $@

# The web page at GET /, compiled into the binary.
$(BUILD)/server/web_index.c: server/web/index.html tools/embed.sh
	@mkdir -p $(dir $@)
	tools/embed.sh $< flamingo_index_html > $@.tmp && mv $@.tmp $@

$(BUILD)/server/web_index.o: $(BUILD)/server/web_index.c
	$(CC) $(CFLAGS_ALL) -c $< -o $@

# The kernels are written for the vectoriser: always -O3; the AVX2 table
# also gets AVX2/FMA code and FMA contraction, the AVX-512 table AVX-512 with
# VNNI as well (chosen at run time by CPUID).
$(BUILD)/core/kern_generic.o: KFLAGS = -O3 -fno-trapping-math -Wno-psabi
ifneq ($(filter x86_64 i%86,$(shell uname -m)),)
$(BUILD)/core/kern_avx2.o: KFLAGS = -O3 -fno-trapping-math -mavx2 -mfma -ffp-contract=fast
$(BUILD)/core/kern_avx512.o: KFLAGS = -O3 -fno-trapping-math -mavx2 -mfma -ffp-contract=fast \
	-mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni
$(BUILD)/core/kern_avx512bf16.o: KFLAGS = -O3 -fno-trapping-math -mavx2 -mfma -ffp-contract=fast \
	-mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx512bf16
$(BUILD)/core/kern_amx.o: KFLAGS = -O3 -fno-trapping-math -mavx2 -mfma -ffp-contract=fast \
	-mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx512bf16 -mamx-tile -mamx-bf16
# test_amx runs the AMX table's code with the tile instructions emulated in C
# (tests/amx_emulated.c; the test's own code keeps the plain flags)
$(BUILD)/tests/amx_emulated.o: KFLAGS = -O2 -fno-trapping-math -mavx2 -mfma -ffp-contract=fast \
	-mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx512bf16
endif

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(BUILD)/libflamingo.a
	$(CC) -o $@ $^ $(LDLIBS_ALL)

# test_amx links the emulated AMX table; bench/synth.c is the binary's, not
# the library's: its test links it itself.
$(BUILD)/tests/test_amx: $(BUILD)/tests/test_amx.o $(BUILD)/tests/amx_emulated.o $(BUILD)/libflamingo.a
	$(CC) -o $@ $^ $(LDLIBS_ALL)

$(BUILD)/tests/test_synth: $(BUILD)/tests/test_synth.o $(BUILD)/bench/synth.o $(BUILD)/libflamingo.a
	$(CC) -o $@ $^ $(LDLIBS_ALL)

test: $(BIN) $(TEST_BIN)
	@tools/deps.sh --check --test >/dev/null || tools/deps.sh --test
	@FLAMINGO_BIN=$(CURDIR)/$(BIN) BUILD=$(BUILD) PYTHON=$(PYTHON) ONLY="$(ONLY)" tests/run.sh quick

test-full: $(BIN) $(TEST_BIN)
	@FLAMINGO_BIN=$(CURDIR)/$(BIN) BUILD=$(BUILD) PYTHON=$(PYTHON) tests/run.sh full

asan:
	$(MAKE) BUILD=build-asan OPT=-O1 \
	    SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer" \
	    test

# ThreadSanitizer over what runs threads against each other: the engine
# thread, the HTTP threads and the compute pool.
tsan:
	$(MAKE) BUILD=build-tsan OPT=-O1 SAN="-fsanitize=thread -fno-omit-frame-pointer" \
	    ONLY="test_kern test_engine test_wmat test_server.py test_server_load.py" test

# The model `make run` serves: the bundled model when it is there, else the
# small random test model (its answers are gibberish).
MODEL ?= $(if $(wildcard weights/flamingo-tiny.safetensors),weights/flamingo-tiny.safetensors,tests/fixtures/of_mpt.safetensors)
HOST ?= 127.0.0.1
PORT ?= 8080
run: $(BIN)
	@echo "flamingo: serving $(MODEL) on http://$(HOST):$(PORT)/ (the web page; Ctrl-C stops)"
	@echo "  curl http://$(HOST):$(PORT)/v1/caption -H 'Content-Type: image/jpeg' --data-binary @photo.jpg"
	@exec ./$(BIN) serve -m $(MODEL) --host $(HOST) --port $(PORT)

# The bundled model's accuracy, computed by the C engine on a held-out set
# drawn from a seed training never uses (tools/train/evalset.py).
EVALSET ?= $(BUILD)/evalset
eval: $(BIN)
	@test -f $(EVALSET)/eval.jsonl || $(PYTHON) tools/train/evalset.py --out $(EVALSET)
	./$(BIN) eval --data $(EVALSET)/eval.jsonl

# The same questions on scenes that matplotlib draws (tools/train/foreign.py): shapes, colours
# and rasteriser of another tool, to measure generalisation beyond the training renderer.
FOREIGNSET ?= $(BUILD)/evalset-foreign
eval-foreign: $(BIN)
	@test -f $(FOREIGNSET)/eval.jsonl || $(PYTHON) tools/train/evalset.py --renderer matplotlib --out $(FOREIGNSET)
	./$(BIN) eval --data $(FOREIGNSET)/eval.jsonl

golden: $(BIN)
	$(PYTHON) tests/reference/make_golden.py

golden-tok:
	tests/reference/tok/regen.sh

bench: $(BIN)
	./$(BIN) bench --synthetic vit-l-14
	./$(BIN) bench --synthetic openflamingo-3b

PEER_DTYPES ?= auto
DTYPES ?= f32,bf16,q8_0
bench-compare: $(BIN)
	$(PYTHON) bench/compare.py --bin ./$(BIN) --dtypes $(DTYPES) --peer-dtypes $(PEER_DTYPES)

# Warnings-as-errors build with clang into its own folder (CI runs it).
check-clang:
	$(MAKE) BUILD=build-clang CC=clang all tests

clean:
	rm -rf build build-asan build-tsan build-clang flamingo

distclean: clean

-include $(LIB_OBJ:.o=.d) $(APP_OBJ:.o=.d) $(TEST_BIN:=.d) $(BUILD)/tests/amx_emulated.d
