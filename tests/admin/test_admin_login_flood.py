"""Admin HTTPS login under a flood, with Python requests against the real
face: concurrent wrong logins are reserved before their hash (only the
limit is evaluated), and failures write a bounded number of audit rows
(one per source and outcome per minute, with a count)."""

import datetime as dt
import threading

import pytest
import requests

from .adminlib import Daemon


@pytest.fixture()
def flood(built):
    d = Daemon(admin_extra="max_failures = 5\n")
    yield d
    d.stop()


def post(d, password, session=None):
    return (session or requests).post(d.url + "/v1/session", json={"password": password}, verify=False, timeout=120)


def login_rows(d):
    status, rows = d.socket_call("GET", "/v1/audit?filter=login&limit=1000")
    assert status == 200
    return [r for r in rows["items"] if r["action"] != "login"]


def test_concurrent_wrong_logins_are_throttled_after_the_limit(flood):
    n = 24
    start = threading.Barrier(n)
    codes = []

    def guess(i):
        start.wait()
        codes.append(post(flood, f"wrong-{i}").status_code)

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert len(codes) == n
    # Five reach the password check; the rest are refused before hashing.
    assert codes.count(401) == 5, codes
    assert codes.count(429) == n - 5, codes


def test_failed_logins_write_bounded_audit_rows(flood):
    s = requests.Session()
    codes = [post(flood, f"wrong-{i}", s).status_code for i in range(120)]
    assert codes.count(401) == 5 and codes.count(429) == 115
    rows = login_rows(flood)
    # One row per outcome from this source within the minute, not 120.
    assert sorted(r["action"] for r in rows) == ["login failed", "login refused: throttled"], rows
    # A minute later the next refusal writes a row with the count of the
    # ones not written one by one.
    now = flood.socket_call("PUT", "/v1/debug/clock", {})[1]["now"]
    later = dt.datetime.fromisoformat(now.replace("Z", "+00:00")) + dt.timedelta(minutes=2)
    flood.socket_call("PUT", "/v1/debug/clock", {"now": later.isoformat().replace("+00:00", "Z")})
    assert post(flood, "wrong-again", s).status_code == 429
    rows = login_rows(flood)
    assert len(rows) == 3, rows
    assert any(r.get("detail", "").startswith("114 more like this") for r in rows), rows


def post_from(d, source, password):
    """A JSON login from another loopback address (all of 127/8 is local)."""
    import http.client
    import json
    import ssl

    c = http.client.HTTPSConnection("127.0.0.1", d.port, context=ssl._create_unverified_context(),
                                    timeout=120, source_address=(source, 0))
    c.request("POST", "/v1/session", body=json.dumps({"password": password}),
              headers={"content-type": "application/json"})
    r = c.getresponse()
    out = (r.status, json.loads(r.read() or b"null"))
    c.close()
    return out


def test_guesses_from_many_addresses_block_the_account_and_tell_the_admin(built):
    d = Daemon(admin_extra="max_failures = 100\nmax_account_failures = 3\n")
    try:
        assert d.socket_call("PATCH", "/v1/settings", {"admin_address": "root@example.com"})[0] == 200
        d.login()  # from 127.0.0.1: an address known to the account
        assert [post_from(d, f"127.0.2.{i}", "wrong")[0] for i in range(1, 4)] == [401] * 3
        status, out = post_from(d, "127.0.2.9", "admin-test-password")
        assert status == 429 and "logged in before" in out["error"]
        d.login()
        metrics = requests.get(d.url + "/metrics", verify=False).text
        assert "\noutguard_admin_login_blocked 1\n" in metrics
        queue = d.socket_call("GET", "/v1/queue")[1]["items"]
        assert [m["recipients"][0]["address"] for m in queue] == ["root@example.com"], queue
        assert "account under attack" in d.logtext()
    finally:
        d.stop()
