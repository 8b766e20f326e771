"""Paged lists (issue 16, "Scale"): every list of the control API answers
`{"items": [...], "next": cursor or null}` for `?limit=N&after=cursor`.
Walking the pages must give every row once, in the documented order, each
page within its limit; a bad limit or cursor is a 400 that says why; the CLI
follows the cursors to the end."""

import json

import pytest

from conftest import login, send_message

DOMAIN = "paging.example"
N = 320  # more than three default pages of 100
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
SENDER = "sender@example.com"


def walk(d, path, limit):
    """Every page of `path`, as a list of item lists, checking each answer."""
    pages, after, sep = [], None, "&" if "?" in path else "?"
    while True:
        uri = f"{path}{sep}limit={limit}" + (f"&after={after}" if after else "")
        status, body = d.api("GET", uri)
        assert status == 200, (uri, body)
        assert set(body) == {"items", "next"}, body
        assert len(body["items"]) <= limit
        pages.append(body["items"])
        if body["next"] is None:
            return pages
        after = body["next"]
        assert len(pages) < 1000, "the cursor does not move on"


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    """A daemon with N passwordless outgoing users (made the fast real way:
    incoming users imported as outgoing ones, no password hashing), N
    incoming users, some queued and some quarantined messages."""
    from conftest import Daemon

    d = Daemon(tmp_path_factory.mktemp("paging")).start()
    assert d.api("POST", "/v1/incoming/domains", {"domain": DOMAIN})[0] == 201
    # Not in name order on purpose: the store, not the file, gives the order.
    names = [f"u{(i * 7919) % N:04d}@{DOMAIN}" for i in range(N)]
    status, body = d.api("POST", "/v1/incoming/users/import", "\n".join(names).encode() + b"\n")
    assert status == 200, body
    status, body = d.api("POST", "/v1/users/import-incoming")
    assert status == 200 and len(body["added"]) == N, body
    d.add_user(SENDER, auto_lock="off")
    r = login(d.submission, SENDER)
    try:
        for i in range(7):
            code, text = send_message(r, SENDER, [f"rcpt{i}@remote.example"])
            assert code == 250, text
        for i in range(5):
            body = f"From: {SENDER}\r\nTo: x@remote.example\r\nSubject: held {i}\r\n\r\n{GTUBE}\r\n"
            code, text = send_message(r, SENDER, [f"held{i}@remote.example"], body=body)
            assert code == 550, text
    finally:
        r.close()
    yield d
    d.stop()


def test_users_are_paged_in_name_order_without_gaps_or_duplicates(many):
    pages = walk(many, "/v1/users", 70)
    names = [u["name"] for page in pages for u in page]
    assert len(pages) == 5 and [len(p) for p in pages] == [70, 70, 70, 70, 41]
    assert names == sorted(names) and len(set(names)) == len(names)
    expected = {f"u{i:04d}@{DOMAIN}" for i in range(N)} | {SENDER}
    assert set(names) == expected
    # The default page is 100, and says where to go on.
    status, body = many.api("GET", "/v1/users")
    assert status == 200 and len(body["items"]) == 100 and body["next"] == names[99]
    # A filter pages too, over the matching users only.
    pages = walk(many, "/v1/users?filter=u00", 30)
    assert [u["name"] for p in pages for u in p] == [f"u{i:04d}@{DOMAIN}" for i in range(100)]
    pages = walk(many, "/v1/users?status=active", 1000)
    assert len(pages) == 1 and len(pages[0]) == N + 1


def test_incoming_users_are_paged(many):
    pages = walk(many, "/v1/incoming/users", 64)
    names = [u["name"] for p in pages for u in p]
    assert names == [f"u{i:04d}@{DOMAIN}" for i in range(N)]
    assert [len(p) for p in pages] == [64] * 5
    [[domain]] = walk(many, "/v1/incoming/domains", 10)
    assert domain["name"] == DOMAIN


def test_queue_and_quarantine_are_paged_in_id_order(many):
    queue = walk(many, "/v1/queue", 3)
    assert [len(p) for p in queue] == [3, 3, 1]
    ids = [e["id"] for p in queue for e in p]
    assert ids == sorted(ids) and len(set(ids)) == 7
    assert [e["recipients"][0]["address"] for p in queue for e in p] == [
        f"rcpt{i}@remote.example" for i in range(7)
    ]
    held = walk(many, "/v1/quarantine", 2)
    assert [len(p) for p in held] == [2, 2, 1]
    assert [e["recipients"] for p in held for e in p] == [[f"held{i}@remote.example"] for i in range(5)]
    # A filtered queue pages over what matches.
    [only] = walk(many, f"/v1/queue?user={SENDER}&state=queued", 100)
    assert len(only) == 7


def test_audit_log_is_paged_newest_first(many):
    for i in range(5):
        many.api("DELETE", f"/v1/users/u{i:04d}@{DOMAIN}")
    pages = walk(many, "/v1/audit", 2)
    ids = [e["id"] for p in pages for e in p]
    assert len(ids) >= 5 and ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)
    deleted = [e["action"] for p in pages for e in p if e["action"].startswith("DELETE")]
    assert deleted == [f"DELETE /v1/users/u{i:04d}@{DOMAIN}" for i in reversed(range(5))]


@pytest.mark.parametrize("path", ["/v1/users", "/v1/queue", "/v1/quarantine", "/v1/audit",
                                  "/v1/incoming/users", "/v1/incoming/domains", "/v1/dkim"])
def test_bad_limits_are_refused_with_the_range(many, path):
    for bad in ("0", "1001", "-1", "ten", ""):
        status, body = many.api("GET", f"{path}?limit={bad}")
        assert status == 400 and "limit must be 1 to 1000" in body["error"], (path, bad, body)
    status, body = many.api("GET", f"{path}?limit=1000")
    assert status == 200 and len(body["items"]) <= 1000


def test_bad_cursors_are_refused(many):
    for path in ("/v1/queue", "/v1/quarantine"):
        status, body = many.api("GET", f"{path}?after=not-an-id")
        assert status == 400 and "after must be an id" in body["error"], body
    status, body = many.api("GET", "/v1/audit?after=x")
    assert status == 400 and "after must be an audit entry id" in body["error"], body
    # A name cursor past the end is an empty last page.
    status, body = many.api("GET", "/v1/users?after=zzzz")
    assert status == 200 and body == {"items": [], "next": None}


def test_cli_lists_follow_every_page(many):
    users = json.loads(many.cli("user", "list", "--json").stdout)
    names = [u["name"] for u in users]
    assert len(names) > 300 and names == sorted(names) and len(set(names)) == len(names)
    text = many.cli("incoming", "users").stdout.splitlines()
    assert len(text) == N
    assert len(json.loads(many.cli("queue", "list", "--json").stdout)) == 7
    assert len(json.loads(many.cli("quarantine", "list", "--json").stdout)) == 5
    # The audit log's --limit counts entries, over as many pages as it takes.
    assert len(json.loads(many.cli("audit", "--limit", "3", "--json").stdout)) == 3


DKIM_N = 105  # more than one default page of 100


def test_dkim_domains_are_paged_in_domain_order(many):
    # Ed25519 keys, made in an order that is not the domains' order.
    want = sorted(f"k{(i * 37) % DKIM_N:03d}.dkim.example" for i in range(DKIM_N))
    for i in range(DKIM_N):
        status, body = many.api("POST", f"/v1/dkim/k{(i * 37) % DKIM_N:03d}.dkim.example",
                                {"algorithm": "ed25519"})
        assert status == 200, body
    pages = walk(many, "/v1/dkim", 40)
    assert [len(p) for p in pages] == [40, 40, 25]
    assert [d["domain"] for p in pages for d in p] == want
    assert all(d["active"]["algorithm"] == "ed25519" and d["active"]["zone"] for p in pages for d in p)
    # The default page is 100; the cursor is the last domain shown.
    status, body = many.api("GET", "/v1/dkim")
    assert status == 200 and len(body["items"]) == 100 and body["next"] == want[99]
    status, body = many.api("GET", f"/v1/dkim?after={want[99]}")
    assert status == 200 and [d["domain"] for d in body["items"]] == want[100:] and body["next"] is None
    # A cursor that is no domain is refused; one past the end is an empty last page.
    for bad in ("not a domain", "-x-", "a..b"):
        status, body = many.api("GET", f"/v1/dkim?after={bad.replace(' ', '%20')}")
        assert status == 400 and "after must be a domain" in body["error"], (bad, body)
    status, body = many.api("GET", "/v1/dkim?after=zzzz.example")
    assert status == 200 and body == {"items": [], "next": None}
    # The CLI follows every page.
    listed = json.loads(many.cli("dkim", "list", "--json").stdout)
    assert [d["domain"] for d in listed] == want
    text = many.cli("dkim", "list").stdout.splitlines()
    assert [line.split()[0] for line in text] == want
