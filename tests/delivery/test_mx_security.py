"""MX delivery security over real sockets: MTA-STS policies (RFC 8461)
published through a loopback DNS server and served by a loopback HTTPS
server with a certificate from a test CA; MX hosts are an aiosmtpd sink
with STARTTLS. Results are counted TLS-RPT style in /v1/health and
/metrics."""

import http.server
import ssl
import subprocess
import threading
import urllib.request
from pathlib import Path

import dns._features
from dnslib import TXT

if not dns._features.have("dnssec"):
    # dnspython 2.9 asks for cryptography >= 50 for its DNSSEC extra; the
    # signing used here works with older releases. Set before dns.dnssec loads.
    dns._features.force("dnssec", True)

from .conftest import USER
from .delivery_support import a, entry, free_port, health, message, mx, submit, wait_for


def make_ca(dir: Path, names):
    """A test CA and, per name, a server certificate signed by it:
    returns (ca.pem, {name: (cert, key)})."""
    dir.mkdir(parents=True, exist_ok=True)

    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=dir)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=Outguard MX Test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    out = {}
    for name in names:
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN={name}")
        (dir / f"{name}.cnf").write_text(f"subjectAltName=DNS:{name}\nbasicConstraints=CA:FALSE\n"
                                         "extendedKeyUsage=serverAuth\n")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.cnf")
        out[name] = (dir / f"{name}.pem", dir / f"{name}.key")
    return dir / "ca.pem", out


class PolicyServer:
    """HTTPS on 127.0.0.1 answering /.well-known/mta-sts.txt per Host
    header from `policies`; one certificate for all policy hosts."""

    def __init__(self, cert, key, policies):
        self.policies = policies
        self.requests = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                host = (self.headers.get("Host") or "").lower()
                outer.requests.append((host, self.path))
                body = outer.policies.get(host)
                if self.path != "/.well-known/mta-sts.txt" or body is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def policy(mode, *mxs):
    return "version: STSv1\r\nmode: %s\r\n%smax_age: 86400\r\n" % (mode, "".join(f"mx: {m}\r\n" for m in mxs))


def sts_zone(domain, mx_host):
    return {
        (domain, "MX"): [mx(10, f"{mx_host}.")],
        (mx_host, "A"): [a("127.0.0.1")],
        (f"_mta-sts.{domain}", "TXT"): [TXT("v=STSv1; id=1;")],
        (f"mta-sts.{domain}", "A"): [a("127.0.0.1")],
    }


def metrics(port):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with urllib.request.urlopen(f"https://127.0.0.1:{port}/metrics", context=ctx, timeout=30) as r:
        return r.read().decode()


def test_mta_sts_enforce_and_testing(outguard, sinks, dns, workdir):
    # The sink (every MX host here) presents a certificate for mx.remote.test.
    ca, certs = make_ca(workdir / "pki", ["mx.remote.test", "mta-sts.policy.test"])
    mx_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    mx_ctx.load_cert_chain(*certs["mx.remote.test"])
    sink = sinks(tls_context=mx_ctx)
    # One certificate naming every policy host: a SAN list.
    names = ["remote.test", "wrongmx.test", "badcert.test", "testing.test"]
    pol_dir = workdir / "pki"
    (pol_dir / "pol.cnf").write_text(
        "subjectAltName=" + ",".join(f"DNS:mta-sts.{n}" for n in names)
        + "\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    subprocess.run(["openssl", "x509", "-req", "-in", "mta-sts.policy.test.csr", "-CA", "ca.pem",
                    "-CAkey", "ca.key", "-CAcreateserial", "-out", "pol.pem", "-days", "2",
                    "-extfile", "pol.cnf"], check=True, capture_output=True, cwd=pol_dir)
    web = PolicyServer(pol_dir / "pol.pem", certs["mta-sts.policy.test"][1], {
        "mta-sts.remote.test": policy("enforce", "mx.remote.test"),
        "mta-sts.wrongmx.test": policy("enforce", "mail.wrongmx.test"),
        "mta-sts.badcert.test": policy("enforce", "*.badcert.test"),
        "mta-sts.testing.test": policy("testing", "mx.testing.test"),
    })
    try:
        zone = {}
        zone.update(sts_zone("remote.test", "mx.remote.test"))
        zone.update(sts_zone("wrongmx.test", "mx.wrongmx.test"))
        zone.update(sts_zone("badcert.test", "mx.badcert.test"))
        zone.update(sts_zone("testing.test", "mx.testing.test"))
        server = dns(zone)
        admin_port = free_port()
        d = outguard({"mode": "mx", "dns_servers": [f"127.0.0.1:{server.port}"], "mx_port": sink.port,
                      "mta_sts_port": web.port, "ca_file": str(ca)},
                     admin={"listen": [f"127.0.0.1:{admin_port}"]})
        d.add_user(USER)
        ok = submit(d, USER, ["bob@remote.test"], message("sts enforce ok"))
        wrong = submit(d, USER, ["carol@wrongmx.test"], message("sts wrong mx"))
        bad = submit(d, USER, ["dave@badcert.test"], message("sts bad cert"))
        testing = submit(d, USER, ["erin@testing.test"], message("sts testing"))

        # Enforce, listed MX, valid certificate: delivered over TLS.
        [m] = wait_for(lambda: sink.received(rcpt="bob@remote.test"), what="enforced delivery")
        assert m["tls"]
        wait_for(lambda: entry(d, ok) is None, what="delivered entry to leave the queue")
        # Testing mode: the certificate names another host, yet delivered.
        wait_for(lambda: sink.received(rcpt="erin@testing.test"), what="testing-mode delivery")
        wait_for(lambda: entry(d, testing) is None, what="testing entry to leave the queue")

        def deferred(qid):
            e = entry(d, qid)
            return e and e["recipients"][0]["attempts"] >= 1 and e["recipients"][0]

        r = wait_for(lambda: deferred(wrong), what="unlisted MX deferred")
        assert r["state"] == "queued"
        assert r["last_reply"].startswith("451 4.7.5") and "mx-mismatch" in r["last_reply"], r
        r = wait_for(lambda: deferred(bad), what="bad certificate deferred")
        assert r["state"] == "queued"
        assert r["last_reply"].startswith("451 4.7.5") and "certificate-host-mismatch" in r["last_reply"], r
        assert not sink.received(rcpt="carol@wrongmx.test")
        assert not sink.received(rcpt="dave@badcert.test")

        sts = health(d)["tls_policy"]["sts"]
        assert sts["success"] >= 1
        # badcert (enforce) and testing.test (testing) both met mx.remote.test's certificate.
        assert sts["certificate-host-mismatch"] >= 2
        assert sts["mx-mismatch"] >= 1
        text = metrics(admin_port)
        assert 'outguard_delivery_tls_policy_total{policy="sts",result="success"}' in text
        assert 'outguard_delivery_tls_policy_total{policy="sts",result="mx-mismatch"}' in text
        # The policies came from the local server, through the configured resolver.
        assert ("mta-sts.remote.test", "/.well-known/mta-sts.txt") in web.requests
        assert ("mta-sts.remote.test.", "A") in server.resolver.queries
    finally:
        web.stop()


class SignedZone:
    """A DNSSEC-signed zone (dnspython, ECDSA P-256) served on 127.0.0.1
    over UDP and TCP, answering with RRSIGs and, for missing names or
    types, the SOA and NSEC proofs. Its key is the trust anchor."""

    def __init__(self, origin, records):
        import dns.dnssec
        import dns.rdataclass
        import dns.rdatatype
        import dns.zone
        from cryptography.hazmat.primitives.asymmetric import ec

        text = [f"@ 60 IN SOA ns.{origin}. hostmaster.{origin}. 1 60 60 600 60",
                f"@ 60 IN NS ns.{origin}.", "ns 60 IN A 127.0.0.1"]
        text += [f"{name} 60 IN {rtype} {data}" for name, rtype, data in records]
        self.zone = dns.zone.from_text("\n".join(text) + "\n", origin=origin, relativize=False)
        key = ec.generate_private_key(ec.SECP256R1())
        self.dnskey = dns.dnssec.make_dnskey(key.public_key(), dns.dnssec.Algorithm.ECDSAP256SHA256, flags=257)
        dns.dnssec.sign_zone(self.zone, keys=[(key, self.dnskey)], lifetime=2 * 86400)
        self.origin = dns.name.from_text(origin)
        self.anchor = f"{origin}. 60 IN DNSKEY {self.dnskey.to_text()}\n"
        self.queries = []
        self.port = free_port()
        self._start()

    def answer(self, wire):
        import dns.message
        import dns.rcode
        import dns.rdatatype

        q = dns.message.from_wire(wire)
        r = dns.message.make_response(q)
        r.flags |= dns.flags.AA
        [question] = q.question
        self.queries.append((question.name.to_text(), dns.rdatatype.to_text(question.rdtype)))
        node = self.zone.get_node(question.name)

        def add(section, name, rdtype):
            n = self.zone.get_node(name)
            if n is None:
                return
            rds = n.get_rdataset(dns.rdataclass.IN, rdtype)
            if rds is not None:
                # find_rrset(create=True) adds the rrset to the section.
                r.find_rrset(section, name, dns.rdataclass.IN, rdtype, create=True).update(rds)
                sig = n.get_rdataset(dns.rdataclass.IN, dns.rdatatype.RRSIG, rdtype)
                if sig is not None:
                    srr = r.find_rrset(section, name, dns.rdataclass.IN, dns.rdatatype.RRSIG, rdtype,
                                       create=True)
                    srr.update(sig)

        if node is not None and node.get_rdataset(dns.rdataclass.IN, question.rdtype) is not None:
            add(r.answer, question.name, question.rdtype)
        else:
            if node is None:
                r.set_rcode(dns.rcode.NXDOMAIN)
            add(r.authority, self.origin, dns.rdatatype.SOA)
            # NSEC proofs: the name's own (NODATA), or every NSEC (a tiny zone).
            for name, n in self.zone.items():
                if n.get_rdataset(dns.rdataclass.IN, dns.rdatatype.NSEC) is not None and (
                        node is None or name == question.name):
                    add(r.authority, name, dns.rdatatype.NSEC)
        return r

    def _start(self):
        import socketserver

        outer = self

        class Udp(socketserver.BaseRequestHandler):
            def handle(self):
                import dns.flags
                import dns.message

                data, sock = self.request
                r = outer.answer(data)
                q = dns.message.from_wire(data)
                limit = max(512, q.payload) if q.edns >= 0 else 512
                out = r.to_wire(max_size=65535)
                if len(out) > limit:
                    # Too big for the client's buffer: truncated, retry over TCP.
                    r = dns.message.make_response(q)
                    r.flags |= dns.flags.TC
                    out = r.to_wire()
                sock.sendto(out, self.client_address)

        class Tcp(socketserver.BaseRequestHandler):
            def handle(self):
                head = self.request.recv(2)
                if len(head) < 2:
                    return
                size = int.from_bytes(head, "big")
                data = b""
                while len(data) < size:
                    chunk = self.request.recv(size - len(data))
                    if not chunk:
                        return
                    data += chunk
                out = outer.answer(data).to_wire()
                self.request.sendall(len(out).to_bytes(2, "big") + out)

        self.servers = [socketserver.ThreadingUDPServer(("127.0.0.1", self.port), Udp),
                        socketserver.ThreadingTCPServer(("127.0.0.1", self.port), Tcp)]
        for s in self.servers:
            s.daemon_threads = True
            threading.Thread(target=s.serve_forever, daemon=True).start()

    def stop(self):
        for s in self.servers:
            s.shutdown()
            s.server_close()


def spki_sha256(cert_pem: Path):
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(cert_pem.read_bytes())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


def test_dane_ee_match_and_mismatch(outguard, sinks, workdir):
    ca, certs = make_ca(workdir / "pki", ["mx.remote.test"])
    mx_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    mx_ctx.load_cert_chain(*certs["mx.remote.test"])
    sink = sinks(tls_context=mx_ctx)
    good = spki_sha256(certs["mx.remote.test"][0])
    zone = SignedZone("dane.test", [
        ("dane.test.", "MX", "10 mx.dane.test."),
        ("mx.dane.test.", "A", "127.0.0.1"),
        # DANE-EE, SPKI, SHA-256 of the sink's key: a match (whatever the name).
        (f"_{sink.port}._tcp.mx.dane.test.", "TLSA", f"3 1 1 {good}"),
        ("bad.dane.test.", "MX", "10 mx-bad.dane.test."),
        ("mx-bad.dane.test.", "A", "127.0.0.1"),
        (f"_{sink.port}._tcp.mx-bad.dane.test.", "TLSA", "3 1 1 " + "00" * 32),
        ("forged.dane.test.", "MX", "10 mx-forged.dane.test."),
        ("mx-forged.dane.test.", "A", "127.0.0.1"),
        (f"_{sink.port}._tcp.mx-forged.dane.test.", "TLSA", "3 1 1 " + "11" * 32),
    ])
    # Forged after signing: the sink's own key, but the signature no longer
    # covers it; a validating client must not trust (nor use) the host.
    import dns.rdata
    import dns.rdataclass
    import dns.rdatatype
    forged = zone.zone.get_node(f"_{sink.port}._tcp.mx-forged.dane.test.")
    rds = forged.get_rdataset(dns.rdataclass.IN, dns.rdatatype.TLSA)
    ttl = rds.ttl
    rds.clear()
    rds.add(dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TLSA, f"3 1 1 {good}"), ttl)
    anchor = workdir / "anchor.key"
    anchor.write_text(zone.anchor)
    anchor.chmod(0o644)
    try:
        # No ca_file: DANE-EE needs no CA.
        d = outguard({"mode": "mx", "dns_servers": [f"127.0.0.1:{zone.port}"], "mx_port": sink.port,
                      "dnssec_trust_anchor": str(anchor)})
        d.add_user(USER)
        ok = submit(d, USER, ["bob@dane.test"], message("dane match"))
        bad = submit(d, USER, ["carol@bad.dane.test"], message("dane mismatch"))
        bogus = submit(d, USER, ["dan@forged.dane.test"], message("dane forged"))
        [m] = wait_for(lambda: sink.received(rcpt="bob@dane.test"), what="DANE delivery")
        assert m["tls"]
        wait_for(lambda: entry(d, ok) is None, what="delivered entry to leave the queue")

        def deferred(qid):
            e = entry(d, qid)
            return e and e["recipients"][0]["attempts"] >= 1 and e["recipients"][0]

        r = wait_for(lambda: deferred(bad), what="TLSA mismatch deferred")
        assert r["state"] == "queued"
        assert r["last_reply"].startswith("451 4.7.5 DANE") and "validation-failure" in r["last_reply"], r
        assert not sink.received(rcpt="carol@bad.dane.test")
        r = wait_for(lambda: deferred(bogus), what="forged TLSA deferred")
        assert r["state"] == "queued" and "dnssec-invalid" in r["last_reply"], r
        assert not sink.received(rcpt="dan@forged.dane.test")
        tlsa = health(d)["tls_policy"]["tlsa"]
        assert tlsa["success"] >= 1 and tlsa["validation-failure"] >= 1 and tlsa["dnssec-invalid"] >= 1
        # The TLSA records were asked of the local server, signed and checked.
        assert (f"_{sink.port}._tcp.mx.dane.test.", "TLSA") in zone.queries
    finally:
        print("DNS queries:", zone.queries)
        zone.stop()
