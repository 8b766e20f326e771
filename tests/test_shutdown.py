"""Graceful shutdown: on SIGTERM the daemon stops accepting, tells idle
sessions 421 4.3.2, lets a message under way finish with its reply (and
keeps it), then exits."""

import signal

from conftest import ham, login

USER = "alice@example.com"


def test_sigterm_drains_sessions(daemon):
    daemon.add_user(USER)
    idle = login(daemon.submission, USER)
    busy = login(daemon.submissions, USER, implicit=True)
    assert busy.cmd(f"MAIL FROM:<{USER}>")[0] == 250
    assert busy.cmd("RCPT TO:<bob@remote.example>")[0] == 250
    assert busy.cmd("DATA")[0] == 354
    body = ham(subject="Sent across a shutdown")
    half = len(body) // 2
    busy.send(body[:half])

    daemon.proc.send_signal(signal.SIGTERM)
    # The idle session is told why it is closed.
    code, last, _ = idle.reply()
    assert code == 421 and last.startswith("421 4.3.2"), last
    assert idle.closed()
    # The message under way completes, with its 250 ...
    busy.send(body[half:] + ".\r\n")
    code, last, _ = busy.reply()
    assert code == 250, last
    # ... and then that session is told the same.
    code, last, _ = busy.reply()
    assert last.startswith("421 4.3.2"), last
    assert daemon.proc.wait(30) == 0
    daemon.wait_log("session closed: shutting down")

    # What got its 250 is on disk.
    daemon.start()
    [entry] = daemon.queue()
    assert entry["user"] == USER, entry
