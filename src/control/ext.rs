//! The system routes (served on both the Unix socket and HTTPS):
//! dashboard figures, the audit log, log search, the TLS certificate, the
//! admin password and the OpenAPI description.

use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::routes::{bad, internal, json_body, paging};
use super::{Answer, Control};
use crate::auth::password;
use crate::import::check_password;
use crate::policy::windows;
use crate::store::QueueFilter;

type Res = Result<Answer, Answer>;

/// The OpenAPI description of every route; tests keep it true.
pub const OPENAPI: &str = include_str!("../admin/openapi.json");

fn param<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn limit(q: &[(String, String)], default: usize) -> Result<usize, Answer> {
    match param(q, "limit") {
        None => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=10_000).contains(n))
            .ok_or_else(|| bad(format!("limit must be 1 to 10000, not '{v}'"))),
    }
}

pub(crate) fn openapi() -> Res {
    serde_json::from_str(OPENAPI)
        .map(Answer::ok)
        .map_err(internal)
}

/// Figures for the dashboard and the metrics endpoint.
pub fn summary(ctl: &Control) -> Result<Value, Answer> {
    let store = &ctl.app.store;
    let now = ctl.app.clock.now();
    let tz = ctl.app.settings.read(|c| c.tz.clone());
    let w = windows::windows(now, &tz);
    // Kept by the store in the committer's transaction (store::counts):
    // the sum over users of their counters of today.
    let (accepted_today, recipients_today) = store.day_totals(&w.day).map_err(internal)?;
    // A scan, but the queue holds only mail not yet delivered (small by
    // nature, bounded by the store's space refusal), not every user.
    let queue = store.queue(&QueueFilter::default()).map_err(internal)?;
    let mut states = serde_json::Map::new();
    for e in &queue {
        let key = serde_json::to_value(e.state())
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let n = states.get(&key).and_then(Value::as_u64).unwrap_or(0);
        states.insert(key, json!(n + 1));
    }
    let delivered: u64 = queue
        .iter()
        .flat_map(|e| &e.recipients)
        .filter(|r| r.state == crate::store::RcptState::Delivered)
        .count() as u64;
    // Today in the appliance's timezone, as `windows` names it.
    let start = now
        .to_zoned(tz.clone())
        .start_of_day()
        .map_or(now, |z| z.timestamp());
    let end = windows::resets(now, &tz).day.timestamp();
    let (quarantine_size, quarantined_today) =
        store.quarantine_counts(start, end).map_err(internal)?;
    let (incoming_domains, incoming_users) = store.incoming_counts().map_err(internal)?;
    let today = ctl.app.today_counts();
    let (under_attack, account_blocks) = ctl.app.throttle.account_stats();
    let queue_size = states.get("queued").and_then(Value::as_u64).unwrap_or(0);
    Ok(json!(Dashboard {
        today: w.day,
        quarantine_size,
        messages_quarantined_today: quarantined_today,
        messages_refused_today: today.refused,
        messages_caught_today: today.caught,
        messages_accepted_today: accepted_today,
        recipients_today,
        users: store.user_count().map_err(internal)?,
        // Kept by the store with every user write (store::users).
        locked_users: store.locked_users().map_err(internal)?,
        queue_size,
        queue_by_state: states,
        recipients_delivered_in_queue: delivered,
        incoming_domains,
        incoming_users,
        since_start: ctl.app.stats.snapshot(),
        auth_accounts_under_attack: under_attack,
        auth_account_blocks: account_blocks,
        delivery: ctl.delivery.snapshot(),
        fleet: crate::store::fleet::current().map(|f| f.status()),
    }))
}

/// Figures for the dashboard (`GET /v1/dashboard`, and /metrics).
#[derive(serde::Serialize)]
#[cfg_attr(test, derive(utoipa::ToSchema))]
struct Dashboard {
    today: String,
    /// Caught today and still held (released or deleted ones no longer count)
    messages_quarantined_today: u64,
    quarantine_size: u64,
    /// Refused today (limits, locks, content, policy), counted since the daemon started
    messages_refused_today: u64,
    /// Caught as spam or malware today, counted since the daemon started
    messages_caught_today: u64,
    messages_accepted_today: u64,
    recipients_today: u64,
    users: u64,
    locked_users: u64,
    queue_size: u64,
    #[cfg_attr(test, schema(schema_with = crate::control::openapi::counts_by_name))]
    queue_by_state: serde_json::Map<String, Value>,
    recipients_delivered_in_queue: u64,
    incoming_domains: u64,
    incoming_users: u64,
    since_start: crate::app::Snapshot,
    /// Accounts refused now to addresses that never logged in to them, after too many failed SMTP logins
    auth_accounts_under_attack: u64,
    /// Such account blocks since start
    auth_account_blocks: u64,
    #[cfg_attr(test, schema(schema_with = crate::control::openapi::delivery_counters))]
    delivery: Value,
    /// The shared store's state; null for a box alone (no `[store] shared`)
    #[cfg_attr(test, schema(value_type = Option<Object>, required = true))]
    fleet: Option<Value>,
}

#[cfg_attr(test, utoipa::path(get, tag = "system", path = "/v1/dashboard",
    summary = "Figures for the dashboard",
    responses(
        (status = 200, description = "Figures", body = Dashboard),
        crate::control::openapi::LoggedIn,
    )))]
pub(super) fn dashboard(ctl: &Control) -> Res {
    summary(ctl).map(Answer::ok)
}

#[cfg_attr(test, utoipa::path(get, tag = "system", path = "/v1/audit",
    summary = "Audit log of admin actions, newest first",
    description = "One page, newest first; next is the id of the oldest entry looked at.",
    params(("filter" = Option<String>, Query, nullable = false, description = "Only entries containing this"), ("limit" = Option<i64>, Query, nullable = false, minimum = 1, maximum = 1000, description = "Items per page (default 100, at most 1000; outside 1 to 1000 is 400)"), ("after" = Option<String>, Query, nullable = false, description = "The next cursor of the page before; absent or empty: the first page")),
    responses(
        (status = 200, description = "Entries", body = crate::control::routes::paging::Paged<crate::store::AuditEntry>),
        crate::control::openapi::Reads,
    )))]
pub(super) fn audit(ctl: &Control, q: &[(String, String)]) -> Res {
    for (k, _) in q {
        if !["filter", "limit", "after"].contains(&k.as_str()) {
            return Err(bad(format!("unknown parameter '{k}'")));
        }
    }
    let want = paging::want(q)?;
    let page = ctl
        .app
        .store
        .audit_page(
            param(q, "filter").filter(|f| !f.is_empty()),
            want.after_number()?,
            want.limit,
        )
        .map_err(internal)?;
    Ok(paging::numbered(page))
}

#[cfg_attr(test, utoipa::path(get, tag = "system", path = "/v1/logs",
    summary = "Search the recent log lines kept in memory",
    params(("q" = Option<String>, Query, nullable = false, description = "Text to find (case-insensitive)"), ("limit" = Option<i64>, Query, nullable = false, minimum = 1, maximum = 10000, description = "")),
    responses(
        (status = 200, description = "Lines, oldest first", body = Vec<String>),
        crate::control::openapi::Reads,
    )))]
pub(super) fn logs(q: &[(String, String)]) -> Res {
    for (k, _) in q {
        if !["q", "limit"].contains(&k.as_str()) {
            return Err(bad(format!("unknown parameter '{k}'")));
        }
    }
    let lines = super::logs::ring().search(param(q, "q").unwrap_or(""), limit(q, 200)?);
    Ok(Answer::ok(json!(lines)))
}

fn cert_view(ctl: &Control) -> Value {
    use sha2::{Digest, Sha256};
    let ck = ctl.certs.current();
    let pem: String = ck
        .cert
        .iter()
        .map(|c| {
            let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, c);
            let lines: Vec<&str> = b64
                .as_bytes()
                .chunks(64)
                .map(|l| std::str::from_utf8(l).unwrap_or(""))
                .collect();
            format!(
                "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
                lines.join("\n")
            )
        })
        .collect();
    let fp = ck
        .cert
        .first()
        .map(|c| {
            Sha256::digest(c)
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect::<Vec<_>>()
                .join(":")
        })
        .unwrap_or_default();
    json!(Certificate {
        sha256_fingerprint: fp,
        chain_length: ck.cert.len(),
        certificate: pem,
    })
}

/// The certificate served by every TLS listener.
#[derive(serde::Serialize)]
#[cfg_attr(test, derive(utoipa::ToSchema))]
struct Certificate {
    sha256_fingerprint: String,
    chain_length: usize,
    /// PEM chain in use
    certificate: String,
}

#[cfg_attr(test, utoipa::path(get, tag = "tls", path = "/v1/tls/certificate",
    summary = "The certificate served by every TLS listener",
    responses(
        (status = 200, description = "Certificate", body = Certificate),
        crate::control::openapi::LoggedIn,
    )))]
pub(super) fn show_cert(ctl: &Control) -> Res {
    Ok(Answer::ok(cert_view(ctl)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(test, derive(utoipa::ToSchema), schema(as = NewCertificate))]
struct NewCert {
    /// PEM certificate chain
    certificate: String,
    /// PEM private key matching the first certificate
    private_key: String,
}

#[cfg_attr(test, utoipa::path(put, tag = "tls", path = "/v1/tls/certificate",
    summary = "Replace the certificate (checked first; listeners use it at once)",
    request_body(content = NewCert),
    responses(
        (status = 200, description = "Now in use", body = Certificate),
        crate::control::openapi::Writes,
    )))]
pub(super) fn put_cert(ctl: &Control, body: &[u8]) -> Res {
    let req: NewCert = json_body(body)?;
    let ck = crate::tls::certified_key(req.certificate.as_bytes(), req.private_key.as_bytes())
        .map_err(bad)?;
    crate::tls::save(
        &ctl.config.cert_path(),
        &ctl.config.key_path(),
        req.certificate.as_bytes(),
        req.private_key.as_bytes(),
    )
    .map_err(|e| {
        tracing::error!(error = %e, "certificate upload: cannot save");
        Answer::error(StatusCode::INTERNAL_SERVER_ERROR, e)
    })?;
    ctl.certs.replace(ck);
    tracing::info!("TLS certificate replaced");
    Ok(Answer::ok(cert_view(ctl)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(test, derive(utoipa::ToSchema))]
struct NewPassword {
    #[cfg_attr(test, schema(min_length = 8))]
    password: String,
}

/// The admin password is changed.
#[derive(serde::Serialize)]
#[cfg_attr(test, derive(utoipa::ToSchema))]
struct PasswordChanged {
    changed: bool,
}

#[cfg_attr(test, utoipa::path(put, tag = "system", path = "/v1/admin/password",
    summary = "Change the admin password (ends every HTTPS session)",
    request_body(content = NewPassword),
    responses(
        (status = 200, description = "Changed", body = PasswordChanged),
        crate::control::openapi::Writes,
    )))]
pub(super) fn set_admin_password(ctl: &Control, body: &[u8]) -> Res {
    let req: NewPassword = json_body(body)?;
    check_password(&req.password).map_err(bad)?;
    ctl.app
        .store
        .set_admin_password(&password::hash(&req.password))
        .map_err(internal)?;
    tracing::info!("admin password changed");
    Ok(Answer::ok(json!(PasswordChanged { changed: true })))
}
