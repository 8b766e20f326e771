"""The update routes (GET /v1/system, POST /v1/system/update), the update page and
`outguard update`: the daemon only spools a bundle for the appliance's root-side agent
(installing it is tested in QEMU by tests/image/test_update.py)."""

import json

import requests

from .adminlib import Daemon

# Larger than the API's usual 16 MiB body limit: bundles get their own limit.
BUNDLE = b"hsqs" + bytes(17 * 1024 * 1024)


def test_system_status_and_bundle_spool(og, api, tmp_path):
    r = api.get(og.url + "/v1/system")
    assert r.status_code == 200, r.text
    v = r.json()
    health = api.get(og.url + "/v1/health").json()
    assert v["version"] == health["version"]
    assert v["update_waiting"] is False
    assert set(v["slots"]) == {"A", "B"}

    # not a bundle: refused with a reason, nothing spooled
    r = api.post(og.url + "/v1/system/update", data=b"#!/bin/sh\nreboot\n",
                 headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 400 and "bundle" in r.json()["error"], r.text
    assert not (og.data / "update" / "incoming.raucb").exists()

    r = api.post(og.url + "/v1/system/update", data=BUNDLE,
                 headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 202, r.text
    spooled = og.data / "update" / "incoming.raucb"
    assert spooled.read_bytes() == BUNDLE
    assert spooled.stat().st_mode & 0o077 == 0
    assert api.get(og.url + "/v1/system").json()["update_waiting"] is True

    # one at a time: the agent has not taken the first yet
    f = tmp_path / "second.raucb"
    f.write_bytes(b"hsqs second")
    r = og.cli("update", "install", str(f), check=False)
    assert r.returncode != 0 and "waiting" in r.stderr, r.stderr
    st = json.loads(og.cli("update", "status", "--json").stdout)
    assert st["update_waiting"] is True
    assert "booted slot" in og.cli("update", "status").stdout

    # the agent took it: the CLI spools the next one
    spooled.unlink()
    assert "installed into the other slot" in og.cli("update", "install", str(f)).stdout
    assert spooled.read_bytes() == b"hsqs second"


def test_update_page(og, api):
    r = api.get(og.url + "/update")
    assert r.status_code == 200
    assert "Slot A" in r.text and "Install an update" in r.text
    assert "running from slot" in api.get(og.url + "/dashboard").text
    # the form upload goes through the same checks
    token = api.headers["X-CSRF-Token"]
    r = api.post(og.url + "/update", data={"csrf": token},
                 files={"bundle": ("x.raucb", b"not a bundle")})
    assert r.status_code == 400 and "not a RAUC bundle" in r.text, r.text[-500:]
    assert requests.get(og.url + "/update", verify=False, allow_redirects=False).status_code != 200


def test_update_routes_need_a_session(built):
    d = Daemon()
    try:
        r = requests.post(d.url + "/v1/system/update", data=b"hsqs", verify=False)
        assert r.status_code == 401
        assert not (d.data / "update").exists()
    finally:
        d.stop()
