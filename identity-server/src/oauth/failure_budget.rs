//! The failed-authentication budget per source address (`IdentityServer:FailedAuthenticationsPerMinute`),
//! a token bucket: `rate` failures a minute, burst `rate`.
//!
//! Per source address (IPv6 per /64), not per client: client identifiers are not secret, so a
//! per-client limit would let anyone lock a client out. An attempt is taken *before* a verification
//! and given back on success ([`Attempt`] refunds on drop unless spent), so parallel guesses cannot
//! overrun the budget.
//!
//! Where the buckets live:
//! - **Embedded**: in this process ([`FailureBudget::new`]), bounded (see `make_room`).
//! - **PostgreSql** ([`FailureBudget::shared`]): one row per source in the shared store, taken and
//!   refilled by one atomic UPSERT (`crate::store::postgres::budgets`), so that N servers behind a load
//!   balancer give an attacker the configured budget in total, not N times it. While the store is
//!   down, this server falls back to its own buckets (secret clients keep getting tokens; the outage is
//!   logged once by the store's health transitions, not per request). Only uncached secret
//!   verifications reach the budget (argon2, ~35 ms each), so the shared statements cost nothing that
//!   matters on the success path: cached secrets, `private_key_jwt` and mutual TLS never touch it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use super::OAuthError;
use crate::store::postgres::{PgStore, budgets};

/// The budgets of every source address; shared by all requests.
#[derive(Debug)]
pub struct FailureBudget {
    rate: u32,
    local: Mutex<HashMap<IpAddr, Bucket>>,
    shared: Option<Arc<PgStore>>,
}

impl FailureBudget {
    /// This process's budgets only (the embedded store).
    pub fn new(rate: u32) -> Self {
        FailureBudget {
            rate,
            local: Mutex::new(HashMap::new()),
            shared: None,
        }
    }

    /// Budgets in the shared store, this process's own while the store is down.
    pub fn shared(rate: u32, store: Arc<PgStore>) -> Self {
        FailureBudget {
            shared: Some(store),
            ..FailureBudget::new(rate)
        }
    }

    /// Takes one attempt from the source address's budget. The attempt is given back when the returned
    /// guard is dropped unspent: on success, on an error before any verdict (busy, internal), and when the
    /// request is abandoned (client gone, shutdown). Only [`Attempt::spend`] (a wrong secret) keeps it.
    pub async fn take(&self, peer: IpAddr, now: i64) -> Result<Attempt<'_>, OAuthError> {
        let key = source(peer);
        if let Some(store) = &self.shared
            && store.is_up()
        {
            match budgets::take(store, key, self.rate, now).await {
                Ok(None) => {
                    return Ok(Attempt {
                        budget: self,
                        key,
                        shared: true,
                        spent: false,
                    });
                }
                Ok(Some(wait)) => {
                    return Err(OAuthError::SlowDown {
                        retry_after_secs: wait,
                    });
                }
                // Connection failures marked the store down (logged once); anything else is logged
                // here. Either way this server's own budget answers.
                Err(e) => {
                    if !e.is_unavailable() {
                        tracing::warn!(
                            "store: the shared failure budget cannot be read, this server's own budget is used: {e}"
                        );
                    }
                }
            }
        }
        self.take_local(key, now)
    }

    fn take_local(&self, key: IpAddr, now: i64) -> Result<Attempt<'_>, OAuthError> {
        let Ok(mut failures) = self.local.lock() else {
            return Err(OAuthError::ServerError);
        };
        let rate = self.rate;
        if !failures.contains_key(&key) && failures.len() >= MAX_TRACKED_SOURCES {
            make_room(&mut failures, now, rate, MAX_TRACKED_SOURCES);
        }
        let bucket = failures.entry(key).or_insert(Bucket {
            tokens: f64::from(rate),
            at: now,
        });
        bucket.refill(now, rate);
        if bucket.tokens < 1.0 {
            let wait = ((1.0 - bucket.tokens) * 60.0 / f64::from(rate)).ceil() as u64;
            return Err(OAuthError::SlowDown {
                retry_after_secs: wait.max(1),
            });
        }
        bucket.tokens -= 1.0;
        Ok(Attempt {
            budget: self,
            key,
            shared: false,
            spent: false,
        })
    }

    fn refund(&self, key: IpAddr, shared: bool) {
        if shared {
            if let Some(store) = &self.shared
                && let Ok(runtime) = tokio::runtime::Handle::try_current()
            {
                // Not awaited by the request: a refund is a success's bookkeeping, its answer waits
                // for nothing.
                runtime.spawn(budgets::refund(store.clone(), key, self.rate));
            }
            return;
        }
        let Ok(mut failures) = self.local.lock() else {
            return;
        };
        let rate = f64::from(self.rate);
        if let Some(bucket) = failures.get_mut(&key) {
            bucket.tokens = (bucket.tokens + 1.0).min(rate);
        }
    }

    /// How many sources this process tracks (tests).
    #[cfg(test)]
    pub(crate) fn tracked(&self) -> usize {
        self.local.lock().map(|f| f.len()).unwrap_or(0)
    }
}

/// One attempt taken from a source address's budget; given back on drop unless spent.
#[derive(Debug)]
pub struct Attempt<'a> {
    budget: &'a FailureBudget,
    key: IpAddr,
    /// Taken from the shared store (refunded there).
    shared: bool,
    spent: bool,
}

impl Attempt<'_> {
    /// The attempt failed authentication: it stays taken.
    pub fn spend(mut self) {
        self.spent = true;
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.spent {
            self.budget.refund(self.key, self.shared);
        }
    }
}

/// How many source addresses the failure budget tracks at most.
pub(crate) const MAX_TRACKED_SOURCES: usize = 50_000;

/// Makes room in the full table of failure budgets, for `max / 8` new sources at least: forgets the
/// sources back to a full budget (as good as untracked), then, if that is not enough (a flood of
/// distinct addresses), the sources closest to a full budget.
///
/// Forgetting a source gives it its full budget back, so the sources forgotten are those it gives the
/// fewest attempts: an address that has exhausted its budget is forgotten last, after every address
/// that failed less, instead of with everyone (the table used to be cleared) or because it stopped
/// trying (least recently used would forget it first). Getting it forgotten takes 7/8 of the table's
/// addresses with no more budget left than it has: exhausting them is no gain over using them.
///
/// Cost: one O(n) pass (retain, then a linear-time selection) frees at least `max / 8` slots, so a
/// flood of new addresses costs amortised O(1) per address.
pub(crate) fn make_room(failures: &mut HashMap<IpAddr, Bucket>, now: i64, rate: u32, max: usize) {
    failures.retain(|_, b| {
        b.refill(now, rate);
        b.tokens < f64::from(rate)
    });
    let keep = max - max.div_ceil(8);
    if failures.len() <= keep {
        return;
    }
    let excess = failures.len() - keep;
    // Every bucket was just refilled to `now`: the most tokens is the closest to a full budget.
    let mut by_tokens: Vec<(f64, IpAddr)> = failures.iter().map(|(k, b)| (b.tokens, *k)).collect();
    by_tokens.select_nth_unstable_by(excess - 1, |a, b| b.0.total_cmp(&a.0));
    for (_, key) in &by_tokens[..excess] {
        failures.remove(key);
    }
}

/// The rate-limited unit: an IPv4 address, or an IPv6 /64 (one host usually holds a whole /64).
pub fn source(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

/// A token bucket of failed attempts: `rate` per minute, burst `rate`.
#[derive(Debug)]
pub(crate) struct Bucket {
    pub(crate) tokens: f64,
    pub(crate) at: i64,
}

impl Bucket {
    fn refill(&mut self, now: i64, rate: u32) {
        let elapsed = (now - self.at).max(0) as f64;
        self.tokens = (self.tokens + elapsed * f64::from(rate) / 60.0).min(f64::from(rate));
        self.at = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn make_room_forgets_full_budgets_then_those_closest_to_full() {
        let rate = 4;
        let mut failures = HashMap::new();
        for (i, tokens) in [4.0, 3.0, 0.0, 2.0, 3.0, 1.0, 3.0, 2.5]
            .into_iter()
            .enumerate()
        {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(i as u32));
            failures.insert(ip, Bucket { tokens, at: 0 });
        }
        // max 8: room for one at least, taken from the full budget alone.
        make_room(&mut failures, 0, rate, 8);
        assert_eq!(failures.len(), 7);
        // max 7: the full one is gone, so the one with the most tokens (3.0, three of them) goes.
        make_room(&mut failures, 0, rate, 7);
        assert_eq!(failures.len(), 6);
        let mut left: Vec<f64> = failures.values().map(|b| b.tokens).collect();
        left.sort_by(f64::total_cmp);
        assert_eq!(left, [0.0, 1.0, 2.0, 2.5, 3.0, 3.0]);
        // max 6 with 30 s gone by (2 tokens refilled): 3.0 and 2.5 and 2.0 are back to full.
        make_room(&mut failures, 30, rate, 6);
        let mut left: Vec<f64> = failures.values().map(|b| b.tokens).collect();
        left.sort_by(f64::total_cmp);
        assert_eq!(left, [2.0, 3.0]);
    }

    #[test]
    fn ipv6_sources_are_grouped_by_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(source(a), source(b));
        assert_ne!(source(a), source(c));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().expect("ip");
        assert_eq!(source(mapped), "192.0.2.1".parse::<IpAddr>().expect("ip"));
    }
}
