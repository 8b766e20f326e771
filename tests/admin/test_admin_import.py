"""The page's import of a file of more than one batch (1,000 users): it
runs as a background job and the page shows its progress until done."""

import re
import time

from .adminlib import Daemon


def test_page_follows_a_background_import(built):
    og = Daemon()
    try:
        s = og.login()
        csv = "".join(f"p{i},page.example,page-pass-{i:04d}\n" for i in range(1001))
        form = {"csrf": s.headers["X-CSRF-Token"], "action": "import", "csv": csv}
        r = s.post(og.url + "/users/import", data=form, allow_redirects=False)
        assert r.status_code in (302, 303), r.text[:500]
        where = r.headers["location"]
        assert re.fullmatch(r"/users/import/\d+", where), where
        seen_progress = False
        for _ in range(600):
            r = s.get(og.url + where, allow_redirects=False)
            if r.status_code == 200:
                assert 'id="import-progress"' in r.text and 'http-equiv="refresh"' in r.text
                seen_progress = True
                time.sleep(0.5)
                continue
            break
        assert r.status_code in (302, 303) and r.headers["location"] == "/users", r.text[:500]
        assert seen_progress, "the import finished before the page could show it"
        page = s.get(og.url + "/users").text
        assert "Imported 1001 user(s); 0 already existed" in page
        assert s.get(og.url + "/v1/users/p1000@page.example").status_code == 200
    finally:
        og.stop()


def test_page_fast_import_hashes_lightly(built):
    """The preview offers the fast import; ticked, the users get the
    lighter argon2 cost (upgraded at their first login, tests/test_import.py)."""
    og = Daemon()
    try:
        s = og.login()
        csv = "fa,page.example,fast-pass-1\nfb,page.example,fast-pass-2\n"
        token = s.headers["X-CSRF-Token"]
        r = s.post(og.url + "/users/import", data={"csrf": token, "action": "preview", "csv": csv})
        assert r.status_code == 200 and 'name="fast_hash"' in r.text, r.text[:500]
        form = {"csrf": token, "action": "import", "csv": csv, "fast_hash": "on"}
        r = s.post(og.url + "/users/import", data=form, allow_redirects=False)
        assert r.status_code in (302, 303), r.text[:500]
        fast = s.get(og.url + "/v1/users/fa@page.example").json()["password_cost"]
        assert fast["t"] == 1, fast
        # Unticked, the full cost.
        form = {"csrf": token, "action": "import", "csv": "fc,page.example,full-pass-3\n"}
        r = s.post(og.url + "/users/import", data=form, allow_redirects=False)
        assert r.status_code in (302, 303), r.text[:500]
        full = s.get(og.url + "/v1/users/fc@page.example").json()["password_cost"]
        assert full["t"] > 1, full
    finally:
        og.stop()
