//! Is the authenticated user the one the message claims to come from?
//! The envelope sender (MAIL FROM) is judged by `sender_check`; the
//! header From (every address in it) and Sender by `header_from_check`,
//! with the same rule, once the message is in. The header section is
//! scanned line by line for those two fields (a long header section is
//! fine), and only they, at most `MAX_FIELDS` octets, go to mail-parser.

use std::borrow::Cow;

use mail_parser::{HeaderName, HeaderValue, MessageParser};

use crate::settings::SenderCheck;
use crate::users::User;

/// The From and Sender fields together, folded lines included: more
/// cannot be checked, so such a message is refused when checking is on.
const MAX_FIELDS: usize = 16 * 1024;

/// Why `user` may send as nobody at all under `check`, if so: an
/// IP-authorised user without a domain has no addresses of its own.
pub fn no_identity(user: &User, check: SenderCheck, what: &str) -> Option<String> {
    (check != SenderCheck::Off && user.is_network() && user.domain.is_none()).then(|| {
        format!(
            "IP user {} has no domain, so it may not send as anyone ({what} is checked; give the user a domain)",
            user.name
        )
    })
}

/// Does `address` belong to the user, under the system's rule?
pub fn address_allowed(address: &str, user: &User, check: SenderCheck) -> bool {
    let domain_of = |a: &str| {
        a.rsplit_once('@')
            .map(|(_, d)| d.trim_end_matches('.').to_string())
    };
    match check {
        SenderCheck::Off => true,
        _ if user.is_network() && user.domain.is_none() => false,
        // Domains compare across IDN spellings (U-label and A-label).
        SenderCheck::Exact if !user.is_network() => {
            match (address.rsplit_once('@'), user.name.rsplit_once('@')) {
                (Some((l, d)), Some((ul, ud))) => {
                    l.eq_ignore_ascii_case(ul) && crate::intl::same_domain(d, ud)
                }
                _ => address.eq_ignore_ascii_case(&user.name),
            }
        }
        SenderCheck::Exact | SenderCheck::Domain => match (domain_of(address), &user.domain) {
            (Some(d), Some(ud)) => crate::intl::same_domain(&d, ud),
            _ => false,
        },
    }
}

/// Checks the From and Sender headers of `message` (as received, without
/// our Received line). The error is the reason for a 550 5.7.1. A message
/// without From or Sender claims nothing and passes.
pub fn check_headers(message: &[u8], user: &User, check: SenderCheck) -> Result<(), String> {
    if check == SenderCheck::Off {
        return Ok(());
    }
    if let Some(why) = no_identity(user, check, "the header From") {
        return Err(why);
    }
    let fields = identity_fields(message).ok_or_else(|| {
        format!(
            "the From and Sender headers are longer than {MAX_FIELDS} octets and cannot be checked"
        )
    })?;
    let Some(parsed) = MessageParser::new().parse_headers(&fields) else {
        return Ok(());
    };
    for (label, name) in [("From", HeaderName::From), ("Sender", HeaderName::Sender)] {
        for value in parsed.header_values(name) {
            let HeaderValue::Address(list) = value else {
                return Err(format!("the {label} header has no readable address"));
            };
            let mut seen = 0;
            for addr in list.iter() {
                seen += 1;
                let address = addr.address.as_deref().map(Cow::from).unwrap_or_default();
                if !address_allowed(&address, user, check) {
                    return Err(format!(
                        "{label} header address <{}> is not owned by user {}",
                        super::session::shown(&address, false),
                        user.name
                    ));
                }
            }
            if seen == 0 {
                return Err(format!("the {label} header has no readable address"));
            }
        }
    }
    Ok(())
}

/// The From and Sender fields of the header section (which ends at the
/// first empty line), with their folded continuation lines, followed by
/// an empty line; `None` if they add up to more than `MAX_FIELDS`.
fn identity_fields(message: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut keep = false;
    for line in message.split_inclusive(|&b| b == b'\n') {
        let content = line.strip_suffix(b"\n").unwrap_or(line);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        if content.is_empty() {
            break;
        }
        if !matches!(content[0], b' ' | b'\t') {
            let name = content.split(|&b| b == b':').next().unwrap_or_default();
            keep = content.contains(&b':')
                && [&b"from"[..], b"sender"]
                    .iter()
                    .any(|n| name.trim_ascii_end().eq_ignore_ascii_case(n));
        }
        if keep {
            if out.len() + content.len() + 2 > MAX_FIELDS {
                return None;
            }
            out.extend_from_slice(content);
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::users::UserName;
    use jiff::Timestamp;

    fn user(name: &str, domain: Option<&str>) -> User {
        let n = UserName::parse(name).unwrap();
        User::new(&n, domain.map(str::to_string), Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn address_rules() {
        let a = user("alice@example.com", None);
        assert!(address_allowed("Alice@Example.com", &a, SenderCheck::Exact));
        assert!(!address_allowed("bob@example.com", &a, SenderCheck::Exact));
        assert!(address_allowed("bob@example.com", &a, SenderCheck::Domain));
        assert!(!address_allowed(
            "bob@evil.example",
            &a,
            SenderCheck::Domain
        ));
        assert!(!address_allowed("", &a, SenderCheck::Domain));
        assert!(address_allowed("", &a, SenderCheck::Off));
        // An IP user without a domain owns no address.
        let ip = user("192.0.2.7", None);
        assert!(!address_allowed("x@any.example", &ip, SenderCheck::Exact));
        assert!(!address_allowed("x@any.example", &ip, SenderCheck::Domain));
        assert!(address_allowed("x@any.example", &ip, SenderCheck::Off));
        assert!(no_identity(&ip, SenderCheck::Domain, "x").is_some());
        let ipd = user("192.0.2.0/24", Some("example.com"));
        assert!(address_allowed("x@example.com", &ipd, SenderCheck::Exact));
        assert!(!address_allowed(
            "x@other.example",
            &ipd,
            SenderCheck::Domain
        ));
        // IDN: U-label and A-label spellings are the same domain.
        let b = user("bob@xn--bcher-kva.example", None);
        assert!(address_allowed(
            "bob@BÜCHER.example",
            &b,
            SenderCheck::Exact
        ));
        assert!(address_allowed(
            "jö@bücher.example",
            &b,
            SenderCheck::Domain
        ));
        assert!(!address_allowed(
            "bob@bucher.example",
            &b,
            SenderCheck::Exact
        ));
        let ipu = user("192.0.2.0/24", Some("xn--bcher-kva.example"));
        assert!(address_allowed(
            "x@bücher.example",
            &ipu,
            SenderCheck::Domain
        ));
    }

    #[test]
    fn header_rules() {
        let a = user("alice@example.com", None);
        let check = |m: &str, c| check_headers(m.as_bytes(), &a, c);
        let ok = "From: Alice <alice@example.com>\r\nSubject: x\r\n\r\nbody\r\n";
        assert_eq!(check(ok, SenderCheck::Exact), Ok(()));
        let two = "From: alice@example.com, Boss <ceo@evil.example>\r\n\r\nx\r\n";
        assert!(
            check(two, SenderCheck::Domain)
                .unwrap_err()
                .contains("ceo@evil.example")
        );
        let group = "From: team: bob@example.com, eve@evil.example;\r\n\r\nx\r\n";
        assert!(check(group, SenderCheck::Domain).is_err());
        let sender = "From: alice@example.com\r\nSender: ceo@evil.example\r\n\r\nx\r\n";
        assert!(
            check(sender, SenderCheck::Domain)
                .unwrap_err()
                .starts_with("Sender")
        );
        let second = "From: alice@example.com\r\nFrom: x@evil.example\r\n\r\n";
        assert!(check(second, SenderCheck::Domain).is_err());
        let empty = "From: undisclosed\r\n\r\nx\r\n";
        assert!(check(empty, SenderCheck::Domain).is_err());
        assert_eq!(
            check("Subject: no from\r\n\r\nx\r\n", SenderCheck::Exact),
            Ok(())
        );
        assert_eq!(check(two, SenderCheck::Off), Ok(()));
        // A From header far down a long header section is still found.
        let pad = "X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n".repeat(3000);
        let late = format!("{pad}From: x@evil.example\r\n\r\n");
        assert!(check(&late, SenderCheck::Domain).is_err());
        let fine = format!("{pad}From: a@example.com\r\n\r\nx");
        assert_eq!(check(&fine, SenderCheck::Domain), Ok(()));
        // Folded, and with space before the colon (obsolete syntax).
        let folded = "From : Alice\r\n <ceo@evil.example>\r\n\r\n";
        assert!(check(folded, SenderCheck::Domain).is_err());
        // A From field too long to check is refused, not skipped.
        let many = " b@example.com,\r\n".repeat(2000);
        let huge = format!("From: a@example.com,\r\n{many} c@example.com\r\n\r\n");
        assert!(check(&huge, SenderCheck::Domain).is_err());
        // The body is not taken for headers.
        let in_body = "Subject: s\r\n\r\nFrom: x@evil.example\r\n";
        assert_eq!(check(in_body, SenderCheck::Domain), Ok(()));
    }
}
