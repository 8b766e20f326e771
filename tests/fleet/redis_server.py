"""A real redis-server on a loopback port, for the fleet tests and bench:
started in its own directory (AOF on, fsync always, so a SIGKILL loses
nothing acknowledged), killed and restarted on the same port and data."""

import socket
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from conftest import free_port, wait_for  # noqa: E402


# `today.messages` in a stored profile (src/behaviour/record.rs): version,
# active days, six baseline floats, day, hour, then the tallies this hour,
# peak today and today (four u32 each).
TODAY_MESSAGES = 1 + 2 + 6 * 4 + 4 + 4 + 2 * 16


class RedisServer:
    def __init__(self, workdir: Path, password=None, tls=None, persist=True, fsync="always"):
        self.dir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.password = password
        self.tls = tls  # (cert, key) for a TLS-only server
        self.persist = persist
        self.fsync = fsync
        self.proc = None

    def args(self):
        a = ["redis-server", "--bind", "127.0.0.1", "--dir", str(self.dir), "--save", "",
             "--protected-mode", "no", "--logfile", str(self.dir / "redis.log")]
        a += ["--appendonly", "yes", "--appendfsync", self.fsync] if self.persist else ["--appendonly", "no"]
        if self.password:
            a += ["--requirepass", self.password]
        if self.tls:
            cert, key = self.tls
            a += ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(cert),
                  "--tls-key-file", str(key), "--tls-auth-clients", "no"]
        else:
            a += ["--port", str(self.port)]
        return a

    def start(self):
        self.proc = subprocess.Popen(self.args(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._up, what="redis-server to listen")
        return self

    def _up(self):
        if self.proc.poll() is not None:
            raise AssertionError("redis-server exited: " + (self.dir / "redis.log").read_text(errors="replace"))
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def url(self, scheme="valkey"):
        auth = f":{self.password}@" if self.password else ""
        return f"{scheme}://{auth}127.0.0.1:{self.port}"

    def cli(self, *args):
        a = ["redis-cli", "-p", str(self.port), "--no-auth-warning"]
        if self.password:
            a += ["-a", self.password]
        r = subprocess.run(a + list(args), capture_output=True, text=True, timeout=10)
        return r.stdout.strip()

    def get_bytes(self, key):
        """GET over RESP (redis-cli prints binary values escaped)."""
        k = key.encode()
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            cmd = b""
            if self.password:
                p = self.password.encode()
                cmd += b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n" % (len(p), p)
            s.sendall(cmd + b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(k), k))
            f = s.makefile("rb")
            if self.password:
                assert f.readline() == b"+OK\r\n"
            head = f.readline()
            if head == b"$-1\r\n":
                return None
            assert head.startswith(b"$"), head
            return f.read(int(head[1:]))

    def profile_messages_today(self, user):
        """Today's message count in the user's shared behaviour profile
        (`og:b:{user}`), None without one."""
        b = self.get_bytes(f"og:b:{{{user}}}")
        return b and int.from_bytes(b[TODAY_MESSAGES:TODAY_MESSAGES + 4], "little")

    def restart(self):
        """Same port and directory: the AOF is replayed."""
        return self.start()
