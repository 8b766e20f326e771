#!/usr/bin/env python3
"""A month of a small company's outbound mail through the real daemon, with
accounts that get stolen: does Outguard lock every compromised account
quickly, and leave the innocent alone?

Deterministic for a seed (BENCH_SIM_SEED). Everything runs on loopback:
the daemon (release build when present, as bench/run.py uses), an aiosmtpd
capture sink as its smarthost (it refuses recipients whose local part
starts with "gone", so that attackers' bad address lists bounce), and the
senders: smtplib over implicit TLS with AUTH for the people, the plain
listener from 127.0.0.9 for the printer (an IP-address user). Time moves
with `[debug] clock_override` (PUT /v1/debug/clock), message by message.

The company (corp.example), 30 days from Monday 2026-03-02:
  - six office users: 2-14 messages a working day, 1-3 recipients from
    colleagues and their own external contacts, now and then someone new;
    some days from home (another network);
  - newsletter@: a weekly mail merge on Tuesdays, one issue (a legitimate
    commercial newsletter of the corpus's hard ham) sent as one message per
    subscriber (120, a few new each week), plus a little ordinary mail;
  - sales@: about 40 messages a working day, a third to new prospects;
    on days 9 and 10 (Wednesday and Thursday of the second week) from a
    trade fair's hotel network it never used (the honest side of the
    stolen-account pattern: a new place, writing to strangers);
  - the scanner/printer (IP user 127.0.0.9): scans to colleagues.
Legitimate content comes from the SpamAssassin public corpus (ham and
hard ham), attackers' from its spam folder or from generated phishing.

Content the classifier never saw (BENCH_SIM_CONTENT=unseen, the default):
the daemon scans with a model trained on the tuning part of the corpus
without any hard ham (the hard-ham-out protocol of docs/SCANNING.md: the
field report's case, newsletters of kinds the model never learnt), written
to its data directory as model.bin, and every message sent is from the
held-out part. BENCH_SIM_CONTENT=seen uses the shipped model (trained on
the whole corpus) and all of it, which flatters the content side.

Scenarios (the account's owner keeps sending as usual; the attacker sends
until the account is locked, at most 60 messages):
  spam-burst      alice, night of day 8: corpus spam, 20-40 recipients each
  phish-1by1      sales, day 13 during office hours: phishing, 1 new recipient each
  newsletter-hijack newsletter, day 16: phishing to 10 at a time from 4 addresses
  printer-spam    the printer (infected LAN device), day 20: spam to 3 each
  slow-phish      carol, day 23: phishing, 1 recipient each, one every 6 minutes
  trojan-contacts dave, day 25: malware on his own PC sends corpus spam to 1-3
                  of the people he has written to, from the office network,
                  one every 10 minutes (what a message that only the
                  classifier flags, to the user's contacts with usual
                  sending, costs: the response ladder lets one such text
                  through per window; docs/SCANNING.md)

Reported per scenario: attacker messages submitted up to and including the
one that locked the account, and how many of them were queued for
delivery. For the legitimate mail: users falsely locked, messages held.
Targets: every compromised account locked within 20 attacker messages;
0 legitimate users locked; <= 0.1% of legitimate messages held.

Run alone: python3 bench/simulate.py (prints a table and exits 1 on a
missed target); `make bench` runs it from bench/run.py.
"""

import datetime as dt
import http.client
import json
import os
import random
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
CORPUS = Path(os.environ.get("BENCH_CORPUS", next(
    (p for p in (REPO.parent / "shared/corpus/spamassassin-public-2002",
                 Path("/work/shared/corpus/spamassassin-public-2002")) if p.exists()),
    REPO.parent / "shared/corpus/spamassassin-public-2002")))
SEED = int(os.environ.get("BENCH_SIM_SEED", "2026"))
CONTENT = os.environ.get("BENCH_SIM_CONTENT", "unseen")
# BENCH_SIM_TRUST=off: response.trust_contacts=false, the ladder before it.
TRUST_CONTACTS = os.environ.get("BENCH_SIM_TRUST", "on") != "off"
DAYS = 30
START = dt.datetime(2026, 3, 2, tzinfo=dt.timezone.utc)  # a Monday
DOMAIN = "corp.example"
PASSWORD = "simulated-password-0123"
PRINTER = "127.0.0.9"
OFFICE_IP, HOME_IPS = "127.0.0.1", ["127.0.20.5", "127.0.21.7", "127.0.22.9"]
# The salesman's trip: the same mail as on any day, from a hotel network.
HOTEL_IP, TRIP_DAYS = "127.0.77.5", (9, 10)
MAX_ATTACK = 60
TARGET_ATTACK, TARGET_HELD = 20, 0.001
LOOPBACK = "127.0.0.1"


def binary():
    env = os.environ.get("OUTGUARD_BIN")
    if env:
        return Path(env)
    release = REPO / "target/release/outguard"
    return release if release.exists() else REPO / "target/debug/outguard"


def is_held_out(name):
    """src/scan/holdout.rs's split: FNV-1a of the seed and the file name."""
    h = 0x811C9DC5
    for b in ("outguard-holdout-2026:" + name).encode():
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h % 10 < 3


def train_unseen(tmp, log):
    """A model of the tuning part's ham and spam, no hard ham at all."""
    train = os.environ.get("OUTGUARD_TRAIN_BIN")
    if not train:
        for c in (REPO / "target/release/outguard-train", REPO / "target/debug/outguard-train"):
            if c.exists():
                train = c
                break
        else:
            subprocess.run(["cargo", "build", "-q", "--features", "tools", "--bin", "outguard-train"],
                           cwd=REPO, check=True)
            train = REPO / "target/debug/outguard-train"
    dirs = {}
    for kind in ("ham", "spam"):
        dirs[kind] = Path(tmp) / f"train-{kind}"
        dirs[kind].mkdir()
        for f in (CORPUS / kind).iterdir():
            if not is_held_out(f.name):
                (dirs[kind] / f.name).symlink_to(f)
    model = Path(tmp) / "data" / "model.bin"
    model.parent.mkdir(mode=0o700)
    t = time.time()
    subprocess.run([str(train), "train", "--ham", str(dirs["ham"]), "--spam", str(dirs["spam"]),
                    "--out", str(model)], check=True, stdout=subprocess.DEVNULL)
    log(f"trained the unseen-content model in {time.time() - t:.0f} s")


def free_port():
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ the sink


class Sink:
    """aiosmtpd on loopback: the daemon's smarthost. Counts deliveries by
    sender; refuses recipients named gone*."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        self.delivered = {}
        sink = self

        class Handler:
            async def handle_RCPT(self, server, session, envelope, address, options):
                if address.split("@")[0].startswith("gone"):
                    return "550 5.1.1 No such user"
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, server, session, envelope):
                k = envelope.mail_from
                sink.delivered[k] = sink.delivered.get(k, 0) + 1
                return "250 OK"

        self.port = free_port()
        self.ctl = Controller(Handler(), hostname=LOOPBACK, port=self.port)
        self.ctl.start()

    def stop(self):
        self.ctl.stop()


# ---------------------------------------------------------------- the daemon


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=60)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(60)
        self.sock.connect(str(self.path))


class Daemon:
    def __init__(self, tmp, sink_port):
        self.dir = Path(tmp)
        self.bin = binary()
        self.smtps, self.plain = free_port(), free_port()
        self.conf = self.dir / "outguard.toml"
        self.socket = self.dir / "data/control.sock"
        self.conf.write_text(
            f"""data_dir = "{self.dir}/data"
run_user = "nobody"
hostname = "outguard.sim"

[smtp]
submission = []
submissions = ["{LOOPBACK}:{self.smtps}"]
plain = ["{PRINTER}:{self.plain}"]
max_sessions_per_ip = 200

[log]
level = "info"

[debug]
clock_override = true

[delivery]
mode = "smarthost"
smarthost = "{LOOPBACK}:{sink_port}"
starttls = "opportunistic"

[admin]
listen = []
"""
        )
        self.log = open(self.dir / "outguard.log", "wb")
        self.proc = subprocess.Popen(
            [str(self.bin), "--config", str(self.conf), "serve"], stdout=self.log, stderr=subprocess.STDOUT
        )
        end = time.time() + 30
        while time.time() < end:
            try:
                if self.api("GET", "/v1/health")[0] == 200:
                    return
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError("daemon exited: " + (self.dir / "outguard.log").read_text())
            time.sleep(0.1)
        raise RuntimeError("daemon did not start")

    def api(self, method, path, body=None):
        c = UnixHTTP(self.socket)
        c.request(method, path, body=None if body is None else json.dumps(body).encode(),
                  headers={"content-type": "application/json"})
        r = c.getresponse()
        out = json.loads(r.read() or b"null")
        c.close()
        return r.status, out

    def cli(self, *args, stdin=None):
        return subprocess.run([str(self.bin), "--config", str(self.conf), *args], input=stdin, text=True,
                              check=True, capture_output=True, timeout=60)

    def clock(self, t):
        status, out = self.api("PUT", "/v1/debug/clock", {"now": t.strftime("%Y-%m-%dT%H:%M:%SZ")})
        assert status == 200, out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# ------------------------------------------------------------------- content


class Corpus:
    def __init__(self, rng):
        self.rng = rng
        pick = (lambda f: is_held_out(f.name)) if CONTENT == "unseen" else (lambda f: True)
        self.ham = sorted(f for f in (CORPUS / "ham").iterdir() if pick(f))
        self.hard_ham = sorted(f for f in (CORPUS / "hard-ham").iterdir() if pick(f))
        self.spam = sorted(f for f in (CORPUS / "spam").iterdir() if pick(f))
        # The issues are drawn apart from the rest, so that which newsletter
        # goes out each week does not depend on how the attacks went.
        self.issues = {}
        self.issue_rng = random.Random(f"{SEED}-issues")

    def issue(self, week):
        """The newsletter of a week: one hard-ham message, the same for every subscriber."""
        if week not in self.issues:
            self.issues[week] = self.issue_rng.choice(self.hard_ham)
        return self.issues[week]

    @staticmethod
    def body_of(path):
        raw = path.read_bytes().replace(b"\r\n", b"\n")
        head, _, body = raw.partition(b"\n\n")
        keep = []
        current = None
        for line in head.split(b"\n"):
            if line[:1] in (b" ", b"\t") and current is not None:
                if current:
                    keep.append(line)
                continue
            name = line.split(b":", 1)[0].lower()
            current = name in (b"subject", b"mime-version", b"content-type", b"content-transfer-encoding")
            if current:
                keep.append(line)
        return b"\n".join(keep), body

    def message(self, kind, sender, rcpts, when):
        if kind == "phish":
            head, body = self.phish()
        elif kind.startswith("issue"):
            head, body = self.body_of(self.issue(kind))
        else:
            head, body = self.body_of(self.rng.choice(self.ham if kind == "ham" else self.spam))
        to = ", ".join(rcpts[:3]) + (", ..." if len(rcpts) > 3 else "")
        mid = f"<{self.rng.getrandbits(64):x}@{DOMAIN}>"
        # The printer (an IP user) writes as scanner@, as it says in MAIL.
        author = sender if "@" in sender else f"scanner@{DOMAIN}"
        top = (f"From: {author}\nTo: {to}\nDate: {when.strftime('%a, %d %b %Y %H:%M:%S +0000')}\n"
               f"Message-ID: {mid}\n").encode()
        return (top + head + b"\n\n" + body).replace(b"\n", b"\r\n")

    def phish(self):
        """Short, plain, well-written lures: content scanners struggle."""
        r = self.rng
        n = r.randint(1000, 99999)
        site = r.choice(["docs-share", "invoice-portal", "secure-files", "mail-verify"]) + f"{r.randint(1, 99)}.example"
        subject, text = r.choice([
            (f"Invoice {n}", f"Hello,\n\nplease find invoice {n} for last month at https://{site}/i/{n}\n"
                             "Payment is due within 14 days.\n\nKind regards\n"),
            ("Shared document", f"Hi,\n\nI shared a document with you: https://{site}/d/{n}\n\nThanks\n"),
            ("Updated bank details", "Dear partner,\n\nour bank details have changed; the new account is "
                                     f"in the attached notice at https://{site}/n/{n}\n\nBest regards\n"),
        ])
        return f"Subject: {subject}".encode(), text.encode()


# ---------------------------------------------------------------------- plan


class User:
    def __init__(self, name, rng, contacts, new_rate, per_day, home_rate=0.0, ip=None):
        self.name, self.ip = name, ip
        self.address = name if ip else f"{name}@{DOMAIN}"
        self.contacts = [f"{name}.contact{i}@partner{rng.randint(1, 60)}.example" for i in range(contacts)]
        self.new_rate, self.per_day, self.home_rate = new_rate, per_day, home_rate
        self.fresh = 0


def plan(rng):
    """Every legitimate message of the month: (time, user, client ip, recipients)."""
    office = [User(n, rng, 25, 0.05, (2, 14), home_rate=0.15)
              for n in ["alice", "bob", "carol", "dave", "erin", "frank"]]
    sales = User("sales", rng, 200, 0.33, (30, 50))
    news = User("newsletter", rng, 10, 0.02, (1, 3))
    printer = User(PRINTER, rng, 0, 0.0, (3, 12), ip=PRINTER)
    colleagues = [f"{u.name}@{DOMAIN}" for u in office + [sales]]
    subscribers = [f"subscriber{i}@home{rng.randint(1, 80)}.example" for i in range(120)]
    events = []
    for day in range(DAYS):
        date = START + dt.timedelta(days=day)
        workday = date.weekday() < 5
        for u in office + [sales, news, printer]:
            if not workday and not (u is sales and rng.random() < 0.3):
                continue
            ip = u.ip or (rng.choice(HOME_IPS) if rng.random() < u.home_rate else OFFICE_IP)
            for _ in range(rng.randint(*u.per_day)):
                when = date + dt.timedelta(minutes=rng.randint(8 * 60, 18 * 60 - 1), seconds=rng.randint(0, 59))
                if u is printer:
                    rcpts = [rng.choice(colleagues)]
                else:
                    rcpts = []
                    for _ in range(rng.choice([1, 1, 1, 2, 3])):
                        if rng.random() < u.new_rate:
                            u.fresh += 1
                            rcpts.append(f"{u.name}.new{u.fresh}@prospect{rng.randint(1, 500)}.example")
                        elif rng.random() < 0.4:
                            rcpts.append(rng.choice(colleagues))
                        else:
                            rcpts.append(rng.choice(u.contacts[: max(5, len(u.contacts))]))
                events.append((when, u.address, ip, sorted(set(rcpts)), "ham"))
        if date.weekday() == 1:  # Tuesday: the newsletter, one message per subscriber
            subscribers += [f"subscriber{len(subscribers) + i}@home{rng.randint(1, 80)}.example" for i in range(3)]
            t = date + dt.timedelta(hours=10)
            for i, s in enumerate(subscribers):
                events.append((t + dt.timedelta(seconds=20 * i), news.address, OFFICE_IP, [s], f"issue{day}"))
    events.sort(key=lambda e: (e[0], e[1]))
    # The trip changes only where the salesman's mail comes from, so no
    # random draw moves.
    events = [(t, a, HOTEL_IP if a == sales.address and (t - START).days in TRIP_DAYS else ip, r, k)
              for t, a, ip, r, k in events]
    return events, [u.address for u in office + [sales, news, printer]]


SCENARIOS = [
    # name, victim, day, hour, content, recipients per message, seconds apart, attacker addresses
    ("spam-burst", f"alice@{DOMAIN}", 8, 22, "spam", (20, 40), 120, ["127.66.0.10"]),
    ("phish-1by1", f"sales@{DOMAIN}", 13, 11, "phish", (1, 1), 60, ["127.66.1.20"]),
    ("newsletter-hijack", f"newsletter@{DOMAIN}", 16, 3, "phish", (10, 10), 90,
     ["127.66.2.1", "127.66.3.2", "127.66.4.3", "127.66.5.4"]),
    ("printer-spam", PRINTER, 20, 14, "spam", (3, 3), 30, [PRINTER]),
    ("slow-phish", f"carol@{DOMAIN}", 23, 9, "phish", (1, 1), 360, ["127.66.6.7"]),
    ("trojan-contacts", f"dave@{DOMAIN}", 25, 14, "spam", (1, 3), 600, [OFFICE_IP]),
]
# Scenarios that write to the victim's own correspondents, not to a list.
TO_CONTACTS = {"trojan-contacts"}


def attack_events(rng, legit):
    out = []
    for name, victim, day, hour, content, (lo, hi), gap, ips in SCENARIOS:
        t0 = START + dt.timedelta(days=day, hours=hour, minutes=7)
        if name in TO_CONTACTS:
            # Its own generator, so that adding it moved no other scenario.
            own = random.Random(f"{SEED}-{name}")
            known = sorted({r for e in legit if e[1] == victim and e[0] < t0 for r in e[3]})
        for i in range(MAX_ATTACK):
            if name in TO_CONTACTS:
                rcpts = own.sample(known, own.randint(lo, hi))
            else:
                n = rng.randint(lo, hi)
                # Harvested lists: some addresses no longer exist.
                rcpts = [f"{'gone' if rng.random() < 0.25 else 'target'}{rng.getrandbits(32):x}"
                         f"@victim{rng.randint(1, 900)}.example" for _ in range(n)]
            out.append((t0 + dt.timedelta(seconds=gap * i), victim, ips[i % len(ips)], rcpts, content, name))
    return out


# -------------------------------------------------------------------- sending


def send(d, sender, ip, rcpts, message, tls_ctx):
    """One SMTP session; returns ("queued" | "held" | "locked" | "refused", reply)."""
    try:
        if ip == PRINTER:
            s = smtplib.SMTP(PRINTER, d.plain, timeout=60, source_address=(PRINTER, 0))
            s.ehlo("printer.corp.example")
        else:
            s = smtplib.SMTP_SSL(LOOPBACK, d.smtps, timeout=60, context=tls_ctx, source_address=(ip, 0))
            s.ehlo("client.corp.example")
            s.login(sender, PASSWORD)
        mail_from = sender if "@" in sender else f"scanner@{DOMAIN}"
        try:
            s.sendmail(mail_from, rcpts, message)
            reply = "250"
            kind = "queued"
        except smtplib.SMTPRecipientsRefused as e:
            reply, kind = str(e), "refused"
        except smtplib.SMTPSenderRefused as e:
            reply = e.smtp_error.decode(errors="replace")
            kind = "locked" if "locked" in reply else "refused"
        except smtplib.SMTPDataError as e:
            reply = e.smtp_error.decode(errors="replace")
            kind = ("locked" if "locked" in reply
                    else "held" if "held for review" in reply or "detected" in reply else "refused")
        s.quit()
        return kind, reply
    except (smtplib.SMTPException, OSError) as e:
        return "refused", str(e)


def settle(d, secs=3.0):
    """Lets delivery catch up (minutes pass between an attacker's messages,
    so its bounces are known before the next one): waits until nothing
    in the queue is due, at most `secs`."""
    end = time.time() + secs
    while time.time() < end:
        status, queue = d.api("GET", "/v1/queue")
        if status != 200 or not any(
            r.get("state") == "queued" and r.get("attempts", 0) == 0
            for e in queue["items"] for r in e.get("recipients", [])
        ):
            return
        time.sleep(0.05)


def run(log=lambda *a: print(*a, file=sys.stderr)):
    rng = random.Random(SEED)
    corpus = Corpus(rng)
    legit, users = plan(rng)
    attacks = attack_events(rng, legit)
    timeline = sorted([(e[0], 0, e) for e in legit] + [(e[0], 1, e) for e in attacks], key=lambda x: (x[0], x[1]))
    tls_ctx = ssl.create_default_context()
    tls_ctx.check_hostname, tls_ctx.verify_mode = False, ssl.CERT_NONE
    tmp = tempfile.mkdtemp(prefix="og-sim-")
    os.chmod(tmp, 0o755)
    if CONTENT == "unseen":
        train_unseen(tmp, log)
    sink = Sink()
    d = Daemon(tmp, sink.port)
    started = time.time()
    try:
        d.clock(START)
        for u in users:
            if u == PRINTER:
                d.cli("user", "add", PRINTER, "--domain", DOMAIN)
            else:
                d.cli("user", "add", u, "--password-stdin", stdin=PASSWORD + "\n")
        d.api("PATCH", "/v1/settings", {"sender_check": "off"})
        if not TRUST_CONTACTS:
            d.api("PATCH", "/v1/settings", {"response": {"trust_contacts": False}})
        stats = {s[0]: {"victim": s[1], "submitted": 0, "queued": 0, "locked_after": None, "lock_reason": ""}
                 for s in SCENARIOS}
        compromised = {}  # victim -> (scenario, start, unlock time or None)
        legit_total, legit_held, held_samples, refused, legit_by_user = 0, 0, [], 0, {}
        trip = [0, 0]  # the salesman's messages from the hotel, held
        issues = {}  # newsletter issue -> [copies sent, copies held]
        unlock_due = []
        for when, _, e in timeline:
            for victim, t in list(unlock_due):
                if when >= t:  # the admin cleans up the next morning
                    d.clock(t)
                    d.api("POST", f"/v1/users/{victim}/unlock")
                    compromised.pop(victim, None)
                    unlock_due.remove((victim, t))
            d.clock(when)
            if len(e) == 6:
                _, victim, ip, rcpts, content, name = e
                st = stats[name]
                if st["locked_after"] is not None or st["submitted"] >= MAX_ATTACK:
                    continue
                compromised.setdefault(victim, name)
                kind, reply = send(d, victim, ip, rcpts, corpus.message(content, victim, rcpts, when), tls_ctx)
                settle(d)
                if kind == "locked":  # refused at MAIL: locked by the previous message
                    st["locked_after"] = st["submitted"]
                else:
                    st["submitted"] += 1
                    st["queued"] += kind == "queued"
                    u = d.api("GET", f"/v1/users/{victim}")[1]
                    if u.get("locked"):
                        st["locked_after"] = st["submitted"]
                        st["lock_reason"] = u["lock"].get("reason", "")
                if st["locked_after"] is not None:
                    nxt = (when + dt.timedelta(days=1)).replace(hour=7, minute=30, second=0)
                    unlock_due.append((victim, nxt))
                continue
            _, sender, ip, rcpts, what = e
            if sender in compromised:
                continue  # the owner's mail while the account is stolen or locked is not judged
            kind, reply = send(d, sender, ip, rcpts, corpus.message(what, sender, rcpts, when), tls_ctx)
            legit_total += 1
            if what.startswith("issue"):
                sent = issues.setdefault(f"{when:%m-%d} {corpus.issue(what).name[:5]}", [0, 0])
                sent[0] += 1
                sent[1] += kind in ("held", "locked")
            if ip == HOTEL_IP:
                trip[0] += 1
                trip[1] += kind in ("held", "locked")
            if kind in ("held", "locked"):
                legit_held += 1
                legit_by_user[sender] = legit_by_user.get(sender, 0) + 1
                held_samples.append(f"{when:%m-%d %H:%M} {sender} -> {len(rcpts)}: {reply[:200]}")
            elif kind == "refused":
                refused += 1
        # False locks: any lock in a history outside the user's compromise.
        false_locked, false_lock_events = [], []
        victims = {s[1] for s in SCENARIOS}
        for u in users:
            info = d.api("GET", f"/v1/users/{u}")[1]
            locks = [h for h in info.get("history", []) if h["event"].startswith("locked")]
            if locks and (u not in victims or len(locks) > 1):
                false_locked.append(u)
                false_lock_events.extend(f"{u} {h['at']}: {h['event'][:300]}" for h in locks)
        elapsed = time.time() - started
        log(f"simulated {DAYS} days in {elapsed:.0f} s")
    finally:
        d.stop()
        sink.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    res = {
        "seed": SEED,
        "days": DAYS,
        "scenarios": stats,
        "legit_messages": legit_total,
        "legit_held": legit_held,
        "legit_held_share": legit_held / max(legit_total, 1),
        "legit_refused_other": refused,
        "held_samples": held_samples[:10],
        "legit_held_by_user": legit_by_user,
        "content": CONTENT,
        "trust_contacts": TRUST_CONTACTS,
        "newsletter_issues": {k: {"copies": v[0], "held": v[1]} for k, v in issues.items()},
        "trip": {"messages": trip[0], "held": trip[1]},
        "false_locked": false_locked,
        "false_lock_events": false_lock_events,
        "delivered_by_sink": sum(sink.delivered.values()),
        "seconds": round(elapsed, 1),
        "binary": str(d.bin),
    }
    res["targets"] = {
        "every compromised account locked within 20 attacker messages": all(
            s["locked_after"] is not None and s["locked_after"] <= TARGET_ATTACK for s in stats.values()),
        "0 legitimate users locked": not false_locked,
        "<= 0.1% of legitimate messages held": res["legit_held_share"] <= TARGET_HELD,
    }
    return res


def markdown(res):
    lines = [
        f"Behaviour simulation (bench/simulate.py, seed {res['seed']}, {res['days']} days, "
        f"{res['legit_messages']} legitimate messages, content {res['content']}, "
        f"trust_contacts {'on' if res['trust_contacts'] else 'off'}, {res['seconds']} s):",
        "",
        "| scenario | account | attacker messages until locked | of them queued for delivery | lock reason |",
        "|---|---|---|---|---|",
    ]
    for name, s in res["scenarios"].items():
        locked = s["locked_after"] if s["locked_after"] is not None else f"not locked after {s['submitted']}"
        reason = s["lock_reason"].replace("|", "/")[:140]
        lines.append(f"| {name} | {s['victim']} | {locked} | {s['queued']} | {reason} |")
    lines += [
        "",
        f"Legitimate: {res['legit_held']} of {res['legit_messages']} messages held "
        f"({100 * res['legit_held_share']:.3f}%), users falsely locked: {', '.join(res['false_locked']) or 'none'}.",
        "Newsletter issues (hard-ham message, copies held of copies sent): " + "; ".join(
            f"{k}: {v['held']} of {v['copies']}" for k, v in res["newsletter_issues"].items()) + ".",
        f"The salesman's trip (days {TRIP_DAYS[0]}-{TRIP_DAYS[-1]}, a network new to him, a third of it to new prospects): "
        f"{res['trip']['held']} of {res['trip']['messages']} messages held.",
        "",
        "| target | result |",
        "|---|---|",
    ]
    lines += [f"| {k} | {'PASS' if v else 'FAIL'} |" for k, v in res["targets"].items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    out = run()
    print(markdown(out))
    if out["false_lock_events"]:
        print("Locks of users falsely locked:", *out["false_lock_events"], sep="\n  ")
    if out["held_samples"]:
        print("Held legitimate messages (first 10):", *out["held_samples"], sep="\n  ")
    (BENCH / "out").mkdir(exist_ok=True)
    (BENCH / "out" / "simulate.json").write_text(json.dumps(out, indent=1))
    sys.exit(0 if all(out["targets"].values()) else 1)
