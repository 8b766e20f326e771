//! The DATA phase: the message read under its bounds and screened, then
//! handed to `submission`, whose answer is the reply.

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Flow, MAX_COMMAND, Mode, RECEIVED_FIXED, Session, Transaction};
use crate::config::FailureAction;
use crate::scan::Verdict;
use crate::smtp::conn::{Conn, ConnError};
use crate::smtp::data::{DataError, DataReceiver};
use crate::smtp::identity;
use crate::smtp::reply::Reply;
use crate::smtp::screen::{self, Screened};
use crate::store::{Submission, queue_id};
use crate::submission;

impl Session<'_> {
    pub(super) async fn data<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        conn: &mut Conn<S>,
    ) -> Result<Flow, ConnError> {
        let check = match &self.state.tx {
            None => Err(Reply::new(503, "5.5.1", "Need MAIL command first")),
            Some(tx) if tx.recipients.is_empty() => {
                Err(Reply::new(503, "5.5.1", "Need RCPT command first"))
            }
            Some(_) => Ok(()),
        };
        if let Err(r) = check {
            self.send(conn, r).await?;
            return Ok(Flow::Continue);
        }
        self.send(conn, Reply::new(354, "", "End data with <CR><LF>.<CR><LF>"))
            .await?;
        conn.flush().await?;
        let mut tx = self.state.tx.take().expect("checked");
        let max = self.size_limit();
        let mut rx = DataReceiver::new(max);
        let mut body = Vec::with_capacity(8 * 1024);
        conn.read_data(&mut rx, &mut body, self.srv.smtp.data_timeout(), |n| {
            tx.room.grow_to(n, max).then(|| tx.room.held())
        })
        .await?;
        let reply = match rx.verdict().map(|()| self.check_identity(&body)) {
            Ok(Err(r)) => {
                self.srv.app.note_refused();
                tracing::info!(ip = %self.ip, user = self.state.user().unwrap_or(""), reply = %r.text, "message refused");
                r
            }
            Ok(Ok(())) => self.finish(tx, Bytes::from(body)).await,
            Err(e) => {
                self.srv.app.note_refused();
                let r = data_error_reply(e, max);
                tracing::info!(ip = %self.ip, user = self.state.user().unwrap_or(""), reply = %r.text, "message refused");
                r
            }
        };
        self.send(conn, reply).await?;
        Ok(Flow::Continue)
    }

    /// The header From and Sender against the user (`header_from_check`).
    pub(super) fn check_identity(&self, body: &[u8]) -> Result<(), Reply> {
        let name = self.state.user().unwrap_or_default();
        let user = match self.srv.app.store.user(name) {
            Ok(Some(u)) => u,
            Ok(None) => return Err(Reply::new(550, "5.7.1", "User no longer exists")),
            Err(e) => {
                tracing::error!(error = %e, "store read failed");
                return Err(Reply::new(
                    451,
                    "4.3.0",
                    "Temporary local problem, try again later",
                ));
            }
        };
        let check = self.srv.app.settings.read(|c| c.settings.header_from_check);
        identity::check_headers(body, &user, check)
            .map_err(|why| Reply::new(550, "5.7.1", format!("Message refused: {why}")))
    }

    /// Screens the message, then hands it to the committer, which decides
    /// (with the sender's behaviour) whether it is queued or held.
    pub(super) async fn finish(&mut self, tx: Transaction, body: Bytes) -> Reply {
        if let Err(r) = self.srv.app.store.admit(body.len() as u64) {
            self.srv.app.note_refused();
            return refusal_reply(r);
        }
        match self.srv.screener.screen(body.clone()).await {
            Screened::Clean(v) | Screened::Caught(v) => self.queue(tx, &body, v).await,
            Screened::Failed(why) => {
                let action = self.srv.scan_failure;
                tracing::warn!(ip = %self.ip, user = self.state.user().unwrap_or(""), error = %why, ?action, "scan failed");
                match action {
                    FailureAction::Accept => {
                        let unscanned = Verdict {
                            class: crate::scan::Class::Clean,
                            score: 0.0,
                            reasons: Vec::new(),
                            lock_score: 0.0,
                            classifier_only: false,
                            fingerprint: 0,
                        };
                        self.queue(tx, &body, unscanned).await
                    }
                    FailureAction::Tempfail => {
                        self.srv.app.note_refused();
                        Reply::new(
                            451,
                            "4.7.1",
                            "Message could not be scanned, try again later",
                        )
                    }
                    FailureAction::Reject => {
                        self.srv.app.note_refused();
                        Reply::new(554, "5.7.0", "Message could not be scanned")
                    }
                }
            }
        }
    }

    pub(super) async fn queue(&mut self, tx: Transaction, body: &[u8], content: Verdict) -> Reply {
        let user = self.state.user().unwrap_or_default().to_string();
        let id = self.srv.app.committer.reserve_id();
        let mut message = self.received_header(id, &tx).into_bytes();
        message.extend_from_slice(body);
        let summary = screen::summary(&content);
        let handed = Submission {
            id,
            user,
            sender: tx.sender,
            recipients: tx.recipients,
            message,
            client_ip: self.ip.to_string(),
            helo: self.state.helo().unwrap_or_default().to_string(),
            smtputf8: tx.smtputf8,
            content,
            dsn: tx.dsn,
            recipient_dsn: tx.recipient_dsn,
        };
        submission::submit(&self.srv.app, handed, &summary)
            .await
            .into()
    }

    /// The largest message a client may send (SIZE, and the DATA cap):
    /// `max_message_size` less the most our Received header can add, so
    /// what we queue, and pass to a next hop with the same limit, fits.
    pub(super) fn size_limit(&self) -> usize {
        let bound = RECEIVED_FIXED + self.srv.app.hostname.len() + MAX_COMMAND;
        self.srv.smtp.max_message_size.saturating_sub(bound)
    }

    /// Trace header (RFC 5321 4.4) with the RFC 3848 protocol name
    /// (UTF8 in front for SMTPUTF8, RFC 6531 4.3).
    pub(super) fn received_header(&self, id: u64, tx: &Transaction) -> String {
        let proto = match (
            self.state.esmtp(),
            self.mode == Mode::Tls,
            self.state.by_password(),
        ) {
            (false, _, _) => "SMTP",
            (true, true, true) => "ESMTPSA",
            (true, true, false) => "ESMTPS",
            (true, false, true) => "ESMTPA",
            (true, false, false) => "ESMTP",
        };
        let proto = match (tx.smtputf8, proto.strip_prefix('E')) {
            (true, Some(rest)) => format!("UTF8{rest}"),
            _ => proto.to_string(),
        };
        let helo: String = self
            .state
            .helo()
            .unwrap_or_default()
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(255)
            .collect();
        let for_clause = match tx.recipients.as_slice() {
            [one] => format!("\r\n\tfor <{one}>"),
            _ => String::new(),
        };
        // The one RFC 5322 date format of every header Outguard writes.
        let date = crate::clock::mail_date(self.srv.app.clock.now());
        format!(
            "Received: from {helo} ([{ip}])\r\n\tby {host} (Outguard) with {proto} id {id}{for_clause};\r\n\t{date}\r\n",
            ip = self.ip,
            host = self.srv.app.hostname,
            id = queue_id(id),
        )
    }
}

/// No room under the disk reserve (452 4.3.1, RFC 3463), or a failed store.
pub(super) fn refusal_reply(r: crate::store::Refusal) -> Reply {
    submission::store_refusal(r).into()
}

pub(super) fn data_error_reply(e: DataError, max: usize) -> Reply {
    match e {
        DataError::TooBig => Reply::new(
            552,
            "5.3.4",
            format!("Message exceeds the maximum size of {max} octets"),
        ),
        DataError::Nul => Reply::new(550, "5.6.0", "Message contains NUL characters"),
        DataError::BareLineEnding => Reply::new(
            550,
            "5.6.0",
            "Message contains a bare CR or LF; lines must end with CRLF",
        ),
        DataError::LongLine => Reply::new(
            550,
            "5.6.0",
            "Message has a line longer than 998 characters",
        ),
        DataError::NoRoom => no_room(),
    }
}

pub(super) fn no_room() -> Reply {
    Reply::new(452, "4.3.1", "Too much mail in progress, try again later")
}
