# corotls: full versus resumed handshakes, TLS 1.2 and 1.3, per second and
# in instructions (benches/resume_bench.c; rows in target/bench/rows/resume.tsv).
#   make bench-resume     the measurement (callgrind when valgrind is there)
# make check builds it and runs a --quick pass without callgrind to keep it
# working (no verdict on the numbers: performance is reported, not asserted).

$(OUT)/resume_bench: benches/resume_bench.c $(HEADER) $(LIB_SO)
	@mkdir -p $(@D)
	$(CC) -std=gnu11 -Wall -Wextra -Werror -O2 -g -D_GNU_SOURCE -I include -o $@ $< $(C_LDFLAGS) -lcorotls

.PHONY: bench-resume bench-resume-smoke
bench-resume: $(OUT)/resume_bench $(HARNESS_CERTS)
	$(OUT)/resume_bench --certdir $(HARNESS_CERTDIR)

bench-resume-smoke: $(OUT)/resume_bench $(HARNESS_CERTS)
	@$(SUITE) bench-resume-smoke $(OUT)/resume_bench --quick --no-callgrind --certdir $(HARNESS_CERTDIR) \
	  --rows target/bench/smoke/resume.tsv

CHECKS += bench-resume-smoke
SUITES += bench-resume-smoke
