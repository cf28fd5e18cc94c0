#!/usr/bin/env bash
# make install into a temporary prefix, then build and run a program that
# finds corotls through pkg-config only.  The expected version comes from
# make (Cargo.toml): $COROTLS_VERSION, else `make version`.
set -euo pipefail
version=${COROTLS_VERSION:-$(make -s --no-print-directory version)}
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
#include <string.h>
int main(void)
{
    corotls_conf *c = NULL;
    corotls_result r = corotls_conf_new(COROTLS_CLIENT, NULL, NULL, NULL, NULL, false, &c);
    printf("%s %s %s\n", corotls_version(), COROTLS_VERSION_STRING, corotls_result_name(r));
    corotls_conf_free(c);
    return r == COROTLS_OK ? 0 : 1;
}
C
export PKG_CONFIG_PATH="$lib/pkgconfig"
pc_version=$(pkg-config --modversion corotls)
[ "$pc_version" = "$version" ] || { echo "FAIL - corotls.pc says version '$pc_version', not '$version'"; exit 1; }
echo "ok - corotls.pc has version $pc_version"
# shellcheck disable=SC2046 # pkg-config's flags are words
cc -Wall -Werror -o "$prefix/use" "$prefix/use.c" $(pkg-config --cflags --libs corotls)
out=$(LD_LIBRARY_PATH="$lib" "$prefix/use")
[ "$out" = "$version $version OK" ] || { echo "FAIL - program output '$out' (want '$version $version OK')"; exit 1; }
echo "ok - a program built with pkg-config --cflags --libs corotls runs: corotls_version() and the installed COROTLS_VERSION_STRING are $version"
# Not ldd piped into grep -q: under pipefail, grep quitting early can SIGPIPE ldd.
deps=$(ldd "$lib/libcorotls.so")
case "$deps" in
    *"libssl.so.3 => /lib"* | *"libssl.so.3 => /usr/lib"*) ;;
    *) echo "FAIL - not linked to the system libssl.so.3"; exit 1 ;;
esac
echo "ok - linked to the system libssl.so.3"
test -x "$lib/libcorotls.so.$version" || { echo "FAIL - no $lib/libcorotls.so.$version"; exit 1; }
echo "ok - the installed file is libcorotls.so.$version"
echo "5 passed, 0 failed"
