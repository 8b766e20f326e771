//! A real redis-server on a loopback port for the unit tests of the Lua
//! scripts (CI installs it; without it a test says so and passes).

/// Stopped when the test ends, passed or not.
pub struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A fresh server (no persistence) and a connection to it; None if
/// redis-server is not installed.
pub fn start() -> Option<(Server, redis::Connection)> {
    if !std::path::Path::new("/usr/bin/redis-server").exists() {
        eprintln!("redis-server not installed: script not tested");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let server = Server(
        std::process::Command::new("/usr/bin/redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--logfile", ""])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let c = loop {
        match client.get_connection() {
            Ok(c) => break c,
            Err(e) if std::time::Instant::now() > deadline => panic!("redis-server: {e}"),
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    };
    Some((server, c))
}
