#!/bin/sh
# Build the static outguard binary for ARCH from the crate at the repository root and print
# its path. x86_64: the machine's rustup toolchain. aarch64: Debian's rustc-web cross
# toolchain (/usr/bin/cargo + /usr/bin/rustc, linker aarch64-linux-gnu-gcc).
#
# usage: image/build-daemon.sh ARCH CARGO_TARGET_DIR
set -eu

ARCH=$1
export CARGO_TARGET_DIR="$2"
TOP=$(cd "$(dirname "$0")/.." && pwd)
# A statically linked glibc has no dlsym, so the getrandom crate (0.3/0.4) would take
# getrandom(2) for missing and fall back to polling /dev/random, which the daemon's landlock
# ruleset (rightly) does not open: the first random number then panics. Tell it to call
# the system call directly.
STATIC_RUSTFLAGS='-C target-feature=+crt-static --cfg getrandom_backend="linux_getrandom"'
# Leave a core to the rest of the machine unless told otherwise.
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}"

case "$ARCH" in
    x86_64)
        triple=x86_64-unknown-linux-gnu
        RUSTFLAGS=$STATIC_RUSTFLAGS \
            cargo build --quiet --release --locked --manifest-path "$TOP/Cargo.toml" --target "$triple" >&2
        ;;
    aarch64)
        triple=aarch64-unknown-linux-gnu
        if [ ! -x /usr/bin/cargo ] || [ ! -x /usr/bin/rustc ]; then
            echo "build-daemon: Debian's cargo-web/rustc-web are missing: run image/deps.sh" >&2
            exit 1
        fi
        have=$(/usr/bin/rustc --version | sed 's/^rustc \([0-9]*\.[0-9]*\).*/\1/')
        need=$(sed -n 's/^rust-version *= *"\(.*\)"/\1/p' "$TOP/Cargo.toml" | head -n1)
        if [ -n "$need" ] && [ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -n1)" != "$need" ]; then
            echo "build-daemon: the crate needs rust $need, Debian's rustc-web is $have" >&2
            exit 1
        fi
        RUSTC=/usr/bin/rustc \
        CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
        CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS=$STATIC_RUSTFLAGS \
            /usr/bin/cargo build --quiet --release --locked --manifest-path "$TOP/Cargo.toml" --target "$triple" >&2 || {
                echo "build-daemon: aarch64 build failed; a dependency may need a newer rust than $have (cargo tree --target $triple; check rust-version)" >&2
                exit 1
            }
        ;;
    *) echo "build-daemon: unknown ARCH $ARCH" >&2; exit 2 ;;
esac

bin=$CARGO_TARGET_DIR/$triple/release/outguard
file -L "$bin" | grep -q 'statically linked\|static-pie' || {
    echo "build-daemon: $bin is not statically linked" >&2
    exit 1
}
echo "$bin"
