"""The admin page in headless Chromium (Debian chromium + chromium-driver)
through WebDriver: log in, add a user through the dialog, import a CSV
with a bad line then fix it, import from incoming users, unlock a locked
user, release a quarantined message, retry and delete it in the queue;
each step checked in the API afterwards. Screenshots are kept in tests/artifacts/."""

import shutil
import tempfile

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from .adminlib import PASSWORD, submit_spam

CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER), reason="needs Debian chromium and chromium-driver"
)


@pytest.fixture(scope="module")
def browser():
    profile = tempfile.mkdtemp(prefix="og-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--ignore-certificate-errors",
        "--window-size=1366,900",
        f"--user-data-dir={profile}",
    ]:
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def shot(driver, artifacts, name):
    # Full-page height so the whole form shows in the artifact.
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1366, max(900, min(height + 40, 4000)))
    driver.save_screenshot(str(artifacts / f"admin-{name}.png"))
    driver.set_window_size(1366, 900)


def click(driver, element):
    """Clicks something that loads a new page and waits for that page.

    Chromium can answer a probe of the old page that lands mid-navigation with
    'unhandled inspector error' instead of a stale-element error; that only
    means the navigation is under way, so the probe is retried."""
    page = driver.find_element(By.TAG_NAME, "html")
    element.click()

    def transient(e: WebDriverException) -> bool:
        return any(m in str(e) for m in ("inspector", "execution context", "target frame detached"))

    def replaced(drv):
        try:
            page.is_enabled()
            return False  # still the old page
        except StaleElementReferenceException:
            pass
        except WebDriverException as e:
            if not transient(e):
                raise
            return False
        try:
            return drv.execute_script("return document.readyState") == "complete"
        except WebDriverException as e:
            if not transient(e):
                raise
            return False

    WebDriverWait(driver, 20, poll_frequency=0.1).until(replaced)


def flash(driver):
    return driver.find_element(By.CSS_SELECTOR, ".flash").text


def login(driver, og, artifacts):
    driver.get(og.url + "/dashboard")
    assert driver.current_url.endswith("/login")
    shot(driver, artifacts, "01-login")
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    click(driver, driver.find_element(By.CSS_SELECTOR, "button[type=submit]"))
    assert driver.current_url.endswith("/dashboard")


def test_admin_page_flows(og, api, browser, artifacts, tmp_path):
    d = browser
    login(d, og, artifacts)
    shot(d, artifacts, "02-dashboard")

    # 'Add outgoing user' with settings.
    d.get(og.url + "/users")
    click(d, d.find_element(By.ID, "add-user"))
    d.find_element(By.ID, "name").send_keys("Web.User@Example.com")
    d.find_element(By.ID, "password").send_keys("web-user-secret")
    d.find_element(By.ID, "limit_per_day").send_keys("12")
    d.find_element(By.ID, "max_recipients_per_day").send_keys("40")
    Select(d.find_element(By.ID, "auto_lock")).select_by_value("false")
    Select(d.find_element(By.ID, "quarantine_response")).select_by_value("accepted")
    shot(d, artifacts, "03-add-user")
    click(d, d.find_element(By.ID, "save"))
    assert "web.user@example.com added" in flash(d)
    u = api.get(og.url + "/v1/users/web.user@example.com").json()
    assert u["has_password"] is True
    assert u["settings"]["limit_per_day"] == 12 and u["settings"]["max_recipients_per_day"] == 40
    assert u["settings"]["auto_lock"] is False and u["settings"]["quarantine_response"] == "accepted"
    assert u["settings"]["limit_per_week"] is None

    # The edit dialog: change one setting, reset another to the default.
    d.get(og.url + "/users")
    click(d, d.find_element(By.CSS_SELECTOR, "tr[data-user='web.user@example.com'] a.btn"))
    assert d.find_element(By.ID, "limit_per_day").get_attribute("value") == "12"
    d.find_element(By.ID, "limit_per_day").clear()
    d.find_element(By.ID, "limit_per_week").send_keys("99")
    click(d, d.find_element(By.ID, "save"))
    assert "saved" in flash(d)
    s = api.get(og.url + "/v1/users/web.user@example.com").json()["settings"]
    assert s["limit_per_day"] is None and s["limit_per_week"] == 99 and s["max_recipients_per_day"] == 40

    # Validation is clear and keeps what was typed.
    d.get(og.url + "/users/new")
    d.find_element(By.ID, "name").send_keys("bad name")
    d.find_element(By.ID, "password").send_keys("whatever-long")
    click(d, d.find_element(By.ID, "save"))
    assert "neither user@domain nor an IP address" in d.find_element(By.CSS_SELECTOR, ".flash.error").text
    assert d.find_element(By.ID, "name").get_attribute("value") == "bad name"

    # 'Import from CSV file' with one bad line, then fixed.
    bad = tmp_path / "users.csv"
    bad.write_text("csv1,import.example,first-secret\ncsv2,import.example,second-secret\ncsv3,import.example,short\n")
    d.get(og.url + "/users")
    click(d, d.find_element(By.ID, "import-csv"))
    d.find_element(By.ID, "file").send_keys(str(bad))
    click(d, d.find_element(By.ID, "preview"))
    errors = d.find_element(By.ID, "line-errors").text
    assert "Line 3:" in errors and "at least 8" in errors, errors
    shot(d, artifacts, "04-import-preview-error")
    assert api.get(og.url + "/v1/users/csv1@import.example").status_code == 404
    area = d.find_element(By.ID, "csv")
    area.clear()
    area.send_keys(bad.read_text().replace("short", "third-secret"))
    click(d, d.find_element(By.ID, "preview"))
    assert not d.find_elements(By.ID, "line-errors")
    shot(d, artifacts, "05-import-preview-ok")
    click(d, d.find_element(By.ID, "import"))
    assert "Imported 3 user(s)" in flash(d)
    for n in ("csv1", "csv2", "csv3"):
        assert api.get(og.url + f"/v1/users/{n}@import.example").json()["has_password"] is True

    # Incoming directory through the page, then 'Import from incoming users'.
    d.get(og.url + "/incoming")
    d.find_element(By.ID, "new-domain").send_keys("lan.example")
    click(d, d.find_element(By.ID, "add-domain"))
    for name in ("ina@lan.example", "inb@lan.example"):
        d.find_element(By.ID, "new-incoming").send_keys(name)
        click(d, d.find_element(By.ID, "add-incoming"))
        assert "added" in flash(d)
    shot(d, artifacts, "06-incoming")
    d.get(og.url + "/users")
    click(d, d.find_element(By.ID, "import-incoming"))
    assert "no password" in d.find_element(By.TAG_NAME, "main").text
    shot(d, artifacts, "07-import-incoming")
    click(d, d.find_element(By.ID, "import"))
    assert "Added 2 incoming user(s)" in flash(d)
    for name in ("ina@lan.example", "inb@lan.example"):
        u = api.get(og.url + f"/v1/users/{name}").json()
        assert u["has_password"] is False and u["settings"]["limit_per_day"] is None

    # Unlock a user locked until an admin unlocks it.
    og.cli("user", "lock", "csv2@import.example", "--reason", "spam seen")
    d.get(og.url + "/users?status=locked_until_admin")
    rows = d.find_elements(By.CSS_SELECTOR, "#users tbody tr")
    assert [r.get_attribute("data-user") for r in rows] == ["csv2@import.example"]
    shot(d, artifacts, "08-locked-filter")
    rows = d.find_elements(By.CSS_SELECTOR, "#users tbody tr")  # again: the screenshot re-renders
    click(d, rows[0].find_element(By.XPATH, ".//button[text()='Unlock']"))
    assert "unlocked" in flash(d)
    assert api.get(og.url + "/v1/users/csv2@import.example").json()["locked"] is False

    # Release a quarantined mail merge (GTUBE sent by a user whose
    # quarantine response is 'accepted', so the client is told 250): three
    # personalised copies of one text, released together.
    spammer = {"auto_lock": False, "quarantine_response": "accepted"}
    r = api.post(og.url + "/v1/users", json={"name": "spam@import.example", "password": "spammer-secret", "settings": spammer})
    assert r.status_code == 201, r.text
    letter = ("Our autumn catalogue is out: every garden tool is twenty percent off this month, "
              "and orders over fifty pounds ship free. Visit the shop on Saturday for the seed swap.")
    for name in ("ann", "bert", "chloe"):
        submit_spam(og, "spam@import.example", "spammer-secret", f"{name}@reader.example", f"Dear {name},\r\n{letter}")
    copies = api.get(og.url + "/v1/quarantine").json()["items"]
    assert len(copies) == 3
    held = copies[0]
    d.get(og.url + "/dashboard")
    assert d.find_element(By.ID, "quarantined-today").text.startswith("3")
    assert d.find_element(By.ID, "caught").text.startswith("3")
    shot(d, artifacts, "09-dashboard")
    d.get(og.url + "/quarantine")
    row = d.find_element(By.CSS_SELECTOR, f"#quarantine tr[data-id='{held['id']}']")
    assert "spam" in row.text and "GTUBE" in row.text
    shot(d, artifacts, "10-quarantine")
    click(d, d.find_element(By.LINK_TEXT, held["id"]))
    assert "Subject: offer" in d.find_element(By.TAG_NAME, "main").text
    assert d.find_element(By.ID, "copies").text.startswith("2 other held messages")
    click(d, d.find_element(By.XPATH, "//main//button[text()='Release with its 2 copies']"))
    assert f"Message {held['id']} released with 2 copies" in flash(d)
    assert api.get(og.url + "/v1/quarantine").json()["items"] == []
    queued_all = api.get(og.url + "/v1/queue").json()["items"]
    assert sorted(r["address"] for e in queued_all for r in e["recipients"]) == [
        "ann@reader.example", "bert@reader.example", "chloe@reader.example"]
    queued = queued_all[0]
    assert queued["user"] == "spam@import.example"

    # The queue: retry it now, then delete it (the next hop is a closed port).
    d.get(og.url + "/queue")
    shot(d, artifacts, "11-queue")
    # Found after the screenshot, whose window resizing may re-render the page.
    row = d.find_element(By.CSS_SELECTOR, f"#queue tr[data-id='{queued['id']}']")
    click(d, row.find_element(By.XPATH, ".//button[text()='Retry']"))
    assert "set for delivery now" in flash(d)
    assert any(e["action"] == f"POST /v1/queue/{queued['id']}/retry" for e in api.get(og.url + "/v1/audit").json()["items"])
    row = d.find_element(By.CSS_SELECTOR, f"#queue tr[data-id='{queued['id']}']")
    click(d, row.find_element(By.XPATH, ".//button[text()='Delete']"))
    assert "deleted" in flash(d)
    assert api.get(og.url + f"/v1/queue/{queued['id']}").status_code == 404

    # The users list with counters, the dashboard and settings, for the record.
    d.get(og.url + "/users")
    shot(d, artifacts, "12-users")
    d.get(og.url + "/dashboard")
    assert d.find_element(By.ID, "quarantine-size").text.startswith("0")
    d.get(og.url + "/settings")
    # A response setting: trust for contacts, on by default, turned off.
    box = d.find_element(By.CSS_SELECTOR, "input[type=checkbox][name='response.trust_contacts']")
    assert box.is_selected()
    box.click()  # no page load: not `click`
    click(d, d.find_element(By.ID, "save"))
    assert api.get(og.url + "/v1/settings").json()["response"]["trust_contacts"] is False
    assert not d.find_element(By.CSS_SELECTOR, "input[type=checkbox][name='response.trust_contacts']").is_selected()
    shot(d, artifacts, "13-settings")

    # Logging out ends the session.
    click(d, d.find_element(By.XPATH, "//nav//button[text()='Log out']"))
    assert d.current_url.endswith("/login")
    d.get(og.url + "/users")
    assert d.current_url.endswith("/login")


def test_dkim_page_generate_rotate_activate(og, api, browser, artifacts):
    d = browser
    d.get(og.url + "/dkim")
    if d.current_url.endswith("/login"):
        login(d, og, artifacts)
        d.get(og.url + "/dkim")
    d.find_element(By.ID, "dkim-domain").send_keys("Page.Example")
    Select(d.find_element(By.ID, "dkim-algorithm")).select_by_value("rsa")
    click(d, d.find_element(By.ID, "dkim-generate"))
    assert "Key generated for page.example" in flash(d)
    [record] = [r.text for r in d.find_elements(By.CSS_SELECTOR, "pre.dkim-record") if "page.example" in r.text]
    assert record.startswith('outguard1._domainkey.page.example. IN TXT "v=DKIM1; k=rsa; p=')
    # The page shows what the API (and so the CLI) publishes.
    assert record == api.get(og.url + "/v1/dkim/page.example").json()["active"]["zone"]

    def press(label):
        click(d, d.find_element(By.XPATH, f"//tr[td='page.example']//button[normalize-space()='{label}']"))

    press("Rotate (generate next)")
    assert "publish its record" in flash(d)
    zones = [r.text for r in d.find_elements(By.CSS_SELECTOR, "pre.dkim-record") if "page.example" in r.text]
    assert any(z.startswith('outguard2._domainkey.page.example. IN TXT "v=DKIM1; k=rsa;') for z in zones)
    shot(d, artifacts, "dkim-rotation")
    press("Activate next key")
    assert "activated" in flash(d)
    keys = api.get(og.url + "/v1/dkim/page.example").json()
    assert keys["active"]["selector"] == "outguard2" and keys["retired"]["selector"] == "outguard1"
    press("Delete retired key")
    assert api.get(og.url + "/v1/dkim/page.example").json().get("retired") is None


def test_users_list_pages_with_next_and_first_links(og, api, browser, artifacts):
    """120 users matching a filter: the list shows 100, Next page the other
    20 (the filter kept), First page the first 100 again; in name order."""
    d = browser
    d.get(og.url + "/users")
    if d.current_url.endswith("/login"):
        login(d, og, artifacts)
    assert api.post(og.url + "/v1/incoming/domains", json={"domain": "pages.example"}).status_code == 201
    csv = "".join(f"p{i:03d}@pages.example\n" for i in range(120))
    assert api.post(og.url + "/v1/incoming/users/import", data=csv).status_code == 200
    assert api.post(og.url + "/v1/users/import-incoming").status_code == 200

    def shown():
        return [r.get_attribute("data-user") for r in d.find_elements(By.CSS_SELECTOR, "#users tbody tr")]

    d.get(og.url + "/users?filter=pages.example")
    first = shown()
    assert first == [f"p{i:03d}@pages.example" for i in range(100)]
    assert not d.find_elements(By.ID, "page-first")
    click(d, d.find_element(By.ID, "page-next"))
    assert "after=" in d.current_url and "filter=pages.example" in d.current_url
    assert shown() == [f"p{i:03d}@pages.example" for i in range(100, 120)]
    assert not d.find_elements(By.ID, "page-next")
    shot(d, artifacts, "14-users-page-2")
    click(d, d.find_element(By.ID, "page-first"))
    assert shown() == first
