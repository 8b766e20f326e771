"""Authentication: only inside TLS, argon2id hashes at rest, failures
throttled per address, IP-authorised users, no relaying for anyone else,
and the envelope sender bound to the user."""

import base64
import subprocess

from conftest import PASSWORD, Raw, ham, login, send_message

USER = "alice@example.com"


def plain(user, pw):
    return base64.b64encode(f"\0{user}\0{pw}".encode()).decode()


def test_auth_refused_before_tls(daemon):
    daemon.add_user(USER)
    r = Raw(daemon.submission)
    r.reply()
    r.cmd("EHLO c.test")
    assert r.cmd("AUTH PLAIN " + plain(USER, PASSWORD))[1].startswith("538 5.7.11 ")
    assert r.cmd("AUTH LOGIN")[0] == 538
    # Nor on the plain listener.
    r = Raw(daemon.plain)
    r.reply()
    r.cmd("EHLO c.test")
    assert r.cmd("AUTH PLAIN " + plain(USER, PASSWORD))[0] == 538


def test_wrong_password_and_unknown_user(daemon):
    daemon.add_user(USER)
    r = Raw(daemon.submissions, tls=True)
    r.reply()
    r.cmd("EHLO c.test")
    assert r.cmd("AUTH PLAIN " + plain(USER, "wrong-password"))[1] == "535 5.7.8 Authentication credentials invalid"
    assert r.cmd("AUTH PLAIN " + plain("nobody@example.com", PASSWORD))[0] == 535
    # AUTH LOGIN with a cancelled exchange, then bad base64.
    assert r.cmd("AUTH LOGIN")[1] == "334 VXNlcm5hbWU6"
    assert r.cmd("*")[1] == "501 5.0.0 Authentication cancelled"
    assert r.cmd("AUTH PLAIN !!!")[1] == "501 5.5.2 Invalid base64 data"
    assert r.cmd("AUTH CRAM-MD5")[1] == "504 5.5.4 Unrecognized authentication type"
    assert r.cmd("AUTH PLAIN " + plain(USER, PASSWORD))[0] == 235
    assert r.cmd("AUTH PLAIN " + plain(USER, PASSWORD))[1] == "503 5.5.1 Already authenticated"


def test_failures_are_throttled(make_daemon):
    d = make_daemon(auth={"max_failures": 3, "block_secs": 600})
    d.add_user(USER)
    for _ in range(3):
        r = Raw(d.submissions, tls=True)
        r.reply()
        r.cmd("EHLO c.test")
        assert r.cmd("AUTH PLAIN " + plain(USER, "guess"))[0] == 535
        r.close()
    # Now even the right password is refused, and the client is dropped.
    r = Raw(d.submissions, tls=True)
    r.reply()
    r.cmd("EHLO c.test")
    assert r.cmd("AUTH PLAIN " + plain(USER, PASSWORD))[1].startswith("421 4.7.0 Too many failed logins")
    assert r.closed()
    d.wait_log("auth failed", "AUTH refused: address throttled")


def test_password_is_stored_hashed(daemon):
    daemon.add_user(USER)
    daemon.stop()
    store = (daemon.data / "outguard.redb").read_bytes()
    assert PASSWORD.encode() not in store
    assert b"$argon2id$" in store
    assert PASSWORD not in daemon.log()


def test_unauthenticated_client_relays_nothing(daemon):
    for port, tls in [(daemon.submission, False), (daemon.submissions, True), (daemon.plain, False)]:
        r = Raw(port, tls=tls)
        r.reply()
        r.cmd("EHLO c.test")
        assert r.cmd("MAIL FROM:<alice@example.com>")[1] == "530 5.7.0 Authentication required"
        assert r.cmd("RCPT TO:<victim@remote.example>")[0] == 503
        assert r.cmd("DATA")[0] == 503
    assert daemon.queue() == []


def test_ip_authorised_user(daemon):
    daemon.add_user("127.0.0.1", password=None, domain="example.org")
    r = Raw(daemon.plain)
    r.reply()
    r.cmd("EHLO c.test")
    code, last = send_message(r, "anyone@example.org", ["x@remote.example"],
                              body=ham(sender="anyone@example.org"))
    assert code == 250, last
    [entry] = daemon.queue()
    assert entry["user"] == "127.0.0.1"
    # Switched off system-wide: the same client is refused.
    daemon.settings(ip_auth=False)
    r = Raw(daemon.plain)
    r.reply()
    r.cmd("EHLO c.test")
    assert r.cmd("MAIL FROM:<anyone@example.org>")[0] == 530
    daemon.settings(ip_auth=True)
    r = Raw(daemon.plain)
    r.reply()
    r.cmd("EHLO c.test")
    assert r.cmd("MAIL FROM:<anyone@example.org>")[0] == 250


def test_ip_network_user_with_domain(daemon):
    daemon.cli("user", "add", "127.0.0.0/8", "--domain", "example.net")
    r = Raw(daemon.plain)
    r.reply()
    r.cmd("EHLO c.test")
    assert r.cmd("MAIL FROM:<x@example.org>")[0] == 553
    assert r.cmd("MAIL FROM:<x@example.net>")[0] == 250


def test_sender_must_belong_to_user(daemon):
    daemon.add_user(USER)
    r = login(daemon.submission, USER)
    assert r.cmd("MAIL FROM:<bob@example.com>")[0] == 250
    r.cmd("RSET")
    code, last, _ = r.cmd("MAIL FROM:<ceo@other.example>")
    assert (code, last) == (553, "553 5.7.1 Sender address <ceo@other.example> is not owned by user alice@example.com")
    daemon.settings(sender_check="exact")
    r = login(daemon.submission, USER)
    assert r.cmd("MAIL FROM:<bob@example.com>")[0] == 553
    assert r.cmd("MAIL FROM:<alice@example.com>")[0] == 250
    r.cmd("RSET")
    daemon.settings(sender_check="off")
    assert r.cmd("MAIL FROM:<ceo@other.example>")[0] == 250


def test_swaks_wrong_password_fails(daemon):
    daemon.add_user(USER)
    out = subprocess.run(
        ["swaks", "--server", f"127.0.0.1:{daemon.submission}", "-tls", "--auth", "LOGIN",
         "--auth-user", USER, "--auth-password", "nope-nope-nope", "--from", USER, "--to", "x@remote.example"],
        capture_output=True, text=True, timeout=60,
    ).stdout
    assert "535 5.7.8" in out
