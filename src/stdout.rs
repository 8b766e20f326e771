//! Standard output of the CLI. `println!` panics when the reader has gone
//! (`outguard user show x | head -c1`: EPIPE), printing a panic message and,
//! in release builds, aborting. The CLI instead stops quietly, with the
//! status a shell reports for a process ended by SIGPIPE (141).

use std::io::{ErrorKind, Write};

/// Status of a command whose output reader went away.
pub const CLOSED_PIPE: i32 = 141;

/// Writes to stdout; on a closed pipe, exits quietly. Other write errors
/// (disk full behind a redirect) are reported and exit with status 1.
pub fn write(args: std::fmt::Arguments<'_>, newline: bool) {
    let mut out = std::io::stdout().lock();
    let result = out.write_fmt(args).and_then(|()| {
        if newline {
            out.write_all(b"\n")
        } else {
            Ok(())
        }
    });
    match result {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::BrokenPipe => std::process::exit(CLOSED_PIPE),
        Err(e) => {
            eprintln!("outguard: cannot write the output: {e}");
            std::process::exit(1);
        }
    }
}

/// `println!` for CLI output (see the module comment).
#[macro_export]
macro_rules! outln {
    () => { $crate::stdout::write(format_args!(""), true) };
    ($($arg:tt)*) => { $crate::stdout::write(format_args!($($arg)*), true) };
}

/// `print!` for CLI output (see the module comment).
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::stdout::write(format_args!($($arg)*), false) };
}
