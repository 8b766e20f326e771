//! Privilege separation in two stages, as Postfix and OpenSMTPD do it:
//! while `Privileged`, the process (root, when started by init) creates
//! its data directory, reads keys and binds its sockets; `drop_privileges`
//! then switches for good to the unprivileged run user and sets
//! no_new_privs, yielding `Jailed`. Only after that does the async runtime
//! start and network input get parsed. The types make the order
//! unmistakable: root-only setup takes `&Privileged`, which no longer
//! exists once dropped.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use nix::unistd::{Gid, Uid, chown, getegid, geteuid, setgroups, setresgid, setresuid};

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

pub struct Privileged {
    /// Where to switch to; `None` when not started as root (then the
    /// daemon simply runs as the invoking user).
    target: Option<Account>,
}

/// Proof that privileges were dropped.
pub struct Jailed {
    pub uid: Uid,
}

impl Privileged {
    pub fn begin(run_user: &str) -> Result<Privileged, String> {
        if !geteuid().is_root() {
            return Ok(Privileged { target: None });
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

    /// Creates `dir` (mode 0750) owned by the run user.
    pub fn prepare_dir(&self, dir: &Path) -> Result<(), String> {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o750))
            .map_err(|e| format!("cannot set mode of {}: {e}", dir.display()))?;
        self.give(dir)
    }

    /// Hands a file or directory to the run user (no-op when not root).
    pub fn give(&self, path: &Path) -> Result<(), String> {
        match &self.target {
            Some(a) if path.exists() => chown(path, Some(a.uid), Some(a.gid))
                .map_err(|e| format!("cannot chown {}: {e}", path.display())),
            _ => Ok(()),
        }
    }

    /// Switches to the run user for good and forbids regaining privileges.
    pub fn drop_privileges(self) -> Result<Jailed, String> {
        if let Some(a) = &self.target {
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
        Ok(Jailed { uid: geteuid() })
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
}
