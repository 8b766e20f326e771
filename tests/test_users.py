"""Administration of outgoing users through the CLI and the control
API: add/edit/show/delete, lock/unlock enforced at MAIL, CSV import with
line-numbered errors, IP users from CSV."""

import json

from conftest import Raw, ham, login, send_message

USER = "alice@example.com"


def test_locked_user_is_refused_until_unlocked(daemon):
    daemon.add_user(USER)
    daemon.cli("user", "lock", USER)
    r = login(daemon.submission, USER)
    code, text, _ = r.cmd(f"MAIL FROM:<{USER}>")
    assert (code, text) == (550, "550 5.7.1 account is locked until an administrator unlocks it")
    daemon.cli("user", "unlock", USER)
    r = login(daemon.submission, USER)
    assert send_message(r, USER, ["x@remote.example"])[0] == 250
    history = [h["event"] for h in daemon.user(USER)["history"]]
    assert "locked by admin: locked by admin" in history and "unlocked by admin" in history


def test_timed_lock_expires(daemon):
    daemon.set_clock("2026-11-27T10:00:00Z")
    daemon.add_user(USER)
    daemon.cli("user", "lock", USER, "--minutes", "30")
    r = login(daemon.submission, USER)
    assert r.cmd(f"MAIL FROM:<{USER}>")[1] == "550 5.7.1 account is locked until 2026-11-27 10:30 UTC"
    assert daemon.user(USER)["locked"] is True
    daemon.set_clock("2026-11-27T10:31:00Z")
    assert r.cmd(f"MAIL FROM:<{USER}>")[0] == 250
    assert daemon.user(USER)["status"] == "active"


def test_lock_applies_to_open_session_at_data(daemon):
    daemon.add_user(USER)
    r = login(daemon.submission, USER)
    assert r.cmd(f"MAIL FROM:<{USER}>")[0] == 250
    assert r.cmd("RCPT TO:<x@remote.example>")[0] == 250
    daemon.cli("user", "lock", USER)
    assert r.cmd("DATA")[0] == 354
    r.send(ham() + ".\r\n")
    assert r.reply()[:2] == (550, "550 5.7.1 account is locked until an administrator unlocks it")
    assert daemon.queue() == []


def test_edit_and_show_settings(daemon):
    daemon.add_user(USER, limit_day=7, quarantine_response="accepted", auto_lock="off")
    u = daemon.user(USER)
    assert u["settings"]["limit_per_day"] == 7
    assert u["effective"]["limit_per_day"] == 7
    assert u["effective"]["quarantine_response"] == "accepted"
    assert u["effective"]["auto_lock"] is False
    # Unset settings follow the system defaults, and move with them.
    daemon.cli("settings", "set", "defaults.limit_per_week=123")
    assert daemon.user(USER)["effective"]["limit_per_week"] == 123
    daemon.cli("user", "set", USER, "--limit-week", "9", "--max-retry-days", "2", "--lock-timeout", "15", "--max-unlocks", "1")
    u = daemon.user(USER)
    assert (u["effective"]["limit_per_week"], u["effective"]["max_retry_days"]) == (9, 2)
    assert (u["effective"]["lock_timeout_minutes"], u["effective"]["max_unlocks"]) == (15, 1)
    daemon.cli("user", "set", USER, "--clear", "limit_per_week")
    assert daemon.user(USER)["effective"]["limit_per_week"] == 123
    text = daemon.cli("user", "show", USER).stdout
    assert "messages today:      0 / 7" in text and "quarantine response: accepted" in text


def test_password_change_takes_effect(daemon):
    daemon.add_user(USER)
    daemon.cli("user", "set", USER, "--password-stdin", input="a-new-password\n")
    login(daemon.submission, USER, password="a-new-password")


def test_bad_input_is_refused_with_a_message(daemon):
    r = daemon.cli("user", "add", "not-an-address", "--password-stdin", input="longenough\n", check=False)
    assert r.returncode != 0 and "neither user@domain nor an IP address" in r.stderr
    r = daemon.cli("user", "add", USER, "--password-stdin", input="short\n", check=False)
    assert "at least 8 characters" in r.stderr
    r = daemon.cli("user", "add", USER, check=False)
    assert "password is required" in r.stderr
    r = daemon.cli("user", "add", "10.1.2.3", "--password-stdin", input="longenough\n", check=False)
    assert "has no password" in r.stderr
    status, body = daemon.api("POST", "/v1/users", {"name": USER, "password": "longenough", "settings": {"limit_per_day": -1}})
    assert status == 400 and "invalid" in body["error"]
    status, body = daemon.api("POST", "/v1/users", {"name": USER, "password": "longenough", "colour": "red"})
    assert status == 400 and "unknown field" in body["error"]
    daemon.add_user(USER)
    status, body = daemon.api("POST", "/v1/users", {"name": USER, "password": "longenough"})
    assert status == 409 and "already exists" in body["error"]
    assert daemon.api("GET", "/v1/users/ghost@example.com")[0] == 404
    assert daemon.api("PATCH", "/v1/settings", {"timezone": "Mars/Olympus"})[0] == 400


def test_delete_user(daemon):
    daemon.add_user(USER)
    daemon.cli("user", "del", USER)
    assert json.loads(daemon.cli("user", "list", "--json").stdout) == []
    r = Raw(daemon.submissions, tls=True)
    r.reply()
    r.cmd("EHLO c.test")
    import base64
    tok = base64.b64encode(f"\0{USER}\0correct-horse-battery".encode()).decode()
    assert r.cmd("AUTH PLAIN " + tok)[0] == 535


def test_csv_import_good_file(daemon, tmp_path):
    f = tmp_path / "users.csv"
    f.write_text("user,domainname,password\nbob,example.com,bobs-password\ncarol,example.org,carols-password\n127.0.0.1,example.com,\n")
    out = daemon.cli("user", "import", str(f)).stdout
    assert "imported 3 user(s)" in out
    names = sorted(u["name"] for u in json.loads(daemon.cli("user", "list", "--json").stdout))
    assert names == ["127.0.0.1", "bob@example.com", "carol@example.org"]
    login(daemon.submission, "carol@example.org", password="carols-password")
    # The IP user from the CSV is authenticated by its address, and sends
    # from its domain.
    r = Raw(daemon.plain)
    r.reply()
    r.cmd("EHLO c.test")
    assert send_message(r, "someone@example.com", ["x@remote.example"])[0] == 250
    # Importing again keeps existing users as they are.
    out = daemon.cli("user", "import", str(f)).stdout
    assert "imported 0 user(s); 3 already existed" in out


def test_csv_import_bad_line_imports_nothing(daemon, tmp_path):
    f = tmp_path / "users.csv"
    f.write_text("bob,example.com,bobs-password\ncarol,example.org,\ndave,example.org,daves-password\n")
    r = daemon.cli("user", "import", str(f), check=False)
    assert r.returncode != 0
    assert "1 invalid line(s); nothing was imported" in r.stderr
    assert "line 2: " in r.stderr and "password is blank for carol@example.org" in r.stderr
    assert json.loads(daemon.cli("user", "list", "--json").stdout) == []
    out = json.loads(daemon.cli("user", "import", str(f), "--skip-invalid", "--json").stdout)
    assert out["added"] == ["bob@example.com", "dave@example.org"]
    assert out["errors"][0]["line"] == 2


def test_list_filters(daemon):
    daemon.add_user(USER)
    daemon.add_user("bob@example.org")
    daemon.cli("user", "lock", "bob@example.org")
    locked = json.loads(daemon.cli("user", "list", "--status", "locked", "--json").stdout)
    assert [u["name"] for u in locked] == ["bob@example.org"]
    found = json.loads(daemon.cli("user", "list", "--filter", "alice", "--json").stdout)
    assert [u["name"] for u in found] == [USER]


def test_cli_output_to_a_closed_pipe_exits_quietly(daemon):
    # `outguard user show x | head -c1`: the reader is gone before the CLI
    # writes. println! panicked there ("failed printing to stdout").
    import os
    import subprocess

    from conftest import BIN

    daemon.add_user("alice@example.com")
    for args in (["user", "show", "alice@example.com"], ["user", "list"], ["settings", "show"]):
        r, w = os.pipe()
        os.close(r)
        p = subprocess.run([str(BIN), "--config", str(daemon.config), *args],
                           stdout=w, stderr=subprocess.PIPE, text=True, timeout=60)
        os.close(w)
        assert p.returncode in (0, 141), (args, p.returncode, p.stderr)
        assert "panicked" not in p.stderr and p.stderr == "", (args, p.stderr)
