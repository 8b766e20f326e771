"""Outgoing content scanning end to end through real SMTP sessions:
spam (GTUBE), malware (EICAR in every encoding and in nested zips),
dangerous attachments, the quarantine response (Rejected/Accepted) with
quarantine on and off, automatic lock with timeouts and maximum unlocks,
release from quarantine, and hostile MIME that must stay within bounds."""

import base64
import io
import json
import quopri
import zipfile
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import pytest

from conftest import ham, login, send_message, wait_for

USER = "alice@example.com"
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


def message(subject="Report", text="Hi Bob,\n\nplease find the file attached.\n\nAlice\n", attachments=()):
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = USER, "bob@remote.example", subject
    m["Date"], m["Message-ID"] = formatdate(), make_msgid(domain="example.com")
    m.set_content(text)
    for name, data, ctype in attachments:
        maintype, subtype = ctype.split("/")
        m.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return m.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n").decode("latin-1")


def raw_part(encoding, payload):
    """A message whose one attachment is encoded by hand."""
    if encoding == "base64":
        body = base64.encodebytes(payload).decode()
    elif encoding == "quoted-printable":
        body = quopri.encodestring(payload).decode()
    else:
        raise ValueError(encoding)
    return (
        f"From: {USER}\r\nTo: bob@remote.example\r\nSubject: file\r\nDate: {formatdate()}\r\n"
        f"Message-ID: {make_msgid()}\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
        f'--b1\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="f.bin"\r\n'
        f"Content-Transfer-Encoding: {encoding}\r\n\r\n{body.replace(chr(10), chr(13) + chr(10))}\r\n--b1--\r\n"
    )


def zipped(name, data, depth=1):
    for i in range(depth):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr(name, data)
        data, name = buf.getvalue(), f"layer{i}.zip"
    return data


def uuencoded(name, data):
    import binascii

    lines = [f"begin 644 {name}"]
    for i in range(0, len(data), 45):
        lines.append(binascii.b2a_uu(data[i:i + 45]).decode().rstrip("\n"))
    lines += ["`", "end"]
    return (
        f"From: {USER}\r\nTo: bob@remote.example\r\nSubject: uu\r\nDate: {formatdate()}\r\n"
        f"Message-ID: {make_msgid()}\r\n\r\nHere it is:\r\n\r\n" + "\r\n".join(lines) + "\r\n"
    )


def submit(daemon, body, user=USER):
    r = login(daemon.submission, user)
    try:
        return send_message(r, user, ["bob@remote.example"], body=body)
    finally:
        r.close()


@pytest.fixture
def scanning(make_daemon):
    d = make_daemon(housekeeping_secs=1)
    d.add_user(USER, auto_lock="off")
    return d


def test_gtube_is_caught_rejected_and_quarantined(scanning):
    code, text = submit(scanning, message(text=f"Hello\n\n{GTUBE}\n"))
    assert code == 550 and text.startswith("550 5.7.1 Message refused: spam detected (GTUBE")
    [q] = scanning.api("GET", "/v1/quarantine")[1]["items"]
    assert q["class"] == "spam" and q["user"] == USER and q["recipients"] == ["bob@remote.example"]
    assert scanning.queue() == []
    # Caught mail counts nothing against the limits.
    assert scanning.user(USER)["usage"]["day"] == 0


@pytest.mark.parametrize(
    "case",
    ["plain", "base64", "quoted-printable", "uuencode", "zip", "zip-in-zip", "zip-in-zip-in-zip"],
)
def test_eicar_is_caught(scanning, case):
    if case == "plain":
        body = message(text="Test file follows:\n" + EICAR.decode() + "\n")
    elif case == "uuencode":
        body = uuencoded("eicar.com", EICAR)
    elif case in ("base64", "quoted-printable"):
        body = raw_part(case, EICAR)
    else:
        depth = case.count("zip")
        body = message(attachments=[("files.zip", zipped("eicar.com", EICAR, depth), "application/zip")])
    code, text = submit(scanning, body)
    assert code == 550 and "malware detected" in text, text
    [q] = scanning.api("GET", "/v1/quarantine")[1]["items"]
    assert q["class"] == "malware"


def test_clean_pdf_passes_and_double_extension_is_caught(scanning):
    pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
    code, text = submit(scanning, message(subject="Quarterly report", attachments=[("report.pdf", pdf, "application/pdf")]))
    assert code == 250, text
    assert len(scanning.queue()) == 1
    code, text = submit(scanning, message(subject="Invoice", attachments=[("invoice.pdf.exe", pdf, "application/octet-stream")]))
    assert code == 550 and "malware detected" in text, text


@pytest.mark.parametrize("response", ["rejected", "accepted"])
@pytest.mark.parametrize("quarantine", [True, False])
def test_quarantine_response_combinations(make_daemon, response, quarantine):
    d = make_daemon()
    d.add_user(USER, auto_lock="off", quarantine_response=response)
    d.settings(quarantine=quarantine)
    code, text = submit(d, message(text=f"{GTUBE}\n"))
    if response == "rejected":
        assert code == 550 and "spam detected" in text
    else:
        assert code == 250 and "queued as" in text
    held = d.api("GET", "/v1/quarantine")[1]["items"]
    assert len(held) == (1 if quarantine else 0)
    # Never delivered either way.
    assert d.queue() == []


def test_automatic_lock_timeout_and_maximum_unlocks(make_daemon):
    d = make_daemon(housekeeping_secs=1)
    d.set_clock("2026-11-27T10:00:00Z")
    d.add_user(USER, lock_timeout=10, max_unlocks=1)
    assert submit(d, message(text=GTUBE))[0] == 550
    u = d.user(USER)
    assert u["locked"] and u["status"] == "account is locked until 2026-11-27 10:10 UTC"
    code, text = submit(d, ham())
    assert (code, text) == (550, "550 5.7.1 account is locked until 2026-11-27 10:10 UTC")
    # The timeout passes: unlocked by timeout (counted, logged, in history).
    d.set_clock("2026-11-27T10:10:30Z")
    wait_for(lambda: d.user(USER)["unlocks_by_timeout"] == 1, what="unlock by timeout")
    d.wait_log("user unlocked by timeout")
    assert any("unlocked by timeout" in h["event"] for h in d.user(USER)["history"])
    assert submit(d, ham())[0] == 250
    # Maximum unlocks used up: the next lock waits for an admin.
    assert submit(d, message(text=GTUBE))[0] == 550
    assert d.user(USER)["status"] == "account is locked until an administrator unlocks it"
    d.set_clock("2026-12-05T10:00:00Z")
    assert submit(d, ham())[0] == 550
    d.cli("user", "unlock", USER)
    assert submit(d, ham())[0] == 250
    d.wait_log("user locked automatically")


def test_lock_notice_goes_to_admin(make_daemon):
    d = make_daemon()
    d.add_user(USER)
    d.settings(admin_address="admin@example.com")
    assert submit(d, message(text=GTUBE))[0] == 550
    [notice] = d.queue()
    assert notice["sender"] == "" and [r["address"] for r in notice["recipients"]] == ["admin@example.com"]
    headers = d.api("GET", "/v1/queue/" + notice["id"])[1]["headers"]
    assert f"Subject: Outguard: {USER} locked" in headers


def test_release_and_delete_from_quarantine(scanning):
    submit(scanning, message(text=GTUBE))
    submit(scanning, message(text=GTUBE + " again"))
    first, second = scanning.api("GET", "/v1/quarantine")[1]["items"]
    shown = json.loads(scanning.cli("quarantine", "show", first["id"], "--json").stdout)
    assert "Subject: Report" in shown["headers"] and shown["reasons"]
    out = scanning.cli("quarantine", "release", first["id"]).stdout
    queue_id = out.strip().rsplit(" ", 1)[1]
    [queued] = scanning.queue()
    assert queued["id"] == queue_id and queued["sender"] == USER
    scanning.cli("quarantine", "delete", second["id"])
    assert scanning.api("GET", "/v1/quarantine")[1]["items"] == []
    assert scanning.api("POST", f"/v1/quarantine/{second['id']}/release")[0] == 404


def test_hostile_mime_is_refused_within_bounds(scanning):
    # 100k parts.
    parts = "".join("--b\r\nContent-Type: text/plain\r\n\r\nx\r\n" for _ in range(100_000))
    bomb = (
        f"From: {USER}\r\nTo: bob@remote.example\r\nSubject: parts\r\nDate: {formatdate()}\r\n"
        f"Message-ID: {make_msgid()}\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/mixed; boundary="b"\r\n\r\n{parts}--b--\r\n'
    )
    assert submit(scanning, bomb)[:1] == (451,)
    # Archives nested deeper than the bound.
    deep = message(attachments=[("deep.zip", zipped("a.txt", b"hello", 12), "application/zip")])
    code, text = submit(scanning, deep)
    assert code == 451 and text == "451 4.7.1 Message could not be scanned, try again later"
    # A zip bomb: 200 MB of zeros in a small archive.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("zeros.bin", "w") as f:
            chunk = b"\0" * (1 << 20)
            for _ in range(200):
                f.write(chunk)
    assert submit(scanning, message(attachments=[("big.zip", buf.getvalue(), "application/zip")]))[0] == 451
    scanning.wait_log("scan failed")
    assert scanning.queue() == [] and scanning.alive()
    assert submit(scanning, ham())[0] == 250


def test_failure_action_reject(make_daemon):
    d = make_daemon(scan={"failure_action": "reject"})
    d.add_user(USER)
    deep = message(attachments=[("deep.zip", zipped("a.txt", b"hello", 12), "application/zip")])
    assert submit(d, deep) == (554, "554 5.7.0 Message could not be scanned")


def test_scan_command_prints_verdict(tmp_path):
    import subprocess

    from conftest import BIN

    f = tmp_path / "m.eml"
    f.write_text(message(text=GTUBE))
    out = subprocess.run([str(BIN), "scan", str(f)], capture_output=True, text=True).stdout
    assert "verdict: spam" in out and "GTUBE" in out


def test_released_message_reaches_the_next_hop(make_daemon):
    from delivery.delivery_support import Sink

    sink = Sink()
    try:
        d = make_daemon(delivery={"smarthost": f"127.0.0.1:{sink.port}", "starttls": "opportunistic", "poll_interval_ms": 200})
        d.add_user(USER, auto_lock="off")
        assert submit(d, message(subject="Held back", text=GTUBE))[0] == 550
        [q] = d.api("GET", "/v1/quarantine")[1]["items"]
        # Quarantined mail is never delivered on its own.
        assert sink.received() == []
        d.cli("quarantine", "release", q["id"])
        wait_for(lambda: sink.received(), timeout=60, what="the released message at the sink")
        [got] = sink.received()
        assert got["rcpt_tos"] == ["bob@remote.example"] and b"Subject: Held back" in got["content"]
    finally:
        sink.stop()


def test_dashboard_counts_refused_and_caught_today(make_daemon):
    d = make_daemon()
    d.set_clock("2026-11-27T10:00:00Z")
    d.add_user(USER, auto_lock="off", limit_day=1)
    assert submit(d, message(text=GTUBE))[0] == 550  # caught counts nothing
    assert submit(d, ham())[0] == 250
    assert submit(d, ham())[0] == 451  # over the daily limit
    dash = d.api("GET", "/v1/dashboard")[1]
    assert dash["today"] == "2026-11-27"
    assert (dash["messages_accepted_today"], dash["messages_caught_today"]) == (1, 1)
    # A limit refusal at MAIL is not a message; the caught one was refused too.
    assert dash["messages_refused_today"] == 0
    d.add_user("carol@example.com")
    r = login(d.submission, "carol@example.com")
    code, _ = send_message(r, "carol@example.com", ["bob@remote.example"], body="Subject: x\r\n\r\nbare\nlf\r\n")
    assert code == 550
    assert d.api("GET", "/v1/dashboard")[1]["messages_refused_today"] == 1
    d.set_clock("2026-11-28T00:00:01Z")
    dash = d.api("GET", "/v1/dashboard")[1]
    assert (dash["messages_refused_today"], dash["messages_caught_today"], dash["messages_accepted_today"]) == (0, 0, 0)


def test_dashboard_counts_locked_users(make_daemon):
    """The dashboard's locked-user count, kept in the store rather than
    counted over every user, matches the users listed as locked through an
    automatic lock, a lock by hand, an unlock, a timed unlock, a delete and
    a restart (the store opened again)."""
    d = make_daemon(housekeeping_secs=1)
    d.set_clock("2026-11-27T10:00:00Z")
    for name in (USER, "bob@example.com", "carol@example.com"):
        d.add_user(name, lock_timeout=10)

    def listed():
        return sorted(u["name"] for u in json.loads(d.cli("user", "list", "--status", "locked", "--json").stdout))

    def matches(names):
        wait_for(lambda: d.api("GET", "/v1/dashboard")[1]["locked_users"] == len(names), what=f"{len(names)} locked")
        assert listed() == sorted(names)

    matches([])
    assert submit(d, message(text=GTUBE))[0] == 550  # locked automatically, for 10 minutes
    matches([USER])
    d.cli("user", "lock", "bob@example.com")
    d.cli("user", "lock", "carol@example.com")
    matches([USER, "bob@example.com", "carol@example.com"])
    d.cli("user", "unlock", "bob@example.com")
    matches([USER, "carol@example.com"])
    d.set_clock("2026-11-27T10:10:30Z")  # the timed lock ends (housekeeping)
    matches(["carol@example.com"])
    d.cli("user", "lock", "bob@example.com")
    d.cli("user", "delete", "carol@example.com")
    matches(["bob@example.com"])
    d.stop()
    d.start()
    matches(["bob@example.com"])
