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
    emit(match doc.recipients {
        0 => "rcpt:0",
        1 => "rcpt:1",
        2..=5 => "rcpt:2-5",
        _ => "rcpt:6+",
    });

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

    // Whether the links point at the sender's own site: a newsletter links
    // to its publisher, spam mostly to somewhere else.
    if !content.urls.is_empty() {
        let sender = doc.from_address.map(|a| {
            let d = a.rsplit('@').next().unwrap_or("").to_ascii_lowercase();
            urls::registrable_domain(&d).to_string()
        });
        let own = content
            .url_hosts()
            .filter(|h| sender.as_deref() == Some(urls::registrable_domain(h)))
            .count();
        emit(if own == 0 {
            "links-to-sender:none"
        } else if own == content.urls.len() {
            "links-to-sender:all"
        } else if own * 2 >= content.urls.len() {
            "links-to-sender:most"
        } else {
            "links-to-sender:some"
        });
    }
    bulk_mail_tokens(doc, content, &mut emit);
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
    let mut word = String::new();
    for text in content.texts() {
        let text = without_list_footer(text);
        // Most texts are ASCII: then no word needs the script check.
        let ascii = text.is_ascii();
        for raw in words_of(text) {
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
            if !ascii && !w.is_ascii() && w.chars().any(|c| no_space_script(c).is_some()) {
                no_space_tokens(w, &mut word, &mut emit);
                continue;
            }
            let chars = w.chars().count();
            if chars > MAX_WORD {
                let first = w.chars().next().unwrap_or('?');
                let v = format!("{first} {}", chars / 10 * 10);
                prefixed("skip:", &v, &mut emit);
            } else if chars >= MIN_WORD {
                normalise_word(w, &mut word);
                emit(&word);
            }
        }
    }
}

/// The `script:` token of a writing system that does not separate words
/// with spaces (Han, kana, Thai, Lao, Khmer, Myanmar); `None` for every
/// other character.
fn no_space_script(c: char) -> Option<&'static str> {
    Some(match u32::from(c) {
        0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F => "script:han",
        0x3040..=0x309F => "script:hiragana",
        0x30A0..=0x30FF | 0x31F0..=0x31FF | 0xFF66..=0xFF9F => "script:katakana",
        0x0E00..=0x0E7F => "script:thai",
        0x0E80..=0x0EFF => "script:lao",
        0x1780..=0x17FF => "script:khmer",
        0x1000..=0x109F => "script:myanmar",
        _ => return None,
    })
}

/// A whitespace-separated "word" holding text of a script written without
/// spaces (a whole Chinese or Japanese sentence): its characters of such
/// scripts give one `script:` token per script (`script:han`), not a
/// `skip:` length token named after its first character (a token that
/// training mostly never saw, so the text was no evidence at all and the
/// message was scored by its few other, mostly ham-like tokens); runs of
/// other characters in it are words as usual. Character bigrams were
/// tried too and did worse (docs/SCANNING.md).
fn no_space_tokens(w: &str, word: &mut String, emit: &mut impl FnMut(&str)) {
    let mut other_start: Option<usize> = None;
    let mut flush_other = |seg: &str, emit: &mut dyn FnMut(&str)| {
        let seg = trim_word(seg);
        if (MIN_WORD..=MAX_WORD).contains(&seg.chars().count()) {
            normalise_word(seg, word);
            emit(word);
        }
    };
    let mut last_script = "";
    for (i, c) in w.char_indices() {
        match no_space_script(c) {
            Some(script) => {
                if let Some(start) = other_start.take() {
                    flush_other(&w[start..i], emit);
                }
                if script != last_script {
                    emit(script);
                    last_script = script;
                }
            }
            // Ideographic space and punctuation, full-width forms: they
            // separate, as spaces and punctuation do in other scripts.
            None if matches!(u32::from(c), 0x3000..=0x303F | 0xFF00..=0xFF65) => {
                if let Some(start) = other_start.take() {
                    flush_other(&w[start..i], emit);
                }
            }
            None => {
                if other_start.is_none() {
                    other_start = Some(i);
                }
            }
        }
    }
    if let Some(start) = other_start {
        flush_other(&w[start..], emit);
    }
}

/// `text.split_whitespace()`: the same words, split byte by byte when the
/// text is ASCII without a vertical tab (the one ASCII character that
/// `char::is_whitespace` counts and `u8::is_ascii_whitespace` does not).
pub fn words_of(text: &str) -> impl Iterator<Item = &str> {
    let ascii = text.is_ascii() && memchr::memchr(0x0b, text.as_bytes()).is_none();
    let (fast, other) = if ascii {
        (Some(text.split_ascii_whitespace()), None)
    } else {
        (None, Some(text.split_whitespace()))
    };
    fast.into_iter()
        .flatten()
        .chain(other.into_iter().flatten())
}

fn sender_domain(doc: &Document<'_>) -> Option<String> {
    doc.from_address.map(|a| {
        let d = a.rsplit('@').next().unwrap_or("").to_ascii_lowercase();
        urls::registrable_domain(&d).to_string()
    })
}

/// Marks of legitimate bulk mail: where its unsubscribe link points
/// (`unsub:sender` when a link whose address or text says unsubscribe /
/// remove / opt out goes to the sender's own registrable domain, else
/// `unsub:elsewhere`; a newsletter's goes to its publisher, a spammer's
/// to some other site), and a List-Unsubscribe field that the sender's
/// own bulk software set (`list-unsubscribe-field`; a mailing-list server
/// adds it together with List-Id or List-Post, which are not the sender's,
/// so then it is not counted).
fn bulk_mail_tokens(doc: &Document<'_>, content: &Content<'_>, emit: &mut impl FnMut(&str)) {
    let sender = sender_domain(doc);
    let says_unsubscribe = |s: &str| {
        let l = s.to_ascii_lowercase();
        ["unsub", "remove", "opt-out", "optout", "opt out"]
            .iter()
            .any(|k| l.contains(k))
    };
    let mut hosts: Vec<Option<String>> = Vec::new();
    for h in &content.html {
        for l in h
            .links
            .iter()
            .filter(|l| says_unsubscribe(&l.href) || says_unsubscribe(&l.text))
        {
            hosts.push(if l.href.to_ascii_lowercase().starts_with("mailto:") {
                l.href.rsplit_once('@').map(|(_, d)| {
                    d.split(['?', '>'])
                        .next()
                        .unwrap_or("")
                        .to_ascii_lowercase()
                })
            } else {
                urls::host(&l.href)
            });
        }
    }
    hosts.extend(
        content
            .urls
            .iter()
            .filter(|u| says_unsubscribe(u))
            .map(|u| urls::host(u)),
    );
    if !hosts.is_empty() {
        let at_sender = hosts
            .iter()
            .flatten()
            .any(|h| sender.as_deref() == Some(urls::registrable_domain(h)));
        emit(if at_sender {
            "unsub:sender"
        } else {
            "unsub:elsewhere"
        });
    }
    let has = |name: &str| doc.header_names.iter().any(|h| h == name);
    if has("list-unsubscribe") && !has("list-id") && !has("list-post") && !has("x-mailing-list") {
        emit("list-unsubscribe-field");
    }
}

/// Lower-cases a word and writes every digit as `9`: "2002", "07/10" or
/// "v1.4" then say "a year", "a date", "a version" rather than which one,
/// so the model cannot learn the corpus's dates and serial numbers.
fn normalise_word(w: &str, out: &mut String) {
    out.clear();
    if w.is_ascii() {
        // The common case, byte by byte (the same as the loop below).
        out.extend(w.bytes().map(|b| {
            char::from(if b.is_ascii_digit() {
                b'9'
            } else {
                b.to_ascii_lowercase()
            })
        }));
        return;
    }
    for c in w.chars() {
        if c.is_ascii_digit() {
            out.push('9');
        } else {
            out.extend(c.to_lowercase());
        }
    }
}

/// A text without the footer a mailing list appends ("____ / Foo mailing
/// list / foo@lists.example.org / https://.../listinfo/foo", Yahoo! Groups'
/// sponsor and unsubscribe block): the list adds it on the way, so it says
/// where the corpus was collected, not what the sender wrote. Cut at the
/// last separator line (20+ `_` or `-`) that a list marker follows within a
/// few lines.
pub fn without_list_footer(text: &str) -> &str {
    const MARKERS: &[&str] = &[
        "mailing list",
        "listinfo",
        "yahoo! groups",
        "to unsubscribe from this group",
        "unsubscribe:",
    ];
    let mut cut = text.len();
    let mut offset = 0;
    let mut separators = Vec::new();
    for line in text.split_inclusive('\n') {
        let t = line.trim();
        if t.len() >= 20 && (t.bytes().all(|b| b == b'_') || t.bytes().all(|b| b == b'-')) {
            separators.push(offset);
        }
        offset += line.len();
    }
    for &start in separators.iter().rev() {
        let window: String = text[start..]
            .lines()
            .skip(1)
            .take(6)
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        if MARKERS.iter().any(|m| window.contains(m)) {
            cut = start;
            break;
        }
    }
    &text[..cut]
}

/// Strips the punctuation around a word: `.,;:!?"'()[]{}<>*-_=+|~`#`
/// (a `match`, not a search of that string for every character).
fn trim_word(w: &str) -> &str {
    w.trim_matches(|c: char| {
        matches!(
            c,
            '.' | ','
                | ';'
                | ':'
                | '!'
                | '?'
                | '"'
                | '\''
                | '('
                | ')'
                | '['
                | ']'
                | '{'
                | '}'
                | '<'
                | '>'
                | '*'
                | '-'
                | '_'
                | '='
                | '+'
                | '|'
                | '~'
                | '`'
                | '#'
        )
    })
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
            "links-to-sender:none",
        ] {
            assert!(t.iter().any(|x| x == want), "{want} missing from {t:?}");
        }
        assert!(!t.iter().any(|x| x == "at"), "short words dropped");
    }

    #[test]
    fn url_pieces_and_no_sender_software_tokens() {
        let t = tokens(
            "From: a1@example.com\r\nTo: Bob <b@example.org>\r\nMessage-ID: <1.2@x>\r\n\
             Date: Mon, 2 Sep 2002 10:00:00 -0500\r\nX-Mailer: Mutt/1.4i\r\n\
             Content-Type: text/plain; charset=\"us-ascii\"\r\n\r\n\
             see http://example.com/cgi-bin/remove.pl?id=123\r\n",
        );
        for want in [
            "url:has-query",
            "url-path:cgi",
            "url-path:remove",
            "links-to-sender:all",
        ] {
            assert!(t.iter().any(|x| x == want), "{want} missing from {t:?}");
        }
        assert!(!t.iter().any(|x| x == "url-path:123"), "numbers dropped");
        // Which program wrote the mail (bulk newsletters and spam share
        // them) is not evidence of spam.
        for prefix in ["msgid", "date", "mailer", "to-shape", "header:", "html:"] {
            assert!(
                !t.iter().any(|x| x.starts_with(prefix)),
                "{prefix} in {t:?}"
            );
        }
    }

    #[test]
    fn scripts_without_spaces_give_script_tokens() {
        let t = tokens(
            "From: a@example.com\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
             今日は、Windows版のソフトを無料で。 ภาษาไทย plain words\r\n",
        );
        for want in [
            "script:han",
            "script:hiragana",
            "script:katakana",
            "script:thai",
            "windows",
            "plain",
            "words",
        ] {
            assert!(t.iter().any(|x| x == want), "{want} missing from {t:?}");
        }
        assert!(!t.iter().any(|x| x.starts_with("skip:")), "{t:?}");
    }

    #[test]
    fn bulk_mail_marks() {
        let newsletter = tokens(
            "From: News <news@mail.shop.example.com>\r\nList-Unsubscribe: <https://shop.example.com/u>\r\n\
             Content-Type: text/html\r\n\r\n<p>Deals. <a href=\"https://www.shop.example.com/prefs?id=9\">\
             Unsubscribe</a></p>",
        );
        for want in ["unsub:sender", "list-unsubscribe-field"] {
            assert!(
                newsletter.iter().any(|x| x == want),
                "{want} missing from {newsletter:?}"
            );
        }
        // A list server adds List-Unsubscribe with List-Id: not the sender's.
        let spam = tokens(
            "From: a@example.org\r\nList-Unsubscribe: <mailto:x@lists.example.net>\r\n\
             List-Id: <talk.lists.example.net>\r\n\r\nBuy now. To be removed: \
             http://other.example.net/remove.cgi\r\n",
        );
        assert!(spam.iter().any(|x| x == "unsub:elsewhere"), "{spam:?}");
        assert!(
            !spam
                .iter()
                .any(|x| x == "list-unsubscribe-field" || x == "unsub:sender")
        );
        let plain = tokens("From: a@example.org\r\n\r\nSee you at lunch.\r\n");
        assert!(!plain.iter().any(|x| x.starts_with("unsub:")), "{plain:?}");
    }

    #[test]
    fn digits_are_normalised() {
        let t = tokens("Subject: x\r\n\r\nBack on 07/10/2002 with v1.4 for $250.\r\n");
        for want in ["99/99/9999", "v9.9", "$999"] {
            assert!(t.iter().any(|x| x == want), "{want} missing from {t:?}");
        }
        assert!(!t.iter().any(|x| x.contains("2002")), "{t:?}");
    }

    #[test]
    fn mailing_list_footer_is_dropped() {
        let body = "Hi all, the patch works.\n\n\
                    _______________________________________________\n\
                    Exmh-users mailing list\n\
                    Exmh-users@redhat.com\n\
                    https://listman.redhat.com/mailman/listinfo/exmh-users\n";
        assert_eq!(without_list_footer(body), "Hi all, the patch works.\n\n");
        let t = tokens(&format!("Subject: x\r\n\r\n{body}"));
        assert!(t.iter().any(|x| x == "patch"), "{t:?}");
        assert!(
            !t.iter().any(|x| x.contains("listinfo") || x == "mailing"),
            "{t:?}"
        );
        // A separator with no list marker after it is the sender's own.
        let own = "Offer\n--------------------------\nCall now: 555\n";
        assert_eq!(without_list_footer(own), own);
    }

    #[test]
    fn trim_word_strips_the_listed_punctuation() {
        let set = ".,;:!?\"'()[]{}<>*-_=+|~`#";
        for c in (0..=0x250).filter_map(char::from_u32) {
            let w = format!("{c}{c}word{c}");
            let want = w.trim_matches(|x: char| set.contains(x));
            assert_eq!(trim_word(&w), want, "{c:?}");
        }
    }

    #[test]
    fn words_of_is_split_whitespace() {
        for t in [
            "plain words\tand\r\nlines  ",
            "vertical\x0btab\x0cform feed",
            "non-ASCII\u{a0}space\u{3000}here é",
            "",
            "   ",
            "\x1cinfo\x1fseparators",
            "\u{85}next\u{2028}line\u{2029}para\u{202f}\u{205f}\u{1680}x\u{180e}y",
            "ΣΑΣ\u{2000}λ\u{200a}\u{200b}zero-width",
            " é ",
        ] {
            let want: Vec<&str> = t.split_whitespace().collect();
            assert_eq!(words_of(t).collect::<Vec<_>>(), want, "{t:?}");
        }
    }

    #[test]
    fn hash_is_stable() {
        // Shipped models depend on this exact function.
        assert_eq!(hash(""), 0x811c_9dc5);
        assert_eq!(hash("a"), 0xe40c_292c);
    }
}
