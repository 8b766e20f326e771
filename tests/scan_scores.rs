//! The scanner's results on a fixed set of real messages must not change
//! unless a change means to change them: a speed-up of the tokenizer, the
//! MIME walk, the rules or the model lookup has to give the same tokens,
//! rule hits, findings and the bit-identical log-odds and score.
//!
//! `tests/fixtures/scan_scores.txt` holds one line per message, written by
//! this test with `OUTGUARD_WRITE_SCAN_SCORES=1` (do that only when the
//! results are meant to change, e.g. after retraining, and say why in the
//! commit): the message, its class, the score and the calibrated log-odds
//! as f64 bit patterns, the number of token hashes and a SHA-256 of them,
//! the rules that hit, a SHA-256 of the verdict's reasons and the
//! malware findings.

mod corpus;
use corpus::corpus_dir;
use std::path::Path;

use outguard::scan::{ScanConfig, Scanner, strip_mbox_from};
use sha2::Digest;

/// The messages: every 10th of ham/ and spam/, all of hard-ham/ (the
/// newsletters, HTML-heavy), and bench/message.eml (the timed message).
fn messages() -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir();
    let mut out = Vec::new();
    for (folder, every) in [("ham", 10), ("hard-ham", 1), ("spam", 10)] {
        let mut names: Vec<String> = std::fs::read_dir(dir.join(folder))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in names.into_iter().step_by(every) {
            let raw = std::fs::read(dir.join(folder).join(&name)).unwrap();
            out.push((format!("{folder}/{name}"), raw));
        }
    }
    let bench = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/message.eml");
    out.push(("bench/message.eml".into(), std::fs::read(bench).unwrap()));
    out
}

fn result_line(scanner: &Scanner, name: &str, raw: &[u8]) -> String {
    let raw = strip_mbox_from(raw);
    let verdict = scanner.scan(raw).expect("scan");
    let analysis = scanner.analyze(raw).expect("analyze");
    let log_odds = scanner
        .model()
        .spam_log_odds(&analysis.tokens)
        .expect("the shipped model knows both classes");
    let mut digest = sha2::Sha256::new();
    for t in &analysis.tokens {
        digest.update(t.to_le_bytes());
    }
    let digest = digest.finalize();
    let reasons = sha2::Sha256::digest(verdict.reasons.join("\n"));
    let rules: Vec<&str> = analysis.rule_hits.iter().map(|h| h.name).collect();
    format!(
        "{name} {} score={:#018x} log_odds={:#018x} tokens={} sha256={:02x?} rules=[{}] \
         reasons_sha256={:02x?} malware={:?}",
        verdict.class,
        verdict.score.to_bits(),
        log_odds.to_bits(),
        analysis.tokens.len(),
        &digest[..8],
        rules.join(","),
        &reasons[..8],
        analysis.malware,
    )
    .replace(", ", ",")
}

#[test]
fn scores_of_fixed_messages_are_unchanged() {
    let scanner = Scanner::new(ScanConfig::default(), None).expect("shipped model");
    let got: Vec<String> = messages()
        .iter()
        .map(|(name, raw)| result_line(&scanner, name, raw))
        .collect();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scan_scores.txt");
    if std::env::var_os("OUTGUARD_WRITE_SCAN_SCORES").is_some() {
        std::fs::write(&path, got.join("\n") + "\n").unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).expect("tests/fixtures/scan_scores.txt");
    let expected: Vec<&str> = expected.lines().collect();
    assert!(got.len() > 400, "{} messages", got.len());
    let changed: Vec<String> = got
        .iter()
        .zip(&expected)
        .filter(|(g, e)| g != e)
        .map(|(g, e)| format!("expected {e}\n     got {g}"))
        .collect();
    assert!(
        changed.is_empty() && got.len() == expected.len(),
        "{} of {} results changed ({} expected):\n{}",
        changed.len(),
        got.len(),
        expected.len(),
        changed.join("\n")
    );
}
