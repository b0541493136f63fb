//! JSON Web Keys (RFC 7517) as the JWKS endpoint publishes them, and RFC 7638 thumbprints.

use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};

use crate::{Certificate, PublicKey, b64};

/// One JWKS entry. Members follow RFC 7517/7518; `x5c` carries the certificate so clients can pin it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Jwk {
    pub kty: String,
    #[serde(rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x5t: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x5c: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
}

impl Jwk {
    /// The public JWK of `key`, without certificate members.
    pub fn from_public_key(key: &PublicKey) -> Self {
        let mut jwk = Jwk {
            kty: String::new(),
            use_: None,
            kid: None,
            x5t: None,
            e: None,
            n: None,
            crv: None,
            x: None,
            y: None,
            x5c: None,
            alg: None,
        };
        match key {
            PublicKey::Rsa { n, e } => {
                jwk.kty = "RSA".into();
                jwk.n = Some(b64::url(n));
                jwk.e = Some(b64::url(e));
                jwk.alg = Some("RS256".into());
            }
            PublicKey::P256 { x, y } | PublicKey::P384 { x, y } => {
                let p256 = matches!(key, PublicKey::P256 { .. });
                jwk.kty = "EC".into();
                jwk.crv = Some(if p256 { "P-256" } else { "P-384" }.into());
                jwk.x = Some(b64::url(x));
                jwk.y = Some(b64::url(y));
                jwk.alg = Some(if p256 { "ES256" } else { "ES384" }.into());
            }
            PublicKey::Ed25519 { x } => {
                // RFC 8037 section 2.
                jwk.kty = "OKP".into();
                jwk.crv = Some("Ed25519".into());
                jwk.x = Some(b64::url(x));
                jwk.alg = Some("EdDSA".into());
            }
        }
        jwk
    }

    /// The signature-verification JWK of a certificate: `kid` is the RFC 7638 thumbprint, `x5t` the
    /// SHA-1 certificate thumbprint, `x5c` the certificate itself.
    pub fn from_certificate(cert: &Certificate) -> Self {
        let mut jwk = Self::from_public_key(cert.public_key());
        jwk.use_ = Some("sig".into());
        jwk.kid = Some(thumbprint(cert.public_key()));
        jwk.x5t = Some(cert.x5t());
        jwk.x5c = Some(vec![b64::std(cert.der())]);
        jwk
    }
}

/// RFC 7638 JWK thumbprint: SHA-256 over the required members in lexicographic order, base64url.
pub fn thumbprint(key: &PublicKey) -> String {
    let canonical = match key {
        PublicKey::Rsa { n, e } => {
            format!(
                r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                b64::url(e),
                b64::url(n)
            )
        }
        PublicKey::P256 { x, y } => format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            b64::url(x),
            b64::url(y)
        ),
        PublicKey::P384 { x, y } => format!(
            r#"{{"crv":"P-384","kty":"EC","x":"{}","y":"{}"}}"#,
            b64::url(x),
            b64::url(y)
        ),
        // RFC 8037 section 2 and appendix A.3.
        PublicKey::Ed25519 { x } => {
            format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, b64::url(x))
        }
    };
    b64::url(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref())
}

/// A thumbprint as an operator may paste it, in the form it is compared in: base64url without
/// padding for a SHA-256 value in base64 (an RFC 7638 key thumbprint or a certificate's `x5t#S256`;
/// padding and the standard alphabet are accepted), upper-case hex for a certificate's SHA-1 or
/// SHA-256 thumbprint in hex (separators, white space and the invisible marks Windows' certificate
/// dialog copies are dropped). `None` when it is none of these.
pub fn canonical_thumbprint(value: &str) -> Option<String> {
    let compact: String = value
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, ':' | '\u{200e}' | '\u{200f}' | '\u{feff}'))
        .collect();
    if matches!(compact.len(), 40 | 64) && compact.chars().all(|c| c.is_ascii_hexdigit()) {
        return Some(compact.to_ascii_uppercase());
    }
    let base64url = crate::b64::url_alphabet(&compact);
    (base64url.len() == 43
        && base64url
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
    .then_some(base64url)
}
