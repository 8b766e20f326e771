//! The data directory as root sees it at start-up. Its contents belong to
//! the run user, who could plant symlinks or hard links there for root to
//! follow (a TLS directory pointing at /etc, a store file pointing at
//! /etc/shadow, then chowned to the run user). So the directory is checked
//! once by path, opened, and everything beneath it is reached with openat
//! and O_NOFOLLOW from that descriptor, ownership handed over with fchown
//! on the opened file, never by path:
//!
//! - every ancestor of the (canonical) directory must be root's (or the
//!   invoking user's, when not started as root) and not writable by group
//!   or others, unless sticky (/tmp): nobody else can swap a component;
//! - the directory itself must belong to root or the run user and not be
//!   writable by group or others; it is made 0700 and the run user's;
//! - files opened beneath it must be regular, single-linked and belong to
//!   root or the run user.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{Mode, fchmod, mkdirat};
use nix::unistd::{Gid, Uid, fchown};

const NOFOLLOW: OFlag = OFlag::O_NOFOLLOW.union(OFlag::O_CLOEXEC);
const WRITABLE_BY_OTHERS: u32 = 0o022;
const STICKY: u32 = 0o1000;

pub struct DataDir {
    /// As configured (for messages) and canonical (to match paths).
    shown: PathBuf,
    real: PathBuf,
    fd: OwnedFd,
    /// Who gets the files: the run user when started as root.
    owner: Option<(Uid, Gid)>,
}

impl DataDir {
    /// Creates `path` if missing, checks it and its ancestors, and opens
    /// it. `owner` is the run user when started as root, else None (the
    /// files then simply belong to the invoking user).
    pub fn open(path: &Path, owner: Option<(Uid, Gid)>) -> Result<DataDir, String> {
        let shown = path.to_path_buf();
        let err = |what: String| format!("data_dir {}: {what}", shown.display());
        if !path.exists() {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(parent)
                    .map_err(|e| err(format!("cannot create {}: {e}", parent.display())))?;
            }
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(path)
                .or_else(|e| match e.kind() {
                    std::io::ErrorKind::AlreadyExists => Ok(()),
                    _ => Err(e),
                })
                .map_err(|e| err(format!("cannot create: {e}")))?;
        }
        let real = std::fs::canonicalize(path).map_err(|e| err(e.to_string()))?;
        let me = nix::unistd::geteuid();
        for a in real.ancestors().skip(1) {
            let m = std::fs::metadata(a).map_err(|e| err(format!("{}: {e}", a.display())))?;
            let trusted_owner = m.uid() == 0 || m.uid() == me.as_raw();
            let others_write = m.mode() & WRITABLE_BY_OTHERS != 0 && m.mode() & STICKY == 0;
            if !trusted_owner || others_write {
                return Err(err(format!(
                    "refusing it: its parent {} (owner uid {}, mode {:o}) could be changed by another user; \
                     every parent must belong to root and not be group/world-writable",
                    a.display(),
                    m.uid(),
                    m.mode() & 0o7777
                )));
            }
        }
        let fd = openat(
            nix::fcntl::AT_FDCWD,
            &real,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | NOFOLLOW,
            Mode::empty(),
        )
        .map_err(|e| err(format!("cannot open: {e}")))?;
        let m = File::from(fd.try_clone().map_err(|e| err(e.to_string()))?)
            .metadata()
            .map_err(|e| err(e.to_string()))?;
        let run_uid = owner.map_or(me, |(u, _)| u).as_raw();
        if m.uid() != 0 && m.uid() != run_uid {
            return Err(err(format!(
                "refusing it: it belongs to uid {}, neither root nor the run user (uid {run_uid})",
                m.uid()
            )));
        }
        if m.mode() & WRITABLE_BY_OTHERS != 0 {
            return Err(err(format!(
                "refusing it: it is writable by group or others (mode {:o}); make it 0700",
                m.mode() & 0o7777
            )));
        }
        let dir = DataDir {
            shown,
            real,
            fd,
            owner,
        };
        dir.claim(dir.fd.as_fd(), 0o700, "")?;
        Ok(dir)
    }

    /// Makes an opened file or directory the run user's, with `mode`.
    fn claim(&self, fd: std::os::fd::BorrowedFd<'_>, mode: u32, name: &str) -> Result<(), String> {
        let shown = self.shown.join(name);
        fchmod(fd, Mode::from_bits_truncate(mode))
            .map_err(|e| format!("cannot set mode of {}: {e}", shown.display()))?;
        if let Some((uid, gid)) = self.owner {
            fchown(fd, Some(uid), Some(gid))
                .map_err(|e| format!("cannot chown {}: {e}", shown.display()))?;
        }
        Ok(())
    }

    /// `path` relative to the data directory, if it lies beneath it.
    pub fn relative(&self, path: &Path) -> Option<PathBuf> {
        let rel = path
            .strip_prefix(&self.real)
            .or_else(|_| path.strip_prefix(&self.shown))
            .ok()?;
        rel.components()
            .all(|c| matches!(c, Component::Normal(_)))
            .then(|| rel.to_path_buf())
            .filter(|r| !r.as_os_str().is_empty())
    }

    /// The directory `rel` beneath the data directory, reached without
    /// following symlinks; with `create`, missing ones are made (0700,
    /// the run user's).
    fn dir(&self, rel: &Path, create: bool) -> Result<OwnedFd, String> {
        let mut dir = self
            .fd
            .try_clone()
            .map_err(|e| format!("{}: {e}", self.shown.display()))?;
        let mut at = PathBuf::new();
        for c in rel.components() {
            let Component::Normal(name) = c else {
                return Err(format!(
                    "{}: not a plain path",
                    self.shown.join(rel).display()
                ));
            };
            at.push(name);
            let shown = self.shown.join(&at);
            if create {
                match mkdirat(dir.as_fd(), name, Mode::from_bits_truncate(0o700)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(format!("cannot create {}: {e}", shown.display())),
                }
            }
            let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | NOFOLLOW;
            let next = openat(dir.as_fd(), name, flags, Mode::empty())
                .map_err(|e| nofollow_error(&shown, e))?;
            self.check(&next, &shown, true)?;
            if create {
                self.claim(next.as_fd(), 0o700, &at.to_string_lossy())?;
            }
            dir = next;
        }
        Ok(dir)
    }

    /// Opens the file `rel` beneath the data directory without following
    /// any symlink. With `write`, it is created (0600) if missing, with
    /// its directories, all the run user's.
    pub fn open_file(&self, rel: &Path, write: bool) -> Result<File, String> {
        let shown = self.shown.join(rel);
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            return Err(format!("{}: not a file name", shown.display()));
        };
        let dir = self.dir(parent, write)?;
        let flags = if write {
            OFlag::O_RDWR | OFlag::O_CREAT
        } else {
            OFlag::O_RDONLY
        };
        let fd = openat(
            dir.as_fd(),
            name,
            flags | NOFOLLOW,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|e| nofollow_error(&shown, e))?;
        self.check(&fd, &shown, false)?;
        if write {
            self.claim(fd.as_fd(), 0o600, &rel.to_string_lossy())?;
        }
        Ok(File::from(fd))
    }

    /// Creates a new file `rel` (0600, the run user's) holding `data`;
    /// false if something (a symlink included) is already there.
    pub fn create_new(&self, rel: &Path, data: &[u8]) -> Result<bool, String> {
        use std::io::Write;
        let shown = self.shown.join(rel);
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            return Err(format!("{}: not a file name", shown.display()));
        };
        let dir = self.dir(parent, true)?;
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | NOFOLLOW;
        let fd = match openat(dir.as_fd(), name, flags, Mode::from_bits_truncate(0o600)) {
            Ok(fd) => fd,
            Err(Errno::EEXIST) => return Ok(false),
            Err(e) => return Err(format!("cannot create {}: {e}", shown.display())),
        };
        self.claim(fd.as_fd(), 0o600, &rel.to_string_lossy())?;
        let mut f = File::from(fd);
        f.write_all(data)
            .and_then(|()| f.sync_all())
            .map_err(|e| format!("cannot write {}: {e}", shown.display()))?;
        Ok(true)
    }

    /// Replaces the file `rel` (in an existing directory) with `data`,
    /// created 0600 by the calling user without chmod or chown: for the
    /// jailed daemon, whose seccomp filter allows neither.
    pub fn write_file(&self, rel: &Path, data: &[u8]) -> Result<(), String> {
        use std::io::Write;
        let shown = self.shown.join(rel);
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            return Err(format!("{}: not a file name", shown.display()));
        };
        let dir = self.dir(parent, false)?;
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC | NOFOLLOW;
        let fd = openat(dir.as_fd(), name, flags, Mode::from_bits_truncate(0o600))
            .map_err(|e| nofollow_error(&shown, e))?;
        self.check(&fd, &shown, false)?;
        let mut f = File::from(fd);
        f.write_all(data)
            .and_then(|()| f.sync_all())
            .map_err(|e| format!("cannot write {}: {e}", shown.display()))
    }

    /// Reads the file `rel`, at most `max` octets; None if it is not there.
    pub fn read_file(&self, rel: &Path, max: u64) -> Result<Option<Vec<u8>>, String> {
        use std::io::Read;
        let shown = self.shown.join(rel);
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            return Err(format!("{}: not a file name", shown.display()));
        };
        let dir = self.dir(parent, false)?;
        let fd = match openat(dir.as_fd(), name, OFlag::O_RDONLY | NOFOLLOW, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(nofollow_error(&shown, e)),
        };
        self.check(&fd, &shown, false)?;
        let mut out = Vec::new();
        File::from(fd)
            .take(max)
            .read_to_end(&mut out)
            .map_err(|e| format!("cannot read {}: {e}", shown.display()))?;
        Ok(Some(out))
    }

    /// Reads `path` if it lies beneath the data directory (no symlink
    /// followed); None if it lies elsewhere.
    pub fn read(&self, path: &Path) -> Option<Result<Vec<u8>, String>> {
        use std::io::Read;
        let rel = self.relative(path)?;
        Some(self.open_file(&rel, false).and_then(|mut f| {
            let mut out = Vec::new();
            f.read_to_end(&mut out)
                .map(|_| out)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))
        }))
    }

    /// Removes the entry `rel` (a leftover control socket) without
    /// following it.
    pub fn remove(&self, rel: &Path) -> Result<(), String> {
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            return Ok(());
        };
        let dir = match self.dir(parent, false) {
            Ok(d) => d,
            Err(_) if !self.real.join(parent).exists() => return Ok(()),
            Err(e) => return Err(e),
        };
        match nix::unistd::unlinkat(dir.as_fd(), name, nix::unistd::UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(format!(
                "cannot remove {}: {e}",
                self.shown.join(rel).display()
            )),
        }
    }

    /// An opened entry must be what it claims, single-linked (no hard link
    /// to a file elsewhere) and belong to root or the run user.
    fn check(&self, fd: &OwnedFd, shown: &Path, want_dir: bool) -> Result<(), String> {
        let m = File::from(fd.try_clone().map_err(|e| e.to_string())?)
            .metadata()
            .map_err(|e| format!("{}: {e}", shown.display()))?;
        let run_uid = self
            .owner
            .map_or(nix::unistd::geteuid(), |(u, _)| u)
            .as_raw();
        let kind_ok = if want_dir {
            m.is_dir()
        } else {
            m.is_file() && m.nlink() == 1
        };
        if !kind_ok || (m.uid() != 0 && m.uid() != run_uid) {
            return Err(format!(
                "refusing {}: not a {} of root or the run user{}",
                shown.display(),
                if want_dir {
                    "directory"
                } else {
                    "single-linked file"
                },
                if m.nlink() > 1 && !want_dir {
                    " (hard link)"
                } else {
                    ""
                }
            ));
        }
        Ok(())
    }
}

fn nofollow_error(shown: &Path, e: Errno) -> String {
    match e {
        Errno::ELOOP => format!(
            "refusing {}: a symlink (not followed at start-up)",
            shown.display()
        ),
        Errno::ENOTDIR => format!(
            "refusing {}: a symlink (not followed at start-up) or not a directory",
            shown.display()
        ),
        e => format!("cannot open {}: {e}", shown.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn nothing_beneath_is_reached_through_a_link() {
        let base = std::env::temp_dir().join(format!("og-datadir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).unwrap();
        let outside = base.join("outside");
        std::fs::write(&outside, b"secret").unwrap();
        let data = DataDir::open(&base.join("data"), None).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&base.join("data")), 0o700);

        std::os::unix::fs::symlink(&outside, base.join("data/store")).unwrap();
        let e = data.open_file(Path::new("store"), true).unwrap_err();
        assert!(e.contains("symlink"), "{e}");
        std::fs::hard_link(&outside, base.join("data/linked")).unwrap();
        let e = data.open_file(Path::new("linked"), false).unwrap_err();
        assert!(e.contains("hard link"), "{e}");
        std::os::unix::fs::symlink(&base, base.join("data/tls")).unwrap();
        assert!(data.create_new(Path::new("tls/key.pem"), b"k").is_err());
        assert!(!base.join("key.pem").exists());
        assert_eq!(std::fs::read(&outside).unwrap(), b"secret");

        assert!(data.create_new(Path::new("keys/key.pem"), b"k").unwrap());
        assert!(!data.create_new(Path::new("keys/key.pem"), b"j").unwrap());
        assert_eq!(mode(&base.join("data/keys")), 0o700);
        assert_eq!(mode(&base.join("data/keys/key.pem")), 0o600);
        let read = data.read(&base.join("data/keys/key.pem")).unwrap().unwrap();
        assert_eq!(read, b"k");
        assert!(data.read(&outside).is_none());
        data.remove(Path::new("store")).unwrap();
        assert!(outside.exists());

        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = DataDir::open(&base.join("data"), None).err().unwrap();
        assert!(e.contains("its parent"), "{e}");
        std::fs::remove_dir_all(&base).unwrap();
    }
}
