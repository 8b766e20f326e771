//! Outguard library crate.

pub mod scan;
