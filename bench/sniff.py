"""What the 587 sniff costs: the extra time to the banner for plain
(STARTTLS) clients from addresses never seen before, against the plain
listener that does not sniff; and whether implicit-TLS clients mixed with
plain ones from one address (NAT) all succeed on the first try."""

import socket
import ssl
import statistics
import time

ROUNDS = 200


def to_banner(port, source):
    t = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0)) as s:
        if not s.recv(512).startswith(b"220 "):
            raise RuntimeError("no banner")
    return (time.perf_counter() - t) * 1000


def implicit_ok(port):
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            with ctx.wrap_socket(s) as t:
                return t.recv(512).startswith(b"220 ")
    except (OSError, ssl.SSLError):
        return False


def run(sub_port, plain_port):
    sniffed, unsniffed = [], []
    for n in range(ROUNDS):
        # A new source address each time (127.0.x.y, never 127.0.0.1).
        src = f"127.0.{1 + n // 250}.{1 + n % 250}"
        sniffed.append(to_banner(sub_port, src))
        unsniffed.append(to_banner(plain_port, src))
    failures = 0
    for n in range(ROUNDS // 2):
        # Plain and implicit-TLS clients alternating from one address.
        to_banner(sub_port, "127.0.0.1")
        failures += not implicit_ok(sub_port)
    return {
        "banner_ms_587_p50": statistics.median(sniffed),
        "banner_ms_plain_p50": statistics.median(unsniffed),
        "sniff_cost_ms_p50": statistics.median(sniffed) - statistics.median(unsniffed),
        "implicit_tls_first_try_failures": failures,
        "implicit_tls_tries": ROUNDS // 2,
    }
