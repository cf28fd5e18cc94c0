# fuzz/fuzz.mk -- cargo-fuzz (libFuzzer) targets of fuzz/.  Included by the
# top-level Makefile; make check does not run it (.ci/run runs fuzz-smoke).
#
#   make fuzz-build     build every target (cargo fuzz, AddressSanitizer,
#                       release with debug assertions) into target/fuzz/
#   make fuzz-corpus    record seeds from real handshakes (made now, with
#                       certificates made now) into target/fuzz-seeds/
#   make fuzz-smoke     replay fuzz/regressions/<target>/*, then fuzz every
#                       target FUZZ_SMOKE_SECONDS (12) seconds; fails on
#                       any crash, leak, timeout or out-of-memory; prints
#                       each target's executions
#   make fuzz-run TARGET=session_server SECONDS=3600
#                       one long run (corpus kept in target/fuzz-corpus/)
#   make fuzz-totals    executions per target over every run recorded
#                       in target/fuzz-logs/runs.tsv
#
# Needs cargo-fuzz (cargo install cargo-fuzz --version 0.13.2 --locked) and a
# C++ compiler for libFuzzer.  No nightly toolchain: RUSTC_BOOTSTRAP=1 lets
# stable rustc take cargo fuzz's -Z flags (sanitizer, coverage).  Guide:
# docs/ROBUSTNESS.md, "Fuzzing".

FUZZ_TARGETS := session_server session_client handshake_mutate identity alpn plaintext_reads \
                cipher_lists melon silly
# Evaluated only by the fuzz targets (no rustc call for other goals).
FUZZ_TRIPLE   = $(shell rustc -vV 2>/dev/null | sed -n 's/^host: //p')
FUZZ_OUT     := target/fuzz
FUZZ_ENV      = RUSTC_BOOTSTRAP=1 FUZZ_BIN=$(FUZZ_OUT)/$(FUZZ_TRIPLE)/release \
                FUZZ_CORPUS=target/fuzz-corpus FUZZ_SEEDS=target/fuzz-seeds \
                FUZZ_ARTIFACTS=target/fuzz-artifacts FUZZ_LOG=target/fuzz-logs
FUZZ_SMOKE_SECONDS ?= 12
SECONDS ?= 600
TARGET ?=

.PHONY: fuzz-build fuzz-corpus fuzz-smoke fuzz-run fuzz-totals

fuzz-build:
	@$(CARGO) fuzz --version >/dev/null 2>&1 || { \
	  echo "fuzz-build: cargo-fuzz is missing: cargo install cargo-fuzz --version 0.13.2 --locked"; exit 1; }
	RUSTC_BOOTSTRAP=1 $(CARGO) fuzz build --fuzz-dir fuzz --target-dir $(FUZZ_OUT) -O -a

fuzz-corpus: fuzz-build
	@rm -rf target/fuzz-seeds
	@$(FUZZ_OUT)/$(FUZZ_TRIPLE)/release/fuzz-corpus target/fuzz-seeds

fuzz-smoke: fuzz-corpus
	@start=$$(date +%s); $(FUZZ_ENV) fuzz/fuzz.sh smoke $(FUZZ_SMOKE_SECONDS) $(FUZZ_TARGETS); rc=$$?; \
	 echo "fuzz-smoke: $$(( $$(date +%s) - start )) s"; exit $$rc

fuzz-run: fuzz-corpus
	@test -n '$(TARGET)' || { echo "usage: make fuzz-run TARGET=<$(FUZZ_TARGETS)> SECONDS=n"; exit 1; }
	@$(FUZZ_ENV) fuzz/fuzz.sh run $(SECONDS) $(TARGET)

fuzz-totals:
	@test -f target/fuzz-logs/runs.tsv || { echo "fuzz-totals: no runs recorded yet"; exit 1; }
	@printf "%-18s %10s %14s %s\n" target seconds executions "failed runs"
	@awk -F'\t' '{ s[$$1] += $$2; n[$$1] += $$3; if ($$4 != "ok") bad[$$1]++ } \
	  END { for (t in n) printf "%-18s %10d %14d %d\n", t, s[t], n[t], bad[t] }' target/fuzz-logs/runs.tsv | sort
