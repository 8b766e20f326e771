"""Drive an Outguard image in QEMU: boot it with image/run.sh, read the serial console,
log in, run commands, wait for the SMTP banner through the forwarded port.

Used by tests/image/test_boot.py and image/report.py. Standard library only.
"""

from __future__ import annotations

import atexit
import os
import random
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

TOP = Path(__file__).resolve().parent.parent
IMAGE_OUT = Path(os.environ.get("IMAGE_OUT", TOP / "image" / "out"))
ANSI = re.compile(rb"\x1b\[[0-9;=?]*[A-Za-z]|\x1b[()][0-9A-B]")


def image_path(arch: str) -> Path:
    return IMAGE_OUT / arch / "images" / f"outguard-{arch}.img"


def build_image(arch: str) -> Path:
    img = image_path(arch)
    if not img.exists():
        subprocess.run([str(TOP / "image" / "build.sh"), arch], check=True)
    return img


def missing_image_reason(arch: str) -> str | None:
    """Why the boot tests of ARCH cannot run here, or None. The tests boot the image that
    `make image ARCH=...` built; they do not build it themselves (minutes of work)."""
    if not image_path(arch).exists():
        return f"no {image_path(arch)}: run image/deps.sh and make image ARCH={arch}"
    for tool in (f"qemu-system-{arch}", "swaks", "sfdisk", "mcopy"):
        if not shutil.which(tool):
            return f"{tool} is not installed: run image/deps.sh"
    return None


def require_image(arch: str, reason: str | None = None) -> None:
    """Skips the calling test when the image of ARCH cannot boot here (`reason`, or
    missing_image_reason); in CI, where .ci/run builds the images, fails it instead."""
    import pytest  # only the tests call this; `make run` needs no pytest

    reason = reason or missing_image_reason(arch)
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must build the image first (.ci/run): {reason}")
        pytest.skip(reason)


# A whole console line written by the init scripts (lib.sh's og_log).
CONSOLE_NOTE = re.compile(r"(?m)^outguard-init: .*\n")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A loopback port nobody listens on, below the kernel's ephemeral range.

    `bind(0)` hands out a port from the range the kernel also takes the local
    ports of outgoing connections from, so between this check and the later
    bind (QEMU's forward, a test daemon) a client connection could take it
    (CI saw a daemon stop with "Address already in use"). Below that range
    only listeners bind, and the check below sees them. The test suites use
    this one too (tests/conftest.py)."""
    low = min(_ephemeral_low(), 32768)
    for _ in range(500):
        port = random.randrange(10000, low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port below the ephemeral range")


def fresh_disk(arch: str, workdir: Path) -> Path:
    """A private copy of the built image (sparse), so a test never changes the build output."""
    workdir.mkdir(parents=True, exist_ok=True)
    disk = workdir / f"disk-{arch}.img"
    subprocess.run(["cp", "--sparse=always", str(build_image(arch)), str(disk)], check=True)
    vars_fd = workdir / "vars.fd"
    if vars_fd.exists():
        vars_fd.unlink()
    return disk


def provision(disk: Path, files: dict[str, str], workdir: Path) -> None:
    """Write provisioning files into the disk's ESP /provision with image/provision.sh."""
    d = workdir / "provision"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    for name, text in files.items():
        (d / name).write_text(text)
    subprocess.run([str(TOP / "image" / "provision.sh"), str(disk), str(d)], check=True,
                   stdout=subprocess.DEVNULL)


# QEMU processes still running: killed when Python exits (a test run that stops early,
# with a VM still up in a thread, leaves no QEMU behind)
_LIVE: set[subprocess.Popen] = set()


@atexit.register
def _kill_live() -> None:
    for proc in list(_LIVE):
        if proc.poll() is None:
            proc.kill()


class VM:
    """One QEMU run of image/run.sh with its serial console on pipes."""

    def __init__(self, arch: str, disk: Path, log_path: Path | None = None,
                 env: dict[str, str] | None = None):
        self.arch = arch
        self.extra_env = env or {}
        self.disk = disk
        self.smtp_port = free_port()
        self.smtps_port = free_port()
        self.admin_port = free_port()
        self.log_path = log_path
        self.buf = bytearray()
        self.cursor = 0
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.proc: subprocess.Popen | None = None
        self.t0 = 0.0
        self.seq = 0

    # -- process ------------------------------------------------------------------------
    def start(self) -> "VM":
        env = dict(os.environ, DISK=str(self.disk), VARS=str(self.disk.parent / "vars.fd"),
                   SMTP_PORT=str(self.smtp_port), SMTPS_PORT=str(self.smtps_port),
                   ADMIN_PORT=str(self.admin_port), **self.extra_env)
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen([str(TOP / "image" / "run.sh"), self.arch], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        _LIVE.add(self.proc)
        threading.Thread(target=self._reader, daemon=True).start()
        return self

    def _reader(self) -> None:
        assert self.proc and self.proc.stdout
        logf = open(self.log_path, "ab") if self.log_path else None
        # beside the raw log, the same lines with the seconds since QEMU started (where
        # a test's time goes: firmware, kernel, banner, each command)
        tsf = open(f"{self.log_path}.ts", "a") if self.log_path else None
        line = b""
        try:
            while True:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                if logf:
                    logf.write(chunk)
                    logf.flush()
                if tsf:
                    line += chunk
                    *done, line = line.split(b"\n")
                    t = time.monotonic() - self.t0
                    for ln in done:
                        text = ANSI.sub(b"", ln.replace(b"\r", b"")).decode(errors="replace")
                        tsf.write(f"{t:8.2f} {text}\n")
                    tsf.flush()
                with self.cond:
                    self.buf += ANSI.sub(b"", chunk.replace(b"\r", b""))
                    self.cond.notify_all()
        finally:
            if logf:
                logf.close()
            if tsf:
                tsf.close()
            with self.cond:
                self.cond.notify_all()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_exit(self, timeout: float) -> int:
        assert self.proc
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        _LIVE.discard(self.proc)

    def output(self) -> str:
        with self.lock:
            return self.buf.decode(errors="replace")

    # -- console ------------------------------------------------------------------------
    def expect(self, pattern: str | bytes, timeout: float) -> re.Match:
        """Wait for pattern (regex) in console output after the cursor; move the cursor past it."""
        rx = re.compile(pattern.encode() if isinstance(pattern, str) else pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                m = rx.search(self.buf, self.cursor)
                if m:
                    self.cursor = m.end()
                    return m
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc and self.proc.poll() is not None and not self._pending()):
                    tail = self.buf[-3000:].decode(errors="replace")
                    raise TimeoutError(f"{self.arch}: no {rx.pattern!r} on the console "
                                       f"after {timeout:.0f}s; last output:\n{tail}")
                self.cond.wait(min(left, 0.5))

    def _pending(self) -> bool:
        return False

    def send(self, text: str) -> None:
        assert self.proc and self.proc.stdin
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def login(self, password: str, timeout: float = 120) -> None:
        for attempt in range(3):
            self.send("\n")
            self.expect(r"login: ", timeout)
            self.send("root\n")
            self.expect(r"Password: ", 30)
            self.send(password + "\n")
            m = self.expect(rb"(# |Login incorrect)", 60)
            if m.group(1) == b"# ":
                self.sh("stty -echo; export PS1='# '")
                return
        raise AssertionError("console login failed")

    def sh(self, command: str, timeout: float = 60, check: bool = True) -> str:
        """Run a shell command on the logged-in console; return its output (stdout+stderr)."""
        self.seq += 1
        n = self.seq
        # The markers are built by printf so the echoed command line never matches them.
        self.send(f"printf '%s_%s\\n' OGBEGIN {n}; ( {command} ) 2>&1; "
                  f"printf '%s_%s_%s\\n' OGEND {n} $?\n")
        self.expect(rf"OGBEGIN_{n}\n", timeout)
        m = self.expect(rf"(?s)(.*?)OGEND_{n}_(\d+)\n", timeout)
        # The init scripts also write their messages to the console (og_log), so one may
        # land between the command's lines (seen: provisioning's "done" before a `cat`).
        out = CONSOLE_NOTE.sub("", m.group(1).decode(errors="replace"))
        rc = int(m.group(2))
        if check and rc != 0:
            raise AssertionError(f"guest command failed ({rc}): {command}\n{out}")
        return out

    # -- network --------------------------------------------------------------------------
    def wait_banner(self, timeout: float, after_start: bool = True) -> tuple[str, float]:
        """Connect to the forwarded submission port until the SMTP banner arrives.
        Returns (banner line, seconds since QEMU start).

        QEMU's user networking accepts a host connection at once and only then tries the
        guest: while the guest has no address yet the connection just hangs, and once it
        has one but nothing listens it is reset. So probe only after the supervisor has
        started the daemon, and give each probe a short first-byte timeout (growing after
        a few misses, in case a loaded machine is slow to send the banner), so the time
        measured is within about a second of the real one. after_start=False probes at
        once (the daemon is already up)."""
        deadline = time.monotonic() + timeout
        if after_start:  # not when the daemon is known to be running already
            self.expect(r"supervise: started outguard", timeout)
        last = ""
        attempt = 0
        while time.monotonic() < deadline:
            if not self.alive():
                raise AssertionError(f"QEMU exited before the banner:\n{self.output()[-3000:]}")
            attempt += 1
            first_byte = 1.0 if attempt <= 10 else 5.0
            try:
                with socket.create_connection(("127.0.0.1", self.smtp_port), timeout=5) as s:
                    s.settimeout(first_byte)
                    data = s.recv(512)
                    s.settimeout(5)
                    while data and not data.endswith(b"\n"):
                        chunk = s.recv(512)
                        if not chunk:
                            break
                        data += chunk
                    if data.startswith(b"220"):
                        t = time.monotonic() - self.t0
                        s.sendall(b"QUIT\r\n")
                        return data.decode().strip(), t
                    last = data.decode(errors="replace")
            except OSError as e:
                last = str(e)
            time.sleep(0.1)
        raise TimeoutError(f"no SMTP banner on 127.0.0.1:{self.smtp_port} after {timeout}s "
                           f"(last: {last!r}); console:\n{self.output()[-3000:]}")
