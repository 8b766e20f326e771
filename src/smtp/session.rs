//! One SMTP session (RFC 5321 with RFC 6409 submission rules). Each
//! command is first checked against the session state (`check_*`: is it
//! valid now?) and then carried out. Commands are parsed by smtp-proto;
//! lines are read into a fixed-capacity buffer.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use jiff::Timestamp;
use smtp_proto::{Error as ParseError, MailFrom, RcptTo, Request};
use tokio::io::{AsyncRead, AsyncWrite};

use super::conn::{Conn, ConnError, Line, LineRead};
use super::data::{DataError, DataReceiver};
use super::identity;
use super::inflight::{self, Reservation};
use super::preauth::PreAuth;
use super::reply::{Reply, multiline};
use super::screen::{self, Screened};
use super::{Server, Stats, sniff};
use crate::auth::sasl::{self, Response, SaslError};
use crate::auth::throttle::Refusal;
use crate::config::FailureAction;
use crate::limits::{self, Counts};
use crate::response::Held;
use crate::scan::{Class, Verdict};
use crate::store::envelope::{self, MessageDsn, Notify, RcptDsn, Ret};
use crate::store::{AcceptError, Accepted, Submission, queue_id};
use crate::users::{EffectiveSettings, QuarantineResponse, User, UserName};
use crate::windows;

/// Longest command line, CRLF included (RFC 5321 4.5.3.1.4).
const MAX_COMMAND: usize = 512;
/// The Received header without its host name and recipient (each recipient
/// fits a command line): text, HELO (at most 255), an IPv6 address,
/// protocol, queue id and date, generously.
const RECEIVED_FIXED: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Cleartext; STARTTLS offered.
    Plain,
    /// Inside TLS (implicit, or after STARTTLS).
    Tls,
}

struct Transaction {
    sender: String,
    recipients: Vec<String>,
    /// MAIL carried SMTPUTF8 (RFC 6531): UTF-8 addresses and headers.
    smtputf8: bool,
    /// Its share of the in-flight memory budget.
    room: Reservation,
    /// RFC 3461 parameters: RET/ENVID, and NOTIFY/ORCPT per recipient.
    dsn: MessageDsn,
    recipient_dsn: Vec<RcptDsn>,
}

struct Session<'a> {
    srv: &'a Server,
    ip: IpAddr,
    mode: Mode,
    /// Set by EHLO/HELO.
    helo: Option<String>,
    esmtp: bool,
    /// Authenticated user: by AUTH, or by the client's address.
    user: Option<String>,
    /// Whether `user` came from AUTH (for the Received protocol name).
    by_password: bool,
    tx: Option<Transaction>,
    errors: u32,
    preauth: Arc<PreAuth>,
}

/// A user as a command sees it: record, settings in force, usage now.
struct Standing {
    user: User,
    eff: EffectiveSettings,
    counts: Counts,
    now: Timestamp,
    tz: jiff::tz::TimeZone,
}

enum Flow {
    Continue,
    Quit,
    StartTls,
}

/// RET and ENVID of MAIL FROM (checked by `check_mail`).
fn message_dsn(from: &MailFrom<String>) -> MessageDsn {
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
fn rcpt_dsn(to: &RcptTo<String>) -> RcptDsn {
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

/// The IP-authorised user for a client address, if IP authorisation is on.
pub fn ip_user(srv: &Server, ip: IpAddr) -> Option<String> {
    if !srv.settings.read(|c| c.settings.ip_auth) {
        return None;
    }
    match srv.store.network_user(ip) {
        Ok(u) => u.map(|u| u.name),
        Err(e) => {
            tracing::error!(error = %e, "IP user lookup failed");
            None
        }
    }
}

/// Runs a session to its end. Returns the stream if the client asked for
/// STARTTLS (the caller does the handshake and starts a fresh session).
pub async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    srv: &Server,
    io: S,
    ip: IpAddr,
    ip_user: Option<String>,
    mode: Mode,
    banner: bool,
) -> Option<S> {
    let preauth = PreAuth::new(None, srv.smtp.preauth_timeout());
    run_admitted(srv, io, ip, ip_user, mode, banner, preauth).await
}

/// `run`, for a session admitted under the cap on unauthenticated
/// sessions (its place is given back at AUTH).
pub async fn run_admitted<S: AsyncRead + AsyncWrite + Unpin>(
    srv: &Server,
    io: S,
    ip: IpAddr,
    ip_user: Option<String>,
    mode: Mode,
    banner: bool,
    preauth: Arc<PreAuth>,
) -> Option<S> {
    if ip_user.is_some() {
        preauth.release();
    }
    let mut conn = Conn::new(io);
    let by_ip = ip_user.is_some();
    let mut s = Session {
        srv,
        ip,
        mode,
        helo: None,
        esmtp: false,
        user: ip_user,
        by_password: false,
        tx: None,
        errors: 0,
        preauth,
    };
    if by_ip {
        tracing::info!(%ip, user = s.user.as_deref().unwrap_or(""), "authenticated by address");
    }
    match s.serve(&mut conn, banner).await {
        Ok(Flow::StartTls) => {
            conn.discard_buffered();
            return Some(conn.into_inner());
        }
        Ok(_) => {}
        Err(ConnError::Timeout) => {
            let _ = conn
                .reply("421 4.4.2 Idle timeout, closing connection\r\n")
                .await;
            tracing::info!(%ip, "session closed: idle timeout");
        }
        Err(ConnError::Closed) => tracing::info!(%ip, "client disconnected"),
        Err(ConnError::Io(e)) => tracing::info!(%ip, error = %e, "session I/O error"),
    }
    conn.close().await;
    None
}

impl Session<'_> {
    /// `banner`: false after STARTTLS, where the client goes on with EHLO.
    async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        conn: &mut Conn<S>,
        banner: bool,
    ) -> Result<Flow, ConnError> {
        let sent = std::time::Instant::now();
        if banner {
            conn.reply(&format!("220 {} ESMTP Outguard\r\n", self.srv.hostname))
                .await?;
            conn.flush().await?;
        }
        let first = if banner && self.mode == Mode::Plain {
            tokio::select! {
                b = conn.peek_byte(self.command_wait()) => Some(b?),
                () = self.srv.draining.wait() => return self.drained(conn).await,
            }
        } else {
            None
        };
        if first == Some(sniff::TLS_HANDSHAKE_RECORD) {
            // A ClientHello after the banner: an implicit-TLS client slower
            // than the sniff wait. It cannot read anything we could say;
            // close, and make its address wait long enough next time.
            self.srv.hello_wait.saw_late_hello(self.ip, sent.elapsed());
            tracing::info!(ip = %self.ip, "TLS ClientHello after the banner; closing (the next one from this address will be waited for)");
            return Ok(Flow::Quit);
        }
        let mut line = Line::new();
        loop {
            // Waiting for a command is idle: on shutdown, say so and close.
            // (A message under way finishes first; this is checked after it.)
            if self.srv.draining.is_on() && !conn.has_buffered() {
                return self.drained(conn).await;
            }
            let read = tokio::select! {
                r = conn.read_line(&mut line, MAX_COMMAND - 2, self.command_wait()) => r?,
                () = self.srv.draining.wait(), if !conn.has_buffered() => return self.drained(conn).await,
            };
            let flow = self.command(conn, &mut line, read).await?;
            match flow {
                Flow::Continue => {}
                Flow::Quit => return Ok(Flow::Quit),
                Flow::StartTls => return Ok(Flow::StartTls),
            }
            if self.errors >= self.srv.smtp.max_errors {
                self.send(
                    conn,
                    Reply::new(421, "4.7.0", "Too many errors, closing connection"),
                )
                .await?;
                tracing::info!(ip = %self.ip, "session closed: too many errors");
                return Ok(Flow::Quit);
            }
            // Answer a pipelined group at once, when its last command is in.
            if !conn.has_buffered() {
                conn.flush().await?;
            }
        }
    }

    /// The shutdown reply to an idle session.
    async fn drained<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        conn: &mut Conn<S>,
    ) -> Result<Flow, ConnError> {
        conn.reply(super::drain::REPLY).await?;
        conn.flush().await?;
        tracing::info!(ip = %self.ip, "session closed: shutting down");
        Ok(Flow::Quit)
    }

    /// Idle time allowed for the next command: shorter before AUTH.
    fn command_wait(&self) -> std::time::Duration {
        match self.user {
            Some(_) => self.srv.smtp.command_timeout(),
            None => self.preauth.wait(self.srv.smtp.preauth_command_timeout()),
        }
    }

    async fn send<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        conn: &mut Conn<S>,
        r: Reply,
    ) -> Result<(), ConnError> {
        if !r.is_positive() {
            self.errors += u32::from(r.code >= 500);
        }
        conn.reply(&r.render(self.esmtp)).await
    }

    async fn command<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        conn: &mut Conn<S>,
        line: &mut Line,
        read: LineRead,
    ) -> Result<Flow, ConnError> {
        if read == LineRead::TooLong {
            self.send(conn, Reply::new(500, "5.5.2", "Line too long"))
                .await?;
            return Ok(Flow::Continue);
        }
        if line.contains(&0) {
            self.send(conn, Reply::new(500, "5.5.2", "NUL character in command"))
                .await?;
            return Ok(Flow::Continue);
        }
        // smtp-proto wants the line with its terminator; the read limit
        // leaves room for it.
        let routed = has_source_route(line);
        let huge_size = declares_huge_size(line);
        let _ = line.extend_from_slice(b"\r\n");
        let parsed = Request::parse(&mut line.iter()).map(Request::into_owned);
        let request = match parsed {
            Ok(r) => r,
            Err(e) => {
                let r = parse_error(e);
                self.send(conn, r).await?;
                return Ok(Flow::Continue);
            }
        };
        let reply = match request {
            Request::Ehlo { host } => return self.greet(conn, host, true).await,
            Request::Helo { host } => return self.greet(conn, host, false).await,
            Request::Lhlo { .. } => Reply::new(500, "5.5.1", "LHLO is for LMTP; this is SMTP"),
            Request::StartTls => {
                if let Err(r) = self.check_starttls() {
                    r
                } else {
                    self.send(conn, Reply::new(220, "2.0.0", "Ready to start TLS"))
                        .await?;
                    conn.flush().await?;
                    return Ok(Flow::StartTls);
                }
            }
            Request::Auth {
                mechanism,
                initial_response,
            } => match self.auth(conn, mechanism, &initial_response).await? {
                Some(r) => r,
                None => return Ok(Flow::Quit),
            },
            Request::Mail { mut from } => {
                if huge_size {
                    from.size = usize::MAX;
                }
                self.mail(from, routed)
            }
            Request::Rcpt { to } => self.rcpt(to, routed),
            Request::Data => return self.data(conn).await,
            Request::Rset => {
                self.tx = None;
                Reply::new(250, "2.0.0", "OK")
            }
            Request::Noop { .. } => Reply::new(250, "2.0.0", "OK"),
            Request::Vrfy { .. } => Reply::new(
                252,
                "2.5.0",
                "Cannot VRFY user, but will accept message and attempt delivery",
            ),
            Request::Help { .. } => Reply::new(
                214,
                "2.0.0",
                "Commands: EHLO HELO STARTTLS AUTH MAIL RCPT DATA RSET NOOP VRFY HELP QUIT",
            ),
            Request::Quit => {
                self.send(conn, Reply::new(221, "2.0.0", "Bye")).await?;
                return Ok(Flow::Quit);
            }
            Request::Expn { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. }
            | Request::Bdat { .. } => Reply::new(502, "5.5.1", "Command not implemented"),
        };
        self.send(conn, reply).await?;
        Ok(Flow::Continue)
    }

    async fn greet<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        conn: &mut Conn<S>,
        host: String,
        esmtp: bool,
    ) -> Result<Flow, ConnError> {
        match self.ehlo(host, esmtp) {
            Ok(text) => conn.reply(&text).await?,
            Err(r) => self.send(conn, r).await?,
        }
        Ok(Flow::Continue)
    }

    /// The greeting reply as sent (EHLO's is multi-line).
    fn ehlo(&mut self, host: String, esmtp: bool) -> Result<String, Reply> {
        if host.is_empty() || host.len() > 255 {
            return Err(Reply::new(501, "5.5.4", "Syntax: EHLO hostname"));
        }
        self.tx = None;
        self.helo = Some(host.clone());
        self.esmtp = esmtp;
        let hostname = &self.srv.hostname;
        if !esmtp {
            return Ok(Reply::new(250, "", format!("{hostname} Hello {host}")).render(false));
        }
        let mut lines = vec![
            format!("{hostname} Hello {host} [{}]", self.ip),
            "PIPELINING".to_string(),
            format!("SIZE {}", self.size_limit()),
            "8BITMIME".to_string(),
            "DSN".to_string(),
            "ENHANCEDSTATUSCODES".to_string(),
            "SMTPUTF8".to_string(),
        ];
        match self.mode {
            Mode::Plain => lines.push("STARTTLS".into()),
            Mode::Tls => lines.push("AUTH PLAIN LOGIN".into()),
        }
        Ok(multiline(250, &lines))
    }

    fn check_starttls(&self) -> Result<(), Reply> {
        if self.mode == Mode::Tls {
            return Err(Reply::new(503, "5.5.1", "TLS already active"));
        }
        if self.helo.is_none() || !self.esmtp {
            return Err(Reply::new(503, "5.5.1", "Send EHLO first"));
        }
        if self.tx.is_some() {
            return Err(Reply::new(
                503,
                "5.5.1",
                "STARTTLS not allowed during a mail transaction",
            ));
        }
        Ok(())
    }

    fn check_auth(&self) -> Result<(), Reply> {
        if self.mode != Mode::Tls {
            return Err(Reply::new(
                538,
                "5.7.11",
                "Encryption required for requested authentication mechanism",
            ));
        }
        if self.helo.is_none() || !self.esmtp {
            return Err(Reply::new(503, "5.5.1", "Send EHLO first"));
        }
        if self.by_password {
            return Err(Reply::new(503, "5.5.1", "Already authenticated"));
        }
        if self.tx.is_some() {
            return Err(Reply::new(
                503,
                "5.5.1",
                "AUTH not allowed during a mail transaction",
            ));
        }
        Ok(())
    }

    /// Returns `None` when the connection must be closed.
    async fn auth<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        conn: &mut Conn<S>,
        mechanism: u64,
        initial: &str,
    ) -> Result<Option<Reply>, ConnError> {
        if let Err(r) = self.check_auth() {
            return Ok(Some(r));
        }
        if self.srv.throttle.is_blocked(self.ip) {
            tracing::warn!(ip = %self.ip, "AUTH refused: address throttled");
            self.send(
                conn,
                Reply::new(
                    421,
                    "4.7.0",
                    "Too many failed logins from your address, try again later",
                ),
            )
            .await?;
            return Ok(None);
        }
        let credentials = match mechanism {
            smtp_proto::AUTH_PLAIN => self.sasl_plain(conn, initial).await?,
            smtp_proto::AUTH_LOGIN => self.sasl_login(conn, initial).await?,
            _ => {
                return Ok(Some(Reply::new(
                    504,
                    "5.5.4",
                    "Unrecognized authentication type",
                )));
            }
        };
        let (name, password) = match credentials {
            Ok(c) => c,
            Err(r) => return Ok(Some(r)),
        };
        let reply = self.verify(name, password).await;
        // The address is blocked: drop the client, as before the exchange.
        if reply.code == 421 {
            self.send(conn, reply).await?;
            return Ok(None);
        }
        Ok(Some(reply))
    }

    async fn challenge<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        conn: &mut Conn<S>,
        prompt: &str,
    ) -> Result<Result<Vec<u8>, Reply>, ConnError> {
        conn.reply(&format!("334 {prompt}\r\n")).await?;
        conn.flush().await?;
        let mut line = Line::new();
        let read = conn
            .read_line(&mut line, super::conn::LINE_CAP, self.command_wait())
            .await?;
        if read == LineRead::TooLong {
            return Ok(Err(Reply::new(
                500,
                "5.5.6",
                "Authentication exchange line is too long",
            )));
        }
        Ok(decoded(&line))
    }

    async fn sasl_plain<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        conn: &mut Conn<S>,
        initial: &str,
    ) -> Result<Result<(String, String), Reply>, ConnError> {
        let msg = if initial.is_empty() {
            self.challenge(conn, "").await?
        } else {
            decoded(initial.as_bytes())
        };
        Ok(msg.and_then(|m| sasl::plain(&m).map_err(sasl_reply)))
    }

    async fn sasl_login<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        conn: &mut Conn<S>,
        initial: &str,
    ) -> Result<Result<(String, String), Reply>, ConnError> {
        let user = if initial.is_empty() {
            self.challenge(conn, "VXNlcm5hbWU6").await?
        } else {
            decoded(initial.as_bytes())
        };
        let user = match user.and_then(|u| sasl::login_field(&u).map_err(sasl_reply)) {
            Ok(u) => u,
            Err(r) => return Ok(Err(r)),
        };
        let pass = self.challenge(conn, "UGFzc3dvcmQ6").await?;
        Ok(pass
            .and_then(|p| sasl::login_field(&p).map_err(sasl_reply))
            .map(|p| (user, p)))
    }

    async fn verify(&mut self, name: String, password: String) -> Reply {
        let canonical = UserName::parse(&name).ok().map(|n| n.to_string());
        let user = match canonical.as_deref().map(|n| self.srv.store.user(n)) {
            Some(Ok(u)) => u,
            Some(Err(e)) => {
                tracing::error!(error = %e, "user lookup failed");
                return Reply::new(454, "4.7.0", "Temporary authentication failure");
            }
            None => None,
        };
        let phc = user.as_ref().and_then(|u| u.password_hash.as_deref());
        let key = canonical.clone().unwrap_or_else(|| name.clone());
        // Reserved before the hash: concurrent guesses count at once.
        let account = user.as_ref().map(|_| key.as_str());
        let ticket = match self.srv.throttle.begin(self.ip, account) {
            Ok(t) => t,
            Err(refusal) => return throttled(self.ip, &key, refusal),
        };
        if self.srv.verifier.check(&key, &password, phc).await {
            self.srv.throttle.succeed(ticket);
            tracing::info!(ip = %self.ip, user = key, "auth ok");
            self.user = Some(key);
            self.by_password = true;
            self.preauth.release();
            return Reply::new(235, "2.7.0", "Authentication successful");
        }
        Stats::bump(&self.srv.stats.auth_failures);
        let verdict = self.srv.throttle.fail(ticket);
        tracing::warn!(ip = %self.ip, user = %name, throttled = verdict.address_blocked, "auth failed");
        if verdict.account_blocked {
            crate::auth::alarm::account_under_attack(self.srv, &key, self.ip, "SMTP AUTH");
        }
        Reply::new(535, "5.7.8", "Authentication credentials invalid")
    }

    /// The authenticated user's record, settings in force and usage.
    fn standing(&self, name: &str) -> Result<Option<Standing>, Reply> {
        let store_err = |e: crate::store::StoreError| {
            tracing::error!(error = %e, "store read failed");
            Reply::new(451, "4.3.0", "Temporary local problem, try again later")
        };
        let Some(user) = self.srv.store.user(name).map_err(store_err)? else {
            return Ok(None);
        };
        let usage = self.srv.store.usage(name).map_err(store_err)?;
        let now = self.srv.clock.now();
        let (eff, tz) = self
            .srv
            .settings
            .read(|c| (user.settings.resolve(&c.settings.defaults), c.tz.clone()));
        let counts = usage.counts(&windows::windows(now, &tz));
        Ok(Some(Standing {
            user,
            eff,
            counts,
            now,
            tz,
        }))
    }

    fn mail(&mut self, from: MailFrom<String>, routed: bool) -> Reply {
        match self
            .check_mail(&from, routed)
            .and_then(|()| self.room(&from))
        {
            Ok(room) => {
                self.tx = Some(Transaction {
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
                    tracing::info!(ip = %self.ip, user = self.user.as_deref().unwrap_or(""), sender = %from.address, reply = %r.text, "MAIL refused");
                }
                r
            }
        }
    }

    /// Reserves the declared size (or a first chunk) in the budget for
    /// messages in flight.
    fn room(&self, from: &MailFrom<String>) -> Result<Reservation, Reply> {
        let n = from.size.clamp(
            inflight::CHUNK,
            self.srv.smtp.max_message_size.max(inflight::CHUNK),
        );
        self.srv.guards.inflight.reserve(n).ok_or_else(|| {
            tracing::warn!(ip = %self.ip, size = n, "MAIL deferred: in-flight memory budget full");
            no_room()
        })
    }

    fn check_mail(&self, from: &MailFrom<String>, routed: bool) -> Result<(), Reply> {
        if self.helo.is_none() {
            return Err(Reply::new(503, "5.5.1", "Send EHLO/HELO first"));
        }
        let Some(name) = self.user.as_deref() else {
            return Err(Reply::new(530, "5.7.0", "Authentication required"));
        };
        if self.tx.is_some() {
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
        let Some(Standing {
            user,
            eff,
            counts,
            now,
            tz,
        }) = self.standing(name)?
        else {
            return Err(Reply::new(550, "5.7.1", "User no longer exists"));
        };
        let check = self.srv.settings.read(|c| c.settings.sender_check);
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
        if let Some(lock) = user.lock.in_force(now) {
            return Err(Reply::new(550, "5.7.1", crate::store::lock_text(lock, &tz)));
        }
        limits::check_messages(&counts, &eff, 1, now, &tz)
            .map_err(|e| Reply::new(451, "4.7.1", e.to_string()))
    }

    fn rcpt(&mut self, to: RcptTo<String>, routed: bool) -> Reply {
        match self.check_rcpt(&to, routed) {
            Ok(()) => {
                let tx = self.tx.as_mut().expect("checked");
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

    fn check_rcpt(&self, to: &RcptTo<String>, routed: bool) -> Result<(), Reply> {
        let Some(tx) = &self.tx else {
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
        let name = self.user.as_deref().unwrap_or_default();
        let Some(Standing {
            eff,
            counts,
            now,
            tz,
            ..
        }) = self.standing(name)?
        else {
            return Err(Reply::new(550, "5.7.1", "User no longer exists"));
        };
        let pending = u32::try_from(tx.recipients.len()).unwrap_or(u32::MAX);
        limits::check_recipients(&counts, &eff, pending + 1, now, &tz)
            .map_err(|e| Reply::new(452, "4.5.3", e.to_string()))
    }

    async fn data<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        conn: &mut Conn<S>,
    ) -> Result<Flow, ConnError> {
        let check = match &self.tx {
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
        let mut tx = self.tx.take().expect("checked");
        let max = self.size_limit();
        let mut rx = DataReceiver::new(max);
        let mut body = Vec::with_capacity(8 * 1024);
        conn.read_data(&mut rx, &mut body, self.srv.smtp.data_timeout(), |n| {
            tx.room.grow_to(n, max).then(|| tx.room.held())
        })
        .await?;
        let reply = match rx.verdict().map(|()| self.check_identity(&body)) {
            Ok(Err(r)) => {
                self.srv.note_refused();
                tracing::info!(ip = %self.ip, user = self.user.as_deref().unwrap_or(""), reply = %r.text, "message refused");
                r
            }
            Ok(Ok(())) => self.finish(tx, Bytes::from(body)).await,
            Err(e) => {
                self.srv.note_refused();
                let r = data_error_reply(e, max);
                tracing::info!(ip = %self.ip, user = self.user.as_deref().unwrap_or(""), reply = %r.text, "message refused");
                r
            }
        };
        self.send(conn, reply).await?;
        Ok(Flow::Continue)
    }

    /// The header From and Sender against the user (`header_from_check`).
    fn check_identity(&self, body: &[u8]) -> Result<(), Reply> {
        let name = self.user.as_deref().unwrap_or_default();
        let user = match self.srv.store.user(name) {
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
        let check = self.srv.settings.read(|c| c.settings.header_from_check);
        identity::check_headers(body, &user, check)
            .map_err(|why| Reply::new(550, "5.7.1", format!("Message refused: {why}")))
    }

    /// Screens the message, then hands it to the committer, which decides
    /// (with the sender's behaviour) whether it is queued or held.
    async fn finish(&mut self, tx: Transaction, body: Bytes) -> Reply {
        if let Err(r) = self.srv.store.admit(body.len() as u64) {
            self.srv.note_refused();
            return refusal_reply(r);
        }
        match self.srv.screener.screen(body.clone()).await {
            Screened::Clean(v) | Screened::Caught(v) => self.queue(tx, &body, v).await,
            Screened::Failed(why) => {
                let action = self.srv.scan_failure;
                tracing::warn!(ip = %self.ip, user = self.user.as_deref().unwrap_or(""), error = %why, ?action, "scan failed");
                match action {
                    FailureAction::Accept => {
                        let unscanned = Verdict {
                            class: crate::scan::Class::Clean,
                            score: 0.0,
                            reasons: Vec::new(),
                        };
                        self.queue(tx, &body, unscanned).await
                    }
                    FailureAction::Tempfail => {
                        self.srv.note_refused();
                        Reply::new(
                            451,
                            "4.7.1",
                            "Message could not be scanned, try again later",
                        )
                    }
                    FailureAction::Reject => {
                        self.srv.note_refused();
                        Reply::new(554, "5.7.0", "Message could not be scanned")
                    }
                }
            }
        }
    }

    async fn queue(&mut self, tx: Transaction, body: &[u8], content: Verdict) -> Reply {
        let user = self.user.clone().unwrap_or_default();
        let id = self.srv.committer.reserve_id();
        let mut message = self.received_header(id, &tx).into_bytes();
        message.extend_from_slice(body);
        let rcpts = tx.recipients.len();
        let size = message.len();
        let summary = screen::summary(&content);
        let class = content.class;
        let submission = Submission {
            id,
            user: user.clone(),
            sender: tx.sender,
            recipients: tx.recipients,
            message,
            client_ip: self.ip.to_string(),
            helo: self.helo.clone().unwrap_or_default(),
            smtputf8: tx.smtputf8,
            content,
            dsn: tx.dsn,
            recipient_dsn: tx.recipient_dsn,
        };
        let result = self.srv.committer.accept(submission).await;
        let reply = match result {
            Ok(Accepted::Queued(id)) => {
                Stats::bump(&self.srv.stats.accepted);
                tracing::info!(ip = %self.ip, user, id = %queue_id(id), recipients = rcpts, size, "message accepted");
                return Reply::new(250, "2.0.0", format!("Ok: queued as {}", queue_id(id)));
            }
            Ok(Accepted::Held(held)) => return self.held(&user, id, &held, class, &summary),
            Err(AcceptError::NoUser) => Reply::new(550, "5.7.1", "User no longer exists"),
            Err(AcceptError::Locked(text)) => Reply::new(550, "5.7.1", text),
            Err(AcceptError::MessageLimit(e)) => Reply::new(451, "4.7.1", e.to_string()),
            Err(AcceptError::RecipientLimit(e)) => Reply::new(452, "4.5.3", e.to_string()),
            Err(AcceptError::Refused(r)) => refusal_reply(r),
            Err(AcceptError::Store(e)) => {
                tracing::error!(error = %e, "queueing failed");
                Reply::new(451, "4.3.0", "Temporary local problem, try again later")
            }
        };
        self.srv.note_refused();
        tracing::info!(ip = %self.ip, user, reply = %reply.text, "message refused");
        reply
    }

    /// Held (and perhaps the user locked): log, notify the admin, and
    /// answer as the user's quarantine response says.
    fn held(&self, user: &str, id: u64, held: &Held, class: Class, summary: &str) -> Reply {
        self.srv.note_caught();
        let (admin, tz, response) = self.srv.settings.read(|c| {
            let eff = self
                .srv
                .store
                .user(user)
                .ok()
                .flatten()
                .map(|u| u.settings.resolve(&c.settings.defaults))
                .unwrap_or_else(|| c.settings.defaults.clone());
            (
                c.settings.admin_address.clone(),
                c.tz.clone(),
                eff.quarantine_response,
            )
        });
        tracing::warn!(ip = %self.ip, user, id = %queue_id(id), %class, fate = %held.fate, reasons = %crate::response::summary(&held.reasons), "message caught");
        crate::response::announce(
            &self.srv.store,
            self.srv.committer.reserve_id(),
            &self.srv.hostname,
            &admin,
            user,
            held,
            &tz,
            self.srv.clock.now(),
        );
        match response {
            QuarantineResponse::Rejected if class == Class::Clean => Reply::new(
                550,
                "5.7.1",
                "Message held for review: unusual sending for this account",
            ),
            QuarantineResponse::Rejected => Reply::new(
                550,
                "5.7.1",
                format!("Message refused: {class} detected ({summary})"),
            ),
            QuarantineResponse::Accepted => {
                Reply::new(250, "2.0.0", format!("Ok: queued as {}", queue_id(id)))
            }
        }
    }

    /// The largest message a client may send (SIZE, and the DATA cap):
    /// `max_message_size` less the most our Received header can add, so
    /// what we queue, and pass to a next hop with the same limit, fits.
    fn size_limit(&self) -> usize {
        let bound = RECEIVED_FIXED + self.srv.hostname.len() + MAX_COMMAND;
        self.srv.smtp.max_message_size.saturating_sub(bound)
    }

    /// Trace header (RFC 5321 4.4) with the RFC 3848 protocol name
    /// (UTF8 in front for SMTPUTF8, RFC 6531 4.3).
    fn received_header(&self, id: u64, tx: &Transaction) -> String {
        let proto = match (self.esmtp, self.mode == Mode::Tls, self.by_password) {
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
            .helo
            .as_deref()
            .unwrap_or_default()
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(255)
            .collect();
        let for_clause = match tx.recipients.as_slice() {
            [one] => format!("\r\n\tfor <{one}>"),
            _ => String::new(),
        };
        let date = self.srv.clock.now().strftime("%a, %d %b %Y %H:%M:%S +0000");
        format!(
            "Received: from {helo} ([{ip}])\r\n\tby {host} (Outguard) with {proto} id {id}{for_clause};\r\n\t{date}\r\n",
            ip = self.ip,
            host = self.srv.hostname,
            id = queue_id(id),
        )
    }
}

fn decoded(line: &[u8]) -> Result<Vec<u8>, Reply> {
    match sasl::decode(line) {
        Ok(Response::Data(d)) => Ok(d),
        Ok(Response::Cancel) => Err(Reply::new(501, "5.0.0", "Authentication cancelled")),
        Err(e) => Err(sasl_reply(e)),
    }
}

/// The answer to a login the throttle refused before looking at it.
fn throttled(ip: IpAddr, user: &str, refusal: Refusal) -> Reply {
    match refusal {
        Refusal::Address => {
            tracing::warn!(%ip, "AUTH refused: address throttled");
            Reply::new(
                421,
                "4.7.0",
                "Too many failed logins from your address, try again later",
            )
        }
        Refusal::Account => {
            tracing::warn!(%ip, user = %user, "AUTH refused: account throttled");
            Reply::new(
                454,
                "4.7.0",
                "Too many failed logins to this account, try again later",
            )
        }
    }
}

fn sasl_reply(e: SaslError) -> Reply {
    match e {
        SaslError::Base64 => Reply::new(501, "5.5.2", "Invalid base64 data"),
        SaslError::Malformed(why) => Reply::new(
            501,
            "5.5.2",
            format!("Malformed authentication data: {why}"),
        ),
    }
}

/// Does a MAIL or RCPT line carry a source route (`<@relay:user@domain>`)?
/// smtp-proto drops the route while parsing (RFC 5321 4.1.1.3 allows
/// that), so it is looked for in the raw line; relaying through a named
/// host is declined.
fn has_source_route(line: &[u8]) -> bool {
    let arg = line.iter().position(|&b| b == b':');
    let rest = arg.map_or(&[][..], |i| line[i + 1..].trim_ascii_start());
    rest.starts_with(b"<@")
}

/// Does the line declare a SIZE of 20 digits or more? smtp-proto's
/// saturating parse wraps such a value around to a small number, which
/// would pass the size check; any such size is over every limit.
fn declares_huge_size(line: &[u8]) -> bool {
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
fn address_problem(address: &str, utf8: bool) -> Option<&'static str> {
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
fn needs_smtputf8(role: &str, address: &str) -> Reply {
    Reply::new(
        553,
        "5.6.7",
        format!(
            "{role} address <{}> is not ASCII: use MAIL FROM:<...> SMTPUTF8",
            shown(address, false)
        ),
    )
}

/// Client text as echoed in a reply: escaped, and short enough that the
/// reply line stays within RFC 5321's 512 octets (escaping alone can make
/// one control octet six). Non-ASCII stays as it is only in an SMTPUTF8
/// transaction (`utf8`); otherwise it is shown as `\u{..}`, since a
/// client that did not ask for UTF-8 need not read it.
pub(super) fn shown(text: &str, utf8: bool) -> String {
    const MAX: usize = 120;
    let mut out = String::new();
    for c in text.chars() {
        let before = out.len();
        if c.is_ascii() || (utf8 && !c.is_control()) {
            out.extend(c.escape_debug());
        } else {
            out.extend(c.escape_unicode());
        }
        if out.len() > MAX {
            out.truncate(before);
            out.push_str("...");
            break;
        }
    }
    out
}

fn parse_error(e: ParseError) -> Reply {
    match e {
        ParseError::UnknownCommand => Reply::new(500, "5.5.1", "Command unrecognized"),
        ParseError::InvalidSenderAddress => Reply::new(501, "5.1.7", "Bad sender address syntax"),
        ParseError::InvalidRecipientAddress => {
            Reply::new(501, "5.1.3", "Bad recipient address syntax")
        }
        ParseError::SyntaxError { syntax } => Reply::new(501, "5.5.4", format!("Syntax: {syntax}")),
        ParseError::InvalidParameter { param } => {
            Reply::new(501, "5.5.4", format!("Invalid {param} parameter"))
        }
        ParseError::UnsupportedParameter { param } => Reply::new(
            555,
            "5.5.4",
            format!("Unsupported parameter {}", shown(&param, false)),
        ),
        _ => Reply::new(500, "5.5.2", "Syntax error"),
    }
}

/// No room under the disk reserve (452 4.3.1, RFC 3463), or a failed store.
fn refusal_reply(r: crate::store::Refusal) -> Reply {
    match r {
        crate::store::Refusal::Full { .. } => Reply::new(452, "4.3.1", r.to_string()),
        crate::store::Refusal::Failed(_) => Reply::new(451, "4.3.0", r.to_string()),
    }
}

fn data_error_reply(e: DataError, max: usize) -> Reply {
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

fn no_room() -> Reply {
    Reply::new(452, "4.3.1", "Too much mail in progress, try again later")
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
    fn echoed_client_text_is_bounded() {
        assert_eq!(shown("a@b.example", false), "a@b.example");
        assert_eq!(shown("jürgen@x.example", false), "j\\u{fc}rgen@x.example");
        assert_eq!(
            shown("jürgen\u{85}@x.example", true),
            "jürgen\\u{85}@x.example"
        );
        assert!(shown(&"ü".repeat(200), true).len() <= 123);
        let hostile = "BODY\u{18}".repeat(200);
        let r = parse_error(ParseError::UnsupportedParameter { param: hostile });
        assert!(r.render(true).len() <= 512, "{}", r.render(true));
        assert!(r.text.ends_with("..."));
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
