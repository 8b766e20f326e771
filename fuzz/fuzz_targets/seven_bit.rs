//! 8-bit to 7-bit conversion for a next hop without 8BITMIME: never a
//! panic; a success is 7-bit, and 7-bit input comes back unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use outguard::delivery::seven_bit;

fuzz_target!(|data: &[u8]| {
    if let Ok(out) = seven_bit::convert(data) {
        assert!(out.is_ascii());
        if data.is_ascii() {
            assert_eq!(out, data);
        }
    }
});
