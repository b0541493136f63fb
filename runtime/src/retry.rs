//! How often and how long to wait before trying again: one policy for token requests, `agent push` and
//! the agent's outbox.

use std::time::Duration;

/// Attempts and pauses. The pause before attempt `n + 1` is `first_delay * 2^(n-1)`, capped at
/// `max_delay`; with `jitter`, half of it is fixed and half random ("equal jitter"), so that agents
/// restarted together do not knock again together. A server's `Retry-After` replaces the computed pause
/// but is capped the same way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt; `None` retries for as long as the caller runs (the outbox).
    pub retries: Option<u32>,
    pub first_delay: Duration,
    pub max_delay: Duration,
    pub jitter: bool,
}

impl RetryPolicy {
    /// `retries` retries after the first attempt, with jittered exponential backoff.
    pub fn new(retries: u32, first_delay: Duration, max_delay: Duration) -> Self {
        RetryPolicy {
            retries: Some(retries),
            first_delay,
            max_delay,
            jitter: true,
        }
    }

    /// Retries without end, doubling from `first_delay` up to `max_delay`, without jitter.
    pub fn forever(first_delay: Duration, max_delay: Duration) -> Self {
        RetryPolicy {
            retries: None,
            first_delay,
            max_delay,
            jitter: false,
        }
    }

    /// Total attempts, the first included (`u32::MAX` when retrying forever).
    pub fn attempts(&self) -> u32 {
        self.retries.map_or(u32::MAX, |r| r.saturating_add(1))
    }

    /// Whether attempt number `attempt` (1-based) that failed may be followed by another.
    pub fn may_retry(&self, attempt: u32) -> bool {
        attempt < self.attempts()
    }

    /// The computed pause after failed attempt number `attempt` (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        // 2^31 times the first delay: 68 years for 1 s, 24 days for 1 ms, beyond any cap
        // (`Delivery:MaxRetryDelaySeconds` goes up to 86,400 s); the multiplication saturates.
        let doublings = attempt.saturating_sub(1).min(31);
        let base = self
            .first_delay
            .saturating_mul(1u32 << doublings)
            .min(self.max_delay);
        if self.jitter {
            let half = base / 2;
            half + half.mul_f64(random_fraction())
        } else {
            base
        }
    }

    /// The pause after failed attempt `attempt`: the server's `Retry-After` when it gave one, else the
    /// backoff; never more than `max_delay`.
    pub fn pause(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        retry_after
            .unwrap_or_else(|| self.backoff(attempt))
            .min(self.max_delay)
    }

    /// Whether a server's `Retry-After` asks for a longer pause than this policy may wait: the caller
    /// reports the failure now rather than knocking again too early.
    pub fn too_long(&self, retry_after: Duration) -> bool {
        retry_after > self.max_delay
    }
}

/// A number in [0, 1] from the system RNG. Jitter only: if the RNG failed, no jitter is still a
/// correct delay.
fn random_fraction() -> f64 {
    let mut bytes = [0u8; 4];
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_equal_jitter() {
        let p = RetryPolicy::new(3, Duration::from_millis(500), Duration::from_secs(30));
        assert_eq!(p.attempts(), 4);
        assert!(p.may_retry(3) && !p.may_retry(4));
        for (attempt, base) in [(1, 500), (2, 1000), (3, 2000), (10, 30_000)] {
            let d = p.backoff(attempt).as_millis() as u64;
            assert!(d >= base / 2 && d <= base, "attempt {attempt}: {d} ms");
        }
        assert_eq!(
            p.pause(1, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert_eq!(
            p.pause(1, Some(Duration::from_secs(70))),
            Duration::from_secs(30)
        );
        assert!(p.too_long(Duration::from_secs(31)) && !p.too_long(Duration::from_secs(30)));
    }

    #[test]
    fn forever_doubles_without_jitter() {
        let p = RetryPolicy::forever(Duration::from_secs(1), Duration::from_secs(300));
        assert!(p.may_retry(1_000_000));
        let pauses: Vec<u64> = (1..=10).map(|a| p.backoff(a).as_secs()).collect();
        assert_eq!(pauses, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]);
        assert_eq!(p.backoff(u32::MAX), Duration::from_secs(300));
    }

    #[test]
    fn doubling_reaches_a_cap_of_a_day() {
        // The outbox: 1 s doubling up to Delivery:MaxRetryDelaySeconds, at most 86,400 s (past
        // 2^16 x the first delay, where the agent's HTTP backoff used to stop growing).
        let day = Duration::from_secs(86_400);
        let p = RetryPolicy::forever(Duration::from_secs(1), day);
        let pauses: Vec<u64> = (16..=19).map(|a| p.backoff(a).as_secs()).collect();
        assert_eq!(pauses, [32_768, 65_536, 86_400, 86_400]);
        for attempt in [31, 32, 33, 1_000, u32::MAX] {
            assert_eq!(p.backoff(attempt), day);
        }
        // Tiny first delays reach a large cap as well, without overflow.
        let p = RetryPolicy::forever(Duration::from_millis(1), day);
        assert_eq!(p.backoff(40), day);
        let p = RetryPolicy::forever(Duration::from_secs(u64::MAX / 4), Duration::MAX);
        assert_eq!(p.backoff(100), Duration::MAX);
        // The server's Retry-After replaces the computed pause, capped the same way.
        let p = RetryPolicy::forever(Duration::from_secs(1), Duration::from_secs(300));
        assert_eq!(
            p.pause(9, Some(Duration::from_secs(5))),
            Duration::from_secs(5)
        );
        assert_eq!(
            p.pause(9, Some(Duration::from_secs(900))),
            Duration::from_secs(300)
        );
        assert_eq!(p.pause(9, None), Duration::from_secs(256));
    }
}
