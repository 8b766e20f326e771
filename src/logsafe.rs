//! Log lines carry text from clients (EHLO names, addresses, AUTH user
//! names, attachment names in scan reasons, next-hop replies). A CR or LF
//! in such text would end the line and let the client write a line of its
//! own. Every field value of every event is therefore passed through `Esc`
//! on its way into the text log and the admin log ring (a formatter for
//! the whole log rather than a call at each site, so a new field cannot
//! forget it); the JSON format escapes as JSON does, one line per event.

use std::fmt::{self, Write};

/// Longest field value written; the rest is cut and marked.
pub const MAX_FIELD: usize = 1024;

/// Shows text with control characters (and the escape character `\`)
/// as `\xNN`, other non-ASCII as `\u{...}`, at most `MAX_FIELD` chars.
pub struct Esc<'a>(pub &'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.0.chars().enumerate() {
            if i == MAX_FIELD {
                return f.write_str("...");
            }
            match c {
                '\\' => f.write_str("\\\\")?,
                ' '..='~' => f.write_char(c)?,
                c if (c as u32) < 0x80 => write!(f, "\\x{:02x}", c as u32)?,
                c => write!(f, "\\u{{{:x}}}", c as u32)?,
            }
        }
        Ok(())
    }
}

/// The text log's field formatter: `name=value` pairs, the message
/// without its name, every value escaped.
pub fn fields() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> + 'static {
    use tracing_subscriber::field::MakeExt;
    tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
        let text = format!("{value:?}");
        if field.name() == "message" {
            write!(w, "{}", Esc(&text))
        } else {
            write!(w, "{}={}", field.name(), Esc(&text))
        }
    })
    .delimited(" ")
}

/// An event's fields as one escaped text, for the layers that format an
/// event themselves (the admin log ring, remote syslog): ` message` and
/// ` name=value`, each value escaped, appended to the string it holds.
pub struct Fields(pub String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            let _ = write!(self.0, " {}", Esc(&text));
        } else {
            let _ = write!(self.0, " {}={}", field.name(), Esc(&text));
        }
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            let _ = write!(self.0, " {}", Esc(value));
        } else {
            let _ = write!(self.0, " {}={}", field.name(), Esc(&format!("{value:?}")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_and_bounds_length() {
        assert_eq!(Esc("a.pdf").to_string(), "a.pdf");
        assert_eq!(
            Esc("x.pdf\r\n2026 INFO forged").to_string(),
            "x.pdf\\x0d\\x0a2026 INFO forged"
        );
        assert_eq!(
            Esc("tab\there\u{1b}[31m").to_string(),
            "tab\\x09here\\x1b[31m"
        );
        assert_eq!(Esc("caf\u{e9}\u{2028}").to_string(), "caf\\u{e9}\\u{2028}");
        assert_eq!(Esc("a\\x0a").to_string(), "a\\\\x0a");
        let long = Esc(&"y".repeat(5000)).to_string();
        assert_eq!(long.len(), MAX_FIELD + 3);
    }
}
