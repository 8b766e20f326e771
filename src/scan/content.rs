//! Text view of a message shared by the rules and the tokenizer: plain-text
//! parts, rendered HTML parts and every URL, each part truncated so that
//! huge bodies cost bounded CPU (spam signals live near the top anyway).

use super::html::{self, HtmlText};
use super::mime::{Body, Document};
use super::tokenize::without_list_footer;
use super::{Budget, ScanError, urls};

/// Bytes of each text part that are analysed.
pub const TEXT_SCAN_LIMIT: usize = 256 * 1024;
/// Bytes of text analysed over all parts of a message, so that a thousand
/// parts cannot make the rules and the tokenizer read a thousand times
/// [`TEXT_SCAN_LIMIT`].
pub const TEXT_TOTAL_LIMIT: usize = 2 * 1024 * 1024;

#[derive(Debug, Default)]
pub struct Content<'d> {
    pub plain: Vec<&'d str>,
    pub html: Vec<HtmlText>,
    /// URLs from plain text and HTML (links and URLs in visible text).
    pub urls: Vec<String>,
}

impl<'d> Content<'d> {
    /// The content view without a budget (tools and tests).
    pub fn new(doc: &'d Document<'_>) -> Self {
        Self::within(doc, &mut Budget::unlimited()).unwrap_or_default()
    }

    /// The content view, charging the HTML reader's work to `budget`.
    pub fn within(doc: &'d Document<'_>, budget: &mut Budget) -> Result<Self, ScanError> {
        let mut c = Content::default();
        let mut left = TEXT_TOTAL_LIMIT;
        for part in &doc.parts {
            let text = match &part.body {
                Body::Text(t) | Body::Html(t) => truncate(t, left),
                Body::Binary(_) => continue,
            };
            left -= text.len();
            match &part.body {
                Body::Html(_) => c.html.push(html::parse_within(text, budget)?),
                _ => c.plain.push(text),
            }
        }
        // A mailing list's footer is not the sender's (tokenize.rs).
        for text in &c.plain {
            let text = without_list_footer(text);
            c.urls
                .extend(urls::find_urls(text).into_iter().map(str::to_string));
        }
        for h in &c.html {
            c.urls.extend(h.links.iter().map(|l| l.href.clone()));
            c.urls.extend(
                urls::find_urls(without_list_footer(&h.text))
                    .into_iter()
                    .map(str::to_string),
            );
        }
        Ok(c)
    }

    /// Bytes of text in the view (plain parts and rendered HTML).
    pub fn text_len(&self) -> usize {
        self.texts().map(str::len).sum()
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

/// The first `TEXT_SCAN_LIMIT` (at most `left`) bytes of `s`.
fn truncate(s: &str, left: usize) -> &str {
    let limit = TEXT_SCAN_LIMIT.min(left);
    if s.len() <= limit {
        return s;
    }
    let mut end = limit;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
