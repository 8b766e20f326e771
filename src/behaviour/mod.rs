//! Per-user behaviour model: how a user usually sends (messages,
//! recipients, new recipients and recipient domains per hour and per day),
//! whom it writes to, from which networks, and how many of its recipients
//! fail. A stolen account shows itself here before its content does. The
//! profile is a fixed-size record per user (`record::ENCODED_LEN`, about
//! 1.5 KiB) in the `behaviour` table, updated in the transaction that
//! accepts or holds the message (`store::accept`).

pub mod assess;
pub mod profile;
pub mod record;
pub mod replay;
pub mod sketch;

pub use assess::{Assessment, Observation};
pub use profile::{Profile, RecentHolds};
