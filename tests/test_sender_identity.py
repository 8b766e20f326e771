"""The header From (every address) and Sender must belong to the
authenticated user (`header_from_check` = exact / domain / off, like
`sender_check` for the envelope), over real SMTP with smtplib."""

import smtplib

import pytest

from conftest import PASSWORD, tls_client_context

USER = "alice@example.com"


def message(from_, sender=None):
    head = f"From: {from_}\r\n" + (f"Sender: {sender}\r\n" if sender else "")
    return (head + "To: bob@remote.example\r\nSubject: Minutes of Tuesday meeting\r\n"
            "Date: Tue, 01 Dec 2026 10:00:00 +0000\r\nMessage-ID: <m1@example.com>\r\n\r\n"
            "Hi Bob,\r\n\r\nthe notes from the meeting are below.\r\n\r\nAlice\r\n").encode()


def submit(d, msg, envelope=USER):
    """Returns (code, text) of the final reply."""
    with smtplib.SMTP("127.0.0.1", d.submission, timeout=30) as s:
        s.starttls(context=tls_client_context())
        s.login(USER, PASSWORD)
        try:
            s.sendmail(envelope, ["bob@remote.example"], msg)
        except smtplib.SMTPDataError as e:
            return e.smtp_code, e.smtp_error.decode()
        return 250, ""


@pytest.fixture
def d(daemon):
    daemon.add_user(USER)
    return daemon


def test_domain_mode_is_the_default(d):
    assert d.api("GET", "/v1/settings")[1]["header_from_check"] == "domain"
    assert submit(d, message("Alice <alice@example.com>"))[0] == 250
    assert submit(d, message("Bob <bob@example.com>"))[0] == 250
    code, text = submit(d, message("The CEO <ceo@bank.example>"))
    assert code == 550 and text.startswith("5.7.1"), text
    assert "<ceo@bank.example> is not owned by user alice@example.com" in text
    # Every address of the From counts, not just the first.
    code, text = submit(d, message("alice@example.com, ceo@bank.example"))
    assert code == 550 and "ceo@bank.example" in text, text
    # Nothing refused was queued.
    assert len(d.queue()) == 2


def test_sender_header_is_checked(d):
    code, text = submit(d, message("alice@example.com", sender="ceo@bank.example"))
    assert code == 550 and text.startswith("5.7.1") and "Sender header" in text, text
    assert submit(d, message("alice@example.com", sender="bob@example.com"))[0] == 250


def test_exact_mode(d):
    d.settings(header_from_check="exact")
    assert submit(d, message("alice@example.com"))[0] == 250
    code, text = submit(d, message("bob@example.com"))
    assert code == 550 and "bob@example.com" in text, text


def test_off_mode(d):
    d.settings(header_from_check="off")
    assert submit(d, message("ceo@bank.example", sender="x@elsewhere.example"))[0] == 250


def test_ip_user_without_a_domain_sends_as_nobody(d):
    d.add_user("127.0.0.1", password=None)

    def plain(envelope, msg):
        with smtplib.SMTP("127.0.0.1", d.plain, timeout=30) as s:
            try:
                s.sendmail(envelope, ["bob@remote.example"], msg)
            except smtplib.SMTPSenderRefused as e:
                return e.smtp_code, e.smtp_error.decode()
            except smtplib.SMTPDataError as e:
                return e.smtp_code, e.smtp_error.decode()
            return 250, ""

    code, text = plain("anyone@example.org", message("anyone@example.org"))
    assert code == 550 and text.startswith("5.7.1") and "no domain" in text, text
    # The admin's choice: with the envelope check off, the header still binds.
    d.settings(sender_check="off")
    code, text = plain("anyone@example.org", message("anyone@example.org"))
    assert code == 550 and text.startswith("5.7.1") and "no domain" in text, text
    d.settings(header_from_check="off")
    assert plain("anyone@example.org", message("anyone@example.org"))[0] == 250
    # Given a domain, it sends as that domain only.
    d.settings(sender_check="domain", header_from_check="domain")
    d.cli("user", "del", "127.0.0.1")
    d.add_user("127.0.0.1", password=None, domain="example.org")
    assert plain("anyone@example.org", message("anyone@example.org"))[0] == 250
    code, text = plain("anyone@example.org", message("ceo@bank.example"))
    assert code == 550, text


def test_setting_is_validated(d):
    r = d.cli("settings", "set", "header_from_check=sometimes", check=False)
    assert r.returncode != 0 and "sometimes" in r.stderr, r.stderr
    assert d.api("GET", "/v1/settings")[1]["header_from_check"] == "domain"
