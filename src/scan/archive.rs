//! Bounded zip extraction. Each member is decompressed in chunks so that a
//! zip bomb is detected (by budget or compression ratio) long before it can
//! exhaust memory; member counts share a per-message budget.

use std::io::{Cursor, Read};

use super::{Budget, Limits, ScanError};

/// Members above this size are checked against `max_compression_ratio`;
/// small, highly repetitive files compress extremely well legitimately.
const RATIO_CHECK_FLOOR: u64 = 1 << 20;

pub enum EntryBody<'a> {
    Data(&'a [u8]),
    /// Encrypted member: only its name can be inspected.
    Encrypted,
}

pub struct Entry<'a> {
    pub name: &'a str,
    pub body: EntryBody<'a>,
}

pub fn is_zip(data: &[u8]) -> bool {
    data.starts_with(b"PK\x03\x04") || data.starts_with(b"PK\x05\x06")
}

/// Calls `visit` for every member of the zip archive in `data`. Returns
/// `Ok(false)` when `data` is not a readable zip archive.
pub fn for_each_entry(
    data: &[u8],
    limits: &Limits,
    budget: &mut Budget,
    mut visit: impl FnMut(Entry<'_>, &mut Budget) -> Result<(), ScanError>,
) -> Result<bool, ScanError> {
    let Ok(mut archive) = zip::ZipArchive::new(Cursor::new(data)) else {
        return Ok(false);
    };
    let mut chunk = vec![0u8; 64 * 1024];
    for i in 0..archive.len() {
        budget.charge_entry()?;
        let (name, encrypted, is_dir) = match archive.by_index_raw(i) {
            Ok(f) => (f.name().to_string(), f.encrypted(), f.is_dir()),
            Err(_) => continue,
        };
        if is_dir {
            continue;
        }
        if encrypted {
            visit(
                Entry {
                    name: &name,
                    body: EntryBody::Encrypted,
                },
                budget,
            )?;
            continue;
        }
        let Ok(mut file) = archive.by_index(i) else {
            // Unsupported compression method or corrupt member: nothing to
            // inspect but the name.
            visit(
                Entry {
                    name: &name,
                    body: EntryBody::Data(&[]),
                },
                budget,
            )?;
            continue;
        };
        let compressed = file.compressed_size().max(1);
        let mut content = Vec::new();
        loop {
            let n = match file.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(_) => break, // corrupt stream: scan what was decoded
            };
            budget.charge_bytes(n as u64)?;
            content.extend_from_slice(&chunk[..n]);
            let out = content.len() as u64;
            if out > RATIO_CHECK_FLOOR && out / compressed > limits.max_compression_ratio {
                return Err(ScanError::CompressionRatioExceeded {
                    limit: limits.max_compression_ratio,
                });
            }
        }
        drop(file);
        visit(
            Entry {
                name: &name,
                body: EntryBody::Data(&content),
            },
            budget,
        )?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use zip::write::SimpleFileOptions;

    fn make_zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, data) in entries {
            w.start_file(*name, SimpleFileOptions::default()).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn lists_members() {
        let z = make_zip(&[("a.txt", b"hello"), ("b.bin", b"world")]);
        assert!(is_zip(&z));
        let mut seen = Vec::new();
        let mut budget = Budget::new(&Limits::default());
        let ok = for_each_entry(&z, &Limits::default(), &mut budget, |e, _| {
            if let EntryBody::Data(d) = e.body {
                seen.push((e.name.to_string(), d.to_vec()));
            }
            Ok(())
        })
        .unwrap();
        assert!(ok);
        assert_eq!(seen[1], ("b.bin".to_string(), b"world".to_vec()));
    }

    #[test]
    fn refuses_high_ratio_member() {
        let big = vec![0u8; 8 << 20];
        let z = make_zip(&[("zeros", &big)]);
        let mut budget = Budget::new(&Limits::default());
        let r = for_each_entry(&z, &Limits::default(), &mut budget, |_, _| Ok(()));
        assert_eq!(
            r,
            Err(ScanError::CompressionRatioExceeded {
                limit: Limits::default().max_compression_ratio
            })
        );
    }

    #[test]
    fn member_budget() {
        let z = make_zip(&[("1", b"a"), ("2", b"b"), ("3", b"c")]);
        let limits = Limits {
            max_archive_entries: 2,
            ..Limits::default()
        };
        let mut budget = Budget::new(&limits);
        let r = for_each_entry(&z, &limits, &mut budget, |_, _| Ok(()));
        assert!(matches!(r, Err(ScanError::TooManyArchiveEntries { .. })));
    }

    #[test]
    fn not_a_zip() {
        let mut budget = Budget::new(&Limits::default());
        let r = for_each_entry(
            b"PK\x03\x04garbage",
            &Limits::default(),
            &mut budget,
            |_, _| Ok(()),
        );
        assert_eq!(r, Ok(false));
    }
}
