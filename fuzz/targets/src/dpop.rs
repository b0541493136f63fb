//! DPoP proofs (`ids_jose::dpop::verify_proof`), as the token endpoint and the API verify them.

use crate::consume;
use crate::fixtures::NOW;

/// Verifies `data` as a DPoP proof for a POST to the token endpoint, with and without an access
/// token to match `ath` against. The input is used as is: a proof carries its own key, so a
/// fuzzer-made proof can be correctly signed only by chance; the seeds are valid proofs of each
/// algorithm, which mutations take through every check behind the signature.
pub fn dpop(data: &[u8]) {
    let proof = String::from_utf8_lossy(data);
    let urls = vec!["https://ids.example.test/connect/token".to_string()];
    let policy = ids_jose::DpopPolicy::default();
    for access_token in [None, Some("token")] {
        let request = ids_jose::DpopRequest {
            method: "POST",
            urls: &urls,
            access_token,
        };
        match ids_jose::dpop::verify_proof(&proof, &request, &policy, NOW) {
            Ok(p) => consume((p.jkt, p.jti, p.nonce)),
            Err(e) => consume((e.label(), e.to_string())),
        }
    }
}
