"""Started as root, the daemon binds and reads its keys, then runs as its
unprivileged user with no capabilities, no_new_privs, a landlock ruleset
and a seccomp filter on every thread (read from /proc, and from the
daemon's own report)."""

import os

import pytest

from conftest import login, send_message


def status(pid, tid=None):
    path = f"/proc/{pid}/task/{tid}/status" if tid else f"/proc/{pid}/status"
    with open(path) as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


@pytest.mark.skipif(os.geteuid() != 0, reason="privilege drop needs root")
def test_daemon_runs_unprivileged_and_confined(make_daemon):
    # As the appliance runs it: a forbidden system call kills the process,
    # so the session below also shows that the allowlist covers it.
    daemon = make_daemon(hardening={"seccomp_action": "kill"})
    daemon.add_user("alice@example.com")
    # Exercise the confined daemon first: TLS, AUTH, scanning, a commit.
    r = login(daemon.submission, "alice@example.com")
    assert send_message(r, "alice@example.com", ["bob@remote.example"])[0] == 250
    pid = daemon.proc.pid
    s = status(pid)
    assert s["Uid"].split() == ["65534"] * 4  # nobody, in the tests
    assert s["CapEff"] == s["CapPrm"] == "0000000000000000"
    # The bounding and ambient sets are empty too: nothing the process
    # could ever execute regains a capability.
    assert s["CapBnd"] == s["CapAmb"] == s["CapInh"] == "0000000000000000"
    assert s["NoNewPrivs"] == "1"
    for tid in os.listdir(f"/proc/{pid}/task"):
        assert status(pid, tid)["Seccomp"] == "2", f"thread {tid} not filtered"
    hardening = daemon.api("GET", "/v1/health")[1]["hardening"]
    assert hardening["seccomp"] is True and hardening["uid"] == 65534
    assert hardening["landlock"] in ("fully enforced", "partially enforced")
    assert daemon.alive()
    # Files the daemon created while privileged belong to its user.
    assert os.stat(daemon.data / "outguard.redb").st_uid == 65534
    assert oct(os.stat(daemon.socket).st_mode & 0o777) == "0o600"
    assert os.stat(daemon.socket).st_uid == 0
