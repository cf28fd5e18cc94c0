#!/usr/bin/env bash
# The end of `make check`: the table of suites and the total.
#   c_tests/harness/summary.sh SUITE...
# Reads the records that c_tests/harness/suite.sh and run.sh appended to
# $COROTLS_CHECK_RESULTS (default target/check/results.tsv); SUITE... are
# the suites make check runs (the fragments' SUITES).  A suite without a
# record did not run (an earlier failure stopped make check, or it crashed
# before counting) and counts as one failure.  Prints one row per suite,
# then "make check: N passed, M failed"; exits non-zero when M > 0.
set -euo pipefail
results=${COROTLS_CHECK_RESULTS:-target/check/results.tsv}
started=$(dirname "$results")/started

touch "$results"
total_pass=0 total_fail=0 total_secs=0
echo
echo "make check summary ($results)"
printf '  %-24s %8s %8s %8s\n' suite passed failed seconds
while IFS=$'\t' read -r name pass fail secs; do
    [ -n "$name" ] || continue
    mark=""
    [ "$fail" -eq 0 ] || mark="  <- FAILED"
    printf '  %-24s %8d %8d %8d%s\n' "$name" "$pass" "$fail" "$secs" "$mark"
    total_pass=$((total_pass + pass))
    total_fail=$((total_fail + fail))
    total_secs=$((total_secs + secs))
done <"$results"
for suite in "$@"; do
    if ! awk -F '\t' -v s="$suite" '$1 == s { found = 1 } END { exit !found }' "$results"; then
        printf '  %-24s %8s %8d %8s  <- did not run\n' "$suite" - 1 -
        total_fail=$((total_fail + 1))
    fi
done
wall=""
if [ -f "$started" ]; then
    wall=", $(($(date +%s) - $(cat "$started"))) s in all (builds included)"
fi
echo "  $# suites expected; their tests took ${total_secs} s$wall"
echo "make check: $total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
