"""Boot-to-banner of several x86_64 or aarch64 disk images, interleaved: each round boots
every image once (a first boot on a fresh copy), so a change in the machine's load hits
all of them alike. For comparing image variants, e.g. a build of main against a branch's.

usage: python3 image/bootbench.py [--arch x86_64] [--rounds 3] [--keep DIR] IMAGE...

--keep DIR keeps each boot's console log and its `.ts` twin (seconds since QEMU started
before each line) in DIR, named ROUND-IMAGE, to see which phase of the boot differs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

import ogvm


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("images", nargs="+", type=Path)
    ap.add_argument("--arch", default="x86_64")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--keep", type=Path, help="keep the console logs here")
    args = ap.parse_args()
    times: dict[Path, list[float]] = {i: [] for i in args.images}
    with tempfile.TemporaryDirectory(prefix="og-bootbench-") as tmp:
        for r in range(args.rounds):
            for img in args.images:
                work = Path(tmp) / f"{r}-{len(times[img])}-{img.stem}"
                work.mkdir()
                disk = work / "disk.img"
                subprocess.run(["cp", "--sparse=always", str(img), str(disk)], check=True)
                load = os.getloadavg()[0]
                vm = ogvm.VM(args.arch, disk, work / "console.log").start()
                try:
                    _, secs = vm.wait_banner(600)
                finally:
                    vm.kill()
                times[img].append(secs)
                print(f"round {r + 1} {img}: {secs:.1f} s (load {load:.1f})", flush=True)
                if args.keep:
                    args.keep.mkdir(parents=True, exist_ok=True)
                    for log in ("console.log", "console.log.ts"):
                        if (work / log).exists():
                            shutil.copy(work / log, args.keep / f"{r + 1}-{img.stem}.{log}")
                shutil.rmtree(work)
    for img, t in times.items():
        print(f"{img}: median {statistics.median(t):.1f} s ("
              + ", ".join(f"{x:.1f}" for x in t) + ")")


if __name__ == "__main__":
    main()
