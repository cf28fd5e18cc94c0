# corotls: example programs, built into target/examples/ against the
# installed-style header and the shared library.
# Included by the top-level Makefile; each program adds itself to EXAMPLES.

EX_PROGS := tls_echo_server tls_echo_client
EXAMPLES += $(addprefix $(EX_OUT)/,$(EX_PROGS))

$(EX_OUT)/%: examples/%.c $(HEADER) $(LIB_SO)
	@mkdir -p $(@D)
	$(CC) $(C_CFLAGS) -o $@ $< $(C_LDFLAGS) $(C_LIBS)
