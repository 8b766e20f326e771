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
    scan_max: usize,
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
        if items.len() >= limit || scanned >= scan_max {
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
    take(rows, limit, SCAN_MAX, |k| k.value().to_string(), keep)
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
        take(rows.rev(), limit, SCAN_MAX, |k| k.value(), keep)
    } else {
        let rows = t.range::<u64>((cut, Bound::Unbounded))?;
        take(rows, limit, SCAN_MAX, |k| k.value(), keep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    // The store's own table definitions, on a bare redb file.
    use super::super::{QUEUE as NUMBERS, USERS as NAMES};
    use redb::Database;

    fn db() -> (Database, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!(
            "og-paging-{}-{:?}.redb",
            std::process::id(),
            std::thread::current().id()
        ));
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(NAMES).unwrap();
            let mut n = txn.open_table(NUMBERS).unwrap();
            for i in (0..50u64).rev() {
                t.insert(format!("n{i:02}").as_str(), &[i as u8][..])
                    .unwrap();
                n.insert(i + 1, &[i as u8][..]).unwrap();
            }
        }
        txn.commit().unwrap();
        (db, path)
    }

    /// Every page of a by-name walk with `scan_max`, keeping what `keep` keeps.
    fn walk(db: &Database, limit: usize, scan_max: usize, keep: fn(u8) -> bool) -> Vec<Vec<u8>> {
        let txn = db.begin_read().unwrap();
        let t = txn.open_table(NAMES).unwrap();
        let (mut pages, mut after) = (Vec::new(), None::<String>);
        loop {
            let start = after.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
            let rows = t.range::<&str>((start, Bound::Unbounded)).unwrap();
            let page = take(
                rows,
                limit,
                scan_max,
                |k| k.value().to_string(),
                |v| Ok(keep(v[0]).then_some(v[0])),
            )
            .unwrap();
            assert!(page.items.len() <= limit);
            pages.push(page.items);
            match page.next {
                Some(n) => after = Some(n),
                None => return pages,
            }
        }
    }

    #[test]
    fn pages_cover_every_row_once_in_key_order() {
        let (db, path) = db();
        let pages = walk(&db, 7, SCAN_MAX, |_| true);
        assert_eq!(pages.len(), 8);
        assert_eq!(pages.concat(), (0..50).collect::<Vec<u8>>());
        // An exact fit ends without an empty page.
        assert_eq!(walk(&db, 10, SCAN_MAX, |_| true).len(), 5);
        // A sparse filter under a small scan bound: short (even empty)
        // pages with a cursor, and still every match once.
        let pages = walk(&db, 3, 8, |v| v % 10 == 0);
        assert!(pages.iter().any(|p| p.len() < 3));
        assert_eq!(pages.concat(), [0, 10, 20, 30, 40]);
        drop(db);
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn numbers_page_both_ways() {
        let (db, path) = db();
        let txn = db.begin_read().unwrap();
        let t = txn.open_table(NUMBERS).unwrap();
        let first = by_number(&t, None, true, 4, |v| Ok(Some(v[0]))).unwrap();
        assert_eq!((first.items, first.next), (vec![49, 48, 47, 46], Some(47)));
        let next = by_number(&t, Some(47), true, 4, |v| Ok(Some(v[0]))).unwrap();
        assert_eq!(next.items, [45, 44, 43, 42]);
        let oldest = by_number(&t, Some(48), false, 4, |v| Ok(Some(v[0]))).unwrap();
        assert_eq!((oldest.items, oldest.next), (vec![48, 49], None));
        drop((t, txn, db));
        let _ = std::fs::remove_file(path);
    }
}
