//! `outguard serve` in three typed stages, as Postfix's `pre_init` /
//! `post_init`:
//!
//! 1. `Privileged::prepare` (root, when started by init; `prepare.rs`):
//!    the data directory, keys and certificates, the store, the listeners
//!    and the control socket, the landlock ruleset. It returns `Resources`,
//!    which still holds the one `Privileged`.
//! 2. `Resources::confine` (`jailed.rs`): drops to the run user, enforces
//!    landlock and seccomp, and consumes the `Resources` into `Jailed`,
//!    which holds the opened handles and no `Privileged`: nothing jailed
//!    can reach a root-only step (they take `&Privileged`).
//! 3. `Jailed::run` (`jailed.rs`): only now the tokio runtime, the SMTP
//!    listeners, the committer, delivery and the control API.

mod jailed;
mod prepare;

pub use jailed::Jailed;
pub use prepare::Resources;

use crate::config::Config;
use crate::privilege::Privileged;

pub fn serve(cfg: Config) -> Result<(), String> {
    Privileged::prepare(cfg)?.confine()?.run()
}
