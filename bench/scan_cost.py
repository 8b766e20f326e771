"""A/B of the scan's CPU cost: two `outguard-train` binaries (release
builds, `--features tools`), each timing `SCAN_ROUNDS` rounds of 5000 scans
of every message given, the two binaries alternating (order swapped every
round) so that load on a shared machine falls on both alike. The figure is
the thread CPU time per scan that `scan-holdout --time FILE` prints (the
corpus argument is not read for the timing; it need not exist).

    cp target/release/outguard-train /tmp/og-train-base   # on the base commit
    SCAN_BASE=/tmp/og-train-base SCAN_NEW=target/release/outguard-train \
        python3 bench/scan_cost.py [MESSAGE...]          # default: message.eml

Prints each run, then per message the median CPU time per scan of each
binary and new/base (the ratio is what to compare across machines).
"""
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BINS = {"base": os.environ["SCAN_BASE"], "new": os.environ["SCAN_NEW"]}
ROUNDS = int(os.environ.get("SCAN_ROUNDS", "5"))
MESSAGES = sys.argv[1:] or [str(HERE / "message.eml")]
LINE = re.compile(r"CPU ([0-9.]+) us, wall ([0-9.]+) us")


def cpu_us(binary, message):
    out = subprocess.run(
        [binary, "scan-holdout", "--corpus", "/nonexistent-corpus", "--tune", "--time", message],
        capture_output=True, text=True,
    ).stdout
    m = LINE.search(out)
    if not m:
        sys.exit(f"{binary}: no timing line in {out!r}")
    return float(m.group(1))


res = {(b, m): [] for b in BINS for m in MESSAGES}
for rnd in range(ROUNDS):
    order = list(BINS) if rnd % 2 == 0 else list(reversed(BINS))
    for m in MESSAGES:
        for b in order:
            us = cpu_us(BINS[b], m)
            res[(b, m)].append(us)
            print(f"round {rnd + 1} {b:4} {Path(m).name}: {us:.1f} us", flush=True)

print(f"load average: {os.getloadavg()[0]:.2f}")
for m in MESSAGES:
    base = statistics.median(res[("base", m)])
    new = statistics.median(res[("new", m)])
    ratios = [n / b for n, b in zip(res[("new", m)], res[("base", m)])]
    print(
        f"{Path(m).name} ({Path(m).stat().st_size} bytes): base {base:.1f} us, new {new:.1f} us, "
        f"new/base {new / base:.3f} (per round {min(ratios):.3f}-{max(ratios):.3f})"
    )
