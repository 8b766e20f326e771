"""Resource exhaustion over real sockets: the memory budget for messages
in flight, the cap on unauthenticated sessions and the shorter limits
before AUTH (Outguard issue 12, items 4 and 11)."""

import socket

from conftest import Raw, login, send_message, wait_for

USER = "alice@example.com"


def connect_from(port, source_ip, timeout=10):
    s = socket.socket()
    s.settimeout(timeout)
    s.bind((source_ip, 0))
    s.connect(("127.0.0.1", port))
    r = Raw.__new__(Raw)
    r.sock, r.buf = s, b""
    return r


def try_login(port):
    try:
        return login(port, USER)
    except AssertionError:  # refused: the place is not free yet
        return None


def test_inflight_budget_defers_instead_of_growing(make_daemon):
    d = make_daemon(smtp={"max_inflight_bytes": 1_000_000})
    d.add_user(USER)
    a = login(d.submission, USER)
    b = login(d.submission, USER)
    # A declared SIZE is reserved at MAIL; the second does not fit.
    assert a.cmd(f"MAIL FROM:<{USER}> SIZE=700000")[0] == 250
    assert b.cmd(f"MAIL FROM:<{USER}> SIZE=700000")[1] == "452 4.3.1 Too much mail in progress, try again later"
    assert a.cmd("RSET")[0] == 250
    assert b.cmd(f"MAIL FROM:<{USER}> SIZE=700000")[0] == 250
    assert b.cmd("RSET")[0] == 250
    # Growth during DATA: a message bigger than the whole budget (but
    # under the size limit) is read to its end and deferred; the session
    # goes on, and the budget is whole again afterwards.
    big = "Subject: big\r\n\r\n" + ("y" * 98 + "\r\n") * 15000
    assert send_message(a, USER, ["x@remote.example"], body=big) == (
        452,
        "452 4.3.1 Too much mail in progress, try again later",
    )
    assert a.cmd("NOOP")[0] == 250
    assert send_message(a, USER, ["x@remote.example"])[0] == 250
    assert b.cmd(f"MAIL FROM:<{USER}> SIZE=900000")[0] == 250
    assert len(d.queue()) == 1
    a.close()
    b.close()


def test_unauthenticated_sessions_have_their_own_cap(make_daemon):
    d = make_daemon(smtp={"max_unauthenticated_sessions": 2, "max_sessions": 10, "max_sessions_per_ip": 10})
    d.add_user(USER)
    d.add_user("127.0.0.2", password=None)
    held = [Raw(d.submission) for _ in range(2)]
    for h in held:
        assert h.reply()[0] == 220
    extra = Raw(d.submission)
    assert extra.reply()[1] == "421 4.3.2 Too many unauthenticated connections, try again later"
    extra.close()
    # An IP-authorised client is authenticated from the start.
    ip_user = connect_from(d.submission, "127.0.0.2")
    assert ip_user.reply()[0] == 220
    assert ip_user.cmd("EHLO c.test")[0] == 250
    # A session that authenticates gives its place to the next client.
    held[0].close()
    r = wait_for(lambda: try_login(d.submission), what="the closed session's place")
    fresh = Raw(d.submission)
    assert fresh.reply()[0] == 220
    assert r.cmd("NOOP")[0] == 250
    for c in [fresh, r, ip_user, held[1]]:
        c.close()


def test_preauth_limits_are_shorter(make_daemon):
    d = make_daemon(smtp={"preauth_command_timeout_secs": 1, "preauth_timeout_secs": 3})
    d.add_user(USER)
    # Idle before AUTH: closed after the short per-command limit.
    idle = Raw(d.submission, timeout=20)
    assert idle.reply()[0] == 220
    assert idle.reply()[1] == "421 4.4.2 Idle timeout, closing connection"
    assert idle.closed()
    # Busy but never authenticating: closed at the pre-AUTH total.
    busy = Raw(d.submission, timeout=20)
    assert busy.reply()[0] == 220
    replies = []
    for _ in range(40):
        busy.send("NOOP\r\n")
        code, last, _ = busy.reply()
        replies.append(code)
        if code == 421:
            assert last == "421 4.4.2 Idle timeout, closing connection"
            break
        # Under the per-command limit, as a slow client would be.
        try:
            busy.sock.settimeout(0.5)
            data = busy.sock.recv(100)
            busy.buf += data
        except socket.timeout:
            pass
        finally:
            busy.sock.settimeout(20)
        if busy.buf.startswith(b"421"):
            assert busy.reply()[1] == "421 4.4.2 Idle timeout, closing connection"
            replies.append(421)
            break
    assert replies[-1] == 421 and replies.count(250) >= 2, replies
    # After AUTH the ordinary command timeout (300 s) applies.
    r = login(d.submission, USER)
    r.sock.settimeout(0.5)
    for _ in range(4):
        try:
            assert r.sock.recv(100) == b"", "nothing is said to an idle authenticated client"
        except socket.timeout:
            pass
    r.sock.settimeout(20)
    assert r.cmd("NOOP")[0] == 250
    r.close()
