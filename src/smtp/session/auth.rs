//! The AUTH phase: SASL PLAIN and LOGIN exchanges, the password check
//! and the throttle in front of it.

use std::net::IpAddr;

use tokio::io::{AsyncRead, AsyncWrite};

use super::state::Login;
use super::{Mode, Session};
use crate::app::Stats;
use crate::auth::password;
use crate::auth::sasl::{self, Response, SaslError};
use crate::auth::throttle::Refusal;
use crate::import;
use crate::smtp::conn::{Conn, ConnError, Line, LineRead};
use crate::smtp::reply::Reply;
use crate::users::UserName;

impl Session<'_> {
    pub(super) fn check_auth(&self) -> Result<(), Reply> {
        if self.mode != Mode::Tls {
            return Err(Reply::new(
                538,
                "5.7.11",
                "Encryption required for requested authentication mechanism",
            ));
        }
        if self.state.greeting.is_none() || !self.state.esmtp() {
            return Err(Reply::new(503, "5.5.1", "Send EHLO first"));
        }
        if self.state.by_password() {
            return Err(Reply::new(503, "5.5.1", "Already authenticated"));
        }
        if self.state.tx.is_some() {
            return Err(Reply::new(
                503,
                "5.5.1",
                "AUTH not allowed during a mail transaction",
            ));
        }
        Ok(())
    }

    /// Returns `None` when the connection must be closed.
    pub(super) async fn auth<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        conn: &mut Conn<S>,
        mechanism: u64,
        initial: &str,
    ) -> Result<Option<Reply>, ConnError> {
        if let Err(r) = self.check_auth() {
            return Ok(Some(r));
        }
        if self.srv.app.throttle.is_blocked(self.ip) {
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

    pub(super) async fn challenge<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        conn: &mut Conn<S>,
        prompt: &str,
    ) -> Result<Result<Vec<u8>, Reply>, ConnError> {
        conn.reply(&format!("334 {prompt}\r\n")).await?;
        conn.flush().await?;
        let mut line = Line::new();
        let read = conn
            .read_line(&mut line, crate::smtp::conn::LINE_CAP, self.command_wait())
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

    pub(super) async fn sasl_plain<S: AsyncRead + AsyncWrite + Unpin>(
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

    pub(super) async fn sasl_login<S: AsyncRead + AsyncWrite + Unpin>(
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

    pub(super) async fn verify(&mut self, name: String, password: String) -> Reply {
        let canonical = UserName::parse(&name).ok().map(|n| n.to_string());
        let user = match canonical.as_deref().map(|n| self.srv.app.store.user(n)) {
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
        let ticket = match self.srv.app.throttle.begin(self.ip, account) {
            Ok(t) => t,
            Err(refusal) => return throttled(self.ip, &key, refusal),
        };
        let login = self.srv.app.verifier.login(&key, &password, phc).await;
        if login.ok() {
            if let (password::Login::Upgraded(new), Some(old)) = (login, phc) {
                self.store_upgraded(&key, old, new).await;
            }
            self.srv.app.throttle.succeed(ticket);
            tracing::info!(ip = %self.ip, user = key, "auth ok");
            self.state.login = Some(Login {
                user: key,
                by_password: true,
            });
            self.preauth.release();
            return Reply::new(235, "2.7.0", "Authentication successful");
        }
        Stats::bump(&self.srv.app.stats.auth_failures);
        let verdict = self.srv.app.throttle.fail(ticket);
        tracing::warn!(ip = %self.ip, user = %name, throttled = verdict.address_blocked, "auth failed");
        if verdict.account_blocked {
            self.srv
                .app
                .account_under_attack(&key, self.ip, "SMTP AUTH");
        }
        Reply::new(535, "5.7.8", "Authentication credentials invalid")
    }

    /// Stores the full-cost hash a login made of a fast-imported
    /// password (`import::upgrade`); a failure is logged, the login stands.
    async fn store_upgraded(&self, user: &str, old: &str, new: String) {
        let (app, user, old) = (self.srv.app.clone(), user.to_string(), old.to_string());
        let now = app.clock.now();
        let stored = tokio::task::spawn_blocking(move || {
            import::upgrade::store_upgraded(&app.store, &user, &old, new, now)
                .map(|done| (user, done))
        })
        .await;
        match stored {
            Ok(Ok((user, true))) => tracing::info!(user, "password re-hashed at full cost"),
            Ok(Ok((_, false))) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "storing a re-hashed password failed"),
            Err(e) => tracing::error!(error = %e, "re-hashing a password failed"),
        }
    }
}

pub(super) fn decoded(line: &[u8]) -> Result<Vec<u8>, Reply> {
    match sasl::decode(line) {
        Ok(Response::Data(d)) => Ok(d),
        Ok(Response::Cancel) => Err(Reply::new(501, "5.0.0", "Authentication cancelled")),
        Err(e) => Err(sasl_reply(e)),
    }
}

/// The answer to a login the throttle refused before looking at it.
pub(super) fn throttled(ip: IpAddr, user: &str, refusal: Refusal) -> Reply {
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

pub(super) fn sasl_reply(e: SaslError) -> Reply {
    match e {
        SaslError::Base64 => Reply::new(501, "5.5.2", "Invalid base64 data"),
        SaslError::Malformed(why) => Reply::new(
            501,
            "5.5.2",
            format!("Malformed authentication data: {why}"),
        ),
    }
}
