#!/usr/bin/env bash
# Run C test programs and add up their "N passed, M failed" lines.
#   c_tests/harness/run.sh [--valgrind | --asan] [--label NAME] [--suite NAME] PROGRAM...
# With --valgrind each program runs under $VALGRIND (set by the Makefile),
# with COROTLS_TEST_QUICK=1 (smaller transfers) and a longer watchdog.
# With --asan the programs were built with sanitizers (make check-asan):
# quick and with the longer watchdog too, but no wrapper.
# A program that exits non-zero, or prints no summary line, without
# reporting a failure (a crash, a missing binary) counts one failure.
# With --suite the total is recorded for make check's summary
# (c_tests/harness/suite.sh --record), with the time taken.
# Exits non-zero if any program fails, crashes, or reports a failure.
set -euo pipefail
here=$(dirname "$0")
valgrind=0
mode=""
label="C tests"
suite=""
while [ $# -gt 0 ]; do
    case "$1" in
        --valgrind) valgrind=1; shift ;;
        --asan) valgrind=1; VALGRIND=env; mode=" under ASan+UBSan+LSan"; shift ;;
        --label) label="$2"; shift 2 ;;
        --suite) suite="$2"; shift 2 ;;
        *) break ;;
    esac
done
export COROTLS_CERTDIR=${COROTLS_CERTDIR:-target/certs} COROTLS_PEERDIR=${COROTLS_PEERDIR:-c_tests/peers}
read -r -a valgrind_cmd <<<"${VALGRIND:-valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite -q}"
start=$(date +%s)
total_pass=0 total_fail=0 status=0
for prog in "$@"; do
    log=$(mktemp)
    rc=0
    if [ "$valgrind" = 1 ]; then
        COROTLS_TEST_QUICK=1 HARNESS_TEST_TIMEOUT=${HARNESS_TEST_TIMEOUT:-600} \
            "${valgrind_cmd[@]}" "$prog" >"$log" 2>&1 || rc=$?
    else
        "$prog" >"$log" 2>&1 || rc=$?
    fi
    summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1 || true)
    pass=0 fail=0
    if [ -n "$summary" ]; then
        pass=${summary%% passed*}
        fail=${summary#*, }
        fail=${fail%% failed}
    fi
    if [ "$rc" -ne 0 ] || [ -z "$summary" ]; then
        cat "$log"
        echo "== $prog: exit status $rc${summary:+ ($summary)}"
        status=1
        [ "$fail" -gt 0 ] || fail=1
    else
        grep -E '^(FAIL|#)' "$log" | grep -v '^# test_\|^# [a-z_0-9]*$' | head -50 || true
        echo "== $prog: $summary"
    fi
    total_pass=$((total_pass + pass))
    total_fail=$((total_fail + fail))
    rm -f "$log"
done
[ "$total_fail" -eq 0 ] || status=1
[ "$valgrind" = 1 ] && [ -z "$mode" ] && mode=" under valgrind"
echo "$label$mode: $total_pass passed, $total_fail failed"
if [ -n "$suite" ]; then
    "$here/suite.sh" --record "$suite" "$total_pass" "$total_fail" "$(($(date +%s) - start))" || true
fi
exit "$status"
