//! Telling the admin about an account under attack: when the failed
//! logins against one account (from any addresses) reach the per-account
//! limit, the throttle blocks it for unknown networks once; this logs it
//! and mails a notice to the admin address, if one is set. The count of
//! such blocks is in the summary and /metrics.

use std::net::IpAddr;

use crate::smtp::Server;

/// Reports that `account` was just blocked after failures through `face`
/// (the last from `ip`).
pub fn account_under_attack(server: &Server, account: &str, ip: IpAddr, face: &str) {
    tracing::warn!(
        account = %account, last_ip = %ip, face,
        "account under attack: too many failed logins, refused to unknown addresses for a while"
    );
    let admin = server.settings.read(|c| c.settings.admin_address.clone());
    if admin.is_empty() {
        return;
    }
    let notice = crate::notify::queue_notice(
        &server.store,
        server.committer.reserve_id(),
        &server.hostname,
        &admin,
        &format!("Outguard: logins to {account} under attack"),
        &format!(
            "Too many failed {face} logins to {account} (the last from {ip}).\n\
             Logins to it are refused for a while, except from addresses that\n\
             logged in to it successfully before. Check the log and the audit log.\n"
        ),
        server.clock.now(),
    );
    if let Err(e) = notice {
        tracing::error!(error = %e, "queueing the attack notice failed");
    }
}
