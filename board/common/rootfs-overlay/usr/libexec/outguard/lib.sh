# Shared helpers for the Outguard appliance's init scripts (busybox ash). Sourced, not run.
# shellcheck shell=sh disable=SC2034

OG_CONFIG=/etc/outguard/outguard.toml
OG_DATA=/data
OG_PROVISION_DIR=/boot/provision

# og_log MESSAGE...: to the console (visible on the serial line) and to syslog.
og_log() {
    echo "outguard-init: $*" > /dev/console 2>/dev/null || true
    logger -t outguard-init -- "$*" 2>/dev/null || true
}

# og_partdev PARTLABEL: print /dev/NAME of the GPT partition whose label is PARTLABEL.
og_partdev() {
    for u in /sys/class/block/*/uevent; do
        if grep -qx "PARTNAME=$1" "$u" 2>/dev/null; then
            sed -n 's/^DEVNAME=//p' "$u" | sed 's|^|/dev/|'
            return 0
        fi
    done
    return 1
}

# og_cmdline KEY DEFAULT: value of KEY=VALUE on the kernel command line.
og_cmdline() {
    for w in $(cat /proc/cmdline); do
        case "$w" in
            "$1="*) echo "${w#*=}"; return 0 ;;
        esac
    done
    echo "$2"
}

# og_is_extfs DEV: true if DEV carries an ext2/3/4 superblock (magic 0xEF53 at byte 1080).
og_is_extfs() {
    magic=$(dd if="$1" bs=1 skip=1080 count=2 2>/dev/null | od -An -tx1 | tr -d ' \n')
    [ "$magic" = "53ef" ]
}

# og_mounted DIR: true if something is mounted on DIR (busybox-static has no mountpoint).
og_mounted() {
    awk -v d="$1" '$2 == d { found = 1 } END { exit !found }' /proc/mounts
}

# og_write_atomic FILE MODE: write stdin to FILE so that a power cut leaves either the old
# FILE or the whole new one, never an empty or partial file: a temporary file next to it,
# flushed to disk, renamed over FILE, then the directory (holding the rename) flushed.
# Empty input is refused: it means the command feeding the pipe failed (a pipeline's status
# is its last command's), and every file written this way must have content.
og_write_atomic() {
    og_tmp="$1.tmp.$$"
    if cat > "$og_tmp" && [ -s "$og_tmp" ] && chmod "$2" "$og_tmp" && sync "$og_tmp" && mv -f "$og_tmp" "$1" \
        && sync "$(dirname "$1")"; then
        return 0
    fi
    rm -f "$og_tmp"
    return 1
}
