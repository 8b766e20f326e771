//! The last stage of start-up, after privileges are dropped and before the
//! runtime starts (so every thread inherits it): a landlock ruleset that
//! limits the filesystem to the data directory (read-write) and a few
//! read-only system paths, TCP to the ports the daemon dials (no new
//! listening ports at all), and signals and abstract sockets to its own
//! domain; then a seccomp filter that allows only the system calls the
//! daemon makes. A call outside the list kills the process
//! (`seccomp_action = "kill"`, the appliance's setting) or fails with EPERM
//! (`"errno"`, the default on a host, where a forgotten call should show
//! up as an error in the log rather than a crash loop).

use std::collections::BTreeMap;
use std::path::Path;

use landlock::{
    ABI, Access, AccessFs, AccessNet, NetPort, Ruleset, RulesetAttr, RulesetCreated,
    RulesetCreatedAttr, RulesetStatus, Scope, path_beneath_rules,
};
use seccompiler::{BpfProgram, SeccompAction, SeccompFilter};
use serde::Serialize;

use crate::config::Config;

/// What was enforced, for the log and the health endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct Hardening {
    pub uid: u32,
    pub no_new_privs: bool,
    /// "fully enforced", "partially enforced" or "not enforced" (kernel
    /// without landlock), or "off".
    pub landlock: String,
    pub seccomp: bool,
}

/// Read-only paths the daemon may still need: name service files, CA
/// certificates, time zones, its own process information, and the random
/// devices (a static build's getrandom may fall back to polling
/// /dev/random before reading /dev/urandom), and the appliance's update
/// agent's reports (/run/outguard, see update.rs).
const READ_ONLY: &[&str] = &[
    "/etc",
    "/run/outguard",
    "/usr/share/ca-certificates",
    "/usr/share/zoneinfo",
    "/proc/self",
    "/sys/fs/cgroup",
    "/dev/urandom",
    "/dev/random",
];

/// Builds the ruleset while still privileged: adding a rule opens its
/// path, and the run user may not be able to reach the data directory
/// through its parents (e.g. under /root). `connect` lists the TCP ports
/// the daemon may dial; binding a TCP port is not allowed at all (the
/// listeners are bound before this). The newest ABI this crate knows is
/// asked for in best-effort mode: an older kernel enforces what it can
/// (network rules need ABI 4, scopes ABI 6), reported as "partially
/// enforced".
pub fn prepare_landlock(
    _root: &crate::privilege::Privileged,
    data_dir: &Path,
    connect: &[u16],
) -> Result<RulesetCreated, String> {
    ruleset(data_dir, connect)
}

fn ruleset(data_dir: &Path, connect: &[u16]) -> Result<RulesetCreated, String> {
    let abi = ABI::V6;
    let readable: Vec<&str> = READ_ONLY
        .iter()
        .copied()
        .filter(|p| Path::new(p).exists())
        .collect();
    let mut ports: Vec<u16> = connect.to_vec();
    ports.sort_unstable();
    ports.dedup();
    // UDP (DNS queries) is left alone: only ABI 4's TCP rights are handled.
    Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .and_then(|r| r.handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp))
        .and_then(|r| r.scope(Scope::from_all(abi)))
        .and_then(|r| r.create())
        .and_then(|r| r.add_rules(path_beneath_rules([data_dir], AccessFs::from_all(abi))))
        .and_then(|r| r.add_rules(path_beneath_rules(&readable, AccessFs::from_read(abi))))
        .and_then(|r| {
            r.add_rules(
                ports
                    .into_iter()
                    .map(|p| Ok(NetPort::new(p, AccessNet::ConnectTcp))),
            )
        })
        .map_err(|e| format!("landlock: {e}"))
}

/// The TCP ports the daemon dials, from its configuration: the next hop
/// (smarthost, or MX hosts on `mx_port`), MTA-STS policy servers
/// (`mta_sts_port`), DNS over TCP (53 and configured nameservers), and
/// external scan engines reached over TCP.
pub fn outbound_ports(cfg: &Config) -> Vec<u16> {
    let d = &cfg.delivery;
    let mut ports = vec![53, d.mx_port];
    if d.mta_sts {
        ports.push(d.mta_sts_port);
    }
    ports.extend(d.dns_servers.iter().map(|a| a.port()));
    ports.extend(d.smarthost.as_deref().and_then(port_of));
    // the remote syslog collector (appliance/syslog.rs)
    ports.extend(
        cfg.log
            .remote
            .parse::<std::net::SocketAddr>()
            .map(|a| a.port()),
    );
    let ext = cfg.scan.external();
    ports.extend(
        ext.clamd
            .as_ref()
            .and_then(|c| c.address.as_deref())
            .and_then(port_of),
    );
    ports.extend(ext.spamd.as_ref().and_then(|c| port_of(&c.address)));
    ports.extend(ext.rspamd.as_ref().and_then(|c| {
        let rest = c.url.strip_prefix("http://").unwrap_or(&c.url);
        let authority = rest.split('/').next().unwrap_or_default();
        port_of(authority).or(Some(80))
    }));
    ports.extend(
        cfg.store
            .shared
            .as_ref()
            .and_then(|u| crate::store::fleet::url::port(&u.0)),
    );
    ports
}

/// The port of `host:port` or `[v6]:port`.
fn port_of(spec: &str) -> Option<u16> {
    let (host, port) = spec.rsplit_once(':')?;
    if host.contains(':') && !host.ends_with(']') {
        return None; // a bare IPv6 address, no port
    }
    port.parse().ok()
}

/// Enforces a prepared ruleset on this thread and every one it starts.
pub fn landlock(ruleset: RulesetCreated) -> Result<String, String> {
    let status = ruleset
        .restrict_self()
        .map_err(|e| format!("landlock: {e}"))?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => "fully enforced",
        RulesetStatus::PartiallyEnforced => "partially enforced",
        RulesetStatus::NotEnforced => "not enforced",
    }
    .to_string())
}

/// System calls of the running daemon (tokio, rustls, redb, std),
/// collected with strace over the test suite.
const ALLOWED: &[libc::c_long] = &[
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_readv,
    libc::SYS_writev,
    libc::SYS_pread64,
    libc::SYS_pwrite64,
    libc::SYS_openat,
    libc::SYS_close,
    libc::SYS_fstat,
    libc::SYS_fstatfs,
    libc::SYS_newfstatat,
    libc::SYS_statx,
    libc::SYS_lseek,
    libc::SYS_getdents64,
    libc::SYS_fsync,
    libc::SYS_fdatasync,
    libc::SYS_ftruncate,
    libc::SYS_fallocate,
    libc::SYS_flock,
    libc::SYS_fcntl,
    libc::SYS_ioctl,
    libc::SYS_unlinkat,
    libc::SYS_renameat,
    libc::SYS_mkdirat,
    libc::SYS_readlinkat,
    libc::SYS_faccessat,
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mprotect,
    libc::SYS_mremap,
    libc::SYS_madvise,
    libc::SYS_brk,
    libc::SYS_futex,
    libc::SYS_epoll_create1,
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_pwait,
    libc::SYS_eventfd2,
    libc::SYS_ppoll,
    libc::SYS_pipe2,
    libc::SYS_dup,
    libc::SYS_dup3,
    libc::SYS_socket,
    libc::SYS_socketpair,
    libc::SYS_connect,
    libc::SYS_accept4,
    libc::SYS_bind,
    libc::SYS_listen,
    libc::SYS_shutdown,
    libc::SYS_sendto,
    libc::SYS_recvfrom,
    libc::SYS_sendmsg,
    libc::SYS_recvmsg,
    libc::SYS_sendmmsg,
    libc::SYS_recvmmsg,
    libc::SYS_getsockopt,
    libc::SYS_setsockopt,
    libc::SYS_getsockname,
    libc::SYS_getpeername,
    libc::SYS_getrandom,
    libc::SYS_clock_gettime,
    libc::SYS_clock_getres,
    libc::SYS_clock_nanosleep,
    // read-only adjtimex (appliance/clock.rs); setting the clock needs
    // CAP_SYS_TIME, which the daemon never has
    libc::SYS_adjtimex,
    libc::SYS_clock_adjtime,
    libc::SYS_nanosleep,
    libc::SYS_gettimeofday,
    libc::SYS_sched_yield,
    libc::SYS_sched_getaffinity,
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigreturn,
    libc::SYS_sigaltstack,
    libc::SYS_clone,
    libc::SYS_clone3,
    libc::SYS_set_robust_list,
    libc::SYS_rseq,
    libc::SYS_set_tid_address,
    libc::SYS_gettid,
    libc::SYS_getpid,
    libc::SYS_getuid,
    libc::SYS_geteuid,
    libc::SYS_getgid,
    libc::SYS_getegid,
    libc::SYS_tgkill,
    libc::SYS_prctl,
    libc::SYS_prlimit64,
    libc::SYS_uname,
    libc::SYS_restart_syscall,
    libc::SYS_exit,
    libc::SYS_exit_group,
    libc::SYS_membarrier,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_epoll_wait,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_poll,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_open,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_stat,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_lstat,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_access,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_unlink,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_rename,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_mkdir,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_readlink,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_arch_prctl,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_time,
];

pub fn seccomp(kill: bool) -> Result<(), String> {
    let rules: BTreeMap<i64, Vec<seccompiler::SeccompRule>> =
        ALLOWED.iter().map(|&n| (n, Vec::new())).collect();
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|e| format!("seccomp: {e:?}"))?;
    let filter = SeccompFilter::new(
        rules,
        if kill {
            SeccompAction::KillProcess
        } else {
            SeccompAction::Errno(libc::EPERM as u32)
        },
        SeccompAction::Allow,
        arch,
    )
    .map_err(|e| format!("seccomp: {e}"))?;
    let program: BpfProgram = filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| format!("seccomp: {e}"))?;
    seccompiler::apply_filter(&program).map_err(|e| format!("seccomp: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn ports_of_specs() {
        assert_eq!(port_of("relay.example:587"), Some(587));
        assert_eq!(port_of("[2001:db8::1]:25"), Some(25));
        assert_eq!(port_of("2001:db8::1"), None);
        assert_eq!(port_of("relay.example"), None);
    }

    /// The network rules on this kernel: in a thread of its own (landlock
    /// applies to the calling thread and its children), dialling a port
    /// that is not listed fails, a listed one works, and binding a new
    /// listener fails.
    #[test]
    fn landlock_limits_tcp_to_the_listed_ports() {
        let allowed = TcpListener::bind("127.0.0.1:0").unwrap();
        let other = TcpListener::bind("127.0.0.1:0").unwrap();
        let (a, o) = (allowed.local_addr().unwrap(), other.local_addr().unwrap());
        let dir = std::env::temp_dir();
        let outcome = std::thread::spawn(move || {
            let ruleset = ruleset(&dir, &[a.port()]).unwrap();
            let status = landlock(ruleset).unwrap();
            (
                status,
                TcpStream::connect(a).is_ok(),
                TcpStream::connect(o).map_err(|e| e.kind()),
                TcpListener::bind("127.0.0.1:0").map_err(|e| e.kind()),
            )
        })
        .join()
        .unwrap();
        if outcome.0 != "fully enforced" {
            eprintln!(
                "landlock on this kernel: {}; network rules not checked",
                outcome.0
            );
            return;
        }
        assert!(outcome.1, "the listed port must be reachable");
        assert_eq!(outcome.2.unwrap_err(), std::io::ErrorKind::PermissionDenied);
        assert_eq!(outcome.3.unwrap_err(), std::io::ErrorKind::PermissionDenied);
    }
}
