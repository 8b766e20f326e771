"""Checks that need no QEMU: the br2-external's structure and conventions (a stand-in for
Buildroot's own utils/check-package, which cannot run here: Buildroot is not available to
this repository's CI), the kernel fragments' syntax, and shellcheck on every script."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parents[2]
BR = TOP / "buildroot"
BOARDS = ["x86_64", "aarch64"]


def test_external_desc_and_mk():
    desc = (BR / "external.desc").read_text()
    assert re.search(r"^name: OUTGUARD$", desc, re.M)
    assert re.search(r"^desc: .+$", desc, re.M)
    mk = (BR / "external.mk").read_text()
    assert "$(BR2_EXTERNAL_OUTGUARD_PATH)/package/*/*.mk" in mk
    cfg = (BR / "Config.in").read_text()
    for pkg in sorted(p.parent.name for p in (BR / "package").glob("*/Config.in")):
        assert f'source "$BR2_EXTERNAL_OUTGUARD_PATH/package/{pkg}/Config.in"' in cfg


def test_package_follows_buildroot_conventions():
    mk = (BR / "package/outguard/outguard.mk").read_text().splitlines()
    # the 80-column header check-package wants
    assert mk[:5] == ["#" * 80, "#", "# outguard", "#", "#" * 80]
    # the eval, then only the hash-files override of the download step (its target exists
    # only after the eval)
    assert mk[-1] == "$(OUTGUARD_TARGET_SOURCE): OUTGUARD_HASH_FILES =", mk[-1]
    assert "$(eval $(cargo-package))" in mk
    for line in mk[:mk.index("$(eval $(cargo-package))")]:
        assert not line.endswith((" ", "\t")), f"trailing blank: {line!r}"
        m = re.match(r"^([A-Z0-9_]+) *[:+?]?=", line)
        if m:
            assert m.group(1).startswith("OUTGUARD_"), f"variable outside the package namespace: {line}"
    cin = (BR / "package/outguard/Config.in").read_text().splitlines()
    assert cin[0] == "config BR2_PACKAGE_OUTGUARD"
    in_help = False
    for line in cin[1:]:
        if line == "\thelp":
            in_help = True
            continue
        if not line:
            continue
        if in_help:
            assert line.startswith("\t  "), f"help text must be tab + 2 spaces: {line!r}"
            assert len(line.expandtabs(8)) <= 72, f"help line over 72 columns: {line!r}"
        else:
            assert re.match(r"^\t(bool|depends on|select|default|help)\b", line), line


@pytest.mark.parametrize("board", BOARDS)
def test_defconfig_paths_exist(board):
    text = (BR / "configs" / f"outguard_{board}_defconfig").read_text()
    for line in text.splitlines():
        assert re.match(r"^(BR2_[A-Za-z0-9_]+=.*|# BR2_[A-Za-z0-9_]+ is not set)$", line), line
    refs = re.findall(r"\$\(BR2_EXTERNAL_OUTGUARD_PATH\)(/[^\" ]+)", text)
    assert refs, "the defconfig should use the board/ files"
    for ref in refs:
        path = (BR / ref.lstrip("/")).resolve()
        assert path.exists(), f"{board}: {ref} does not exist"
    assert f'BR2_ROOTFS_POST_SCRIPT_ARGS="{board}"' in text
    assert (TOP / "board" / board / "meta").exists()


@pytest.mark.parametrize("frag", sorted(str(p.relative_to(TOP)) for p in TOP.glob("board/**/*.fragment")))
def test_fragment_syntax(frag):
    for line in (TOP / frag).read_text().splitlines():
        if not line or (line.startswith("# ") and not line.startswith("# CONFIG_")):
            continue
        assert re.match(r'^(CONFIG_[A-Z0-9_]+=(y|m|n|"[^"]*"|[0-9]+)|# CONFIG_[A-Z0-9_]+ is not set)$',
                        line), f"{frag}: {line!r}"


def shell_scripts() -> list[Path]:
    out = []
    for p in list((TOP / "image").glob("*.sh")) + list((TOP / "board").rglob("*")):
        if p.is_file() and not p.is_symlink():
            head = p.read_bytes()[:64]
            if head.startswith(b"#!/bin/sh") or p.suffix == ".sh" or p.name == "lib.sh":
                out.append(p)
    return sorted(out)


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed (image/deps.sh)")
def test_shellcheck():
    scripts = shell_scripts()
    assert len(scripts) >= 10
    r = subprocess.run(["shellcheck", "-S", "warning", "-x", *map(str, scripts)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_package_hash_and_license():
    """legal-info: the license file exists and outguard.hash has its sha256; the
    package names it; the download step alone runs without the hash file (its tarball
    is made from a local commit)."""
    import hashlib
    lic = TOP / "LICENSE"
    assert "Apache License" in lic.read_text()[:200]
    assert re.search(r'^license = "Apache-2.0"$', (TOP / "Cargo.toml").read_text(), re.M)
    hashes = (BR / "package/outguard/outguard.hash").read_text()
    want = hashlib.sha256(lic.read_bytes()).hexdigest()
    assert re.search(rf"^sha256  {want}  LICENSE$", hashes, re.M), hashes
    mk = (BR / "package/outguard/outguard.mk").read_text()
    assert re.search(r"^OUTGUARD_LICENSE = Apache-2.0$", mk, re.M)
    assert re.search(r"^OUTGUARD_LICENSE_FILES = LICENSE$", mk, re.M)
    assert mk.rstrip().endswith("$(OUTGUARD_TARGET_SOURCE): OUTGUARD_HASH_FILES =")
    for board in BOARDS:
        assert "BR2_DOWNLOAD_FORCE_CHECK_HASHES=y" in (BR / "configs" / f"outguard_{board}_defconfig").read_text()


# The Rust of Buildroot 2026.02.x, the LTS this tree targets (buildroot/README.md).
LTS_RUST = "1.88"


def test_msrv_lint():
    """rust-version is at most the LTS's Rust, and clippy denies std APIs newer than it."""
    cargo = (TOP / "Cargo.toml").read_text()
    have = re.search(r'^rust-version = "(1\.\d+)"$', cargo, re.M).group(1)
    assert tuple(map(int, have.split("."))) <= tuple(map(int, LTS_RUST.split("."))), have
    assert re.search(r'^incompatible_msrv = "deny"$', cargo, re.M)


def test_locked_dependencies_within_rust_version():
    """Every package the daemon builds from Cargo.lock declares a rust-version no newer
    than the crate's (buildroot/check-msrv.sh, offline: the crates of the last build)."""
    want = re.search(r'^rust-version = "([\d.]+)"$', (TOP / "Cargo.toml").read_text(), re.M).group(1)
    r = subprocess.run([str(BR / "check-msrv.sh")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.match(rf"PASS  msrv: all \d+ locked packages build with Rust {re.escape(want)} ", r.stdout)
    # And with the LTS's Rust itself, whatever rust-version says.
    r = subprocess.run([str(BR / "check-msrv.sh")], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "MSRV": LTS_RUST})
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.match(rf"PASS  msrv: all \d+ locked packages build with Rust {re.escape(LTS_RUST)} ", r.stdout)


def test_msrv_check_names_what_is_too_new():
    """Against an older Rust the check fails and names each package with its need."""
    r = subprocess.run([str(BR / "check-msrv.sh")], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "MSRV": "1.70"})
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stdout.startswith("FAIL  msrv: ")
    # redb and tokio are direct dependencies that declare a rust-version above 1.70.
    assert re.search(r"\bredb [\d.]+ needs 1\.\d+", r.stdout)
    assert re.search(r"\btokio [\d.]+ needs 1\.\d+", r.stdout)


def fragments(board: str, kver: str) -> list[str]:
    r = subprocess.run([str(TOP / "board/common/kernel-fragments.sh"), board, kver],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return [str(Path(p).relative_to(TOP / "board")) for p in r.stdout.split()]


@pytest.mark.parametrize("kver,pti", [
    ("6.1.0-57-amd64", "linux-6.1"), ("6.8.12", "linux-6.1"), ("6.9", "linux-6.9"),
    ("6.12.30", "linux-6.9"), ("6.19.14", "linux-6.9"), ("7.0.11", "linux-6.9")])
def test_kernel_fragments_per_version(kver, pti):
    frags = fragments("x86_64", kver)
    assert frags == ["common/linux-required.fragment", "common/linux-hardening.fragment",
                     "x86_64/linux.fragment", f"x86_64/{pti}.fragment"]
    text = (TOP / "board/x86_64" / f"{pti}.fragment").read_text()
    # 6.9 renamed the CPU mitigation options
    if pti == "linux-6.9":
        assert "CONFIG_MITIGATION_PAGE_TABLE_ISOLATION=y" in text
    else:
        assert re.search(r"^CONFIG_PAGE_TABLE_ISOLATION=y$", text, re.M)
    assert "PAGE_TABLE_ISOLATION" not in (TOP / "board/x86_64/linux.fragment").read_text()
    assert fragments("aarch64", kver)[-1] == "aarch64/linux.fragment"


def test_kernel_fragments_refuse_an_older_kernel():
    r = subprocess.run([str(TOP / "board/common/kernel-fragments.sh"), "x86_64", "5.15.0"],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "too old" in r.stderr


# Options where Debian's kernel differs from the hardening fragments, per board.
GAPS = {"x86_64": 15, "aarch64": 13}


@pytest.mark.parametrize("board", sorted(GAPS))
def test_debian_kernel_gap_has_reasons(board):
    """Each difference of Debian's kernel from the hardening is listed with how it is
    closed or why it remains, and docs/IMAGE.md's table has the same options."""
    gap = (TOP / f"board/{board}/debian-kernel.gap").read_text()
    entries = dict(re.findall(r"^(CONFIG_[A-Z0-9_]+)\s+(\S.*)$", gap, re.M))
    assert len(entries) == GAPS[board], entries
    for opt, why in entries.items():
        assert re.match(r"(closed|remains)", why), f"{opt}: {why}"
    doc = (TOP / "docs/IMAGE.md").read_text()
    for opt in entries:
        assert f"`{opt}`" in doc, f"docs/IMAGE.md does not list {opt}"


def debian_kernel_config(board: str) -> Path | None:
    found = sorted((TOP / "image/out" / board / "parts/kernel/boot").glob("config-*"))
    return found[-1] if found else None


@pytest.mark.parametrize("board", sorted(GAPS))
def test_debian_kernel_against_hardening(board, tmp_path):
    """The fetched Debian kernel differs from the hardening fragments exactly by the
    accepted list; an option added to the list that does not differ fails."""
    config = debian_kernel_config(board)
    if config is None:
        pytest.skip(f"no fetched Debian kernel (make image ARCH={board})")
    check = str(TOP / "board/common/check-kernel-config.sh")
    kver = config.name.removeprefix("config-")
    frags = [str(TOP / "board" / f) for f in fragments(board, kver)]
    gap = TOP / f"board/{board}/debian-kernel.gap"
    r = subprocess.run([check, "--modules-ok", "--accept", str(gap), str(config), *frags],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("(accepted: ") == GAPS[board], r.stdout
    stale = tmp_path / "gap"
    stale.write_text(gap.read_text() + "CONFIG_STACKPROTECTOR  closed: not really\n")
    r = subprocess.run([check, "--modules-ok", "--accept", str(stale), str(config), *frags],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "CONFIG_STACKPROTECTOR is listed" in r.stderr, r.stderr
    r = subprocess.run([check, "--modules-ok", str(config), *frags], capture_output=True, text=True)
    assert r.returncode == 1 and "CONFIG_MAGIC_SYSRQ is enabled" in r.stderr, r.stderr


OVERLAY = TOP / "board/common/rootfs-overlay"
IMAGE_OUT = Path(os.environ.get("IMAGE_OUT", TOP / "image" / "out"))


def test_data_setup_writes_atomically():
    """A power cut after the first boot must not leave an empty config or shadow file:
    both are written through og_write_atomic (temp file, fsync, rename, fsync of the
    directory), and an empty file is rewritten."""
    text = (OVERLAY / "usr/libexec/outguard/data-setup").read_text()
    assert "og_write_atomic /data/config/outguard.toml 0644" in text
    assert "og_write_atomic /data/config/shadow 0600" in text
    assert "[ ! -s /data/config/outguard.toml ]" in text
    assert "[ ! -s /data/config/shadow ]" in text
    assert not re.search(r"(>|cp .*) */data/config/", text), "a plain write into /data/config"
    prov = (OVERLAY / "usr/libexec/outguard/provision").read_text()
    assert "og_write_atomic /data/config/shadow 0600" in prov
    lib = (OVERLAY / "usr/libexec/outguard/lib.sh").read_text()
    body = lib[lib.index("og_write_atomic() {"):]
    assert re.search(r'sync "\$og_tmp" && mv -f "\$og_tmp" "\$1"', body)
    assert 'sync "$(dirname "$1")"' in body
    assert "CONFIG_FEATURE_SYNC_FANCY=y" in (TOP / "board/common/busybox.fragment").read_text()


def test_write_atomic_runs(tmp_path):
    """og_write_atomic for real (host sh and sync): content, mode, no temporary left, the
    old file kept when the write fails."""
    lib = OVERLAY / "usr/libexec/outguard/lib.sh"
    dest = tmp_path / "config" / "shadow"
    dest.parent.mkdir()
    dest.write_text("old\n")
    r = subprocess.run(["sh", "-c", f'. "{lib}"; printf "root:!:0::::::\\n" | og_write_atomic "{dest}" 0600'],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert dest.read_text() == "root:!:0::::::\n"
    assert dest.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in dest.parent.iterdir()) == ["shadow"]
    # empty input (a failed producer in the pipe, as sed on a missing file): nothing replaced
    r = subprocess.run(["sh", "-c", f'. "{lib}"; sed p "{tmp_path}/missing" | og_write_atomic "{dest}" 0600'],
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert dest.read_text() == "root:!:0::::::\n"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["shadow"]
    # chmod to an invalid mode fails after the temp file was written: nothing replaced
    r = subprocess.run(["sh", "-c", f'. "{lib}"; echo new | og_write_atomic "{dest}" bad-mode'],
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert dest.read_text() == "root:!:0::::::\n"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["shadow"]


def test_console_and_profile():
    """First-use friction on the console: no 'bad salt' login while root is locked, the
    CLI finds its configuration without --config, the generated admin password on lines
    of its own, root locked with '!' in the first-boot shadow, a display adapter for
    GRUB's video mode in QEMU."""
    console = (OVERLAY / "usr/libexec/outguard/console").read_text()
    assert "the console login is locked" in console
    assert console.index("while locked") < console.index("exec /sbin/getty")
    profile = (OVERLAY / "etc/profile").read_text()
    assert re.search(r"^export OUTGUARD_CONFIG=/etc/outguard/outguard.toml$", profile, re.M)
    sup = (OVERLAY / "usr/libexec/outguard/supervise").read_text()
    assert 'printf "\\n\\n%s\\n\\n", $0 > "/dev/console"' in sup
    assert "root:!:" in (OVERLAY / "usr/libexec/outguard/data-setup").read_text()
    assert "-device bochs-display" in (TOP / "image/run.sh").read_text()


@pytest.mark.parametrize("addr,ok", [
    ("10.0.2.2:6514", True), ("192.0.2.10:514", True), ("[2001:db8::10]:6514", True),
    ("[::1]:1", True), ("0.0.0.0:65535", True),
    ("1.2.3.4:0", False), ("1.2.3.4:65536", False), ("1.2.3.4:099", False),
    ("256.1.1.1:6514", False), ("01.2.3.4:6514", False), ("1.2.3:6514", False),
    ("1.2.3.4.5:6514", False), ("logs.example.com:6514", False), ("[logs]:6514", False),
    ("[::1]", False), ("[::g]:6514", False), ("1.2.3.4:", False), (":6514", False),
    ("1.2.3.4:6514x", False), ('1.2.3.4:6514"', False), ("1.2.3.4:65 14", False),
])
def test_provision_syslog_address(addr, ok):
    """provision's check of `syslog =` (the daemon's [log] remote: an IP address and a
    port), run with the busybox the image ships when it is at hand, else the host's sh."""
    text = (OVERLAY / "usr/libexec/outguard/provision").read_text()
    func = re.search(r"(?ms)^valid_syslog\(\) \{\n.*?^\}\n", text).group(0)
    bb = IMAGE_OUT / "x86_64" / "parts" / "busybox" / "bin" / "busybox"
    sh = [str(bb), "sh"] if bb.exists() else ["sh"]
    r = subprocess.run([*sh, "-c", func + 'valid_syslog "$1"', "sh", addr],
                       capture_output=True, text=True, timeout=30)
    assert (r.returncode == 0) == ok, (addr, r.returncode, r.stderr)


def test_image_fits_the_size_limit():
    """The built x86_64 image, compressed as it is shipped (xz -1, what image/report.sh
    prints), stays under 20 MiB."""
    img = IMAGE_OUT / "x86_64" / "images" / "outguard-x86_64.img"
    if not img.exists():
        pytest.skip(f"no {img} (make image ARCH=x86_64)")
    size = len(subprocess.run(["xz", "-1", "-T1", "-c", str(img)], capture_output=True,
                              check=True, timeout=600).stdout)
    assert size < 20 << 20, f"{img}: {size / 1048576:.1f} MiB compressed, limit 20 MiB"


@pytest.mark.skipif(shutil.which("mmd") is None or shutil.which("sfdisk") is None,
                    reason="mtools/sfdisk not installed (image/deps.sh)")
def test_provision_twice_does_not_prompt(tmp_path):
    """Re-provisioning a provisioned disk: /provision exists, and mmd would wait on its
    name-clash prompt when stdin is a terminal. Run with a pty as stdin, twice."""
    import os
    import pty
    disk = tmp_path / "disk.img"
    with open(disk, "wb") as f:
        f.truncate(40 << 20)
    subprocess.run(["sfdisk", "-q", str(disk)], input='label: gpt\nstart=2048, size=60000, type=U, name="esp"\n',
                   text=True, check=True)
    subprocess.run(["mformat", "-i", f"{disk}@@1048576", "-F", "::"], check=True,
                   env={**os.environ, "MTOOLS_SKIP_CHECK": "1"})
    conf = tmp_path / "prov"
    conf.mkdir()
    (conf / "provision.conf").write_text("hostname = relay.example.org\n")
    master, slave = pty.openpty()
    try:
        for _ in range(2):
            r = subprocess.run([str(TOP / "image/provision.sh"), str(disk), str(conf)], stdin=slave,
                               capture_output=True, text=True, timeout=30)
            assert r.returncode == 0, r.stderr
            assert "provision.conf ->" in r.stdout
    finally:
        os.close(master)
        os.close(slave)
    r = subprocess.run([str(TOP / "image/provision.sh"), str(disk), str(tmp_path / "none")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "not a directory" in r.stderr


def test_run_names_a_taken_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        import os
        env = {**os.environ, "SMTP_PORT": str(port), "IMAGE_OUT": "/nonexistent"}
        r = subprocess.run([str(TOP / "image/run.sh"), "x86_64"], env=env, capture_output=True,
                           text=True, timeout=30)
    assert r.returncode == 1
    assert f"127.0.0.1:{port} (SMTP_PORT) is already in use" in r.stderr, r.stderr
    r = subprocess.run([str(TOP / "image/run.sh"), "x86_64"], env={**os.environ, "ADMIN_PORT": "x"},
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "ADMIN_PORT=x is not a port number" in r.stderr
    readme = (TOP / "README.md").read_text()
    for var in ("SMTP_PORT", "SMTPS_PORT", "ADMIN_PORT"):
        assert var in readme


BUILDROOT_MIRROR = Path("/work/.mirror/buildroot+buildroot/repo")


# The LTS this tree targets, and the newer release it still loads on.
BUILDROOT_RELEASES = ["2026.02.3", "2026.05.1"]


@pytest.fixture(scope="module", params=BUILDROOT_RELEASES)
def buildroot_tree(request, tmp_path_factory):
    """A Buildroot tree: BUILDROOT_DIR (once), or each release above from the local mirror."""
    import os
    if os.environ.get("BUILDROOT_DIR"):
        if request.param != BUILDROOT_RELEASES[0]:
            pytest.skip("BUILDROOT_DIR is one tree")
        return Path(os.environ["BUILDROOT_DIR"])
    if not BUILDROOT_MIRROR.exists():
        pytest.skip("no Buildroot tree (set BUILDROOT_DIR)")
    d = tmp_path_factory.mktemp("buildroot")
    archive = subprocess.run(["git", f"--git-dir={BUILDROOT_MIRROR}", "archive", request.param],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(d)], input=archive, check=True)
    return d


def test_buildroot_check(buildroot_tree, tmp_path):
    """buildroot/check.sh passes against the LTS this tree targets and the newer release."""
    r = subprocess.run([str(BR / "check.sh"), str(buildroot_tree)], capture_output=True, text=True,
                       timeout=900, env={**__import__("os").environ, "WORK": str(tmp_path)})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "FAIL" not in r.stdout
    assert "PASS  check-package: 0 warnings generated" in r.stdout
    assert r.stdout.count("every option it sets is in .config") == len(BOARDS)
