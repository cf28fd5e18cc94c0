# corotls: C tests of the loop API (corotls_loop_*) over real loopback
# sockets, and the loop examples.  Included by the top-level Makefile.
#
# `make loop-check` runs every test program, then runs them all again under
# valgrind with COROTLS_TEST_QUICK=1 (smaller connection counts).

LOOP_TESTS := $(addprefix $(OUT)/,loop_api loop_cancel loop_timeouts loop_deadlines loop_siege loop_flow loop_threads loop_load loop_sclient loop_examples)
LOOP_UTIL  := c_tests/loop/loop_util.c c_tests/native/tls_util.c
LOOP_HDRS  := c_tests/loop/loop_util.h c_tests/native/tls_util.h
LOOP_INC   := -I c_tests/loop -I c_tests/native

$(OUT)/loop_%: c_tests/loop/loop_%.c $(LOOP_UTIL) $(LOOP_HDRS) $(HARNESS_OBJ) $(HEADER) $(LIB_SO)
	@mkdir -p $(@D)
	$(CC) $(C_CFLAGS) $(HARNESS_INC) $(LOOP_INC) -o $@ $< $(LOOP_UTIL) $(HARNESS_OBJ) $(C_LDFLAGS) $(C_LIBS) -lssl -lcrypto

LOOP_EXAMPLES := $(addprefix $(EX_OUT)/,two_coroutines https_get)
EXAMPLES += $(LOOP_EXAMPLES)

.PHONY: loop-check
loop-check: $(LOOP_TESTS) $(LOOP_EXAMPLES) $(EX_OUT)/tls_echo_server $(HARNESS_CERTS)
	@c_tests/harness/run.sh --suite loop --label "loop C tests" $(LOOP_TESTS)
	@VALGRIND="$(VALGRIND)" c_tests/harness/run.sh --valgrind --suite loop-valgrind --label "loop C tests" $(LOOP_TESTS)

CHECKS += loop-check
SUITES += loop loop-valgrind
