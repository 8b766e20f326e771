#!/bin/sh
# Make a root slot image (squashfs) from a target tree, the same way for the image build,
# update bundles and the tests. GRUB never reads the root (the slot's kernel and initramfs
# are on its kernel partition), so any compression the kernel reads will do; what matters
# is the boot time under emulation and the 20 MiB limit on the compressed disk image:
#   - what the boot runs before the SMTP banner is stored uncompressed: busybox (/bin,
#     /sbin), the daemon, glibc and e2fsprogs (/lib), the init scripts. Unpacking those
#     (with xz, or GRUB's whole slot before) was most of the boot's regression; read raw
#     they page in as they are touched. The disk image and bundles are compressed as a
#     whole anyway, so they cost little there.
#   - everything else (RAUC and its libraries in /usr/lib, OpenNTPD, the CA bundle: used
#     after the banner or not at all) is xz with 1 MiB blocks and the x86 BCJ filter,
#     the smallest.
# Measured (docs/IMAGE.md): all-zstd (level 22) boots as fast but makes the image 20.3 MiB.
#
# usage: image/mkrootfs.sh TARGET_DIR OUT.squashfs
set -eu
bcj=
if file -L "$1/bin/busybox" | grep -q 'x86-64'; then
    bcj="-Xbcj x86"
fi
# shellcheck disable=SC2086 # $bcj is two words or none
mksquashfs "$1" "$2" -noappend -all-root -comp xz -b 1M $bcj -quiet -no-progress \
    -action 'uncompressed@subpathname(usr/bin/outguard) || subpathname(bin) || subpathname(sbin) || subpathname(lib) || subpathname(usr/libexec) || subpathname(etc/init.d)'
