//! Graceful shutdown of the SMTP side. On SIGTERM the listeners stop
//! accepting and `Draining` is switched on: a session waiting for a
//! command is told 421 4.3.2 and closed at once, while one inside a
//! message (DATA, scan, commit) finishes it and gives its reply before it
//! is told the same. The listener waits for the sessions up to
//! `smtp.shutdown_grace_secs`; whatever is still running then is cut
//! (accepted mail is on disk before its 250 either way).

use tokio::sync::watch;

pub const REPLY: &str = "421 4.3.2 Service shutting down, try again later\r\n";

pub struct Draining(watch::Sender<bool>);

impl Default for Draining {
    fn default() -> Self {
        Draining(watch::Sender::new(false))
    }
}

impl Draining {
    /// Starts draining (idempotent).
    pub fn begin(&self) {
        self.0.send_replace(true);
    }

    pub fn is_on(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once draining has begun (at once if it already has).
    pub async fn wait(&self) {
        let mut rx = self.0.subscribe();
        // The sender lives as long as `self`, so this cannot fail early.
        let _ = rx.wait_for(|on| *on).await;
    }
}
