"""DSN (RFC 3461) end to end: smtplib submits with RET/ENVID and
NOTIFY/ORCPT; the daemon passes them on to a next hop that announces DSN,
and honours them in its own notifications when the next hop does not
(NOTIFY=NEVER: nothing; SUCCESS: a "relayed" notice; RET=FULL: the whole
message back). The next hop is a real SMTP server on loopback; bounces
are parsed with Python's email package."""

import email
import email.policy
import smtplib


from .conftest import USER
from .delivery_support import (
    PASSWORD, delivery_status, entry, health, message, original_headers, tls_client_context, wait_for,
)
from .delivery_support import smarthost_of as smarthost


def submit(d, mail_options, rcpts, msg):
    """rcpts: [(address, [options])]. Returns the queue id."""
    with smtplib.SMTP("127.0.0.1", d.submission, timeout=60) as s:
        s.starttls(context=tls_client_context())
        s.ehlo()
        assert s.has_extn("dsn")
        s.login(USER, PASSWORD)
        code, text = s.mail(USER, mail_options)
        assert code == 250, text
        for addr, opts in rcpts:
            code, text = s.rcpt(addr, opts)
            assert code == 250, (addr, text)
        code, text = s.data(msg)
        assert code == 250, text
        return text.decode().rsplit(" ", 1)[1]


def parsed(m):
    return email.message_from_bytes(m["content"], policy=email.policy.compat32)


def test_dsn_parameters_are_passed_to_a_hop_that_speaks_dsn(outguard, hops):
    hop = hops(["8BITMIME", "DSN", "ENHANCEDSTATUSCODES"])
    d = outguard(smarthost(hop))
    d.add_user(USER)
    qid = submit(d, ["RET=HDRS", "ENVID=QQ+2B314159"], [
        ("bob@remote.example", ["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;Bob+2BTag@Example.ORG"]),
        ("carol@remote.example", ["NOTIFY=NEVER"]),
        ("dave@remote.example", []),
    ], message("dsn passed on"))
    [m] = wait_for(lambda: hop.received(sender=USER), what="delivery")
    assert m["mail_line"].endswith(" RET=HDRS ENVID=QQ+2B314159")
    assert m["rcpt_lines"] == [
        "RCPT TO:<bob@remote.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Bob+2BTag@Example.ORG",
        "RCPT TO:<carol@remote.example> NOTIFY=NEVER",
        "RCPT TO:<dave@remote.example>",
    ]
    wait_for(lambda: entry(d, qid) is None, what="entry to leave the queue")
    # The next hop took on NOTIFY=SUCCESS: no "relayed" notice from us
    # (it would have been queued in the same commit as the delivery).
    assert health(d)["dsn_queued"] == 0


def test_own_bounce_honours_notify_orcpt_envid_and_ret_full(outguard, hops):
    hop = hops(["8BITMIME", "ENHANCEDSTATUSCODES"])  # no DSN
    d = outguard(smarthost(hop))
    d.add_user(USER)
    hop.rules["fail@remote.example"] = "550 5.1.1 <fail@remote.example>: no such user"
    hop.rules["never@remote.example"] = "550 5.1.1 <never@remote.example>: no such user"
    hop.rules["successonly@remote.example"] = "550 5.1.1 <successonly@remote.example>: no such user"
    qid = submit(d, ["RET=FULL", "ENVID=ENV-123"], [
        ("fail@remote.example", ["NOTIFY=FAILURE", "ORCPT=rfc822;Orig@Example.ORG"]),
        ("never@remote.example", ["NOTIFY=NEVER"]),
        ("successonly@remote.example", ["NOTIFY=SUCCESS"]),
        ("ok@remote.example", ["NOTIFY=SUCCESS"]),
        ("plain@remote.example", []),
    ], message("notify test"))
    wait_for(lambda: entry(d, qid) is None, what="entry to leave the queue")
    [bounce] = wait_for(lambda: hop.received(sender=""), what="the notification")
    assert bounce["rcpt_tos"] == [USER]
    dsn = parsed(bounce)
    assert dsn["Subject"] == "Undelivered Mail Returned to Sender"
    per_message, per_rcpt = delivery_status(dsn)
    assert per_message["Original-Envelope-Id"] == "ENV-123"
    by_rcpt = {f["Final-Recipient"]: f for f in per_rcpt}
    # NEVER and SUCCESS-only failures are not reported; plain (no NOTIFY)
    # was delivered, so nothing either.
    assert sorted(by_rcpt) == ["rfc822; fail@remote.example", "rfc822; ok@remote.example"]
    f = by_rcpt["rfc822; fail@remote.example"]
    assert (f["Action"], f["Status"], f["Original-Recipient"]) == ("failed", "5.1.1", "rfc822; Orig@Example.ORG")
    ok = by_rcpt["rfc822; ok@remote.example"]
    assert (ok["Action"], ok["Status"]) == ("relayed", "2.0.0")
    assert ok["Remote-MTA"] == "dns; 127.0.0.1"
    # RET=FULL: the whole message comes back as message/rfc822.
    [returned] = [p for p in dsn.get_payload() if p.get_content_type() == "message/rfc822"]
    [original] = returned.get_payload()
    assert original["Subject"] == "notify test"
    assert "A line." in original.get_payload()


def test_ret_hdrs_returns_only_the_header_and_success_alone_is_relayed(outguard, hops):
    hop = hops(["ENHANCEDSTATUSCODES"])
    d = outguard(smarthost(hop))
    d.add_user(USER)
    hop.rules["fail@remote.example"] = "550 5.1.1 no such user"
    submit(d, ["RET=HDRS"], [("fail@remote.example", [])], message("hdrs only"))
    [bounce] = wait_for(lambda: hop.received(sender=""), what="the bounce")
    dsn = parsed(bounce)
    per_message, [f] = delivery_status(dsn)
    assert "Original-Envelope-Id" not in per_message
    assert "Original-Recipient" not in f
    assert "Subject: hdrs only" in original_headers(dsn)
    assert "A line." not in bounce["content"].decode()

    submit(d, [], [("ok@remote.example", ["NOTIFY=SUCCESS,DELAY"])], message("relayed"))
    wait_for(lambda: len(hop.received(sender="")) == 2, what="the relay notice")
    notice = parsed(hop.received(sender="")[1])
    assert notice["Subject"] == "Successful Mail Delivery Report"
    _, [f] = delivery_status(notice)
    assert (f["Final-Recipient"], f["Action"], f["Status"]) == ("rfc822; ok@remote.example", "relayed", "2.0.0")


def test_bad_dsn_parameters_are_refused(outguard, hops):
    hop = hops([])
    d = outguard(smarthost(hop))
    d.add_user(USER)
    with smtplib.SMTP("127.0.0.1", d.submission, timeout=60) as s:
        s.starttls(context=tls_client_context())
        s.login(USER, PASSWORD)
        # A control character in ENVID (xtext "+0A") cannot go into a report.
        code, _ = s.mail(USER, ["ENVID=a+0Ab"])
        assert code == 501
        code, _ = s.mail(USER, ["RET=FULL"])
        assert code == 250
        code, _ = s.rcpt("x@remote.example", ["NOTIFY=NEVER,SUCCESS"])
        assert code // 100 == 5
        code, _ = s.rcpt("x@remote.example", ["ORCPT=rfc822;a+0Db@example.org"])
        assert code == 501
        code, _ = s.rcpt("x@remote.example", ["NOTIFY=DELAY"])
        assert code == 250
