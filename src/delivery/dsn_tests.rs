//! Tests of `dsn` (a child module in its own file, so that dsn.rs stays
//! short): the exact text of a report, and the report parsed back with
//! mail-parser.

use super::*;
use crate::store::RcptState;

fn entry() -> QueueEntry {
    let mut failed = Recipient::new("bad@example.org".into());
    failed.state = RcptState::Failed;
    failed.last_reply = Some("550 5.1.1 <bad@example.org>: no such user".into());
    failed.remote = Some("mx.example.org".into());
    QueueEntry {
        id: 0x2a,
        user: "alice@example.com".into(),
        sender: "alice@example.com".into(),
        recipients: vec![Recipient::new("good@example.org".into()), failed],
        size: 10,
        received: "2030-01-01T00:00:00Z".parse().unwrap(),
        client_ip: "10.0.0.1".into(),
        helo: "pc".into(),
        next_attempt: None,
        delay_warned: false,
        dsn: Default::default(),
        smtputf8: false,
    }
}

#[test]
fn status_comes_from_the_reply_when_it_fits() {
    let r = Some("550 5.1.1 no such user");
    assert_eq!(status_of(r, false, Action::Failed), "5.1.1");
    assert_eq!(
        status_of(Some("550 no such user"), false, Action::Failed),
        "5.0.0"
    );
    assert_eq!(
        status_of(Some("451 4.3.0 later"), false, Action::Failed),
        "5.0.0"
    );
    assert_eq!(
        status_of(Some("451 4.3.0 later"), true, Action::Failed),
        "5.4.7"
    );
    assert_eq!(
        status_of(Some("451 4.3.0 later"), false, Action::Delayed),
        "4.3.0"
    );
    assert_eq!(status_of(None, false, Action::Failed), "5.0.0");
}

#[test]
fn report_is_multipart_with_delivery_status_and_header() {
    let e = entry();
    let original = b"Subject: hi\r\nFrom: alice@example.com\r\n\r\nsecret body\r\n";
    let reports = [Report {
        recipient: &e.recipients[1],
        action: Action::Failed,
        status: "5.1.1".into(),
    }];
    let now = "2030-01-01T00:05:00Z".parse().unwrap();
    let m = build(&e, original, &reports, "gw.example.com", now);
    let text = String::from_utf8(m).unwrap();
    assert!(text.contains("Content-Type: multipart/report; report-type=\"delivery-status\";"));
    assert!(text.contains("To: <alice@example.com>\r\n"));
    assert!(text.contains("Content-Type: message/delivery-status\r\n"));
    assert!(text.contains("Reporting-MTA: dns; gw.example.com\r\n"));
    assert!(text.contains(
        "Final-Recipient: rfc822; bad@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n"
    ));
    assert!(text.contains("Diagnostic-Code: smtp; 550 5.1.1 <bad@example.org>: no such user\r\n"));
    assert!(text.contains(
        "Content-Type: text/rfc822-headers\r\nContent-Description: Undelivered message header\r\n\
         Content-Transfer-Encoding: 7bit\r\n\r\nSubject: hi\r\n"
    ));
    assert!(!text.contains("good@example.org"));
    assert!(!text.contains("secret body"), "only the header is returned");
    // Every line ends in CRLF, and the last boundary closes the report.
    assert!(!text.replace("\r\n", "").contains('\n'));
    assert!(text.ends_with("--\r\n"));
    let b = text
        .split("boundary=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert_eq!(text.matches(&format!("--{b}\r\n")).count(), 3);
    assert!(text.contains(&format!("--{b}--\r\n")));
}

#[test]
fn envid_orcpt_relayed_and_full_return() {
    let mut e = entry();
    e.dsn.envid = Some("QQ314159".into());
    e.dsn.ret = Some(Ret::Full);
    e.recipients[1].dsn.orcpt = Some("Bob@Example.ORG".into());
    e.recipients[0].last_reply = Some("250 2.0.0 Ok: stored".into());
    let original = b"Subject: hi\r\n\r\nsecret body\r\n";
    let now = "2030-01-01T00:05:00Z".parse().unwrap();
    let relayed = Report {
        recipient: &e.recipients[0],
        action: Action::Relayed,
        status: status_of(
            e.recipients[0].last_reply.as_deref(),
            false,
            Action::Relayed,
        ),
    };
    let text = String::from_utf8(build(
        &e,
        original,
        std::slice::from_ref(&relayed),
        "gw",
        now,
    ))
    .unwrap();
    assert!(text.contains("Subject: Successful Mail Delivery Report\r\n"));
    assert!(text.contains("Original-Envelope-Id: QQ314159\r\nReporting-MTA: dns; gw\r\n"));
    assert!(text.contains(
        "Final-Recipient: rfc822; good@example.org\r\nAction: relayed\r\nStatus: 2.0.0\r\n"
    ));
    assert!(
        !text.contains("secret body"),
        "no content with a relay notice"
    );

    let failed = Report {
        recipient: &e.recipients[1],
        action: Action::Failed,
        status: "5.1.1".into(),
    };
    let text = String::from_utf8(build(&e, original, &[relayed, failed], "gw", now)).unwrap();
    assert!(text.contains("Subject: Undelivered Mail Returned to Sender\r\n"));
    assert!(text.contains("Original-Recipient: rfc822; Bob@Example.ORG\r\nFinal-Recipient: rfc822; bad@example.org\r\nAction: failed\r\n"));
    assert!(text.contains(
        "Content-Type: message/rfc822\r\nContent-Description: Undelivered message\r\n\
         Content-Transfer-Encoding: 7bit\r\n\r\nSubject: hi\r\n\r\nsecret body\r\n"
    ));

    e.dsn.ret = Some(Ret::Hdrs);
    let failed = Report {
        recipient: &e.recipients[1],
        action: Action::Failed,
        status: "5.1.1".into(),
    };
    let text = String::from_utf8(build(&e, original, &[failed], "gw", now)).unwrap();
    assert!(text.contains("Content-Type: text/rfc822-headers\r\n"));
    assert!(!text.contains("secret body"));
}

/// The parts of a parsed report, checked to be the RFC 3464 shape:
/// multipart/report; report-type=delivery-status with a text part, the
/// delivery-status part and the returned message or header, in order.
fn report_parts<'a>(m: &'a mail_parser::Message<'a>) -> [&'a mail_parser::MessagePart<'a>; 3] {
    use mail_parser::MimeHeaders;
    let ct = m.content_type().expect("a Content-Type");
    assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")));
    assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
    let ids = m.parts[0].sub_parts().expect("a multipart");
    assert_eq!(ids.len(), 3);
    let part = |i: usize| &m.parts[ids[i] as usize];
    let types: Vec<String> = (0..3)
        .map(|i| {
            let ct = part(i).content_type().unwrap();
            format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or(""))
        })
        .collect();
    assert_eq!(types[0], "text/plain");
    assert_eq!(types[1], "message/delivery-status");
    [part(0), part(1), part(2)]
}

/// The delivery-status part as field groups (per message, then per
/// recipient), each field once.
fn groups(part: &mail_parser::MessagePart<'_>) -> Vec<Vec<(String, String)>> {
    let text = std::str::from_utf8(part.contents()).expect("ASCII");
    assert!(text.is_ascii());
    text.trim_end_matches("\r\n")
        .split("\r\n\r\n")
        .map(|g| {
            g.split("\r\n")
                .map(|l| {
                    let (n, v) = l.split_once(": ").expect("a field");
                    (n.to_string(), v.to_string())
                })
                .collect()
        })
        .collect()
}

fn get<'a>(group: &'a [(String, String)], name: &str) -> Option<&'a str> {
    group
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn bounce_parses_as_a_delivery_status_report() {
    use mail_parser::{MessageParser, MimeHeaders};
    let mut e = entry();
    e.dsn.envid = Some("QQ314159".into());
    e.recipients[1].dsn.orcpt = Some("Bob@Example.ORG".into());
    let original = b"Subject: hi\r\nFrom: alice@example.com\r\n\r\nsecret body\r\n";
    let reports = [Report {
        recipient: &e.recipients[1],
        action: Action::Failed,
        status: "5.1.1".into(),
    }];
    let now: Timestamp = "2030-01-01T00:05:00Z".parse().unwrap();
    let raw = build(&e, original, &reports, "gw.example.com", now);
    assert!(raw.is_ascii(), "an ASCII original gives a 7-bit report");
    let m = MessageParser::default().parse(&raw).expect("parses");

    let from = m.from().and_then(|a| a.first()).unwrap();
    assert_eq!(from.address(), Some("MAILER-DAEMON@gw.example.com"));
    assert_eq!(from.name(), Some("Mail Delivery System"));
    let to = m.to().and_then(|a| a.first()).unwrap();
    assert_eq!(to.address(), Some("alice@example.com"));
    assert_eq!(m.subject(), Some("Undelivered Mail Returned to Sender"));
    assert_eq!(m.date().unwrap().to_timestamp(), now.as_second());
    assert_eq!(
        m.header_raw("Date").map(str::trim),
        Some(mail_date(now).as_str())
    );
    let id = format!(
        "{}.{}.dsn@gw.example.com",
        queue_id(e.id),
        now.as_millisecond()
    );
    assert_eq!(m.message_id(), Some(id.as_str()));
    assert_eq!(
        m.header_raw("Auto-Submitted").map(str::trim),
        Some("auto-replied")
    );
    assert_eq!(m.header_raw("MIME-Version").map(str::trim), Some("1.0"));

    let [text, status, returned] = report_parts(&m);
    let text = text.text_contents().unwrap();
    assert!(text.contains("This is the mail system at host gw.example.com."));
    assert!(text.contains("<bad@example.org>: 550 5.1.1 <bad@example.org>: no such user"));

    let g = groups(status);
    assert_eq!(g.len(), 2, "one per-message and one recipient group");
    assert_eq!(get(&g[0], "Original-Envelope-Id"), Some("QQ314159"));
    assert_eq!(get(&g[0], "Reporting-MTA"), Some("dns; gw.example.com"));
    assert_eq!(
        get(&g[0], "Arrival-Date"),
        Some(mail_date(e.received).as_str())
    );
    let r = &g[1];
    assert_eq!(
        get(r, "Original-Recipient"),
        Some("rfc822; Bob@Example.ORG")
    );
    assert_eq!(get(r, "Final-Recipient"), Some("rfc822; bad@example.org"));
    assert_eq!(get(r, "Action"), Some("failed"));
    assert_eq!(get(r, "Status"), Some("5.1.1"));
    assert_eq!(get(r, "Remote-MTA"), Some("dns; mx.example.org"));
    assert_eq!(
        get(r, "Diagnostic-Code"),
        Some("smtp; 550 5.1.1 <bad@example.org>: no such user")
    );
    assert_eq!(
        get(r, "Last-Attempt-Date"),
        Some("Tue, 1 Jan 2030 00:05:00 +0000")
    );

    let ct = returned.content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("text", Some("rfc822-headers")));
    assert_eq!(returned.contents(), original_header(original));
}

#[test]
fn full_return_is_a_parsable_message_within_the_bound() {
    use mail_parser::{MessageParser, MimeHeaders};
    let mut e = entry();
    e.dsn.ret = Some(Ret::Full);
    let now = "2030-01-01T00:05:00Z".parse().unwrap();
    let reports = [Report {
        recipient: &e.recipients[1],
        action: Action::Failed,
        status: "5.1.1".into(),
    }];
    let original = b"Subject: hi\r\nFrom: alice@example.com\r\n\r\nsecret body\r\n";
    let raw = build(&e, original, &reports, "gw", now);
    let m = MessageParser::default().parse(&raw).unwrap();
    let [_, _, returned] = report_parts(&m);
    let inner = returned.message().expect("message/rfc822");
    assert_eq!(inner.subject(), Some("hi"));
    assert_eq!(inner.body_text(0).as_deref(), Some("secret body\r\n"));
    assert_eq!(returned.contents(), original);

    // One octet over the bound: the header only.
    let mut big = original_header(original).to_vec();
    big.extend_from_slice(b"\r\n");
    big.resize(MAX_FULL_RETURN + 1, b'x');
    let raw = build(&e, &big, &reports, "gw", now);
    let m = MessageParser::default().parse(&raw).unwrap();
    let [_, _, returned] = report_parts(&m);
    assert_eq!(returned.content_type().unwrap().ctype(), "text");
    assert_eq!(returned.contents(), original_header(original));
    assert!(raw.len() < 4096, "the body is not returned");

    // Delay notices never return the body, whatever RET says.
    let delayed = [Report {
        recipient: &e.recipients[0],
        action: Action::Delayed,
        status: "4.0.0".into(),
    }];
    let raw = build(&e, original, &delayed, "gw", now);
    let m = MessageParser::default().parse(&raw).unwrap();
    assert_eq!(m.subject(), Some("Delayed Mail (still being retried)"));
    let [_, status, returned] = report_parts(&m);
    assert_eq!(get(&groups(status)[1], "Action"), Some("delayed"));
    assert!(!returned.is_message());
}

#[test]
fn eight_bit_header_is_returned_as_it_is_labelled_8bit() {
    use mail_parser::{MessageParser, MimeHeaders};
    let e = entry();
    let original = "Subject: Gr\u{fc}\u{df}e\r\n\r\nHallo\r\n".as_bytes();
    let reports = [Report {
        recipient: &e.recipients[1],
        action: Action::Failed,
        status: "5.6.3".into(),
    }];
    let raw = build(
        &e,
        original,
        &reports,
        "gw",
        "2030-01-01T00:05:00Z".parse().unwrap(),
    );
    let m = MessageParser::default().parse(&raw).unwrap();
    let [_, _, returned] = report_parts(&m);
    assert_eq!(returned.content_transfer_encoding(), Some("8bit"));
    assert_eq!(returned.contents(), original_header(original));
    // Only that part has 8-bit octets.
    let at = raw
        .windows(b"Gr\xc3\xbc".len())
        .position(|w| w == b"Gr\xc3\xbc")
        .unwrap();
    assert!(raw[..at].is_ascii());
}

#[test]
fn utf8_addresses_stay_readable() {
    use mail_parser::MessageParser;
    let mut e = entry();
    e.sender = "j\u{f6}rg@example.com".into();
    e.recipients[1].address = "j\u{fc}rgen@b\u{fc}cher.example".into();
    e.recipients[1].last_reply = Some("553 5.6.7 does not offer SMTPUTF8".into());
    let reports = [Report {
        recipient: &e.recipients[1],
        action: Action::Failed,
        status: "5.6.7".into(),
    }];
    let original = b"Subject: hi\r\n\r\nbody\r\n";
    let raw = build(
        &e,
        original,
        &reports,
        "gw",
        "2030-01-01T00:05:00Z".parse().unwrap(),
    );
    let m = MessageParser::default().parse(&raw).unwrap();
    // The To field is UTF-8 (RFC 6532): this bounce goes with SMTPUTF8.
    let to = m.to().and_then(|a| a.first()).unwrap();
    assert_eq!(to.address(), Some("j\u{f6}rg@example.com"));
    let [text, status, _] = report_parts(&m);
    // The text part is quoted-printable UTF-8; the report stays ASCII.
    assert!(
        text.text_contents()
            .unwrap()
            .contains("<j\u{fc}rgen@b\u{fc}cher.example>: 553 5.6.7")
    );
    assert_eq!(
        get(&groups(status)[1], "Final-Recipient"),
        Some("utf-8; j\\x{FC}rgen@b\\x{FC}cher.example")
    );
    assert_eq!(address_field("a+b=c@x.example"), "rfc822; a+b=c@x.example");
    assert_eq!(
        address_field("\u{e9}+=@x"),
        "utf-8; \\x{E9}\\x{2B}\\x{3D}@x"
    );
}

#[test]
fn header_injection_through_the_envelope_goes_nowhere() {
    use mail_parser::MessageParser;
    let mut e = entry();
    e.sender = "alice@example.com>\r\nBcc: <victim@example.net".into();
    e.dsn.envid = Some("id\r\nX-Evil: 1".into());
    let reports = [Report {
        recipient: &e.recipients[1],
        action: Action::Failed,
        status: "5.1.1".into(),
    }];
    let raw = build(
        &e,
        b"Subject: hi\r\n\r\n",
        &reports,
        "gw",
        "2030-01-01T00:05:00Z".parse().unwrap(),
    );
    let m = MessageParser::default().parse(&raw).unwrap();
    assert!(m.header_raw("Bcc").is_none());
    // mail-builder 1.0 writes what it is given: controls other than CR/LF
    // (in the sender, or a host name) are taken out before it, too.
    e.sender = "al\x1bice\x07@example.com\x0b\x7f".into();
    let raw = build(
        &e,
        b"Subject: hi\r\n\r\n",
        &reports,
        "gw\x0b\x00X-Host: 1",
        "2030-01-01T00:05:00Z".parse().unwrap(),
    );
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let header = raw[..end].to_vec();
    let header = String::from_utf8(header).unwrap().replace("\r\n", "");
    assert!(!header.chars().any(char::is_control), "{header:?}");
    let m = MessageParser::default().parse(&raw).unwrap();
    assert!(m.header_raw("X-Host").is_none());
    let [_, status, _] = report_parts(&m);
    let g = groups(status);
    assert!(g[0].iter().all(|(n, _)| n != "X-Evil"));
    assert_eq!(get(&g[0], "Original-Envelope-Id"), Some("id  X-Evil: 1"));
}

#[test]
fn one_date_format() {
    let t: Timestamp = "2030-01-01T00:05:00Z".parse().unwrap();
    assert_eq!(mail_date(t), "Tue, 1 Jan 2030 00:05:00 +0000");
    let t: Timestamp = "2026-12-24T23:59:59.9Z".parse().unwrap();
    assert_eq!(mail_date(t), "Thu, 24 Dec 2026 23:59:59 +0000");
    // mail-parser reads it back to the same second.
    let d = mail_parser::DateTime::parse_rfc822(&mail_date(t)).unwrap();
    assert_eq!(d.to_timestamp(), t.as_second());
}
