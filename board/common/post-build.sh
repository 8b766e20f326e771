#!/bin/sh
# Outguard post-build script, shared by every board and by both builds:
#   Buildroot: BR2_ROOTFS_POST_BUILD_SCRIPT, called as  post-build.sh TARGET_DIR BOARD
#              (BR2_ROOTFS_POST_SCRIPT_ARGS="BOARD"), after the rootfs overlay was copied.
#   image/:    image/build.sh calls it the same way, with the same environment variables.
# It finishes the target tree that becomes the read-only root filesystem.
set -eu

TARGET_DIR=${1:?usage: post-build.sh TARGET_DIR BOARD}
BOARD=${2:?usage: post-build.sh TARGET_DIR BOARD}
COMMON_DIR=$(cd "$(dirname "$0")" && pwd)
BOARD_DIR=$(cd "$COMMON_DIR/.." && pwd)/$BOARD
# shellcheck source=../x86_64/meta
. "$BOARD_DIR/meta"

fail() {
    echo "post-build: $*" >&2
    exit 1
}

# Mount points: the root is read-only, so every one must exist in the image.
for d in boot data dev proc sys run tmp root; do
    mkdir -p "$TARGET_DIR/$d"
done
chmod 0700 "$TARGET_DIR/root"
chmod 1777 "$TARGET_DIR/tmp"

# The daemon resolves run_user by parsing /etc/passwd itself.
grep -q '^outguard:x:200:200:' "$TARGET_DIR/etc/passwd" || fail "etc/passwd has no outguard user (uid 200)"
grep -q '^outguard:x:200:' "$TARGET_DIR/etc/group" || fail "etc/group has no outguard group (gid 200)"
[ -x "$TARGET_DIR/sbin/init" ] || [ -L "$TARGET_DIR/sbin/init" ] || fail "no /sbin/init (busybox init)"
[ -x "$TARGET_DIR/usr/bin/outguard" ] || fail "no /usr/bin/outguard"

# Buildroot's skeleton and packages install sysv scripts (S01syslogd, S40network, ...):
# the appliance's rcS does all of it, so drop them to keep one boot path.
rm -f "$TARGET_DIR"/etc/init.d/S[0-9][0-9]*

# The kernel must have what the appliance needs and the hardening: catch a fragment that
# silently did not apply (a renamed or dependent option). The fragments depend on the
# kernel version (kernel-fragments.sh). Debian's kernel (image/) is taken as Debian ships
# it: its known differences from the hardening, each with how it is closed or why it
# remains, are listed in board/BOARD/debian-kernel.gap (docs/IMAGE.md); a board without
# that list is only checked for what the appliance needs.
kconfig=$(ls -d "${BUILD_DIR:?BUILD_DIR must be set}"/linux-[0-9]*/.config 2>/dev/null | head -n1)
[ -n "$kconfig" ] || fail "no kernel .config under $BUILD_DIR/linux-*/"
kver=$(basename "$(dirname "$kconfig")")
kver=${kver#linux-}
fragments=$("$COMMON_DIR/kernel-fragments.sh" "$BOARD" "$kver") || fail "no kernel fragments for $BOARD $kver"
if [ "${OUTGUARD_KERNEL_FROM:-buildroot}" = debian ]; then
    if [ -f "$BOARD_DIR/debian-kernel.gap" ]; then
        # shellcheck disable=SC2086 # one fragment path a word
        "$COMMON_DIR/check-kernel-config.sh" --modules-ok --accept "$BOARD_DIR/debian-kernel.gap" \
            "$kconfig" $fragments >/dev/null
    else
        "$COMMON_DIR/check-kernel-config.sh" --modules-ok "$kconfig" "$COMMON_DIR/linux-required.fragment"
    fi
else
    # shellcheck disable=SC2086
    "$COMMON_DIR/check-kernel-config.sh" "$kconfig" $fragments
fi

# RAUC: the board's compatible string (bundles for another board are refused) and the
# update CA (image/build.sh installs it; a Buildroot build names it in OUTGUARD_RAUC_CA).
if [ -f "$TARGET_DIR/etc/rauc/system.conf" ]; then
    sed -i "s|@COMPATIBLE@|outguard-$BOARD_NAME|" "$TARGET_DIR/etc/rauc/system.conf"
    if [ -n "${OUTGUARD_RAUC_CA:-}" ]; then
        install -D -m 0644 "$OUTGUARD_RAUC_CA" "$TARGET_DIR/etc/rauc/ca.cert.pem"
    fi
    if [ ! -f "$TARGET_DIR/etc/rauc/ca.cert.pem" ]; then
        # A Buildroot build without OUTGUARD_RAUC_CA: development keys in its output
        # directory, as image/build.sh makes them (sign bundles with those, or set the CA).
        keys=${BASE_DIR:?BASE_DIR must be set}/keys
        "$COMMON_DIR/../../image/keys.sh" "$keys" || fail "cannot make development update keys"
        echo "post-build: update CA: development keys in $keys (set OUTGUARD_RAUC_CA for your own)"
        install -D -m 0644 "$keys/ca.cert.pem" "$TARGET_DIR/etc/rauc/ca.cert.pem"
    fi
fi

# --- the slot's initramfs -----------------------------------------------------------------
# The kernel (Buildroot's, or Debian's that image/build.sh puts there) and this initramfs go
# into the slot's kernel partition (post-image.sh: kernel.vfat, a RAUC child slot of the
# root slot), so an A/B update replaces kernel, initramfs and root together. The initramfs:
# busybox, /init and the boot modules, all taken from TARGET_DIR.
[ -f "${BINARIES_DIR:?BINARIES_DIR must be set}/$BOARD_KERNEL" ] || fail "no kernel $BINARIES_DIR/$BOARD_KERNEL"
# the layout before kernel partitions kept them in the root: never ship a stale copy
rm -rf "$TARGET_DIR/usr/lib/outguard-boot"
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
# The kernel's modules live in the initramfs only, on the kernel partition with the kernel
# they were built for: the initramfs loads every one the boot needs and rcS then disables
# module loading, so a copy in the root would only take room. They are moved out of
# TARGET_DIR (a Buildroot rerun of this script, with no newly installed modules, takes
# the copy kept in BUILD_DIR).
mods=$BUILD_DIR/outguard-modules
if [ -d "$TARGET_DIR/lib/modules" ]; then
    rm -rf "$mods"
    mkdir -p "$mods"
    cp -a "$TARGET_DIR/lib/modules" "$mods/"
    rm -rf "$TARGET_DIR/lib/modules"
fi
if [ -d "$mods/modules" ]; then
    mkdir -p "$ird/lib"
    cp -a "$mods/modules" "$ird/lib/"
    for m in $BOARD_BOOT_MODULES; do
        echo "$m"
    done > "$ird/etc/modules-boot"
fi
# Uncompressed: GRUB reads 2 MB from the FAT partition faster than an emulated kernel
# unpacks it, and the disk image and bundles are compressed as a whole anyway.
(cd "$ird" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) > "$BINARIES_DIR/initrd.img"

version=${OUTGUARD_VERSION:-unknown}
cat > "$TARGET_DIR/etc/os-release" <<OSR
NAME=Outguard
ID=outguard
PRETTY_NAME="Outguard $version ($BOARD_NAME)"
VERSION_ID=$version
OSR

# Nothing on the root may be setuid/setgid: the appliance has no use for it.
find "$TARGET_DIR" -xdev -type f -perm /6000 -exec chmod ug-s {} +
echo "post-build: $BOARD target tree ready ($TARGET_DIR)"
