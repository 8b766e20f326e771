//! Per-user usage counters. Each counter carries the window it counts
//! in; a counter from an earlier window reads as zero.

use serde::{Deserialize, Serialize};

use super::limits::Counts;
use super::windows::Windows;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Usage {
    pub day: String,
    pub day_messages: u32,
    pub day_recipients: u32,
    pub week: String,
    pub week_messages: u32,
    pub month: String,
    pub month_messages: u32,
}

impl Usage {
    /// The counts in the windows `w`.
    pub fn counts(&self, w: &Windows) -> Counts {
        let day = self.day == w.day;
        Counts {
            day: if day { self.day_messages } else { 0 },
            recipients_day: if day { self.day_recipients } else { 0 },
            week: if self.week == w.week {
                self.week_messages
            } else {
                0
            },
            month: if self.month == w.month {
                self.month_messages
            } else {
                0
            },
        }
    }

    /// Takes back what `add` counted (a reservation not used).
    pub fn subtract(&mut self, w: &Windows, messages: u32, recipients: u32) {
        if self.day == w.day {
            self.day_messages = self.day_messages.saturating_sub(messages);
            self.day_recipients = self.day_recipients.saturating_sub(recipients);
        }
        if self.week == w.week {
            self.week_messages = self.week_messages.saturating_sub(messages);
        }
        if self.month == w.month {
            self.month_messages = self.month_messages.saturating_sub(messages);
        }
    }

    /// Counts `messages` and `recipients` in the windows `w`.
    pub fn add(&mut self, w: &Windows, messages: u32, recipients: u32) {
        let c = self.counts(w);
        *self = Usage {
            day: w.day.clone(),
            day_messages: c.day.saturating_add(messages),
            day_recipients: c.recipients_day.saturating_add(recipients),
            week: w.week.clone(),
            week_messages: c.week.saturating_add(messages),
            month: w.month.clone(),
            month_messages: c.month.saturating_add(messages),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(day: &str, week: &str, month: &str) -> Windows {
        Windows {
            day: day.into(),
            week: week.into(),
            month: month.into(),
        }
    }

    #[test]
    fn new_window_starts_at_zero() {
        let mut u = Usage::default();
        let a = w("2026-11-29", "2026-W48", "2026-11");
        u.add(&a, 1, 3);
        u.add(&a, 1, 2);
        assert_eq!(u.counts(&a).day, 2);
        assert_eq!(u.counts(&a).recipients_day, 5);
        // Monday: new day and week, same month.
        let b = w("2026-11-30", "2026-W49", "2026-11");
        let c = u.counts(&b);
        assert_eq!((c.day, c.week, c.month, c.recipients_day), (0, 0, 2, 0));
        u.add(&b, 1, 1);
        assert_eq!(u.counts(&b).month, 3);
    }
}
