//! DKIM key administration: generate, show, rotate (publish the next key,
//! then activate it) and delete. Keys are generated here, on the
//! appliance; the API never returns a private key.

use hyper::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::routes::{bad, internal, json_body, not_found};
use super::{Answer, Control};
use crate::dkim::{Algorithm, DomainKeys, Key, SELECTORS, validate_selector};
use crate::users::validate_domain;

type Res = Result<Answer, Answer>;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NewKey {
    selector: Option<String>,
    algorithm: Option<String>,
}

fn conflict(msg: impl Into<String>) -> Answer {
    Answer::error(StatusCode::CONFLICT, msg)
}

fn domain(d: &str) -> Result<String, Answer> {
    validate_domain(d).map_err(bad)
}

pub(super) fn list(ctl: &Control) -> Res {
    let keys = ctl.app.store.dkim_list().map_err(internal)?;
    Ok(Answer::ok(json!(
        keys.iter().map(DomainKeys::view).collect::<Vec<_>>()
    )))
}

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
