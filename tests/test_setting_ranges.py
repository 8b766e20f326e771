"""Admin-entered values out of range are refused with 422 naming the field
and its range, through the CLI (control socket) and the API alike, and the
daemon keeps running. Each of these inputs crashed a release build (panic
= abort): a lock of u32::MAX minutes, a lock timeout near u32::MAX when
mail is caught, a quarantine retention of 9,999,999 days (at every start),
and max_retry_days past ~2.9 million days (mail expired at once)."""

from conftest import PASSWORD, login, send_message

USER = "alice@example.com"
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def refused(d, args, field, range_text):
    r = d.cli(*args, check=False)
    assert r.returncode != 0, r.stdout
    assert field in r.stderr and range_text in r.stderr, r.stderr
    assert d.alive()


def test_the_four_reported_inputs_get_422(daemon):
    daemon.add_user(USER)
    refused(daemon, ["user", "lock", USER, "--minutes", "4294967295"], "minutes", "between 1 and 525600")
    refused(daemon, ["user", "set", USER, "--lock-timeout", "4294967295"],
            "lock_timeout_minutes", "between 1 and 525600")
    refused(daemon, ["settings", "set", "quarantine_retention_days=9999999"],
            "quarantine_retention_days", "between 1 and 3650")
    refused(daemon, ["user", "set", USER, "--max-retry-days", "2900000"], "max_retry_days", "between 0 and 365")
    # The same answers on the API itself, with their status.
    cases = [
        ("POST", f"/v1/users/{USER}/lock", {"minutes": 4294967295}, "minutes"),
        ("PATCH", f"/v1/users/{USER}", {"settings": {"lock_timeout_minutes": 4294967294}}, "lock_timeout_minutes"),
        ("PATCH", "/v1/settings", {"quarantine_retention_days": 9999999}, "quarantine_retention_days"),
        ("PATCH", "/v1/settings", {"defaults": {"max_retry_days": 3000000}}, "max_retry_days"),
        ("POST", "/v1/users", {"name": "bob@example.com", "password": PASSWORD,
                               "settings": {"max_retry_days": 3000000}}, "max_retry_days"),
    ]
    for method, path, body, field in cases:
        status, out = daemon.api(method, path, body)
        assert status == 422, (path, out)
        assert out["error"].startswith(field + " must be between"), out
    # Nothing was changed; values at the maximum are accepted.
    u = daemon.user(USER)
    assert u["effective"]["lock_timeout_minutes"] == 60 and u["effective"]["max_retry_days"] == 5
    daemon.cli("user", "set", USER, "--lock-timeout", "525600", "--max-retry-days", "365")
    daemon.settings(quarantine_retention_days=3650)
    # Caught mail locks the user for the longest timeout; the daemon lives.
    r = login(daemon.submission, USER)
    code, _ = send_message(r, USER, ["bob@remote.example"],
                           f"From: {USER}\r\nTo: bob@remote.example\r\nSubject: x\r\n\r\n{GTUBE}\r\n")
    assert code == 550
    assert daemon.user(USER)["lock"]["state"] == "locked_until"
    daemon.cli("user", "lock", USER, "--minutes", "525600")
    assert daemon.alive()
