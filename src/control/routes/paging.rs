//! Paging of every list answer: `?limit=N` (default 100, at most 1000)
//! and `?after=CURSOR` (the `next` of the page before); the answer is
//! `{"items": [...], "next": CURSOR or null}`. Pages are read by key
//! (`store::paging`), so any page costs the same at 100,000 rows.

use serde_json::{Value, json};

use super::bad;
use crate::control::Answer;
use crate::store::{Page, parse_id, queue_id};

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

/// The page a request asks for.
pub struct Want {
    pub limit: usize,
    /// The cursor as given; empty is the first page.
    pub after: Option<String>,
}

/// Whether `key` is one of the paging parameters.
pub fn is_paging(key: &str) -> bool {
    key == "limit" || key == "after"
}

pub fn want(q: &[(String, String)]) -> Result<Want, Answer> {
    let mut w = Want {
        limit: DEFAULT_LIMIT,
        after: None,
    };
    for (k, v) in q {
        match k.as_str() {
            "limit" => {
                w.limit = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| bad(format!("limit must be 1 to {MAX_LIMIT}, not '{v}'")))?
            }
            "after" if !v.is_empty() => w.after = Some(v.clone()),
            _ => {}
        }
    }
    Ok(w)
}

impl Want {
    /// The cursor of a list keyed by queue or quarantine id (16 hex digits).
    pub fn after_id(&self) -> Result<Option<u64>, Answer> {
        self.after
            .as_deref()
            .map(|a| parse_id(a).ok_or_else(|| bad(format!("after must be an id, not '{a}'"))))
            .transpose()
    }

    /// The cursor of the audit log (an entry's number).
    pub fn after_number(&self) -> Result<Option<u64>, Answer> {
        self.after
            .as_deref()
            .map(|a| {
                a.parse::<u64>()
                    .map_err(|_| bad(format!("after must be an audit entry id, not '{a}'")))
            })
            .transpose()
    }
}

/// One page of a list: follow next until it is null
#[derive(serde::Serialize)]
#[cfg_attr(test, derive(utoipa::ToSchema))]
pub struct Paged<T> {
    pub items: Vec<T>,
    /// Cursor of the next page (pass as after); null: this is the last page
    #[cfg_attr(test, schema(required = true))]
    pub next: Option<String>,
}

/// The answer for a page whose cursor is a name.
pub fn named<T>(
    page: Page<T, String>,
    view: impl FnMut(&T) -> Result<Value, Answer>,
) -> Result<Answer, Answer> {
    let items = page.items.iter().map(view).collect::<Result<Vec<_>, _>>()?;
    Ok(Answer::ok(json!(Paged {
        items,
        next: page.next
    })))
}

/// The answer for a page keyed by queue or quarantine id.
pub fn by_id<T>(page: Page<T, u64>, view: impl FnMut(&T) -> Value) -> Answer {
    let items: Vec<Value> = page.items.iter().map(view).collect();
    Answer::ok(json!(Paged {
        items,
        next: page.next.map(queue_id)
    }))
}

/// The answer for a page keyed by a plain number (the audit log).
pub fn numbered<T: serde::Serialize>(page: Page<T, u64>) -> Answer {
    Answer::ok(json!(Paged {
        items: page.items,
        next: page.next.map(|n| n.to_string())
    }))
}
