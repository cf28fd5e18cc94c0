# corotls: build, test, install.
#
#   make                 release library (libcorotls.so/.a, libcorotls_melon.so) + examples
#   make demo            two coroutines (server + client) on one corotls loop: the Melang tls example
#   make check           every test: cargo tests, C tests against real peers, valgrind,
#                        TLS scanners (sslyze, testssl.sh: make scan-venv, apt-get install testssl.sh)
#   make install PREFIX=/usr/local
#   make melang MELON_PREFIX=/usr/local/melon
#                        tls.so, the Melang extension, against an installed stock Melon
#                        (docs/integration-melang.md; make check does not need it)
#   make bench           corotls vs raw OpenSSL vs plain TCP, printed side by side
#
# Parts of the tree contribute through fragments, each adding its checks to
# CHECKS and its programs to EXAMPLES.

ifeq ($(origin CC),default)
CC := gcc
endif
CARGO    ?= cargo
PREFIX   ?= /usr/local
LIBDIR   ?= $(PREFIX)/lib
INCDIR   ?= $(PREFIX)/include
SONAME   := libcorotls.so.0
VERSION  := 0.1.0

RELEASE  := target/release
LIB_SO   := $(RELEASE)/libcorotls.so
LIB_A    := $(RELEASE)/libcorotls.a
HEADER   := include/corotls.h
OUT      := target/c_tests
EX_OUT   := target/examples

# C programs against the installed-style header and the cdylib.
C_CFLAGS   := -std=gnu11 -Wall -Wextra -Werror -O1 -g -D_GNU_SOURCE -I include
C_LDFLAGS  := -L $(RELEASE) -Wl,-rpath,$(abspath $(RELEASE))
C_LIBS     := -lcorotls -lpthread
VALGRIND   := valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite -q

CHECKS   :=
EXAMPLES :=

.PHONY: all lib examples demo check install clean bench cargo-test header-check dlopen-check install-check fmt-check

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
$(LIB_SO) $(LIB_A) $(HEADER): FORCE
	@$(CARGO) build --release -p corotls
	@ln -sf libcorotls.so $(RELEASE)/$(SONAME)

lib: $(LIB_SO)

include c_tests/harness.mk
include c_tests/native.mk
include examples/examples.mk
include benches/bench.mk
include c_tests/melon_host/melon.mk
-include c_tests/loop.mk
include c_tests/melang/melang.mk
-include adapters/melon/melon.mk
-include adapters/silly/silly.mk
-include adapters/melang/melang.mk
include c_tests/scan/scan.mk

examples: $(EXAMPLES)

cargo-test: $(HARNESS_CERTS)
	$(CARGO) test --workspace --quiet

# The committed header must be what the build generates.
header-check: $(LIB_SO)
	@git diff --quiet -- $(HEADER) 2>/dev/null || { \
	  echo "include/corotls.h differs from the committed one: commit the regenerated header"; \
	  git --no-pager diff --stat -- $(HEADER); exit 1; }
	@echo "header: include/corotls.h matches the build"

# Rust sources stay rustfmt-clean (skipped where rustfmt is not installed).
fmt-check:
	@if $(CARGO) fmt --version >/dev/null 2>&1; then $(CARGO) fmt --all --check && echo "rustfmt: clean"; \
	 else echo "rustfmt: not installed, skipped"; fi

# libcorotls.so must load alone: no undefined symbols beyond libc/libssl/libcrypto.
dlopen-check: $(OUT)/dlopen_check
	@$(OUT)/dlopen_check $(abspath $(LIB_SO))
	@c_tests/symbols_check.sh $(LIB_SO)

install-check: $(LIB_SO)
	@c_tests/install_check.sh

check: fmt-check cargo-test header-check dlopen-check install-check harness-check $(CHECKS) melon-host-check
	@echo "make check: all suites passed"

demo: $(EX_OUT)/two_coroutines
	@bash examples/demo.sh

install: $(LIB_SO) $(LIB_A)
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
