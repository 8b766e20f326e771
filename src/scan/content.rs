//! Text view of a message shared by the rules and the tokenizer: plain-text
//! parts, rendered HTML parts and every URL, each part truncated so that
//! huge bodies cost bounded CPU (spam signals live near the top anyway).

use super::html::{self, HtmlText};
use super::mime::{Body, Document};
use super::urls;

/// Bytes of each text part that are analysed.
pub const TEXT_SCAN_LIMIT: usize = 256 * 1024;

#[derive(Debug, Default)]
pub struct Content<'d> {
    pub plain: Vec<&'d str>,
    pub html: Vec<HtmlText>,
    /// URLs from plain text and HTML (links and URLs in visible text).
    pub urls: Vec<String>,
}

impl<'d> Content<'d> {
    pub fn new(doc: &'d Document<'_>) -> Self {
        let mut c = Content::default();
        for part in &doc.parts {
            match &part.body {
                Body::Text(t) => c.plain.push(truncate(t)),
                Body::Html(t) => c.html.push(html::parse(truncate(t))),
                Body::Binary(_) => {}
            }
        }
        for text in &c.plain {
            c.urls
                .extend(urls::find_urls(text).into_iter().map(str::to_string));
        }
        for h in &c.html {
            c.urls.extend(h.links.iter().map(|l| l.href.clone()));
            c.urls
                .extend(urls::find_urls(&h.text).into_iter().map(str::to_string));
        }
        c
    }

    /// All human-visible text: plain parts and rendered HTML.
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        self.plain
            .iter()
            .copied()
            .chain(self.html.iter().map(|h| h.text.as_str()))
    }

    pub fn url_hosts(&self) -> impl Iterator<Item = String> + '_ {
        self.urls.iter().filter_map(|u| urls::host(u))
    }
}

fn truncate(s: &str) -> &str {
    if s.len() <= TEXT_SCAN_LIMIT {
        return s;
    }
    let mut end = TEXT_SCAN_LIMIT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
