"""A/B updates with RAUC, in QEMU (x86_64, and aarch64 marked slow; software emulation, so
the boots are few).

On a private copy of the built image, bundles made by image/bundle.sh from the built slot (root
squashfs and kernel partition, whose /version file each bundle sets to its own version; made
while boot 1 runs, the foreign one from the built slot as it is):
  boot 1 (slot A): the slot is marked good once the daemon answers SMTP; a message is
          queued (its next hop is a closed port, so it stays queued); a bundle with another
          version is dropped into the daemon's update spool and installed by the root-side
          update agent into slot B;
  boot 2 (slot B): GRUB boots B (kernel partition kernelB, written with rootB), which runs
          the new version and is marked good; the message is still queued; a bundle signed
          by another CA is refused; a bundle whose daemon fails (exits at once) is installed
          into slot A;
  boot 3 (slot A, broken): no SMTP banner, so slot-health marks A bad and reboots;
  boot 4: GRUB falls back to slot B (the new version), with users and queued mail intact.
"""

from __future__ import annotations

import concurrent.futures
import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

import ogvm

# Both run beside the other image tests (tests/image/conftest.py), one after the other.
ARCHS = [
    pytest.param("x86_64", id="x86_64", marks=pytest.mark.beside),
    pytest.param("aarch64", id="aarch64", marks=[pytest.mark.slow, pytest.mark.beside]),
]
BANNER_TIMEOUT = {"x86_64": 180, "aarch64": 360}
ADMIN_PASSWORD = "update-Secret-42"
USER, PASSWORD = "dave@example.com", "dave-Pass-4"
RCPT = "someone@example.net"
NEW_VERSION = "9.9.1-abtest"
BAD_VERSION = "9.9.2-broken"
# seconds slot-health waits for the banner before it gives a slot up (the default is 300).
# Only boot 3 (the broken slot's trial boot) can run out of it, and its daemon never answers:
# any wait proves the same, a short one spares a minute of emulation.
HEALTH_TIMEOUT = 15


def require_image(arch: str) -> None:
    reason = ogvm.missing_image_reason(arch)
    if reason is None and not (ogvm.IMAGE_OUT / arch / "parts" / "hostrauc").is_dir():
        reason = "the built image has no RAUC parts: rebuild it (make image)"
    if reason is None and not shutil.which("unsquashfs"):
        reason = "unsquashfs is not installed: run image/deps.sh"
    ogvm.require_image(arch, reason)


def make_bundle(arch: str, work: Path, name: str, version: str, edit=None,
                keys: Path | None = None) -> Path:
    """A bundle of the built slot: its root changed by edit(tree) first (no edit: the built
    root as it is), its kernel partition with /version saying `version`. Runs beside the
    booting VMs, at their priority: niced, it starved behind two guests on two cores and
    boot 1 waited for it."""
    built = ogvm.IMAGE_OUT / arch / "images" / "rootfs.squashfs"
    rootfs = built
    if edit is not None:
        tree = work / f"tree-{name}"
        shutil.rmtree(tree, ignore_errors=True)
        subprocess.run(["unsquashfs", "-q", "-n", "-d", str(tree), str(built)],
                       check=True, stdout=subprocess.DEVNULL)
        edit(tree)
        rootfs = work / f"rootfs-{name}.squashfs"
        subprocess.run([str(ogvm.TOP / "image" / "mkrootfs.sh"), str(tree), str(rootfs)],
                       check=True)
        shutil.rmtree(tree)
    kernel = work / f"kernel-{name}.vfat"
    shutil.copyfile(ogvm.IMAGE_OUT / arch / "images" / "kernel.vfat", kernel)
    marker = work / f"version-{name}"
    marker.write_text(f"VERSION_ID={version}\n")
    subprocess.run(["mcopy", "-o", "-i", str(kernel), str(marker), "::/version"], check=True,
                   stdin=subprocess.DEVNULL, env=dict(os.environ, MTOOLS_SKIP_CHECK="1"))
    out = work / f"{name}.raucb"
    env = dict(os.environ, BUNDLE_ROOTFS=str(rootfs), BUNDLE_KERNEL=str(kernel),
               BUNDLE_VERSION=version)
    if keys is not None:
        env["KEYS_DIR"] = str(keys)
    subprocess.run([str(ogvm.TOP / "image" / "bundle.sh"), arch, str(out)], check=True,
                   env=env, stdout=subprocess.DEVNULL)
    if rootfs != built:
        rootfs.unlink()
    kernel.unlink()
    return out


def set_version(version: str):
    def edit(tree: Path) -> None:
        osr = tree / "etc" / "os-release"
        text = re.sub(r"(?m)^VERSION_ID=.*$", f"VERSION_ID={version}", osr.read_text())
        osr.write_text(text)
    return edit


def broken_daemon(tree: Path) -> None:
    set_version(BAD_VERSION)(tree)
    daemon = tree / "usr" / "bin" / "outguard"
    daemon.unlink()
    daemon.write_text("#!/bin/sh\necho 'broken test daemon' >&2\nexit 1\n")
    daemon.chmod(0o755)


def serve(directory: Path) -> http.server.ThreadingHTTPServer:
    """Bundles over HTTP on the host's loopback (the guest reaches it as 10.0.2.2)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def guest_json(vm: ogvm.VM, args: str):
    out = vm.sh(f"outguard --config /etc/outguard/outguard.toml {args}")
    start = min((i for i in (out.find("["), out.find("{")) if i >= 0), default=-1)
    assert start >= 0, f"no JSON from `outguard {args}`: {out!r}"
    return json.loads(out[start:])


def wait_slot_good(vm: ogvm.VM) -> None:
    vm.sh("i=0; until [ \"$(cat /run/outguard/slot-health 2>/dev/null)\" = good ]; do "
          "i=$((i+1)); [ $i -gt 150 ] && exit 1; sleep 1; done", timeout=200)


def install(vm: ogvm.VM, port: int, name: str, cli: bool = False) -> dict[str, str]:
    """Fetch NAME over HTTP and hand it to the update agent: with `outguard update install`
    (through the daemon's control API), or else straight into the daemon's update spool as
    the daemon leaves an upload. Then wait for the agent's verdict."""
    vm.sh("rm -f /run/outguard/update-status")
    if cli:
        vm.sh(f"wget -q -O /tmp/{name} http://10.0.2.2:{port}/{name}", timeout=120)
        out = vm.sh(f"outguard --config /etc/outguard/outguard.toml update install /tmp/{name};"
                    f" rm -f /tmp/{name}", timeout=120)
        assert "other slot" in out, out
    else:
        vm.sh("test -d /data/outguard/update", timeout=30)
        vm.sh(f"wget -q -O /data/outguard/update/incoming.raucb.part http://10.0.2.2:{port}/{name}"
              " && chown 200:200 /data/outguard/update/incoming.raucb.part"
              " && mv /data/outguard/update/incoming.raucb.part"
              " /data/outguard/update/incoming.raucb", timeout=120)
    vm.sh("i=0; until grep -q '^state=\\(installed\\|failed\\)' /run/outguard/update-status 2>/dev/null;"
          " do i=$((i+1)); [ $i -gt 300 ] && exit 1; sleep 1; done", timeout=360)
    text = vm.sh("cat /run/outguard/update-status")
    return dict(re.findall(r"^(\w+)=(.*)$", text, re.M))


def kernel_slot_version(vm: ogvm.VM, label: str) -> str:
    """VERSION_ID of the /version file on the kernel partition labelled `label`."""
    out = vm.sh(f"d=$(for u in /sys/class/block/*/uevent; do grep -qx PARTNAME={label} $u && "
                "sed -n 's/^DEVNAME=//p' $u; done); mkdir -p /tmp/kslot && "
                "mount -t vfat -o ro /dev/$d /tmp/kslot && cat /tmp/kslot/version; "
                "umount /tmp/kslot")
    m = re.search(r"^VERSION_ID=(\S+)$", out, re.M)
    assert m, out
    return m.group(1)


def booted(vm: ogvm.VM) -> tuple[str, str]:
    slot = vm.sh("sed -n 's/.*rauc\\.slot=\\([AB]\\).*/\\1/p' /proc/cmdline").strip()
    version = vm.sh("sed -n 's/^VERSION_ID=//p' /etc/os-release").strip()
    return slot, version


@pytest.mark.parametrize("arch", ARCHS)
def test_update_reboot_rollback(arch, tmp_path):
    require_image(arch)
    work = tmp_path
    bundles = work / "bundles"
    bundles.mkdir()
    # The bundles are made while boot 1 runs (minutes of squashfs work otherwise spent
    # before it); each install waits for its own. The foreign one is refused before its
    # content matters: the built slot as it is, signed by another CA.
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    good = pool.submit(make_bundle, arch, bundles, "good", NEW_VERSION, set_version(NEW_VERSION))
    foreign = pool.submit(make_bundle, arch, bundles, "foreign", "9.9.3-foreign",
                          keys=work / "foreign-keys")
    broken = pool.submit(make_bundle, arch, bundles, "broken", BAD_VERSION, broken_daemon)
    pool.shutdown(wait=False)
    srv = serve(bundles)
    port = srv.server_address[1]
    closed = ogvm.free_port()  # nothing listens: the message stays queued
    timeout = BANNER_TIMEOUT[arch]

    disk = ogvm.fresh_disk(arch, work)
    ogvm.provision(disk, {
        "provision.conf": (f"admin_password = {ADMIN_PASSWORD}\n"
                           f"next_hop = 10.0.2.2:{closed}\n"),
        "users.csv": f"dave,example.com,{PASSWORD}\n",
    }, work)

    # ---- boot 1: slot A, install the new version into B ---------------------------------
    vm = ogvm.VM(arch, disk, work / "console-boot1.log").start()
    try:
        _, secs = vm.wait_banner(timeout)
        print(f"{arch}: boot 1 (slot A) boot-to-banner {secs:.1f}s")
        vm.login(ADMIN_PASSWORD)
        assert booted(vm)[0] == "A"
        first_version = booted(vm)[1]
        wait_slot_good(vm)
        vm.sh("i=0; until [ -e /boot/provision/APPLIED ]; do i=$((i+1)); "
              "[ $i -gt 120 ] && exit 1; sleep 1; done", timeout=180)
        r = subprocess.run(
            ["swaks", "--server", "127.0.0.1", "--port", str(vm.smtp_port), "--tls",
             "--auth", "PLAIN", "--auth-user", USER, "--auth-password", PASSWORD,
             "--from", USER, "--to", RCPT, "--header", "Subject: outguard-ab-test",
             "--body", "kept across updates", "--timeout", "120"],
            capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        assert RCPT in json.dumps(guest_json(vm, "queue list --json"))
        good.result(timeout=900)
        st = install(vm, port, "good.raucb")
        assert st["state"] == "installed" and st["version"] == NEW_VERSION, st
        env = vm.sh("grub-editenv /boot/EFI/BOOT/grubenv list")
        assert "ORDER=B A" in env and "B_OK=1" in env, env
        vm.send("reboot\n")
        assert vm.wait_exit(120) == 0
    finally:
        vm.kill()

    # ---- boot 2: slot B runs the new version; refuse a foreign bundle; install a broken one
    vm = ogvm.VM(arch, disk, work / "console-boot2.log").start()
    try:
        _, secs = vm.wait_banner(timeout)
        print(f"{arch}: boot 2 (slot B) boot-to-banner {secs:.1f}s")
        assert "root rootB (/dev/vda3) mounted read-only" in vm.output()
        vm.login(ADMIN_PASSWORD)
        assert booted(vm) == ("B", NEW_VERSION)
        # RAUC wrote B's kernel partition (the child slot) together with its root
        assert kernel_slot_version(vm, "kernelB") == NEW_VERSION
        wait_slot_good(vm)
        assert RCPT in json.dumps(guest_json(vm, "queue list --json")), "queued mail lost"
        system = guest_json(vm, "update status --json")
        assert system["booted_slot"] == "B" and system["os_version"] == NEW_VERSION, system
        assert system["last_install"] is None or system["last_install"]["state"] != "failed"
        foreign.result(timeout=900)
        broken.result(timeout=900)
        st = install(vm, port, "foreign.raucb", cli=True)
        assert st["state"] == "failed" and "signature" in st["message"].lower(), st
        env = vm.sh("grub-editenv /boot/EFI/BOOT/grubenv list")
        assert "ORDER=B A" in env, f"a refused bundle changed the boot order: {env}"
        st = install(vm, port, "broken.raucb", cli=True)
        assert st["state"] == "installed" and st["version"] == BAD_VERSION, st
        vm.sh(f"echo {HEALTH_TIMEOUT} > /data/config/update-health-timeout")
        vm.send("reboot\n")
        assert vm.wait_exit(120) == 0
    finally:
        vm.kill()

    # ---- boot 3: slot A with the broken daemon: no banner, marked bad, reboot -------------
    vm = ogvm.VM(arch, disk, work / "console-boot3.log").start()
    try:
        vm.expect(r"root rootA \(/dev/vda2\) mounted read-only", timeout)
        vm.expect(r"slot-health: no SMTP banner from slot A", HEALTH_TIMEOUT + timeout)
        assert vm.wait_exit(180) == 0  # its reboot ends QEMU (-no-reboot)
        assert "outguard exited with status 1" in vm.output()
    finally:
        vm.kill()

    # ---- boot 4: back on slot B, data and mail intact --------------------------------------
    vm = ogvm.VM(arch, disk, work / "console-boot4.log").start()
    try:
        _, secs = vm.wait_banner(timeout)
        print(f"{arch}: boot 4 (fallback to slot B) boot-to-banner {secs:.1f}s")
        vm.login(ADMIN_PASSWORD)
        assert booted(vm) == ("B", NEW_VERSION), f"no fallback (first image: {first_version})"
        assert kernel_slot_version(vm, "kernelA") == BAD_VERSION  # installed with rootA
        wait_slot_good(vm)
        assert USER in json.dumps(guest_json(vm, "user list --json"))
        assert RCPT in json.dumps(guest_json(vm, "queue list --json")), "queued mail lost"
        env = vm.sh("grub-editenv /boot/EFI/BOOT/grubenv list")
        assert "A_OK=0" in env and "B_OK=1" in env, env
        # the agent refreshes this snapshot every 10 s: wait for one taken after mark-good
        vm.sh("i=0; until grep -q '^A_OK=0' /run/outguard/update-slots && "
              "grep -q '^B_TRY=0' /run/outguard/update-slots; do i=$((i+1)); "
              "[ $i -gt 30 ] && exit 1; sleep 1; done", timeout=60)
        system = guest_json(vm, "update status --json")
        assert system["booted_slot"] == "B", system
        assert system["slots"]["A"]["state"] == "bad or empty", system
        assert system["slots"]["B"]["state"] == "good", system
        vm.send("poweroff\n")
        vm.wait_exit(120)
    finally:
        vm.kill()
        srv.shutdown()
        for f in (good, foreign, broken):
            f.cancel()
