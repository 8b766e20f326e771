//! The vendor's bulk import: CSV lines `user,domainname,password`. A user
//! field that is an IP address or network with an empty password makes an
//! IP-authorised user. A password field holding an argon2id PHC string
//! (`$argon2id$v=19$m=…`) is taken as the hash itself, for migrations.
//! Every problem is reported with its line number;
//! the caller decides whether one bad line stops the whole import.

use std::collections::HashMap;

use serde::Serialize;

use crate::users::{UserName, validate_domain};

pub mod job;
pub mod upgrade;

/// Shortest password accepted for a new user.
pub const MIN_PASSWORD: usize = 8;
/// Longest password accepted (bounded hashing work).
pub const MAX_PASSWORD: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportLine {
    pub line: u64,
    pub name: UserName,
    /// For an IP-authorised user, the domain it may send from, if given.
    pub domain: Option<String>,
    pub password: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(utoipa::ToSchema))]
pub struct LineError {
    /// The line's number, from 1.
    #[cfg_attr(test, schema(minimum = 1))]
    pub line: u64,
    pub message: String,
}

/// A password field that starts so is an argon2id PHC string from another
/// system (a migration): it is checked (`auth::password::check_phc`) and
/// stored as the hash, not hashed again.
pub const PRE_HASHED: &str = "$argon2";

pub fn is_pre_hashed(p: &str) -> bool {
    p.starts_with(PRE_HASHED)
}

pub fn check_password(p: &str) -> Result<(), String> {
    let n = p.chars().count();
    if n < MIN_PASSWORD {
        return Err(format!(
            "password must have at least {MIN_PASSWORD} characters"
        ));
    }
    if n > MAX_PASSWORD || p.contains(['\0', '\r', '\n']) {
        return Err(format!(
            "password must have at most {MAX_PASSWORD} characters and no control line breaks"
        ));
    }
    Ok(())
}

/// Parses a whole file: the valid lines and the errors, both in order.
/// Each physical line is one record (a quoted field cannot span lines),
/// which keeps the reported line numbers exact.
pub fn parse(text: &[u8]) -> (Vec<ImportLine>, Vec<LineError>) {
    let (mut ok, mut errors) = (Vec::new(), Vec::new());
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut first = true;
    for (line, fields) in records(text) {
        let fields = match fields {
            Ok(f) => f,
            Err(message) => {
                errors.push(LineError { line, message });
                continue;
            }
        };
        let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
        if std::mem::take(&mut first) && is_header(&fields) {
            continue;
        }
        match parse_fields(&fields) {
            Ok(mut l) => {
                l.line = line;
                let key = l.name.to_string();
                if let Some(first) = seen.get(&key) {
                    errors.push(LineError {
                        line,
                        message: format!("{key} is already on line {first}"),
                    });
                } else {
                    seen.insert(key, line);
                    ok.push(l);
                }
            }
            Err(message) => errors.push(LineError { line, message }),
        }
    }
    (ok, errors)
}

/// The records of a CSV text with their 1-based line numbers: a UTF-8
/// BOM, CR before LF, blank lines and `#` comments are passed over.
pub fn records(text: &[u8]) -> impl Iterator<Item = (u64, Result<Vec<String>, String>)> + '_ {
    let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
    text.split(|&b| b == b'\n')
        .enumerate()
        .filter_map(|(i, raw)| {
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw).trim_ascii();
            if raw.is_empty() || raw.starts_with(b"#") {
                return None;
            }
            Some((i as u64 + 1, split_record(raw)))
        })
}

/// One CSV record (RFC 4180 quoting) as trimmed UTF-8 fields.
fn split_record(raw: &[u8]) -> Result<Vec<String>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(raw);
    let mut record = csv::ByteRecord::new();
    match reader.read_byte_record(&mut record) {
        Ok(true) => {}
        Ok(false) => return Ok(Vec::new()),
        Err(e) => return Err(format!("unreadable CSV: {e}")),
    }
    record
        .iter()
        .map(|f| {
            std::str::from_utf8(f)
                .map(str::to_string)
                .map_err(|_| "not valid UTF-8".to_string())
        })
        .collect()
}

fn is_header(f: &[&str]) -> bool {
    f.len() == 3
        && f[0].eq_ignore_ascii_case("user")
        && (f[1].eq_ignore_ascii_case("domain") || f[1].eq_ignore_ascii_case("domainname"))
        && f[2].eq_ignore_ascii_case("password")
}

fn parse_fields(f: &[&str]) -> Result<ImportLine, String> {
    // A PHC string has commas of its own (`m=7168,t=5,p=1`): unquoted, it
    // is the rest of the line.
    let joined;
    let f = match f {
        [user, domain, rest @ ..] if rest.len() > 1 && is_pre_hashed(rest[0]) => {
            joined = rest.join(",");
            vec![*user, *domain, joined.as_str()]
        }
        _ => f.to_vec(),
    };
    let [user, domain, password] = f.as_slice() else {
        return Err(format!(
            "expected 3 fields (user,domainname,password), found {}",
            f.len()
        ));
    };
    if user.is_empty() {
        return Err("user is empty".into());
    }
    let password = (!password.is_empty()).then(|| password.to_string());
    if let Ok(UserName::Network(net)) = UserName::parse(user) {
        if password.is_some() {
            return Err(format!(
                "{user} is an IP address user: its password must be blank"
            ));
        }
        let domain = if domain.is_empty() {
            None
        } else {
            Some(validate_domain(domain)?)
        };
        return Ok(ImportLine {
            line: 0,
            name: UserName::Network(net),
            domain,
            password: None,
        });
    }
    if user.contains('@') {
        return Err(format!(
            "user '{user}' must not contain '@': put the domain in the second field"
        ));
    }
    if domain.is_empty() {
        return Err(format!("domain is empty for user '{user}'"));
    }
    let name = UserName::parse(&format!("{user}@{domain}"))?;
    let Some(password) = password else {
        return Err(format!(
            "password is blank for {name}: only IP address users may have a blank password"
        ));
    };
    if is_pre_hashed(&password) {
        crate::auth::password::check_phc(&password)
            .map_err(|e| format!("{name}: pre-hashed password: {e}"))?;
    } else {
        check_password(&password).map_err(|e| format!("{name}: {e}"))?;
    }
    Ok(ImportLine {
        line: 0,
        name,
        domain: None,
        password: Some(password),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_and_bad_lines() {
        let csv = "user,domain,password\n\
                   alice,example.com,correct-horse\n\
                   \n\
                   # a comment\n\
                   bob,example.com,\n\
                   192.168.1.10,,\n\
                   10.0.0.0/24,example.com,\n\
                   carol@x,example.com,longenough\n\
                   dave,exa mple.com,longenough\n\
                   alice,EXAMPLE.com,another-one\n\
                   \"eve\",\"example.com\",\"pass,with,commas\"\n\
                   10.0.0.9,,secret-pass\n\
                   only,two\n";
        let (ok, errs) = parse(csv.as_bytes());
        let names: Vec<String> = ok.iter().map(|l| l.name.to_string()).collect();
        assert_eq!(
            names,
            [
                "alice@example.com",
                "192.168.1.10",
                "10.0.0.0/24",
                "eve@example.com"
            ]
        );
        assert_eq!(ok[3].password.as_deref(), Some("pass,with,commas"));
        let lines: Vec<u64> = errs.iter().map(|e| e.line).collect();
        assert_eq!(lines, [5, 8, 9, 10, 12, 13], "{errs:?}");
        assert!(errs[0].message.contains("blank"), "{}", errs[0].message);
        assert!(errs[3].message.contains("line 2"), "{}", errs[3].message);
    }

    #[test]
    fn pre_hashed_passwords_are_checked_and_kept() {
        let phc = crate::auth::password::hash("migrated-pass-1");
        let big = phc.replace("m=7168", "m=262144");
        // Quoted or not (a PHC string has commas).
        let csv = format!("old,example.com,{phc}\nbig,example.com,\"{big}\"\n");
        let (ok, errs) = parse(csv.as_bytes());
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].password.as_deref(), Some(phc.as_str()));
        assert_eq!(errs[0].line, 2);
        assert!(
            errs[0].message.contains("pre-hashed"),
            "{}",
            errs[0].message
        );
    }
}
