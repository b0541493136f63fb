//! TLS client certificates (RFC 8705): `tls_client_auth`, a certificate issued by a configured CA and
//! mapped to the client, and `self_signed_tls_client_auth`, a certificate or key whose thumbprint is
//! registered for the client.

use std::sync::Arc;

use ids_pki::cert::{SubjectAltName, Validity, format_time};
use ids_pki::{Certificate, jwk};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;

use super::KeyRejection;
use crate::access_control::RegisteredClient;
use crate::authorized_clients::AuthorizedKey;
use crate::tls::{LogOnce, loggable, one_line};

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

/// Why the client CAs cannot verify client certificates.
#[derive(Debug, thiserror::Error)]
pub enum ClientAuthoritiesError {
    #[error("CA certificate `{subject}` is an X.509 v{version} certificate, which cannot be a CA")]
    NotV3 { subject: String, version: u32 },
    #[error("CA certificate `{subject}`: {source}")]
    Unusable {
        subject: String,
        source: rustls::Error,
    },
    #[error("{0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// Why a presented certificate is not taken as issued by the client CAs; completes "its thumbprint is
/// not registered and ...".
#[derive(Debug, thiserror::Error)]
enum NotIssued {
    #[error("no certificate was presented")]
    NoCertificate,
    /// webpki refused the chain.
    #[error("it is not issued by IdentityServer:ClientCertificateAuthorities ({0})")]
    Chain(rustls::Error),
    #[error(
        "it is not issued by IdentityServer:ClientCertificateAuthorities (an X.509 v1 certificate whose issuer `{issuer}` is not the subject of any of them; intermediate CAs are not considered for v1 certificates)"
    )]
    V1UnknownIssuer { issuer: String },
    #[error(
        "it is an X.509 v1 certificate issued by the CA `{ca}`, but it expired on {}",
        format_time(*.not_after)
    )]
    V1Expired { ca: String, not_after: i64 },
    #[error(
        "it is an X.509 v1 certificate issued by the CA `{ca}`, but it is not valid before {}",
        format_time(*.not_before)
    )]
    V1NotYetValid { ca: String, not_before: i64 },
    /// Each CA named as the issuer refused it.
    #[error(
        "it is not issued by IdentityServer:ClientCertificateAuthorities (an X.509 v1 certificate naming a configured CA as its issuer, but {})",
        .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    )]
    V1Refused(Vec<V1Refusal>),
}

/// Why one CA named as a v1 certificate's issuer did not issue it.
#[derive(Debug, thiserror::Error)]
enum V1Refusal {
    /// A v1 certificate has no basicConstraints: never a CA.
    #[error("`{subject}` is not a v3 CA certificate (basicConstraints CA:TRUE)")]
    NotCa { subject: String },
    #[error(
        "the CA `{subject}` has name constraints, which an X.509 v1 certificate (no SAN) cannot be checked against"
    )]
    NameConstraints { subject: String },
    #[error(transparent)]
    Signature(#[from] crate::tls::SignatureRefusal),
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
    pub fn new(cas: &[Certificate]) -> Result<Self, ClientAuthoritiesError> {
        let provider = ids_runtime::tls::provider();
        let mut roots = rustls::RootCertStore::empty();
        for ca in cas {
            if ca.version() < 3 {
                return Err(ClientAuthoritiesError::NotV3 {
                    subject: ca.subject().to_string(),
                    version: ca.version(),
                });
            }
            roots
                .add(CertificateDer::from(ca.der().to_vec()))
                .map_err(|source| ClientAuthoritiesError::Unusable {
                    subject: ca.subject().to_string(),
                    source,
                })?;
        }
        let algorithms = provider.signature_verification_algorithms;
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()?;
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
    fn verify(&self, leaf: &Certificate, chain: &[Vec<u8>], now: i64) -> Result<Issued, NotIssued> {
        if leaf.version() < 3 {
            return self.verify_v1(leaf, now).map(|ca| Issued::V1 { ca });
        }
        let Some((leaf, rest)) = chain.split_first() else {
            return Err(NotIssued::NoCertificate);
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
            .map_err(NotIssued::Chain)
    }

    /// An X.509 v1 leaf (`openssl x509 -req` without an extension file), which webpki refuses: it must
    /// be signed directly by one of the CAs (its issuer name is the CA's subject, byte for byte, and
    /// the CA's key verifies its signature), the CA must be a v3 certificate with `basicConstraints
    /// CA:TRUE` and without name constraints (a v1 certificate has no SAN to check them against), and
    /// the leaf must be valid at `now`. Intermediates are not considered: a v1 leaf has no authority
    /// key identifier to find them by, and the seed recipes issue from the root. Returns the CA's subject.
    fn verify_v1(&self, leaf: &Certificate, now: i64) -> Result<String, NotIssued> {
        let named: Vec<&Certificate> = self
            .cas
            .iter()
            .filter(|ca| ca.subject_der() == leaf.issuer_der())
            .collect();
        if named.is_empty() {
            return Err(NotIssued::V1UnknownIssuer {
                issuer: leaf.issuer().to_string(),
            });
        }
        let mut refusals = Vec::new();
        for ca in named {
            // A v1 certificate has no basicConstraints: never a CA.
            if !ca.is_ca() {
                refusals.push(V1Refusal::NotCa {
                    subject: ca.subject().to_string(),
                });
            } else if ca.has_name_constraints() {
                refusals.push(V1Refusal::NameConstraints {
                    subject: ca.subject().to_string(),
                });
            } else if let Err(e) = crate::tls::verify_signed_by(leaf, ca, &self.algorithms) {
                refusals.push(e.into());
            } else {
                let ca = ca.subject().to_string();
                return match leaf.validity_at(now) {
                    Validity::Valid => Ok(ca),
                    Validity::Expired => Err(NotIssued::V1Expired {
                        ca,
                        not_after: leaf.not_after(),
                    }),
                    Validity::NotYetValid => Err(NotIssued::V1NotYetValid {
                        ca,
                        not_before: leaf.not_before(),
                    }),
                };
            }
        }
        Err(NotIssued::V1Refused(refusals))
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
        authorities.warn_v1(&cert, ca, client.identifier.as_str());
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
pub(super) fn parse_dn(text: &str) -> Option<Vec<(String, String)>> {
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
