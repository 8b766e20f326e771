//! CSV of incoming users for the directory: one user a line, either
//! `user@domain` or `user,domain`. Problems carry their line numbers, as
//! in the outgoing import.

use std::collections::HashMap;

use crate::import::{LineError, records};
use crate::users::UserName;

/// Canonical `local@domain` names, and the errors, both in order.
pub fn parse(text: &[u8]) -> (Vec<String>, Vec<LineError>) {
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
        let is_first = std::mem::take(&mut first);
        let text = match fields.as_slice() {
            [user] => user.clone(),
            // A header line.
            [user, _] if user.eq_ignore_ascii_case("user") && is_first => continue,
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
