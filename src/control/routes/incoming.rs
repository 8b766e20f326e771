//! `/v1/incoming`: the protected domains and their users (recipients the
//! gateway accepts mail for), their CSV import, and their import as
//! outgoing users (`POST /v1/users/import-incoming`).

use hyper::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Res, bad, flag, internal, json_body, not_found, paging, refuse_invalid_lines};
use crate::control::{Answer, Control};
use crate::incoming;
use crate::users::{User, UserName, validate_domain};

#[cfg_attr(test, utoipa::path(post, tag = "users", path = "/v1/users/import-incoming",
    summary = "Add every incoming user as an outgoing user (default settings, no password); existing users are kept",
    params(("preview" = Option<bool>, Query, nullable = false, description = "")),
    responses(
        (status = 200, description = "Result, or with preview=true what would happen", body = IncomingImport),
        crate::control::openapi::Writes,
    )))]
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
        return Ok(Answer::ok(json!(IncomingImport {
            added: add,
            existing
        })));
    }
    let outcome = ctl.app.store.import_users(&users).map_err(internal)?;
    tracing::info!(
        added = outcome.added.len(),
        existing = outcome.existing.len(),
        "incoming users imported as outgoing users"
    );
    Ok(Answer::ok(json!(IncomingImport {
        added: outcome.added,
        existing: outcome.existing,
    })))
}

/// What `POST /v1/users/import-incoming` did (or would do).
#[derive(Serialize)]
#[cfg_attr(test, derive(utoipa::ToSchema))]
struct IncomingImport {
    added: Vec<String>,
    existing: Vec<String>,
}

/// What `POST /v1/incoming/users/import` did.
#[derive(Serialize)]
#[cfg_attr(test, derive(utoipa::ToSchema))]
struct IncomingCsvImport {
    added: Vec<String>,
    existing: Vec<String>,
    domains_added: Vec<String>,
    /// The lines skipped (with skip_invalid).
    #[cfg_attr(test, schema(value_type = Vec<crate::import::LineError>))]
    errors: Vec<crate::import::LineError>,
}

/// `GET /v1/incoming/domains`: one page, in name order.
#[cfg_attr(test, utoipa::path(get, tag = "incoming", path = "/v1/incoming/domains",
    summary = "Protected domains",
    description = "One page, in name order.",
    params(crate::control::openapi::Paging),
    responses(
        (status = 200, description = "Domains", body = super::paging::Paged<IncomingView>),
        crate::control::openapi::Reads,
    )))]
pub(crate) fn list_domains(ctl: &Control, q: &[(String, String)]) -> Res {
    let want = paging::want(q)?;
    let page = ctl
        .app
        .store
        .incoming_domains_page(want.after.as_deref(), want.limit)
        .map_err(internal)?;
    paging::named(page, |d| {
        Ok(json!(IncomingView {
            name: &d.name,
            added: d.added
        }))
    })
}

// A protected domain or an incoming user (`Incoming` in the OpenAPI
// description).
#[derive(Serialize)]
#[cfg_attr(test, derive(utoipa::ToSchema), schema(as = Incoming))]
struct IncomingView<'a> {
    name: &'a str,
    #[cfg_attr(test, schema(value_type = String, format = DateTime))]
    added: jiff::Timestamp,
}

/// What `DELETE /v1/incoming/domains/{domain}` removed.
#[derive(Serialize)]
#[cfg_attr(test, derive(utoipa::ToSchema))]
struct DomainDeleted {
    deleted: String,
    /// How many of its incoming users went with it.
    users_deleted: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(test, derive(utoipa::ToSchema))]
struct NewDomain {
    domain: String,
}

#[cfg_attr(test, utoipa::path(post, tag = "incoming", path = "/v1/incoming/domains",
    summary = "Add a protected domain",
    request_body = NewDomain,
    responses(
        (status = 201, description = "Added", body = IncomingView),
        crate::control::openapi::Writes, crate::control::openapi::Conflict,
    )))]
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
        body: json!(IncomingView {
            name: &domain,
            added: now
        }),
    })
}

#[cfg_attr(test, utoipa::path(delete, tag = "incoming", path = "/v1/incoming/domains/{domain}",
    summary = "Delete a domain and its incoming users",
    params(("domain" = String, Path, description = "Domain name")),
    responses(
        (status = 200, description = "Deleted", body = DomainDeleted),
        crate::control::openapi::Writes, crate::control::openapi::Missing,
    )))]
pub(crate) fn delete_domain(ctl: &Control, domain: &str) -> Res {
    let domain = validate_domain(domain).map_err(bad)?;
    match ctl
        .app
        .store
        .delete_incoming_domain(&domain)
        .map_err(internal)?
    {
        None => Err(not_found(format!("no protected domain {domain}"))),
        Some(n) => Ok(Answer::ok(json!(DomainDeleted {
            deleted: domain,
            users_deleted: n
        }))),
    }
}

/// `GET /v1/incoming/users`: one page, in name order.
#[cfg_attr(test, utoipa::path(get, tag = "incoming", path = "/v1/incoming/users",
    summary = "Incoming users",
    description = "One page, in name order.",
    params(crate::control::openapi::Paging),
    responses(
        (status = 200, description = "Users", body = super::paging::Paged<IncomingView>),
        crate::control::openapi::Reads,
    )))]
pub(crate) fn list_incoming(ctl: &Control, q: &[(String, String)]) -> Res {
    let want = paging::want(q)?;
    let page = ctl
        .app
        .store
        .incoming_users_page(want.after.as_deref(), want.limit)
        .map_err(internal)?;
    paging::named(page, |u| {
        Ok(json!(IncomingView {
            name: &u.name,
            added: u.added
        }))
    })
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
#[cfg_attr(test, derive(utoipa::ToSchema))]
struct NewIncoming {
    /// user@domain
    name: String,
}

#[cfg_attr(test, utoipa::path(post, tag = "incoming", path = "/v1/incoming/users",
    summary = "Add an incoming user of a protected domain",
    request_body = NewIncoming,
    responses(
        (status = 201, description = "Added", body = IncomingView),
        crate::control::openapi::Writes, crate::control::openapi::Conflict,
    )))]
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
        body: json!(IncomingView {
            name: &name,
            added: now
        }),
    })
}

#[cfg_attr(test, utoipa::path(post, tag = "incoming", path = "/v1/incoming/users/import",
    summary = "Import incoming users from CSV (user@domain or user,domain a line); missing domains are added",
    params(("skip_invalid" = Option<bool>, Query, nullable = false, description = "")),
    request_body(content = inline(Option<crate::control::openapi::CsvBody>), content_type = "text/csv",
        description = "CSV text (any bytes: unreadable lines are reported with their numbers); an empty body imports nothing"),
    responses(
        (status = 200, description = "Imported", body = IncomingCsvImport),
        crate::control::openapi::Writes,
        (status = 422, description = "Invalid CSV lines; nothing imported", body = crate::control::openapi::ErrorDoc),
    )))]
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
    Ok(Answer::ok(json!(IncomingCsvImport {
        added: outcome.added,
        existing: outcome.existing,
        domains_added: outcome.domains_added,
        errors,
    })))
}

#[cfg_attr(test, utoipa::path(delete, tag = "incoming", path = "/v1/incoming/users/{name}",
    summary = "Delete an incoming user",
    params(("name" = String, Path, description = "user@domain")),
    responses(
        (status = 200, description = "Deleted", body = super::Deleted),
        crate::control::openapi::Writes, crate::control::openapi::Missing,
    )))]
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
    Ok(Answer::ok(json!(super::Deleted { deleted: name })))
}
