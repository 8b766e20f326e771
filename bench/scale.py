#!/usr/bin/env python3
"""Outguard at 100,000 users (issue 16, "Scale"): one release daemon on
loopback, and

- the import of N users with passwords: their argon2id hashes made once
  with libsodium (PyNaCl) and imported as PHC strings, as a migration
  would, so the time is the daemon's own work (CSV check, one transaction
  per 1,000 users); plus a small import of plaintext passwords, whose
  argon2id rate gives what N plaintext users would take; and, in a
  second daemon, N plaintext users imported with `--fast-hash` (the
  lighter import cost), timed whole with the daemon's CPU use;
- listing users: the first page and a middle page (cursor at N/2) over
  the control socket and as the admin web page over HTTPS, median of 5;
  and every page through the CLI (`user list --json`);
- SMTP: clients on STARTTLS + AUTH for `SECS` seconds, each message from a
  random one of the N users (each login an argon2id check, as after a
  restart), then the same from 50 users (logins answered from the
  success cache after the first; each user stays under the default 500
  messages a day).

    python3 bench/scale.py [N]          (default 100000, or BENCH_SCALE_USERS)

Environment: OUTGUARD_BIN, BENCH_SCALE_SECS (SMTP seconds per run, 20),
BENCH_SCALE_CLIENTS (4), BENCH_SCALE_PLAIN (plaintext sample, 200),
BENCH_SCALE_FAST (plaintext users imported with `--fast-hash` in a daemon
of their own, measured whole; default N, 0 skips).
`make bench` runs it through bench/run.py (BENCH_SKIP_SCALE=1 skips it).
Prints the figures; writes bench/out/scale.json. Not a test: the figures
depend on the machine and its load."""

import http.client
import json
import os
import random
import shutil
import smtplib
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
OUT = BENCH / "out"
BIN = Path(os.environ.get("OUTGUARD_BIN", REPO / "target/release/outguard"))
PASSWORD = "scale-user-pass-1"
ADMIN_PASSWORD = "scale-admin-pass-1"
DOMAINS = 50
REPS = 5


def say(*a):
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def user(i):
    return f"user{i:06d}@d{i % DOMAINS}.example"


def rss_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=600)
        self.unix_path = str(path)

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(600)
        self.sock.connect(self.unix_path)


def median_secs(fn, reps=REPS):
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


class Box:
    """The daemon under test, private to a temporary directory."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.data = tmp / "data"
        self.data.mkdir()
        (self.data / "admin-password").write_text(ADMIN_PASSWORD + "\n")
        self.smtp, self.admin = free_port(), free_port()
        self.config = tmp / "outguard.toml"
        self.config.write_text(
            f'data_dir = "{self.data}"\nrun_user = "nobody"\nhostname = "scale.test"\n'
            f'[smtp]\nsubmission = ["127.0.0.1:{self.smtp}"]\n'
            f'submissions = ["127.0.0.1:{free_port()}"]\n'
            f'[admin]\nlisten = ["127.0.0.1:{self.admin}"]\n'
            '[delivery]\nmode = "capture"\n'
        )
        self.log = open(tmp / "daemon.log", "wb")
        self.proc = subprocess.Popen([str(BIN), "--config", str(self.config), "serve"],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.socket = self.data / "control.sock"
        for _ in range(600):
            if self.socket.exists() and self.get("/v1/health")[0] == 200:
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"the daemon exited; see {tmp / 'daemon.log'}")
            time.sleep(0.1)
        self.cookie = None

    def get(self, path):
        c = UnixHTTP(self.socket)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read()
        except OSError:
            return 0, b""
        finally:
            c.close()

    def cli(self, *args):
        return subprocess.run([str(BIN), "--config", str(self.config), *args],
                              capture_output=True, text=True, check=True, timeout=7200)

    def https(self, method, path, body=None):
        ctx = ssl._create_unverified_context()
        c = http.client.HTTPSConnection("127.0.0.1", self.admin, context=ctx, timeout=600)
        headers = {"content-type": "application/json"}
        if self.cookie:
            headers["cookie"] = self.cookie
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        data = r.read()
        for sc in r.headers.get_all("set-cookie") or []:
            if sc.startswith("og_session="):
                self.cookie = sc.split(";")[0]
        c.close()
        return r.status, data

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def import_users(box, tmp, n):
    import nacl.pwhash

    phc = nacl.pwhash.argon2id.str(PASSWORD.encode(), opslimit=5, memlimit=7 * 1024 * 1024).decode()
    csv = tmp / "users.csv"
    with csv.open("w") as f:
        f.write("user,domainname,password\n")
        for i in range(n):
            f.write(f"user{i:06d},d{i % DOMAINS}.example,{phc}\n")
    t0 = time.perf_counter()
    out = box.cli("user", "import", str(csv)).stdout
    secs = time.perf_counter() - t0
    assert f"imported {n} user(s)" in out, out
    return secs


def import_plain(box, tmp, n, fast=False):
    csv = tmp / "plain.csv"
    tag = "fast" if fast else "plain"
    csv.write_text("user,domainname,password\n"
                   + "".join(f"{tag}{i},plain.example,plain-pass-{i:05d}\n" for i in range(n)))
    t0 = time.perf_counter()
    out = box.cli("user", "import", *(["--fast-hash"] if fast else []), str(csv)).stdout
    secs = time.perf_counter() - t0
    assert f"imported {n} user(s)" in out, out
    return secs


def cpu_secs(pid):
    """User + system CPU seconds of a process so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sys_and_faults(pid):
    """System CPU seconds and minor page faults of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[12]) / os.sysconf("SC_CLK_TCK"), int(fields[7])


def import_fast(tmp, n):
    """N plaintext users with `--fast-hash`, in a daemon of their own: the
    wall time, the daemon's CPU seconds over it (CPU / wall = cores busy),
    its threads at the peak, and the load average at the start and end."""
    sub = tmp / "fast"
    sub.mkdir()
    box = Box(sub)
    try:
        csv = sub / "plain.csv"
        with csv.open("w") as f:
            f.write("user,domainname,password\n")
            for i in range(n):
                f.write(f"fast{i:06d},d{i % DOMAINS}.example,fast-pass-{i:06d}\n")
        res = {"users": n, "load_start": os.getloadavg()[0]}
        cpu0, t0 = cpu_secs(box.proc.pid), time.perf_counter()
        sys0, flt0 = sys_and_faults(box.proc.pid)
        imp = subprocess.Popen([str(BIN), "--config", str(box.config), "user", "import",
                                "--fast-hash", str(csv)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        threads = 0
        while imp.poll() is None:
            threads = max(threads, len(os.listdir(f"/proc/{box.proc.pid}/task")))
            time.sleep(1)
        res["secs"] = time.perf_counter() - t0
        res["cpu_secs"] = cpu_secs(box.proc.pid) - cpu0
        sys1, flt1 = sys_and_faults(box.proc.pid)
        res["sys_secs"], res["minor_faults"] = sys1 - sys0, flt1 - flt0
        res["threads_peak"] = threads
        res["load_end"] = os.getloadavg()[0]
        out = imp.stdout.read()
        assert imp.returncode == 0 and f"imported {n} user(s)" in out, out
        return res
    finally:
        box.stop()


def listing(box, n):
    middle = user(n // 2 - 1)
    res = {}
    for label, path in [("api_first", "/v1/users?limit=100"),
                        ("api_middle", f"/v1/users?limit=100&after={middle}"),
                        ("api_middle_1000", f"/v1/users?limit=1000&after={middle}")]:
        status, body = box.get(path)
        page = json.loads(body)
        assert status == 200 and page["items"], (path, status)
        if label == "api_middle":
            assert page["items"][0]["name"] == user(n // 2), page["items"][0]["name"]
        res[label] = median_secs(lambda p=path: box.get(p))
    status, _ = box.https("POST", "/v1/session", json.dumps({"password": ADMIN_PASSWORD}))
    assert status in (200, 201) and box.cookie, status
    for label, path in [("page_first", "/users"), ("page_middle", f"/users?after={middle}")]:
        status, body = box.https("GET", path)
        assert status == 200 and b"page-next" in body, (path, status)
        res[label] = median_secs(lambda p=path: box.https("GET", p))
    # Not a list: the store's counters (store::counts), O(1) in users.
    res["api_dashboard"] = median_secs(lambda: box.get("/v1/dashboard"))
    t0 = time.perf_counter()
    listed = json.loads(box.cli("user", "list", "--json").stdout)
    res["cli_all"] = time.perf_counter() - t0
    assert len(listed) >= n, len(listed)
    return res


def smtp_run(box, pick, secs, clients):
    """Messages accepted in `secs` by `clients` threads, one connection,
    login and message each, the sender chosen by `pick()`."""
    ctx = ssl._create_unverified_context()
    counts = {"ok": 0, "refused": 0, "error": 0}
    lock = threading.Lock()
    end = time.perf_counter() + secs

    def worker():
        while time.perf_counter() < end:
            who = pick()
            msg = (f"From: {who}\r\nTo: friend@remote.example\r\nSubject: report\r\n"
                   f"Message-ID: <{random.getrandbits(64):x}@scale.test>\r\n\r\n"
                   "Hello,\r\n\r\nthe figures for this week are attached below.\r\n")
            try:
                with smtplib.SMTP("127.0.0.1", box.smtp, timeout=60) as s:
                    s.starttls(context=ctx)
                    s.login(who, PASSWORD)
                    s.sendmail(who, ["friend@remote.example"], msg)
                key = "ok"
            except smtplib.SMTPResponseException:
                key = "refused"
            except (OSError, smtplib.SMTPException):
                key = "error"
            with lock:
                counts[key] += 1

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counts["rate"] = counts["ok"] / (time.perf_counter() - t0)
    return counts


def run(log=say, n=None):
    n = n or int(os.environ.get("BENCH_SCALE_USERS", "100000"))
    secs = float(os.environ.get("BENCH_SCALE_SECS", "20"))
    clients = int(os.environ.get("BENCH_SCALE_CLIENTS", "4"))
    plain = int(os.environ.get("BENCH_SCALE_PLAIN", "200"))
    fast = int(os.environ.get("BENCH_SCALE_FAST", str(n)))
    tmp = Path(tempfile.mkdtemp(prefix="og-scale-"))
    os.chmod(tmp, 0o755)
    res = {"users": n, "cpus": os.cpu_count(), "clients": clients, "smtp_secs": secs}
    box = Box(tmp)
    try:
        log(f"scale: importing {n} pre-hashed users")
        res["import_secs"] = import_users(box, tmp, n)
        log(f"scale: importing {plain} plaintext users (argon2id each)")
        res["plain_users"] = plain
        res["plain_secs"] = import_plain(box, tmp, plain)
        res["plain_fast_secs"] = import_plain(box, tmp, plain, fast=True)
        res["rss_mib"] = rss_mib(box.proc.pid)
        log("scale: listing")
        res["list"] = listing(box, n)
        log(f"scale: SMTP, senders spread over {n} users")
        res["smtp_spread"] = smtp_run(box, lambda: user(random.randrange(n)), secs, clients)
        # 50 senders (each under the default 500 messages a day), whose
        # logins after the first come from the success cache.
        log("scale: SMTP, 50 senders in turn")
        res["smtp_one"] = smtp_run(box, lambda: user(random.randrange(50)), secs, clients)
        res["rss_mib_end"] = rss_mib(box.proc.pid)
        res["store_mib"] = (box.data / "outguard.redb").stat().st_size / 2**20
    finally:
        box.stop()
    try:
        if fast:
            log(f"scale: importing {fast} plaintext users with --fast-hash")
            res["fast"] = import_fast(tmp, fast)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return res


def markdown(r):
    ms = {k: v * 1000 for k, v in r["list"].items()}
    plain_rate = r["plain_users"] / r["plain_secs"]
    return "\n".join([
        f"| figure | {r['users']:,} users, {r['cpus']} CPUs |",
        "|---|---|",
        f"| import, pre-hashed argon2id (PHC) passwords | {r['import_secs']:.1f} s "
        f"({r['users'] / r['import_secs']:,.0f} users/s) |",
        f"| import, plaintext passwords ({r['plain_users']} users, argon2id each) | "
        f"{r['plain_secs']:.1f} s ({plain_rate:.0f} users/s: {r['users']:,} would take "
        f"~{r['users'] / plain_rate / 60:.0f} min) |",
        f"| same, `--fast-hash` (argon2id 7 MiB, 1 pass) | {r['plain_fast_secs']:.1f} s "
        f"({r['plain_users'] / r['plain_fast_secs']:.0f} users/s) |",
        *([] if "fast" not in r else [
            f"| import, {r['fast']['users']:,} plaintext passwords with `--fast-hash` (measured) | "
            f"{r['fast']['secs']:.1f} s = {r['fast']['secs'] / 60:.1f} min "
            f"({r['fast']['users'] / r['fast']['secs']:.0f} users/s; daemon CPU "
            f"{r['fast']['cpu_secs'] / r['fast']['secs']:.2f} cores, {r['fast']['threads_peak']} threads; "
            f"load {r['fast']['load_start']:.1f} -> {r['fast']['load_end']:.1f}) |"]),
        f"| API `GET /v1/users?limit=100`, first page | {ms['api_first']:.1f} ms |",
        f"| API, page after user {r['users'] // 2:,} | {ms['api_middle']:.1f} ms |",
        f"| API, 1,000 users after user {r['users'] // 2:,} | {ms['api_middle_1000']:.1f} ms |",
        f"| web page `/users` (HTTPS), first page | {ms['page_first']:.1f} ms |",
        f"| web page, page after user {r['users'] // 2:,} | {ms['page_middle']:.1f} ms |",
        f"| API `GET /v1/dashboard` (stored counters) | {ms['api_dashboard']:.1f} ms |",
        f"| `outguard user list --json`, every page | {r['list']['cli_all']:.1f} s |",
        f"| SMTP, {r['clients']} clients, a random sender each message (STARTTLS + AUTH) | "
        f"{r['smtp_spread']['rate']:.1f} msg/s ({r['smtp_spread']['ok']} in {r['smtp_secs']:.0f} s, "
        f"{r['smtp_spread']['refused']} refused, {r['smtp_spread']['error']} errors) |",
        f"| SMTP, same, 50 senders in turn (cached logins) | {r['smtp_one']['rate']:.1f} msg/s "
        f"({r['smtp_one']['refused']} refused, {r['smtp_one']['error']} errors) |",
        f"| daemon RSS after import / at the end | {r['rss_mib']:.1f} / {r['rss_mib_end']:.1f} MiB |",
        f"| store file | {r['store_mib']:.0f} MiB |",
    ]) + "\n"


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else None
    res = run(say, n)
    OUT.mkdir(exist_ok=True)
    (OUT / "scale.json").write_text(json.dumps(res, indent=1))
    print(markdown(res))


if __name__ == "__main__":
    main()
