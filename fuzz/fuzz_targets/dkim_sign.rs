//! DKIM signing of arbitrary stored messages: reading the From: domain
//! and the headers to sign, canonicalising and signing must not panic
//! (release builds abort, and the worker signs every queued message).
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use outguard::dkim::{Algorithm, Head, Key, signature};

static KEY: LazyLock<Key> = LazyLock::new(|| {
    Key::generate("fuzz", Algorithm::Ed25519, jiff::Timestamp::UNIX_EPOCH).expect("key")
});

fuzz_target!(|data: &[u8]| {
    if let Some(head) = Head::parse(data) {
        assert!(!head.domain.is_empty());
        let header = signature(&KEY, &head, data).unwrap_or_default();
        assert!(header.is_empty() || header.starts_with("DKIM-Signature: "));
    }
});
