# corotls: benchmarks (make bench).  Not part of make check's verdicts: it
# only builds the program and runs a --quick pass to keep it working.
$(OUT)/bench: benches/bench.c $(HEADER) $(LIB_SO)
	@mkdir -p $(@D)
	$(CC) -std=gnu11 -Wall -Wextra -Werror -O2 -g -D_GNU_SOURCE -I include -o $@ $< $(C_LDFLAGS) -lcorotls -lssl -lcrypto -lpthread

.PHONY: bench bench-smoke
bench: $(OUT)/bench $(HARNESS_CERTS)
	$(OUT)/bench --certdir $(HARNESS_CERTDIR)

bench-smoke: $(OUT)/bench $(HARNESS_CERTS)
	@$(SUITE) bench-smoke bash -o pipefail -c \
	  "$(OUT)/bench --quick --certdir $(HARNESS_CERTDIR) | grep '^summary' | sed 's/^/bench --quick: /'"

CHECKS += bench-smoke
SUITES += bench-smoke

# Instructions per 64-byte echo round trip through corotls_session_* and
# corotls_conn_*, under callgrind (benches/callgrind_echo.sh; LIBDIR=... to
# measure another build of libcorotls.so).
$(OUT)/echo_count: benches/echo_count.c $(HEADER) $(LIB_SO)
	@mkdir -p $(@D)
	$(CC) -std=gnu11 -Wall -Wextra -Werror -O2 -g -D_GNU_SOURCE -I include -o $@ $< -L $(RELEASE) -lcorotls

.PHONY: bench-callgrind
bench-callgrind: $(OUT)/echo_count $(HARNESS_CERTS)
	@benches/callgrind_echo.sh $(OUT)/echo_count $(or $(LIBDIR),$(RELEASE)) $(HARNESS_CERTDIR)
