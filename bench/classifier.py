"""Classifier generalisation: the out-of-distribution protocol of
docs/SCANNING.md (`outguard-train scan-holdout`) and the CPU cost of one scan.

The held-out 30 % of each corpus folder is never used for a choice; the
figures printed here are the ones to quote. Targets (issue 11): hard-ham
FP <= 3 % at spam caught >= 97 %, ham FP <= 0.1 %, scan < 0.2 ms CPU per
5 KiB message.

Standalone: python3 bench/classifier.py [path/to/outguard-train] [corpus]
(the training tools' binary: cargo build --release --features tools).
"""

import os
import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
TARGETS = {"hard_ham_fp": 0.03, "spam_caught": 0.97, "ham_fp": 0.001, "scan_cpu_us": 200.0}


def parse(text):
    """Sections (A, B, C) with their per-threshold rows and calibration bins."""
    sections, current = {}, None
    for line in text.splitlines():
        m = re.match(r"held-out (\w), (.*)", line)
        if m:
            current = {"title": m.group(2), "rows": {}, "calibration": [], "default": None, "points": []}
            sections[m.group(1)] = current
            continue
        if current is None:
            continue
        # Operating points: "95 % caught (t  -2.62): 0.56 / 6.2 / 95.2, A 28.1".
        m = re.match(r"\s+(default|\d+ % caught) \(t\s+(-?[\d.]+)\): ([\d.]+) / ([\d.]+) / ([\d.]+), A ([\d.]+)", line)
        if m:
            current["points"].append(
                {"name": m.group(1), "t": float(m.group(2)), "ham_fp": float(m.group(3)) / 100,
                 "hard_ham_fp": float(m.group(4)) / 100, "caught": float(m.group(5)) / 100,
                 "a_hard_ham_fp": float(m.group(6)) / 100}
            )  # fmt: skip
            continue
        m = re.match(r"\s+(-?[\d.]+)\s+(.*?)(\s+<- default)?$", line)
        if m and "%" in m.group(2):
            cells = re.findall(r"([\d.]+) % \((\d+)\)", m.group(2))
            t = float(m.group(1))
            current["rows"][t] = [(float(p) / 100, int(n)) for p, n in cells]
            if m.group(3):
                current["default"] = t
            continue
        m = re.match(
            r"\s+p in \[([\d.]+), ([\d.]+)\):\s+(\d+) messages, mean p ([\d.]+), "
            r"observed spam ([\d.]+)",
            line,
        )
        if m:
            current["calibration"].append(
                {"bin": f"{m.group(1)}-{m.group(2)}", "n": int(m.group(3)),
                 "mean_p": float(m.group(4)), "observed": float(m.group(5))}
            )  # fmt: skip
    m = re.search(r"CPU ([\d.]+) us, wall ([\d.]+) us", text)
    scan = {"cpu_us": float(m.group(1)), "wall_us": float(m.group(2))} if m else None
    return sections, scan


def run(train_bin, corpus, log=print):
    log("classifier: outguard-train scan-holdout (held-out figures) and scan timing")
    p = subprocess.run(
        [str(train_bin), "scan-holdout", "--corpus", str(corpus),
         "--time", str(BENCH / "message.eml")],
        capture_output=True, text=True, timeout=900, check=True,
    )  # fmt: skip
    sections, scan = parse(p.stdout)
    header = re.search(r"ham (\d+) / hard-ham (\d+) / spam (\d+) held out", p.stdout)
    return {
        "held_out": [int(x) for x in header.groups()] if header else None,
        "sections": sections,
        "scan": scan,
        "raw": p.stdout,
    }


def markdown(res):
    ham, hard, spam = res["held_out"] or ("?", "?", "?")
    lines = [
        "",
        "Classifier generalisation (`bench/classifier.py`, docs/SCANNING.md: held-out 30 % "
        f"of each folder, {ham} ham / {hard} hard ham / {spam} spam, never used for a choice; "
        "default threshold):",
        "",
        "| protocol | ham FP | hard-ham FP | spam caught | target met |",
        "| --- | --- | --- | --- | --- |",
    ]
    for key, sec in sorted(res["sections"].items()):
        t = sec["default"]
        if t is None:
            continue
        (hf, hn), (hhf, hhn), (sc, sn) = sec["rows"][t]
        ok = hf <= TARGETS["ham_fp"] and hhf <= TARGETS["hard_ham_fp"] and sc >= TARGETS["spam_caught"]
        lines.append(
            f"| {key}: {sec['title'].split('(')[0].strip()} | {100 * hf:.2f} % ({hn}) "
            f"| {100 * hhf:.2f} % ({hhn}) | {100 * sc:.2f} % ({sn}) | {'yes' if ok else 'no'} |"
        )
    b = res["sections"].get("B")
    if b and b["points"]:
        lines += [
            "",
            "Protocol B at the thresholds catching 90, 95 and 97 % of the held-out spam "
            "(the issue's target is the 97 % row; A: hard-ham FP of protocol A there):",
            "",
            "| point | threshold | ham FP | hard-ham FP | spam caught | A hard-ham FP | target met |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for pt in b["points"]:
            ok = (pt["ham_fp"] <= TARGETS["ham_fp"] and pt["hard_ham_fp"] <= TARGETS["hard_ham_fp"]
                  and pt["caught"] >= TARGETS["spam_caught"])
            lines.append(
                f"| {pt['name']} | {pt['t']:.2f} | {100 * pt['ham_fp']:.2f} % | {100 * pt['hard_ham_fp']:.1f} % "
                f"| {100 * pt['caught']:.1f} % | {100 * pt['a_hard_ham_fp']:.1f} % | {'yes' if ok else 'no'} |"
            )
    if b:
        lines += ["", "Calibration, protocol B (classifier probability vs observed spam share):", ""]
        lines += ["| p | messages | mean p | observed spam |", "| --- | --- | --- | --- |"]
        for c in b["calibration"]:
            lines.append(f"| {c['bin']} | {c['n']} | {c['mean_p']:.3f} | {c['observed']:.3f} |")
    if res["scan"]:
        s = res["scan"]
        ok = "yes" if s["cpu_us"] < TARGETS["scan_cpu_us"] else "no"
        lines += [
            "",
            f"Scan of bench/message.eml: {s['cpu_us'] / 1000:.3f} ms CPU per message "
            f"(wall {s['wall_us'] / 1000:.3f} ms; target < 0.2 ms CPU: {ok}).",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    repo = BENCH.parent
    if len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        sys.exit(0)
    default_bin = os.environ.get("OUTGUARD_TRAIN_BIN", repo / "target/release/outguard-train")
    train_bin = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(default_bin)
    default = repo.parent / "shared/corpus/spamassassin-public-2002"
    corpus = Path(sys.argv[2] if len(sys.argv) > 2 else os.environ.get("BENCH_CORPUS", default))
    res = run(train_bin, corpus)
    print(res["raw"])
    print(markdown(res))
