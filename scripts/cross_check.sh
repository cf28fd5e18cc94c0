#!/usr/bin/env bash
# cross_check.sh: type-check and lint the crates for FreeBSD and macOS from
# Linux (`cargo clippy --target ...`; nothing is linked or run).  This is
# how "written for BSD/macOS" is kept true while no such machine runs the
# tests.  It needs the targets' standard libraries:
#     rustup target add x86_64-unknown-freebsd x86_64-apple-darwin
# and, for openssl-sys's header probe on the Apple target, clang.  A target
# that is not installed is reported and skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

targets=(x86_64-unknown-freebsd x86_64-apple-darwin)
installed=$(rustup target list --installed 2>/dev/null || true)
status=0
for t in "${targets[@]}"; do
    if ! grep -qx "$t" <<<"$installed"; then
        echo "cross-check: $t: not installed (rustup target add $t), skipped"
        continue
    fi
    # openssl-sys runs the target's C preprocessor over the system OpenSSL
    # headers; on Linux, clang with the host's include paths stands in.
    if CC_x86_64_apple_darwin=clang \
        CFLAGS_x86_64_apple_darwin="-isystem /usr/include/$(gcc -dumpmachine) -isystem /usr/include" \
        OPENSSL_DIR=/usr OPENSSL_INCLUDE_DIR=/usr/include \
        OPENSSL_LIB_DIR="/usr/lib/$(gcc -dumpmachine)" \
        CARGO_TARGET_DIR=target/cross \
        cargo clippy --quiet --target "$t" --workspace --all-targets -- -D warnings; then
        echo "cross-check: $t: clean"
    else
        echo "cross-check: $t: FAILED"
        status=1
    fi
done
exit $status
