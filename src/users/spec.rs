//! The per-user settings, described once. Every face that names a
//! per-user setting takes it from `USER_SETTINGS`: the CLI flags of `user
//! add/set` (`cli::user`), the fields of the admin page's user dialogs, the
//! control API's checks of create/edit bodies (`UserSettings::check_ranges`
//! and `--clear`/`clear` names), the CSV export's columns, and the table
//! in docs/ADMIN.md. The unit tests below keep the rest from drifting: the
//! doc table, `EffectiveSettings::default()`, the `UserSettings` struct
//! and the user schemas of `src/admin/openapi.json` must match the table.

use serde_json::{Value, json};

use crate::bounds::{self, Range};

/// What values a setting takes.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// On or off (JSON `true`/`false`).
    Bool,
    /// A whole number within the range.
    Number(Range),
    /// One of these JSON strings, each with what it means.
    Choice(&'static [(&'static str, &'static str)]),
}

/// The system default of a setting (users with the setting unset get the
/// admin's default, which starts as this).
#[derive(Debug, Clone, Copy)]
pub enum DefaultValue {
    Bool(bool),
    Number(u32),
    Text(&'static str),
}

/// One per-user setting.
#[derive(Debug)]
pub struct SettingSpec {
    /// The key everywhere: JSON field, store, CSV export column, `clear`.
    pub name: &'static str,
    /// The CLI flag of `user add/set` (without `--`).
    pub cli: &'static str,
    /// Older spellings of the flag, still accepted.
    pub cli_aliases: &'static [&'static str],
    /// The field's label in the admin page's dialogs.
    pub label: &'static str,
    /// What it does (CLI help, the doc table).
    pub help: &'static str,
    pub kind: Kind,
    pub default: DefaultValue,
}

/// A count where 0 means unlimited: any 32-bit number.
const fn count(field: &'static str) -> Range {
    Range {
        field,
        min: 0,
        max: u32::MAX,
        max_text: "the largest 32-bit number",
    }
}

/// What the quarantine response's values mean.
const RESPONSES: &[(&str, &str)] = &[
    ("rejected", "Rejected: tell the server it was not delivered"),
    (
        "accepted",
        "Accepted: sender is not told; nothing is delivered",
    ),
];

/// Every per-user setting of the vendor document, in the order the faces
/// show them.
pub static USER_SETTINGS: &[SettingSpec] = &[
    SettingSpec {
        name: "auto_lock",
        cli: "auto-lock",
        cli_aliases: &[],
        label: "Automatic lock",
        help: "Lock the user when its mail is caught as spam or malware (off: hold the mail only)",
        kind: Kind::Bool,
        default: DefaultValue::Bool(true),
    },
    SettingSpec {
        name: "lock_timeout_minutes",
        cli: "lock-timeout-minutes",
        cli_aliases: &["lock-timeout"],
        label: "User lock timeout (minutes)",
        help: "How long an automatic lock lasts before the user is unlocked by timeout",
        kind: Kind::Number(bounds::LOCK_TIMEOUT_MINUTES),
        default: DefaultValue::Number(60),
    },
    SettingSpec {
        name: "max_unlocks",
        cli: "max-unlocks",
        cli_aliases: &[],
        label: "Maximum unlocks by timeout",
        help: "Unlocks by timeout before the next automatic lock lasts until an admin unlocks",
        kind: Kind::Number(count("max_unlocks")),
        default: DefaultValue::Number(3),
    },
    SettingSpec {
        name: "limit_per_month",
        cli: "limit-per-month",
        cli_aliases: &["limit-month"],
        label: "Limit per month",
        help: "Messages per calendar month (0: unlimited)",
        kind: Kind::Number(count("limit_per_month")),
        default: DefaultValue::Number(10_000),
    },
    SettingSpec {
        name: "limit_per_week",
        cli: "limit-per-week",
        cli_aliases: &["limit-week"],
        label: "Limit per week",
        help: "Messages per calendar week (0: unlimited)",
        kind: Kind::Number(count("limit_per_week")),
        default: DefaultValue::Number(2_500),
    },
    SettingSpec {
        name: "limit_per_day",
        cli: "limit-per-day",
        cli_aliases: &["limit-day"],
        label: "Limit per day",
        help: "Messages per calendar day (0: unlimited)",
        kind: Kind::Number(count("limit_per_day")),
        default: DefaultValue::Number(500),
    },
    SettingSpec {
        name: "max_recipients_per_day",
        cli: "max-recipients-per-day",
        cli_aliases: &["max-recipients-day"],
        label: "Maximum number of recipients per day",
        help: "Recipients per calendar day, over all messages (0: unlimited)",
        kind: Kind::Number(count("max_recipients_per_day")),
        default: DefaultValue::Number(1_000),
    },
    SettingSpec {
        name: "max_retry_days",
        cli: "max-retry-days",
        cli_aliases: &[],
        label: "Maximum days to retry",
        help: "Days delivery is retried before the message bounces (0: bounce at the first temporary failure)",
        kind: Kind::Number(bounds::MAX_RETRY_DAYS),
        default: DefaultValue::Number(5),
    },
    SettingSpec {
        name: "quarantine_response",
        cli: "quarantine-response",
        cli_aliases: &[],
        label: "Quarantine response",
        help: "What the sending client is told when its message is caught",
        kind: Kind::Choice(RESPONSES),
        default: DefaultValue::Text("rejected"),
    },
];

/// The setting of this name.
pub fn find(name: &str) -> Option<&'static SettingSpec> {
    USER_SETTINGS.iter().find(|s| s.name == name)
}

/// The names, for messages ("one of: ...").
pub fn names() -> String {
    let names: Vec<&str> = USER_SETTINGS.iter().map(|s| s.name).collect();
    names.join(", ")
}

/// Checks the settings of a JSON object (a create/edit body's `settings`,
/// or the system defaults): each present, non-null value must be of its
/// kind and in its range. The error names the field.
pub fn check_json(settings: &Value) -> Result<(), String> {
    for s in USER_SETTINGS {
        match &settings[s.name] {
            Value::Null => {}
            v => s.check(v)?,
        }
    }
    Ok(())
}

impl SettingSpec {
    /// Checks one JSON value of this setting.
    pub fn check(&self, v: &Value) -> Result<(), String> {
        match self.kind {
            Kind::Bool if v.is_boolean() => Ok(()),
            Kind::Bool => Err(format!("{} must be true or false", self.name)),
            Kind::Number(range) => match v.as_u64() {
                Some(n) => match u32::try_from(n) {
                    Ok(n) => range.check(n).map(|_| ()),
                    Err(_) => Err(format!(
                        "{} must be between {} and {} ({}); got {n}",
                        self.name, range.min, range.max, range.max_text
                    )),
                },
                None => Err(format!("{} must be a whole number", self.name)),
            },
            Kind::Choice(choices) => match v.as_str() {
                Some(t) if choices.iter().any(|(c, _)| *c == t) => Ok(()),
                _ => Err(format!("{} must be {}", self.name, self.values_text())),
            },
        }
    }

    /// Parses a value as the admin types it (a CLI flag, a form field):
    /// the JSON value, or an error starting with `who`, or for a number
    /// out of range the API's message naming the setting.
    pub fn parse(&self, text: &str, who: &str) -> Result<Value, String> {
        let text = text.trim();
        match self.kind {
            Kind::Bool => match text {
                "on" | "true" => Ok(json!(true)),
                "off" | "false" => Ok(json!(false)),
                _ => Err(format!("{who} must be on or off")),
            },
            Kind::Number(range) => match text.parse::<i64>() {
                Ok(n) if n < 0 => Err(format!("{who} must not be negative")),
                Ok(n) => match u32::try_from(n) {
                    Ok(n) => range.check(n).map(|n| json!(n)),
                    Err(_) => Err(format!("{who} is too large")),
                },
                Err(_) => Err(format!("{who} must be a whole number (0 or more)")),
            },
            Kind::Choice(choices) => match choices.iter().find(|(c, _)| *c == text) {
                Some((c, _)) => Ok(json!(c)),
                None => Err(format!("{who} must be {}", self.values_text())),
            },
        }
    }

    /// The values it takes, in words: "on or off", "rejected or accepted",
    /// "1 to 525600".
    pub fn values_text(&self) -> String {
        match self.kind {
            Kind::Bool => "on or off".into(),
            Kind::Number(r) => format!("{} to {}", r.min, r.max),
            Kind::Choice(choices) => {
                let v: Vec<&str> = choices.iter().map(|(c, _)| *c).collect();
                v.join(" or ")
            }
        }
    }

    /// The default as JSON.
    pub fn default_json(&self) -> Value {
        match self.default {
            DefaultValue::Bool(b) => json!(b),
            DefaultValue::Number(n) => json!(n),
            DefaultValue::Text(t) => json!(t),
        }
    }

    /// The default in words, as the doc table shows it.
    pub fn default_text(&self) -> String {
        match self.default {
            DefaultValue::Bool(true) => "on".into(),
            DefaultValue::Bool(false) => "off".into(),
            DefaultValue::Number(n) => n.to_string(),
            DefaultValue::Text(t) => t.into(),
        }
    }
}

/// The system defaults of every setting, as one JSON object.
pub fn defaults_json() -> Value {
    Value::Object(
        USER_SETTINGS
            .iter()
            .map(|s| (s.name.to_string(), s.default_json()))
            .collect(),
    )
}

/// The Markdown table of docs/ADMIN.md (between `DOC_BEGIN` and `DOC_END`).
pub fn doc_table() -> String {
    let mut out = String::from(
        "| setting (API, CSV column, `--clear`) | CLI flag of `user add/set` | values | default | what it does |\n|---|---|---|---|---|\n",
    );
    for s in USER_SETTINGS {
        let mut flag = format!("`--{}`", s.cli);
        for a in s.cli_aliases {
            flag.push_str(&format!(" (or `--{a}`)"));
        }
        out.push_str(&format!(
            "| `{}` | {flag} | {} | {} | {} |\n",
            s.name,
            s.values_text(),
            s.default_text(),
            s.help
        ));
    }
    out
}

pub const DOC_BEGIN: &str = "<!-- user settings: generated from src/users/spec.rs (OUTGUARD_WRITE_DOCS=1 cargo test users::spec rewrites it) -->\n";
pub const DOC_END: &str = "<!-- end of user settings -->";

#[cfg(test)]
mod tests;
