"""The store file a released daemon wrote keeps working: a data directory whose
outguard.redb was written by the daemon built from 5e2f625 (redb 4.6.0,
tests/fixtures/make_store.py) is opened by this build, its users, settings and
queue read back, its passwords still log in, and this build writes to it and
reads that back after a restart. A change of the store crate or of its version
(redb's file format changed between 2.x and 3.x: buildroot/README.md) that
cannot read existing data directories fails here."""

import json
import lzma
from pathlib import Path

import pytest

from conftest import Daemon, login

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "store-redb-4.6.redb.xz"
USERS = {"alice@example.com", "carol@example.com", "192.0.2.0/24"}


@pytest.fixture
def old_store_daemon(tmp_path):
    d = Daemon(tmp_path / "d")
    d.data.mkdir(mode=0o700, parents=True)
    (d.data / "outguard.redb").write_bytes(lzma.decompress(FIXTURE.read_bytes()))
    yield d.start()
    d.stop()


def test_reads_a_store_written_by_redb_4_6(old_store_daemon):
    d = old_store_daemon
    users = {u["name"]: u for u in json.loads(d.cli("user", "list", "--json").stdout)}
    assert set(users) == USERS

    alice = d.user("alice@example.com")
    assert alice["kind"] == "address" and alice["has_password"]
    assert alice["settings"]["limit_per_day"] == 7
    assert not alice["locked"]
    carol = d.user("carol@example.com")
    assert carol["locked"] and carol["lock"]["state"] == "locked_by_admin"
    assert [h["event"] for h in carol["history"]] == ["created", "locked by admin: locked by admin"]
    net = d.user("192.0.2.0/24")
    assert net["kind"] == "ip" and net["domain"] == "example.com" and not net["has_password"]

    settings = json.loads(d.cli("settings", "show", "--json").stdout)
    assert settings["timezone"] == "Europe/Paris"
    assert settings["defaults"]["limit_per_day"] == 200
    assert net["effective"]["limit_per_day"] == 200

    (msg,) = d.queue()
    assert msg["sender"] == "alice@example.com" and msg["user"] == "alice@example.com"
    assert [r["address"] for r in msg["recipients"]] == ["bob@remote.example", "dave@remote.example"]
    assert msg["size"] == 448 and msg["received"].startswith("2026-12-07T00:10:58")
    # The message itself (the bodies table): its headers as the old daemon stored them.
    shown = json.loads(d.cli("queue", "show", msg["id"], "--json").stdout)
    assert "\r\nSubject: Store written by redb 4.6\r\n" in shown["headers"]
    assert shown["headers"].startswith("Received: from client.test ([127.0.0.1])")

    # The argon2 hash stored by the old daemon still verifies.
    r = login(d.submission, "alice@example.com")
    assert r.cmd("QUIT")[0] == 221
    r.close()


def test_writes_to_a_store_written_by_redb_4_6(old_store_daemon):
    d = old_store_daemon
    d.add_user("erin@example.com", limit_per_day=3)
    d.cli("user", "unlock", "carol@example.com")
    d.stop()
    d.start()
    users = {u["name"] for u in json.loads(d.cli("user", "list", "--json").stdout)}
    assert users == USERS | {"erin@example.com"}
    assert d.user("erin@example.com")["settings"]["limit_per_day"] == 3
    assert not d.user("carol@example.com")["locked"]
    assert len(d.queue()) == 1
