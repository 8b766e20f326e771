#!/bin/sh
# Download and unpack the Debian parts of the image for one architecture:
# the kernel (+ modules), busybox-static and GRUB's EFI modules. Nothing is installed
# on the host: the .debs are fetched with `apt-get download` and unpacked with dpkg-deb.
#
# usage: fetch-parts.sh ARCH OUTDIR      (ARCH: x86_64 | aarch64)
# result: OUTDIR/{kernel,busybox,grub}/ unpacked trees, OUTDIR/kernel-version
set -eu

arch=$1
out=$2

case "$arch" in
    x86_64)  darch=amd64 ;;
    aarch64) darch=arm64 ;;
    *) echo "fetch-parts: unknown ARCH '$arch'" >&2; exit 2 ;;
esac

if [ -f "$out/.done" ]; then
    exit 0
fi
rm -rf "$out"
mkdir -p "$out/debs"
# apt-get download drops privileges to _apt where it can: let it write here.
chmod 0777 "$out/debs"

# The meta package names the current ABI: linux-image-amd64 -> linux-image-6.1.0-NN-amd64.
kpkg=$(apt-cache depends "linux-image-$darch:$darch" | sed -n 's/^ *Depends: \(linux-image-[0-9][^:]*\).*/\1/p' | head -n1)
if [ -z "$kpkg" ]; then
    echo "fetch-parts: cannot resolve linux-image-$darch (run image/deps.sh: it adds arm64 and runs apt-get update)" >&2
    exit 1
fi

(
    cd "$out/debs"
    apt-get download "$kpkg:$darch" "busybox-static:$darch" "grub-efi-$darch-bin:$darch"
    # mke2fs/e2fsck for the data partition (busybox's mke2fs makes ext2 only), with the
    # libraries and the C library they link.
    mkdir -p ../e2fsdebs
    chmod 0777 ../e2fsdebs
    cd ../e2fsdebs
    apt-get download "e2fsprogs:$darch" "libext2fs2:$darch" "libcom-err2:$darch" \
        "libblkid1:$darch" "libuuid1:$darch" "libc6:$darch"
    # Mozilla's CA certificates, for verifying a TLS next hop (rustls-native-certs reads
    # /etc/ssl/certs/ca-certificates.crt)
    apt-get download ca-certificates
)
mkdir -p "$out/e2fs" "$out/cacerts"
for d in "$out"/e2fsdebs/*.deb; do
    case "$(basename "$d")" in
        ca-certificates_*) dpkg-deb -x "$d" "$out/cacerts" ;;
        *) dpkg-deb -x "$d" "$out/e2fs" ;;
    esac
done
# The build runs busybox --list-full on the build machine to lay out the applet links.
if [ "$darch" != amd64 ]; then
    mkdir -p "$out/hostdebs"
    chmod 0777 "$out/hostdebs"
    (cd "$out/hostdebs" && apt-get download busybox-static:amd64)
    mkdir -p "$out/hostbusybox"
    dpkg-deb -x "$out"/hostdebs/busybox-static_*.deb "$out/hostbusybox"
fi

for d in "$out"/debs/*.deb; do
    case "$(basename "$d")" in
        linux-image-*) dest=kernel ;;
        busybox-static_*) dest=busybox ;;
        grub-efi-*) dest=grub ;;
        *) continue ;;
    esac
    mkdir -p "$out/$dest"
    dpkg-deb -x "$d" "$out/$dest"
done

kver=$(ls "$out/kernel/lib/modules")
echo "$kver" > "$out/kernel-version"
# Debian's .deb ships no modules.dep: make it so modprobe can resolve dependencies.
/sbin/depmod -b "$out/kernel" "$kver"
touch "$out/.done"
echo "fetch-parts: $arch kernel $kver"
