# corotls: C tests of how TLS streams end (CLOSED vs EOF on the session,
# conn and loop paths; shutdown states; corotls_conn_close; the loop's
# half-close) against openssl s_client / s_server and Python ssl.
# Included by the top-level Makefile.

CLOSE_TESTS := $(OUT)/close_test

$(OUT)/close_test: c_tests/close/close_test.c $(LOOP_UTIL) $(LOOP_HDRS) $(HARNESS_OBJ) $(HEADER) $(LIB_SO)
	@mkdir -p $(@D)
	$(CC) $(C_CFLAGS) $(HARNESS_INC) $(LOOP_INC) -o $@ $< $(LOOP_UTIL) $(HARNESS_OBJ) $(C_LDFLAGS) $(C_LIBS)

.PHONY: close-check
close-check: $(CLOSE_TESTS) $(HARNESS_CERTS)
	@c_tests/harness/run.sh --suite close --label "close C tests" $(CLOSE_TESTS)
	@VALGRIND="$(VALGRIND)" c_tests/harness/run.sh --valgrind --suite close-valgrind --label "close C tests" $(CLOSE_TESTS)

CHECKS += close-check
SUITES += close close-valgrind
