"""Submission with real clients: swaks and Python smtplib, STARTTLS on
587, implicit TLS on 465 and on 587, AUTH PLAIN and LOGIN. Each accepted
message must be in the queue with its envelope."""

import smtplib
import socket
import ssl
import subprocess

import pytest

from conftest import PASSWORD, Raw, ham, login, tls_client_context

USER = "alice@example.com"


def swaks(*args):
    r = subprocess.run(["swaks", "--timeout", "20", *args], capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


def queued_for(daemon, rcpt):
    return [e for e in daemon.queue() if [r["address"] for r in e["recipients"]] == [rcpt]]


@pytest.mark.parametrize(
    "mode,port_attr,mech",
    [
        ("starttls", "submission", "PLAIN"),
        ("starttls", "submission", "LOGIN"),
        ("implicit", "submissions", "PLAIN"),
        ("implicit", "submissions", "LOGIN"),
        ("implicit", "submission", "PLAIN"),
        ("implicit", "submission", "LOGIN"),
    ],
)
def test_swaks_submits(daemon, mode, port_attr, mech):
    daemon.add_user(USER)
    rcpt = f"bob-{mode}-{port_attr}-{mech.lower()}@remote.example"
    tls = "-tls" if mode == "starttls" else "--tlsc"
    code, out = swaks(
        "--server", f"127.0.0.1:{getattr(daemon, port_attr)}", tls,
        "--auth", mech, "--auth-user", USER, "--auth-password", PASSWORD,
        "--from", USER, "--to", rcpt,
    )
    assert code == 0, out
    assert "250 2.0.0 Ok: queued as" in out
    [entry] = queued_for(daemon, rcpt)
    assert entry["sender"] == USER
    assert entry["user"] == USER
    assert entry["state"] == "queued"
    assert entry["size"] > 100


@pytest.mark.parametrize("mode", ["starttls", "implicit465", "implicit587", "login-mech"])
def test_smtplib_submits(daemon, mode):
    daemon.add_user(USER)
    rcpt = f"carol-{mode}@remote.example"
    msg = ham(subject=f"smtplib {mode}", to=rcpt)
    if mode == "starttls":
        s = smtplib.SMTP("127.0.0.1", daemon.submission, timeout=20)
        s.starttls(context=tls_client_context())
        s.login(USER, PASSWORD)
    elif mode == "login-mech":
        s = smtplib.SMTP("127.0.0.1", daemon.submission, timeout=20)
        s.starttls(context=tls_client_context())
        s.ehlo()
        s.user, s.password = USER, PASSWORD
        code, _ = s.auth("LOGIN", s.auth_login, initial_response_ok=False)
        assert code == 235
    else:
        port = daemon.submissions if mode == "implicit465" else daemon.submission
        s = smtplib.SMTP_SSL("127.0.0.1", port, context=tls_client_context(), timeout=20)
        s.login(USER, PASSWORD)
    refused = s.sendmail(USER, [rcpt, "dave@remote.example"], msg)
    assert refused == {}
    s.quit()
    entries = [e for e in daemon.queue() if e["recipients"][0]["address"] == rcpt]
    assert len(entries) == 1
    assert [r["address"] for r in entries[0]["recipients"]] == [rcpt, "dave@remote.example"]
    shown = daemon.api("GET", "/v1/queue/" + entries[0]["id"])[1]
    assert f"Subject: smtplib {mode}" in shown["headers"]
    # The trace header names TLS + AUTH (RFC 3848).
    assert "with ESMTPSA id " + entries[0]["id"] in shown["headers"]


def test_starttls_resets_session_and_needs_new_ehlo(daemon):
    r = Raw(daemon.submission)
    assert r.reply()[0] == 220
    code, _, lines = r.cmd("EHLO c.test")
    assert lines[-1] == "250 STARTTLS" and not any("AUTH" in l for l in lines)
    assert r.cmd("STARTTLS")[0] == 220
    r.starttls()
    # No new banner; the old EHLO no longer counts.
    assert r.cmd("MAIL FROM:<alice@example.com>")[:2] == (503, "503 Send EHLO/HELO first")
    code, _, lines = r.cmd("EHLO c.test")
    assert code == 250
    assert "250 AUTH PLAIN LOGIN" in lines and not any("STARTTLS" in l for l in lines)
    assert r.cmd("STARTTLS")[1] == "503 5.5.1 TLS already active"


def test_plaintext_pipelined_after_starttls_is_discarded(daemon):
    r = Raw(daemon.submission)
    r.reply()
    r.cmd("EHLO c.test")
    # An attacker on the path appends a command to STARTTLS in cleartext.
    r.send("STARTTLS\r\nRSET\r\n")
    assert r.reply()[0] == 220
    r.starttls()
    code, last, lines = r.cmd("EHLO c.test")
    assert code == 250 and lines[0].startswith("250-outguard.test Hello"), lines


def test_submission_banner_and_tls_only_on_465(daemon):
    r = Raw(daemon.submission)
    assert r.reply()[1] == "220 outguard.test ESMTP Outguard"
    r = Raw(daemon.submissions, tls=True)
    assert r.reply()[1] == "220 outguard.test ESMTP Outguard"



def no_banner_for(port, seconds, source="127.0.0.1"):
    """Connects from `source`, sends nothing, and says whether the daemon
    stayed silent for `seconds` (it is waiting for a ClientHello); then
    hangs up."""
    with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0)) as s:
        s.settimeout(seconds)
        try:
            s.recv(512)
            return False
        except socket.timeout:
            return True


def banner(port, patience):
    """Connects, sends nothing, and returns the banner (waiting up to
    `patience` seconds for it), like a plain client."""
    with socket.create_connection(("127.0.0.1", port), timeout=patience) as s:
        data = s.recv(512)
        assert data.startswith(b"220 "), data
        return data


# A long sniff window (10 s) makes "waited" and "did not wait" unmistakable:
# each check below is seconds away from the other outcome, so a slow
# machine cannot flip it.
SNIFF_MS = 10000


def test_587_remembers_plain_first_clients_and_relearns_a_switch_to_tls(make_daemon):
    d = make_daemon(smtp={"tls_sniff_ms": SNIFF_MS})
    # Unknown address: silence while the daemon waits for a ClientHello,
    # then the banner for a client that kept waiting.
    assert no_banner_for(d.submission, 1.0)
    banner(d.submission, patience=SNIFF_MS / 1000 + 10)
    # That client waited for its banner, so its address is now known as
    # plain-first: the next connection gets the banner well before the window.
    banner(d.submission, patience=SNIFF_MS / 1000 / 2)
    # Another address is not known.
    assert no_banner_for(d.submission, 1.0, source="127.0.0.2")

    # The client switches to implicit TLS: its first ClientHello reaches a
    # connection that already has its banner, and fails...
    s = socket.create_connection(("127.0.0.1", d.submission), timeout=SNIFF_MS / 1000 / 2)
    assert s.recv(512).startswith(b"220 ")
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        tls_client_context().wrap_socket(s)
    s.close()
    # ...and the address is forgotten, so the retry gets TLS.
    t = smtplib.SMTP_SSL("127.0.0.1", d.submission, context=tls_client_context(), timeout=20)
    assert t.ehlo()[0] == 250
    t.quit()
    assert "TLS ClientHello after the banner" in d.log()
    # Until it waits for a banner again, the address gets the full wait.
    assert no_banner_for(d.submission, 1.0)


def test_587_remembering_can_be_switched_off(make_daemon):
    d = make_daemon(smtp={"tls_sniff_ms": 3000, "tls_sniff_remember_secs": 0})
    for _ in range(2):
        assert no_banner_for(d.submission, 1.0)
        banner(d.submission, patience=15)
