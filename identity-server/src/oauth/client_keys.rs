//! Client authentication without a shared secret:
//! - `private_key_jwt` (RFC 7523, OpenID Connect Core section 9): an assertion signed with a key
//!   registered for the client (a file in the authorized-clients folder, or a `Thumbprints` entry plus
//!   the key the assertion carries), with a `jti` replay cache;
//! - `tls_client_auth` (RFC 8705 section 2.1): a TLS client certificate issued by a configured CA and
//!   mapped to the client by subject alternative name or subject. X.509 v1 certificates (no
//!   extensions: what `openssl x509 -req` writes without an extension file), which webpki refuses,
//!   are checked here when issued directly by a configured CA, and mapped by subject;
//! - `self_signed_tls_client_auth` (RFC 8705 section 2.2): a TLS client certificate (or its key)
//!   whose thumbprint is registered for the client.
//!
//! Every refusal carries a [`KeyRejection`] for the server log, with the thumbprint the client
//! presented, so an operator can register it; the client itself only sees `invalid_client`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ids_jose::assertion::{AssertionError, UnverifiedAssertion};
use ids_pki::cert::{SubjectAltName, Validity, format_time};
use ids_pki::{Certificate, PublicKey, jwk};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;

use crate::access_control::RegisteredClient;
use crate::authorized_clients::AuthorizedKey;
use crate::tls::{LogOnce, loggable, one_line};

/// Why key or certificate authentication failed (server log only).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRejection {
    #[error(
        "the presented key {presented} is not registered for this client (add it to Thumbprints in the XML or to the authorized-clients folder)"
    )]
    UnregisteredKey { presented: String },
    #[error(
        "the client is registered by Thumbprints only and the assertion carries no key (no `jwk` or `x5c` header; {presented}): a thumbprint can only check a key the assertion carries, which most client libraries do not send; put the client's public key or certificate in the authorized-clients folder (AccessControl:AuthorizedClientsPath, as `{client}.pem`) instead"
    )]
    ThumbprintWithoutKey { client: String, presented: String },
    #[error("{0}")]
    Assertion(#[from] AssertionError),
    #[error("no client certificate was presented and no other credentials were sent")]
    NoCredentials,
    #[error(
        "the client certificate (subject `{subject}`, issuer `{issuer}`, x5t#S256 {x5t_s256}, key thumbprint {thumbprint}) is not registered for this client: {reason}"
    )]
    CertificateNotRegistered {
        subject: String,
        issuer: String,
        x5t_s256: String,
        thumbprint: String,
        reason: String,
    },
    #[error("the client certificate cannot be read: {0}")]
    BadCertificate(String),
    #[error(
        "the client certificate (subject `{subject}`, issuer `{issuer}`, x5t#S256 {x5t_s256}) expired or is not valid yet"
    )]
    CertificateOutOfValidity {
        subject: String,
        issuer: String,
        x5t_s256: String,
    },
    #[error(
        "too many assertions from this client within their lifetime (replay cache share full); retry later"
    )]
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

    /// Called once when the server stops gracefully: writes out what is not durable yet. Nothing
    /// to do for a cache that keeps nothing beyond the process.
    fn shutdown(&self) {}
}

/// A bounded in-memory [`ReplayCache`]. Entries are only added after a signature verified, so only
/// registered clients can fill it, and each client only its own share (`per_client`): a client that
/// sends more assertions than its share within their lifetime gets `temporarily_unavailable`, the
/// others are not affected. Expired entries are purged when a limit is reached.
#[derive(Debug)]
pub struct MemoryReplayCache {
    capacity: usize,
    per_client: usize,
    state: Mutex<ReplayState>,
}

/// Entries are keyed by SHA-256(client id, jti) truncated to 128 bits: 40 bytes each whatever the sizes
/// of the strings (41 with the map's control byte); a million live assertions fill 2^21 buckets, ~86 MiB
/// (docs/performance.md, "Replay cache").
#[derive(Debug, Default)]
struct ReplayState {
    seen: HashMap<[u8; 16], (i64, Arc<str>)>,
    per_client: HashMap<Arc<str>, usize>,
    /// When expired entries were last purged: a purge walks the whole map under the lock, so it runs
    /// at most once a second (a client at the end of its share is refused meanwhile, never let through).
    last_purge: Option<i64>,
}

impl ReplayState {
    fn purge(&mut self, now: i64) {
        self.seen.retain(|_, (exp, _)| *exp + LEEWAY >= now);
        self.per_client.clear();
        for (_, client) in self.seen.values() {
            *self.per_client.entry(client.clone()).or_default() += 1;
        }
    }
}

/// The key an assertion is remembered by: SHA-256 of (client id, jti), truncated to 128 bits.
pub(crate) fn replay_key(client_id: &str, jti: &str) -> [u8; 16] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(&(client_id.len() as u64).to_be_bytes());
    ctx.update(client_id.as_bytes());
    ctx.update(jti.as_bytes());
    let mut key = [0u8; 16];
    key.copy_from_slice(&ctx.finish().as_ref()[..16]);
    key
}

impl MemoryReplayCache {
    /// At most `capacity` live entries in all, `per_client` for one client.
    pub fn new(capacity: usize, per_client: usize) -> Self {
        MemoryReplayCache {
            capacity: capacity.max(1),
            per_client: per_client.clamp(1, capacity.max(1)),
            state: Mutex::new(ReplayState::default()),
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
        self.insert(replay_key(client_id, jti), client_id, expires_at, now)
    }
}

impl MemoryReplayCache {
    /// [`ReplayCache::first_use`] by key.
    pub(crate) fn insert(
        &self,
        key: [u8; 16],
        client_id: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, KeyRejection> {
        let Ok(mut state) = self.state.lock() else {
            return Err(KeyRejection::ReplayCacheFull);
        };
        if state
            .seen
            .get(&key)
            .is_some_and(|(exp, _)| *exp + LEEWAY >= now)
        {
            return Ok(false);
        }
        let full = |s: &ReplayState| {
            s.seen.len() >= self.capacity
                || s.per_client.get(client_id).copied().unwrap_or(0) >= self.per_client
        };
        if full(&state) {
            if state.last_purge.is_some_and(|t| t >= now) {
                return Err(KeyRejection::ReplayCacheFull);
            }
            state.purge(now);
            state.last_purge = Some(now);
            if full(&state) {
                return Err(KeyRejection::ReplayCacheFull);
            }
        }
        let client: Arc<str> = match state.per_client.get_key_value(client_id) {
            Some((k, _)) => k.clone(),
            None => Arc::from(client_id),
        };
        if state
            .seen
            .insert(key, (expires_at, client.clone()))
            .is_none()
        {
            *state.per_client.entry(client).or_default() += 1;
        }
        Ok(true)
    }

    /// Puts back an entry remembered before a restart, when it is still live at `now` and there is
    /// room (the shares were respected when it was first recorded). Whether it was put back.
    pub(crate) fn restore(
        &self,
        key: [u8; 16],
        client_id: &str,
        expires_at: i64,
        now: i64,
    ) -> bool {
        if expires_at.saturating_add(LEEWAY) < now {
            return false;
        }
        let Ok(mut state) = self.state.lock() else {
            return false;
        };
        if state.seen.contains_key(&key) || state.seen.len() >= self.capacity {
            return false;
        }
        let client: Arc<str> = match state.per_client.get_key_value(client_id) {
            Some((k, _)) => k.clone(),
            None => Arc::from(client_id),
        };
        state.seen.insert(key, (expires_at, client.clone()));
        *state.per_client.entry(client).or_default() += 1;
        true
    }

    /// Number of entries held (live or not yet purged).
    pub fn len(&self) -> usize {
        self.state.lock().map(|s| s.seen.len()).unwrap_or(0)
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Clock leeway for assertions, seconds.
pub const LEEWAY: i64 = 30;

/// What every assertion is checked against.
#[derive(Debug, Clone, Copy)]
pub struct AssertionPolicy<'a> {
    /// The values `aud` may take (token endpoint URLs, issuer).
    pub audiences: &'a [String],
    /// The `jti`s already used.
    pub replay: &'a dyn ReplayCache,
    /// `IdentityServer:MaxClientAssertionLifetimeSeconds`.
    pub max_lifetime: i64,
}

/// Verifies a `private_key_jwt` assertion for `client` (`spellings`: other accepted forms of its id in
/// `iss`/`sub`, such as `Job@host:port`). `keys` are the client's keys from the
/// authorized-clients folder.
pub fn authenticate_assertion(
    assertion: UnverifiedAssertion,
    client: &RegisteredClient,
    spellings: &[String],
    keys: &[AuthorizedKey],
    policy: AssertionPolicy<'_>,
    now: i64,
) -> Result<(), KeyRejection> {
    let public = registered_key(&assertion, client, keys)?;
    let verified = assertion.verify(&public)?;
    let mut names = vec![client.identifier.clone()];
    names.extend(spellings.iter().cloned());
    let claims = verified.check(&names, policy.audiences, now, LEEWAY, policy.max_lifetime)?;
    if !policy
        .replay
        .first_use(&client.identifier, &claims.jti, claims.expires_at, now)?
    {
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
            .chain(embedded.certificate_thumbprint.as_deref())
            .chain(embedded.certificate_sha1.as_deref());
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
    if keys.is_empty() && !client.thumbprints.is_empty() {
        return Err(KeyRejection::ThumbprintWithoutKey {
            client: client.identifier.clone(),
            presented: assertion
                .kid()
                .map_or_else(|| "no kid".to_string(), |kid| format!("kid {kid}")),
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
        self.leaf().map(ids_pki::cert::x5t_s256)
    }
}

/// How many accepted X.509 v1 certificates are remembered, to warn about each once.
const REMEMBERED_V1_CERTIFICATES: usize = 1024;

/// The CAs whose certificates `tls_client_auth` accepts.
#[derive(Debug, Clone)]
pub struct ClientAuthorities {
    verifier: Arc<dyn ClientCertVerifier>,
    cas: Arc<[Certificate]>,
    algorithms: WebPkiSupportedAlgorithms,
    v1_warnings: Arc<LogOnce>,
}

/// How a presented certificate was found to be issued by one of the CAs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Issued {
    /// webpki verified the chain (v3 certificates).
    Chain,
    /// An X.509 v1 leaf signed by this CA (subject), verified by [`ClientAuthorities::verify_v1`].
    V1 { ca: String },
}

impl ClientAuthorities {
    /// A webpki verifier over `cas` (client-auth usage, validity, chain). An X.509 v1 certificate
    /// cannot be a CA (it has no basicConstraints), and is refused.
    pub fn new(cas: &[Certificate]) -> Result<Self, String> {
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let mut roots = rustls::RootCertStore::empty();
        for ca in cas {
            if ca.version() < 3 {
                return Err(format!(
                    "CA certificate `{}` is an X.509 v{} certificate, which cannot be a CA",
                    ca.subject(),
                    ca.version()
                ));
            }
            roots
                .add(CertificateDer::from(ca.der().to_vec()))
                .map_err(|e| format!("CA certificate `{}`: {e}", ca.subject()))?;
        }
        let algorithms = provider.signature_verification_algorithms;
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(provider),
        )
        .build()
        .map_err(|e| e.to_string())?;
        Ok(ClientAuthorities {
            verifier,
            cas: cas.into(),
            algorithms,
            v1_warnings: Arc::new(LogOnce::new(
                REMEMBERED_V1_CERTIFICATES,
                "X.509 v1 client certificates accepted",
            )),
        })
    }

    /// Whether `leaf` (the first of `chain`) is issued by one of the CAs for client authentication, at
    /// `now`. The error completes "its thumbprint is not registered and ...".
    fn verify(&self, leaf: &Certificate, chain: &[Vec<u8>], now: i64) -> Result<Issued, String> {
        if leaf.version() < 3 {
            return self.verify_v1(leaf, now).map(|ca| Issued::V1 { ca });
        }
        let Some((leaf, rest)) = chain.split_first() else {
            return Err("no certificate was presented".into());
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
            .map(|_| Issued::Chain)
            .map_err(|e| {
                format!("it is not issued by IdentityServer:ClientCertificateAuthorities ({e})")
            })
    }

    /// An X.509 v1 leaf (`openssl x509 -req` without an extension file), which webpki refuses: it must
    /// be signed directly by one of the CAs (its issuer name is the CA's subject, byte for byte, and
    /// the CA's key verifies its signature), the CA must be a v3 certificate with `basicConstraints
    /// CA:TRUE` and without name constraints (a v1 certificate has no SAN to check them against), and
    /// the leaf must be valid at `now`. Intermediates are not considered: a v1 leaf has no authority
    /// key identifier to find them by, and the seed recipes issue from the root. Returns the CA's subject.
    fn verify_v1(&self, leaf: &Certificate, now: i64) -> Result<String, String> {
        let named: Vec<&Certificate> = self
            .cas
            .iter()
            .filter(|ca| ca.subject_der() == leaf.issuer_der())
            .collect();
        if named.is_empty() {
            return Err(format!(
                "it is not issued by IdentityServer:ClientCertificateAuthorities (an X.509 v1 certificate whose issuer `{}` is not the subject of any of them; intermediate CAs are not considered for v1 certificates)",
                leaf.issuer()
            ));
        }
        let mut refusals = Vec::new();
        for ca in named {
            // A v1 certificate has no basicConstraints: never a CA.
            if !ca.is_ca() {
                refusals.push(format!(
                    "`{}` is not a v3 CA certificate (basicConstraints CA:TRUE)",
                    ca.subject()
                ));
            } else if ca.has_name_constraints() {
                refusals.push(format!(
                    "the CA `{}` has name constraints, which an X.509 v1 certificate (no SAN) cannot be checked against",
                    ca.subject()
                ));
            } else if let Err(e) = crate::tls::verify_signed_by(leaf, ca, &self.algorithms) {
                refusals.push(e.to_string());
            } else {
                return match leaf.validity_at(now) {
                    Validity::Valid => Ok(ca.subject().to_string()),
                    Validity::Expired => Err(format!(
                        "it is an X.509 v1 certificate issued by the CA `{}`, but it expired on {}",
                        ca.subject(),
                        format_time(leaf.not_after())
                    )),
                    Validity::NotYetValid => Err(format!(
                        "it is an X.509 v1 certificate issued by the CA `{}`, but it is not valid before {}",
                        ca.subject(),
                        format_time(leaf.not_before())
                    )),
                };
            }
        }
        Err(format!(
            "it is not issued by IdentityServer:ClientCertificateAuthorities (an X.509 v1 certificate naming a configured CA as its issuer, but {})",
            refusals.join("; ")
        ))
    }

    /// Logs, once per certificate, that an X.509 v1 certificate was accepted and how to replace it.
    fn warn_v1(&self, cert: &Certificate, ca: &str, client: &str) {
        if !self.v1_warnings.first(&[cert.der()]) {
            return;
        }
        let cn = cert
            .subject_attributes()
            .iter()
            .rev()
            .find(|(name, _)| name == "CN")
            .map_or("<CN>".to_string(), |(_, value)| loggable(value));
        tracing::warn!(
            client_id = %client,
            subject = %loggable(cert.subject()),
            issuer = %loggable(cert.issuer()),
            x5t_s256 = %cert.x5t_s256(),
            "client certificate accepted although it is an X.509 v1 certificate (no extensions: no key usage, \
             no subject alternative name), issued by the CA `{ca}`: reissue it from the same request with \
             `ids-keytool sign --ca-cert <CA certificate> --ca-key <CA key> --csr <request> --usage client`, \
             which writes a v3 client certificate with subject `CN={cn}` and SAN `URI:urn:ids:client:{cn}`, \
             then set TlsClientAuthSubjectDn=\"CN={cn}\" (or TlsClientAuthSan=\"urn:ids:client:{cn}\") on \
             the OpenIdClient `{client}` (docs/keys-and-certificates.md, \"X.509 v1 client certificates\"; \
             logged once per certificate)"
        );
    }
}

/// `tls_client_auth` or `self_signed_tls_client_auth` for `client` with the presented certificate. An
/// X.509 v1 certificate accepted from a CA is logged (once) with a suggestion to reissue it.
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
            return Err(KeyRejection::CertificateOutOfValidity {
                subject: loggable(cert.subject()),
                issuer: loggable(cert.issuer()),
                x5t_s256,
            });
        }
        return Ok(());
    }
    // tls_client_auth: issued by a configured CA and mapped to this client.
    let not_registered = |reason: String| KeyRejection::CertificateNotRegistered {
        subject: loggable(cert.subject()),
        issuer: loggable(cert.issuer()),
        x5t_s256: x5t_s256.clone(),
        thumbprint: thumbprint.clone(),
        // Names from the certificate, as the client chose them.
        reason: one_line(&reason),
    };
    let Some(authorities) = authorities else {
        return Err(not_registered(
            "its thumbprint is not registered and no IdentityServer:ClientCertificateAuthorities is configured".into(),
        ));
    };
    let issued = authorities
        .verify(&cert, &presented.chain, now)
        .map_err(|e| not_registered(format!("its thumbprint is not registered and {e}")))?;
    if !maps_to(&cert, client) {
        return Err(not_registered(format!(
            "it is issued by a trusted CA but names {} instead of the client `{}` ({})",
            describe_names(&cert),
            client.identifier,
            expected_names(client)
        )));
    }
    if let Issued::V1 { ca } = &issued {
        authorities.warn_v1(&cert, ca, &client.identifier);
    }
    Ok(())
}

/// RFC 8705 section 2.1.2: the certificate must carry the registered subject or SAN. Without an
/// explicit registration, the URI `urn:ids:client:<client id>` (what `ids-keytool client` writes),
/// compared exactly, maps it; a certificate naming several clients that way maps to none.
fn maps_to(cert: &Certificate, client: &RegisteredClient) -> bool {
    if let Some(dn) = &client.tls_subject_dn {
        return subject_matches(cert, dn);
    }
    let sans = cert.subject_alt_names();
    if let Some(expected) = &client.tls_san {
        let expected = expected.trim();
        return sans.iter().any(|s| match s {
            SubjectAltName::Dns(v) | SubjectAltName::Email(v) => v.eq_ignore_ascii_case(expected),
            SubjectAltName::Uri(v) => v == expected,
            SubjectAltName::Ip(ip) => ip.to_string() == expected,
        });
    }
    let named: Vec<&str> = sans
        .iter()
        .filter_map(|s| match s {
            SubjectAltName::Uri(v) => v.strip_prefix(CLIENT_URN_PREFIX),
            _ => None,
        })
        .collect();
    named == [client.identifier.as_str()]
}

/// The SAN URI prefix that names a client.
pub const CLIENT_URN_PREFIX: &str = "urn:ids:client:";

/// `TlsClientAuthSubjectDn` against the certificate's subject: the setting is an RFC 4514 string
/// (least significant RDN first, as `openssl x509 -nameopt RFC2253` prints it) or the same attributes
/// in certificate order (as `openssl x509 -subject` prints them). Attribute names are compared without
/// case, values exactly; `\,` escapes a comma inside a value.
fn subject_matches(cert: &Certificate, setting: &str) -> bool {
    let Some(expected) = parse_dn(setting) else {
        return false;
    };
    let actual = cert.subject_attributes();
    let same = |a: &[(String, String)], b: &mut dyn Iterator<Item = &(String, String)>| {
        let b: Vec<&(String, String)> = b.collect();
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|((k1, v1), (k2, v2))| k1.eq_ignore_ascii_case(k2) && v1 == v2)
    };
    same(actual, &mut expected.iter()) || same(actual, &mut expected.iter().rev())
}

/// `CN=a, O=b` -> [(CN, a), (O, b)]; `None` when a part is not `name=value`.
fn parse_dn(text: &str) -> Option<Vec<(String, String)>> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => current.push(chars.next()?),
            ',' | '+' | ';' => parts.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    parts.push(current);
    parts
        .into_iter()
        .map(|p| {
            let (k, v) = p.split_once('=')?;
            let (k, v) = (k.trim(), v.trim());
            (!k.is_empty()).then(|| (k.to_string(), v.to_string()))
        })
        .collect()
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
            "expected exactly one client in the SAN, URI:{CLIENT_URN_PREFIX}{id}, or set TlsClientAuthSan / TlsClientAuthSubjectDn on the OpenIdClient",
            id = client.identifier
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ids_devpki::{Ca, KeyKind};

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
    fn a_thumbprint_only_client_is_told_the_assertion_carries_no_key() {
        // What Authlib sends: no `kid`, no `jwk`/`x5c` header.
        let b64 = |v: serde_json::Value| ids_pki::b64::url(v.to_string().as_bytes());
        let token = format!(
            "{}.{}.{}",
            b64(serde_json::json!({"alg": "RS256", "typ": "JWT"})),
            b64(serde_json::json!({"iss": "Py", "sub": "Py", "jti": "x", "exp": 1})),
            ids_pki::b64::url(&[0u8; 256])
        );
        let assertion = UnverifiedAssertion::parse(&token).expect("structure");
        let mut py = client("Py");
        py.thumbprints = vec!["pnI6EWkiTbazjikJXRkLmjml5wvVECYtQduJUjS4QK4".into()];
        let error = registered_key(&assertion, &py, &[]).expect_err("no key to verify with");
        assert!(matches!(error, KeyRejection::ThumbprintWithoutKey { .. }));
        let text = error.to_string();
        assert!(
            text.contains("no `jwk` or `x5c` header")
                && text.contains("AccessControl:AuthorizedClientsPath")
                && text.contains("Py.pem"),
            "{text}"
        );
    }

    #[test]
    fn distinguished_names_parse_with_escapes() {
        assert_eq!(
            parse_dn("CN=Poller, O=Corp").unwrap(),
            [
                ("CN".to_string(), "Poller".to_string()),
                ("O".into(), "Corp".into())
            ]
        );
        assert_eq!(
            parse_dn(r"CN=Evil\,O=Corp").unwrap(),
            [("CN".to_string(), "Evil,O=Corp".to_string())]
        );
        assert!(parse_dn("CN").is_none());
    }

    #[test]
    fn replay_cache_refuses_a_second_use_until_expiry_and_stays_bounded() {
        let cache = MemoryReplayCache::new(2, 2);
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
        // One client's share cannot crowd out the others.
        let cache = MemoryReplayCache::new(10, 2);
        assert!(cache.first_use("greedy", "1", 100, 50).unwrap());
        assert!(cache.first_use("greedy", "2", 100, 50).unwrap());
        assert_eq!(
            cache.first_use("greedy", "3", 100, 50),
            Err(KeyRejection::ReplayCacheFull)
        );
        assert!(cache.first_use("polite", "1", 100, 50).unwrap());
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
        // An explicit subject mapping replaces the default; a value with a comma is not two RDNs.
        let mut by_dn = client("Job");
        by_dn.tls_subject_dn = Some("CN = Poller".into());
        let mut two = client("Job");
        two.tls_subject_dn = Some("CN=Poller,O=Corp".into());
        assert!(authenticate_certificate(&presented, &two, &[], Some(&authorities), now).is_err());
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

    /// Issue 13 point 4: v1 leaves (the seed's `openssl x509 -req`), verified without webpki.
    #[test]
    fn v1_leaves_must_be_signed_directly_by_a_v3_ca_and_valid() {
        use crate::tls::test_certs::{name, v1};
        use ids_devpki::generate_key;
        let ca = Ca::new("client CA", 1).unwrap();
        let ca_cert = Certificate::from_der("ca", &ca.cert.cert_der).unwrap();
        let ca_name = ca_cert.subject_der().to_vec();
        let authorities = ClientAuthorities::new(std::slice::from_ref(&ca_cert)).unwrap();
        let now = crate::unix_now();
        let day = 86_400;
        let leaf_key = generate_key(KeyKind::EcP256).unwrap();
        let rogue_key = generate_key(KeyKind::EcP256).unwrap();
        let present = |der: Vec<u8>| PresentedCertificate { chain: vec![der] };
        let mut by_dn = client("Seed");
        by_dn.tls_subject_dn = Some("CN=poller-seed".into());
        let check = |der: Vec<u8>, client: &RegisteredClient, now: i64| {
            authenticate_certificate(&present(der), client, &[], Some(&authorities), now)
                .map_err(|e| e.to_string())
        };
        let good = v1(
            &name("poller-seed"),
            &leaf_key,
            &ca_name,
            &ca.cert.key_pkcs8,
            now - day,
            now + day,
        );
        assert_eq!(check(good.clone(), &by_dn, now), Ok(()));
        // A v1 certificate has no SAN: without TlsClientAuthSubjectDn it maps to no client.
        let err = check(good.clone(), &client("poller-seed"), now).unwrap_err();
        assert!(err.contains("subject `CN=poller-seed` and no SAN"), "{err}");
        // Outside its validity.
        let err = check(good.clone(), &by_dn, now + 2 * day).unwrap_err();
        assert!(
            err.contains("X.509 v1") && err.contains("expired on"),
            "{err}"
        );
        let err = check(good, &by_dn, now - 2 * day).unwrap_err();
        assert!(err.contains("not valid before"), "{err}");
        // The CA's name, another key's signature.
        let forged = v1(
            &name("poller-seed"),
            &leaf_key,
            &ca_name,
            &rogue_key,
            now - day,
            now + day,
        );
        let err = check(forged, &by_dn, now).unwrap_err();
        assert!(
            err.contains("signature does not verify with the public key of `CN=client CA`")
                && err.contains("issuer `CN=client CA`"),
            "{err}"
        );
        // Another issuer.
        let foreign = v1(
            &name("poller-seed"),
            &leaf_key,
            &name("Rogue CA"),
            &rogue_key,
            now - day,
            now + day,
        );
        let err = check(foreign, &by_dn, now).unwrap_err();
        assert!(
            err.contains("issuer `CN=Rogue CA`")
                && err.contains("not issued by IdentityServer:ClientCertificateAuthorities"),
            "{err}"
        );
        // A leaf configured as a CA (CA:FALSE) does not vouch for the v1 certificates its key signs.
        let not_ca = ca.issue_client("Issuer", KeyKind::EcP256, 1).unwrap();
        let not_ca_cert = Certificate::from_der("not a CA", &not_ca.cert_der).unwrap();
        let by_leaf = ClientAuthorities::new(std::slice::from_ref(&not_ca_cert)).unwrap();
        let signed_by_leaf = v1(
            &name("poller-seed"),
            &leaf_key,
            not_ca_cert.subject_der(),
            &not_ca.key_pkcs8,
            now - day,
            now + day,
        );
        let err =
            authenticate_certificate(&present(signed_by_leaf), &by_dn, &[], Some(&by_leaf), now)
                .unwrap_err()
                .to_string();
        assert!(err.contains("is not a v3 CA certificate"), "{err}");
        // A v1 certificate cannot be a CA at all.
        let v1_ca = v1(
            &name("Old CA"),
            &rogue_key,
            &name("Old CA"),
            &rogue_key,
            now - day,
            now + day,
        );
        let err =
            ClientAuthorities::new(&[Certificate::from_der("old", &v1_ca).unwrap()]).unwrap_err();
        assert!(err.contains("X.509 v1"), "{err}");
    }
}
