"""An RFC 5425 syslog collector for the remote-syslog tests (tests/test_appliance.py against
the daemon, tests/image/test_boot.py against the image): TLS on the host's loopback,
octet-counted RFC 5424 frames kept in `frames`, and the private CA that signs it."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from pathlib import Path


def collector_cert(d: Path, san: str) -> tuple[Path, Path, Path]:
    """A private CA and a collector certificate for `san` (e.g. "IP:127.0.0.1" or
    "DNS:collector.test"), signed by it. Returns (ca.pem, server.pem, server.key)."""
    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    d.mkdir(parents=True, exist_ok=True)
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=Collector CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=collector")
    (d / "ext.cnf").write_text(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\n"
                               "extendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")
    return d / "ca.pem", d / "server.pem", d / "server.key"


class Collector:
    """Listens on 127.0.0.1 (a QEMU guest reaches it as 10.0.2.2); malformed frames and
    failed handshakes are kept in `errors`."""

    def __init__(self, cert: Path, key: Path):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.frames: list[str] = []
        self.errors: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._conn, args=(raw,), daemon=True).start()

    def _conn(self, raw):
        try:
            raw.settimeout(600)  # bounded: a guest under emulation is slow, not silent forever
            with self.ctx.wrap_socket(raw, server_side=True) as s:
                f = s.makefile("rb")
                while True:
                    digits = b""
                    while (c := f.read(1)) not in (b" ", b""):
                        if not c.isdigit() or len(digits) >= 6:
                            raise ValueError(f"bad frame length {digits + c!r}")
                        digits += c
                    if not digits:
                        return
                    self.frames.append(f.read(int(digits)).decode(errors="replace"))
        except (OSError, ValueError) as e:
            self.errors.append(str(e))

    def close(self):
        self.sock.close()
