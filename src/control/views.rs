//! What the API shows of a user: stored fields, the settings in force,
//! lock state in words and usage in the current windows.

use serde_json::{Value, json};

use crate::policy;
use crate::settings::Current;
use crate::store::{Store, StoreError};
use crate::users::User;

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
    let st = policy::standing(u, &usage, &current.settings.defaults, &current.tz, now);
    let status = match &st.lock {
        None => "active".to_string(),
        Some(l) => policy::lock_text(l, &current.tz),
    };
    let (effective, counts) = (st.settings, st.counts);
    Ok(json!({
        "name": u.name,
        "kind": if u.is_network() { "ip" } else { "address" },
        "domain": u.domain,
        "has_password": u.password_hash.is_some(),
        // The argon2id cost of the stored hash (not the hash): the lighter
        // import cost until the user's first login (`auth::password`).
        "password_cost": u.password_hash.as_deref().and_then(crate::auth::password::cost_of)
            .map(|c| json!({ "m_kib": c.m_kib, "t": c.t })),
        "settings": u.settings,
        "effective": effective,
        "locked": st.lock.is_some(),
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
