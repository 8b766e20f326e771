//! Routing and handlers of the control API. Handlers run on a blocking
//! thread (argon2, store commits) and answer JSON; bad input is a 4xx
//! with a message saying what is wrong.

use hyper::{Method, StatusCode, Uri};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Answer, Control, views};
use crate::auth::password;
use crate::bounds;
use crate::import::{self, check_password};
use crate::store::{QueueFilter, parse_id, queue_id};
use crate::users::{LockState, User, UserName, UserSettings};

type Res = Result<Answer, Answer>;

pub(crate) fn bad(msg: impl Into<String>) -> Answer {
    Answer::error(StatusCode::BAD_REQUEST, msg)
}

/// 422: a value out of its allowed range (the message names both).
pub(crate) fn out_of_range(msg: impl Into<String>) -> Answer {
    Answer::error(StatusCode::UNPROCESSABLE_ENTITY, msg)
}

pub(super) fn not_found(msg: impl Into<String>) -> Answer {
    Answer::error(StatusCode::NOT_FOUND, msg)
}

/// A boolean query flag; `ext::route` has already refused values other
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
        body: json!({
            "error": format!("{} invalid line(s); nothing was imported", errors.len()),
            "errors": errors,
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

fn query(uri: &Uri) -> Vec<(String, String)> {
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

pub fn route(ctl: &Control, method: &Method, uri: &Uri, body: &[u8]) -> Answer {
    let segs: Vec<String> = uri
        .path()
        .trim_matches('/')
        .split('/')
        .map(|p| unescape(p, false))
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let q = query(uri);
    if let Some(answer) = super::ext::route(ctl, method, &segs, &q, body) {
        return answer;
    }
    if let Some(answer) = super::dkim::route(ctl, method, &segs, &q, body) {
        return answer;
    }
    if let Some(answer) = crate::appliance::route(ctl, method, &segs, body) {
        return answer;
    }
    if let Some(answer) = crate::update::route(ctl, method, &segs, body) {
        return answer;
    }
    let result = match (method, segs.as_slice()) {
        (&Method::GET, ["v1", "health"]) => Ok(health(ctl)),
        (&Method::GET, ["v1", "users"]) => list_users(ctl, &q),
        (&Method::POST, ["v1", "users"]) => add_user(ctl, body),
        (&Method::POST, ["v1", "users", "import"]) => import_users(ctl, &q, body),
        (&Method::GET, ["v1", "users", "import", id]) => import_progress(ctl, id),
        (&Method::GET, ["v1", "users", name]) => show_user(ctl, name),
        (&Method::PATCH, ["v1", "users", name]) => edit_user(ctl, name, body),
        (&Method::DELETE, ["v1", "users", name]) => delete_user(ctl, name),
        (&Method::POST, ["v1", "users", name, "lock"]) => lock_user(ctl, name, body),
        (&Method::POST, ["v1", "users", name, "unlock"]) => unlock_user(ctl, name),
        (&Method::GET, ["v1", "settings"]) => Ok(Answer::ok(json!(ctl.server.settings.get()))),
        (&Method::PATCH, ["v1", "settings"]) => edit_settings(ctl, body),
        (&Method::GET, ["v1", "queue"]) => list_queue(ctl, &q),
        (&Method::GET, ["v1", "queue", id]) => show_queue(ctl, id),
        (&Method::DELETE, ["v1", "queue", id]) => delete_queue(ctl, id),
        (&Method::POST, ["v1", "queue", id, "retry"]) => retry_queue(ctl, id),
        (&Method::POST, ["v1", "queue", id, "bounce"]) => bounce_queue(ctl, id),
        (&Method::GET, ["v1", "quarantine"]) => list_quarantine(ctl),
        (&Method::GET, ["v1", "quarantine", id]) => show_quarantine(ctl, id),
        (&Method::POST, ["v1", "quarantine", id, "release"]) => release_quarantine(ctl, id),
        (&Method::DELETE, ["v1", "quarantine", id]) => delete_quarantine(ctl, id),
        (&Method::PUT, ["v1", "debug", "clock"]) => set_clock(ctl, body),
        (_, ["v1", ..]) => Err(Answer::error(
            StatusCode::NOT_FOUND,
            format!("no route {method} {}", uri.path()),
        )),
        _ => Err(not_found("unknown path; the API lives under /v1/")),
    };
    result.unwrap_or_else(|e| e)
}

fn health(ctl: &Control) -> Answer {
    Answer::ok(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "stats": ctl.server.stats.snapshot(),
        "hardening": ctl.server.hardening,
        "delivery": ctl.delivery.snapshot(),
    }))
}

fn canonical(name: &str) -> Result<String, Answer> {
    UserName::parse(name).map(|n| n.to_string()).map_err(bad)
}

fn view(ctl: &Control, u: &User) -> Result<Value, Answer> {
    let now = ctl.server.clock.now();
    ctl.server
        .settings
        .read(|c| views::user(u, &ctl.server.store, c, now))
        .map_err(internal)
}

fn list_users(ctl: &Control, q: &[(String, String)]) -> Res {
    let filter = q
        .iter()
        .find(|(k, _)| k == "filter")
        .map(|(_, v)| v.to_ascii_lowercase());
    let status = q
        .iter()
        .find(|(k, _)| k == "status")
        .map(|(_, v)| v.as_str());
    if let Some(s) = status
        && !["active", "locked"].contains(&s)
    {
        return Err(bad(format!(
            "status must be 'active' or 'locked', not '{s}'"
        )));
    }
    let now = ctl.server.clock.now();
    let mut out = Vec::new();
    for u in ctl.server.store.users().map_err(internal)? {
        if filter
            .as_ref()
            .is_some_and(|f| !u.name.contains(f.as_str()))
        {
            continue;
        }
        let locked = u.lock.in_force(now).is_some();
        if status.is_some_and(|s| (s == "locked") != locked) {
            continue;
        }
        out.push(view(ctl, &u)?);
    }
    Ok(Answer::ok(Value::Array(out)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    name: String,
    #[serde(default)]
    password: Option<String>,
    /// For IP users: the domain they may send from.
    #[serde(default)]
    domain: Option<String>,
    #[serde(default)]
    settings: UserSettings,
}

fn add_user(ctl: &Control, body: &[u8]) -> Res {
    let req: NewUser = json_body(body)?;
    let name = UserName::parse(&req.name).map_err(bad)?;
    let password = req.password.filter(|p| !p.is_empty());
    let domain = match (&name, req.domain.filter(|d| !d.is_empty())) {
        (UserName::Address { .. }, Some(_)) => {
            return Err(bad(
                "domain is only for IP address users; it is part of user@domain",
            ));
        }
        (_, Some(d)) => Some(crate::users::validate_domain(&d).map_err(bad)?),
        (_, None) => None,
    };
    match (&name, &password) {
        (UserName::Network(_), Some(_)) => {
            return Err(bad("an IP address user has no password (leave it blank)"));
        }
        (UserName::Address { .. }, None) => {
            return Err(bad(
                "password is required: only IP address users may have a blank password",
            ));
        }
        (_, Some(p)) => check_password(p).map_err(bad)?,
        _ => {}
    }
    req.settings.check_ranges().map_err(out_of_range)?;
    let now = ctl.server.clock.now();
    let mut user = User::new(&name, domain, now);
    user.password_hash = password.as_deref().map(password::hash);
    user.settings = req.settings;
    user.record(now, "created");
    if !ctl.server.store.add_user(&user).map_err(internal)? {
        return Err(Answer::error(
            StatusCode::CONFLICT,
            format!("user {name} already exists"),
        ));
    }
    tracing::info!(user = %name, "user added");
    Ok(Answer {
        status: StatusCode::CREATED,
        body: view(ctl, &user)?,
    })
}

fn show_user(ctl: &Control, name: &str) -> Res {
    let name = canonical(name)?;
    let u = ctl
        .server
        .store
        .user(&name)
        .map_err(internal)?
        .ok_or_else(|| not_found(format!("no user {name}")))?;
    Ok(Answer::ok(view(ctl, &u)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EditUser {
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    settings: UserSettings,
    /// Settings to reset to the system default.
    #[serde(default)]
    clear: Vec<String>,
}

fn edit_user(ctl: &Control, name: &str, body: &[u8]) -> Res {
    let name = canonical(name)?;
    let req: EditUser = json_body(body)?;
    req.settings.check_ranges().map_err(out_of_range)?;
    let is_network = matches!(UserName::parse(&name), Ok(UserName::Network(_)));
    if let Some(p) = &req.password {
        if is_network {
            return Err(bad("an IP address user has no password"));
        }
        check_password(p).map_err(bad)?;
    }
    // Clearing goes through JSON so field names are checked in one place.
    let mut cleared = serde_json::to_value(UserSettings::default()).map_err(internal)?;
    for field in &req.clear {
        match cleared.get_mut(field.as_str()) {
            Some(v) => *v = Value::Null,
            None => return Err(bad(format!("unknown setting '{field}'"))),
        }
    }
    let hash = req.password.as_deref().map(password::hash);
    let now = ctl.server.clock.now();
    let updated = ctl
        .server
        .store
        .update_user(&name, |u| {
            u.settings.merge(&req.settings);
            let mut s = serde_json::to_value(&u.settings).unwrap_or(Value::Null);
            for field in &req.clear {
                s[field.as_str()] = Value::Null;
            }
            if let Ok(s) = serde_json::from_value(s) {
                u.settings = s;
            }
            if let Some(h) = hash {
                u.password_hash = Some(h);
                u.record(now, "password changed");
            }
            u.record(now, "settings edited");
        })
        .map_err(internal)?
        .ok_or_else(|| not_found(format!("no user {name}")))?;
    Ok(Answer::ok(view(ctl, &updated)?))
}

fn delete_user(ctl: &Control, name: &str) -> Res {
    let name = canonical(name)?;
    if !ctl.server.store.delete_user(&name).map_err(internal)? {
        return Err(not_found(format!("no user {name}")));
    }
    tracing::info!(user = %name, "user deleted");
    Ok(Answer::ok(json!({ "deleted": name })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct LockRequest {
    /// Lock for this long; absent: until an admin unlocks.
    minutes: Option<u32>,
    reason: Option<String>,
}

fn lock_user(ctl: &Control, name: &str, body: &[u8]) -> Res {
    let name = canonical(name)?;
    let req: LockRequest = json_body(body)?;
    if let Some(m) = req.minutes {
        bounds::LOCK_MINUTES.check(m).map_err(out_of_range)?;
    }
    let now = ctl.server.clock.now();
    let reason = req.reason.unwrap_or_else(|| "locked by admin".into());
    let lock = match req.minutes {
        Some(m) => LockState::LockedUntil {
            until: bounds::later(now, bounds::minutes(m)),
            reason: reason.clone(),
        },
        None => LockState::LockedByAdmin {
            since: now,
            reason: reason.clone(),
        },
    };
    let updated = ctl
        .server
        .store
        .update_user(&name, |u| {
            u.lock = lock;
            u.record(now, format!("locked by admin: {reason}"));
        })
        .map_err(internal)?
        .ok_or_else(|| not_found(format!("no user {name}")))?;
    tracing::info!(user = %name, "user locked by admin");
    Ok(Answer::ok(view(ctl, &updated)?))
}

fn unlock_user(ctl: &Control, name: &str) -> Res {
    let name = canonical(name)?;
    let now = ctl.server.clock.now();
    let updated = ctl
        .server
        .store
        .update_user(&name, |u| {
            u.lock = LockState::Active;
            u.unlocks_by_timeout = 0;
            u.record(now, "unlocked by admin");
        })
        .map_err(internal)?
        .ok_or_else(|| not_found(format!("no user {name}")))?;
    // The admin has looked: earlier holds no longer count towards a lock.
    ctl.server.store.clear_holds(&name).map_err(internal)?;
    tracing::info!(user = %name, "user unlocked by admin");
    Ok(Answer::ok(view(ctl, &updated)?))
}

fn importer(ctl: &Control) -> import::job::Importer {
    import::job::Importer {
        store: ctl.server.store.clone(),
        verifier: ctl.server.verifier.clone(),
        runtime: tokio::runtime::Handle::try_current().ok(),
        batch: import::job::BATCH,
    }
}

/// Validates the whole file, then imports it in batches (`import::job`):
/// at once, answering with every name, or with `background=true` as a job
/// whose progress `GET /v1/users/import/{id}` reports (202).
fn import_users(ctl: &Control, q: &[(String, String)], body: &[u8]) -> Res {
    let (lines, errors) = import::parse(body);
    refuse_invalid_lines(&errors, flag(q, "skip_invalid"))?;
    let now = ctl.server.clock.now();
    let importer = importer(ctl);
    if flag(q, "background") {
        return match ctl.imports.start(importer, lines, errors.len(), now) {
            Ok(progress) => {
                tracing::info!(
                    job = progress.id,
                    total = progress.total,
                    "user import started"
                );
                let mut body = json!(progress);
                body["errors"] = json!(errors);
                Ok(Answer {
                    status: StatusCode::ACCEPTED,
                    body,
                })
            }
            Err(running) => Err(Answer::error(
                StatusCode::CONFLICT,
                format!("import {running} is still running; wait for it to finish"),
            )),
        };
    }
    let (mut added, mut existing) = (Vec::new(), Vec::new());
    let result = importer.run(&lines, now, |batch| {
        added.extend_from_slice(&batch.added);
        existing.extend_from_slice(&batch.existing);
    });
    tracing::info!(
        added = added.len(),
        existing = existing.len(),
        skipped = errors.len(),
        "users imported"
    );
    if let Err(e) = result {
        return Err(Answer {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            body: json!({
                "error": format!("import stopped: {e}; the {} user(s) of the batches before stay (import the file again to resume)", added.len()),
                "added": added,
                "existing": existing,
            }),
        });
    }
    Ok(Answer::ok(json!({
        "added": added,
        "existing": existing,
        "errors": errors,
    })))
}

fn import_progress(ctl: &Control, id: &str) -> Res {
    let id: u64 = id
        .parse()
        .map_err(|_| bad(format!("import id must be a number, not '{id}'")))?;
    let progress = ctl
        .imports
        .get(id)
        .ok_or_else(|| not_found(format!("no import {id} (only the last 16 are kept)")))?;
    Ok(Answer::ok(json!(progress)))
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

fn edit_settings(ctl: &Control, body: &[u8]) -> Res {
    let patch: Value = json_body(body)?;
    let mut current = serde_json::to_value(ctl.server.settings.get()).map_err(internal)?;
    merge(&mut current, &patch).map_err(bad)?;
    let new: crate::settings::SystemSettings =
        serde_json::from_value(current).map_err(|e| bad(format!("invalid settings: {e}")))?;
    new.check_ranges().map_err(out_of_range)?;
    new.validate().map_err(bad)?;
    ctl.server.store.put_settings(&new).map_err(internal)?;
    ctl.server.settings.replace(new.clone()).map_err(bad)?;
    tracing::info!(settings = %serde_json::to_string(&new).unwrap_or_default(), "settings changed");
    Ok(Answer::ok(json!(new)))
}

fn queue_view(e: &crate::store::QueueEntry) -> Value {
    json!({
        "id": queue_id(e.id),
        "user": e.user,
        "sender": e.sender,
        "recipients": e.recipients,
        "size": e.size,
        "received": e.received,
        "client_ip": e.client_ip,
        "helo": e.helo,
        "state": e.state(),
        "next_attempt": e.next_attempt,
        "smtputf8": e.smtputf8,
    })
}

fn list_queue(ctl: &Control, q: &[(String, String)]) -> Res {
    let mut filter = QueueFilter::default();
    for (k, v) in q {
        match k.as_str() {
            "user" => filter.user = Some(canonical(v)?),
            "state" => {
                filter.state = Some(serde_json::from_value(json!(v)).map_err(|_| {
                    bad(format!(
                        "state must be queued, delivered, failed or expired, not '{v}'"
                    ))
                })?)
            }
            _ => return Err(bad(format!("unknown filter '{k}'"))),
        }
    }
    let entries = ctl.server.store.queue(&filter).map_err(internal)?;
    Ok(Answer::ok(Value::Array(
        entries.iter().map(queue_view).collect(),
    )))
}

fn show_queue(ctl: &Control, id: &str) -> Res {
    let n = parse_id(id).ok_or_else(|| bad(format!("'{id}' is not a queue id")))?;
    let e = ctl
        .server
        .store
        .queue_entry(n)
        .map_err(internal)?
        .ok_or_else(|| not_found(format!("no queued message {id}")))?;
    let mut v = queue_view(&e);
    if let Some(body) = ctl.server.store.queue_body(n).map_err(internal)? {
        let head_end = body
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(body.len(), |p| p + 2);
        v["headers"] = json!(String::from_utf8_lossy(&body[..head_end.min(64 * 1024)]));
    }
    Ok(Answer::ok(v))
}

fn queue_number(id: &str) -> Result<u64, Answer> {
    parse_id(id).ok_or_else(|| bad(format!("'{id}' is not a queue id")))
}

fn delete_queue(ctl: &Control, id: &str) -> Res {
    let n = queue_number(id)?;
    if !ctl.server.store.remove_entry(n).map_err(internal)? {
        return Err(not_found(format!("no queued message {id}")));
    }
    tracing::info!(id = %queue_id(n), "queued message deleted by admin");
    Ok(Answer::ok(json!({ "deleted": queue_id(n) })))
}

fn retry_queue(ctl: &Control, id: &str) -> Res {
    let n = queue_number(id)?;
    let now = ctl.server.clock.now();
    let e = crate::delivery::admin_retry(&ctl.server.store, n, now)
        .map_err(internal)?
        .ok_or_else(|| not_found(format!("no queued message {id}")))?;
    tracing::info!(id = %queue_id(n), "queued message set for immediate retry by admin");
    Ok(Answer::ok(queue_view(&e)))
}

fn bounce_queue(ctl: &Control, id: &str) -> Res {
    let n = queue_number(id)?;
    let s = &ctl.server;
    let now = s.clock.now();
    let e =
        crate::delivery::admin_bounce(&s.store, &s.committer, &s.hostname, &ctl.delivery, n, now)
            .map_err(internal)?
            .ok_or_else(|| not_found(format!("no queued message {id}")))?;
    tracing::info!(id = %queue_id(n), "queued message returned to sender by admin");
    Ok(Answer::ok(queue_view(&e)))
}

fn quarantine_id(id: &str) -> Result<u64, Answer> {
    parse_id(id).ok_or_else(|| bad(format!("'{id}' is not a quarantine id")))
}

fn quarantine_view(q: &crate::store::QuarantineEntry) -> Value {
    json!({
        "id": queue_id(q.id),
        "user": q.user,
        "sender": q.sender,
        "recipients": q.recipients,
        "size": q.size,
        "received": q.received,
        "client_ip": q.client_ip,
        "class": q.class,
        "score": q.score,
        "fate": q.fate,
        "reasons": q.reasons,
    })
}

fn list_quarantine(ctl: &Control) -> Res {
    let entries = ctl.server.store.quarantined().map_err(internal)?;
    Ok(Answer::ok(Value::Array(
        entries.iter().map(quarantine_view).collect(),
    )))
}

fn show_quarantine(ctl: &Control, id: &str) -> Res {
    let n = quarantine_id(id)?;
    let (q, body) = ctl
        .server
        .store
        .quarantine_entry(n)
        .map_err(internal)?
        .ok_or_else(|| not_found(format!("no quarantined message {id}")))?;
    let mut v = quarantine_view(&q);
    v["headers"] = json!(header_text(&body));
    Ok(Answer::ok(v))
}

fn release_quarantine(ctl: &Control, id: &str) -> Res {
    let n = quarantine_id(id)?;
    let queue = ctl.server.committer.reserve_id();
    let now = ctl.server.clock.now();
    if !ctl
        .server
        .store
        .release_quarantined(n, queue, now)
        .map_err(internal)?
    {
        return Err(not_found(format!("no quarantined message {id}")));
    }
    tracing::info!(quarantine_id = %id, queue_id = %queue_id(queue), "released from quarantine");
    Ok(Answer::ok(
        json!({ "released": id, "queue_id": queue_id(queue) }),
    ))
}

fn delete_quarantine(ctl: &Control, id: &str) -> Res {
    let n = quarantine_id(id)?;
    if !ctl.server.store.delete_quarantined(n).map_err(internal)? {
        return Err(not_found(format!("no quarantined message {id}")));
    }
    tracing::info!(quarantine_id = %id, "deleted from quarantine");
    Ok(Answer::ok(json!({ "deleted": id })))
}

/// The header section of a message, bounded, as text.
fn header_text(body: &[u8]) -> String {
    let end = body
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(body.len(), |p| p + 2);
    String::from_utf8_lossy(&body[..end.min(64 * 1024)]).into_owned()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockRequest {
    /// RFC 3339 time to move to; absent: back to the system clock.
    now: Option<jiff::Timestamp>,
}

fn set_clock(ctl: &Control, body: &[u8]) -> Res {
    if !ctl.config.debug.clock_override {
        return Err(Answer::error(
            StatusCode::FORBIDDEN,
            "clock override is disabled (debug.clock_override)",
        ));
    }
    let req: ClockRequest = json_body(body)?;
    match req.now {
        Some(t) => ctl.server.clock.set(t),
        None => ctl.server.clock.reset(),
    }
    tracing::warn!(now = %ctl.server.clock.now(), "clock overridden");
    Ok(Answer::ok(json!({ "now": ctl.server.clock.now() })))
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
