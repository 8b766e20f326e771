"""Appliance basics the daemon takes part in (issue 14), on a real daemon on
loopback, confined as on the appliance (seccomp kills on a call outside its
allow-list): the clock's synchronisation state, the NTP servers set through
the control API and CLI, and the factory reset, which only writes its
marker for the root side when confirmed with the hostname. The root side
(OpenNTPD, wiping /data, the watchdog) is tested in tests/image."""

import os
import re
import subprocess

import pytest

from conftest import BIN, wait_for
from syslog_collector import Collector, collector_cert

HOST = "outguard.test"  # conftest's hostname


@pytest.fixture
def jailed(make_daemon):
    return make_daemon(hardening={"seccomp_action": "kill"}, housekeeping_secs=1)


def test_clock_state_is_reported_and_logged(jailed):
    status, body = jailed.api("GET", "/v1/appliance")
    assert status == 200, body
    clock = body["clock"]
    # adjtimex answered inside the jail (else clock would be null, or the
    # process killed by seccomp)
    assert isinstance(clock["synchronised"], bool), body
    assert clock["max_error_us"] >= 0
    assert body["hostname"] == HOST
    assert body["factory_reset_pending"] is False
    word = "clock synchronised" if clock["synchronised"] else "clock not synchronised"
    jailed.wait_log(word)
    assert jailed.alive()
    out = jailed.cli("appliance", "status").stdout
    assert out.startswith("clock: ")


def test_ntp_servers_are_validated_and_kept_for_the_root_side(jailed):
    path = jailed.data / "ntp-servers"
    status, body = jailed.api("PUT", "/v1/appliance/ntp", {"servers": ["ntp1.example.org", " 192.0.2.7 "]})
    assert status == 200, body
    assert body["ntp_servers"] == ["ntp1.example.org", "192.0.2.7"]
    assert path.read_text() == "ntp1.example.org\n192.0.2.7\n"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    # Bad input changes nothing: a shell or config metacharacter, too many.
    for bad in (["a;reboot"], ["x\nserver evil"], ["-o"], [f"n{i}.example" for i in range(9)]):
        status, body = jailed.api("PUT", "/v1/appliance/ntp", {"servers": bad})
        assert status == 422, (bad, body)
        assert path.read_text() == "ntp1.example.org\n192.0.2.7\n"
    status, body = jailed.api("PUT", "/v1/appliance/ntp", {"servers": "pool.ntp.org"})
    assert status == 400, body
    # The CLI; then none: the file goes, so the provisioned servers apply again.
    jailed.cli("appliance", "ntp", "2001:db8::123")
    assert jailed.api("GET", "/v1/appliance")[1]["ntp_servers"] == ["2001:db8::123"]
    jailed.cli("appliance", "ntp")
    assert not path.exists()
    assert jailed.api("GET", "/v1/appliance")[1]["ntp_servers"] == []


def test_factory_reset_needs_the_hostname(jailed):
    marker = jailed.data / "factory-reset"
    for wrong in ("", "outguard", "outguard.test.evil", "*"):
        status, body = jailed.api("POST", "/v1/appliance/factory-reset", {"confirm": wrong})
        assert status == 400, (wrong, body)
        assert HOST in body["error"]
        assert not marker.exists()
    status, body = jailed.api("POST", "/v1/appliance/factory-reset", {})
    assert status == 400 and not marker.exists()
    r = jailed.cli("appliance", "factory-reset", "--confirm", "relay.example", check=False)
    assert r.returncode != 0 and "hostname" in r.stderr
    assert not marker.exists()
    # Confirmed (host names are case-insensitive): the marker for the root side.
    r = jailed.cli("appliance", "factory-reset", "--confirm", "OutGuard.Test")
    assert "wipes its data and reboots" in r.stdout
    assert marker.is_file()
    assert jailed.api("GET", "/v1/appliance")[1]["factory_reset_pending"] is True
    jailed.wait_log("factory reset requested")
    # The request is in the audit log too.
    audit = jailed.api("GET", "/v1/audit")[1]["items"]
    assert any("factory-reset" in str(e) for e in audit), audit


@pytest.mark.skipif(os.geteuid() != 0, reason="the marker's owner matters only with the privilege drop")
def test_reset_marker_is_the_run_users(jailed):
    jailed.cli("appliance", "factory-reset", "--confirm", HOST)
    st = (jailed.data / "factory-reset").stat()
    assert st.st_uid == 65534 and st.st_mode & 0o777 == 0o600


def test_remote_syslog_rfc5424_over_tls(make_daemon, tmp_path):
    ca, cert, key = collector_cert(tmp_path, "IP:127.0.0.1")
    col = Collector(cert, key)
    try:
        d = make_daemon(hardening={"seccomp_action": "kill"},
                        log={"remote": f"127.0.0.1:{col.port}", "ca_file": str(ca)})
        d.add_user("alice@example.com")
        frame = re.compile(r"<(\d+)>1 (\S+) outguard\.test outguard (\d+) - - (.*)", re.S)
        wait_for(lambda: any("user added" in f for f in col.frames), what="the 'user added' frame")
        hit = next(f for f in col.frames if "user added" in f)
        m = frame.fullmatch(hit)
        assert m, hit
        assert int(m.group(1)) == 2 * 8 + 6  # mail facility, informational
        assert m.group(3) == str(d.proc.pid)
        assert "alice@example.com" in m.group(4)
        assert all(frame.fullmatch(f) for f in col.frames), col.frames
        assert not col.errors, col.errors
        assert d.alive()
    finally:
        col.close()


def test_remote_syslog_refuses_an_unverified_collector(make_daemon, tmp_path):
    _, cert, key = collector_cert(tmp_path, "IP:127.0.0.1")
    col = Collector(cert, key)
    try:
        # No ca_file: the system CAs, which do not vouch for this collector.
        d = make_daemon(log={"remote": f"127.0.0.1:{col.port}"})
        d.add_user("alice@example.com")
        d.wait_log("remote syslog unreachable")
        assert not col.frames
    finally:
        col.close()


def test_remote_syslog_must_be_an_address(tmp_path):
    from conftest import Daemon
    d = Daemon(tmp_path / "d", log={"remote": "logs.example:6514"})
    r = subprocess.run([str(BIN), "--config", str(d.config), "serve"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode != 0 and "[log] remote must be an IP address and port" in r.stderr


def test_admin_page_factory_reset_needs_csrf_and_the_hostname():
    """The Appliance page's forms on the HTTPS face: the CSRF token, then the hostname."""
    from admin.adminlib import Daemon as AdminDaemon

    d = AdminDaemon()
    try:
        s = d.login()
        page = s.get(d.url + "/appliance")
        assert page.status_code == 200 and 'id="clock"' in page.text, page.text
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        marker = d.data / "factory-reset"
        form = d.url + "/appliance/factory-reset"
        r = s.post(form, data={"confirm": "outguard.test"}, headers={"X-CSRF-Token": ""},
                   allow_redirects=False)
        assert r.status_code == 403 and not marker.exists()
        r = s.post(form, data={"csrf": token, "confirm": "other.example"}, allow_redirects=False)
        assert r.status_code == 400 and "outguard.test" in r.text and not marker.exists()
        r = s.post(d.url + "/appliance/ntp", data={"csrf": token, "servers": "ntp1.example, 192.0.2.1"},
                   allow_redirects=False)
        assert r.status_code == 303, r.text
        assert (d.data / "ntp-servers").read_text() == "ntp1.example\n192.0.2.1\n"
        r = s.post(form, data={"csrf": token, "confirm": "outguard.test"}, allow_redirects=False)
        assert r.status_code == 303, r.text
        assert marker.is_file()
        assert "A factory reset is under way" in s.get(d.url + "/appliance").text
        metrics = s.get(d.url + "/metrics").text
        assert re.search(r"^outguard_clock_synchronised [01]$", metrics, re.M), metrics
    finally:
        d.stop()


def test_hostname_must_be_a_dns_name(tmp_path):
    """The hostname goes into the greeting, EHLO, Received and notices: the
    daemon refuses to start on one that is not a DNS name, and says why."""
    from conftest import Daemon
    for bad in ("relay example.com", "relay.example.com\r\n250 forged", "-relay.example", "relay_1.example"):
        d = Daemon(tmp_path / str(abs(hash(bad))), hostname=bad)
        r = subprocess.run([str(BIN), "--config", str(d.config), "serve"], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode != 0, bad
        assert "hostname: domain" in r.stderr and "is not a valid domain name" in r.stderr, r.stderr
