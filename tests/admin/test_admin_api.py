"""The JSON API on the HTTPS face: login required everywhere, CSRF,
bad input, and the operations of issue 5, checked against the store
through the API and the Unix socket."""

import hashlib
import json
import re
import socket
import ssl
import subprocess

import pytest
import requests

from .adminlib import ROOT

SPEC = json.loads((ROOT / "src" / "admin" / "openapi.json").read_text())
SAMPLE = {"name": "nobody@example.com", "id": "0000000000000001", "domain": "example.com"}
PUBLIC = {("/v1/openapi.json", "get"), ("/v1/session", "post")}


def operations():
    for path, item in SPEC["paths"].items():
        for method in ("get", "post", "put", "patch", "delete"):
            if method in item:
                yield path, method


def concrete(path):
    return re.sub(r"\{(\w+)\}", lambda m: SAMPLE[m.group(1)], path)


def test_every_operation_refused_without_session(og):
    for path, method in operations():
        if (path, method) in PUBLIC or path == "/metrics":
            continue
        r = requests.request(method, og.url + concrete(path), verify=False, json={})
        assert r.status_code == 401, (method, path, r.text)
        assert "error" in r.json()


def test_every_operation_answers_with_session(og, api):
    """Each documented operation exists and answers a documented status
    (never 'no route', never a 5xx)."""
    skip = {("/v1/session", "delete"), ("/v1/admin/password", "put")}
    for path, method in operations():
        if (path, method) in skip:
            continue
        body = "" if path.endswith("/import") else None
        kw = {"data": body} if body is not None else {"json": {}}
        r = api.request(method, og.url + concrete(path), **kw)
        op = SPEC["paths"][path][method]
        assert str(r.status_code) in op["responses"], (method, path, r.status_code, r.text)
        assert "no route" not in r.text


def test_metrics_loopback_and_content(og, api):
    r = requests.get(og.url + "/metrics", verify=False)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    for name in [
        "outguard_smtp_sessions_total",
        "outguard_smtp_auth_failures_total",
        "outguard_messages_accepted_total",
        "outguard_messages_refused_total",
        "outguard_queue_size",
        "outguard_locked_users",
    ]:
        assert re.search(rf"^{name} \d+$", r.text, re.M), name


def test_csrf_refused(og, api):
    bare = requests.Session()
    bare.verify = False
    bare.trust_env = False
    bare.cookies.update(api.cookies)
    r = bare.post(og.url + "/v1/users", json={"name": "csrf@example.com", "password": "longenough1"})
    assert r.status_code == 403 and "CSRF" in r.json()["error"]
    r = bare.post(
        og.url + "/v1/users",
        json={"name": "csrf@example.com", "password": "longenough1"},
        headers={"X-CSRF-Token": "wrong"},
    )
    assert r.status_code == 403
    # A page form without its token is refused too, and nothing changed.
    r = bare.post(og.url + "/users/new", data={"name": "csrf@example.com", "password": "longenough1"})
    assert r.status_code == 403
    assert api.get(og.url + "/v1/users/csrf@example.com").status_code == 404
    # Another site's Origin is refused even with a good token.
    r = api.post(og.url + "/v1/incoming/domains", json={"domain": "x.example"}, headers={"Origin": "https://evil.example"})
    assert r.status_code == 403


def state_changing():
    """Every documented operation that changes state, except logging in."""
    for path, method in operations():
        if method != "get" and (path, method) not in PUBLIC:
            yield path, method


@pytest.mark.parametrize("path,method", list(state_changing()), ids=lambda v: str(v))
def test_every_state_change_needs_the_csrf_token(og, api, path, method):
    """One case per state-changing route of the OpenAPI description: a valid
    session cookie without the token, or with a wrong one, is refused with
    403 and changes nothing."""
    last = max((e["id"] for e in api.get(og.url + "/v1/audit").json()["items"]), default=0)
    bare = requests.Session()
    bare.verify = False
    bare.trust_env = False
    bare.cookies.update(api.cookies)
    for headers in ({}, {"X-CSRF-Token": "not-the-token"}):
        r = bare.request(method, og.url + concrete(path), json={}, headers=headers)
        assert r.status_code == 403, (method, path, headers, r.status_code, r.text)
        assert "CSRF" in r.json()["error"]
    # The session is still good, and no change was audited.
    assert api.get(og.url + "/v1/health").status_code == 200
    newer = [e for e in api.get(og.url + "/v1/audit").json()["items"] if e["id"] > last]
    assert all(e["status"] >= 400 for e in newer), newer


def test_login_form_needs_its_token(og):
    s = requests.Session()
    s.verify = False
    s.trust_env = False
    r = s.post(og.url + "/login", data={"password": "admin-test-password", "csrf": "made-up"}, allow_redirects=False)
    assert r.status_code != 303 and "og_session" not in s.cookies
    page = s.get(og.url + "/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    r = s.post(og.url + "/login", data={"password": "admin-test-password", "csrf": token}, allow_redirects=False)
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    for attr in ["Secure", "HttpOnly", "SameSite=Strict"]:
        assert attr in cookie, cookie
    assert s.get(og.url + "/dashboard").status_code == 200


def test_json_login_needs_json(og):
    r = requests.post(og.url + "/v1/session", data={"password": "admin-test-password"}, verify=False)
    assert r.status_code == 415
    r = requests.post(og.url + "/v1/session", json={"password": "wrong-one"}, verify=False)
    assert r.status_code == 401


def test_bad_input_gets_4xx_with_message(og, api):
    u = og.url + "/v1/users"
    cases = [
        ({"name": "a@example.com", "password": "longenough1", "colour": "red"}, "colour"),
        ({"name": "a@example.com", "password": 12345678}, "invalid type"),
        ({"name": "not an address", "password": "longenough1"}, "neither"),
        ({"name": "a@exa_mple.com", "password": "longenough1"}, "domain"),
        ({"name": "a@example.com", "password": "longenough1", "settings": {"limit_per_day": -1}}, "invalid value"),
        ({"name": "a@example.com", "password": "short"}, "at least 8"),
        ({"name": "a@example.com"}, "password is required"),
        ({"name": "10.1.2.3", "password": "longenough1"}, "no password"),
    ]
    for body, words in cases:
        r = api.post(u, json=body)
        assert 400 <= r.status_code < 500, (body, r.status_code)
        assert words in r.json()["error"], (body, r.json())
    r = api.post(u, data="{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]
    r = api.patch(og.url + "/v1/settings", json={"defaults": {"limit_per_week": -5}})
    assert r.status_code == 400
    r = api.patch(og.url + "/v1/settings", json={"timezone": "Mars/Olympus"})
    assert r.status_code == 400 and "timezone" in r.json()["error"]
    r = api.post(og.url + "/v1/incoming/domains", json={"domain": "bad_domain!"})
    assert r.status_code == 400
    r = api.post(og.url + "/v1/incoming/users", json={"name": "x@not-protected.example"})
    assert r.status_code == 400 and "not a protected domain" in r.json()["error"]
    r = api.get(og.url + "/v1/audit?limit=0")
    assert r.status_code == 400


def test_user_lifecycle_is_audited(og, api):
    settings = {"auto_lock": False, "limit_per_day": 7, "quarantine_response": "accepted"}
    r = api.post(og.url + "/v1/users", json={"name": "Life@Example.com", "password": "longenough1", "settings": settings})
    assert r.status_code == 201, r.text
    u = r.json()
    assert u["name"] == "life@example.com" and u["effective"]["limit_per_day"] == 7
    r = api.patch(og.url + "/v1/users/life@example.com", json={"settings": {"limit_per_week": 9}, "clear": ["limit_per_day"]})
    assert r.json()["settings"]["limit_per_week"] == 9 and r.json()["settings"]["limit_per_day"] is None
    assert api.post(og.url + "/v1/users/life@example.com/lock", json={}).json()["locked"] is True
    assert api.post(og.url + "/v1/users/life@example.com/unlock").json()["locked"] is False
    assert api.delete(og.url + "/v1/users/life@example.com").status_code == 200
    audit = api.get(og.url + "/v1/audit?filter=life@example.com").json()["items"]
    actions = [e["action"] for e in audit]
    assert actions[:4] == [
        "DELETE /v1/users/life@example.com",
        "POST /v1/users/life@example.com/unlock",
        "POST /v1/users/life@example.com/lock",
        "PATCH /v1/users/life@example.com",
    ], actions
    assert all(e["who"] == "admin@127.0.0.1" for e in audit)


def test_incoming_directory_and_import(og, api):
    assert api.post(og.url + "/v1/incoming/domains", json={"domain": "corp.example"}).status_code == 201
    assert api.post(og.url + "/v1/incoming/domains", json={"domain": "corp.example"}).status_code == 409
    assert api.post(og.url + "/v1/incoming/users", json={"name": "Ann@corp.example"}).status_code == 201
    csv = "bob@corp.example\ncarl,corp.example\nbad line with spaces\ndora@new.example\n"
    r = api.post(og.url + "/v1/incoming/users/import", data=csv)
    assert r.status_code == 422 and r.json()["errors"][0]["line"] == 3
    r = api.post(og.url + "/v1/incoming/users/import?skip_invalid=true", data=csv)
    assert r.status_code == 200
    assert r.json()["added"] == ["bob@corp.example", "carl@corp.example", "dora@new.example"]
    assert r.json()["domains_added"] == ["new.example"]
    # An outgoing user that exists already is kept as it is.
    api.post(og.url + "/v1/users", json={"name": "ann@corp.example", "password": "ann-secret-1", "settings": {"limit_per_day": 3}})
    preview = api.post(og.url + "/v1/users/import-incoming?preview=true").json()
    assert "ann@corp.example" in preview["existing"] and "bob@corp.example" in preview["added"]
    assert api.get(og.url + "/v1/users/bob@corp.example").status_code == 404
    r = api.post(og.url + "/v1/users/import-incoming").json()
    assert set(r["added"]) >= {"bob@corp.example", "carl@corp.example", "dora@new.example"}
    ann = api.get(og.url + "/v1/users/ann@corp.example").json()
    assert ann["has_password"] is True and ann["settings"]["limit_per_day"] == 3
    bob = api.get(og.url + "/v1/users/bob@corp.example").json()
    assert bob["has_password"] is False and bob["settings"]["limit_per_day"] is None
    r = api.delete(og.url + "/v1/incoming/domains/new.example").json()
    assert r["users_deleted"] == 1
    names = [i["name"] for i in api.get(og.url + "/v1/incoming/users").json()["items"]]
    assert "dora@new.example" not in names and "carl@corp.example" in names


def test_csv_preview_and_export(og, api):
    csv = "user,domain,password\nera,exp.example,era-secret-1\nfil,exp.example,\n10.9.9.9,exp.example,\n"
    r = api.post(og.url + "/v1/users/import?preview=true", data=csv).json()
    assert [e["line"] for e in r["errors"]] == [3]
    assert [a["name"] for a in r["add"]] == ["era@exp.example", "10.9.9.9"]
    assert api.get(og.url + "/v1/users/era@exp.example").status_code == 404
    r = api.post(og.url + "/v1/users/import", data=csv.replace("fil,exp.example,", "fil,exp.example,fil-secret-1"))
    assert r.status_code == 200 and len(r.json()["added"]) == 3
    export = api.get(og.url + "/v1/users/export").json()["csv"]
    assert "era@exp.example,exp.example,address,true,active" in export
    assert "argon2" not in export and "secret" not in export
    page = api.get(og.url + "/users/export.csv")
    assert page.headers["content-type"].startswith("text/csv") and page.text == export


def test_logs_search(og, api):
    api.post(og.url + "/v1/users", json={"name": "logged@example.com", "password": "longenough1"})
    lines = api.get(og.url + "/v1/logs", params={"q": "logged@example.com"}).json()
    assert any("user added" in line for line in lines), lines
    assert api.get(og.url + "/v1/logs", params={"nope": "1"}).status_code == 400


def served_fingerprint(port):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port)) as s, ctx.wrap_socket(s) as t:
        return hashlib.sha256(t.getpeercert(binary_form=True)).hexdigest().upper()


def test_tls_certificate_upload(og, api, tmp_path):
    before = served_fingerprint(og.port)
    assert before == api.get(og.url + "/v1/tls/certificate").json()["sha256_fingerprint"].replace(":", "")
    key, crt = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", key, "-out", crt, "-days", "30", "-subj", "/CN=new.outguard.test"],
        check=True, capture_output=True,
    )
    other = tmp_path / "o.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", other], check=True)
    r = api.put(og.url + "/v1/tls/certificate", json={"certificate": crt.read_text(), "private_key": other.read_text()})
    assert r.status_code == 400 and "match" in r.json()["error"]
    r = api.put(og.url + "/v1/tls/certificate", json={"certificate": "junk", "private_key": key.read_text()})
    assert r.status_code == 400
    assert served_fingerprint(og.port) == before
    r = api.put(og.url + "/v1/tls/certificate", json={"certificate": crt.read_text(), "private_key": key.read_text()})
    assert r.status_code == 200, r.text
    after = served_fingerprint(og.port)
    assert after != before and after == r.json()["sha256_fingerprint"].replace(":", "")
    # The SMTP listener on 465 serves it too, and it is on disk for the next start.
    assert served_fingerprint(og.smtps) == after
    assert (og.data / "tls" / "cert.pem").read_text() == crt.read_text()


def test_cli_and_socket_drive_the_same_api(og, api, tmp_path):
    og.cli("user", "add", "cli@sock.example", "--password-stdin", "--limit-day", "4", stdin="cli-secret-1\n")
    assert api.get(og.url + "/v1/users/cli@sock.example").json()["effective"]["limit_per_day"] == 4
    status, body = og.socket_call("POST", "/v1/incoming/domains", {"domain": "sock.example"})
    assert status == 201
    og.cli("incoming", "add-user", "sam@sock.example")
    csv = tmp_path / "incoming.csv"
    csv.write_text("tim,sock.example\nnot an address\n")
    r = og.cli("incoming", "import", str(csv), check=False)
    assert r.returncode != 0 and "line 2" in r.stderr
    out = og.cli("incoming", "import", str(csv), "--skip-invalid").stdout
    assert "added: tim@sock.example" in out and "skipped line 2" in out
    assert {"sam@sock.example", "tim@sock.example"} <= {i["name"] for i in api.get(og.url + "/v1/incoming/users").json()["items"]}
    assert "would add" in og.cli("incoming", "to-outgoing", "--preview").stdout
    out = og.cli("incoming", "to-outgoing").stdout
    assert "sam@sock.example" in out and "no password" in out
    assert api.get(og.url + "/v1/users/sam@sock.example").json()["has_password"] is False
    export = og.cli("export").stdout
    assert export.startswith("user,domain,kind,has_password,status") and "sam@sock.example" in export
    og.cli("user", "lock", "cli@sock.example")
    assert api.get(og.url + "/v1/users/cli@sock.example").json()["lock"]["state"] == "locked_by_admin"
    audit = api.get(og.url + "/v1/audit?filter=root@control-socket").json()["items"]
    assert {"POST /v1/users/cli@sock.example/lock", "POST /v1/incoming/users"} <= {e["action"] for e in audit}
    assert "POST /v1/users/import-incoming" in og.cli("audit", "--filter", "import-incoming").stdout
    assert "user added" in og.cli("logs", "cli@sock.example").stdout
    assert og.cli("tls", "show").stdout.startswith("sha256 ")


def page_token(s, url):
    return re.search(r'name="csrf" value="([^"]+)"', s.get(url).text).group(1)


def test_route_table_edges_on_both_faces(og, api):
    """The one router answers its edges as the segment-by-segment matchers
    did, on HTTPS and on the socket alike: a static segment that is also a
    name reaches the route of that name; any other path or method under /v1
    is the API's 404, audited when it could change something; outside /v1
    the socket says where the API lives."""
    for method, path in [
        ("GET", "/v1/users/import"),
        ("PATCH", "/v1/users/export"),
        ("DELETE", "/v1/users/import-incoming"),
        ("POST", "/v1/users/import/lock"),
        ("DELETE", "/v1/incoming/users/import"),
    ]:
        r = api.request(method, og.url + path, json={})
        assert r.status_code == 400 and "no route" not in r.json()["error"], (method, path, r.text)
        status, body = og.socket_call(method, path, {})
        assert (status, body) == (r.status_code, r.json()), (method, path)
    r = api.put(og.url + "/v1/users", json={})
    assert (r.status_code, r.json()["error"]) == (404, "no route PUT /v1/users")
    assert og.socket_call("PUT", "/v1/users", {}) == (404, {"error": "no route PUT /v1/users"})
    assert og.socket_call("POST", "/v1/no/such/route", {}) == (404, {"error": "no route POST /v1/no/such/route"})
    assert og.socket_call("GET", "/elsewhere")[0] == 404
    assert "under /v1/" in og.socket_call("GET", "/elsewhere")[1]["error"]
    audit = api.get(og.url + "/v1/audit?filter=no/such").json()["items"]
    assert [(e["who"], e["action"], e["status"]) for e in audit] == [
        ("root@control-socket", "POST /v1/no/such/route", 404)
    ]


def test_settings_page_saves_typed_values(og, api):
    page = og.url + "/settings"
    token = page_token(api, page)
    before = api.get(og.url + "/v1/settings").json()
    form = {
        "csrf": token,
        "timezone": "Europe/Paris",
        "ip_auth": "false",  # the hidden field of an unticked checkbox
        "sender_check": "exact",
        "quarantine": ["false", "true"],  # hidden field, then the ticked box
        "quarantine_retention_days": "21",
        "admin_address": "postmaster@example.com",
        "defaults.limit_per_day": "321",
        "defaults.auto_lock": ["false", "true"],
    }
    r = api.post(page, data=form, allow_redirects=False)
    assert r.status_code == 303, r.text
    s = api.get(og.url + "/v1/settings").json()
    assert s["timezone"] == "Europe/Paris" and s["ip_auth"] is False and s["sender_check"] == "exact"
    assert s["quarantine"] is True and s["quarantine_retention_days"] == 21
    assert s["defaults"]["limit_per_day"] == 321 and s["defaults"]["auto_lock"] is True
    assert s["defaults"]["limit_per_week"] == before["defaults"]["limit_per_week"]
    # A negative number is refused with a message and changes nothing.
    form.update({"csrf": page_token(api, page), "defaults.limit_per_day": "-4"})
    r = api.post(page, data=form)
    assert r.status_code == 400 and "must not be negative" in r.text
    assert api.get(og.url + "/v1/settings").json()["defaults"]["limit_per_day"] == 321
    api.patch(og.url + "/v1/settings", json={k: before[k] for k in ("timezone", "ip_auth", "sender_check")})


def test_pages_escape_what_they_show(og, api):
    api.post(og.url + "/v1/users", json={"name": "<script>alert(1)</script>", "password": "longenough1"})
    page = api.get(og.url + "/audit").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>" not in page
    r = api.get(og.url + "/users?filter=%3Cb%3Ex")
    assert 'value="&lt;b&gt;x"' in r.text and "<b>x" not in r.text
    assert "script-src" not in r.headers["content-security-policy"]  # no script at all
    assert "default-src 'none'" in r.headers["content-security-policy"]


def test_certificate_page_refuses_a_bad_upload(og, api, tmp_path):
    before = served_fingerprint(og.port)
    token = page_token(api, og.url + "/tls")
    r = api.post(
        og.url + "/tls",
        data={"csrf": token},
        files={"certificate": ("c.pem", b"not a certificate"), "private_key": ("k.pem", b"nor a key")},
    )
    assert r.status_code == 400 and "certificate" in r.text
    assert served_fingerprint(og.port) == before


def test_hold_reasons_and_behaviour_on_the_pages(og, api):
    """A held message names its fate and reasons on the quarantine page; the
    user's page shows its sending behaviour and the hold in its history."""
    from .adminlib import submit_spam

    name = "held@pages.example"
    settings = {"auto_lock": False, "quarantine_response": "accepted"}
    r = api.post(og.url + "/v1/users", json={"name": name, "password": "held-secret-1", "settings": settings})
    assert r.status_code == 201, r.text
    submit_spam(og, name, "held-secret-1")
    [q] = [q for q in api.get(og.url + "/v1/quarantine").json()["items"] if q["user"] == name]
    assert q["fate"] == "hold" and "automatic lock is off" in q["reasons"][0]
    page = api.get(og.url + "/quarantine").text
    assert "spam (hold)" in page
    page = api.get(og.url + "/users/" + name).text
    assert 'id="behaviour"' in page and "Usual busiest hour" in page
    assert "held: spam score" in page and "at or above the lock score" in page
    api.delete(og.url + "/v1/quarantine/" + q["id"])
    api.delete(og.url + "/v1/users/" + name)


def test_incoming_page_lists_domains_and_users_a_page_at_a_time(og, api):
    """The incoming page shows the protected domains and the incoming users
    (each with its Delete form), 100 a page, each list with its own links."""
    import html

    def rows(page, table):
        body = re.search(rf'<table id="{table}">.*?<tbody>(.*?)</tbody>', page, re.S).group(1)
        return re.findall(r"<tr><td>([^<]*)</td>", body)

    def link(page, id):
        tag = re.search(rf'<a [^>]*id="{id}"[^>]*>', page)
        return tag and html.unescape(re.search(r'href="([^"]*)"', tag.group(0)).group(1))

    assert api.post(og.url + "/v1/incoming/domains", json={"domain": "inc-page.example"}).status_code == 201
    want = [f"u{i:03d}@inc-page.example" for i in range(105)]
    assert api.post(og.url + "/v1/incoming/users/import", data="".join(n + "\n" for n in want)).status_code == 200
    page = api.get(og.url + "/incoming").text
    assert "inc-page.example" in rows(page, "domains")
    assert 'action="/incoming/domains/inc-page.example/delete"' in page
    assert 'action="/incoming/users/u000%40inc-page.example/delete"' in page
    first = rows(page, "incoming-users")
    assert len(first) == 100 and first == sorted(first)
    assert link(page, "users-first") is None and link(page, "domains-next") is None
    page2 = api.get(og.url + link(page, "users-next")).text
    second = rows(page2, "incoming-users")
    assert second and not set(first) & set(second) and set(want) <= set(first) | set(second)
    assert link(page2, "users-first") == "/incoming"
    assert "inc-page.example" in rows(page2, "domains")
    api.delete(og.url + "/v1/incoming/domains/inc-page.example")


def test_dkim_page_and_api_are_paged_over_https(og, api):
    """105 Ed25519 keys: the HTTPS API answers them a page at a time in
    domain order, and the DKIM page shows 100 with a Next page link to
    the other 5, and a First page link back."""
    import html

    def rows(page):
        body = re.search(r'<table id="dkim">.*?<tbody>(.*?)</tbody>', page, re.S).group(1)
        return re.findall(r"<tr><td>([^<]*)</td>", body)

    def link(page, id):
        tag = re.search(rf'<a [^>]*id="{id}"[^>]*>', page)
        return tag and html.unescape(re.search(r'href="([^"]*)"', tag.group(0)).group(1))

    want = [f"p{i:03d}.dkim-page.example" for i in range(105)]
    for d in reversed(want):
        r = api.post(og.url + "/v1/dkim/" + d, json={"algorithm": "ed25519"})
        assert r.status_code == 200, r.text
    try:
        got, after = [], None
        while True:
            r = api.get(og.url + "/v1/dkim", params={"limit": 30, **({"after": after} if after else {})})
            assert r.status_code == 200, r.text
            body = r.json()
            assert len(body["items"]) <= 30
            got += [d["domain"] for d in body["items"]]
            after = body["next"]
            if after is None:
                break
        assert [d for d in got if d.endswith(".dkim-page.example")] == want and got == sorted(got)
        for q in ("limit=0", "limit=1001", "after=not%20a%20domain"):
            r = api.get(og.url + "/v1/dkim?" + q)
            assert r.status_code == 400 and r.json()["error"], (q, r.text)
        page = api.get(og.url + "/dkim").text
        first = rows(page)
        assert len(first) == 100 and first == sorted(first)
        assert link(page, "page-first") is None
        page2 = api.get(og.url + link(page, "page-next")).text
        second = rows(page2)
        assert second and not set(first) & set(second) and set(want) <= set(first) | set(second)
        assert link(page2, "page-first") == "/dkim" and link(page2, "page-next") is None
    finally:
        for d in want:
            api.delete(og.url + "/v1/dkim/" + d)
