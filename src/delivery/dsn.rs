//! Delivery status notifications (RFC 3464): a multipart/report with a
//! human-readable part, the machine-readable message/delivery-status part
//! and the original message's header (text/rfc822-headers, RFC 6522).
//! Sent with the null sender, so a DSN that fails is dropped, never
//! bounced in turn.

use jiff::Timestamp;

use crate::store::envelope::Ret;
use crate::store::{QueueEntry, Recipient, queue_id};

/// The largest original message returned whole (RET=FULL); a larger one
/// is returned as its header only.
pub const MAX_FULL_RETURN: usize = 512 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Delivery failed for good (refused, or expired).
    Failed,
    /// Still being retried (the optional delay warning).
    Delayed,
    /// Handed to a next hop that does not speak DSN, for a recipient that
    /// asked for NOTIFY=SUCCESS (RFC 3461 6.2.1c).
    Relayed,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Failed => "failed",
            Action::Delayed => "delayed",
            Action::Relayed => "relayed",
        }
    }
}

/// One recipient's line in the report.
#[derive(Debug, Clone)]
pub struct Report<'a> {
    pub recipient: &'a Recipient,
    pub action: Action,
    /// RFC 3463 status, e.g. "5.1.1".
    pub status: String,
}

/// The enhanced status code to report: the one in the reply if it has
/// one of the right class, else a generic one.
pub fn status_of(reply: Option<&str>, expired: bool, action: Action) -> String {
    let class = match action {
        Action::Failed => '5',
        Action::Delayed => '4',
        Action::Relayed => '2',
    };
    if expired {
        // X.4.7: delivery time expired.
        return format!("{class}.4.7");
    }
    let from_reply = reply.and_then(|r| r.split_whitespace().nth(1)).filter(|s| {
        let parts: Vec<&str> = s.split('.').collect();
        parts.len() == 3
            && s.starts_with(class)
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    });
    from_reply.map_or_else(|| format!("{class}.0.0"), str::to_string)
}

/// The header of the original message (up to and including the line
/// ending before the empty line).
pub fn original_header(message: &[u8]) -> &[u8] {
    match message.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(p) => &message[..p + 2],
        None => message,
    }
}

fn date(t: Timestamp) -> String {
    jiff::fmt::rfc2822::to_string(&t.to_zoned(jiff::tz::TimeZone::UTC)).unwrap_or_default()
}

/// One line of text safe inside a header field: no CR/LF, ASCII only.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                ' '
            }
        })
        .collect()
}

/// Builds the notification for `entry` covering `reports`. Its subject
/// and text follow the gravest action among them.
pub fn build(
    entry: &QueueEntry,
    original: &[u8],
    reports: &[Report<'_>],
    hostname: &str,
    now: Timestamp,
) -> Vec<u8> {
    let id = queue_id(entry.id);
    let boundary = format!("{id}.{}/{hostname}", now.as_second());
    let any = |a| reports.iter().any(|r| r.action == a);
    let action = if any(Action::Failed) {
        Action::Failed
    } else if any(Action::Delayed) {
        Action::Delayed
    } else {
        Action::Relayed
    };
    let (subject, intro) = match action {
        Action::Failed => (
            "Undelivered Mail Returned to Sender",
            "Your message could not be delivered to one or more recipients.\r\n\
             It has been returned with this report; the reasons follow.",
        ),
        Action::Delayed => (
            "Delayed Mail (still being retried)",
            "Your message has not yet been delivered to one or more recipients.\r\n\
             Delivery is still being tried; no action is needed from you.",
        ),
        Action::Relayed => (
            "Successful Mail Delivery Report",
            "Your message was relayed to a mail system that does not send\r\n\
             delivery notifications: you will get no further notice about it.",
        ),
    };
    let mut m = String::new();
    let mut h = |name: &str, value: &str| {
        m.push_str(name);
        m.push_str(": ");
        m.push_str(value);
        m.push_str("\r\n");
    };
    h(
        "From",
        &format!("Mail Delivery System <MAILER-DAEMON@{hostname}>"),
    );
    h("To", &format!("<{}>", one_line(&entry.sender)));
    h("Subject", subject);
    h("Date", &date(now));
    h(
        "Message-ID",
        &format!("<{id}.{}.dsn@{hostname}>", now.as_millisecond()),
    );
    h("Auto-Submitted", "auto-replied");
    h("MIME-Version", "1.0");
    h(
        "Content-Type",
        &format!("multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\""),
    );
    m.push_str("\r\nThis is a MIME-encapsulated message.\r\n\r\n");

    m.push_str(&format!("--{boundary}\r\n"));
    m.push_str("Content-Description: Notification\r\n");
    m.push_str("Content-Type: text/plain; charset=us-ascii\r\n\r\n");
    m.push_str(&format!(
        "This is the mail system at host {hostname}.\r\n\r\n{intro}\r\n\r\n"
    ));
    for r in reports {
        let reply = r.recipient.last_reply.as_deref().unwrap_or("no reply");
        m.push_str(&format!(
            "<{}>: {}\r\n",
            one_line(&r.recipient.address),
            one_line(reply)
        ));
    }
    m.push_str("\r\n");

    m.push_str(&format!("--{boundary}\r\n"));
    m.push_str("Content-Description: Delivery report\r\n");
    m.push_str("Content-Type: message/delivery-status\r\n\r\n");
    // Per-message fields.
    if let Some(envid) = &entry.dsn.envid {
        m.push_str(&format!("Original-Envelope-Id: {}\r\n", one_line(envid)));
    }
    m.push_str(&format!("Reporting-MTA: dns; {hostname}\r\n"));
    m.push_str(&format!("X-Outguard-Queue-ID: {id}\r\n"));
    m.push_str(&format!("Arrival-Date: {}\r\n", date(entry.received)));
    for r in reports {
        // Per-recipient fields, each group after an empty line.
        let rc = r.recipient;
        m.push_str("\r\n");
        if let Some(orcpt) = &rc.dsn.orcpt {
            m.push_str(&format!(
                "Original-Recipient: rfc822; {}\r\n",
                one_line(orcpt)
            ));
        }
        m.push_str(&format!(
            "Final-Recipient: rfc822; {}\r\n",
            one_line(&rc.address)
        ));
        m.push_str(&format!("Action: {}\r\n", r.action.name()));
        m.push_str(&format!("Status: {}\r\n", r.status));
        if let Some(remote) = &rc.remote {
            m.push_str(&format!("Remote-MTA: dns; {}\r\n", one_line(remote)));
        }
        if let Some(reply) = &rc.last_reply {
            m.push_str(&format!("Diagnostic-Code: smtp; {}\r\n", one_line(reply)));
        }
        m.push_str(&format!("Last-Attempt-Date: {}\r\n", date(now)));
    }
    m.push_str("\r\n");

    m.push_str(&format!("--{boundary}\r\n"));
    // RET=FULL returns the whole message with a failure (RFC 3461 4.3),
    // within a bound; otherwise, and for delay and relay notices, the
    // header.
    let full = action == Action::Failed
        && entry.dsn.ret == Some(Ret::Full)
        && original.len() <= MAX_FULL_RETURN;
    let header = if full {
        m.push_str("Content-Description: Undelivered message\r\n");
        m.push_str("Content-Type: message/rfc822\r\n");
        original
    } else {
        m.push_str("Content-Description: Undelivered message header\r\n");
        m.push_str("Content-Type: text/rfc822-headers\r\n");
        original_header(original)
    };
    if !header.is_ascii() {
        m.push_str("Content-Transfer-Encoding: 8bit\r\n");
    }
    m.push_str("\r\n");
    let mut out = m.into_bytes();
    out.extend_from_slice(header);
    if !header.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

#[cfg(test)]
mod tests {
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
        assert!(text.contains("Content-Type: multipart/report; report-type=delivery-status;"));
        assert!(text.contains("To: <alice@example.com>\r\n"));
        assert!(text.contains("Content-Type: message/delivery-status\r\n"));
        assert!(text.contains("Reporting-MTA: dns; gw.example.com\r\n"));
        assert!(text.contains(
            "Final-Recipient: rfc822; bad@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        ));
        assert!(
            text.contains("Diagnostic-Code: smtp; 550 5.1.1 <bad@example.org>: no such user\r\n")
        );
        assert!(text.contains("Content-Type: text/rfc822-headers\r\n\r\nSubject: hi\r\n"));
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
        assert!(
            text.contains("Content-Type: message/rfc822\r\n\r\nSubject: hi\r\n\r\nsecret body\r\n")
        );

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
}
