"""SMTPUTF8 (RFC 6531) end to end: Python smtplib submits UTF-8 addresses
and header fields; the daemon passes SMTPUTF8 on to an aiosmtpd next hop
that offers it, and bounces (5.6.7 / 5.6.9) what a next hop without it
would need it for."""

import email
import email.policy
import smtplib
from email.message import EmailMessage

from .conftest import USER
from .delivery_support import (
    PASSWORD, delivery_status, entry, submit, tls_client_context, wait_for, message,
)

RCPT = "jürgen@bücher.example"


def smarthost(sink):
    return {"smarthost": f"127.0.0.1:{sink.port}"}


def login(d):
    s = smtplib.SMTP("127.0.0.1", d.submission, timeout=60)
    s.starttls(context=tls_client_context())
    s.login(USER, PASSWORD)
    return s


def utf8_message(to=RCPT, subject="Grüße aus Köln"):
    m = EmailMessage()
    m["From"] = USER
    m["To"] = to
    m["Subject"] = subject
    m.set_content("Hallo Jürgen,\nein Gruß.\n")
    return m


def send_utf8(d, msg, to):
    """send_message with SMTPUTF8 (smtplib sends the UTF-8 message as is);
    returns the queue id."""
    with login(d) as s:
        assert s.has_extn("smtputf8")
        if isinstance(msg, bytes):
            refused = s.sendmail(USER, [to], msg, mail_options=["SMTPUTF8"])
        else:
            refused = s.send_message(msg, from_addr=USER, to_addrs=[to], mail_options=["SMTPUTF8"])
        assert refused == {}
    ids = [e["id"] for e in d.queue() if [r["address"] for r in e["recipients"]] == [to]]
    return max(ids) if ids else None


def test_non_ascii_needs_the_parameter_and_replies_stay_ascii(outguard, sinks):
    sink = sinks(smtputf8=True)
    d = outguard(smarthost(sink))
    d.add_user(USER)
    with login(d) as s:
        assert s.has_extn("smtputf8")
        s.command_encoding = "utf-8"  # smtplib would refuse to send UTF-8 otherwise
        assert s.mail(USER)[0] == 250
        code, text = s.rcpt(RCPT)
        assert (code, text) == (553, b"5.6.7 Recipient address <j\\u{fc}rgen@b\\u{fc}cher.example> "
                                     b"is not ASCII: use MAIL FROM:<...> SMTPUTF8")
        s.rset()
        s.command_encoding = "utf-8"  # rset set it back
        code, text = s.mail("älice@example.com")
        assert code == 553 and text.startswith(b"5.6.7 Sender address <\\u{e4}lice@example.com>")
        # With the parameter, the same recipient is fine, and a refusal
        # may show it as it is.
        assert s.mail(USER, ["SMTPUTF8"])[0] == 250
        assert s.rcpt(RCPT)[0] == 250
        code, text = s.rcpt("jö@bad_domain.example")
        assert code == 553 and text.startswith("5.1.3 Recipient address <jö@bad_domain.example>".encode())


def test_idn_sender_matches_its_a_label_owner(outguard, sinks):
    sink = sinks(smtputf8=True)
    d = outguard(smarthost(sink))
    owner = "alice@xn--bcher-kva.example"
    d.add_user(owner)
    d.settings(sender_check="exact")
    with smtplib.SMTP("127.0.0.1", d.submission, timeout=60) as s:
        s.starttls(context=tls_client_context())
        s.login(owner, PASSWORD)
        assert s.mail("alice@bücher.example", ["SMTPUTF8"])[0] == 250
        s.rset()
        code, text = s.mail("alice@bucher.example", ["SMTPUTF8"])
        assert code == 553 and b"is not owned by user" in text


def test_utf8_mail_is_passed_on_with_smtputf8(outguard, sinks):
    sink = sinks(smtputf8=True)
    d = outguard(smarthost(sink))
    d.add_user(USER)
    qid = send_utf8(d, utf8_message(), RCPT)
    [m] = wait_for(lambda: sink.received(), what="delivery")
    assert m["rcpt_tos"] == [RCPT]
    assert m["mail_from"] == USER
    assert "SMTPUTF8" in m["mail_options"]
    assert "Subject: Grüße aus Köln".encode() in m["content"]
    assert b"with UTF8SMTPSA" in m["content"]
    wait_for(lambda: entry(d, qid) is None, what="entry to leave the queue")


def test_flag_is_stored_with_the_queue_entry(outguard, sinks):
    sink = sinks(smtputf8=True)
    sink.rules[RCPT] = "451 4.3.0 later"
    plain = "bob@remote.example"
    sink.rules[plain] = "451 4.3.0 later"
    d = outguard(smarthost(sink))
    d.add_user(USER)
    qid = send_utf8(d, utf8_message(), RCPT)
    e = wait_for(lambda: (x := entry(d, qid)) and x["recipients"][0]["attempts"] >= 1 and x, what="an attempt")
    assert e["smtputf8"] is True
    q2 = submit(d, USER, [plain], message("plain"))
    e2 = wait_for(lambda: (x := entry(d, q2)) and x["recipients"][0]["attempts"] >= 1 and x, what="an attempt")
    assert e2["smtputf8"] is False


def test_next_hop_without_smtputf8_gets_no_utf8_and_the_sender_a_bounce(outguard, sinks):
    sink = sinks(smtputf8=False)
    d = outguard(smarthost(sink))
    d.add_user(USER)
    # A UTF-8 recipient: 5.6.7.
    send_utf8(d, utf8_message(), RCPT)
    [dsn] = wait_for(lambda: sink.bounces(USER), what="the 5.6.7 bounce")
    _, [f] = delivery_status(dsn)
    assert f["Action"] == "failed"
    assert f["Status"] == "5.6.7"
    assert "does not offer SMTPUTF8" in f["Diagnostic-Code"]
    # The report stays ASCII: the address in RFC 6533's 7-bit utf-8 form.
    assert f["Final-Recipient"] == "utf-8; j\\x{FC}rgen@b\\x{FC}cher.example"
    # ASCII addresses, UTF-8 header fields only (as raw UTF-8: smtplib's
    # send_message would encode them for ASCII addresses): 5.6.9, no downgrade.
    raw = message("Grüße aus Köln")
    send_utf8(d, raw, "bob@remote.example")
    wait_for(lambda: len(sink.bounces(USER)) == 2, what="the 5.6.9 bounce")
    _, [f] = delivery_status(sink.bounces(USER)[1])
    assert f["Status"] == "5.6.9"
    # SMTPUTF8 asked for but everything ASCII: plain SMTP, delivered.
    send_utf8(d, utf8_message(to="carol@remote.example", subject="plain"), "carol@remote.example")
    [m] = wait_for(lambda: sink.received(rcpt="carol@remote.example"), what="ASCII delivery")
    assert "SMTPUTF8" not in m["mail_options"]
    # Nothing non-ASCII ever reached the next hop's envelope.
    assert all(m["mail_from"].isascii() and all(r.isascii() for r in m["rcpt_tos"])
               for m in sink.received())
    wait_for(lambda: d.queue() == [], what="empty queue")


def test_bounce_to_a_utf8_sender_goes_with_smtputf8(outguard, sinks):
    sink = sinks(smtputf8=True)
    bad = "bad@remote.example"
    sink.rules[bad] = "550 5.1.1 no such user"
    d = outguard(smarthost(sink))
    d.add_user(USER)  # sender_check "domain": any local part at example.com
    sender = "jörg@example.com"
    with login(d) as s:
        assert s.sendmail(sender, [bad], message("to bounce"), mail_options=["SMTPUTF8"]) == {}
    [b] = wait_for(lambda: sink.received(rcpt=sender), what="the bounce")
    assert b["mail_from"] == ""
    assert "SMTPUTF8" in b["mail_options"]
    # Its To field is the UTF-8 address itself (RFC 6532).
    dsn = email.message_from_string(b["content"].decode("utf-8"), policy=email.policy.default)
    assert dsn["To"].addresses[0].addr_spec == sender
    assert delivery_status(dsn)[1][0]["Action"] == "failed"
    wait_for(lambda: d.queue() == [], what="empty queue")


def test_released_quarantine_keeps_the_flag(outguard, sinks):
    sink = sinks(smtputf8=True)
    d = outguard(smarthost(sink), scan={"enabled": True})
    d.add_user(USER, auto_lock="off")
    gtube = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
    with login(d) as s:
        with_gtube = message("Grüße", body=f"Hallo\r\n{gtube}\r\n")
        try:
            s.sendmail(USER, [RCPT], with_gtube, mail_options=["SMTPUTF8"])
            raise AssertionError("GTUBE was accepted")
        except smtplib.SMTPDataError as e:
            assert e.smtp_code == 550
    [q] = d.api("GET", "/v1/quarantine")[1]["items"]
    d.cli("quarantine", "release", q["id"])
    [m] = wait_for(lambda: sink.received(rcpt=RCPT), what="delivery of the released message")
    assert "SMTPUTF8" in m["mail_options"]
