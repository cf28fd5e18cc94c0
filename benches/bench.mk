# corotls: benchmarks (docs/BENCHMARKS.md).
#
#   make bench            the full run (<= 10 minutes): instruction counts
#                         (callgrind), wall-clock pairs, memory, 10k
#                         connections; a table and target/bench/summary.tsv
#   make bench QUICK=1    the same, smaller (<= 60 s)
#   make bench-smoke      every program once, tiny and uncounted (part of
#                         make check: it proves they work, it times nothing)
#   make bench-callgrind  instructions per 64-byte echo through
#                         corotls_session_* and corotls_conn_* (LIBDIR=...
#                         to measure another build of libcorotls.so)
BENCH_OUT    := target/bench
BENCH_CFLAGS := -std=gnu11 -Wall -Wextra -Werror -O2 -g -D_GNU_SOURCE -I include
BENCH_LIBS   := $(C_LDFLAGS) -lcorotls -lssl -lcrypto -lpthread
BENCH_SERVER := benches/servers.c benches/servers.h

$(BENCH_OUT)/icount: benches/icount.c $(HEADER) $(LIB_SO)
	@mkdir -p $(@D)
	$(CC) $(BENCH_CFLAGS) -o $@ $< $(BENCH_LIBS)

$(BENCH_OUT)/wall $(BENCH_OUT)/memory $(BENCH_OUT)/c10k: $(BENCH_OUT)/%: benches/%.c $(BENCH_SERVER) $(HEADER) $(LIB_SO)
	@mkdir -p $(@D)
	$(CC) $(BENCH_CFLAGS) -o $@ $< benches/servers.c $(BENCH_LIBS)

# The Melon face and melon_ref, one driver, the same host fixture.
BENCH_MELON_CFLAGS := $(BENCH_CFLAGS) -DMLN_TLS -I include/melon -I $(MELON_HOST_INC)
$(BENCH_OUT)/melon_echo_face: benches/melon_echo.c $(MELON_FACE_SO) $(MELON_HOST_LIB)
	@mkdir -p $(@D)
	$(CC) $(BENCH_MELON_CFLAGS) -o $@ $< -L $(RELEASE) -Wl,-rpath,$(abspath $(RELEASE)) -lcorotls_melon \
	  $(MELON_HOST_LIB) -lssl -lcrypto -lpthread
$(BENCH_OUT)/melon_echo_ref: benches/melon_echo.c benches/melon_ref.c $(MELON_HOST_LIB)
	@mkdir -p $(@D)
	$(CC) $(BENCH_MELON_CFLAGS) -o $@ benches/melon_echo.c benches/melon_ref.c $(MELON_HOST_LIB) \
	  -lssl -lcrypto -lpthread

# The silly shim (the test build, system Lua 5.4) and silly_ref, one driver.
BENCH_SILLY_CFLAGS := $(BENCH_CFLAGS) -I '$(SILLY_SYS_LUA_INC)' -I adapters/silly
BENCH_SILLY_REF    := $(BENCH_OUT)/silly_ref/silly/tls/tls.so
$(BENCH_SILLY_REF): benches/silly_ref.c adapters/silly/silly_api.h
	@mkdir -p $(@D)
	$(CC) $(BENCH_SILLY_CFLAGS) -fPIC -shared -fvisibility=hidden -o $@ $< -lssl -lcrypto
	ln -sf tls.so $(@D)/ctx.so
$(BENCH_OUT)/silly_echo: benches/silly_echo.c adapters/silly/silly_api.h
	@mkdir -p $(@D)
	$(CC) $(BENCH_SILLY_CFLAGS) -o $@ $< -rdynamic $(SILLY_TEST_LIBS)

BENCH_PROGS := $(BENCH_OUT)/icount $(BENCH_OUT)/wall $(BENCH_OUT)/memory $(BENCH_OUT)/c10k \
               $(BENCH_OUT)/melon_echo_face $(BENCH_OUT)/melon_echo_ref \
               $(BENCH_SILLY_REF) $(BENCH_OUT)/silly_echo $(SILLY_TEST_SO)
BENCH_RUN   = benches/run.sh $(BENCH_OUT) $(HARNESS_CERTDIR) $(SILLY_TEST_OUT)/luaclib

.PHONY: bench bench-smoke bench-build
bench-build: $(BENCH_PROGS) $(HARNESS_CERTS)

# The resumption and sendfile programs (benches/resume.mk, sendfile.mk) go
# first: their rows, in target/bench/rows/, join the summary.
bench: bench-build $(OUT)/resume_bench $(OUT)/sendfile_bench
	@$(OUT)/resume_bench $(if $(QUICK),--quick --no-callgrind) --certdir $(HARNESS_CERTDIR) \
	  --rows $(BENCH_OUT)/rows/resume.tsv
	@$(OUT)/sendfile_bench $(if $(QUICK),--quick) --certdir $(HARNESS_CERTDIR) --out $(BENCH_OUT)/rows/sendfile.tsv
	@$(BENCH_RUN) $(if $(QUICK),quick,full)

bench-smoke: bench-build
	@$(SUITE) bench-smoke bash -o pipefail -c '$(BENCH_RUN) smoke | tail -n 40'

CHECKS += bench-smoke
SUITES += bench-smoke

# Instructions per 64-byte echo round trip through corotls_session_* and
# corotls_conn_*, under callgrind (benches/callgrind_echo.sh; LIBDIR=... on
# the command line to measure another build of libcorotls.so; the Makefile's
# own LIBDIR, the install directory, is not used).
$(OUT)/echo_count: benches/echo_count.c $(HEADER) $(LIB_SO)
	@mkdir -p $(@D)
	$(CC) -std=gnu11 -Wall -Wextra -Werror -O2 -g -D_GNU_SOURCE -I include -o $@ $< -L $(RELEASE) -lcorotls

.PHONY: bench-callgrind
bench-callgrind: $(OUT)/echo_count $(HARNESS_CERTS)
	@benches/callgrind_echo.sh $(OUT)/echo_count \
	  $(if $(filter command line,$(origin LIBDIR)),$(LIBDIR),$(RELEASE)) $(HARNESS_CERTDIR)
