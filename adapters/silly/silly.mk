# adapters/silly/silly.mk -- the silly face: one tls.so (plus a ctx.so link)
# that replaces silly's built-in silly.tls.ctx / silly.tls.tls modules.
# Included by the top-level Makefile (paths relative to the repository root).
#
#   make silly LUA_INC=<silly>/deps/lua
#       build target/silly/luaclib/silly/tls/{tls.so,ctx.so} against silly's
#       own Lua headers (silly vendors Lua 5.5; a module must be built with
#       the headers of the Lua that loads it)
#   make silly-install LUA_INC=<silly>/deps/lua SILLY_DIR=<silly>
#       copy them into <silly>/luaclib/silly/tls/ (silly's per-module slot)
#   make silly-uninstall SILLY_DIR=<silly>
#       remove them again: silly falls back to its built-in module
#   make silly-check
#       build against the system Lua 5.4 (Debian: liblua5.4-dev) and run the
#       tests in c_tests/silly/, natively and under valgrind
#
# tls.so links target/release/libcorotls.a statically and exports only the
# two luaopen_ functions; lua_* and silly_* stay undefined and are bound to
# the silly executable (linked -rdynamic) when it loads the module.  The
# default `make` builds tls.so only when Lua headers are found: LUA_INC
# given, or the system's Lua 5.4 (then as a build check, see EXAMPLES below).

ifeq ($(origin CC),default)
CC := gcc
endif
silly_saved_goal := $(.DEFAULT_GOAL)

SILLY_DIR_SRC := adapters/silly
SILLY_SRC     := $(SILLY_DIR_SRC)/silly_tls.c
SILLY_DEPS    := $(SILLY_SRC) $(SILLY_DIR_SRC)/silly_api.h include/corotls.h $(SILLY_DIR_SRC)/silly.mk
SILLY_CFLAGS  := -std=gnu11 -Wall -Wextra -Werror -O2 -g -fPIC -fvisibility=hidden -D_GNU_SOURCE
SILLY_LDFLAGS := -shared -Wl,--exclude-libs,ALL -Wl,--gc-sections -Wl,-z,relro,-z,now
# libcorotls.a needs these (cargo rustc -- --print native-static-libs).
SILLY_LIBS    := -lssl -lcrypto -lgcc_s -lutil -lrt -lpthread -lm -ldl

# The system's Lua 5.4 headers, if installed.
SILLY_SYS_LUA_INC := $(firstword $(foreach d,/usr/include/lua5.4 /usr/local/include/lua5.4,\
                       $(if $(wildcard $(d)/lua.h),$(d))))
LUA_INC ?= $(SILLY_SYS_LUA_INC)

# $(call silly_so,OUTDIR,LUA_INCLUDE_DIR): rules for OUTDIR/luaclib/silly/tls/tls.so
# and its ctx.so link.  A stamp holding the include directory rebuilds the
# object when LUA_INC changes.
define silly_so
$(1)/lua-inc: FORCE
	@mkdir -p $$(@D)
	@echo '$(2)' | cmp -s - $$@ || echo '$(2)' >$$@

$(1)/silly_tls.o: $$(SILLY_DEPS) $(1)/lua-inc
	@test -f '$(2)/lua.h' || { echo "silly: no lua.h in LUA_INC='$(2)'"; \
	  echo "       use: make silly LUA_INC=<silly>/deps/lua"; exit 1; }
	$$(CC) $$(SILLY_CFLAGS) -I '$(2)' -I include -I $$(SILLY_DIR_SRC) -c -o $$@ $$(SILLY_SRC)

$(1)/luaclib/silly/tls/tls.so: $(1)/silly_tls.o $$(LIB_A)
	@mkdir -p $$(@D)
	$$(CC) $$(SILLY_LDFLAGS) -o $$@ $(1)/silly_tls.o $$(LIB_A) $$(SILLY_LIBS)
	ln -sf tls.so $$(@D)/ctx.so
endef

.PHONY: silly silly-install silly-uninstall silly-check silly-check-native silly-check-valgrind FORCE
FORCE:

# ------------------------------------------------------------- make silly
SILLY_OUT := target/silly
SILLY_SO  := $(SILLY_OUT)/luaclib/silly/tls/tls.so
$(eval $(call silly_so,$(SILLY_OUT),$(LUA_INC)))

silly: $(SILLY_SO)
	@echo "silly face: $(SILLY_SO) (and ctx.so) built against $(LUA_INC)"

silly-install: $(SILLY_SO)
	@test -n "$(SILLY_DIR)" && test -d "$(SILLY_DIR)/luaclib" || \
	  { echo "silly-install: set SILLY_DIR to a built silly tree (with luaclib/)"; exit 1; }
	install -d "$(SILLY_DIR)/luaclib/silly/tls"
	install -m 755 $(SILLY_SO) "$(SILLY_DIR)/luaclib/silly/tls/tls.so"
	ln -sf tls.so "$(SILLY_DIR)/luaclib/silly/tls/ctx.so"

silly-uninstall:
	@test -n "$(SILLY_DIR)" || { echo "silly-uninstall: set SILLY_DIR"; exit 1; }
	rm -f "$(SILLY_DIR)/luaclib/silly/tls/tls.so" "$(SILLY_DIR)/luaclib/silly/tls/ctx.so"
	-rmdir "$(SILLY_DIR)/luaclib/silly/tls" 2>/dev/null
	-rmdir "$(SILLY_DIR)/luaclib/silly" 2>/dev/null

# ------------------------------------------------------------- tests
SILLY_TEST_OUT    := target/silly-test
SILLY_TEST_SO     := $(SILLY_TEST_OUT)/luaclib/silly/tls/tls.so
SILLY_TEST_HOST   := $(SILLY_TEST_OUT)/silly_host
SILLY_TEST_LIBS   ?= -llua5.4
SILLY_PKI_DIR     := $(or $(HARNESS_CERTDIR),target/certs)
SILLY_PKI         := $(or $(HARNESS_CERTS),$(SILLY_PKI_DIR)/.done)
SILLY_CERTDIR     := $(SILLY_PKI_DIR)/silly
SILLY_TESTS       := test_module.lua test_session.lua test_openssl.lua
SILLY_TEST_ENV    := COROTLS_CERTDIR=$(SILLY_PKI_DIR) SILLY_CERTDIR=$(SILLY_CERTDIR)
# Under valgrind the bulk transfers shrink (64 MiB natively) and the
# watchdog gets more time.
SILLY_VALGRIND_ENV := SILLY_BIG_MB=8 SILLY_HOST_TIMEOUT=900

$(eval $(call silly_so,$(SILLY_TEST_OUT),$(SILLY_SYS_LUA_INC)))

# The fixture exports silly_* (and Lua, from the shared liblua) to tls.so.
$(SILLY_TEST_HOST): c_tests/silly/host.c $(SILLY_DIR_SRC)/silly_api.h $(SILLY_TEST_OUT)/lua-inc
	@mkdir -p $(@D)
	$(CC) -std=gnu11 -Wall -Wextra -Werror -O1 -g -D_GNU_SOURCE -I '$(SILLY_SYS_LUA_INC)' \
	  -I $(SILLY_DIR_SRC) -o $@ $< -rdynamic $(SILLY_TEST_LIBS)

$(SILLY_CERTDIR)/.done: c_tests/silly/certs.sh c_tests/harness/pki.sh
	bash c_tests/silly/certs.sh $(SILLY_CERTDIR)

SILLY_TEST_INPUTS := $(SILLY_TEST_SO) $(SILLY_TEST_HOST) $(SILLY_CERTDIR)/.done $(SILLY_PKI)

# $(call silly_run,SUITE,PREFIX): run every test script (each prints its
# "N passed, M failed"), recorded as one suite of make check; fails when one did
silly_run = $(SUITE) $(1) bash -c 'st=0; for t in $(SILLY_TESTS); do \
	  echo "\# silly face: $$t"; \
	  $(SILLY_TEST_ENV) $(2) $(SILLY_TEST_HOST) $(SILLY_TEST_OUT)/luaclib c_tests/silly/$$t $(SILLY_TEST_SO) || st=1; \
	done; exit $$st'

silly-check-native: $(SILLY_TEST_INPUTS)
	@$(call silly_run,silly,)

silly-check-valgrind: $(SILLY_TEST_INPUTS)
	@$(call silly_run,silly-valgrind,$(SILLY_VALGRIND_ENV) $(VALGRIND))

ifneq ($(SILLY_SYS_LUA_INC),)
silly-check: silly-check-native silly-check-valgrind
	@echo "silly face: all tests passed (natively and under valgrind)"
else
silly-check:
	@$(SUITE) silly sh -c 'echo "silly-check needs the Lua 5.4 headers and library (Debian: apt-get install liblua5.4-dev)"; exit 1'
endif

CHECKS += silly-check
SUITES += silly silly-valgrind

# The default `make`: the module for the Lua named by LUA_INC when it is
# given, else a build check against the system Lua 5.4 (in target/silly-test,
# so a `make silly LUA_INC=...` result is never rebuilt for another Lua).
ifneq ($(filter command line environment,$(origin LUA_INC)),)
EXAMPLES += $(SILLY_SO)
else ifneq ($(SILLY_SYS_LUA_INC),)
EXAMPLES += $(SILLY_TEST_SO)
endif

.DEFAULT_GOAL := $(silly_saved_goal)
