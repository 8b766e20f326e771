//! The envelope phase (MAIL FROM and RCPT TO), each checked against the
//! user's standing (lock, limits, sender identity) before it is taken.

use smtp_proto::{MailFrom, RcptTo};

use super::data::{no_room, refusal_reply};
use super::{Session, Transaction, shown};
use crate::policy::{self, Ask, Standing};
use crate::smtp::identity;
use crate::smtp::inflight::{self, Reservation};
use crate::smtp::reply::Reply;
use crate::store::envelope::{self, MessageDsn, Notify, RcptDsn, Ret};
use crate::users::User;

impl Session<'_> {
    /// The authenticated user's record and standing now (`policy::standing`).
    pub(super) fn standing(&self, name: &str) -> Result<Option<(User, Standing)>, Reply> {
        let store_err = |e: crate::store::StoreError| {
            tracing::error!(error = %e, "store read failed");
            Reply::new(451, "4.3.0", "Temporary local problem, try again later")
        };
        let Some(user) = self.srv.app.store.user(name).map_err(store_err)? else {
            return Ok(None);
        };
        let usage = self.srv.app.store.usage(name).map_err(store_err)?;
        let now = self.srv.app.clock.now();
        let st = self
            .srv
            .app
            .settings
            .read(|c| policy::standing(&user, &usage, &c.settings.defaults, &c.tz, now));
        Ok(Some((user, st)))
    }

    pub(super) fn mail(&mut self, from: MailFrom<String>, routed: bool) -> Reply {
        match self
            .check_mail(&from, routed)
            .and_then(|()| self.room(&from))
        {
            Ok(room) => {
                self.state.tx = Some(Transaction {
                    dsn: message_dsn(&from),
                    sender: from.address,
                    recipients: Vec::new(),
                    smtputf8: from.flags & smtp_proto::MAIL_SMTPUTF8 != 0,
                    room,
                    recipient_dsn: Vec::new(),
                });
                Reply::new(250, "2.1.0", "Sender OK")
            }
            Err(r) => {
                if r.code >= 500 {
                    tracing::info!(ip = %self.ip, user = self.state.user().unwrap_or(""), sender = %from.address, reply = %r.text, "MAIL refused");
                }
                r
            }
        }
    }

    /// Reserves the declared size (or a first chunk) in the budget for
    /// messages in flight.
    pub(super) fn room(&self, from: &MailFrom<String>) -> Result<Reservation, Reply> {
        let n = from.size.clamp(
            inflight::CHUNK,
            self.srv.smtp.max_message_size.max(inflight::CHUNK),
        );
        self.srv.guards.inflight.reserve(n).ok_or_else(|| {
            tracing::warn!(ip = %self.ip, size = n, "MAIL deferred: in-flight memory budget full");
            no_room()
        })
    }

    pub(super) fn check_mail(&self, from: &MailFrom<String>, routed: bool) -> Result<(), Reply> {
        if self.state.greeting.is_none() {
            return Err(Reply::new(503, "5.5.1", "Send EHLO/HELO first"));
        }
        let Some(name) = self.state.user() else {
            return Err(Reply::new(530, "5.7.0", "Authentication required"));
        };
        if self.state.tx.is_some() {
            return Err(Reply::new(503, "5.5.1", "Nested MAIL command"));
        }
        let allowed = smtp_proto::MAIL_BODY_7BIT
            | smtp_proto::MAIL_BODY_8BITMIME
            | smtp_proto::MAIL_RET_FULL
            | smtp_proto::MAIL_RET_HDRS
            | smtp_proto::MAIL_SMTPUTF8;
        let utf8 = from.flags & smtp_proto::MAIL_SMTPUTF8 != 0;
        let extra = from.trans_id.is_some()
            || from.solicit.is_some()
            || from.mtrk.is_some()
            || from.by != 0
            || from.hold_for != 0
            || from.hold_until != 0
            || from.mt_priority != 0;
        if from.flags & !allowed != 0 || extra {
            return Err(Reply::new(555, "5.5.4", "MAIL parameter not supported"));
        }
        if from
            .env_id
            .as_deref()
            .is_some_and(|v| !envelope::printable(v, envelope::MAX_ENVID))
        {
            return Err(Reply::new(501, "5.5.4", "Invalid ENVID"));
        }
        if from.size > self.size_limit() {
            return Err(Reply::new(
                552,
                "5.3.4",
                format!(
                    "Message size exceeds the limit of {} octets",
                    self.size_limit()
                ),
            ));
        }
        self.srv
            .app
            .store
            .admit(from.size as u64)
            .map_err(refusal_reply)?;
        if routed {
            return Err(Reply::new(553, "5.1.7", "Source routes are not accepted"));
        }
        if !utf8 && !from.address.is_ascii() {
            return Err(needs_smtputf8("Sender", &from.address));
        }
        // The null sender <> (bounces, notices) is allowed by the sender rule.
        if let Some(why) = address_problem(&from.address, utf8).filter(|_| !from.address.is_empty())
        {
            return Err(Reply::new(
                553,
                "5.1.7",
                format!(
                    "Sender address <{}> not accepted: {why}",
                    shown(&from.address, utf8)
                ),
            ));
        }
        let Some((user, st)) = self.standing(name)? else {
            return Err(Reply::new(550, "5.7.1", "User no longer exists"));
        };
        let check = self.srv.app.settings.read(|c| c.settings.sender_check);
        if let Some(why) = identity::no_identity(&user, check, "the envelope sender") {
            return Err(Reply::new(550, "5.7.1", why));
        }
        // The null sender (RFC 5321 4.5.5): a relaying MTA's bounces, which
        // carry no address to own; counted against the user like any mail.
        if !from.address.is_empty() && !identity::address_allowed(&from.address, &user, check) {
            return Err(Reply::new(
                553,
                "5.7.1",
                format!(
                    "Sender address <{}> is not owned by user {}",
                    shown(&from.address, utf8),
                    user.name
                ),
            ));
        }
        policy::admit(&st, Ask::Sender).map_err(refused)
    }

    pub(super) fn rcpt(&mut self, to: RcptTo<String>, routed: bool) -> Reply {
        match self.check_rcpt(&to, routed) {
            Ok(()) => {
                let tx = self.state.tx.as_mut().expect("checked");
                if !tx
                    .recipients
                    .iter()
                    .any(|r| r.eq_ignore_ascii_case(&to.address))
                {
                    tx.recipient_dsn.push(rcpt_dsn(&to));
                    tx.recipients.push(to.address);
                }
                Reply::new(250, "2.1.5", "Recipient OK")
            }
            Err(r) => r,
        }
    }

    pub(super) fn check_rcpt(&self, to: &RcptTo<String>, routed: bool) -> Result<(), Reply> {
        let Some(tx) = &self.state.tx else {
            return Err(Reply::new(503, "5.5.1", "Need MAIL command first"));
        };
        let notify = smtp_proto::RCPT_NOTIFY_SUCCESS
            | smtp_proto::RCPT_NOTIFY_FAILURE
            | smtp_proto::RCPT_NOTIFY_DELAY
            | smtp_proto::RCPT_NOTIFY_NEVER;
        if to.flags & !notify != 0 || to.rrvs != 0 {
            return Err(Reply::new(555, "5.5.4", "RCPT parameter not supported"));
        }
        if to.flags & smtp_proto::RCPT_NOTIFY_NEVER != 0
            && to.flags != smtp_proto::RCPT_NOTIFY_NEVER
        {
            return Err(Reply::new(501, "5.5.4", "NOTIFY=NEVER stands alone"));
        }
        if to
            .orcpt
            .as_deref()
            .is_some_and(|v| !envelope::printable(v, envelope::MAX_ORCPT))
        {
            return Err(Reply::new(501, "5.5.4", "Invalid ORCPT"));
        }
        if to.address.is_empty() {
            return Err(Reply::new(
                550,
                "5.1.1",
                "No local mailboxes here; use a full address",
            ));
        }
        if routed {
            return Err(Reply::new(553, "5.1.3", "Source routes are not accepted"));
        }
        if !tx.smtputf8 && !to.address.is_ascii() {
            return Err(needs_smtputf8("Recipient", &to.address));
        }
        if let Some(why) = address_problem(&to.address, tx.smtputf8) {
            return Err(Reply::new(
                553,
                "5.1.3",
                format!(
                    "Recipient address <{}> not accepted: {why}",
                    shown(&to.address, tx.smtputf8)
                ),
            ));
        }
        if tx.recipients.len() >= self.srv.smtp.max_recipients {
            return Err(Reply::new(
                452,
                "4.5.3",
                format!(
                    "Too many recipients (at most {} per message)",
                    self.srv.smtp.max_recipients
                ),
            ));
        }
        let name = self.state.user().unwrap_or_default();
        let Some((_, st)) = self.standing(name)? else {
            return Err(Reply::new(550, "5.7.1", "User no longer exists"));
        };
        let pending = u32::try_from(tx.recipients.len()).unwrap_or(u32::MAX);
        policy::admit(&st, Ask::Recipients(pending + 1)).map_err(refused)
    }
}

/// The reply to a message or recipient the policy does not admit.
pub(super) fn refused(r: policy::Refusal) -> Reply {
    let (code, status, text) = r.reply();
    Reply::new(code, status, text)
}

/// RET and ENVID of MAIL FROM (checked by `check_mail`).
pub(super) fn message_dsn(from: &MailFrom<String>) -> MessageDsn {
    let ret = if from.flags & smtp_proto::MAIL_RET_HDRS != 0 {
        Some(Ret::Hdrs)
    } else if from.flags & smtp_proto::MAIL_RET_FULL != 0 {
        Some(Ret::Full)
    } else {
        None
    };
    MessageDsn {
        ret,
        envid: from.env_id.clone(),
    }
}

/// NOTIFY and ORCPT of RCPT TO (checked by `check_rcpt`).
pub(super) fn rcpt_dsn(to: &RcptTo<String>) -> RcptDsn {
    let has = |f| to.flags & f != 0;
    let notify = (to.flags != 0).then(|| Notify {
        success: has(smtp_proto::RCPT_NOTIFY_SUCCESS),
        failure: has(smtp_proto::RCPT_NOTIFY_FAILURE),
        delay: has(smtp_proto::RCPT_NOTIFY_DELAY),
    });
    RcptDsn {
        notify,
        orcpt: to.orcpt.clone(),
    }
}

/// Does a MAIL or RCPT line carry a source route (`<@relay:user@domain>`)?
/// smtp-proto drops the route while parsing (RFC 5321 4.1.1.3 allows
/// that), so it is looked for in the raw line; relaying through a named
/// host is declined.
pub(super) fn has_source_route(line: &[u8]) -> bool {
    let arg = line.iter().position(|&b| b == b':');
    let rest = arg.map_or(&[][..], |i| line[i + 1..].trim_ascii_start());
    rest.starts_with(b"<@")
}

/// Does the line declare a SIZE of 20 digits or more? smtp-proto's
/// saturating parse wraps such a value around to a small number, which
/// would pass the size check; any such size is over every limit.
pub(super) fn declares_huge_size(line: &[u8]) -> bool {
    line.windows(5)
        .enumerate()
        .filter(|(_, w)| w.eq_ignore_ascii_case(b"SIZE="))
        .any(|(i, _)| {
            line[i + 5..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count()
                >= 20
        })
}

/// Why an envelope address (as smtp-proto hands it over, quotes removed)
/// cannot be relayed, if it cannot. Only plain `local@domain` with a DNS
/// domain passes: once a quoted local part is unquoted, `"a@b"@c` reads as
/// `a@b@c`, and `%`-hacks, `!` paths and single-label hosts are routing
/// tricks, not destinations. Non-ASCII is allowed with `utf8`
/// (SMTPUTF8): UTF-8 local parts, and IDN domains that have an A-label.
pub(super) fn address_problem(address: &str, utf8: bool) -> Option<&'static str> {
    if !address.is_ascii() && !utf8 {
        return Some("non-ASCII addresses need the SMTPUTF8 parameter");
    }
    if address
        .chars()
        .any(|c| c <= ' ' || c.is_control() || c.is_whitespace())
    {
        return Some("spaces and control characters are not accepted");
    }
    let Some((local, domain)) = address.rsplit_once('@') else {
        return Some("a full address (local@domain) is required");
    };
    if local.is_empty() {
        return Some("the local part is empty");
    }
    if local.contains('@') {
        return Some("only one @ is allowed");
    }
    if local.contains('%') {
        return Some("%-routing is not accepted");
    }
    if local.contains('!') {
        return Some("!-paths are not accepted");
    }
    let ascii = if domain.is_ascii() {
        domain.to_string()
    } else {
        match crate::intl::ascii_domain(domain) {
            Some(a) => a,
            None => return Some("the domain is not a valid internationalised domain name"),
        }
    };
    match crate::users::validate_domain(&ascii) {
        Ok(d) if d.contains('.') => None,
        _ => Some("the domain is not a valid DNS domain name"),
    }
}

/// 553 5.6.7 (RFC 6531 3.5): a non-ASCII address in a transaction
/// without SMTPUTF8.
pub(super) fn needs_smtputf8(role: &str, address: &str) -> Reply {
    Reply::new(
        553,
        "5.6.7",
        format!(
            "{role} address <{}> is not ASCII: use MAIL FROM:<...> SMTPUTF8",
            shown(address, false)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_tricks_are_refused() {
        for ok in [
            "bob@remote.example",
            "o'brien+tag@sub.remote.example",
            "x@a.b.",
        ] {
            assert_eq!(address_problem(ok, false), None, "{ok}");
        }
        for bad in [
            "user%other.example@example.com",
            "a@b@example.com",
            "host!user@example.com",
            "john doe@example.com",
            "usér@example.com",
            "user@",
            "@example.com",
            "user@localhost",
            "user@-bad-.example",
            "user@exa_mple.com",
            "user@\"quoted\"",
            "tab\t@example.com",
        ] {
            assert!(address_problem(bad, false).is_some(), "{bad}");
        }
        for ok in [
            "usér@example.com",
            "jürgen@bücher.example",
            "李@例え.テスト",
        ] {
            assert_eq!(address_problem(ok, true), None, "{ok}");
        }
        for bad in [
            "a\u{a0}b@example.com",
            "a\u{85}b@example.com",
            "a@b\u{2028}.example",
            "a@bü cher.example",
            "a@%.example",
        ] {
            assert!(address_problem(bad, true).is_some(), "{bad}");
        }
        assert!(has_source_route(b"RCPT TO:<@relay.example:u@x.example>"));
        assert!(has_source_route(b"MAIL FROM: <@a,@b:u@x.example>"));
        assert!(!has_source_route(b"RCPT TO:<u@x.example>"));
        assert!(!has_source_route(b"NOOP"));
    }

    #[test]
    fn huge_declared_sizes_are_spotted() {
        assert!(declares_huge_size(
            b"MAIL FROM:<a@b.c> size=99999999999999999999999"
        ));
        assert!(!declares_huge_size(
            b"MAIL FROM:<a@b.c> SIZE=1234567890123456789"
        ));
        assert!(!declares_huge_size(b"MAIL FROM:<a@b.c>"));
    }
}
