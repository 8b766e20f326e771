import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "image"))


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long QEMU boots (aarch64 under software emulation)")
