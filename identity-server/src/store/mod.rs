//! Where the server's shared state lives: the `private_key_jwt` replay cache, the failed-authentication
//! budgets and the deliveries.
//!
//! `Store:Provider` picks one of two implementations:
//! - **Embedded** (the default): the data folder (`Deliveries:DataFolder`) and in-memory caches, as a
//!   single server always had (`crate::deliveries::folder`, `crate::oauth::client_keys::MemoryReplayCache`
//!   and its journal, the budgets in `crate::oauth::client_auth`);
//! - **PostgreSql** ([`postgres`]): one database shared by every server behind a load balancer, so a `jti`
//!   seen by one server is refused by all, the failure budget is one budget whatever server answers, and a
//!   delivery received by one server is found, listed and exported by every other.
//!
//! What stays per server: the secret-verification cache (it holds nothing another server needs), the
//! signing keys and the access-control XML (files every server reads).
//!
//! # Layout
//! - [`settings`]: the `Store` section, validated (connection string, TLS mode, password sources).
//! - [`postgres`]: the pool, TLS to PostgreSQL, the embedded migrations, the availability monitor.

pub mod postgres;
pub mod settings;

pub use settings::StoreSettings;
