"""Test doubles that are real servers on loopback: an SMTP sink (aiosmtpd)
told per recipient what to answer, and a small authoritative DNS server
(dnslib) serving MX and A records. Plus helpers to submit mail and read
the daemon's queue."""

import email
import email.policy
import importlib.util
import re
import smtplib
import ssl
import subprocess
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from dnslib import AAAA, MX, QTYPE, RCODE, RR, A
from dnslib.server import BaseResolver, DNSServer

HERE = Path(__file__).resolve().parent

# The relay-core fixtures (Daemon, free_port, wait_for...) live in the
# shared tests/conftest.py; loaded under their own name so that the
# module called "conftest" stays whichever pytest put there.
_spec = importlib.util.spec_from_file_location("outguard_core_conftest", HERE.parent / "conftest.py")
core = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(core)
Daemon, free_port, PASSWORD = core.Daemon, core.free_port, core.PASSWORD
tls_client_context = core.tls_client_context


def wait_for(pred, timeout=60.0, what="condition"):
    """The core's bounded poll, with room for busy shared CI machines."""
    return core.wait_for(pred, timeout=timeout, what=what)


class Sink:
    """An SMTP server recording what it accepts. `rules` maps a recipient
    (lower case) to the reply its RCPT gets; `drop` closes the connection
    at MAIL FROM."""

    def __init__(self, tls_context=None, require_tls=False, credentials=None, decode_data=False, smtputf8=False):
        self.messages = []
        self.rules = {}
        self.drop = False
        self.rcpt_log = []
        self.logins = []
        self.tls_sessions = 0
        self.quits = 0
        self.lock = threading.Lock()
        self.port = free_port()
        # decode_data=True: aiosmtpd then does not announce 8BITMIME.
        kwargs = {"decode_data": decode_data, "enable_SMTPUTF8": smtputf8}
        if tls_context is not None:
            kwargs.update(tls_context=tls_context, require_starttls=require_tls)
        if credentials is not None:
            kwargs.update(authenticator=self._auth(credentials), auth_required=True)
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port, **kwargs)
        self.controller.start()

    def _auth(self, credentials):
        def check(server, session, envelope, mechanism, data):
            ok = (data.login.decode(), data.password.decode()) == credentials
            if ok:
                with self.lock:
                    self.logins.append((mechanism, data.login.decode()))
            return AuthResult(success=ok)

        return check

    def stop(self):
        self.controller.stop()

    def received(self, rcpt=None, sender=None):
        with self.lock:
            out = list(self.messages)
        if rcpt is not None:
            out = [m for m in out if rcpt in m["rcpt_tos"]]
        if sender is not None:
            out = [m for m in out if m["mail_from"] == sender]
        return out

    def bounces(self, to):
        """Null-sender messages for `to`, parsed."""
        return [email.message_from_bytes(m["content"], policy=email.policy.compat32)
                for m in self.received(rcpt=to, sender="")]


class _Handler:
    def __init__(self, sink):
        self.sink = sink

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.sink.drop:
            server.transport.close()
            return "421 4.3.2 going away"
        # aiosmtpd wants a non-empty mail_from; "<>" stands for the null sender.
        envelope.mail_from = address or "<>"
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        rule = self.sink.rules.get(address.lower())
        with self.sink.lock:
            self.sink.rcpt_log.append((address, rule or "250"))
        if rule:
            return rule
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_QUIT(self, server, session, envelope):
        with self.sink.lock:
            self.sink.quits += 1
        return "221 2.0.0 Bye"

    async def handle_DATA(self, server, session, envelope):
        with self.sink.lock:
            if session.ssl is not None:
                self.sink.tls_sessions += 1
            self.sink.messages.append({
                "mail_from": "" if envelope.mail_from == "<>" else envelope.mail_from,
                "rcpt_tos": list(envelope.rcpt_tos),
                "content": envelope.original_content,
                "mail_options": list(envelope.mail_options),
                "tls": session.ssl is not None,
            })
        return "250 2.0.0 Ok: stored"


class ZoneResolver(BaseResolver):
    """Answers from a dict: (name, type) -> [rdata]; names absent from it
    are NXDOMAIN, present names without the type get an empty answer."""

    def __init__(self, zone):
        self.zone = {(n.lower().rstrip(".") + ".", t): v for (n, t), v in zone.items()}
        self.queries = []

    def resolve(self, request, handler):
        reply = request.reply()
        qname = str(request.q.qname).lower()
        qtype = QTYPE[request.q.qtype]
        self.queries.append((qname, qtype))
        reply.header.aa = 1
        answers = self.zone.get((qname, qtype))
        if answers:
            for rdata in answers:
                reply.add_answer(RR(qname, getattr(QTYPE, qtype), rdata=rdata, ttl=60))
        elif not any(n == qname for n, _ in self.zone):
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


class Dns:
    def __init__(self, zone):
        self.port = free_port()
        self.resolver = resolver = ZoneResolver(zone)
        self.servers = [DNSServer(resolver, port=self.port, address="127.0.0.1", tcp=tcp) for tcp in (False, True)]
        for s in self.servers:
            s.start_thread()

    def stop(self):
        for s in self.servers:
            s.stop()


def mx(pref, host):
    return MX(host, pref)


def a(ip):
    return A(ip)


def aaaa(ip):
    return AAAA(ip)


def make_certs(dir: Path, name="localhost"):
    """A private CA and a server certificate for `name` signed by it."""
    dir.mkdir(parents=True, exist_ok=True)

    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=dir)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=Outguard Test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", f"/CN={name}")
    (dir / "ext.cnf").write_text(f"subjectAltName=DNS:{name}\nbasicConstraints=CA:FALSE\n"
                                 "extendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(dir / "server.pem", dir / "server.key")
    return dir / "ca.pem", ctx


def submit(d, user, rcpts, message: bytes, sender=None):
    """Submits over STARTTLS with AUTH; returns the queue id."""
    with smtplib.SMTP("127.0.0.1", d.submission, timeout=60) as s:
        s.starttls(context=tls_client_context())
        s.login(user, PASSWORD)
        return send(s, sender if sender is not None else user, rcpts, message)


def swaks(d, user, rcpt, message: bytes):
    """Submits with swaks (STARTTLS, AUTH PLAIN); returns the queue id."""
    r = subprocess.run(
        ["swaks", "--server", f"127.0.0.1:{d.submission}", "--tls", "--auth", "PLAIN",
         "--auth-user", user, "--auth-password", PASSWORD, "--from", user, "--to", rcpt,
         "--data", "-", "--hide-all", "--timeout", "60"],
        input=message, capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr
    # Find the id in the queue (the newest entry for this recipient).
    ids = [e["id"] for e in d.queue() if [x["address"] for x in e["recipients"]] == [rcpt]]
    return max(ids) if ids else None


def smarthost_of(server):
    """The [delivery] section that relays through `server` on loopback."""
    return {"smarthost": f"127.0.0.1:{server.port}"}


def send(s, sender, rcpts, message: bytes, mail_options=()):
    code, text = s.mail(sender, list(mail_options))
    assert code == 250, text
    for r in rcpts:
        code, text = s.rcpt(r)
        assert code == 250, text
    code, text = s.data(message)
    assert code == 250, text
    return text.decode().rsplit(" ", 1)[1]


def entry(d, qid):
    """The queue entry, or None once it has left the queue."""
    status, body = d.api("GET", f"/v1/queue/{qid}")
    return body if status == 200 else None


def health(d):
    return d.api("GET", "/v1/health")[1]["delivery"]


_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z$")


def ts_ns(text):
    """An RFC 3339 UTC timestamp (nanoseconds allowed) as ns since epoch."""
    m = _TS.match(text)
    assert m, text
    secs = int(datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp())
    frac = (m.group(2) or "0").ljust(9, "0")[:9]
    return secs * 10**9 + int(frac)


def ts_text(ns):
    return datetime.fromtimestamp(ns // 10**9, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def message(subject, body="Hi Bob,\r\nA line.\r\n.leading dot\r\nThanks,\r\nAlice\r\n"):
    from email.utils import formatdate

    return (f"From: alice@example.com\r\nTo: bob@remote.example\r\nSubject: {subject}\r\n"
            f"Date: {formatdate()}\r\nMessage-ID: <{subject.replace(' ', '.')}@example.com>\r\n\r\n"
            f"{body}").encode()


def body_of(raw: bytes):
    return raw.split(b"\r\n\r\n", 1)[1]


def delivery_status(dsn):
    """The per-recipient field groups of a DSN's message/delivery-status part."""
    assert dsn.get_content_type() == "multipart/report"
    assert dsn.get_param("report-type") == "delivery-status"
    [part] = [p for p in dsn.get_payload() if p.get_content_type() == "message/delivery-status"]
    groups = part.get_payload()  # [per-message, per-recipient...]
    return groups[0], groups[1:]


def original_headers(dsn):
    [part] = [p for p in dsn.get_payload() if p.get_content_type() == "text/rfc822-headers"]
    return part.get_payload()


def settle():
    """A short pause for pollers (never a timing assertion)."""
    time.sleep(0.2)
