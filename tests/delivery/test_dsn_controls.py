"""Control characters from outside never reach the header of a bounce. The
daemon builds its bounces with mail-builder 1.0 (the release Buildroot
2026.02's Rust 1.88 builds), which writes addresses and text as it is
given them; the daemon takes controls out itself (delivery::controls_as_spaces,
delivery::dsn). Driven end to end: a submission over real SMTP whose
envelope sender, header fields and next-hop reply carry control characters
and would-be header fields; the bounce is read where it lands, at the real
next hop on loopback."""

import email
import email.policy
import smtplib

from .conftest import USER
from .delivery_support import PASSWORD, delivery_status, entry, tls_client_context, wait_for
from .delivery_support import smarthost_of as smarthost

# Every field the bounce's own header may have (dsn::build).
BOUNCE_FIELDS = {"from", "to", "subject", "date", "message-id", "auto-submitted", "mime-version",
                 "content-type"}
# RFC 3464's per-message and per-recipient fields, and the queue id.
STATUS_FIELDS = {"original-envelope-id", "reporting-mta", "x-outguard-queue-id", "arrival-date",
                 "original-recipient", "final-recipient", "action", "status", "remote-mta",
                 "diagnostic-code", "last-attempt-date"}
# The next hop's reply: controls (vertical tab, escape, bell, backspace, DEL)
# and text shaped like header fields behind them.
REPLY = "550 5.1.1 no\x0bsuch\x1b[2J user\x07\x08\x7fBcc: victim@evil.test\x0bX-Injected: 1"
ORIGINAL = (b"From: alice@example.com\r\nTo: fail@remote.example\r\n"
            b"Subject: hi\x0bBcc: victim@evil.test\r\nX-Note: a\x1b[31mred\x07\r\n"
            b"Message-ID: <controls@example.com>\r\n\r\nA line.\r\n")


def controls(text: bytes):
    """The control bytes in `text` other than the CR LF that end lines."""
    return sorted({b for b in text.replace(b"\r\n", b"") if b < 0x20 or b == 0x7F})


def field_names(header: bytes):
    """The names of a header block's fields (continuation lines skipped)."""
    return [line.split(b":", 1)[0].decode().lower() for line in header.split(b"\r\n")
            if line and line[:1] not in (b" ", b"\t")]


def test_controls_in_envelope_header_and_reply_never_reach_the_bounce_header(outguard, hops):
    hop = hops(["8BITMIME", "ENHANCEDSTATUSCODES"])  # no DSN: the daemon bounces itself
    d = outguard(smarthost(hop))
    d.add_user(USER)
    hop.rules["fail@remote.example"] = REPLY
    with smtplib.SMTP("127.0.0.1", d.submission, timeout=60) as s:
        s.starttls(context=tls_client_context())
        s.ehlo()
        s.login(USER, PASSWORD)
        # An envelope sender with a control is refused: it could become the
        # bounce's To.
        for bad in (f"{USER}\x0b", f"a\x1bb@{USER.split('@')[1]}", f"{USER}\x7f"):
            code, text = s.mail(bad)
            assert 500 <= code < 600, (bad, code, text)
            s.rset()
        code, text = s.mail(USER, ["RET=HDRS", "ENVID=env\x0bX-Evil:1"])
        if code != 250:  # an ENVID with a control may be refused outright
            assert 500 <= code < 600, (code, text)
            s.rset()
            code, text = s.mail(USER, ["RET=HDRS"])
        assert code == 250, text
        code, text = s.rcpt("fail@remote.example")
        assert code == 250, text
        code, text = s.data(ORIGINAL)
        assert code == 250, text
        qid = text.decode().rsplit(" ", 1)[1]

    wait_for(lambda: entry(d, qid) is None, what="entry to leave the queue")
    [bounce] = wait_for(lambda: hop.received(sender=""), what="the bounce")
    assert bounce["rcpt_tos"] == [USER]
    raw = bounce["content"]
    header, body = raw.split(b"\r\n\r\n", 1)
    assert controls(header) == [], header
    assert set(field_names(header)) <= BOUNCE_FIELDS, header
    assert b"victim@evil.test" not in header and b"X-Injected" not in header

    dsn = email.message_from_bytes(raw, policy=email.policy.compat32)
    assert email.utils.parseaddr(dsn["To"])[1] == USER
    assert dsn["Subject"] == "Undelivered Mail Returned to Sender"
    parts = dsn.get_payload()
    assert [p.get_content_type() for p in parts] == [
        "text/plain", "message/delivery-status", "text/rfc822-headers"]
    # Each part's own header: only what the daemon wrote, no control.
    for part in parts:
        assert [k.lower() for k in part.keys()] <= ["content-type", "content-description",
                                                     "content-transfer-encoding"], part.keys()
    # The notification text: the reply with its controls as spaces.
    text = parts[0].get_payload(decode=True)
    assert controls(text) == [], text
    assert b"no such [2J user" in text
    # The machine-readable part: RFC 3464 fields only, no control in them.
    per_message, [per_rcpt] = delivery_status(dsn)
    for group in (per_message, per_rcpt):
        assert {k.lower() for k in group.keys()} <= STATUS_FIELDS, group.keys()
        for k, v in group.items():
            assert controls(v.encode()) == [], (k, v)
    assert per_rcpt["Final-Recipient"] == "rfc822; fail@remote.example"
    assert per_rcpt["Diagnostic-Code"].startswith("smtp; 550 5.1.1 no such")
    # The original header comes back as the body of its own part, intact
    # (what the user wrote, controls and all), not as fields of the bounce.
    assert b"Subject: hi\x0bBcc: victim@evil.test\r\n" in body
