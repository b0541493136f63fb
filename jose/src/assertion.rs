//! Client assertions: `private_key_jwt` client authentication (RFC 7523 sections 2.2 and 3, OpenID
//! Connect Core section 9).
//!
//! The client signs a short-lived JWT with its own private key; the server verifies it with a public
//! key registered for that client (a key file, or a thumbprint plus the key the assertion carries in
//! its `jwk` or `x5c` header). Keys in the header are only ever used when their thumbprint is already
//! registered: the header names a key, it never makes one trusted (RFC 8725 section 3.10).
//!
//! - [`AssertionSigner`]: the agent's side.
//! - [`UnverifiedAssertion`]: the server's side: structure and header, then [`UnverifiedAssertion::verify`]
//!   with the registered key, then [`VerifiedAssertion::check`] for the claims. The `jti` replay check is
//!   the caller's (it needs state shared by all requests).

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use serde_json::{Map, Value};

use super::keyset::VerificationKey;
use super::verify::shown;
use ids_pki::keys::{Algorithm, KeyError};
use ids_pki::{Certificate, Jwk, PublicKey, SigningKey, b64, jwk};

/// `client_assertion_type` of a JWT client assertion (RFC 7523 section 2.2).
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Default longest lifetime (`exp` minus now, exactly: no leeway is added) the server accepts.
/// Assertions are meant for one request, but mainstream client libraries sign them for an hour by
/// default (Authlib's `PrivateKeyJWT`, Okta's SDKs): refusing those would make `private_key_jwt` fail
/// with default client settings. The extra minute is for a client whose clock runs ahead of the
/// server's: its one-hour assertion reaches up to an hour plus that difference past the server's now.
/// The `jti` replay cache keeps each assertion until its `exp`, so a longer lifetime costs memory, not
/// safety.
pub const DEFAULT_MAX_ASSERTION_LIFETIME_SECS: i64 = 3660;
/// Lifetime of the assertions the agent makes.
pub const ASSERTION_LIFETIME_SECS: i64 = 60;
/// Largest assertion accepted (an RSA-4096 key in the header makes ~2 KiB).
pub const MAX_ASSERTION_LEN: usize = 16 * 1024;

/// Why an assertion was refused. The server logs this; the client only ever sees `invalid_client`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    #[error("the client assertion is {0} bytes long; at most {MAX_ASSERTION_LEN} are accepted")]
    TooLarge(usize),
    #[error("the client assertion is not a compact JWS: {0}")]
    Malformed(String),
    #[error("the client assertion header is not valid: {0}")]
    BadHeader(String),
    #[error("the client assertion uses alg {0}; RS256, PS256, ES256, ES384 and EdDSA are accepted")]
    UnsupportedAlgorithm(String),
    #[error(
        "the client assertion is an access token (typ at+jwt); a client assertion is a JWT the client signs itself"
    )]
    AccessToken,
    #[error("the client assertion header carries \"{0}\", which is never followed")]
    RemoteKey(&'static str),
    #[error("the key in the client assertion header is not usable: {0}")]
    BadEmbeddedKey(String),
    #[error("the client assertion says alg {alg} but the registered key is a {expected} key")]
    AlgorithmMismatch { alg: String, expected: String },
    #[error("the client assertion signature does not verify with the registered key {thumbprint}")]
    BadSignature { thumbprint: String },
    #[error("the client assertion claims are not a JSON object: {0}")]
    BadClaims(String),
    #[error("the client assertion has no \"{0}\" claim, which is required")]
    MissingClaim(&'static str),
    #[error("the client assertion claim \"{claim}\" is {found}; expected {expected}")]
    ClaimMismatch {
        claim: &'static str,
        found: String,
        expected: String,
    },
    #[error("the client assertion expired at {exp} (now {now})")]
    Expired { exp: i64, now: i64 },
    #[error(
        "the client assertion is valid until {exp}, more than {max} s from now ({now}); make shorter-lived assertions or raise IdentityServer:MaxClientAssertionLifetimeSeconds"
    )]
    TooLong { exp: i64, now: i64, max: i64 },
    #[error("the client assertion is not valid before {nbf} (now {now})")]
    NotYetValid { nbf: i64, now: i64 },
    #[error("the client assertion with jti \"{0}\" was already used (replay)")]
    Replayed(String),
}

/// Signs client assertions with the client's private key. The header carries the public key (`jwk`)
/// so that a server that registered the client by thumbprint alone can verify it.
#[derive(Debug)]
pub struct AssertionSigner {
    key: SigningKey,
    thumbprint: String,
    header_prefix: String,
}

impl AssertionSigner {
    /// `public` is the public half of `key` (checked by the caller that loaded both).
    pub fn new(key: SigningKey, public: &PublicKey) -> Self {
        Self::build(key, public, None)
    }

    /// As [`AssertionSigner::new`], with the key's certificate in the `x5c` header too, so a server
    /// that registered the certificate's `x5t#S256` or SHA-1 thumbprint can match it.
    pub fn with_certificate(key: SigningKey, certificate: &Certificate) -> Self {
        Self::build(key, certificate.public_key(), Some(certificate))
    }

    fn build(key: SigningKey, public: &PublicKey, certificate: Option<&Certificate>) -> Self {
        let thumbprint = jwk::thumbprint(public);
        let mut public_jwk = Jwk::from_public_key(public);
        public_jwk.alg = None;
        let mut header = serde_json::json!({
            "alg": key.algorithm().as_str(),
            "typ": "JWT",
            "kid": thumbprint,
            "jwk": public_jwk,
        });
        if let Some(cert) = certificate {
            header["x5c"] = serde_json::json!([b64::std(cert.der())]);
        }
        let header_prefix = format!("{}.", b64::url(header.to_string().as_bytes()));
        AssertionSigner {
            key,
            thumbprint,
            header_prefix,
        }
    }

    /// RFC 7638 thumbprint of the client's public key (what the server registers).
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// An assertion for `client_id`, addressed to `audience` (the token endpoint URL), valid from `now`
    /// for [`ASSERTION_LIFETIME_SECS`], with a random `jti`.
    pub fn sign(&self, client_id: &str, audience: &str, now: i64) -> Result<String, KeyError> {
        self.sign_for(client_id, audience, now, ASSERTION_LIFETIME_SECS)
    }

    /// [`AssertionSigner::sign`] with another lifetime: `exp` = `now` + `lifetime_secs`.
    pub fn sign_for(
        &self,
        client_id: &str,
        audience: &str,
        now: i64,
        lifetime_secs: i64,
    ) -> Result<String, KeyError> {
        let mut jti = [0u8; 18];
        SystemRandom::new()
            .fill(&mut jti)
            .map_err(|_| KeyError::Sign)?;
        let claims = serde_json::json!({
            "iss": client_id,
            "sub": client_id,
            "aud": audience,
            "jti": b64::url(&jti),
            "iat": now,
            "nbf": now,
            "exp": now.saturating_add(lifetime_secs),
        });
        let mut token = self.header_prefix.clone();
        token.push_str(&b64::url(claims.to_string().as_bytes()));
        let signature = self.key.sign(token.as_bytes())?;
        token.push('.');
        token.push_str(&b64::url(&signature));
        Ok(token)
    }
}

/// The key an assertion carries in its header (`jwk`, or the first certificate of `x5c`).
#[derive(Clone, Debug)]
pub struct EmbeddedKey {
    pub public_key: PublicKey,
    /// RFC 7638 thumbprint of `public_key`.
    pub thumbprint: String,
    /// `x5t#S256` of the certificate, when the key came in `x5c`.
    pub certificate_thumbprint: Option<String>,
    /// SHA-1 hex (upper case) of the certificate, when the key came in `x5c`.
    pub certificate_sha1: Option<String>,
}

/// An assertion whose structure and header passed; the signature is not verified yet, so nothing in
/// it may be believed except to find the key to verify it with.
#[derive(Debug)]
pub struct UnverifiedAssertion {
    algorithm: Algorithm,
    kid: Option<String>,
    embedded: Option<EmbeddedKey>,
    signed_len: usize,
    token: String,
    signature: Vec<u8>,
    claims: Map<String, Value>,
}

/// An assertion whose signature verified with a registered key.
#[derive(Debug)]
pub struct VerifiedAssertion {
    claims: Map<String, Value>,
}

/// What the server keeps of a verified assertion: `jti` (for the replay cache, until `exp`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertionClaims {
    pub jti: String,
    pub expires_at: i64,
}

impl UnverifiedAssertion {
    /// Checks the structure and the header policy.
    pub fn parse(token: &str) -> Result<Self, AssertionError> {
        if token.len() > MAX_ASSERTION_LEN {
            return Err(AssertionError::TooLarge(token.len()));
        }
        let malformed = |d: &str| AssertionError::Malformed(d.to_string());
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed(
                "expected three base64url parts separated by dots",
            ));
        };
        let header_json =
            b64::url_decode(header_b64).ok_or_else(|| malformed("the header is not base64url"))?;
        let payload = b64::url_decode(payload_b64)
            .ok_or_else(|| malformed("the payload is not base64url"))?;
        let signature = b64::url_decode(signature_b64)
            .ok_or_else(|| malformed("the signature is not base64url"))?;
        let header: Map<String, Value> = serde_json::from_slice(&header_json)
            .map_err(|e| AssertionError::BadHeader(e.to_string()))?;
        let algorithm = match header.get("alg").and_then(Value::as_str) {
            Some(alg) => Algorithm::from_name(alg)
                .ok_or_else(|| AssertionError::UnsupportedAlgorithm(shown(alg)))?,
            None => return Err(AssertionError::BadHeader("\"alg\" is missing".into())),
        };
        for member in ["jku", "x5u"] {
            if header.contains_key(member) {
                return Err(AssertionError::RemoteKey(member));
            }
        }
        if header.contains_key("crit") {
            return Err(AssertionError::BadHeader(
                "\"crit\" is set; no JWS extension is supported".into(),
            ));
        }
        if let Some(typ) = header.get("typ") {
            let typ = typ.as_str().unwrap_or_default().to_ascii_lowercase();
            if typ.ends_with("at+jwt") {
                return Err(AssertionError::AccessToken);
            }
        }
        let kid = header
            .get("kid")
            .and_then(Value::as_str)
            .map(|k| shown(k).to_string());
        let embedded = embedded_key(&header)?;
        let claims: Map<String, Value> = serde_json::from_slice(&payload)
            .map_err(|e| AssertionError::BadClaims(e.to_string()))?;
        Ok(UnverifiedAssertion {
            algorithm,
            kid,
            embedded,
            signed_len: header_b64.len() + 1 + payload_b64.len(),
            token: token.to_string(),
            signature,
            claims,
        })
    }

    /// The `iss` claim, UNVERIFIED: only to find which client the assertion claims to be from.
    pub fn claimed_issuer(&self) -> Option<&str> {
        self.claims.get("iss").and_then(Value::as_str)
    }

    /// The header's `kid`, if any (a lookup hint only).
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The key the header carries, if any: usable only when its thumbprint is registered.
    pub fn embedded_key(&self) -> Option<&EmbeddedKey> {
        self.embedded.as_ref()
    }

    /// Verifies the signature with `key` (a registered key); the algorithm comes from the key.
    pub fn verify(self, key: &PublicKey) -> Result<VerifiedAssertion, AssertionError> {
        let thumbprint = jwk::thumbprint(key);
        let verification = VerificationKey::from_public(key, "registered client key")
            .map_err(|e| AssertionError::BadEmbeddedKey(e.to_string()))?;
        if !verification.accepts(self.algorithm) {
            return Err(AssertionError::AlgorithmMismatch {
                alg: self.algorithm.as_str().into(),
                expected: verification.algorithms_text(),
            });
        }
        let signed = &self.token.as_bytes()[..self.signed_len];
        if self.signature.len() != verification.signature_len()
            || !crate::verify::ecdsa_in_range(self.algorithm, &self.signature)
            || !verification.verify(self.algorithm, signed, &self.signature)
        {
            return Err(AssertionError::BadSignature { thumbprint });
        }
        Ok(VerifiedAssertion {
            claims: self.claims,
        })
    }
}

impl VerifiedAssertion {
    /// RFC 7523 section 3: `iss` and `sub` are the client id (any spelling in `client_ids`, e.g.
    /// `Job` and `Job@host:port`; the first is the one named in messages), `aud` names this server (any of
    /// `audiences`: its token endpoint or its issuer), `exp` is in the future (or at most `leeway`
    /// seconds past) and at most `max_lifetime` seconds away, exactly (no leeway: the maximum is the
    /// documented setting), `nbf`/`iat` are not in the future (by more than `leeway`), `jti` is present.
    pub fn check(
        &self,
        client_ids: &[String],
        audiences: &[String],
        now: i64,
        leeway: i64,
        max_lifetime: i64,
    ) -> Result<AssertionClaims, AssertionError> {
        let client_id = client_ids.first().map_or("", String::as_str);
        for claim in ["iss", "sub"] {
            let value = self.string(claim)?;
            if !client_ids.iter().any(|c| c == value) {
                return Err(AssertionError::ClaimMismatch {
                    claim: if claim == "iss" { "iss" } else { "sub" },
                    found: format!("\"{}\"", shown(value)),
                    expected: format!("the client id \"{client_id}\""),
                });
            }
        }
        let aud: Vec<&str> = match self.claims.get("aud") {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            Some(_) => {
                return Err(AssertionError::ClaimMismatch {
                    claim: "aud",
                    found: "not a string".into(),
                    expected: "a string or an array of strings".into(),
                });
            }
            None => return Err(AssertionError::MissingClaim("aud")),
        };
        if !aud
            .iter()
            .any(|a| audiences.iter().any(|b| a.trim_end_matches('/') == b))
        {
            return Err(AssertionError::ClaimMismatch {
                claim: "aud",
                found: format!("{:?}", aud.iter().map(|a| shown(a)).collect::<Vec<_>>()),
                expected: format!("one of {audiences:?}"),
            });
        }
        let exp = self
            .date("exp")?
            .ok_or(AssertionError::MissingClaim("exp"))?;
        if now >= exp.saturating_add(leeway) {
            return Err(AssertionError::Expired { exp, now });
        }
        if exp > now.saturating_add(max_lifetime) {
            return Err(AssertionError::TooLong {
                exp,
                now,
                max: max_lifetime,
            });
        }
        for claim in ["nbf", "iat"] {
            if let Some(t) = self.date(claim)?
                && t > now.saturating_add(leeway)
            {
                return Err(AssertionError::NotYetValid { nbf: t, now });
            }
        }
        let jti = self.string("jti")?;
        if jti.is_empty() || jti.len() > 256 {
            return Err(AssertionError::ClaimMismatch {
                claim: "jti",
                found: format!("{} bytes", jti.len()),
                expected: "a unique identifier of 1 to 256 bytes".into(),
            });
        }
        Ok(AssertionClaims {
            jti: jti.to_string(),
            expires_at: exp,
        })
    }

    fn string(&self, claim: &'static str) -> Result<&str, AssertionError> {
        match self.claims.get(claim) {
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(AssertionError::ClaimMismatch {
                claim,
                found: "not a string".into(),
                expected: "a string".into(),
            }),
            None => Err(AssertionError::MissingClaim(claim)),
        }
    }

    fn date(&self, claim: &'static str) -> Result<Option<i64>, AssertionError> {
        match self.claims.get(claim) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
                .map(Some)
                .ok_or(AssertionError::ClaimMismatch {
                    claim,
                    found: n.to_string(),
                    expected: "a number of seconds since 1970".into(),
                }),
            Some(_) => Err(AssertionError::ClaimMismatch {
                claim,
                found: "not a number".into(),
                expected: "a number of seconds since 1970".into(),
            }),
        }
    }
}

fn embedded_key(header: &Map<String, Value>) -> Result<Option<EmbeddedKey>, AssertionError> {
    let bad = |d: String| AssertionError::BadEmbeddedKey(d);
    if let Some(value) = header.get("x5c") {
        let first = value
            .as_array()
            .and_then(|a| a.first())
            .and_then(Value::as_str)
            .ok_or_else(|| bad("\"x5c\" is not an array of base64 certificates".into()))?;
        let der = b64::std_decode(first).ok_or_else(|| bad("\"x5c\" is not base64".into()))?;
        let cert = Certificate::from_der("x5c", &der).map_err(|e| bad(e.to_string()))?;
        return Ok(Some(EmbeddedKey {
            thumbprint: jwk::thumbprint(cert.public_key()),
            certificate_thumbprint: Some(cert.x5t_s256()),
            certificate_sha1: Some(cert.sha1_hex()),
            public_key: cert.public_key().clone(),
        }));
    }
    if let Some(value) = header.get("jwk") {
        let entry: Jwk =
            serde_json::from_value(value.clone()).map_err(|e| bad(format!("\"jwk\": {e}")))?;
        if entry.kty == "oct" {
            return Err(bad("\"jwk\" is a symmetric key".into()));
        }
        let public = VerificationKey::public_key_of(&entry).map_err(|e| bad(e.to_string()))?;
        return Ok(Some(EmbeddedKey {
            thumbprint: jwk::thumbprint(&public),
            certificate_thumbprint: None,
            certificate_sha1: None,
            public_key: public,
        }));
    }
    Ok(None)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ids_devpki::{Ca, KeyKind};

    fn signer(kind: KeyKind) -> (AssertionSigner, PublicKey, Certificate) {
        let ca = Ca::new("test", 1).unwrap();
        let issued = ca.issue_signing("client", kind, 1).unwrap();
        let cert = Certificate::from_der("client", &issued.cert_der).unwrap();
        let key = SigningKey::from_pkcs8(&issued.key_pkcs8).unwrap();
        (
            AssertionSigner::new(key, cert.public_key()),
            cert.public_key().clone(),
            cert,
        )
    }

    const AUD: &str = "https://ids.example/connect/token";

    fn audiences() -> Vec<String> {
        vec![AUD.to_string(), "https://ids.example".to_string()]
    }

    #[test]
    fn round_trip_rsa_and_ec() {
        for kind in [KeyKind::Rsa2048, KeyKind::EcP256] {
            let (s, public, _) = signer(kind);
            let token = s.sign("Poller2", AUD, 1000).unwrap();
            let parsed = UnverifiedAssertion::parse(&token).unwrap();
            assert_eq!(parsed.claimed_issuer(), Some("Poller2"));
            let embedded = parsed.embedded_key().unwrap();
            assert_eq!(embedded.thumbprint, s.thumbprint());
            assert_eq!(embedded.public_key, public);
            let claims = parsed
                .verify(&public)
                .unwrap()
                .check(&["Poller2".to_string()], &audiences(), 1010, 30, 300)
                .unwrap();
            assert_eq!(claims.expires_at, 1000 + ASSERTION_LIFETIME_SECS);
            assert!(!claims.jti.is_empty());
        }
    }

    #[test]
    fn claims_are_checked() {
        let (s, public, _) = signer(KeyKind::EcP256);
        let check = |token: &str, client: &str, now: i64| {
            UnverifiedAssertion::parse(token)
                .unwrap()
                .verify(&public)
                .unwrap()
                .check(&[client.to_string()], &audiences(), now, 30, 300)
        };
        let token = s.sign("Poller2", AUD, 1000).unwrap();
        assert!(matches!(
            check(&token, "Job", 1000),
            Err(AssertionError::ClaimMismatch { claim: "iss", .. })
        ));
        assert!(matches!(
            check(&token, "Poller2", 1000 + ASSERTION_LIFETIME_SECS + 30),
            Err(AssertionError::Expired { .. })
        ));
        assert!(matches!(
            check(&token, "Poller2", 900),
            Err(AssertionError::NotYetValid { .. })
        ));
        let other = s.sign("Poller2", "https://elsewhere", 1000).unwrap();
        assert!(matches!(
            check(&other, "Poller2", 1000),
            Err(AssertionError::ClaimMismatch { claim: "aud", .. })
        ));
        // The issuer itself is an accepted audience (OIDC Core 9 allows either).
        let to_issuer = s.sign("Poller2", "https://ids.example", 1000).unwrap();
        assert!(check(&to_issuer, "Poller2", 1000).is_ok());
    }

    #[test]
    fn long_lived_and_forged_assertions_are_refused() {
        let (s, public, _) = signer(KeyKind::Rsa2048);
        let (_, other_public, _) = signer(KeyKind::Rsa2048);
        // Hand-made: exp an hour away (Authlib's default), accepted up to the configured lifetime only.
        let header = b64::url(br#"{"alg":"RS256","typ":"JWT"}"#);
        let claims = serde_json::json!({"iss":"c","sub":"c","aud":AUD,"jti":"x","exp":4600});
        let payload = b64::url(claims.to_string().as_bytes());
        let signing = format!("{header}.{payload}");
        let sig = s.key.sign(signing.as_bytes()).unwrap();
        let token = format!("{signing}.{}", b64::url(&sig));
        let verified = UnverifiedAssertion::parse(&token)
            .unwrap()
            .verify(&public)
            .unwrap();
        assert!(matches!(
            verified.check(&["c".to_string()], &audiences(), 1000, 30, 300),
            Err(AssertionError::TooLong { max: 300, .. })
        ));
        let claims = verified
            .check(
                &["c".to_string()],
                &audiences(),
                1000,
                30,
                DEFAULT_MAX_ASSERTION_LIFETIME_SECS,
            )
            .expect("a 1-hour assertion is accepted by default");
        assert_eq!(claims.expires_at, 4600);
        // ... also from a client whose clock runs up to a minute ahead of the server's.
        assert!(
            verified
                .check(
                    &["c".to_string()],
                    &audiences(),
                    1000 - 60,
                    30,
                    DEFAULT_MAX_ASSERTION_LIFETIME_SECS,
                )
                .is_ok()
        );
        assert!(matches!(
            verified.check(&["c".to_string()], &audiences(), 1000 - 100, 30, 3600),
            Err(AssertionError::TooLong { max: 3600, .. })
        ));
        // Another key's signature does not verify.
        let token = s.sign("c", AUD, 1000).unwrap();
        assert!(matches!(
            UnverifiedAssertion::parse(&token)
                .unwrap()
                .verify(&other_public),
            Err(AssertionError::BadSignature { .. })
        ));
        // An RSA-signed assertion is not checked with an EC key, whatever alg says.
        let (_, ec_public, _) = signer(KeyKind::EcP256);
        assert!(matches!(
            UnverifiedAssertion::parse(&token)
                .unwrap()
                .verify(&ec_public),
            Err(AssertionError::AlgorithmMismatch { .. })
        ));
    }

    /// Issue 14 point 10a: the longest accepted `exp` is now + max_lifetime exactly (it used to be
    /// 30 s more: the clock leeway was added on top).
    #[test]
    fn the_longest_accepted_lifetime_is_the_setting_exactly() {
        let (s, public, _) = signer(KeyKind::EcP256);
        let check = |lifetime: i64| {
            let token = s.sign_for("c", AUD, 1000, lifetime).unwrap();
            UnverifiedAssertion::parse(&token)
                .unwrap()
                .verify(&public)
                .unwrap()
                .check(&["c".to_string()], &audiences(), 1000, 30, 300)
        };
        assert_eq!(check(300).unwrap().expires_at, 1300);
        assert!(matches!(
            check(301),
            Err(AssertionError::TooLong {
                exp: 1301,
                now: 1000,
                max: 300
            })
        ));
        assert!(check(330).is_err());
    }

    #[test]
    fn header_policy() {
        let part = |v: serde_json::Value| b64::url(v.to_string().as_bytes());
        let body = part(serde_json::json!({"iss":"c"}));
        for (header, expected) in [
            (serde_json::json!({"alg":"none"}), "alg none"),
            (serde_json::json!({"alg":"HS256"}), "alg HS256"),
            (serde_json::json!({"alg":"RS256","jku":"https://x"}), "jku"),
            (serde_json::json!({"alg":"RS256","x5u":"https://x"}), "x5u"),
            (
                serde_json::json!({"alg":"RS256","typ":"at+jwt"}),
                "access token",
            ),
            (
                serde_json::json!({"alg":"RS256","jwk":{"kty":"oct","k":"AA"}}),
                "symmetric",
            ),
        ] {
            let token = format!("{}.{body}.AAAA", part(header));
            let err = UnverifiedAssertion::parse(&token).unwrap_err().to_string();
            assert!(err.contains(expected), "{err} should mention {expected}");
        }
        assert!(UnverifiedAssertion::parse("a.b").is_err());
        assert!(UnverifiedAssertion::parse(&"a".repeat(MAX_ASSERTION_LEN + 1)).is_err());
    }

    #[test]
    fn a_certificate_in_x5c_is_named_by_its_thumbprints() {
        let (_, _, cert) = signer(KeyKind::EcP256);
        let header = serde_json::json!({"alg":"ES256","x5c":[b64::std(cert.der())]});
        let token = format!(
            "{}.{}.AAAA",
            b64::url(header.to_string().as_bytes()),
            b64::url(b"{}")
        );
        let parsed = UnverifiedAssertion::parse(&token).unwrap();
        let embedded = parsed.embedded_key().unwrap();
        assert_eq!(embedded.thumbprint, jwk::thumbprint(cert.public_key()));
        assert_eq!(
            embedded.certificate_thumbprint.as_deref(),
            Some(cert.x5t_s256().as_str())
        );
    }
}
