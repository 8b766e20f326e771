//! The external-engine clients against the real daemons: clamd (ClamAV),
//! spamd (SpamAssassin) and rspamd, each started by the test on loopback
//! with a private configuration in a temporary directory and stopped by PID
//! at the end. A test whose daemon binary is not installed says so and
//! passes; CI installs them (Debian: clamav-daemon, spamd, rspamd).
//!
//! No ClamAV database can be downloaded here, so the test writes its own:
//! an MD5 signature of the 68-byte EICAR file and a hex body pattern.

use std::fs::{self, File};
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use outguard::scan::external::{
    self, ClamdConfig, ErrorKind, ExternalConfig, RspamdConfig, SpamdConfig,
};
use outguard::scan::{Class, Verdict};

const EICAR: &[u8] = br"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
const GTUBE: &str = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";
/// Matched by the `.ndb` signature the clamd test writes; unknown to the
/// built-in scanner, so only clamd can find it.
const CLAMD_PATTERN: &str = "OUTGUARD-CLAMD-TEST-PATTERN-7f3a91";

/// How long a daemon may take to start listening. rspamd compiles its
/// regular expressions at start, which takes a while on a loaded machine.
const START_DEADLINE: Duration = Duration::from_secs(300);

fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A private directory removed at the end of the test.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let dir =
            std::env::temp_dir().join(format!("og-ext-{name}-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A daemon started by the test; stopped by PID (SIGTERM, then SIGKILL)
/// when dropped, also when the test panics.
struct Daemon {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(name: &'static str, cmd: &mut Command, log: PathBuf) -> Self {
        let out = File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Self { name, child, log }
    }

    fn log_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Waits until `ready` holds, failing early if the daemon exits.
    fn wait_until(&mut self, what: &str, mut ready: impl FnMut() -> bool) {
        let start = Instant::now();
        loop {
            if ready() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited ({status}) before {what}:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            if start.elapsed() > START_DEADLINE {
                panic!("{} not ready ({what}):\n{}", self.name, self.log_text());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_tcp(&mut self, port: u16) {
        self.wait_until(&format!("listening on port {port}"), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let pid = Pid::from_raw(self.child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn skip(binary: &str, package: &str) {
    eprintln!("SKIPPED: `{binary}` is not installed (Debian package `{package}`)");
}

fn plain_message(subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Alice <alice@example.com>\r\nTo: Bob <bob@example.org>\r\n\
         Subject: {subject}\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\n\
         Message-ID: <{subject_id}@example.com>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\r\n{body}\r\n",
        subject_id = subject.replace(' ', "-"),
    )
    .into_bytes()
}

fn eicar_message() -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(EICAR);
    format!(
        "From: alice@example.com\r\nTo: bob@example.org\r\nSubject: the file\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
         --b1\r\nContent-Type: text/plain\r\n\r\nSee attachment.\r\n\
         --b1\r\nContent-Type: application/octet-stream; name=\"eicar.com\"\r\n\
         Content-Disposition: attachment; filename=\"eicar.com\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{b64}\r\n--b1--\r\n"
    )
    .into_bytes()
}

struct Clamd {
    daemon: Daemon,
    socket: PathBuf,
    port: u16,
}

/// Starts clamd on a Unix socket and a loopback TCP port, with
/// `StreamMaxLength 1M` and a signature database written here.
fn start_clamd(dir: &Path) -> Option<Clamd> {
    let Some(bin) = find_binary("clamd") else {
        skip("clamd", "clamav-daemon");
        return None;
    };
    let db = dir.join("db");
    fs::create_dir_all(&db).expect("db dir");
    fs::write(
        db.join("outguard-test.hdb"),
        "44d88612fea8a8f36de82e1278abb02f:68:Eicar-Test-Signature\n",
    )
    .expect("hdb");
    let hex: String = CLAMD_PATTERN.bytes().map(|b| format!("{b:02x}")).collect();
    fs::write(
        db.join("outguard-test.ndb"),
        format!("Outguard.Test.Pattern:0:*:{hex}\n"),
    )
    .expect("ndb");
    let socket = dir.join("clamd.sock");
    let port = free_port();
    let mut conf = format!(
        "DatabaseDirectory {db}\nLocalSocket {sock}\nTCPSocket {port}\nTCPAddr 127.0.0.1\n\
         Foreground yes\nLogFile {log}\nPidFile {pid}\nStreamMaxLength 1M\n",
        db = db.display(),
        sock = socket.display(),
        log = dir.join("clamd.log").display(),
        pid = dir.join("clamd.pid").display(),
    );
    if is_root() {
        conf.push_str("User root\n");
    }
    let conf_path = dir.join("clamd.conf");
    fs::write(&conf_path, conf).expect("clamd.conf");
    let mut daemon = Daemon::start(
        "clamd",
        Command::new(bin).arg("-c").arg(&conf_path),
        dir.join("clamd.out"),
    );
    daemon.wait_until("its Unix socket accepts", || {
        std::os::unix::net::UnixStream::connect(&socket).is_ok()
    });
    daemon.wait_tcp(port);
    Some(Clamd {
        daemon,
        socket,
        port,
    })
}

fn start_spamd(dir: &Path) -> Option<(Daemon, u16)> {
    let Some(bin) = find_binary("spamd") else {
        skip("spamd", "spamd");
        return None;
    };
    let port = free_port();
    let mut cmd = Command::new(bin);
    cmd.arg(format!("--listen=127.0.0.1:{port}"))
        .args([
            "--nouser-config",
            "--local",
            "--max-children=1",
            "--syslog=stderr",
        ])
        .arg(format!("--pidfile={}", dir.join("spamd.pid").display()));
    if is_root() {
        // spamd will not run checks as root.
        cmd.arg("--username=nobody");
    }
    let mut daemon = Daemon::start("spamd", &mut cmd, dir.join("spamd.log"));
    daemon.wait_tcp(port);
    Some((daemon, port))
}

fn start_rspamd(dir: &Path) -> Option<(Daemon, u16)> {
    let Some(bin) = find_binary("rspamd") else {
        skip("rspamd", "rspamd");
        return None;
    };
    let port = free_port();
    // The packaged rules ($CONFDIR) with our own options, log and single
    // worker; LOCAL_CONFDIR points at the temp dir so no local.d/override.d
    // of the machine applies.
    let conf = format!(
        ".include \"$CONFDIR/common.conf\"\n\
         options {{\n  pidfile = \"$RUNDIR/rspamd.pid\";\n  .include \"$CONFDIR/options.inc\"\n}}\n\
         logging {{\n  type = \"file\";\n  filename = \"$LOGDIR/rspamd.log\";\n  level = \"info\";\n}}\n\
         worker \"normal\" {{\n  bind_socket = \"127.0.0.1:{port}\";\n  .include \"$CONFDIR/worker-normal.inc\"\n}}\n"
    );
    let conf_path = dir.join("rspamd.conf");
    fs::write(&conf_path, conf).expect("rspamd.conf");
    let d = dir.display();
    let mut cmd = Command::new(bin);
    cmd.arg("-f").arg("-c").arg(&conf_path).args([
        format!("--var=LOCAL_CONFDIR={d}"),
        format!("--var=DBDIR={d}"),
        format!("--var=RUNDIR={d}"),
        format!("--var=LOGDIR={d}"),
    ]);
    if is_root() {
        cmd.args(["-u", "root", "-g", "root", "-i"]);
    }
    let mut daemon = Daemon::start("rspamd", &mut cmd, dir.join("rspamd.out"));
    daemon.wait_tcp(port);
    Some((daemon, port))
}

fn clamd_only(cfg: ClamdConfig) -> ExternalConfig {
    ExternalConfig {
        clamd: Some(cfg),
        ..ExternalConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clamd_finds_malware_over_unix_and_tcp_sockets() {
    let dir = TempDir::new("clamd");
    let Some(clamd) = start_clamd(dir.path()) else {
        return;
    };
    let unix = ClamdConfig {
        socket: Some(clamd.socket.clone()),
        ..ClamdConfig::default()
    };
    let tcp = ClamdConfig {
        address: Some(format!("127.0.0.1:{}", clamd.port)),
        ..ClamdConfig::default()
    };

    for cfg in [&unix, &tcp] {
        let cfg = clamd_only(cfg.clone());
        let found = external::check(&cfg, &eicar_message())
            .await
            .expect("clamd answers");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].engine, "clamd");
        assert_eq!(found[0].class, Class::Malware, "{found:?}");
        assert!(
            found[0].reason.contains("Eicar-Test-Signature"),
            "{found:?}"
        );

        let found = external::check(
            &cfg,
            &plain_message("report", &format!("the code is {CLAMD_PATTERN} today")),
        )
        .await
        .expect("clamd answers");
        assert_eq!(found[0].class, Class::Malware, "{found:?}");
        assert!(
            found[0].reason.contains("Outguard.Test.Pattern"),
            "{found:?}"
        );

        let found = external::check(&cfg, &plain_message("lunch", "See you at noon."))
            .await
            .expect("clamd answers");
        assert_eq!(found[0].class, Class::Clean, "{found:?}");
    }

    // A message spanning many INSTREAM chunks, pattern in the last one.
    let mut big = plain_message("big", &"lorem ipsum dolor sit amet\r\n".repeat(20_000));
    big.extend_from_slice(CLAMD_PATTERN.as_bytes());
    big.extend_from_slice(b"\r\n");
    assert!(big.len() > 256 * 1024 && big.len() < 1 << 20);
    let found = external::check(&clamd_only(unix.clone()), &big)
        .await
        .expect("clamd answers");
    assert_eq!(found[0].class, Class::Malware, "{found:?}");

    // clamd's own StreamMaxLength (1M here) reports an error, and the
    // client-side limit refuses before sending.
    let huge = plain_message("huge", &"x".repeat(2 << 20));
    let lax = ClamdConfig {
        max_stream_bytes: 4 << 20,
        ..unix.clone()
    };
    let err = external::check(&clamd_only(lax), &huge)
        .await
        .expect_err("over clamd's StreamMaxLength");
    assert_eq!(err.engine, "clamd");
    assert!(
        matches!(&err.kind, ErrorKind::Engine(m) if m.contains("size limit")),
        "{err}"
    );
    let strict = ClamdConfig {
        max_stream_bytes: 1 << 20,
        ..unix.clone()
    };
    let err = external::check(&clamd_only(strict), &huge)
        .await
        .expect_err("over max_stream_bytes");
    assert!(matches!(err.kind, ErrorKind::TooLarge { .. }), "{err}");

    // The daemon still answers after those errors.
    let found = external::check(&clamd_only(unix), &eicar_message())
        .await
        .expect("clamd answers");
    assert_eq!(found[0].class, Class::Malware);
    drop(clamd.daemon);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spamd_flags_gtube_and_passes_ham() {
    let dir = TempDir::new("spamd");
    let Some((daemon, port)) = start_spamd(dir.path()) else {
        return;
    };
    let cfg = ExternalConfig {
        spamd: Some(SpamdConfig {
            address: format!("127.0.0.1:{port}"),
            user: Some("outguard".into()),
            ..SpamdConfig::default()
        }),
        ..ExternalConfig::default()
    };
    let found = external::check(&cfg, &plain_message("offer", GTUBE))
        .await
        .expect("spamd answers");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].engine, "spamd");
    assert_eq!(found[0].class, Class::Spam, "{found:?}");
    assert!(found[0].score.is_some_and(|s| s >= 1000.0), "{found:?}");
    assert!(found[0].reason.contains("GTUBE"), "{found:?}");

    let found = external::check(
        &cfg,
        &plain_message(
            "lunch",
            "Hi Bob,\r\n\r\nshall we meet at noon at the usual place?\r\n\r\nAlice",
        ),
    )
    .await
    .expect("spamd answers");
    assert_eq!(found[0].class, Class::Clean, "{found:?}");

    // Over max_message_bytes: not sent, whatever it contains.
    let mut small = cfg.clone();
    if let Some(s) = small.spamd.as_mut() {
        s.max_message_bytes = 100;
    }
    let found = external::check(&small, &plain_message("offer", GTUBE))
        .await
        .expect("skipped");
    assert_eq!(found[0].class, Class::Clean, "{found:?}");
    assert!(found[0].reason.starts_with("not asked"), "{found:?}");
    drop(daemon);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rspamd_flags_gtube_and_passes_ham() {
    let dir = TempDir::new("rspamd");
    let Some((daemon, port)) = start_rspamd(dir.path()) else {
        return;
    };
    let cfg = ExternalConfig {
        rspamd: Some(RspamdConfig {
            url: format!("http://127.0.0.1:{port}"),
            ..RspamdConfig::default()
        }),
        ..ExternalConfig::default()
    };
    let found = external::check(&cfg, &plain_message("offer", GTUBE))
        .await
        .expect("rspamd answers");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].engine, "rspamd");
    assert_eq!(found[0].class, Class::Spam, "{found:?}");
    assert!(found[0].reason.contains("GTUBE"), "{found:?}");

    let found = external::check(
        &cfg,
        &plain_message(
            "lunch",
            "Hi Bob,\r\n\r\nshall we meet at noon at the usual place?\r\n\r\nAlice",
        ),
    )
    .await
    .expect("rspamd answers");
    assert_eq!(found[0].class, Class::Clean, "{found:?}");

    // A path rspamd does not serve is an engine error, not a verdict.
    let wrong = ExternalConfig {
        rspamd: Some(RspamdConfig {
            url: format!("http://127.0.0.1:{port}/nowhere"),
            ..RspamdConfig::default()
        }),
        ..ExternalConfig::default()
    };
    let err = external::check(&wrong, &plain_message("offer", GTUBE))
        .await
        .expect_err("404");
    assert_eq!(err.engine, "rspamd");
    assert!(matches!(err.kind, ErrorKind::Engine(_)), "{err}");
    drop(daemon);
}

/// clamd and spamd asked together through one `check`, merged into a
/// built-in verdict; an engine that is down or silent is an error naming
/// it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engines_combine_and_failures_name_the_engine() {
    let dir = TempDir::new("combined");
    let Some(clamd) = start_clamd(dir.path()) else {
        return;
    };
    let Some((spamd, spamd_port)) = start_spamd(dir.path()) else {
        return;
    };
    let mut cfg = ExternalConfig {
        clamd: Some(ClamdConfig {
            socket: Some(clamd.socket.clone()),
            ..ClamdConfig::default()
        }),
        spamd: Some(SpamdConfig {
            address: format!("127.0.0.1:{spamd_port}"),
            ..SpamdConfig::default()
        }),
        rspamd: None,
    };
    let message = plain_message("both", &format!("{GTUBE}\r\n{CLAMD_PATTERN}"));
    let found = external::check(&cfg, &message).await.expect("both answer");
    let engines: Vec<_> = found.iter().map(|f| f.engine).collect();
    assert_eq!(engines, ["clamd", "spamd"]);
    let builtin = Verdict {
        class: Class::Clean,
        score: 0.5,
        reasons: vec![],
        lock_score: 0.0,
        classifier_only: false,
        fingerprint: 0,
    };
    let verdict = external::combine(builtin, &found);
    assert_eq!(verdict.class, Class::Malware);
    assert!(verdict.score >= 1000.0, "{verdict:?}");
    assert!(verdict.reasons[0].starts_with("clamd: virus found: Outguard.Test.Pattern"));
    assert!(verdict.reasons[1].starts_with("spamd: score"));

    // rspamd configured but nothing listens on its port: an error naming
    // rspamd, unless another engine found malware (no answer can change
    // that verdict).
    let closed = free_port();
    cfg.rspamd = Some(RspamdConfig {
        url: format!("http://127.0.0.1:{closed}"),
        ..RspamdConfig::default()
    });
    let spam_only = plain_message("offer", GTUBE);
    let err = external::check(&cfg, &spam_only)
        .await
        .expect_err("rspamd is down");
    assert_eq!(err.engine, "rspamd");
    assert!(matches!(err.kind, ErrorKind::Io(_)), "{err}");
    let each = external::check_each(&cfg, &spam_only).await;
    assert_eq!(each.len(), 3);
    assert!(each[0].is_ok() && each[1].is_ok() && each[2].is_err());
    let found = external::check(&cfg, &message)
        .await
        .expect("malware found, rspamd's failure cannot change it");
    let engines: Vec<_> = found.iter().map(|f| f.engine).collect();
    assert_eq!(engines, ["clamd", "spamd"]);

    // An engine that accepts the connection but never answers times out.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let silent_addr = silent.local_addr().expect("addr");
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((c, _)) = silent.accept().await {
            conns.push(c);
        }
    });
    cfg.rspamd = None;
    cfg.spamd = Some(SpamdConfig {
        address: silent_addr.to_string(),
        timeout_ms: 300,
        ..SpamdConfig::default()
    });
    let err = external::check(&cfg, &spam_only)
        .await
        .expect_err("spamd is silent");
    assert_eq!(err.engine, "spamd");
    assert_eq!(err.kind, ErrorKind::Timeout(300));
    held.abort();
    drop(spamd);
    drop(clamd.daemon);
}
