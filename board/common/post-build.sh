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

# The kernel must have what the appliance needs (and, when Buildroot built it, the
# hardening): catch a fragment that silently did not apply.
kconfig=$(ls -d "${BUILD_DIR:?BUILD_DIR must be set}"/linux-[0-9]*/.config 2>/dev/null | head -n1)
[ -n "$kconfig" ] || fail "no kernel .config under $BUILD_DIR/linux-*/"
if [ "${OUTGUARD_KERNEL_FROM:-buildroot}" = debian ]; then
    "$COMMON_DIR/check-kernel-config.sh" --modules-ok "$kconfig" "$COMMON_DIR/linux-required.fragment"
else
    "$COMMON_DIR/check-kernel-config.sh" "$kconfig" "$COMMON_DIR/linux-required.fragment" \
        "$COMMON_DIR/linux-hardening.fragment" "$BOARD_DIR/linux.fragment"
fi

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
