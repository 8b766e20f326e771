//! One SMTP session (RFC 5321 with RFC 6409 submission rules). Each
//! command is first checked against the session state (`check_*`: is it
//! valid now?) and then carried out. Commands are parsed by smtp-proto;
//! lines are read into a fixed-capacity buffer.

use std::net::IpAddr;
use std::sync::Arc;

use smtp_proto::{Error as ParseError, Request};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::smtp::conn::{Conn, ConnError, Line, LineRead};
use crate::smtp::inflight::Reservation;
use crate::smtp::preauth::PreAuth;
use crate::smtp::reply::Reply;
use crate::smtp::{Server, sniff};
use crate::store::envelope::{MessageDsn, RcptDsn};

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
    /// What the client has established so far.
    state: State,
    errors: u32,
    preauth: Arc<PreAuth>,
}

/// A user as a command sees it: record, settings in force, usage now.
enum Flow {
    Continue,
    Quit,
    StartTls,
}

/// The IP-authorised user for a client address, if IP authorisation is on.
pub fn ip_user(srv: &Server, ip: IpAddr) -> Option<String> {
    if !srv.app.settings.read(|c| c.settings.ip_auth) {
        return None;
    }
    match srv.app.store.network_user(ip) {
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
        state: State::new(ip_user),
        errors: 0,
        preauth,
    };
    if by_ip {
        tracing::info!(%ip, user = s.state.user().unwrap_or(""), "authenticated by address");
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

mod auth;
mod data;
mod greeting;
mod mail;
mod state;

use mail::{declares_huge_size, has_source_route};
use state::State;

impl Session<'_> {
    /// `banner`: false after STARTTLS, where the client goes on with EHLO.
    async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        conn: &mut Conn<S>,
        banner: bool,
    ) -> Result<Flow, ConnError> {
        let sent = std::time::Instant::now();
        if banner {
            conn.reply(&format!("220 {} ESMTP Outguard\r\n", self.srv.app.hostname))
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
        conn.reply(crate::smtp::drain::REPLY).await?;
        conn.flush().await?;
        tracing::info!(ip = %self.ip, "session closed: shutting down");
        Ok(Flow::Quit)
    }

    /// Idle time allowed for the next command: shorter before AUTH.
    fn command_wait(&self) -> std::time::Duration {
        match self.state.login {
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
        conn.reply(&r.render(self.state.esmtp())).await
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
                self.state.tx = None;
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
}

/// Client text as echoed in a reply: escaped, and short enough that the
/// reply line stays within RFC 5321's 512 octets (escaping alone can make
/// one control octet six). Non-ASCII stays as it is only in an SMTPUTF8
/// transaction (`utf8`); otherwise it is shown as `\u{..}`, since a
/// client that did not ask for UTF-8 need not read it.
pub(in crate::smtp) fn shown(text: &str, utf8: bool) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
