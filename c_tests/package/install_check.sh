#!/usr/bin/env bash
# make install into a temporary prefix, then build and run a program that
# finds corotls through pkg-config only.
set -euo pipefail
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
make -s install PREFIX="$prefix" >/dev/null
lib="$prefix/lib"
soname=$(readelf -d "$lib/libcorotls.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = "libcorotls.so.0" ] || { echo "FAIL - SONAME is '$soname'"; exit 1; }
echo "ok - installed libcorotls.so with SONAME $soname"
cat > "$prefix/use.c" <<'C'
#include <corotls.h>
#include <stdio.h>
int main(void)
{
    corotls_conf *c = NULL;
    corotls_result r = corotls_conf_new(COROTLS_CLIENT, NULL, NULL, NULL, NULL, false, &c);
    printf("%s %s\n", corotls_version(), corotls_result_name(r));
    corotls_conf_free(c);
    return r == COROTLS_OK ? 0 : 1;
}
C
export PKG_CONFIG_PATH="$lib/pkgconfig"
cc -Wall -Werror -o "$prefix/use" "$prefix/use.c" $(pkg-config --cflags --libs corotls)
out=$(LD_LIBRARY_PATH="$lib" "$prefix/use")
[ "$out" = "0.1.0 OK" ] || { echo "FAIL - program output '$out'"; exit 1; }
echo "ok - a program built with pkg-config --cflags --libs corotls runs: $out"
# Not ldd piped into grep -q: under pipefail, grep quitting early can SIGPIPE ldd.
deps=$(ldd "$lib/libcorotls.so")
case "$deps" in
    *"libssl.so.3 => /lib"* | *"libssl.so.3 => /usr/lib"*) ;;
    *) echo "FAIL - not linked to the system libssl.so.3"; exit 1 ;;
esac
echo "ok - linked to the system libssl.so.3"
echo "3 passed, 0 failed"
