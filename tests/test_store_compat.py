"""The store file a released daemon wrote keeps working: a data directory whose
outguard.redb was written by the daemon on redb 2.6.4 in redb's v3 file format
(the store of the first release, built for Buildroot 2026.02's Rust 1.88;
tests/fixtures/make_store.py names the commit) is opened by this build, its
users, settings and queue read back, its passwords still log in, and this build
writes to it and reads that back after a restart. A change of the store crate or
of its version that cannot read existing data directories fails here (redb 2.6
cannot open a file redb 3+ wrote, and redb 3+ reads only the v3 format;
docs/ARCHITECTURE.md, "Store file format"). The fixture itself is checked to be
in the v3 format, the one a later redb 3 or 4 can take over."""

import json
import lzma
from pathlib import Path

import pytest

from conftest import Daemon, login

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "store-redb-2.6-v3.redb.xz"
USERS = {"alice@example.com", "carol@example.com", "192.0.2.0/24"}


# redb's file header (redb 2.6.4 src/tree_store/page_store/header.rs): the magic
# number, the god byte, and two 128-byte commit slots from offset 64, each
# starting with the file format version of its commit.
REDB_MAGIC = b"redb\x1a\n\xa9\r\n"
COMMIT_SLOTS = (64, 64 + 128)
FILE_FORMAT_V3 = 3


def test_fixture_is_in_redb_file_format_v3():
    store = lzma.decompress(FIXTURE.read_bytes())
    assert store[:9] == REDB_MAGIC
    # Both slots: the primary (god byte bit 0) and the one before it.
    assert [store[o] for o in COMMIT_SLOTS] == [FILE_FORMAT_V3] * 2


@pytest.fixture
def old_store_daemon(tmp_path):
    d = Daemon(tmp_path / "d")
    d.data.mkdir(mode=0o700, parents=True)
    (d.data / "outguard.redb").write_bytes(lzma.decompress(FIXTURE.read_bytes()))
    yield d.start()
    d.stop()


def test_reads_a_store_written_by_redb_2_6(old_store_daemon):
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
    assert msg["size"] == 447 and msg["received"].startswith("2026-12-07T06:51:32")
    # The message itself (the bodies table): its headers as the old daemon stored them.
    shown = json.loads(d.cli("queue", "show", msg["id"], "--json").stdout)
    assert "\r\nSubject: Store written by redb 2.6\r\n" in shown["headers"]
    assert shown["headers"].startswith("Received: from client.test ([127.0.0.1])")

    # The argon2 hash stored by the old daemon still verifies.
    r = login(d.submission, "alice@example.com")
    assert r.cmd("QUIT")[0] == 221
    r.close()


def test_writes_to_a_store_written_by_redb_2_6(old_store_daemon):
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


# The store of a development build before the move to redb 2.6 (redb 4.6.0,
# commit 0abe326): a file in a newer store format than this build reads, as
# after a rollback to an image older than a store upgrade.
NEWER = Path(__file__).resolve().parent / "fixtures" / "store-redb-4.6.redb.xz"


def test_a_store_in_a_newer_format_is_refused_with_the_reason(tmp_path):
    import subprocess
    from conftest import BIN
    d = Daemon(tmp_path / "d")
    d.data.mkdir(mode=0o700, parents=True)
    (d.data / "outguard.redb").write_bytes(lzma.decompress(NEWER.read_bytes()))
    r = subprocess.run([str(BIN), "--config", str(d.config), "serve"], capture_output=True,
                       text=True, timeout=60)
    # redb 2.6 panics on it (release builds abort): the daemon says what that means.
    assert r.returncode != 0
    assert "written by a newer store format than this build reads" in r.stderr, r.stderr
    assert "move outguard.redb aside" in r.stderr
