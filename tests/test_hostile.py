"""The hostile SMTP battery (issue 8): malformed, oversized, out-of-order,
slow and flooding clients, and the classic open-relay tricks, over real
sockets against the real daemon. Each case checks the daemon's specific
reply, and after each case a fresh client must still get the banner and
an answer to NOOP. test_protocol.py has the basic edges; these are the
variants an attacker tries next.

Three daemons serve the cases, each started once for this module: the
main one (size and recipient bounds), a slow one (short timeouts, for
idle and slowloris clients) and a small one (low session caps, for
floods)."""

import base64
import socket
import ssl
import time

import pytest

from conftest import PASSWORD, Daemon, Raw, ham, login, send_message, tls_client_context, wait_for

USER = "alice@example.com"
MAX_SIZE = 1_000_000
# What a client may send: MAX_SIZE less the headroom kept for our Received
# header (512 + host name + a command line).
LIMIT = MAX_SIZE - (512 + len("outguard.test") + 512)
MAX_RCPTS = 100
QUEUED = "250 2.0.0 Ok: queued as "

CASES = []


def case(daemon="main"):
    """Registers a battery case run against the named daemon."""

    def register(fn):
        CASES.append(pytest.param(daemon, fn, id=fn.__name__))
        return fn

    return register


# --- the daemons ---

CONFIGS = {
    "main": dict(
        smtp={"max_message_size": MAX_SIZE, "max_recipients": MAX_RCPTS},
        # Bad AUTH cases must not get the test client's address blocked.
        auth={"max_failures": 100000, "max_account_failures": 100000},
    ),
    "slow": dict(
        smtp={"command_timeout_secs": 2, "data_timeout_secs": 2, "session_timeout_secs": 6},
        auth={"max_failures": 100000, "max_account_failures": 100000},
    ),
    "small": dict(smtp={"max_sessions_per_ip": 4, "max_sessions": 6}),
}


@pytest.fixture(scope="module")
def daemons(tmp_path_factory):
    started = {}

    def get(name):
        if name not in started:
            d = Daemon(tmp_path_factory.mktemp(f"hostile-{name}"), **CONFIGS[name]).start()
            d.add_user(USER)
            started[name] = d
        return started[name]

    yield get
    for d in started.values():
        d.stop()


def still_serving(d):
    """A fresh client gets the banner and an answer to NOOP."""

    def fresh():
        try:
            r = Raw(d.submission)
            try:
                return r.reply()[0] == 220 and r.cmd("NOOP")[0] == 250
            finally:
                r.close()
        except OSError:
            return False

    wait_for(fresh, timeout=20, what="a fresh client to be served")
    assert d.alive(), d.log()[-2000:]


@pytest.mark.parametrize("name,fn", CASES)
def test_hostile(daemons, name, fn):
    d = daemons(name)
    before = len(d.queue())
    queued = fn(d)
    # Only cases that say so may have queued mail.
    assert len(d.queue()) == before + (queued or 0)
    still_serving(d)


# --- helpers ---


def plain_ehlo(d):
    r = Raw(d.submission)
    assert r.reply()[0] == 220
    assert r.cmd("EHLO c.test")[0] == 250
    return r


def tls_ehlo(d):
    r = Raw(d.submissions, tls=True)
    assert r.reply()[0] == 220
    assert r.cmd("EHLO c.test")[0] == 250
    return r


def b64(s):
    return base64.b64encode(s.encode()).decode()


def plain_token(user=USER, pw=PASSWORD, authz=""):
    return b64(f"{authz}\0{user}\0{pw}")


def pipeline(r, commands, batch=500):
    """Sends the command lines pipelined, `batch` per write, reading each
    batch's replies before the next write. (Reading and writing one TLS
    socket from two threads at once is not safe in Python's ssl module.)"""
    replies = []
    for i in range(0, len(commands), batch):
        chunk = commands[i : i + batch]
        r.send("".join(chunk))
        replies += [r.reply()[1] for _ in chunk]
    return replies


def data_reply(r, body):
    """MAIL, RCPT and DATA from the logged-in user, then `body` (which
    ends with the terminator); the final reply."""
    assert r.cmd(f"MAIL FROM:<{USER}>")[0] == 250
    assert r.cmd("RCPT TO:<bob@remote.example>")[0] == 250
    assert r.cmd("DATA")[0] == 354
    r.send(body)
    return r.reply()[1]


def closed_within(r, seconds):
    """True once the server closes the connection (bounded wait)."""
    r.sock.settimeout(seconds)
    try:
        while True:
            chunk = r.sock.recv(4096)
            if not chunk:
                return True
    except (ConnectionError, ssl.SSLError):
        return True
    except socket.timeout:
        return False


def connect_from(port, source_ip, timeout=10):
    s = socket.socket()
    s.settimeout(timeout)
    s.bind((source_ip, 0))
    s.connect(("127.0.0.1", port))
    r = Raw.__new__(Raw)
    r.sock, r.buf = s, b""
    return r


# --- overlong lines ---


@case()
def overlong_command_line(d):
    r = plain_ehlo(d)
    assert r.cmd("NOOP " + "a" * 600)[1] == "500 5.5.2 Line too long"
    assert r.cmd("NOOP")[1] == "250 2.0.0 OK"


@case()
def command_line_at_and_past_the_limit(d):
    r = plain_ehlo(d)
    # 512 octets with CRLF is the longest command line (RFC 5321 4.5.3.1.4).
    assert r.cmd("NOOP " + "x" * 505)[1] == "250 2.0.0 OK"
    assert r.cmd("NOOP " + "x" * 506)[1] == "500 5.5.2 Line too long"


@case()
def megabyte_line_without_newline(d):
    r = Raw(d.submission)
    r.reply()
    r.send(b"A" * 1_000_000)
    r.send(b"\r\n")
    assert r.reply()[1] == "500 Line too long"
    assert r.cmd("EHLO c.test")[0] == 250


@case()
def overlong_auth_exchange_line(d):
    r = tls_ehlo(d)
    assert r.cmd("AUTH LOGIN")[1] == "334 VXNlcm5hbWU6"
    assert r.cmd("A" * 3000)[1] == "500 5.5.6 Authentication exchange line is too long"


@case()
def overlong_text_line_boundary(d):
    r = login(d.submission, USER)
    head = "Subject: long\r\n\r\n"
    assert data_reply(r, head + "y" * 998 + "\r\n.\r\n").startswith(QUEUED)
    assert data_reply(r, head + "y" * 999 + "\r\n.\r\n") == "550 5.6.0 Message has a line longer than 998 characters"
    return 1


# --- bare CR / LF, NUL, 8-bit ---


@case()
def bare_lf_ends_commands(d):
    # Tolerated for commands (many scripts send LF only); never in DATA.
    r = Raw(d.submission)
    r.reply()
    r.send("EHLO c.test\nNOOP\n")
    assert r.reply()[1] == "250 STARTTLS"
    assert r.reply()[1] == "250 2.0.0 OK"


@case()
def bare_cr_inside_command(d):
    r = plain_ehlo(d)
    assert r.cmd("NOOP\rRSET")[1] == "500 5.5.1 Command unrecognized"


@case()
def nul_in_command_before_ehlo(d):
    r = Raw(d.submission)
    r.reply()
    assert r.cmd("EHLO c\0.test")[1] == "500 NUL character in command"


@case()
def nul_in_mail_from(d):
    r = login(d.submission, USER)
    assert r.cmd(f"MAIL FROM:<{USER}>\0")[1] == "500 5.5.2 NUL character in command"
    assert r.cmd("RCPT TO:<bob@remote.example>")[1] == "503 5.5.1 Need MAIL command first"


@case()
def nul_in_message(d):
    r = login(d.submission, USER)
    assert data_reply(r, "Subject: x\r\n\r\nnul\0here\r\n.\r\n") == "550 5.6.0 Message contains NUL characters"


@case()
def bare_cr_in_message(d):
    r = login(d.submission, USER)
    assert data_reply(r, "Subject: x\r\n\r\nbare\rcr\r\n.\r\n") == (
        "550 5.6.0 Message contains a bare CR or LF; lines must end with CRLF"
    )


@case()
def lf_dot_crlf_does_not_end_data(d):
    # SMTP smuggling: "\n.\r\n" must not end the message, so the QUIT
    # after it is message text, not a command.
    r = login(d.submission, USER)
    reply = data_reply(r, "Subject: x\r\n\r\nfirst\n.\r\nQUIT\r\n.\r\n")
    assert reply == "550 5.6.0 Message contains a bare CR or LF; lines must end with CRLF"
    assert r.cmd("NOOP")[1] == "250 2.0.0 OK"


@case()
def cr_dot_cr_does_not_end_data(d):
    r = login(d.submission, USER)
    reply = data_reply(r, "Subject: x\r\n\r\nfirst\r.\rQUIT\r\n.\r\n")
    assert reply == "550 5.6.0 Message contains a bare CR or LF; lines must end with CRLF"
    assert r.cmd("NOOP")[1] == "250 2.0.0 OK"


@case()
def eight_bit_data_without_8bitmime(d):
    # Accepted and kept byte for byte (like Postfix): the MSA passes 8-bit
    # text on; delivery decides how to send it (docs/RELIABILITY.md).
    r = login(d.submission, USER)
    body = ham(subject="Grüße aus Köln")
    assert data_reply(r, body + ".\r\n").startswith(QUEUED)
    entry = d.queue()[-1]
    assert "Subject: Grüße aus Köln" in d.api("GET", "/v1/queue/" + entry["id"])[1]["headers"]
    return 1


@case()
def eight_bit_address_without_smtputf8(d):
    r = login(d.submission, USER)
    assert r.cmd(f"MAIL FROM:<{USER}>")[0] == 250
    # Refused (RFC 6531 3.5), and not echoed raw to a client that did
    # not ask for UTF-8.
    assert r.cmd("RCPT TO:<jürgen@remote.example>")[1] == (
        "553 5.6.7 Recipient address <j\\u{fc}rgen@remote.example> is not ASCII: "
        "use MAIL FROM:<...> SMTPUTF8"
    )


# --- pipelining ---


@case()
def ten_thousand_pipelined_noops(d):
    r = plain_ehlo(d)
    replies = pipeline(r, ["NOOP\r\n"] * 10_000)
    assert set(replies) == {"250 2.0.0 OK"}


@case()
def pipelined_garbage_past_the_error_limit(d):
    r = plain_ehlo(d)
    r.send(b"XYZZY\r\n" * 50)
    replies = [r.reply()[1] for _ in range(11)]
    assert replies == ["500 5.5.1 Command unrecognized"] * 10 + ["421 4.7.0 Too many errors, closing connection"]
    assert closed_within(r, 10)


@case()
def whole_transaction_in_one_write(d):
    r = login(d.submission, USER)
    group = f"MAIL FROM:<{USER}>\r\nRCPT TO:<bob@remote.example>\r\nDATA\r\n{ham()}.\r\nQUIT\r\n"
    r.send(group)
    replies = [r.reply()[1] for _ in range(5)]
    assert replies[:3] == ["250 2.1.0 Sender OK", "250 2.1.5 Recipient OK", "354 End data with <CR><LF>.<CR><LF>"]
    assert replies[3].startswith(QUEUED)
    assert replies[4] == "221 2.0.0 Bye"
    return 1


# --- commands in the wrong order ---


@case()
def rcpt_before_mail(d):
    r = login(d.submission, USER)
    assert r.cmd("RCPT TO:<bob@remote.example>")[1] == "503 5.5.1 Need MAIL command first"


@case()
def data_before_mail(d):
    r = login(d.submission, USER)
    assert r.cmd("DATA")[1] == "503 5.5.1 Need MAIL command first"


@case()
def data_before_rcpt(d):
    r = login(d.submission, USER)
    assert r.cmd(f"MAIL FROM:<{USER}>")[0] == 250
    assert r.cmd("DATA")[1] == "503 5.5.1 Need RCPT command first"
    # The message text that follows is read as commands, and refused.
    assert r.cmd("Subject: hello")[1] == "500 5.5.1 Command unrecognized"


@case()
def mail_before_ehlo(d):
    r = Raw(d.submissions, tls=True)
    r.reply()
    assert r.cmd(f"MAIL FROM:<{USER}>")[1] == "503 Send EHLO/HELO first"


@case()
def nested_mail(d):
    r = login(d.submission, USER)
    assert r.cmd(f"MAIL FROM:<{USER}>")[0] == 250
    assert r.cmd(f"MAIL FROM:<{USER}>")[1] == "503 5.5.1 Nested MAIL command"


@case()
def auth_before_ehlo(d):
    r = Raw(d.submissions, tls=True)
    r.reply()
    assert r.cmd("AUTH PLAIN " + plain_token())[1] == "503 Send EHLO first"


@case()
def auth_during_transaction(d):
    r = login(d.submission, USER)
    assert r.cmd(f"MAIL FROM:<{USER}>")[0] == 250
    assert r.cmd("AUTH PLAIN " + plain_token())[1] == "503 5.5.1 Already authenticated"


@case()
def second_auth_after_login(d):
    r = login(d.submissions, USER, implicit=True)
    assert r.cmd("AUTH LOGIN")[1] == "503 5.5.1 Already authenticated"


@case()
def starttls_before_ehlo(d):
    r = Raw(d.submission)
    r.reply()
    assert r.cmd("STARTTLS")[1] == "503 Send EHLO first"


@case()
def bdat_is_not_offered(d):
    r = plain_ehlo(d)
    _, _, lines = r.cmd("EHLO c.test")
    assert not any("CHUNKING" in l for l in lines)
    # The chunk that follows is not taken as message data but as a command.
    r.send("BDAT 5 LAST\r\nhello\r\n")
    assert r.reply()[1] == "502 5.5.1 Command not implemented"
    assert r.reply()[1] == "500 5.5.1 Command unrecognized"


# --- recipients, headers and size ---


@case()
def ten_thousand_recipients(d):
    r = login(d.submission, USER)
    assert r.cmd(f"MAIL FROM:<{USER}>")[0] == 250
    replies = pipeline(r, [f"RCPT TO:<r{i}@remote.example>\r\n" for i in range(10_000)])
    assert replies[:MAX_RCPTS] == ["250 2.1.5 Recipient OK"] * MAX_RCPTS
    assert set(replies[MAX_RCPTS:]) == {f"452 4.5.3 Too many recipients (at most {MAX_RCPTS} per message)"}
    assert r.cmd("DATA")[0] == 354
    r.send(ham() + ".\r\n")
    assert r.reply()[1].startswith(QUEUED)
    assert len(d.queue()[-1]["recipients"]) == MAX_RCPTS
    return 1


@case()
def huge_header_section(d):
    r = login(d.submission, USER)
    headers = "".join(f"X-Filler-{i}: {'h' * 60}\r\n" for i in range(3000))
    reply = data_reply(r, headers + ham() + ".\r\n")
    assert reply.startswith(QUEUED), reply
    return 1


@case()
def one_header_folded_thousands_of_times(d):
    r = login(d.submission, USER)
    folded = "X-Folded: start" + "".join(f"\r\n\tpart {i}" for i in range(5000)) + "\r\n"
    reply = data_reply(r, folded + ham() + ".\r\n")
    assert reply.startswith(QUEUED), reply
    return 1


@case()
def declared_size_over_the_limit(d):
    r = login(d.submission, USER)
    assert r.cmd(f"MAIL FROM:<{USER}> SIZE={LIMIT + 1}")[1] == (
        f"552 5.3.4 Message size exceeds the limit of {LIMIT} octets"
    )


@case()
def declared_size_that_overflows(d):
    r = login(d.submission, USER)
    assert r.cmd(f"MAIL FROM:<{USER}> SIZE={'9' * 25}")[1] == (
        f"552 5.3.4 Message size exceeds the limit of {LIMIT} octets"
    )


@case()
def message_past_size(d):
    r = login(d.submission, USER)
    body = "Subject: big\r\n\r\n" + ("z" * 98 + "\r\n") * (MAX_SIZE // 100 + 1000) + ".\r\n"
    assert data_reply(r, body) == f"552 5.3.4 Message exceeds the maximum size of {LIMIT} octets"
    assert r.cmd("NOOP")[1] == "250 2.0.0 OK"


# --- AUTH ---


@case()
def auth_invalid_base64(d):
    r = tls_ehlo(d)
    assert r.cmd("AUTH PLAIN !!!not-base64")[1] == "501 5.5.2 Invalid base64 data"


@case()
def auth_login_invalid_base64_in_exchange(d):
    r = tls_ehlo(d)
    assert r.cmd("AUTH LOGIN")[1] == "334 VXNlcm5hbWU6"
    assert r.cmd("%%%")[1] == "501 5.5.2 Invalid base64 data"


@case()
def auth_wrong_mechanisms(d):
    r = tls_ehlo(d)
    for mech in ["CRAM-MD5", "DIGEST-MD5", "GSSAPI", "NTLM", "XOAUTH2 dG9rZW4=", "SCRAM-SHA-256"]:
        assert r.cmd(f"AUTH {mech}")[1] == "504 5.5.4 Unrecognized authentication type", mech


@case()
def auth_without_mechanism(d):
    r = tls_ehlo(d)
    assert r.cmd("AUTH")[1] == "501 5.5.4 Syntax: AUTH mechanism [initial-response]"


@case()
def auth_plain_cancelled(d):
    r = tls_ehlo(d)
    assert r.cmd("AUTH PLAIN")[1] == "334 "
    assert r.cmd("*")[1] == "501 5.0.0 Authentication cancelled"
    assert r.cmd("AUTH PLAIN " + plain_token())[1] == "235 2.7.0 Authentication successful"


@case()
def auth_login_cancelled_at_password(d):
    r = tls_ehlo(d)
    assert r.cmd("AUTH LOGIN")[1] == "334 VXNlcm5hbWU6"
    assert r.cmd(b64(USER))[1] == "334 UGFzc3dvcmQ6"
    assert r.cmd("*")[1] == "501 5.0.0 Authentication cancelled"


@case()
def auth_plain_malformed(d):
    r = tls_ehlo(d)
    assert r.cmd("AUTH PLAIN " + b64("no-nul-separators"))[1] == (
        "501 5.5.2 Malformed authentication data: PLAIN needs authzid NUL authcid NUL password"
    )
    assert r.cmd("AUTH PLAIN " + plain_token(authz="bob@example.com"))[1] == (
        "501 5.5.2 Malformed authentication data: authorisation identity differs"
    )


@case()
def auth_in_plaintext(d):
    r = plain_ehlo(d)
    assert r.cmd("AUTH LOGIN " + b64(USER))[1] == (
        "538 5.7.11 Encryption required for requested authentication mechanism"
    )


# --- STARTTLS and TLS ---


@case()
def starttls_twice(d):
    r = plain_ehlo(d)
    assert r.cmd("STARTTLS")[1] == "220 2.0.0 Ready to start TLS"
    r.starttls()
    assert r.cmd("EHLO c.test")[0] == 250
    assert r.cmd("STARTTLS")[1] == "503 5.5.1 TLS already active"


@case()
def starttls_on_implicit_tls(d):
    r = tls_ehlo(d)
    assert r.cmd("STARTTLS")[1] == "503 5.5.1 TLS already active"


@case()
def starttls_pipelined_plaintext_is_discarded(d):
    r = plain_ehlo(d)
    # Injected plaintext after STARTTLS must never count as sent over TLS.
    r.send(f"STARTTLS\r\nEHLO evil.test\r\nAUTH PLAIN {plain_token()}\r\nMAIL FROM:<{USER}>\r\n")
    assert r.reply()[1] == "220 2.0.0 Ready to start TLS"
    r.starttls()
    # No EHLO was taken over TLS (replies carry no enhanced codes yet) and
    # nobody is logged in.
    assert r.cmd(f"MAIL FROM:<{USER}>")[1] == "503 Send EHLO/HELO first"
    assert r.cmd("EHLO c.test")[0] == 250
    assert r.cmd(f"MAIL FROM:<{USER}>")[1] == "530 5.7.0 Authentication required"


@case()
def tls_garbage_on_465(d):
    s = socket.create_connection(("127.0.0.1", d.submissions), timeout=10)
    s.sendall(b"\x16\x03\x01\x02\x00" + bytes(range(256)) * 2)
    r = Raw.__new__(Raw)
    r.sock, r.buf = s, b""
    assert closed_within(r, 10)
    assert r.buf == b""


@case()
def plaintext_smtp_on_465(d):
    s = socket.create_connection(("127.0.0.1", d.submissions), timeout=10)
    s.sendall(b"EHLO c.test\r\nMAIL FROM:<alice@example.com>\r\n")
    s.settimeout(10)
    data = b""
    try:
        while chunk := s.recv(4096):
            data += chunk
    except (ConnectionError, socket.timeout):
        pass
    assert not data.startswith(b"220") and b"250" not in data
    s.close()


@case()
def tls_garbage_sniffed_on_587(d):
    # A first byte of 0x16 makes 587 expect a ClientHello.
    s = socket.create_connection(("127.0.0.1", d.submission), timeout=10)
    s.sendall(b"\x16" + b"\xff" * 300)
    r = Raw.__new__(Raw)
    r.sock, r.buf = s, b""
    assert closed_within(r, 10)


@case()
def garbage_after_starttls(d):
    r = plain_ehlo(d)
    assert r.cmd("STARTTLS")[1] == "220 2.0.0 Ready to start TLS"
    r.send(b"this is not a ClientHello\r\n" * 10)
    assert closed_within(r, 10)


# --- timeouts: idle and slowloris ---


@case("slow")
def idle_after_banner(d):
    r = Raw(d.submission, timeout=20)
    r.reply()
    assert r.reply()[1] == "421 4.4.2 Idle timeout, closing connection"
    assert closed_within(r, 10)


@case("slow")
def idle_in_data(d):
    r = login(d.submission, USER)
    assert r.cmd(f"MAIL FROM:<{USER}>")[0] == 250
    assert r.cmd("RCPT TO:<bob@remote.example>")[0] == 250
    assert r.cmd("DATA")[0] == 354
    r.send("Subject: half a message\r\n")
    r.sock.settimeout(20)
    assert r.reply()[1] == "421 4.4.2 Idle timeout, closing connection"
    assert closed_within(r, 10)


@case("slow")
def idle_in_auth_exchange(d):
    r = Raw(d.submissions, tls=True, timeout=20)
    r.reply()
    r.cmd("EHLO c.test")
    assert r.cmd("AUTH LOGIN")[1] == "334 VXNlcm5hbWU6"
    assert r.reply()[1] == "421 4.4.2 Idle timeout, closing connection"


def drip(r, text, interval, limit):
    """Sends `text` one byte per `interval` until the server hangs up;
    returns the seconds it took (at most `limit`)."""
    start = time.monotonic()
    r.sock.settimeout(interval)
    i = 0
    while time.monotonic() - start < limit:
        try:
            r.sock.sendall(text[i % len(text) : i % len(text) + 1])
            i += 1
            if r.sock.recv(4096) == b"":
                break
        except socket.timeout:
            continue
        except (ConnectionError, ssl.SSLError, OSError):
            break
    return time.monotonic() - start


@case("slow")
def slowloris_command(d):
    # One byte every half second keeps resetting the idle timer; the
    # session time limit (6 s here) still ends it.
    r = Raw(d.submission)
    r.reply()
    took = drip(r, b"NOOP ", 0.5, 40)
    assert took < 40, "the daemon never hung up on a slowloris client"


@case("slow")
def slowloris_data(d):
    r = login(d.submission, USER)
    assert r.cmd(f"MAIL FROM:<{USER}>")[0] == 250
    assert r.cmd("RCPT TO:<bob@remote.example>")[0] == 250
    assert r.cmd("DATA")[0] == 354
    took = drip(r, b"slow text ", 0.5, 40)
    assert took < 40, "the daemon never hung up on a slowloris client"


@case("slow")
def silent_tls_client(d):
    # Connects to 465 and never starts the handshake.
    s = socket.create_connection(("127.0.0.1", d.submissions), timeout=30)
    r = Raw.__new__(Raw)
    r.sock, r.buf = s, b""
    assert closed_within(r, 30)


@case("slow")
def truncated_client_hello(d):
    s = socket.create_connection(("127.0.0.1", d.submissions), timeout=30)
    s.sendall(b"\x16\x03\x01\x00\xc8\x01\x00")  # promises 200 bytes, sends 2
    r = Raw.__new__(Raw)
    r.sock, r.buf = s, b""
    assert closed_within(r, 30)


# --- floods ---


@case("small")
def flood_past_the_per_ip_cap(d):
    held = [Raw(d.submission) for _ in range(4)]
    try:
        for h in held:
            assert h.reply()[0] == 220
        for _ in range(30):
            extra = Raw(d.submission)
            assert extra.reply()[1] == "421 4.7.0 Too many connections from your address, try again later"
            extra.close()
        # Another address is still served.
        other = connect_from(d.submission, "127.0.0.2")
        assert other.reply()[0] == 220
        other.close()
    finally:
        for h in held:
            h.close()


@case("small")
def flood_past_the_global_cap(d):
    held = [connect_from(d.submission, "127.0.0.3") for _ in range(4)]
    held += [connect_from(d.submission, "127.0.0.4") for _ in range(2)]
    try:
        for h in held:
            assert h.reply()[0] == 220
        for ip in ["127.0.0.5", "127.0.0.6"]:
            extra = connect_from(d.submission, ip)
            assert extra.reply()[1] == "421 4.3.2 Too many connections, try again later"
            extra.close()
    finally:
        for h in held:
            h.close()


@case("small")
def flood_on_465(d):
    held = [Raw(d.submissions, tls=True) for _ in range(4)]
    try:
        for h in held:
            assert h.reply()[0] == 220
        # Over the cap on 465 the connection is closed before TLS: no banner.
        for _ in range(10):
            with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
                Raw(d.submissions, tls=True).reply()
    finally:
        for h in held:
            h.close()


# --- open relay ---


def relay_attempt(d, port, tls, starttls=False):
    r = Raw(port, tls=tls)
    r.reply()
    r.cmd("EHLO c.test")
    if starttls:
        assert r.cmd("STARTTLS")[0] == 220
        r.starttls()
        r.cmd("EHLO c.test")
    assert r.cmd(f"MAIL FROM:<{USER}>")[1] == "530 5.7.0 Authentication required"
    assert r.cmd("RCPT TO:<victim@other.example>")[1] == "503 5.5.1 Need MAIL command first"
    assert r.cmd("DATA")[1] == "503 5.5.1 Need MAIL command first"


@case()
def unauthenticated_relay_on_587(d):
    relay_attempt(d, d.submission, False)


@case()
def unauthenticated_relay_after_starttls(d):
    relay_attempt(d, d.submission, False, starttls=True)


@case()
def unauthenticated_relay_on_465(d):
    relay_attempt(d, d.submissions, True)


@case()
def unauthenticated_null_sender(d):
    r = plain_ehlo(d)
    assert r.cmd("MAIL FROM:<>")[1] == "530 5.7.0 Authentication required"


RELAY_RCPTS = [
    ("percent_hack", "victim%other.example@remote.example",
     "553 5.1.3 Recipient address <victim%other.example@remote.example> not accepted: %-routing is not accepted"),
    ("source_route", "@remote.example:victim@other.example", "553 5.1.3 Source routes are not accepted"),
    ("source_route_list", "@a.example,@b.example:victim@other.example", "553 5.1.3 Source routes are not accepted"),
    ("quoted_local_part_with_at", '"victim@other.example"@remote.example',
     "553 5.1.3 Recipient address <victim@other.example@remote.example> not accepted: only one @ is allowed"),
    ("quoted_local_part_with_space", '"john doe"@remote.example',
     "553 5.1.3 Recipient address <john doe@remote.example> not accepted: spaces and control characters are not accepted"),
    ("double_at", "victim@other.example@remote.example", "501 5.1.3 Bad recipient address syntax"),
    ("bang_path", "other.example!victim", "501 5.1.3 Bad recipient address syntax"),
    ("bang_path_at_domain", "other.example!victim@remote.example",
     "553 5.1.3 Recipient address <other.example!victim@remote.example> not accepted: !-paths are not accepted"),
    ("unqualified", "victim", "501 5.1.3 Bad recipient address syntax"),
    ("single_label_host", "victim@localhost",
     "553 5.1.3 Recipient address <victim@localhost> not accepted: the domain is not a valid DNS domain name"),
    ("address_literal", "victim@[192.0.2.1]", "501 5.1.3 Bad recipient address syntax"),
]


def _relay_rcpt_case(name, address, expected):
    def fn(d):
        r = login(d.submission, USER)
        assert r.cmd(f"MAIL FROM:<{USER}>")[0] == 250
        assert r.cmd(f"RCPT TO:<{address}>")[1] == expected
        assert r.cmd("DATA")[1] == "503 5.5.1 Need RCPT command first"

    fn.__name__ = "relay_" + name
    case()(fn)


for _name, _address, _expected in RELAY_RCPTS:
    _relay_rcpt_case(_name, _address, _expected)


RELAY_SENDERS = [
    ("other_domain", "ceo@other.example",
     "553 5.7.1 Sender address <ceo@other.example> is not owned by user alice@example.com"),
    ("quoted_at", '"ceo@other.example"@example.com',
     "553 5.1.7 Sender address <ceo@other.example@example.com> not accepted: only one @ is allowed"),
    ("source_route", "@example.com:ceo@other.example", "553 5.1.7 Source routes are not accepted"),
    ("percent_hack", "ceo%other.example@example.com",
     "553 5.1.7 Sender address <ceo%other.example@example.com> not accepted: %-routing is not accepted"),
]


def _sender_case(name, address, expected):
    def fn(d):
        r = login(d.submission, USER)
        assert r.cmd(f"MAIL FROM:<{address}>")[1] == expected
        assert r.cmd("RCPT TO:<bob@remote.example>")[1] == "503 5.5.1 Need MAIL command first"

    fn.__name__ = "spoofed_sender_" + name
    case()(fn)


for _name, _address, _expected in RELAY_SENDERS:
    _sender_case(_name, _address, _expected)
