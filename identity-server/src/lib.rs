//! The identity server: issues OAuth 2.0 client-credentials access tokens (JWT, RFC 9068) to the clients
//! declared in the access-control XML, signed with the key of the PFX certificate named in
//! `appsettings.json`, over HTTPS, and stores the files agents deliver, encrypted.
//!
//! A library first (DESIGN.md 7.1) so that tests start the real server on `127.0.0.1:0` with [`run`];
//! the `identity-server` binary only parses its command line and calls in here.
//!
//! # Layout
//! - Where a request is handled: [`http`] (axum routes, thin handlers, the one error -> response
//!   mapping in `http/error.rs`) calls the domain in [`oauth`] (no HTTP types): a token request is
//!   parsed in `oauth/request.rs`, its client authenticated in `oauth/client_auth.rs` (secrets) or
//!   `oauth/client_keys/` (`private_key_jwt`, mutual TLS), and answered by `TokenService::token` in
//!   `oauth/mod.rs`.
//! - Where a token is signed: `oauth/token.rs` ([`oauth::TokenIssuer`]), with the key [`keys`] loads
//!   from the PFX; tokens presented back to the server are verified in `oauth/bearer.rs`.
//! - Where a delivery is stored: [`deliveries`] holds the rules and encrypts as the upload arrives;
//!   `deliveries/folder.rs` keeps it on disk (`<Deliveries:DataFolder>/deliveries/`).
//! - Start-up and running: [`startup`] (load certificates and the XML, warn, build the shared state),
//!   [`serve`] (listen, connection limits, graceful shutdown), [`reload`] (re-read the XML, the
//!   authorized-clients folder and the certificate files while serving), [`check`] (the `check` command's report), [`exit`] (the
//!   binary's exit codes, from [`Error`]).
//! - Operations: [`telemetry`] (Prometheus metrics, the audit trail), `http/health.rs` (liveness and
//!   readiness), `http/forwarded.rs` (reverse proxies: client address and certificate).
//! - Configuration: [`settings`] (`appsettings.json` keys -> validated [`Settings`]),
//!   [`access_control`] (the XML folder -> registered clients), [`authorized_clients`] (the folder of
//!   client public keys), [`tls`] (TLS client certificates as the handshake accepts them),
//!   [`connections`] (the connection cap and open-file limit), [`quickstart`] (development
//!   certificates, settings and a demo client for a first run).

pub mod access_control;
pub mod authorized_clients;
pub mod check;
pub mod connections;
pub mod deliveries;
pub mod error;
pub mod exit;
pub mod http;
pub mod keys;
pub mod oauth;
pub mod quickstart;
pub mod reload;
pub mod serve;
pub mod settings;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod tls;

use std::future::Future;
use std::net::TcpListener;

pub use error::Error;
pub use exit::ExitStatus;
pub use serve::{Bound, ServerError, issuer, run_bound, run_loaded, run_on};
pub use settings::Settings;
pub use startup::{
    DataFolderError, LoadError, LoadErrors, Loaded, ReadBack, client_rules, expiring,
    expiry_warnings, load, open_deliveries, operator_store,
};

/// Runs the server on `listener` until `shutdown` completes.
///
/// Loads and validates everything first; prints nothing itself (the binary prints the bound address).
pub async fn run(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    run_on(settings, vec![listener], shutdown).await
}
