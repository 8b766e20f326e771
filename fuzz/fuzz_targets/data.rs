//! The DATA receiver: the end is found at the same place however the
//! input is split, never at a bare-LF "end", and never more than the
//! size limit is kept.
#![no_main]

use libfuzzer_sys::fuzz_target;
use outguard::smtp::DataReceiver;

fn run(input: &[u8], cut: usize, max: usize) -> (Option<usize>, Vec<u8>, String) {
    let mut rx = DataReceiver::new(max);
    let mut out = Vec::new();
    let cut = cut.min(input.len());
    let used = rx
        .feed(&input[..cut], &mut out)
        .or_else(|| rx.feed(&input[cut..], &mut out).map(|n| n + cut));
    (used, out, format!("{:?}", rx.verdict()))
}

fuzz_target!(|data: &[u8]| {
    let Some((&knobs, input)) = data.split_first() else {
        return;
    };
    let max = 16 + usize::from(knobs & 0x3f) * 8;
    let whole = run(input, input.len(), max);
    let split = run(input, usize::from(knobs) * 7 % (input.len() + 1), max);
    assert_eq!(whole, split);
    let (used, out, _) = whole;
    assert!(out.len() <= max);
    if let Some(n) = used {
        // Only CRLF.CRLF (or a first line of ".") ends the data.
        let end = &input[..n];
        assert!(end == b".\r\n" || end.ends_with(b"\r\n.\r\n"), "{end:?}");
    }
});
