//! `Tls:ServerPinning`: a requirement on the server's key after the usual validation. `First` pins
//! the key each server presents the first time ([`known_servers`]), `Strict` requires one of
//! `Tls:ServerThumbprints`; a refusal names the presented and the expected values, and what to do.

use std::sync::{Arc, Mutex, PoisonError};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

use super::known_servers;
use crate::settings::{ServerPinning, Settings};

/// `Tls:ServerPinning` with the servers the agent talks to: what [`super::client_config`] needs to pin.
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
    pub(super) fn wrap(
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
mod tests;
