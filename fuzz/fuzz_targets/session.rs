//! A whole SMTP session: bytes in, replies out, with a real `Server` on a
//! temporary redb store (scanning off; the scanner has its own target).
//! The first byte picks the mode (plain or inside TLS) and whether the
//! client is an IP-authorised user, so MAIL/RCPT/DATA and AUTH are both
//! reachable. Every reply must be well formed and bounded.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use outguard::clock::Clock;
use outguard::config::SmtpConfig;
use outguard::smtp::{Mode, Server, run_session};
use outguard::users::{User, UserName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct World {
    server: Server,
    rt: tokio::runtime::Runtime,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        // tmpfs where there is one: every accepted message is an fsync.
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            std::path::PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("outguard-fuzz-session-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("fuzz data dir");
        let smtp = SmtpConfig {
            max_message_size: 4096,
            max_recipients: 5,
            ..SmtpConfig::default()
        };
        let server = Server::standalone(&dir, smtp).expect("server");
        let now = Clock::default().now();
        let ip = UserName::parse("127.0.0.1").expect("ip user");
        server
            .app
            .store
            // A domain, so MAIL FROM:<x@example.com> (and what follows)
            // is reachable: an IP user without one may send as nobody.
            .add_user(&User::new(&ip, Some("example.com".into()), now))
            .expect("add ip user");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        World { server, rt }
    })
}

/// Checks the reply stream: CRLF-terminated lines of `NNN` + space or
/// dash + text, each within RFC 5321's 512 octets.
fn check_replies(out: &[u8]) {
    let text = std::str::from_utf8(out).expect("replies are UTF-8");
    assert!(
        text.is_empty() || text.ends_with("\r\n"),
        "unterminated: {text:?}"
    );
    for line in text.split_terminator("\r\n") {
        let b = line.as_bytes();
        assert!(b.len() >= 4, "short reply line {line:?}");
        assert!(b[..3].iter().all(u8::is_ascii_digit), "bad code {line:?}");
        assert!(b[3] == b' ' || b[3] == b'-', "bad separator {line:?}");
        assert!(b.len() + 2 <= 512, "reply line over 512 octets: {line:?}");
        assert!(!line.contains('\r') && !line.contains('\n'), "{line:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&knobs, input)) = data.split_first() else {
        return;
    };
    let w = world();
    let mode = if knobs & 1 == 0 {
        Mode::Plain
    } else {
        Mode::Tls
    };
    let ip_user = (knobs & 2 != 0).then(|| "127.0.0.1".to_string());
    let out = w.rt.block_on(async {
        let (mut client, server) = tokio::io::duplex(8 * 1024);
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        // After STARTTLS the session hands the stream back: drop it so the
        // client sees the end.
        let session = async {
            drop(run_session(&w.server, server, ip, ip_user, mode, true).await);
        };
        let talk = async {
            // The input may be larger than the pipe: write while reading.
            let (mut rd, mut wr) = tokio::io::split(&mut client);
            let write = async {
                let _ = wr.write_all(input).await;
                let _ = wr.shutdown().await;
            };
            let mut out = Vec::new();
            let read = rd.read_to_end(&mut out);
            let (_, r) = tokio::join!(write, read);
            r.map(|_| out).unwrap_or_default()
        };
        let (_, out) = tokio::join!(session, talk);
        out
    });
    check_replies(&out);
});
