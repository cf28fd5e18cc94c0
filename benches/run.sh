#!/usr/bin/env bash
# benches/run.sh: the whole benchmark (make bench; QUICK=1 for the short one).
#
#   benches/run.sh BINDIR CERTDIR SILLY_SHIM_DIR [quick|full|smoke]
#
# Writes target/bench/summary.tsv (header below; ratio > 1 is better:
# corotls/baseline for rates, baseline/corotls for costs) from the rows of
# this run (target/bench/own/*.tsv) followed by every row other benchmark
# programs left in target/bench/rows/*.tsv (same header), and prints it as
# a table with the goals of issue 10.  Instruction counts come from
# callgrind (exact); the rest from benches/wall, memory and c10k.
set -euo pipefail
bin=$1 certdir=$2 shim=$3 mode=${4:-full}
out=target/bench
own=$out/own
mkdir -p "$own" "$out/rows"
rm -f "$own"/*.tsv
header=$'metric\tunit\tcorotls\tbaseline\tbaseline_name\tratio'

case $mode in
smoke) n_echo=20 n_bulk=4 n_hs=1 flag=--smoke ;;
quick) n_echo=150 n_bulk=15 n_hs=1 flag=--quick ;;
*) n_echo=3000 n_bulk=300 n_hs=10 flag= ;;
esac

# ---------------------------------------------------------------- callgrind
# ir NAME N CMD...: instructions per unit (Ir counted around the measured
# part only, divided by N) into $own/ir.NAME; without valgrind, the program
# runs uncounted (it must still work) and the count is n/a.
ir() {
    local name=$1 n=$2
    shift 2
    if command -v valgrind >/dev/null 2>&1 && [ "$mode" != smoke ]; then
        local cg=$own/cg.$name
        valgrind --tool=callgrind --collect-atstart=no --callgrind-out-file="$cg" "$@" >/dev/null 2>"$cg.log" ||
            { cat "$cg.log" >&2; echo "bench: $name failed" >&2; return 1; }
        awk -v n="$n" '/^summary:/ { printf "%.0f\n", $2 / n }' "$cg" >"$own/ir.$name"
    else
        "$@" >/dev/null
        echo n/a >"$own/ir.$name"
    fi
}

echo "instruction counts (callgrind) ..."
pids=()
for w in echo bulk handshake; do
    case $w in echo) n=$n_echo ;; bulk) n=$n_bulk ;; *) n=$n_hs ;; esac
    ir "openssl.$w" "$n" "$bin/icount" openssl "$w" "$n" "$certdir" & pids+=($!)
    ir "conn.$w" "$n" "$bin/icount" conn "$w" "$n" "$certdir" & pids+=($!)
    wait "${pids[@]}"; pids=()
    ir "melon_ref.$w" "$n" "$bin/melon_echo_ref" "$w" "$n" "$certdir" & pids+=($!)
    ir "melon.$w" "$n" "$bin/melon_echo_face" "$w" "$n" "$certdir" & pids+=($!)
    wait "${pids[@]}"; pids=()
    ir "silly_ref.$w" "$n" "$bin/silly_echo" "$bin/silly_ref" "$w" "$n" "$certdir" & pids+=($!)
    ir "silly.$w" "$n" "$bin/silly_echo" "$shim" "$w" "$n" "$certdir" & pids+=($!)
    wait "${pids[@]}"; pids=()
done

cost_row() { # METRIC UNIT OURS BASE BASE_NAME
    awk -v m="$1" -v u="$2" -v a="$3" -v b="$4" -v bn="$5" 'BEGIN {
        r = (a == "n/a" || b == "n/a" || a + 0 == 0) ? "n/a" : sprintf("%.3f", b / a)
        printf "%s\t%s\t%s\t%s\t%s\t%s\n", m, u, a, b, bn, r }'
}
{
    for w in echo bulk handshake; do
        case $w in
        echo) metric=echo64_instructions unit=Ir/round-trip ;;
        bulk) metric=bulk16k_instructions unit=Ir/record ;;
        *) metric=handshake_instructions unit=Ir/handshake ;;
        esac
        cost_row $metric $unit "$(cat "$own/ir.conn.$w")" "$(cat "$own/ir.openssl.$w")" openssl_c
        cost_row $metric $unit "$(cat "$own/ir.melon.$w")" "$(cat "$own/ir.melon_ref.$w")" melon_ref
        cost_row $metric $unit "$(cat "$own/ir.silly.$w")" "$(cat "$own/ir.silly_ref.$w")" silly_ref
    done
} >"$own/1-instructions.tsv"

# ----------------------------------------------------- wall clock, memory
echo "wall-clock rates ..."
"$bin/wall" $flag --certdir "$certdir" --tsv "$own/2-wall.tsv" >"$own/wall.log"
echo "memory ..."
"$bin/memory" $flag --certdir "$certdir" --tsv "$own/3-memory.tsv" >"$own/memory.log"
echo "c10k ..."
"$bin/c10k" $flag --certdir "$certdir" --tsv "$own/4-c10k.tsv" >"$own/c10k.log"

# The AES-128-GCM ceiling (16 KiB blocks, one core) and what plain TCP does.
ceiling=n/a
if [ "$mode" != smoke ] && command -v openssl >/dev/null 2>&1; then
    ceiling=$(openssl speed -evp aes-128-gcm -bytes 16384 -seconds "$([ "$mode" = full ] && echo 3 || echo 1)" 2>/dev/null |
        awk '/^(aes-128-gcm|AES-128-GCM)/ { v = $NF; sub(/k$/, "", v); printf "%.0f", v * 1000 / 1048576 }')
fi
echo "${ceiling:-n/a}" >"$out/aes128gcm_ceiling_mibps.txt"

# ----------------------------------------------------------------- summary
{
    echo "$header"
    cat "$own"/*.tsv
    # Rows other benchmark programs left (resumption, sendfile...).
    for f in "$out"/rows/*.tsv; do
        [ -f "$f" ] && grep -v '^metric	' "$f" || true
    done
} >"$out/summary.tsv.new"
if ! grep -q '^resumed_handshake_rps	' "$out/summary.tsv.new"; then
    printf 'resumed_handshake_rps\thandshakes/s\tn/a\tn/a\topenssl_c\tn/a\n' >>"$out/summary.tsv.new"
fi
mv "$out/summary.tsv.new" "$out/summary.tsv"

# The goals of issue 10, as minimum ratios (or maximum absolute values).
goal() {
    case "$1/$2" in
    echo64_instructions/openssl_c) echo ">=1.053" ;;      # <= 0.95x raw OpenSSL
    bulk16k_instructions/openssl_c) echo ">=1.000" ;;
    *_instructions/melon_ref | *_instructions/silly_ref) echo ">=1.111" ;; # <= 0.9x
    echo64_rps/openssl_c | bulk_mibps/openssl_c | handshake_rps*/openssl_c) echo ">=1.000" ;;
    loop_idle_bytes/*) echo "abs<=16384" ;;
    loop_halfopen_bytes/*) echo "abs<=8192" ;;
    rss_after_close_pct/*) echo "abs<=110" ;;
    *) echo "-" ;;
    esac
}
echo
echo "corotls $mode benchmark ($(nproc) cores; AES-128-GCM ceiling, openssl speed, 16 KiB: ${ceiling:-n/a} MiB/s)"
printf '%-24s %-15s %12s %12s %-10s %7s  %-11s %s\n' metric unit corotls baseline baseline ratio goal met
tail -n +2 "$out/summary.tsv" | while IFS=$'\t' read -r m u a b bn r; do
    g=$(goal "$m" "$bn") met=""
    case $g in
    ">="*) [ "$r" != n/a ] && met=$(awk -v r="$r" -v g="${g#>=}" 'BEGIN { print (r >= g) ? "yes" : "NO" }') ;;
    "abs<="*) [ "$a" != n/a ] && met=$(awk -v a="$a" -v g="${g#abs<=}" 'BEGIN { print (a <= g) ? "yes" : "NO" }') ;;
    esac
    printf '%-24s %-15s %12s %12s %-10s %7s  %-11s %s\n' "$m" "$u" "$a" "$b" "$bn" "$r" "$g" "$met"
done
echo
echo "written: $out/summary.tsv (details: $own/*.log)"
