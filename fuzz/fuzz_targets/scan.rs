//! The content scanner on arbitrary messages: MIME walk, decoders,
//! archives (zip, gzip, tar), HTML, rules and the classifier. It must
//! finish within its limits with a verdict or a bounded error.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use outguard::scan::{ScanConfig, Scanner};

fn scanner() -> &'static Scanner {
    static S: OnceLock<Scanner> = OnceLock::new();
    S.get_or_init(|| Scanner::new(ScanConfig::default(), None).expect("built-in scanner"))
}

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = scanner().scan(data) {
        assert!(v.score.is_finite());
        assert!(v.reasons.len() <= 1000);
    }
});
