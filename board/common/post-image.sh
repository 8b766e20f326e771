#!/bin/sh
# Outguard post-image script, shared by every board and by both builds:
#   Buildroot: BR2_ROOTFS_POST_IMAGE_SCRIPT, called as  post-image.sh BINARIES_DIR BOARD
#              with TARGET_DIR, BUILD_DIR, HOST_DIR in the environment.
#   image/:    image/build.sh calls it the same way, with the same variables.
# Inputs in BINARIES_DIR: rootfs.squashfs, the kernel ($BOARD_KERNEL) and
# efi-part/EFI/BOOT/$BOARD_EFI_BOOT (GRUB, as Buildroot's grub2 package lays it out).
# Output: BINARIES_DIR/outguard-$BOARD.img (GPT: esp, rootA, rootB, data).
set -eu

BINARIES_DIR=${1:?usage: post-image.sh BINARIES_DIR BOARD}
BOARD=${2:?usage: post-image.sh BINARIES_DIR BOARD}
: "${TARGET_DIR:?TARGET_DIR must be set (Buildroot sets it)}"
: "${BUILD_DIR:?BUILD_DIR must be set (Buildroot sets it)}"
COMMON_DIR=$(cd "$(dirname "$0")" && pwd)
BOARD_DIR=$(cd "$COMMON_DIR/.." && pwd)/$BOARD
# shellcheck source=../x86_64/meta
. "$BOARD_DIR/meta"

GENIMAGE=genimage
if [ -n "${HOST_DIR:-}" ] && [ -x "$HOST_DIR/bin/genimage" ]; then
    GENIMAGE=$HOST_DIR/bin/genimage
fi

fail() {
    echo "post-image: $*" >&2
    exit 1
}
for f in rootfs.squashfs "$BOARD_KERNEL" "efi-part/EFI/BOOT/$BOARD_EFI_BOOT"; do
    [ -f "$BINARIES_DIR/$f" ] || fail "missing $BINARIES_DIR/$f"
done

# --- initramfs: busybox, /init and the boot modules, all taken from TARGET_DIR ---------
ird=$BUILD_DIR/outguard-initramfs
rm -rf "$ird"
mkdir -p "$ird/bin" "$ird/dev" "$ird/proc" "$ird/sys" "$ird/etc" "$ird/newroot"
cp "$TARGET_DIR/bin/busybox" "$ird/bin/busybox"
for a in sh mount umount modprobe sleep grep sed cat mkdir echo uname switch_root poweroff; do
    ln -s busybox "$ird/bin/$a"
done
# A dynamically linked busybox (Buildroot with a shared C library) needs its libraries.
if ! file -L "$TARGET_DIR/bin/busybox" | grep -q 'statically linked\|static-pie'; then
    for l in lib lib64 usr/lib; do
        if [ -L "$TARGET_DIR/$l" ]; then
            mkdir -p "$(dirname "$ird/$l")"
            cp -a "$TARGET_DIR/$l" "$ird/$l"
        elif [ -d "$TARGET_DIR/$l" ]; then
            mkdir -p "$ird/$l"
            find "$TARGET_DIR/$l/" -maxdepth 1 -name '*.so*' -exec cp -a {} "$ird/$l/" \;
        fi
    done
fi
cp "$COMMON_DIR/initramfs/init" "$ird/init"
chmod 0755 "$ird/init"
if [ -d "$TARGET_DIR/lib/modules" ]; then
    mkdir -p "$ird/lib"
    cp -a "$TARGET_DIR/lib/modules" "$ird/lib/"
    for m in $BOARD_BOOT_MODULES; do
        echo "$m"
    done > "$ird/etc/modules-boot"
fi
(cd "$ird" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -9 -n > "$BINARIES_DIR/initrd.img"

# --- GRUB configuration next to GRUB on the ESP ----------------------------------------
# Kernel hardening: on top of the kernel's own options (landlock, seccomp, ...).
harden="slab_nomerge init_on_alloc=1 page_alloc.shuffle=1 randomize_kstack_offset=on lockdown=integrity"
mkdir -p "$BINARIES_DIR/efi-part/EFI/BOOT"
sed -e "s|@KERNEL@|$BOARD_KERNEL|g" \
    -e "s|@CONSOLE@|$BOARD_CONSOLE|g" \
    -e "s|@CMDLINE_HARDEN@|$harden|g" \
    -e "s|@CMDLINE_EXTRA@|$BOARD_CMDLINE_EXTRA|g" \
    "$COMMON_DIR/grub.cfg.in" > "$BINARIES_DIR/efi-part/EFI/BOOT/grub.cfg"

# --- the disk image ---------------------------------------------------------------------
image=outguard-$BOARD.img
cfg=$BUILD_DIR/outguard-genimage.cfg
sed -e "s|@IMAGE@|$image|g" \
    -e "s|@KERNEL@|$BOARD_KERNEL|g" \
    -e "s|@ROOT_TYPE@|$BOARD_ROOT_TYPE|g" \
    -e "s|@ESP_SIZE@|$BOARD_ESP_SIZE|g" \
    -e "s|@ROOT_SIZE@|$BOARD_ROOT_SIZE|g" \
    -e "s|@DATA_SIZE@|$BOARD_DATA_SIZE|g" \
    "$COMMON_DIR/genimage.cfg.in" > "$cfg"

gtmp=$BUILD_DIR/outguard-genimage.tmp
groot=$BUILD_DIR/outguard-genimage.root
rm -rf "$gtmp" "$groot" "${BINARIES_DIR:?}/$image" "$BINARIES_DIR/efi-part.vfat"
mkdir -p "$groot"
"$GENIMAGE" --rootpath "$groot" --tmppath "$gtmp" --inputpath "$BINARIES_DIR" \
    --outputpath "$BINARIES_DIR" --config "$cfg"
rm -rf "$gtmp" "$groot"
echo "post-image: $BINARIES_DIR/$image"
