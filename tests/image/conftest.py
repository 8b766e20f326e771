"""tests/image: the image directory on the import path (ogvm), the markers, and the
"beside" runner.

QEMU here is software emulation: one guest keeps one host core busy, and a guest is mostly
what an image test waits for. A test marked `beside` (a whole test, or one parameter of
it) therefore runs in a thread beside the other image tests, on the machine's second core:
the thread starts with the first image test and runs the selected `beside` tests one after
another, in collection order; when pytest reaches such a test it waits for the thread's
outcome of it and reports it as its own (pass, failure with its traceback, or skip). So at
most two guests run at once. Only tests whose arguments are their parameters and
`tmp_path` can run beside; OUTGUARD_IMAGE_BESIDE=0 runs every test in its turn instead.
The terminal summary lists how long each ran.
"""

from __future__ import annotations

import inspect
import os
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "image"))


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long QEMU boots (aarch64 under software emulation)")
    config.addinivalue_line(
        "markers", "beside: runs in a thread beside the other image tests (tests/image/conftest.py)")


class Beside:
    def __init__(self):
        self.items: list[pytest.Item] = []
        self.done: dict[str, tuple[BaseException | None, float]] = {}
        self.cond = threading.Condition()
        self.thread: threading.Thread | None = None

    def select(self, items) -> None:
        if os.environ.get("OUTGUARD_IMAGE_BESIDE", "1") == "0":
            return
        for item in items:
            if item.get_closest_marker("beside") is None or not isinstance(item, pytest.Function):
                continue
            params = getattr(getattr(item, "callspec", None), "params", {})
            args = set(inspect.signature(item.obj).parameters)
            if args <= set(params) | {"tmp_path"}:
                self.items.append(item)

    def start(self, tmp_path_factory) -> None:
        if self.thread is None and self.items:
            # made (and with --basetemp emptied) here, once: not by the thread and the
            # foreground's first tmp_path at the same time
            tmp_path_factory.getbasetemp()
            self.thread = threading.Thread(target=self._run, args=(tmp_path_factory,),
                                           name="image-beside", daemon=True)
            self.thread.start()

    def _run(self, tmp_path_factory) -> None:
        for item in self.items:
            params = dict(getattr(getattr(item, "callspec", None), "params", {}))
            if "tmp_path" in inspect.signature(item.obj).parameters:
                params["tmp_path"] = tmp_path_factory.mktemp(
                    "".join(c if c.isalnum() else "_" for c in item.name)[:30], numbered=True)
            t0 = time.monotonic()
            error = None
            try:
                item.obj(**params)
            except BaseException as e:  # pytest's skip/fail outcomes are BaseExceptions
                error = e
            with self.cond:
                self.done[item.nodeid] = (error, time.monotonic() - t0)
                self.cond.notify_all()

    def outcome(self, item) -> bool:
        """For a test that runs beside: wait for it and re-raise what it raised. False for
        the others (pytest calls them as usual)."""
        if item not in self.items or self.thread is None:
            return False
        with self.cond:
            while item.nodeid not in self.done:
                self.cond.wait(5)
        error, _ = self.done[item.nodeid]
        if error is not None:
            raise error
        return True


BESIDE = Beside()


@pytest.hookimpl(trylast=True)  # after -k / -m have deselected
def pytest_collection_modifyitems(config, items):
    BESIDE.select(items)


@pytest.fixture(scope="session", autouse=True)
def _image_beside(tmp_path_factory):
    BESIDE.start(tmp_path_factory)
    yield


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    if BESIDE.outcome(pyfuncitem):
        return True
    return None


def pytest_terminal_summary(terminalreporter):
    if BESIDE.done:
        terminalreporter.write_sep("-", "image tests run beside the others (seconds of their own)")
        for nodeid, (error, secs) in BESIDE.done.items():
            state = "ok" if error is None else type(error).__name__
            terminalreporter.write_line(f"{secs:8.2f}s {state:10} {nodeid}")
