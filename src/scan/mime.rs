//! Bounded walk over a parsed message: flattens every leaf part (including
//! those of attached `message/rfc822` messages) into a [`Document`] while
//! enforcing the part-count, nesting and decoded-size limits.

use std::borrow::Cow;

use mail_parser::{Message, MessagePart, MimeHeaders, PartType};

use super::{Budget, Limits, ScanError};

/// Decoded body of a leaf part.
#[derive(Debug, Clone)]
pub enum Body<'m> {
    Text(Cow<'m, str>),
    Html(Cow<'m, str>),
    Binary(&'m [u8]),
}

impl Body<'_> {
    pub fn bytes(&self) -> &[u8] {
        match self {
            Body::Text(t) | Body::Html(t) => t.as_bytes(),
            Body::Binary(b) => b,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Part<'m> {
    /// File name from Content-Disposition `filename` or Content-Type `name`.
    pub name: Option<&'m str>,
    /// Lower-case `type/subtype`.
    pub content_type: String,
    /// Content-Type `charset` parameter.
    pub charset: Option<&'m str>,
    /// Content-Transfer-Encoding as written (not lower-cased).
    pub transfer_encoding: Option<&'m str>,
    pub body: Body<'m>,
    /// 0 for parts of the top-level message, +1 per attached message.
    pub message_depth: usize,
}

/// The parts of a message that the scanners look at.
#[derive(Debug, Clone, Default)]
pub struct Document<'m> {
    pub subject: Option<&'m str>,
    pub from_name: Option<&'m str>,
    pub from_address: Option<&'m str>,
    pub reply_to_address: Option<&'m str>,
    pub has_date: bool,
    pub has_message_id: bool,
    /// Raw Message-ID, Date, To and Content-Type fields as the sender's
    /// program wrote them.
    pub message_id_raw: Option<&'m str>,
    pub date_raw: Option<&'m str>,
    pub to_raw: Option<&'m str>,
    pub content_type_raw: Option<&'m str>,
    /// X-Mailer or User-Agent.
    pub mailer: Option<&'m str>,
    /// Addresses in To and Cc.
    pub recipients: usize,
    /// Lower-case names of the top-level header fields, in order.
    pub header_names: Vec<String>,
    pub parts: Vec<Part<'m>>,
}

impl<'m> Document<'m> {
    /// Flattens `parsed` (or, when the parser found no headers, the raw bytes
    /// as one text part).
    pub fn extract(
        parsed: Option<&'m Message<'m>>,
        raw: &'m [u8],
        limits: &Limits,
        budget: &mut Budget,
    ) -> Result<Self, ScanError> {
        let Some(msg) = parsed else {
            budget.charge_bytes(raw.len() as u64)?;
            return Ok(Document {
                parts: vec![Part {
                    name: None,
                    content_type: "text/plain".into(),
                    charset: None,
                    transfer_encoding: None,
                    body: Body::Text(String::from_utf8_lossy(raw)),
                    message_depth: 0,
                }],
                ..Default::default()
            });
        };
        let from = msg.from().and_then(|a| a.first());
        let mut doc = Document {
            subject: msg.subject(),
            from_name: from.and_then(|a| a.name()),
            from_address: from.and_then(|a| a.address()),
            reply_to_address: msg
                .reply_to()
                .and_then(|a| a.first())
                .and_then(|a| a.address()),
            has_date: msg.header("Date").is_some(),
            has_message_id: msg.message_id().is_some(),
            message_id_raw: msg.header_raw("Message-ID"),
            date_raw: msg.header_raw("Date"),
            to_raw: msg.header_raw("To"),
            content_type_raw: msg.header_raw("Content-Type"),
            mailer: msg
                .header("X-Mailer")
                .or_else(|| msg.header("User-Agent"))
                .and_then(|v| v.as_text()),
            recipients: msg.to().map_or(0, |a| a.iter().count())
                + msg.cc().map_or(0, |a| a.iter().count()),
            header_names: msg
                .headers()
                .iter()
                .map(|h| h.name().to_ascii_lowercase())
                .collect(),
            parts: Vec::new(),
        };
        let mut walker = Walker {
            limits,
            budget,
            parts_seen: 0,
        };
        walker.walk(msg, 0, 0, &mut doc.parts)?;
        Ok(doc)
    }

    pub fn text_parts(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match &p.body {
            Body::Text(t) => Some(t.as_ref()),
            _ => None,
        })
    }

    pub fn html_parts(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match &p.body {
            Body::Html(t) => Some(t.as_ref()),
            _ => None,
        })
    }
}

/// Parses a message after a cheap pre-check ([`precheck`]).
pub fn parse<'r>(raw: &'r [u8], limits: &Limits) -> Result<Option<Message<'r>>, ScanError> {
    precheck(raw, limits)?;
    Ok(mail_parser::MessageParser::default().parse(raw))
}

/// Cheap upper bound on the number of parts, checked before parsing so that
/// a 100k-part message is refused without building its part tree: every
/// MIME part that can add structure (multipart, attached message) carries a
/// Content-Type header. Parts without one are counted after parsing.
pub fn precheck(raw: &[u8], limits: &Limits) -> Result<(), ScanError> {
    let mut count = 0usize;
    let needle = b"content-type:";
    let mut line_start = true;
    for (i, &b) in raw.iter().enumerate() {
        if line_start
            && (b == b'c' || b == b'C')
            && raw.len() - i >= needle.len()
            && raw[i..i + needle.len()].eq_ignore_ascii_case(needle)
        {
            count += 1;
            if count > limits.max_parts {
                return Err(ScanError::TooManyParts {
                    limit: limits.max_parts,
                });
            }
        }
        line_start = b == b'\n';
    }
    Ok(())
}

struct Walker<'l> {
    limits: &'l Limits,
    budget: &'l mut Budget,
    parts_seen: usize,
}

impl Walker<'_> {
    fn walk<'m>(
        &mut self,
        msg: &'m Message<'m>,
        depth: usize,
        message_depth: usize,
        out: &mut Vec<Part<'m>>,
    ) -> Result<(), ScanError> {
        if msg.parts.is_empty() {
            return Ok(());
        }
        // Explicit stack: multipart trees can be deep and we must not recurse
        // on attacker-controlled structure beyond `max_depth`.
        let mut stack: Vec<(u32, usize)> = vec![(0, depth)];
        while let Some((id, d)) = stack.pop() {
            if d > self.limits.max_depth {
                return Err(ScanError::NestingTooDeep {
                    limit: self.limits.max_depth,
                });
            }
            self.parts_seen += 1;
            self.budget.charge_work(1)?;
            if self.parts_seen > self.limits.max_parts {
                return Err(ScanError::TooManyParts {
                    limit: self.limits.max_parts,
                });
            }
            let Some(part) = msg.parts.get(id as usize) else {
                continue;
            };
            match &part.body {
                PartType::Multipart(children) => {
                    stack.extend(children.iter().rev().map(|&c| (c, d + 1)));
                }
                PartType::Message(nested) => {
                    self.walk(nested, d + 1, message_depth + 1, out)?;
                }
                PartType::Text(t) => {
                    self.leaf(part, Body::Text(Cow::Borrowed(t)), message_depth, out)?
                }
                PartType::Html(t) => {
                    self.leaf(part, Body::Html(Cow::Borrowed(t)), message_depth, out)?
                }
                PartType::Binary(b) | PartType::InlineBinary(b) => {
                    self.leaf(part, Body::Binary(b), message_depth, out)?
                }
            }
        }
        Ok(())
    }

    fn leaf<'m>(
        &mut self,
        part: &'m MessagePart<'m>,
        body: Body<'m>,
        message_depth: usize,
        out: &mut Vec<Part<'m>>,
    ) -> Result<(), ScanError> {
        self.budget.charge_bytes(body.bytes().len() as u64)?;
        let content_type = part
            .content_type()
            .map(|ct| match ct.subtype() {
                Some(sub) => format!("{}/{}", ct.ctype(), sub).to_ascii_lowercase(),
                None => ct.ctype().to_ascii_lowercase(),
            })
            .unwrap_or_else(|| "text/plain".into());
        out.push(Part {
            name: part.attachment_name(),
            content_type,
            charset: part.content_type().and_then(|ct| ct.attribute("charset")),
            transfer_encoding: part.content_transfer_encoding(),
            body,
            message_depth,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extract(raw: &[u8], limits: &Limits) -> Result<usize, ScanError> {
        // Parses without the pre-check so these tests exercise the walk.
        let mut budget = Budget::new(limits);
        let parsed = mail_parser::MessageParser::default().parse(raw);
        Document::extract(parsed.as_ref(), raw, limits, &mut budget).map(|d| d.parts.len())
    }

    fn multipart(n: usize) -> Vec<u8> {
        let mut m = String::from(
            "From: a@example.com\r\nSubject: x\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n",
        );
        for i in 0..n {
            m.push_str(&format!(
                "--b\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n"
            ));
        }
        m.push_str("--b--\r\n");
        m.into_bytes()
    }

    #[test]
    fn flattens_multipart() {
        assert_eq!(extract(&multipart(3), &Limits::default()), Ok(3));
    }

    #[test]
    fn precheck_counts_content_type_lines() {
        let limits = Limits {
            max_parts: 3,
            ..Limits::default()
        };
        assert!(precheck(&multipart(2), &limits).is_ok());
        assert!(matches!(
            precheck(&multipart(3), &limits),
            Err(ScanError::TooManyParts { .. })
        ));
    }

    #[test]
    fn part_limit_is_enforced_after_parsing_too() {
        let limits = Limits {
            max_parts: 5,
            ..Limits::default()
        };
        // 4 leaf parts + the container = 5 parts; 5 leaves = 6.
        assert_eq!(extract(&multipart(4), &limits), Ok(4));
        assert!(matches!(
            extract(&multipart(5), &limits),
            Err(ScanError::TooManyParts { .. })
        ));
    }

    #[test]
    fn nesting_limit() {
        let limits = Limits {
            max_depth: 3,
            ..Limits::default()
        };
        let mut m = String::from("From: a@example.com\r\n");
        for i in 0..6 {
            m.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n"
            ));
        }
        m.push_str("Content-Type: text/plain\r\n\r\nhello\r\n");
        assert!(matches!(
            extract(m.as_bytes(), &limits),
            Err(ScanError::NestingTooDeep { .. })
        ));
    }

    #[test]
    fn headerless_input_becomes_text() {
        assert_eq!(extract(b"\r\n\r\njust text", &Limits::default()), Ok(1));
    }

    #[test]
    fn decoded_budget() {
        let limits = Limits {
            max_decoded_bytes: 10,
            ..Limits::default()
        };
        let m = b"From: a@example.com\r\nSubject: x\r\n\r\nthis body is longer than ten bytes\r\n";
        assert!(matches!(
            extract(m, &limits),
            Err(ScanError::DecodedBytesExceeded { .. })
        ));
    }
}
