//! ClamAV-style hash signature databases: `.hdb` (`md5:size:name`) and
//! `.hsb` (`sha1:size:name` or `sha256:size:name`). A size of `*` matches any
//! size; trailing functionality-level fields are ignored.

use std::collections::HashMap;
use std::path::Path;

use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::InitError;

#[derive(Debug, Clone)]
struct Sig {
    size: Option<u64>,
    name: String,
}

#[derive(Debug, Default)]
pub struct SignatureDb {
    md5: HashMap<[u8; 16], Vec<Sig>>,
    sha1: HashMap<[u8; 20], Vec<Sig>>,
    sha256: HashMap<[u8; 32], Vec<Sig>>,
}

impl SignatureDb {
    /// Loads every `.hdb` and `.hsb` file in `dir`; a missing directory gives
    /// an empty database.
    pub fn load_dir(dir: &Path) -> Result<Self, InitError> {
        let mut db = Self::default();
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(db),
            Err(e) => return Err(InitError::Io(dir.to_path_buf(), e)),
        };
        let mut paths: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .is_some_and(|x| x.eq_ignore_ascii_case("hdb") || x.eq_ignore_ascii_case("hsb"))
            })
            .collect();
        paths.sort();
        for path in paths {
            let text =
                std::fs::read_to_string(&path).map_err(|e| InitError::Io(path.clone(), e))?;
            db.add_text(&text)
                .map_err(|(line, message)| InitError::Signature {
                    file: path.clone(),
                    line,
                    message,
                })?;
        }
        Ok(db)
    }

    /// Adds signatures from database text; errors carry the 1-based line.
    pub fn add_text(&mut self, text: &str) -> Result<(), (usize, String)> {
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            self.add_line(line).map_err(|m| (i + 1, m))?;
        }
        Ok(())
    }

    fn add_line(&mut self, line: &str) -> Result<(), String> {
        let mut fields = line.split(':');
        let (Some(hash), Some(size), Some(name)) = (fields.next(), fields.next(), fields.next())
        else {
            return Err("expected hash:size:name".into());
        };
        let size = match size {
            "*" => None,
            s => Some(s.parse::<u64>().map_err(|_| format!("bad size {s:?}"))?),
        };
        if name.is_empty() {
            return Err("empty signature name".into());
        }
        let sig = Sig {
            size,
            name: name.to_string(),
        };
        let bytes = decode_hex(hash).ok_or_else(|| format!("bad hash {hash:?}"))?;
        match bytes.len() {
            16 => self
                .md5
                .entry(bytes.try_into().expect("16"))
                .or_default()
                .push(sig),
            20 => self
                .sha1
                .entry(bytes.try_into().expect("20"))
                .or_default()
                .push(sig),
            32 => self
                .sha256
                .entry(bytes.try_into().expect("32"))
                .or_default()
                .push(sig),
            n => {
                return Err(format!(
                    "hash of {n} bytes is neither MD5, SHA-1 nor SHA-256"
                ));
            }
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        [
            self.md5.values().map(Vec::len).sum::<usize>(),
            self.sha1.values().map(Vec::len).sum(),
            self.sha256.values().map(Vec::len).sum(),
        ]
        .iter()
        .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Name of the first signature matching `data`. Digests are only computed
    /// for the hash kinds that have signatures loaded.
    pub fn lookup(&self, data: &[u8]) -> Option<&str> {
        let size = data.len() as u64;
        fn pick(sigs: Option<&Vec<Sig>>, size: u64) -> Option<&str> {
            sigs?
                .iter()
                .find(|s| s.size.is_none_or(|n| n == size))
                .map(|s| s.name.as_str())
        }
        if !self.md5.is_empty() {
            let d: [u8; 16] = Md5::digest(data).into();
            if let Some(n) = pick(self.md5.get(&d), size) {
                return Some(n);
            }
        }
        if !self.sha1.is_empty() {
            let d: [u8; 20] = Sha1::digest(data).into();
            if let Some(n) = pick(self.sha1.get(&d), size) {
                return Some(n);
            }
        }
        if !self.sha256.is_empty() {
            let d: [u8; 32] = Sha256::digest(data).into();
            if let Some(n) = pick(self.sha256.get(&d), size) {
                return Some(n);
            }
        }
        None
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(d: &[u8]) -> String {
        d.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn matches_each_hash_kind_and_checks_size() {
        let data = b"not really malware";
        let mut db = SignatureDb::default();
        let text = format!(
            "# comment\n{}:{}:Test.Md5\n{}:*:Test.Sha1:73\n{}:{}:Test.Sha256\n",
            hex(&Md5::digest(b"other")),
            5,
            hex(&Sha1::digest(b"sha1 only")),
            hex(&Sha256::digest(data)),
            data.len()
        );
        db.add_text(&text).unwrap();
        assert_eq!(db.len(), 3);
        assert_eq!(db.lookup(data), Some("Test.Sha256"));
        assert_eq!(db.lookup(b"sha1 only"), Some("Test.Sha1"));
        assert_eq!(db.lookup(b"other"), Some("Test.Md5"));
        assert_eq!(db.lookup(b"clean"), None);
        // Wrong size: no match.
        let mut db = SignatureDb::default();
        db.add_text(&format!("{}:99:X", hex(&Md5::digest(data))))
            .unwrap();
        assert_eq!(db.lookup(data), None);
    }

    #[test]
    fn rejects_malformed_lines() {
        let mut db = SignatureDb::default();
        assert_eq!(db.add_text("\nzz:1:X\n").unwrap_err().0, 2);
        assert!(db.add_text("abcd:1:X").is_err());
        assert!(db.add_text("00112233445566778899aabbccddeeff:x:X").is_err());
    }
}
