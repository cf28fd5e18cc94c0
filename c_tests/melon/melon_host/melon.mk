# corotls: make fragment for the Melon host fixture and the Melon layout checks.
# Included by the top-level Makefile; also usable alone, from the repository
# root:  make -f c_tests/melon/melon_host/melon.mk melon-host-check
#
# Provides:
#   MELON_HOST_SRC / MELON_HOST_INC   fixture source and include directory
#   MELON_HOST_LIB                    static archive of the fixture; a test
#                                     linking the Melon face lists it AFTER
#                                     libcorotls_melon (spec melon.md §7.5)
#   melon-host-check                  builds and runs the three programs below
#                                     (c_tests/harness/run.sh: suites
#                                     melon-host, melon-host-valgrind)
#   melon-host-build                  builds them without running
# Paths are relative to the repository root. Including this file does not
# change the includer's default goal.

# The intent of `CC ?= gcc`, which alone would never fire because make
# predefines CC=cc: replace only make's built-in default, never a CC set by
# the user, the environment or the includer.
ifeq ($(origin CC),default)
CC := gcc
endif

MELON_HOST_DIR    := c_tests/melon/melon_host
MELON_HOST_INC    := $(MELON_HOST_DIR)/include
MELON_HOST_SRC    := $(MELON_HOST_DIR)/melon_host.c
MELON_HOST_HDRS   := $(wildcard $(MELON_HOST_INC)/*.h) $(MELON_HOST_DIR)/check.h
MELON_COMPAT_INC  := include/melon
MELON_HOST_OUT    := target/c_tests
MELON_HOST_CFLAGS := -std=gnu11 -Wall -Wextra -Werror -O1 -g
MELON_HOST_OBJ    := $(MELON_HOST_OUT)/melon_host.o
MELON_HOST_LIB    := $(MELON_HOST_OUT)/libmelon_host.a
MELON_VALGRIND    := valgrind --error-exitcode=1 --leak-check=full -q

MELON_HOST_PROGS := $(MELON_HOST_OUT)/melon_layout \
                    $(MELON_HOST_OUT)/melon_layout_plain \
                    $(MELON_HOST_OUT)/melon_host_test

MELON_HOST_SAVED_GOAL := $(.DEFAULT_GOAL)

.PHONY: melon-host-check melon-host-build

melon-host-build: $(MELON_HOST_PROGS) $(MELON_HOST_LIB)

melon-host-check: melon-host-build
	@c_tests/harness/run.sh --suite melon-host --label "Melon host fixture" \
	  $(MELON_HOST_OUT)/melon_layout $(MELON_HOST_OUT)/melon_layout_plain
	@VALGRIND="$(MELON_VALGRIND)" c_tests/harness/run.sh --valgrind --suite melon-host-valgrind \
	  --label "Melon host fixture" $(MELON_HOST_OUT)/melon_host_test

SUITES += melon-host melon-host-valgrind

# Layout checks need only OpenSSL's headers (types), not its libraries.
$(MELON_HOST_OUT)/melon_layout: c_tests/melon/melon_layout.c $(MELON_COMPAT_INC)/mln_connection.h \
		$(MELON_HOST_HDRS) $(MELON_HOST_DIR)/layout_check.h
	@mkdir -p $(@D)
	$(CC) $(MELON_HOST_CFLAGS) -DMLN_TLS -I $(MELON_COMPAT_INC) -I $(MELON_HOST_INC) -o $@ $<

$(MELON_HOST_OUT)/melon_layout_plain: c_tests/melon/melon_layout_plain.c $(MELON_COMPAT_INC)/mln_connection.h \
		$(MELON_HOST_HDRS) $(MELON_HOST_DIR)/layout_check.h
	@mkdir -p $(@D)
	$(CC) $(MELON_HOST_CFLAGS) -I $(MELON_COMPAT_INC) -I $(MELON_HOST_INC) -o $@ $<

$(MELON_HOST_OBJ): $(MELON_HOST_SRC) $(MELON_HOST_HDRS)
	@mkdir -p $(@D)
	$(CC) $(MELON_HOST_CFLAGS) -fPIC -I $(MELON_HOST_INC) -c -o $@ $<

$(MELON_HOST_LIB): $(MELON_HOST_OBJ)
	rm -f $@
	ar rcs $@ $<

$(MELON_HOST_OUT)/melon_host_test: $(MELON_HOST_DIR)/test_host.c $(MELON_HOST_OBJ) \
		$(MELON_HOST_HDRS)
	@mkdir -p $(@D)
	$(CC) $(MELON_HOST_CFLAGS) -pthread -I $(MELON_HOST_INC) -I $(MELON_HOST_DIR) \
		-o $@ $< $(MELON_HOST_OBJ)

.DEFAULT_GOAL := $(MELON_HOST_SAVED_GOAL)
