//! `/v1/quarantine`: held messages, released or deleted.

use serde_json::{Value, json};

use super::{Res, bad, internal, not_found};
use crate::control::{Answer, Control};
use crate::store::{parse_id, queue_id};

pub(crate) fn quarantine_id(id: &str) -> Result<u64, Answer> {
    parse_id(id).ok_or_else(|| bad(format!("'{id}' is not a quarantine id")))
}

pub(crate) fn quarantine_view(q: &crate::store::QuarantineEntry) -> Value {
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

/// `GET /v1/quarantine`: one page of held messages, oldest first.
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

pub(crate) fn show_quarantine(ctl: &Control, id: &str) -> Res {
    let n = quarantine_id(id)?;
    let (q, body) = ctl
        .app
        .store
        .quarantine_entry(n)
        .map_err(internal)?
        .ok_or_else(|| not_found(format!("no quarantined message {id}")))?;
    let mut v = quarantine_view(&q);
    v["headers"] = json!(header_text(&body));
    Ok(Answer::ok(v))
}

pub(crate) fn release_quarantine(ctl: &Control, id: &str) -> Res {
    let n = quarantine_id(id)?;
    let queue = ctl.app.committer.reserve_id();
    let now = ctl.app.clock.now();
    if !ctl
        .app
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

pub(crate) fn delete_quarantine(ctl: &Control, id: &str) -> Res {
    let n = quarantine_id(id)?;
    if !ctl.app.store.delete_quarantined(n).map_err(internal)? {
        return Err(not_found(format!("no quarantined message {id}")));
    }
    tracing::info!(quarantine_id = %id, "deleted from quarantine");
    Ok(Answer::ok(json!({ "deleted": id })))
}

/// The header section of a message, bounded, as text.
pub(crate) fn header_text(body: &[u8]) -> String {
    let end = body
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(body.len(), |p| p + 2);
    String::from_utf8_lossy(&body[..end.min(64 * 1024)]).into_owned()
}
