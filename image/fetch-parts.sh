#!/bin/sh
# Download and unpack the Debian parts of the image for one architecture:
# the kernel (+ modules), busybox-static and GRUB's EFI modules. Nothing is installed
# on the host: the .debs are fetched with `apt-get download` and unpacked with dpkg-deb.
#
# usage: fetch-parts.sh ARCH OUTDIR      (ARCH: x86_64 | aarch64)
# result: OUTDIR/{kernel,busybox,grub,e2fs,cacerts,rauc,hostrauc}/ unpacked trees,
#         OUTDIR/kernel-version
set -eu

arch=$1
out=$2

case "$arch" in
    x86_64)  darch=amd64 ;;
    aarch64) darch=arm64 ;;
    *) echo "fetch-parts: unknown ARCH '$arch'" >&2; exit 2 ;;
esac

# RAUC (A/B updates) and what it runs on, fetched on its own so a parts tree made before
# RAUC was added gains it without refetching the rest. The target's rauc, dbus-daemon (rauc
# 1.8 as packaged talks to its service over D-Bus: a private bus, see
# /usr/libexec/outguard/rauc) and their libraries; image/install-rauc.sh copies only the
# ELF closure of the two programs. Not libcurl or libsystemd: see image/stubs/README. Plus the build machine's (amd64) rauc, which makes bundles.
RAUC_PKGS="rauc libjson-glib-1.0-0 libglib2.0-0 libfdisk1 libssl3 libmount1 libselinux1
 libffi8 libpcre2-8-0 zlib1g libblkid1 libuuid1 libc6 dbus-daemon libdbus-1-3 libexpat1
 libaudit1 libcap-ng0 libapparmor1 libcap2"
if [ ! -f "$out/rauc/.done" ]; then
    rm -rf "$out/rauc" "$out/raucdebs" "$out/hostrauc"
    mkdir -p "$out/raucdebs/target" "$out/raucdebs/host"
    chmod 0777 "$out/raucdebs/target" "$out/raucdebs/host"
    # shellcheck disable=SC2046 # one word per package
    (cd "$out/raucdebs/target" && apt-get download $(for p in $RAUC_PKGS; do echo "$p:$darch"; done))
    (cd "$out/raucdebs/host" && apt-get download rauc:amd64 libjson-glib-1.0-0:amd64)
    for d in "$out"/raucdebs/target/*.deb; do dpkg-deb -x "$d" "$out/rauc"; done
    for d in "$out"/raucdebs/host/*.deb; do dpkg-deb -x "$d" "$out/hostrauc"; done
    touch "$out/rauc/.done"
fi

if [ -f "$out/.done" ]; then
    exit 0
fi
rm -rf "$out/debs" "$out/e2fsdebs" "$out/hostdebs" "$out/kernel" "$out/busybox" "$out/grub" \
    "$out/e2fs" "$out/cacerts" "$out/hostbusybox"
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
    # sfdisk and partx, to grow the data partition to the disk's size on first boot (partx
    # tells the kernel the new size with BLKPG while the disk is in use), and OpenNTPD, the NTP
    # client (Debian's busybox has no ntpd applet): dynamically linked, with their libraries.
    apt-get download "fdisk:$darch" "libfdisk1:$darch" "libsmartcols1:$darch" \
        "libmount1:$darch" "libreadline8:$darch" "libtinfo6:$darch" "libselinux1:$darch" \
        "libpcre2-8-0:$darch" "openntpd:$darch" "util-linux:$darch"
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
