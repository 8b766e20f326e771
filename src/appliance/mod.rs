//! Appliance basics the daemon takes part in (issue 14): the clock's
//! synchronisation state, the NTP servers set on the admin page and the
//! factory reset. The root-side scripts of the image do the privileged
//! half (OpenNTPD, wiping /data): the jailed daemon only reads the kernel's
//! clock state and writes files in its data directory for them. Remote
//! syslog (RFC 5424 over TLS) is the daemon's own.

pub mod clock;
pub mod ntp;
pub mod reset;
pub mod syslog;
