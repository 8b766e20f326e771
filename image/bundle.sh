#!/bin/sh
# Make a signed RAUC update bundle from a built image's slot: the root (squashfs) and the
# kernel partition (FAT: kernel and initramfs), which RAUC installs together into the slot
# not running: what `make bundle ARCH=...` runs after `make image`. Runs the build
# machine's rauc from the fetched Debian package (image/fetch-parts.sh), no install needed.
#
# usage: image/bundle.sh ARCH [OUT.raucb]
#   default OUT: image/out/ARCH/images/outguard-ARCH-VERSION.raucb
# environment (all optional):
#   BUNDLE_ROOTFS   root slot image (default: the built image/out/ARCH/images/rootfs.squashfs)
#   BUNDLE_KERNEL   kernel partition image (default: the built image/out/ARCH/images/kernel.vfat)
#   BUNDLE_VERSION  version in the manifest (default: VERSION_ID of the built image)
#   KEYS_DIR        signing.cert.pem + signing.key.pem (default image/out/keys, made by keys.sh)
#   BUNDLE_CERT, BUNDLE_KEY   override the signing certificate and key
set -eu

ARCH=${1:?usage: bundle.sh x86_64|aarch64 [OUT.raucb]}
TOP=$(cd "$(dirname "$0")/.." && pwd)
OUTROOT=${IMAGE_OUT:-$TOP/image/out}
OUT=$OUTROOT/$ARCH
PARTS=$OUT/parts
KEYS_DIR=${KEYS_DIR:-$OUTROOT/keys}
rootfs=${BUNDLE_ROOTFS:-$OUT/images/rootfs.squashfs}
kernel=${BUNDLE_KERNEL:-$OUT/images/kernel.vfat}
for f in "$rootfs" "$kernel"; do
    [ -f "$f" ] || { echo "bundle: no $f: make image ARCH=$ARCH first" >&2; exit 1; }
done
version=${BUNDLE_VERSION:-$(sed -n 's/^VERSION_ID=//p' "$OUT/target/etc/os-release" 2>/dev/null)}
[ -n "$version" ] || { echo "bundle: no version (set BUNDLE_VERSION)" >&2; exit 1; }
case "$version" in *[!A-Za-z0-9.+_~-]*) echo "bundle: bad version '$version'" >&2; exit 1 ;; esac
"$TOP/image/keys.sh" "$KEYS_DIR"
cert=${BUNDLE_CERT:-$KEYS_DIR/signing.cert.pem}
key=${BUNDLE_KEY:-$KEYS_DIR/signing.key.pem}
out=${2:-$OUT/images/outguard-$ARCH-$version.raucb}

hr=$PARTS/hostrauc
[ -x "$hr/usr/bin/rauc" ] || { echo "bundle: no $hr/usr/bin/rauc: run image/fetch-parts.sh (make image)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/content"
cp "$rootfs" "$work/content/rootfs.img"
cp "$kernel" "$work/content/kernel.img"
cat > "$work/content/manifest.raucm" <<MANIFEST
[update]
compatible=outguard-$ARCH
version=$version
description=Outguard $version ($ARCH)

[bundle]
format=plain

[image.rootfs]
filename=rootfs.img

[image.kernel]
filename=kernel.img
MANIFEST
rm -f "$out"
LD_LIBRARY_PATH=$hr/usr/lib/x86_64-linux-gnu "$hr/usr/bin/rauc" bundle \
    --cert="$cert" --key="$key" "$work/content" "$out" >&2
echo "$out"
