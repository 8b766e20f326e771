//! The out-of-distribution evaluation protocol of docs/SCANNING.md.
//!
//! A corpus directory holds `ham/`, `hard-ham/` and `spam/`. A fixed,
//! seeded 30 % of each folder is the held-out set: no choice (token,
//! regularisation, calibration, threshold) is ever made by looking at it.
//! Choices are made with [`tune`], which only reads the other 70 %:
//! - hard-ham-out: trained on tuning ham + spam only, scored on the tuning
//!   hard ham (legitimate newsletters and commercial mail the model has
//!   never seen anything like);
//! - source-disjoint folds: every message has a source (its mailing list,
//!   else its sender's registrable domain); the sources are hashed into 5
//!   groups and each group is scored by a model that saw none of its
//!   sources, so the model cannot lean on who relayed or sent the mail.
//!
//! [`report`] then scores the held-out set once with the same two
//! constructions (and a plain held-out score for comparison), with
//! calibration bins, and times the scan of one message.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use super::linear::Model;
use super::signatures::SignatureDb;
use super::training::{analyze_all, load_corpus_with_paths};
use super::{Analysis, Class, ScanConfig, Scanner, tokenize, urls};

/// Share of each folder held out, in tenths, and the seed of the split.
const HELD_OUT_TENTHS: u32 = 3;
const SPLIT_SEED: &str = "outguard-holdout-2026:";
/// Source-disjoint folds used for tuning.
const SOURCE_FOLDS: u32 = 5;
/// Thresholds of the sweeps.
const SWEEP: &[f64] = &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 12.0];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Folder {
    Ham,
    HardHam,
    Spam,
}

impl Folder {
    fn name(self) -> &'static str {
        match self {
            Folder::Ham => "ham",
            Folder::HardHam => "hard-ham",
            Folder::Spam => "spam",
        }
    }

    fn is_spam(self) -> bool {
        self == Folder::Spam
    }
}

pub struct Item {
    pub path: PathBuf,
    pub folder: Folder,
    pub source: String,
    pub held_out: bool,
    pub analysis: Option<Analysis>,
}

/// Whether a message (by file name) is in the held-out set.
pub fn is_held_out(file_name: &str) -> bool {
    tokenize::hash(&format!("{SPLIT_SEED}{file_name}")) % 10 < HELD_OUT_TENTHS
}

/// The message's source: its mailing list (List-Id, X-Mailing-List,
/// List-Post) or else the registrable domain of its From address.
pub fn source_of(raw: &[u8]) -> String {
    let head = String::from_utf8_lossy(&raw[..raw.len().min(64 * 1024)]);
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(last) = fields.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            fields.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let field = |name: &str| fields.iter().find(|f| f.0 == name).map(|f| f.1.as_str());
    for name in ["list-id", "x-mailing-list", "list-post", "mailing-list"] {
        if let Some(v) = field(name) {
            let inner = v
                .split_once('<')
                .and_then(|(_, r)| r.split_once('>'))
                .map_or(v, |(i, _)| i);
            let inner = inner.trim_start_matches("mailto:").to_ascii_lowercase();
            let key: String = inner.split_whitespace().next().unwrap_or("").into();
            if !key.is_empty() {
                return format!("list:{key}");
            }
        }
    }
    let from = field("from").unwrap_or("");
    let addr = from
        .split_once('<')
        .and_then(|(_, r)| r.split_once('>'))
        .map_or(from, |(i, _)| i);
    let domain = addr
        .rsplit_once('@')
        .map_or("", |(_, d)| d)
        .trim()
        .to_ascii_lowercase();
    format!("from:{}", urls::registrable_domain(&domain))
}

/// The calibration group of a source (see [`Model::train_calibrated`]).
pub fn calibration_group(source: &str) -> u32 {
    tokenize::hash(&format!("calibration:{source}"))
}

/// Loads and analyses the three folders of a corpus.
pub fn load(corpus: &Path, config: &ScanConfig) -> io::Result<Vec<Item>> {
    let scanner = Scanner::with_model(config.clone(), Model::new(), SignatureDb::default());
    let mut items = Vec::new();
    for folder in [Folder::Ham, Folder::HardHam, Folder::Spam] {
        let loaded = load_corpus_with_paths(&[corpus.join(folder.name())])?;
        let (paths, messages): (Vec<_>, Vec<_>) = loaded.into_iter().unzip();
        let analyses = analyze_all(&scanner, &messages);
        for ((path, raw), analysis) in paths.into_iter().zip(&messages).zip(analyses) {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            items.push(Item {
                held_out: is_held_out(name.as_deref().unwrap_or("")),
                source: source_of(raw),
                folder,
                path,
                analysis,
            });
        }
    }
    Ok(items)
}

/// Trains (with calibration) on the given items.
fn train(items: &[&Item], c: f64) -> Model {
    let kept: Vec<&&Item> = items.iter().filter(|i| i.analysis.is_some()).collect();
    let examples: Vec<(&[u32], bool)> = kept
        .iter()
        .filter_map(|i| Some((i.analysis.as_ref()?.tokens.as_slice(), i.folder.is_spam())))
        .collect();
    let groups: Vec<u32> = kept.iter().map(|i| calibration_group(&i.source)).collect();
    let weights: Vec<f64> = kept
        .iter()
        .map(|i| {
            if i.folder == Folder::HardHam {
                super::training::HARD_HAM_WEIGHT
            } else {
                1.0
            }
        })
        .collect();
    Model::train_calibrated_weighted(
        &examples,
        Some(&weights),
        Some(&groups),
        super::training::DEFAULT_MIN_COUNT,
        c,
    )
}

/// One scored message: folder, score (infinite for malware), probability.
#[derive(Debug, Clone)]
pub struct Scored {
    pub folder: Folder,
    pub score: f64,
    pub probability: Option<f64>,
    pub path: PathBuf,
}

fn score(scanner: &Scanner, model: &Model, items: &[&Item]) -> Vec<Scored> {
    items
        .iter()
        .filter_map(|i| {
            let a = i.analysis.as_ref()?;
            let v = scanner.verdict(a, model);
            let flagged_anyway = v.class == Class::Malware || a.forced_spam;
            Some(Scored {
                folder: i.folder,
                score: if flagged_anyway {
                    f64::INFINITY
                } else {
                    v.score
                },
                probability: model.spam_probability(&a.tokens),
                path: i.path.clone(),
            })
        })
        .collect()
}

/// Prints flagged counts per folder at each threshold of the sweep.
fn print_rates(title: &str, scored: &[Scored], configured: f64) {
    println!("{title}");
    let mut by_folder: BTreeMap<Folder, Vec<f64>> = BTreeMap::new();
    for s in scored {
        by_folder.entry(s.folder).or_default().push(s.score);
    }
    let header: Vec<String> = by_folder
        .iter()
        .map(|(f, v)| format!("{} ({})", f.name(), v.len()))
        .collect();
    println!("  threshold  flagged: {}", header.join(" | "));
    for &t in SWEEP {
        let cells: Vec<String> = by_folder
            .values()
            .map(|v| {
                let n = v.iter().filter(|&&s| s >= t).count();
                format!("{:6.2} % ({n})", 100.0 * n as f64 / v.len().max(1) as f64)
            })
            .collect();
        let mark = if t == configured { "  <- default" } else { "" };
        println!("  {t:>9.1}  {}{mark}", cells.join(" | "));
    }
}

/// Predicted probability against the observed spam rate, in bins.
fn print_calibration(scored: &[Scored]) {
    println!("  calibration (classifier probability vs observed spam share):");
    let edges = [0.0, 0.05, 0.2, 0.4, 0.6, 0.8, 0.95, 1.0001];
    for w in edges.windows(2) {
        let bin: Vec<&Scored> = scored
            .iter()
            .filter(|s| s.probability.is_some_and(|p| p >= w[0] && p < w[1]))
            .collect();
        if bin.is_empty() {
            continue;
        }
        let spam = bin.iter().filter(|s| s.folder.is_spam()).count();
        let mean: f64 = bin.iter().filter_map(|s| s.probability).sum::<f64>() / bin.len() as f64;
        println!(
            "    p in [{:.2}, {:.2}): {:5} messages, mean p {:.3}, observed spam {:.3} ({spam})",
            w[0],
            w[1].min(1.0),
            bin.len(),
            mean,
            spam as f64 / bin.len() as f64
        );
    }
}

fn print_errors(scored: &[Scored], threshold: f64) {
    for s in scored {
        if (s.score >= threshold) != s.folder.is_spam() {
            println!(
                "    {:>8} {:7.2} {}",
                s.folder.name(),
                s.score,
                s.path.display()
            );
        }
    }
}

/// The source-disjoint fold of a message.
fn group(i: &Item) -> u32 {
    salted_group(i, "")
}

/// The source-disjoint fold of a message in the grouping named by `salt`
/// ("" is the protocol's own): another salt puts the sources into five
/// other groups, to see whether a choice suits only one split.
fn salted_group(i: &Item, salt: &str) -> u32 {
    tokenize::hash(&format!("group{salt}:{}", i.source)) % SOURCE_FOLDS
}

/// Options of the tuning checks.
#[derive(Debug, Default)]
pub struct TuneOptions {
    /// List the misjudged tuning messages at this threshold.
    pub list_at: Option<f64>,
    /// The grouping of the source-disjoint check (`salted_group`).
    pub salt: String,
}

/// Tuning checks on the 70 % that is not held out.
pub fn tune(items: &[Item], config: &ScanConfig, c: f64, options: &TuneOptions) {
    let scanner = Scanner::with_model(config.clone(), Model::new(), SignatureDb::default());
    let tuning: Vec<&Item> = items.iter().filter(|i| !i.held_out).collect();
    let t = config.spam_threshold;

    let train_set: Vec<&Item> = tuning
        .iter()
        .copied()
        .filter(|i| i.folder != Folder::HardHam)
        .collect();
    let test: Vec<&Item> = tuning
        .iter()
        .copied()
        .filter(|i| i.folder == Folder::HardHam)
        .collect();
    let model = train(&train_set, c);
    let hard_out = score(&scanner, &model, &test);
    print_rates(
        "tuning, hard-ham-out (trained on tuning ham + spam, scored on tuning hard ham):",
        &hard_out,
        t,
    );
    if let Some(at) = options.list_at {
        print_errors(&hard_out, at);
    }

    let mut all = Vec::new();
    for g in 0..SOURCE_FOLDS {
        let in_g = |i: &&Item| salted_group(i, &options.salt) == g;
        let train_set: Vec<&Item> = tuning.iter().copied().filter(|i| !in_g(i)).collect();
        let test: Vec<&Item> = tuning.iter().copied().filter(in_g).collect();
        let model = train(&train_set, c);
        all.extend(score(&scanner, &model, &test));
    }
    print_rates(
        "tuning, source-disjoint 5 folds (no source of a scored message in its training):",
        &all,
        t,
    );
    print_calibration(&all);
    print_at_catch(&all, &hard_out, t);
    if let Some(at) = options.list_at {
        print_errors(&all, at);
    }
}

/// Explains the source-disjoint score of tuning messages: for each name
/// (the first tuning message whose path contains it, e.g. `spam/00394`),
/// the model of its source group's fold and the message's strongest
/// weighted tokens. Reads only the tuning part.
pub fn explain(items: &[Item], config: &ScanConfig, c: f64, names: &[String], top: usize) {
    let scanner = Scanner::with_model(config.clone(), Model::new(), SignatureDb::default());
    let tuning: Vec<&Item> = items.iter().filter(|i| !i.held_out).collect();
    for name in names {
        let Some(item) = tuning
            .iter()
            .find(|i| i.path.to_string_lossy().contains(name.as_str()))
        else {
            println!("{name}: not in the tuning part");
            continue;
        };
        let g = group(item);
        let train_set: Vec<&Item> = tuning.iter().copied().filter(|i| group(i) != g).collect();
        let model = train(&train_set, c);
        let Some(a) = item.analysis.as_ref() else {
            println!("{}: over a scan limit", item.path.display());
            continue;
        };
        let v = scanner.verdict(a, &model);
        let raw = std::fs::read(&item.path).unwrap_or_default();
        let names = scanner
            .token_names(super::strip_mbox_from(&raw))
            .unwrap_or_default();
        let clues = model.clues(&a.tokens);
        println!(
            "{} ({}, source {}): score {:.2}, {} known tokens",
            item.path.display(),
            item.folder.name(),
            item.source,
            v.score,
            clues.len()
        );
        for (h, w) in clues.iter().take(top) {
            let n = names
                .binary_search_by_key(h, |e| e.0)
                .map_or("?", |i| names[i].1.as_str());
            println!("    {w:+8.3}  {n}");
        }
    }
}

/// The `top` strongest spam and ham tokens of a model trained on the whole
/// tuning part, each with the number of tuning messages (ham, hard ham,
/// spam) and of sources that have it: a token that only one or two
/// sources carry says where the corpus came from, not what was written.
pub fn top_tokens(items: &[Item], config: &ScanConfig, c: f64, top: usize) {
    let scanner = Scanner::with_model(config.clone(), Model::new(), SignatureDb::default());
    let tuning: Vec<&Item> = items.iter().filter(|i| !i.held_out).collect();
    let model = train(&tuning, c);
    let mut names: std::collections::HashMap<u32, String> = Default::default();
    // token -> (ham, hard ham, spam, sources)
    let mut seen: std::collections::HashMap<u32, ([usize; 3], Vec<&str>)> = Default::default();
    for i in &tuning {
        let raw = std::fs::read(&i.path).unwrap_or_default();
        for (h, n) in scanner
            .token_names(super::strip_mbox_from(&raw))
            .unwrap_or_default()
        {
            names.entry(h).or_insert(n);
            let e = seen.entry(h).or_default();
            e.0[match i.folder {
                Folder::Ham => 0,
                Folder::HardHam => 1,
                Folder::Spam => 2,
            }] += 1;
            if !e.1.contains(&i.source.as_str()) {
                e.1.push(&i.source);
            }
        }
    }
    let hashes: Vec<u32> = seen.keys().copied().collect();
    let mut w = model.clues(&hashes);
    w.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let line = |&(h, wt): &(u32, f32)| {
        let (n, s) = seen.get(&h).map_or(([0; 3], 0), |e| (e.0, e.1.len()));
        println!(
            "    {wt:+8.3}  {:<32} ham {:4} hard {:3} spam {:4} sources {:4}",
            names.get(&h).map_or("?", String::as_str),
            n[0],
            n[1],
            n[2],
            s
        );
    };
    println!("strongest spam tokens (model trained on the tuning part):");
    w.iter().take(top).for_each(line);
    println!("strongest ham tokens:");
    w.iter().rev().take(top).for_each(line);
}

/// The source-disjoint rates at the default threshold and at the
/// thresholds where it catches 90, 95 and 97 % of the spam, with the
/// hard-ham-out check's hard-ham rate at the same threshold (A): the
/// operating points docs/SCANNING.md compares.
fn print_at_catch(disjoint: &[Scored], hard_out: &[Scored], configured: f64) {
    let mut spam: Vec<f64> = disjoint
        .iter()
        .filter(|s| s.folder.is_spam())
        .map(|s| s.score)
        .collect();
    spam.sort_unstable_by(|a, b| b.total_cmp(a));
    let rate = |v: &[Scored], f: Folder, t: f64| {
        let of: Vec<&Scored> = v.iter().filter(|s| s.folder == f).collect();
        100.0 * of.iter().filter(|s| s.score >= t).count() as f64 / of.len().max(1) as f64
    };
    println!("  operating points (ham FP / hard-ham FP / spam caught, A = hard-ham-out FP):");
    let mut points = vec![("default".to_string(), configured)];
    for share in [0.90, 0.95, 0.97] {
        let k = ((share * spam.len() as f64).ceil() as usize).clamp(1, spam.len().max(1));
        if let Some(&t) = spam.get(k - 1) {
            points.push((format!("{:.0} % caught", share * 100.0), t));
        }
    }
    for (name, t) in points {
        println!(
            "    {name:>12} (t {t:6.2}): {:.2} / {:.1} / {:.1}, A {:.1}",
            rate(disjoint, Folder::Ham, t),
            rate(disjoint, Folder::HardHam, t),
            rate(disjoint, Folder::Spam, t),
            rate(hard_out, Folder::HardHam, t),
        );
    }
}

/// The held-out figures, to be read once the choices are made.
pub fn report(items: &[Item], config: &ScanConfig, c: f64, list_errors: bool) {
    let scanner = Scanner::with_model(config.clone(), Model::new(), SignatureDb::default());
    let t = config.spam_threshold;
    let (tuning, held): (Vec<&Item>, Vec<&Item>) = items.iter().partition(|i| !i.held_out);
    let count = |v: &[&Item], f: Folder| v.iter().filter(|i| i.folder == f).count();
    println!(
        "held-out split (seeded, {}0 % of each folder): ham {} / hard-ham {} / spam {} held out; \
         ham {} / hard-ham {} / spam {} for training and tuning",
        HELD_OUT_TENTHS,
        count(&held, Folder::Ham),
        count(&held, Folder::HardHam),
        count(&held, Folder::Spam),
        count(&tuning, Folder::Ham),
        count(&tuning, Folder::HardHam),
        count(&tuning, Folder::Spam),
    );

    // A: no hard ham in training at all, scored on held-out ham and spam
    // and on every held-out hard ham.
    let no_hard: Vec<&Item> = tuning
        .iter()
        .copied()
        .filter(|i| i.folder != Folder::HardHam)
        .collect();
    let model = train(&no_hard, c);
    let hard_out = score(&scanner, &model, &held);
    print_rates(
        "held-out A, hard-ham-out (trained on the tuning ham + spam, no hard ham at all):",
        &hard_out,
        t,
    );
    print_calibration(&hard_out);
    if list_errors {
        print_errors(&hard_out, t);
    }

    // B: source-disjoint: the sources are hashed into the tuning groups;
    // each held-out message is scored by a model trained on the tuning
    // messages of the other groups, so none of its source's mail.
    let mut scored = Vec::new();
    for g in 0..SOURCE_FOLDS {
        let train_set: Vec<&Item> = tuning.iter().copied().filter(|i| group(i) != g).collect();
        let test: Vec<&Item> = held.iter().copied().filter(|i| group(i) == g).collect();
        scored.extend(score(&scanner, &train(&train_set, c), &test));
    }
    print_rates(
        "held-out B, source-disjoint (each held-out message scored by a model trained on the \
         tuning messages of the other source groups):",
        &scored,
        t,
    );
    print_calibration(&scored);
    print_at_catch(&scored, &hard_out, t);
    if list_errors {
        print_errors(&scored, t);
    }

    // C: the plain split, all tuning messages in training (optimistic:
    // held-out messages share sources with the training set).
    let model = train(&tuning, c);
    let scored = score(&scanner, &model, &held);
    print_rates(
        "held-out C, in-distribution (trained on every tuning message; sources shared):",
        &scored,
        t,
    );
    print_calibration(&scored);
}

/// On-CPU time of the calling thread (Linux: /proc/thread-self/schedstat,
/// nanoseconds), so that other load on a shared machine does not count.
fn thread_cpu() -> Option<std::time::Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns = stat.split_whitespace().next()?.parse().ok()?;
    Some(std::time::Duration::from_nanos(ns))
}

/// Mean (wall time, CPU time) of `scanner.scan` over `rounds` scans of one
/// message; CPU time when the platform tells it.
pub fn time_scan(
    scanner: &Scanner,
    raw: &[u8],
    rounds: usize,
) -> (std::time::Duration, Option<std::time::Duration>) {
    let _ = scanner.scan(raw);
    let cpu_start = thread_cpu();
    let start = std::time::Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(scanner.scan(std::hint::black_box(raw)).ok());
    }
    let wall = start.elapsed();
    let cpu = thread_cpu()
        .zip(cpu_start)
        .map(|(b, a)| b.saturating_sub(a));
    let n = rounds.max(1) as u32;
    (wall / n, cpu.map(|c| c / n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_is_list_then_sender_domain() {
        let list = b"From: a@b.example.org\nList-Id: Fans <fans.lists.example.net>\n\nhi";
        assert_eq!(source_of(list), "list:fans.lists.example.net");
        let folded = b"From: x@y.z\nX-Mailing-List: <talk@example.org>\n  extra\n\nhi";
        assert_eq!(source_of(folded), "list:talk@example.org");
        let plain = b"From: \"Bob\" <bob@mail.shop.example.com>\nSubject: hi\n\nbody";
        assert_eq!(source_of(plain), "from:example.com");
    }

    #[test]
    fn split_is_fixed_and_about_thirty_percent() {
        let held = (0..1000)
            .filter(|i| is_held_out(&format!("{i:05}.txt")))
            .count();
        assert!((250..350).contains(&held), "{held}");
        assert_eq!(is_held_out("00001.txt"), is_held_out("00001.txt"));
    }

    #[test]
    fn another_salt_is_another_split_of_the_same_sources() {
        let item = |source: String| Item {
            path: PathBuf::new(),
            folder: Folder::Ham,
            source,
            held_out: false,
            analysis: None,
        };
        let items: Vec<Item> = (0..200)
            .map(|i| item(format!("from:s{i}.example")))
            .collect();
        // The protocol's own grouping is the empty salt's.
        assert!(items.iter().all(|i| group(i) == salted_group(i, "")));
        let moved = items
            .iter()
            .filter(|i| salted_group(i, "x") != group(i))
            .count();
        assert!(moved > 100, "{moved}");
        for salt in ["", "x"] {
            let mut sizes = [0; SOURCE_FOLDS as usize];
            for i in &items {
                sizes[salted_group(i, salt) as usize] += 1;
            }
            assert!(sizes.iter().all(|&n| n > 20), "{salt}: {sizes:?}");
        }
    }
}
