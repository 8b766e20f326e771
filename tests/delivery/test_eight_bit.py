"""8-bit mail to a next hop without 8BITMIME (RFC 6152 section 3): the
daemon converts 8-bit MIME parts to quoted-printable, or returns the
message with 5.6.3 when it cannot (an 8-bit header). The next hop is a
real SMTP server on loopback that announces exactly the keywords a test
gives it; mail is submitted with Python's smtplib."""

import email
import email.policy
import smtplib


from .conftest import USER
from .delivery_support import PASSWORD, delivery_status, entry, send, smarthost_of as smarthost, tls_client_context, wait_for


TEXT = "Grüße aus Köln: 100 € = viel.\r\nZweite Zeile mit Ümlaut \r\n"

MULTIPART = (
    "From: alice@example.com\r\nTo: bob@remote.example\r\nSubject: eight bit\r\n"
    "Message-ID: <8bit@example.com>\r\nMIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=\"XYZ\"\r\n\r\n"
    "--XYZ\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    f"{TEXT}"
    "--XYZ\r\nContent-Type: application/octet-stream; name=\"a.bin\"\r\n"
    "Content-Transfer-Encoding: base64\r\n\r\nAAECAwQ=\r\n--XYZ--\r\n"
).encode()


def submit_8bit(d, rcpts, message, mail_options=("BODY=8BITMIME",)):
    with smtplib.SMTP("127.0.0.1", d.submission, timeout=60) as s:
        s.starttls(context=tls_client_context())
        s.login(USER, PASSWORD)
        return send(s, USER, rcpts, message, mail_options)


def test_8bit_part_is_converted_for_a_hop_without_8bitmime(outguard, hops):
    hop = hops(["SIZE 10000000", "ENHANCEDSTATUSCODES"])
    d = outguard(smarthost(hop))
    d.add_user(USER)
    qid = submit_8bit(d, ["bob@remote.example"], MULTIPART)
    [m] = wait_for(lambda: hop.received(), what="delivery")
    assert "BODY=8BITMIME" not in m["mail_line"]
    content = m["content"]
    assert content.isascii(), "7-bit on the wire"
    assert max(len(line) for line in content.split(b"\r\n")) <= 998
    parsed = email.message_from_bytes(content, policy=email.policy.default)
    text_part, bin_part = parsed.get_payload()
    assert text_part["Content-Transfer-Encoding"] == "quoted-printable"
    # It reads the same as the part sent (the CRLF before a boundary
    # belongs to the boundary).
    sent_text, _ = email.message_from_bytes(MULTIPART, policy=email.policy.default).get_payload()
    def lf(t):
        return t.replace("\r\n", "\n")

    assert lf(text_part.get_content()) == lf(sent_text.get_content()) == lf(TEXT)[:-1]
    # The other part and the structure are untouched.
    assert bin_part["Content-Transfer-Encoding"] == "base64"
    assert bin_part.get_content() == b"\x00\x01\x02\x03\x04"
    assert b"--XYZ\r\nContent-Type: application/octet-stream; name=\"a.bin\"\r\n" in content
    wait_for(lambda: entry(d, qid) is None, what="entry to leave the queue")


def test_aiosmtpd_without_8bitmime_gets_7bit_mail(outguard, sinks):
    """The same with aiosmtpd, which leaves 8BITMIME out when it decodes data."""
    sink = sinks(decode_data=True)
    d = outguard(smarthost(sink))
    d.add_user(USER)
    submit_8bit(d, ["bob@remote.example"], MULTIPART)
    [m] = wait_for(lambda: sink.received(), what="delivery")
    assert m["content"].isascii()
    text_part, _ = email.message_from_bytes(m["content"], policy=email.policy.default).get_payload()
    assert text_part["Content-Transfer-Encoding"] == "quoted-printable"
    assert "Grüße aus Köln: 100 € = viel." in text_part.get_content()


def test_8bit_goes_unchanged_to_a_hop_with_8bitmime(outguard, hops):
    hop = hops(["8BITMIME", "ENHANCEDSTATUSCODES"])
    d = outguard(smarthost(hop))
    d.add_user(USER)
    submit_8bit(d, ["bob@remote.example"], MULTIPART)
    [m] = wait_for(lambda: hop.received(), what="delivery")
    assert "BODY=8BITMIME" in m["mail_line"]
    assert m["content"].endswith(MULTIPART)


def test_8bit_header_to_a_hop_without_8bitmime_bounces_5_6_3(outguard, hops):
    hop = hops(["ENHANCEDSTATUSCODES"])
    d = outguard(smarthost(hop))
    d.add_user(USER)
    message = ("From: alice@example.com\r\nTo: bob@remote.example\r\nSubject: Grüße\r\n"
               "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHallo\r\n").encode()
    qid = submit_8bit(d, ["bob@remote.example"], message)
    [bounce] = wait_for(lambda: hop.received(sender=""), what="the bounce")
    assert hop.received(rcpt="bob@remote.example") == []
    # The bounce quotes the 8-bit header, so it was itself made 7-bit.
    assert bounce["content"].isascii()
    dsn = email.message_from_bytes(bounce["content"], policy=email.policy.compat32)
    _, [f] = delivery_status(dsn)
    assert (f["Action"], f["Status"]) == ("failed", "5.6.3")
    assert "8BITMIME" in f["Diagnostic-Code"] and "header" in f["Diagnostic-Code"]
    wait_for(lambda: entry(d, qid) is None, what="entry to leave the queue")
