#!/bin/sh
# melon_nm.sh FACE.so FACE.a LIBCOROTLS.so -- symbol checks of the Melon face
# (spec melon.md §5.1, §5.2):
#   - FACE.so exports exactly the 21 connection-module functions, the two
#     legacy no-ops and corotls_melon_layout_report; no corotls_* C ABI;
#   - its only undefined mln_ symbols are the host imports of §5.2, and it
#     needs the system libssl.so.3 / libcrypto.so.3 (no bundled OpenSSL);
#   - it does not define any of those imports itself (no bundled copies);
#   - FACE.a defines the same exports;
#   - LIBCOROTLS.so has no mln_ symbol at all.
# Output: one line per check, then "N passed, M failed".
set -u
if [ $# -ne 3 ]; then
    echo "usage: $0 FACE.so FACE.a LIBCOROTLS.so" >&2
    exit 2
fi
FACE=$1 FACE_A=$2 LIB=$3
pass=0 fail=0
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

check() { # check OK-BOOL MESSAGE
    if [ "$1" = 1 ]; then echo "ok   $2"; pass=$((pass + 1)); else echo "FAIL $2"; fail=$((fail + 1)); fi
}

cat >"$T/want_exports" <<'EOF'
corotls_melon_layout_report
mln_tcp_conn_append
mln_tcp_conn_append_chain
mln_tcp_conn_destroy
mln_tcp_conn_fd_set
mln_tcp_conn_head
mln_tcp_conn_init
mln_tcp_conn_move_sent
mln_tcp_conn_pop
mln_tcp_conn_recv
mln_tcp_conn_remove
mln_tcp_conn_send
mln_tcp_conn_send_chain
mln_tcp_conn_set_nonblock
mln_tcp_conn_tail
mln_tcp_conn_tls_handshake
mln_tcp_conn_tls_init
mln_tcp_conn_tls_set_sni
mln_tcp_conn_tls_set_verify_host
mln_tcp_conn_tls_shutdown
mln_tcp_tls_conf_free
mln_tcp_tls_conf_new
mln_tcp_tls_global_destroy
mln_tcp_tls_global_init
EOF
# The §5.2 imports this build uses (mln_chain_new[_with_buf] are emulated
# with mln_alloc_m; mln_alloc_c and mln_string_dup are not needed).
cat >"$T/allowed_imports" <<'EOF'
mln_alloc_destroy
mln_alloc_free
mln_alloc_init
mln_alloc_m
mln_chain_pool_release
mln_chain_pool_release_all
mln_file_tmp_open
EOF
cat >"$T/spec_imports" <<'EOF'
mln_alloc_c
mln_alloc_destroy
mln_alloc_free
mln_alloc_init
mln_alloc_m
mln_chain_new
mln_chain_new_with_buf
mln_chain_pool_release
mln_chain_pool_release_all
mln_file_tmp_open
EOF

nm -D --defined-only "$FACE" | awk '$2 ~ /^[TtWwDdBbRrVvi]$/ {print $3}' | sed 's/@.*//' | sort -u >"$T/exports"
nm -D --undefined-only "$FACE" | awk '{print $NF}' | sed 's/@.*//' | sort -u >"$T/undef"
grep '^mln_' "$T/undef" >"$T/imports" || true

n=$(wc -l <"$T/exports")
if cmp -s "$T/exports" "$T/want_exports"; then
    check 1 "$FACE exports exactly the 21 + 2 mln_ functions and the layout report ($n symbols)"
else
    check 0 "$FACE exports: unexpected set ($(diff "$T/want_exports" "$T/exports" | grep '^[<>]' | tr '\n' ' '))"
fi
check "$( [ "$(grep -c '^mln_' "$T/exports")" = 23 ] && echo 1 || echo 0)" "23 mln_ exports (21 + mln_tcp_tls_global_init/destroy)"
check "$(grep -q '^corotls_[a-z]' "$T/exports" && grep -v '^corotls_melon_layout_report$' "$T/exports" | grep -q '^corotls_' && echo 0 || echo 1)" \
    "no corotls_* C ABI exported from the face"
if [ -s "$T/imports" ] && comm -23 "$T/imports" "$T/spec_imports" | grep -q .; then
    check 0 "undefined mln_ symbols outside spec §5.2: $(comm -23 "$T/imports" "$T/spec_imports" | tr '\n' ' ')"
else
    check 1 "undefined mln_ symbols are all spec §5.2 imports: $(tr '\n' ' ' <"$T/imports")"
fi
check "$(cmp -s "$T/imports" "$T/allowed_imports" && echo 1 || echo 0)" "imports are exactly the host functions this build uses"
check "$(grep -Eq '^mln_(buf_new|string_free|string_dup)$' "$T/undef" && echo 0 || echo 1)" \
    "no import of mln_buf_new / mln_string_free / mln_string_dup"
own=$(nm -D --defined-only "$FACE" | awk '{print $3}' | grep -E '^mln_(alloc|chain|file|string|buf)_' | tr '\n' ' ')
check "$( [ -z "$own" ] && echo 1 || echo 0)" "no bundled copy of a Melon helper${own:+: $own}"
needed=$(readelf -d "$FACE" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
if echo " $needed " | grep -q ' libssl\.so\.3 ' && echo " $needed " | grep -q ' libcrypto\.so\.3 '; then
    check 1 "links the system OpenSSL 3 dynamically ($needed)"
else
    check 0 "NEEDED lacks libssl.so.3/libcrypto.so.3 ($needed)"
fi
check "$(nm --defined-only "$FACE" 2>/dev/null | grep -q ' T SSL_new$' && echo 0 || echo 1)" "no bundled OpenSSL (SSL_new is not defined)"
soname=$(readelf -d "$FACE" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
check "$( [ "$soname" = libcorotls_melon.so.0 ] && echo 1 || echo 0)" "SONAME $soname"

nm --defined-only "$FACE_A" 2>/dev/null | awk '$2 == "T" {print $3}' | grep -E '^(mln_|corotls_melon_)' | sort -u >"$T/a_exports"
check "$(cmp -s "$T/a_exports" "$T/want_exports" && echo 1 || echo 0)" "$FACE_A defines the same 24 functions"

lib_mln=$(nm -D "$LIB" | awk '{print $NF}' | grep '^mln_' | tr '\n' ' ')
check "$( [ -z "$lib_mln" ] && echo 1 || echo 0)" "$LIB has no mln_ symbol${lib_mln:+: $lib_mln}"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
