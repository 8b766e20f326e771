//! Internationalised mail (SMTPUTF8, RFC 6530-6532): which messages need
//! the extension on the next hop, and domain comparison across the two
//! spellings of an IDN (U-label `bücher.example`, A-label
//! `xn--bcher-kva.example`).

/// A domain in the form in which two spellings compare equal: A-labels,
/// lower case, no trailing dot. `None` if it is no valid IDN.
pub fn ascii_domain(domain: &str) -> Option<String> {
    let d = domain.strip_suffix('.').unwrap_or(domain);
    idna::domain_to_ascii_strict(d)
        .ok()
        .filter(|a| !a.is_empty())
}

/// Are these the same domain? Falls back to ASCII case folding for names
/// IDNA refuses (they are compared as written).
pub fn same_domain(a: &str, b: &str) -> bool {
    match (ascii_domain(a), ascii_domain(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a
            .trim_end_matches('.')
            .eq_ignore_ascii_case(b.trim_end_matches('.')),
    }
}

/// The header section of a message (everything up to the blank line).
fn header_section(message: &[u8]) -> &[u8] {
    memchr::memmem::find(message, b"\r\n\r\n").map_or(message, |i| &message[..i + 2])
}

/// What about a message needs SMTPUTF8 from the next hop, if anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Everything is ASCII: it goes as plain SMTP.
    Nothing,
    /// A non-ASCII envelope address (RFC 6531 3.2: status 5.6.7).
    Addresses,
    /// ASCII addresses, UTF-8 header fields (RFC 6532; status 5.6.9).
    Headers,
}

/// Whether a message with this envelope needs SMTPUTF8. A body in 8-bit
/// is 8BITMIME's business, not this.
pub fn needs<'a>(
    sender: &str,
    recipients: impl IntoIterator<Item = &'a str>,
    message: &[u8],
) -> Needs {
    if !sender.is_ascii() || recipients.into_iter().any(|r| !r.is_ascii()) {
        Needs::Addresses
    } else if !header_section(message).is_ascii() {
        Needs::Headers
    } else {
        Needs::Nothing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idn_spellings_compare_equal() {
        assert!(same_domain("bücher.example", "xn--bcher-kva.example"));
        assert!(same_domain("BÜCHER.example.", "xn--bcher-kva.EXAMPLE"));
        assert!(same_domain("Example.com", "example.COM."));
        assert!(!same_domain("bücher.example", "bucher.example"));
        assert_eq!(
            ascii_domain("münchen.example").as_deref(),
            Some("xn--mnchen-3ya.example")
        );
        assert_eq!(ascii_domain("bad domain.example"), None);
    }

    #[test]
    fn what_needs_smtputf8() {
        let ascii = b"Subject: hi\r\n\r\ncaf\xc3\xa9\r\n";
        let utf8 = "Subject: caf\u{e9}\r\n\r\nbody\r\n".as_bytes();
        assert_eq!(needs("a@b.example", ["c@d.example"], ascii), Needs::Nothing);
        assert_eq!(needs("a@b.example", ["c@d.example"], utf8), Needs::Headers);
        assert_eq!(
            needs("a@b.example", ["j\u{f6}rg@d.example"], ascii),
            Needs::Addresses
        );
        assert_eq!(needs("\u{e9}@b.example", [], utf8), Needs::Addresses);
    }
}
