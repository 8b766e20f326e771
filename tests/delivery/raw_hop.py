"""A small SMTP server over real sockets on loopback, for tests that need
what aiosmtpd will not do: announce exactly the EHLO keywords a test asks
for (no 8BITMIME, or DSN) and keep MAIL/RCPT lines verbatim (aiosmtpd
refuses RCPT parameters and upper-cases them). Bounded: one line at most
4 KiB, a message at most 16 MiB, 30 s per read."""

import socket
import socketserver
import threading

from .delivery_support import free_port

MAX_LINE = 4096
MAX_MESSAGE = 16 * 1024 * 1024


class RawHop:
    """`keywords`: the EHLO keywords announced. `rules` maps a recipient
    (lower case) to the reply its RCPT gets. `messages` holds dicts with
    mail_line, rcpt_lines, mail_from, rcpt_tos and content."""

    def __init__(self, keywords=()):
        self.keywords = list(keywords)
        self.rules = {}
        self.messages = []
        self.lock = threading.Lock()
        self.port = free_port()
        hop = self

        class Handler(socketserver.StreamRequestHandler):
            timeout = 30

            def handle(self):
                hop._session(self.rfile, self.wfile)

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self.server = Server(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def received(self, rcpt=None, sender=None):
        with self.lock:
            out = list(self.messages)
        if rcpt is not None:
            out = [m for m in out if rcpt in m["rcpt_tos"]]
        if sender is not None:
            out = [m for m in out if m["mail_from"] == sender]
        return out

    def _session(self, rfile, wfile):
        def say(line):
            wfile.write(line.encode() + b"\r\n")
            wfile.flush()

        def read_line():
            line = rfile.readline(MAX_LINE)
            if not line:
                raise ConnectionError("closed")
            return line.rstrip(b"\r\n").decode("utf-8", "replace")

        say("220 hop.test ESMTP")
        tx = None
        try:
            while True:
                line = read_line()
                verb = line[:4].upper()
                if verb == "EHLO":
                    lines = ["hop.test"] + self.keywords
                    for i, l in enumerate(lines):
                        say(("250 " if i == len(lines) - 1 else "250-") + l)
                elif verb == "HELO":
                    say("250 hop.test")
                elif verb == "MAIL":
                    addr = line.split("<", 1)[1].split(">", 1)[0]
                    tx = {"mail_line": line, "mail_from": addr, "rcpt_lines": [], "rcpt_tos": []}
                    say("250 2.1.0 OK")
                elif verb == "RCPT" and tx is not None:
                    addr = line.split("<", 1)[1].split(">", 1)[0]
                    tx["rcpt_lines"].append(line)
                    rule = self.rules.get(addr.lower())
                    if rule:
                        say(rule)
                    else:
                        tx["rcpt_tos"].append(addr)
                        say("250 2.1.5 OK")
                elif verb == "DATA" and tx is not None and tx["rcpt_tos"]:
                    say("354 go ahead")
                    content = bytearray()
                    while True:
                        raw = rfile.readline(MAX_LINE)
                        if not raw:
                            raise ConnectionError("closed in DATA")
                        if raw == b".\r\n":
                            break
                        if raw.startswith(b"."):
                            raw = raw[1:]
                        content += raw
                        if len(content) > MAX_MESSAGE:
                            raise ConnectionError("message too large")
                    tx["content"] = bytes(content)
                    with self.lock:
                        self.messages.append(tx)
                    tx = None
                    say("250 2.0.0 Ok: stored")
                elif verb == "RSET":
                    tx = None
                    say("250 2.0.0 OK")
                elif verb == "NOOP":
                    say("250 2.0.0 OK")
                elif verb == "QUIT":
                    say("221 2.0.0 bye")
                    return
                else:
                    say("502 5.5.1 not here")
        except (ConnectionError, socket.timeout, OSError):
            return
