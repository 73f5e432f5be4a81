# xsocket: `make` builds the library and header, `make test` runs every test,
# `make demo` runs the loopback tour, `make bench` compares xsocket with the kernel.

CARGO   ?= cargo
CC      ?= cc
BUILD   := build
RELEASE := target/release
LIBSO   := $(RELEASE)/libxsocket.so
LIBA    := $(RELEASE)/libxsocket.a
# What a static libxsocket.a needs besides itself (cargo --print native-static-libs).
STATIC_LIBS := -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc

CWARN   := -Wall -Wextra -Werror -Wno-unused-parameter
CFLAGS  ?= -g -O1
ALL_CFLAGS := -std=gnu11 -D_GNU_SOURCE $(CWARN) $(CFLAGS) -Iinclude -Ic-tests/lib
HARNESS := c-tests/lib/harness.c c-tests/lib/api.c
HARNESS_H := $(wildcard c-tests/lib/*.h) include/xsocket.h

TESTS      := $(patsubst c-tests/%.c,%,$(wildcard c-tests/test_*.c))
TEST_BINS  := $(addprefix $(BUILD)/,$(TESTS))
ASAN_BINS  := $(addprefix $(BUILD)/asan/,$(TESTS))
RUN_SO     := env LD_LIBRARY_PATH=$(RELEASE)
VALGRIND   := valgrind -q --error-exitcode=99 --leak-check=full --suppressions=c-tests/valgrind.supp \
              --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect

.PHONY: all lib test rust-test lint header-check symbols-check c-test asan-test \
        valgrind-test header-compile install install-test xscat-test py-test py-install-test ws-test smux-test demo bench fuzz measure-idle clean

all: lib $(BUILD)/xscat

# cargo decides what to rebuild; build.rs rewrites include/xsocket.h.
lib:
	$(CARGO) build --release --locked
	@ln -sf libxsocket.so $(RELEASE)/libxsocket.so.0

$(LIBSO) $(LIBA) include/xsocket.h: lib

# ----- tests -----

test: lib header-check symbols-check lint rust-test c-test asan-test valgrind-test \
      header-compile install-test xscat-test py-test py-install-test ws-test smux-test
	@echo "make test: all suites passed"

rust-test:
	$(CARGO) test --release --locked

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --release --locked --all-targets -- -D warnings

# The header is committed; a build that changes it means the committed copy is stale.
header-check: lib
	@if git rev-parse --git-dir >/dev/null 2>&1; then \
	  git diff --exit-code -- include/xsocket.h >/dev/null || \
	  { echo "include/xsocket.h is stale: commit the regenerated header"; exit 1; }; \
	  echo "header-check: include/xsocket.h is up to date"; \
	else echo "header-check: not a git checkout, cannot compare"; exit 1; fi

# Only xs_* functions may be exported from the shared library.
symbols-check: lib
	@extra=$$(nm -D --defined-only $(LIBSO) | awk '{print $$3}' | grep -v '^xs_' || true); \
	if [ -n "$$extra" ]; then echo "symbols-check: unexpected exports:"; echo "$$extra"; exit 1; fi; \
	echo "symbols-check: only xs_* symbols exported ($$(nm -D --defined-only $(LIBSO) | wc -l))"

$(BUILD)/%: c-tests/%.c $(HARNESS) $(HARNESS_H) $(LIBSO)
	@mkdir -p $(BUILD)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(HARNESS) -L$(RELEASE) -lxsocket -lpthread

# AddressSanitizer + UBSan builds link the static library, so both products are tested.
$(BUILD)/asan/%: c-tests/%.c $(HARNESS) $(HARNESS_H) $(LIBA)
	@mkdir -p $(BUILD)/asan
	$(CC) $(ALL_CFLAGS) -fsanitize=address,undefined -fno-omit-frame-pointer -o $@ $< $(HARNESS) \
	  $(LIBA) $(STATIC_LIBS)

c-test: $(TEST_BINS)
	@set -e; for t in $(TEST_BINS); do echo "== $$t"; $(RUN_SO) $$t; done

asan-test: $(ASAN_BINS)
	@set -e; for t in $(ASAN_BINS); do echo "== $$t (ASan+UBSan)"; \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=halt_on_error=1 $$t; done

valgrind-test: $(TEST_BINS)
	@set -e; for t in $(TEST_BINS); do echo "== $$t (valgrind)"; \
	  XSOCKET_TEST_SLOW=1 $(RUN_SO) $(VALGRIND) $$t; done

# The header compiles cleanly as strict C and as C++; the C++ program also runs.
header-compile: lib
	@mkdir -p $(BUILD)
	printf '#include "xsocket.h"\nint main(void) { return xs_socket(AF_INET, SOCK_STREAM, 0) < 0; }\n' \
	  > $(BUILD)/header_c.c
	$(CC) -std=c99 -Wall -Wextra -pedantic -Werror -Iinclude -c $(BUILD)/header_c.c -o $(BUILD)/header_c.o
	$(CC) -std=c11 -Wall -Wextra -pedantic -Werror -Iinclude -c $(BUILD)/header_c.c -o $(BUILD)/header_c.o
	$(CXX) -std=c++11 -Wall -Wextra -pedantic -Werror -Iinclude -o $(BUILD)/cxx_echo c-tests/cxx_echo.cpp \
	  -L$(RELEASE) -lxsocket
	$(RUN_SO) $(BUILD)/cxx_echo

# WebSocket conformance (Autobahn-style groups 1-7 and 9, the handshake) and headless
# Chromium against an xsocket echo server.
$(BUILD)/ws_echo_server: tests/ws/ws_echo_server.c tests/common/echo_server.h include/xsocket.h $(LIBSO)
	@mkdir -p $(BUILD)
	$(CC) -std=gnu11 -D_GNU_SOURCE $(CWARN) $(CFLAGS) -Iinclude -o $@ $< -L$(RELEASE) -lxsocket -lpthread

ws-test: $(BUILD)/ws_echo_server
	python3 -m pytest -q tests/ws

# smux interop: an independent Python peer (written from shared/smux-wire.md) against
# an xsocket echo server, and the library against the peer.
$(BUILD)/smux_echo_server: tests/smux/smux_echo_server.c tests/common/echo_server.h include/xsocket.h $(LIBSO)
	@mkdir -p $(BUILD)
	$(CC) -std=gnu11 -D_GNU_SOURCE $(CWARN) $(CFLAGS) -Iinclude -o $@ $< -L$(RELEASE) -lxsocket -lpthread

smux-test: $(BUILD)/smux_echo_server
	python3 -m pytest -q tests/smux

# ----- install -----

PREFIX     ?= /usr/local
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
VERSION    := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)

install: lib $(BUILD)/xscat
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR)
	install -m 755 $(LIBSO) $(DESTDIR)$(LIBDIR)/libxsocket.so.$(VERSION)
	ln -sf libxsocket.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libxsocket.so.0
	ln -sf libxsocket.so.0 $(DESTDIR)$(LIBDIR)/libxsocket.so
	install -m 644 $(LIBA) $(DESTDIR)$(LIBDIR)/libxsocket.a
	install -m 644 include/xsocket.h $(DESTDIR)$(INCLUDEDIR)/xsocket.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	  -e 's|@VERSION@|$(VERSION)|' xsocket.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/xsocket.pc

# Installs into a temporary prefix and builds a C test with pkg-config alone, shared
# and static, then runs both.
install-test: lib
	@set -e; prefix=$$(mktemp -d); trap 'rm -rf "$$prefix"' EXIT; \
	$(MAKE) --no-print-directory install PREFIX="$$prefix" >/dev/null; \
	export PKG_CONFIG_PATH="$$prefix/lib/pkgconfig"; \
	echo "install-test: installed into $$prefix: $$(cd $$prefix && find . -type f -o -type l | sort | tr '\n' ' ')"; \
	$(CC) -std=gnu11 -D_GNU_SOURCE -Ic-tests/lib -o $$prefix/test_url c-tests/test_url.c $(HARNESS) \
	  $$(pkg-config --cflags --libs xsocket) -Wl,-rpath,$$prefix/lib; \
	readelf -d $$prefix/test_url | grep -q 'NEEDED.*libxsocket.so.0'; \
	$$prefix/test_url; \
	$(CC) -std=gnu11 -D_GNU_SOURCE -Ic-tests/lib -o $$prefix/test_url_static c-tests/test_url.c $(HARNESS) \
	  $$(pkg-config --cflags xsocket) $$prefix/lib/libxsocket.a $$(pkg-config --static --libs-only-l xsocket | sed 's/-lxsocket//'); \
	$$prefix/test_url_static

# ----- xscat -----

$(BUILD)/xscat: tools/xscat.c include/xsocket.h $(LIBA)
	@mkdir -p $(BUILD)
	$(CC) -std=gnu11 -D_GNU_SOURCE $(CWARN) -O2 -Iinclude -o $@ tools/xscat.c $(LIBA) $(STATIC_LIBS)

xscat-test: $(BUILD)/xscat
	python3 -m pytest -q tools/tests

# ----- Python -----

py-test: lib
	python3 -m pytest -q python-bindings/tests

# pip-installs the package into a temporary directory and uses it from outside the repo.
py-install-test: lib
	@set -e; dir=$$(mktemp -d); trap 'rm -rf "$$dir"' EXIT; \
	python3 -m pip install -q --disable-pip-version-check --target "$$dir/site" ./python-bindings; \
	cd "$$dir" && env -u XSOCKET_LIB PYTHONPATH="$$dir/site" \
	  python3 $(CURDIR)/python-bindings/tests/installed_check.py

# ----- demo and bench -----

$(BUILD)/demo: examples/demo.c include/xsocket.h $(LIBSO)
	@mkdir -p $(BUILD)
	$(CC) -std=gnu11 $(CWARN) -O2 -Iinclude -o $@ $< -L$(RELEASE) -lxsocket

demo: $(BUILD)/demo
	$(RUN_SO) $(BUILD)/demo

# libzmq and nng columns, when their headers are installed (Debian libzmq3-dev, libnng-dev).
BENCH_LIBS := $(shell $(CC) -E -include zmq.h -x c /dev/null >/dev/null 2>&1 && echo -lzmq) \
              $(shell $(CC) -E -include nng/nng.h -x c /dev/null >/dev/null 2>&1 && echo -lnng)

$(BUILD)/bench: bench/bench.c include/xsocket.h $(LIBA)
	@mkdir -p $(BUILD)
	$(CC) -std=gnu11 $(CWARN) -O2 -Iinclude -o $@ $< $(LIBA) $(BENCH_LIBS) $(STATIC_LIBS)

bench: lib $(BUILD)/bench
	$(BUILD)/bench
	$(CARGO) test --release --locked --lib codec_bench -- --ignored --nocapture

# Fuzzing (not part of `make test`): every WebSocket parser target for FUZZ_SECONDS
# each, with libFuzzer from cargo-fuzz (`cargo install cargo-fuzz`; stable Rust needs
# `-s none`, no sanitizer).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := ws_decode_server ws_decode_client ws_roundtrip ws_conn ws_conn_roundtrip \
                ws_handshake_request ws_handshake_response smux_session
fuzz:
	@set -e; cd fuzz; for t in $(FUZZ_TARGETS); do mkdir -p corpus/$$t; s=; [ -d seeds/$$t ] && s=seeds/$$t; \
	  cargo fuzz run -s none $$t corpus/$$t $$s -- -dict=dict/http.dict -max_total_time=$(FUZZ_SECONDS) -timeout=10; done

clean:
	$(CARGO) clean
	rm -rf $(BUILD)

# Memory per idle connection: N idle loopback TCP pairs through xsocket vs the kernel.
$(BUILD)/measure_idle: c-tests/measure_idle.c include/xsocket.h $(LIBSO)
	@mkdir -p $(BUILD)
	$(CC) -std=gnu11 -D_GNU_SOURCE $(CWARN) -O2 -Iinclude -Ic-tests/lib -o $@ $< -L$(RELEASE) -lxsocket

measure-idle: $(BUILD)/measure_idle
	$(RUN_SO) $(BUILD)/measure_idle 10000
