//! `/v1/incoming`: the protected domains and their users (recipients the
//! gateway accepts mail for), their CSV import, and their import as
//! outgoing users (`POST /v1/users/import-incoming`).

use hyper::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::{Res, bad, flag, internal, json_body, not_found, paging, refuse_invalid_lines};
use crate::control::{Answer, Control};
use crate::incoming;
use crate::users::{User, UserName, validate_domain};

pub(crate) fn import_incoming(ctl: &Control, q: &[(String, String)]) -> Res {
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
pub(crate) fn list_domains(ctl: &Control, q: &[(String, String)]) -> Res {
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

pub(crate) fn add_domain(ctl: &Control, body: &[u8]) -> Res {
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

pub(crate) fn delete_domain(ctl: &Control, domain: &str) -> Res {
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
pub(crate) fn list_incoming(ctl: &Control, q: &[(String, String)]) -> Res {
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

pub(crate) fn add_incoming(ctl: &Control, body: &[u8]) -> Res {
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

pub(crate) fn import_incoming_csv(ctl: &Control, q: &[(String, String)], body: &[u8]) -> Res {
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

pub(crate) fn delete_incoming(ctl: &Control, name: &str) -> Res {
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
