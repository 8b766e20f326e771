//! Periodic chores on the daemon's clock: end expired timed locks (an
//! unlock by timeout, logged, kept in the user's history and noticed to
//! the admin; the store finds them in its index of timed locks by expiry,
//! not by reading every user), and delete quarantined mail past its
//! retention.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::app::App;

pub async fn run(app: Arc<App>, every: Duration, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        let s = app.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || sweep(&s)).await {
            tracing::error!(error = %e, "housekeeping failed");
        }
    }
}

pub fn sweep(app: &App) {
    crate::appliance::clock::log_change();
    let now = app.clock.now();
    let (admin, retention) = app.settings.read(|c| {
        (
            c.settings.admin_address.clone(),
            c.settings.quarantine_retention_days,
        )
    });
    match app.store.expire_locks(now) {
        Ok(names) => {
            for name in names {
                tracing::info!(user = %name, "user unlocked by timeout");
                if admin.is_empty() {
                    continue;
                }
                app.notify_admin(
                    &admin,
                    &format!("Outguard: {name} unlocked"),
                    &format!("The outgoing user {name} was unlocked: its lock timed out.\n"),
                    now,
                    "unlock",
                );
            }
        }
        Err(e) => tracing::error!(error = %e, "expiring locks failed"),
    }
    let retention = crate::bounds::QUARANTINE_RETENTION_DAYS.clamp(retention);
    let cutoff = crate::bounds::earlier(now, crate::bounds::days(retention));
    match app.store.expire_quarantine(cutoff) {
        Ok(0) => {}
        Ok(n) => tracing::info!(deleted = n, "quarantine retention applied"),
        Err(e) => tracing::error!(error = %e, "quarantine retention failed"),
    }
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;

    use super::sweep;
    use crate::app::App;
    use crate::settings::SystemSettings;
    use crate::store::Store;
    use crate::users::{User, UserName};

    /// An older version stored whatever the admin typed; such a store must
    /// start and its chores run (they panicked: a crash loop at start).
    #[test]
    fn store_with_out_of_range_values_starts() {
        let dir = std::env::temp_dir().join(format!("og-old-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        {
            let store = Store::open(&dir.join("outguard.redb")).unwrap();
            let mut s = SystemSettings {
                quarantine_retention_days: 9_999_999,
                ..Default::default()
            };
            s.defaults.lock_timeout_minutes = u32::MAX;
            s.defaults.max_retry_days = u32::MAX;
            store.put_settings(&s).unwrap();
            let name = UserName::parse("a@b.example").unwrap();
            let mut u = User::new(&name, None, Timestamp::now());
            u.settings.lock_timeout_minutes = Some(u32::MAX - 1);
            u.settings.max_retry_days = Some(3_000_000);
            store.add_user(&u).unwrap();
        }
        let rt = tokio::runtime::Runtime::new().unwrap();
        let _guard = rt.enter();
        let app = App::standalone(&dir).unwrap();
        sweep(&app);
        let s = app.settings.get();
        assert_eq!(s.quarantine_retention_days, 3_650);
        let u = app.store.user("a@b.example").unwrap().unwrap();
        let eff = u.settings.resolve(&s.defaults);
        assert_eq!(
            (eff.lock_timeout_minutes, eff.max_retry_days),
            (525_600, 365)
        );
        drop(app);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
