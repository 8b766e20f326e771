//! AUTH decoders: one response line through base64, then the PLAIN and
//! LOGIN shapes. Nothing may panic; what PLAIN accepts must be what was sent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use outguard::auth::sasl::{self, Response};

fuzz_target!(|data: &[u8]| {
    if let Ok(Response::Data(d)) = sasl::decode(data) {
        if let Ok((user, pass)) = sasl::plain(&d) {
            assert!(!user.is_empty());
            assert!(!user.contains('\0') && !pass.contains('\0'));
        }
        if let Ok(f) = sasl::login_field(&d) {
            assert!(!f.contains('\0'));
        }
    }
    // The raw bytes as if already decoded.
    let _ = sasl::plain(data);
    let _ = sasl::login_field(data);
});
