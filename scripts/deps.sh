#!/usr/bin/env bash
# scripts/deps.sh -- install the Debian packages that building corotls and
# `make check` need (Debian 12 / Ubuntu 22.04 or newer), the only list of
# them.  Installs only what is missing; through sudo only when not root (a
# fresh Debian 12 has no sudo, and root needs none).  `make deps` runs it;
# it needs nothing but bash and apt, so it also works before make is there.
# Rust comes from rustup, not from here.
#   scripts/deps.sh           install the missing packages
#   scripts/deps.sh --list    print the list
set -euo pipefail

packages=(
    gcc make pkg-config binutils   # C tests, examples, the silly module; nm/readelf
    g++                            # libFuzzer's C++ part (make fuzz-build, cargo-fuzz)
    libssl-dev openssl             # OpenSSL 3 headers (openssl-sys) and the CLI peers
    valgrind                       # every C suite runs again under it
    python3 python3-venv           # the Python TLS peer; sslyze's virtualenv (make scan-venv)
    liblua5.4-dev                  # the silly face's tests (Lua 5.4)
    testssl.sh                     # the scanner gate (make scan-check)
    tshark                         # the key-log test decrypts a loopback capture (c_tests/keylog)
)

if [ "${1:-}" = --list ]; then
    printf '%s\n' "${packages[@]}"
    exit 0
fi

missing=()
for p in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "deps: all ${#packages[@]} packages are installed"
    exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "deps: not root and no sudo; as root run: apt-get install ${missing[*]}" >&2; exit 1; }
    sudo=(sudo)
fi
echo "deps: installing ${missing[*]}"
# wireshark-common asks whether non-root users may capture; answer "no"
# beforehand so the install never stops at a prompt (root captures anyway).
if command -v debconf-set-selections >/dev/null; then
    echo "wireshark-common wireshark-common/install-setuid boolean false" | "${sudo[@]}" debconf-set-selections
fi
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
