#!/bin/sh
# Make a root slot image (squashfs) from a target tree, the same way for the image build,
# update bundles and the tests. xz, because GRUB reads the slot's kernel and initramfs from
# it and GRUB's squash4 reads xz/gzip/lzo but not zstd. The kernel is stored uncompressed
# (bzImage is compressed already; arm64's 33 MB Image would take GRUB long to unpack); the
# initramfs is a plain cpio that xz compresses here.
#
# 1 MiB blocks and, for x86 code, xz's BCJ filter: the image must stay under 20 MiB.
#
# usage: image/mkrootfs.sh TARGET_DIR OUT.squashfs
set -eu
bcj=
if file -L "$1/bin/busybox" | grep -q 'x86-64'; then
    bcj="-Xbcj x86"
fi
# shellcheck disable=SC2086 # $bcj is two words or none
mksquashfs "$1" "$2" -noappend -all-root -comp xz -b 1M $bcj -quiet -no-progress \
    -action 'uncompressed@subpathname(usr/lib/outguard-boot/bzImage) || subpathname(usr/lib/outguard-boot/Image)'
