//! CSRF protection by synchronizer token: each session has a random
//! token that every state-changing request must carry (the
//! `X-CSRF-Token` header for the API, a hidden `csrf` field in forms).
//! The login form, which has no session yet, uses a double-submit token:
//! a cookie set with the form and the same value in the form.

use rand::TryRngCore;
use subtle::ConstantTimeEq;

/// A fresh 256-bit token, URL-safe base64.
pub fn token() -> String {
    let mut raw = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut raw)
        .expect("OS random source");
    base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, raw)
}

/// Does `given` equal `expected`? Constant time in the content; an empty
/// or missing token never matches.
pub fn matches(expected: &str, given: Option<&str>) -> bool {
    match given {
        Some(g) if !g.is_empty() && !expected.is_empty() => {
            bool::from(expected.as_bytes().ct_eq(g.as_bytes()))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_fresh_and_checked() {
        let (a, b) = (token(), token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(matches(&a, Some(&a)));
        assert!(!matches(&a, Some(&b)));
        assert!(!matches(&a, Some(&a[..42])));
        assert!(!matches(&a, None));
        assert!(!matches("", Some("")));
    }
}
