#!/usr/bin/env bash
# tls_nm.sh TLS.so -- symbol checks of the Melang extension (spec
# melang-module.md §1.2, §7):
#   - it exports exactly `init` and `destroy` (nothing of its private Melon
#     copy, nothing of corotls);
#   - no mln_ symbol is left undefined: the module carries its own copy of
#     Melon (libmelon_static.a), since the melang executable exports none;
#   - corotls is linked in (no libcorotls / libcorotls_melon in NEEDED, no
#     undefined corotls_ symbol), and the system OpenSSL 3 is linked
#     dynamically (libssl.so.3, libcrypto.so.3 NEEDED; no bundled SSL_new);
#   - every undefined symbol is versioned from glibc, libgcc or OpenSSL;
#   - it loads alone with dlopen(RTLD_NOW | RTLD_LOCAL), init and destroy
#     found by dlsym.
# Output: one line per check, then "N passed, M failed".
set -u
if [ $# -ne 1 ]; then
    echo "usage: $0 TLS.so" >&2
    exit 2
fi
SO=$1
pass=0 fail=0
check() { # check OK-BOOL MESSAGE
    if [ "$1" = 1 ]; then echo "ok   $2"; pass=$((pass + 1)); else echo "FAIL $2"; fail=$((fail + 1)); fi
}

exports=$(nm -D --defined-only "$SO" | awk '$2 ~ /^[TtWwDdBbRrVvi]$/ {print $3}' | sed 's/@.*//' | sort -u | tr '\n' ' ')
check "$( [ "$exports" = "destroy init " ] && echo 1 || echo 0)" "exports exactly init and destroy (got: $exports)"
undef=$(nm -D --undefined-only "$SO" | awk '{print $NF}')
mln=$(echo "$undef" | grep '^mln_' | tr '\n' ' ')
check "$( [ -z "$mln" ] && echo 1 || echo 0)" "no undefined mln_ symbol: its own Melon copy${mln:+ (missing: $mln)}"
cor=$(echo "$undef" | grep '^corotls_' | tr '\n' ' ')
check "$( [ -z "$cor" ] && echo 1 || echo 0)" "corotls linked in statically${cor:+ (undefined: $cor)}"
needed=$(readelf -d "$SO" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
if echo " $needed " | grep -q ' libssl\.so\.3 ' && echo " $needed " | grep -q ' libcrypto\.so\.3 '; then
    check 1 "links the system OpenSSL 3 dynamically"
else
    check 0 "NEEDED lacks libssl.so.3 / libcrypto.so.3 ($needed)"
fi
check "$(echo " $needed " | grep -Eq ' lib(corotls|corotls_melon|melon)\.so' && echo 0 || echo 1)" \
    "needs no libcorotls, libcorotls_melon or libmelon.so (NEEDED: $needed)"
check "$(nm --defined-only "$SO" 2>/dev/null | grep -q ' [Tt] SSL_new$' && echo 0 || echo 1)" "no bundled OpenSSL (SSL_new is not defined)"
odd=$(nm -D --undefined-only "$SO" | awk '$1 != "w" {print $2}' | grep -v '@GLIBC_\|@OPENSSL_\|@GCC_' | tr '\n' ' ')
check "$( [ -z "$odd" ] && echo 1 || echo 0)" "undefined symbols come from glibc, libgcc and OpenSSL only${odd:+ (others: $odd)}"
if out=$(python3 - "$SO" 2>&1 <<'PY'
import ctypes, os, sys
lib = ctypes.CDLL(os.path.abspath(sys.argv[1]), mode=os.RTLD_NOW | os.RTLD_LOCAL)
lib.init, lib.destroy
PY
); then
    check 1 "loads alone with dlopen(RTLD_NOW | RTLD_LOCAL); dlsym finds init and destroy"
else
    check 0 "dlopen(RTLD_NOW) / dlsym: $out"
fi
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
