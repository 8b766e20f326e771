"""A message is on disk before its 250: kill -9 right after the reply and
it is still queued after a restart; the store opens cleanly."""

import json

from conftest import login, send_message

USER = "alice@example.com"


def test_kill9_after_250_keeps_the_message(daemon):
    daemon.add_user(USER)
    ids = []
    for i in range(3):
        r = login(daemon.submission, USER)
        code, text = send_message(r, USER, [f"r{i}@remote.example"])
        assert code == 250, text
        ids.append(text.rsplit(" ", 1)[1])
        if i == 2:
            daemon.kill9()  # no chance to flush anything after the reply
    daemon.start()
    queued = {e["id"] for e in json.loads(daemon.cli("queue", "list", "--json").stdout)}
    assert set(ids) <= queued
    assert daemon.user(USER)["usage"]["day"] == 3
    # Queue ids keep growing after the restart.
    r = login(daemon.submission, USER)
    code, text = send_message(r, USER, ["again@remote.example"])
    assert code == 250 and text.rsplit(" ", 1)[1] not in ids
