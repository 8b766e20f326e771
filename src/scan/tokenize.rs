//! Turns a message into classifier tokens: words of the visible text,
//! selected header fields (prefixed so "free" in a subject differs from
//! "free" in the body), URL hosts and path pieces, MIME structure and the
//! shapes of sender-written header fields. Tokens are hashed to
//! 32 bits so the model stays compact.

use super::content::Content;
use super::mime::Document;
use super::urls;

/// Words longer than this become a `skip:` token (SpamBayes does the same:
/// long strings are mostly encoded junk whose exact value never repeats).
const MAX_WORD: usize = 12;
const MIN_WORD: usize = 3;

const SENDER_HEADERS: &[&str] = &[
    "reply-to",
    "cc",
    "in-reply-to",
    "references",
    "organization",
    "x-priority",
    "x-msmail-priority",
    "importance",
    "x-mimeole",
    "mime-version",
    "x-accept-language",
    "disposition-notification-to",
    "content-transfer-encoding",
];

/// FNV-1a, 32 bits: fast, stable across platforms and releases.
pub fn hash(token: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in token.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Sorted, de-duplicated token hashes of a message.
pub fn tokenize(doc: &Document<'_>, content: &Content<'_>) -> Vec<u32> {
    let mut out = Vec::new();
    for_each_token(doc, content, |t| out.push(hash(t)));
    out.sort_unstable();
    out.dedup();
    out
}

/// Shape of a header value: digits become 9, letters a (A upper case),
/// runs of one class collapse, so `<20020823.1A2B@x.com>` -> `<9.9A9A@a.a>`.
fn shape(v: &str, max: usize) -> String {
    let mut out = String::new();
    let mut last = None;
    for c in v.trim().chars() {
        let k = if c.is_ascii_digit() {
            '9'
        } else if c.is_ascii_lowercase() {
            'a'
        } else if c.is_ascii_uppercase() {
            'A'
        } else if c.is_whitespace() {
            ' '
        } else if c.is_ascii() {
            c
        } else {
            '~'
        };
        if last != Some(k) {
            out.push(k);
            last = Some(k);
        }
        if out.len() >= max {
            break;
        }
    }
    out
}

/// Calls `emit` with every token string (duplicates included); exposed for
/// debugging and tests.
pub fn for_each_token(doc: &Document<'_>, content: &Content<'_>, mut emit: impl FnMut(&str)) {
    let mut buf = String::new();
    let mut prefixed = |prefix: &str, value: &str, emit: &mut dyn FnMut(&str)| {
        buf.clear();
        buf.push_str(prefix);
        buf.push_str(value);
        emit(&buf);
    };

    if let Some(subject) = doc.subject {
        for w in words(subject) {
            prefixed("subject:", &w, &mut emit);
        }
        if subject.contains('!') {
            emit("subject:has-bang");
        }
    }
    if let Some(name) = doc.from_name {
        for w in words(name) {
            prefixed("from-name:", &w, &mut emit);
        }
    } else {
        emit("from-name:none");
    }
    if let Some(addr) = doc.from_address {
        let domain = addr.rsplit('@').next().unwrap_or("").to_ascii_lowercase();
        prefixed("from-domain:", urls::registrable_domain(&domain), &mut emit);
    }
    if let Some(mailer) = doc.mailer {
        let first = mailer.split(['/', ' ', '(']).next().unwrap_or("");
        prefixed("mailer:", &first.to_ascii_lowercase(), &mut emit);
    }
    // Header fields written by the sender's mail program (never those added
    // in transit, which an outbound gateway does not see): bulk mailers and
    // personal mail clients differ in which they set.
    for name in &doc.header_names {
        if SENDER_HEADERS.contains(&name.as_str()) {
            prefixed("header:", name, &mut emit);
        }
    }
    emit(match doc.recipients {
        0 => "rcpt:0",
        1 => "rcpt:1",
        2..=5 => "rcpt:2-5",
        _ => "rcpt:6+",
    });

    // Shapes of fields the sending program writes: bulk-mail tools and
    // mail clients format Message-ID, Date, To, Content-Type (quoting,
    // boundary style), X-Mailer and the sender's address differently,
    // whatever the words say.
    match doc.message_id_raw {
        Some(id) => prefixed("msgid-shape:", &shape(id, 24), &mut emit),
        None => emit("msgid:none"),
    }
    match doc.date_raw {
        // The offset's sign says where the sender is, not how the mail was
        // written: fold it so the token stays about the format.
        Some(d) => prefixed("date-shape:", &shape(d, 32).replace('-', "+"), &mut emit),
        None => emit("date:none"),
    }
    if let Some(to) = doc.to_raw {
        prefixed("to-shape:", &shape(to, 12), &mut emit);
    }
    if let Some(ct) = doc.content_type_raw {
        prefixed("ct-shape:", &shape(ct, 40), &mut emit);
    }
    if let Some(mailer) = doc.mailer {
        prefixed("mailer-shape:", &shape(mailer, 40), &mut emit);
        for w in words(mailer) {
            prefixed("mailer-word:", &w, &mut emit);
        }
    }
    if let Some(addr) = doc.from_address {
        let local = addr.split('@').next().unwrap_or("");
        prefixed("from-local-shape:", &shape(local, 8), &mut emit);
    }

    for part in &doc.parts {
        prefixed("ct:", &part.content_type, &mut emit);
        if let Some(cs) = part.charset {
            prefixed("charset:", &cs.to_ascii_lowercase(), &mut emit);
        }
        if let Some(cte) = part.transfer_encoding {
            prefixed("cte:", &cte.to_ascii_lowercase(), &mut emit);
        }
        if let Some(ext) = part
            .name
            .and_then(|n| n.rsplit_once('.'))
            .map(|(_, e)| e.to_ascii_lowercase())
        {
            prefixed("attach:", &ext, &mut emit);
        }
    }

    for url in &content.urls {
        let lower = url.to_ascii_lowercase();
        emit(if lower.starts_with("https") {
            "proto:https"
        } else {
            "proto:http"
        });
        // Pieces of the path and query (`remove`, `cgi`, `unsubscribe`...).
        let rest = lower.split_once("://").map_or("", |(_, r)| r);
        let path = rest.split_once('/').map_or("", |(_, p)| p);
        if path.contains('?') {
            emit("url:has-query");
        }
        if rest.split('/').next().is_some_and(|a| a.contains('@')) {
            emit("url:userinfo");
        }
        for piece in path.split(|c: char| !c.is_ascii_alphanumeric()) {
            if (3..=MAX_WORD).contains(&piece.len()) && !piece.bytes().all(|b| b.is_ascii_digit()) {
                prefixed("url-path:", piece, &mut emit);
            }
        }
        if let Some(host) = urls::host(url) {
            if urls::is_ip_literal(&host) {
                emit("url:ip-literal");
            } else {
                prefixed("url:", &host, &mut emit);
                prefixed("url-domain:", urls::registrable_domain(&host), &mut emit);
            }
        }
    }
    for h in &content.html {
        if h.images > 0 {
            emit("html:img");
        }
        // Markup style differs between mail clients and bulk-mail tools.
        for e in &h.elements {
            prefixed("html:", e, &mut emit);
        }
    }

    for text in content.texts() {
        for raw in text.split_whitespace() {
            if raw.len() > 4 && raw.as_bytes()[..4].eq_ignore_ascii_case(b"http") {
                continue; // counted as url tokens
            }
            let w = trim_word(raw);
            if w.is_empty() {
                continue;
            }
            if let Some((_, domain)) = w.split_once('@')
                && domain.contains('.')
            {
                prefixed("email:", &domain.to_lowercase(), &mut emit);
                continue;
            }
            let chars = w.chars().count();
            if chars > MAX_WORD {
                let first = w.chars().next().unwrap_or('?');
                let v = format!("{first} {}", chars / 10 * 10);
                prefixed("skip:", &v, &mut emit);
            } else if chars >= MIN_WORD {
                prefixed("", &w.to_lowercase(), &mut emit);
            }
        }
    }
}

fn trim_word(w: &str) -> &str {
    w.trim_matches(|c: char| ".,;:!?\"'()[]{}<>*-_=+|~`#".contains(c))
}

fn words(s: &str) -> impl Iterator<Item = String> + '_ {
    s.split_whitespace()
        .map(trim_word)
        .filter(|w| !w.is_empty() && w.chars().count() <= MAX_WORD)
        .map(str::to_lowercase)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::{Budget, Limits};

    fn tokens(raw: &str) -> Vec<String> {
        let limits = Limits::default();
        let mut budget = Budget::new(&limits);
        let parsed = mail_parser::MessageParser::default().parse(raw.as_bytes());
        let doc = Document::extract(parsed.as_ref(), raw.as_bytes(), &limits, &mut budget).unwrap();
        let content = Content::new(&doc);
        let mut v = Vec::new();
        for_each_token(&doc, &content, |t| v.push(t.to_string()));
        v
    }

    #[test]
    fn header_body_url_tokens() {
        let t = tokens(
            "From: Bob Smith <bob@mail.example.org>\r\nSubject: Cheap pills!\r\n\
             Content-Type: text/html\r\n\r\n<p>Buy <b>CHEAP</b> pills at \
             <a href=\"https://shop.pills.example.com/x\">our shop</a>, \
             mail sales@pills.example.com aaaaaaaaaaaaaaaaaaaaaaaa</p>",
        );
        for want in [
            "subject:cheap",
            "subject:pills",
            "subject:has-bang",
            "from-name:bob",
            "from-domain:example.org",
            "ct:text/html",
            "proto:https",
            "url:shop.pills.example.com",
            "url-domain:example.com",
            "email:pills.example.com",
            "cheap",
            "pills",
            "skip:a 20",
            "msgid:none",
            "date:none",
            "from-local-shape:a",
        ] {
            assert!(t.iter().any(|x| x == want), "{want} missing from {t:?}");
        }
        assert!(!t.iter().any(|x| x == "at"), "short words dropped");
    }

    #[test]
    fn header_shapes() {
        assert_eq!(shape("<20020823.1A2B@x.com>", 24), "<9.9A9A@a.a>");
        assert_eq!(
            shape("Fri, 23 Aug 2002 10:24:21 +0100", 32),
            "Aa, 9 Aa 9 9:9:9 +9"
        );
        let t = tokens(
            "From: a1@example.org\r\nTo: Bob <b@example.org>\r\nMessage-ID: <1.2@x>\r\n\
             Date: Mon, 2 Sep 2002 10:00:00 -0500\r\nX-Mailer: Mutt/1.4i\r\n\
             Content-Type: text/plain; charset=\"us-ascii\"\r\n\r\n\
             see http://example.com/cgi-bin/remove.pl?id=123\r\n",
        );
        for want in [
            "msgid-shape:<9.9@a>",
            // The offset's sign is folded: "-0500" reads as "+9".
            "date-shape:Aa, 9 Aa 9 9:9:9 +9",
            "from-local-shape:a9",
            "to-shape:Aa <a@a.a>",
            "ct-shape:a/a; a=\"a-a\"",
            "mailer-shape:Aa/9.9a",
            "mailer-word:mutt/1.4i",
            "url:has-query",
            "url-path:cgi",
            "url-path:remove",
        ] {
            assert!(t.iter().any(|x| x == want), "{want} missing from {t:?}");
        }
        assert!(!t.iter().any(|x| x == "url-path:123"), "numbers dropped");
    }

    #[test]
    fn hash_is_stable() {
        // Shipped models depend on this exact function.
        assert_eq!(hash(""), 0x811c_9dc5);
        assert_eq!(hash("a"), 0xe40c_292c);
    }
}
