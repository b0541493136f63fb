//! Time, passed in (DESIGN.md 7.6): domain code asks a [`Clock`] so that tests control it; only the
//! binary and start-up read the system clock, through [`unix_now`].

/// The server's time source, in Unix seconds: the system clock, or a test's (DESIGN.md 7.6).
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> i64;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        unix_now()
    }
}

/// Current Unix time in seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
