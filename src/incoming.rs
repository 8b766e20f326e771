//! CSV of incoming users for the directory: one user a line, either
//! `user@domain` or `user,domain`. Problems carry their line numbers, as
//! in the outgoing import.

use std::collections::HashMap;

use crate::import::{LineError, split_record};
use crate::users::UserName;

/// Canonical `local@domain` names, and the errors, both in order.
pub fn parse(text: &[u8]) -> (Vec<String>, Vec<LineError>) {
    let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
    let (mut ok, mut errors) = (Vec::new(), Vec::new());
    let mut seen: HashMap<String, u64> = HashMap::new();
    for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
        let line = i as u64 + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw).trim_ascii();
        if raw.is_empty() || raw.starts_with(b"#") {
            continue;
        }
        let fields = match split_record(raw) {
            Ok(f) => f,
            Err(message) => {
                errors.push(LineError { line, message });
                continue;
            }
        };
        let text = match fields.as_slice() {
            [user] => user.clone(),
            [user, domain] if user.eq_ignore_ascii_case("user") && i == 0 => {
                let _ = domain;
                continue;
            }
            [user, domain] if !user.contains('@') => format!("{user}@{domain}"),
            [user, _] => {
                errors.push(LineError {
                    line,
                    message: format!("user '{user}' must not contain '@' when a domain follows"),
                });
                continue;
            }
            f => {
                errors.push(LineError {
                    line,
                    message: format!(
                        "expected user@domain or user,domain, found {} fields",
                        f.len()
                    ),
                });
                continue;
            }
        };
        match UserName::parse(&text) {
            Ok(UserName::Address { local, domain }) => {
                let name = format!("{local}@{domain}");
                if let Some(first) = seen.get(&name) {
                    errors.push(LineError {
                        line,
                        message: format!("{name} is already on line {first}"),
                    });
                } else {
                    seen.insert(name.clone(), line);
                    ok.push(name);
                }
            }
            Ok(UserName::Network(_)) => errors.push(LineError {
                line,
                message: format!("'{text}' is an IP address, not an incoming user"),
            }),
            Err(message) => errors.push(LineError { line, message }),
        }
    }
    (ok, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_and_errors() {
        let (ok, errs) = parse(
            b"user,domain\nAlice@Example.com\nbob,example.com\n10.0.0.1\nalice@example.com\nx@y,z\n",
        );
        assert_eq!(ok, ["alice@example.com", "bob@example.com"]);
        let lines: Vec<u64> = errs.iter().map(|e| e.line).collect();
        assert_eq!(lines, [4, 5, 6]);
    }
}
