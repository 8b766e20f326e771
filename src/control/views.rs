//! What the API shows of a user: stored fields, the settings in force,
//! lock state in words and usage in the current windows.

use serde::Serialize;
use serde_json::{Value, json};

use crate::policy;
use crate::settings::Current;
use crate::store::{Store, StoreError};
use crate::users::{EffectiveSettings, HistoryEvent, LockState, User, UserSettings};

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
    Ok(json!(UserView {
        name: &u.name,
        kind: if u.is_network() {
            Kind::Ip
        } else {
            Kind::Address
        },
        domain: u.domain.as_deref(),
        has_password: u.password_hash.is_some(),
        // The argon2id cost of the stored hash (not the hash): the lighter
        // import cost until the user's first login (`auth::password`).
        password_cost: u
            .password_hash
            .as_deref()
            .and_then(crate::auth::password::cost_of)
            .map(|c| PasswordCost {
                m_kib: c.m_kib,
                t: c.t,
            }),
        settings: &u.settings,
        effective,
        locked: st.lock.is_some(),
        status,
        lock: &u.lock,
        unlocks_by_timeout: u.unlocks_by_timeout,
        usage: Usage {
            day: counts.day,
            week: counts.week,
            month: counts.month,
            recipients_day: counts.recipients_day,
        },
        created: u.created,
        behaviour,
        history: &u.history,
    }))
}

/// A user as the API answers it (`GET /v1/users/{name}` and the lists).
#[derive(Serialize)]
#[cfg_attr(test, derive(utoipa::ToSchema), schema(as = User))]
pub(crate) struct UserView<'a> {
    name: &'a str,
    kind: Kind,
    domain: Option<&'a str>,
    has_password: bool,
    /// The argon2id cost of the stored password hash: m_kib 7168 and t 5
    /// is the full cost; t 1 is a fast-hashed import's, until the user's
    /// first login
    password_cost: Option<PasswordCost>,
    settings: &'a UserSettings,
    effective: EffectiveSettings,
    locked: bool,
    /// 'active', or the lock in words
    status: String,
    #[cfg_attr(test, schema(schema_with = crate::control::openapi::lock_state))]
    lock: &'a LockState,
    unlocks_by_timeout: u32,
    usage: Usage,
    #[cfg_attr(test, schema(value_type = String, format = DateTime))]
    created: jiff::Timestamp,
    /// What the behaviour model sees of the user (null before its first
    /// message)
    #[cfg_attr(test, schema(value_type = Option<Object>))]
    behaviour: Option<Value>,
    #[cfg_attr(test, schema(schema_with = crate::control::openapi::history))]
    history: &'a [HistoryEvent],
}

/// Whether the user is an address or an IP address / network.
#[derive(Serialize)]
#[cfg_attr(test, derive(utoipa::ToSchema), schema(as = UserKind))]
#[serde(rename_all = "lowercase")]
enum Kind {
    Address,
    Ip,
}

#[derive(Serialize)]
#[cfg_attr(test, derive(utoipa::ToSchema))]
struct PasswordCost {
    m_kib: u32,
    t: u32,
}

/// Messages and recipients counted in the current windows.
#[derive(Serialize)]
#[cfg_attr(test, derive(utoipa::ToSchema))]
struct Usage {
    day: u32,
    week: u32,
    month: u32,
    recipients_day: u32,
}

/// The answer of `GET /v1/session` and of a JSON login (`admin::login`).
#[derive(serde::Serialize)]
#[cfg_attr(test, derive(utoipa::ToSchema), schema(as = Session))]
pub(crate) struct SessionView<'a> {
    /// Send as X-CSRF-Token on every request that changes something
    pub csrf_token: &'a str,
    #[cfg_attr(test, schema(value_type = String, format = DateTime))]
    pub created: jiff::Timestamp,
    /// The address the session logged in from
    #[cfg_attr(test, schema(value_type = String))]
    pub client: std::net::IpAddr,
    pub idle_timeout_secs: u64,
    pub max_age_secs: u64,
}
