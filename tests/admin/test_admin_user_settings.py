"""The per-user settings table (src/users/spec.rs) as the faces show it:
the page's user dialog has a field per setting with the range of the
OpenAPI schema, the dialog and the API refuse a value out of range naming
the field, `clear` takes only setting names, and the CSV export has one
column per setting. The OpenAPI document is the independent reference
here (a unit test holds it to the table)."""

import csv
import io
import json
import re

from .adminlib import ROOT

SPEC = json.loads((ROOT / "src" / "admin" / "openapi.json").read_text())
SCHEMAS = SPEC["components"]["schemas"]
NAMES = SCHEMAS["EffectiveSettings"]["required"]
PROPS = SCHEMAS["UserSettings"]["properties"]


def page_token(s, url):
    return re.search(r'name="csrf" value="([^"]+)"', s.get(url).text).group(1)


def test_dialog_has_a_field_per_setting_with_its_range(og, api):
    page = api.get(og.url + "/users/new").text
    for name in NAMES:
        p = PROPS[name]
        if p["type"] == "integer":
            field = re.search(rf'<input type="number"[^>]* name="{name}"[^>]*>', page)
            assert field, name
            assert f'min="{p["minimum"]}"' in field.group(0), field.group(0)
            assert f'max="{p["maximum"]}"' in field.group(0), field.group(0)
        else:
            field = re.search(rf'<select name="{name}" id="{name}">(.*?)</select>', page)
            assert field, name
            values = re.findall(r'<option value="([^"]*)"', field.group(1))
            want = ["true", "false"] if p["type"] == "boolean" else p["enum"]
            assert values == [""] + want, (name, values)


def test_dialog_and_api_refuse_out_of_range_naming_the_field(og, api):
    url = og.url + "/users/new"
    form = {"csrf": page_token(api, url), "name": "range@settings.example", "password": "longenough1",
            "lock_timeout_minutes": "0", "limit_per_day": "5"}
    r = api.post(url, data=form)
    assert r.status_code == 400 and "lock_timeout_minutes must be between 1 and 525600" in r.text
    assert api.get(og.url + "/v1/users/range@settings.example").status_code == 404
    # The API, on create and on edit.
    r = api.post(og.url + "/v1/users", json={"name": "range@settings.example", "password": "longenough1",
                                              "settings": {"max_retry_days": 366}})
    assert r.status_code == 422 and r.json()["error"].startswith("max_retry_days must be between 0 and 365")
    r = api.post(og.url + "/v1/users", json={"name": "range@settings.example", "password": "longenough1"})
    assert r.status_code == 201
    r = api.patch(og.url + "/v1/users/range@settings.example", json={"settings": {"lock_timeout_minutes": 525601}})
    assert r.status_code == 422 and r.json()["error"].startswith("lock_timeout_minutes must be between")
    r = api.patch(og.url + "/v1/users/range@settings.example", json={"clear": ["limit_per_year"]})
    assert r.status_code == 400 and "unknown setting 'limit_per_year'" in r.json()["error"]
    assert "limit_per_day" in r.json()["error"]
    # The largest values of the schema are accepted.
    top = {n: PROPS[n]["maximum"] for n in NAMES if PROPS[n]["type"] == "integer"}
    r = api.patch(og.url + "/v1/users/range@settings.example", json={"settings": top})
    assert r.status_code == 200 and all(r.json()["settings"][n] == v for n, v in top.items())


def test_dialog_values_reach_the_user_and_the_export(og, api):
    url = og.url + "/users/new"
    values = {"auto_lock": "false", "lock_timeout_minutes": "45", "max_unlocks": "2", "limit_per_month": "900",
              "limit_per_week": "300", "limit_per_day": "60", "max_recipients_per_day": "70",
              "max_retry_days": "3", "quarantine_response": "accepted"}
    assert set(values) == set(NAMES)
    form = {"csrf": page_token(api, url), "name": "all@settings.example", "password": "longenough1", **values}
    r = api.post(url, data=form, allow_redirects=False)
    assert r.status_code == 303, r.text
    s = api.get(og.url + "/v1/users/all@settings.example").json()["settings"]
    assert s["auto_lock"] is False and s["quarantine_response"] == "accepted"
    assert all(s[n] == int(v) for n, v in values.items() if PROPS[n]["type"] == "integer")
    rows = list(csv.reader(io.StringIO(api.get(og.url + "/v1/users/export").json()["csv"])))
    assert rows[0] == ["user", "domain", "kind", "has_password", "status"] + NAMES
    row = dict(zip(rows[0], next(r for r in rows if r[0] == "all@settings.example")))
    assert {n: row[n] for n in NAMES} == values


def test_settings_page_defaults_have_the_ranges_and_choices(og, api):
    page = api.get(og.url + "/settings").text
    defaults = SCHEMAS["SettingsPatch"]["properties"]["defaults"]["properties"]
    for name in NAMES:
        p = defaults[name]
        if p["type"] == "integer":
            field = re.search(rf'<input type="number"[^>]* name="defaults\.{name}"[^>]*>', page)
            assert field, name
            assert f'min="{p["minimum"]}" max="{p["maximum"]}"' in field.group(0), field.group(0)
        elif p["type"] == "string":
            field = re.search(rf'<select name="defaults\.{name}">(.*?)</select>', page)
            assert field, name
            assert re.findall(r"<option[^>]*>([^<]*)</option>", field.group(1)) == p["enum"]
