#!/bin/sh
# Install RAUC (Debian's rauc 1.8) into the target tree: rauc, the dbus-daemon its client
# and service talk over (a private bus, see /usr/libexec/outguard/rauc), and the ELF closure
# of both (only the libraries they need, found by DT_NEEDED in the unpacked .debs), plus the
# update CA certificate. libcurl and libsystemd are replaced by stubs (image/stubs/README:
# the appliance installs local bundles only and has no systemd). Buildroot users get the same from BR2_PACKAGE_RAUC (built
# without network support, so no libcurl there either).
#
# usage: install-rauc.sh PARTS TARGET_DIR CA_CERT ARCH
set -eu

PARTS=$1
TARGET_DIR=$2
CA=$3
ARCH=$4
TOP=$(cd "$(dirname "$0")/.." && pwd)
case "$ARCH" in
    x86_64) CC=${CC:-gcc} ;;
    aarch64) CC=aarch64-linux-gnu-gcc ;;
    *) echo "install-rauc: unknown ARCH $ARCH" >&2; exit 2 ;;
esac
src=$PARTS/rauc
[ -x "$src/usr/bin/rauc" ] || { echo "install-rauc: no $src/usr/bin/rauc (image/fetch-parts.sh)" >&2; exit 1; }

# find_lib NAME: the unpacked library's path relative to $src
find_lib() {
    f=$(find "$src/lib" "$src/usr/lib" -maxdepth 2 -name "$1" 2>/dev/null | head -n1)
    [ -n "$f" ] || { echo "install-rauc: $1 is in none of the fetched packages" >&2; exit 1; }
    echo "${f#"$src"}"
}

todo="/usr/bin/rauc /usr/bin/dbus-daemon"
done_list=" "
while [ -n "$todo" ]; do
    # shellcheck disable=SC2086 # a list of paths without spaces
    set -- $todo
    rel=$1
    shift
    todo=$*
    case "$done_list" in *" $rel "*) continue ;; esac
    done_list="$done_list$rel "
    mkdir -p "$TARGET_DIR$(dirname "$rel")"
    # glibc's own libraries come with e2fsprogs already (same Debian release)
    if [ ! -e "$TARGET_DIR$rel" ]; then
        cp -L "$src$rel" "$TARGET_DIR$rel"
    fi
    for n in $(readelf -d "$src$rel" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
        case "$n" in
            libcurl-gnutls.so.4|libsystemd.so.0)
                stub=$TARGET_DIR$(dirname "$(find_lib libglib-2.0.so.0)")/$n
                mkdir -p "$(dirname "$stub")"
                "$CC" -shared -fPIC -O2 -Wall -Wextra -Werror -nostartfiles \
                    -Wl,--version-script="$TOP/image/stubs/$n.map" -Wl,-soname,"$n" \
                    -o "$stub" "$TOP/image/stubs/$n.c"
                ;;
            *) todo="$todo $(find_lib "$n")" ;;
        esac
    done
done
# The libraries' directories are where the programs look (the multiarch dirs, in the
# dynamic loader's built-in search path), so no ld.so.conf is needed.
install -D -m 0644 "$CA" "$TARGET_DIR/etc/rauc/ca.cert.pem"
echo "install-rauc: $(echo "$done_list" | wc -w) files"
