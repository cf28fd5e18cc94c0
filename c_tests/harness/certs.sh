#!/usr/bin/env bash
# certs.sh OUTDIR -- generate the test PKI used by every corotls C test (and
# the Rust tests: src/testutil.rs).
#
# Uses only the openssl CLI (OpenSSL 3.0+), through the helpers of pki.sh.
# Idempotent: does nothing when OUTDIR/.done exists and is newer than this
# script and pki.sh.  Silent on success; on failure prints the failing
# command and its output and exits non-zero.
#
# Every certificate except expired.crt has notBefore = now - 1 day (so it is
# valid now even with small clock differences) and a validity of ~10 years.
# All keys are RSA-2048 (PKCS#8, unencrypted) unless noted.
#
#   ca.crt / ca.key                root CA "corotls test CA"
#   leaf.crt / leaf.key            CN=localhost, SAN DNS:localhost, IP:127.0.0.1,
#                                  IP:::1, EKU serverAuth+clientAuth, signed by ca
#   leaf.pkcs1.key                 leaf key as PKCS#1 ("BEGIN RSA PRIVATE KEY")
#   leaf.enc.key                   leaf key as encrypted PKCS#8, password "secret"
#   expired.crt / expired.key      CN=localhost, SAN DNS:localhost, IP:127.0.0.1,
#                                  signed by ca, valid 2020-01-01..2020-01-02
#   wronghost.crt / .key           CN=wrong.example, SAN DNS:wrong.example, by ca
#   selfsigned.crt / .key          CN=localhost, SAN DNS:localhost, IP:127.0.0.1,
#                                  self-signed (not signed by ca)
#   inter.crt / inter.key          intermediate CA (CA:TRUE, pathlen:0) signed by ca
#   chained.crt / chained.key      CN=localhost, SAN DNS:localhost, IP:127.0.0.1,
#                                  signed by inter
#   chained-full.crt               chained.crt followed by inter.crt
#   client.crt / client.key        CN=corotls-client, EKU clientAuth, signed by ca
#   alt1.crt / alt1.key            CN=alt1.example, SAN DNS:alt1.example,
#                                  DNS:*.wild.example, signed by ca
#   alt2.crt / alt2.key            CN=alt2.example, no SAN (CN fallback), by ca
#   garbage.pem                    text that is not PEM
#   empty.pem                      empty file
#   other.key                      unrelated RSA-2048 key (mismatched-key tests)
#   ec.crt / ec.key                as leaf, with an ECDSA P-256 key
#   .done                          stamp, touched last
set -euo pipefail
# shellcheck source=c_tests/harness/pki.sh
. "$(dirname "$0")/pki.sh"
pki_begin "$@"

# notBefore for every normal certificate: one day ago (GNU date, then BSD date).
START=$(date -u -d '1 day ago' +%Y%m%d%H%M%SZ 2>/dev/null ||
        date -u -v-1d +%Y%m%d%H%M%SZ 2>/dev/null) ||
    fail "cannot compute yesterday's date"
DAYS=3650

mkdir "$T/newcerts"
: >"$T/index.txt"

CNF=$T/openssl.cnf
cat >"$CNF" <<CNF_EOF
[ ca ]
default_ca = testca

[ testca ]
dir             = $T
database        = $T/index.txt
new_certs_dir   = $T/newcerts
serial          = $T/serial
default_md      = sha256
default_days    = $DAYS
policy          = policy_any
unique_subject  = no
email_in_dn     = no
copy_extensions = none

[ policy_any ]
commonName       = supplied
organizationName = optional

[ req ]
distinguished_name = req_dn
prompt             = no

[ req_dn ]
CN = placeholder

[ v3_ca ]
basicConstraints       = critical, CA:TRUE
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always

[ v3_inter ]
basicConstraints       = critical, CA:TRUE, pathlen:0
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always

[ v3_leaf ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature, keyEncipherment
extendedKeyUsage       = serverAuth, clientAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid
subjectAltName         = DNS:localhost, IP:127.0.0.1, IP:::1

[ v3_local ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature, keyEncipherment
extendedKeyUsage       = serverAuth, clientAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid
subjectAltName         = DNS:localhost, IP:127.0.0.1

[ v3_selfsigned ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature, keyEncipherment
extendedKeyUsage       = serverAuth, clientAuth
subjectKeyIdentifier   = hash
subjectAltName         = DNS:localhost, IP:127.0.0.1

[ v3_wronghost ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature, keyEncipherment
extendedKeyUsage       = serverAuth, clientAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid
subjectAltName         = DNS:wrong.example

[ v3_client ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature, keyEncipherment
extendedKeyUsage       = clientAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid

[ v3_alt1 ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature, keyEncipherment
extendedKeyUsage       = serverAuth, clientAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid
subjectAltName         = DNS:alt1.example, DNS:*.wild.example

[ v3_alt2 ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature, keyEncipherment
extendedKeyUsage       = serverAuth, clientAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid
CNF_EOF

# Keep the user's/system openssl.cnf out of every command.
OPENSSL_CONF=$CNF
export OPENSSL_CONF

genkey() { # NAME
    rsa_key "$1"
}

csr() { # NAME SUBJECT
    run openssl req -new -config "$CNF" -key "$T/$1.key" -subj "$2" -out "$T/$1.csr"
}

# sign NAME ISSUER EXTSECTION [extra openssl-ca args...]
sign() {
    _name=$1 _issuer=$2 _ext=$3
    shift 3
    if [ "$_issuer" = self ]; then
        set -- -selfsign -keyfile "$T/$_name.key" "$@"
    else
        set -- -cert "$T/$_issuer.crt" -keyfile "$T/$_issuer.key" "$@"
    fi
    run openssl ca -batch -notext -config "$CNF" -rand_serial -preserveDN \
        -extensions "$_ext" -in "$T/$_name.csr" -out "$T/$_name.crt" "$@"
}

# new NAME SUBJECT ISSUER EXTSECTION: key + CSR + certificate, valid now.
new() {
    genkey "$1"
    csr "$1" "$2"
    sign "$1" "$3" "$4" -startdate "$START" -days "$DAYS"
}

new ca         "/CN=corotls test CA"              self  v3_ca
new inter      "/CN=corotls test intermediate CA" ca    v3_inter
new leaf       "/CN=localhost"                    ca    v3_leaf
new wronghost  "/CN=wrong.example"                ca    v3_wronghost
new selfsigned "/CN=localhost"                    self  v3_selfsigned
new chained    "/CN=localhost"                    inter v3_local
new client     "/CN=corotls-client"               ca    v3_client
new alt1       "/CN=alt1.example"                 ca    v3_alt1
new alt2       "/CN=alt2.example"                 ca    v3_alt2

genkey expired
csr expired "/CN=localhost"
sign expired ca v3_local -startdate 20200101000000Z -enddate 20200102000000Z

genkey other

# ECDSA P-256 leaf (same names as leaf).
ec_key ec
csr ec "/CN=localhost"
sign ec ca v3_leaf -startdate "$START" -days "$DAYS"

cat "$T/chained.crt" "$T/inter.crt" >"$T/chained-full.crt"
run openssl pkey -in "$T/leaf.key" -traditional -out "$T/leaf.pkcs1.key"
run openssl pkcs8 -topk8 -v2 aes-256-cbc -in "$T/leaf.key" \
    -passout pass:secret -out "$T/leaf.enc.key"
printf 'this is not a PEM file\nno BEGIN line here, just words\n' >"$T/garbage.pem"
: >"$T/empty.pem"

# ---------------------------------------------------------------- checks
CA=$T/ca.crt

# verify_ok CERT [extra openssl-verify args...]
verify_ok() {
    _c=$1
    shift
    run openssl verify -CAfile "$CA" "$@" "$_c"
}

# verify_fails CERT EXPECTED-TEXT [extra args...]
verify_fails() {
    _c=$1 _want=$2
    shift 2
    if openssl verify -CAfile "$CA" "$@" "$_c" >"$LOG" 2>&1; then
        fail "$(basename "$_c") unexpectedly verifies"
    fi
    grep -q "$_want" "$LOG" ||
        { cat "$LOG" >&2; fail "$(basename "$_c"): expected '$_want'"; }
}

for c in ca inter leaf wronghost client alt1 alt2; do
    verify_ok "$T/$c.crt"
done
verify_ok "$T/leaf.crt" -purpose sslserver -verify_hostname localhost
verify_ok "$T/leaf.crt" -purpose sslclient -verify_ip 127.0.0.1
verify_ok "$T/leaf.crt" -verify_ip ::1
verify_ok "$T/client.crt" -purpose sslclient
verify_ok "$T/alt1.crt" -verify_hostname foo.wild.example
verify_ok "$T/chained.crt" -untrusted "$T/inter.crt" -verify_hostname localhost
verify_ok "$T/chained.crt" -untrusted "$T/chained-full.crt"
verify_fails "$T/chained.crt" "unable to get local issuer certificate"
verify_fails "$T/expired.crt" "certificate has expired"
verify_fails "$T/selfsigned.crt" "self-signed certificate"
verify_fails "$T/wronghost.crt" "hostname mismatch" -verify_hostname localhost
run openssl verify -CAfile "$T/selfsigned.crt" "$T/selfsigned.crt"

# every key belongs to its certificate
pub_of_cert() { openssl x509 -in "$1" -noout -pubkey 2>"$LOG"; }
pub_of_key() { openssl pkey -in "$1" -pubout -passin pass:secret 2>"$LOG"; }
for c in ca inter leaf expired wronghost selfsigned chained client alt1 alt2; do
    [ "$(pub_of_cert "$T/$c.crt")" = "$(pub_of_key "$T/$c.key")" ] ||
        fail "$c.key does not match $c.crt"
done
LEAFPUB=$(pub_of_cert "$T/leaf.crt")
[ -n "$LEAFPUB" ] || fail "cannot read leaf public key"
[ "$(pub_of_key "$T/leaf.pkcs1.key")" = "$LEAFPUB" ] || fail "leaf.pkcs1.key mismatch"
[ "$(pub_of_key "$T/leaf.enc.key")" = "$LEAFPUB" ] || fail "leaf.enc.key mismatch"
[ "$(pub_of_key "$T/other.key")" != "$LEAFPUB" ] || fail "other.key equals leaf key"
grep -q '^-----BEGIN RSA PRIVATE KEY-----$' "$T/leaf.pkcs1.key" || fail "leaf.pkcs1.key is not PKCS#1"
grep -q '^-----BEGIN ENCRYPTED PRIVATE KEY-----$' "$T/leaf.enc.key" || fail "leaf.enc.key is not encrypted PKCS#8"
grep -q '^-----BEGIN PRIVATE KEY-----$' "$T/leaf.key" || fail "leaf.key is not PKCS#8"
if openssl pkey -in "$T/leaf.enc.key" -passin pass:wrong -noout >/dev/null 2>&1; then
    fail "leaf.enc.key opens with a wrong password"
fi
case "$(openssl x509 -in "$T/alt2.crt" -noout -ext subjectAltName 2>/dev/null || true)" in
    *DNS*) fail "alt2.crt must not have a subjectAltName" ;;
esac

# ---------------------------------------------------------------- publish
pki_publish ca.crt ca.key inter.crt inter.key leaf.crt leaf.key leaf.pkcs1.key \
    leaf.enc.key expired.crt expired.key wronghost.crt wronghost.key \
    selfsigned.crt selfsigned.key chained.crt chained.key chained-full.crt \
    client.crt client.key alt1.crt alt1.key alt2.crt alt2.key \
    garbage.pem empty.pem other.key ec.crt ec.key
