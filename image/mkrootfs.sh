#!/bin/sh
# Make a root slot image (squashfs) from a target tree, the same way for the image build,
# update bundles and the tests. zstd at its highest level with 1 MiB blocks: nearly xz's
# size (the image must stay under 20 MiB), and several times faster to read under
# emulation, where unpacking the daemon and libraries is much of the boot. GRUB never reads
# the root (the slot's kernel and initramfs are on its kernel partition), so GRUB's
# squash4, which cannot read zstd, does not matter. Buildroot: BR2_TARGET_ROOTFS_SQUASHFS4_ZSTD
# with BR2_TARGET_ROOTFS_SQUASHFS_BS_1024K and BR2_TARGET_ROOTFS_SQUASHFS_EXTREME_COMP.
#
# usage: image/mkrootfs.sh TARGET_DIR OUT.squashfs
#   ROOTFS_COMP="-comp ..."   other mksquashfs compression options (for measurements)
set -eu
# shellcheck disable=SC2086 # options, one a word
mksquashfs "$1" "$2" -noappend -all-root -b 1M ${ROOTFS_COMP:--comp zstd -Xcompression-level 22} \
    -quiet -no-progress
