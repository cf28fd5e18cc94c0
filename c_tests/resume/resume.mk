# corotls: C tests of session resumption (c_tests/resume/): our client and
# server over loopback (the session cache, export/import, names, ticket-key
# rotation, the loop), and interop with openssl s_client / s_server and
# tls_echo_client --reconnect.  Included by the top-level Makefile.

RESUME_TESTS := $(OUT)/resume_api $(OUT)/resume_interop
RESUME_UTIL  := c_tests/resume/resume_util.c $(LOOP_UTIL)
RESUME_HDRS  := c_tests/resume/resume_util.h $(LOOP_HDRS)

$(RESUME_TESTS): $(OUT)/resume_%: c_tests/resume/resume_%.c $(RESUME_UTIL) $(RESUME_HDRS) $(HARNESS_OBJ) $(HEADER) $(LIB_SO)
	@mkdir -p $(@D)
	$(CC) $(C_CFLAGS) $(HARNESS_INC) $(LOOP_INC) -I c_tests/resume -o $@ $< $(RESUME_UTIL) $(HARNESS_OBJ) $(C_LDFLAGS) $(C_LIBS) -lssl -lcrypto

# The interop tests spawn openssl and the examples; valgrind runs the
# in-process ones (resume_api).
.PHONY: resume-check
resume-check: $(RESUME_TESTS) $(EX_OUT)/tls_echo_server $(EX_OUT)/tls_echo_client $(HARNESS_CERTS)
	@c_tests/harness/run.sh --suite resume --label "resumption C tests" $(RESUME_TESTS)
	@VALGRIND="$(VALGRIND)" c_tests/harness/run.sh --valgrind --suite resume-valgrind --label "resumption C tests" $(OUT)/resume_api

CHECKS += resume-check
SUITES += resume resume-valgrind

# make check-asan: the same programs built with sanitizers (robust.mk's
# second make) run before its own suites.
asan-build: $(RESUME_TESTS)
asan-run: resume-asan-run
.PHONY: resume-asan-run
resume-asan-run:
	@$(ASAN_ENV) c_tests/harness/run.sh --asan --suite resume-asan --label "resumption C tests" $(RESUME_TESTS)
SUITES += resume-asan
