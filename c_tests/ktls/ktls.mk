# corotls: C tests of kernel TLS on request (the report, off here with its
# reason) and of sendfile on conn and loop (byte-exact to Python ssl and
# openssl s_server, by SHA-256).  Included by the top-level Makefile.

KTLS_TESTS := $(OUT)/ktls_test

$(OUT)/ktls_test: c_tests/ktls/ktls_test.c $(LOOP_UTIL) $(LOOP_HDRS) $(HARNESS_OBJ) $(HEADER) $(LIB_SO)
	@mkdir -p $(@D)
	$(CC) $(C_CFLAGS) $(HARNESS_INC) $(LOOP_INC) -o $@ $< $(LOOP_UTIL) $(HARNESS_OBJ) $(C_LDFLAGS) $(C_LIBS) -lcrypto

.PHONY: ktls-check
ktls-check: $(KTLS_TESTS) $(HARNESS_CERTS)
	@c_tests/harness/run.sh --suite ktls --label "kTLS/sendfile C tests" $(KTLS_TESTS)
	@VALGRIND="$(VALGRIND)" c_tests/harness/run.sh --valgrind --suite ktls-valgrind --label "kTLS/sendfile C tests" $(KTLS_TESTS)

CHECKS += ktls-check
SUITES += ktls ktls-valgrind
