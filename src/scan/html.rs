//! Minimal, allocation-light HTML reader: visible text, links (href + anchor
//! text) and image count. Tolerant of broken markup. Its work is linear in
//! the input: every step is charged to the scan's [`Budget`] (one unit per
//! byte passed over, plus the element-name lookup), which stops it at the
//! scan's work limit or deadline.

use super::{Budget, ScanError};

/// Distinct element names recorded: real mail uses a few dozen. (Every
/// name was once looked up in a list of all earlier ones, so thousands of
/// made-up names were quadratic; now a set holds them, bounded.)
pub const MAX_ELEMENTS: usize = 64;

#[derive(Debug, Default, Clone)]
pub struct Link {
    pub href: String,
    pub text: String,
}

#[derive(Debug, Default, Clone)]
pub struct HtmlText {
    pub text: String,
    pub links: Vec<Link>,
    pub images: usize,
    /// Distinct element names used (lower case, opening tags only).
    pub elements: Vec<String>,
}

/// Reads `html` without a budget (tools and tests).
pub fn parse(html: &str) -> HtmlText {
    parse_within(html, &mut Budget::unlimited()).unwrap_or_default()
}

/// Reads `html`, charging its work to `budget`.
pub fn parse_within(html: &str, budget: &mut Budget) -> Result<HtmlText, ScanError> {
    let mut out = HtmlText::default();
    let bytes = html.as_bytes();
    let mut i = 0;
    let mut charged = 0;
    let mut seen = std::collections::HashSet::new();
    // (href, start of anchor text in out.text)
    let mut open_link: Option<(String, usize)> = None;
    while i < bytes.len() {
        // Each step passes over bytes[charged..i] once (searches included).
        budget.charge_work((i - charged) as u64 + 1)?;
        charged = i;
        if bytes[i] != b'<' {
            let next = html[i..].find('<').map_or(html.len(), |p| i + p);
            decode_entities(&html[i..next], &mut out.text);
            i = next;
            continue;
        }
        if html[i..].starts_with("<!--") {
            i = html[i..].find("-->").map_or(html.len(), |p| i + p + 3);
            continue;
        }
        let Some(end) = html[i..].find('>').map(|p| i + p) else {
            break;
        };
        let tag = &html[i + 1..end];
        i = end + 1;
        let closing = tag.starts_with('/');
        let tag_body = tag.trim_start_matches('/');
        let name_end = tag_body
            .find(|c: char| c.is_whitespace() || c == '/')
            .unwrap_or(tag_body.len());
        let name = tag_body[..name_end].to_ascii_lowercase();
        if !closing
            && !name.is_empty()
            && name.len() <= 10
            && out.elements.len() < MAX_ELEMENTS
            && name.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            budget.charge_work(1)?;
            if seen.insert(name.clone()) {
                out.elements.push(name.clone());
            }
        }
        match name.as_str() {
            "script" | "style" if !closing => {
                let close = format!("</{name}");
                i = find_ignore_case(&bytes[i..], close.as_bytes()).map_or(html.len(), |p| i + p);
            }
            "a" if !closing => {
                budget.charge_work(open_link.as_ref().map_or(0, |l| out.text.len() - l.1) as u64)?;
                finish_link(&mut out, open_link.take());
                if let Some(href) = attribute(tag_body, "href") {
                    let mut decoded = String::new();
                    decode_entities(href, &mut decoded);
                    open_link = Some((decoded, out.text.len()));
                }
            }
            "a" => {
                budget.charge_work(open_link.as_ref().map_or(0, |l| out.text.len() - l.1) as u64)?;
                finish_link(&mut out, open_link.take());
            }
            "img" => out.images += 1,
            "br" | "p" | "div" | "tr" | "td" | "th" | "li" | "h1" | "h2" | "h3" | "h4" | "h5"
            | "h6" | "table" | "title" | "blockquote" => out.text.push(' '),
            _ => {}
        }
    }
    budget.charge_work((html.len().max(charged) - charged) as u64)?;
    finish_link(&mut out, open_link.take());
    Ok(out)
}

/// Case-insensitive search without copying the haystack (a copy per
/// `<script>` tag would make many tags quadratic).
fn find_ignore_case(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

fn finish_link(out: &mut HtmlText, link: Option<(String, usize)>) {
    if let Some((href, start)) = link {
        let text = out.text.get(start..).unwrap_or("").trim().to_string();
        out.links.push(Link { href, text });
    }
}

/// Value of attribute `name` in a tag body such as `a href="x" class=y`.
fn attribute<'t>(tag: &'t str, name: &str) -> Option<&'t str> {
    let lower = tag.to_ascii_lowercase();
    let mut from = 0;
    while let Some(p) = lower[from..].find(name) {
        let start = from + p;
        from = start + name.len();
        let preceded_ok = start > 0 && lower.as_bytes()[start - 1].is_ascii_whitespace();
        let rest = lower[from..].trim_start();
        if !preceded_ok || !rest.starts_with('=') {
            continue;
        }
        let value_start = tag.len() - rest.len() + 1;
        let value = tag[value_start..].trim_start();
        return Some(match value.chars().next() {
            Some(q @ ('"' | '\'')) => {
                let v = &value[1..];
                &v[..v.find(q).unwrap_or(v.len())]
            }
            _ => &value[..value.find(char::is_whitespace).unwrap_or(value.len())],
        });
    }
    None
}

fn decode_entities(s: &str, out: &mut String) {
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let semi = rest.bytes().take(12).position(|b| b == b';');
        let decoded = semi.and_then(|semi| {
            let ent = &rest[1..semi];
            let c = match ent {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some(' '),
                _ => ent.strip_prefix('#').and_then(|num| {
                    let n = match num.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok(),
                        None => num.parse().ok(),
                    };
                    n.and_then(char::from_u32)
                }),
            };
            c.map(|c| (c, semi))
        });
        match decoded {
            Some((c, semi)) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_links_images() {
        let h = parse(
            "<html><head><style>p{color:red}</style><script>var a='<b>';</script></head>\
             <body><p>Hello&nbsp;&amp; welcome</p><!-- hidden -->\
             <a class=x HREF=\"http://evil.example/login\">http://bank.example</a>\
             <img src=x.png><a href='http://ok.example'>ok</body>",
        );
        assert!(h.text.contains("Hello & welcome"), "{}", h.text);
        assert!(!h.text.contains("color"));
        assert!(!h.text.contains("hidden"));
        assert_eq!(h.images, 1);
        assert_eq!(h.links.len(), 2);
        assert_eq!(h.links[0].href, "http://evil.example/login");
        assert_eq!(h.links[0].text, "http://bank.example");
        assert_eq!(h.links[1].text, "ok");
    }

    /// Work charged for reading `html`.
    fn work(html: &str) -> u64 {
        let mut budget = Budget::unlimited();
        parse_within(html, &mut budget).expect("no limit");
        budget.work()
    }

    /// `n` tags with distinct made-up names (`<t0>x`, `<t1>x`, ...).
    fn distinct_tags(n: usize) -> String {
        (0..n).map(|k| format!("<t{k:x}>x")).collect()
    }

    #[test]
    fn many_script_tags_stay_linear() {
        let one = work(&"<script>x</script>".repeat(5_000));
        let four = work(&"<script>x</script>".repeat(20_000));
        assert!(four <= 4 * one + 64, "{one} -> {four}");
    }

    #[test]
    fn distinct_tag_names_stay_linear() {
        // 256 KiB of distinct names was ~2.5 s of CPU: every name was
        // looked up in a list of all the names before it.
        let small = distinct_tags(8_000);
        let big = distinct_tags(32_000);
        let (ws, wb) = (work(&small), work(&big));
        assert!(wb as f64 <= 4.5 * ws as f64, "{ws} -> {wb}");
        assert!(
            wb <= 4 * big.len() as u64,
            "{wb} units for {} bytes",
            big.len()
        );
        let h = parse(&big);
        assert_eq!(h.elements.len(), MAX_ELEMENTS);
        assert_eq!(h.text.matches('x').count(), 32_000);
    }

    #[test]
    fn budget_stops_the_reader() {
        let limits = super::super::Limits {
            max_work: 10_000,
            ..Default::default()
        };
        let mut budget = Budget::new(&limits);
        let r = parse_within(&distinct_tags(32_000), &mut budget);
        assert_eq!(r.err(), Some(ScanError::WorkExceeded { limit: 10_000 }));
        let mut late = Budget::unlimited().until(Some(std::time::Instant::now()));
        let r = parse_within(&"<p>x</p>".repeat(100_000), &mut late);
        assert_eq!(r.err(), Some(ScanError::DeadlinePassed));
    }

    #[test]
    fn broken_markup_does_not_panic() {
        for s in ["<", "<a href=", "&#xffffffff;", "<a href='x>", "é<é>&é;"] {
            let _ = parse(s);
        }
    }
}
