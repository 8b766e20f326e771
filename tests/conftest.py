"""Shared fixtures: a real `outguard serve` on loopback ports with its own
data directory and config, and clients that speak to it (CLI over the
control socket, raw SMTP over plain or TLS sockets)."""

import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "image"))
from ogvm import free_port  # noqa: E402,F401  (one port picker for the suites and the VMs)
BIN = Path(os.environ.get("OUTGUARD_BIN", ROOT / "target" / "debug" / "outguard"))
PASSWORD = "correct-horse-battery"


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes a minute or more (deselect with -m 'not slow')")


def wait_for(pred, timeout=15.0, what="condition"):
    """Polls `pred` until it returns a truthy value (bounded)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return json.dumps(str(v))


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("outguard", timeout=60)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(60)
        self.sock.connect(str(self.path))


class Daemon:
    """One daemon process with its config, data directory and log."""

    def __init__(self, tmp: Path, **sections):
        self.dir = tmp
        tmp.mkdir(parents=True, exist_ok=True)
        self.data = tmp / "data"
        self.submission = free_port()
        self.submissions = free_port()
        self.plain = free_port()
        self.log_path = tmp / "daemon.log"
        cfg = {
            "": {"data_dir": str(self.data), "run_user": "nobody", "hostname": "outguard.test"},
            "smtp": {
                "submission": [f"127.0.0.1:{self.submission}"],
                "submissions": [f"127.0.0.1:{self.submissions}"],
                "plain": [f"127.0.0.1:{self.plain}"],
                # Generous on shared, noisy CI machines; real clients send
                # their ClientHello within milliseconds.
                "tls_sniff_ms": 400,
            },
            "debug": {"clock_override": True},
            # Delivery to a closed loopback port: accepted mail stays queued
            # (deferred), and no test touches the network.
            "delivery": {"smarthost": "127.0.0.1:1", "starttls": "opportunistic"},
            # The HTTPS admin face is tested in tests/admin; here it stays
            # off so that no test daemon listens on 0.0.0.0:8443.
            "admin": {"listen": []},
        }
        for name, values in sections.items():
            if isinstance(values, dict):
                cfg.setdefault(name, {}).update(values)
            else:
                cfg[""][name] = values  # a top-level key
        lines = []
        for name, values in cfg.items():
            if name:
                lines.append(f"[{name}]")
            lines += [f"{k} = {toml_value(v)}" for k, v in values.items()]
        self.config = tmp / "outguard.toml"
        self.config.write_text("\n".join(lines) + "\n")
        self.socket = self.data / "control.sock"
        self.proc = None

    def start(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([str(BIN), "--config", str(self.config), "serve"], stdout=log, stderr=log)
        log.close()
        wait_for(self._ready, what="daemon to listen")
        return self

    def _ready(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"daemon exited: {self.log()}")
        # The listeners are bound before the control socket appears; probing
        # the API rather than an SMTP port leaves session counts untouched.
        if not self.socket.exists():
            return False
        try:
            return self.api("GET", "/v1/health")[0] == 200
        except OSError:
            return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def alive(self):
        return self.proc.poll() is None

    def log(self):
        return self.log_path.read_text(errors="replace")

    def wait_log(self, *texts, timeout=15.0):
        """Waits until every one of `texts` is in the log: the server may
        write its line after the client has seen the reply or moved on."""
        return wait_for(lambda: all(t in self.log() for t in texts), timeout, f"log lines {texts}")

    # --- control API and CLI ---
    def cli(self, *args, input=None, check=True):
        r = subprocess.run(
            [str(BIN), "--config", str(self.config), *args],
            input=input, capture_output=True, text=True, timeout=120,
        )
        if check and r.returncode != 0:
            raise AssertionError(f"outguard {' '.join(args)} failed: {r.stderr}")
        return r

    def api(self, method, path, body=None):
        c = UnixHTTP(self.socket)
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        c.request(method, path, body=data, headers={"content-type": "application/json"})
        r = c.getresponse()
        out = json.loads(r.read() or b"null")
        c.close()
        return r.status, out

    def add_user(self, name, password=PASSWORD, **settings):
        args = ["user", "add", name]
        for k, v in settings.items():
            args += [f"--{k.replace('_', '-')}", str(v)]
        if password:
            args.append("--password-stdin")
        self.cli(*args, input=(password + "\n") if password else None)

    def user(self, name):
        return json.loads(self.cli("user", "show", name, "--json").stdout)

    def queue(self):
        return json.loads(self.cli("queue", "list", "--json").stdout)

    def set_clock(self, when):
        self.cli("debug", "clock", when)

    def settings(self, **pairs):
        self.cli("settings", "set", *[f"{k}={toml_value(v) if isinstance(v, bool) else v}" for k, v in pairs.items()])


@pytest.fixture
def make_daemon(tmp_path):
    """Factory: make_daemon(smtp={...}, auth={...}) starts a daemon."""
    started = []

    def make(**sections):
        d = Daemon(tmp_path / f"d{len(started)}", **sections)
        started.append(d)
        return d.start()

    yield make
    for d in started:
        d.stop()


@pytest.fixture
def daemon(make_daemon):
    return make_daemon()


def tls_client_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Raw:
    """A line-level SMTP client for checking exact replies."""

    def __init__(self, port, tls=False, timeout=10):
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if tls:
            s = tls_client_context().wrap_socket(s)
        self.sock = s
        self.buf = b""

    def starttls(self):
        self.sock = tls_client_context().wrap_socket(self.sock)

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def line(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed; had " + repr(self.buf))
            self.buf += chunk
        l, self.buf = self.buf.split(b"\n", 1)
        return l.rstrip(b"\r").decode()

    def reply(self):
        """A whole (possibly multi-line) reply: (code, last line, all lines)."""
        lines = [self.line()]
        while len(lines[-1]) > 3 and lines[-1][3] == "-":
            lines.append(self.line())
        return int(lines[-1][:3]), lines[-1], lines

    def cmd(self, text):
        self.send(text + "\r\n")
        return self.reply()

    def closed(self):
        """True if the server closed the connection."""
        try:
            return self.sock.recv(1) == b""
        except (ConnectionError, ssl.SSLError):
            return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def login(port, user, password=PASSWORD, implicit=False):
    """A Raw session, over TLS, after EHLO and AUTH PLAIN."""
    import base64

    r = Raw(port, tls=implicit)
    assert r.reply()[0] == 220
    if not implicit:
        assert r.cmd("EHLO client.test")[0] == 250
        assert r.cmd("STARTTLS")[0] == 220
        r.starttls()
    assert r.cmd("EHLO client.test")[0] == 250
    token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    code, last, _ = r.cmd(f"AUTH PLAIN {token}")
    assert code == 235, last
    return r


def newsletter(name, sender="alice@example.com"):
    """One copy of a mail merge the scanner calls spam, personalised."""
    return (
        f'From: "Garden Shop" <{sender}>\r\nTo: {name.lower()}@home.example\r\n'
        "Subject: LAST CHANCE: SPRING SALE ENDS TONIGHT!!\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/html\r\n\r\n"
        f"<p>Dear {name},</p><p>Our spring sale ends tonight: every garden tool is twenty "
        "percent off, seed packets are two for one, and orders over fifty pounds ship free. "
        "Come to the shop on Saturday for the seed swap, with tea and cake from ten until "
        "four.</p><a href=\"http://192.0.2.1/sale\">https://www.gardenshop.example/sale</a> "
        f'<a href="https://bit.ly/{name.lower()}">order now</a> act now!!! limited time!!!\r\n'
    )


def ham(subject="Minutes of Tuesday meeting", sender="alice@example.com", to="bob@remote.example"):
    """An ordinary business message (the scanner must pass it)."""
    from email.utils import formatdate, make_msgid

    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {formatdate()}\r\n"
        f"Message-ID: {make_msgid(domain='example.com')}\r\n\r\n"
        "Hi Bob,\r\n\r\nattached are the notes from the meeting on Tuesday. "
        "Let me know if I missed anything.\r\n\r\nThanks,\r\nAlice\r\n"
    )


def send_message(r, sender, rcpts, body=None):
    """MAIL, RCPT..., DATA on an open session; returns the final reply."""
    code, last, _ = r.cmd(f"MAIL FROM:<{sender}>")
    if code != 250:
        return code, last
    for rc in rcpts:
        code, last, _ = r.cmd(f"RCPT TO:<{rc}>")
        if code != 250:
            return code, last
    code, last, _ = r.cmd("DATA")
    assert code == 354, last
    r.send((body if body is not None else ham()) + ".\r\n")
    code, last, _ = r.reply()
    return code, last
