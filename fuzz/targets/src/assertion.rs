//! Client assertions (RFC 7523, `ids_jose::assertion`): the unverified parse (header policy, embedded
//! `jwk`/`x5c` key), the signature, then the claim checks, as the token endpoint runs them.

use ids_jose::UnverifiedAssertion;
use ids_jose::assertion::DEFAULT_MAX_ASSERTION_LIFETIME_SECS;

use crate::consume;
use crate::fixtures::{ISSUER, NOW, TOKEN_ENDPOINT, fixtures};
use crate::signed;

/// Parses `data` (a compact assertion, or `header \n payload` signed with the EC fixture key),
/// verifies it with the key it embeds (else the EC fixture key), and checks its claims for client `Job`.
pub fn assertion(data: &[u8]) {
    let f = fixtures();
    let token = signed::token(data, &f.ec.key)
        .unwrap_or_else(|| String::from_utf8_lossy(data).into_owned());
    let unverified = match UnverifiedAssertion::parse(&token) {
        Ok(unverified) => unverified,
        Err(e) => return consume(e.to_string()),
    };
    consume((unverified.claimed_issuer(), unverified.kid()));
    let key = match unverified.embedded_key() {
        Some(embedded) => embedded.public_key.clone(),
        None => f.ec.certificate.public_key().clone(),
    };
    let verified = match unverified.verify(&key) {
        Ok(verified) => verified,
        Err(e) => return consume(e.to_string()),
    };
    let client_ids = ["Job".to_string(), "Job@localhost:5001".to_string()];
    let audiences = [TOKEN_ENDPOINT.to_string(), ISSUER.to_string()];
    let max_lifetime = DEFAULT_MAX_ASSERTION_LIFETIME_SECS;
    if let Err(e) = verified.check(&client_ids, &audiences, NOW, 30, max_lifetime) {
        consume(e.to_string());
    }
}
