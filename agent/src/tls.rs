//! What the agent trusts for HTTPS: the system store, or only the certificates it was given.
//!
//! With `Tls:TrustedCertificates`, a server presenting exactly one of those certificates (within its
//! validity) is trusted: that is pinning. CA certificates among them also anchor chains, checked by
//! webpki with the host name and validity as usual. Nothing else is trusted, not even the system store.
//!
//! `Tls:ServerPinning` adds a requirement on the server's key on top of that validation
//! ([`PinningVerifier`] wraps either verifier): `First` pins the key each server presents the first
//! time ([`known_servers`]), `Strict` requires one of `Tls:ServerThumbprints`.

pub mod known_servers;

use std::sync::{Arc, Mutex, PoisonError};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::settings::{ServerPinning, Settings, TlsTrust};
use ids_pki::cert::TrustedCertificate;

/// The aws-lc-rs provider, named explicitly: two providers in one process make rustls panic otherwise.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A rustls client configuration for `trust` and `pinning`, offering HTTP/2 and HTTP/1.1.
///
/// With `identity` (the agent's `ClientCertificate` with a certificate), the agent presents it when the
/// server asks: mutual TLS (RFC 8705), and tokens bound to it.
pub fn client_config(
    trust: &TlsTrust,
    pinning: &Pinning,
    identity: Option<&crate::settings::ClientKey>,
) -> Result<rustls::ClientConfig, String> {
    let provider = provider();
    let verifier: Arc<dyn ServerCertVerifier> = match trust {
        TlsTrust::System => Arc::new(
            rustls_platform_verifier::Verifier::new(provider.clone())
                .map_err(|e| format!("cannot load the system's trusted certificates: {e}"))?,
        ),
        TlsTrust::Only { certificates, .. } => {
            Arc::new(OnlyTrusted::new(certificates, provider.clone())?)
        }
    };
    let verifier = pinning.wrap(verifier)?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match identity.filter(|k| !k.certificates.is_empty()) {
        None => config.with_no_client_auth(),
        Some(key) => {
            let chain = key
                .certificates
                .iter()
                .map(|c| CertificateDer::from(c.der().to_vec()))
                .collect();
            let private = rustls::pki_types::PrivateKeyDer::Pkcs8(
                rustls::pki_types::PrivatePkcs8KeyDer::from(key.pkcs8.to_vec()),
            );
            config.with_client_auth_cert(chain, private).map_err(|e| {
                format!(
                    "ClientCertificate:File ({}): unusable as a TLS client certificate: {e}",
                    key.file.display()
                )
            })?
        }
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Trusts configured CAs (as chain anchors) and configured server certificates (pinned), nothing else.
#[derive(Debug)]
struct OnlyTrusted {
    roots: Option<Arc<WebPkiServerVerifier>>,
    pinned: Vec<TrustedCertificate>,
    provider: Arc<CryptoProvider>,
}

impl OnlyTrusted {
    fn new(certs: &[TrustedCertificate], provider: Arc<CryptoProvider>) -> Result<Self, String> {
        let mut store = RootCertStore::empty();
        // Every configured certificate is also pinned as it is: a self-signed server certificate made
        // by `openssl req -x509` says CA:TRUE, and webpki would refuse it as an end-entity certificate.
        let pinned = certs.to_vec();
        for cert in certs.iter().filter(|c| c.is_ca) {
            store
                .add(CertificateDer::from(cert.der.clone()))
                .map_err(|e| format!("CA certificate `{}`: {e}", cert.subject))?;
        }
        let roots = if store.is_empty() {
            None
        } else {
            Some(
                WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
                    .build()
                    .map_err(|e| e.to_string())?,
            )
        };
        Ok(OnlyTrusted {
            roots,
            pinned,
            provider,
        })
    }
}

/// A certificate error with our own words (shown to the operator through the connection error).
#[derive(Debug)]
struct NotTrusted(String);

impl std::fmt::Display for NotTrusted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotTrusted {}

impl ServerCertVerifier for OnlyTrusted {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(pin) = self
            .pinned
            .iter()
            .find(|p| p.der.as_slice() == end_entity.as_ref())
        {
            let now = now.as_secs() as i64;
            if now > pin.not_after {
                return Err(rustls::Error::InvalidCertificate(CertificateError::Expired));
            }
            if now < pin.not_before {
                return Err(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidYet,
                ));
            }
            return Ok(ServerCertVerified::assertion());
        }
        match &self.roots {
            Some(roots) => {
                roots.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            None => {
                let fingerprint = ids_pki::b64::url(
                    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, end_entity.as_ref())
                        .as_ref(),
                );
                Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                    rustls::OtherError(Arc::new(NotTrusted(format!(
                        "the server presented a certificate (x5t#S256 {fingerprint}) that is not one of the certificates in Tls:TrustedCertificates"
                    )))),
                )))
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `Tls:ServerPinning` with the servers the agent talks to: what [`client_config`] needs to pin.
#[derive(Debug, Clone)]
pub struct Pinning {
    mode: ServerPinning,
    /// `(host, host:port)` of ApplicationUri, then of the issuer: a TLS server name is pinned under
    /// the first authority with its host (TLS gives the verifier the name, not the port).
    servers: Vec<(String, String)>,
}

impl Pinning {
    /// `mode` for connections to the servers of `urls` (the first one wins for a host).
    pub fn new(mode: ServerPinning, urls: &[&str]) -> Self {
        let mut servers: Vec<(String, String)> = Vec::new();
        for (host, authority) in urls.iter().filter_map(|u| host_and_authority(u)) {
            if !servers.iter().any(|(h, _)| *h == host) {
                servers.push((host, authority));
            }
        }
        Pinning { mode, servers }
    }

    /// The settings' `Tls:ServerPinning` for ApplicationUri (and the issuer, where tokens come from).
    pub fn for_settings(settings: &Settings) -> Self {
        Self::new(
            settings.server_pinning.clone(),
            &[&settings.application_uri, &settings.issuer],
        )
    }

    /// `inner` with the pinning check after it; `inner` itself when nothing is pinned.
    fn wrap(
        &self,
        inner: Arc<dyn ServerCertVerifier>,
    ) -> Result<Arc<dyn ServerCertVerifier>, String> {
        let check = match &self.mode {
            ServerPinning::Always => return Ok(inner),
            ServerPinning::First { store } => Check::First {
                pins: Mutex::new(
                    known_servers::load(store)
                        .map_err(|e| format!("Tls:ServerPinning is First: {e}"))?,
                ),
                store: store.clone(),
            },
            ServerPinning::Strict { thumbprints } => Check::Strict(thumbprints.clone()),
        };
        Ok(Arc::new(PinningVerifier {
            inner,
            servers: self.servers.clone(),
            check,
        }))
    }
}

/// `host:port` of `url` (lower-case host, IPv6 in brackets, the scheme's port when none is given):
/// the key of `known_servers`.
pub fn authority(url: &str) -> Option<String> {
    host_and_authority(url).map(|(_, authority)| authority)
}

fn host_and_authority(url: &str) -> Option<(String, String)> {
    let url = reqwest::Url::parse(url.trim()).ok()?;
    let host = url.host_str()?.trim_end_matches('.').to_ascii_lowercase();
    let port = url.port_or_known_default()?;
    Some((host.clone(), format!("{host}:{port}")))
}

/// The host of a TLS server name, spelled as in [`authority`].
fn host_of(name: &ServerName<'_>) -> String {
    match name {
        ServerName::IpAddress(ip) => match std::net::IpAddr::from(*ip) {
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        },
        other => other.to_str().trim_end_matches('.').to_ascii_lowercase(),
    }
}

/// A `Tls:ServerThumbprints` value in the form it is compared in: base64url without padding for a
/// SHA-256 value in base64 (the RFC 7638 JWK thumbprint of the key, or the certificate's x5t#S256),
/// upper-case hex for a certificate's SHA-1 or SHA-256 thumbprint in hex (separators and the invisible
/// marks Windows' certificate dialog copies are dropped).
pub fn normalize_thumbprint(value: &str) -> Result<String, String> {
    ids_pki::jwk::canonical_thumbprint(value).ok_or_else(|| {
        "expected the RFC 7638 JWK thumbprint of the server's key or its certificate's x5t#S256 (43 base64url characters), or the certificate's SHA-1 (40 hex digits) or SHA-256 (64 hex digits) thumbprint".into()
    })
}

/// A server refused by `Tls:ServerPinning` (its certificate passed the usual validation): the
/// message names the presented and the expected values, and what to do.
#[derive(Debug)]
pub struct PinRefused(pub String);

impl std::fmt::Display for PinRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PinRefused {}

/// The usual verifier, then the pin.
#[derive(Debug)]
struct PinningVerifier {
    inner: Arc<dyn ServerCertVerifier>,
    servers: Vec<(String, String)>,
    check: Check,
}

#[derive(Debug)]
enum Check {
    /// The pins of `store`, read at start-up and again when a server is not there or differs (the
    /// operator may have deleted its line, another process may have pinned it): a connection to a
    /// pinned server reads and writes nothing. The lock serializes the connections of this process.
    First {
        store: std::path::PathBuf,
        pins: Mutex<Vec<known_servers::Pin>>,
    },
    /// Normalized `Tls:ServerThumbprints`.
    Strict(Vec<String>),
}

/// The values a certificate can be pinned by.
struct Presented {
    /// RFC 7638 thumbprint of the key, or why there is none (a key type JOSE does not describe).
    jwk: Result<String, String>,
    x5t_s256: String,
    sha256_hex: String,
    sha1_hex: String,
}

impl Presented {
    fn of(der: &[u8]) -> Self {
        let sha256 = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
        let sha1 = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, der);
        Presented {
            jwk: ids_pki::Certificate::from_der("the server's certificate", der)
                .map(|c| ids_pki::jwk::thumbprint(c.public_key()))
                .map_err(|e| e.to_string()),
            x5t_s256: ids_pki::b64::url(sha256.as_ref()),
            sha256_hex: ids_pki::b64::hex_upper(sha256.as_ref()),
            sha1_hex: ids_pki::b64::hex_upper(sha1.as_ref()),
        }
    }

    fn matches(&self, expected: &str) -> bool {
        self.jwk.as_ref().is_ok_and(|j| j == expected)
            || self.x5t_s256 == expected
            || self.sha256_hex == expected
            || self.sha1_hex == expected
    }

    /// `key thumbprint J (x5t#S256 X, SHA-1 S)`.
    fn describe(&self) -> String {
        let key = match &self.jwk {
            Ok(j) => format!("key thumbprint {j}"),
            Err(why) => format!("a key without JWK thumbprint ({why})"),
        };
        format!(
            "{key} (x5t#S256 {}, SHA-1 {})",
            self.x5t_s256, self.sha1_hex
        )
    }
}

impl PinningVerifier {
    fn authority(&self, server_name: &ServerName<'_>) -> String {
        let host = host_of(server_name);
        self.servers
            .iter()
            .find(|(h, _)| *h == host)
            .map(|(_, authority)| authority.clone())
            .unwrap_or_else(|| format!("{host}:443"))
    }

    /// Whether `presented`, from `authority` at `now` (Unix seconds), passes the pin.
    fn check(&self, authority: &str, presented: &Presented, now: i64) -> Result<(), String> {
        match &self.check {
            Check::Strict(expected) => {
                if expected.iter().any(|e| presented.matches(e)) {
                    return Ok(());
                }
                let what = if presented.jwk.is_ok() {
                    "key thumbprint"
                } else {
                    "x5t#S256"
                };
                Err(format!(
                    "the server {authority} presented a certificate with {}, which is none of Tls:ServerThumbprints ({}); if the server's key or certificate was changed on purpose, put its {what} in Tls:ServerThumbprints",
                    presented.describe(),
                    expected.join(", ")
                ))
            }
            Check::First { store, pins } => {
                let jwk = presented.jwk.as_ref().map_err(|why| {
                    format!(
                        "the server {authority} presented a certificate whose key cannot be pinned ({why}; x5t#S256 {}); Tls:ServerPinning First pins RSA and EC P-256 keys: use Strict with that x5t#S256 in Tls:ServerThumbprints, or Always",
                        presented.x5t_s256
                    )
                })?;
                let mut pins = pins.lock().unwrap_or_else(PoisonError::into_inner);
                if pins
                    .iter()
                    .any(|p| p.authority == authority && p.thumbprint == *jwk)
                {
                    return Ok(());
                }
                *pins = known_servers::load(store)
                    .map_err(|e| format!("Tls:ServerPinning is First: {e}"))?;
                let pin = match pins.iter().find(|p| p.authority == authority) {
                    Some(pin) => pin.clone(),
                    None => {
                        let first_seen = ids_pki::cert::format_time(now);
                        let pin = match known_servers::add(store, authority, jwk, &first_seen) {
                            Ok(pin) => {
                                if pin.thumbprint == *jwk {
                                    tracing::warn!(
                                        "Tls:ServerPinning is First: the key of {authority} (thumbprint {jwk}) is now pinned in {} line {}; later connections must present the same key",
                                        store.display(),
                                        pin.line
                                    );
                                }
                                pin
                            }
                            Err(e) => {
                                tracing::warn!(
                                    "Tls:ServerPinning is First: {e}; the key of {authority} (thumbprint {jwk}) is pinned for this run only"
                                );
                                known_servers::Pin {
                                    authority: authority.to_string(),
                                    thumbprint: jwk.clone(),
                                    first_seen,
                                    line: 0,
                                }
                            }
                        };
                        pins.push(pin.clone());
                        pin
                    }
                };
                if pin.thumbprint == *jwk {
                    return Ok(());
                }
                let place = if pin.line == 0 {
                    format!(
                        "earlier in this run; {} could not be written",
                        store.display()
                    )
                } else {
                    format!("{} line {}", store.display(), pin.line)
                };
                Err(format!(
                    "the server {authority} presented a certificate with key thumbprint {jwk}, but the agent pinned {} on {} ({place}); if the server's key was changed on purpose, delete that line (or run `agent trust --forget {authority}`)",
                    pin.thumbprint, pin.first_seen
                ))
            }
        }
    }
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The usual validation first: a server the agent would not trust is never pinned.
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        let authority = self.authority(server_name);
        let presented = Presented::of(end_entity.as_ref());
        match self.check(&authority, &presented, now.as_secs() as i64) {
            Ok(()) => Ok(verified),
            Err(message) => Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                rustls::OtherError(Arc::new(PinRefused(message))),
            ))),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.inner.requires_raw_public_keys()
    }

    fn root_hint_subjects(&self) -> Option<&[rustls::DistinguishedName]> {
        self.inner.root_hint_subjects()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ids_devpki::{Ca, KeyKind};

    /// Accepts every certificate: stands for the usual validation, which these tests do not exercise.
    #[derive(Debug)]
    struct AcceptAll;

    impl ServerCertVerifier for AcceptAll {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            Vec::new()
        }
    }

    fn server_cert(ca: &Ca) -> Vec<u8> {
        ca.issue_server(&["localhost", "127.0.0.1"], KeyKind::EcP256, 2)
            .unwrap()
            .cert_der
    }

    fn key_thumbprint(der: &[u8]) -> String {
        ids_pki::jwk::thumbprint(
            ids_pki::Certificate::from_der("test", der)
                .unwrap()
                .public_key(),
        )
    }

    fn verifier(mode: ServerPinning) -> Arc<dyn ServerCertVerifier> {
        Pinning::new(
            mode,
            &["https://LocalHost:8443/ids", "https://127.0.0.1:9443"],
        )
        .wrap(Arc::new(AcceptAll))
        .unwrap()
    }

    /// The pinning refusal of `der` from `host`, if any.
    fn verify(verifier: &dyn ServerCertVerifier, der: &[u8], host: &str) -> Result<(), String> {
        let name = ServerName::try_from(host.to_string()).unwrap();
        // 2026-11-22T14:00:00Z
        let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_795_356_000));
        match verifier.verify_server_cert(&CertificateDer::from(der.to_vec()), &[], &name, &[], now)
        {
            Ok(_) => Ok(()),
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(other))) => {
                assert!(other.0.downcast_ref::<PinRefused>().is_some());
                Err(other.to_string())
            }
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }

    #[test]
    fn first_pins_the_key_once_and_refuses_another_with_both_thumbprints() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("work").join(known_servers::FILE_NAME);
        let ca = Ca::new("pinning test CA", 2).unwrap();
        let (old, new) = (server_cert(&ca), server_cert(&ca));
        let v = verifier(ServerPinning::First {
            store: store.clone(),
        });

        verify(v.as_ref(), &old, "localhost").unwrap();
        let text = std::fs::read_to_string(&store).unwrap();
        assert_eq!(
            text,
            format!(
                "localhost:8443 jwk-thumbprint {} 2026-11-22T14:00:00Z\n",
                key_thumbprint(&old)
            )
        );
        // Pinned: later connections read and write nothing (the file may even go away).
        std::fs::remove_file(&store).unwrap();
        verify(v.as_ref(), &old, "localhost").unwrap();
        assert!(!store.exists());
        std::fs::write(&store, &text).unwrap();

        // The IP address is another authority (its own port): pinned separately.
        verify(v.as_ref(), &new, "127.0.0.1").unwrap();
        let err = verify(v.as_ref(), &new, "localhost").unwrap_err();
        assert_eq!(
            err,
            format!(
                "the server localhost:8443 presented a certificate with key thumbprint {}, but the agent pinned {} on 2026-11-22T14:00:00Z ({} line 1); if the server's key was changed on purpose, delete that line (or run `agent trust --forget localhost:8443`)",
                key_thumbprint(&new),
                key_thumbprint(&old),
                store.display()
            )
        );
        // A new agent process reads the file: same answer.
        let fresh = verifier(ServerPinning::First {
            store: store.clone(),
        });
        assert!(verify(fresh.as_ref(), &new, "localhost").is_err());
        verify(fresh.as_ref(), &old, "localhost").unwrap();

        // The operator deletes the line: the running agent pins the new key.
        known_servers::forget(&store, "localhost:8443")
            .unwrap()
            .unwrap();
        verify(v.as_ref(), &new, "localhost").unwrap();
        let pins = known_servers::load(&store).unwrap();
        assert_eq!(pins.len(), 2);
        assert!(
            pins.iter()
                .any(|p| p.authority == "localhost:8443" && p.thumbprint == key_thumbprint(&new))
        );
    }

    #[test]
    fn first_refuses_a_malformed_store_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join(known_servers::FILE_NAME);
        std::fs::write(&store, "localhost:8443 nonsense\n").unwrap();
        let err = Pinning::new(
            ServerPinning::First {
                store: store.clone(),
            },
            &["https://localhost:8443"],
        )
        .wrap(Arc::new(AcceptAll))
        .unwrap_err();
        assert!(err.starts_with("Tls:ServerPinning is First: "), "{err}");
        assert!(
            err.contains(&format!("{} line 1", store.display())),
            "{err}"
        );
    }

    #[test]
    fn strict_accepts_any_listed_form_and_names_all_values_otherwise() {
        let ca = Ca::new("pinning test CA", 2).unwrap();
        let der = server_cert(&ca);
        let cert = ids_pki::Certificate::from_der("test", &der).unwrap();
        let sha256_hex =
            ids_pki::b64::hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der).as_ref());
        let sha1_spaced = cert
            .sha1_hex()
            .to_lowercase()
            .as_bytes()
            .chunks(2)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        for configured in [
            key_thumbprint(&der),
            cert.x5t_s256(),
            format!("\u{200e}{sha1_spaced}"),
            sha256_hex,
        ] {
            let v = verifier(ServerPinning::Strict {
                thumbprints: vec![normalize_thumbprint(&configured).unwrap()],
            });
            verify(v.as_ref(), &der, "localhost").unwrap();
        }
        let other = key_thumbprint(&server_cert(&ca));
        let v = verifier(ServerPinning::Strict {
            thumbprints: vec![other.clone()],
        });
        let err = verify(v.as_ref(), &der, "127.0.0.1").unwrap_err();
        assert_eq!(
            err,
            format!(
                "the server 127.0.0.1:9443 presented a certificate with key thumbprint {} (x5t#S256 {}, SHA-1 {}), which is none of Tls:ServerThumbprints ({other}); if the server's key or certificate was changed on purpose, put its key thumbprint in Tls:ServerThumbprints",
                key_thumbprint(&der),
                cert.x5t_s256(),
                cert.sha1_hex()
            )
        );
    }

    #[test]
    fn the_usual_validation_still_decides_first() {
        let ca = Ca::new("pinning test CA", 2).unwrap();
        let der = server_cert(&ca);
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join(known_servers::FILE_NAME);
        // No CA configured: the inner verifier refuses, nothing is pinned.
        let first = Pinning::new(
            ServerPinning::First {
                store: store.clone(),
            },
            &["https://localhost:8443"],
        )
        .wrap(Arc::new(OnlyTrusted::new(&[], provider()).unwrap()))
        .unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let err = first
            .verify_server_cert(&CertificateDer::from(der), &[], &name, &[], UnixTime::now())
            .unwrap_err();
        assert!(err.to_string().contains("Tls:TrustedCertificates"), "{err}");
        assert!(!store.exists());
    }

    #[test]
    fn thumbprints_are_normalized_or_refused() {
        let b64 = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";
        assert_eq!(normalize_thumbprint(&format!(" {b64} ")).unwrap(), b64);
        // Standard base64 with padding, as some tools print it.
        assert_eq!(
            normalize_thumbprint("NzbLsXh8uDCcd+6MNwXF4W/7noWXFZAfHkxZsRGC9Xs=").unwrap(),
            b64
        );
        assert_eq!(
            normalize_thumbprint("a9:0b:1c:2d:3e:4f:50:61:72:83:94:a5:b6:c7:d8:e9:f0:01:12:23")
                .unwrap(),
            "A90B1C2D3E4F5061728394A5B6C7D8E9F0011223"
        );
        for bad in [
            "",
            "abc",
            "A90B1C2D3E4F5061728394A5B6C7D8E9F001122",
            "not a thumbprint at all, not one at all!!",
        ] {
            let err = normalize_thumbprint(bad).unwrap_err();
            assert!(err.contains("RFC 7638 JWK thumbprint"), "{err}");
        }
    }

    #[test]
    fn authorities_have_a_port_and_a_lower_case_host() {
        assert_eq!(
            authority("https://IDS.example.com/").as_deref(),
            Some("ids.example.com:443")
        );
        assert_eq!(
            authority("https://localhost:8443/ids").as_deref(),
            Some("localhost:8443")
        );
        assert_eq!(
            authority("https://[::1]:8443").as_deref(),
            Some("[::1]:8443")
        );
        assert_eq!(authority("localhost:8443"), None);
        let name = ServerName::try_from("::1").unwrap();
        assert_eq!(host_of(&name), "[::1]");
    }
}
