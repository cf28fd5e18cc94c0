# shellcheck shell=bash
# c_tests/harness/pki.sh -- the helpers every certificate script of the C
# tests uses (c_tests/harness/certs.sh, c_tests/silly/certs.sh); sourced,
# not run.  Only the openssl CLI (OpenSSL 3.0+).
#
#   pki_begin OUTDIR    exit 0 at once when OUTDIR/.done is newer than the
#                       calling script and this file; else take OUTDIR's lock
#                       (concurrent runs do not interleave), make the work
#                       directory $T (removed on exit) and the log $LOG
#   run CMD...          run quietly; on failure show the command and its
#                       output and exit 1
#   fail MESSAGE...     print "<script>: MESSAGE" and exit 1
#   rsa_key NAME [BITS] $T/NAME.key, RSA (2048 bits), PKCS#8
#   ec_key NAME         $T/NAME.key, ECDSA P-256, PKCS#8
#   pki_publish FILE... move $T/FILE... into OUTDIR, then touch OUTDIR/.done
#
# The scripts are silent on success.  They set OPENSSL_CONF to a file of
# their own, so the system's openssl.cnf plays no part.

PKI_SELF=${BASH_SOURCE[0]}
PKI_NAME=$(basename "$0")

fail() {
    echo "$PKI_NAME: $*" >&2
    exit 1
}

run() {
    if ! "$@" >"$LOG" 2>&1; then
        echo "$PKI_NAME: command failed: $*" >&2
        cat "$LOG" >&2
        exit 1
    fi
}

pki_fresh() {
    [ -f "$OUTDIR/.done" ] && [ "$OUTDIR/.done" -nt "$0" ] && [ "$OUTDIR/.done" -nt "$PKI_SELF" ]
}

pki_begin() {
    if [ $# -ne 1 ] || [ -z "$1" ]; then
        echo "usage: $0 OUTDIR" >&2
        exit 2
    fi
    OUTDIR=$1
    if pki_fresh; then
        exit 0
    fi
    command -v openssl >/dev/null 2>&1 || fail "openssl not found"
    mkdir -p "$OUTDIR"
    # Concurrent runs (parallel make, several test drivers) must not
    # interleave their files: serialize on a lock, then look at the stamp
    # again.
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$OUTDIR/.lock"
        flock 9
        if pki_fresh; then
            exit 0
        fi
    fi
    T=$(mktemp -d "$OUTDIR/.tmp.XXXXXX")
    trap 'rm -rf "$T"' EXIT
    trap 'exit 1' HUP INT TERM
    LOG=$T/log
}

rsa_key() {
    run openssl genpkey -algorithm RSA -pkeyopt "rsa_keygen_bits:${2:-2048}" -out "$T/$1.key"
}

ec_key() {
    run openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/$1.key"
}

pki_publish() {
    local f
    for f in "$@"; do
        mv -f "$T/$f" "$OUTDIR/$f"
    done
    touch "$OUTDIR/.done"
}
