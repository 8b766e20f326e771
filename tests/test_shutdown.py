"""Graceful shutdown: on SIGTERM the daemon stops accepting, tells idle
sessions 421 4.3.2, lets a message under way finish with its reply (and
keeps it), then closes the store clean and exits."""

import signal

from conftest import ham, login

USER = "alice@example.com"

# redb's file header: 9 magic bytes, then the "god byte" whose bit 1 says
# the file was not closed clean (redb 2.6 src/tree_store/page_store/header.rs).
GOD_BYTE, RECOVERY_REQUIRED = 9, 2


def recovery_required(store) -> bool:
    with open(store, "rb") as f:
        return bool(f.read(GOD_BYTE + 1)[GOD_BYTE] & RECOVERY_REQUIRED)


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
    # The store was closed, not left to the exit: redb cleared the header's
    # recovery bit, so the next start needs no repair pass over the file.
    daemon.wait_log("store closed")
    assert not recovery_required(daemon.data / "outguard.redb")

    # What got its 250 is on disk.
    daemon.start()
    [entry] = daemon.queue()
    assert entry["user"] == USER, entry
