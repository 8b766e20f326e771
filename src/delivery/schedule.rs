//! The retry schedule, as a pure function of the arrival time: the
//! attempt times are arrival + 0, then fixed steps during a first phase,
//! then steps growing geometrically, then fixed long steps. The next
//! attempt is the first point of that series after "now", so the
//! schedule needs no stored state and survives restarts and clock jumps.

use jiff::{SignedDuration, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// Seconds between attempts during the first phase.
    pub first_interval: u64,
    /// Length of the first phase, from arrival.
    pub first_phase: u64,
    /// Factor by which each interval grows after the first phase.
    pub growth: f64,
    /// Time after arrival at which growing stops.
    pub growth_until: u64,
    /// Seconds between attempts after that.
    pub late_interval: u64,
}

impl Schedule {
    pub fn validate(&self) -> Result<(), String> {
        if self.first_interval == 0 || self.late_interval == 0 {
            return Err("delivery retry intervals must be at least 1 second".into());
        }
        if !(self.growth >= 1.0 && self.growth <= 100.0) {
            return Err("delivery.retry_growth must be between 1 and 100".into());
        }
        Ok(())
    }

    /// Seconds after arrival of the first attempt strictly after
    /// `elapsed` seconds after arrival.
    pub fn next_offset(&self, elapsed: u64) -> u64 {
        let mut t = 0u64;
        // Phase 1: fixed steps.
        while t < self.first_phase {
            t += self.first_interval;
            if t > elapsed {
                return t;
            }
        }
        // Phase 2: growing steps (a handful: growth >= 1 is checked, and
        // the step count is bounded anyway).
        let mut step = self.first_interval as f64;
        let mut rounds = 0;
        while t < self.growth_until && rounds < 10_000 {
            step *= self.growth;
            t += step.max(1.0) as u64;
            rounds += 1;
            if t > elapsed {
                return t;
            }
        }
        // Phase 3: fixed long steps, computed directly.
        let n = (elapsed - t) / self.late_interval + 1;
        t + n * self.late_interval
    }

    /// When to try next after a failure at `now`, for a message that
    /// arrived at `received`.
    pub fn next_attempt(&self, received: Timestamp, now: Timestamp) -> Timestamp {
        let elapsed = now.duration_since(received).as_secs().max(0) as u64;
        let offset = i64::try_from(self.next_offset(elapsed)).unwrap_or(i64::MAX / 2);
        crate::bounds::later(received, SignedDuration::from_secs(offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default() -> Schedule {
        Schedule {
            first_interval: 900,
            first_phase: 7200,
            growth: 1.5,
            growth_until: 16 * 3600,
            late_interval: 6 * 3600,
        }
    }

    /// Every attempt offset up to `until`, starting from arrival.
    fn series(s: &Schedule, until: u64) -> Vec<u64> {
        let mut out = vec![];
        let mut t = 0;
        while t < until {
            t = s.next_offset(t);
            out.push(t);
        }
        out
    }

    #[test]
    fn first_two_hours_every_fifteen_minutes() {
        let s = default();
        let times = series(&s, 7200);
        assert_eq!(times, (1..=8).map(|i| i * 900).collect::<Vec<_>>());
    }

    #[test]
    fn then_growing_then_every_six_hours() {
        let s = default();
        let times = series(&s, 5 * 86400);
        let gaps: Vec<u64> = times.windows(2).map(|w| w[1] - w[0]).collect();
        // Growth phase: each gap 1.5x the previous one (integer seconds).
        let i = gaps.iter().position(|&g| g > 900).unwrap();
        assert_eq!(gaps[i], 1350);
        assert_eq!(gaps[i + 1], 2025);
        assert_eq!(gaps[i + 2], 3037);
        // Growing stops once past 16 hours; then every 6 hours.
        let late = times.iter().position(|&t| t >= 16 * 3600).unwrap();
        for g in &gaps[late..] {
            assert_eq!(*g, 6 * 3600);
        }
        for w in gaps[i..late].windows(2) {
            assert!(w[1] > w[0], "{gaps:?}");
        }
    }

    #[test]
    fn next_is_strictly_after_now_even_between_points() {
        let s = default();
        assert_eq!(s.next_offset(0), 900);
        assert_eq!(s.next_offset(899), 900);
        assert_eq!(s.next_offset(900), 1800);
        let far = 30 * 86400;
        let n = s.next_offset(far);
        assert!(n > far && n - far <= 6 * 3600);
    }

    #[test]
    fn timestamps() {
        let s = default();
        let r: Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
        let now: Timestamp = "2030-01-01T00:20:00Z".parse().unwrap();
        let n = s.next_attempt(r, now);
        assert_eq!(n.to_string(), "2030-01-01T00:30:00Z");
        // A clock behind the arrival time still gives a sane answer.
        assert_eq!(s.next_attempt(now, r), now + SignedDuration::from_secs(900));
    }

    #[test]
    fn invalid_growth_refused() {
        let mut s = default();
        s.growth = 0.5;
        assert!(s.validate().is_err());
        s.growth = f64::NAN;
        assert!(s.validate().is_err());
    }
}
