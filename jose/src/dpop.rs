//! DPoP (RFC 9449): proofs of possession of a client key, sent in the `DPoP` header with each
//! request; tokens bound to that key by `cnf.jkt`.
//!
//! - [`DpopSigner`]: the client's side (the agent): one proof per request, for its method and URL,
//!   with the server's nonce when it asked for one and, towards an API, the token's hash (`ath`).
//! - [`verify_proof`]: the server's side and any resource server's: the header (`typ dpop+jwt`, an
//!   allowed asymmetric `alg`, a public `jwk` that verifies the signature) and the claims (`htm`,
//!   `htu`, `iat` within the window, `jti`, `ath`). The `jti` replay check and the nonce are the
//!   caller's (they need state shared by every request): [`DpopProof::jti`] and
//!   [`DpopProof::nonce`].
//! - A resource server then checks that the token's `cnf.jkt` is the proof key's thumbprint
//!   ([`crate::AccessToken::check_binding`] with [`crate::Presentation`]).

use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use serde_json::{Map, Value};

use super::keyset::VerificationKey;
use super::verify::{ecdsa_in_range, shown};
use ids_pki::keys::{Algorithm, KeyError};
use ids_pki::{Jwk, PublicKey, SigningKey, b64, jwk};

/// The `typ` of a DPoP proof (RFC 9449 section 4.2).
pub const DPOP_TYPE: &str = "dpop+jwt";
/// Largest proof accepted (an RSA-4096 `jwk` makes ~1.5 KiB).
pub const MAX_PROOF_LEN: usize = 8 * 1024;
/// Longest `jti` accepted (RFC 9449 recommends 96 bits of randomness; 16 bytes base64url is 22).
pub const MAX_JTI_LEN: usize = 256;

/// Members of a private JWK: a proof's `jwk` must not carry one (RFC 9449 section 4.3 item 7).
const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "k"];

/// Why a proof was refused. Each says what was wrong; none contains the proof.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DpopError {
    #[error("no DPoP proof: send a `DPoP` header with a proof for this request (RFC 9449)")]
    Missing,
    #[error("more than one DPoP header")]
    Several,
    #[error("the DPoP proof is {0} bytes long; at most {MAX_PROOF_LEN} are accepted")]
    TooLarge(usize),
    #[error("the DPoP proof is not a compact JWS: {0}")]
    Malformed(String),
    #[error("the DPoP proof header is not valid: {0}")]
    BadHeader(String),
    #[error("the DPoP proof's typ is {0}; expected \"dpop+jwt\"")]
    WrongType(String),
    #[error("the DPoP proof is unsigned (alg \"none\"); proofs are signed with the client's key")]
    Unsigned,
    #[error(
        "the DPoP proof uses the symmetric algorithm {0}; proofs are signed with a private key"
    )]
    Symmetric(String),
    #[error("the DPoP proof uses alg {found}; this server accepts {allowed}")]
    AlgorithmNotAllowed { found: String, allowed: String },
    #[error("the DPoP proof's jwk is not usable: {0}")]
    BadKey(String),
    #[error("the DPoP proof's jwk is a private key (it has \"{0}\"); send the public key only")]
    PrivateKey(String),
    #[error("the DPoP proof says alg {alg} but its jwk is a {key} key")]
    AlgorithmMismatch { alg: String, key: String },
    #[error("the DPoP proof signature does not verify with its jwk")]
    BadSignature,
    #[error("the DPoP proof claims are not a JSON object: {0}")]
    BadClaims(String),
    #[error("the DPoP proof has no \"{0}\" claim, which is required")]
    MissingClaim(&'static str),
    #[error("the DPoP proof is for method {found}; this request is {expected}")]
    WrongMethod { found: String, expected: String },
    #[error("the DPoP proof is for {found}; this request is for {expected}")]
    WrongUrl { found: String, expected: String },
    #[error("the DPoP proof was made at {iat}, more than {max_age} s before now ({now})")]
    TooOld { iat: i64, now: i64, max_age: i64 },
    #[error("the DPoP proof was made at {iat}, in the future (now {now})")]
    InFuture { iat: i64, now: i64 },
    #[error("the DPoP proof has no \"ath\": a proof sent with an access token carries its hash")]
    MissingTokenHash,
    #[error("the DPoP proof's \"ath\" is not the hash of this access token")]
    WrongTokenHash,
    #[error("the DPoP proof with jti \"{0}\" was already used (replay)")]
    Replayed(String),
    #[error("the DPoP proof has no nonce; this server requires the one of its DPoP-Nonce header")]
    NonceMissing,
    #[error("the DPoP proof's nonce is not a current nonce of this server")]
    NonceInvalid,
}

impl DpopError {
    /// A short fixed label for metrics and the audit trail.
    pub fn label(&self) -> &'static str {
        match self {
            DpopError::Missing => "dpop_missing",
            DpopError::Replayed(_) => "dpop_replayed",
            DpopError::WrongMethod { .. } => "dpop_wrong_method",
            DpopError::WrongUrl { .. } => "dpop_wrong_url",
            DpopError::TooOld { .. } | DpopError::InFuture { .. } => "dpop_iat",
            DpopError::Unsigned
            | DpopError::Symmetric(_)
            | DpopError::AlgorithmNotAllowed { .. }
            | DpopError::AlgorithmMismatch { .. } => "dpop_algorithm",
            DpopError::BadSignature => "dpop_signature",
            DpopError::MissingTokenHash | DpopError::WrongTokenHash => "dpop_ath",
            DpopError::NonceMissing | DpopError::NonceInvalid => "dpop_nonce",
            _ => "dpop_malformed",
        }
    }
}

/// What the server accepts.
#[derive(Debug, Clone)]
pub struct DpopPolicy {
    /// Algorithms a proof may use (asymmetric only: nothing else can be listed).
    pub algorithms: Vec<Algorithm>,
    /// How old a proof's `iat` may be, in seconds.
    pub max_age_secs: i64,
    /// Clock difference allowed for a proof made "in the future", in seconds.
    pub leeway_secs: i64,
}

impl Default for DpopPolicy {
    fn default() -> Self {
        DpopPolicy {
            algorithms: Algorithm::ALL.to_vec(),
            max_age_secs: 60,
            leeway_secs: 30,
        }
    }
}

/// The request a proof must be for.
#[derive(Debug, Clone, Copy)]
pub struct DpopRequest<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The URLs the request may have been sent to (the server's spellings of itself), without query.
    pub urls: &'a [String],
    /// The access token sent with the request (then `ath` is required and checked).
    pub access_token: Option<&'a str>,
}

/// A verified proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpopProof {
    /// RFC 7638 thumbprint of the proof's key: what `cnf.jkt` binds a token to.
    pub jkt: String,
    pub jti: String,
    pub iat: i64,
    pub nonce: Option<String>,
    pub algorithm: Algorithm,
}

/// `base64url(SHA-256(token))`: a proof's `ath` (RFC 9449 section 4.2).
pub fn token_hash(access_token: &str) -> String {
    b64::url(digest::digest(&digest::SHA256, access_token.as_bytes()).as_ref())
}

/// An `htu` in the form it is compared in (RFC 9449 section 4.3 item 9, RFC 3986 section 6.2.2 and
/// 6.2.3): without query and fragment, scheme and host in lower case, without the scheme's default
/// port, and `/` for an empty path.
pub fn normalize_htu(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or_default();
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let scheme = scheme.to_ascii_lowercase();
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut authority = authority.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => Some(":443"),
        "http" => Some(":80"),
        _ => None,
    };
    if let Some(port) = default_port
        && authority.ends_with(port)
    {
        authority.truncate(authority.len() - port.len());
    }
    format!("{scheme}://{authority}{path}")
}

/// Verifies a DPoP proof for `request` at `now` (RFC 9449 section 4.3, items 1-9 and 11-12). The
/// `jti` replay check (item 12's uniqueness) and the nonce (item 10) are the caller's.
pub fn verify_proof(
    proof: &str,
    request: &DpopRequest<'_>,
    policy: &DpopPolicy,
    now: i64,
) -> Result<DpopProof, DpopError> {
    verify_proof_cached(proof, request, policy, now, None)
}

/// A proof header that passed the header checks: its algorithm, its key ready to verify, the key's
/// thumbprint.
#[derive(Debug)]
pub struct ProofKey {
    algorithm: Algorithm,
    key: VerificationKey,
    jkt: String,
}

/// Proof headers already checked, by the SHA-256 of their base64url text: a client sends the same
/// header (its key) with every proof, so a server keeps the parsed key instead of parsing the JSON
/// and the key again. A header is kept only once a proof made with it verified; when the cache is
/// full, an entry makes room.
#[derive(Debug)]
pub struct ProofKeyCache {
    capacity: usize,
    keys: std::sync::RwLock<std::collections::HashMap<[u8; 32], std::sync::Arc<ProofKey>>>,
}

fn header_digest(header: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, header.as_bytes()).as_ref());
    out
}

impl ProofKeyCache {
    pub fn new(capacity: usize) -> Self {
        ProofKeyCache {
            capacity: capacity.max(1),
            keys: std::sync::RwLock::new(std::collections::HashMap::new()),
        }
    }

    fn get(&self, digest: &[u8; 32]) -> Option<std::sync::Arc<ProofKey>> {
        self.keys.read().ok()?.get(digest).cloned()
    }

    fn put(&self, digest: [u8; 32], key: std::sync::Arc<ProofKey>) {
        if let Ok(mut keys) = self.keys.write() {
            if keys.len() >= self.capacity
                && let Some(any) = keys.keys().next().copied()
            {
                keys.remove(&any);
            }
            keys.insert(digest, key);
        }
    }
}

/// [`verify_proof`], with the headers already checked kept in `cache` (the same policy must be used
/// with one cache).
pub fn verify_proof_cached(
    proof: &str,
    request: &DpopRequest<'_>,
    policy: &DpopPolicy,
    now: i64,
    cache: Option<&ProofKeyCache>,
) -> Result<DpopProof, DpopError> {
    if proof.len() > MAX_PROOF_LEN {
        return Err(DpopError::TooLarge(proof.len()));
    }
    let mut parts = proof.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(DpopError::Malformed(
            "expected three dot-separated parts".into(),
        ));
    };
    let decode = |part: &str, what: &str| {
        b64::url_decode(part)
            .ok_or_else(|| DpopError::Malformed(format!("the {what} is not base64url")))
    };
    let digest = cache.map(|_| header_digest(header_b64));
    // A cached header passed the checks under this policy; its algorithm is checked again in case the
    // cache is shared with another policy.
    let cached = cache
        .zip(digest.as_ref())
        .and_then(|(c, d)| c.get(d))
        .filter(|k| policy.algorithms.contains(&k.algorithm));
    let fresh = cached.is_none();
    let proof_key = match cached {
        Some(k) => k,
        None => std::sync::Arc::new(check_header(&decode(header_b64, "header")?, policy)?),
    };
    let payload = decode(payload_b64, "payload")?;
    let signature = decode(signature_b64, "signature")?;
    let algorithm = proof_key.algorithm;
    let signed = &proof.as_bytes()[..header_b64.len() + 1 + payload_b64.len()];
    if signature.len() != proof_key.key.signature_len()
        || !ecdsa_in_range(algorithm, &signature)
        || !proof_key.key.verify(algorithm, signed, &signature)
    {
        return Err(DpopError::BadSignature);
    }
    if let (true, Some(cache), Some(digest)) = (fresh, cache, digest) {
        cache.put(digest, proof_key.clone());
    }
    check_claims(&payload, request, policy, now, &proof_key)
}

/// RFC 9449 section 4.3 items 2-7: `typ`, an allowed asymmetric `alg`, a public `jwk` of a key type
/// that fits it.
fn check_header(header_json: &[u8], policy: &DpopPolicy) -> Result<ProofKey, DpopError> {
    let header: Map<String, Value> =
        serde_json::from_slice(header_json).map_err(|e| DpopError::BadHeader(e.to_string()))?;
    match header.get("typ").and_then(Value::as_str) {
        Some(t) if t.eq_ignore_ascii_case(DPOP_TYPE) => {}
        Some(t) => return Err(DpopError::WrongType(format!("\"{}\"", shown(t)))),
        None => return Err(DpopError::WrongType("missing".into())),
    }
    let algorithm = match header.get("alg").and_then(Value::as_str) {
        None => return Err(DpopError::BadHeader("\"alg\" is missing".into())),
        Some(alg) if alg.eq_ignore_ascii_case("none") => return Err(DpopError::Unsigned),
        Some(alg) if alg.starts_with("HS") => return Err(DpopError::Symmetric(shown(alg))),
        Some(alg) => match Algorithm::from_name(alg).filter(|a| policy.algorithms.contains(a)) {
            Some(a) => a,
            None => {
                return Err(DpopError::AlgorithmNotAllowed {
                    found: shown(alg),
                    allowed: policy
                        .algorithms
                        .iter()
                        .map(|a| a.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        },
    };
    if let Some(crit) = header.get("crit") {
        return Err(DpopError::BadHeader(format!(
            "\"crit\" {} is not understood",
            shown(&crit.to_string())
        )));
    }
    let jwk_value = header
        .get("jwk")
        .filter(|v| v.is_object())
        .ok_or_else(|| DpopError::BadKey("the header has no \"jwk\" object".into()))?;
    if let Some(private) = PRIVATE_MEMBERS
        .iter()
        .find(|m| jwk_value.get(**m).is_some())
    {
        return Err(DpopError::PrivateKey((*private).to_string()));
    }
    let entry = <Jwk as serde::Deserialize>::deserialize(jwk_value)
        .map_err(|e| DpopError::BadKey(e.to_string()))?;
    let public =
        VerificationKey::public_key_of(&entry).map_err(|e| DpopError::BadKey(e.to_string()))?;
    if !algorithm.fits(&public) {
        return Err(DpopError::AlgorithmMismatch {
            alg: algorithm.as_str().into(),
            key: public.describe(),
        });
    }
    let key = VerificationKey::from_public(&public, "DPoP proof key")
        .map_err(|e| DpopError::BadKey(e.to_string()))?;
    Ok(ProofKey {
        algorithm,
        jkt: key.thumbprint().to_string(),
        key,
    })
}

/// RFC 9449 section 4.3 items 8, 9, 11, 12: `jti`, `htm`, `htu`, `iat`, `ath`.
fn check_claims(
    payload: &[u8],
    request: &DpopRequest<'_>,
    policy: &DpopPolicy,
    now: i64,
    proof_key: &ProofKey,
) -> Result<DpopProof, DpopError> {
    let algorithm = proof_key.algorithm;
    let claims: Map<String, Value> =
        serde_json::from_slice(payload).map_err(|e| DpopError::BadClaims(e.to_string()))?;
    let string = |name: &'static str| -> Result<&str, DpopError> {
        match claims.get(name) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.as_str()),
            Some(_) => Err(DpopError::BadClaims(format!(
                "\"{name}\" is not a non-empty string"
            ))),
            None => Err(DpopError::MissingClaim(name)),
        }
    };
    let jti = string("jti")?;
    if jti.len() > MAX_JTI_LEN {
        return Err(DpopError::BadClaims(format!(
            "\"jti\" is longer than {MAX_JTI_LEN} bytes"
        )));
    }
    let htm = string("htm")?;
    if htm != request.method {
        return Err(DpopError::WrongMethod {
            found: shown(htm),
            expected: request.method.to_string(),
        });
    }
    let htu = normalize_htu(string("htu")?);
    // URLs given normalized (what a server precomputes) match without normalizing them again.
    if !request
        .urls
        .iter()
        .any(|u| *u == htu || normalize_htu(u) == htu)
    {
        return Err(DpopError::WrongUrl {
            found: shown(&htu),
            expected: request.urls.first().cloned().unwrap_or_default(),
        });
    }
    let iat = match claims.get("iat") {
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .ok_or_else(|| DpopError::BadClaims("\"iat\" is not a number of seconds".into()))?,
        Some(_) => return Err(DpopError::BadClaims("\"iat\" is not a number".into())),
        None => return Err(DpopError::MissingClaim("iat")),
    };
    if iat > now.saturating_add(policy.leeway_secs) {
        return Err(DpopError::InFuture { iat, now });
    }
    if iat < now.saturating_sub(policy.max_age_secs) {
        return Err(DpopError::TooOld {
            iat,
            now,
            max_age: policy.max_age_secs,
        });
    }
    if let Some(token) = request.access_token {
        let ath = match claims.get("ath") {
            Some(Value::String(s)) => s.as_str(),
            _ => return Err(DpopError::MissingTokenHash),
        };
        let expected = token_hash(token);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            ath.as_bytes(),
            expected.as_bytes(),
        )) {
            return Err(DpopError::WrongTokenHash);
        }
    }
    let nonce = match claims.get("nonce") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(DpopError::BadClaims("\"nonce\" is not a string".into())),
    };
    Ok(DpopProof {
        jkt: proof_key.jkt.clone(),
        jti: jti.to_string(),
        iat,
        nonce,
        algorithm,
    })
}

/// Makes DPoP proofs with the client's key.
#[derive(Debug)]
pub struct DpopSigner {
    key: SigningKey,
    jkt: String,
    /// Pre-encoded `base64url(header) + "."`.
    header_prefix: String,
}

impl DpopSigner {
    /// `public` is the public half of `key` (checked by the caller that loaded both).
    pub fn new(key: SigningKey, public: &PublicKey) -> Self {
        let jwk = Jwk::from_public_key(public);
        let mut jwk_value = serde_json::to_value(&jwk).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut jwk_value {
            // The thumbprint members only (plus kty): `alg` belongs to the header.
            map.remove("alg");
        }
        let header = serde_json::json!({
            "typ": DPOP_TYPE,
            "alg": key.algorithm().as_str(),
            "jwk": jwk_value,
        });
        let header_prefix = format!("{}.", b64::url(header.to_string().as_bytes()));
        DpopSigner {
            key,
            jkt: jwk::thumbprint(public),
            header_prefix,
        }
    }

    /// The thumbprint tokens bound to this key carry in `cnf.jkt`.
    pub fn jkt(&self) -> &str {
        &self.jkt
    }

    /// A proof for one request: `method` and `url` (its query is dropped), at `now`, with the server's
    /// `nonce` if it gave one and the hash of `access_token` when one is sent with the request.
    pub fn proof(
        &self,
        method: &str,
        url: &str,
        now: i64,
        nonce: Option<&str>,
        access_token: Option<&str>,
    ) -> Result<String, KeyError> {
        let mut jti = [0u8; 16];
        SystemRandom::new()
            .fill(&mut jti)
            .map_err(|_| KeyError::Sign)?;
        let htu = url.split(['?', '#']).next().unwrap_or_default();
        let mut claims = serde_json::json!({
            "jti": b64::url(&jti),
            "htm": method,
            "htu": htu,
            "iat": now,
        });
        if let Some(nonce) = nonce {
            claims["nonce"] = nonce.into();
        }
        if let Some(token) = access_token {
            claims["ath"] = token_hash(token).into();
        }
        let mut proof = self.header_prefix.clone();
        proof.push_str(&b64::url(claims.to_string().as_bytes()));
        let signature = self.key.sign(proof.as_bytes())?;
        proof.push('.');
        proof.push_str(&b64::url(&signature));
        Ok(proof)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const NOW: i64 = 1_750_000_000;
    const URL: &str = "https://ids.example:5001/connect/token";

    fn signer(algorithm: Algorithm) -> DpopSigner {
        let (key, _) = SigningKey::generate(algorithm).unwrap();
        let public = key.public_key();
        DpopSigner::new(key, &public)
    }

    fn urls() -> Vec<String> {
        vec![URL.to_string()]
    }

    fn check(proof: &str, token: Option<&str>) -> Result<DpopProof, DpopError> {
        let urls = urls();
        verify_proof(
            proof,
            &DpopRequest {
                method: "POST",
                urls: &urls,
                access_token: token,
            },
            &DpopPolicy::default(),
            NOW,
        )
    }

    /// A proof with its header and claims edited, signed with `key`.
    fn forged(key: &SigningKey, header: Value, claims: Value) -> String {
        let mut proof = format!(
            "{}.{}",
            b64::url(header.to_string().as_bytes()),
            b64::url(claims.to_string().as_bytes())
        );
        let signature = key.sign(proof.as_bytes()).unwrap();
        proof.push('.');
        proof.push_str(&b64::url(&signature));
        proof
    }

    #[test]
    fn proofs_of_every_algorithm_verify_and_name_their_key() {
        for algorithm in Algorithm::ALL {
            let s = signer(algorithm);
            let proof = s.proof("POST", URL, NOW, Some("n-1"), None).unwrap();
            let verified = check(&proof, None).unwrap();
            assert_eq!(verified.jkt, s.jkt());
            assert_eq!(verified.nonce.as_deref(), Some("n-1"));
            assert_eq!(verified.algorithm, algorithm);
            let with_token = s.proof("POST", URL, NOW, None, Some("token")).unwrap();
            assert!(check(&with_token, Some("token")).is_ok());
            assert_eq!(
                check(&with_token, Some("other")),
                Err(DpopError::WrongTokenHash)
            );
            assert_eq!(
                check(&proof, Some("token")),
                Err(DpopError::MissingTokenHash)
            );
        }
    }

    #[test]
    fn each_wrong_proof_is_refused_with_its_reason() {
        let s = signer(Algorithm::ES256);
        let ok = |p: &str| check(p, None);
        assert!(matches!(
            ok(&s.proof("GET", URL, NOW, None, None).unwrap()),
            Err(DpopError::WrongMethod { .. })
        ));
        assert!(matches!(
            ok(&s
                .proof(
                    "POST",
                    "https://other.example/connect/token",
                    NOW,
                    None,
                    None
                )
                .unwrap()),
            Err(DpopError::WrongUrl { .. })
        ));
        // Query and fragment, case of scheme and host, the default port: the same URL.
        let same = "HTTPS://IDS.example:5001/connect/token?x=1#f";
        assert!(ok(&s.proof("POST", same, NOW, None, None).unwrap()).is_ok());
        assert!(matches!(
            ok(&s.proof("POST", URL, NOW - 61, None, None).unwrap()),
            Err(DpopError::TooOld { .. })
        ));
        assert!(matches!(
            ok(&s.proof("POST", URL, NOW + 31, None, None).unwrap()),
            Err(DpopError::InFuture { .. })
        ));
        // alg none, HS256, an algorithm not allowed, a key of another type, a private jwk.
        let (key, _) = SigningKey::generate(Algorithm::ES256).unwrap();
        let jwk = serde_json::to_value(Jwk::from_public_key(&key.public_key())).unwrap();
        let claims = serde_json::json!({"jti":"j","htm":"POST","htu":URL,"iat":NOW});
        let header =
            |alg: &str, jwk: &Value| serde_json::json!({"typ":"dpop+jwt","alg":alg,"jwk":jwk});
        assert_eq!(
            ok(&forged(&key, header("none", &jwk), claims.clone())),
            Err(DpopError::Unsigned)
        );
        assert!(matches!(
            ok(&forged(&key, header("HS256", &jwk), claims.clone())),
            Err(DpopError::Symmetric(_))
        ));
        assert!(matches!(
            ok(&forged(&key, header("ES384", &jwk), claims.clone())),
            Err(DpopError::AlgorithmMismatch { .. })
        ));
        let mut private = jwk.clone();
        private["d"] = "AAAA".into();
        assert_eq!(
            ok(&forged(&key, header("ES256", &private), claims.clone())),
            Err(DpopError::PrivateKey("d".into()))
        );
        let mut typ = header("ES256", &jwk);
        typ["typ"] = "JWT".into();
        assert!(matches!(
            ok(&forged(&key, typ, claims.clone())),
            Err(DpopError::WrongType(_))
        ));
        // Signed by another key than the one in the header.
        let (other, _) = SigningKey::generate(Algorithm::ES256).unwrap();
        assert_eq!(
            ok(&forged(&other, header("ES256", &jwk), claims.clone())),
            Err(DpopError::BadSignature)
        );
        for missing in ["jti", "htm", "htu", "iat"] {
            let mut c = claims.clone();
            c.as_object_mut().unwrap().remove(missing);
            assert_eq!(
                ok(&forged(&key, header("ES256", &jwk), c)),
                Err(DpopError::MissingClaim(match missing {
                    "jti" => "jti",
                    "htm" => "htm",
                    "htu" => "htu",
                    _ => "iat",
                }))
            );
        }
        // Not allowed by the policy.
        let urls = urls();
        let request = DpopRequest {
            method: "POST",
            urls: &urls,
            access_token: None,
        };
        let policy = DpopPolicy {
            algorithms: vec![Algorithm::EdDSA],
            ..DpopPolicy::default()
        };
        let proof = s.proof("POST", URL, NOW, None, None).unwrap();
        assert!(matches!(
            verify_proof(&proof, &request, &policy, NOW),
            Err(DpopError::AlgorithmNotAllowed { .. })
        ));
    }

    #[test]
    fn htu_normalization() {
        assert_eq!(normalize_htu("HTTPS://A.Example:443"), "https://a.example/");
        assert_eq!(normalize_htu("http://a:80/x?y#z"), "http://a/x");
        assert_eq!(normalize_htu("https://a:5001/P"), "https://a:5001/P");
    }
}
