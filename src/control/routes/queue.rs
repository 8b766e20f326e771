//! `/v1/queue`: the delivery queue.

use serde::Serialize;
use serde_json::{Value, json};

use super::users::canonical;
use super::{Res, bad, internal, not_found};
use crate::control::{Answer, Control};
use crate::store::{QueueFilter, parse_id, queue_id};

// A queued message as the API shows it (`QueueEntry` in the OpenAPI
// description).
#[derive(Serialize)]
#[cfg_attr(test, derive(utoipa::ToSchema), schema(as = QueueEntry))]
pub(crate) struct QueueView<'a> {
    #[cfg_attr(test, schema(pattern = "^[0-9A-F]{16}$"))]
    id: String,
    /// The outgoing user who sent it.
    user: &'a str,
    /// The envelope sender; empty for the null sender.
    sender: &'a str,
    #[cfg_attr(test, schema(schema_with = crate::control::openapi::recipients))]
    recipients: &'a [crate::store::Recipient],
    size: u64,
    #[cfg_attr(test, schema(value_type = String))]
    received: jiff::Timestamp,
    client_ip: &'a str,
    helo: &'a str,
    #[cfg_attr(test, schema(value_type = crate::control::openapi::QueueState, inline))]
    state: crate::store::RcptState,
    #[cfg_attr(test, schema(value_type = Option<String>))]
    next_attempt: Option<jiff::Timestamp>,
    /// Taken with SMTPUTF8 (RFC 6531); the next hop must offer it.
    smtputf8: bool,
    /// The message's header (`GET /v1/queue/{id}` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, schema(value_type = String, required = false))]
    headers: Option<String>,
}

impl<'a> QueueView<'a> {
    pub(crate) fn new(e: &'a crate::store::QueueEntry) -> QueueView<'a> {
        QueueView {
            id: queue_id(e.id),
            user: &e.user,
            sender: &e.sender,
            recipients: &e.recipients,
            size: e.size,
            received: e.received,
            client_ip: &e.client_ip,
            helo: &e.helo,
            state: e.state(),
            next_attempt: e.next_attempt,
            smtputf8: e.smtputf8,
            headers: None,
        }
    }
}

pub(crate) fn queue_view(e: &crate::store::QueueEntry) -> Value {
    json!(QueueView::new(e))
}

/// `GET /v1/queue`: one page of entries in id (arrival) order.
#[cfg_attr(test, utoipa::path(get, tag = "queue", path = "/v1/queue",
    summary = "Queued messages", description = "One page, in id (arrival) order.",
    params(
        ("user" = Option<String>, Query, description = "", nullable = false),
        ("state" = inline(Option<crate::control::openapi::QueueState>), Query, description = "", nullable = false),
        crate::control::openapi::Paging,
    ),
    responses(
        (status = 200, description = "Entries", body = super::paging::Paged<QueueView>),
        crate::control::openapi::Reads,
    )))]
pub(crate) fn list_queue(ctl: &Control, q: &[(String, String)]) -> Res {
    let want = super::paging::want(q)?;
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
            k if super::paging::is_paging(k) => {}
            _ => return Err(bad(format!("unknown filter '{k}'"))),
        }
    }
    let page = ctl
        .app
        .store
        .queue_page(&filter, want.after_id()?, want.limit)
        .map_err(internal)?;
    Ok(super::paging::by_id(page, queue_view))
}

#[cfg_attr(test, utoipa::path(get, tag = "queue", path = "/v1/queue/{id}", summary = "One queued message with its headers",
    params(("id" = String, Path, description = "16 hex digits")),
    responses(
        (status = 200, description = "Entry", body = QueueView),
        crate::control::openapi::Reads, crate::control::openapi::Missing,
    )))]
pub(crate) fn show_queue(ctl: &Control, id: &str) -> Res {
    let n = parse_id(id).ok_or_else(|| bad(format!("'{id}' is not a queue id")))?;
    let e = ctl
        .app
        .store
        .queue_entry(n)
        .map_err(internal)?
        .ok_or_else(|| not_found(format!("no queued message {id}")))?;
    let mut v = QueueView::new(&e);
    if let Some(body) = ctl.app.store.queue_body(n).map_err(internal)? {
        let head_end = body
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(body.len(), |p| p + 2);
        v.headers = Some(String::from_utf8_lossy(&body[..head_end.min(64 * 1024)]).into_owned());
    }
    Ok(Answer::ok(json!(v)))
}

pub(crate) fn queue_number(id: &str) -> Result<u64, Answer> {
    parse_id(id).ok_or_else(|| bad(format!("'{id}' is not a queue id")))
}

#[cfg_attr(test, utoipa::path(delete, tag = "queue", path = "/v1/queue/{id}", summary = "Delete a queued message without delivering it",
    params(("id" = String, Path, description = "16 hex digits")),
    responses(
        (status = 200, description = "Deleted", body = super::Deleted),
        crate::control::openapi::Writes, crate::control::openapi::Missing,
    )))]
pub(crate) fn delete_queue(ctl: &Control, id: &str) -> Res {
    let n = queue_number(id)?;
    if !ctl.app.store.remove_entry(n).map_err(internal)? {
        return Err(not_found(format!("no queued message {id}")));
    }
    tracing::info!(id = %queue_id(n), "queued message deleted by admin");
    Ok(Answer::ok(json!(super::Deleted {
        deleted: queue_id(n)
    })))
}

#[cfg_attr(test, utoipa::path(post, tag = "queue", path = "/v1/queue/{id}/retry", summary = "Try delivering a queued message now",
    params(("id" = String, Path, description = "16 hex digits")),
    responses(
        (status = 200, description = "Entry", body = QueueView),
        crate::control::openapi::Writes, crate::control::openapi::Missing,
    )))]
pub(crate) fn retry_queue(ctl: &Control, id: &str) -> Res {
    let n = queue_number(id)?;
    let now = ctl.app.clock.now();
    let e = crate::delivery::admin_retry(&ctl.app.store, n, now)
        .map_err(internal)?
        .ok_or_else(|| not_found(format!("no queued message {id}")))?;
    tracing::info!(id = %queue_id(n), "queued message set for immediate retry by admin");
    Ok(Answer::ok(queue_view(&e)))
}

#[cfg_attr(test, utoipa::path(post, tag = "queue", path = "/v1/queue/{id}/bounce", summary = "Give up on a queued message and return it to its sender",
    params(("id" = String, Path, description = "16 hex digits")),
    responses(
        (status = 200, description = "Entry", body = QueueView),
        crate::control::openapi::Writes, crate::control::openapi::Missing,
    )))]
pub(crate) fn bounce_queue(ctl: &Control, id: &str) -> Res {
    let n = queue_number(id)?;
    let s = &ctl.app;
    let now = s.clock.now();
    let e =
        crate::delivery::admin_bounce(&s.store, &s.committer, &s.hostname, &ctl.delivery, n, now)
            .map_err(internal)?
            .ok_or_else(|| not_found(format!("no queued message {id}")))?;
    tracing::info!(id = %queue_id(n), "queued message returned to sender by admin");
    Ok(Answer::ok(queue_view(&e)))
}
