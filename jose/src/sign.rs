//! JWT signing for access tokens (RFC 9068): header `typ: at+jwt`, `kid`, `x5t`.
//!
//! The key is parsed once; signing is one hash and one RSA/ECDSA/EdDSA operation per token.

use serde::Serialize;

use ids_pki::keys::KeyError;
use ids_pki::{Certificate, SigningKey, b64, jwk};

/// Signs access tokens with the server's certificate key.
#[derive(Debug)]
pub struct TokenSigner {
    key: SigningKey,
    kid: String,
    /// Pre-encoded `base64url(header) + "."`.
    header_prefix: String,
}

#[derive(Serialize)]
struct Header<'a> {
    alg: &'a str,
    typ: &'a str,
    kid: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    x5t: Option<&'a str>,
}

impl TokenSigner {
    /// Builds a signer for `key`, whose certificate is `cert`.
    pub fn new(key: SigningKey, cert: &Certificate) -> Self {
        Self::for_public_key(key, cert.public_key(), Some(cert.x5t()))
    }

    /// Builds a signer for `key`, whose public key is `public`, without a certificate (a key the
    /// server made itself): the header has no `x5t` unless one is given.
    pub fn for_public_key(
        key: SigningKey,
        public: &ids_pki::PublicKey,
        x5t: Option<String>,
    ) -> Self {
        let kid = jwk::thumbprint(public);
        let header = Header {
            alg: key.algorithm().as_str(),
            typ: "at+jwt",
            kid: &kid,
            x5t: x5t.as_deref(),
        };
        // Serializing a struct of strings cannot fail.
        let header_json = serde_json::to_vec(&header).unwrap_or_default();
        let header_prefix = format!("{}.", b64::url(&header_json));
        TokenSigner {
            key,
            kid,
            header_prefix,
        }
    }

    /// The `kid` put in every token header (the RFC 7638 thumbprint of the public key).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn algorithm(&self) -> ids_pki::Algorithm {
        self.key.algorithm()
    }

    /// Signs `message` with the key (for other JWS the server makes: introspection responses).
    pub fn sign_raw(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        self.key.sign(message)
    }

    /// Returns the compact JWS of `claims`.
    pub fn sign<C: Serialize>(&self, claims: &C) -> Result<String, KeyError> {
        let payload = serde_json::to_vec(claims).map_err(|_| KeyError::Sign)?;
        let mut token = String::with_capacity(self.header_prefix.len() + payload.len() * 2 + 400);
        token.push_str(&self.header_prefix);
        token.push_str(&b64::url(&payload));
        let signature = self.key.sign(token.as_bytes())?;
        token.push('.');
        token.push_str(&b64::url(&signature));
        Ok(token)
    }
}
