//! DPoP on the server (RFC 9449): the proofs sent to the token endpoint and to the server's own API,
//! checked with [`ids_jose::dpop::verify_proof`], then for replay (through the `jti` replay cache:
//! the shared store with PostgreSQL) and, when `IdentityServer:DPoPNonce` is on, for a nonce of this
//! server.
//!
//! Nonces (RFC 9449 section 8) are stateless, so that every server behind a load balancer accepts the
//! nonce another one gave: `base64url(window || HMAC-SHA-256(key, window)[..16])`, where `window` is
//! the current [`NONCE_WINDOW_SECS`] period and `key` is derived from the signing key in force (which
//! every server shares: the same PFX, or the same managed key). A nonce of the current or the previous
//! period is accepted; after a signing key change clients are simply asked again (`use_dpop_nonce`).

use std::sync::Arc;

use aws_lc_rs::hmac;
use ids_jose::dpop::{
    DpopError, DpopPolicy, DpopProof, DpopRequest, ProofKeyCache, verify_proof_cached,
};

use super::client_keys::{KeyRejection, ReplayCache};
use crate::keys::InForce;

/// How long a nonce is current; one is accepted for one to two of these.
pub const NONCE_WINDOW_SECS: i64 = 300;

/// Why a DPoP proof was not accepted.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DpopRejection {
    #[error(transparent)]
    Proof(#[from] DpopError),
    /// A nonce is required (or the one sent is no longer current): retry with this one.
    #[error("{reason}; retry with the nonce of the DPoP-Nonce header")]
    UseNonce { nonce: String, reason: DpopError },
    /// The replay cache (shared store) cannot be asked: refused, never let through.
    #[error("the DPoP proof cannot be checked for replay now: {0}")]
    Unavailable(String),
    /// This client's share of the replay cache is full.
    #[error("too many DPoP proofs from this client; retry shortly")]
    Busy,
    /// The proof's key is not the one the token is bound to (checked before the proof is recorded).
    #[error("{0}")]
    KeyMismatch(String),
}

impl DpopRejection {
    /// A fixed label for metrics and the audit trail.
    pub fn label(&self) -> &'static str {
        match self {
            DpopRejection::Proof(e) => e.label(),
            DpopRejection::UseNonce { .. } => "dpop_nonce",
            DpopRejection::Unavailable(_) => "store_unavailable",
            DpopRejection::Busy => "replay_cache_full",
            DpopRejection::KeyMismatch(_) => "dpop_wrong_key",
        }
    }
}

/// The key nonces are made with: HMAC-SHA-256 under a key derived from the signing key's private
/// PKCS#8 (HMAC of a fixed label under SHA-256 of the key, so the signing key itself is never an HMAC
/// key).
#[derive(Clone)]
pub struct NonceKey(hmac::Key);

impl std::fmt::Debug for NonceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NonceKey(<redacted>)")
    }
}

impl NonceKey {
    /// The nonce key of the signing key whose private PKCS#8 is `private_pkcs8`.
    pub fn derive(private_pkcs8: &[u8]) -> NonceKey {
        let seed = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, private_pkcs8);
        let master = hmac::Key::new(hmac::HMAC_SHA256, seed.as_ref());
        let derived = hmac::sign(&master, b"identity-server DPoP nonce key v1");
        NonceKey(hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()))
    }

    fn nonce_for(&self, window: i64) -> String {
        let tag = hmac::sign(&self.0, &window.to_be_bytes());
        let mut bytes = window.to_be_bytes().to_vec();
        bytes.extend_from_slice(&tag.as_ref()[..16]);
        ids_pki::b64::url(&bytes)
    }

    /// The nonce to hand out at `now`.
    pub fn current(&self, now: i64) -> String {
        self.nonce_for(now.div_euclid(NONCE_WINDOW_SECS))
    }

    /// Whether `nonce` is this key's nonce of the current or the previous window.
    pub fn accepts(&self, nonce: &str, now: i64) -> bool {
        let window = now.div_euclid(NONCE_WINDOW_SECS);
        [window, window - 1].into_iter().any(|w| {
            let expected = self.nonce_for(w);
            aws_lc_rs::constant_time::verify_slices_are_equal(nonce.as_bytes(), expected.as_bytes())
                .is_ok()
        })
    }
}

/// DPoP as this server accepts it.
#[derive(Debug)]
pub struct DpopService {
    pub policy: DpopPolicy,
    /// `IdentityServer:DPoPNonce`.
    pub require_nonce: bool,
    /// The `jti` replay cache (the one of client assertions: shared with PostgreSQL).
    pub replay: Arc<dyn ReplayCache>,
    /// `https://host[:port]` spellings of this server: a proof's `htu` is one of them plus the path.
    pub origins: Vec<String>,
    /// The signing key in force, whose [`NonceKey`] makes the nonces.
    pub keys: Arc<InForce>,
    /// Proof headers (clients' keys) already checked.
    pub proof_keys: ProofKeyCache,
    /// The token endpoint's URLs, normalized ([`DpopService::urls`]), made once.
    pub token_urls: Vec<String>,
}

/// Proof keys kept parsed: one per client key in use (a client keeps its key across requests).
pub const PROOF_KEY_CACHE: usize = 10_000;

impl DpopService {
    /// The nonce to send in `DPoP-Nonce`, when nonces are on.
    pub fn nonce(&self, now: i64) -> Option<String> {
        self.require_nonce
            .then(|| self.keys.signing().nonce_key.current(now))
    }

    /// The URLs a request to `path` may have been sent to.
    pub fn urls(&self, path: &str) -> Vec<String> {
        self.origins
            .iter()
            .map(|o| ids_jose::dpop::normalize_htu(&format!("{o}{path}")))
            .collect()
    }

    /// Checks the proof of a request of `client_id` with `method` to `path` (with `access_token` on
    /// the API, and the key it is bound to, `expected_jkt`): the proof itself, its key, the nonce when
    /// required, and only then its `jti` for replay (a proof that fails a check takes no room in the
    /// replay cache).
    #[allow(clippy::too_many_arguments)]
    pub async fn check(
        &self,
        proof: &str,
        method: &str,
        path: &str,
        access_token: Option<&str>,
        expected_jkt: Option<&str>,
        client_id: &str,
        now: i64,
    ) -> Result<DpopProof, DpopRejection> {
        let computed;
        let urls: &[String] = if path == ids_proto::paths::TOKEN {
            &self.token_urls
        } else {
            computed = self.urls(path);
            &computed
        };
        let request = DpopRequest {
            method,
            urls,
            access_token,
        };
        let proof =
            verify_proof_cached(proof, &request, &self.policy, now, Some(&self.proof_keys))?;
        if let Some(expected) = expected_jkt
            && expected != proof.jkt
        {
            return Err(DpopRejection::KeyMismatch(
                ids_jose::VerifyError::DpopKeyMismatch {
                    expected: ids_jose::verify::shown(expected),
                    presented: proof.jkt.clone(),
                }
                .to_string(),
            ));
        }
        if self.require_nonce {
            let key = self.keys.signing().nonce_key.clone();
            let reason = match proof.nonce.as_deref() {
                None => Some(DpopError::NonceMissing),
                Some(n) if !key.accepts(n, now) => Some(DpopError::NonceInvalid),
                Some(_) => None,
            };
            if let Some(reason) = reason {
                return Err(DpopRejection::UseNonce {
                    nonce: key.current(now),
                    reason,
                });
            }
        }
        // Kept as long as a proof with this iat can be accepted: max age, plus the leeway the cache
        // itself adds.
        let expires_at = proof.iat.saturating_add(self.policy.max_age_secs);
        let namespace = format!("dpop:{client_id}");
        let jti = format!("{}.{}", proof.jkt, proof.jti);
        match self
            .replay
            .first_use(&namespace, &jti, expires_at.max(now), now)
            .await
        {
            Ok(true) => Ok(proof),
            Ok(false) => Err(DpopRejection::Proof(DpopError::Replayed(
                ids_jose::verify::shown(&proof.jti),
            ))),
            Err(KeyRejection::ReplayCacheUnavailable(why)) => Err(DpopRejection::Unavailable(why)),
            Err(_) => Err(DpopRejection::Busy),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_accepted_for_two_windows_and_only_from_the_same_key() {
        let key = NonceKey::derive(b"pkcs8 one");
        let other = NonceKey::derive(b"pkcs8 two");
        let now = 1_750_000_000;
        let nonce = key.current(now);
        assert!(key.accepts(&nonce, now));
        assert!(key.accepts(&nonce, now + NONCE_WINDOW_SECS));
        assert!(!key.accepts(&nonce, now + 2 * NONCE_WINDOW_SECS));
        assert!(!other.accepts(&nonce, now));
        assert!(!key.accepts("AAAA", now));
        assert_eq!(format!("{key:?}"), "NonceKey(<redacted>)");
    }
}
