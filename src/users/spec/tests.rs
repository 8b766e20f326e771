//! The table against the code, the doc and the OpenAPI document.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::{Value, json};

use super::*;
use crate::users::{EffectiveSettings, UserSettings};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn table_names() -> BTreeSet<String> {
    USER_SETTINGS.iter().map(|s| s.name.to_string()).collect()
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn table_matches_the_settings_structs() {
    // Every field of UserSettings is in the table, in the same order.
    let all_set = serde_json::to_value(UserSettings::default()).unwrap();
    assert_eq!(keys(&all_set), table_names());
    let names: Vec<&str> = USER_SETTINGS.iter().map(|s| s.name).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), names.len(), "a setting is listed twice");
    // The defaults are EffectiveSettings::default(), and deserialize.
    let defaults = defaults_json();
    assert_eq!(
        defaults,
        serde_json::to_value(EffectiveSettings::default()).unwrap()
    );
    let parsed: UserSettings = serde_json::from_value(defaults.clone()).unwrap();
    parsed.check_ranges().unwrap();
    check_json(&defaults).unwrap();
}

#[test]
fn cli_flags_are_distinct_and_spelled_like_the_names() {
    let mut seen = BTreeSet::new();
    for s in USER_SETTINGS {
        assert_eq!(s.cli, s.name.replace('_', "-"), "{}", s.name);
        for f in std::iter::once(&s.cli).chain(s.cli_aliases) {
            assert!(seen.insert(*f), "flag --{f} is used twice");
        }
    }
}

#[test]
fn checks_name_the_field() {
    let e = check_json(&json!({"lock_timeout_minutes": 0})).unwrap_err();
    assert!(
        e.starts_with("lock_timeout_minutes must be between 1 and 525600"),
        "{e}"
    );
    let e = check_json(&json!({"max_retry_days": 4_294_967_296u64})).unwrap_err();
    assert!(
        e.starts_with("max_retry_days must be between 0 and 365"),
        "{e}"
    );
    let e = check_json(&json!({"quarantine_response": "maybe"})).unwrap_err();
    assert_eq!(e, "quarantine_response must be rejected or accepted");
    let e = check_json(&json!({"auto_lock": 1})).unwrap_err();
    assert_eq!(e, "auto_lock must be true or false");
    check_json(&json!({"limit_per_day": u32::MAX, "max_retry_days": 365, "auto_lock": null}))
        .unwrap();
}

#[test]
fn typed_values_parse_or_say_why_not() {
    let day = find("limit_per_day").unwrap();
    assert_eq!(day.parse(" 12 ", "Limit per day"), Ok(json!(12)));
    assert_eq!(
        day.parse("-4", "Limit per day"),
        Err("Limit per day must not be negative".into())
    );
    assert_eq!(day.parse("4294967296", "x"), Err("x is too large".into()));
    assert!(day.parse("ten", "x").unwrap_err().contains("whole number"));
    let t = find("lock_timeout_minutes").unwrap();
    assert!(
        t.parse("0", "x")
            .unwrap_err()
            .starts_with("lock_timeout_minutes must be between")
    );
    let a = find("auto_lock").unwrap();
    assert_eq!(a.parse("on", "x"), Ok(json!(true)));
    assert_eq!(a.parse("false", "x"), Ok(json!(false)));
    let q = find("quarantine_response").unwrap();
    assert_eq!(q.parse("accepted", "x"), Ok(json!("accepted")));
    assert!(q.parse("drop", "x").is_err());
    assert!(find("limit_per_year").is_none());
}

/// The table between the markers of docs/ADMIN.md is `doc_table()`; with
/// OUTGUARD_WRITE_DOCS=1 this test writes it there instead.
#[test]
fn admin_doc_has_the_generated_table() {
    let path = root().join("docs/ADMIN.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let start = doc
        .find(DOC_BEGIN)
        .expect("docs/ADMIN.md lacks the begin marker")
        + DOC_BEGIN.len();
    let end = start
        + doc[start..]
            .find(DOC_END)
            .expect("docs/ADMIN.md lacks the end marker");
    let want = doc_table();
    if doc[start..end] == want {
        return;
    }
    if std::env::var_os("OUTGUARD_WRITE_DOCS").is_some() {
        let new = format!("{}{want}{}", &doc[..start], &doc[end..]);
        std::fs::write(&path, new).unwrap();
        return;
    }
    panic!(
        "the user settings table in docs/ADMIN.md is not the one of src/users/spec.rs; \
run OUTGUARD_WRITE_DOCS=1 cargo test users::spec to rewrite it"
    );
}

/// One property schema of the OpenAPI document against the table.
fn check_property(schema: &Value, s: &SettingSpec, nullable: bool) {
    let name = s.name;
    match s.kind {
        Kind::Bool => assert_eq!(schema["type"], "boolean", "{name}"),
        Kind::Number(r) => {
            assert_eq!(schema["type"], "integer", "{name}");
            assert_eq!(schema["minimum"], json!(r.min), "{name} minimum");
            assert_eq!(schema["maximum"], json!(r.max), "{name} maximum");
        }
        Kind::Choice(choices) => {
            assert_eq!(schema["type"], "string", "{name}");
            let want: Vec<&str> = choices.iter().map(|(c, _)| *c).collect();
            assert_eq!(schema["enum"], json!(want), "{name} enum");
        }
    }
    assert_eq!(
        schema["nullable"].as_bool().unwrap_or(false),
        nullable,
        "{name} nullable"
    );
}

#[test]
fn openapi_user_schemas_match_the_table() {
    let text = std::fs::read_to_string(root().join("src/admin/openapi.json")).unwrap();
    let api: Value = serde_json::from_str(&text).unwrap();
    let schemas = &api["components"]["schemas"];
    let names: Vec<&str> = USER_SETTINGS.iter().map(|s| s.name).collect();
    // Per-user settings (null: the default) and the settings in force.
    let user = &schemas["UserSettings"]["properties"];
    let effective = &schemas["EffectiveSettings"];
    assert_eq!(keys(user), table_names(), "UserSettings properties");
    assert_eq!(keys(&effective["properties"]), table_names());
    assert_eq!(
        effective["required"],
        json!(names),
        "EffectiveSettings required"
    );
    // The system defaults, as PATCH /v1/settings takes them.
    let defaults = &schemas["SettingsPatch"]["properties"]["defaults"]["properties"];
    assert_eq!(keys(defaults), table_names(), "SettingsPatch defaults");
    for s in USER_SETTINGS {
        check_property(&user[s.name], s, true);
        check_property(&effective["properties"][s.name], s, false);
        check_property(&defaults[s.name], s, false);
    }
    // What an edit may clear.
    assert_eq!(
        schemas["EditUser"]["properties"]["clear"]["items"]["enum"],
        json!(names)
    );
}
