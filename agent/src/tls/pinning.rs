//! `Tls:ServerPinning`: a requirement on the server's key after the usual validation. `First` pins
//! the key each server presents the first time ([`known_servers`]), `Strict` requires one of
//! `Tls:ServerThumbprints`; a refusal names the presented and the expected values, and what to do.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

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
    ) -> Result<Arc<dyn ServerCertVerifier>, Box<PinRefused>> {
        let check = match &self.mode {
            ServerPinning::Always => return Ok(inner),
            ServerPinning::First { store } => Check::First {
                pins: Mutex::new(load(store)?),
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

/// A server refused by `Tls:ServerPinning` (its certificate passed the usual validation), or pins
/// that cannot be read: the message names the presented and the expected values, and what to do.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PinRefused {
    /// `Strict`: the server's key and certificate match none of `Tls:ServerThumbprints`.
    #[error(
        "the server {authority} presented a certificate with {presented}, which is none of Tls:ServerThumbprints ({}); if the server's key or certificate was changed on purpose, put its {} in Tls:ServerThumbprints",
        expected.join(", "),
        if *has_jwk { "key thumbprint" } else { "x5t#S256" }
    )]
    NotListed {
        authority: String,
        /// `key thumbprint J (x5t#S256 X, SHA-1 S)`.
        presented: String,
        expected: Vec<String>,
        /// Whether the presented key has an RFC 7638 thumbprint (what to put in the list).
        has_jwk: bool,
    },
    /// `First`: the server's key has no RFC 7638 thumbprint.
    #[error(
        "the server {authority} presented a certificate whose key cannot be pinned ({why}; x5t#S256 {x5t_s256}); Tls:ServerPinning First pins RSA and EC P-256 keys: use Strict with that x5t#S256 in Tls:ServerThumbprints, or Always"
    )]
    Unpinnable {
        authority: String,
        why: String,
        x5t_s256: String,
    },
    /// `First`: the server presents another key than the one pinned.
    #[error(
        "the server {authority} presented a certificate with key thumbprint {presented}, but the agent pinned {pinned} on {first_seen} ({}); if the server's key was changed on purpose, delete that line (or run `agent trust --forget {authority}`)",
        place(store, *line)
    )]
    Changed {
        authority: String,
        presented: String,
        pinned: String,
        first_seen: String,
        store: PathBuf,
        /// The pin's line in `store`; 0 when it was pinned for this run only.
        line: usize,
    },
    /// `First`: the file of pins cannot be read or is malformed.
    #[error("Tls:ServerPinning is First: {0}")]
    Store(Arc<known_servers::PinStoreError>),
}

/// Where a pin was recorded, for [`PinRefused::Changed`].
fn place(store: &Path, line: usize) -> String {
    if line == 0 {
        format!(
            "earlier in this run; {} could not be written",
            store.display()
        )
    } else {
        format!("{} line {line}", store.display())
    }
}

/// The pins of `store`.
fn load(store: &Path) -> Result<Vec<known_servers::Pin>, Box<PinRefused>> {
    known_servers::load(store).map_err(|e| Box::new(PinRefused::Store(Arc::new(e))))
}

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
    fn check(
        &self,
        authority: &str,
        presented: &Presented,
        now: i64,
    ) -> Result<(), Box<PinRefused>> {
        match &self.check {
            Check::Strict(expected) => {
                if expected.iter().any(|e| presented.matches(e)) {
                    return Ok(());
                }
                Err(Box::new(PinRefused::NotListed {
                    authority: authority.to_string(),
                    presented: presented.describe(),
                    expected: expected.clone(),
                    has_jwk: presented.jwk.is_ok(),
                }))
            }
            Check::First { store, pins } => {
                let jwk = presented.jwk.as_ref().map_err(|why| {
                    Box::new(PinRefused::Unpinnable {
                        authority: authority.to_string(),
                        why: why.clone(),
                        x5t_s256: presented.x5t_s256.clone(),
                    })
                })?;
                let mut pins = pins.lock().unwrap_or_else(PoisonError::into_inner);
                if pins
                    .iter()
                    .any(|p| p.authority == authority && p.thumbprint == *jwk)
                {
                    return Ok(());
                }
                *pins = load(store)?;
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
                Err(Box::new(PinRefused::Changed {
                    authority: authority.to_string(),
                    presented: jwk.clone(),
                    pinned: pin.thumbprint,
                    first_seen: pin.first_seen,
                    store: store.clone(),
                    line: pin.line,
                }))
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
            Err(refused) => Err(ids_runtime::tls::refused_because(*refused)),
        }
    }

    ids_runtime::handshake_signatures!(inner);

    fn requires_raw_public_keys(&self) -> bool {
        self.inner.requires_raw_public_keys()
    }

    fn root_hint_subjects(&self) -> Option<&[rustls::DistinguishedName]> {
        self.inner.root_hint_subjects()
    }
}

#[cfg(test)]
mod tests;
