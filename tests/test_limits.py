"""Sending limits: messages per day / ISO week / month and recipients per
day, counted at acceptance, reset at calendar boundaries (the daemon's
clock is moved through the control API), exact under concurrency."""

import threading

from conftest import ham, login, send_message

USER = "alice@example.com"


def send(daemon, rcpts=("r@remote.example",)):
    r = login(daemon.submission, USER)
    try:
        return send_message(r, USER, list(rcpts))
    finally:
        r.close()


def test_daily_limit_and_reset(daemon):
    daemon.set_clock("2026-11-27T10:00:00Z")  # a Friday
    daemon.add_user(USER, limit_day=2, limit_week=0, limit_month=0)
    assert send(daemon)[0] == 250
    assert send(daemon)[0] == 250
    code, text = send(daemon)
    assert code == 451
    assert text == "451 4.7.1 daily message limit of 2 reached; it resets at 2026-11-28 00:00 UTC"
    u = daemon.user(USER)
    assert u["usage"]["day"] == 2
    daemon.set_clock("2026-11-27T23:59:58Z")
    assert send(daemon)[0] == 451
    daemon.set_clock("2026-11-28T00:00:01Z")
    assert send(daemon)[0] == 250
    assert daemon.user(USER)["usage"] == {"day": 1, "week": 3, "month": 3, "recipients_day": 1}


def test_weekly_limit_resets_on_monday(daemon):
    daemon.set_clock("2026-11-27T10:00:00Z")  # Friday, ISO week 48
    daemon.add_user(USER, limit_day=0, limit_week=2, limit_month=0)
    assert send(daemon)[0] == 250
    daemon.set_clock("2026-11-28T10:00:00Z")
    assert send(daemon)[0] == 250
    daemon.set_clock("2026-11-29T23:00:00Z")  # Sunday, still week 48
    code, text = send(daemon)
    assert code == 451 and "weekly message limit of 2" in text and "2026-11-30 00:00 UTC" in text
    daemon.set_clock("2026-11-30T00:00:05Z")
    assert send(daemon)[0] == 250


def test_monthly_limit_resets_on_the_first(daemon):
    daemon.set_clock("2026-11-02T10:00:00Z")
    daemon.add_user(USER, limit_day=0, limit_week=0, limit_month=2)
    assert send(daemon)[0] == 250
    daemon.set_clock("2026-11-20T10:00:00Z")
    assert send(daemon)[0] == 250
    daemon.set_clock("2026-11-30T23:59:00Z")
    code, text = send(daemon)
    assert code == 451 and "monthly message limit of 2 reached; it resets at 2026-12-01 00:00 UTC" in text
    daemon.set_clock("2026-12-01T00:00:30Z")
    assert send(daemon)[0] == 250


def test_timezone_moves_the_window(daemon):
    daemon.settings(timezone="Asia/Tokyo")
    daemon.set_clock("2026-11-27T14:00:00Z")  # 23:00 in Tokyo
    daemon.add_user(USER, limit_day=1, limit_week=0, limit_month=0)
    assert send(daemon)[0] == 250
    code, text = send(daemon)
    assert code == 451 and "2026-11-28 00:00 JST" in text
    daemon.set_clock("2026-11-27T15:00:01Z")  # midnight in Tokyo
    assert send(daemon)[0] == 250


def test_recipients_per_day(daemon):
    daemon.set_clock("2026-11-27T10:00:00Z")
    daemon.add_user(USER, max_recipients_day=3, limit_day=0)
    assert send(daemon, ["a@x.example", "b@x.example"])[0] == 250
    r = login(daemon.submission, USER)
    assert r.cmd(f"MAIL FROM:<{USER}>")[0] == 250
    assert r.cmd("RCPT TO:<c@x.example>")[0] == 250
    code, text, _ = r.cmd("RCPT TO:<d@x.example>")
    assert code == 452
    assert text == "452 4.5.3 daily recipient limit of 3 reached; it resets at 2026-11-28 00:00 UTC"
    # The transaction goes on with the recipient it has.
    assert r.cmd("DATA")[0] == 354
    r.send(ham() + ".\r\n")
    assert r.reply()[0] == 250
    assert daemon.user(USER)["usage"]["recipients_day"] == 3
    daemon.set_clock("2026-11-28T00:00:01Z")
    assert send(daemon, ["a@x.example", "b@x.example", "c@x.example"])[0] == 250


def test_refused_mail_counts_nothing(make_daemon):
    d = make_daemon(smtp={"max_message_size": 2000})
    d.add_user(USER, limit_day=5)
    r = login(d.submission, USER)
    code, _ = send_message(r, USER, ["a@x.example"], body="Subject: big\r\n\r\n" + ("x" * 70 + "\r\n") * 100)
    assert code == 552
    code, _ = send_message(r, USER, ["a@x.example"], body="Subject: bare\n\nlf only\r\n")
    assert code == 550
    assert d.user(USER)["usage"] == {"day": 0, "week": 0, "month": 0, "recipients_day": 0}
    assert d.queue() == []


def test_two_sessions_cannot_pass_a_limit_together(daemon):
    daemon.add_user(USER, limit_day=1)
    sessions = [login(daemon.submission, USER) for _ in range(4)]
    for r in sessions:
        # Every session passes MAIL and RCPT: nothing is counted yet.
        assert r.cmd(f"MAIL FROM:<{USER}>")[0] == 250
        assert r.cmd("RCPT TO:<x@remote.example>")[0] == 250
        assert r.cmd("DATA")[0] == 354
    results = []
    barrier = threading.Barrier(len(sessions))

    def finish(r):
        barrier.wait()
        r.send(ham() + ".\r\n")
        results.append(r.reply()[:2])

    threads = [threading.Thread(target=finish, args=(r,)) for r in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    codes = sorted(c for c, _ in results)
    assert codes == [250, 451, 451, 451], results
    assert all("daily message limit of 1" in t for c, t in results if c == 451)
    assert len(daemon.queue()) == 1
    assert daemon.user(USER)["usage"]["day"] == 1


def test_zero_means_unlimited(daemon):
    daemon.add_user(USER, limit_day=0, limit_week=0, limit_month=0, max_recipients_day=0)
    r = login(daemon.submission, USER)
    for i in range(12):
        assert send_message(r, USER, [f"r{j}@x.example" for j in range(10)])[0] == 250
    assert daemon.user(USER)["usage"]["recipients_day"] == 120
