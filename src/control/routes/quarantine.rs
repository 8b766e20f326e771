//! `/v1/quarantine`: held messages, released or deleted.

use serde::Serialize;
use serde_json::{Value, json};

use super::{Res, bad, internal, not_found};
use crate::control::{Answer, Control};
use crate::store::{parse_id, queue_id};

pub(crate) fn quarantine_id(id: &str) -> Result<u64, Answer> {
    parse_id(id).ok_or_else(|| bad(format!("'{id}' is not a quarantine id")))
}

// A held message as the API shows it (`QuarantineEntry` in the OpenAPI
// description).
#[derive(Serialize)]
#[cfg_attr(test, derive(utoipa::ToSchema), schema(as = QuarantineEntry))]
pub(crate) struct QuarantineView<'a> {
    #[cfg_attr(test, schema(pattern = "^[0-9A-F]{16}$"))]
    id: String,
    user: &'a str,
    sender: &'a str,
    recipients: &'a [String],
    size: u64,
    #[cfg_attr(test, schema(value_type = String))]
    received: jiff::Timestamp,
    client_ip: &'a str,
    /// spam, malware, or clean (held for unusual sending)
    class: &'a str,
    score: f64,
    /// hold (kept for review), lock (this message locked the sender), or
    /// empty for entries from before the response ladder
    fate: &'a str,
    reasons: &'a [String],
    /// The other held messages of the same user with the same text (the
    /// copies of a mail merge), oldest first (`GET /v1/quarantine/{id}`
    /// only; released with it by `release?copies=true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, schema(required = false))]
    copies: Option<Vec<String>>,
    /// The message's header (`GET /v1/quarantine/{id}` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, schema(value_type = String, required = false))]
    headers: Option<String>,
}

impl<'a> QuarantineView<'a> {
    pub(crate) fn new(q: &'a crate::store::QuarantineEntry) -> QuarantineView<'a> {
        QuarantineView {
            id: queue_id(q.id),
            user: &q.user,
            sender: &q.sender,
            recipients: &q.recipients,
            size: q.size,
            received: q.received,
            client_ip: &q.client_ip,
            class: &q.class,
            score: q.score,
            fate: &q.fate,
            reasons: &q.reasons,
            copies: None,
            headers: None,
        }
    }
}

pub(crate) fn quarantine_view(q: &crate::store::QuarantineEntry) -> Value {
    json!(QuarantineView::new(q))
}

/// `GET /v1/quarantine`: one page of held messages, oldest first.
#[cfg_attr(test, utoipa::path(get, tag = "quarantine", path = "/v1/quarantine",
    summary = "Messages held in quarantine", description = "One page, oldest first (id order).",
    params(crate::control::openapi::Paging),
    responses(
        (status = 200, description = "Entries", body = super::paging::Paged<QuarantineView>),
        crate::control::openapi::Reads,
    )))]
pub(crate) fn list_quarantine(ctl: &Control, q: &[(String, String)]) -> Res {
    for (k, _) in q {
        if !super::paging::is_paging(k) {
            return Err(bad(format!("unknown parameter '{k}'")));
        }
    }
    let want = super::paging::want(q)?;
    let page = ctl
        .app
        .store
        .quarantine_page(want.after_id()?, want.limit)
        .map_err(internal)?;
    Ok(super::paging::by_id(page, quarantine_view))
}

#[cfg_attr(test, utoipa::path(get, tag = "quarantine", path = "/v1/quarantine/{id}", summary = "One quarantined message with its headers and reasons",
    params(("id" = String, Path, description = "16 hex digits")),
    responses(
        (status = 200, description = "Entry", body = QuarantineView),
        crate::control::openapi::Reads, crate::control::openapi::Missing,
    )))]
pub(crate) fn show_quarantine(ctl: &Control, id: &str) -> Res {
    let n = quarantine_id(id)?;
    let (q, body) = ctl
        .app
        .store
        .quarantine_entry(n)
        .map_err(internal)?
        .ok_or_else(|| not_found(format!("no quarantined message {id}")))?;
    let copies = ctl
        .app
        .store
        .quarantine_copies(n)
        .map_err(internal)?
        .unwrap_or_default();
    let mut v = QuarantineView::new(&q);
    v.copies = Some(copies.into_iter().map(queue_id).collect());
    v.headers = Some(header_text(&body));
    Ok(Answer::ok(json!(v)))
}

#[cfg_attr(test, utoipa::path(post, tag = "quarantine", path = "/v1/quarantine/{id}/release", summary = "Release a quarantined message into the queue",
    description = "With `copies=true`, the other held messages of the same user with the same text (the copies of a mail merge) are released too.",
    params(("id" = String, Path, description = "16 hex digits"),
        ("copies" = Option<bool>, Query, description = "Release the message's copies too (default false)")),
    responses(
        (status = 200, description = "Released", body = Released),
        crate::control::openapi::Writes, crate::control::openapi::Missing,
    )))]
pub(crate) fn release_quarantine(ctl: &Control, id: &str, q: &[(String, String)]) -> Res {
    let n = quarantine_id(id)?;
    let with_copies = match q
        .iter()
        .find(|(k, _)| k == "copies")
        .map(|(_, v)| v.as_str())
    {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => return Err(bad(format!("copies must be true or false, not '{other}'"))),
    };
    let copies = if with_copies {
        ctl.app
            .store
            .quarantine_copies(n)
            .map_err(internal)?
            .ok_or_else(|| not_found(format!("no quarantined message {id}")))?
    } else {
        Vec::new()
    };
    // Queue ids first, then one transaction for the message and its copies.
    let ids: Vec<(u64, u64)> = std::iter::once(n)
        .chain(copies)
        .map(|q| (q, ctl.app.committer.reserve_id()))
        .collect();
    let now = ctl.app.clock.now();
    let released = ctl
        .app
        .store
        .release_quarantined(&ids, now)
        .map_err(internal)?;
    let Some(&(_, queue)) = released.first() else {
        return Err(not_found(format!("no quarantined message {id}")));
    };
    for (q, to) in &released {
        tracing::info!(quarantine_id = %queue_id(*q), queue_id = %queue_id(*to), "released from quarantine");
    }
    // A copy released or deleted meanwhile is simply not there.
    let copies = released[1..]
        .iter()
        .map(|&(q, to)| ReleasedCopy {
            released: queue_id(q),
            queue_id: queue_id(to),
        })
        .collect();
    Ok(Answer::ok(json!(Released {
        released: id.to_string(),
        queue_id: queue_id(queue),
        copies,
    })))
}

/// What `POST /v1/quarantine/{id}/release` did.
#[derive(Serialize)]
#[cfg_attr(test, derive(utoipa::ToSchema))]
pub(crate) struct Released {
    /// The quarantine id.
    released: String,
    /// The message's id in the queue.
    queue_id: String,
    /// The copies released with it (`copies=true`; else empty).
    copies: Vec<ReleasedCopy>,
}

/// One copy released with a message.
#[derive(Serialize)]
#[cfg_attr(test, derive(utoipa::ToSchema))]
pub(crate) struct ReleasedCopy {
    /// The copy's quarantine id.
    released: String,
    /// Its id in the queue.
    queue_id: String,
}

#[cfg_attr(test, utoipa::path(delete, tag = "quarantine", path = "/v1/quarantine/{id}", summary = "Delete a quarantined message",
    params(("id" = String, Path, description = "16 hex digits")),
    responses(
        (status = 200, description = "Deleted", body = super::Deleted),
        crate::control::openapi::Writes, crate::control::openapi::Missing,
    )))]
pub(crate) fn delete_quarantine(ctl: &Control, id: &str) -> Res {
    let n = quarantine_id(id)?;
    if !ctl.app.store.delete_quarantined(n).map_err(internal)? {
        return Err(not_found(format!("no quarantined message {id}")));
    }
    tracing::info!(quarantine_id = %id, "deleted from quarantine");
    Ok(Answer::ok(json!(super::Deleted {
        deleted: id.to_string()
    })))
}

/// The header section of a message, bounded, as text.
pub(crate) fn header_text(body: &[u8]) -> String {
    let end = body
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(body.len(), |p| p + 2);
    String::from_utf8_lossy(&body[..end.min(64 * 1024)]).into_owned()
}
