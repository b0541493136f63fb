//! How often and how long the agent waits before trying again: token requests and the server's other
//! APIs ([`crate::client::http`]) and `agent push` ([`crate::delivery::deliver_retrying`]).
//!
//! The same policy as `ids_runtime::retry::RetryPolicy` (whose names it uses), which replaces this
//! module when the agent moves to that crate. The outbox (`agent run`) still doubles its own pause,
//! without jitter and without end (see [`crate::delivery::outbox`]).

use std::time::Duration;

/// Attempts and pauses. The pause after failed attempt `n` is `first_delay * 2^(n-1)`, capped at
/// `max_delay`, half of it fixed and half random ("equal jitter"), so that agents restarted together do
/// not knock again together. A server's `Retry-After` replaces the computed pause but is capped the
/// same way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub retries: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl RetryPolicy {
    pub fn new(retries: u32, first_delay: Duration, max_delay: Duration) -> Self {
        RetryPolicy {
            retries,
            first_delay,
            max_delay,
        }
    }

    /// Total attempts, the first included.
    pub fn attempts(&self) -> u32 {
        self.retries.saturating_add(1)
    }

    /// Whether attempt number `attempt` (1-based) that failed may be followed by another.
    pub fn may_retry(&self, attempt: u32) -> bool {
        attempt < self.attempts()
    }

    /// The computed pause after failed attempt number `attempt` (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let base = self
            .first_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.max_delay);
        let half = base / 2;
        half + half.mul_f64(random_fraction())
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
}
