//! Small command-line tools over the project's libraries:
//! - `new-openid-secret`: hashes a client secret for the `HashedSecret` XML attribute.
//! - `ids-bench`: measures raw signing speed and token throughput of a running server.
//!   `ids-bench files` measures file encryption against a plain copy ([`files_bench`]);
//!   `ids-bench deliver` measures agent-to-server delivery against encryption ([`delivery_bench`]);
//!   `ids-bench idle` measures idle connections against a normal client ([`idle_bench`]);
//!   `ids-bench argon2-flood` measures the server's memory under failed authentications ([`flood_bench`]).
//! - `ids-keytool`: a private CA, TLS server/client certificates, CSRs, PFX files, ssh-keygen-like key
//!   pairs and JWK thumbprints ([`keytool`]).

pub mod delivery_bench;
pub mod files_bench;
pub mod flood_bench;
pub mod idle_bench;
pub mod keytool;
