#!/usr/bin/env bash
# c_tests/silly/certs.sh OUTDIR -- certificates shaped like silly's own test
# fixtures (test/testaux.lua), for the silly face tests.  None of them is in
# the common test PKI (c_tests/harness/certs.sh, which the silly tests use
# too): silly's are self-signed without subjectAltName, or weak.  Same
# helpers (c_tests/harness/pki.sh): openssl CLI only, silent on success,
# idempotent (OUTDIR/.done newer than this script and pki.sh).
#
#   a.crt / a.key        CN=localhost, self-signed, no subjectAltName, PKCS#8
#   b.crt / b.key        CN=localhost2, self-signed, no subjectAltName
#   default.crt / .key   CN=127.0.0.1, SAN DNS:127.0.0.1 (an IP literal as a
#                        DNS name, like silly's CERT_DEFAULT), PKCS#1 key
#   weak.crt / weak.key  CN=weak, RSA-512: refused by OpenSSL's security level
# (A P-256 key of another type than a.crt's: the common PKI's ec.key.)
set -euo pipefail
# shellcheck source=c_tests/harness/pki.sh
. "$(dirname "$0")/../harness/pki.sh"
pki_begin "$@"

# A configuration of our own, so the system openssl.cnf plays no part.
printf '[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = x\n' >"$T/cnf"
OPENSSL_CONF=$T/cnf
export OPENSSL_CONF

# selfsigned NAME BITS SUBJECT [extra openssl-req args...]
selfsigned() {
    local name=$1 bits=$2 subj=$3
    shift 3
    rsa_key "$name" "$bits"
    run openssl req -x509 -new -key "$T/$name.key" -subj "$subj" -days 3650 \
        -sha256 -out "$T/$name.crt" "$@"
}

selfsigned a 2048 /CN=localhost
selfsigned b 2048 /CN=localhost2
selfsigned default 2048 /CN=127.0.0.1 -addext subjectAltName=DNS:127.0.0.1
run openssl pkey -in "$T/default.key" -traditional -out "$T/default.pkcs1.key"
mv "$T/default.pkcs1.key" "$T/default.key"
selfsigned weak 512 /CN=weak

grep -q '^-----BEGIN RSA PRIVATE KEY-----$' "$T/default.key" || fail "default.key is not PKCS#1"
case "$(openssl x509 -in "$T/a.crt" -noout -ext subjectAltName 2>/dev/null || true)" in
    *DNS*) fail "a.crt must have no subjectAltName" ;;
esac

pki_publish a.crt a.key b.crt b.key default.crt default.key weak.crt weak.key
