#!/usr/bin/env bash
# make demo: a throwaway certificate, the echo server on an ephemeral port,
# the client against it; prints the echoed line.
set -euo pipefail
bin=target/examples
tmp=$(mktemp -d)
server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/key.pem" -out "$tmp/cert.pem" \
    -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -days 1 2>/dev/null

"$bin/tls_echo_server" --listen 127.0.0.1:0 --cert "$tmp/cert.pem" --key "$tmp/key.pem" > "$tmp/server.out" &
server_pid=$!
for _ in $(seq 100); do
    grep -q '^listening ' "$tmp/server.out" 2>/dev/null && break
    sleep 0.05
done
addr=$(sed -n 's/^listening //p' "$tmp/server.out")
[ -n "$addr" ] || { echo "demo: the server did not start" >&2; exit 1; }
echo "server: listening $addr"
echo -n "client: "
"$bin/tls_echo_client" --connect "$addr" --ca "$tmp/cert.pem" --verify-host localhost --message hello-from-corotls
