"""Delivery from the queue to a real next hop on loopback: an aiosmtpd
sink as smarthost or as MX host (found through a loopback DNS server).
Time-based behaviour is driven by moving the daemon's clock."""

import base64
import hashlib
import ssl
import subprocess
import threading

from .conftest import USER
from .delivery_support import (
    a, body_of, delivery_status, entry, health, make_certs, message, mx, original_headers,
    settle, submit, swaks, ts_ns, ts_text, wait_for,
)

MIN = 60 * 10**9


def smarthost(sink, **extra):
    return {"smarthost": f"127.0.0.1:{sink.port}", **extra}


def test_authenticated_submission_arrives_byte_identical(outguard, sinks):
    sink = sinks()
    d = outguard(smarthost(sink))
    d.add_user(USER)
    original = message("identical", body="Line one.\r\n.dot first\r\n..two dots\r\n\r\n8bit café\r\n.\r\nend\r\n")
    qid = submit(d, USER, ["bob@remote.example", "carol@other.example"], original)
    [m] = wait_for(lambda: sink.received(), what="delivery")
    assert m["mail_from"] == USER
    assert m["rcpt_tos"] == ["bob@remote.example", "carol@other.example"]
    # Our Received header is prepended; everything after it is untouched.
    assert m["content"].startswith(b"Received: ")
    assert m["content"].endswith(original)
    assert body_of(m["content"]) == body_of(original)
    wait_for(lambda: entry(d, qid) is None, what="entry to leave the queue")
    assert health(d)["delivered"] == 2


def test_4xx_then_250_follows_the_schedule(outguard, sinks):
    sink = sinks()
    d = outguard(smarthost(sink))
    d.add_user(USER)
    rcpt = "later@remote.example"
    sink.rules[rcpt] = "451 4.7.1 greylisted, try later"
    qid = submit(d, USER, [rcpt], message("greylisted"))
    e = wait_for(lambda: (x := entry(d, qid)) and x["recipients"][0]["attempts"] == 1 and x, what="first attempt")
    received = ts_ns(e["received"])
    r = e["recipients"][0]
    assert r["state"] == "queued" and r["last_reply"].startswith("451 4.7.1")
    # Default schedule: every 15 minutes at first.
    assert ts_ns(r["next_attempt"]) == received + 15 * MIN
    assert ts_ns(e["next_attempt"]) == received + 15 * MIN

    d.set_clock(ts_text(received + 15 * MIN + 5 * 10**9))
    e = wait_for(lambda: (x := entry(d, qid)) and x["recipients"][0]["attempts"] == 2 and x, what="second attempt")
    assert ts_ns(e["recipients"][0]["next_attempt"]) == received + 30 * MIN

    # Three hours in: the growing phase (15 min x 1.5^k after 2 hours).
    d.set_clock(ts_text(received + 180 * MIN))
    e = wait_for(lambda: (x := entry(d, qid)) and x["recipients"][0]["attempts"] == 3 and x, what="third attempt")
    nxt = ts_ns(e["recipients"][0]["next_attempt"]) - received
    # 2h + 22.5m + 33.75m + 50.6m = 226.9 min is the first point after 180 min.
    assert nxt == (7200 + 1350 + 2025 + 3037) * 10**9, nxt / MIN

    del sink.rules[rcpt]
    d.set_clock(ts_text(received + nxt + 5 * 10**9))
    [m] = wait_for(lambda: sink.received(rcpt=rcpt), what="delivery after the retry")
    wait_for(lambda: entry(d, qid) is None, what="entry to leave the queue")
    assert [x for x in sink.rcpt_log if x[0] == rcpt] == [(rcpt, "451 4.7.1 greylisted, try later")] * 3 + [(rcpt, "250")]
    h = health(d)
    assert (h["deferred"], h["delivered"], h["bounced"]) == (3, 1, 0)


def test_5xx_for_one_of_two_bounces_it_alone(outguard, sinks):
    sink = sinks()
    d = outguard(smarthost(sink))
    d.add_user(USER)
    good, bad = "good@remote.example", "bad@remote.example"
    sink.rules[bad] = "550 5.1.1 <bad@remote.example>: mailbox unknown"
    qid = submit(d, USER, [good, bad], message("one bad"))
    wait_for(lambda: sink.received(rcpt=good), what="delivery to the good recipient")
    [dsn] = wait_for(lambda: sink.bounces(USER), what="the bounce")
    assert [m["rcpt_tos"] for m in sink.received(sender="")] == [[USER]]
    assert dsn["Subject"] == "Undelivered Mail Returned to Sender"
    assert dsn["Auto-Submitted"] == "auto-replied"
    per_message, per_rcpt = delivery_status(dsn)
    assert per_message["Reporting-MTA"] == "dns; outguard.test"
    assert per_message["X-Outguard-Queue-ID"] == qid
    assert len(per_rcpt) == 1
    f = per_rcpt[0]
    assert f["Final-Recipient"] == f"rfc822; {bad}"
    assert f["Action"] == "failed"
    assert f["Status"] == "5.1.1"
    assert f["Diagnostic-Code"].startswith("smtp; 550 5.1.1 <bad@remote.example>: mailbox unknown")
    assert f["Remote-MTA"] == "dns; 127.0.0.1"
    assert "Subject: one bad" in original_headers(dsn)
    assert "A line." not in original_headers(dsn)
    wait_for(lambda: entry(d, qid) is None, what="entry to leave the queue")
    # The bounce itself was delivered and left the queue too.
    wait_for(lambda: d.queue() == [], what="empty queue")
    h = health(d)
    assert (h["delivered"], h["bounced"], h["dsn_queued"]) == (2, 1, 1)


def test_max_retry_days_one_bounces_after_a_day(outguard, sinks):
    sink = sinks()
    d = outguard(smarthost(sink))
    d.add_user(USER, max_retry_days=1)
    rcpt = "slow@remote.example"
    sink.rules[rcpt] = "452 4.2.2 mailbox full"
    qid = submit(d, USER, [rcpt], message("slow"))
    e = wait_for(lambda: (x := entry(d, qid)) and x["recipients"][0]["attempts"] == 1 and x, what="first attempt")
    received = ts_ns(e["received"])
    # 23 hours on: still retried, not bounced.
    d.set_clock(ts_text(received + 23 * 60 * MIN))
    e = wait_for(lambda: (x := entry(d, qid)) and x["recipients"][0]["attempts"] == 2 and x, what="retry at 23h")
    assert e["recipients"][0]["state"] == "queued"
    assert sink.bounces(USER) == []
    # Past the day: the next attempt fails again and the recipient expires.
    d.set_clock(ts_text(received + 24 * 60 * MIN + MIN))
    [dsn] = wait_for(lambda: sink.bounces(USER), what="the expiry bounce")
    _, [f] = delivery_status(dsn)
    assert f["Final-Recipient"] == f"rfc822; {rcpt}"
    assert f["Action"] == "failed"
    assert f["Status"] == "5.4.7"
    assert "452 4.2.2 mailbox full" in f["Diagnostic-Code"]
    wait_for(lambda: entry(d, qid) is None, what="entry to leave the queue")


def test_failed_null_sender_mail_is_dropped_not_bounced(outguard, sinks):
    sink = sinks()
    d = outguard(smarthost(sink))
    d.add_user(USER)
    bad = "bad@remote.example"
    sink.rules[bad] = "550 5.1.1 no such user"
    # The sender's own mailbox refuses too, so the bounce (null sender) fails.
    sink.rules[USER] = "550 5.2.1 mailbox disabled"
    qid = submit(d, USER, [bad], message("loop"))
    wait_for(lambda: health(d)["dropped"] == 1, what="the failed bounce to be dropped")
    wait_for(lambda: d.queue() == [], what="empty queue")
    assert entry(d, qid) is None
    h = health(d)
    assert (h["bounced"], h["dsn_queued"], h["dropped"], h["delivered"]) == (2, 1, 1, 0)
    assert sink.received() == []
    # Exactly two RCPTs were tried: the original and its bounce; no bounce of the bounce.
    assert [x[0] for x in sink.rcpt_log] == [bad, USER]


def test_dropped_connection_is_retried(outguard, sinks):
    sink = sinks()
    d = outguard(smarthost(sink))
    d.add_user(USER)
    sink.drop = True
    qid = submit(d, USER, ["x@remote.example"], message("dropped"))
    e = wait_for(lambda: (x := entry(d, qid)) and x["recipients"][0]["attempts"] >= 1 and x, what="an attempt")
    assert e["recipients"][0]["state"] == "queued"
    assert e["recipients"][0]["last_reply"].startswith("451 4.4.")
    sink.drop = False
    d.set_clock(ts_text(ts_ns(e["received"]) + 16 * MIN))
    wait_for(lambda: sink.received(rcpt="x@remote.example"), what="delivery after the drop")


def test_smarthost_with_starttls_and_auth(outguard, sinks, workdir):
    ca, ctx = make_certs(workdir / "certs", name="localhost")
    sink = sinks(tls_context=ctx, require_tls=True, credentials=("relay-user", "relay-secret"))
    pw = workdir / "smarthost.pw"
    pw.write_text("relay-secret\n")
    pw.chmod(0o600)
    d = outguard({
        "smarthost": f"localhost:{sink.port}",
        "starttls": "required",
        "auth_user": "relay-user",
        "auth_password_file": str(pw),
        "ca_file": str(ca),
    })
    d.add_user(USER)
    original = message("tls")
    swaks(d, USER, "bob@remote.example", original)
    [m] = wait_for(lambda: sink.received(), what="delivery over TLS")
    assert m["tls"]
    assert m["mail_from"] == USER and m["rcpt_tos"] == ["bob@remote.example"]
    # swaks adds a line ending of its own after --data; the rest is intact.
    assert body_of(m["content"]).rstrip(b"\r\n") == body_of(original).rstrip(b"\r\n")
    assert sink.logins == [("PLAIN", "relay-user")]
    wait_for(lambda: d.queue() == [], what="empty queue")


def test_smarthost_certificate_is_checked(outguard, sinks, workdir):
    # A certificate from a CA the daemon does not trust: no delivery.
    _, ctx = make_certs(workdir / "certs", name="localhost")
    sink = sinks(tls_context=ctx, require_tls=True)
    d = outguard({"smarthost": f"localhost:{sink.port}", "starttls": "required"})
    d.add_user(USER)
    qid = submit(d, USER, ["bob@remote.example"], message("untrusted"))
    e = wait_for(lambda: (x := entry(d, qid)) and x["recipients"][0]["attempts"] >= 1 and x, what="an attempt")
    assert "TLS handshake" in e["recipients"][0]["last_reply"], e
    assert sink.received() == []


def test_mx_mode_skips_a_refusing_host(outguard, sinks, dns):
    sink = sinks()
    zone = {
        ("remote.test", "MX"): [mx(10, "mx1.remote.test."), mx(20, "mx2.remote.test.")],
        # Nothing listens on 127.0.0.2: connection refused.
        ("mx1.remote.test", "A"): [a("127.0.0.2")],
        ("mx2.remote.test", "A"): [a("127.0.0.1")],
        # No MX: the A record is the implicit MX (RFC 5321 5.1).
        ("bare.test", "A"): [a("127.0.0.1")],
        ("example.com", "MX"): [mx(10, "mx2.remote.test.")],
    }
    server = dns(zone)
    d = outguard({"mode": "mx", "dns_servers": [f"127.0.0.1:{server.port}"], "mx_port": sink.port})
    d.add_user(USER)
    qid = submit(d, USER, ["bob@remote.test", "eve@bare.test", "nobody@gone.test"], message("mx"))
    wait_for(lambda: sink.received(rcpt="bob@remote.test"), what="delivery via the second MX")
    wait_for(lambda: sink.received(rcpt="eve@bare.test"), what="delivery via the implicit MX")
    # The domain that does not exist fails at once, with a bounce (via example.com's MX).
    [dsn] = wait_for(lambda: sink.bounces(USER), what="bounce for the missing domain")
    _, [f] = delivery_status(dsn)
    assert f["Final-Recipient"] == "rfc822; nobody@gone.test"
    assert f["Status"] == "5.1.2"
    wait_for(lambda: entry(d, qid) is None, what="entry to leave the queue")
    d.wait_log("mx1.remote.test", "next hop unusable")


def test_queue_admin_retry_bounce_delete(outguard, sinks):
    sink = sinks()
    d = outguard(smarthost(sink))
    d.add_user(USER)
    rcpt = "later@remote.example"
    sink.rules[rcpt] = "421 4.3.0 not now"
    q1 = submit(d, USER, [rcpt], message("admin one"))
    q2 = submit(d, USER, [rcpt], message("admin two"))
    for q in (q1, q2):
        wait_for(lambda q=q: (x := entry(d, q)) and x["recipients"][0]["attempts"] == 1, what="first attempts")
    listed = [e["id"] for e in __import__("json").loads(
        d.cli("queue", "list", "--user", USER, "--state", "queued", "--json").stdout)]
    assert sorted(listed) == sorted([q1, q2])
    assert "later@remote.example" in d.cli("queue", "show", q1).stdout
    # retry: tried again now, without moving the clock.
    assert "retry" in d.cli("queue", "retry", q1).stdout
    wait_for(lambda: entry(d, q1)["recipients"][0]["attempts"] == 2, what="the retry")
    # bounce: returned to the sender with a DSN.
    d.cli("queue", "bounce", q1)
    assert entry(d, q1) is None
    [dsn] = wait_for(lambda: sink.bounces(USER), what="the admin bounce")
    _, [f] = delivery_status(dsn)
    assert f["Final-Recipient"] == f"rfc822; {rcpt}" and f["Action"] == "failed"
    # delete: gone without a bounce.
    d.cli("queue", "delete", q2)
    assert entry(d, q2) is None
    assert d.cli("queue", "delete", q2, check=False).returncode != 0
    settle()
    assert len(sink.bounces(USER)) == 1


def test_kill9_under_load_loses_nothing(outguard, sinks):
    sink = sinks()
    d = outguard(smarthost(sink))
    d.add_user(USER, limit_day=0, limit_week=0, limit_month=0, max_recipients_day=0)
    accepted = []
    total = 300

    def load(start, stop):
        import smtplib
        from .delivery_support import PASSWORD, send, tls_client_context
        try:
            s = smtplib.SMTP("127.0.0.1", d.submission, timeout=30)
            s.starttls(context=tls_client_context())
            s.login(USER, PASSWORD)
            for i in range(start, stop):
                send(s, USER, [f"r{i % 7}@remote.example"], message(f"load {i}"))
                accepted.append(i)
        except Exception:
            pass  # the daemon was killed under us

    t = threading.Thread(target=load, args=(0, total))
    t.start()
    # Kill while mail is both arriving and being delivered.
    wait_for(lambda: len(accepted) >= 100 and len(sink.received()) >= 20, timeout=120, what="load under way")
    d.kill9()
    t.join(60)
    before = len(accepted)
    d.start()
    load(max(accepted) + 1, total)
    expected = set(accepted)
    subject = lambda m: int(m["content"].split(b"Subject: load ", 1)[1].split(b"\r\n", 1)[0])

    def arrived():
        got = {subject(m) for m in sink.received()}
        return expected <= got

    wait_for(arrived, timeout=180, what="every accepted message at the sink")
    seen = [subject(m) for m in sink.received()]
    dups = sorted({i for i in seen if seen.count(i) > 1})
    print(f"\nkill -9 under load: {len(expected)} accepted ({before} before the kill), "
          f"{len(seen)} arrivals, {len(dups)} duplicate(s): {dups}")
    # Messages whose 250 was lost in the kill may arrive too; nothing stays.
    wait_for(lambda: d.queue() == [], timeout=60, what="empty queue")


def test_delay_warning_once_after_n_hours(outguard, sinks):
    sink = sinks()
    d = outguard(smarthost(sink, delay_warning_hours=1))
    d.add_user(USER)
    rcpt = "later@remote.example"
    sink.rules[rcpt] = "451 4.4.1 no answer from host"
    qid = submit(d, USER, [rcpt], message("delayed"))
    e = wait_for(lambda: (x := entry(d, qid)) and x["recipients"][0]["attempts"] == 1 and x, what="first attempt")
    received = ts_ns(e["received"])
    assert sink.bounces(USER) == []  # not yet an hour
    d.set_clock(ts_text(received + 61 * MIN))
    [dsn] = wait_for(lambda: sink.bounces(USER), what="the delay warning")
    assert dsn["Subject"].startswith("Delayed Mail")
    _, [f] = delivery_status(dsn)
    assert (f["Action"], f["Status"]) == ("delayed", "4.4.1")
    assert entry(d, qid)["recipients"][0]["state"] == "queued"
    # Only one warning per message.
    d.set_clock(ts_text(received + 200 * MIN))
    wait_for(lambda: entry(d, qid)["recipients"][0]["attempts"] >= 3, what="a later attempt")
    assert len(sink.bounces(USER)) == 1


def test_opportunistic_tls_falls_back_to_plain_text(outguard, sinks, workdir):
    import ssl

    _, ctx = make_certs(workdir / "certs", name="localhost")
    # Offers STARTTLS but only with a suite rustls refuses (RSA key
    # exchange, CBC): the handshake fails.
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("AES128-SHA")
    sink = sinks(tls_context=ctx, require_tls=False)
    # Without certificate checks (with them, see the test below).
    d = outguard(smarthost(sink, starttls="opportunistic", tls_verify=False))
    d.add_user(USER)
    qid = submit(d, USER, ["bob@remote.example"], message("fallback"))
    [m] = wait_for(lambda: sink.received(), what="delivery in plain text")
    assert not m["tls"]
    d.wait_log("retrying without STARTTLS")
    wait_for(lambda: entry(d, qid) is None, what="entry to leave the queue")


def test_capture_mode_keeps_mail_local_and_asks_no_dns(outguard, dns):
    """Trying it (--dev, the unprovisioned image) must not reach the
    internet: in capture mode a message to bob@example.net is written to
    <data_dir>/capture/ and no name is looked up, even with a resolver
    configured."""
    server = dns({("example.net", "MX"): [mx(10, "mx.example.net.")]})
    d = outguard({"mode": "capture", "dns_servers": [f"127.0.0.1:{server.port}"]})
    d.add_user(USER)
    qid = submit(d, USER, ["bob@example.net"], message("capture"))
    path = d.data / "capture" / f"{qid}.eml"
    wait_for(path.exists, what="the captured message")
    raw = path.read_bytes()
    assert raw.startswith(b"Return-Path: <alice@example.com>\r\nX-Outguard-Captured-For: <bob@example.net>\r\n")
    assert b"Subject: capture" in raw and b"Received: from " in raw
    wait_for(lambda: entry(d, qid) is None, what="entry to leave the queue")
    d.wait_log("captured")
    assert server.resolver.queries == []


def self_signed(dir, name="localhost"):
    """A certificate as plain `openssl req -x509` makes it (CA:TRUE), the
    usual private relay's; returns (cert path, server context)."""
    dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "k.pem",
                    "-out", "c.pem", "-days", "2", "-subj", f"/CN={name}",
                    "-addext", f"subjectAltName=DNS:{name}"], check=True, capture_output=True, cwd=dir)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(dir / "c.pem", dir / "k.pem")
    return dir / "c.pem", ctx


def openssl(*args, input=None):
    return subprocess.run(["openssl", *args], check=True, capture_output=True, input=input).stdout


def test_self_signed_smarthost_certificate_listed_in_ca_file_is_trusted(outguard, sinks, workdir):
    cert, ctx = self_signed(workdir / "certs")
    sink = sinks(tls_context=ctx, require_tls=True)
    d = outguard({"smarthost": f"localhost:{sink.port}", "starttls": "required", "ca_file": str(cert)})
    d.add_user(USER)
    submit(d, USER, ["bob@remote.example"], message("self-signed"))
    [m] = wait_for(lambda: sink.received(), what="delivery over TLS to a self-signed relay")
    assert m["tls"]
    wait_for(lambda: d.queue() == [], what="empty queue")
    # The connection ends with QUIT.
    wait_for(lambda: sink.quits >= 1, what="QUIT")


def test_pinned_smarthost_key_or_certificate(outguard, sinks, workdir):
    """A pin trusts the relay's key (or certificate) whatever its issuer
    and name; a relay whose key differs gets nothing, even over TLS."""
    _, ctx = make_certs(workdir / "certs", name="relay.private")  # a CA we do not trust
    sink = sinks(tls_context=ctx, require_tls=True)
    pem = (workdir / "certs" / "server.pem").read_bytes()
    spki = openssl("x509", "-pubkey", "-noout", input=pem)
    der = openssl("pkey", "-pubin", "-outform", "der", input=spki)
    key_pin = "sha256//" + base64.b64encode(hashlib.sha256(der).digest()).decode()
    fp = openssl("x509", "-fingerprint", "-sha256", "-noout", input=pem).decode().strip().split("=", 1)[1]
    for i, pin in enumerate([key_pin, f"sha256:{fp}"]):
        d = outguard({"smarthost": f"localhost:{sink.port}", "starttls": "required", "tls_pin": [pin]})
        d.add_user(USER)
        submit(d, USER, [f"pinned{i}@remote.example"], message(f"pinned {i}"))
        wait_for(lambda: sink.received(rcpt=f"pinned{i}@remote.example"), what=f"delivery with pin {pin}")
        d.stop()
    other = "sha256//" + base64.b64encode(hashlib.sha256(b"another key").digest()).decode()
    d = outguard({"smarthost": f"localhost:{sink.port}", "starttls": "required", "tls_pin": [other]})
    d.add_user(USER)
    qid = submit(d, USER, ["wrongpin@remote.example"], message("wrong pin"))
    e = wait_for(lambda: (x := entry(d, qid)) and x["recipients"][0]["attempts"] >= 1 and x, what="an attempt")
    assert "TLS handshake" in e["recipients"][0]["last_reply"], e
    assert sink.received(rcpt="wrongpin@remote.example") == []


def test_opportunistic_tls_never_falls_back_on_a_bad_certificate(outguard, sinks, workdir):
    # A smarthost offering STARTTLS with a certificate from a CA the daemon
    # does not trust, and accepting plain text too: an attacker in the path
    # would look just like this. The message must stay queued with the TLS
    # error, never go out in plain text.
    _, ctx = make_certs(workdir / "certs", name="localhost")
    sink = sinks(tls_context=ctx, require_tls=False)
    d = outguard({"smarthost": f"localhost:{sink.port}", "starttls": "opportunistic"})
    d.add_user(USER)
    qid = submit(d, USER, ["bob@remote.example"], message("untrusted opportunistic"))
    e = wait_for(lambda: (x := entry(d, qid)) and x["recipients"][0]["attempts"] >= 1 and x, what="an attempt")
    r = e["recipients"][0]
    assert r["state"] == "queued", e
    assert r["last_reply"].startswith("451 4.4.1") and "TLS handshake" in r["last_reply"], e
    settle()
    assert sink.received() == []
    assert "retrying without STARTTLS" not in d.log()
