# c_tests/melang/melang.mk -- tests of the Melang extension's binding core
# (adapters/melang/tls_core.c) through a fixture host (host.c: a lang lock,
# coroutines that park and resume, the loop fd polled like Melon's event
# loop), without Melang.  Included by the top-level Makefile.
#
#   make melang-core-check   every test program natively, then under valgrind
#                            (c_tests/harness/run.sh, like the other C suites)
#
# The Melang glue (adapters/melang/mln_lang_tls.c) needs Melon's headers and
# is built by `make melang MELON_PREFIX=...` (adapters/melang/melang.mk).

MELANG_CORE_TESTS := $(addprefix $(OUT)/melang_,core_table core_flow)
MELANG_CORE_DEPS  := adapters/melang/tls_core.c adapters/melang/tls_core.h c_tests/melang/host.c \
                     c_tests/melang/host.h $(HARNESS_OBJ) $(HARNESS_HDR) $(HEADER) $(LIB_SO)

$(OUT)/melang_%: c_tests/melang/%.c $(MELANG_CORE_DEPS)
	@mkdir -p $(@D)
	$(CC) $(C_CFLAGS) $(HARNESS_INC) -I adapters/melang -I c_tests/melang -o $@ $< c_tests/melang/host.c \
	  adapters/melang/tls_core.c $(HARNESS_OBJ) $(C_LDFLAGS) $(C_LIBS)

.PHONY: melang-core-check
melang-core-check: $(MELANG_CORE_TESTS) $(HARNESS_CERTS)
	@c_tests/harness/run.sh --suite melang-core --label "melang binding core" $(MELANG_CORE_TESTS)
	@VALGRIND="$(VALGRIND)" c_tests/harness/run.sh --valgrind --suite melang-core-valgrind --label "melang binding core" $(MELANG_CORE_TESTS)

CHECKS += melang-core-check
SUITES += melang-core melang-core-valgrind
