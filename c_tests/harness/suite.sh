#!/usr/bin/env bash
# One suite of `make check`: run it, count, time and record it.
#
#   c_tests/harness/suite.sh NAME COMMAND [ARG...]
#       Runs COMMAND (its output streams through), then records
#           NAME <tab> PASSED <tab> FAILED <tab> SECONDS
#       in $COROTLS_CHECK_RESULTS (default target/check/results.tsv), prints
#           == suite NAME: N passed, M failed (S s)
#       and exits non-zero when M > 0.
#   c_tests/harness/suite.sh --record NAME PASSED FAILED SECONDS
#       Only the record and that line (for run.sh, which counts itself).
#
# Counting: PASSED and FAILED add up every summary line COMMAND prints,
# "N passed, M failed" (alone, or after a "label: "), and cargo test's
# "test result: ... N passed; M failed".  A command that prints none counts
# as one check.  A command that exits non-zero without reporting a failure
# (a crash, a missing tool, a build error) counts one failure more: a
# suite never passes by not running.  c_tests/harness/summary.sh adds the
# records up at the end of `make check`.
set -euo pipefail

results=${COROTLS_CHECK_RESULTS:-target/check/results.tsv}

record() { # NAME PASSED FAILED SECONDS
    mkdir -p "$(dirname "$results")"
    printf '%s\t%d\t%d\t%d\n' "$1" "$2" "$3" "$4" >>"$results"
    echo "== suite $1: $2 passed, $3 failed ($4 s)"
}

if [ "${1:-}" = --record ]; then
    [ $# -eq 5 ] || { echo "usage: $0 --record NAME PASSED FAILED SECONDS" >&2; exit 2; }
    record "$2" "$3" "$4" "$5"
    [ "$4" -eq 0 ]
    exit
fi
[ $# -ge 2 ] || { echo "usage: $0 NAME COMMAND [ARG...]" >&2; exit 2; }
name=$1
shift

log=$(mktemp)
trap 'rm -f "$log"' EXIT
start=$(date +%s)
set +e
"$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
seconds=$(($(date +%s) - start))

read -r passed failed lines < <(awk '
    /^([^=][^:]*: )?[0-9]+ passed, [0-9]+ failed$/ {
        n = split($0, w, " "); p += w[n - 3]; f += w[n - 1]; c++
    }
    /^test result: .* [0-9]+ passed; [0-9]+ failed;/ {
        for (i = 1; i <= NF; i++) {
            if ($(i + 1) == "passed;") p += $i
            if ($(i + 1) == "failed;") f += $i
        }
        c++
    }
    END { printf "%d %d %d\n", p, f, c }' "$log")

if [ "$lines" -eq 0 ]; then
    if [ "$rc" -eq 0 ]; then passed=1; else failed=1; fi
elif [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
    failed=1
fi
[ "$rc" -eq 0 ] || echo "== suite $name: $1 exited with status $rc"
record "$name" "$passed" "$failed" "$seconds"
[ "$failed" -eq 0 ]
