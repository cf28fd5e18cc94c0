#!/usr/bin/env bash
# Instructions per 64-byte echo round trip (client -> server -> client),
# through corotls_session_* and corotls_conn_*, counted by callgrind:
# (Ir of 2000 rounds - Ir of 1000 rounds) / 1000, so set-up cancels out.
#   benches/callgrind_echo.sh ECHO_COUNT_PROGRAM LIBDIR [CERTDIR]
# LIBDIR holds the libcorotls.so to measure (compare two builds).
set -euo pipefail
prog=$1 libdir=$2 certdir=${3:-target/certs}
ir() { # MODE ROUNDS
    local out
    out=$(mktemp)
    LD_LIBRARY_PATH=$libdir valgrind --tool=callgrind --callgrind-out-file="$out" "$prog" "$1" "$2" "$certdir" 2>/dev/null
    local n
    n=$(awk '/^summary:/ { print $2 }' "$out")
    rm -f "$out"
    [ -n "$n" ] || { echo "callgrind_echo: no count for $1 $2 (is $libdir/libcorotls.so there?)" >&2; exit 1; }
    echo "$n"
}
for mode in session conn; do
    a=$(ir "$mode" 1000)
    b=$(ir "$mode" 2000)
    echo "callgrind: $mode: $(( (b - a) / 1000 )) instructions per 64-byte echo round trip ($libdir)"
done
