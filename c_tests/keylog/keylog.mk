# corotls: C tests of key logging (c_tests/keylog/): the NSS key-log lines
# of both sides, the file and SSLKEYLOGFILE sinks (keylog_api, also under
# valgrind), and a loopback capture decrypted by tshark with the logged
# secrets (keylog_tshark: skipped with a message when tshark is absent).
# Included by the top-level Makefile.

KEYLOG_TESTS := $(OUT)/keylog_api $(OUT)/keylog_tshark

$(OUT)/keylog_api: c_tests/keylog/keylog_api.c $(NATIVE_UTIL) c_tests/native/tls_util.h $(HARNESS_OBJ) $(HEADER) $(LIB_SO)
	@mkdir -p $(@D)
	$(CC) $(C_CFLAGS) $(HARNESS_INC) $(NATIVE_INC) -o $@ $< $(NATIVE_UTIL) $(HARNESS_OBJ) $(C_LDFLAGS) $(C_LIBS)

$(OUT)/keylog_tshark: c_tests/keylog/keylog_tshark.c $(HARNESS_OBJ)
	@mkdir -p $(@D)
	$(CC) $(C_CFLAGS) $(HARNESS_INC) -o $@ $< $(HARNESS_OBJ)

.PHONY: keylog-check
keylog-check: $(KEYLOG_TESTS) $(EX_OUT)/tls_echo_server $(EX_OUT)/tls_echo_client $(HARNESS_CERTS)
	@c_tests/harness/run.sh --suite keylog --label "key-log C tests" $(KEYLOG_TESTS)
	@VALGRIND="$(VALGRIND)" c_tests/harness/run.sh --valgrind --suite keylog-valgrind --label "key-log C tests" $(OUT)/keylog_api

CHECKS += keylog-check
SUITES += keylog keylog-valgrind

# make check-asan: keylog_api built with sanitizers (robust.mk's second
# make) runs before its own suites.
asan-build: $(OUT)/keylog_api
asan-run: keylog-asan-run
.PHONY: keylog-asan-run
keylog-asan-run:
	@$(ASAN_ENV) c_tests/harness/run.sh --asan --suite keylog-asan --label "key-log C tests" $(OUT)/keylog_api
SUITES += keylog-asan
