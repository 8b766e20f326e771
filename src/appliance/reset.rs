//! Factory reset, requested through the control API (admin page, CLI) and
//! confirmed by typing the appliance's hostname. The daemon cannot wipe
//! /data itself (it is jailed and unprivileged): it writes a marker in its
//! data directory, and the image's root-side watchdog loop, seeing it, stops
//! the daemon, wipes the data partition and reboots into an unprovisioned
//! appliance.

use std::path::Path;

use crate::datadir::DataDir;

pub const MARKER: &str = "factory-reset";

#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The confirmation is not the hostname.
    Unconfirmed,
}

/// Writes the marker if `confirm` is the hostname (ASCII case ignored, as
/// for any host name). A second request while one is pending succeeds.
pub fn request(
    data: &DataDir,
    hostname: &str,
    confirm: &str,
    who: &str,
) -> Result<Result<(), Refused>, String> {
    if confirm.trim().is_empty() || !confirm.trim().eq_ignore_ascii_case(hostname) {
        return Ok(Err(Refused::Unconfirmed));
    }
    data.write_file(
        Path::new(MARKER),
        format!("requested by {who}\n").as_bytes(),
    )?;
    tracing::warn!(
        by = who,
        "factory reset requested: the appliance wipes /data and reboots"
    );
    Ok(Ok(()))
}

/// Whether a reset is waiting for the root side.
pub fn pending(data: &DataDir) -> bool {
    matches!(data.read_file(Path::new(MARKER), 0), Ok(Some(_)))
}
