"""Client text in the daemon's log cannot forge a log line: CR/LF and
other control characters in attachment names, EHLO names, addresses and
AUTH user names are escaped (text format), and the JSON format stays one
object per line."""

import base64
import json
from urllib.parse import quote

from conftest import Raw, login, send_message

USER = "alice@example.com"
MARK = "FORGED-LINE"
FAKE = f"\r\n2026-12-06T00:00:00.000000Z  INFO outguard::smtp::session: message accepted user=ceo {MARK}\r\n"


def hostile_message():
    # RFC 2231 encoding lets the attachment name carry CR/LF once decoded.
    name = quote("invoice" + FAKE + "x.exe", safe="")
    return (
        f"From: {USER}\r\nTo: bob@remote.example\r\nSubject: invoice\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n"
        "--b1\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
        "--b1\r\nContent-Type: application/octet-stream\r\n"
        f"Content-Disposition: attachment; filename*=utf-8''{name}\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n"
        + base64.b64encode(b"MZ" + b"\0" * 64).decode() + "\r\n--b1--\r\n"
    )


def provoke(d):
    d.add_user(USER)
    r = login(d.submission, USER)
    code, last = send_message(r, USER, ["bob@remote.example"], body=hostile_message())
    assert code == 550, last  # caught: an executable attachment
    # Control characters in EHLO, MAIL and an AUTH user name.
    r = Raw(d.submission)
    r.reply()
    r.cmd(f"EHLO evil\x0b{MARK}\x1b[2J")
    r.cmd(f"MAIL FROM:<x\x0b{MARK}@example.com>")
    r.close()
    r = login(d.submission, USER)
    r.cmd("RSET")
    r.close()
    r = Raw(d.submissions, tls=True)
    r.reply()
    r.cmd("EHLO c.test")
    token = base64.b64encode(f"\0ceo\r\n{MARK}\r\n\0wrong".encode()).decode()
    assert r.cmd(f"AUTH PLAIN {token}")[0] == 535
    r.close()
    d.stop()
    return d.log()


def test_text_log_has_no_forged_line(make_daemon):
    log = provoke(make_daemon())
    lines = log.splitlines()
    caught = [l for l in lines if "message caught" in l]
    assert caught and MARK in caught[0] and "\\x0d\\x0a" in caught[0], caught
    for line in lines:
        # The marker only ever appears inside a real event's line.
        if MARK in line:
            assert not line.startswith(("2026-12-06T00:00:00", MARK)), line
            assert " outguard::" in line.split(MARK)[0], line
        assert "\x0b" not in line and "\x1b" not in line and "\r" not in line, repr(line)


def test_json_log_is_one_object_per_line(make_daemon):
    log = provoke(make_daemon(log={"json": True}))
    events = [json.loads(l) for l in log.splitlines() if l.startswith("{")]
    assert any("message caught" in e["fields"].get("message", "") for e in events)
    assert not [l for l in log.splitlines() if MARK in l and not l.startswith("{")]
