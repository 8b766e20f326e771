//! The CSV importer: every line is either imported or reported, with line
//! numbers in order and within the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use outguard::import;

fuzz_target!(|data: &[u8]| {
    let (ok, errors) = import::parse(data);
    let lines = data.split(|&b| b == b'\n').count() as u64;
    for l in &ok {
        assert!(l.line >= 1 && l.line <= lines);
        if let Some(p) = &l.password {
            assert!(import::check_password(p).is_ok());
        }
    }
    for e in &errors {
        assert!(e.line >= 1 && e.line <= lines);
    }
    assert!(ok.windows(2).all(|w| w[0].line < w[1].line));
});
