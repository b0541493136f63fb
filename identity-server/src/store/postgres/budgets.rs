//! The failed-authentication budgets in the shared store: one token bucket per source address for
//! every server (`crate::oauth::failure_budget` decides when to use it and falls back to its own).
//!
//! Taking an attempt is one atomic UPSERT that refills the bucket to `now`, checks that a token is
//! left and takes it, under the row's lock: two servers taking the last token at once cannot both
//! get it, so N servers give an attacker the configured budget in total. The refill is computed in
//! SQL from the row's `at`, so no server's view of the bucket goes stale.

use std::net::IpAddr;
use std::sync::Arc;

use super::{PgError, PgStore};

/// Refill to `$3`, then take one token when there is one; no row returned: the budget is spent.
const TAKE: &str = "INSERT INTO ids_auth_budgets AS b (source, tokens, at)
    VALUES ($1, $2::float8 - 1, $3)
    ON CONFLICT (source) DO UPDATE
        SET tokens = LEAST($2::float8, b.tokens + GREATEST($3 - b.at, 0) * $2::float8 / 60.0) - 1,
            at = GREATEST(b.at, $3)
        WHERE LEAST($2::float8, b.tokens + GREATEST($3 - b.at, 0) * $2::float8 / 60.0) >= 1
    RETURNING tokens";

/// What is left of a spent budget at `$3` (for `Retry-After`).
const LEFT: &str = "SELECT LEAST($2::float8, tokens + GREATEST($3 - at, 0) * $2::float8 / 60.0)
    FROM ids_auth_budgets WHERE source = $1";

const REFUND: &str =
    "UPDATE ids_auth_budgets SET tokens = LEAST($2::float8, tokens + 1) WHERE source = $1";

/// Takes one attempt from `source`'s budget (`rate` a minute) at `now`: `None` when taken,
/// `Some(seconds)` to wait when the budget is spent.
pub async fn take(
    store: &PgStore,
    source: IpAddr,
    rate: u32,
    now: i64,
) -> Result<Option<u64>, PgError> {
    store
        .bounded(
            "take from a failure budget",
            take_now(store, source, rate, now),
        )
        .await
}

async fn take_now(
    store: &PgStore,
    source: IpAddr,
    rate: u32,
    now: i64,
) -> Result<Option<u64>, PgError> {
    let client = store.client().await?;
    let rate_f = f64::from(rate);
    let statement = client
        .prepare_cached(TAKE)
        .await
        .map_err(|e| store.failed("prepare the failure budget statement", &e))?;
    let taken = client
        .query_opt(&statement, &[&source, &rate_f, &now])
        .await
        .map_err(|e| store.failed("take from a failure budget", &e))?;
    if taken.is_some() {
        return Ok(None);
    }
    let left: f64 = client
        .query_opt(LEFT, &[&source, &rate_f, &now])
        .await
        .map_err(|e| store.failed("read a failure budget", &e))?
        .map_or(0.0, |row| row.get(0));
    let wait = ((1.0 - left).max(0.0) * 60.0 / rate_f.max(1.0)).ceil() as u64;
    Ok(Some(wait.max(1)))
}

/// Gives an attempt back to `source`'s budget (a success, or no verdict).
pub async fn refund(store: Arc<PgStore>, source: IpAddr, rate: u32) {
    let result = store
        .bounded("give back a failure budget attempt", async {
            let client = store.client().await?;
            client
                .execute(REFUND, &[&source, &f64::from(rate)])
                .await
                .map_err(|e| store.failed("give back a failure budget attempt", &e))?;
            Ok::<(), PgError>(())
        })
        .await;
    if let Err(e) = result
        && !e.is_unavailable()
    {
        tracing::warn!("store: {e}");
    }
}

/// Forgets the buckets untouched for two minutes (full again after one: as good as absent), plus
/// [`super::CLOCK_SKEW_MARGIN`] for servers whose clocks differ.
pub async fn forget_full(store: &PgStore, now: i64) -> Result<u64, PgError> {
    let client = store.client().await?;
    client
        .execute(
            "DELETE FROM ids_auth_budgets WHERE at < $1",
            &[&super::deletable_before(now - 120)],
        )
        .await
        .map_err(|e| store.failed("delete refilled failure budgets", &e))
}
