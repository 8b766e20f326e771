#!/bin/sh
# Check that a kernel .config has what the fragments ask for (a fragment that silently did
# not apply — a renamed or dependent option — is caught here, not at run time).
#
# usage: check-kernel-config.sh [--modules-ok] [--accept GAPS] KERNEL_CONFIG FRAGMENT...
#   CONFIG_X=y          must be =y (or =m with --modules-ok: Debian's kernel + initramfs)
#   CONFIG_X="v" / =v   must be exactly that
#   # CONFIG_X is not set   must not be =y or =m
# --accept GAPS: a file of "CONFIG_X  reason" lines, differences known and accepted (a
# kernel taken as its distribution ships it): reported, not failed. An accepted option
# the kernel no longer differs on is reported too, so the list does not go stale.
set -eu

modules_ok=0
accept=/dev/null
while :; do
    case "${1:-}" in
        --modules-ok) modules_ok=1; shift ;;
        --accept) accept=${2:?--accept needs a file}; shift 2 ;;
        *) break ;;
    esac
done
config=${1:?usage: check-kernel-config.sh [--modules-ok] CONFIG FRAGMENT...}
shift

# accepted CONFIG_X: true if CONFIG_X is listed (with a reason) in the --accept file.
accepted() {
    grep -Eq "^$1[[:space:]]+[^[:space:]]" "$accept"
}
bad=0
seen=""
differs() {
    if accepted "$1"; then
        echo "kernel config: $2 (accepted: $(sed -n "s/^$1[[:space:]][[:space:]]*//p" "$accept"))"
        seen="$seen $1"
    else
        echo "kernel config: $2" >&2
        bad=1
    fi
}
for frag in "$@"; do
    while IFS= read -r line; do
        case "$line" in
            "# CONFIG_"*" is not set")
                opt=${line#"# "}
                opt=${opt%" is not set"}
                if grep -Eq "^$opt=(y|m)$" "$config"; then
                    differs "$opt" "$opt is enabled, $frag wants it off"
                fi
                ;;
            CONFIG_*=*)
                opt=${line%%=*}
                want=${line#*=}
                have=$(sed -n "s/^$opt=//p" "$config")
                if [ "$have" = "$want" ]; then
                    continue
                fi
                if [ "$want" = y ] && [ "$have" = m ] && [ "$modules_ok" = 1 ]; then
                    continue
                fi
                differs "$opt" "$opt=${have:-<unset>}, $frag wants $want"
                ;;
        esac
    done < "$frag"
done
# shellcheck disable=SC2013 # option names: one word a line
for opt in $(sed -n 's/^\(CONFIG_[A-Z0-9_]*\).*/\1/p' "$accept"); do
    case " $seen " in
        *" $opt "*) ;;
        *) echo "kernel config: $opt is listed in $accept but does not differ: remove it" >&2; bad=1 ;;
    esac
done
if [ "$bad" != 0 ]; then
    exit 1
fi
echo "kernel config: $config has every option of $*"
