"""Power cuts in the QEMU image: the VM is killed (SIGKILL to QEMU, no
shutdown, no sync) while clients are submitting, at least 5 times; after
each cut the image boots again and every message that got a 250 must be
in the queue, and the store must open (the daemon serves again).

x86_64 only (aarch64 boots the same scripts and store; each extra boot
costs tens of seconds of emulation). Mail stays queued: the next hop is a
closed port on the host."""

from __future__ import annotations

import json
import os
import random
import re
import smtplib
import ssl
import threading
import time

import pytest

import ogvm

from pathlib import Path

from .test_boot import ADMIN_PASSWORD, BANNER_TIMEOUT, guest_json, wait_output

ROUNDS = 5
USER, PASSWORD = "alice@example.com", "alice-Pass-1"
ARCH = "x86_64"


def closed_port() -> int:
    return ogvm.free_port()


def load(vm: ogvm.VM, acked: list, stop: threading.Event, who: int) -> None:
    """Submits until stopped (or the VM dies); records the queue id of each 250."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    n = 0
    while not stop.is_set():
        n += 1
        msg = (f"From: {USER}\r\nTo: r{who}@example.net\r\nSubject: minutes {who}-{n}\r\n"
               f"Date: Fri, 27 Nov 2026 10:00:00 +0000\r\nMessage-ID: <cut{who}-{n}-{time.time_ns()}@example.com>\r\n\r\n"
               "Hi Bob,\r\n\r\nthe notes from Tuesday's meeting are below. Let me know what I missed.\r\n\r\nAlice\r\n")
        try:
            with smtplib.SMTP("127.0.0.1", vm.smtp_port, timeout=30) as s:
                s.starttls(context=ctx)
                s.login(USER, PASSWORD)
                s.mail(USER)
                s.rcpt(f"r{who}@example.net")
                code, reply = s.data(msg)
            if code == 250:
                acked.append(reply.decode().rsplit(" ", 1)[1])
        except (OSError, smtplib.SMTPException):
            time.sleep(0.2)


def queued_ids(vm: ogvm.VM) -> set[str]:
    # Ids only: the whole queue as JSON grows by ~700 bytes a message, and
    # an emulated serial line under load once took over a minute to print it.
    out = vm.sh("outguard --config /etc/outguard/outguard.toml queue list > /tmp/queue.txt "
                "&& cut -d' ' -f1 /tmp/queue.txt", timeout=180)
    return set(re.findall(r"^([0-9A-Fa-f]{16})\s*$", out, re.M))


@pytest.mark.slow
@pytest.mark.beside  # six x86_64 boots, beside the other tests (tests/image/conftest.py)
def test_power_cuts_lose_no_acknowledged_mail(tmp_path):
    ogvm.require_image(ARCH)
    work = tmp_path / ARCH
    disk = ogvm.fresh_disk(ARCH, work)
    ogvm.provision(disk, {
        "provision.conf": (f"hostname = cut.example.org\nadmin_password = {ADMIN_PASSWORD}\n"
                           f"next_hop = 10.0.2.2:{closed_port()}\nnext_hop_starttls = opportunistic\n"),
        "users.csv": f"alice,example.com,{PASSWORD}\n",
    }, work)
    rng = random.Random(20261127)
    acked: list[str] = []
    report = []
    queued_count: list[int] = []
    for rnd in range(ROUNDS + 1):
        vm = ogvm.VM(ARCH, disk, work / f"console-{rnd}.log").start()
        try:
            vm.wait_banner(BANNER_TIMEOUT[ARCH])
            vm.login(ADMIN_PASSWORD)
            if rnd == 0:
                # Provisioning has imported the user before the first cut.
                deadline = time.monotonic() + 180
                while USER not in json.dumps(guest_json(vm, "user list --json")):
                    assert time.monotonic() < deadline, "provisioned user never appeared"
                    time.sleep(1)
            queued = queued_ids(vm)
            queued_count.append(len(queued))
            lost = sorted(set(acked) - queued)
            report.append(f"round {rnd}: {len(acked)} acknowledged so far, {len(queued)} queued, {len(lost)} lost")
            assert not lost, f"after power cut {rnd}: acknowledged but not queued: {lost}"
            if rnd == ROUNDS:
                break
            # Load, then pull the plug at a random moment.
            stop = threading.Event()
            before = len(acked)
            threads = [threading.Thread(target=load, args=(vm, acked, stop, w), daemon=True) for w in range(3)]
            for t in threads:
                t.start()
            deadline = time.monotonic() + 120
            while len(acked) < before + 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(rng.uniform(0.0, 2.0))
            vm.proc.kill()  # power cut: no shutdown, no sync
            vm.proc.wait()
            stop.set()
            for t in threads:
                t.join(60)
            assert len(acked) > before, f"round {rnd}: no message was acknowledged before the cut"
        finally:
            vm.kill()
    print("\n".join(report))
    final = queued_count[-1] if queued_count else 0
    result = {"rounds": ROUNDS, "acknowledged": len(acked), "lost": 0, "queued_without_250": final - len(acked)}
    out = Path(os.environ.get("OUTGUARD_ARTIFACTS", Path(__file__).resolve().parents[1] / "artifacts"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "powercut.json").write_text(json.dumps(result) + "\n")
    assert len(acked) >= ROUNDS * 2


def test_power_cut_right_after_first_boot(tmp_path):
    """The first boot writes the default configuration and the shadow file to /data;
    a power cut seconds later (before the kernel's writeback) must not leave them empty:
    the next boot serves again and the console is still the locked one, not a broken
    login. (Unwritten, ext4 commits the new inode before its data: an empty config made
    the daemon exit 1 on every start.)"""
    ogvm.require_image(ARCH)
    disk = ogvm.fresh_disk(ARCH, tmp_path)
    vm = ogvm.VM(ARCH, disk, tmp_path / "console-0.log").start()
    try:
        vm.wait_banner(BANNER_TIMEOUT[ARCH])
        assert "default configuration written to /data/config/outguard.toml" in vm.output()
        vm.proc.kill()  # power cut: no shutdown, no sync
        vm.proc.wait(timeout=30)
    finally:
        vm.kill()
    vm = ogvm.VM(ARCH, disk, tmp_path / "console-1.log").start()
    try:
        banner, _ = vm.wait_banner(BANNER_TIMEOUT[ARCH])
        assert banner.startswith("220 "), banner
        out = vm.output()
        assert "default configuration written" not in out, "the config was lost"
        assert "outguard exited" not in out, out[-2000:]
        wait_output(vm, "the console login is locked", 60)
    finally:
        vm.kill()
