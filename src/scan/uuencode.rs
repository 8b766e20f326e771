//! Decoder for uuencoded blocks (`begin 644 name` … `end`). mail-parser only
//! decodes base64 and quoted-printable, and uuencode is still used by some
//! mailers (and by malware to slip past scanners that ignore it).

use super::{Budget, ScanError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UuFile {
    pub name: String,
    pub data: Vec<u8>,
}

/// Decodes every uuencoded block found in `text`, charging decoded bytes to
/// the budget.
pub fn decode_all(text: &[u8], budget: &mut Budget) -> Result<Vec<UuFile>, ScanError> {
    let mut files = Vec::new();
    if memchr::memmem::find(text, b"begin ").is_none() {
        return Ok(files);
    }
    let mut lines = text.split(|&b| b == b'\n').map(trim_cr);
    while let Some(line) = lines.next() {
        let Some(name) = begin_line(line) else {
            continue;
        };
        let mut data = Vec::new();
        for line in lines.by_ref() {
            if line == b"end" {
                break;
            }
            let Some((&len_char, rest)) = line.split_first() else {
                continue;
            };
            let len = usize::from(len_char.wrapping_sub(b' ') & 0x3f);
            if len == 0 {
                continue; // the "`" terminator line before "end"
            }
            budget.charge_bytes(len as u64)?;
            let start = data.len();
            for group in rest.chunks(4) {
                let mut v = [0u8; 4];
                for (slot, &c) in v.iter_mut().zip(group) {
                    *slot = c.wrapping_sub(b' ') & 0x3f;
                }
                data.push((v[0] << 2) | (v[1] >> 4));
                data.push((v[1] << 4) | (v[2] >> 2));
                data.push((v[2] << 6) | v[3]);
            }
            data.truncate(start + len.min(data.len() - start));
        }
        files.push(UuFile { name, data });
    }
    Ok(files)
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// `begin <octal mode> <name>` → name.
fn begin_line(line: &[u8]) -> Option<String> {
    let rest = line.strip_prefix(b"begin ")?;
    let space = rest.iter().position(|&b| b == b' ')?;
    let (mode, name) = rest.split_at(space);
    if mode.len() < 3 || mode.len() > 4 || !mode.iter().all(|b| (b'0'..=b'7').contains(b)) {
        return None;
    }
    let name = String::from_utf8_lossy(&name[1..]).trim().to_string();
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::Limits;

    /// Reference encoder for the round-trip test.
    fn encode(name: &str, data: &[u8]) -> String {
        let enc = |v: u8| if v == 0 { '`' } else { char::from(v + b' ') };
        let mut out = format!("begin 644 {name}\n");
        for chunk in data.chunks(45) {
            out.push(enc(chunk.len() as u8));
            for g in chunk.chunks(3) {
                let b = [g[0], *g.get(1).unwrap_or(&0), *g.get(2).unwrap_or(&0)];
                out.push(enc(b[0] >> 2));
                out.push(enc(((b[0] & 3) << 4) | (b[1] >> 4)));
                out.push(enc(((b[1] & 0xf) << 2) | (b[2] >> 6)));
                out.push(enc(b[2] & 0x3f));
            }
            out.push('\n');
        }
        out.push_str("`\nend\n");
        out
    }

    #[test]
    fn round_trip() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let text = format!(
            "Hello\r\n{}\r\nbye",
            encode("file.bin", &data).replace('\n', "\r\n")
        );
        let mut budget = Budget::new(&Limits::default());
        let files = decode_all(text.as_bytes(), &mut budget).unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].name, "file.bin");
        assert_eq!(files[0].data, data);
    }

    #[test]
    fn known_vector() {
        // "Cat" uuencodes to "#0V%T".
        let mut budget = Budget::new(&Limits::default());
        let files = decode_all(b"begin 644 cat.txt\n#0V%T\n`\nend\n", &mut budget).unwrap();
        assert_eq!(files[0].data, b"Cat");
    }

    #[test]
    fn ignores_prose() {
        let mut budget = Budget::new(&Limits::default());
        let files = decode_all(b"we begin now\nbegin the meeting\n", &mut budget).unwrap();
        assert!(files.is_empty());
    }
}
