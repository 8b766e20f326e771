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
# One grep over every uevent file: a loop of a grep per block device (loop0-7 first) cost
# 0.15 s a call at boot under emulation.
og_partdev() {
    set -- "$(grep -lx "PARTNAME=$1" /sys/class/block/*/uevent 2>/dev/null)"
    set -- "${1%%
*}"
    [ -n "$1" ] || return 1
    set -- "$(sed -n 's/^DEVNAME=//p' "$1")"
    [ -n "$1" ] || return 1
    echo "/dev/$1"
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

# Set by supervise once the daemon has answered SMTP this boot (or after OG_UP_BOUND
# seconds without a banner, so that nothing waits for a daemon that never starts).
OG_UP=/run/outguard/daemon-up
OG_UP_BOUND=60

# og_wait_up SECONDS: wait, at most SECONDS, for $OG_UP. The services the first banner does
# not need (log keeper, update agent, NTP, slot health) start with this, so that on a
# one-core box the boot's CPU and disk go to the daemon first: each of them starting
# beside it cost 0.1-0.2 s of boot-to-banner under emulation, and lowering their priority
# did not help (the cost is exec, page faults and squashfs reads, not fair-share CPU).
og_wait_up() {
    og_n=0
    while [ ! -e "$OG_UP" ] && [ "$og_n" -lt "$1" ]; do
        sleep 1
        og_n=$((og_n + 1))
    done
}
