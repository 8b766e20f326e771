//! URL extraction and host classification shared by the rules and the
//! tokenizer.

/// Hosts of well-known URL shorteners, which hide the real destination.
const SHORTENERS: &[&str] = &[
    "bit.ly",
    "tinyurl.com",
    "goo.gl",
    "t.co",
    "ow.ly",
    "is.gd",
    "buff.ly",
    "rebrand.ly",
    "cutt.ly",
    "shorturl.at",
    "tiny.cc",
    "rb.gy",
    "t.ly",
    "bl.ink",
    "s.id",
    "v.gd",
    "soo.gd",
    "clck.ru",
    "shorte.st",
    "adf.ly",
    "bitly.com",
    "tr.im",
    "qr.ae",
    "lnkd.in",
    "u.to",
];

/// Finds `http://` and `https://` URLs in free text.
pub fn find_urls(text: &str) -> Vec<&str> {
    let lower = text.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(pos) = lower[from..].find("http") {
        let start = from + pos;
        let rest = &lower[start..];
        let scheme_len = if rest.starts_with("http://") {
            7
        } else if rest.starts_with("https://") {
            8
        } else {
            from = start + 4;
            continue;
        };
        let end = text[start..]
            .find(|c: char| c.is_whitespace() || "\"'<>()[]{}|\\^`".contains(c) || !c.is_ascii())
            .map_or(text.len(), |e| start + e);
        if end > start + scheme_len {
            out.push(&text[start..end]);
        }
        from = end.max(start + scheme_len);
    }
    out
}

/// Lower-case host of an absolute http(s) URL, without userinfo or port.
pub fn host(url: &str) -> Option<String> {
    let lower = url.trim().to_ascii_lowercase();
    let rest = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let hostport = authority.rsplit('@').next()?;
    let host = if let Some(v6) = hostport.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        hostport.split(':').next()?
    };
    let host = host.trim_end_matches('.');
    (!host.is_empty()).then(|| host.to_string())
}

/// Host written as an IP address (IPv4 dotted quad, IPv6, or a bare
/// decimal/hex number that browsers accept as IPv4).
pub fn is_ip_literal(host: &str) -> bool {
    host.parse::<std::net::IpAddr>().is_ok()
        || (host.len() >= 8 && host.bytes().all(|b| b.is_ascii_digit()))
        || (host.starts_with("0x")
            && host.len() > 2
            && host[2..].bytes().all(|b| b.is_ascii_hexdigit()))
}

pub fn is_shortener(host: &str) -> bool {
    let host = host.strip_prefix("www.").unwrap_or(host);
    SHORTENERS.contains(&host)
}

/// Approximate registrable domain (last two labels, three under common
/// two-level public suffixes such as co.uk).
pub fn registrable_domain(host: &str) -> &str {
    let labels: Vec<&str> = host.rsplit('.').collect();
    let keep = if labels.len() >= 3
        && labels[0].len() == 2
        && ["co", "com", "org", "net", "ac", "gov", "edu", "ne", "or"].contains(&labels[1])
    {
        3
    } else {
        2
    };
    if labels.len() <= keep {
        return host;
    }
    let cut: usize = labels[..keep].iter().map(|l| l.len() + 1).sum::<usize>() - 1;
    &host[host.len() - cut..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_urls() {
        let t = "see http://example.com/a?b=1, and (HTTPS://Bit.ly/x) or httpfoo";
        assert_eq!(
            find_urls(t),
            vec!["http://example.com/a?b=1,", "HTTPS://Bit.ly/x"]
        );
    }

    #[test]
    fn hosts() {
        assert_eq!(
            host("http://user@Example.COM:8080/x").as_deref(),
            Some("example.com")
        );
        assert_eq!(host("https://[::1]/").as_deref(), Some("::1"));
        assert_eq!(host("ftp://x"), None);
        assert!(is_ip_literal("192.168.1.1"));
        assert!(is_ip_literal("3232235777"));
        assert!(!is_ip_literal("example.com"));
        assert!(is_shortener("bit.ly"));
        assert_eq!(registrable_domain("mail.example.co.uk"), "example.co.uk");
        assert_eq!(registrable_domain("a.b.example.com"), "example.com");
        assert_eq!(registrable_domain("example.com"), "example.com");
    }
}
