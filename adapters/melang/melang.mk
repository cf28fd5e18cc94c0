# adapters/melang/melang.mk -- the Melang extension: one tls.so that a stock
# Melang (master, on stock Melon master) loads with Import('tls'), without
# rebuilding Melon or Melang.  Included by the top-level Makefile.
#
#   make melang MELON_PREFIX=/usr/local/melon
#       build target/melang/tls.so against that installed Melon (its headers
#       and the libmelon_static.a that melang was built with), linking
#       target/release/libcorotls.a statically, then check its symbols
#       (c_tests/melang/tls_nm.sh: exports only init and destroy)
#   make melang-install MELON_PREFIX=... [MELANG_DYLIB_DIR=/usr/local/lib/melang_dynamic]
#       copy it into Melang's dylib directory, next to sys.so, str.so, ...
#   make melang-uninstall [MELANG_DYLIB_DIR=...]
#
# The binding core (tls_core.c) is tested without Melang by `make check`
# (c_tests/melang/melang.mk); only mln_lang_tls.c needs Melon's headers.
# docs/integration-melang.md is the guide.

ifeq ($(origin CC),default)
CC := gcc
endif
melang_saved_goal := $(.DEFAULT_GOAL)

MELANG_SRC_DIR   := adapters/melang
MELANG_OUT       := target/melang
MELANG_SO        := $(MELANG_OUT)/tls.so
MELANG_DYLIB_DIR ?= /usr/local/lib/melang_dynamic
MELANG_CORE_SRC  := $(MELANG_SRC_DIR)/tls_core.c
MELANG_GLUE_SRC  := $(MELANG_SRC_DIR)/mln_lang_tls.c
MELANG_HDRS      := $(MELANG_SRC_DIR)/tls_core.h include/corotls.h
MELANG_MAP       := $(MELANG_SRC_DIR)/tls.map
# Melon's headers as system headers: -Wextra is for our code.  No Melon
# configure define (MLN_EPOLL, ...): stock modules get none either (spec
# §1.4, pitfall 8).
MELANG_CFLAGS    := -std=gnu11 -Wall -Wextra -Werror -O2 -g -fPIC -fvisibility=hidden -D_GNU_SOURCE \
                    -I include -I $(MELANG_SRC_DIR)
# libmelon_static.a gives the module its own copy of every mln_* it calls
# (the melang executable exports none); libcorotls.a is linked in and
# hidden; OpenSSL is the system's, dynamically.  -z defs: nothing is left
# for RTLD_LAZY to find missing at the first call.
MELANG_LDFLAGS   := -shared -Wl,--version-script=$(MELANG_MAP) -Wl,--exclude-libs,ALL -Wl,-z,defs \
                    -Wl,--gc-sections -Wl,-z,relro,-z,now
MELANG_LIBS      := -lssl -lcrypto -lgcc_s -lutil -lrt -lpthread -lm -ldl

.PHONY: melang melang-install melang-uninstall melang-nm-check

ifeq ($(strip $(MELON_PREFIX)),)
melang melang-install melang-nm-check:
	@echo "make $@: MELON_PREFIX is not set."
	@echo "  tls.so is built against an installed stock Melon: its headers"
	@echo "  (MELON_PREFIX/include/mln_lang.h) and the libmelon_static.a that"
	@echo "  melang was built with (MELON_PREFIX/lib).  Melon installs to"
	@echo "  /usr/local/melon by default:"
	@echo "      make melang MELON_PREFIX=/usr/local/melon"
	@echo "  (make check does not need it.)  See docs/integration-melang.md."
	@exit 1
else
MELON_INC := $(MELON_PREFIX)/include
MELON_LIB := $(MELON_PREFIX)/lib/libmelon_static.a

# A stamp holding MELON_PREFIX rebuilds the module when it changes.
$(MELANG_OUT)/melon-prefix: FORCE
	@mkdir -p $(@D)
	@echo '$(MELON_PREFIX)' | cmp -s - $@ || echo '$(MELON_PREFIX)' >$@

$(MELANG_OUT)/melon-found: $(MELANG_OUT)/melon-prefix
	@test -f '$(MELON_INC)/mln_lang.h' || { echo "melang: no mln_lang.h in $(MELON_INC)"; \
	  echo "       MELON_PREFIX must be an installed Melon (its 'make install' prefix)"; exit 1; }
	@test -f '$(MELON_LIB)' || { echo "melang: no $(MELON_LIB)"; \
	  echo "       MELON_PREFIX must be the Melon that melang was built with"; exit 1; }
	@touch $@

$(MELANG_OUT)/tls_core.o: $(MELANG_CORE_SRC) $(MELANG_HDRS)
	@mkdir -p $(@D)
	$(CC) $(MELANG_CFLAGS) -c -o $@ $<

$(MELANG_OUT)/mln_lang_tls.o: $(MELANG_GLUE_SRC) $(MELANG_HDRS) $(MELANG_OUT)/melon-found
	$(CC) $(MELANG_CFLAGS) -isystem '$(MELON_INC)' -c -o $@ $<

$(MELANG_SO): $(MELANG_OUT)/mln_lang_tls.o $(MELANG_OUT)/tls_core.o $(MELANG_MAP) $(LIB_A) $(MELON_LIB)
	$(CC) $(MELANG_LDFLAGS) -o $@ $(MELANG_OUT)/mln_lang_tls.o $(MELANG_OUT)/tls_core.o \
	  '$(MELON_LIB)' $(LIB_A) $(MELANG_LIBS)

melang: $(MELANG_SO)
	@bash c_tests/melang/tls_nm.sh $(MELANG_SO)
	@echo "melang extension: $(MELANG_SO) built against $(MELON_PREFIX)"

melang-nm-check: $(MELANG_SO)
	@bash c_tests/melang/tls_nm.sh $(MELANG_SO)

melang-install: melang
	install -d "$(DESTDIR)$(MELANG_DYLIB_DIR)"
	install -m 755 $(MELANG_SO) "$(DESTDIR)$(MELANG_DYLIB_DIR)/tls.so"

CHECKS += melang-nm-check
endif

melang-uninstall:
	rm -f "$(DESTDIR)$(MELANG_DYLIB_DIR)/tls.so"

.DEFAULT_GOAL := $(melang_saved_goal)
