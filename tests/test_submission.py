"""Submission with real clients: swaks and Python smtplib, STARTTLS on
587, implicit TLS on 465 and on 587, AUTH PLAIN and LOGIN. Each accepted
message must be in the queue with its envelope."""

import smtplib
import socket
import ssl
import subprocess
import time

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


def msmtp_implicit(port, rcpt, tmp_path):
    """msmtp with implicit TLS (tls_starttls off), as a mail client's
    "SSL" setting on 587 would use it; returns (exit code, output)."""
    conf = tmp_path / "msmtprc"
    conf.write_text(
        f"account default\nhost 127.0.0.1\nport {port}\nfrom {USER}\n"
        f"auth plain\nuser {USER}\npassword {PASSWORD}\n"
        "tls on\ntls_starttls off\ntls_certcheck off\n"
    )
    conf.chmod(0o600)
    r = subprocess.run(
        ["msmtp", "-C", str(conf), rcpt], input=ham(subject="msmtp", to=rcpt).encode(),
        capture_output=True, timeout=60,
    )
    return r.returncode, (r.stdout + r.stderr).decode(errors="replace")


def test_587_implicit_tls_after_plain_sessions_from_the_same_address(daemon, tmp_path):
    """Behind NAT every client shares one address: plain, STARTTLS and
    implicit-TLS clients in any order must each succeed on the first try
    (the old sniff remembered the address as plain-first and then sent
    implicit-TLS clients a banner they could not read)."""
    daemon.add_user(USER)
    ctx = tls_client_context()

    def plain():
        banner(daemon.submission, patience=15)

    def starttls():
        s = smtplib.SMTP("127.0.0.1", daemon.submission, timeout=20)
        s.starttls(context=ctx)
        s.login(USER, PASSWORD)
        s.quit()

    def implicit():
        s = smtplib.SMTP_SSL("127.0.0.1", daemon.submission, context=ctx, timeout=20)
        s.login(USER, PASSWORD)
        s.quit()

    for step in [plain, implicit, starttls, implicit, plain, starttls, implicit, implicit]:
        step()
    code, out = msmtp_implicit(daemon.submission, "bob-msmtp@remote.example", tmp_path)
    assert code == 0, out
    assert len(queued_for(daemon, "bob-msmtp@remote.example")) == 1
    assert "ClientHello after the banner" not in daemon.log()


def late_hello(port, delay):
    """An implicit-TLS client that sends its ClientHello `delay` seconds
    after connecting; returns its EHLO reply or the exception it met."""
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    time.sleep(delay)
    try:
        t = tls_client_context().wrap_socket(s)
        f = t.makefile("rb")
        assert f.readline().startswith(b"220 ")
        t.sendall(b"EHLO late.example\r\n")
        return f.readline()[:4]
    except (ssl.SSLError, ConnectionError, OSError) as e:
        return e
    finally:
        s.close()


def test_587_late_client_hello_fails_once_then_its_address_is_waited_for(make_daemon):
    """A hello later than the sniff wait lands after the banner, which the
    client then reads as a broken TLS record (no client recovers): that
    connection fails, and the address's next hello is waited for."""
    d = make_daemon(smtp={"tls_sniff_ms": 20})
    assert isinstance(late_hello(d.submission, 0.3), Exception)
    # The client gives up on reading the banner as TLS before the server has
    # peeked at its hello: wait for the server's side of the story.
    d.wait_log("TLS ClientHello after the banner")
    assert late_hello(d.submission, 0.3) == b"250-"
    # Plain clients from that address still get their banner, after the
    # learnt wait (twice the late hello's delay).
    assert no_banner_for(d.submission, 0.3)
    banner(d.submission, patience=15)


def test_null_sender_from_an_authenticated_user_is_accepted_and_counted(daemon):
    """A Postfix relaying through Outguard sends its bounces with MAIL
    FROM:<>; the default sender rule (domain) used to refuse them (553)."""
    daemon.add_user(USER)
    rcpt = "bounced-sender@remote.example"
    s = smtplib.SMTP("127.0.0.1", daemon.submission, timeout=20)
    s.starttls(context=tls_client_context())
    s.login(USER, PASSWORD)
    assert s.sendmail("", [rcpt], ham(subject="Undelivered Mail Returned to Sender", to=rcpt)) == {}
    s.quit()
    [entry] = queued_for(daemon, rcpt)
    assert entry["sender"] == "" and entry["user"] == USER
    assert daemon.user(USER)["usage"]["day"] == 1


def long_domain(n):
    """A valid DNS name of about `n` octets (63-octet labels)."""
    labels = ["l" * 63] * (n // 64) + ["example"]
    return ".".join(labels)


def test_message_at_the_advertised_size_still_fits_max_message_size(make_daemon):
    """A message at the SIZE we advertise, plus the Received header we add
    (longest HELO, IPv4 address, longest recipient), must fit
    max_message_size, or a next hop with the same limit refuses it."""
    max_size = 20000
    d = make_daemon(smtp={"max_message_size": max_size})
    d.add_user(USER)
    rcpt = "r" * 64 + "@" + long_domain(150)
    s = smtplib.SMTP("127.0.0.1", d.submission, timeout=20, local_hostname=long_domain(250))
    s.starttls(context=tls_client_context())
    s.ehlo(long_domain(250))
    s.login(USER, PASSWORD)
    limit = int(s.esmtp_features["size"])
    assert limit < max_size

    def message(n):
        head = f"From: {USER}\r\nTo: x@remote.example\r\nSubject: at the limit\r\n\r\n"
        body = ("z" * 76 + "\r\n") * max_size
        return (head + body)[: n - 2] + "\r\n"

    assert s.sendmail(USER, [rcpt], message(limit)) == {}
    [entry] = queued_for(d, rcpt)
    assert limit < entry["size"] <= max_size
    with pytest.raises(smtplib.SMTPSenderRefused) as e:
        s.sendmail(USER, [rcpt], message(limit + 1))
    assert e.value.smtp_code == 552
    s.quit()
