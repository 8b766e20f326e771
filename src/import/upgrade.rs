//! The second half of a fast-hashed import: a user whose stored hash is
//! weaker than the daemon's full cost (`auth::password::needs_rehash`) logs
//! in with the right password, the verifier re-hashes it at full cost
//! (`auth::password::Login::Upgraded`), and it is stored here the way a
//! password change stores a hash: in the user's record, one write
//! transaction, with a line in the user's history.

use jiff::Timestamp;

use crate::store::{Store, StoreError};

/// Replaces `name`'s password hash `old` with `new`, if `old` is still the
/// stored one (a password changed since the login wins). Whether it did.
pub fn store_upgraded(
    store: &Store,
    name: &str,
    old: &str,
    new: String,
    now: Timestamp,
) -> Result<bool, StoreError> {
    // Read first: most calls come once per user, but a burst of logins
    // of the same user may race to here; the later ones find it done.
    match store.user(name)? {
        Some(u) if u.password_hash.as_deref() == Some(old) => {}
        _ => return Ok(false),
    }
    let mut done = false;
    store.update_user(name, |u| {
        if u.password_hash.as_deref() == Some(old) {
            u.password_hash = Some(new);
            u.record(now, "password re-hashed at full cost at its first login");
            done = true;
        }
    })?;
    Ok(done)
}
