//! Periodic chores on the daemon's clock: end expired timed locks (an
//! unlock by timeout, logged, kept in the user's history and noticed to
//! the admin), and delete quarantined mail past its retention.

use std::sync::Arc;
use std::time::Duration;

use jiff::SignedDuration;
use tokio::sync::watch;

use crate::smtp::Server;

pub async fn run(server: Arc<Server>, every: Duration, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        let s = server.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || sweep(&s)).await {
            tracing::error!(error = %e, "housekeeping failed");
        }
    }
}

pub fn sweep(server: &Server) {
    let now = server.clock.now();
    let (admin, retention) = server.settings.read(|c| {
        (
            c.settings.admin_address.clone(),
            c.settings.quarantine_retention_days,
        )
    });
    match server.store.expire_locks(now) {
        Ok(names) => {
            for name in names {
                tracing::info!(user = %name, "user unlocked by timeout");
                if admin.is_empty() {
                    continue;
                }
                let notice = crate::notify::queue_notice(
                    &server.store,
                    server.committer.reserve_id(),
                    &server.hostname,
                    &admin,
                    &format!("Outguard: {name} unlocked"),
                    &format!("The outgoing user {name} was unlocked: its lock timed out.\n"),
                    now,
                );
                if let Err(e) = notice {
                    tracing::error!(error = %e, "queueing the unlock notice failed");
                }
            }
        }
        Err(e) => tracing::error!(error = %e, "expiring locks failed"),
    }
    let cutoff = now - SignedDuration::from_hours(24 * i64::from(retention));
    match server.store.expire_quarantine(cutoff) {
        Ok(0) => {}
        Ok(n) => tracing::info!(deleted = n, "quarantine retention applied"),
        Err(e) => tracing::error!(error = %e, "quarantine retention failed"),
    }
}
