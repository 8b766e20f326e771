"""Fixtures of the admin-face tests (helpers in adminlib.py)."""

import pytest

from .adminlib import ARTIFACTS, Daemon, build


@pytest.fixture(scope="session", autouse=True)
def built():
    build()


@pytest.fixture(scope="module")
def og(built):
    d = Daemon()
    yield d
    d.stop()


@pytest.fixture()
def api(og):
    """A logged-in HTTPS client with its CSRF header."""
    return og.login()


@pytest.fixture(scope="session")
def artifacts():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


def pytest_configure(config):
    # The daemon's certificate is self-signed: the tests connect with
    # verify=False on purpose.
    config.addinivalue_line("filterwarnings", "ignore::urllib3.exceptions.InsecureRequestWarning")
