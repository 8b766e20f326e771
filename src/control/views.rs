//! What the API shows of a user: stored fields, the settings in force,
//! lock state in words and usage in the current windows.

use serde_json::{Value, json};

use crate::settings::Current;
use crate::store::{Store, StoreError, lock_text};
use crate::users::User;
use crate::windows;

pub fn user(
    u: &User,
    store: &Store,
    current: &Current,
    now: jiff::Timestamp,
) -> Result<Value, StoreError> {
    let usage = store.usage(&u.name)?;
    let behaviour = store
        .behaviour_profile(&u.name)?
        .map(|p| crate::behaviour::profile::summary(&p, now));
    let counts = usage.counts(&windows::windows(now, &current.tz));
    let effective = u.settings.resolve(&current.settings.defaults);
    let lock = u.lock.in_force(now);
    let status = match lock {
        None => "active".to_string(),
        Some(l) => lock_text(l, &current.tz),
    };
    Ok(json!({
        "name": u.name,
        "kind": if u.is_network() { "ip" } else { "address" },
        "domain": u.domain,
        "has_password": u.password_hash.is_some(),
        "settings": u.settings,
        "effective": effective,
        "locked": lock.is_some(),
        "status": status,
        "lock": u.lock,
        "unlocks_by_timeout": u.unlocks_by_timeout,
        "usage": {
            "day": counts.day,
            "week": counts.week,
            "month": counts.month,
            "recipients_day": counts.recipients_day,
        },
        "created": u.created,
        "behaviour": behaviour,
        "history": u.history,
    }))
}
