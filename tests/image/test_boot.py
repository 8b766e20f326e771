"""Boot-and-submit test of the Outguard appliance image in QEMU (software emulation).

Per architecture, on a private copy of the built image (image/build.sh builds it if absent):
  boot 1: provisioning from the ESP (hostname, admin password, next hop, remote syslog with
          its CA, users.csv), first-boot data filesystem, SMTP banner through the forwarded port, console login with the
          provisioned password, a user created through the control API (outguard CLI), a
          message submitted from the host with swaks (STARTTLS + AUTH) and queued, the
          daemon's privileges (/proc/PID/status), the daemon's log at a TLS syslog collector on
          the host, restart after a crash, then `reboot`;
  boot 2: users and queue survived, provisioning not re-applied, root is read-only.
Boots are few on purpose: each one costs seconds of emulated firmware and kernel.
"""

from __future__ import annotations

import json
import os
import re
import socketserver
import subprocess
import threading
import time

import pytest

import ogvm
from syslog_collector import Collector, collector_cert

ARCHS = [
    pytest.param("x86_64", id="x86_64"),
    pytest.param("aarch64", id="aarch64", marks=pytest.mark.slow),
]
# Seconds. Measured here: x86_64 banner ~20 s, aarch64 ~40 s; generous for a loaded CI box.
BANNER_TIMEOUT = {"x86_64": 180, "aarch64": 360}

ADMIN_PASSWORD = "console-Secret-42"
HOSTNAME = "relay-test.example.org"
CSV_USER, CSV_PASSWORD = "alice@example.com", "alice-Pass-1"
API_USER, API_PASSWORD = "bob@example.com", "bob-Pass-2"
WEB_USER, WEB_PASSWORD = "carol@example.com", "carol-Pass-3"
RCPT = "someone@example.net"

# HOOK, delivery to the next hop (being built in another issue): provisioning sets
# [delivery] smarthost = "10.0.2.2:<sink port>" as soon as the installed daemon accepts that
# section; from then on this test also checks that the message reaches the sink below on
# the host (the guest sees the host's loopback as 10.0.2.2). OUTGUARD_TEST_DELIVERY=0/1
# overrides the detection.
DELIVERY_ENV = os.environ.get("OUTGUARD_TEST_DELIVERY")

# What boot 1 saw of the daemon's sandbox, per architecture (for test_daemon_sandbox).
SANDBOX: dict[str, dict] = {}


class _SinkHandler(socketserver.StreamRequestHandler):
    """A minimal SMTP sink on the host's loopback: accepts everything, records messages."""

    def handle(self):
        w = self.wfile.write
        w(b"220 sink ESMTP\r\n")
        data_mode, lines = False, []
        for raw in self.rfile:
            line = raw.rstrip(b"\r\n")
            if data_mode:
                if line == b".":
                    self.server.messages.append(b"\n".join(lines).decode(errors="replace"))
                    data_mode, lines = False, []
                    w(b"250 queued\r\n")
                else:
                    lines.append(line)
                continue
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                w(b"250 sink\r\n")
            elif verb == b"DATA":
                data_mode = True
                w(b"354 go\r\n")
            elif verb == b"QUIT":
                w(b"221 bye\r\n")
                return
            else:
                w(b"250 ok\r\n")


class Sink(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _SinkHandler)
        self.messages: list[str] = []
        threading.Thread(target=self.serve_forever, daemon=True).start()


def swaks(vm: ogvm.VM, user: str, password: str, subject: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["swaks", "--server", "127.0.0.1", "--port", str(vm.smtp_port), "--tls",
         "--auth", "PLAIN", "--auth-user", user, "--auth-password", password,
         "--from", user, "--to", RCPT, "--header", f"Subject: {subject}",
         "--body", "Outguard image test message.", "--timeout", "120"],
        capture_output=True, text=True, timeout=300)


def admin_api(vm: ogvm.VM, password: str):
    """A session on the admin HTTPS API through the forwarded admin port (self-signed
    certificate: not verified). Returns call(method, path, body) -> (status, json)."""
    import http.client
    import ssl

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    state: dict[str, str] = {}

    def call(method: str, path: str, body=None):
        c = http.client.HTTPSConnection("127.0.0.1", vm.admin_port, context=ctx, timeout=60)
        headers = {"Content-Type": "application/json"}
        if "cookie" in state:
            headers["Cookie"] = state["cookie"]
            headers["X-CSRF-Token"] = state["csrf"]
        c.request(method, path, body=json.dumps(body) if body is not None else None,
                  headers=headers)
        r = c.getresponse()
        raw = r.read()
        cookie = r.getheader("Set-Cookie")
        if cookie:
            state["cookie"] = cookie.split(";", 1)[0]
        c.close()
        return r.status, (json.loads(raw) if raw.strip().startswith((b"{", b"[")) else raw)

    status, body = call("POST", "/v1/session", {"password": password})
    assert status == 201, (status, body)
    state["csrf"] = body["csrf_token"]
    return call


def wait_output(vm: ogvm.VM, text: str, timeout: float) -> None:
    """Wait until text is anywhere in the console output (vm.expect only looks after its
    cursor, which wait_banner moves past "supervise: started outguard": what the console
    printed before that would be missed)."""
    deadline = time.monotonic() + timeout
    while text not in vm.output():
        assert time.monotonic() < deadline, f"no {text!r} on the console:\n{vm.output()[-2000:]}"
        time.sleep(0.5)


def guest_json(vm: ogvm.VM, args: str):
    # no --config: the login shell's /etc/profile sets OUTGUARD_CONFIG
    out = vm.sh(f"outguard {args}")
    start = min((i for i in (out.find("["), out.find("{")) if i >= 0), default=-1)
    assert start >= 0, f"no JSON from `outguard {args}`: {out!r}"
    return json.loads(out[start:])


def status_fields(vm: ogvm.VM, pid: str) -> dict[str, str]:
    out = vm.sh(f"cat /proc/{pid}/status")
    return dict(re.findall(r"^(\w+):\s*(.*?)\s*$", out, re.M))


@pytest.mark.parametrize("arch", ARCHS)
def test_boot_submit_reboot(arch, tmp_path):
    ogvm.require_image(arch)
    work = tmp_path / arch
    disk = ogvm.fresh_disk(arch, work)
    sink = Sink()
    # remote syslog: verified against the provisioned CA, under the provisioned name
    ca, cert, key = collector_cert(work / "collector", "DNS:collector.test")
    collector = Collector(cert, key)
    ogvm.provision(disk, {
        "provision.conf": (f"# test provisioning\nhostname = {HOSTNAME}\n"
                           f"admin_password = {ADMIN_PASSWORD}\n"
                           f"next_hop = 10.0.2.2:{sink.server_address[1]}\n"
                           "next_hop_starttls = opportunistic\n"
                           f"syslog = 10.0.2.2:{collector.port}\n"
                           "syslog_server_name = collector.test\n"),
        "users.csv": f"alice,example.com,{CSV_PASSWORD}\n",
        "syslog-ca.pem": ca.read_text(),
    }, work)
    timeout = BANNER_TIMEOUT[arch]
    log1 = work / "console-boot1.log"

    # ---- boot 1 ---------------------------------------------------------------------------
    vm = ogvm.VM(arch, disk, log1).start()
    try:
        banner, secs = vm.wait_banner(timeout)
        print(f"{arch}: boot-to-banner {secs:.1f}s: {banner}")
        assert re.fullmatch(rf"220 {re.escape(HOSTNAME)} ESMTP Outguard.*", banner), banner
        out = vm.output()
        # partitions: esp, rootA, rootB, kernelA, kernelB, data
        assert "first boot: /dev/vda6 is blank, creating the data filesystem" in out
        assert "root rootA (/dev/vda2) mounted read-only" in out

        vm.login(ADMIN_PASSWORD)  # the provisioned admin password is the console password
        # provisioning finished: files applied, then removed from the ESP (they hold secrets)
        vm.sh("i=0; until [ -e /boot/provision/APPLIED ] && [ ! -e /boot/provision/users.csv ]"
              " && [ ! -e /boot/provision/provision.conf ] && [ ! -e /boot/provision/syslog-ca.pem ];"
              " do "
              "i=$((i+1)); [ $i -gt 120 ] && exit 1; sleep 1; done", timeout=180)
        assert "users.csv" in vm.sh("cat /data/config/provision-state")
        next_hop = f"10.0.2.2:{sink.server_address[1]}"
        assert vm.sh("cat /data/config/next-hop").strip() == next_hop
        has_smarthost = f'smarthost = "{next_hop}"' in vm.sh("cat /etc/outguard/outguard.toml")
        delivery = has_smarthost if DELIVERY_ENV is None else DELIVERY_ENV == "1"
        print(f"{arch}: delivery to the sink {'checked' if delivery else 'pending'}")
        if delivery:
            assert has_smarthost, "the next hop was not written as [delivery] smarthost"
        assert CSV_USER in json.dumps(guest_json(vm, "user list --json"))

        # a user created through the admin HTTPS API, from the host through the forwarded
        # port, logged in with the provisioned admin password
        api = admin_api(vm, ADMIN_PASSWORD)
        status, body = api("POST", "/v1/users", {"name": WEB_USER, "password": WEB_PASSWORD})
        assert status in (200, 201), (status, body)
        assert WEB_USER in json.dumps(guest_json(vm, "user list --json"))

        # and one through the control socket (the outguard CLI is its client)
        vm.sh(f"printf '%s\\n' '{API_PASSWORD}' | outguard user add {API_USER} --password-stdin")
        assert API_USER in json.dumps(guest_json(vm, "user list --json"))

        # submission from the host: STARTTLS + AUTH through the forwarded port
        r = swaks(vm, API_USER, API_PASSWORD, "outguard-image-test-1")
        assert r.returncode == 0, f"swaks failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
        assert re.search(r"^ -> STARTTLS\s*$", r.stdout, re.M), r.stdout
        assert re.search(r"^<~  235 ", r.stdout, re.M), f"AUTH not accepted inside TLS:\n{r.stdout}"
        assert re.search(r"^ ~> \.\s*\n<~  250 ", r.stdout, re.M), f"DATA not accepted:\n{r.stdout}"
        # Accepted: still in the queue, or (delivery wakes at once) already at the sink.
        queue = json.dumps(guest_json(vm, "queue list --json"))
        delivered = any("outguard-image-test-1" in m for m in sink.messages)
        assert RCPT in queue or delivered, f"message neither queued nor delivered: {queue}"
        usage = guest_json(vm, f"user show {API_USER} --json")["usage"]
        assert usage["day"] == 1 and usage["recipients_day"] == 1, usage
        day1 = vm.sh("date -u +%F").strip()

        # remote syslog as provisioned: the daemon's log reaches the collector over TLS,
        # verified with the provisioned CA and name
        config = vm.sh("cat /etc/outguard/outguard.toml")
        assert f'remote = "10.0.2.2:{collector.port}"' in config, config
        assert 'server_name = "collector.test"' in config, config
        assert 'ca_file = "/data/config/syslog-ca.pem"' in config, config
        assert "syslog" in vm.sh("cat /data/config/provision-state")
        deadline = time.monotonic() + 120
        while (not any(API_USER in f for f in collector.frames)
               and time.monotonic() < deadline):
            time.sleep(1)
        hits = [f for f in collector.frames if API_USER in f]
        assert hits, f"no frame about {API_USER} at the collector: {collector.frames[-5:]} " \
            f"{collector.errors}"
        assert re.match(rf"<\d+>1 \S+ {re.escape(HOSTNAME)} outguard \d+ - - ", hits[0]), hits[0]
        assert not collector.errors, collector.errors

        # the daemon's privileges, seen from inside the guest
        pid = vm.sh("cat /run/outguard/daemon.pid").strip()
        st = status_fields(vm, pid)
        assert st["Uid"].split() == ["200"] * 4, st["Uid"]
        assert st["Gid"].split() == ["200"] * 4, st["Gid"]
        # The bounding set too: the daemon empties it before dropping root.
        for cap in ("CapInh", "CapPrm", "CapEff", "CapAmb", "CapBnd"):
            assert int(st[cap], 16) == 0, f"{cap}={st[cap]}"
        assert st["NoNewPrivs"] == "1"
        # landlock and seccomp: recorded here, judged by test_daemon_sandbox below
        SANDBOX[arch] = {
            "status": st,
            "lsm": vm.sh("mount -t securityfs securityfs /sys/kernel/security 2>/dev/null; "
                         "cat /sys/kernel/security/lsm"),
            "log": vm.sh("logread | grep 'outguard:' || true"),
            "lockdown": vm.sh("cat /sys/kernel/security/lockdown"),
        }

        # supervision: a crashed daemon comes back, with a new pid, and serves again
        vm.sh(f"kill -KILL {pid}")
        vm.expect(r"outguard exited with status \d+ after \d+s; restarting in 1s", 30)
        banner, _ = vm.wait_banner(120)  # waits for "supervise: started outguard" again
        assert banner.startswith("220 ")

        if delivery:
            # HOOK: delivery to [delivery] smarthost = "10.0.2.2:PORT" (another issue).
            deadline = time.monotonic() + 180
            while (not any("outguard-image-test-1" in m for m in sink.messages)
                   and time.monotonic() < deadline):
                time.sleep(1)
            assert any("outguard-image-test-1" in m for m in sink.messages), sink.messages

        vm.send("reboot\n")
        assert vm.wait_exit(120) == 0  # -no-reboot: the guest's reboot ends QEMU
    finally:
        vm.kill()
        collector.close()

    # ---- boot 2: state survived, root read-only ---------------------------------------------
    vm = ogvm.VM(arch, disk, work / "console-boot2.log").start()
    try:
        banner, secs = vm.wait_banner(timeout)
        print(f"{arch}: second boot-to-banner {secs:.1f}s")
        assert HOSTNAME in banner
        assert "creating the data filesystem" not in vm.output()
        vm.login(ADMIN_PASSWORD)
        users = json.dumps(guest_json(vm, "user list --json"))
        assert CSV_USER in users and API_USER in users and WEB_USER in users, users
        # the per-user counters survived (same calendar day: the guest clock is the host's)
        usage2 = guest_json(vm, f"user show {API_USER} --json")["usage"]
        if vm.sh("date -u +%F").strip() == day1:  # no midnight in between
            assert usage2 == usage, (usage, usage2)
        queue = json.dumps(guest_json(vm, "queue list --json"))
        if not delivery:
            assert RCPT in queue, f"queued message lost across the reboot: {queue}"
        root = vm.sh("awk '$2 == \"/\"' /proc/mounts")
        assert re.search(r"\ssquashfs\s+ro[\s,]", root), root
        ro = vm.sh("touch /usr/bin/x /etc/x 2>&1; echo rc=$?", check=False)
        assert "Read-only file system" in ro and "rc=0" not in ro, ro
        assert "APPLIED" in vm.sh("ls /boot/provision")
        assert "provision.conf" not in vm.sh("ls /boot/provision")
        vm.send("poweroff\n")
        vm.wait_exit(120)
    finally:
        vm.kill()


@pytest.mark.parametrize("arch", ARCHS)
def test_unprovisioned_first_boot(arch, tmp_path):
    """The image as shipped, without provisioning: the daemon comes up with the default
    config (MX delivery, which reads /etc/resolv.conf inside the daemon's landlock ruleset)
    and stays up; the console stays locked."""
    ogvm.require_image(arch)
    disk = ogvm.fresh_disk(arch, tmp_path)
    vm = ogvm.VM(arch, disk, tmp_path / "console.log").start()
    try:
        banner, secs = vm.wait_banner(BANNER_TIMEOUT[arch])
        t_banner = time.monotonic()
        print(f"{arch}: unprovisioned boot-to-banner {secs:.1f}s: {banner}")
        assert re.fullmatch(r"220 outguard ESMTP Outguard.*", banner), banner
        # root is locked ('!') until an admin password is provisioned: the console says how
        # to provision instead of offering a login that can only fail ("bad salt")
        wait_output(vm, "the console login is locked: no admin password has been provisioned", 60)
        vm.send("root\n")
        t_root = time.monotonic()
        # the admin password the daemon generated is shown once on the console, not logged,
        # and opens the admin API
        wait_output(vm, "generated admin password (shown once): ", 60)
        m = re.search(r"generated admin password \(shown once\): (\S+)", vm.output())
        assert m, "no generated admin password on the console"
        api = admin_api(vm, m.group(1))
        status, users = api("GET", "/v1/users")
        assert status == 200, (status, users)
        # the generated password has lines of its own, not glued to the login prompt
        assert re.search(r"(\r?\n){2}outguard: generated admin password \(shown once\): \S+(\r?\n){2}",
                         vm.output()), vm.output()[-2000:]
        # The daemon stays up, and nothing answers the "root" typed at the locked console:
        # looked at once at least 5 s have passed since the banner and since the typing (the
        # checks above take most of that; a safety bound, not a measurement).
        time.sleep(max(0.0, 5 - (time.monotonic() - max(t_banner, t_root))))
        assert "outguard exited" not in vm.output(), vm.output()[-2000:]
        banner, _ = vm.wait_banner(30, after_start=False)
        assert "login: " not in vm.output(), vm.output()[-2000:]
        assert "bad salt" not in vm.output()
        # GRUB finds a video mode for the kernel (run.sh gives x86_64 a display adapter)
        assert "no suitable video mode" not in vm.output()
        assert not re.search(r"(?m)^~ # ", vm.output()), "a shell without a password"
    finally:
        vm.kill()


@pytest.mark.parametrize("arch", ARCHS)
def test_daemon_sandbox(arch):
    """The running daemon (seen in boot 1 of test_boot_submit_reboot) is confined by a
    seccomp filter and a landlock ruleset, and the kernel has both enabled."""
    if arch not in SANDBOX:
        pytest.skip("test_boot_submit_reboot did not get to the privilege checks")
    seen = SANDBOX[arch]
    st, lsm, log = seen["status"], seen["lsm"], seen["log"]
    assert "landlock" in lsm.split(","), f"landlock not in the kernel's LSM list: {lsm}"
    # lsm= and lockdown= on the kernel command line (board/x86_64/debian-kernel.gap): only
    # the hardening fragment's LSMs run, and lockdown is at its strictest
    assert set(lsm.strip().split(",")) - {"capability"} == {"landlock", "lockdown", "yama"}, lsm
    assert "[confidentiality]" in seen["lockdown"], seen["lockdown"]
    binary = (ogvm.IMAGE_OUT / arch / "target" / "usr" / "bin" / "outguard").read_bytes().lower()
    if b"landlock" not in binary or b"seccomp" not in binary:
        # The daemon's sandbox is being built on main; this turns strict by itself as soon
        # as the binary carries landlock and seccomp code.
        pytest.xfail("pending: this outguard build has no landlock/seccomp code yet "
                     f"(Seccomp={st.get('Seccomp')}, NoNewPrivs={st.get('NoNewPrivs')})")
    assert st["Seccomp"] == "2", f"no seccomp filter: Seccomp={st['Seccomp']}"
    assert int(st.get("Seccomp_filters", "1")) >= 1
    assert re.search(r"(?i)landlock", log), f"the daemon did not report its landlock ruleset:\n{log}"
