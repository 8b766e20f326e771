"""Checks that need no QEMU: the br2-external's structure and conventions (a stand-in for
Buildroot's own utils/check-package, which cannot run here: Buildroot is not available to
this repository's CI), the kernel fragments' syntax, and shellcheck on every script."""

from __future__ import annotations

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
    assert mk[-1] == "$(eval $(cargo-package))"
    for line in mk:
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
