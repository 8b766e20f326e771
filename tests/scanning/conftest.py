"""Real external engines for the end-to-end scanning tests: clamd with a
signature database written here (EICAR and a private hex pattern) and
spamd with one private rule, each on loopback with its own config in a
temp dir, stopped by PID at the end. rspamd likewise, with the packaged
rules plus one private rule. A missing binary skips the tests that need it
(Debian packages: clamav-daemon, spamd, rspamd)."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from conftest import free_port

# Only clamd knows this one (an .ndb signature written below); the
# built-in scanner passes it.
CLAMD_PATTERN = "OUTGUARD-CLAMD-TEST-PATTERN-7f3a91"
# Only spamd knows this one (a body rule scoring 20 written below).
SPAMD_PHRASE = "OUTGUARD-SPAMD-TEST-PHRASE-41c2"
# Only rspamd knows this one (a Lua rule scoring 20, over its reject
# threshold of 15).
RSPAMD_PHRASE = "OUTGUARD-RSPAMD-TEST-PHRASE-9d07"

START_DEADLINE = 300.0


def _binary(name):
    path = os.environ.get("PATH", "") + ":/usr/sbin:/usr/bin:/sbin"
    return shutil.which(name, path=path)


def _shared_dir(prefix):
    """A temp dir the daemon under test can reach after dropping to its
    run user (pytest's own temp dirs are private to the test user)."""
    d = Path(tempfile.mkdtemp(prefix=prefix))
    d.chmod(0o755)
    return d


class Engine:
    def __init__(self, name, argv, log):
        self.name = name
        self.log_path = log
        with open(log, "ab") as f:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=f, stderr=f)

    def wait(self, connect):
        end = time.monotonic() + START_DEADLINE
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited: {self.log_path.read_text(errors='replace')}")
            try:
                connect().close()
                return self
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"{self.name} did not start: {self.log_path.read_text(errors='replace')}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Clamd:
    def __init__(self, socket_path, port):
        self.socket = socket_path
        self.port = port


@pytest.fixture(scope="module")
def clamd():
    """clamd on a Unix socket and a loopback TCP port."""
    binary = _binary("clamd")
    if not binary:
        pytest.skip("clamd is not installed (Debian package clamav-daemon)")
    d = _shared_dir("og-clamd-")
    db = d / "db"
    db.mkdir()
    (db / "outguard-test.hdb").write_text("44d88612fea8a8f36de82e1278abb02f:68:Eicar-Test-Signature\n")
    (db / "outguard-test.ndb").write_text(f"Outguard.Test.Pattern:0:*:{CLAMD_PATTERN.encode().hex()}\n")
    sock = d / "clamd.sock"
    port = free_port()
    lines = [
        f"DatabaseDirectory {db}",
        f"LocalSocket {sock}",
        "LocalSocketMode 666",
        f"TCPSocket {port}",
        "TCPAddr 127.0.0.1",
        "Foreground yes",
        f"LogFile {d / 'clamd.log'}",
        f"PidFile {d / 'clamd.pid'}",
    ]
    if os.geteuid() == 0:
        lines.append("User root")
    conf = d / "clamd.conf"
    conf.write_text("\n".join(lines) + "\n")
    e = Engine("clamd", [binary, "-c", str(conf)], d / "clamd.out")

    def connect():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(str(sock))
        except OSError:
            s.close()
            raise
        return s

    try:
        e.wait(connect)
        e.wait(lambda: socket.create_connection(("127.0.0.1", port), timeout=1))
        yield Clamd(sock, port)
    finally:
        e.stop()
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def spamd():
    """spamd on a loopback port; yields "127.0.0.1:PORT"."""
    binary = _binary("spamd")
    if not binary:
        pytest.skip("spamd is not installed (Debian package spamd)")
    d = _shared_dir("og-spamd-")
    site = d / "site"
    site.mkdir()
    site.chmod(0o755)
    # The site config replaces /etc/spamassassin: keep its plugin loaders
    # (*.pre; without them spamd cannot scan), drop the local settings.
    for pre in Path("/etc/spamassassin").glob("*.pre"):
        shutil.copy(pre, site / pre.name)
    (site / "outguard-test.cf").write_text(
        f"body OUTGUARD_TEST_PHRASE /{SPAMD_PHRASE}/\n"
        "describe OUTGUARD_TEST_PHRASE Outguard test phrase\n"
        "score OUTGUARD_TEST_PHRASE 20.0\n"
        "use_bayes 0\n"
    )
    port = free_port()
    argv = [
        binary,
        f"--listen=127.0.0.1:{port}",
        "--nouser-config",
        "--local",
        "--max-children=1",
        "--syslog=stderr",
        f"--siteconfigpath={site}",
        f"--pidfile={d / 'spamd.pid'}",
    ]
    if os.geteuid() == 0:
        argv.append("--username=nobody")
    e = Engine("spamd", argv, d / "spamd.log")
    try:
        e.wait(lambda: socket.create_connection(("127.0.0.1", port), timeout=1))
        yield f"127.0.0.1:{port}"
    finally:
        e.stop()
        shutil.rmtree(d, ignore_errors=True)


RSPAMD_RULE = """
rspamd_config.OUTGUARD_TEST_PHRASE = {
  callback = function(task)
    return tostring(task:get_content()):find('%s', 1, true) ~= nil
  end,
  score = 20.0,
  description = 'Outguard test phrase',
}
"""


@pytest.fixture(scope="module")
def rspamd():
    """rspamd's normal worker on a loopback port; yields its URL."""
    binary = _binary("rspamd")
    if not binary:
        pytest.skip("rspamd is not installed (Debian package rspamd)")
    d = _shared_dir("og-rspamd-")
    port = free_port()
    # The packaged rules ($CONFDIR) with our own options, log and single
    # worker; LOCAL_CONFDIR is this dir, so only our rule is added.
    (d / "rspamd.conf").write_text(
        '.include "$CONFDIR/common.conf"\n'
        'options {\n  pidfile = "$RUNDIR/rspamd.pid";\n  .include "$CONFDIR/options.inc"\n}\n'
        'logging {\n  type = "file";\n  filename = "$LOGDIR/rspamd.log";\n  level = "info";\n}\n'
        f'worker "normal" {{\n  bind_socket = "127.0.0.1:{port}";\n  .include "$CONFDIR/worker-normal.inc"\n}}\n'
    )
    (d / "rspamd.local.lua").write_text(RSPAMD_RULE % RSPAMD_PHRASE)
    argv = [binary, "-f", "-c", str(d / "rspamd.conf")]
    argv += [f"--var={v}={d}" for v in ("LOCAL_CONFDIR", "DBDIR", "RUNDIR", "LOGDIR")]
    if os.geteuid() == 0:
        argv += ["-u", "root", "-g", "root", "-i"]
    e = Engine("rspamd", argv, d / "rspamd.out")
    try:
        e.wait(lambda: socket.create_connection(("127.0.0.1", port), timeout=1))
        yield f"http://127.0.0.1:{port}"
    finally:
        e.stop()
        shutil.rmtree(d, ignore_errors=True)
