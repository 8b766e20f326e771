//! Privilege separation in two stages, as Postfix and OpenSMTPD do it:
//! while `Privileged`, the process (root, when started by init) creates
//! its data directory, reads keys and binds its sockets; `drop_privileges`
//! then switches for good to the unprivileged run user and sets
//! no_new_privs, yielding `Dropped`. Only after that does the async
//! runtime start and network input get parsed (the stages themselves are
//! `daemon::{Resources, Jailed}`). The types make the order unmistakable:
//! root-only setup is a method of `Privileged` or takes `&Privileged`
//! (`tls::load`, `control::bind`, `jail::prepare_landlock`, the delivery
//! and syslog `Prepared::load`), and there is only ever one `Privileged`
//! in a process (`begin` succeeds once), consumed by `drop_privileges`.

use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::unistd::{Gid, Uid, getegid, geteuid, setgroups, setresgid, setresuid};

use crate::datadir::DataDir;

/// The account to run as, from /etc/passwd (read directly: a static
/// binary cannot rely on NSS).
#[derive(Debug, Clone)]
pub struct Account {
    pub name: String,
    pub uid: Uid,
    pub gid: Gid,
}

pub fn lookup(name: &str, passwd: &str) -> Option<Account> {
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 4 || f[0] != name {
            return None;
        }
        Some(Account {
            name: name.to_string(),
            uid: Uid::from_raw(f[2].parse().ok()?),
            gid: Gid::from_raw(f[3].parse().ok()?),
        })
    })
}

/// The privileged stage of start-up. Neither `Clone` nor constructible
/// outside this file: the one value comes from `begin` and goes away in
/// `drop_privileges`.
#[derive(Debug)]
pub struct Privileged {
    /// Where to switch to; `None` when not started as root (then the
    /// daemon simply runs as the invoking user).
    target: Option<Account>,
}

/// Proof that privileges were dropped.
#[derive(Debug)]
pub struct Dropped {
    pub uid: Uid,
}

/// Set by the first `Privileged::begin`: a second one (jailed code trying
/// to get back to the root-only setup) is refused.
static BEGUN: AtomicBool = AtomicBool::new(false);

impl Privileged {
    /// Starts the privileged stage; only once per process.
    pub fn begin(run_user: &str) -> Result<Privileged, String> {
        if BEGUN.swap(true, Ordering::SeqCst) {
            return Err("the privileged stage of start-up is over".into());
        }
        if !geteuid().is_root() {
            return Ok(Privileged { target: None });
        }
        if run_user.is_empty() {
            return Err(
                "started as root without a run_user: give a dedicated account \
                 (run_user), or run --dev as yourself or through sudo"
                    .into(),
            );
        }
        let passwd = fs::read_to_string("/etc/passwd")
            .map_err(|e| format!("cannot read /etc/passwd: {e}"))?;
        let account = lookup(run_user, &passwd).ok_or_else(|| {
            format!("run_user '{run_user}' is not in /etc/passwd; create it or set run_user")
        })?;
        if account.uid.is_root() {
            return Err("run_user must not be root".into());
        }
        Ok(Privileged {
            target: Some(account),
        })
    }

    /// Creates and opens the data directory, checked and the run user's
    /// (see `datadir`: nothing beneath it is reached through a symlink).
    pub fn prepare_dir(&self, dir: &Path) -> Result<DataDir, String> {
        DataDir::open(dir, self.target.as_ref().map(|a| (a.uid, a.gid)))
    }

    /// Binds a TCP listener (ports below 1024 need root).
    pub fn bind_tcp(&self, addr: SocketAddr, what: &str) -> Result<TcpListener, String> {
        TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}{what}: {e}"))
    }

    /// Switches to the run user for good and forbids regaining privileges.
    pub fn drop_privileges(self) -> Result<Dropped, String> {
        if let Some(a) = &self.target {
            // While still root (PR_CAPBSET_DROP needs CAP_SETPCAP): empty
            // the bounding and ambient sets, so nothing this process runs
            // can ever hold a capability again.
            caps::clear(None, caps::CapSet::Bounding)
                .and_then(|()| caps::clear(None, caps::CapSet::Ambient))
                .map_err(|e| format!("dropping the capability bounding set: {e}"))?;
            setgroups(&[a.gid]).map_err(|e| format!("setgroups: {e}"))?;
            setresgid(a.gid, a.gid, a.gid).map_err(|e| format!("setresgid: {e}"))?;
            setresuid(a.uid, a.uid, a.uid).map_err(|e| format!("setresuid: {e}"))?;
            if nix::unistd::setuid(Uid::from_raw(0)).is_ok() || geteuid().is_root() {
                return Err("privileges could be regained after dropping them".into());
            }
            tracing::info!(user = %a.name, uid = a.uid.as_raw(), gid = a.gid.as_raw(), "dropped privileges");
        }
        nix::sys::prctl::set_no_new_privs().map_err(|e| format!("no_new_privs: {e}"))?;
        debug_assert!(self.target.is_none() || getegid() != Gid::from_raw(0));
        Ok(Dropped { uid: geteuid() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_account() {
        let p = "root:x:0:0:root:/root:/bin/sh\noutguard:x:200:201::/var/empty:/bin/false\n";
        let a = lookup("outguard", p).unwrap();
        assert_eq!((a.uid.as_raw(), a.gid.as_raw()), (200, 201));
        assert!(lookup("nobody", p).is_none());
    }

    /// The privileged stage exists once: after the first `begin`, every
    /// later one is refused, whatever the first one's outcome.
    #[test]
    fn begins_once() {
        let _ = Privileged::begin("outguard-test-nobody");
        let again = Privileged::begin("outguard-test-nobody").unwrap_err();
        assert!(again.contains("is over"), "{again}");
    }
}
