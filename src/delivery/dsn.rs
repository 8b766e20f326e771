//! Delivery status notifications (RFC 3464): a multipart/report with a
//! human-readable part, the machine-readable message/delivery-status part
//! and the original message's header (text/rfc822-headers, RFC 6522).
//! Sent with the null sender, so a DSN that fails is dropped, never
//! bounced in turn.

use std::borrow::Cow;

use jiff::Timestamp;
use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::date::Date;
use mail_builder::headers::raw::Raw;
use mail_builder::headers::text::Text;
use mail_builder::mime::{BodyPart, MimePart};

use crate::clock::mail_date;
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

/// Text for a header field (or a one-line body text) of a message the
/// daemon generates (bounces here, admin notices in `notify`): every
/// control character (CR, LF, tab, NUL, ESC, DEL, C1) as a space, so
/// nothing can end the field or start another. mail-builder 1.0 (the release Rust 1.88 builds) writes
/// an address, a display name, unstructured text and a raw field as it is
/// given; 2.x dropped controls from addresses and encoded them in text
/// itself. Every value from outside the code goes through this.
pub fn controls_as_spaces(s: &str) -> Cow<'_, str> {
    if s.chars().any(char::is_control) {
        Cow::Owned(
            s.chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect(),
        )
    } else {
        Cow::Borrowed(s)
    }
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

/// A recipient address as a delivery-status field value: `rfc822; addr`
/// when ASCII, else RFC 6533's `utf-8;` type in its 7-bit form (each
/// non-ASCII character, `+`, `=` and `\` as `\x{HEX}`), which plain
/// message/delivery-status may carry.
fn address_field(address: &str) -> String {
    if address.is_ascii() {
        return format!("rfc822; {}", one_line(address));
    }
    let mut out = String::from("utf-8; ");
    for c in address.chars() {
        if c.is_ascii_graphic() && !matches!(c, '+' | '=' | '\\') {
            out.push(c);
        } else {
            out.push_str(&format!("\\x{{{:02X}}}", u32::from(c)));
        }
    }
    out
}

/// The gravest action among `reports`: it picks the subject and text.
fn gravest(reports: &[Report<'_>]) -> Action {
    let any = |a| reports.iter().any(|r| r.action == a);
    if any(Action::Failed) {
        Action::Failed
    } else if any(Action::Delayed) {
        Action::Delayed
    } else {
        Action::Relayed
    }
}

/// One `Name: value` line of the delivery-status part.
fn field(m: &mut String, name: &str, value: &str) {
    m.push_str(name);
    m.push_str(": ");
    m.push_str(value);
    m.push_str("\r\n");
}

/// The machine-readable part (RFC 3464 2.2, 2.3): per-message fields,
/// then each recipient's after an empty line. All ASCII.
fn delivery_status(
    entry: &QueueEntry,
    reports: &[Report<'_>],
    hostname: &str,
    now: Timestamp,
) -> String {
    let mut m = String::new();
    if let Some(envid) = &entry.dsn.envid {
        field(&mut m, "Original-Envelope-Id", &one_line(envid));
    }
    field(
        &mut m,
        "Reporting-MTA",
        &format!("dns; {}", one_line(hostname)),
    );
    field(&mut m, "X-Outguard-Queue-ID", &queue_id(entry.id));
    field(&mut m, "Arrival-Date", &mail_date(entry.received));
    for r in reports {
        let rc = r.recipient;
        m.push_str("\r\n");
        if let Some(orcpt) = &rc.dsn.orcpt {
            let orcpt = format!("rfc822; {}", one_line(orcpt));
            field(&mut m, "Original-Recipient", &orcpt);
        }
        field(&mut m, "Final-Recipient", &address_field(&rc.address));
        field(&mut m, "Action", r.action.name());
        field(&mut m, "Status", &r.status);
        if let Some(remote) = &rc.remote {
            field(&mut m, "Remote-MTA", &format!("dns; {}", one_line(remote)));
        }
        if let Some(reply) = &rc.last_reply {
            field(
                &mut m,
                "Diagnostic-Code",
                &format!("smtp; {}", one_line(reply)),
            );
        }
        field(&mut m, "Last-Attempt-Date", &mail_date(now));
    }
    m
}

/// Builds the notification for `entry` covering `reports` with
/// mail-builder. Its subject and text follow the gravest action among
/// them.
pub fn build(
    entry: &QueueEntry,
    original: &[u8],
    reports: &[Report<'_>],
    hostname: &str,
    now: Timestamp,
) -> Vec<u8> {
    // Every value from outside the code that reaches a header goes
    // without controls (controls_as_spaces says why): the host name
    // (From, Message-ID) here, the sender (To) below.
    let hostname = controls_as_spaces(hostname);
    let hostname = hostname.as_ref();
    let action = gravest(reports);
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

    // The human-readable part: UTF-8 addresses and replies as they are
    // (mail-builder makes the part quoted-printable if it must).
    let mut text = format!("This is the mail system at host {hostname}.\r\n\r\n{intro}\r\n\r\n");
    for r in reports {
        let reply = r.recipient.last_reply.as_deref().unwrap_or("no reply");
        let line = format!("<{}>: {}", r.recipient.address, reply);
        text.push_str(&controls_as_spaces(&line));
        text.push_str("\r\n");
    }
    let notification = MimePart::new(
        ContentType::new("text/plain").attribute("charset", "utf-8"),
        text,
    )
    .header("Content-Description", Text::new("Notification"));

    let status = MimePart::new(
        "message/delivery-status",
        delivery_status(entry, reports, hostname, now).into_bytes(),
    )
    .header("Content-Description", Text::new("Delivery report"))
    .transfer_encoding("7bit");

    // RET=FULL returns the whole message with a failure (RFC 3461 4.3),
    // within a bound; otherwise, and for delay and relay notices, the
    // header. Either goes as it is, labelled 8bit when it is not ASCII.
    let full = action == Action::Failed
        && entry.dsn.ret == Some(Ret::Full)
        && original.len() <= MAX_FULL_RETURN;
    let (content_type, description, returned) = if full {
        ("message/rfc822", "Undelivered message", original)
    } else {
        (
            "text/rfc822-headers",
            "Undelivered message header",
            original_header(original),
        )
    };
    let encoding = if returned.is_ascii() { "7bit" } else { "8bit" };
    let returned: Cow<'_, [u8]> = if returned.ends_with(b"\r\n") {
        Cow::Borrowed(returned)
    } else {
        let mut owned = returned.to_vec();
        owned.extend_from_slice(b"\r\n");
        Cow::Owned(owned)
    };
    let returned = MimePart::new(content_type, BodyPart::Binary(returned))
        .header("Content-Description", Text::new(description))
        .transfer_encoding(encoding);

    let id = queue_id(entry.id);
    let mut out = Vec::new();
    MessageBuilder::new()
        .from(Address::new_address(
            Some("Mail Delivery System"),
            format!("MAILER-DAEMON@{hostname}"),
        ))
        .to(Address::new_address(
            None::<&str>,
            controls_as_spaces(&entry.sender),
        ))
        .subject(subject)
        .date(Date::new(now.as_second()))
        .message_id(format!("{id}.{}.dsn@{hostname}", now.as_millisecond()))
        .header("Auto-Submitted", Raw::new("auto-replied"))
        .header("MIME-Version", Raw::new("1.0"))
        .body(MimePart::new(
            ContentType::new("multipart/report").attribute("report-type", "delivery-status"),
            vec![notification, status, returned],
        ))
        .serialize(&mut out);
    out
}

#[cfg(test)]
#[path = "dsn_tests.rs"]
mod tests;
