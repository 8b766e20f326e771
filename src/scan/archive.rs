//! Bounded archive extraction (zip, gzip, tar). Compressed members are
//! inflated in chunks so that a bomb is detected (by budget or compression
//! ratio) long before it can exhaust memory; member counts share a
//! per-message budget.

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Zip,
    Gzip,
    Tar,
}

fn kind(data: &[u8]) -> Option<Kind> {
    if data.starts_with(b"PK\x03\x04") || data.starts_with(b"PK\x05\x06") {
        Some(Kind::Zip)
    } else if data.starts_with(&[0x1f, 0x8b, 0x08]) {
        Some(Kind::Gzip)
    } else if data.len() >= 512 && &data[257..262] == b"ustar" {
        Some(Kind::Tar)
    } else {
        None
    }
}

/// Whether `data` looks like an archive this module can open.
pub fn is_archive(data: &[u8]) -> bool {
    kind(data).is_some()
}

/// Calls `visit` for every member of the archive in `data` (a gzip stream
/// has one member). Returns `Ok(false)` when `data` is not a readable
/// archive.
pub fn for_each_entry(
    data: &[u8],
    limits: &Limits,
    budget: &mut Budget,
    visit: impl FnMut(Entry<'_>, &mut Budget) -> Result<(), ScanError>,
) -> Result<bool, ScanError> {
    match kind(data) {
        Some(Kind::Zip) => zip_entries(data, limits, budget, visit),
        Some(Kind::Gzip) => gzip_entry(data, limits, budget, visit),
        Some(Kind::Tar) => tar_entries(data, budget, visit),
        None => Ok(false),
    }
}

/// Reads a decompressing stream to the end, charging every byte to the
/// budget and refusing ratios typical of bombs.
fn inflate_bounded(
    mut reader: impl Read,
    compressed_len: u64,
    limits: &Limits,
    budget: &mut Budget,
) -> Result<Vec<u8>, ScanError> {
    let compressed = compressed_len.max(1);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut content = Vec::new();
    loop {
        let n = match reader.read(&mut chunk) {
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
    Ok(content)
}

fn zip_entries(
    data: &[u8],
    limits: &Limits,
    budget: &mut Budget,
    mut visit: impl FnMut(Entry<'_>, &mut Budget) -> Result<(), ScanError>,
) -> Result<bool, ScanError> {
    let Ok(mut archive) = zip::ZipArchive::new(Cursor::new(data)) else {
        return Ok(false);
    };
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
        let content = match archive.by_index(i) {
            Ok(file) => {
                let compressed = file.compressed_size();
                inflate_bounded(file, compressed, limits, budget)?
            }
            // Unsupported compression method or corrupt member: nothing to
            // inspect but the name.
            Err(_) => Vec::new(),
        };
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

fn gzip_entry(
    data: &[u8],
    limits: &Limits,
    budget: &mut Budget,
    mut visit: impl FnMut(Entry<'_>, &mut Budget) -> Result<(), ScanError>,
) -> Result<bool, ScanError> {
    budget.charge_entry()?;
    let mut decoder = flate2::read::MultiGzDecoder::new(data);
    let content = inflate_bounded(&mut decoder, data.len() as u64, limits, budget)?;
    // The original file name, when the compressor recorded it.
    let name = decoder
        .header()
        .and_then(|h| h.filename())
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .unwrap_or_else(|| "(gzip content)".into());
    visit(
        Entry {
            name: &name,
            body: EntryBody::Data(&content),
        },
        budget,
    )?;
    Ok(true)
}

/// POSIX/GNU tar: 512-byte headers, each followed by the member data padded
/// to 512 bytes. Members are borrowed slices, so only counts are charged.
fn tar_entries(
    data: &[u8],
    budget: &mut Budget,
    mut visit: impl FnMut(Entry<'_>, &mut Budget) -> Result<(), ScanError>,
) -> Result<bool, ScanError> {
    let mut pos = 0usize;
    let mut long_name: Option<String> = None;
    while let Some(header) = data.get(pos..pos + 512) {
        if header.iter().all(|&b| b == 0) {
            break;
        }
        let Some(size) = parse_octal(&header[124..136]) else {
            break;
        };
        let start = pos + 512;
        let end = start.saturating_add(size).min(data.len());
        let body = &data[start..end];
        match header[156] {
            // GNU long name: the member data is the next entry's name.
            b'L' => long_name = Some(c_string(body)),
            b'0' | 0 | b'7' => {
                budget.charge_entry()?;
                let name = long_name.take().unwrap_or_else(|| {
                    let prefix = c_string(&header[345..500]);
                    let name = c_string(&header[..100]);
                    if prefix.is_empty() {
                        name
                    } else {
                        format!("{prefix}/{name}")
                    }
                });
                visit(
                    Entry {
                        name: &name,
                        body: EntryBody::Data(body),
                    },
                    budget,
                )?;
            }
            _ => long_name = None,
        }
        pos = start.saturating_add(size.div_ceil(512).saturating_mul(512));
    }
    Ok(true)
}

fn parse_octal(field: &[u8]) -> Option<usize> {
    let digits = field
        .iter()
        .copied()
        .skip_while(|b| *b == b' ')
        .take_while(|b| (b'0'..=b'7').contains(b));
    let mut v: usize = 0;
    for d in digits {
        v = v.checked_mul(8)?.checked_add(usize::from(d - b'0'))?;
    }
    Some(v)
}

fn c_string(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
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
        assert!(is_archive(&z));
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

    /// Builds a ustar archive (reference writer for the tests).
    fn make_tar(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, data) in entries {
            let mut h = [0u8; 512];
            h[..name.len()].copy_from_slice(name.as_bytes());
            h[100..107].copy_from_slice(b"0000644");
            h[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
            h[156] = b'0';
            h[257..263].copy_from_slice(b"ustar\0");
            h[263..265].copy_from_slice(b"00");
            out.extend_from_slice(&h);
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
        out.extend_from_slice(&[0u8; 1024]);
        out
    }

    fn gzip(data: &[u8], name: Option<&str>) -> Vec<u8> {
        let mut b = flate2::GzBuilder::new();
        if let Some(n) = name {
            b = b.filename(n);
        }
        let mut w = b.write(Vec::new(), flate2::Compression::default());
        w.write_all(data).unwrap();
        w.finish().unwrap()
    }

    fn collect(data: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut seen = Vec::new();
        let mut budget = Budget::new(&Limits::default());
        for_each_entry(data, &Limits::default(), &mut budget, |e, _| {
            if let EntryBody::Data(d) = e.body {
                seen.push((e.name.to_string(), d.to_vec()));
            }
            Ok(())
        })
        .unwrap();
        seen
    }

    #[test]
    fn tar_and_gzip_members() {
        let long = "dir/".repeat(10) + "file.txt";
        let tar = make_tar(&[("a.txt", b"alpha"), (&long[..], &[7u8; 1000])]);
        assert!(is_archive(&tar));
        let seen = collect(&tar);
        assert_eq!(seen[0], ("a.txt".to_string(), b"alpha".to_vec()));
        assert_eq!(seen[1].0, long);
        assert_eq!(seen[1].1.len(), 1000);

        let gz = gzip(&tar, Some("bundle.tar"));
        assert!(is_archive(&gz));
        let seen = collect(&gz);
        assert_eq!(seen, vec![("bundle.tar".to_string(), tar)]);
        assert_eq!(collect(&gzip(b"x", None))[0].0, "(gzip content)");
    }

    #[test]
    fn gzip_bomb_refused() {
        let gz = gzip(&vec![0u8; 8 << 20], None);
        let mut budget = Budget::new(&Limits::default());
        let r = for_each_entry(&gz, &Limits::default(), &mut budget, |_, _| Ok(()));
        assert!(matches!(r, Err(ScanError::CompressionRatioExceeded { .. })));
    }

    #[test]
    fn octal_sizes() {
        assert_eq!(parse_octal(b"00000000012\0"), Some(10));
        assert_eq!(parse_octal(b"  777 "), Some(511));
        assert_eq!(parse_octal(b"77777777777777777777777777"), None);
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
