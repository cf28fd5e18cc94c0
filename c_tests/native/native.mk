# corotls: C tests of the native API (conf, session, conn) against real peers,
# built against the installed-style header and the shared library.
# Included by the top-level Makefile.

NATIVE_TESTS := $(addprefix $(OUT)/,native_api native_interop native_conn native_verify native_settings native_profile native_reasons native_handles)
NATIVE_UTIL  := c_tests/native/tls_util.c
NATIVE_INC   := -I c_tests/native

$(OUT)/native_%: c_tests/native/native_%.c $(NATIVE_UTIL) c_tests/native/tls_util.h $(HARNESS_OBJ) $(HEADER) $(LIB_SO)
	@mkdir -p $(@D)
	$(CC) $(C_CFLAGS) $(HARNESS_INC) $(NATIVE_INC) -o $@ $< $(NATIVE_UTIL) $(HARNESS_OBJ) $(C_LDFLAGS) $(C_LIBS)

# These also drive corotls_loop_connect / _listen (c_tests/loop/loop_util.c).
$(OUT)/native_verify $(OUT)/native_settings $(OUT)/native_reasons: $(OUT)/native_%: c_tests/native/native_%.c c_tests/loop/loop_util.c c_tests/loop/loop_util.h $(NATIVE_UTIL) c_tests/native/tls_util.h $(HARNESS_OBJ) $(HEADER) $(LIB_SO)
	@mkdir -p $(@D)
	$(CC) $(C_CFLAGS) $(HARNESS_INC) $(NATIVE_INC) -I c_tests/loop -o $@ $< c_tests/loop/loop_util.c $(NATIVE_UTIL) $(HARNESS_OBJ) $(C_LDFLAGS) $(C_LIBS) -lssl -lcrypto

.PHONY: native-check
native-check: $(NATIVE_TESTS) $(HARNESS_CERTS)
	@c_tests/harness/run.sh --suite native --label "native C tests" $(NATIVE_TESTS)
	@VALGRIND="$(VALGRIND)" c_tests/harness/run.sh --valgrind --suite native-valgrind --label "native C tests" $(NATIVE_TESTS)

CHECKS += native-check
SUITES += native native-valgrind
