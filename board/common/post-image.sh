#!/bin/sh
# Outguard post-image script, shared by every board and by both builds:
#   Buildroot: BR2_ROOTFS_POST_IMAGE_SCRIPT, called as  post-image.sh BINARIES_DIR BOARD
#              with TARGET_DIR, BUILD_DIR, HOST_DIR in the environment.
#   image/:    image/build.sh calls it the same way, with the same variables.
# Inputs in BINARIES_DIR: rootfs.squashfs (slot A's root), the kernel ($BOARD_KERNEL),
# initrd.img (post-build.sh) and efi-part/EFI/BOOT/$BOARD_EFI_BOOT (GRUB, as Buildroot's
# grub2 package lays it out).
# Output: BINARIES_DIR/outguard-$BOARD.img (GPT: esp, rootA, rootB, kernelA, kernelB, data)
# and BINARIES_DIR/kernel.vfat (slot A's kernel partition; update bundles carry it too).
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
for f in rootfs.squashfs "$BOARD_KERNEL" initrd.img "efi-part/EFI/BOOT/$BOARD_EFI_BOOT"; do
    [ -f "$BINARIES_DIR/$f" ] || fail "missing $BINARIES_DIR/$f"
done

# --- GRUB configuration next to GRUB on the ESP ----------------------------------------
# Kernel hardening: on top of the kernel's own options (landlock, seccomp, ...). lsm= and
# lockdown= also close most of where Debian's kernel differs from the hardening fragment
# (board/x86_64/debian-kernel.gap): only the fragment's LSMs start, and lockdown refuses
# /dev/mem, /dev/port, kexec, hibernation, iopl/ioperm and /proc/kcore.
harden="slab_nomerge init_on_alloc=1 page_alloc.shuffle=1 randomize_kstack_offset=on lockdown=confidentiality lsm=landlock,lockdown,yama"
mkdir -p "$BINARIES_DIR/efi-part/EFI/BOOT"
sed -e "s|@KERNEL@|$BOARD_KERNEL|g" \
    -e "s|@CONSOLE@|$BOARD_CONSOLE|g" \
    -e "s|@CMDLINE_HARDEN@|$harden|g" \
    -e "s|@CMDLINE_EXTRA@|$BOARD_CMDLINE_EXTRA|g" \
    "$COMMON_DIR/grub.cfg.in" > "$BINARIES_DIR/efi-part/EFI/BOOT/grub.cfg"
# GRUB's environment block (RAUC's slot state): slot A installed, B empty.
genv=$BINARIES_DIR/efi-part/EFI/BOOT/grubenv
rm -f "$genv"
"$TARGET_DIR/usr/bin/grub-editenv" "$genv" create
"$TARGET_DIR/usr/bin/grub-editenv" "$genv" set "ORDER=A B" A_OK=1 A_TRY=0 B_OK=0 B_TRY=0

# --- the slot's kernel partition: which root it belongs to --------------------------------
version=$(sed -n 's/^VERSION_ID=//p' "$TARGET_DIR/etc/os-release")
printf 'VERSION_ID=%s\n' "${version:-unknown}" > "$BINARIES_DIR/version"

# --- the disk image ---------------------------------------------------------------------
image=outguard-$BOARD.img
cfg=$BUILD_DIR/outguard-genimage.cfg
sed -e "s|@IMAGE@|$image|g" \
    -e "s|@KERNEL@|$BOARD_KERNEL|g" \
    -e "s|@ROOT_TYPE@|$BOARD_ROOT_TYPE|g" \
    -e "s|@ESP_SIZE@|$BOARD_ESP_SIZE|g" \
    -e "s|@ROOT_SIZE@|$BOARD_ROOT_SIZE|g" \
    -e "s|@KERNEL_PART_SIZE@|$BOARD_KERNEL_PART_SIZE|g" \
    -e "s|@DATA_SIZE@|$BOARD_DATA_SIZE|g" \
    "$COMMON_DIR/genimage.cfg.in" > "$cfg"

gtmp=$BUILD_DIR/outguard-genimage.tmp
groot=$BUILD_DIR/outguard-genimage.root
rm -rf "$gtmp" "$groot" "${BINARIES_DIR:?}/$image" "$BINARIES_DIR/efi-part.vfat" "$BINARIES_DIR/kernel.vfat"
mkdir -p "$groot"
"$GENIMAGE" --rootpath "$groot" --tmppath "$gtmp" --inputpath "$BINARIES_DIR" \
    --outputpath "$BINARIES_DIR" --config "$cfg"
rm -rf "$gtmp" "$groot"
echo "post-image: $BINARIES_DIR/$image"
