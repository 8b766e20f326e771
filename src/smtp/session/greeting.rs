//! The greeting phase: the banner's answer (EHLO/HELO and its
//! extensions) and STARTTLS.

use tokio::io::{AsyncRead, AsyncWrite};

use super::state::Greeting;
use super::{Flow, Mode, Session};
use crate::smtp::conn::{Conn, ConnError};
use crate::smtp::reply::{Reply, multiline};

impl Session<'_> {
    pub(super) async fn greet<S: AsyncRead + AsyncWrite + Unpin>(
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
    pub(super) fn ehlo(&mut self, host: String, esmtp: bool) -> Result<String, Reply> {
        if host.is_empty() || host.len() > 255 {
            return Err(Reply::new(501, "5.5.4", "Syntax: EHLO hostname"));
        }
        self.state.tx = None;
        self.state.greeting = Some(Greeting {
            host: host.clone(),
            esmtp,
        });
        let hostname = &self.srv.app.hostname;
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

    pub(super) fn check_starttls(&self) -> Result<(), Reply> {
        if self.mode == Mode::Tls {
            return Err(Reply::new(503, "5.5.1", "TLS already active"));
        }
        if self.state.greeting.is_none() || !self.state.esmtp() {
            return Err(Reply::new(503, "5.5.1", "Send EHLO first"));
        }
        if self.state.tx.is_some() {
            return Err(Reply::new(
                503,
                "5.5.1",
                "STARTTLS not allowed during a mail transaction",
            ));
        }
        Ok(())
    }
}
