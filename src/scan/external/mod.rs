//! Optional external scanning engines: ClamAV's clamd, SpamAssassin's spamd
//! and rspamd. Each one is enabled by its own config table and asked about
//! every message next to the built-in [`Scanner`](super::Scanner); their
//! findings are merged into the built-in verdict by [`combine`].
//!
//! The protocols are small and implemented here on tokio: clamd `INSTREAM`
//! (Unix or TCP socket), spamd `SPAMC/1.5` `SYMBOLS`, rspamd HTTP
//! `POST /checkv2`. Every exchange runs under the engine's timeout and reads
//! at most a fixed number of reply bytes, so a stuck or hostile engine costs
//! a bounded amount of time and memory. Any failure (refused connection,
//! timeout, malformed or error reply) is an [`ExternalError`] naming the
//! engine; the caller decides the fail-safe action (typically a temporary
//! failure so the client retries).

pub mod clamd;
pub mod rspamd;
pub mod spamd;

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Class, Verdict};

/// clamd reached over a Unix socket (`socket`) or TCP (`address`); exactly
/// one of the two must be set.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClamdConfig {
    /// Path of clamd's `LocalSocket`.
    pub socket: Option<PathBuf>,
    /// `host:port` of clamd's `TCPSocket`, e.g. `"127.0.0.1:3310"`.
    pub address: Option<String>,
    /// Whole exchange: connect, stream, verdict.
    pub timeout_ms: u64,
    /// clamd's `StreamMaxLength` (25M in Debian's clamd.conf). A larger message
    /// is not sent (clamd would drop the connection); it is an error so the
    /// caller's fail-safe action applies.
    pub max_stream_bytes: u64,
}

impl Default for ClamdConfig {
    fn default() -> Self {
        Self {
            socket: None,
            address: None,
            timeout_ms: 30_000,
            max_stream_bytes: 25 << 20,
        }
    }
}

/// spamd reached over TCP.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpamdConfig {
    /// `host:port`, e.g. `"127.0.0.1:783"`.
    pub address: String,
    /// Sent as spamd's `User:` header (whose preferences apply).
    pub user: Option<String>,
    pub timeout_ms: u64,
    /// Larger messages are not sent to spamd (the finding says so and is
    /// clean): SpamAssassin is slow on big messages and spam is small.
    /// The default is spamc's (500 KiB).
    pub max_message_bytes: u64,
}

impl Default for SpamdConfig {
    fn default() -> Self {
        Self {
            address: "127.0.0.1:783".to_owned(),
            user: None,
            timeout_ms: 30_000,
            max_message_bytes: 500 * 1024,
        }
    }
}

/// rspamd's normal worker reached over plain HTTP.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RspamdConfig {
    /// `http://host:port[/prefix]`, e.g. `"http://127.0.0.1:11333"`.
    pub url: String,
    /// Sent as the `Password:` header (needed behind rspamd's proxy or
    /// controller, not by the normal worker).
    pub password: Option<String>,
    pub timeout_ms: u64,
}

impl Default for RspamdConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:11333".to_owned(),
            password: None,
            timeout_ms: 30_000,
        }
    }
}

/// The external engines to ask; each is on when its table is present.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExternalConfig {
    pub clamd: Option<ClamdConfig>,
    pub spamd: Option<SpamdConfig>,
    pub rspamd: Option<RspamdConfig>,
}

impl ExternalConfig {
    pub fn is_empty(&self) -> bool {
        self.clamd.is_none() && self.spamd.is_none() && self.rspamd.is_none()
    }

    /// Checks what serde cannot: called when the daemon loads its config.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(c) = &self.clamd {
            match (&c.socket, &c.address) {
                (Some(_), Some(_)) => {
                    return Err("[scan.clamd]: set either `socket` or `address`, not both".into());
                }
                (None, None) => {
                    return Err("[scan.clamd]: `socket` or `address` is required".into());
                }
                _ => {}
            }
            if c.max_stream_bytes == 0 || c.max_stream_bytes > u64::from(u32::MAX) {
                return Err(
                    "[scan.clamd]: `max_stream_bytes` must be between 1 and 4294967295".into(),
                );
            }
        }
        if let Some(r) = &self.rspamd {
            rspamd::Endpoint::parse(&r.url).map_err(|e| format!("[scan.rspamd] url: {e}"))?;
        }
        Ok(())
    }
}

/// What one engine said about a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// `"clamd"`, `"spamd"` or `"rspamd"`.
    pub engine: &'static str,
    pub class: Class,
    /// The engine's own score on its own scale (spamd and rspamd).
    pub score: Option<f64>,
    /// Human-readable summary: virus name, or score and symbols.
    pub reason: String,
}

/// Why an engine gave no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Connecting, writing or reading failed.
    Io(String),
    /// No complete answer within `timeout_ms`.
    Timeout(u64),
    /// The engine answered something this client does not understand, or
    /// a reply exceeded its size bound.
    Protocol(String),
    /// The engine reported an error of its own (e.g. clamd `... ERROR`).
    Engine(String),
    /// The message exceeds what the engine accepts (`max_stream_bytes`).
    TooLarge { size: usize, limit: u64 },
    /// The configuration cannot work (see [`ExternalConfig::validate`]).
    Config(String),
}

/// An engine failed; the caller applies its fail-safe action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalError {
    pub engine: &'static str,
    pub kind: ErrorKind,
}

impl ExternalError {
    pub(crate) fn new(engine: &'static str, kind: ErrorKind) -> Self {
        Self { engine, kind }
    }
}

impl fmt::Display for ExternalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let engine = self.engine;
        match &self.kind {
            ErrorKind::Io(e) => write!(f, "{engine}: {e}"),
            ErrorKind::Timeout(ms) => write!(f, "{engine}: no answer within {ms} ms"),
            ErrorKind::Protocol(e) => write!(f, "{engine}: protocol error: {e}"),
            ErrorKind::Engine(e) => write!(f, "{engine}: engine error: {e}"),
            ErrorKind::TooLarge { size, limit } => write!(
                f,
                "{engine}: message of {size} bytes exceeds the {limit}-byte stream limit"
            ),
            ErrorKind::Config(e) => write!(f, "{engine}: bad configuration: {e}"),
        }
    }
}

impl std::error::Error for ExternalError {}

/// Runs `fut` under a timeout of `ms` milliseconds.
async fn with_timeout<T>(
    engine: &'static str,
    ms: u64,
    fut: impl Future<Output = Result<T, ExternalError>>,
) -> Result<T, ExternalError> {
    match tokio::time::timeout(Duration::from_millis(ms), fut).await {
        Ok(r) => r,
        Err(_) => Err(ExternalError::new(engine, ErrorKind::Timeout(ms))),
    }
}

/// Asks every configured engine concurrently and returns one result per
/// engine, in the order clamd, spamd, rspamd (unconfigured ones omitted).
pub async fn check_each(
    cfg: &ExternalConfig,
    message: &[u8],
) -> Vec<Result<Finding, ExternalError>> {
    let clamd = async {
        match &cfg.clamd {
            Some(c) => {
                Some(with_timeout(clamd::ENGINE, c.timeout_ms, clamd::scan(c, message)).await)
            }
            None => None,
        }
    };
    let spamd = async {
        match &cfg.spamd {
            Some(c) => {
                Some(with_timeout(spamd::ENGINE, c.timeout_ms, spamd::scan(c, message)).await)
            }
            None => None,
        }
    };
    let rspamd = async {
        match &cfg.rspamd {
            Some(c) => {
                Some(with_timeout(rspamd::ENGINE, c.timeout_ms, rspamd::scan(c, message)).await)
            }
            None => None,
        }
    };
    let (a, b, c) = tokio::join!(clamd, spamd, rspamd);
    [a, b, c].into_iter().flatten().collect()
}

/// Asks every configured engine concurrently. All must answer: the first
/// failure (in the order clamd, spamd, rspamd) is returned so the caller
/// applies its fail-safe action, even when another engine did answer —
/// except when an engine found malware: no other answer can change that
/// verdict, so the findings are returned and the failures only logged.
/// Callers that prefer to act on partial answers use [`check_each`].
pub async fn check(cfg: &ExternalConfig, message: &[u8]) -> Result<Vec<Finding>, ExternalError> {
    let results = check_each(cfg, message).await;
    let malware = results
        .iter()
        .any(|r| matches!(r, Ok(f) if f.class == Class::Malware));
    let mut findings = Vec::with_capacity(results.len());
    for r in results {
        match r {
            Ok(f) => findings.push(f),
            Err(e) if malware => {
                tracing::warn!(error = %e, "external engine failed; malware already found")
            }
            Err(e) => return Err(e),
        }
    }
    Ok(findings)
}

fn rank(class: Class) -> u8 {
    match class {
        Class::Clean => 0,
        Class::Spam => 1,
        Class::Malware => 2,
    }
}

/// Merges engine findings into the built-in verdict.
///
/// - Class: the worst of all — Malware from any engine wins, otherwise Spam
///   from any engine makes Spam; a clean finding never lowers the class.
/// - Score: the built-in score, raised to the score of an engine that found
///   spam where that is higher, and to 100 (the built-in malware score) when
///   an engine found malware. Engines use their own scales (rspamd's spam
///   threshold is 15, not 5), so a clean finding never changes the score;
///   the score is informative, the class is what the caller acts on.
/// - Reasons: one line per finding, prefixed by the engine name (clean
///   findings included, so logs show who was asked), merged with the
///   built-in reasons so that the sources with the worst class come first
///   (reply lines show only the first reasons); among equals the built-in
///   reasons come first, then the engines in order.
pub fn combine(builtin: Verdict, findings: &[Finding]) -> Verdict {
    let mut class = builtin.class;
    let mut score = builtin.score;
    // An engine's score is its own evidence, not Outguard's classifier.
    let mut lock_score = builtin.lock_score;
    // An engine that calls it spam or malware is evidence of its own.
    let classifier_only =
        builtin.classifier_only && findings.iter().all(|f| f.class == Class::Clean);
    for f in findings {
        if rank(f.class) > rank(class) {
            class = f.class;
        }
        if let Some(s) = f.score
            && f.class != Class::Clean
            && s.is_finite()
        {
            score = score.max(s);
            lock_score = lock_score.max(s);
        }
        if f.class == Class::Malware {
            score = score.max(100.0);
            lock_score = lock_score.max(100.0);
        }
    }
    let mut groups: Vec<(Class, Vec<String>)> = Vec::with_capacity(findings.len() + 1);
    groups.push((builtin.class, builtin.reasons));
    for f in findings {
        groups.push((f.class, vec![format!("{}: {}", f.engine, f.reason)]));
    }
    // Stable: ties keep the built-in-first, engine order.
    groups.sort_by_key(|(c, _)| std::cmp::Reverse(rank(*c)));
    Verdict {
        class,
        score,
        reasons: groups.into_iter().flat_map(|(_, r)| r).collect(),
        lock_score,
        classifier_only,
        fingerprint: builtin.fingerprint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builtin(class: Class, score: f64) -> Verdict {
        Verdict {
            class,
            score,
            reasons: vec!["BUILTIN (+1.0): x".into()],
            lock_score: score,
            classifier_only: false,
            fingerprint: 0,
        }
    }

    fn finding(engine: &'static str, class: Class, score: Option<f64>) -> Finding {
        Finding {
            engine,
            class,
            score,
            reason: format!("{class}"),
        }
    }

    #[test]
    fn malware_from_any_engine_wins() {
        let v = combine(
            builtin(Class::Spam, 7.0),
            &[
                finding("spamd", Class::Spam, Some(9.0)),
                finding("clamd", Class::Malware, None),
            ],
        );
        assert_eq!(v.class, Class::Malware);
        assert_eq!(v.score, 100.0);
        assert_eq!(
            v.reasons,
            ["clamd: malware", "BUILTIN (+1.0): x", "spamd: spam"]
        );
    }

    #[test]
    fn spam_from_an_engine_makes_spam_and_clean_never_lowers() {
        let v = combine(
            builtin(Class::Clean, 1.5),
            &[finding("rspamd", Class::Spam, Some(16.0))],
        );
        assert_eq!(v.class, Class::Spam);
        assert_eq!(v.score, 16.0);
        assert_eq!(v.reasons, ["rspamd: spam", "BUILTIN (+1.0): x"]);

        let v = combine(
            builtin(Class::Malware, 100.0),
            &[finding("spamd", Class::Clean, Some(-2.0))],
        );
        assert_eq!(v.class, Class::Malware);
        assert_eq!(v.score, 100.0);

        let v = combine(
            builtin(Class::Clean, 1.0),
            &[finding("rspamd", Class::Clean, Some(5.9))],
        );
        assert_eq!(v.class, Class::Clean);
        assert_eq!(v.score, 1.0);

        let v = combine(builtin(Class::Spam, 6.0), &[]);
        assert_eq!(v.class, Class::Spam);
        assert_eq!(v.reasons.len(), 1);
    }

    #[test]
    fn config_tables_parse_with_defaults() {
        let cfg: ExternalConfig = toml::from_str(
            "[clamd]\nsocket = \"/run/clamav/clamd.ctl\"\n\
             [spamd]\nuser = \"outguard\"\n",
        )
        .expect("parse");
        let clamd = cfg.clamd.as_ref().expect("clamd on");
        assert_eq!(clamd.max_stream_bytes, 25 << 20);
        assert_eq!(clamd.timeout_ms, 30_000);
        assert_eq!(
            cfg.spamd.as_ref().expect("spamd on").address,
            "127.0.0.1:783"
        );
        assert!(cfg.rspamd.is_none());
        cfg.validate().expect("valid");

        assert!(toml::from_str::<ExternalConfig>("[clamd]\nsokcet = \"/x\"\n").is_err());
        let both: ExternalConfig =
            toml::from_str("[clamd]\nsocket = \"/x\"\naddress = \"127.0.0.1:3310\"\n")
                .expect("parse");
        assert!(both.validate().is_err());
        let neither: ExternalConfig = toml::from_str("[clamd]\n").expect("parse");
        assert!(neither.validate().is_err());
        let bad_url: ExternalConfig =
            toml::from_str("[rspamd]\nurl = \"https://x\"\n").expect("parse");
        assert!(bad_url.validate().is_err());
    }

    #[tokio::test]
    async fn nothing_configured_means_no_findings() {
        let findings = check(&ExternalConfig::default(), b"Subject: x\r\n\r\nx\r\n")
            .await
            .expect("no engines, no errors");
        assert!(findings.is_empty());
    }
}
