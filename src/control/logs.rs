//! Recent log lines kept in memory for the 'logs search' page: a tracing
//! layer formats each event once into a bounded ring; the search is a
//! case-insensitive substring match over it.

use std::collections::VecDeque;
use std::sync::{Mutex, OnceLock};

use crate::logsafe::Fields;
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// Lines kept; older ones are dropped.
const KEEP: usize = 5_000;

#[derive(Default)]
pub struct Ring(Mutex<VecDeque<String>>);

/// The process-wide ring fed by `RingLayer`.
pub fn ring() -> &'static Ring {
    static RING: OnceLock<Ring> = OnceLock::new();
    RING.get_or_init(Ring::default)
}

impl Ring {
    pub fn push(&self, line: String) {
        let mut q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() >= KEEP {
            q.pop_front();
        }
        q.push_back(line);
    }

    /// The newest `limit` lines containing `text`, oldest of them first.
    pub fn search(&self, text: &str, limit: usize) -> Vec<String> {
        let needle = text.to_lowercase();
        let q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut hits: Vec<String> = q
            .iter()
            .rev()
            .filter(|l| needle.is_empty() || l.to_lowercase().contains(&needle))
            .take(limit)
            .cloned()
            .collect();
        hits.reverse();
        hits
    }
}

pub struct RingLayer;

impl<S: Subscriber> Layer<S> for RingLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let now = jiff::Timestamp::now().round(jiff::Unit::Millisecond);
        let mut line = Fields(format!(
            "{} {:>5} {}:",
            now.unwrap_or(jiff::Timestamp::now()),
            meta.level(),
            meta.target()
        ));
        event.record(&mut line);
        ring().push(line.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_newest_and_searches() {
        let r = Ring::default();
        for i in 0..KEEP + 10 {
            r.push(format!(
                "line {i} {}",
                if i % 2 == 0 { "even" } else { "odd" }
            ));
        }
        let all = r.search("", usize::MAX);
        assert_eq!(all.len(), KEEP);
        assert_eq!(all[0], "line 10 even");
        let hits = r.search("ODD", 2);
        assert_eq!(
            hits,
            [
                format!("line {} odd", KEEP + 7),
                format!("line {} odd", KEEP + 9)
            ]
        );
    }
}
