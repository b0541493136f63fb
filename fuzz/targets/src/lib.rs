//! The bodies of the fuzz targets in `fuzz/`, as plain functions of `&[u8]`.
//!
//! Why a separate crate: the cargo-fuzz crate (`fuzz/`, excluded from the workspace) needs nightly
//! and `libfuzzer-sys`, which must not reach the workspace's `Cargo.lock`. Keeping the bodies here, in a
//! normal workspace member, lets `cargo test --workspace` replay every seed and every saved crash input
//! (`fuzz/corpus/<target>/`, `fuzz/regressions/<target>/`) through exactly the code libFuzzer runs
//! (`tests/replay.rs`), on stable and in CI.
//!
//! Every target parses bytes that come from another party: a file, a request, a token. None may panic,
//! whatever the input: a panic is a bug in the parser, not in the target.
//!
//! # Layout
//! - `fixtures`: the keys the targets decrypt and verify with (the PFX files of `tests/fixtures/`,
//!   built into the binary), loaded once.
//! - one module per target: `cms`, `keyfile`, `idsenc`, `jwt`, `token_request`, `assertion`, `xml`,
//!   `dpop`;
//!   [`TARGETS`] lists them by the name of their `fuzz/fuzz_targets/<name>.rs`.
//! - `signed`: the "header newline payload" input form of the `jwt` and `assertion` targets, signed here
//!   so that the fuzzer reaches the claim checks behind the signature.

mod assertion;
mod cms;
mod dpop;
pub mod fixtures;
mod idsenc;
mod jwt;
mod keyfile;
mod signed;
mod token_request;
mod xml;

pub use assertion::assertion;
pub use cms::cms;
pub use dpop::dpop;
pub use idsenc::idsenc;
pub use jwt::jwt;
pub use keyfile::keyfile;
pub use token_request::token_request;
pub use xml::xml;

/// A fuzz target: its name (the file `fuzz/fuzz_targets/<name>.rs`, the folders
/// `fuzz/corpus/<name>/` and `fuzz/regressions/<name>/`) and its body.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, for the replay test.
pub const TARGETS: &[Target] = &[
    ("cms", cms),
    ("keyfile", keyfile),
    ("idsenc", idsenc),
    ("jwt", jwt),
    ("token_request", token_request),
    ("assertion", assertion),
    ("xml", xml),
    ("dpop", dpop),
];

/// Uses `value` so that the work producing it is not optimised away: the targets render every error
/// message and inspect every result, because `Display` and accessors are code that could panic too.
pub(crate) fn consume<T>(value: T) {
    std::hint::black_box(value);
}
