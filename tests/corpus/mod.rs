//! The training corpus for the integration tests that score real mail
//! (scan_engine.rs, scan_scores.rs): `OUTGUARD_CORPUS`, else the shared
//! copy next to the checkout.

use std::path::{Path, PathBuf};

pub fn corpus_dir() -> PathBuf {
    let candidates = [
        std::env::var_os("OUTGUARD_CORPUS").map(PathBuf::from),
        Some(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/spamassassin-public-2002"),
        ),
        Some(PathBuf::from(
            "/work/shared/corpus/spamassassin-public-2002",
        )),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.join("spam").is_dir())
        .expect("SpamAssassin corpus not found; set OUTGUARD_CORPUS")
}
