//! The HTML reader on arbitrary markup: it must never panic, and its work
//! must stay linear in the input (a list of every element name made
//! thousands of made-up names quadratic; issue 12).
#![no_main]

use libfuzzer_sys::fuzz_target;
use outguard::scan::{Budget, html};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut budget = Budget::unlimited();
    let h = html::parse_within(&text, &mut budget).expect("no limit set");
    // Each step is charged the bytes it passes over plus one, link text
    // once more, and one per element-name lookup.
    let len = text.len() as u64;
    assert!(
        budget.work() <= 4 * len + 64,
        "{} units for {len} bytes",
        budget.work()
    );
    assert!(h.elements.len() <= html::MAX_ELEMENTS);
    assert!(h.links.iter().all(|l| l.text.len() <= h.text.len()));
});
