"""Start-up as root and the data directory. Its contents belong to the run
user, who must not be able to make root follow a symlink there (root would
chown or overwrite the target, or serve a key it points to); a data
directory, or a parent of it, that others could change is refused; and
`--dev` never leaves the store and TLS key to the shared `nobody`."""

import os
import pwd
import signal
import stat
import subprocess
import time

import pytest

from conftest import BIN, Daemon

NOBODY = 65534

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="start-up as root")


def run(argv, cwd=None, env=None, ready=None, timeout=60):
    """Starts the daemon and returns (exit status, output) once it exits,
    or (None, output) once `ready()` holds (it is then stopped)."""
    log = cwd / "out.log" if cwd else None
    with open(log, "wb") as out:
        p = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        end = time.monotonic() + timeout
        try:
            while time.monotonic() < end:
                if p.poll() is not None:
                    return p.returncode, log.read_text(errors="replace")
                if ready and ready():
                    return None, log.read_text(errors="replace")
                time.sleep(0.05)
            raise AssertionError("daemon neither exited nor got ready: " + log.read_text(errors="replace"))
        finally:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def serve(d):
    return run([str(BIN), "--config", str(d.config), "serve"], cwd=d.dir,
               ready=lambda: d.socket.exists())


def earlier_data_dir(d):
    """The data directory as an earlier start left it: the run user's."""
    d.data.mkdir(mode=0o700)
    os.chown(d.data, NOBODY, NOBODY)


def plant(link, target):
    """A symlink made by the run user."""
    link.parent.mkdir(exist_ok=True)
    os.symlink(target, link)
    os.lchown(link, NOBODY, NOBODY)


def snapshot(path):
    st = os.lstat(path)
    content = path.read_bytes() if path.is_file() else sorted(os.listdir(path))
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), content


@pytest.mark.parametrize("planted", ["tls-dir", "store", "tls-key"])
def test_symlinks_planted_in_the_data_dir_are_not_followed(tmp_path, planted):
    d = Daemon(tmp_path / "d")
    earlier_data_dir(d)
    victim = tmp_path / "victim"
    victim.mkdir(mode=0o700)
    if planted == "tls-dir":
        # Root would generate the key there and chown the directory.
        plant(d.data / "tls", victim)
        target = victim
    elif planted == "store":
        # Root would make this file a redb store and chown it.
        target = victim / "shadow"
        target.write_bytes(b"")
        target.chmod(0o600)
        plant(d.data / "outguard.redb", target)
    else:
        # Root would load a key pair only root may read, and serve it.
        for name in ("cert.pem", "key.pem"):
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                            "-nodes", "-keyout", victim / "key.pem", "-out", victim / "cert.pem",
                            "-days", "1", "-subj", "/CN=root-only"], check=True, capture_output=True)
            plant(d.data / "tls" / name, victim / name)
        os.chown(d.data / "tls", NOBODY, NOBODY)
        target = victim / "key.pem"
    before = snapshot(target)
    rc, out = serve(d)
    assert snapshot(target) == before
    assert rc not in (None, 0), "the daemon started: " + out
    assert "symlink" in out, out


def test_data_dir_that_others_can_change_is_refused(tmp_path):
    d = Daemon(tmp_path / "open")
    d.data.mkdir(mode=0o777)
    d.data.chmod(0o777)
    rc, out = serve(d)
    assert rc not in (None, 0) and "writable by group or others" in out, out

    d = Daemon(tmp_path / "stranger")
    d.data.mkdir(mode=0o700)
    os.chown(d.data, 1234, 1234)
    rc, out = serve(d)
    assert rc not in (None, 0) and "neither root nor the run user" in out, out

    # A parent anyone may write to (not sticky, unlike /tmp): the data
    # directory could be renamed away and replaced.
    parent = tmp_path / "shared"
    parent.mkdir()
    parent.chmod(0o777)
    d = Daemon(parent / "d")
    rc, out = serve(d)
    assert rc not in (None, 0) and "its parent" in out and str(parent) in out, out


def dev(cwd, env):
    """`outguard --dev serve` in a network namespace of its own (its ports
    are fixed), from `cwd`."""
    sh = f"ip link set lo up && exec {BIN} --dev serve"
    return run(["unshare", "-n", "sh", "-c", sh], cwd=cwd, env=env,
               ready=lambda: (cwd / "outguard-data" / "control.sock").exists())


def test_dev_as_root_never_runs_as_nobody(tmp_path):
    tmp_path.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUDO_")}
    # As plain root it drops to the dedicated `outguard` account; without
    # one it refuses (it never falls back to nobody).
    try:
        pwd.getpwnam("outguard")
        has_account = True
    except KeyError:
        has_account = False
    if not has_account:
        rc, out = dev(tmp_path, env)
        assert rc not in (None, 0), out
        assert "run_user 'outguard' is not in /etc/passwd" in out, out
        assert not (tmp_path / "outguard-data").exists()

    # Through sudo: the invoking user's, and nobody else's.
    try:
        user = pwd.getpwnam("www-data")
    except KeyError:
        pytest.skip("no www-data account to stand for the sudo user")
    rc, out = dev(tmp_path, {**env, "SUDO_USER": "www-data"})
    assert rc is None, out
    data = tmp_path / "outguard-data"
    for path, mode in [(data, 0o700), (data / "outguard.redb", 0o600), (data / "tls", 0o700),
                       (data / "tls" / "key.pem", 0o600)]:
        st = os.stat(path)
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (user.pw_uid, mode), path
    for path in [data / "outguard.redb", data / "tls" / "key.pem"]:
        r = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "cat", path],
                           capture_output=True)
        assert r.returncode != 0 and b"Permission denied" in r.stderr, path
