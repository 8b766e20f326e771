#!/bin/sh
# Check that a kernel .config has what the fragments ask for (a fragment that silently did
# not apply — a renamed or dependent option — is caught here, not at run time).
#
# usage: check-kernel-config.sh [--modules-ok] KERNEL_CONFIG FRAGMENT...
#   CONFIG_X=y          must be =y (or =m with --modules-ok: Debian's kernel + initramfs)
#   CONFIG_X="v" / =v   must be exactly that
#   # CONFIG_X is not set   must not be =y or =m
set -eu

modules_ok=0
if [ "${1:-}" = --modules-ok ]; then
    modules_ok=1
    shift
fi
config=${1:?usage: check-kernel-config.sh [--modules-ok] CONFIG FRAGMENT...}
shift

bad=0
for frag in "$@"; do
    while IFS= read -r line; do
        case "$line" in
            "# CONFIG_"*" is not set")
                opt=${line#"# "}
                opt=${opt%" is not set"}
                if grep -Eq "^$opt=(y|m)$" "$config"; then
                    echo "kernel config: $opt is enabled, $frag wants it off" >&2
                    bad=1
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
                echo "kernel config: $opt=${have:-<unset>}, $frag wants $want" >&2
                bad=1
                ;;
        esac
    done < "$frag"
done
if [ "$bad" != 0 ]; then
    exit 1
fi
echo "kernel config: $config has every option of $*"
