# corotls: build, test, install.
#
#   make deps            the Debian packages the build and the tests need (scripts/deps.sh;
#                        apt-get, through sudo only when not root)
#   make                 release library (libcorotls.so/.a, libcorotls_melon.so) + examples
#   make demo            two coroutines (server + client) on one corotls loop: the Melang tls example
#   make check           every test: cargo tests, C tests against real peers, valgrind,
#                        TLS scanners (sslyze, testssl.sh: make scan-venv, apt-get install testssl.sh);
#                        ends with a table of the suites and "make check: N passed, M failed"
#   make install PREFIX=/usr/local
#   make header          refresh the committed include/corotls.h from the build (then commit it)
#   make melang MELON_PREFIX=/usr/local/melon
#                        tls.so, the Melang extension, against an installed stock Melon
#                        (docs/integration-melang.md; make check does not need it)
#   make bench           corotls vs raw OpenSSL, Melon's and silly's own TLS, plain TCP: instructions,
#                        rates, memory, 10k connections (QUICK=1: under a minute; docs/BENCHMARKS.md)
#   make bench-resume    full vs resumed handshakes (TLS 1.2, 1.3): per second and instructions
#
# Parts of the tree contribute through fragments, each adding its checks to
# CHECKS, the names of the suites those record to SUITES, and its programs
# to EXAMPLES.

ifeq ($(origin CC),default)
CC := gcc
endif
CARGO    ?= cargo
PREFIX   ?= /usr/local
LIBDIR   ?= $(PREFIX)/lib
INCDIR   ?= $(PREFIX)/include
SONAME   := libcorotls.so.0
# The version is written once, in Cargo.toml's [package] section.
VERSION  := $(shell sed -n '/^\[package\]/,/^\[/s/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml)

RELEASE  := target/release
LIB_SO   := $(RELEASE)/libcorotls.so
LIB_A    := $(RELEASE)/libcorotls.a
# The header C programs compile against and `make install` installs: committed,
# so users of the source tree need no Rust to read the API.  The build
# generates GEN_HEADER (build.rs, cbindgen); header-check proves them equal.
HEADER   := include/corotls.h
GEN_HEADER := $(RELEASE)/include/corotls.h
OUT      := target/c_tests
EX_OUT   := target/examples

# C programs against the installed-style header and the cdylib.
C_CFLAGS   := -std=gnu11 -Wall -Wextra -Werror -O1 -g -D_GNU_SOURCE -I include
C_LDFLAGS  := -L $(RELEASE) -Wl,-rpath,$(abspath $(RELEASE))
C_LIBS     := -lcorotls -lpthread
VALGRIND   := valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite -q

CHECKS   :=
SUITES   :=
EXAMPLES :=

# make check: every suite records "name passed failed seconds" in
# $(CHECK_DIR)/results.tsv (c_tests/harness/suite.sh NAME CMD..., or
# c_tests/harness/run.sh --suite NAME); check-summary prints the table and the
# total, and fails when a suite failed or did not run.
CHECK_DIR := target/check
SUITE     := c_tests/harness/suite.sh

.PHONY: all lib examples demo deps check check-suites check-summary install clean bench cargo-test header header-check \
        version fmt-check

all: lib examples

# The engine crate alone: faces that link it (adapters/melon) are built by
# their own fragments, each with its own cargo invocation, because a
# --workspace build unifies features (and would turn the engine's C ABI on
# inside them).
#
# Cargo always runs (a no-op when nothing changed) and alone decides what is
# stale: its fingerprints also cover feature sets, which file dates cannot
# (a `cargo build --workspace` by hand links the faces with other features).
# An artifact cargo did not rebuild keeps its date, so C programs relink only
# when it changed.
.PHONY: FORCE
FORCE:
$(LIB_SO) $(LIB_A) $(GEN_HEADER): FORCE
	@$(CARGO) build --release -p corotls
	@ln -sf libcorotls.so $(RELEASE)/$(SONAME)

lib: $(LIB_SO)

include c_tests/harness/harness.mk
include c_tests/package/package.mk
include c_tests/native/native.mk
include examples/examples.mk
include benches/resume.mk
include benches/sendfile.mk
include c_tests/melon/melon_host/melon.mk
include c_tests/loop/loop.mk
include c_tests/resume/resume.mk
include c_tests/keylog/keylog.mk
include c_tests/mtls/mtls.mk
include c_tests/close/close.mk
include c_tests/ktls/ktls.mk
include adapters/melon/melon.mk
include adapters/silly/silly.mk
include adapters/melang/melang.mk
# After the faces: the benchmarks link them.
include benches/bench.mk
include c_tests/melang/melang.mk
include c_tests/robust/robust.mk
include c_tests/scan/scan.mk
include fuzz/fuzz.mk

examples: $(EXAMPLES)

cargo-test: $(HARNESS_CERTS)
	@$(SUITE) cargo-test $(CARGO) test --workspace --quiet
SUITES += cargo-test

# The committed header must be what the build generates.
header: $(GEN_HEADER)
	@if cmp -s $(GEN_HEADER) $(HEADER); then echo "header: $(HEADER) is up to date"; \
	 else cp $(GEN_HEADER) $(HEADER) && echo "header: $(HEADER) refreshed from $(GEN_HEADER); commit it"; fi

HEADER_CHECK = cmp -s $(GEN_HEADER) $(HEADER) || { \
	  diff -u $(HEADER) $(GEN_HEADER) | head -40; \
	  echo "header-check: FAIL - $(HEADER) is not what the build generates ($(GEN_HEADER));"; \
	  echo "              run make header and commit $(HEADER)"; exit 1; }

header-check: $(GEN_HEADER)
	@$(SUITE) header sh -c '$(HEADER_CHECK); echo "header: $(HEADER) matches the build"'
SUITES += header

version:
	@echo $(VERSION)

deps:
	@scripts/deps.sh

# Rust sources stay rustfmt-clean (skipped where rustfmt is not installed).
fmt-check:
	@$(SUITE) rustfmt sh -c 'if $(CARGO) fmt --version >/dev/null 2>&1; then $(CARGO) fmt --all --check && \
	   echo "rustfmt: clean"; else echo "rustfmt: not installed, skipped"; fi'
SUITES += rustfmt

# The suites run in this order and stop at the first failure (make -k goes
# on); the summary comes either way.
check:
	@rm -rf $(CHECK_DIR) && mkdir -p $(CHECK_DIR) && date +%s >$(CHECK_DIR)/started
	@$(MAKE) --no-print-directory check-suites || { $(MAKE) --no-print-directory check-summary; exit 1; }
	@$(MAKE) --no-print-directory check-summary

check-suites: fmt-check cargo-test header-check dlopen-check install-check harness-check $(CHECKS) melon-host-check

check-summary:
	@c_tests/harness/summary.sh $(SUITES)

demo: $(EX_OUT)/two_coroutines
	@bash examples/demo.sh

# Never install a header that does not match the library.
install: $(LIB_SO) $(LIB_A) $(GEN_HEADER)
	@$(HEADER_CHECK)
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCDIR) $(DESTDIR)$(LIBDIR)/pkgconfig
	install -m 755 $(LIB_SO) $(DESTDIR)$(LIBDIR)/libcorotls.so.$(VERSION)
	ln -sf libcorotls.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libcorotls.so
	install -m 644 $(LIB_A) $(DESTDIR)$(LIBDIR)/libcorotls.a
	install -m 644 $(HEADER) $(DESTDIR)$(INCDIR)/corotls.h
	sed -e 's|@PREFIX@|$(PREFIX)|; s|@LIBDIR@|$(LIBDIR)|; s|@INCDIR@|$(INCDIR)|; s|@VERSION@|$(VERSION)|' \
	    corotls.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/corotls.pc

clean:
	$(CARGO) clean
