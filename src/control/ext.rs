//! The routes added for the LAN admin face (issue 5), served on both the
//! Unix socket and HTTPS: incoming domains and users, import of incoming
//! users as outgoing ones, CSV preview and export, dashboard figures, the
//! audit log, log search, the TLS certificate, the admin password and the
//! OpenAPI description.

use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::routes::{bad, flag, internal, json_body, not_found, paging, refuse_invalid_lines};
use super::{Answer, Control};
use crate::auth::password;
use crate::import::{self, check_password};
use crate::incoming;
use crate::policy::windows;
use crate::store::QueueFilter;
use crate::users::spec::USER_SETTINGS;
use crate::users::{User, UserName, validate_domain};

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
    let (tz, defaults) = ctl
        .app
        .settings
        .read(|c| (c.tz.clone(), c.settings.defaults.clone()));
    let w = windows::windows(now, &tz);
    let users = store.users().map_err(internal)?;
    let (mut accepted_today, mut recipients_today, mut locked) = (0u64, 0u64, 0u64);
    for u in &users {
        let usage = store.usage(&u.name).map_err(internal)?;
        let st = crate::policy::standing(u, &usage, &defaults, &tz, now);
        accepted_today += u64::from(st.counts.day);
        recipients_today += u64::from(st.counts.recipients_day);
        locked += u64::from(st.lock.is_some());
    }
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
    let quarantine = store.quarantined().map_err(internal)?;
    let quarantined_today = quarantine
        .iter()
        .filter(|q| windows::windows(q.received, &tz).day == w.day)
        .count();
    let today = ctl.app.today_counts();
    let (under_attack, account_blocks) = ctl.app.throttle.account_stats();
    Ok(json!({
        "today": w.day,
        "quarantine_size": quarantine.len(),
        "messages_quarantined_today": quarantined_today,
        "messages_refused_today": today.refused,
        "messages_caught_today": today.caught,
        "messages_accepted_today": accepted_today,
        "recipients_today": recipients_today,
        "users": users.len(),
        "locked_users": locked,
        "queue_size": states.get("queued").and_then(Value::as_u64).unwrap_or(0),
        "queue_by_state": states,
        "recipients_delivered_in_queue": delivered,
        "incoming_domains": store.incoming_domains().map_err(internal)?.len(),
        "incoming_users": store.incoming_users().map_err(internal)?.len(),
        "since_start": ctl.app.stats.snapshot(),
        // Accounts refused to unknown addresses after too many failed
        // logins (auth::throttle), now and since start.
        "auth_accounts_under_attack": under_attack,
        "auth_account_blocks": account_blocks,
        "delivery": ctl.delivery.snapshot(),
        // Null for a box alone (no `[store] shared`).
        "fleet": crate::store::fleet::current().map(|f| f.status()),
    }))
}

pub(super) fn dashboard(ctl: &Control) -> Res {
    summary(ctl).map(Answer::ok)
}

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

pub(super) fn logs(q: &[(String, String)]) -> Res {
    for (k, _) in q {
        if !["q", "limit"].contains(&k.as_str()) {
            return Err(bad(format!("unknown parameter '{k}'")));
        }
    }
    let lines = super::logs::ring().search(param(q, "q").unwrap_or(""), limit(q, 200)?);
    Ok(Answer::ok(json!(lines)))
}

/// The CSV columns about the user; then one column per setting of
/// `users::spec::USER_SETTINGS`, named as the setting (blank: the system
/// default applies).
const EXPORT_HEADER: [&str; 5] = ["user", "domain", "kind", "has_password", "status"];

/// The CSV of every outgoing user with its settings, never a password hash.
pub fn export_csv(ctl: &Control) -> Result<(String, usize), Answer> {
    let now = ctl.app.clock.now();
    let users = ctl.app.store.users().map_err(internal)?;
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<&str> = EXPORT_HEADER.to_vec();
    header.extend(USER_SETTINGS.iter().map(|s| s.name));
    w.write_record(&header).map_err(internal)?;
    for u in &users {
        let s = serde_json::to_value(&u.settings).map_err(internal)?;
        let mut row = vec![
            u.name.clone(),
            u.domain.clone().unwrap_or_default(),
            if u.is_network() { "ip" } else { "address" }.to_string(),
            u.password_hash.is_some().to_string(),
            match u.lock.in_force(now) {
                None => "active".into(),
                Some(crate::users::LockState::LockedByAdmin { .. }) => "locked_until_admin".into(),
                Some(_) => "locked_until".into(),
            },
        ];
        for spec in USER_SETTINGS {
            row.push(match &s[spec.name] {
                Value::Null => String::new(),
                Value::String(t) => t.clone(),
                v => v.to_string(),
            });
        }
        w.write_record(&row).map_err(internal)?;
    }
    let bytes = w.into_inner().map_err(internal)?;
    Ok((String::from_utf8_lossy(&bytes).into_owned(), users.len()))
}

pub(super) fn export_users(ctl: &Control) -> Res {
    let (csv, count) = export_csv(ctl)?;
    Ok(Answer::ok(json!({ "count": count, "csv": csv })))
}

/// What an import would do, without doing it.
pub(super) fn preview_import(ctl: &Control, body: &[u8]) -> Res {
    let (lines, errors) = import::parse(body);
    let (mut add, mut existing) = (Vec::new(), Vec::new());
    for l in &lines {
        let name = l.name.to_string();
        let entry = json!({
            "line": l.line,
            "name": name,
            "kind": if l.name.network().is_some() { "ip" } else { "address" },
        });
        if ctl.app.store.user(&name).map_err(internal)?.is_some() {
            existing.push(entry);
        } else {
            add.push(entry);
        }
    }
    Ok(Answer::ok(json!({
        "add": add,
        "existing": existing,
        "errors": errors,
    })))
}

pub(super) fn import_incoming(ctl: &Control, q: &[(String, String)]) -> Res {
    let now = ctl.app.clock.now();
    let incoming = ctl.app.store.incoming_users().map_err(internal)?;
    let mut users = Vec::new();
    for i in &incoming {
        let name = UserName::parse(&i.name).map_err(internal)?;
        let mut u = User::new(&name, None, now);
        u.record(
            now,
            "imported from incoming users (no password: cannot authenticate until one is set)",
        );
        users.push(u);
    }
    if flag(q, "preview") {
        let (mut add, mut existing) = (Vec::new(), Vec::new());
        for u in &users {
            let exists = ctl.app.store.user(&u.name).map_err(internal)?.is_some();
            if exists { &mut existing } else { &mut add }.push(u.name.clone());
        }
        return Ok(Answer::ok(json!({ "added": add, "existing": existing })));
    }
    let outcome = ctl.app.store.import_users(&users).map_err(internal)?;
    tracing::info!(
        added = outcome.added.len(),
        existing = outcome.existing.len(),
        "incoming users imported as outgoing users"
    );
    Ok(Answer::ok(json!({
        "added": outcome.added,
        "existing": outcome.existing,
    })))
}

/// `GET /v1/incoming/domains`: one page, in name order.
pub(super) fn list_domains(ctl: &Control, q: &[(String, String)]) -> Res {
    let want = paging::want(q)?;
    let page = ctl
        .app
        .store
        .incoming_domains_page(want.after.as_deref(), want.limit)
        .map_err(internal)?;
    paging::named(page, |d| Ok(json!(d)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewDomain {
    domain: String,
}

pub(super) fn add_domain(ctl: &Control, body: &[u8]) -> Res {
    let req: NewDomain = json_body(body)?;
    let domain = validate_domain(req.domain.trim()).map_err(bad)?;
    let now = ctl.app.clock.now();
    if !ctl
        .app
        .store
        .add_incoming_domain(&domain, now)
        .map_err(internal)?
    {
        return Err(Answer::error(
            StatusCode::CONFLICT,
            format!("domain {domain} is already protected"),
        ));
    }
    Ok(Answer {
        status: StatusCode::CREATED,
        body: json!({ "name": domain, "added": now }),
    })
}

pub(super) fn delete_domain(ctl: &Control, domain: &str) -> Res {
    let domain = validate_domain(domain).map_err(bad)?;
    match ctl
        .app
        .store
        .delete_incoming_domain(&domain)
        .map_err(internal)?
    {
        None => Err(not_found(format!("no protected domain {domain}"))),
        Some(n) => Ok(Answer::ok(json!({ "deleted": domain, "users_deleted": n }))),
    }
}

/// `GET /v1/incoming/users`: one page, in name order.
pub(super) fn list_incoming(ctl: &Control, q: &[(String, String)]) -> Res {
    let want = paging::want(q)?;
    let page = ctl
        .app
        .store
        .incoming_users_page(want.after.as_deref(), want.limit)
        .map_err(internal)?;
    paging::named(page, |u| Ok(json!(u)))
}

fn incoming_name(text: &str) -> Result<String, Answer> {
    match UserName::parse(text).map_err(bad)? {
        UserName::Address { local, domain } => Ok(format!("{local}@{domain}")),
        UserName::Network(_) => Err(bad(format!(
            "'{text}' is an IP address; an incoming user is user@domain"
        ))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewIncoming {
    name: String,
}

pub(super) fn add_incoming(ctl: &Control, body: &[u8]) -> Res {
    let req: NewIncoming = json_body(body)?;
    let name = incoming_name(&req.name)?;
    let now = ctl.app.clock.now();
    let outcome = ctl
        .app
        .store
        .add_incoming_users(std::slice::from_ref(&name), false, now)
        .map_err(internal)?
        .map_err(bad)?;
    if outcome.added.is_empty() {
        return Err(Answer::error(
            StatusCode::CONFLICT,
            format!("incoming user {name} already exists"),
        ));
    }
    Ok(Answer {
        status: StatusCode::CREATED,
        body: json!({ "name": name, "added": now }),
    })
}

pub(super) fn import_incoming_csv(ctl: &Control, q: &[(String, String)], body: &[u8]) -> Res {
    let (names, errors) = incoming::parse(body);
    refuse_invalid_lines(&errors, flag(q, "skip_invalid"))?;
    let now = ctl.app.clock.now();
    let outcome = ctl
        .app
        .store
        .add_incoming_users(&names, true, now)
        .map_err(internal)?
        .map_err(bad)?;
    Ok(Answer::ok(json!({
        "added": outcome.added,
        "existing": outcome.existing,
        "domains_added": outcome.domains_added,
        "errors": errors,
    })))
}

pub(super) fn delete_incoming(ctl: &Control, name: &str) -> Res {
    let name = incoming_name(name)?;
    if !ctl
        .app
        .store
        .delete_incoming_user(&name)
        .map_err(internal)?
    {
        return Err(not_found(format!("no incoming user {name}")));
    }
    Ok(Answer::ok(json!({ "deleted": name })))
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
    json!({ "sha256_fingerprint": fp, "chain_length": ck.cert.len(), "certificate": pem })
}

pub(super) fn show_cert(ctl: &Control) -> Res {
    Ok(Answer::ok(cert_view(ctl)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewCert {
    certificate: String,
    private_key: String,
}

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
struct NewPassword {
    password: String,
}

pub(super) fn set_admin_password(ctl: &Control, body: &[u8]) -> Res {
    let req: NewPassword = json_body(body)?;
    check_password(&req.password).map_err(bad)?;
    ctl.app
        .store
        .set_admin_password(&password::hash(&req.password))
        .map_err(internal)?;
    tracing::info!("admin password changed");
    Ok(Answer::ok(json!({ "changed": true })))
}
