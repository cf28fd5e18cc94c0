#!/bin/sh
# c_tests/silly/certs.sh OUTDIR -- certificates shaped like silly's own test
# fixtures (test/testaux.lua), for the silly face tests.  Uses the openssl
# CLI only; silent on success; idempotent (OUTDIR/.done newer than this
# script).
#
#   a.crt / a.key        CN=localhost, self-signed, no subjectAltName, PKCS#8
#   b.crt / b.key        CN=localhost2, self-signed, no subjectAltName
#   default.crt / .key   CN=127.0.0.1, SAN DNS:127.0.0.1 (an IP literal as a
#                        DNS name, like silly's CERT_DEFAULT), PKCS#1 key
#   weak.crt / weak.key  CN=weak, RSA-512: refused by OpenSSL's security level
#   ec.key               a P-256 key (matches no certificate here)
set -eu

if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
OUT=$1
if [ -f "$OUT/.done" ] && [ "$OUT/.done" -nt "$0" ]; then
    exit 0
fi
mkdir -p "$OUT"
T=$(mktemp -d "$OUT/.tmp.XXXXXX")
trap 'rm -rf "$T"' EXIT
LOG=$T/log
# A configuration of our own, so the system openssl.cnf plays no part.
printf '[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = x\n' >"$T/cnf"
OPENSSL_CONF=$T/cnf
export OPENSSL_CONF

run() {
    if ! "$@" >"$LOG" 2>&1; then
        echo "certs.sh: command failed: $*" >&2
        cat "$LOG" >&2
        exit 1
    fi
}

# selfsigned NAME BITS SUBJECT [extra openssl-req args...]
selfsigned() {
    _n=$1 _bits=$2 _subj=$3
    shift 3
    run openssl genpkey -algorithm RSA -pkeyopt "rsa_keygen_bits:$_bits" -out "$T/$_n.key"
    run openssl req -x509 -new -key "$T/$_n.key" -subj "$_subj" -days 3650 \
        -sha256 -out "$T/$_n.crt" "$@"
}

selfsigned a 2048 /CN=localhost
selfsigned b 2048 /CN=localhost2
selfsigned default 2048 /CN=127.0.0.1 -addext subjectAltName=DNS:127.0.0.1
run openssl pkey -in "$T/default.key" -traditional -out "$T/default.pkcs1.key"
mv "$T/default.pkcs1.key" "$T/default.key"
selfsigned weak 512 /CN=weak
run openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/ec.key"

grep -q '^-----BEGIN RSA PRIVATE KEY-----$' "$T/default.key" ||
    { echo "certs.sh: default.key is not PKCS#1" >&2; exit 1; }
if openssl x509 -in "$T/a.crt" -noout -ext subjectAltName 2>/dev/null | grep -q DNS; then
    echo "certs.sh: a.crt must have no subjectAltName" >&2
    exit 1
fi

for f in a.crt a.key b.crt b.key default.crt default.key weak.crt weak.key ec.key; do
    mv -f "$T/$f" "$OUT/$f"
done
touch "$OUT/.done"
