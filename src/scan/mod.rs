//! Content scanner for outbound mail: malware checks, heuristic rules and a
//! statistical classifier (logistic regression over hashed tokens, [`linear`])
//! combined into one [`Verdict`].
//!
//! The engine is synchronous and CPU-bound; callers on an async runtime should
//! run [`Scanner::scan`] inside `spawn_blocking`. Every stage is bounded by
//! [`Limits`] so hostile input produces a [`ScanError`] instead of unbounded
//! work or memory.

pub mod archive;
pub mod cli;
pub mod content;
pub mod external;
pub mod fingerprint;
pub mod holdout;
pub mod html;
pub mod linear;
pub mod malware;
pub mod mime;
pub mod rules;
pub mod signatures;
pub mod tokenize;
pub mod training;
pub mod urls;
pub mod uuencode;
pub mod weights;

use std::fmt;
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

pub use linear::Model;
pub use malware::{Action, Policy};

/// Model trained on the SpamAssassin public corpus, regenerated with
/// `outguard-train train` (see docs/SCANNING.md).
const SHIPPED_MODEL: &[u8] = include_bytes!("model.bin");

/// Removes the mbox separator line (`From sender date`) some files start with.
pub fn strip_mbox_from(raw: &[u8]) -> &[u8] {
    if raw.starts_with(b"From ") {
        match raw.iter().position(|&b| b == b'\n') {
            Some(nl) => &raw[nl + 1..],
            None => &[],
        }
    } else {
        raw
    }
}

/// Resource bounds applied while taking a message apart.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Raw message size accepted for scanning.
    pub max_message_bytes: usize,
    /// MIME parts across the whole message, nested messages included.
    pub max_parts: usize,
    /// Nesting of multiparts and attached messages.
    pub max_depth: usize,
    /// Decoded bytes (MIME bodies plus everything decompressed from archives).
    pub max_decoded_bytes: u64,
    /// Archive-in-archive nesting.
    pub max_archive_depth: usize,
    /// Archive members across all archives of one message.
    pub max_archive_entries: usize,
    /// Uncompressed/compressed ratio above which a member is treated as a bomb
    /// (only checked for members above 1 MiB uncompressed).
    pub max_compression_ratio: u64,
    /// Units of work for one message (about one per byte examined by any
    /// stage): scanning is linear in its input, and this bounds it in case
    /// a stage is not.
    pub max_work: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 64 << 20,
            max_parts: 1000,
            max_depth: 16,
            max_decoded_bytes: 128 << 20,
            max_archive_depth: 4,
            max_archive_entries: 2000,
            max_compression_ratio: 200,
            max_work: 1 << 30,
        }
    }
}

/// Scanner configuration, typically a `[scan]` table of the appliance config.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScanConfig {
    pub limits: Limits,
    pub policy: Policy,
    /// Score at or above which a message is classified as spam. 6 rather
    /// than 5: on outbound mail a false positive blocks a user's own mail
    /// (and with automatic lock, the user), so the default gives up about
    /// half a point of catch rate for less than half the false positives
    /// (cross-validation over twelve splits, docs/SCANNING.md).
    pub spam_threshold: f64,
    /// Points the classifier adds at probability 1.0 (and removes at 0.0);
    /// the contribution is linear in between, zero at 0.5. With the default
    /// threshold of 6 the classifier alone flags mail at p >= 0.731. (The
    /// name predates the logistic-regression classifier; kept so that
    /// existing configurations still load.)
    pub bayes_weight: f64,
}

impl Default for ScanConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            policy: Policy::default(),
            spam_threshold: 6.0,
            bayes_weight: 13.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    Clean,
    Spam,
    Malware,
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Class::Clean => "clean",
            Class::Spam => "spam",
            Class::Malware => "malware",
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub class: Class,
    pub score: f64,
    pub reasons: Vec<String>,
    /// What a lock on content alone is judged on (`submission::fate`):
    /// `score` with the classifier's points counted at most up to the
    /// spam threshold. The classifier alone can flag a message but not
    /// lock its sender: on kinds of mail its corpus lacks it is confidently
    /// wrong (docs/SCANNING.md), so the rest must come from the rules,
    /// signatures or GTUBE.
    pub lock_score: f64,
    /// Spam only because of the classifier: no rule, signature or engine
    /// would flag it, and without the classifier's points the score is
    /// below the spam threshold. The response ladder lets such a message
    /// through to the user's own contacts when the sending is usual
    /// (`submission::fate`): out of distribution this is where the
    /// classifier's false positives are (legitimate newsletters).
    #[serde(skip)]
    pub classifier_only: bool,
    /// Near-duplicate fingerprint of the text (`fingerprint::of`; 0: none).
    #[serde(skip)]
    pub fingerprint: u128,
}

/// A message could not be scanned within the configured bounds. The caller
/// decides the fail-safe action (typically: reject or quarantine).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanError {
    MessageTooLarge {
        size: usize,
        limit: usize,
    },
    TooManyParts {
        limit: usize,
    },
    NestingTooDeep {
        limit: usize,
    },
    DecodedBytesExceeded {
        limit: u64,
    },
    ArchiveTooDeep {
        limit: usize,
    },
    TooManyArchiveEntries {
        limit: usize,
    },
    CompressionRatioExceeded {
        limit: u64,
    },
    WorkExceeded {
        limit: u64,
    },
    /// The caller's deadline passed; the scan stopped itself.
    DeadlinePassed,
}

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScanError::MessageTooLarge { size, limit } => {
                write!(
                    f,
                    "message of {size} bytes exceeds the {limit}-byte scan limit"
                )
            }
            ScanError::TooManyParts { limit } => write!(f, "more than {limit} MIME parts"),
            ScanError::NestingTooDeep { limit } => {
                write!(f, "MIME nesting deeper than {limit} levels")
            }
            ScanError::DecodedBytesExceeded { limit } => {
                write!(f, "more than {limit} decoded bytes")
            }
            ScanError::ArchiveTooDeep { limit } => {
                write!(f, "archives nested deeper than {limit} levels")
            }
            ScanError::TooManyArchiveEntries { limit } => {
                write!(f, "more than {limit} archive members")
            }
            ScanError::CompressionRatioExceeded { limit } => {
                write!(
                    f,
                    "archive member compressed more than {limit}:1 (zip bomb)"
                )
            }
            ScanError::WorkExceeded { limit } => {
                write!(f, "more than {limit} units of scanning work")
            }
            ScanError::DeadlinePassed => f.write_str("scan stopped at its deadline"),
        }
    }
}

impl std::error::Error for ScanError {}

/// Failure to set up a [`Scanner`] (bad model or signature files).
#[derive(Debug)]
pub enum InitError {
    Io(std::path::PathBuf, std::io::Error),
    Model(String),
    Signature {
        file: std::path::PathBuf,
        line: usize,
        message: String,
    },
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InitError::Io(path, e) => write!(f, "{}: {e}", path.display()),
            InitError::Model(m) => write!(f, "invalid classifier model: {m}"),
            InitError::Signature {
                file,
                line,
                message,
            } => {
                write!(f, "{}:{line}: {message}", file.display())
            }
        }
    }
}

impl std::error::Error for InitError {}

/// Work between two looks at the clock.
const DEADLINE_CHECK_EVERY: u64 = 64 * 1024;

/// What one message may cost: decoded bytes and archive members (MIME
/// decoding, archive extraction), and work (every stage charges about one
/// unit per byte it examines) up to a limit and a deadline. The scanner
/// checks it itself, so a scan that runs out stops, rather than being
/// abandoned while its thread goes on.
#[derive(Debug)]
pub struct Budget {
    decoded_left: u64,
    decoded_limit: u64,
    archive_entries_left: usize,
    archive_entries_limit: usize,
    work: u64,
    work_limit: u64,
    next_clock_check: u64,
    deadline: Option<Instant>,
}

impl Budget {
    pub fn new(limits: &Limits) -> Self {
        Self {
            decoded_left: limits.max_decoded_bytes,
            decoded_limit: limits.max_decoded_bytes,
            archive_entries_left: limits.max_archive_entries,
            archive_entries_limit: limits.max_archive_entries,
            work: 0,
            work_limit: limits.max_work,
            next_clock_check: DEADLINE_CHECK_EVERY,
            deadline: None,
        }
    }

    /// No limits at all (tools and tests that call one stage directly).
    pub fn unlimited() -> Self {
        let mut b = Self::new(&Limits::default());
        b.decoded_left = u64::MAX;
        b.archive_entries_left = usize::MAX;
        b.work_limit = u64::MAX;
        b
    }

    /// The scan must stop once `deadline` has passed.
    pub fn until(mut self, deadline: Option<Instant>) -> Self {
        self.deadline = deadline;
        self
    }

    /// Work charged so far.
    pub fn work(&self) -> u64 {
        self.work
    }

    /// Charges `n` units of work; looks at the clock now and then.
    pub fn charge_work(&mut self, n: u64) -> Result<(), ScanError> {
        self.work = self.work.saturating_add(n);
        if self.work > self.work_limit {
            return Err(ScanError::WorkExceeded {
                limit: self.work_limit,
            });
        }
        if self.work >= self.next_clock_check {
            self.next_clock_check = self.work.saturating_add(DEADLINE_CHECK_EVERY);
            self.check_deadline()?;
        }
        Ok(())
    }

    /// Fails once the deadline has passed.
    pub fn check_deadline(&self) -> Result<(), ScanError> {
        match self.deadline {
            Some(d) if Instant::now() >= d => Err(ScanError::DeadlinePassed),
            _ => Ok(()),
        }
    }

    /// Charges decoded bytes (and the work of producing them).
    pub fn charge_bytes(&mut self, n: u64) -> Result<(), ScanError> {
        self.charge_work(n)?;
        self.decoded_left =
            self.decoded_left
                .checked_sub(n)
                .ok_or(ScanError::DecodedBytesExceeded {
                    limit: self.decoded_limit,
                })?;
        Ok(())
    }

    pub fn charge_entry(&mut self) -> Result<(), ScanError> {
        self.charge_work(1)?;
        self.archive_entries_left =
            self.archive_entries_left
                .checked_sub(1)
                .ok_or(ScanError::TooManyArchiveEntries {
                    limit: self.archive_entries_limit,
                })?;
        Ok(())
    }
}

/// Everything the model-independent stages found in one message. Kept
/// separate from the final verdict so cross-validation can analyse each
/// message once and re-score it against many models.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// Malware / dangerous-content findings that the policy blocks.
    pub malware: Vec<String>,
    /// GTUBE or another rule that forces the spam class.
    pub forced_spam: bool,
    pub rule_hits: Vec<rules::RuleHit>,
    /// Sorted, de-duplicated token hashes for the classifier.
    pub tokens: Vec<u32>,
    /// Near-duplicate fingerprint of the subject and text.
    pub fingerprint: u128,
}

/// The scanning engine. Immutable after construction, so it can be shared
/// between threads behind an `Arc`.
#[derive(Debug)]
pub struct Scanner {
    config: ScanConfig,
    model: Model,
    signatures: signatures::SignatureDb,
}

impl Scanner {
    /// Builds a scanner. With a `data_dir`, hash signatures are loaded from
    /// `<data_dir>/signatures/*.hdb|*.hsb` and a retrained classifier from
    /// `<data_dir>/model.bin` replaces the shipped one when present.
    pub fn new(config: ScanConfig, data_dir: Option<&Path>) -> Result<Self, InitError> {
        let mut model = None;
        let mut signatures = signatures::SignatureDb::default();
        if let Some(dir) = data_dir {
            let model_path = dir.join("model.bin");
            if model_path.is_file() {
                let bytes = std::fs::read(&model_path).map_err(|e| InitError::Io(model_path, e))?;
                model = Some(Model::from_bytes(&bytes).map_err(InitError::Model)?);
            }
            signatures = signatures::SignatureDb::load_dir(&dir.join("signatures"))?;
        }
        let model = match model {
            Some(m) => m,
            None => Model::from_bytes(SHIPPED_MODEL).map_err(InitError::Model)?,
        };
        Ok(Self::with_model(config, model, signatures))
    }

    /// Builds a scanner from explicit parts (training tools, tests).
    pub fn with_model(
        config: ScanConfig,
        model: Model,
        signatures: signatures::SignatureDb,
    ) -> Self {
        Self {
            config,
            model,
            signatures,
        }
    }

    pub fn config(&self) -> &ScanConfig {
        &self.config
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Scans one raw RFC 5322 message.
    pub fn scan(&self, raw_message: &[u8]) -> Result<Verdict, ScanError> {
        self.scan_until(raw_message, None)
    }

    /// Scans a message, stopping with [`ScanError::DeadlinePassed`] soon
    /// after `deadline`.
    pub fn scan_until(
        &self,
        raw_message: &[u8],
        deadline: Option<Instant>,
    ) -> Result<Verdict, ScanError> {
        let analysis = self.analyze_until(raw_message, deadline)?;
        Ok(self.verdict(&analysis, &self.model))
    }

    /// Runs every model-independent stage on a message.
    pub fn analyze(&self, raw_message: &[u8]) -> Result<Analysis, ScanError> {
        self.analyze_until(raw_message, None)
    }

    fn analyze_until(
        &self,
        raw_message: &[u8],
        deadline: Option<Instant>,
    ) -> Result<Analysis, ScanError> {
        let limits = &self.config.limits;
        if raw_message.len() > limits.max_message_bytes {
            return Err(ScanError::MessageTooLarge {
                size: raw_message.len(),
                limit: limits.max_message_bytes,
            });
        }
        let mut budget = Budget::new(limits).until(deadline);
        // Parsing (mail-parser) is one call, linear in the message.
        budget.charge_work(raw_message.len() as u64)?;
        let parsed = mime::parse(raw_message, limits)?;
        budget.check_deadline()?;
        let doc = mime::Document::extract(parsed.as_ref(), raw_message, limits, &mut budget)?;
        let malware = malware::scan_document(
            &doc,
            &self.config.policy,
            &self.signatures,
            limits,
            &mut budget,
        )?;
        // The rules and the tokenizer read the content view, whose text is
        // bounded (content::TEXT_TOTAL_LIMIT): charged here as one.
        let content = content::Content::within(&doc, &mut budget)?;
        budget.charge_work(content.text_len() as u64)?;
        let rule_hits = rules::evaluate(&doc, &content);
        budget.check_deadline()?;
        let forced_spam = rule_hits.iter().any(|h| h.forces_spam);
        let mut tokens = tokenize::tokenize(&doc, &content);
        budget.check_deadline()?;
        // The rules that hit are classifier features too, so the model
        // learns what each says beside the words (their fixed scores still
        // count on their own).
        tokens.extend(
            rule_hits
                .iter()
                .map(|h| tokenize::hash(&format!("rule:{}", h.name))),
        );
        tokens.sort_unstable();
        tokens.dedup();
        let fingerprint = fingerprint::of(doc.subject, content.texts());
        Ok(Analysis {
            malware,
            forced_spam,
            rule_hits,
            tokens,
            fingerprint,
        })
    }

    /// The classifier tokens of a message with their hashes (the rules'
    /// tokens included), for explaining a score; not used by scanning.
    pub fn token_names(&self, raw_message: &[u8]) -> Result<Vec<(u32, String)>, ScanError> {
        let limits = &self.config.limits;
        let mut budget = Budget::new(limits);
        let parsed = mime::parse(raw_message, limits)?;
        let doc = mime::Document::extract(parsed.as_ref(), raw_message, limits, &mut budget)?;
        let content = content::Content::within(&doc, &mut budget)?;
        let mut names = Vec::new();
        tokenize::for_each_token(&doc, &content, |t| names.push(t.to_string()));
        names.extend(
            rules::evaluate(&doc, &content)
                .iter()
                .map(|h| format!("rule:{}", h.name)),
        );
        let mut out: Vec<(u32, String)> =
            names.into_iter().map(|n| (tokenize::hash(&n), n)).collect();
        out.sort_unstable();
        out.dedup_by_key(|e| e.0);
        Ok(out)
    }

    /// Combines an analysis with a classifier model into the final verdict.
    pub fn verdict(&self, analysis: &Analysis, model: &Model) -> Verdict {
        let mut reasons = Vec::new();
        if !analysis.malware.is_empty() {
            reasons.extend(analysis.malware.iter().cloned());
            return Verdict {
                class: Class::Malware,
                score: 100.0,
                reasons,
                lock_score: 100.0,
                classifier_only: false,
                fingerprint: analysis.fingerprint,
            };
        }
        let mut score = 0.0;
        for hit in &analysis.rule_hits {
            score += hit.score;
            reasons.push(format!("{} ({:+.1}): {}", hit.name, hit.score, hit.detail));
        }
        let mut lock_score = score;
        let rules = score;
        if let Some(p) = model.spam_probability(&analysis.tokens) {
            let points = self.config.bayes_weight * (2.0 * p - 1.0);
            score += points;
            lock_score += points.min(self.config.spam_threshold);
            reasons.push(format!(
                "CLASSIFIER ({points:+.1}): spam probability {p:.3}"
            ));
        }
        let class = if analysis.forced_spam || score >= self.config.spam_threshold {
            Class::Spam
        } else {
            Class::Clean
        };
        Verdict {
            class,
            score: (score * 100.0).round() / 100.0,
            reasons,
            lock_score: (lock_score * 100.0).round() / 100.0,
            classifier_only: class == Class::Spam
                && !analysis.forced_spam
                && rules < self.config.spam_threshold,
            fingerprint: analysis.fingerprint,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scanner_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Scanner>();
    }

    #[test]
    fn shipped_model_loads() {
        let model = Model::from_bytes(SHIPPED_MODEL).expect("shipped model");
        assert!(model.spam_messages() > 0 && model.ham_messages() > 0);
    }

    #[test]
    fn config_defaults_fill_missing_fields() {
        let cfg: ScanConfig =
            toml::from_str("spam_threshold = 7.5\n[limits]\nmax_parts = 10\n").expect("parse");
        assert_eq!(cfg.spam_threshold, 7.5);
        assert_eq!(cfg.limits.max_parts, 10);
        assert_eq!(cfg.limits.max_depth, Limits::default().max_depth);
    }

    #[test]
    fn a_scan_stops_itself_at_its_deadline_or_work_limit() {
        let mut msg = b"Subject: x\r\nContent-Type: text/html\r\n\r\n".to_vec();
        msg.extend_from_slice(&b"<p>words and <b>more</b> words\r\n".repeat(20_000));
        let scanner =
            Scanner::with_model(ScanConfig::default(), Model::default(), Default::default());
        assert!(scanner.scan(&msg).is_ok());
        let past = Some(Instant::now());
        assert_eq!(
            scanner.scan_until(&msg, past).err(),
            Some(ScanError::DeadlinePassed)
        );
        let mut config = ScanConfig::default();
        config.limits.max_work = msg.len() as u64 * 2;
        let scanner = Scanner::with_model(config, Model::default(), Default::default());
        assert!(matches!(
            scanner.scan(&msg),
            Err(ScanError::WorkExceeded { .. })
        ));
    }

    #[test]
    fn token_names_are_the_analysed_tokens() {
        let msg = b"From: Bob <bob@example.org>\r\nSubject: Cheap pills!!\r\n\
            Content-Type: text/plain\r\n\r\nBuy cheap pills at http://1.2.3.4/x today.\r\n";
        let scanner =
            Scanner::with_model(ScanConfig::default(), Model::default(), Default::default());
        let names = scanner.token_names(msg).expect("names");
        let hashes: Vec<u32> = names.iter().map(|n| n.0).collect();
        assert_eq!(hashes, scanner.analyze(msg).expect("analysis").tokens);
        for want in [
            "subject:pills",
            "cheap",
            "url:ip-literal",
            "rule:URL_IP_LITERAL",
        ] {
            assert!(
                names.iter().any(|n| n.1 == want),
                "{want} missing: {names:?}"
            );
        }
    }

    #[test]
    fn oversized_message_is_refused() {
        let mut config = ScanConfig::default();
        config.limits.max_message_bytes = 100;
        let scanner = Scanner::with_model(config, Model::default(), Default::default());
        let msg = vec![b'a'; 101];
        assert!(matches!(
            scanner.scan(&msg),
            Err(ScanError::MessageTooLarge { .. })
        ));
    }
}
