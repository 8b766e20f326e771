//! SMTP replies with enhanced status codes (RFC 2034/3463). Enhanced codes
//! are sent only to clients that said EHLO.

use std::fmt::Write;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// Enhanced status code, e.g. "5.7.1"; empty for none.
    pub enhanced: &'static str,
    pub text: String,
}

impl From<crate::submission::Answer> for Reply {
    fn from(a: crate::submission::Answer) -> Reply {
        Reply::new(a.code, a.status, a.text)
    }
}

impl Reply {
    pub fn new(code: u16, enhanced: &'static str, text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced,
            text: text.into(),
        }
    }

    /// Wire form; CR and LF in the text cannot break out of the reply.
    pub fn render(&self, esmtp: bool) -> String {
        let text: String = self
            .text
            .chars()
            .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
            .collect();
        let mut out = String::with_capacity(text.len() + 16);
        if esmtp && !self.enhanced.is_empty() {
            let _ = write!(out, "{} {} {}\r\n", self.code, self.enhanced, text);
        } else {
            let _ = write!(out, "{} {}\r\n", self.code, text);
        }
        out
    }

    pub fn is_positive(&self) -> bool {
        self.code < 400
    }
}

/// A multi-line reply (EHLO, HELP) without enhanced codes.
pub fn multiline(code: u16, lines: &[String]) -> String {
    let mut out = String::new();
    for (i, l) in lines.iter().enumerate() {
        let sep = if i + 1 == lines.len() { ' ' } else { '-' };
        let _ = write!(out, "{code}{sep}{l}\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders() {
        let r = Reply::new(550, "5.7.1", "no\r\n250 ok");
        assert_eq!(r.render(true), "550 5.7.1 no  250 ok\r\n");
        assert_eq!(r.render(false), "550 no  250 ok\r\n");
        assert_eq!(
            multiline(250, &["a".into(), "b".into()]),
            "250-a\r\n250 b\r\n"
        );
    }
}
