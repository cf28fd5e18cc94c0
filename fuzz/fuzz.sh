#!/usr/bin/env bash
# fuzz/fuzz.sh -- run fuzz targets built by `make fuzz-build` (fuzz/fuzz.mk).
#
#   fuzz/fuzz.sh smoke SECONDS TARGET...   replay fuzz/regressions/TARGET/*,
#                                          then fuzz each target SECONDS
#   fuzz/fuzz.sh run SECONDS TARGET        one long run
#
# Environment: FUZZ_BIN (the built targets), FUZZ_CORPUS (growing corpus,
# one directory per target), FUZZ_SEEDS (make fuzz-corpus's seeds),
# FUZZ_ARTIFACTS (crashing inputs), FUZZ_LOG (logs), FUZZ_FLAGS (more
# libFuzzer flags).  Every run appends "target seconds executions result
# date" (the wall seconds it ran) to $FUZZ_LOG/runs.tsv (the totals in
# docs/ROBUSTNESS.md come from it).
# Exit status 1 if any replay or run failed: a crash, a panic, a leak
# (LeakSanitizer), a timeout (-timeout, per input) or running out of
# memory (-rss_limit_mb / -malloc_limit_mb) -- libFuzzer exits non-zero
# for each.
set -uo pipefail

mode=${1:?usage: fuzz.sh smoke|run SECONDS TARGET...}
secs=${2:?seconds}
shift 2
: "${FUZZ_BIN:?}" "${FUZZ_CORPUS:?}" "${FUZZ_SEEDS:?}" "${FUZZ_ARTIFACTS:?}" "${FUZZ_LOG:?}"
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$FUZZ_LOG"
# Per-input bounds: a loaded 2-core machine runs an input in milliseconds;
# 25 s is a hang.  2 GiB of RSS is far above any target's need.
flags=(-timeout=25 -rss_limit_mb=2048 -malloc_limit_mb=2048 -print_final_stats=1 ${FUZZ_FLAGS:-})

failed=()
printf '%-18s %8s %12s %10s  %s\n' target seconds executions exec/s result
for t in "$@"; do
    bin=$FUZZ_BIN/$t
    [ -x "$bin" ] || { echo "fuzz: $bin is not built (make fuzz-build)" >&2; failed+=("$t"); continue; }
    log=$FUZZ_LOG/$t.log
    : >"$log"
    result=ok
    # Every earlier finding, replayed first.
    regs=("$here/regressions/$t"/*)
    if [ -e "${regs[0]}" ]; then
        if ! "$bin" "${flags[@]}" "${regs[@]}" >>"$log" 2>&1; then
            result="regression-failed"
        fi
    fi
    runs=0 ran=0
    if [ "$result" = ok ]; then
        mkdir -p "$FUZZ_CORPUS/$t" "$FUZZ_ARTIFACTS/$t"
        dirs=("$FUZZ_CORPUS/$t")
        [ -d "$FUZZ_SEEDS/$t" ] && dirs+=("$FUZZ_SEEDS/$t")
        t0=$(date +%s)
        "$bin" "${flags[@]}" -max_total_time="$secs" -artifact_prefix="$FUZZ_ARTIFACTS/$t/" \
            "${dirs[@]}" >>"$log" 2>&1
        rc=$?
        ran=$(( $(date +%s) - t0 ))
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
        runs=${runs:-0}
        if [ $rc -ne 0 ]; then
            result="FAIL(exit $rc)"
            grep -m1 -E 'ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)|panicked at|SUMMARY' "$log" >&2 || true
            ls "$FUZZ_ARTIFACTS/$t"/ 2>/dev/null | sed "s|^|  artifact: $FUZZ_ARTIFACTS/$t/|" >&2
        fi
    fi
    # Wall seconds (a failing run ends early); executions as libFuzzer counts them.
    ran=${ran:-0}
    rate=$(( runs / (ran > 0 ? ran : 1) ))
    printf '%-18s %8s %12s %10s  %s\n' "$t" "$ran" "$runs" "$rate" "$result"
    printf '%s\t%s\t%s\t%s\t%s\n' "$t" "$ran" "$runs" "$result" "$(date -u +%FT%TZ)" >>"$FUZZ_LOG/runs.tsv"
    [ "$result" = ok ] || failed+=("$t")
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz $mode: FAIL - ${failed[*]} (logs: $FUZZ_LOG/<target>.log)" >&2
    exit 1
fi
echo "fuzz $mode: $# target(s) ran, 0 crashes, leaks, timeouts or out-of-memory"
