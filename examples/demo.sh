#!/usr/bin/env bash
# make demo: the flow of the Melang tls module's documented example, in C
# over the corotls loop -- a server coroutine and a client coroutine on one
# loop in one thread (examples/two_coroutines.c), with a throwaway
# self-signed certificate the client verifies.
set -euo pipefail
bin=target/examples
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/key.pem" -out "$tmp/cert.pem" \
    -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" -days 1 2>/dev/null

"$bin/two_coroutines" --cert "$tmp/cert.pem" --key "$tmp/key.pem" --ca "$tmp/cert.pem"
