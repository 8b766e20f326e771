//! Notices to the admin address: a user was locked or unlocked. They are
//! queued like any message, from the null sender (so a failed notice never
//! bounces), and delivered by the delivery side.

use jiff::Timestamp;
use mail_builder::MessageBuilder;
use mail_builder::headers::HeaderType;
use mail_builder::headers::address::Address;
use mail_builder::headers::raw::Raw;
use mail_builder::headers::text::Text;

use crate::delivery::controls_as_spaces;
use crate::store::{QueueEntry, Recipient, Store, StoreError};
use mail_builder::headers::date::Date;

/// The subject: control characters (CR/LF from a login name, say) as
/// spaces; plain ASCII as it is, folded at spaces if long (mail-builder's
/// Text would RFC 2047-encode a long one), anything else encoded.
fn subject_field(subject: &str) -> HeaderType<'static> {
    let clean = controls_as_spaces(subject).into_owned();
    if clean.is_ascii() {
        Raw::new(clean).into()
    } else {
        Text::new(clean).into()
    }
}

/// The notice's message: plain text, UTF-8 as quoted-printable when it is
/// not ASCII, a subject with anything unusual RFC 2047-encoded.
fn notice(
    id: u64,
    hostname: &str,
    admin: &str,
    subject: &str,
    text: &str,
    now: Timestamp,
) -> Vec<u8> {
    let hostname = controls_as_spaces(hostname);
    // The body's lines end in CRLF; no other control is left in it.
    let body: String = text
        .replace("\r\n", "\n")
        .chars()
        .map(|c| match c {
            '\n' | '\t' => c,
            c if c.is_control() => ' ',
            c => c,
        })
        .collect();
    let mut out = Vec::new();
    MessageBuilder::new()
        .from(Address::new_address(
            Some("Outguard"),
            format!("postmaster@{hostname}"),
        ))
        .to(Address::new_address(
            None::<&str>,
            controls_as_spaces(admin),
        ))
        .header("Subject", subject_field(subject))
        .date(Date::new(now.as_second()))
        .message_id(format!("notice-{id:016x}@{hostname}"))
        .header("Auto-Submitted", Raw::new("auto-generated"))
        .header("MIME-Version", Raw::new("1.0"))
        .text_body(body.replace('\n', "\r\n"))
        .serialize(&mut out);
    out
}

/// Queues a notice to `admin` under queue id `id`.
pub fn queue_notice(
    store: &Store,
    id: u64,
    hostname: &str,
    admin: &str,
    subject: &str,
    text: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    let body = notice(id, hostname, admin, subject, text, now);
    let entry = QueueEntry {
        id,
        user: String::new(),
        sender: String::new(),
        recipients: vec![Recipient::new(admin.to_string())],
        size: body.len() as u64,
        received: now,
        client_ip: String::new(),
        helo: String::new(),
        next_attempt: Some(now),
        delay_warned: false,
        dsn: Default::default(),
        // A UTF-8 admin address needs SMTPUTF8 on the way out.
        smtputf8: !admin.is_ascii(),
    };
    store.enqueue(&entry, &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::{MessageParser, MimeHeaders};

    #[test]
    fn queued_notice_parses_with_its_fields() {
        let dir = std::env::temp_dir().join(format!("og-notice-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir.join("store.redb")).unwrap();
        let now: Timestamp = "2030-01-01T00:05:00Z".parse().unwrap();
        // A login name is the attacker's text: CR/LF in it stays in the subject.
        let subject = "Outguard: logins to x\r\nBcc: victim@example.net under attack";
        let text = "The outgoing user j\u{f6}rg@example.com was locked.\n\nReasons:\n- spam\n";
        queue_notice(
            &store,
            7,
            "gw.example.com",
            "admin@example.com",
            subject,
            text,
            now,
        )
        .unwrap();

        let entry = store.queue_entry(7).unwrap().unwrap();
        assert_eq!(entry.sender, "");
        assert_eq!(entry.recipients[0].address, "admin@example.com");
        assert!(!entry.smtputf8);
        let raw = store.queue_body(7).unwrap().unwrap();
        assert_eq!(entry.size, raw.len() as u64);
        assert!(raw.is_ascii(), "UTF-8 text goes quoted-printable");
        let lf = raw.iter().filter(|&&b| b == b'\n').count();
        let crlf = raw.windows(2).filter(|w| w == b"\r\n").count();
        assert_eq!(lf, crlf, "every line ends in CRLF");

        let m = MessageParser::default().parse(&raw).unwrap();
        let from = m.from().and_then(|a| a.first()).unwrap();
        assert_eq!(
            (from.name(), from.address()),
            (Some("Outguard"), Some("postmaster@gw.example.com"))
        );
        let to = m.to().and_then(|a| a.first()).unwrap();
        assert_eq!(to.address(), Some("admin@example.com"));
        assert!(m.header_raw("Bcc").is_none());
        assert!(m.subject().unwrap().starts_with("Outguard: logins to x"));
        assert!(m.subject().unwrap().ends_with("under attack"));
        assert_eq!(
            m.header_raw("Date").map(str::trim),
            Some(crate::clock::mail_date(now).as_str())
        );
        assert_eq!(
            m.message_id(),
            Some("notice-0000000000000007@gw.example.com")
        );
        assert_eq!(
            m.header_raw("Auto-Submitted").map(str::trim),
            Some("auto-generated")
        );
        let ct = m.content_type().unwrap();
        assert_eq!((ct.ctype(), ct.subtype()), ("text", Some("plain")));
        assert_eq!(ct.attribute("charset"), Some("utf-8"));
        assert_eq!(
            m.body_text(0).as_deref(),
            Some(text.replace('\n', "\r\n").as_str())
        );

        // A long ASCII subject is folded, not encoded; a UTF-8 one encoded.
        let long = format!("Outguard: message from {}@example.com held", "x".repeat(70));
        queue_notice(&store, 9, "gw", "admin@example.com", &long, "t\n", now).unwrap();
        let raw = store.queue_body(9).unwrap().unwrap();
        assert!(raw.starts_with(b"From:") && !raw.windows(2).any(|w| w == b"=?"));
        let m = MessageParser::default().parse(&raw).unwrap();
        assert_eq!(m.subject(), Some(long.as_str()));
        let utf8 = "Outguard: j\u{f6}rg@example.com locked";
        queue_notice(&store, 10, "gw", "admin@example.com", utf8, "t\n", now).unwrap();
        let raw = store.queue_body(10).unwrap().unwrap();
        assert!(raw.is_ascii());
        let m = MessageParser::default().parse(&raw).unwrap();
        assert_eq!(m.subject(), Some(utf8));

        // Controls from outside (a host name, an address) never reach the
        // header as they are: mail-builder 1.0 would write them raw.
        queue_notice(
            &store,
            11,
            "gw\r\nX-Host: 1\x0b\x1b",
            "ad\x07min@example.com\x7f",
            "s\x00\x1b[2J",
            "line\r\x0b\x1b end\n",
            now,
        )
        .unwrap();
        let raw = store.queue_body(11).unwrap().unwrap();
        let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let header = String::from_utf8(raw[..end].to_vec()).unwrap();
        assert!(!header.replace("\r\n", "").chars().any(char::is_control));
        let m = MessageParser::default().parse(&raw).unwrap();
        assert!(m.header_raw("X-Host").is_none());
        assert_eq!(m.body_text(0).as_deref(), Some("line    end\r\n"));

        // A UTF-8 admin address makes the notice need SMTPUTF8.
        queue_notice(&store, 8, "gw", "r\u{e9}my@example.com", "s", "t\n", now).unwrap();
        assert!(store.queue_entry(8).unwrap().unwrap().smtputf8);
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
