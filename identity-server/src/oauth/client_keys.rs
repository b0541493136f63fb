//! Client authentication without a shared secret:
//! - `private_key_jwt` (RFC 7523, OpenID Connect Core section 9): an assertion signed with a key
//!   registered for the client (a file in the authorized-clients folder, or a `Thumbprints` entry plus
//!   the key the assertion carries), with a `jti` replay cache;
//! - `tls_client_auth` (RFC 8705 section 2.1): a TLS client certificate issued by a configured CA and
//!   mapped to the client by subject alternative name or subject;
//! - `self_signed_tls_client_auth` (RFC 8705 section 2.2): a TLS client certificate (or its key)
//!   whose thumbprint is registered for the client.
//!
//! Every refusal carries a [`KeyRejection`] for the server log, with the thumbprint the client
//! presented, so an operator can register it; the client itself only sees `invalid_client`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ids_crypto::cert::{SubjectAltName, Validity};
use ids_crypto::jwt::assertion::{AssertionError, UnverifiedAssertion};
use ids_crypto::{Certificate, PublicKey, jwk};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;

use crate::access_control::RegisteredClient;
use crate::authorized_clients::AuthorizedKey;

/// Why key or certificate authentication failed (server log only).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRejection {
    #[error(
        "the presented key {presented} is not registered for this client (add it to Thumbprints in the XML or to the authorized-clients folder)"
    )]
    UnregisteredKey { presented: String },
    #[error("{0}")]
    Assertion(#[from] AssertionError),
    #[error("no client certificate was presented and no other credentials were sent")]
    NoCredentials,
    #[error(
        "the client certificate (subject `{subject}`, x5t#S256 {x5t_s256}, key thumbprint {thumbprint}) is not registered for this client: {reason}"
    )]
    CertificateNotRegistered {
        subject: String,
        x5t_s256: String,
        thumbprint: String,
        reason: String,
    },
    #[error("the client certificate cannot be read: {0}")]
    BadCertificate(String),
    #[error("the client certificate (x5t#S256 {x5t_s256}) expired or is not valid yet")]
    CertificateOutOfValidity { x5t_s256: String },
    #[error("the replay cache is full; retry later")]
    ReplayCacheFull,
}

/// Remembers the `jti` of accepted assertions until they expire, so each is used once (RFC 7523
/// section 3, item 7). In memory by default; a shared implementation lets several servers refuse a
/// replay across them.
pub trait ReplayCache: Send + Sync + std::fmt::Debug {
    /// Records `(client_id, jti)` until `expires_at` (Unix seconds). `Ok(false)` when it was already
    /// recorded (a replay). An error refuses the assertion (fail closed).
    fn first_use(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, KeyRejection>;
}

/// A bounded in-memory [`ReplayCache`]. Entries are only added after a signature verified, so only
/// registered clients can fill it; when it is full of live entries new assertions are refused until
/// some expire (at most [`ids_crypto::jwt::assertion::MAX_ASSERTION_LIFETIME_SECS`] later).
#[derive(Debug)]
pub struct MemoryReplayCache {
    capacity: usize,
    seen: Mutex<HashMap<(String, String), i64>>,
}

impl MemoryReplayCache {
    pub fn new(capacity: usize) -> Self {
        MemoryReplayCache {
            capacity: capacity.max(1),
            seen: Mutex::new(HashMap::new()),
        }
    }
}

impl ReplayCache for MemoryReplayCache {
    fn first_use(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, KeyRejection> {
        let Ok(mut seen) = self.seen.lock() else {
            return Err(KeyRejection::ReplayCacheFull);
        };
        let key = (client_id.to_string(), jti.to_string());
        if seen.get(&key).is_some_and(|exp| *exp + LEEWAY >= now) {
            return Ok(false);
        }
        if seen.len() >= self.capacity {
            seen.retain(|_, exp| *exp + LEEWAY >= now);
            if seen.len() >= self.capacity {
                return Err(KeyRejection::ReplayCacheFull);
            }
        }
        seen.insert(key, expires_at);
        Ok(true)
    }
}

/// Clock leeway for assertions, seconds.
pub const LEEWAY: i64 = 30;

/// Verifies a `private_key_jwt` assertion for `client`. `keys` are the client's keys from the
/// authorized-clients folder; `audiences` the values `aud` may take (token endpoint URLs, issuer).
pub fn authenticate_assertion(
    assertion: UnverifiedAssertion,
    client: &RegisteredClient,
    keys: &[AuthorizedKey],
    audiences: &[String],
    replay: &dyn ReplayCache,
    now: i64,
) -> Result<(), KeyRejection> {
    let public = registered_key(&assertion, client, keys)?;
    let verified = assertion.verify(&public)?;
    let claims = verified.check(&client.identifier, audiences, now, LEEWAY)?;
    if !replay.first_use(&client.identifier, &claims.jti, claims.expires_at, now)? {
        return Err(AssertionError::Replayed(claims.jti).into());
    }
    Ok(())
}

/// The registered key an assertion must verify with: the key in its header when that key's thumbprint
/// (or its certificate's) is registered, else the folder key its `kid` names, else the only folder key.
fn registered_key(
    assertion: &UnverifiedAssertion,
    client: &RegisteredClient,
    keys: &[AuthorizedKey],
) -> Result<PublicKey, KeyRejection> {
    if let Some(embedded) = assertion.embedded_key() {
        let names = std::iter::once(embedded.thumbprint.as_str())
            .chain(embedded.certificate_thumbprint.as_deref());
        for name in names {
            if client.thumbprints.iter().any(|t| t == name)
                || keys.iter().any(|k| k.answers_to(name))
            {
                return Ok(embedded.public_key.clone());
            }
        }
        return Err(KeyRejection::UnregisteredKey {
            presented: embedded.thumbprint.clone(),
        });
    }
    if let Some(kid) = assertion.kid() {
        if let Some(key) = keys.iter().find(|k| k.answers_to(kid)) {
            return Ok(key.public_key.clone());
        }
        return Err(KeyRejection::UnregisteredKey {
            presented: format!("kid {kid}"),
        });
    }
    match keys {
        [only] => Ok(only.public_key.clone()),
        _ => Err(KeyRejection::UnregisteredKey {
            presented: "(no kid and no key in the assertion header)".into(),
        }),
    }
}

/// The certificate chain a client presented in the TLS handshake, leaf first.
#[derive(Debug, Clone)]
pub struct PresentedCertificate {
    pub chain: Vec<Vec<u8>>,
}

impl PresentedCertificate {
    pub fn leaf(&self) -> Option<&[u8]> {
        self.chain.first().map(Vec::as_slice)
    }

    /// `x5t#S256` of the leaf: what a bound token's `cnf` carries.
    pub fn x5t_s256(&self) -> Option<String> {
        self.leaf().map(|der| {
            ids_crypto::b64::url(
                aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der).as_ref(),
            )
        })
    }
}

/// The CAs whose certificates `tls_client_auth` accepts.
#[derive(Debug, Clone)]
pub struct ClientAuthorities {
    verifier: Arc<dyn ClientCertVerifier>,
}

impl ClientAuthorities {
    /// A webpki verifier over `cas` (client-auth usage, validity, chain).
    pub fn new(cas: &[Certificate]) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore::empty();
        for ca in cas {
            roots
                .add(CertificateDer::from(ca.der().to_vec()))
                .map_err(|e| format!("CA certificate `{}`: {e}", ca.subject()))?;
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        )
        .build()
        .map_err(|e| e.to_string())?;
        Ok(ClientAuthorities { verifier })
    }

    /// Whether `chain` is issued by one of the CAs for client authentication, at `now`.
    fn verify(&self, chain: &[Vec<u8>], now: i64) -> Result<(), String> {
        let Some((leaf, rest)) = chain.split_first() else {
            return Err("no certificate".into());
        };
        let leaf = CertificateDer::from(leaf.as_slice());
        let intermediates: Vec<CertificateDer<'_>> = rest
            .iter()
            .map(|c| CertificateDer::from(c.as_slice()))
            .collect();
        let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            u64::try_from(now).unwrap_or(0),
        ));
        self.verifier
            .verify_client_cert(&leaf, &intermediates, now)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// `tls_client_auth` or `self_signed_tls_client_auth` for `client` with the presented certificate.
pub fn authenticate_certificate(
    presented: &PresentedCertificate,
    client: &RegisteredClient,
    keys: &[AuthorizedKey],
    authorities: Option<&ClientAuthorities>,
    now: i64,
) -> Result<(), KeyRejection> {
    let Some(leaf) = presented.leaf() else {
        return Err(KeyRejection::NoCredentials);
    };
    let cert = Certificate::from_der("client certificate", leaf)
        .map_err(|e| KeyRejection::BadCertificate(e.to_string()))?;
    let x5t_s256 = cert.x5t_s256();
    let thumbprint = jwk::thumbprint(cert.public_key());
    // self_signed_tls_client_auth: the certificate or its key is registered as it is.
    let names = [x5t_s256.as_str(), thumbprint.as_str()];
    let sha1 = cert.sha1_hex();
    let pinned = names
        .iter()
        .chain(std::iter::once(&sha1.as_str()))
        .any(|n| client.thumbprints.iter().any(|t| t == n) || keys.iter().any(|k| k.answers_to(n)));
    if pinned {
        if cert.validity_at(now) != Validity::Valid {
            return Err(KeyRejection::CertificateOutOfValidity { x5t_s256 });
        }
        return Ok(());
    }
    // tls_client_auth: issued by a configured CA and mapped to this client.
    let not_registered = |reason: String| KeyRejection::CertificateNotRegistered {
        subject: cert.subject().to_string(),
        x5t_s256: x5t_s256.clone(),
        thumbprint: thumbprint.clone(),
        reason,
    };
    let Some(authorities) = authorities else {
        return Err(not_registered(
            "its thumbprint is not registered and no IdentityServer:ClientCertificateAuthorities is configured".into(),
        ));
    };
    authorities.verify(&presented.chain, now).map_err(|e| {
        not_registered(format!(
            "its thumbprint is not registered and it is not issued by IdentityServer:ClientCertificateAuthorities ({e})"
        ))
    })?;
    if maps_to(&cert, client) {
        Ok(())
    } else {
        Err(not_registered(format!(
            "it is issued by a trusted CA but names {} instead of the client `{}` ({})",
            describe_names(&cert),
            client.identifier,
            expected_names(client)
        )))
    }
}

/// RFC 8705 section 2.1.2: the certificate must carry the registered subject or SAN. Without an
/// explicit registration, a SAN (DNS, URI or email) equal to the client id, or the URI
/// `urn:ids:client:<client id>` that `ids-keytool client` writes, maps it.
fn maps_to(cert: &Certificate, client: &RegisteredClient) -> bool {
    if let Some(dn) = &client.tls_subject_dn {
        return normalize_dn(cert.subject()) == normalize_dn(dn);
    }
    let sans = cert.subject_alt_names();
    if let Some(expected) = &client.tls_san {
        return sans
            .iter()
            .any(|s| san_value(s).eq_ignore_ascii_case(expected.trim()));
    }
    let urn = format!("urn:ids:client:{}", client.identifier);
    sans.iter().any(|s| match s {
        SubjectAltName::Dns(v) | SubjectAltName::Email(v) => {
            v.eq_ignore_ascii_case(&client.identifier)
        }
        SubjectAltName::Uri(v) => v == &urn || v == &client.identifier,
        SubjectAltName::Ip(_) => false,
    })
}

fn san_value(san: &SubjectAltName) -> String {
    match san {
        SubjectAltName::Dns(v) | SubjectAltName::Uri(v) | SubjectAltName::Email(v) => v.clone(),
        SubjectAltName::Ip(ip) => ip.to_string(),
    }
}

/// `CN=a, O=b` and `CN=a,O=b` compare equal; attribute names are case-insensitive.
fn normalize_dn(dn: &str) -> String {
    dn.split(',')
        .map(|part| match part.split_once('=') {
            Some((k, v)) => format!("{}={}", k.trim().to_ascii_uppercase(), v.trim()),
            None => part.trim().to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn describe_names(cert: &Certificate) -> String {
    let sans: Vec<String> = cert
        .subject_alt_names()
        .iter()
        .map(ToString::to_string)
        .collect();
    if sans.is_empty() {
        format!("subject `{}` and no SAN", cert.subject())
    } else {
        format!("SAN {}", sans.join(", "))
    }
}

fn expected_names(client: &RegisteredClient) -> String {
    match (&client.tls_subject_dn, &client.tls_san) {
        (Some(dn), _) => format!("TlsClientAuthSubjectDn is `{dn}`"),
        (None, Some(san)) => format!("TlsClientAuthSan is `{san}`"),
        (None, None) => format!(
            "expected a SAN DNS:{id} or URI:urn:ids:client:{id}, or set TlsClientAuthSan / TlsClientAuthSubjectDn on the OpenIdClient",
            id = client.identifier
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ids_crypto::devcerts::{Ca, KeyKind};

    fn client(id: &str) -> RegisteredClient {
        RegisteredClient {
            identifier: id.into(),
            hash: None,
            hash_fingerprint: [0; 32],
            profile: None,
            display_name: None,
            expires_at: None,
            thumbprints: Vec::new(),
            tls_subject_dn: None,
            tls_san: None,
        }
    }

    #[test]
    fn replay_cache_refuses_a_second_use_until_expiry_and_stays_bounded() {
        let cache = MemoryReplayCache::new(2);
        assert!(cache.first_use("a", "1", 100, 50).unwrap());
        assert!(!cache.first_use("a", "1", 100, 60).unwrap());
        // Same jti for another client is another assertion.
        assert!(cache.first_use("b", "1", 100, 60).unwrap());
        // Full of live entries: fail closed.
        assert_eq!(
            cache.first_use("c", "1", 100, 60),
            Err(KeyRejection::ReplayCacheFull)
        );
        // Once expired (plus leeway), entries make room.
        assert!(cache.first_use("c", "1", 300, 100 + LEEWAY + 1).unwrap());
    }

    #[test]
    fn ca_issued_certificates_map_by_san_or_subject_and_others_are_refused() {
        let ca = Ca::new("client CA", 1).unwrap();
        let other_ca = Ca::new("other CA", 1).unwrap();
        let authorities =
            ClientAuthorities::new(&[Certificate::from_der("ca", &ca.cert.cert_der).unwrap()])
                .unwrap();
        let now = crate::unix_now();
        let issued = ca.issue_client("Poller", KeyKind::EcP256, 1).unwrap();
        let presented = PresentedCertificate {
            chain: vec![issued.cert_der.clone()],
        };
        assert_eq!(
            authenticate_certificate(&presented, &client("Poller"), &[], Some(&authorities), now),
            Ok(())
        );
        // Signed by the CA but not for this client.
        let err =
            authenticate_certificate(&presented, &client("Job"), &[], Some(&authorities), now)
                .unwrap_err()
                .to_string();
        assert!(err.contains("urn:ids:client:Job"), "{err}");
        // An explicit subject mapping replaces the default.
        let mut by_dn = client("Job");
        by_dn.tls_subject_dn = Some("CN = Poller".into());
        assert_eq!(
            authenticate_certificate(&presented, &by_dn, &[], Some(&authorities), now),
            Ok(())
        );
        // Another CA's certificate is refused, unless its thumbprint is registered (self-signed mode).
        let foreign = other_ca.issue_client("Poller", KeyKind::EcP256, 1).unwrap();
        let foreign = PresentedCertificate {
            chain: vec![foreign.cert_der],
        };
        assert!(
            authenticate_certificate(&foreign, &client("Poller"), &[], Some(&authorities), now)
                .is_err()
        );
        let mut pinned = client("Poller");
        pinned.thumbprints = vec![foreign.x5t_s256().unwrap()];
        assert_eq!(
            authenticate_certificate(&foreign, &pinned, &[], Some(&authorities), now),
            Ok(())
        );
    }
}
