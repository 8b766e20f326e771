"""Login throttling over real SMTP + TLS with smtplib: failures count per
address and per account, a good login of one's own does not wipe the
guesses made against a colleague, concurrent guesses are reserved before
any hash result, and an account under attack is reported to the admin."""

import base64
import smtplib
import threading

from conftest import PASSWORD, tls_client_context

ME = "me@example.com"
COLLEAGUE = "colleague@example.com"


def token(user, pw):
    return "PLAIN " + base64.b64encode(f"\0{user}\0{pw}".encode()).decode()


def connect(d, source="127.0.0.1"):
    s = smtplib.SMTP_SSL("127.0.0.1", d.submissions, context=tls_client_context(),
                         timeout=60, source_address=(source, 0))
    s.ehlo("client.test")
    return s


def attempt(d, user, pw, source="127.0.0.1"):
    """One AUTH on a fresh connection: the reply code (0: dropped)."""
    s = connect(d, source)
    try:
        code, _ = s.docmd("AUTH", token(user, pw))
    except smtplib.SMTPServerDisconnected:
        code = 0
    try:
        s.close()
    except OSError:
        pass
    return code


def test_own_login_does_not_reset_guesses_on_a_colleague(make_daemon):
    d = make_daemon(auth={"max_failures": 5})
    d.add_user(ME)
    d.add_user(COLLEAGUE, password="colleagues-secret-pw")
    evaluated = 0
    for _ in range(6):
        for _ in range(4):
            code = attempt(d, COLLEAGUE, "guess-" + str(evaluated))
            assert code in (535, 421), code
            evaluated += code == 535
        attempt(d, ME, PASSWORD)
    # The fifth failure blocks the address; on main a good login in
    # between cleared the count and all 24 guesses were checked.
    assert evaluated == 5
    assert attempt(d, COLLEAGUE, "one-more") == 421


def test_concurrent_guesses_count_before_the_hash(make_daemon):
    d = make_daemon(auth={"max_failures": 5})
    d.add_user(COLLEAGUE, password="colleagues-secret-pw")
    n = 16
    sessions = [connect(d) for _ in range(n)]
    start = threading.Barrier(n)
    codes = []

    def guess(i, s):
        start.wait()
        try:
            codes.append(s.docmd("AUTH", token(COLLEAGUE, f"guess-{i}"))[0])
        except smtplib.SMTPServerDisconnected:
            codes.append(0)

    threads = [threading.Thread(target=guess, args=(i, s)) for i, s in enumerate(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for s in sessions:
        try:
            s.close()
        except OSError:
            pass
    assert len(codes) == n
    # Five evaluated (535), the rest refused before hashing (421).
    assert codes.count(535) == 5, codes
    assert codes.count(421) == n - 5, codes


def test_account_under_attack_is_refused_to_strangers_and_reported(make_daemon):
    d = make_daemon(auth={"max_failures": 100, "max_account_failures": 6})
    d.settings(admin_address="admin@example.com")
    d.add_user(ME)
    # The owner logs in from home first: that address stays welcome.
    assert attempt(d, ME, PASSWORD) == 235
    # Guesses spread over many addresses (127.0.0.0/8 is all loopback).
    codes = [attempt(d, ME, f"guess-{i}", source=f"127.0.0.{10 + i}") for i in range(8)]
    assert codes[:6] == [535] * 6, codes
    assert codes[6:] == [454, 454], codes
    assert attempt(d, ME, PASSWORD, source="127.0.0.99") == 454
    assert attempt(d, ME, PASSWORD) == 235
    d.wait_log("account under attack")
    status, dash = d.api("GET", "/v1/dashboard")
    assert status == 200
    assert dash["auth_accounts_under_attack"] == 1
    assert dash["auth_account_blocks"] == 1
    notices = [m for m in d.queue() if m["recipients"][0]["address"] == "admin@example.com"]
    assert len(notices) == 1, d.queue()
