//! `/v1/queue`: the delivery queue.

use serde_json::{Value, json};

use super::users::canonical;
use super::{Res, bad, internal, not_found};
use crate::control::{Answer, Control};
use crate::store::{QueueFilter, parse_id, queue_id};

pub(crate) fn queue_view(e: &crate::store::QueueEntry) -> Value {
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

/// `GET /v1/queue`: one page of entries in id (arrival) order.
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

pub(crate) fn show_queue(ctl: &Control, id: &str) -> Res {
    let n = parse_id(id).ok_or_else(|| bad(format!("'{id}' is not a queue id")))?;
    let e = ctl
        .app
        .store
        .queue_entry(n)
        .map_err(internal)?
        .ok_or_else(|| not_found(format!("no queued message {id}")))?;
    let mut v = queue_view(&e);
    if let Some(body) = ctl.app.store.queue_body(n).map_err(internal)? {
        let head_end = body
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(body.len(), |p| p + 2);
        v["headers"] = json!(String::from_utf8_lossy(&body[..head_end.min(64 * 1024)]));
    }
    Ok(Answer::ok(v))
}

pub(crate) fn queue_number(id: &str) -> Result<u64, Answer> {
    parse_id(id).ok_or_else(|| bad(format!("'{id}' is not a queue id")))
}

pub(crate) fn delete_queue(ctl: &Control, id: &str) -> Res {
    let n = queue_number(id)?;
    if !ctl.app.store.remove_entry(n).map_err(internal)? {
        return Err(not_found(format!("no queued message {id}")));
    }
    tracing::info!(id = %queue_id(n), "queued message deleted by admin");
    Ok(Answer::ok(json!({ "deleted": queue_id(n) })))
}

pub(crate) fn retry_queue(ctl: &Control, id: &str) -> Res {
    let n = queue_number(id)?;
    let now = ctl.app.clock.now();
    let e = crate::delivery::admin_retry(&ctl.app.store, n, now)
        .map_err(internal)?
        .ok_or_else(|| not_found(format!("no queued message {id}")))?;
    tracing::info!(id = %queue_id(n), "queued message set for immediate retry by admin");
    Ok(Answer::ok(queue_view(&e)))
}

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
