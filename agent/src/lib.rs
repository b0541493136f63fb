//! The agent: obtains client-credentials tokens from the identity server, verifies them with the
//! server's public key, encrypts its local files and delivers data to the server.
//!
//! # Layout
//! Skeleton for now: the token client, verifier, file vault and uploader arrive with the agent issues.
//! It depends on `ids-config` and `ids-crypto` only (never on the server or axum).
