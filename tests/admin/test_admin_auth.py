"""Admin login throttling, session expiry and logout, on a daemon of
their own (the throttle would otherwise block the other tests)."""

import datetime as dt

import pytest
import requests

from .adminlib import Daemon


@pytest.fixture(scope="module")
def strict(built):
    d = Daemon(admin_extra="max_failures = 3\nsession_idle_secs = 600\nsession_max_secs = 3600\n")
    yield d
    d.stop()


def post_login(d, password):
    return requests.post(d.url + "/v1/session", json={"password": password}, verify=False)


def test_logout_ends_the_session(strict):
    s = strict.login()
    token = s.cookies["og_session"]
    assert s.get(strict.url + "/v1/users").status_code == 200
    # Logging out is a change: it needs the CSRF token too.
    r = requests.delete(strict.url + "/v1/session", cookies=s.cookies, verify=False)
    assert r.status_code == 403
    r = s.delete(strict.url + "/v1/session")
    assert r.status_code == 200 and "Max-Age=0" in r.headers["set-cookie"]
    r = requests.get(strict.url + "/v1/users", cookies={"og_session": token}, verify=False)
    assert r.status_code == 401
    # The page face redirects to the login form.
    r = requests.get(strict.url + "/users", cookies={"og_session": "stale"}, verify=False, allow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"


def test_session_expires_when_idle_and_when_old(strict):
    s = strict.login()
    now = strict.socket_call("PUT", "/v1/debug/clock", {})[1]["now"]
    t0 = dt.datetime.fromisoformat(now.replace("Z", "+00:00"))

    def move(minutes):
        t = (t0 + dt.timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")
        assert strict.socket_call("PUT", "/v1/debug/clock", {"now": t})[0] == 200

    # Used every 9 minutes: idle never reaches 10, but the session
    # cannot outlive its hour.
    alive = []
    for step in range(1, 8):
        move(9 * step)
        alive.append(s.get(strict.url + "/v1/session").status_code == 200)
    assert alive == [True] * 6 + [False], alive
    # Idle for 11 minutes: gone.
    move(0)
    s2 = strict.login()
    move(11)
    assert s2.get(strict.url + "/v1/session").status_code == 401
    strict.socket_call("PUT", "/v1/debug/clock", {})


def test_admin_password_change(strict):
    s = strict.login()
    r = s.put(strict.url + "/v1/admin/password", json={"password": "short"})
    assert r.status_code == 400 and "at least 8" in r.json()["error"]
    assert s.put(strict.url + "/v1/admin/password", json={"password": "a-new-admin-pass"}).status_code == 200
    # Every HTTPS session ends; the old password no longer works.
    assert s.get(strict.url + "/v1/session").status_code == 401
    s = strict.login("a-new-admin-pass")
    # Root resets it over the socket (a lost password), from standard input;
    # that ends the HTTPS sessions too.
    strict.cli("admin-password", stdin="root-set-password\n")
    assert s.get(strict.url + "/v1/session").status_code == 401
    assert post_login(strict, "a-new-admin-pass").status_code == 401
    assert post_login(strict, "root-set-password").status_code == 201


def test_login_throttling(strict):
    # Last in this module: it leaves 127.0.0.1 blocked on this daemon.
    strict.cli("admin-password", stdin="throttle-test-pass\n")
    for _ in range(2):
        assert post_login(strict, "wrong-password").status_code == 401
    # The third failure blocks the address, then even the right password waits.
    assert post_login(strict, "wrong-password").status_code == 401
    r = post_login(strict, "throttle-test-pass")
    assert r.status_code == 429 and "too many" in r.json()["error"]
    audit = strict.socket_call("GET", "/v1/audit?filter=login")[1]["items"]
    actions = [e["action"] for e in audit]
    assert actions[0] == "login refused: throttled"
    # Failures from one source are written once a minute, with a count.
    assert actions.count("login failed") == 1
