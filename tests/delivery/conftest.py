"""Fixtures for the delivery tests: a daemon whose next hop is an SMTP
sink on loopback (smarthost or, with a loopback DNS server, MX mode)."""

import shutil
import tempfile
from pathlib import Path

import pytest

from .delivery_support import Daemon, Dns, Sink
from .raw_hop import RawHop

USER = "alice@example.com"


@pytest.fixture
def workdir():
    # World-traversable, since the daemon drops to `nobody`.
    d = Path(tempfile.mkdtemp(prefix="og-delivery-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def sinks():
    made = []

    def make(**kw):
        s = Sink(**kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.stop()


@pytest.fixture
def dns():
    made = []

    def make(zone):
        s = Dns(zone)
        made.append(s)
        return s

    yield make
    for s in made:
        s.stop()


@pytest.fixture
def outguard(workdir):
    """Factory: outguard(delivery={...}) starts a daemon; stopped at the end."""
    started = []

    def make(delivery, **sections):
        base = {"poll_interval_ms": 100, "starttls": "opportunistic", "connect_timeout_secs": 5,
                "command_timeout_secs": 20}
        base.update(delivery)
        # These tests are about delivery: content scanning (tested on its
        # own) must not lock the test user over a short test message.
        sections.setdefault("scan", {"enabled": False})
        d = Daemon(workdir / f"d{len(started)}", delivery=base, **sections)
        started.append(d)
        d.start()
        return d

    yield make
    for d in started:
        d.stop()
        # Shown by pytest only when the test failed.
        print(f"--- {d.log_path} (last lines) ---\n" + "\n".join(d.log().splitlines()[-40:]))


@pytest.fixture
def hops():
    """Factory: hops(keywords) starts a RawHop announcing exactly those
    EHLO keywords; all are stopped at the end."""
    made = []

    def make(keywords):
        h = RawHop(keywords)
        made.append(h)
        return h

    yield make
    for h in made:
        h.stop()
