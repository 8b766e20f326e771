#!/usr/bin/env python3
"""CPU profile of Outguard under the bench's loads (perf, cpu-clock).

    OUTGUARD_BIN=/path/to/outguard-with-symbols python3 bench/profile.py

The release profile strips symbols; build one with them, e.g.
    CARGO_PROFILE_RELEASE_STRIP=false CARGO_PROFILE_RELEASE_DEBUG=1 \\
    CARGO_TARGET_DIR=/tmp/og-prof cargo build --release
Writes bench/out/profile-<load>.txt (perf report, flat and by caller).
The VM here has no hardware counters, so the software cpu-clock event is
sampled. Loads are bounded (BENCH_COUNT messages) and on 127.0.0.1.
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402


def profile(name, mode, sessions, scan, count):
    tmp = tempfile.mkdtemp(prefix="og-prof-")
    os.chmod(tmp, 0o755)
    cert, key = f"{tmp}/cert.pem", f"{tmp}/key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
         "-days", "30", "-subj", "/CN=localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    os.chmod(key, 0o644)
    sink = run.Sink(tmp)
    srv = run.Outguard(tmp, cert, key, sink.port, scan)
    data = run.OUT / f"perf-{name}.data"
    try:
        port = srv.plain if mode == "plain" else srv.sub
        if mode == "plain":
            run.smtp_source(port, 2, 20)
        else:
            run.loadgen(port, 2, 20)
        perf = subprocess.Popen(
            ["perf", "record", "-e", "cpu-clock", "-F", "1999", "-g", "-o", str(data),
             "-p", str(srv.proc.pid)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(0.5)
        r = run.smtp_source(port, sessions, count) if mode == "plain" else run.loadgen(
            port, sessions, count
        )
        end = time.time() + 30
        while sink.count() < 20 + r["sent"] and time.time() < end:
            time.sleep(0.05)
        perf.send_signal(2)
        perf.wait(timeout=30)
    finally:
        srv.stop()
        sink.stop()
    out = run.OUT / f"profile-{name}.txt"
    flat = subprocess.run(
        ["perf", "report", "-i", str(data), "--no-children", "--sort", "symbol",
         "--stdio", "-g", "none", "--percent-limit", "0.7"],
        capture_output=True, text=True,
    ).stdout  # fmt: skip
    tree = subprocess.run(
        ["perf", "report", "-i", str(data), "--children", "--sort", "symbol",
         "--stdio", "-g", "none", "--percent-limit", "3"],
        capture_output=True, text=True,
    ).stdout  # fmt: skip
    out.write_text(f"# {name}: {r}\n\n## self\n{flat}\n## with children\n{tree}")
    print(out)


def main():
    run.OUT.mkdir(exist_ok=True)
    count = int(os.environ.get("BENCH_COUNT", "2000"))
    profile("tls10-scan", "tls", 10, True, count)
    profile("plain10-scan", "plain", 10, True, count)


if __name__ == "__main__":
    main()
