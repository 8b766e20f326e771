//! Authentication of outgoing users: password hashing and verification,
//! the SASL mechanisms spoken in SMTP, and throttling of failures.

pub mod password;
pub mod sasl;
pub mod throttle;
