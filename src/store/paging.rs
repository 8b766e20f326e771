//! Bounded, keyset-paged reads in the tables' key order: a page starts
//! just after the last key of the one before (`after`), so reading page
//! 500 of 100,000 users costs what reading page 1 does (one B-tree seek,
//! then `limit` rows), never an offset scan.

use std::ops::Bound;

use redb::{AccessGuard, ReadOnlyTable, StorageError};

use super::Result;

/// Rows one page looks at, at most: a filter that matches few rows
/// answers with fewer items than asked (and a cursor to go on), so a
/// request's work stays bounded whatever the filter.
pub const SCAN_MAX: usize = 10_000;

/// One page: the items, and the cursor of the next page (`None`: this
/// was the last one).
#[derive(Debug)]
pub struct Page<T, C> {
    pub items: Vec<T>,
    pub next: Option<C>,
}

type Row<'a, K> =
    std::result::Result<(AccessGuard<'a, K>, AccessGuard<'a, &'static [u8]>), StorageError>;

/// Takes up to `limit` kept rows (and looks at no more than `SCAN_MAX`);
/// the next cursor is the last key looked at, when any row follows it.
fn take<'a, K: redb::Key + 'static, T, C>(
    mut rows: impl Iterator<Item = Row<'a, K>>,
    limit: usize,
    key: impl Fn(&AccessGuard<'a, K>) -> C,
    mut keep: impl FnMut(&[u8]) -> Result<Option<T>>,
) -> Result<Page<T, C>> {
    let mut items = Vec::new();
    let mut last = None;
    let mut scanned = 0;
    for row in rows.by_ref() {
        let (k, v) = row?;
        scanned += 1;
        if let Some(item) = keep(v.value())? {
            items.push(item);
        }
        if items.len() >= limit || scanned >= SCAN_MAX {
            last = Some(key(&k));
            break;
        }
    }
    let next = match last {
        Some(k) if rows.next().is_some() => Some(k),
        _ => None,
    };
    Ok(Page { items, next })
}

/// A page of a table keyed by name, in byte order of the names.
pub(super) fn by_name<T>(
    t: &ReadOnlyTable<&'static str, &'static [u8]>,
    after: Option<&str>,
    limit: usize,
    keep: impl FnMut(&[u8]) -> Result<Option<T>>,
) -> Result<Page<T, String>> {
    let start = after.map_or(Bound::Unbounded, Bound::Excluded);
    let rows = t.range::<&str>((start, Bound::Unbounded))?;
    take(rows, limit, |k| k.value().to_string(), keep)
}

/// A page of a table keyed by a sequence number: oldest first, or newest
/// first (`after` is then the smallest number of the page before).
pub(super) fn by_number<T>(
    t: &ReadOnlyTable<u64, &'static [u8]>,
    after: Option<u64>,
    newest_first: bool,
    limit: usize,
    keep: impl FnMut(&[u8]) -> Result<Option<T>>,
) -> Result<Page<T, u64>> {
    let cut = after.map_or(Bound::Unbounded, Bound::Excluded);
    if newest_first {
        let rows = t.range::<u64>((Bound::Unbounded, cut))?;
        take(rows.rev(), limit, |k| k.value(), keep)
    } else {
        let rows = t.range::<u64>((cut, Bound::Unbounded))?;
        take(rows, limit, |k| k.value(), keep)
    }
}
