# corotls: the sendfile benchmark (make bench-sendfile): corotls_conn_sendfile
# against a corotls_conn_write loop of the same file, one row in
# target/bench/rows/sendfile.tsv.  make check runs a --quick pass
# (bench-sendfile-smoke) to keep it working; no timing is asserted.

$(OUT)/sendfile_bench: benches/sendfile_bench.c $(HEADER) $(LIB_SO)
	@mkdir -p $(@D)
	$(CC) -std=gnu11 -Wall -Wextra -Werror -O2 -g -D_GNU_SOURCE -I include -o $@ $< $(C_LDFLAGS) -lcorotls -lpthread

.PHONY: bench-sendfile bench-sendfile-smoke
bench-sendfile: $(OUT)/sendfile_bench $(HARNESS_CERTS)
	$(OUT)/sendfile_bench --certdir $(HARNESS_CERTDIR) --out target/bench/rows/sendfile.tsv

bench-sendfile-smoke: $(OUT)/sendfile_bench $(HARNESS_CERTS)
	@$(SUITE) bench-sendfile-smoke $(OUT)/sendfile_bench --quick --certdir $(HARNESS_CERTDIR) --out target/bench/smoke/sendfile.tsv

CHECKS += bench-sendfile-smoke
SUITES += bench-sendfile-smoke
