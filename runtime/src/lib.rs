//! Plumbing both apps share, written once: time, retries, shutdown, TLS set-up and "did you mean".
//!
//! # Layout
//! - [`assets`] (feature `assets`): man pages and shell completions from a clap command.
//! - [`clock`]: [`Clock`], the time source domain code is handed (DESIGN.md 7.6).
//! - [`retry`]: [`RetryPolicy`]: how many attempts, exponential backoff with jitter,
//!   `Retry-After` capped; used by token requests, `agent push` and the outbox.
//! - [`log_escape`]: the writer that escapes control characters in log events (no forged lines).
//! - [`logging`] (feature `logging`): the log set-up of both apps: standard error, and a log file.
//! - [`metrics`] (feature `metrics`): the `/metrics` listener (`Metrics:Urls`) and the metric
//!   families both apps share (build information, certificate expiry).
//! - [`notify`]: systemd readiness notifications (`Type=notify`).
//! - [`suggest`]: the one "did you mean" helper (Levenshtein from `strsim`) for settings and XML.
//! - [`shutdown`] (feature `tokio`): SIGTERM or Ctrl-C.
//! - [`tls`] (feature `tls`): the rustls provider built once, and the handshake-signature checks every
//!   certificate verifier delegates to.
//! - [`url`]: the `host:port` authority of a URL.
//!
//! The crate has no knowledge of OAuth, settings or files; its default features pull tokio and rustls,
//! and the parsers (`ids-config`, `ids-xml`) use it with `default-features = false`.

#[cfg(feature = "assets")]
pub mod assets;
pub mod clock;
pub mod log_escape;
#[cfg(feature = "logging")]
pub mod logging;
#[cfg(feature = "metrics")]
pub mod metrics;
pub mod notify;
pub mod retry;
#[cfg(feature = "tokio")]
pub mod shutdown;
pub mod suggest;
#[cfg(feature = "tls")]
pub mod tls;
pub mod url;

pub use clock::{Clock, ManualClock, SystemClock};
pub use retry::RetryPolicy;
