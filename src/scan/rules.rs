//! Heuristic rules aimed at outbound mail: a compromised account or a
//! customer sending spam tends to show link tricks, sender spoofing and
//! shouting, whatever the statistical classifier thinks of the words.

use super::content::Content;
use super::mime::Document;
use super::tokenize::words_of;
use super::urls;

/// The GTUBE test string: messages containing it are always spam.
pub const GTUBE: &str = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

#[derive(Debug, Clone, PartialEq)]
pub struct RuleHit {
    pub name: &'static str,
    pub score: f64,
    pub detail: String,
    pub forces_spam: bool,
}

fn hit(name: &'static str, score: f64, detail: impl Into<String>) -> RuleHit {
    RuleHit {
        name,
        score,
        detail: detail.into(),
        forces_spam: false,
    }
}

/// Phrases typical of bulk spam and scams. Each distinct phrase adds
/// `PHRASE_SCORE`, capped at `PHRASE_CAP`.
const SPAM_PHRASES: &[&str] = &[
    "100% free",
    "100% guaranteed",
    "risk free",
    "risk-free",
    "act now",
    "limited time offer",
    "order now",
    "click here to remove",
    "to be removed from",
    "this is not spam",
    "this is not a spam",
    "you have been selected",
    "you are a winner",
    "claim your prize",
    "work from home",
    "make money fast",
    "earn extra cash",
    "double your income",
    "no credit check",
    "viagra",
    "cialis",
    "online casino",
    "lottery winner",
    "million dollars",
    "once in a lifetime",
    "lose weight fast",
    "bulk email",
    "no obligation",
    "satisfaction guaranteed",
    "next of kin",
    "verify your account",
    "confirm your password",
    "wire transfer fee",
    "dear friend",
];
const PHRASE_SCORE: f64 = 0.5;
const PHRASE_CAP: f64 = 2.5;

pub fn evaluate(doc: &Document<'_>, content: &Content<'_>) -> Vec<RuleHit> {
    let mut hits = Vec::new();

    let gtube = |t: &str| memchr::memmem::find(t.as_bytes(), GTUBE.as_bytes()).is_some();
    if content.texts().any(gtube) || doc.subject.is_some_and(gtube) {
        hits.push(RuleHit {
            forces_spam: true,
            ..hit("GTUBE", 1000.0, "GTUBE anti-spam test string")
        });
    }

    url_rules(content, &mut hits);
    header_rules(doc, &mut hits);
    body_rules(doc, content, &mut hits);
    hits
}

fn url_rules(content: &Content<'_>, hits: &mut Vec<RuleHit>) {
    let hosts: Vec<String> = content.url_hosts().collect();
    if let Some(h) = hosts.iter().find(|h| urls::is_shortener(h)) {
        hits.push(hit(
            "URL_SHORTENER",
            1.0,
            format!("link through shortener {h}"),
        ));
    }
    if let Some(h) = hosts.iter().find(|h| urls::is_ip_literal(h)) {
        hits.push(hit(
            "URL_IP_LITERAL",
            1.5,
            format!("link to bare IP address {h}"),
        ));
    }
    'outer: for html in &content.html {
        for link in &html.links {
            let Some(href_host) = urls::host(&link.href) else {
                continue;
            };
            let Some(text_host) = displayed_host(&link.text) else {
                continue;
            };
            if urls::registrable_domain(&text_host) != urls::registrable_domain(&href_host) {
                hits.push(hit(
                    "LINK_TEXT_MISMATCH",
                    2.5,
                    format!("link text shows {text_host} but points to {href_host}"),
                ));
                break 'outer;
            }
        }
    }
}

/// Host a link's visible text claims to go to, if the text looks like a URL
/// or a bare domain name.
fn displayed_host(text: &str) -> Option<String> {
    let t = text.trim();
    if t.contains(char::is_whitespace) || t.is_empty() {
        return None;
    }
    let lower = t.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return urls::host(&lower);
    }
    let host = lower.split(['/', '?', '#']).next()?;
    let looks_like_domain = host.starts_with("www.")
        && host.matches('.').count() >= 2
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    looks_like_domain.then(|| host.to_string())
}

fn header_rules(doc: &Document<'_>, hits: &mut Vec<RuleHit>) {
    if let Some(subject) = doc.subject {
        let letters = subject.chars().filter(|c| c.is_alphabetic()).count();
        if letters >= 10 && !subject.chars().any(char::is_lowercase) {
            hits.push(hit("SUBJECT_ALL_CAPS", 1.0, "subject is all capitals"));
        }
        let bangs = subject.matches('!').count();
        if bangs >= 2 {
            hits.push(hit(
                "SUBJECT_EXCLAMATION",
                1.0,
                format!("{bangs} exclamation marks in subject"),
            ));
        }
    }
    if !doc.has_date {
        hits.push(hit("MISSING_DATE", 0.3, "no Date header"));
    }
    if !doc.has_message_id {
        hits.push(hit("MISSING_MESSAGE_ID", 0.3, "no Message-ID header"));
    }
    if let (Some(name), Some(addr)) = (doc.from_name, doc.from_address)
        && let Some(claimed) = address_in_text(name)
    {
        let actual = addr.rsplit('@').next().unwrap_or("").to_ascii_lowercase();
        let claimed_domain = claimed.rsplit('@').next().unwrap_or("");
        if urls::registrable_domain(claimed_domain) != urls::registrable_domain(&actual) {
            hits.push(hit(
                "FROM_NAME_SPOOFS_ADDRESS",
                2.5,
                format!("display name shows {claimed} but sender is {addr}"),
            ));
        }
    }
}

/// First e-mail-address-like word of a display name, lower-cased.
fn address_in_text(text: &str) -> Option<String> {
    text.split(|c: char| c.is_whitespace() || "<>()\"'[],;".contains(c))
        .find(|w| {
            let mut it = w.splitn(2, '@');
            matches!((it.next(), it.next()), (Some(l), Some(d)) if !l.is_empty() && d.contains('.'))
        })
        .map(str::to_ascii_lowercase)
}

fn body_rules(doc: &Document<'_>, content: &Content<'_>, hits: &mut Vec<RuleHit>) {
    // Non-overlapping, as `str::matches` counts them.
    let runs: usize = content
        .texts()
        .map(|t| memchr::memmem::find_iter(t.as_bytes(), b"!!!").count())
        .sum();
    if runs >= 3 {
        hits.push(hit(
            "BODY_EXCLAMATION",
            0.5,
            format!("{runs} runs of '!!!' in body"),
        ));
    }

    if content.plain.is_empty() && !content.html.is_empty() {
        let visible: usize = content
            .html
            .iter()
            .map(|h| words_of(&h.text).map(str::len).sum::<usize>())
            .sum();
        let images: usize = content.html.iter().map(|h| h.images).sum();
        let links: usize = content.html.iter().map(|h| h.links.len()).sum();
        if visible < 100 && (images > 0 || links > 0) {
            hits.push(hit(
                "HTML_ONLY_TINY_TEXT",
                1.5,
                format!("HTML-only body with {visible} characters of text"),
            ));
        }
    }

    // The phrases are searched in the lower-cased subject and text.
    let mut text = Vec::with_capacity(content.text_len() + 256);
    if let Some(s) = doc.subject {
        push_lowercase(&mut text, s);
        text.push(b'\n');
    }
    for t in content.texts() {
        // Collapse whitespace so phrases split across lines still match.
        push_words_lowercase(&mut text, t);
    }
    let found = phrases_in(&text);
    if !found.is_empty() {
        let score = (found.len() as f64 * PHRASE_SCORE).min(PHRASE_CAP);
        hits.push(hit(
            "SPAM_PHRASES",
            score,
            format!("spam phrases: {}", found.join(", ")),
        ));
    }
}

/// Appends `s.to_lowercase()` to `out`, without a String when `s` is
/// ASCII (then the two are the same: ASCII lower-casing is all
/// `to_lowercase` does to it).
fn push_lowercase(out: &mut Vec<u8>, s: &str) {
    if s.is_ascii() {
        out.extend(s.bytes().map(|b| b.to_ascii_lowercase()));
    } else {
        out.extend_from_slice(s.to_lowercase().as_bytes());
    }
}

/// Appends each word of `t` (`split_whitespace`), lower-cased as
/// [`push_lowercase`] does, followed by one space. An ASCII text is done
/// in one pass over its bytes: its whitespace characters are exactly
/// `' '` and `'\t'..='\r'` (`char::is_whitespace`).
fn push_words_lowercase(out: &mut Vec<u8>, t: &str) {
    if !t.is_ascii() {
        for w in words_of(t) {
            push_lowercase(out, w);
            out.push(b' ');
        }
        return;
    }
    let mut in_word = false;
    for b in t.bytes() {
        if matches!(b, b' ' | b'\t'..=b'\r') {
            if in_word {
                out.push(b' ');
                in_word = false;
            }
        } else {
            out.push(b.to_ascii_lowercase());
            in_word = true;
        }
    }
    if in_word {
        out.push(b' ');
    }
}

/// For each byte, the [`SPAM_PHRASES`] that start with it (bit `k` for
/// phrase `k`).
const PHRASE_STARTS: [u64; 256] = {
    assert!(SPAM_PHRASES.len() <= 64);
    let mut table = [0u64; 256];
    let mut k = 0;
    while k < SPAM_PHRASES.len() {
        table[SPAM_PHRASES[k].as_bytes()[0] as usize] |= 1 << k;
        k += 1;
    }
    table
};

/// The [`SPAM_PHRASES`] that occur in `text` (UTF-8), in their list
/// order: the same as filtering the list with `str::contains`, in one pass
/// over the text instead of one per phrase (the phrases are ASCII, so a
/// byte match is a `str` match). A candidate's second byte is compared
/// before the whole phrase.
fn phrases_in(bytes: &[u8]) -> Vec<&'static str> {
    let mut found = 0u64;
    for (i, &b) in bytes.iter().enumerate() {
        let mut candidates = PHRASE_STARTS[usize::from(b)] & !found;
        while candidates != 0 {
            let k = candidates.trailing_zeros() as usize;
            candidates &= candidates - 1;
            let phrase = SPAM_PHRASES[k].as_bytes();
            if bytes.get(i + 1) == phrase.get(1) && bytes[i..].starts_with(phrase) {
                found |= 1 << k;
            }
        }
    }
    SPAM_PHRASES
        .iter()
        .enumerate()
        .filter(|&(k, _)| found & (1 << k) != 0)
        .map(|(_, p)| *p)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::{Budget, Limits};

    fn rules_for(raw: &str) -> Vec<&'static str> {
        let limits = Limits::default();
        let mut budget = Budget::new(&limits);
        let parsed = mail_parser::MessageParser::default().parse(raw.as_bytes());
        let doc = Document::extract(parsed.as_ref(), raw.as_bytes(), &limits, &mut budget).unwrap();
        let content = Content::new(&doc);
        evaluate(&doc, &content)
            .into_iter()
            .map(|h| h.name)
            .collect()
    }

    const HEAD: &str = "Date: Mon, 2 Sep 2024 10:00:00 +0000\r\nMessage-ID: <1@example.com>\r\n";

    #[test]
    fn plain_message_hits_nothing() {
        let m = format!(
            "{HEAD}From: Alice <alice@example.com>\r\nSubject: Lunch tomorrow?\r\n\r\nShall we meet at noon? See https://example.com/menu\r\n"
        );
        assert!(rules_for(&m).is_empty(), "{:?}", rules_for(&m));
    }

    #[test]
    fn header_tricks() {
        let m = "From: \"support@paypal.com\" <x@evil.example>\r\nSubject: YOU HAVE WON A PRIZE!!\r\n\r\nhi\r\n";
        let r = rules_for(m);
        for name in [
            "FROM_NAME_SPOOFS_ADDRESS",
            "SUBJECT_ALL_CAPS",
            "SUBJECT_EXCLAMATION",
            "MISSING_DATE",
            "MISSING_MESSAGE_ID",
        ] {
            assert!(r.contains(&name), "{name} missing from {r:?}");
        }
    }

    #[test]
    fn link_tricks() {
        let m = format!(
            "{HEAD}From: a@example.com\r\nSubject: hi\r\nContent-Type: text/html\r\n\r\n\
             <a href=\"http://login.evil.example/x\">https://www.mybank.com/login</a>\
             <a href=\"http://bit.ly/abc\">here</a> <a href=\"http://192.0.2.7/\">x</a>\r\n"
        );
        let r = rules_for(&m);
        for name in [
            "LINK_TEXT_MISMATCH",
            "URL_SHORTENER",
            "URL_IP_LITERAL",
            "HTML_ONLY_TINY_TEXT",
        ] {
            assert!(r.contains(&name), "{name} missing from {r:?}");
        }
    }

    #[test]
    fn same_site_link_is_fine() {
        let m = format!(
            "{HEAD}From: a@example.com\r\nSubject: hi\r\nContent-Type: text/html\r\n\r\n\
             <p>Our new catalogue is online, with many products for the whole family. Prices are unchanged from last year, and delivery is free for orders placed before Friday.</p>\
             <a href=\"https://shop.example.com/x\">www.example.com</a>\r\n"
        );
        assert!(rules_for(&m).is_empty(), "{:?}", rules_for(&m));
    }

    #[test]
    fn phrases_in_matches_contains() {
        let texts = [
            "act now! 100% free, risk-free and risk free. viagra",
            "xviagrax dear friendship: order nowhere; you are a winner",
            "nothing here at all",
            "",
            "ünïcödé once in a lifetime ção million dollars",
        ];
        for t in texts {
            let want: Vec<&str> = SPAM_PHRASES
                .iter()
                .copied()
                .filter(|p| t.contains(p))
                .collect();
            assert_eq!(phrases_in(t.as_bytes()), want, "{t}");
        }
        for t in ["!!", "!!!", "!!!!!", "!!!!!!", "a!!! b !!!!!!!!c"] {
            let got = memchr::memmem::find_iter(t.as_bytes(), b"!!!").count();
            assert_eq!(got, t.matches("!!!").count(), "{t}");
        }
        // The words of a text, lower-cased, each followed by a space.
        for t in [
            "  Act\tNOW\r\n\x0bor\x0c never ",
            "ÖDYSSEUS ΣΑΣ Abc\u{a0}x\u{3000}y",
            "",
            " \n ",
            "a",
        ] {
            let want: String = t
                .split_whitespace()
                .map(|w| w.to_lowercase() + " ")
                .collect();
            let mut got = Vec::new();
            push_words_lowercase(&mut got, t);
            assert_eq!(String::from_utf8(got).unwrap(), want, "{t:?}");
        }
    }

    #[test]
    fn gtube_and_phrases() {
        let m = format!(
            "{HEAD}From: a@example.com\r\nSubject: test\r\n\r\n{GTUBE}\r\nAct now, this is\r\nnot spam!\r\n"
        );
        let r = rules_for(&m);
        assert!(r.contains(&"GTUBE"));
        assert!(r.contains(&"SPAM_PHRASES"));
    }
}
