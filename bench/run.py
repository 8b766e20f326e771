#!/usr/bin/env python3
"""Outguard vs Postfix, side by side, on 127.0.0.1 only.

Started by `make bench` (bench/Makefile) after bench/install.sh. Every
server is private to a temporary directory, listens on loopback, is started
fresh for each run and stopped by PID. Loads are bounded in count and time.
Writes bench/out/results.json and the figures table into bench/README.md.

Environment overrides: OUTGUARD_BIN, OUTGUARD_TRAIN_BIN (the classifier's
training tools, `--features tools`), LOADGEN_BIN, BENCH_CORPUS (the
spamassassin-public-2002 directory), BENCH_REPS, BENCH_COUNT,
BENCH_MAX_SECS, BENCH_SKIP_ACCURACY=1, BENCH_SKIP_LOAD=1,
BENCH_SKIP_BEHAVIOUR=1 (the account-takeover simulation, bench/simulate.py,
whose targets print PASS/FAIL), BENCH_SIM_SEED,
BENCH_SKIP_CLASSIFIER=1, BENCH_SKIP_SCALE=1 (100,000 users: import,
paged listing, SMTP spread over the users; bench/scale.py, whose own
BENCH_SCALE_* variables apply).
"""

import json
import os
import platform
import re
import shutil
import signal
import socket
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
OUTGUARD = Path(os.environ.get("OUTGUARD_BIN", REPO / "target/release/outguard"))
TRAIN = Path(os.environ.get("OUTGUARD_TRAIN_BIN", REPO / "target/release/outguard-train"))
LOADGEN = Path(
    os.environ.get("LOADGEN_BIN", BENCH / "loadgen/target/release/og-loadgen")
)
CORPUS = Path(
    os.environ.get(
        "BENCH_CORPUS", REPO.parent / "shared/corpus/spamassassin-public-2002"
    )
)
REPS = int(os.environ.get("BENCH_REPS", "3"))
COUNT = int(os.environ.get("BENCH_COUNT", "1000"))
MAX_SECS = float(os.environ.get("BENCH_MAX_SECS", "40"))
MESSAGE = BENCH / "message.eml"  # 5 KiB of plain ham-like text
SIZE = MESSAGE.stat().st_size
USER, PASSWORD = "bench@example.com", "bench-password-0123"
HZ = os.sysconf("SC_CLK_TCK")
LOOPBACK = "127.0.0.1"


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def wait_port(port, secs=15.0):
    end = time.time() + secs
    while time.time() < end:
        try:
            with socket.create_connection((LOOPBACK, port), timeout=1) as s:
                s.recv(256)
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {LOOPBACK}:{port}")


def stop_pid(pid, secs=10.0):
    """SIGTERM, wait, then SIGKILL: always by PID."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    end = time.time() + secs
    while time.time() < end:
        try:
            os.kill(pid, 0)
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return
        except (ProcessLookupError, FileNotFoundError):
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# ---------------------------------------------------------------- /proc


def proc_stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    # rest[0] = state (field 3); utime = field 14 -> rest[11]
    return {
        "ppid": int(rest[1]),
        "cpu": sum(int(x) for x in rest[11:13]) / HZ,
        "ccpu": sum(int(x) for x in rest[13:15]) / HZ,
    }


def tree(root):
    """root and all its descendants (by ppid), alive now."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                kids.setdefault(proc_stat(int(d))["ppid"], []).append(int(d))
            except (OSError, IndexError):
                pass
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def tree_cpu(root):
    """CPU seconds of a process tree: live processes' own time plus the
    reaped children's time accounted to each live parent."""
    total = 0.0
    for p in tree(root):
        try:
            s = proc_stat(p)
            total += s["cpu"] + s["ccpu"]
        except (OSError, IndexError):
            pass
    return total


def status_kib(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Sampler(threading.Thread):
    """Peak summed RSS and PSS of a process tree, every 100 ms."""

    def __init__(self, root):
        super().__init__(daemon=True)
        self.root, self.stop, self.rss, self.pss = root, threading.Event(), 0, 0

    def run(self):
        while not self.stop.is_set():
            pids = tree(self.root)
            self.rss = max(self.rss, sum(status_kib(p, "VmRSS") for p in pids))
            self.pss = max(self.pss, sum(pss_kib(p) for p in pids))
            self.stop.wait(0.1)


# ---------------------------------------------------------------- servers


class Sink:
    """Postfix's smtp-sink as the next hop; counts messages."""

    def __init__(self, tmp):
        self.port = free_port()
        self.out = Path(tmp) / f"sink-{self.port}.out"
        with open(self.out, "wb") as f:
            self.proc = subprocess.Popen(
                ["smtp-sink", "-c", "-u", "nobody", f"{LOOPBACK}:{self.port}", "256"],
                stdout=f,
                stderr=subprocess.STDOUT,
            )
        wait_port(self.port)

    def count(self):
        m = re.findall(rb"mesg=(\d+)", self.out.read_bytes()[-200:])
        return int(m[-1]) if m else 0

    def stop(self):
        stop_pid(self.proc.pid)
        self.proc.wait(timeout=5)


class Outguard:
    name = "outguard"

    def __init__(self, tmp, cert, key, sink_port, scan):
        self.dir = Path(tempfile.mkdtemp(prefix="og-", dir=tmp))
        os.chmod(self.dir, 0o755)
        self.plain, self.sub = free_port(), free_port()
        self.conf = self.dir / "outguard.toml"
        self.conf.write_text(
            f"""data_dir = "{self.dir}/data"
run_user = "nobody"
hostname = "outguard.bench"

[smtp]
submission = ["{LOOPBACK}:{self.sub}"]
submissions = []
plain = ["{LOOPBACK}:{self.plain}"]
# All load comes from 127.0.0.1 (Postfix exempts $mynetworks from its
# per-client limits by default).
max_sessions_per_ip = 200

[tls]
cert = "{cert}"
key = "{key}"

[scan]
enabled = {"true" if scan else "false"}

[log]
level = "warn"

[delivery]
mode = "smarthost"
smarthost = "{LOOPBACK}:{sink_port}"
starttls = "opportunistic"
"""
        )
        self.log = open(self.dir / "outguard.log", "wb")
        self.proc = subprocess.Popen(
            [str(OUTGUARD), "serve", "--config", str(self.conf)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_port(self.plain)
        unlimited = ["--limit-day", "0", "--limit-week", "0", "--limit-month", "0",
                     "--max-recipients-day", "0"]  # fmt: skip
        # An IP user sends only from its domain (the bench message's From).
        self.cli("user", "add", LOOPBACK, "--domain", "example.com", *unlimited)
        self.cli(
            "user", "add", USER, "--password-stdin", *unlimited, stdin=PASSWORD + "\n"
        )
        self.root = self.proc.pid

    def cli(self, *args, stdin=None):
        subprocess.run(
            [str(OUTGUARD), "--config", str(self.conf), *args],
            input=stdin,
            text=True,
            check=True,
            capture_output=True,
            timeout=30,
        )

    def peak_rss_kib(self):
        return status_kib(self.proc.pid, "VmHWM")

    def stop(self):
        stop_pid(self.proc.pid)
        self.proc.wait(timeout=10)
        self.log.close()


class Postfix:
    name = "postfix"

    def __init__(self, tmp, cert, key, sink_port, scan=False):
        d = Path(tempfile.mkdtemp(prefix="pf-", dir=tmp))
        os.chmod(d, 0o755)
        self.dir = d
        for sub in ("etc/sasl", "spool", "data"):
            (d / sub).mkdir(parents=True)
        shutil.chown(d / "data", "postfix")
        self.plain, self.sub = free_port(), free_port()
        (d / "etc/main.cf").write_text(
            f"""compatibility_level = 3.6
config_directory = {d}/etc
queue_directory = {d}/spool
data_directory = {d}/data
meta_directory = /etc/postfix
daemon_directory = /usr/lib/postfix/sbin
command_directory = /usr/sbin
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.bench
mydomain = bench
mydestination =
alias_maps =
alias_database =
local_recipient_maps =
inet_interfaces = {LOOPBACK}
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [{LOOPBACK}]:{sink_port}
maillog_file = {d}/maillog
maillog_file_prefixes = {tmp}
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject
smtp_tls_security_level = none
smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
smtpd_tls_security_level = may
smtpd_sasl_type = cyrus
smtpd_sasl_path = smtpd
"""
        )
        # Debian's Postfix reads Cyrus SASL's smtpd.conf from
        # $config_directory/sasl, whatever cyrus_sasl_config_path says.
        (d / "etc/sasl/smtpd.conf").write_text(
            f"pwcheck_method: auxprop\nauxprop_plugin: sasldb\n"
            f"mech_list: PLAIN LOGIN\nsasldb_path: {d}/sasldb2\n"
        )
        local, domain = USER.split("@")
        subprocess.run(
            ["saslpasswd2", "-p", "-f", str(d / "sasldb2"), "-c", "-u", domain, local],
            input=PASSWORD,
            text=True,
            check=True,
        )
        shutil.chown(d / "sasldb2", "postfix")
        sub_opts = (
            "-o smtpd_tls_security_level=encrypt -o smtpd_sasl_auth_enable=yes "
            "-o smtpd_client_restrictions=permit_sasl_authenticated,reject "
            "-o smtpd_relay_restrictions=permit_sasl_authenticated,reject"
        )
        (d / "etc/master.cf").write_text(
            f"{LOOPBACK}:{self.plain} inet n - n - - smtpd\n"
            f"{LOOPBACK}:{self.sub} inet n - n - - smtpd {sub_opts}\n"
            + (BENCH / "postfix-master.cf").read_text()
        )
        subprocess.run(
            ["postfix", "-c", str(d / "etc"), "start"],
            check=True,
            capture_output=True,
            timeout=30,
        )
        pidfile = d / "spool/pid/master.pid"
        end = time.time() + 10
        while not pidfile.exists() and time.time() < end:
            time.sleep(0.05)
        self.root = int(pidfile.read_text().strip())
        wait_port(self.plain)

    def peak_rss_kib(self):
        return None  # multi-process: the sampler's summed peak is used

    def stop(self):
        stop_pid(self.root)


# ---------------------------------------------------------------- loads


def smtp_source(port, sessions, count):
    t = time.time()
    p = subprocess.run(
        ["smtp-source", "-s", str(sessions), "-m", str(count), "-F", str(MESSAGE),
         "-f", USER, "-t", "sink@example.net", "-M", "client.bench",
         f"{LOOPBACK}:{port}"],
        capture_output=True, timeout=MAX_SECS + 30,
    )  # fmt: skip
    el = time.time() - t
    return {
        "sent": count if p.returncode == 0 else 0,
        "elapsed_s": el,
        "msgs_per_s": count / el,
        "rc": p.returncode,
        "stderr": p.stderr.decode(errors="replace")[-300:],
    }


def loadgen(port, sessions, count, tls=True):
    args = [str(LOADGEN), "gen", "--addr", f"{LOOPBACK}:{port}",
            "--sessions", str(sessions), "--count", str(count),
            "--duration-secs", str(MAX_SECS), "--message", str(MESSAGE),
            "--from", USER, "--to", "sink@example.net"]  # fmt: skip
    if tls:
        args += ["--starttls", "--auth", f"{USER}:{PASSWORD}"]
    p = subprocess.run(args, capture_output=True, text=True, timeout=MAX_SECS + 30)
    if p.returncode != 0:
        raise RuntimeError(f"loadgen failed: {p.stderr}")
    return json.loads(p.stdout)


def one_run(tmp, cert, key, server_cls, scan, mode, sessions):
    sink = Sink(tmp)
    srv = server_cls(tmp, cert, key, sink.port, scan)
    try:
        port = srv.plain if mode == "plain" else srv.sub
        # Warm-up outside the measurement (spawns Postfix's daemons, fills caches).
        warm = 20
        if mode == "plain":
            smtp_source(port, 2, warm)
        else:
            loadgen(port, 2, warm)
        end = time.time() + 20
        while sink.count() < warm and time.time() < end:
            time.sleep(0.05)
        base = sink.count()
        cpu0 = tree_cpu(srv.root)
        sampler = Sampler(srv.root)
        sampler.start()
        t0 = time.time()
        if mode == "plain":
            r = smtp_source(port, sessions, COUNT)
        else:
            r = loadgen(port, sessions, COUNT)
        t_acc = time.time() - t0
        target = base + r["sent"]
        end = time.time() + MAX_SECS
        while sink.count() < target and time.time() < end:
            time.sleep(0.01)
        t_e2e = time.time() - t0
        delivered = sink.count() - base
        cpu = tree_cpu(srv.root) - cpu0
        sampler.stop.set()
        sampler.join()
        hwm = srv.peak_rss_kib()
        r.update(
            server=srv.name,
            scan=scan,
            mode=mode,
            sessions=sessions,
            accept_s=t_acc,
            accept_per_s=r["sent"] / t_acc if t_acc else 0,
            delivered=delivered,
            e2e_s=t_e2e,
            e2e_per_s=delivered / t_e2e if t_e2e else 0,
            cpu_s=cpu,
            cpu_ms_per_msg=1000 * cpu / max(r["sent"], 1),
            peak_rss_kib=hwm if hwm else sampler.rss,
            peak_pss_kib=sampler.pss,
        )
        return r
    finally:
        srv.stop()
        sink.stop()


def generator_ceiling(tmp, cert, key):
    """The load generators against trivial sinks: their own ceiling."""
    res = {}
    sink = Sink(tmp)
    try:
        res["smtp_source_to_smtp_sink_10"] = smtp_source(sink.port, 10, COUNT)
    finally:
        sink.stop()
    port = free_port()
    p = subprocess.Popen(
        [str(LOADGEN), "sink", "--addr", f"{LOOPBACK}:{port}", "--cert", cert,
         "--key", key, "--duration-secs", str(MAX_SECS + 20)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_port(port)
        s0 = proc_stat(p.pid)["cpu"]
        res["loadgen_tls_to_tls_sink_10"] = loadgen(port, 10, COUNT)
        res["loadgen_tls_to_tls_sink_10"]["sink_cpu_s"] = proc_stat(p.pid)["cpu"] - s0
    finally:
        stop_pid(p.pid)
        p.wait(timeout=5)
    return res


SCENARIOS = [("plain", 10), ("plain", 50), ("tls", 10), ("tls", 50)]
SERVERS = [(Postfix, False), (Outguard, True), (Outguard, False)]


def load_benchmarks(tmp):
    cert, key = str(Path(tmp) / "cert.pem"), str(Path(tmp) / "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
         "-days", "30", "-subj", "/CN=localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    os.chmod(key, 0o644)
    runs = []
    ceiling = generator_ceiling(tmp, cert, key)
    log("generator ceiling:", json.dumps(ceiling))
    for rep in range(REPS):
        for mode, sessions in SCENARIOS:
            order = SERVERS[rep % 3 :] + SERVERS[: rep % 3]
            for cls, scan in order:
                r = one_run(tmp, cert, key, cls, scan, mode, sessions)
                r["rep"] = rep
                runs.append(r)
                log(
                    f"rep {rep} {mode:5} s={sessions:2} {r['server']:8} scan={scan!s:5}",
                    f"accept {r['accept_per_s']:7.1f}/s e2e {r['e2e_per_s']:7.1f}/s",
                    f"deliv {r['delivered']} cpu {r['cpu_ms_per_msg']:.2f} ms/msg",
                    f"rss {r['peak_rss_kib'] / 1024:.1f} MiB pss {r['peak_pss_kib'] / 1024:.1f} MiB",
                    f"p50 {r.get('p50_ms', '-')} p99 {r.get('p99_ms', '-')} fail {r.get('failed', '-')}",
                )
    return {"generator_ceiling": ceiling, "runs": runs, "sniff": sniff_benchmark(tmp, cert, key)}


def sniff_rounds():
    import sniff

    return sniff.ROUNDS


def sniff_benchmark(tmp, cert, key):
    import sniff

    sink = Sink(tmp)
    srv = Outguard(tmp, cert, key, sink.port, False)
    try:
        r = sniff.run(srv.sub, srv.plain)
    finally:
        srv.stop()
        sink.stop()
    log("sniff:", json.dumps(r))
    return r


# ---------------------------------------------------------------- summary


def med(runs, key):
    v = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(v) if v else None


def summarise(load):
    rows = []
    for mode, sessions in SCENARIOS:
        sel = [r for r in load["runs"] if r["mode"] == mode and r["sessions"] == sessions]
        pf_mode = mode
        pf = [
            r for r in load["runs"]
            if r["server"] == "postfix" and r["mode"] == pf_mode and r["sessions"] == sessions
        ]  # fmt: skip
        for scan in (True, False):
            og = [r for r in sel if r["server"] == "outguard" and r["scan"] == scan]
            row = {"mode": mode, "sessions": sessions, "scan": scan, "runs": len(og)}
            for k in ("accept_per_s", "e2e_per_s", "p50_ms", "p99_ms",
                      "cpu_ms_per_msg", "peak_rss_kib", "peak_pss_kib"):  # fmt: skip
                row[f"og_{k}"], row[f"pf_{k}"] = med(og, k), med(pf, k)
            for k in ("accept_per_s", "e2e_per_s"):
                o, p = row[f"og_{k}"], row[f"pf_{k}"]
                row[f"ratio_{k}"] = o / p if o and p else None
            rows.append(row)
    return rows


def machine():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "loadavg_at_start": os.getloadavg(),
        "postfix": subprocess.run(["postconf", "-dh", "mail_version"],
                                  capture_output=True, text=True).stdout.strip(),
    }  # fmt: skip


LABELS = {
    "plain": "plain SMTP",
    "tls": "STARTTLS+AUTH",
}


def fmt(v, nd=0):
    if v is None:
        return "–"
    return f"{v:.{nd}f}"


def markdown(res):
    m = res["machine"]
    lines = [
        f"Measured {m['date']} on {m['nproc']} cores ({m['cpu']}), kernel "
        f"{m['kernel']}, Postfix {m['postfix']}; load average at start "
        f"{m['loadavg_at_start'][0]:.1f} (shared machine: medians of "
        f"{REPS} alternating runs, {COUNT} messages of {SIZE} bytes each).",
        "",
    ]
    if res.get("summary"):
        lines += [
            "| load | sessions | Outguard scan | accepted/s OG | PF | ratio | end-to-end/s OG | PF | ratio | p50 / p99 ms OG | PF | CPU ms/msg OG | PF | peak RSS MiB OG | PF (sum) | PSS MiB PF |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in res["summary"]:
            lat = lambda p: (  # noqa: E731
                f"{fmt(r[p + 'p50_ms'], 1)} / {fmt(r[p + 'p99_ms'], 1)}"
                if r[p + "p50_ms"] is not None
                else "–"
            )
            lines.append(
                f"| {LABELS[r['mode']]} | {r['sessions']} "
                f"| {'on' if r['scan'] else 'off'} "
                f"| {fmt(r['og_accept_per_s'])} | {fmt(r['pf_accept_per_s'])} | **{fmt(r['ratio_accept_per_s'], 2)}x** "
                f"| {fmt(r['og_e2e_per_s'])} | {fmt(r['pf_e2e_per_s'])} | **{fmt(r['ratio_e2e_per_s'], 2)}x** "
                f"| {lat('og_')} | {lat('pf_')} "
                f"| {fmt(r['og_cpu_ms_per_msg'], 2)} | {fmt(r['pf_cpu_ms_per_msg'], 2)} "
                f"| {fmt((r['og_peak_rss_kib'] or 0) / 1024, 1)} | {fmt((r['pf_peak_rss_kib'] or 0) / 1024, 1)} "
                f"| {fmt((r['pf_peak_pss_kib'] or 0) / 1024, 1)} |"
            )
        c = res["load"]["generator_ceiling"]
        lines += [
            "",
            "Generator ceilings (same invocation): smtp-source → smtp-sink, 10 sessions: "
            f"{fmt(c['smtp_source_to_smtp_sink_10']['msgs_per_s'])}/s; og-loadgen STARTTLS+AUTH → "
            f"its trivial TLS sink, 10 sessions: {fmt(c['loadgen_tls_to_tls_sink_10']['msgs_per_s'])}/s "
            f"(generator CPU {fmt(c['loadgen_tls_to_tls_sink_10']['gen_cpu_s'], 2)} s for "
            f"{c['loadgen_tls_to_tls_sink_10']['sent']} messages).",
        ]
        sn = res["load"].get("sniff")
        if sn:
            lines += [
                "",
                f"587 sniff: a STARTTLS client from a new address gets its banner "
                f"{fmt(sn['sniff_cost_ms_p50'], 2)} ms later than on the unsniffed port "
                f"(median of {sniff_rounds()} new addresses; target ≤ 2 ms); implicit-TLS "
                f"clients alternating with plain ones from one address failed "
                f"{sn['implicit_tls_first_try_failures']} of {sn['implicit_tls_tries']} first tries.",
            ]
    if res.get("accuracy"):
        a = res["accuracy"]
        lines += [
            "",
            f"Classifier accuracy, {a['folds']}-fold cross-validation on the same folds "
            f"({a['note']}):",
            "",
            "| classifier | messages tested (ham / spam) | catch rate | false-positive rate |",
            "| --- | --- | --- | --- |",
        ]
        names = ["outguard", "spamassassin", "outguard_all"]
        if (a["outguard"]["ham"], a["outguard"]["spam"]) == (a["outguard_all"]["ham"], a["outguard_all"]["spam"]):
            names.pop()  # SpamAssassin saw the whole corpus: one Outguard row says it all
        for name in names:
            x = a[name]
            lines.append(
                f"| {x['label']} | {x['ham']} / {x['spam']} | {100 * x['catch']:.2f} % "
                f"({x['caught']}/{x['spam']}) | {100 * x['fp']:.2f} % ({x['fps']}/{x['ham']}) |"
            )
    if res.get("classifier"):
        import classifier

        lines.append(classifier.markdown(res["classifier"]).rstrip("\n"))
    if res.get("behaviour"):
        import simulate

        lines += ["", simulate.markdown(res["behaviour"]).rstrip()]
    if res.get("scale"):
        import scale

        lines += ["", "Scale (bench/scale.py):", "", scale.markdown(res["scale"]).rstrip()]
    return "\n".join(lines) + "\n"


def write_readme(md):
    readme = BENCH / "README.md"
    text = readme.read_text()
    start, end = "<!-- results:start -->", "<!-- results:end -->"
    i, j = text.index(start) + len(start), text.index(end)
    readme.write_text(text[:i] + "\n" + md + text[j:])


def on_term(signum, frame):
    raise SystemExit(f"stopped by signal {signum}")


def main():
    # SIGTERM unwinds like Ctrl-C, so every server is stopped by PID.
    signal.signal(signal.SIGTERM, on_term)
    OUT.mkdir(exist_ok=True)
    res = {"machine": machine()}
    tmp = tempfile.mkdtemp(prefix="og-bench-")
    os.chmod(tmp, 0o755)
    try:
        if os.environ.get("BENCH_SKIP_LOAD") != "1":
            res["load"] = load_benchmarks(tmp)
            res["summary"] = summarise(res["load"])
        if os.environ.get("BENCH_SKIP_CLASSIFIER") != "1":
            import classifier

            res["classifier"] = classifier.run(TRAIN, CORPUS, log)
        if os.environ.get("BENCH_SKIP_ACCURACY") != "1":
            import accuracy

            try:
                res["accuracy"] = accuracy.run(TRAIN, CORPUS, Path(tmp), log)
            finally:
                for p in accuracy.CHILDREN:
                    if p.poll() is None:
                        stop_pid(p.pid)
        if os.environ.get("BENCH_SKIP_BEHAVIOUR") != "1":
            import simulate

            log("behaviour simulation (bench/simulate.py)")
            res["behaviour"] = simulate.run(log)
        if os.environ.get("BENCH_SKIP_SCALE") != "1":
            import scale

            log("scale (bench/scale.py)")
            res["scale"] = scale.run(log)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    (OUT / "results.json").write_text(json.dumps(res, indent=1))
    md = markdown(res)
    (OUT / "results.md").write_text(md)
    write_readme(md)
    print(md)


if __name__ == "__main__":
    main()
