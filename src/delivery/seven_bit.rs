//! Making a message 7-bit for a next hop that does not announce 8BITMIME
//! (RFC 6152 section 3): every leaf MIME part whose body has 8-bit octets
//! is re-encoded as quoted-printable, its Content-Transfer-Encoding field
//! replaced; everything else stays byte for byte, so the MIME structure
//! is kept. What cannot be converted (8-bit octets in a header, in a
//! preamble, inside an attached message, or in a part that claims base64
//! or quoted-printable already) makes the conversion fail, and the caller
//! bounces with 5.6.3. mail-parser finds the parts; quoted_printable
//! encodes. Input is at most the maximum message size; the output is at
//! most about 3.1 times that.

use mail_parser::{HeaderName, MessageParser, MimeHeaders, PartType};

/// Why a message could not be made 7-bit.
#[derive(Debug, PartialEq, Eq)]
pub struct Unconvertible(pub &'static str);

impl std::fmt::Display for Unconvertible {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// Whether the message has any octet above 127.
pub fn is_eight_bit(message: &[u8]) -> bool {
    !message.is_ascii()
}

/// The 7-bit form of `message` (returned as is when it already is 7-bit).
pub fn convert(message: &[u8]) -> Result<Vec<u8>, Unconvertible> {
    if !is_eight_bit(message) {
        return Ok(message.to_vec());
    }
    let parsed = MessageParser::default()
        .parse(message)
        .ok_or(Unconvertible("the message cannot be parsed as MIME"))?;
    // Edits as (start, end, replacement), over disjoint ranges.
    let mut edits: Vec<(usize, usize, Vec<u8>)> = Vec::new();
    for part in &parsed.parts {
        let (h, b, e) = (
            part.offset_header as usize,
            part.offset_body as usize,
            part.offset_end as usize,
        );
        if h > b || b > e || e > message.len() {
            return Err(Unconvertible("the MIME structure is inconsistent"));
        }
        let cte = part
            .headers
            .iter()
            .filter(|f| f.name == HeaderName::ContentTransferEncoding)
            .map(|f| (f.offset_field as usize, f.offset_end as usize))
            .collect::<Vec<_>>();
        match &part.body {
            PartType::Text(_)
            | PartType::Html(_)
            | PartType::Binary(_)
            | PartType::InlineBinary(_) => {
                let body = &message[b..e];
                if body.is_ascii() {
                    continue;
                }
                let raw_encoding = part.content_transfer_encoding().is_none_or(|c| {
                    ["7bit", "8bit", "binary"]
                        .iter()
                        .any(|k| c.eq_ignore_ascii_case(k))
                });
                if !raw_encoding {
                    return Err(Unconvertible(
                        "a base64 or quoted-printable part has 8-bit octets",
                    ));
                }
                let mut out = header_without(message, h, b, &cte)?;
                insert_field(&mut out, b"Content-Transfer-Encoding: quoted-printable\r\n");
                out.extend_from_slice(&quoted_printable::encode(body));
                edits.push((h, e, out));
            }
            // A multipart labelled 8bit becomes 7bit (the default) once its
            // parts are converted; the field goes.
            PartType::Multipart(_) if !cte.is_empty() => {
                edits.push((h, b, header_without(message, h, b, &cte)?));
            }
            // Attached messages are left alone: 8-bit inside one fails
            // the final check below.
            _ => {}
        }
    }
    edits.sort_by_key(|(s, _, _)| *s);
    let mut out = Vec::with_capacity(message.len() + message.len() / 4);
    let mut at = 0;
    for (start, end, replacement) in edits {
        if start < at {
            return Err(Unconvertible("the MIME structure is inconsistent"));
        }
        out.extend_from_slice(&message[at..start]);
        out.extend_from_slice(&replacement);
        at = end;
    }
    out.extend_from_slice(&message[at..]);
    let root_has_mime_version = parsed
        .parts
        .first()
        .is_some_and(|p| p.headers.iter().any(|f| f.name == HeaderName::MimeVersion));
    if !root_has_mime_version {
        // Content-Transfer-Encoding means nothing without it.
        let mut with = b"MIME-Version: 1.0\r\n".to_vec();
        with.extend_from_slice(&out);
        out = with;
    }
    if !out.is_ascii() {
        let header_end = memchr::memmem::find(&out, b"\r\n\r\n").unwrap_or(out.len());
        return Err(Unconvertible(if !out[..header_end].is_ascii() {
            "a header field has 8-bit octets"
        } else {
            "8-bit octets outside a convertible MIME part"
        }));
    }
    Ok(out)
}

/// The header block `message[h..b]` without the fields at `drop`.
fn header_without(
    message: &[u8],
    h: usize,
    b: usize,
    drop: &[(usize, usize)],
) -> Result<Vec<u8>, Unconvertible> {
    let mut out = Vec::with_capacity(b - h + 48);
    let mut at = h;
    for &(start, end) in drop {
        if start < at || end > b || start > end {
            return Err(Unconvertible("the MIME structure is inconsistent"));
        }
        out.extend_from_slice(&message[at..start]);
        at = end;
    }
    out.extend_from_slice(&message[at..b]);
    Ok(out)
}

/// Puts `field` (with its CRLF) at the end of the header block `header`,
/// before the empty line that ends it.
fn insert_field(header: &mut Vec<u8>, field: &[u8]) {
    let at = if header.ends_with(b"\r\n\r\n") {
        header.len() - 2
    } else if header == b"\r\n" {
        0
    } else if header.ends_with(b"\n\n") {
        header.len() - 1
    } else {
        // No empty line (a part without header or body): make one.
        if !header.is_empty() && !header.ends_with(b"\n") {
            header.extend_from_slice(b"\r\n");
        }
        let at = header.len();
        header.extend_from_slice(b"\r\n");
        at
    };
    header.splice(at..at, field.iter().copied());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded_text(message: &[u8], index: usize) -> String {
        let m = MessageParser::default().parse(message).unwrap();
        m.body_text(index).unwrap().into_owned()
    }

    #[test]
    fn seven_bit_mail_is_unchanged() {
        let m = b"Subject: hi\r\n\r\nplain ascii\r\n";
        assert_eq!(convert(m).unwrap(), m);
    }

    #[test]
    fn single_part_8bit_becomes_quoted_printable() {
        let m = "MIME-Version: 1.0\r\nSubject: x\r\nContent-Type: text/plain; charset=utf-8\r\n\
                 Content-Transfer-Encoding: 8bit\r\n\r\nGrüße aus Köln = 100%\r\nline two \r\n"
            .as_bytes();
        let out = convert(m).unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(out.is_ascii());
        assert!(text.contains("Content-Transfer-Encoding: quoted-printable\r\n\r\n"));
        assert!(!text.contains("8bit"));
        assert!(text.contains("Gr=C3=BC=C3=9Fe aus K=C3=B6ln =3D 100%\r\n"));
        assert!(text.starts_with("MIME-Version: 1.0\r\nSubject: x\r\n"));
        assert_eq!(
            decoded_text(&out, 0),
            decoded_text(m, 0),
            "the text reads the same"
        );
    }

    #[test]
    fn multipart_keeps_structure_and_7bit_parts() {
        let m = "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\
                 Content-Transfer-Encoding: 8bit\r\n\r\npreamble\r\n--b\r\n\
                 Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
                 smörgåsbord\r\n--b\r\nContent-Type: application/octet-stream\r\n\
                 Content-Transfer-Encoding: base64\r\n\r\nAAEC\r\n--b--\r\n"
            .as_bytes();
        let out = convert(m).unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert_eq!(
            text,
            "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
             preamble\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: quoted-printable\r\n\r\nsm=C3=B6rg=C3=A5sbord\r\n--b\r\n\
             Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n\
             AAEC\r\n--b--\r\n"
        );
        assert_eq!(decoded_text(&out, 0), "smörgåsbord");
    }

    #[test]
    fn long_lines_are_wrapped_and_mime_version_added() {
        let body = "é".repeat(200);
        let m = format!("Subject: x\r\n\r\n{body}\r\n");
        let out = convert(m.as_bytes()).unwrap();
        assert!(out.starts_with(b"MIME-Version: 1.0\r\n"));
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.lines().all(|l| l.len() <= 76));
        assert_eq!(decoded_text(&out, 0).trim_end(), body);
    }

    #[test]
    fn what_cannot_be_converted_is_refused() {
        let header = "Subject: Grüße\r\n\r\nbody\r\n".as_bytes();
        assert_eq!(
            convert(header),
            Err(Unconvertible("a header field has 8-bit octets"))
        );
        let b64 = "MIME-Version: 1.0\r\nContent-Transfer-Encoding: base64\r\n\r\nä\r\n".as_bytes();
        assert!(convert(b64).is_err());
        let attached = "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
                        --b\r\nContent-Type: message/rfc822\r\n\r\nSubject: x\r\n\r\nä\r\n--b--\r\n"
            .as_bytes();
        assert!(convert(attached).is_err());
    }

    /// Mangled variants of a nested multipart (seeded, so repeatable):
    /// never a panic, and every success is 7-bit with the same parts.
    #[test]
    fn mangled_input_converts_or_is_refused_never_panics() {
        let base = "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"o\"\r\n\r\n\
                    --o\r\nContent-Type: multipart/alternative; boundary=\"i\"\r\n\r\n\
                    --i\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nh\u{e9}j\r\n\
                    --i\r\nContent-Type: text/html; charset=utf-8\r\n\
                    Content-Transfer-Encoding: 8bit\r\n\r\n<p>h\u{e9}j</p>\r\n--i--\r\n\
                    --o\r\nContent-Type: text/plain\r\n\r\nplain\r\n--o--\r\n"
            .as_bytes()
            .to_vec();
        let out = convert(&base).unwrap();
        let parts = |m: &[u8]| MessageParser::default().parse(m).unwrap().parts.len();
        assert_eq!(parts(&out), parts(&base));
        assert_eq!(decoded_text(&out, 0), "h\u{e9}j");
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..3000 {
            let mut m = base.clone();
            for _ in 0..(next() % 6) {
                if m.is_empty() {
                    break;
                }
                let at = (next() as usize) % m.len();
                match next() % 4 {
                    0 => m[at] = (next() & 0xff) as u8,
                    1 => m.insert(at, 0x80 | (next() & 0x7f) as u8),
                    2 => {
                        m.remove(at);
                    }
                    _ => m.truncate(at.max(1)),
                }
            }
            if let Ok(out) = convert(&m) {
                assert!(out.is_ascii());
                if m.is_ascii() {
                    assert_eq!(out, m);
                }
            }
        }
    }
}
