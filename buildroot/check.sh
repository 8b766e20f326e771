#!/bin/sh
# Offline checks of this br2-external against a Buildroot tree (no download, no build):
#   1. toolchain: the Rust that Buildroot ships (package/rust, package/rust-bin) is at
#      least the crate's rust-version (Cargo.toml), and every locked package the daemon
#      builds declares a rust-version no newer than that (check-msrv.sh)
#   2. per defconfig: it loads (make defconfig with BR2_EXTERNAL), every option it sets
#      is in the resulting .config (a renamed or removed option is dropped silently), and
#      what savedefconfig writes back differs from it only by defaults set on purpose
#   3. make show-info lists the outguard package
#   4. utils/check-package on every file of the tree (needs python3-magic, python3-flake8
#      and shellcheck for /usr/bin/python3)
#   5. legal-info's license check: LICENSE against package/outguard/outguard.hash, with
#      Buildroot's own support/download/check-hash
#
# usage: buildroot/check.sh BUILDROOT_DIR     (exit 0: every check passed)
#   WORK=dir   output directories (default: a temporary directory, removed afterwards)
set -eu

BR=$(cd "${1:?usage: check.sh BUILDROOT_DIR}" && pwd)
EXT=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$EXT/.." && pwd)
if [ ! -f "$BR/Makefile" ] || [ ! -d "$BR/package" ]; then
    echo "check: $BR is not a Buildroot tree" >&2
    exit 2
fi
if [ -n "${WORK:-}" ]; then
    mkdir -p "$WORK"
else
    WORK=$(mktemp -d)
    trap 'rm -rf "$WORK"' EXIT
fi

failed=0
pass() { echo "PASS  $*"; }
fail() { echo "FAIL  $*"; failed=1; }

brversion=$(sed -n 's/^export BR2_VERSION := //p' "$BR/Makefile")
echo "check: Buildroot $brversion ($BR), br2-external $EXT"

# --- 1. toolchain ----------------------------------------------------------------------
# X.Y[.Z] as a comparable number.
vnum() {
    echo "$1" | awk -F. '{ printf "%d\n", $1 * 1000000 + $2 * 1000 + $3 }'
}
need=$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' "$TOP/Cargo.toml")
[ -n "$need" ] || { echo "check: no rust-version in $TOP/Cargo.toml" >&2; exit 2; }
for mk in rust/rust.mk rust-bin/rust-bin.mk; do
    have=$(sed -n 's/^RUST\(_BIN\)\?_VERSION = \([0-9.]*\)$/\2/p' "$BR/package/$mk")
    if [ -z "$have" ]; then
        fail "toolchain: no version in package/$mk"
    elif [ "$(vnum "$have")" -ge "$(vnum "$need")" ]; then
        pass "toolchain: package/$mk ships Rust $have, the crate needs $need"
    else
        fail "toolchain: package/$mk ships Rust $have, the crate needs $need (Cargo.toml rust-version)"
    fi
done
if msrv=$("$EXT/check-msrv.sh" 2>&1); then
    pass "toolchain: Cargo.lock: ${msrv#PASS  msrv: }"
else
    fail "toolchain: Cargo.lock: ${msrv#FAIL  msrv: }"
fi

# --- 2. and 3. defconfigs, savedefconfig, show-info ------------------------------------
for def in "$EXT"/configs/*_defconfig; do
    name=${def##*/}
    out=$WORK/${name%_defconfig}
    if ! make -s -C "$BR" O="$out" BR2_EXTERNAL="$EXT" "$name" > "$out.log" 2>&1; then
        fail "$name: make defconfig failed ($(tail -n1 "$out.log"))"
        continue
    fi
    pass "$name: loads"
    # Every assignment must survive into .config (make expands $(BR2_EXTERNAL_...) only
    # later, so the text is compared as written).
    dropped=""
    while IFS= read -r line; do
        case "$line" in
            BR2_*=*)
                grep -qxF "$line" "$out/.config" || dropped="$dropped ${line%%=*}"
                ;;
        esac
    done < "$def"
    if [ -z "$dropped" ]; then
        pass "$name: every option it sets is in .config"
    else
        fail "$name: dropped or changed by this Buildroot:$dropped"
    fi
    make -s -C "$BR" O="$out" savedefconfig BR2_DEFCONFIG="$out/saved_defconfig" >> "$out.log" 2>&1
    added=$(grep -vxF -f "$def" "$out/saved_defconfig" | tr '\n' ' ' | sed 's/ $//' || true)
    defaults=$(grep -vxF -f "$out/saved_defconfig" "$def" | sed 's/=.*//' | tr '\n' ' ' | sed 's/ $//' || true)
    if [ -n "$added" ]; then
        fail "$name: savedefconfig adds $added"
    else
        pass "$name: savedefconfig adds nothing; leaves out the defaults it sets on purpose: ${defaults:-none}"
    fi
    if make -s -C "$BR" O="$out" show-info > "$out/show-info.json" 2>> "$out.log" &&
        info=$(/usr/bin/python3 - "$out/show-info.json" <<'PY'
import json, sys
info = json.load(open(sys.argv[1]))
og = info.get("outguard")
if not og:
    sys.exit("no outguard package")
rust = info.get("host-rustc", {}).get("dependencies", [])
print(info.get("linux", {}).get("version", "?"))
print(f"{len(info)} packages, outguard {og.get('version', '?')[:12]}, "
      f"license {og.get('licenses', '?')}, host-rustc from {'+'.join(rust) or '?'}, "
      f"kernel {info.get('linux', {}).get('version', '?')}")
PY
        ); then
        pass "$name: show-info: $(echo "$info" | tail -n1)"
        # post-build checks the kernel against these fragments: they must exist for it.
        kver=$(echo "$info" | head -n1)
        board=$(sed -n 's/^BR2_ROOTFS_POST_SCRIPT_ARGS="\(.*\)"$/\1/p' "$def")
        if frags=$("$TOP/board/common/kernel-fragments.sh" "$board" "$kver" 2>&1); then
            frags=$(echo "$frags" | sed "s|^$TOP/||" | tr '\n' ' ')
            pass "$name: kernel $kver: fragments $frags"
            for f in $frags; do
                case "$f" in
                    *"/$board/linux-"[0-9]*) grep -q "$f" "$def" || fail "$name: the defconfig does not list $f for kernel $kver" ;;
                esac
            done
        else
            fail "$name: kernel $kver: $frags"
        fi
    else
        fail "$name: show-info: ${info:-failed}"
    fi
done

# --- 4. check-package -------------------------------------------------------------------
if /usr/bin/python3 -c 'import magic, flake8' 2>/dev/null && command -v shellcheck >/dev/null; then
    # shellcheck disable=SC2046 # file list
    if (cd "$EXT" && /usr/bin/python3 "$BR/utils/check-package" -b \
        $(find . -type f ! -name '*.md' ! -name 'check*.sh' | sort)) > "$WORK/check-package.log" 2>&1; then
        pass "check-package: $(tail -n1 "$WORK/check-package.log")"
    else
        fail "check-package: $(grep -v '^[0-9]* lines processed' "$WORK/check-package.log" | tr '\n' ' ')"
    fi
else
    fail "check-package: needs python3-magic, python3-flake8 (for /usr/bin/python3) and shellcheck"
fi

# --- 5. legal-info's license check -------------------------------------------------------
if BR_NO_CHECK_HASH_FOR="" "$BR/support/download/check-hash" -q "$TOP/LICENSE" LICENSE \
    "$EXT/package/outguard/outguard.hash"; then
    pass "legal-info: LICENSE matches package/outguard/outguard.hash"
else
    fail "legal-info: LICENSE does not match package/outguard/outguard.hash (exit $?)"
fi

if [ "$failed" != 0 ]; then
    echo "check: FAILED against Buildroot $brversion"
    exit 1
fi
echo "check: all passed against Buildroot $brversion"
