# corotls: example programs, built into target/examples/ against the
# installed-style header and the shared library.
# Included by the top-level Makefile; each program adds itself to EXAMPLES.

EX_PROGS := tls_echo_server tls_echo_client
EXAMPLES += $(addprefix $(EX_OUT)/,$(EX_PROGS))

$(EX_OUT)/%: examples/%.c $(HEADER) $(LIB_SO)
	@mkdir -p $(@D)
	$(CC) $(C_CFLAGS) -o $@ $< $(C_LDFLAGS) $(C_LIBS)

# The examples' command lines and output are a contract: test the binaries.
$(OUT)/examples_test: c_tests/examples/examples_test.c $(HARNESS_OBJ)
	@mkdir -p $(@D)
	$(CC) $(C_CFLAGS) $(HARNESS_INC) -o $@ $< $(HARNESS_OBJ)

.PHONY: examples-check
examples-check: $(EXAMPLES) $(OUT)/examples_test $(HARNESS_CERTS)
	@c_tests/harness/run.sh --suite examples --label "example programs" $(OUT)/examples_test

CHECKS += examples-check
SUITES += examples
