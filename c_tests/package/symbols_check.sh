#!/usr/bin/env bash
# libcorotls.so: exports only corotls_*; every undefined symbol is versioned
# from glibc, libgcc or OpenSSL (weak toolchain hooks aside); no mln_ symbol.
set -euo pipefail
lib=${1:-target/release/libcorotls.so}
fail=0
extra=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -v '^corotls_' || true)
if [ -n "$extra" ]; then echo "FAIL - exports beyond corotls_*: $extra"; fail=1; else echo "ok - exports only corotls_* ($(nm -D --defined-only "$lib" | wc -l) symbols)"; fi
undef=$(nm -D --undefined-only "$lib" | awk '$1 != "w" {print $2}' | grep -v '@GLIBC_\|@OPENSSL_\|@GCC_' || true)
if [ -n "$undef" ]; then echo "FAIL - unexpected undefined symbols: $undef"; fail=1; else echo "ok - undefined symbols come from glibc, libgcc and OpenSSL only"; fi
if nm -D "$lib" | grep -q ' mln_'; then echo "FAIL - mln_ symbols in $lib"; fail=1; else echo "ok - no mln_ symbol"; fi
echo "$((3 - fail)) passed, $fail failed"
exit $fail
