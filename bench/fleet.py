#!/usr/bin/env python3
"""Fleet throughput: one box alone, one box with `[store] shared`, and
three boxes sharing one redis-server, all on this machine (loopback).
Each run: an IP-authorised user (127.0.0.1) with limits high enough never
to refuse (the shared limit script still runs for every message), N
client threads, each a plain-SMTP session sending messages back to back
(MAIL, RCPT, DATA; no TLS, so the figures show the commit path); the load
is split evenly among the boxes. Also the time a lock on one box takes to
refuse mail on another (median of several), and how many of the timed
messages the user's shared behaviour profile counted (all, since the
write-back became a compare-and-set; before, two boxes committing for one
user in the same instant kept only one batch's observation: docs/FLEET.md).

    python3 bench/fleet.py [messages] [threads]     # as root, after cargo build

Prints a Markdown table (docs/FLEET.md has the latest)."""

import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "fleet"))

from conftest import Daemon, Raw, ham  # noqa: E402
from redis_server import RedisServer  # noqa: E402

COUNT = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
THREADS = int(sys.argv[2]) if len(sys.argv) > 2 else 12
SENDER = "bench@example.com"
BIG = 10_000_000


def wait_for(pred, timeout=15.0, what="condition", step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what}")


def worker(box, n, out):
    r = Raw(box.plain, timeout=30)
    assert r.reply()[0] == 220
    assert r.cmd("EHLO bench.test")[0] == 250
    ok = 0
    body = ham(sender=SENDER) + ".\r\n"
    for _ in range(n):
        if r.cmd(f"MAIL FROM:<{SENDER}>")[0] != 250:
            continue
        if r.cmd("RCPT TO:<sink@remote.example>")[0] != 250:
            r.cmd("RSET")
            continue
        assert r.cmd("DATA")[0] == 354
        r.send(body)
        ok += r.reply()[0] == 250
    r.cmd("QUIT")
    r.close()
    out.append(ok)


def load(boxes, count, threads):
    out, ts = [], []
    for i in range(threads):
        ts.append(threading.Thread(target=worker, args=(boxes[i % len(boxes)], count // threads, out)))
    t = time.monotonic()
    for x in ts:
        x.start()
    for x in ts:
        x.join()
    return sum(out), time.monotonic() - t


def start_boxes(tmp, n, url):
    store = {"shared": url} if url else {}
    boxes = []
    for i in range(n):
        d = Daemon(tmp / f"box{i}", store=store)
        boxes.append(d.start())
    if url:
        for d in boxes:
            d.wait_log("fleet store reachable")
    boxes[0].cli("user", "add", "127.0.0.1", "--domain", "example.com", "--limit-day", str(BIG),
                 "--limit-week", str(BIG), "--limit-month", str(BIG), "--max-recipients-day", str(BIG))
    for d in boxes[1:]:
        wait_for(lambda d=d: d.api("GET", "/v1/users/127.0.0.1")[0] == 200, what="user on every box")
    return boxes


def run(name, n, shared, tmp):
    # AOF with a write per second: the setting docs/FLEET.md recommends.
    redis = RedisServer(tmp / "redis", fsync="everysec").start() if shared else None
    boxes = start_boxes(tmp, n, redis.url() if redis else None)
    try:
        load(boxes, 20 * THREADS, THREADS)  # warm-up
        if redis:
            redis.cli("CONFIG", "RESETSTAT")
        before = profile_messages(redis)
        ok, secs = load(boxes, COUNT, THREADS)
        counted = profile_messages(redis) - before if redis else None
        calls, usec = script_stats(redis) if redis else (None, None)
        lock_ms = lock_latency(boxes) if n > 1 else None
    finally:
        for b in boxes:
            b.stop()
        if redis:
            redis.stop()
    return {"run": name, "boxes": n, "accepted": ok, "secs": secs, "per_s": ok / secs, "lock_ms": lock_ms,
            "profile_counted": counted,
            "msgs_per_call": ok / calls if calls else None, "redis_us_per_msg": usec / ok if usec else None}


def profile_messages(redis):
    """Messages today in the shared profile of the bench's user, once every
    box has written back (idle committers write at once; 1 s is ample)."""
    if redis is None:
        return None
    time.sleep(1.0)
    n = redis.profile_messages_today("127.0.0.1")
    assert n is not None, "no shared profile"
    return n


def script_stats(redis):
    """Limit-script calls (EVALSHA), and the server time of every script
    (the CAS write-backs are EVALs), from INFO."""
    calls = usec = 0
    for line in redis.cli("INFO", "commandstats").splitlines():
        if line.startswith(("cmdstat_evalsha:", "cmdstat_eval:")):
            f = dict(kv.split("=") for kv in line.split(":", 1)[1].split(","))
            calls += int(f["calls"]) if line.startswith("cmdstat_evalsha:") else 0
            usec += int(f["usec"])
    return calls, usec


def lock_latency(boxes, rounds=7):
    """Lock on box 0 until box 1 refuses MAIL; then unlock likewise."""
    a, b = boxes[0], boxes[1]
    user = "lat@example.com"
    a.add_user(user)
    wait_for(lambda: b.api("GET", f"/v1/users/{user}")[0] == 200, what="user on box 1")
    times = []
    for _ in range(rounds):
        t = time.monotonic()
        a.cli("user", "lock", user)
        wait_for(lambda: b.api("GET", f"/v1/users/{user}")[1]["locked"], timeout=30, what="lock", step=0.005)
        times.append((time.monotonic() - t) * 1000)
        a.cli("user", "unlock", user)
        wait_for(lambda: not b.api("GET", f"/v1/users/{user}")[1]["locked"], timeout=30, what="unlock")
    return statistics.median(times)


def main():
    rows = []
    for name, n, shared in [("1 box alone", 1, False), ("1 box, shared store", 1, True),
                            ("2 boxes, one shared store", 2, True), ("3 boxes, one shared store", 3, True)]:
        with tempfile.TemporaryDirectory(prefix="og-fleet-bench-") as d:
            Path(d).chmod(0o755)
            rows.append(run(name, n, shared, Path(d)))
            print(f"# {rows[-1]}", file=sys.stderr)
    base = rows[0]["per_s"]
    print(f"{COUNT} messages, {THREADS} client threads, plain SMTP, one recipient each\n")
    print("| run | accepted | seconds | accepted/s | vs 1 box | messages per script call | redis CPU per message "
          "| lock seen on another box (median) | counted by the shared profile |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        lock = f"{r['lock_ms']:.0f} ms" if r["lock_ms"] is not None else "-"
        per_call = f"{r['msgs_per_call']:.1f}" if r["msgs_per_call"] else "-"
        us = f"{r['redis_us_per_msg']:.0f} µs" if r["redis_us_per_msg"] else "-"
        counted = "-" if r["profile_counted"] is None else f"{r['profile_counted']} ({r['profile_counted'] / r['accepted']:.0%})"
        print(f"| {r['run']} | {r['accepted']} | {r['secs']:.1f} | {r['per_s']:.0f} | {r['per_s'] / base:.2f}x "
              f"| {per_call} | {us} | {lock} | {counted} |")


if __name__ == "__main__":
    main()
