//! Pings on a timer and the count of pongs missed, without I/O or clocks of its own.

use std::time::{Duration, Instant};

/// Heartbeat settings: ping every `interval`; a ping unanswered after `pong_timeout`
/// is missed; more than `missed_allowed` misses in a row fail the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeartbeatConfig {
    /// How often to ping.
    pub(crate) interval: Duration,
    /// How long an answer may take.
    pub(crate) pong_timeout: Duration,
    /// Misses tolerated in a row.
    pub(crate) missed_allowed: u32,
}

/// What the timer asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Beat {
    /// Nothing to do before the given time.
    Wait(Instant),
    /// Send a ping now, then wait until the given time.
    Ping(Instant),
    /// Too many pongs missed: fail the connection.
    Dead,
}

/// The heartbeat of one connection.
#[derive(Debug, Clone)]
pub(crate) struct Heartbeat {
    config: HeartbeatConfig,
    next_ping: Instant,
    /// When the unanswered ping went out.
    outstanding: Option<Instant>,
    missed: u32,
}

impl Heartbeat {
    /// A heartbeat whose first ping is due one interval after `now`.
    pub(crate) fn new(config: HeartbeatConfig, now: Instant) -> Self {
        Self { config, next_ping: now + config.interval, outstanding: None, missed: 0 }
    }

    /// The peer showed it is alive (any frame counts as an answer).
    pub(crate) fn alive(&mut self) {
        self.outstanding = None;
        self.missed = 0;
    }

    /// The settings.
    pub(crate) fn config(&self) -> HeartbeatConfig {
        self.config
    }

    /// Misses in a row so far.
    pub(crate) fn missed(&self) -> u32 {
        self.missed
    }

    /// What to do at `now`.
    pub(crate) fn tick(&mut self, now: Instant) -> Beat {
        if let Some(sent) = self.outstanding {
            if now >= sent + self.config.pong_timeout {
                self.outstanding = None;
                self.missed += 1;
                if self.missed > self.config.missed_allowed {
                    return Beat::Dead;
                }
            }
        }
        let ping = now >= self.next_ping;
        if ping {
            self.next_ping = now + self.config.interval;
            self.outstanding.get_or_insert(now);
        }
        let mut due = self.next_ping;
        if let Some(sent) = self.outstanding {
            due = due.min(sent + self.config.pong_timeout);
        }
        if ping { Beat::Ping(due) } else { Beat::Wait(due) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(missed_allowed: u32) -> HeartbeatConfig {
        HeartbeatConfig {
            interval: Duration::from_millis(100),
            pong_timeout: Duration::from_millis(100),
            missed_allowed,
        }
    }

    #[test]
    fn pings_every_interval_and_dies_after_too_many_misses() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut beat = Heartbeat::new(config(1), t0);
        assert_eq!(beat.tick(ms(50)), Beat::Wait(ms(100)));
        assert_eq!(beat.tick(ms(100)), Beat::Ping(ms(200)));
        assert_eq!(beat.tick(ms(200)), Beat::Ping(ms(300)));
        assert_eq!(beat.missed(), 1);
        assert_eq!(beat.tick(ms(300)), Beat::Dead);
    }

    #[test]
    fn an_answer_resets_the_count() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut beat = Heartbeat::new(config(0), t0);
        for round in 1..10 {
            assert!(matches!(beat.tick(ms(100 * round)), Beat::Ping(_)));
            beat.alive();
        }
        assert_eq!(beat.missed(), 0);
        assert!(matches!(beat.tick(ms(1000)), Beat::Ping(_)));
        assert_eq!(beat.tick(ms(1100)), Beat::Dead);
    }
}
