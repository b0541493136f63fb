//! The keys the targets decrypt and verify with: `signing-rsa.pfx` and `signing-ec.pfx` of
//! `tests/fixtures/` (password `test-password`), compiled in so that the fuzz binary needs no files.
//! The committed seeds were made for these keys (`tests/seeds.rs`); if the fixtures are regenerated,
//! regenerate the seeds too, or they stop reaching the code behind the key checks.

use std::sync::OnceLock;

use ids_jose::{KeySet, Validation, Verifier};
use ids_pki::Pfx;
use ids_seal::encrypted_file::DecryptionKey;

/// The time every target runs at (2030-03-17T17:46:40Z): inside the fixtures' validity, fixed so a
/// saved input behaves the same on every replay.
pub const NOW: i64 = 1_900_000_000;
/// The issuer and audience the `jwt` target's verifier expects.
pub const ISSUER: &str = "https://localhost:5001";
/// The token endpoint, one of the audiences the `assertion` target accepts (the other is [`ISSUER`]).
pub const TOKEN_ENDPOINT: &str = "https://localhost:5001/connect/token";
/// The server's own `host:port` spellings (a `client_id` of `Job@localhost:5001` means `Job`).
pub const AUTHORITIES: [&str; 2] = ["localhost:5001", "127.0.0.1:5001"];

const PASSWORD: &str = "test-password";

/// Keys and the objects built from them, shared by all runs of a target.
#[derive(Debug)]
pub struct Fixtures {
    /// RSA-2048, `CN=ids-test-signing-rsa`.
    pub rsa: Pfx,
    /// EC P-256, `CN=ids-test-signing-ec`.
    pub ec: Pfx,
    /// Trusts both certificates; issuer and audience [`ISSUER`], leeway 30 s.
    pub verifier: Verifier,
    /// Both keys, for IDSENC files.
    pub decryption_keys: Vec<DecryptionKey>,
}

/// Loads the fixtures once. Panics if the compiled-in fixtures cannot be read: the harness is
/// broken then, and every run would be meaningless.
pub fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| load().unwrap_or_else(|e| panic!("fuzz fixtures: {e}")))
}

fn load() -> Result<Fixtures, Box<dyn std::error::Error>> {
    let rsa = Pfx::from_bytes(
        "signing-rsa.pfx",
        include_bytes!("../../../tests/fixtures/signing-rsa.pfx"),
        PASSWORD,
    )?;
    let ec = Pfx::from_bytes(
        "signing-ec.pfx",
        include_bytes!("../../../tests/fixtures/signing-ec.pfx"),
        PASSWORD,
    )?;
    let keys = KeySet::from_certificates([
        (&rsa.certificate, "signing-rsa.pfx".to_string()),
        (&ec.certificate, "signing-ec.pfx".to_string()),
    ])?;
    let verifier = Verifier::new(
        keys,
        Validation {
            issuer: ISSUER.into(),
            audience: ISSUER.into(),
            leeway_secs: 30,
        },
    );
    let decryption_keys = vec![
        DecryptionKey::from_pfx(&rsa)?,
        DecryptionKey::from_pfx(&ec)?,
    ];
    Ok(Fixtures {
        rsa,
        ec,
        verifier,
        decryption_keys,
    })
}
