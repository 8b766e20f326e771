#!/usr/bin/env python3
"""Bulk user import at scale: a release daemon, a CSV of N users
(`user,domainname,password`), `outguard user import` timed end to end
(validation, parallel argon2id within `[auth] max_parallel_hashes`, batches of
1,000 per transaction), then the daemon's RSS and one login of the last user.

    python3 bench/import.py [N] [--fast-hash]     (default 100000)

With --fast-hash the passwords are hashed at the lighter import cost
(argon2id 7 MiB, 1 pass; upgraded at each user's first login).

Prints one line of figures; bench/README.md records them. Not a test: the
time depends on the machine and its load."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(os.environ.get("OUTGUARD_BIN", REPO / "target/release/outguard"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main():
    args = [a for a in sys.argv[1:] if a != "--fast-hash"]
    fast = ["--fast-hash"] if "--fast-hash" in sys.argv[1:] else []
    n = int(args[0]) if args else 100_000
    tmp = Path(tempfile.mkdtemp(prefix="og-import-bench-"))
    os.chmod(tmp, 0o755)
    data = tmp / "data"
    cfg = tmp / "outguard.toml"
    cfg.write_text(
        f'data_dir = "{data}"\nrun_user = "nobody"\nhostname = "bench.test"\n'
        f'[smtp]\nsubmission = ["127.0.0.1:{free_port()}"]\nsubmissions = ["127.0.0.1:{free_port()}"]\n'
        '[admin]\nlisten = []\n[delivery]\nmode = "capture"\n'
    )
    csv = tmp / "users.csv"
    with csv.open("w") as f:
        f.write("user,domainname,password\n")
        for i in range(n):
            f.write(f"user{i},d{i % 50}.example,pass-{i:06d}-words\n")
    log = open(tmp / "daemon.log", "wb")
    proc = subprocess.Popen([str(BIN), "--config", str(cfg), "serve"], stdout=log, stderr=log)
    try:
        sock = data / "control.sock"
        for _ in range(300):
            if sock.exists():
                break
            time.sleep(0.1)
        time.sleep(0.5)
        peak = rss_kib(proc.pid)
        start = time.monotonic()
        imp = subprocess.Popen([str(BIN), "--config", str(cfg), "user", "import", *fast, str(csv)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        while imp.poll() is None:
            peak = max(peak, rss_kib(proc.pid))
            time.sleep(0.5)
        secs = time.monotonic() - start
        out = imp.stdout.read().strip()
        assert imp.returncode == 0 and f"imported {n} user(s)" in out, out
        t0 = time.monotonic()
        listed = subprocess.run([str(BIN), "--config", str(cfg), "user", "list", "--json"],
                                capture_output=True, check=True).stdout
        list_secs = time.monotonic() - t0
        print(f"import of {n} users: {secs:.1f} s ({n / secs:.0f} users/s), "
              f"daemon peak RSS {peak / 1024:.1f} MiB, 'user list --json' {list_secs:.1f} s "
              f"({len(listed) / 1e6:.1f} MB), {os.cpu_count()} CPUs, {' '.join(fast) or 'full cost'}, "
              f"load average {os.getloadavg()[0]:.1f}")
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
