"""A fleet: two or three real daemons sharing one real redis-server on
loopback ([store] shared). Limits hold across boxes under concurrent load,
locks and admin changes propagate, the store can die and come back with
nothing accepted lost and a limit passed by at most the documented bound
(docs/FLEET.md), and AUTH and TLS to the store work."""

import subprocess
import threading

import pytest

from conftest import BIN, ROOT, Daemon, ham, login, newsletter, send_message, wait_for

from .redis_server import RedisServer

USER = "alice@example.com"


@pytest.fixture
def redis(tmp_path):
    servers = []

    def make(**kw):
        s = RedisServer(tmp_path / f"redis{len(servers)}", **kw).start()
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


@pytest.fixture
def fleet(tmp_path):
    """fleet(n, url, **store) starts n daemons sharing the store at url."""
    started = []

    def make(n, url, **store):
        boxes = []
        for _ in range(n):
            d = Daemon(tmp_path / f"box{len(started)}", store={"shared": url, **store})
            started.append(d)
            boxes.append(d.start())
        for d in boxes:
            d.wait_log("fleet store reachable")
        return boxes

    yield make
    for d in started:
        d.stop()


def send(box, user=USER):
    try:
        r = login(box.submission, user)
    except (AssertionError, OSError) as e:
        return 0, str(e)
    try:
        return send_message(r, user, ["r@remote.example"], ham())
    finally:
        r.close()


def status(box):
    return box.api("GET", "/v1/dashboard")[1]["fleet"]


def user_on(box, name):
    code, body = box.api("GET", f"/v1/users/{name}")
    return body if code == 200 else None


def add_everywhere(boxes, name=USER, **settings):
    boxes[0].add_user(name, **settings)
    for b in boxes[1:]:
        wait_for(lambda b=b: user_on(b, name), what=f"{name} on the other boxes")


def hammer(boxes, attempts_per_box, threads_per_box=3):
    """Sends from every box at once; returns the codes of the replies."""
    codes, lock = [], threading.Lock()

    def worker(box, n):
        for _ in range(n):
            code, _ = send(box)
            with lock:
                codes.append(code)

    ts = [
        threading.Thread(target=worker, args=(b, attempts_per_box // threads_per_box))
        for b in boxes
        for _ in range(threads_per_box)
    ]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return codes


def queued(boxes):
    return sum(len(b.queue()) for b in boxes)


def test_limit_is_shared_under_concurrent_load(redis, fleet):
    r = redis()
    boxes = fleet(3, r.url())
    add_everywhere(boxes, limit_day=25, limit_week=0, limit_month=0)
    codes = hammer(boxes, attempts_per_box=18)
    assert len(codes) == 54
    assert codes.count(250) == 25, codes
    assert set(codes) == {250, 451}
    # Every 250 is queued on the box that gave it, and counted once.
    assert queued(boxes) == 25
    day = next(k for k in r.cli("KEYS", "og:u:*").split() if ":d:" in k)
    assert r.cli("GET", day) == "25"
    # Each box counted only its own mail locally.
    assert sum(b.user(USER)["usage"]["day"] for b in boxes) == 25


def test_lock_and_admin_changes_propagate(redis, fleet):
    r = redis()
    a, b = fleet(2, r.url())
    add_everywhere([a, b])
    assert send(b)[0] == 250
    a.cli("user", "lock", USER)
    wait_for(lambda: user_on(b, USER)["locked"], what="the lock on the other box")
    code, text = send(b)
    assert (code, text) == (550, "550 5.7.1 account is locked until an administrator unlocks it")
    b.wait_log("fleet: user changed on another box")
    b.cli("user", "unlock", USER)
    wait_for(lambda: send(a)[0] == 250, what="the unlock on the first box")
    # Settings and users changed anywhere are seen everywhere.
    b.settings(admin_address="postmaster@example.com")
    wait_for(lambda: a.api("GET", "/v1/settings")[1]["admin_address"] == "postmaster@example.com",
             what="settings on the other box")
    b.add_user("bob@example.com")
    wait_for(lambda: user_on(a, "bob@example.com"), what="a new user on the other box")
    a.cli("user", "del", "bob@example.com")
    wait_for(lambda: user_on(b, "bob@example.com") is None, what="a deletion on the other box")
    assert status(a)["changes_applied"] >= 2 and status(b)["changes_applied"] >= 2


def test_store_killed_and_restarted_mid_load(redis, fleet):
    limit, fraction, n = 40, 0.25, 2
    r = redis()
    boxes = fleet(n, r.url(), degraded_fraction=fraction)
    add_everywhere(boxes, limit_day=limit, limit_week=0, limit_month=0)
    first = hammer(boxes, attempts_per_box=12, threads_per_box=2)
    assert first.count(250) == 24
    r.kill9()
    # Degraded: each box takes at most fraction*limit more on its own.
    during = hammer(boxes, attempts_per_box=16, threads_per_box=2)
    for b in boxes:
        b.wait_log("fleet store unreachable")
        assert status(b)["degraded"] is True
    assert 0 < during.count(250) <= n * int(fraction * limit)
    r.restart()
    for b in boxes:
        wait_for(lambda b=b: status(b)["degraded"] is False, what="the box to leave degraded mode")
    after = hammer(boxes, attempts_per_box=20, threads_per_box=2)
    accepted = first.count(250) + during.count(250) + after.count(250)
    # Nothing accepted is lost: every 250 is in a queue.
    assert queued(boxes) == accepted
    # The limit is passed by at most the documented (n-1)*floor(f*L).
    assert accepted <= limit + (n - 1) * int(fraction * limit)
    # The usage taken while degraded was added to the shared counter.
    day = next(k for k in r.cli("KEYS", "og:u:*").split() if ":d:" in k)
    assert int(r.cli("GET", day)) >= accepted
    assert after.count(250) == max(0, limit - first.count(250) - during.count(250))


def test_unreachable_store_at_start_is_degraded(redis, tmp_path):
    r = redis(password="s3cret-store")
    d = Daemon(tmp_path / "wrong", store={"shared": r.url().replace("s3cret", "wrong")})
    try:
        d.start()
        d.wait_log("fleet store unreachable")
        assert status(d)["degraded"] is True
        d.add_user(USER, limit_day=8, limit_week=0, limit_month=0)
        # 25% of 8 while alone.
        codes = [send(d)[0] for _ in range(4)]
        assert codes == [250, 250, 451, 451]
        assert "fleet store unreachable" in send(d)[1]
    finally:
        d.stop()


def test_auth_password(redis, fleet):
    r = redis(password="s3cret-store")
    a, b = fleet(2, r.url())
    add_everywhere([a, b], limit_day=3, limit_week=0, limit_month=0)
    codes = [send(box)[0] for box in (a, b, a, b)]
    assert codes == [250, 250, 250, 451]
    assert status(a)["store"].startswith("valkey://***@127.0.0.1")
    assert "s3cret" not in a.log()


# The ACL that docs/FLEET.md gives an appliance's user, word for word.
ACL_COMMANDS = ("GET SET SETEX MGET DEL EXISTS INCRBY DECRBY EXPIRE HSET HGET HGETALL XADD XREAD XREVRANGE "
                "MULTI EXEC EVAL EVALSHA SCRIPT")


def test_acl_user_with_the_documented_commands(redis, fleet):
    """An ACL user allowed only the documented keys and commands runs the
    whole fleet: limits, profiles, an unlock and a release (a command
    missing from the list would put the boxes in degraded mode)."""
    r = redis(password="admin-pass")
    doc = (ROOT / "docs" / "FLEET.md").read_text()
    assert f"`~og:*` and the commands {ACL_COMMANDS}" in " ".join(doc.split())
    rules = ["on", ">box-pass", "~og:*", "resetchannels"] + ["+" + c.lower() for c in ACL_COMMANDS.split()]
    assert r.cli("ACL", "SETUSER", "outguard", *rules) == "OK"
    a, b = fleet(2, f"valkey://outguard:box-pass@127.0.0.1:{r.port}")
    add_everywhere([a, b])
    assert [send(box)[0] for box in (a, b)] == [250, 250]
    s = login(a.submission, USER)
    try:
        assert send_message(s, USER, ["bob@remote.example"], spam_message())[0] == 550
    finally:
        s.close()
    wait_for(lambda: user_on(b, USER)["locked"], what="the lock on the other box")
    b.cli("user", "unlock", USER)
    wait_for(lambda: r.cli("EXISTS", f"og:bm:{{{USER}}}") == "1", what="the unlock's mark")
    [held] = a.api("GET", "/v1/quarantine")[1]["items"]
    a.cli("quarantine", "release", held["id"])
    wait_for(lambda: len(r.cli("--no-raw", "GET", f"og:bm:{{{USER}}}")) > 40, what="the release's mark")
    # Deleting the user forgets its shared profile and the marks on it.
    assert r.cli("EXISTS", f"og:b:{{{USER}}}") == "1"
    a.cli("user", "delete", USER)
    wait_for(lambda: r.cli("EXISTS", f"og:b:{{{USER}}}", f"og:bm:{{{USER}}}") == "0", what="the user's keys gone")
    for box in (a, b):
        assert not status(box)["degraded"], box.log()
    assert "NOPERM" not in a.log() + b.log()


def make_ca_and_cert(d):
    """A private CA and a server certificate for 127.0.0.1 signed by it."""
    ca, ca_key = d / "ca.pem", d / "ca.key"
    cert, key, csr, ext = d / "redis.pem", d / "redis.key", d / "redis.csr", d / "ext.cnf"
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]

    def run(*a):
        subprocess.run(["openssl", *a], check=True, capture_output=True)

    run("req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(ca), "-days", "2", "-subj", "/CN=Fleet test CA")
    run("req", *ec, "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    ext.write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
        "-out", str(cert), "-days", "2", "-extfile", str(ext))
    return ca, cert, key


def test_tls_with_private_ca(redis, fleet, tmp_path):
    ca, cert, key = make_ca_and_cert(tmp_path)
    r = redis(password="tls-pass", tls=(cert, key))
    a, b = fleet(2, r.url("valkeys"), shared_ca=str(ca))
    add_everywhere([a, b], limit_day=2, limit_week=0, limit_month=0)
    assert [send(box)[0] for box in (a, b, a)] == [250, 250, 451]


def test_tls_refuses_an_unknown_certificate(redis, tmp_path):
    ca, cert, key = make_ca_and_cert(tmp_path)
    r = redis(tls=(cert, key))
    d = Daemon(tmp_path / "untrusting", store={"shared": r.url("valkeys")})
    try:
        d.start()
        d.wait_log("fleet store unreachable", "UnknownIssuer")
        assert status(d)["degraded"] is True
    finally:
        d.stop()


def test_store_that_lost_its_data_is_refilled(redis, fleet):
    """A store restarted without persistence comes back empty: each box
    counts its own usage in again and republishes the users."""
    r = redis(persist=False)
    a, b = fleet(2, r.url())
    add_everywhere([a, b], limit_day=10, limit_week=0, limit_month=0)
    assert [send(box)[0] for box in (a, b, a, b, a, b)] == [250] * 6
    r.kill9()
    r.restart()
    assert r.cli("HLEN", "og:users") == "0"
    # Once at start (new to the store), once after the loss.
    for box in (a, b):
        wait_for(lambda box=box: box.log().count("usage counted into the shared store") == 2, what="recount")
    wait_for(lambda: r.cli("HEXISTS", "og:users", USER) == "1", what="users republished")
    day = next(k for k in r.cli("KEYS", "og:u:*").split() if ":d:" in k)
    wait_for(lambda: r.cli("GET", day) == "6", what="both boxes' usage in the store")
    codes = hammer([a, b], attempts_per_box=8, threads_per_box=2)
    assert codes.count(250) == 4
    assert queued([a, b]) == 10


GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def spam_message():
    return (f"From: {USER}\r\nTo: bob@remote.example\r\nSubject: Note\r\n"
            f"Message-ID: <n@example.com>\r\n\r\n{GTUBE}\r\n")


def test_automatic_lock_propagates_and_held_mail_is_not_counted(redis, fleet):
    r = redis()
    a, b = fleet(2, r.url())
    add_everywhere([a, b], limit_day=5, limit_week=0, limit_month=0)
    assert send(a)[0] == 250
    s = login(a.submission, USER)
    try:
        assert send_message(s, USER, ["bob@remote.example"], spam_message())[0] == 550
    finally:
        s.close()
    assert user_on(a, USER)["locked"]
    wait_for(lambda: user_on(b, USER)["locked"], what="the automatic lock on the other box")
    assert send(b)[1].startswith("550 5.7.1 account is locked until 2")
    # The held message was counted ahead of the decision and given back.
    day = next(k for k in r.cli("KEYS", "og:u:*").split() if ":d:" in k)
    assert r.cli("GET", day) == "1"


def test_behaviour_profile_sees_mail_from_every_box(redis, fleet):
    """The abuse detection judges a user on all of its mail, whichever box
    took it: the shared profile counts what both boxes accepted."""
    r = redis()
    a, b = fleet(2, r.url())
    add_everywhere([a, b])
    for box in (a, b, a, b, a, b):
        assert send(box)[0] == 250
    assert user_on(b, USER)["behaviour"]["today"]["messages"] == 6
    assert user_on(a, USER)["behaviour"]["today"]["messages"] == 5
    # Spam held and locked on one box, unlocked on the other: the unlock
    # forgets the holds in the shared profile too, so the next message on
    # the first box is judged without them.
    s = login(a.submission, USER)
    try:
        assert send_message(s, USER, ["bob@remote.example"], spam_message())[0] == 550
    finally:
        s.close()
    assert user_on(a, USER)["behaviour"]["holds_last_day"] == 1
    wait_for(lambda: user_on(b, USER)["locked"], what="the lock on the other box")
    key = f"og:b:{{{USER}}}"
    shared = lambda: r.cli("--no-raw", "GET", key)  # noqa: E731
    wait_for(lambda: len(shared()) > 100, what="the shared profile")
    before = shared()
    assert r.cli("COPY", key, "og:stale") == "1"
    b.cli("user", "unlock", USER)
    wait_for(lambda: not user_on(a, USER)["locked"], what="the unlock on the first box")
    wait_for(lambda: shared() != before, what="the unlock in the shared profile")
    # A committer that read the profile before the unlock writes it back
    # after (here: put back by hand). The unlock still holds: the mark
    # beside the profile is applied at every read.
    assert r.cli("COPY", "og:stale", key, "REPLACE") == "1"
    assert shared() == before
    wait_for(lambda: send(a)[0] == 250, what="mail after the unlock")
    assert user_on(a, USER)["behaviour"]["holds_last_day"] == 0


def test_behaviour_profile_counts_concurrent_mail_from_every_box(redis, fleet):
    """Two boxes committing for one user at the same time: the second to
    write back makes its changes again on the first's profile, so the
    shared profile counts every message (it kept about half before)."""
    r = redis()
    boxes = fleet(2, r.url())
    add_everywhere(boxes)
    codes = hammer(boxes, attempts_per_box=30)
    assert codes == [250] * 60
    counted = lambda: r.profile_messages_today(USER)  # noqa: E731
    # Idle committers write back at once.
    try:
        wait_for(lambda: counted() == 60, timeout=5)
    except AssertionError:
        raise AssertionError(f"the shared profile counted {counted()} of 60 messages") from None
    assert send(boxes[0])[0] == 250
    assert user_on(boxes[0], USER)["behaviour"]["today"]["messages"] == 61


def test_a_release_vouches_for_the_text_on_every_box(redis, fleet):
    """A copy of a mail merge held on one box and released there: the
    shared profile forgets the hold and lets the next copy through on the
    other box, within the user's fleet-wide limit (2 a day here)."""
    r = redis()
    a, b = fleet(2, r.url())
    add_everywhere([a, b], auto_lock="off", limit_day=2, limit_week=0, limit_month=0)
    for box in (a, b):
        assert box.api("PATCH", "/v1/settings", {"response": {"content_lock_score": 500}})[0] == 200
    assert send(a)[0] == 250
    s = login(a.submission, USER)
    try:
        assert send_message(s, USER, ["ann@home.example"], newsletter("Ann"))[0] == 550
    finally:
        s.close()
    [held] = a.api("GET", "/v1/quarantine")[1]["items"]
    assert user_on(a, USER)["behaviour"]["holds_last_day"] == 1
    # The shared profile (og:b:{USER}), quoted: it changes with the release.
    shared = lambda: r.cli("--no-raw", "GET", f"og:b:{{{USER}}}")  # noqa: E731
    wait_for(lambda: len(shared()) > 100, what="the shared profile")
    before = shared()
    assert r.cli("COPY", f"og:b:{{{USER}}}", "og:stale") == "1"
    a.cli("quarantine", "release", held["id"])
    assert user_on(a, USER)["behaviour"]["holds_last_day"] == 0
    wait_for(lambda: shared() != before, what="the release in the shared profile")
    # A late write-back of the profile as it was before the release (put
    # back by hand) does not undo it: the release's mark is applied again.
    assert r.cli("COPY", "og:stale", f"og:b:{{{USER}}}", "REPLACE") == "1"
    assert shared() == before
    s = login(b.submission, USER)
    try:
        code, reply = send_message(s, USER, ["bert@home.example"], newsletter("Bert"))
        assert code == 250, reply
    finally:
        s.close()
    # Box a has counted one message of its own, the fleet two: a vouched
    # copy is sent mail, so the fleet-wide limit refuses the third.
    assert a.user(USER)["usage"]["day"] == 1
    s = login(a.submission, USER)
    try:
        code, reply = send_message(s, USER, ["chloe@home.example"], newsletter("Chloe"))
        assert code == 451 and "limit" in reply, (code, reply)
    finally:
        s.close()


@pytest.mark.parametrize("store,error", [
    ({"shared": "http://127.0.0.1:6379"}, "scheme 'http' is not valkey://, valkeys://, redis:// or rediss://"),
    ({"shared": "valkey://127.0.0.1:1", "degraded_fraction": 1.5}, "degraded_fraction must be between 0 and 1"),
    ({"shared_ca": "/nonexistent.pem"}, "shared_ca is set but [store] shared is not"),
])
def test_bad_fleet_config_is_refused(tmp_path, store, error):
    d = Daemon(tmp_path / "bad", store=store)
    r = subprocess.run([str(BIN), "--config", str(d.config), "serve"], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert error in r.stderr, r.stderr
