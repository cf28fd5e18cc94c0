#!/usr/bin/env bash
# scan_check.sh [SERVER] -- scan tls_echo_server with sslyze and testssl.sh.
#
# SERVER defaults to target/examples/tls_echo_server (build it first).
# Run from anywhere; works in the repository root.  Everything stays on
# 127.0.0.1.  Writes into target/scan/ (emptied first, kept afterwards for a
# look at the reports):
#   certs/          a throwaway CA and two server certificates that meet
#                   Mozilla intermediate's certificate rules: ECDSA P-256 and
#                   RSA-2048, signed with SHA-256, 90 days, SAN DNS:localhost
#                   and IP:127.0.0.1
#   NAME.server.*   each server's stdout and stderr
#   NAME.sslyze.*   sslyze's console output and --json_out report
#   rsa.testssl.*   testssl.sh's console output and --jsonfile report
#
# Checks, each one "ok - ..." or "FAIL - ..." line:
#   - each certificate verifies against the CA as a server certificate for
#     localhost and 127.0.0.1;
#   - for each certificate, tls_echo_server starts, and
#     `sslyze --mozilla_config=intermediate` finds it compliant (exit 0, and
#     its JSON report shows the server reached and every scan command run);
#   - testssl.sh against the RSA one: protocols, cipher categories, forward
#     secrecy, server cipher order, server defaults, every vulnerability
#     check and renegotiation; no finding LOW or worse (VULNERABLE, NOT ok,
#     potentially VULNERABLE, deprecated protocol or CBC offered) except
#     cert_revocation, which is about the test certificate
#     (c_tests/scan/findings.py has the rules).
# A missing sslyze or testssl is a failure.  Ends with
# "TLS scan: N passed, M failed"; exit status 1 if anything failed.
#
# Environment:
#   SSLYZE          sslyze to run (default: target/venv/bin/sslyze, else
#                   .venv/bin/sslyze, else sslyze on PATH)
#   TESTSSL         testssl.sh to run (default: testssl, else testssl.sh)
#   PYTHON          python3 for findings.py (default python3)
#   SCAN_DIR        output directory (default target/scan)
#   SCAN_TESTSSL_TIMEOUT   seconds before testssl is stopped (default 240)
#   For dry runs only (each is shown in the output when set):
#   SCAN_SERVER_ARGS        extra arguments for tls_echo_server, split on
#                           spaces (e.g. "--ciphers ECDHE-ECDSA-AES256-GCM-SHA384:...")
#   SCAN_SERVER_OPENSSL_CONF  OPENSSL_CONF for the servers only (an OpenSSL
#                           config whose system_default section sets Groups,
#                           Options = ServerPreference, ...)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

server=${1:-target/examples/tls_echo_server}
scan_dir=${SCAN_DIR:-target/scan}
python=${PYTHON:-python3}
testssl_timeout=${SCAN_TESTSSL_TIMEOUT:-240}
findings=$here/findings.py
started=$SECONDS

passed=0
failed=0
ok() { echo "ok - $*"; passed=$((passed + 1)); }
not_ok() { echo "FAIL - $*"; failed=$((failed + 1)); }
diag() { sed 's/^/# /'; }

# ------------------------------------------------------------ cleanup
pids=()
stop_servers() {
    local pid i
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || continue
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    pids=()
}
# run_tool OUT CMD...: run CMD with its output in OUT; returns its status.
# It runs in the background so that a signal to this script stops it at once
# (bash runs traps only after a foreground command ends).
tool_pid=""
run_tool() {
    local out=$1 rc=0
    shift
    "$@" >"$out" 2>&1 </dev/null &
    tool_pid=$!
    wait "$tool_pid" || rc=$?
    tool_pid=""
    return "$rc"
}
cleanup() {
    if [ -n "$tool_pid" ]; then
        # timeout(1) passes the signal on to the tool's whole process group.
        kill -TERM "$tool_pid" 2>/dev/null || true
        wait "$tool_pid" 2>/dev/null || true
    fi
    stop_servers
    rm -rf "$scan_dir/tmp" "$scan_dir/certs/ca.key" "$scan_dir/certs/ca.srl" \
        "$scan_dir/certs"/*.csr "$scan_dir/certs/openssl.cnf" "$scan_dir/certs/log"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

rm -rf "$scan_dir"
mkdir -p "$scan_dir/certs" "$scan_dir/tmp"
scan_tmp=$(cd "$scan_dir/tmp" && pwd)

# ------------------------------------------------------------ tools
if [ -n "${SSLYZE:-}" ]; then
    sslyze=$SSLYZE
elif [ -x target/venv/bin/sslyze ]; then
    sslyze=target/venv/bin/sslyze
elif [ -x .venv/bin/sslyze ]; then
    sslyze=.venv/bin/sslyze
else
    sslyze=$(command -v sslyze || true)
fi
if [ -z "$sslyze" ] || ! "$sslyze" --help >"$scan_dir/sslyze.help" 2>&1; then
    not_ok "sslyze not found${sslyze:+ (or it does not run: $sslyze)}: install it with" \
        "'make scan-venv' (a virtualenv in target/venv with c_tests/scan/requirements.txt;" \
        "Debian needs python3-venv), or point SSLYZE at one"
    sslyze=""
else
    grep -m1 -o 'SSLyze version [0-9][0-9.]*' "$scan_dir/sslyze.help" | diag || true
fi

if [ -n "${TESTSSL:-}" ]; then
    testssl=$TESTSSL
else
    testssl=$(command -v testssl || command -v testssl.sh || true)
fi
if [ -z "$testssl" ] || ! command -v "$testssl" >/dev/null; then
    not_ok "testssl.sh not found: install it with 'apt-get install testssl.sh'" \
        "(Debian's package, command testssl), or point TESTSSL at one"
    testssl=""
fi

if [ ! -x "$server" ]; then
    not_ok "$server is not built: make $server"
    server=""
fi

server_args=()
if [ -n "${SCAN_SERVER_ARGS:-}" ]; then
    read -r -a server_args <<<"$SCAN_SERVER_ARGS"
    echo "# dry run: servers get extra arguments: ${server_args[*]}"
fi
server_env=()
if [ -n "${SCAN_SERVER_OPENSSL_CONF:-}" ]; then
    server_env=(env "OPENSSL_CONF=$SCAN_SERVER_OPENSSL_CONF")
    echo "# dry run: servers run with OPENSSL_CONF=$SCAN_SERVER_OPENSSL_CONF"
fi

# ------------------------------------------------------------ certificates
certs=$scan_dir/certs
ca=$certs/ca.crt
cnf=$certs/openssl.cnf
cat >"$cnf" <<'EOF'
[ req ]
distinguished_name = req_dn
prompt             = no
[ req_dn ]
CN = placeholder
[ v3_ca ]
basicConstraints       = critical, CA:TRUE, pathlen:0
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash
[ v3_ecdsa ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = serverAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid
subjectAltName         = DNS:localhost, IP:127.0.0.1
[ v3_rsa ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature, keyEncipherment
extendedKeyUsage       = serverAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid
subjectAltName         = DNS:localhost, IP:127.0.0.1
EOF
# The user's or system's openssl.cnf stays out of certificate generation
# (it does apply to the servers: what they do under it is what is scanned).
ossl() { OPENSSL_CONF=$cnf openssl "$@"; }
certlog=$certs/log
gen_certs() {
    ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$certs/ca.key" &&
        ossl req -new -x509 -config "$cnf" -extensions v3_ca -key "$certs/ca.key" -sha256 \
            -days 90 -subj "/CN=corotls scan test CA" -out "$ca" &&
        ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$certs/ecdsa.key" &&
        ossl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$certs/rsa.key" || return 1
    local n
    for n in ecdsa rsa; do
        ossl req -new -config "$cnf" -key "$certs/$n.key" -subj "/CN=localhost" -out "$certs/$n.csr" &&
            ossl x509 -req -in "$certs/$n.csr" -CA "$ca" -CAkey "$certs/ca.key" -CAcreateserial \
                -CAserial "$certs/ca.srl" -sha256 -days 90 -extfile "$cnf" -extensions "v3_$n" \
                -out "$certs/$n.crt" || return 1
    done
}
certs_ok=0
if gen_certs >"$certlog" 2>&1; then
    certs_ok=1
    for n in ecdsa rsa; do
        if ossl verify -CAfile "$ca" -purpose sslserver -verify_hostname localhost \
            -verify_ip 127.0.0.1 "$certs/$n.crt" >"$certlog" 2>&1; then
            ok "$n certificate ($(ossl x509 -in "$certs/$n.crt" -noout -text |
                sed -n 's/^ *Public-Key: (\(.*\))$/\1/p'), 90 days, sha256) verifies for localhost and 127.0.0.1"
        else
            diag <"$certlog"
            not_ok "$n certificate does not verify against the test CA"
            certs_ok=0
        fi
    done
else
    diag <"$certlog"
    not_ok "cannot generate the test certificates"
fi

# ------------------------------------------------------------ servers
# start_server NAME: start tls_echo_server with NAME's certificate; sets port.
port=""
start_server() {
    local name=$1 out=$scan_dir/$1.server.out err=$scan_dir/$1.server.err line="" pid i
    port=""
    "${server_env[@]}" "$server" --listen 127.0.0.1:0 --cert "$certs/$name.crt" --key "$certs/$name.key" \
        "${server_args[@]}" >"$out" 2>"$err" </dev/null &
    pid=$!
    pids+=("$pid")
    for ((i = 0; i < 100; i++)); do
        line=$(grep -s -m1 '^listening ' "$out" || true)
        [ -z "$line" ] || break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    port=${line##*:}
    case "$port" in
        '' | *[!0-9]*)
            port=""
            diag <"$err"
            not_ok "$name: tls_echo_server did not print 'listening HOST:PORT'"
            return 1
            ;;
    esac
    ok "$name: tls_echo_server listening on 127.0.0.1:$port"
}

# run_sslyze NAME PORT
run_sslyze() {
    local name=$1 port=$2 json=$scan_dir/$1.sslyze.json log=$scan_dir/$1.sslyze.txt rc=0 frc=0 t=$SECONDS
    run_tool "$log" timeout -k 5 300 "$sslyze" --mozilla_config=intermediate --certinfo_ca_file "$ca" \
        --sni localhost --json_out "$json" "127.0.0.1:$port" || rc=$?
    "$python" "$findings" sslyze "$json" 127.0.0.1 "$port" >"$log.summary" 2>&1 || frc=$?
    if [ "$rc" -eq 0 ] && [ "$frc" -eq 0 ]; then
        ok "$name: sslyze --mozilla_config=intermediate: compliant ($((SECONDS - t)) s)"
        diag <"$log.summary"
        return 0
    fi
    # sslyze's own reasons: the "* criteria: description" lines of its
    # compliance section (or the end of its output when it got no further).
    if grep -q 'Not compliant\|ERROR - Scan did not run' "$log"; then
        sed -n '/COMPLIANCE AGAINST/,$p' "$log" | grep -E 'FAILED|ERROR|^ *\* ' | sed 's/^ *//' | diag
    else
        tail -n 15 "$log" | diag
    fi
    diag <"$log.summary"
    case "$rc" in
        0) not_ok "$name: sslyze did not complete the scan (report: $json)" ;;
        124 | 137) not_ok "$name: sslyze timed out" ;;
        1) not_ok "$name: sslyze --mozilla_config=intermediate: NOT compliant (see $log)" ;;
        *) not_ok "$name: sslyze failed with exit status $rc (see $log)" ;;
    esac
}

# run_testssl NAME PORT
run_testssl() {
    local name=$1 port=$2 json=$scan_dir/$1.testssl.json log=$scan_dir/$1.testssl.txt rc=0 frc=0 t=$SECONDS
    # Checks: protocols, cipher categories, forward secrecy (with groups),
    # server preference, server defaults (certificate), vulnerabilities
    # (renegotiation among them), each cipher.  No client simulation, no
    # HTTP header checks, no DNS; trust through our CA (--add-ca).
    # NO_ENGINE: testssl otherwise probes the local openssl for the GOST
    # engine and, where Debian's libengine-gost-openssl is not installed,
    # reports engine_problem WARN, a fact about the scanning host (GOST
    # suites are not in scope: the server offers none).
    run_tool "$log" env TMPDIR="$scan_tmp" NO_ENGINE=true timeout -k 10 "$testssl_timeout" "$testssl" \
        --quiet --color 0 --warnings off --nodns none --ip 127.0.0.1 \
        --connect-timeout 10 --openssl-timeout 10 --add-ca "$ca" --jsonfile "$json" \
        --protocols --std --pfs --server-preference --server-defaults --vulnerable --each-cipher \
        "localhost:$port" || rc=$?
    case "$rc" in
        124 | 137)
            not_ok "$name: testssl did not finish in $testssl_timeout s (SCAN_TESTSSL_TIMEOUT)"
            return 1
            ;;
        24[0-9] | 25[0-5])
            tail -n 15 "$log" | diag
            not_ok "$name: testssl failed with exit status $rc (see $log)"
            return 1
            ;;
    esac
    if [ ! -s "$json" ]; then
        tail -n 15 "$log" | diag
        not_ok "$name: testssl wrote no report (exit status $rc, see $log)"
        return 1
    fi
    "$python" "$findings" testssl "$json" >"$log.summary" 2>&1 || frc=$?
    diag <"$log.summary"
    if [ "$frc" -eq 0 ]; then
        ok "$name: testssl: every check ran, nothing VULNERABLE or NOT ok ($((SECONDS - t)) s)"
    else
        not_ok "$name: testssl: findings above (see $log)"
    fi
}

if [ -n "$server" ] && [ "$certs_ok" = 1 ]; then
    for name in ecdsa rsa; do
        start_server "$name" || continue
        if [ -n "$sslyze" ]; then
            run_sslyze "$name" "$port" || true
        fi
        if [ "$name" = rsa ] && [ -n "$testssl" ]; then
            run_testssl "$name" "$port" || true
        fi
        # Scanners send odd handshakes (the server logs each one it refuses
        # on stderr): it must still be there.
        if kill -0 "${pids[-1]}" 2>/dev/null; then
            ok "$name: tls_echo_server still running after the scans"
        else
            tail -n 15 "$scan_dir/$name.server.err" | diag
            not_ok "$name: tls_echo_server died during the scans"
        fi
    done
    stop_servers
else
    not_ok "servers not started (see above)"
fi

echo "# scan took $((SECONDS - started)) s; reports in $scan_dir/"
echo "TLS scan: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
