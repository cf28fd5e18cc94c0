# c_tests/robust/robust.mk -- proof under attack: unloading, allocation
# failures, and every C suite once more under AddressSanitizer with UBSan
# and LeakSanitizer.  Included by the top-level Makefile after the other
# fragments (it reuses their test lists).
#
#   make robust-check   unload_check (dlopen / dlclose of libcorotls.so and of
#                       the silly tls.so, three times each) and alloc_fail
#                       (OpenSSL's Nth allocation fails, for every N), natively
#                       and under valgrind
#   make check-asan     the C suites (native, loop, melang core, Melon face,
#                       silly, robust) built with -fsanitize=address,undefined
#                       (the C side; the Rust library as it is) into
#                       target/asan/, run with LeakSanitizer on: a report,
#                       also at exit or at unload, fails the suite
#
# Both are part of make check.

ROBUST_UNLOAD := $(OUT)/unload_check
ROBUST_ALLOC  := $(OUT)/alloc_fail
ROBUST_TESTS  := $(ROBUST_UNLOAD) $(ROBUST_ALLOC)

$(ROBUST_UNLOAD): c_tests/robust/unload_check.c $(HARNESS_OBJ) $(HEADER) $(SILLY_DIR_SRC)/silly_api.h
	@mkdir -p $(@D)
	$(CC) $(C_CFLAGS) $(HARNESS_INC) -I $(SILLY_DIR_SRC) -I '$(SILLY_SYS_LUA_INC)' -o $@ $< $(HARNESS_OBJ) \
	  -rdynamic $(SILLY_TEST_LIBS) -lssl -lcrypto -ldl

$(ROBUST_ALLOC): c_tests/robust/alloc_fail.c $(HARNESS_OBJ) $(HEADER) $(LIB_SO)
	@mkdir -p $(@D)
	$(CC) $(C_CFLAGS) $(HARNESS_INC) -o $@ $< $(HARNESS_OBJ) $(C_LDFLAGS) $(C_LIBS) -lssl -lcrypto

# alloc_fail runs one whole use of the library once per OpenSSL allocation
# (about 11,000 runs, 40 s here natively): its watchdog is 5 minutes, not
# the harness's default 30 s.
ROBUST_ENV = UNLOAD_LIBCOROTLS=$(abspath $(LIB_SO)) UNLOAD_SILLY_MODDIR=$(abspath $(SILLY_TEST_OUT))/luaclib \
             HARNESS_TEST_TIMEOUT=300

.PHONY: robust-check robust-check-native robust-check-valgrind
robust-check-native: $(ROBUST_TESTS) $(LIB_SO) $(SILLY_TEST_SO) $(HARNESS_CERTS)
	@$(ROBUST_ENV) c_tests/harness/run.sh --suite robust --label "robust C tests" $(ROBUST_TESTS)

robust-check-valgrind: $(ROBUST_TESTS) $(LIB_SO) $(SILLY_TEST_SO) $(HARNESS_CERTS)
	@$(ROBUST_ENV) VALGRIND="$(VALGRIND)" c_tests/harness/run.sh --valgrind --suite robust-valgrind \
	  --label "robust C tests" $(ROBUST_UNLOAD)

robust-check: robust-check-native robust-check-valgrind

CHECKS += robust-check
SUITES += robust robust-valgrind

# ------------------------------------------------------------- check-asan
# A second make builds the same programs with sanitizer flags into
# target/asan/ (every output directory is a variable of its fragment), then
# runs them there.  The example programs the tests start stay the ones in
# target/examples/, built without sanitizers: one the second make would
# rebuild goes to target/asan/examples/ and is not run.
ASAN_DIR    := target/asan
ASAN_FLAGS  := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
ASAN_MAKE    = $(MAKE) --no-print-directory OUT=$(ASAN_DIR) HARNESS_BUILD=$(ASAN_DIR) MELON_HOST_OUT=$(ASAN_DIR) \
               EX_OUT=$(ASAN_DIR)/examples \
               SILLY_TEST_OUT=$(ASAN_DIR)/silly \
               C_CFLAGS='$(C_CFLAGS) $(ASAN_FLAGS)' HARNESS_CFLAGS='$(HARNESS_CFLAGS) $(ASAN_FLAGS)' \
               MELON_HOST_CFLAGS='$(MELON_HOST_CFLAGS) $(ASAN_FLAGS)' SILLY_CFLAGS='$(SILLY_CFLAGS) $(ASAN_FLAGS)' \
               SILLY_TEST_LIBS='$(SILLY_TEST_LIBS) $(ASAN_FLAGS)'
# halt_on_error: the first report ends the program (non-zero), which the
# suite counts as a failure; detect_leaks: LeakSanitizer at exit.
ASAN_ENV := ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0:detect_stack_use_after_return=0 \
            UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 LSAN_OPTIONS=report_objects=1

# The native robust suite fails every allocation N in turn (no crash, a
# clean error); under LeakSanitizer every 5th N is enough to catch a leak
# on a failure path, in a fifth of the time (about 50 s instead of 240).
ASAN_ALLOC_FAIL_STEP ?= 5

.PHONY: check-asan asan-build asan-run
check-asan: $(LIB_SO) $(MELON_FACE_SO) $(HARNESS_CERTS) $(SILLY_CERTDIR)/.done $(LOOP_EXAMPLES) $(EX_OUT)/tls_echo_server \
            $(EX_OUT)/tls_echo_client
	@$(ASAN_MAKE) asan-build
	@$(ASAN_MAKE) asan-run

asan-build: $(NATIVE_TESTS) $(LOOP_TESTS) $(MELANG_CORE_TESTS) $(MELON_FACE_TESTS) $(ROBUST_TESTS) \
            $(SILLY_TEST_SO) $(SILLY_TEST_HOST) $(MTLS_TESTS) $(CLOSE_TESTS) $(KTLS_TESTS)

# The programs run as in their own suites, quick (as under valgrind: smaller
# transfers, a longer watchdog), each program's sanitizer report in its log.
asan-run:
	@$(ASAN_ENV) c_tests/harness/run.sh --asan --suite native-asan --label "native C tests" $(NATIVE_TESTS)
	@$(ASAN_ENV) c_tests/harness/run.sh --asan --suite loop-asan --label "loop C tests" $(LOOP_TESTS)
	@$(ASAN_ENV) c_tests/harness/run.sh --asan --suite melang-core-asan --label "melang binding core" \
	  $(MELANG_CORE_TESTS)
	@$(ASAN_ENV) COROTLS_CERTDIR=$(HARNESS_CERTDIR) MELON_TEST_LIGHT=1 c_tests/harness/run.sh --asan \
	  --suite melon-face-asan --label "Melon face C tests" $(MELON_FACE_TESTS)
	@$(ASAN_ENV) $(ROBUST_ENV) ALLOC_FAIL_STEP=$(ASAN_ALLOC_FAIL_STEP) c_tests/harness/run.sh --asan \
	  --suite robust-asan --label "robust C tests" $(ROBUST_TESTS)
	@$(call silly_run,silly-asan,$(ASAN_ENV) $(SILLY_VALGRIND_ENV))
	@$(ASAN_ENV) c_tests/harness/run.sh --asan --suite mtls-close-ktls-asan --label "mTLS, close, kTLS C tests" \
	  $(MTLS_TESTS) $(CLOSE_TESTS) $(KTLS_TESTS)

CHECKS += check-asan
SUITES += native-asan loop-asan melang-core-asan melon-face-asan robust-asan silly-asan mtls-close-ktls-asan
