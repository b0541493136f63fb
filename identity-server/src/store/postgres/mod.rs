//! The PostgreSQL store: one database shared by every server behind a load balancer.
//!
//! [`PgStore`] holds the connection pool (deadpool-postgres over tokio-postgres, TLS by [`tls`]) and
//! the store's availability ([`health`]). The server starts whether or not the database answers: the
//! monitor ([`PgStore::monitor`]) keeps trying, applies the schema ([`migrations`]) once it can, and
//! flips the store up or down, logging each transition once. While the store is down, what needs it
//! answers 503 + `Retry-After` at once ([`PgStore::client`] fails fast instead of waiting for a
//! connection timeout on every request).
//!
//! # Layout
//! - [`tls`]: rustls for `sslmode`, `Store:CaFile`.
//! - [`migrations`]: the embedded, versioned schema and its advisory lock.
//! - [`health`]: up/down, logged once per transition.
//! - [`deliveries`]: deliveries (records, encrypted content in chunks, upload leases, the sweeper).
//! - [`replay`]: the shared `private_key_jwt` replay cache ([`PgReplayCache`]).
//! - [`budgets`]: the shared failed-authentication budgets.

pub mod budgets;
pub mod deliveries;
pub mod health;
pub mod keys;
pub mod migrations;
pub mod replay;
pub mod revocations;
pub mod tls;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod};

use crate::store::settings::{PgSettings, SslMode};
pub use health::Health;
pub use keys::PgKeyStore;
pub use migrations::SchemaStatus;
pub use replay::PgReplayCache;
pub use revocations::PgRevocations;

/// What went wrong with the PostgreSQL store. Messages name the database (`user@host:port/db`, never
/// the password) and what to do.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("PostgreSQL {target} is unreachable: {detail}")]
    Unreachable { target: String, detail: String },
    #[error(
        "PostgreSQL {target} refused the password of user `{user}` (check Store:ConnectionString, Store:PasswordFile or Store:Password)"
    )]
    AuthenticationFailed { target: String, user: String },
    #[error(
        "PostgreSQL {target} has no database `{database}`: create it (`createdb {database}`, owned by the user in Store:ConnectionString)"
    )]
    DatabaseMissing { target: String, database: String },
    #[error("PostgreSQL {target} refused the connection: {detail}")]
    Refused { target: String, detail: String },
    #[error("TLS to PostgreSQL {target} failed: {detail}")]
    Tls { target: String, detail: String },
    #[error("Store:CaFile {}: {detail}", path.display())]
    CaFile { path: PathBuf, detail: String },
    #[error(
        "the store's schema is version {found}, newer than this binary knows ({known}): upgrade identity-server on this machine (an older binary must not write into a newer schema)"
    )]
    SchemaNewer { found: i32, known: i32 },
    #[error(
        "the store's schema is version {found}, older than this binary's ({latest}): run `identity-server store migrate` (or set Store:ApplyMigrations to true)"
    )]
    SchemaOlder { found: i32, latest: i32 },
    #[error("migration {version} ({name}) failed: {detail}")]
    Migration {
        version: i32,
        name: &'static str,
        detail: String,
    },
    #[error("cannot {what}: {detail}")]
    Query { what: &'static str, detail: String },
    /// Every pooled connection is in use for longer than the wait allows: this request is answered
    /// 503, but the database is not down (nothing is logged as an outage).
    #[error(
        "every one of the {pool_size} connections to PostgreSQL {target} stayed busy for {wait_secs} s (Store:PoolSize, Store:ConnectTimeoutSeconds)"
    )]
    Busy {
        target: String,
        pool_size: usize,
        wait_secs: u64,
    },
    /// The database answers but takes no connection now (SQLSTATE 53300 too many connections, 57P03
    /// cannot connect now: starting, shutting down, recovering): 503 for this request.
    #[error("PostgreSQL {target} takes no connection now: {detail}")]
    Overloaded { target: String, detail: String },
    /// The store is down (the monitor is retrying): the request is answered 503.
    #[error("the PostgreSQL store is unavailable (retrying): {0}")]
    Unavailable(String),
}

impl PgError {
    /// A failed statement: `what` the server was doing.
    pub fn query(what: &'static str, e: &tokio_postgres::Error) -> PgError {
        PgError::Query {
            what,
            detail: describe(e),
        }
    }

    /// Whether the request cannot be served now and may be retried (503), as opposed to a refused
    /// statement: the database cannot be reached, or the pool is saturated.
    pub fn is_unavailable(&self) -> bool {
        self.is_down() || matches!(self, PgError::Busy { .. } | PgError::Overloaded { .. })
    }

    /// Whether the error says the database cannot be reached (the store goes down until the monitor
    /// reconnects).
    pub fn is_down(&self) -> bool {
        matches!(
            self,
            PgError::Unreachable { .. } | PgError::Unavailable(_) | PgError::Tls { .. }
        )
    }
}

/// A tokio-postgres error in one line: the server's message and SQLSTATE, or the cause.
pub fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} (SQLSTATE {})", db.message(), db.code().code());
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text = format!("{text}: {s_text}");
        }
        source = s.source();
    }
    text
}

/// Whether a statement failed because the connection did (so the store may be down), not because
/// the statement was refused.
pub fn is_connection_error(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.as_db_error() {
        // Class 08: connection exception; 57P01-57P03: admin shutdown, crash shutdown, cannot connect now.
        Some(db) => {
            let code = db.code().code();
            code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03")
        }
        None => std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>()),
    }
}

/// How often [`maintenance`] runs while the store is up.
pub const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(30);

/// How long after a row stops mattering (by the deleting server's clock) the clean-up deletes it:
/// every server deletes with its own clock, so a server whose clock runs ahead must not remove a
/// replay entry another server still needs to refuse an assertion. Clocks within 5 minutes of each
/// other are safe; a row kept longer costs nothing but its bytes.
pub const CLOCK_SKEW_MARGIN: i64 = 300;

/// What the clean-up may delete: rows whose time of use ended before this, `now` being the deleting
/// server's clock.
pub fn deletable_before(now: i64) -> i64 {
    now.saturating_sub(CLOCK_SKEW_MARGIN)
}

/// The store's periodic clean-up, run by one [`PgStore::monitor`] per server while the store is up:
/// every server runs it (any may die); each statement is safe to run concurrently.
pub async fn maintenance(store: Arc<PgStore>) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    match replay::delete_expired(&store, now).await {
        Ok(n) if n > 0 => tracing::debug!("store: deleted {n} expired replay entries"),
        Ok(_) => {}
        Err(e) => tracing::warn!("store: maintenance: {e}"),
    }
    match revocations::delete_expired(&store, now).await {
        Ok(n) if n > 0 => tracing::debug!("store: deleted {n} expired revocations"),
        Ok(_) => {}
        Err(e) => tracing::warn!("store: maintenance: {e}"),
    }
    match budgets::forget_full(&store, now).await {
        Ok(n) if n > 0 => tracing::debug!("store: forgot {n} refilled failure budgets"),
        Ok(_) => {}
        Err(e) => tracing::warn!("store: maintenance: {e}"),
    }
    sweep_deliveries(&store).await;
}

/// The leftovers of dead uploads (expired leases, chunks of no record): [`deliveries::sweep`].
async fn sweep_deliveries(store: &PgStore) {
    deliveries::sweep_logged(store).await;
}

/// The shared store's connection pool and availability.
#[derive(Debug)]
pub struct PgStore {
    pool: Pool,
    settings: Arc<PgSettings>,
    /// Up only after this server checked (and if allowed, applied) the schema: [`PgStore::prepare`] is
    /// the only way up.
    health: Health,
}

impl PgStore {
    /// A pool for `settings` (reads the CA file; connects nothing yet).
    pub fn new(settings: &PgSettings) -> Result<PgStore, PgError> {
        let mut config = settings.config.clone();
        let timeout_ms = settings.statement_timeout.as_millis();
        let options = match config.get_options() {
            Some(o) if !o.trim().is_empty() => {
                format!("{o} -c statement_timeout={timeout_ms}")
            }
            _ => format!("-c statement_timeout={timeout_ms}"),
        };
        config.options(&options);
        // A database that vanishes without closing its connections (power loss, a partition, a moved
        // address) must be noticed in seconds, not after the system's TCP defaults (2 h of idle
        // before keepalive probes, ~15 min of retransmissions): unless the connection string says
        // otherwise, probe after 10 s of silence and give up on unacknowledged data after 15 s.
        if config.get_keepalives_idle() == Duration::from_secs(2 * 60 * 60) {
            config.keepalives_idle(Duration::from_secs(10));
        }
        if config.get_keepalives_interval().is_none() {
            config.keepalives_interval(Duration::from_secs(5));
        }
        if config.get_keepalives_retries().is_none() {
            config.keepalives_retries(3);
        }
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(Duration::from_secs(15));
        }
        let manager = Manager::from_config(
            config,
            tls::connector(settings)?,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size)
            .wait_timeout(Some(settings.connect_timeout))
            .create_timeout(Some(settings.connect_timeout))
            .recycle_timeout(Some(settings.connect_timeout))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| PgError::Query {
                what: "build the connection pool",
                detail: e.to_string(),
            })?;
        Ok(PgStore {
            pool,
            health: Health::new(settings.describe()),
            settings: Arc::new(settings.clone()),
        })
    }

    /// The settings the store was made from.
    pub fn settings(&self) -> &PgSettings {
        &self.settings
    }

    /// `user@host:port/database`.
    pub fn describe(&self) -> String {
        self.settings.describe()
    }

    /// Up, down, and since when.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Whether the store is usable now (reachable, schema checked).
    pub fn is_up(&self) -> bool {
        self.health.is_up()
    }

    /// Runs `work` (statements on the request path) for at most `Store:StatementTimeoutSeconds` +
    /// `Store:ConnectTimeoutSeconds`: the database's own statement timeout cannot fire when the
    /// database is gone without closing the connection. Past that, the store is marked down (the
    /// monitor reconnects) and the caller gets [`PgError::Unavailable`] (503).
    pub async fn bounded<T>(
        &self,
        what: &'static str,
        work: impl std::future::Future<Output = Result<T, PgError>>,
    ) -> Result<T, PgError> {
        let limit = self.settings.statement_timeout + self.settings.connect_timeout;
        match tokio::time::timeout(limit, work).await {
            Ok(result) => result,
            Err(_) => {
                let reason = format!(
                    "{what}: PostgreSQL {} did not answer within {} s",
                    self.describe(),
                    limit.as_secs()
                );
                self.health.set_down(&reason);
                Err(PgError::Unavailable(reason))
            }
        }
    }

    /// A connection from the pool, for request work. Fails at once with [`PgError::Unavailable`] while
    /// the store is down (the monitor brings it back); a failure to get one marks it down.
    pub async fn client(&self) -> Result<deadpool_postgres::Object, PgError> {
        if !self.is_up() {
            return Err(PgError::Unavailable(self.health.reason()));
        }
        match self.pool.get().await {
            Ok(c) => Ok(c),
            Err(e) => {
                let e = self.classify(e);
                if e.is_down() {
                    self.health.set_down(&e.to_string());
                }
                Err(e)
            }
        }
    }

    /// A connection for operator commands and the monitor: waits for the connection (no fast fail)
    /// and says precisely why there is none.
    pub async fn connect(&self) -> Result<deadpool_postgres::Object, PgError> {
        self.pool.get().await.map_err(|e| self.classify(e))
    }

    /// Reports a failed statement: when the connection failed, the store is marked down. Returns the
    /// error as a [`PgError`] naming `what` was being done.
    pub fn failed(&self, what: &'static str, e: &tokio_postgres::Error) -> PgError {
        if is_connection_error(e) {
            let err = PgError::Unavailable(format!("{what}: {}", describe(e)));
            self.health.set_down(&describe(e));
            return err;
        }
        PgError::query(what, e)
    }

    /// Reads the schema version.
    pub async fn status(&self) -> Result<SchemaStatus, PgError> {
        let client = self.connect().await?;
        migrations::status(&**client).await
    }

    /// Applies pending migrations (under the advisory lock); the versions applied.
    pub async fn migrate(&self) -> Result<Vec<i32>, PgError> {
        let mut client = self.connect().await?;
        migrations::apply(&mut client).await
    }

    /// Connects, checks the schema (applying it when `Store:ApplyMigrations` allows), and marks the
    /// store up. On failure the store stays (or goes) down, the reason logged once.
    pub async fn prepare(&self) -> Result<(), PgError> {
        let result = async {
            let mut client = self.connect().await?;
            if self.settings.apply_migrations {
                let applied = migrations::apply(&mut client).await?;
                if !applied.is_empty() {
                    tracing::info!(
                        "store: applied schema migrations {applied:?} to PostgreSQL {}",
                        self.describe()
                    );
                }
            }
            migrations::status(&**client).await?.check()?;
            client
                .simple_query("SELECT 1")
                .await
                .map_err(|e| self.failed("check the connection", &e))?;
            Ok::<(), PgError>(())
        }
        .await;
        match &result {
            Ok(()) => {
                self.health.set_up();
            }
            Err(e) => {
                self.health.set_down(&e.to_string());
            }
        }
        result
    }

    /// Keeps the store's availability current until `stop` resolves: while down, retries
    /// [`PgStore::prepare`] (1 s, doubling to 10 s); while up, checks the connection every 5 s and runs
    /// `maintenance` every `maintenance_every` (expired replay entries, abandoned uploads).
    pub async fn monitor<F, Fut>(
        self: Arc<Self>,
        maintenance_every: Duration,
        mut maintenance: F,
        stop: impl std::future::Future<Output = ()>,
    ) where
        F: FnMut(Arc<PgStore>) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let run = async {
            let mut delay = Duration::from_secs(1);
            let mut last_maintenance: Option<tokio::time::Instant> = None;
            loop {
                if self.is_up() {
                    delay = Duration::from_secs(1);
                    let ping = self
                        .bounded("check the connection", async {
                            let client = self.connect().await?;
                            client
                                .simple_query("SELECT 1")
                                .await
                                .map_err(|e| self.failed("check the connection", &e))?;
                            Ok::<(), PgError>(())
                        })
                        .await;
                    match ping {
                        // A saturated pool is this server being busy, not the database down; any
                        // other failure (unreachable, refused, overloaded, authentication) is an
                        // outage until the database takes connections again.
                        Err(e) if !matches!(e, PgError::Busy { .. }) => {
                            self.health.set_down(&e.to_string());
                        }
                        _ => {
                            if last_maintenance.is_none_or(|t| t.elapsed() >= maintenance_every) {
                                last_maintenance = Some(tokio::time::Instant::now());
                                maintenance(self.clone()).await;
                            }
                        }
                    }
                    tokio::time::sleep(Duration::from_secs(5)).await;
                } else {
                    if let Err(e) = self.prepare().await
                        && matches!(e, PgError::SchemaNewer { .. })
                    {
                        delay = Duration::from_secs(10);
                    }
                    if !self.is_up() {
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(10));
                    }
                }
            }
        };
        tokio::select! {
            () = run => {}
            () = stop => {}
        }
    }

    /// What a failed pool checkout means, in the operator's terms.
    fn classify(&self, e: PoolError) -> PgError {
        let target = self.describe();
        match e {
            PoolError::Backend(e) => self.classify_connect(&e),
            // The pool is full of connections in use: the database answers, this server is busy.
            PoolError::Timeout(deadpool_postgres::TimeoutType::Wait) => PgError::Busy {
                target,
                pool_size: self.settings.pool_size,
                wait_secs: self.settings.connect_timeout.as_secs(),
            },
            PoolError::Timeout(_) => PgError::Unreachable {
                target,
                detail: format!(
                    "no connection within {} s (Store:ConnectTimeoutSeconds)",
                    self.settings.connect_timeout.as_secs()
                ),
            },
            other => PgError::Unreachable {
                target,
                detail: other.to_string(),
            },
        }
    }

    fn classify_connect(&self, e: &tokio_postgres::Error) -> PgError {
        let target = self.describe();
        let c = &self.settings.config;
        if let Some(db) = e.as_db_error() {
            return match db.code().code() {
                // pg_hba.conf has no line for this connection (no password was even asked for).
                "28000" if db.message().contains("pg_hba.conf") => PgError::Refused {
                    target,
                    detail: format!(
                        "{} (SQLSTATE 28000): the database's pg_hba.conf accepts no connection like this one{}",
                        db.message(),
                        if self.settings.ssl_mode == SslMode::Disable {
                            "; this one has no TLS (sslmode=disable): when pg_hba.conf has `hostssl` lines only, use sslmode=verify-full with Store:CaFile"
                        } else {
                            ""
                        }
                    ),
                },
                "28P01" | "28000" => PgError::AuthenticationFailed {
                    target,
                    user: c.get_user().unwrap_or("?").to_string(),
                },
                "3D000" => PgError::DatabaseMissing {
                    target,
                    database: c.get_dbname().unwrap_or("?").to_string(),
                },
                "53300" | "57P03" => PgError::Overloaded {
                    target,
                    detail: describe(e),
                },
                _ => PgError::Refused {
                    target,
                    detail: describe(e),
                },
            };
        }
        let detail = describe(e);
        if detail.contains("TLS")
            || detail.contains("certificate")
            || detail.contains("tls")
            || (self.settings.ssl_mode == SslMode::Require
                && detail.contains("server does not support"))
        {
            return PgError::Tls { target, detail };
        }
        PgError::Unreachable { target, detail }
    }
}
