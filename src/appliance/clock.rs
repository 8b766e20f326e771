//! Whether the kernel's clock is synchronised (by the NTP client), read
//! with adjtimex(2) in its read-only form (modes = 0, which needs no
//! privilege): the kernel answers TIME_ERROR while STA_UNSYNC is set,
//! which it is until an NTP client says otherwise.

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ClockState {
    pub synchronised: bool,
    /// The kernel's estimate of the clock's maximum error, microseconds.
    pub max_error_us: i64,
    /// Its estimated error, microseconds.
    pub est_error_us: i64,
}

/// The clock's state, or None where the kernel will not tell (seccomp
/// without the call, or not Linux).
pub fn state() -> Option<ClockState> {
    let (rc, tx) = read()?;
    Some(ClockState {
        synchronised: rc != libc::TIME_ERROR && tx.status & libc::STA_UNSYNC == 0,
        max_error_us: tx.maxerror,
        est_error_us: tx.esterror,
    })
}

fn read() -> Option<(i32, libc::timex)> {
    let mut tx = zeroed();
    let rc = adjtimex(&mut tx);
    (rc >= 0).then_some((rc, tx))
}

/// The kernel's maximum error at which it counts the clock unsynchronised
/// (NTP_PHASE_LIMIT), microseconds.
const PHASE_LIMIT_US: libc::c_long = 16_000_000;

/// Marks the kernel's clock synchronised or not, as an NTP daemon does
/// elsewhere (OpenNTPD on Linux only slews the clock): the image's NTP
/// script calls this, as root, when OpenNTPD says so. Synchronised means
/// STA_UNSYNC cleared and the maximum error reset; the kernel grows that
/// error by 500 ppm and marks the clock unsynchronised again at 16 s, so
/// the script renews the mark at each of OpenNTPD's adjustments.
pub fn mark(synchronised: bool) -> Result<(), String> {
    let (_, current) = read().ok_or("adjtimex: cannot read the clock's state")?;
    let mut tx = zeroed();
    tx.modes = libc::ADJ_STATUS | libc::ADJ_MAXERROR;
    if synchronised {
        tx.status = current.status & !libc::STA_UNSYNC;
        tx.maxerror = 0;
    } else {
        tx.status = current.status | libc::STA_UNSYNC;
        tx.maxerror = PHASE_LIMIT_US;
    }
    if adjtimex(&mut tx) < 0 {
        return Err(format!(
            "adjtimex: {} (setting the clock's state needs root)",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

fn zeroed() -> libc::timex {
    // SAFETY: timex is plain integers, for which all-zero is a valid value.
    #[allow(unsafe_code)]
    unsafe {
        std::mem::zeroed()
    }
}

/// adjtimex(2) on a struct we own: the one call the crate makes unsafely
/// (neither nix nor std wraps it).
fn adjtimex(tx: &mut libc::timex) -> i32 {
    // SAFETY: a valid, exclusive pointer to our own struct for the length
    // of the call; the kernel reads the fields `modes` selects and writes
    // its state back; nothing is retained.
    #[allow(unsafe_code)]
    unsafe {
        libc::adjtimex(tx)
    }
}

/// Logs the state when it changes (housekeeping calls this every tick);
/// the first call logs it in any case.
pub fn log_change() {
    static LAST: std::sync::Mutex<Option<Option<bool>>> = std::sync::Mutex::new(None);
    let now = Some(state().map(|s| s.synchronised));
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    if *last == now {
        return;
    }
    match now.flatten() {
        Some(true) => tracing::info!("clock synchronised (NTP)"),
        Some(false) => tracing::warn!(
            "clock not synchronised: set NTP servers on the admin page or in provisioning"
        ),
        None => tracing::warn!("clock synchronisation state unknown"),
    }
    *last = now;
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_kernel_answers() {
        // Outside a jail adjtimex(2) read-only always works on Linux.
        let s = super::state().expect("adjtimex answered");
        assert!(s.max_error_us >= 0);
    }
}
