"""Bulk import of outgoing users as a batched background job: the CLI
follows its progress; each batch of 1,000 users commits whole; a daemon
killed mid-import keeps the batches it committed, and importing the same
file again resumes (committed users are kept, not hashed again). With
fast hashing an import stores the lighter argon2id cost, and each user's
first successful login replaces it with the full cost."""

import json
import smtplib
import subprocess
import time

import pytest

from conftest import BIN, login, tls_client_context, wait_for

USERS = 1300  # two batches: 1000, 300


def csv_file(tmp_path, n=USERS):
    f = tmp_path / "users.csv"
    lines = ["user,domainname,password"]
    lines += [f"u{i},bulk.example,password-{i:05d}" for i in range(n)]
    f.write_text("\n".join(lines) + "\n")
    return f


def all_users(daemon):
    """Every user, page by page (the CLI follows the cursors)."""
    return json.loads(daemon.cli("user", "list", "--json").stdout)


def test_cli_imports_in_batches_with_progress(daemon, tmp_path):
    f = csv_file(tmp_path)
    r = daemon.cli("user", "import", str(f))
    assert f"imported {USERS} user(s); 0 already existed" in r.stdout, r.stdout
    daemon.wait_log("user import finished")
    assert len(all_users(daemon)) == USERS
    # Hashed in parallel, but each with its own password.
    login(daemon.submission, "u1299@bulk.example", password="password-01299")
    login(daemon.submission, "u0@bulk.example", password="password-00000")


def test_background_job_api_and_one_at_a_time(daemon, tmp_path):
    body = csv_file(tmp_path).read_bytes() + b"bad line\n"
    status, started = daemon.api("POST", "/v1/users/import?background=true", body)
    assert status == 422, started  # the whole file is checked first
    status, started = daemon.api("POST", "/v1/users/import?background=true&skip_invalid=true", body)
    assert status == 202, started
    assert started["state"] == "running" and started["total"] == USERS
    assert [e["line"] for e in started["errors"]] == [USERS + 2]
    status, other = daemon.api("POST", "/v1/users/import?background=true", b"x,bulk.example,another-pass\n")
    assert status == 409 and str(started["id"]) in other["error"], other
    path = f"/v1/users/import/{started['id']}"
    wait_for(lambda: daemon.api("GET", path)[1]["state"] != "running", 300, "import to finish")
    status, done = daemon.api("GET", path)
    assert status == 200
    assert (done["state"], done["added"], done["existing"], done["batches"], done["skipped"]) == (
        "done", USERS, 0, 2, 1)
    assert daemon.api("GET", "/v1/users/import/999")[0] == 404
    assert daemon.api("GET", "/v1/users/import/abc")[0] == 400


def test_killed_mid_import_keeps_whole_batches_and_resumes(daemon, tmp_path):
    f = csv_file(tmp_path)
    status, started = daemon.api("POST", "/v1/users/import?background=true", f.read_bytes())
    assert status == 202, started
    path = f"/v1/users/import/{started['id']}"
    wait_for(lambda: daemon.api("GET", path)[1]["batches"] >= 1, 300, "a first batch")
    daemon.kill9()
    daemon.start()
    # Only whole batches landed.
    kept = len(all_users(daemon))
    assert kept in (1000, USERS), kept
    # The same file again: the kept users are existing, the rest added.
    r = subprocess.run([str(BIN), "--config", str(daemon.config), "user", "import", str(f)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert f"imported {USERS - kept} user(s); {kept} already existed" in r.stdout, r.stdout
    assert len(all_users(daemon)) == USERS
    login(daemon.submission, "u999@bulk.example", password="password-00999")
    login(daemon.submission, "u1000@bulk.example", password="password-01000")


def test_pre_hashed_argon2id_passwords_import_for_migrations(daemon, tmp_path):
    """A password column holding an argon2id PHC string made elsewhere
    (here libsodium, through PyNaCl) is kept as the hash: the user logs in
    with the original password. A hash costlier than the daemon's bound
    (memory, passes, lanes) or not argon2id is a line error."""
    import nacl.pwhash

    good = nacl.pwhash.argon2id.str(b"migrated-pass-1", opslimit=5, memlimit=7 * 1024 * 1024).decode()
    heavy = nacl.pwhash.argon2id.str(b"migrated-pass-2", opslimit=3, memlimit=64 * 1024 * 1024).decode()
    f = tmp_path / "migrate.csv"
    f.write_text(f"user,domainname,password\nold,migrated.example,{good}\nheavy,migrated.example,{heavy}\n")
    r = daemon.cli("user", "import", str(f), check=False)
    assert r.returncode != 0 and "line 3" in r.stdout + r.stderr and "over the daemon's bound" in r.stdout + r.stderr, r
    f.write_text(f"user,domainname,password\nold,migrated.example,{good}\n")
    r = daemon.cli("user", "import", str(f))
    assert "imported 1 user(s)" in r.stdout, r.stdout
    login(daemon.submission, "old@migrated.example", password="migrated-pass-1")


FULL = {"m_kib": 7168, "t": 5}
LIGHT = {"m_kib": 7168, "t": 1}


def cost(daemon, name):
    status, u = daemon.api("GET", f"/v1/users/{name}")
    assert status == 200, u
    return u["password_cost"]


def smtp_login(daemon, user, password):
    """SMTP AUTH over STARTTLS with smtplib: True if accepted."""
    with smtplib.SMTP("127.0.0.1", daemon.submission, timeout=60) as s:
        s.starttls(context=tls_client_context())
        try:
            s.login(user, password)
        except smtplib.SMTPAuthenticationError:
            return False
        return True


def test_fast_hash_import_is_upgraded_to_full_cost_at_first_login(daemon, tmp_path):
    n = 1005  # two batches
    f = csv_file(tmp_path, n)
    r = daemon.cli("user", "import", "--fast-hash", str(f))
    assert f"imported {n} user(s); 0 already existed" in r.stdout, r.stdout
    assert "lighter import cost" in r.stderr, r.stderr
    for name in ("u0@bulk.example", "u1004@bulk.example"):
        assert cost(daemon, name) == LIGHT
    # A wrong password is refused and does not re-hash.
    assert not smtp_login(daemon, "u7@bulk.example", "password-00008")
    assert cost(daemon, "u7@bulk.example") == LIGHT
    # The right one logs in, and the stored hash is now at full cost, as a
    # password change would leave it; the user's history says so.
    assert smtp_login(daemon, "u7@bulk.example", "password-00007")
    status, u = daemon.api("GET", "/v1/users/u7@bulk.example")
    assert u["password_cost"] == FULL, u["password_cost"]
    events = [h["event"] for h in u["history"]]
    assert any("lighter import cost" in e for e in events), events
    assert any("re-hashed at full cost" in e for e in events), events
    daemon.wait_log("password re-hashed at full cost")
    # Both costs verify: the upgraded user and a still-light one, again.
    assert smtp_login(daemon, "u7@bulk.example", "password-00007")
    assert not smtp_login(daemon, "u7@bulk.example", "password-00009")
    assert smtp_login(daemon, "u1004@bulk.example", "password-01004")
    assert cost(daemon, "u1004@bulk.example") == FULL
    # Nobody else was touched.
    assert cost(daemon, "u8@bulk.example") == LIGHT
    # A password set by the admin is always at full cost.
    status, _ = daemon.api("PATCH", "/v1/users/u8@bulk.example", {"password": "changed-pass-8"})
    assert status == 200
    assert cost(daemon, "u8@bulk.example") == FULL
    assert smtp_login(daemon, "u8@bulk.example", "changed-pass-8")


def test_fast_hash_background_job_progress(daemon, tmp_path):
    f = csv_file(tmp_path, 1200)
    status, started = daemon.api("POST", "/v1/users/import?background=true&fast_hash=true",
                                 f.read_bytes())
    assert status == 202 and started["fast_hash"] is True, started
    path = f"/v1/users/import/{started['id']}"
    wait_for(lambda: daemon.api("GET", path)[1]["state"] != "running", 300, "import to finish")
    done = daemon.api("GET", path)[1]
    assert (done["state"], done["added"], done["existing"], done["done"], done["batches"],
            done["fast_hash"]) == ("done", 1200, 0, 1200, 2, True), done
    assert cost(daemon, "u1199@bulk.example") == LIGHT
    # The default stays the full cost; users already there are kept as
    # they are (light), the new ones are full.
    f = csv_file(tmp_path, 1201)
    r = daemon.cli("user", "import", str(f))
    assert "imported 1 user(s); 1200 already existed" in r.stdout, r.stdout
    assert cost(daemon, "u1200@bulk.example") == FULL
    assert cost(daemon, "u1199@bulk.example") == LIGHT


@pytest.mark.parametrize("flag", ["", "--fast-hash"])
def test_pre_hashed_passwords_are_kept_with_or_without_fast_hash(daemon, tmp_path, flag):
    """A migrated hash is stored as it came; one weaker than the full cost
    is upgraded at the first login like a fast-hashed one."""
    import nacl.pwhash

    weak = nacl.pwhash.argon2id.str(b"migrated-pass-3", opslimit=2, memlimit=7 * 1024 * 1024).decode()
    f = tmp_path / "weak.csv"
    f.write_text(f"user,domainname,password\nweak,migrated.example,{weak}\n")
    r = daemon.cli("user", "import", *([flag] if flag else []), str(f))
    assert "imported 1 user(s)" in r.stdout, r.stdout
    assert cost(daemon, "weak@migrated.example") == {"m_kib": 7168, "t": 2}
    assert smtp_login(daemon, "weak@migrated.example", "migrated-pass-3")
    assert cost(daemon, "weak@migrated.example") == FULL
