//! End-to-end tests: the real server on 127.0.0.1:0 over HTTPS, real PFX files made by `openssl`
//! (`tests/fixtures`, see its README) and by the project, real clients.
//!
//! One test binary (DESIGN.md section 7.7); modules by capability.

mod pg;
mod support;

mod agent_cli;
mod agent_files;
mod agent_limits;
mod agent_settings;
mod agent_tokens;
mod cli;
mod client_keys;
mod config_errors;
mod connections;
mod deliveries;
mod drop_in;
mod ha;
mod keytool;
mod log_forgery;
mod oauth_parity;
mod oidc_client;
mod operations;
mod pinning;
mod reload_faults;
mod store;
mod store_deliveries;
mod store_shared;
mod store_tls;
mod token_endpoint;
