//! DKIM key administration: generate, show, rotate (publish the next key,
//! then activate it) and delete. Keys are generated here, on the
//! appliance; the API never returns a private key.

use hyper::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::routes::{bad, internal, json_body, not_found, paging};
use super::{Answer, Control};
use crate::dkim::{Algorithm, DomainKeys, Key, SELECTORS, validate_selector};
use crate::users::validate_domain;

type Res = Result<Answer, Answer>;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
#[cfg_attr(test, derive(utoipa::ToSchema), schema(as = NewDkimKey))]
struct NewKey {
    /// DNS label(s); default outguard1, or for rotate the other of outguard1/outguard2 (null: the default)
    selector: Option<String>,
    /// Default ed25519, or for rotate the active key's (null: the default)
    #[cfg_attr(test, schema(schema_with = crate::control::openapi::dkim_algorithm))]
    algorithm: Option<String>,
}

fn conflict(msg: impl Into<String>) -> Answer {
    Answer::error(StatusCode::CONFLICT, msg)
}

fn domain(d: &str) -> Result<String, Answer> {
    validate_domain(d).map_err(bad)
}

/// `GET /v1/dkim`: one page, in domain order.
#[cfg_attr(test, utoipa::path(get, tag = "dkim", path = "/v1/dkim",
    summary = "DKIM keys of the sender domains",
    description = "One page, in domain order: follow next until it is null.",
    params(crate::control::openapi::Paging),
    responses(
        (status = 200, description = "Domains with keys", body = super::routes::paging::Paged<crate::control::openapi::DkimDomainDoc>),
        crate::control::openapi::Reads,
    )))]
pub(super) fn list(ctl: &Control, q: &[(String, String)]) -> Res {
    let want = paging::want(q)?;
    // The cursor is the last domain of the page before.
    let after = want
        .after
        .as_deref()
        .map(|a| validate_domain(a).map_err(|_| bad(format!("after must be a domain, not '{a}'"))))
        .transpose()?;
    let page = ctl
        .app
        .store
        .dkim_page(after.as_deref(), want.limit)
        .map_err(internal)?;
    paging::named(page, |k| Ok(k.view()))
}

#[cfg_attr(test, utoipa::path(get, tag = "dkim", path = "/v1/dkim/{domain}",
    summary = "A domain's DKIM keys and their DNS TXT records",
    params(("domain" = String, Path, description = "Sender domain (the From: domain of the mail to sign)")),
    responses(
        (status = 200, description = "The keys", body = crate::control::openapi::DkimDomainDoc),
        crate::control::openapi::Reads,
        (status = 404, description = "No such object", body = crate::control::openapi::ErrorDoc),
    )))]
pub(super) fn show(ctl: &Control, d: &str) -> Res {
    let d = domain(d)?;
    match ctl.app.store.dkim_keys(&d).map_err(internal)? {
        Some(k) => Ok(Answer::ok(k.view())),
        None => Err(not_found(format!("no DKIM key for {d}"))),
    }
}

/// The selector and algorithm asked for, checked, with defaults.
fn params(
    req: &NewKey,
    selector: &str,
    algorithm: Algorithm,
) -> Result<(String, Algorithm), Answer> {
    let selector = validate_selector(req.selector.as_deref().unwrap_or(selector)).map_err(bad)?;
    let algorithm = match &req.algorithm {
        Some(a) => Algorithm::parse(a).map_err(bad)?,
        None => algorithm,
    };
    Ok((selector, algorithm))
}

#[cfg_attr(test, utoipa::path(post, tag = "dkim", path = "/v1/dkim/{domain}",
    summary = "Generate the domain's first DKIM key; mail from it is signed at delivery from now on",
    params(("domain" = String, Path, description = "Sender domain (the From: domain of the mail to sign)")),
    request_body(content = Option<NewKey>),
    responses(
        (status = 200, description = "Generated; publish the active record", body = crate::control::openapi::DkimDomainDoc),
        crate::control::openapi::Writes,
        (status = 409, description = "The domain already has a key (use rotate)", body = crate::control::openapi::ErrorDoc),
    )))]
pub(super) fn generate(ctl: &Control, d: &str, body: &[u8]) -> Res {
    let d = domain(d)?;
    let req: NewKey = json_body(body)?;
    let (selector, algorithm) = params(&req, SELECTORS[0], Algorithm::Ed25519)?;
    // Generated before the transaction: RSA takes a moment.
    let key = Key::generate(&selector, algorithm, ctl.app.clock.now()).map_err(internal)?;
    let stored = ctl
        .app
        .store
        .dkim_update(&d, |cur| match cur {
            Some(_) => Err(conflict(format!(
                "{d} already has a DKIM key; use rotate to replace it"
            ))),
            None => Ok(Some(DomainKeys {
                domain: d.clone(),
                active: key,
                next: None,
                retired: None,
            })),
        })
        .map_err(internal)??;
    log_change(&d, "generated", &stored);
    Ok(Answer::ok(stored.map(|k| k.view()).unwrap_or_default()))
}

#[cfg_attr(test, utoipa::path(post, tag = "dkim", path = "/v1/dkim/{domain}/rotate",
    summary = "Rotation step 1: generate the next key under another selector, to publish before activating",
    params(("domain" = String, Path, description = "Sender domain (the From: domain of the mail to sign)")),
    request_body(content = Option<NewKey>),
    responses(
        (status = 200, description = "The keys with the next one", body = crate::control::openapi::DkimDomainDoc),
        crate::control::openapi::Writes,
        (status = 404, description = "No such object", body = crate::control::openapi::ErrorDoc),
        (status = 409, description = "A next key is already pending, or the selector is the active one", body = crate::control::openapi::ErrorDoc),
    )))]
pub(super) fn rotate(ctl: &Control, d: &str, body: &[u8]) -> Res {
    let d = domain(d)?;
    let req: NewKey = json_body(body)?;
    let Some(cur) = ctl.app.store.dkim_keys(&d).map_err(internal)? else {
        return Err(not_found(format!(
            "no DKIM key for {d}; generate one first"
        )));
    };
    let (selector, algorithm) = params(&req, cur.default_next_selector(), cur.active.algorithm)?;
    if selector == cur.active.selector {
        return Err(conflict(format!(
            "selector {selector} is the active one; the next key needs another"
        )));
    }
    let key = Key::generate(&selector, algorithm, ctl.app.clock.now()).map_err(internal)?;
    let stored = ctl
        .app
        .store
        .dkim_update(&d, |cur| {
            let Some(mut cur) = cur else {
                return Err(not_found(format!("no DKIM key for {d}")));
            };
            // Checked again inside the transaction: an activate may have
            // run while the key was being generated.
            if cur.active.selector == selector {
                return Err(conflict(format!(
                    "selector {selector} is the active one; the next key needs another"
                )));
            }
            if let Some(n) = &cur.next {
                return Err(conflict(format!(
                    "{d} already has a next key ({}); activate or delete it first",
                    n.selector
                )));
            }
            // A retired key under the same selector is replaced: its
            // record is about to be republished with the new key.
            if cur.retired.as_ref().is_some_and(|r| r.selector == selector) {
                cur.retired = None;
            }
            cur.next = Some(key);
            Ok(Some(cur))
        })
        .map_err(internal)??;
    log_change(&d, "next key generated", &stored);
    Ok(Answer::ok(stored.map(|k| k.view()).unwrap_or_default()))
}

#[cfg_attr(test, utoipa::path(post, tag = "dkim", path = "/v1/dkim/{domain}/activate",
    summary = "Rotation step 2: sign with the next key from now on; the old key becomes retired",
    params(("domain" = String, Path, description = "Sender domain (the From: domain of the mail to sign)")),
    responses(
        (status = 200, description = "The keys after the switch", body = crate::control::openapi::DkimDomainDoc),
        crate::control::openapi::Writes,
        (status = 404, description = "No such object", body = crate::control::openapi::ErrorDoc),
        (status = 409, description = "No next key to activate", body = crate::control::openapi::ErrorDoc),
    )))]
pub(super) fn activate(ctl: &Control, d: &str) -> Res {
    let d = domain(d)?;
    let stored = ctl
        .app
        .store
        .dkim_update(&d, |cur| {
            let Some(mut cur) = cur else {
                return Err(not_found(format!("no DKIM key for {d}")));
            };
            let Some(next) = cur.next.take() else {
                return Err(conflict(format!(
                    "{d} has no next key; rotate first and publish its record"
                )));
            };
            cur.retired = Some(std::mem::replace(&mut cur.active, next));
            Ok(Some(cur))
        })
        .map_err(internal)??;
    log_change(&d, "next key activated", &stored);
    Ok(Answer::ok(stored.map(|k| k.view()).unwrap_or_default()))
}

/// Deletes a domain's keys, or with `?selector=` only its next or retired
/// key (the active key goes only with the domain).
#[cfg_attr(test, utoipa::path(delete, tag = "dkim", path = "/v1/dkim/{domain}",
    summary = "Delete the domain's keys (its mail goes unsigned), or with ?selector= only its next or retired key",
    params(("domain" = String, Path, description = "Sender domain (the From: domain of the mail to sign)"), ("selector" = Option<String>, Query, nullable = false)),
    responses(
        (status = 200, description = "Deleted: the remaining keys, or {deleted: domain}", body = inline(crate::control::openapi::AnyObject)),
        crate::control::openapi::Writes,
        (status = 404, description = "No such object", body = crate::control::openapi::ErrorDoc),
        (status = 409, description = "The selector is the active key", body = crate::control::openapi::ErrorDoc),
    )))]
pub(super) fn delete(ctl: &Control, d: &str, q: &[(String, String)]) -> Res {
    let d = domain(d)?;
    let selector = q
        .iter()
        .find(|(k, _)| k == "selector")
        .map(|(_, v)| v.clone());
    let stored = ctl
        .app
        .store
        .dkim_update(&d, |cur| {
            let Some(mut cur) = cur else {
                return Err(not_found(format!("no DKIM key for {d}")));
            };
            let Some(sel) = &selector else {
                return Ok(None);
            };
            if cur.next.as_ref().is_some_and(|k| &k.selector == sel) {
                cur.next = None;
            } else if cur.retired.as_ref().is_some_and(|k| &k.selector == sel) {
                cur.retired = None;
            } else if &cur.active.selector == sel {
                return Err(conflict(format!(
                    "{sel} is the active key of {d}; delete the domain's keys or rotate first"
                )));
            } else {
                return Err(not_found(format!("{d} has no key under selector {sel}")));
            }
            Ok(Some(cur))
        })
        .map_err(internal)??;
    tracing::info!(domain = %d, selector = ?selector, "DKIM key deleted");
    Ok(Answer::ok(match stored {
        Some(k) => k.view(),
        None => json!({ "deleted": d }),
    }))
}

fn log_change(d: &str, what: &str, keys: &Option<DomainKeys>) {
    if let Some(k) = keys {
        tracing::info!(domain = %d, active = %k.active.selector,
            next = ?k.next.as_ref().map(|n| &n.selector), "DKIM {what}");
    }
}
