"""Print, per architecture, the image's size and its boot-to-banner time: seconds from
QEMU's start (UEFI firmware, GRUB, kernel, initramfs, first-boot data filesystem, the
daemon generating its TLS key) to the SMTP banner read through the forwarded port.

usage: python3 image/report.py [ARCH...] [--boots N]     (default: x86_64 aarch64, 1 boot)
Each boot uses a fresh copy of the built image, so each is a first boot.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

import ogvm


def sizes(arch: str) -> dict[str, int]:
    d = ogvm.IMAGE_OUT / arch / "images"
    img = d / f"outguard-{arch}.img"
    st = img.stat()
    kernel = "bzImage" if arch == "x86_64" else "Image"
    return {
        "disk (apparent)": st.st_size,
        "disk (allocated)": st.st_blocks * 512,
        "disk (xz -1)": len(subprocess.run(["xz", "-1", "-T1", "-c", str(img)],
                                          capture_output=True, check=True).stdout),
        "rootfs.squashfs": (d / "rootfs.squashfs").stat().st_size,
        "kernel": (d / kernel).stat().st_size,
        "initrd.img": (d / "initrd.img").stat().st_size,
        "outguard binary": (ogvm.IMAGE_OUT / arch / "target/usr/bin/outguard").stat().st_size,
    }


def boot_times(arch: str, boots: int) -> list[float]:
    times = []
    with tempfile.TemporaryDirectory(prefix=f"og-report-{arch}-") as tmp:
        for i in range(boots):
            work = Path(tmp) / str(i)
            disk = ogvm.fresh_disk(arch, work)
            vm = ogvm.VM(arch, disk, work / "console.log").start()
            try:
                _, secs = vm.wait_banner(600)
                times.append(secs)
            finally:
                vm.kill()
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("arch", nargs="*", default=["x86_64", "aarch64"])
    ap.add_argument("--boots", type=int, default=int(os.environ.get("BOOTS", "1")))
    args = ap.parse_args()
    for arch in args.arch:
        ogvm.build_image(arch)
        print(f"== {arch}")
        for k, v in sizes(arch).items():
            print(f"  {k:18} {v / 1048576:8.1f} MiB")
        t = boot_times(arch, args.boots)
        med = statistics.median(t)
        print(f"  boot-to-banner     {med:8.1f} s  (median of {len(t)}: "
              + ", ".join(f"{x:.1f}" for x in t) + "; QEMU TCG, no KVM)")


if __name__ == "__main__":
    main()
