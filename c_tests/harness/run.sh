#!/usr/bin/env bash
# Run C test programs and add up their "N passed, M failed" lines.
#   c_tests/harness/run.sh [--valgrind] [--label NAME] PROGRAM...
# With --valgrind each program runs under $VALGRIND (set by the Makefile),
# with COROTLS_TEST_QUICK=1 (smaller transfers) and a longer watchdog.
# Exits non-zero if any program fails, crashes, or reports a failure.
set -u
valgrind=0
label="C tests"
while [ $# -gt 0 ]; do
    case "$1" in
        --valgrind) valgrind=1; shift ;;
        --label) label="$2"; shift 2 ;;
        *) break ;;
    esac
done
export COROTLS_CERTDIR=${COROTLS_CERTDIR:-target/certs} COROTLS_PEERDIR=${COROTLS_PEERDIR:-c_tests/peers}
total_pass=0 total_fail=0 status=0
for prog in "$@"; do
    log=$(mktemp)
    if [ $valgrind = 1 ]; then
        COROTLS_TEST_QUICK=1 HARNESS_TEST_TIMEOUT=${HARNESS_TEST_TIMEOUT:-600} \
            ${VALGRIND:-valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite -q} \
            "$prog" > "$log" 2>&1
    else
        "$prog" > "$log" 2>&1
    fi
    rc=$?
    summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
    if [ $rc -ne 0 ] || [ -z "$summary" ]; then
        cat "$log"
        echo "== $prog: exit status $rc${summary:+ ($summary)}"
        status=1
    else
        grep -E '^(FAIL|#)' "$log" | grep -v '^# test_\|^# [a-z_0-9]*$' | head -50
        echo "== $prog: $summary"
    fi
    if [ -n "$summary" ]; then
        total_pass=$((total_pass + ${summary%% passed*}))
        f=${summary#*, }; total_fail=$((total_fail + ${f%% failed}))
    fi
    rm -f "$log"
done
[ $total_fail -eq 0 ] || status=1
mode=""; [ $valgrind = 1 ] && mode=" under valgrind"
echo "$label$mode: $total_pass passed, $total_fail failed"
exit $status
