#!/bin/sh
# Build the Outguard disk image for one architecture from Debian parts, without Buildroot,
# the way Buildroot would: the same board/ overlay, post-build and post-image scripts, called
# with the same arguments and environment (TARGET_DIR, BINARIES_DIR, BUILD_DIR, ...).
#
# usage: image/build.sh ARCH       (x86_64 | aarch64; run image/deps.sh once first)
# output: image/out/ARCH/images/outguard-ARCH.img   (+ the parts it is made of)
set -eu

ARCH=${1:?usage: build.sh x86_64|aarch64}
TOP=$(cd "$(dirname "$0")/.." && pwd)
OUT=${IMAGE_OUT:-$TOP/image/out}/$ARCH
BOARD_DIR=$TOP/board/$ARCH
COMMON_DIR=$TOP/board/common
[ -f "$BOARD_DIR/meta" ] || { echo "build: no board/$ARCH" >&2; exit 2; }
# shellcheck source=../board/x86_64/meta
. "$BOARD_DIR/meta"

PARTS=$OUT/parts
# The names Buildroot gives its output directories.
BASE_DIR=$OUT
BUILD_DIR=$OUT/build
TARGET_DIR=$OUT/target
BINARIES_DIR=$OUT/images
HOST_DIR=$OUT/host
export BASE_DIR BUILD_DIR TARGET_DIR BINARIES_DIR HOST_DIR
export BR2_EXTERNAL_OUTGUARD_PATH="$TOP/buildroot"
OUTGUARD_VERSION=$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$TOP/Cargo.toml" | head -n1)
if rev=$(git -C "$TOP" rev-parse --short HEAD 2>/dev/null); then
    OUTGUARD_VERSION=$OUTGUARD_VERSION+g$rev
fi
export OUTGUARD_VERSION

step() { echo "==> [$ARCH] $*"; }

step "Debian parts (kernel, busybox-static, GRUB)"
"$TOP/image/fetch-parts.sh" "$ARCH" "$PARTS"
KVER=$(cat "$PARTS/kernel-version")

step "outguard (static, release)"
BIN=$("$TOP/image/build-daemon.sh" "$ARCH" "$OUT/cargo")

step "target tree"
rm -rf "$TARGET_DIR" "$BINARIES_DIR"
mkdir -p "$TARGET_DIR" "$BINARIES_DIR" "$BUILD_DIR" "$HOST_DIR"
# busybox and its applet links (the list comes from the build machine's busybox of the
# same Debian version: the foreign one cannot run here).
install -D -m 0755 "$PARTS/busybox/bin/busybox" "$TARGET_DIR/bin/busybox"
lister=$PARTS/busybox/bin/busybox
[ "$ARCH" = x86_64 ] || lister=$PARTS/hostbusybox/bin/busybox
"$lister" --list-full | while read -r path; do
    case "${path##*/}" in busybox|linuxrc) continue ;; esac
    mkdir -p "$TARGET_DIR/$(dirname "$path")"
    # relative link to /bin/busybox
    up=$(dirname "$path" | sed 's|[^/][^/]*|..|g')
    ln -sf "$up/bin/busybox" "$TARGET_DIR/$path"
done
# mke2fs, e2fsck and resize2fs (e2fsprogs), sfdisk and partx (grow the data partition on first boot)
# and OpenNTPD's ntpd from Debian: dynamically linked, so with the libraries they need
# (followed through DT_NEEDED in the unpacked parts) and glibc's loader.
e2=$PARTS/e2fs
for b in sbin/mke2fs sbin/e2fsck sbin/resize2fs sbin/sfdisk usr/bin/partx usr/sbin/ntpd; do
    rm -f "$TARGET_DIR/$b"
    install -D -m 0755 "$e2/$b" "$TARGET_DIR/$b"
done
ln -sf mke2fs "$TARGET_DIR/sbin/mkfs.ext4"
ln -sf e2fsck "$TARGET_DIR/sbin/fsck.ext4"
need_libs() {
    for f in "$@"; do
        readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'
    done | sort -u
}
todo=$(need_libs "$e2/sbin/mke2fs" "$e2/sbin/e2fsck" "$e2/sbin/resize2fs" "$e2/sbin/sfdisk" "$e2/usr/bin/partx" "$e2/usr/sbin/ntpd")
done_libs=
while [ -n "$todo" ]; do
    next=
    for l in $todo; do
        case " $done_libs " in *" $l "*) continue ;; esac
        done_libs="$done_libs $l"
        f=$(find "$e2/lib" "$e2/usr/lib" -maxdepth 2 -name "$l" 2>/dev/null | head -n1)
        [ -n "$f" ] || { echo "build: library $l not in the Debian parts" >&2; exit 1; }
        rel=${f#"$e2"}
        mkdir -p "$TARGET_DIR$(dirname "$rel")"
        cp -L "$f" "$TARGET_DIR$rel"
        next="$next $(need_libs "$f")"
    done
    todo=$next
done
for l in ld-linux-x86-64.so.2 ld-linux-aarch64.so.1; do
    find "$e2/lib" "$e2/usr/lib" -maxdepth 2 -name "$l" 2>/dev/null | while read -r f; do
        rel=${f#"$e2"}
        mkdir -p "$TARGET_DIR$(dirname "$rel")"
        cp -L "$f" "$TARGET_DIR$rel"
    done
done
# the program interpreter at the path the binaries name (/lib64/... or /lib/...)
interp=$(file -L "$e2/sbin/mke2fs" | sed -n 's/.*interpreter \([^,]*\),.*/\1/p')
if [ -n "$interp" ] && [ ! -e "$TARGET_DIR$interp" ]; then
    mkdir -p "$TARGET_DIR$(dirname "$interp")"
    ln -sf "$(find "$TARGET_DIR/lib" -name "$(basename "$interp")" | head -n1 | sed "s|^$TARGET_DIR||")" \
        "$TARGET_DIR$interp"
fi
# OpenNTPD keeps its control socket and drift file under /var/lib/openntpd: on the
# read-only root that is a link to a directory rcS makes on /run.
mkdir -p "$TARGET_DIR/var/lib"
ln -sfn /run/openntpd "$TARGET_DIR/var/lib/openntpd"
# the CA bundle, made as update-ca-certificates makes it (what Buildroot's
# ca-certificates package installs)
mkdir -p "$TARGET_DIR/etc/ssl/certs"
find "$PARTS/cacerts/usr/share/ca-certificates/mozilla" -name '*.crt' | LC_ALL=C sort \
    | xargs cat > "$TARGET_DIR/etc/ssl/certs/ca-certificates.crt"
# the daemon
install -D -m 0755 "$BIN" "$TARGET_DIR/usr/bin/outguard"
# RAUC (A/B updates) and the update CA (development keys unless KEYS_DIR names others)
KEYS_DIR=${KEYS_DIR:-$(dirname "$OUT")/keys}
"$TOP/image/keys.sh" "$KEYS_DIR"
"$TOP/image/install-rauc.sh" "$PARTS" "$TARGET_DIR" "$KEYS_DIR/ca.cert.pem" "$ARCH"
# the kernel modules the boot needs, with their dependencies
mdir=lib/modules/$KVER
mkdir -p "$TARGET_DIR/$mdir"
for m in $BOARD_BOOT_MODULES; do
    /sbin/modprobe -d "$PARTS/kernel" -S "$KVER" --show-depends "$m" 2>/dev/null \
        | sed -n 's/^insmod \([^ ]*\).*/\1/p'
done | sort -u | while read -r ko; do
    rel=${ko#"$PARTS/kernel"}
    install -D -m 0644 "$ko" "$TARGET_DIR$rel"
done
cp "$PARTS/kernel/$mdir/modules.order" "$PARTS/kernel/$mdir/modules.builtin" "$TARGET_DIR/$mdir/"
/sbin/depmod -b "$TARGET_DIR" "$KVER"
# the rootfs overlays, as Buildroot copies BR2_ROOTFS_OVERLAY
cp -a "$COMMON_DIR/rootfs-overlay/." "$TARGET_DIR/"
if [ -d "$BOARD_DIR/rootfs-overlay" ]; then
    cp -a "$BOARD_DIR/rootfs-overlay/." "$TARGET_DIR/"
fi

# Where Buildroot keeps the configured kernel: post-build checks its options.
mkdir -p "$BUILD_DIR/linux-$KVER"
cp "$PARTS/kernel/boot/config-$KVER" "$BUILD_DIR/linux-$KVER/.config"
export OUTGUARD_KERNEL_FROM=debian

# the kernel, where Buildroot leaves it (post-image puts it into the slot's kernel partition)
cp "$PARTS/kernel/boot/vmlinuz-$KVER" "$BINARIES_DIR/$BOARD_KERNEL"

step "post-build"
"$COMMON_DIR/post-build.sh" "$TARGET_DIR" "$ARCH"

step "root filesystem (squashfs)"
"$TOP/image/mkrootfs.sh" "$TARGET_DIR" "$BINARIES_DIR/rootfs.squashfs"

step "GRUB"
mkdir -p "$BINARIES_DIR/efi-part/EFI/BOOT"
# What Buildroot's grub2 package does with BR2_TARGET_GRUB2_BUILTIN_MODULES_EFI. GRUB reads
# only FAT: its own ESP and the slots' kernel partitions.
grub-mkimage -O "$BOARD_GRUB_TARGET" -d "$PARTS/grub/usr/lib/grub/$BOARD_GRUB_TARGET" \
    -p /EFI/BOOT -o "$BINARIES_DIR/efi-part/EFI/BOOT/$BOARD_EFI_BOOT" \
    boot linux normal configfile part_gpt fat echo test gzio efi_gop \
    loadenv regexp

step "post-image"
"$COMMON_DIR/post-image.sh" "$BINARIES_DIR" "$ARCH"

img=$BINARIES_DIR/outguard-$ARCH.img
step "done: $img ($(du -k --apparent-size "$img" | cut -f1) KiB, $(du -k "$img" | cut -f1) KiB allocated)"
