#!/bin/sh
# Boot an Outguard image in QEMU (software emulation) with UEFI firmware (OVMF / AAVMF from
# Debian), the serial console on this terminal, and host port forwards on 127.0.0.1:
#   SMTP_PORT (2587) -> 587 submission, SMTPS_PORT (2465) -> 465, ADMIN_PORT (8443) -> 8443
# (environment variables, or on make's command line: make run SMTP_PORT=12587).
#
# usage: image/run.sh ARCH
#   DISK=path        disk to boot (default image/out/ARCH/run/disk.img, a copy of the built
#                    image made on first use, so state persists across runs; FRESH=1 recopies)
#   PROVISION=dir    copy provision.conf / users.csv from dir into the ESP's /provision first
#   VARS=path        UEFI variable store (default next to the disk)
#   REBOOT=1         a guest reset (reboot, watchdog) restarts the VM instead of ending QEMU
# Quit with Ctrl-A X (or `poweroff` in the guest).
set -eu

ARCH=${1:?usage: run.sh x86_64|aarch64}
TOP=$(cd "$(dirname "$0")/.." && pwd)
OUT=${IMAGE_OUT:-$TOP/image/out}/$ARCH
IMG=$OUT/images/outguard-$ARCH.img
SMTP_PORT=${SMTP_PORT:-2587}
SMTPS_PORT=${SMTPS_PORT:-2465}
ADMIN_PORT=${ADMIN_PORT:-8443}

# A host port already in use makes QEMU fail with a terse hostfwd error: check each one
# first and name it, with the variable that moves it.
for spec in "SMTP_PORT=$SMTP_PORT" "SMTPS_PORT=$SMTPS_PORT" "ADMIN_PORT=$ADMIN_PORT"; do
    var=${spec%%=*}
    port=${spec#*=}
    case "$port" in
        ''|*[!0-9]*) echo "run: $var=$port is not a port number" >&2; exit 2 ;;
    esac
    if ! python3 -c 'import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))' "$port" 2>/dev/null; then
        echo "run: 127.0.0.1:$port ($var) is already in use (another run or service?);" \
            "choose another port, e.g. make run $var=$((port + 10000))" >&2
        exit 1
    fi
done

if [ -z "${DISK:-}" ]; then
    DISK=$OUT/run/disk.img
    [ -f "$IMG" ] || { echo "run: no $IMG: run 'make image ARCH=$ARCH' first" >&2; exit 1; }
    if [ ! -f "$DISK" ] || [ "${FRESH:-0}" = 1 ]; then
        mkdir -p "$(dirname "$DISK")"
        cp --sparse=always "$IMG" "$DISK"
        rm -f "$(dirname "$DISK")/vars.fd"
    fi
fi
VARS=${VARS:-$(dirname "$DISK")/vars.fd}

if [ -n "${PROVISION:-}" ]; then
    "$TOP/image/provision.sh" "$DISK" "$PROVISION"
fi

net="user,id=net0,hostfwd=tcp:127.0.0.1:$SMTP_PORT-:587,hostfwd=tcp:127.0.0.1:$SMTPS_PORT-:465,hostfwd=tcp:127.0.0.1:$ADMIN_PORT-:8443"
# i6300esb: the hardware watchdog the appliance feeds while its daemon is healthy.
common="-m 512 -smp 1 -nodefaults -display none -serial mon:stdio -boot strict=on -device i6300esb"
[ "${REBOOT:-0}" = 1 ] || common="$common -no-reboot"

case "$ARCH" in
    x86_64)
        [ -f "$VARS" ] || cp /usr/share/OVMF/OVMF_VARS.fd "$VARS"
        # bochs-display: a display adapter (never shown, -display none) so OVMF offers GRUB
        # a graphics mode to hand the kernel; without one GRUB prints "no suitable video
        # mode found" on every boot (real PCs have one).
        # shellcheck disable=SC2086
        exec qemu-system-x86_64 -machine q35,accel=tcg $common \
            -drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE.fd \
            -drive if=pflash,format=raw,file="$VARS" \
            -drive if=none,id=disk0,format=raw,file="$DISK" \
            -device virtio-blk-pci,drive=disk0,bootindex=0 \
            -netdev "$net" -device virtio-net-pci,netdev=net0 \
            -device virtio-rng-pci \
            -device bochs-display
        ;;
    aarch64)
        [ -f "$VARS" ] || cp /usr/share/AAVMF/AAVMF_VARS.fd "$VARS"
        # shellcheck disable=SC2086
        exec qemu-system-aarch64 -machine virt,accel=tcg -cpu cortex-a57 $common \
            -boot menu=on,splash-time=0 \
            -drive if=pflash,format=raw,readonly=on,file=/usr/share/AAVMF/AAVMF_CODE.fd \
            -drive if=pflash,format=raw,file="$VARS" \
            -drive if=none,id=disk0,format=raw,file="$DISK" \
            -device virtio-blk-pci,drive=disk0,bootindex=0 \
            -netdev "$net" -device virtio-net-pci,netdev=net0 \
            -device virtio-rng-pci
        ;;
    *) echo "run: unknown ARCH $ARCH" >&2; exit 2 ;;
esac
