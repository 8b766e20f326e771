#!/bin/sh
# Install (with apt) everything `make image` / `make run` / `make image-test` need on a
# Debian 12 (bookworm) x86_64 machine. Run as root. Idempotent.
#
# The image parts themselves (kernel, busybox, GRUB modules for each architecture) are not
# installed on the host: image/fetch-parts.sh downloads those .debs with `apt-get download`
# and unpacks them under image/out/, so both architectures are handled the same way.
set -eu

export DEBIAN_FRONTEND=noninteractive

# arm64 is needed for the aarch64 Rust std (libstd-rust-web-dev:arm64) and for
# `apt-get download linux-image-arm64 busybox-static:arm64 grub-efi-arm64-bin:arm64`.
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    dpkg --add-architecture arm64
fi
apt-get update

# The last line: update keys (openssl), the RAUC stubs (gcc, readelf) and the libraries
# of the fetched amd64 rauc that makes bundles (image/bundle.sh).
# One apt call so rustc-web and its arm64 std have matching versions.
# Some machine images carry a backported qemu-utils (10.x) that Breaks bookworm's
# qemu-system-common 7.2: take qemu-utils from bookworm too (a downgrade if needed).
apt-get install -y --no-install-recommends --allow-downgrades \
    ca-certificates make cpio kmod xz-utils zstd file \
    genimage squashfs-tools e2fsprogs dosfstools mtools fdisk \
    grub-common \
    ovmf qemu-efi-aarch64 qemu-system-x86 qemu-system-arm qemu-utils/bookworm \
    swaks libnet-ssleay-perl libio-socket-ssl-perl python3 python3-pytest \
    rustc-web cargo-web libstd-rust-web-dev:arm64 \
    gcc-aarch64-linux-gnu libc6-dev-arm64-cross \
    shellcheck \
    openssl binutils gcc libglib2.0-0 libcurl3-gnutls libfdisk1 libssl3
