//! Routing and handlers of the control API. Handlers run on a blocking
//! thread (argon2, store commits) and answer JSON; bad input is a 4xx
//! with a message saying what is wrong.

use hyper::{StatusCode, Uri};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Answer, Control};
use crate::import::{self};

pub(super) mod incoming;
pub(crate) mod paging;
pub(super) mod quarantine;
pub(super) mod queue;
pub(super) mod users;

type Res = Result<Answer, Answer>;

pub(crate) fn bad(msg: impl Into<String>) -> Answer {
    Answer::error(StatusCode::BAD_REQUEST, msg)
}

/// 422: a value out of its allowed range (the message names both).
pub(crate) fn out_of_range(msg: impl Into<String>) -> Answer {
    Answer::error(StatusCode::UNPROCESSABLE_ENTITY, msg)
}

pub(crate) fn not_found(msg: impl Into<String>) -> Answer {
    Answer::error(StatusCode::NOT_FOUND, msg)
}

/// A boolean query flag; the route has already refused values other
/// than true/false/1/0 on the routes that take one.
pub(super) fn flag(q: &[(String, String)], key: &str) -> bool {
    q.iter().any(|(k, v)| k == key && (v == "true" || v == "1"))
}

/// 422 naming every bad line of a CSV import, unless the client asked to
/// skip them: an import is all or nothing by default.
pub(super) fn refuse_invalid_lines(
    errors: &[import::LineError],
    skip_invalid: bool,
) -> Result<(), Answer> {
    if errors.is_empty() || skip_invalid {
        return Ok(());
    }
    Err(Answer {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        body: json!(crate::control::ErrorBody {
            error: format!("{} invalid line(s); nothing was imported", errors.len()),
            errors: Some(errors),
        }),
    })
}

pub(crate) fn internal(e: impl std::fmt::Display) -> Answer {
    tracing::error!(error = %e, "control API failure");
    Answer::error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error; see the daemon log",
    )
}

/// What a `DELETE` removed.
#[derive(serde::Serialize)]
#[cfg_attr(test, derive(utoipa::ToSchema))]
pub(crate) struct Deleted {
    /// The name or id of what was deleted.
    pub deleted: String,
}

pub(crate) fn json_body<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Answer> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    let value: Value =
        serde_json::from_slice(body).map_err(|e| bad(format!("invalid request body: {e}")))?;
    // Every body is an object: serde would also take a struct from an
    // array of its fields (`[null, null]`), which the API does not document.
    if !value.is_object() {
        return Err(bad("invalid request body: expected a JSON object"));
    }
    serde_json::from_value(value).map_err(|e| bad(format!("invalid request body: {e}")))
}

pub(super) fn query(uri: &Uri) -> Vec<(String, String)> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (unescape(k, true), unescape(v, true))
        })
        .collect()
}

/// Percent-decoding; `+` is a space only in query strings.
pub(crate) fn unescape(s: &str, plus_is_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                if let Some(v) = hex {
                    out.push(v);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' if plus_is_space => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg_attr(test, utoipa::path(get, tag = "system", path = "/v1/health",
    summary = "Liveness and counters since start",
    responses(
        (status = 200, description = "OK", body = Health),
        crate::control::openapi::LoggedIn,
    )))]
pub(super) fn health(ctl: &Control) -> Answer {
    Answer::ok(json!(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        stats: ctl.app.stats.snapshot(),
        hardening: &ctl.app.hardening,
        delivery: ctl.delivery.snapshot(),
    }))
}

/// Liveness and counters since start.
#[derive(serde::Serialize)]
#[cfg_attr(test, derive(utoipa::ToSchema))]
struct Health<'a> {
    status: &'static str,
    version: &'static str,
    stats: crate::app::Snapshot,
    /// How the daemon is confined (uid, no_new_privs, landlock, seccomp).
    #[cfg_attr(test, schema(value_type = Object))]
    hardening: &'a crate::jail::Hardening,
    /// Delivery counters.
    #[cfg_attr(test, schema(value_type = Object))]
    delivery: Value,
}

/// Merges a partial JSON object into the current settings.
fn merge(into: &mut Value, patch: &Value) -> Result<(), String> {
    match (into, patch) {
        (Value::Object(dst), Value::Object(src)) => {
            for (k, v) in src {
                match dst.get_mut(k) {
                    Some(d) if d.is_object() => merge(d, v)?,
                    Some(d) => *d = v.clone(),
                    None => return Err(format!("unknown setting '{k}'")),
                }
            }
            Ok(())
        }
        _ => Err("settings must be a JSON object".into()),
    }
}

/// `GET /v1/settings`.
#[cfg_attr(test, utoipa::path(get, tag = "settings", path = "/v1/settings",
    summary = "System settings",
    responses(
        (status = 200, description = "Settings", body = crate::settings::SystemSettings),
        crate::control::openapi::LoggedIn,
    )))]
pub(super) fn show_settings(ctl: &Control) -> Res {
    Ok(Answer::ok(json!(ctl.app.settings.get())))
}

/// `PATCH /v1/settings`: a merge of the body into the settings in force.
#[cfg_attr(test, utoipa::path(patch, tag = "settings", path = "/v1/settings",
    summary = "Change system settings",
    request_body = Option<crate::control::openapi::SettingsPatchDoc>,
    responses(
        (status = 200, description = "Settings now", body = crate::settings::SystemSettings),
        crate::control::openapi::Writes,
        crate::control::openapi::OutOfRange,
    )))]
pub(super) fn edit_settings(ctl: &Control, body: &[u8]) -> Res {
    let patch: Value = json_body(body)?;
    let mut current = serde_json::to_value(ctl.app.settings.get()).map_err(internal)?;
    merge(&mut current, &patch).map_err(bad)?;
    let new: crate::settings::SystemSettings =
        serde_json::from_value(current).map_err(|e| bad(format!("invalid settings: {e}")))?;
    new.check_ranges().map_err(out_of_range)?;
    new.validate().map_err(bad)?;
    ctl.app.store.put_settings(&new).map_err(internal)?;
    ctl.app.settings.replace(new.clone()).map_err(bad)?;
    tracing::info!(settings = %serde_json::to_string(&new).unwrap_or_default(), "settings changed");
    Ok(Answer::ok(json!(new)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(test, derive(utoipa::ToSchema))]
struct ClockRequest {
    /// RFC 3339 time to move to; absent: back to the system clock
    #[cfg_attr(test, schema(value_type = Option<String>, format = DateTime))]
    now: Option<jiff::Timestamp>,
}

/// The daemon's clock now.
#[derive(serde::Serialize)]
#[cfg_attr(test, derive(utoipa::ToSchema))]
struct ClockNow {
    #[cfg_attr(test, schema(value_type = String))]
    now: jiff::Timestamp,
}

#[cfg_attr(test, utoipa::path(put, tag = "system", path = "/v1/debug/clock",
    summary = "Move the daemon's clock (needs debug.clock_override)",
    request_body(content = Option<ClockRequest>),
    responses(
        (status = 200, description = "Now", body = ClockNow),
        crate::control::openapi::Writes,
    )))]
pub(super) fn set_clock(ctl: &Control, body: &[u8]) -> Res {
    if !ctl.config.debug.clock_override {
        return Err(Answer::error(
            StatusCode::FORBIDDEN,
            "clock override is disabled (debug.clock_override)",
        ));
    }
    let req: ClockRequest = json_body(body)?;
    match req.now {
        Some(t) => ctl.app.clock.set(t),
        None => ctl.app.clock.reset(),
    }
    tracing::warn!(now = %ctl.app.clock.now(), "clock overridden");
    Ok(Answer::ok(json!(ClockNow {
        now: ctl.app.clock.now()
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Two {
        #[allow(dead_code)]
        a: Option<String>,
        #[allow(dead_code)]
        b: Option<String>,
    }

    #[test]
    fn bodies_must_be_objects() {
        assert!(json_body::<Two>(b"{\"a\": \"x\"}").is_ok());
        assert!(json_body::<Two>(b"  ").is_ok());
        // serde alone would take a struct from an array of its fields.
        let refused = json_body::<Two>(b"[null, null]").unwrap_err();
        assert_eq!(refused.status, StatusCode::BAD_REQUEST);
        assert!(json_body::<Two>(b"null").is_err());
    }
}
