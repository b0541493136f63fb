//! Access-token verification (RFC 9068 section 4, RFC 8725).
//!
//! The order is fixed: structure, header policy, key lookup by `kid`, signature with the algorithm the
//! key dictates, and only then the claims. Nothing from an unverified payload is ever interpreted.
//! Every rejection has its own [`VerifyError`] variant so operators (and tests) can tell them apart.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::keyset::{KeySet, VerificationKey};
use ids_pki::b64;
use ids_pki::cert::format_time;
use ids_pki::keys::Algorithm;

/// Largest token accepted, so a hostile input costs bounded work (our tokens are about 1 KiB).
pub const MAX_TOKEN_LEN: usize = 16 * 1024;
/// Largest clock leeway a verifier may be configured with (RFC 8725 asks for a small one).
pub const MAX_LEEWAY_SECS: u64 = 60;

/// What a token must say to be accepted.
#[derive(Clone, Debug)]
pub struct Validation {
    /// Expected `iss`, compared exactly.
    pub issuer: String,
    /// Expected member of `aud`.
    pub audience: String,
    /// Clock leeway for `exp`, `nbf` and `iat`, at most [`MAX_LEEWAY_SECS`].
    pub leeway_secs: u64,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the token is {len} bytes long; at most {max} are accepted")]
    TooLarge { len: usize, max: usize },
    #[error("the token is not a compact JWS (three base64url parts separated by dots): {detail}")]
    Malformed { detail: String },
    #[error("the token header is not valid: {detail}")]
    BadHeader { detail: String },
    #[error("the token is unsigned (alg \"none\"); unsigned tokens are never accepted")]
    Unsigned,
    #[error(
        "the token uses the symmetric algorithm {alg}; only the server's public key (RS256, PS256, ES256, ES384 or EdDSA) is trusted"
    )]
    Symmetric { alg: String },
    #[error(
        "the token algorithm {alg} is not supported (RS256, PS256, ES256, ES384 and EdDSA are)"
    )]
    UnsupportedAlgorithm { alg: String },
    #[error(
        "the token header carries \"{member}\"; keys embedded in or referenced by a token are never trusted"
    )]
    UntrustedKeyHeader { member: String },
    #[error("the token header marks \"{names}\" as critical; no JWS extension is supported")]
    Critical { names: String },
    #[error("the token type is {found}; an access token must have typ \"at+jwt\" (RFC 9068)")]
    WrongType { found: String },
    #[error("no trusted key has kid \"{kid}\" (trusted: {known})")]
    UnknownKey { kid: String, known: String },
    #[error("the token has no kid and no trusted key uses {alg}")]
    NoKeyForAlgorithm { alg: String },
    #[error("the token says alg {alg} but key \"{kid}\" ({origin}) is a {expected} key")]
    AlgorithmMismatch {
        alg: String,
        kid: String,
        origin: String,
        expected: String,
    },
    #[error("the signature is {found} bytes; {alg} with this key makes {expected}-byte signatures")]
    SignatureLength {
        alg: String,
        found: usize,
        expected: usize,
    },
    #[error("the ES256 signature is out of range (r or s is zero or not below the curve order)")]
    SignatureOutOfRange,
    #[error("the signature does not verify with key \"{kid}\" ({origin}): forged or altered token")]
    BadSignature { kid: String, origin: String },
    #[error("the token claims are not a JSON object: {detail}")]
    BadClaims { detail: String },
    #[error("the token has no \"{claim}\" claim, which is required")]
    MissingClaim { claim: &'static str },
    #[error(
        "the token carries a confirmation this verifier cannot check (cnf {found}); x5t#S256 (RFC 8705) and jkt (RFC 9449) are supported"
    )]
    UnsupportedConfirmation { found: String },
    #[error(
        "the token is DPoP-bound (cnf jkt {expected}): send it as `Authorization: DPoP <token>` with a DPoP proof made with that key"
    )]
    DpopRequired { expected: String },
    #[error(
        "the token is bound to the DPoP key {expected} (cnf jkt) but the proof was made with the key {presented}"
    )]
    DpopKeyMismatch { expected: String, presented: String },
    #[error(
        "the token is not DPoP-bound: send it as `Authorization: Bearer <token>`, without a DPoP proof"
    )]
    NotDpopBound,
    #[error(
        "the token is bound to a client certificate (cnf x5t#S256 {expected}) but the request came without a client certificate"
    )]
    CertificateRequired { expected: String },
    #[error(
        "the token is bound to the client certificate {expected} (cnf x5t#S256) but the request presented {presented}"
    )]
    CertificateMismatch { expected: String, presented: String },
    #[error("the \"{claim}\" claim must be {expected}, found {found}")]
    ClaimType {
        claim: &'static str,
        expected: &'static str,
        found: String,
    },
    #[error("the token expired at {} (now {}, leeway {leeway} s)", format_time(*exp), format_time(*now))]
    Expired { exp: i64, now: i64, leeway: u64 },
    #[error("the token is not valid before {} (now {}, leeway {leeway} s)", format_time(*nbf), format_time(*now))]
    NotYetValid { nbf: i64, now: i64, leeway: u64 },
    #[error("the token was issued in the future, at {} (now {}, leeway {leeway} s)", format_time(*iat), format_time(*now))]
    IssuedInFuture { iat: i64, now: i64, leeway: u64 },
    #[error("the token issuer is \"{found}\"; expected \"{expected}\"")]
    WrongIssuer { found: String, expected: String },
    #[error("the token audience is {found}; expected \"{expected}\"")]
    WrongAudience { found: String, expected: String },
}

impl VerifyError {
    /// Whether re-fetching the JWKS could help (the key may have been rotated in).
    pub fn is_unknown_key(&self) -> bool {
        matches!(
            self,
            VerifyError::UnknownKey { .. } | VerifyError::NoKeyForAlgorithm { .. }
        )
    }
}

/// A verified access token.
#[derive(Clone, Debug)]
pub struct AccessToken {
    pub algorithm: Algorithm,
    /// The `kid` of the key that verified it.
    pub kid: String,
    pub issuer: String,
    pub subject: Option<String>,
    pub client_id: Option<String>,
    pub audience: Vec<String>,
    /// `scope`, from a space-separated string or a JSON array.
    pub scopes: Vec<String>,
    pub jti: Option<String>,
    pub issued_at: i64,
    pub not_before: i64,
    pub expires_at: i64,
    /// Every claim as sent (authenticated), for printing and for claims this type does not model.
    pub claims: Map<String, Value>,
}

impl AccessToken {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// The `x5t#S256` of the client certificate the token is bound to (RFC 8705 section 3.1), if any.
    pub fn certificate_binding(&self) -> Option<&str> {
        self.claims
            .get("cnf")
            .and_then(|c| c.get("x5t#S256"))
            .and_then(Value::as_str)
    }

    /// The `jkt` of the DPoP key the token is bound to (RFC 9449 section 6.1), if any.
    pub fn dpop_binding(&self) -> Option<&str> {
        self.claims
            .get("cnf")
            .and_then(|c| c.get("jkt"))
            .and_then(Value::as_str)
    }

    /// RFC 8705 section 3 and RFC 9449 section 7: a token bound to a certificate is only good over a
    /// connection where the client presented that certificate; a token bound to a DPoP key only with
    /// a proof made with that key (verified by the caller: [`crate::dpop::verify_proof`]), sent with
    /// the `DPoP` scheme. Unbound tokens pass with any certificate, but not with the `DPoP` scheme.
    pub fn check_binding(&self, presented: &Presentation<'_>) -> Result<(), VerifyError> {
        let certificate = self.certificate_binding();
        let jkt = self.dpop_binding();
        if let Some(cnf) = self.claims.get("cnf") {
            // A confirmation this verifier does not understand (another method, a malformed member,
            // even beside one it does) is not silently taken as "unbound".
            let understood = cnf.as_object().is_some_and(|members| {
                !members.is_empty()
                    && members
                        .iter()
                        .all(|(k, v)| matches!(k.as_str(), "x5t#S256" | "jkt") && v.is_string())
            });
            if !understood {
                return Err(VerifyError::UnsupportedConfirmation {
                    found: shown(&cnf.to_string()),
                });
            }
        }
        if let Some(expected) = certificate {
            let Some(der) = presented.certificate else {
                return Err(VerifyError::CertificateRequired {
                    expected: shown(expected),
                });
            };
            let found = ids_pki::cert::x5t_s256(der);
            if !bool::from(subtle::ConstantTimeEq::ct_eq(
                found.as_bytes(),
                expected.as_bytes(),
            )) {
                return Err(VerifyError::CertificateMismatch {
                    expected: shown(expected),
                    presented: found,
                });
            }
        }
        match (jkt, presented.dpop_jkt) {
            (Some(expected), None) => Err(VerifyError::DpopRequired {
                expected: shown(expected),
            }),
            (Some(expected), Some(found)) => {
                if bool::from(subtle::ConstantTimeEq::ct_eq(
                    found.as_bytes(),
                    expected.as_bytes(),
                )) {
                    Ok(())
                } else {
                    Err(VerifyError::DpopKeyMismatch {
                        expected: shown(expected),
                        presented: found.to_string(),
                    })
                }
            }
            // RFC 9449 section 7.2: the DPoP scheme is for DPoP-bound tokens.
            (None, Some(_)) => Err(VerifyError::NotDpopBound),
            (None, None) => Ok(()),
        }
    }
}

/// How a token was presented with a request: the TLS client certificate, and the key of the DPoP
/// proof when it came with the `DPoP` scheme (the proof verified by the caller).
#[derive(Debug, Clone, Copy, Default)]
pub struct Presentation<'a> {
    /// DER of the client's TLS certificate.
    pub certificate: Option<&'a [u8]>,
    /// The RFC 7638 thumbprint of the verified DPoP proof's key ([`crate::dpop::DpopProof::jkt`]).
    pub dpop_jkt: Option<&'a str>,
}

/// Verifies access tokens against a fixed [`KeySet`].
#[derive(Debug)]
pub struct Verifier {
    keys: KeySet,
    validation: Validation,
}

#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    typ: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    kid: Option<std::borrow::Cow<'a, str>>,
    jwk: Option<serde::de::IgnoredAny>,
    jku: Option<serde::de::IgnoredAny>,
    x5u: Option<serde::de::IgnoredAny>,
    x5c: Option<serde::de::IgnoredAny>,
    crit: Option<Value>,
}

impl Verifier {
    /// A verifier trusting `keys`. The leeway is capped at [`MAX_LEEWAY_SECS`].
    pub fn new(keys: KeySet, mut validation: Validation) -> Self {
        validation.leeway_secs = validation.leeway_secs.min(MAX_LEEWAY_SECS);
        Verifier { keys, validation }
    }

    pub fn keys(&self) -> &KeySet {
        &self.keys
    }

    pub fn validation(&self) -> &Validation {
        &self.validation
    }

    /// Verifies `token` at `now` as presented over a connection whose TLS client certificate was
    /// `certificate` (DER; `None` without one): [`Verifier::verify`], then the certificate binding of
    /// RFC 8705 section 3 ([`AccessToken::check_binding`]). APIs should call this one.
    pub fn verify_presented(
        &self,
        token: &str,
        now: i64,
        certificate: Option<&[u8]>,
    ) -> Result<AccessToken, VerifyError> {
        self.verify_with(
            token,
            now,
            &Presentation {
                certificate,
                dpop_jkt: None,
            },
        )
    }

    /// [`Verifier::verify`], then the bindings of `presented` ([`AccessToken::check_binding`]): the
    /// TLS client certificate and the DPoP proof's key.
    pub fn verify_with(
        &self,
        token: &str,
        now: i64,
        presented: &Presentation<'_>,
    ) -> Result<AccessToken, VerifyError> {
        let claims = self.verify(token, now)?;
        claims.check_binding(presented)?;
        Ok(claims)
    }

    /// A request with `Authorization: DPoP <token>` and the proof `proof` (RFC 9449 section 7):
    /// verifies the proof for `request` (with the token's `ath`), the token, and that the token is
    /// bound to the proof's key. The proof's `jti` must then be checked for replay by the caller
    /// (kept for [`crate::dpop::DpopPolicy::max_age_secs`] plus leeway); its nonce too, if it uses
    /// nonces.
    pub fn verify_dpop(
        &self,
        token: &str,
        proof: &str,
        request: &crate::dpop::DpopRequest<'_>,
        policy: &crate::dpop::DpopPolicy,
        certificate: Option<&[u8]>,
        now: i64,
    ) -> Result<(AccessToken, crate::dpop::DpopProof), DpopVerifyError> {
        let request = crate::dpop::DpopRequest {
            access_token: Some(token),
            ..*request
        };
        let proof = crate::dpop::verify_proof(proof, &request, policy, now)?;
        let claims = self.verify_with(
            token,
            now,
            &Presentation {
                certificate,
                dpop_jkt: Some(&proof.jkt),
            },
        )?;
        Ok((claims, proof))
    }

    /// Verifies `token` as [`Verifier::verify`] does, whatever its audience (the authorization
    /// server's own view of its tokens, for introspection: a token for another resource is still one
    /// of its tokens).
    pub fn verify_any_audience(&self, token: &str, now: i64) -> Result<AccessToken, VerifyError> {
        self.verify_inner(token, now, false)
    }

    /// Verifies `token` at `now` (Unix seconds). The certificate binding (`cnf`) is not checked: a
    /// resource server uses [`Verifier::verify_presented`].
    pub fn verify(&self, token: &str, now: i64) -> Result<AccessToken, VerifyError> {
        self.verify_inner(token, now, true)
    }

    fn verify_inner(
        &self,
        token: &str,
        now: i64,
        check_audience: bool,
    ) -> Result<AccessToken, VerifyError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(VerifyError::TooLarge {
                len: token.len(),
                max: MAX_TOKEN_LEN,
            });
        }
        let malformed = |detail: &str| VerifyError::Malformed {
            detail: detail.to_string(),
        };
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed(&format!(
                "found {} part(s)",
                token.split('.').count()
            )));
        };
        let header_json =
            b64::url_decode(header_b64).ok_or_else(|| malformed("the header is not base64url"))?;
        let signature = b64::url_decode(signature_b64)
            .ok_or_else(|| malformed("the signature is not base64url"))?;

        // RFC 7515 section 4: the header is a JSON object. The derived `Deserialize` alone would also
        // take a JSON array and fill the members by position.
        if header_json
            .iter()
            .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
            != Some(&b'{')
        {
            return Err(VerifyError::BadHeader {
                detail: "not a JSON object".into(),
            });
        }
        let header: Header<'_> =
            serde_json::from_slice(&header_json).map_err(|e| VerifyError::BadHeader {
                detail: e.to_string(),
            })?;
        let algorithm = match header.alg.as_deref() {
            None => {
                return Err(VerifyError::BadHeader {
                    detail: "\"alg\" is missing".into(),
                });
            }
            Some(alg) => match Algorithm::from_name(alg) {
                Some(algorithm) => algorithm,
                None if alg.eq_ignore_ascii_case("none") => return Err(VerifyError::Unsigned),
                None if alg.starts_with("HS") => {
                    return Err(VerifyError::Symmetric { alg: shown(alg) });
                }
                None => return Err(VerifyError::UnsupportedAlgorithm { alg: shown(alg) }),
            },
        };
        for (member, present) in [
            ("jwk", header.jwk.is_some()),
            ("jku", header.jku.is_some()),
            ("x5u", header.x5u.is_some()),
            ("x5c", header.x5c.is_some()),
        ] {
            if present {
                return Err(VerifyError::UntrustedKeyHeader {
                    member: member.into(),
                });
            }
        }
        if let Some(crit) = &header.crit {
            return Err(VerifyError::Critical {
                names: crit.to_string(),
            });
        }
        match header.typ.as_deref() {
            Some(t)
                if t.eq_ignore_ascii_case("at+jwt")
                    || t.eq_ignore_ascii_case("application/at+jwt") => {}
            found => {
                return Err(VerifyError::WrongType {
                    found: found.map_or("missing".to_string(), |t| format!("\"{}\"", shown(t))),
                });
            }
        }

        let signed = &token[..header_b64.len() + 1 + payload_b64.len()];
        let key = self.verify_signature(header.kid.as_deref(), algorithm, signed, &signature)?;

        let payload = b64::url_decode(payload_b64)
            .ok_or_else(|| malformed("the payload is not base64url"))?;
        let claims: Map<String, Value> =
            serde_json::from_slice(&payload).map_err(|e| VerifyError::BadClaims {
                detail: e.to_string(),
            })?;
        self.check_claims(claims, algorithm, key.kid(), now, check_audience)
    }

    fn verify_signature(
        &self,
        kid: Option<&str>,
        algorithm: Algorithm,
        signed: &str,
        signature: &[u8],
    ) -> Result<&VerificationKey, VerifyError> {
        let check = |key: &VerificationKey| -> Result<(), VerifyError> {
            if !key.accepts(algorithm) {
                return Err(VerifyError::AlgorithmMismatch {
                    alg: algorithm.as_str().into(),
                    kid: key.kid().into(),
                    origin: key.origin().into(),
                    expected: key.algorithms_text(),
                });
            }
            if signature.len() != key.signature_len() {
                return Err(VerifyError::SignatureLength {
                    alg: algorithm.as_str().into(),
                    found: signature.len(),
                    expected: key.signature_len(),
                });
            }
            if !ecdsa_in_range(algorithm, signature) {
                return Err(VerifyError::SignatureOutOfRange);
            }
            if key.verify(algorithm, signed.as_bytes(), signature) {
                Ok(())
            } else {
                Err(VerifyError::BadSignature {
                    kid: key.kid().into(),
                    origin: key.origin().into(),
                })
            }
        };
        match kid {
            Some(kid) => {
                let key = self.keys.find(kid).ok_or_else(|| VerifyError::UnknownKey {
                    kid: shown(kid),
                    known: self
                        .keys
                        .keys()
                        .iter()
                        .map(|k| k.kid())
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
                check(key).map(|()| key)
            }
            None => {
                // No kid: only keys of the token's algorithm are candidates; the first error is reported.
                let mut first_error = None;
                for key in self.keys.keys().iter().filter(|k| k.accepts(algorithm)) {
                    match check(key) {
                        Ok(()) => return Ok(key),
                        Err(e) => {
                            first_error.get_or_insert(e);
                        }
                    }
                }
                Err(first_error.unwrap_or(VerifyError::NoKeyForAlgorithm {
                    alg: algorithm.as_str().into(),
                }))
            }
        }
    }

    fn check_claims(
        &self,
        claims: Map<String, Value>,
        algorithm: Algorithm,
        kid: &str,
        now: i64,
        check_audience: bool,
    ) -> Result<AccessToken, VerifyError> {
        let leeway = self.validation.leeway_secs;
        let slack = leeway as i64;
        let exp = numeric_date(&claims, "exp")?;
        let nbf = numeric_date(&claims, "nbf")?;
        let iat = numeric_date(&claims, "iat")?;
        // RFC 7519 section 4.1.4: the current time MUST be before `exp`.
        if now >= exp.saturating_add(slack) {
            return Err(VerifyError::Expired { exp, now, leeway });
        }
        if nbf > now.saturating_add(slack) {
            return Err(VerifyError::NotYetValid { nbf, now, leeway });
        }
        if iat > now.saturating_add(slack) {
            return Err(VerifyError::IssuedInFuture { iat, now, leeway });
        }
        let issuer = match claims.get("iss") {
            None => return Err(VerifyError::MissingClaim { claim: "iss" }),
            Some(Value::String(s)) => s.clone(),
            Some(other) => return Err(claim_type("iss", "a string", other)),
        };
        if issuer != self.validation.issuer {
            return Err(VerifyError::WrongIssuer {
                found: issuer,
                expected: self.validation.issuer.clone(),
            });
        }
        let audience =
            string_or_array(&claims, "aud")?.ok_or(VerifyError::MissingClaim { claim: "aud" })?;
        if check_audience && !audience.contains(&self.validation.audience) {
            return Err(VerifyError::WrongAudience {
                found: format!("{audience:?}"),
                expected: self.validation.audience.clone(),
            });
        }
        let scopes = match claims.get("scope") {
            Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
            _ => string_or_array(&claims, "scope")?.unwrap_or_default(),
        };
        Ok(AccessToken {
            algorithm,
            kid: kid.to_string(),
            issuer,
            subject: optional_string(&claims, "sub")?,
            client_id: optional_string(&claims, "client_id")?,
            audience,
            scopes,
            jti: optional_string(&claims, "jti")?,
            issued_at: iat,
            not_before: nbf,
            expires_at: exp,
            claims,
        })
    }
}

/// An unauthenticated header value, made safe to log: at most 64 characters, control characters escaped.
pub fn shown(value: &str) -> String {
    value
        .chars()
        .take(64)
        .flat_map(char::escape_debug)
        .collect()
}

/// The order of the P-256 group, big-endian.
const P256_ORDER: [u8; 32] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xBC, 0xE6, 0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63, 0x25, 0x51,
];

/// The order of the P-384 group, big-endian.
const P384_ORDER: [u8; 48] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xC7, 0x63, 0x4D, 0x81, 0xF4, 0x37, 0x2D, 0xDF,
    0x58, 0x1A, 0x0D, 0xB2, 0x48, 0xB0, 0xA7, 0x7A, 0xEC, 0xEC, 0x19, 0x6A, 0xCC, 0xC5, 0x29, 0x73,
];

/// For ECDSA, `0 < r < n` and `0 < s < n` (the check whose absence made CVE-2022-21449 "psychic
/// signatures"); true for the other algorithms.
pub(crate) fn ecdsa_in_range(algorithm: Algorithm, signature: &[u8]) -> bool {
    let order: &[u8] = match algorithm {
        Algorithm::ES256 => &P256_ORDER,
        Algorithm::ES384 => &P384_ORDER,
        _ => return true,
    };
    signature
        .chunks(order.len())
        .all(|half| half.len() == order.len() && half.iter().any(|b| *b != 0) && half < order)
}

fn claim_type(claim: &'static str, expected: &'static str, found: &Value) -> VerifyError {
    let found = match found {
        Value::Null => "null".to_string(),
        Value::Bool(_) => "a boolean".to_string(),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string \"{}\"", s.chars().take(60).collect::<String>()),
        Value::Array(_) => "an array".to_string(),
        Value::Object(_) => "an object".to_string(),
    };
    VerifyError::ClaimType {
        claim,
        expected,
        found,
    }
}

/// A required NumericDate (RFC 7519 section 2): a JSON number of seconds, never a string.
fn numeric_date(claims: &Map<String, Value>, claim: &'static str) -> Result<i64, VerifyError> {
    let expected = "a number of seconds since 1970 (NumericDate)";
    match claims.get(claim) {
        None => Err(VerifyError::MissingClaim { claim }),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite() && f.abs() < 1e15)
                    .map(|f| f.floor() as i64)
            })
            .ok_or_else(|| claim_type(claim, expected, &Value::Number(n.clone()))),
        Some(other) => Err(claim_type(claim, expected, other)),
    }
}

fn optional_string(
    claims: &Map<String, Value>,
    claim: &'static str,
) -> Result<Option<String>, VerifyError> {
    match claims.get(claim) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(claim_type(claim, "a string", other)),
    }
}

/// A claim that is a string or an array of strings (`aud`, RFC 7519 section 4.1.3; `scope` as some
/// servers send it).
fn string_or_array(
    claims: &Map<String, Value>,
    claim: &'static str,
) -> Result<Option<Vec<String>>, VerifyError> {
    let expected = "a string or an array of strings";
    match claims.get(claim) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(claim_type(claim, expected, other)),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => Err(claim_type(claim, expected, other)),
    }
}

/// Why a DPoP request was refused: the proof, or the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DpopVerifyError {
    #[error(transparent)]
    Proof(#[from] crate::dpop::DpopError),
    #[error(transparent)]
    Token(#[from] VerifyError),
}
