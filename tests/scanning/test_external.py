"""External engines end to end: `outguard serve` with [scan.clamd],
[scan.spamd] and [scan.rspamd] tables talking to the real daemons (see conftest.py). A
message only an engine recognises is refused and quarantined with that
engine's reason, the sender is locked when automatic lock applies, clean
mail is queued, and an engine that cannot answer makes the scan fail so
scan.failure_action decides."""

from email.utils import formatdate, make_msgid

from conftest import ham, login, send_message

from .conftest import CLAMD_PATTERN, RSPAMD_PHRASE, SPAMD_PHRASE, free_port

USER = "alice@example.com"


def message(text, subject="Quarterly numbers"):
    return (
        f"From: {USER}\r\nTo: bob@remote.example\r\nSubject: {subject}\r\nDate: {formatdate()}\r\n"
        f"Message-ID: {make_msgid(domain='example.com')}\r\n\r\n"
        f"Hi Bob,\r\n\r\n{text}\r\n\r\nThanks,\r\nAlice\r\n"
    )


def submit(daemon, body, user=USER):
    r = login(daemon.submission, user)
    try:
        return send_message(r, user, ["bob@remote.example"], body=body)
    finally:
        r.close()


def quarantined(daemon):
    return daemon.api("GET", "/v1/quarantine")[1]["items"]


def test_clamd_over_unix_socket_refuses_and_quarantines(make_daemon, clamd):
    d = make_daemon(**{"scan.clamd": {"socket": str(clamd.socket)}})
    d.add_user(USER, auto_lock="off")
    # The built-in scanner passes this text; only clamd's signature knows it.
    code, text = submit(d, message(f"the build id is {CLAMD_PATTERN} as agreed."))
    assert code == 550, text
    assert text.startswith("550 5.7.1 Message refused: malware detected (clamd: virus found: Outguard.Test.Pattern")
    [q] = quarantined(d)
    assert q["class"] == "malware" and q["user"] == USER
    # The quarantine's reasons say which side of the verdict each came from.
    assert any(r.startswith("content: clamd: virus found: Outguard.Test.Pattern") for r in q["reasons"]), q
    assert d.queue() == []
    # Clean mail is asked about too, and queued.
    code, text = submit(d, ham())
    assert code == 250, text
    assert len(d.queue()) == 1 and len(quarantined(d)) == 1


def test_clamd_over_tcp_locks_the_sender(make_daemon, clamd):
    d = make_daemon(**{"scan.clamd": {"address": f"127.0.0.1:{clamd.port}"}})
    d.add_user(USER)
    code, text = submit(d, message(f"see {CLAMD_PATTERN}"))
    assert code == 550 and "clamd: virus found" in text, text
    u = d.user(USER)
    assert u["locked"], u
    d.wait_log("user locked automatically")
    code, text = submit(d, ham())
    assert code == 550 and "locked" in text, text


def test_spamd_refuses_what_only_it_flags(make_daemon, spamd):
    d = make_daemon(**{"scan.spamd": {"address": spamd}})
    d.add_user(USER, auto_lock="off")
    code, text = submit(d, message(f"our reference is {SPAMD_PHRASE}."))
    assert code == 550, text
    assert text.startswith("550 5.7.1 Message refused: spam detected (spamd: score 2"), text
    [q] = quarantined(d)
    assert q["class"] == "spam" and q["score"] >= 20.0
    assert any("OUTGUARD_TEST_PHRASE" in r for r in q["reasons"]), q
    assert submit(d, ham())[0] == 250
    assert len(d.queue()) == 1


def test_rspamd_refuses_what_only_it_flags(make_daemon, rspamd):
    d = make_daemon(**{"scan.rspamd": {"url": rspamd}})
    d.add_user(USER, auto_lock="off")
    code, text = submit(d, message(f"our reference is {RSPAMD_PHRASE}."))
    assert code == 550, text
    assert text.startswith('550 5.7.1 Message refused: spam detected (rspamd: action "reject"'), text
    [q] = quarantined(d)
    assert q["class"] == "spam" and q["score"] >= 20.0
    assert any("OUTGUARD_TEST_PHRASE(20.0)" in r for r in q["reasons"]), q
    assert submit(d, ham())[0] == 250
    assert len(d.queue()) == 1


def test_both_engines_together(make_daemon, clamd, spamd):
    d = make_daemon(**{"scan.clamd": {"socket": str(clamd.socket)}, "scan.spamd": {"address": spamd}})
    d.add_user(USER, auto_lock="off")
    code, text = submit(d, message(f"{SPAMD_PHRASE} and {CLAMD_PATTERN}"))
    # Malware from any engine wins over spam.
    assert code == 550 and "malware detected (clamd:" in text, text
    [q] = quarantined(d)
    assert q["class"] == "malware"
    assert any(r.startswith("content: spamd: ") for r in q["reasons"]), q
    assert submit(d, ham())[0] == 250


def test_engine_down_applies_the_failure_action(make_daemon):
    closed = f"127.0.0.1:{free_port()}"
    d = make_daemon(**{"scan.spamd": {"address": closed}})
    d.add_user(USER)
    code, text = submit(d, ham())
    assert (code, text) == (451, "451 4.7.1 Message could not be scanned, try again later")
    d.wait_log("scan failed", "spamd: connect")
    assert d.queue() == [] and quarantined(d) == []
    assert not d.user(USER)["locked"]

    d2 = make_daemon(scan={"failure_action": "accept"}, **{"scan.spamd": {"address": closed}})
    d2.add_user(USER)
    code, text = submit(d2, ham())
    assert code == 250, text
    assert len(d2.queue()) == 1


def test_bad_engine_config_stops_the_daemon_at_start(tmp_path):
    import subprocess

    from conftest import BIN, Daemon

    d = Daemon(tmp_path / "bad", **{"scan.clamd": {"socket": "/nonexistent.sock", "address": "127.0.0.1:1"}})
    r = subprocess.run([str(BIN), "--config", str(d.config), "serve"], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "either `socket` or `address`" in r.stderr + r.stdout
