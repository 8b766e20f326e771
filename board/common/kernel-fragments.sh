#!/bin/sh
# Print the kernel config fragments of a board for a kernel version, one path a line:
# board/common/linux-required.fragment and linux-hardening.fragment, the board's
# linux.fragment (every version), and of the board's linux-<X.Y>.fragment files the one
# with the newest X.Y not newer than the kernel (options renamed between kernel versions,
# e.g. PAGE_TABLE_ISOLATION -> MITIGATION_PAGE_TABLE_ISOLATION in 6.9).
#
# usage: kernel-fragments.sh BOARD KERNEL_VERSION   (e.g. x86_64 6.1.0-57-amd64, x86_64 7.0.3)
set -eu

BOARD=${1:?usage: kernel-fragments.sh BOARD KERNEL_VERSION}
KVER=${2:?usage: kernel-fragments.sh BOARD KERNEL_VERSION}
COMMON_DIR=$(cd "$(dirname "$0")" && pwd)
BOARD_DIR=$(cd "$COMMON_DIR/.." && pwd)/$BOARD
[ -d "$BOARD_DIR" ] || { echo "kernel-fragments: no board directory $BOARD_DIR" >&2; exit 2; }

# X.Y of the kernel as one comparable number (6.9 -> 6009, 7.0 -> 7000).
num() {
    echo "$1" | awk -F'[.+-]' '$1 ~ /^[0-9]+$/ && $2 ~ /^[0-9]+$/ { print $1 * 1000 + $2; ok = 1 } END { exit !ok }'
}
k=$(num "$KVER") || { echo "kernel-fragments: cannot read a version X.Y from '$KVER'" >&2; exit 2; }

echo "$COMMON_DIR/linux-required.fragment"
echo "$COMMON_DIR/linux-hardening.fragment"
echo "$BOARD_DIR/linux.fragment"

best="" best_n=-1 any=0
for f in "$BOARD_DIR"/linux-[0-9]*.fragment; do
    [ -f "$f" ] || continue
    any=1
    v=${f##*/linux-}
    v=${v%.fragment}
    n=$(num "$v") || { echo "kernel-fragments: bad fragment name $f" >&2; exit 2; }
    if [ "$n" -le "$k" ] && [ "$n" -gt "$best_n" ]; then
        best=$f best_n=$n
    fi
done
if [ "$any" = 1 ] && [ -z "$best" ]; then
    echo "kernel-fragments: $BOARD has no linux-<version>.fragment for kernel $KVER (too old)" >&2
    exit 1
fi
[ -z "$best" ] || echo "$best"
