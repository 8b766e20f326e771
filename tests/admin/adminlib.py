"""Helpers of the admin-face tests: a daemon in a temporary data directory
with free loopback ports, and logged-in HTTPS clients. A module of its own
(not conftest.py) so that it never meets the suite's tests/conftest.py
under the same module name."""

import json
import os
import pathlib
import shutil
import socket
import ssl
import subprocess
import tempfile
import time

import requests
import urllib3
from conftest import free_port

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

ROOT = pathlib.Path(__file__).resolve().parents[2]
BINARY = ROOT / "target" / "debug" / "outguard"
ARTIFACTS = ROOT / "tests" / "artifacts"
PASSWORD = "admin-test-password"


def build():
    if not BINARY.exists() or os.environ.get("OUTGUARD_BUILD", "1") == "1":
        subprocess.run(["cargo", "build", "--quiet"], cwd=ROOT, check=True)


class Daemon:
    """One `outguard serve` with its own data directory and ports."""

    def __init__(self, admin_extra="", debug_clock=True):
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="og-admin-"))
        os.chmod(self.dir, 0o755)
        self.data = self.dir / "data"
        self.data.mkdir()
        (self.data / "admin-password").write_text(PASSWORD + "\n")
        self.port = free_port()
        self.smtp = free_port()
        self.smtps = free_port()
        self.config = self.dir / "outguard.toml"
        self.config.write_text(
            f"""data_dir = "{self.data}"
run_user = "nobody"
hostname = "outguard.test"
[smtp]
submission = ["127.0.0.1:{self.smtp}"]
submissions = ["127.0.0.1:{self.smtps}"]
[admin]
listen = ["127.0.0.1:{self.port}"]
{admin_extra}
[delivery]
# A closed loopback port: released or accepted mail stays queued and no
# test reaches the network.
smarthost = "127.0.0.1:1"
starttls = "opportunistic"
[debug]
clock_override = {"true" if debug_clock else "false"}
"""
        )
        self.url = f"https://127.0.0.1:{self.port}"
        self.log = open(self.dir / "daemon.log", "wb")
        self.proc = subprocess.Popen(
            [str(BINARY), "serve", "--config", str(self.config)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self._wait()

    def _wait(self):
        # Poll until the HTTPS face answers (bounded: 300 tries).
        for _ in range(300):
            if self.proc.poll() is not None:
                raise RuntimeError("daemon exited:\n" + self.logtext())
            try:
                requests.get(self.url + "/v1/openapi.json", verify=False, timeout=2)
                return
            except requests.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError("daemon did not come up:\n" + self.logtext())

    def logtext(self):
        self.log.flush()
        return (self.dir / "daemon.log").read_text(errors="replace")

    def cli(self, *args, stdin=None, check=True):
        r = subprocess.run(
            [str(BINARY), "--config", str(self.config), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and r.returncode != 0:
            raise AssertionError(f"outguard {' '.join(args)} failed: {r.stderr}")
        return r

    def socket_call(self, method, path, body=None):
        """The control API over the Unix socket, through the CLI's client."""
        import http.client

        class Conn(http.client.HTTPConnection):
            def connect(s):
                s.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.sock.connect(str(self.data / "control.sock"))

        c = Conn("outguard")
        data = json.dumps(body) if isinstance(body, (dict, list)) else body
        c.request(method, path, body=data)
        r = c.getresponse()
        return r.status, json.loads(r.read() or b"null")

    def login(self, password=PASSWORD):
        s = requests.Session()
        s.verify = False
        s.trust_env = False
        r = s.post(self.url + "/v1/session", json={"password": password})
        assert r.status_code == 201, r.text
        s.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        return s

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def submit_spam(daemon, user, password, to="bob@remote.example", text=""):
    """Submits a GTUBE message over 587 with STARTTLS and AUTH, `text`
    after the test string; the user's quarantine response must be
    'accepted' (else the server says 550)."""
    import smtplib

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", daemon.smtp, timeout=30) as s:
        s.ehlo("client.test")
        s.starttls(context=ctx)
        s.ehlo("client.test")
        s.login(user, password)
        body = f"From: {user}\r\nTo: {to}\r\nSubject: offer\r\n\r\n{GTUBE}\r\n{text}\r\n"
        s.sendmail(user, [to], body)
