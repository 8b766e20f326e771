"""A/B of two outguard binaries (a refactoring's regression check, not the
Postfix comparison of run.py): the test suite's daemon
(tests/conftest.py, delivery to a closed loopback port, so accepted mail
stays queued), AB_COUNT messages, each on its own session (STARTTLS,
AUTH PLAIN, MAIL, RCPT, DATA, QUIT) from AB_SESSIONS Python clients,
AB_ROUNDS rounds alternating the order. Prints messages/s (bound by the
Python client, so noisy) and the daemon's CPU per message (user + system
from /proc, the figure to compare).

    AB_BASE=/tmp/og-base AB_NEW=target/debug/outguard python3 bench/ab.py
"""
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import conftest
from conftest import Daemon, login, send_message

BINS = {"base": os.environ["AB_BASE"], "new": os.environ["AB_NEW"]}
COUNT = int(os.environ.get("AB_COUNT", "200"))
SESSIONS = int(os.environ.get("AB_SESSIONS", "8"))
ROUNDS = int(os.environ.get("AB_ROUNDS", "3"))

def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

def run(binary, tmp):
    conftest.BIN = Path(binary)
    d = Daemon(Path(tmp)).start()
    try:
        d.add_user("alice@example.com", auto_lock="off", limit_day=0, limit_week=0,
                   limit_month=0, max_recipients_day=0)
        # warm-up
        r = login(d.submission, "alice@example.com"); send_message(r, "alice@example.com", ["bob@remote.example"]); r.close()
        left = [COUNT]; lock = threading.Lock(); codes = {}
        def worker():
            while True:
                with lock:
                    if left[0] <= 0: return
                    left[0] -= 1
                r = login(d.submission, "alice@example.com")
                code, _ = send_message(r, "alice@example.com", ["bob@remote.example"])
                r.cmd("QUIT"); r.close()
                with lock: codes[code] = codes.get(code, 0) + 1
        c0 = cpu(d.proc.pid); t0 = time.monotonic()
        ts = [threading.Thread(target=worker) for _ in range(SESSIONS)]
        for t in ts: t.start()
        for t in ts: t.join()
        wall = time.monotonic() - t0; c1 = cpu(d.proc.pid)
        return wall, (c1 - c0) * 1000 / COUNT, codes
    finally:
        d.stop()

res = {k: [] for k in BINS}
for rnd in range(ROUNDS):
    for name, b in (BINS.items() if rnd % 2 == 0 else reversed(list(BINS.items()))):
        with tempfile.TemporaryDirectory() as tmp:
            wall, cpums, codes = run(b, tmp)
        res[name].append((wall, cpums))
        print(f"round {rnd} {name}: {COUNT/wall:.1f} msg/s, daemon CPU {cpums:.2f} ms/msg, replies {codes}", flush=True)
import statistics as st
for name, v in res.items():
    print(f"{name}: median {st.median(COUNT/w for w,_ in v):.1f} msg/s, median CPU {st.median(c for _,c in v):.2f} ms/msg")
