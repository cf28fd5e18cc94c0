# corotls: C tests of mTLS (client certificates, the client CA list, the
# peer certificate accessors) against openssl s_client / s_server, Python
# ssl and our own client.  Included by the top-level Makefile.

MTLS_TESTS := $(OUT)/mtls_test $(OUT)/mtls_example

$(OUT)/mtls_test: c_tests/mtls/mtls_test.c $(LOOP_UTIL) $(LOOP_HDRS) $(HARNESS_OBJ) $(HEADER) $(LIB_SO)
	@mkdir -p $(@D)
	$(CC) $(C_CFLAGS) $(HARNESS_INC) $(LOOP_INC) -o $@ $< $(LOOP_UTIL) $(HARNESS_OBJ) $(C_LDFLAGS) $(C_LIBS)

# The examples' mTLS options (tls_echo_server --verify-client, --client-ca).
$(OUT)/mtls_example: c_tests/mtls/mtls_example.c $(HARNESS_OBJ) $(EX_OUT)/tls_echo_server $(EX_OUT)/tls_echo_client
	@mkdir -p $(@D)
	$(CC) $(C_CFLAGS) $(HARNESS_INC) -o $@ $< $(HARNESS_OBJ)

.PHONY: mtls-check
mtls-check: $(MTLS_TESTS) $(HARNESS_CERTS)
	@c_tests/harness/run.sh --suite mtls --label "mTLS C tests" $(MTLS_TESTS)
	@VALGRIND="$(VALGRIND)" c_tests/harness/run.sh --valgrind --suite mtls-valgrind --label "mTLS C tests" $(MTLS_TESTS)

CHECKS += mtls-check
SUITES += mtls mtls-valgrind
