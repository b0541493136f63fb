//! `agent check`: validates the configuration and certificate files and, unless offline, that the
//! server is reachable, trusted, and accepts each configured client's credentials.

use std::path::Path;
use std::sync::Arc;

use ids_pki::cert::{Validity, format_time};

use crate::exit::ExitStatus;
use crate::settings::{AgentKeys, ServerPinning, Settings, TlsTrust, TokenValidation};
use crate::tls::known_servers;
use crate::{Agent, Clock};

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Ok(String),
    /// Information, neither a success nor a problem (sections of other software, ignored).
    Note(String),
    Warning(String),
    Error(String),
}

/// The report and the exit status it implies (success when there is no error).
#[derive(Debug)]
pub struct Report {
    pub lines: Vec<Line>,
    pub status: ExitStatus,
}

impl Default for Report {
    fn default() -> Self {
        Report {
            lines: Vec::new(),
            status: ExitStatus::Success,
        }
    }
}

impl Report {
    fn ok(&mut self, text: String) {
        self.lines.push(Line::Ok(text));
    }
    fn note(&mut self, text: String) {
        self.lines.push(Line::Note(text));
    }
    fn warn(&mut self, text: String) {
        self.lines.push(Line::Warning(text));
    }
    fn fail(&mut self, text: String, status: ExitStatus) {
        self.lines.push(Line::Error(text));
        self.status = self.status.or(status);
    }
}

/// Runs the checks on the configuration in `dir`.
pub async fn run(
    dir: &Path,
    vars: &[(String, String)],
    offline: bool,
    expiry_days: u64,
    clock: Arc<dyn Clock>,
) -> Report {
    let mut report = Report::default();
    let now = clock.now();
    let loaded = match Settings::load_with(dir, vars, now) {
        Ok(loaded) => loaded,
        Err(errors) => {
            for e in errors {
                report.fail(e.to_string(), ExitStatus::from(&e));
            }
            return report;
        }
    };
    let s = &loaded.settings;
    let k = &loaded.keys;
    report.ok(format!(
        "configuration read from {}",
        s.files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    if let Some(line) = ids_config::describe_ignored(&s.ignored_sections, "agent") {
        report.note(line);
    }
    for w in &loaded.warnings {
        report.warn(w.clone());
    }
    report.ok(format!(
        "identity server {} (issuer {}, audience {})",
        s.application_uri, s.issuer, s.audience
    ));
    match &s.token_validation {
        TokenValidation::Pinned(_) => {
            for p in &k.pinned {
                report.ok(format!(
                    "tokens verified with {}: `{}`, {}, kid {}, valid until {}",
                    p.origin,
                    p.certificate.subject(),
                    p.certificate.public_key().describe(),
                    ids_pki::jwk::thumbprint(p.certificate.public_key()),
                    format_time(p.certificate.not_after())
                ));
            }
        }
        TokenValidation::Jwks { refresh_interval } => report.ok(format!(
            "tokens verified with the server's JWKS (re-fetched for an unknown kid at most every {} s)",
            refresh_interval.as_secs()
        )),
    }
    match &s.tls {
        TlsTrust::System => report.ok("HTTPS trusts the system's certificate authorities".into()),
        TlsTrust::Only { .. } => {
            for c in &k.trusted {
                report.ok(format!(
                    "HTTPS trusts {} `{}` (valid until {})",
                    if c.is_ca {
                        "the CA"
                    } else {
                        "the pinned certificate"
                    },
                    c.subject,
                    format_time(c.not_after)
                ));
            }
        }
    }
    let pinned_before = pinning(&mut report, s);
    for c in &s.clients {
        let default = if c.client_id == s.default_client {
            " (default)"
        } else {
            ""
        };
        let method = match (&c.auth, &k.client_key) {
            (
                crate::settings::ClientAuth::Secret(_)
                | crate::settings::ClientAuth::SecretFile { .. },
                _,
            ) => "secret".to_string(),
            (crate::settings::ClientAuth::PrivateKeyJwt, Some(k)) => format!(
                "private_key_jwt with the key whose RFC 7638 thumbprint is {}",
                k.thumbprint
            ),
            (crate::settings::ClientAuth::TlsClientAuth, Some(k)) => format!(
                "TLS client certificate x5t#S256 {} (key thumbprint {})",
                k.certificate_thumbprint().unwrap_or_default(),
                k.thumbprint
            ),
            (_, None) => "key (missing)".to_string(),
        };
        report.ok(format!(
            "client `{}`{default}: {method}, from {}",
            c.client_id, c.source
        ));
    }
    if let Some(k) = &k.client_key {
        match k.certificates.first() {
            Some(cert) => report.ok(format!(
                "client certificate {} `{}` (x5t#S256 {}) presented when the server asks, valid until {}; tokens obtained over such a connection are bound to it",
                k.file.display(),
                cert.subject(),
                cert.x5t_s256(),
                format_time(cert.not_after())
            )),
            None => report.ok(format!(
                "client key {} (RFC 7638 thumbprint {}), no certificate: not presented in TLS handshakes",
                k.file.display(),
                k.thumbprint
            )),
        }
    }
    for w in expiring(s, k, now, expiry_days) {
        report.warn(w);
    }
    if let Some(id) = &s.agent_identifier {
        report.ok(format!("agent identifier `{id}`"));
    }
    match &s.encryption_certificate {
        Some(file) => match file.open() {
            Ok(pfx) => match pfx.certificate.validity_at(now) {
                Validity::Valid => report.ok(format!(
                    "file encryption certificate {} `{}` valid until {}{}",
                    file.path.display(),
                    pfx.certificate.subject(),
                    format_time(pfx.certificate.not_after()),
                    if s.encrypt_files {
                        ""
                    } else {
                        " (EncryptFile is false: files are written in clear)"
                    }
                )),
                _ => report.fail(
                    format!(
                        "EncryptionCertificate:File: {} `{}` is valid only from {} to {}",
                        file.path.display(),
                        pfx.certificate.subject(),
                        format_time(pfx.certificate.not_before()),
                        format_time(pfx.certificate.not_after())
                    ),
                    ExitStatus::Usage,
                ),
            },
            Err(e) => report.fail(
                format!("EncryptionCertificate:File: {e}"),
                ExitStatus::Usage,
            ),
        },
        None => {
            report.warn("no EncryptionCertificate: the agent's files will not be encrypted".into())
        }
    }
    // Building the agent loads the TLS trust and the verification keys, without any network.
    let agent = match Agent::with_clock(loaded.settings.clone(), loaded.keys.clone(), clock) {
        Ok(agent) => agent,
        Err(e) => {
            report.fail(e.to_string(), ExitStatus::from(&e));
            return report;
        }
    };
    if offline || report.status != ExitStatus::Success {
        return report;
    }
    match agent.discovery().await {
        Ok(d) => {
            report.ok(format!(
                "server reachable and trusted: {} (token endpoint {})",
                d.url, d.token_endpoint
            ));
            if !pinned_before {
                // `First`: that connection pinned the server's key.
                pinning(&mut report, agent.settings());
            }
            if matches!(
                agent.settings().token_validation,
                TokenValidation::Pinned(_)
            ) && let Some(jwks) = d.jwks_uri.as_deref()
                && managed_keys(&agent, jwks).await
            {
                report.fail(
                    "the server makes and rotates its signing keys itself (IdentityServer:KeyManagement Automatic): a pinned certificate stops verifying its tokens at the next rotation; set IdentityServer:TokenValidation to Jwks".into(),
                    ExitStatus::Usage,
                );
            }
        }
        Err(e) => {
            report.fail(e.to_string(), ExitStatus::from(&e));
            return report;
        }
    }
    for c in &agent.settings().clients {
        match agent.fetch_token(c.client_id.as_str(), None).await {
            Ok(t) => report.ok(format!(
                "client `{}`: token obtained and verified (kid {}, scope `{}`, expires {})",
                c.client_id,
                t.claims.kid,
                t.claims.scopes.join(" "),
                format_time(t.claims.expires_at)
            )),
            Err(e) => report.fail(e.to_string(), ExitStatus::from(&e)),
        }
    }
    report
}

/// Whether the server's JWKS holds keys it made itself (`KeyManagement Automatic`): their certificates
/// are named [`ids_proto::discovery::MANAGED_KEY_SUBJECT`]. A JWKS that cannot be read says nothing
/// here (the token check reports it).
async fn managed_keys(agent: &Agent, url: &str) -> bool {
    let Ok(response) = agent.http().send(url, |c| c.get(url)).await else {
        return false;
    };
    let Ok(body) = response.bytes().await else {
        return false;
    };
    let Ok(jwks) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return false;
    };
    jwks["keys"].as_array().is_some_and(|keys| {
        keys.iter().any(|k| {
            k["x5c"][0]
                .as_str()
                .and_then(ids_pki::b64::std_decode)
                .and_then(|der| ids_pki::Certificate::from_der("JWKS x5c", &der).ok())
                .is_some_and(|c| {
                    c.subject()
                        .contains(ids_proto::discovery::MANAGED_KEY_SUBJECT)
                })
        })
    })
}

/// Certificates the agent relies on that expire within `days`: the server certificates tokens are
/// verified with, the certificates HTTPS trusts, the file-encryption and client certificates.
fn expiring(s: &Settings, k: &AgentKeys, now: i64, days: u64) -> Vec<String> {
    let horizon = now.saturating_add(
        i64::try_from(days)
            .unwrap_or(i64::MAX)
            .saturating_mul(86_400),
    );
    let mut found: Vec<(String, String, i64)> = Vec::new();
    if let TokenValidation::Pinned(_) = &s.token_validation {
        for p in &k.pinned {
            found.push((
                p.origin.clone(),
                p.certificate.subject().to_string(),
                p.certificate.not_after(),
            ));
        }
    }
    if let TlsTrust::Only { .. } = &s.tls {
        for c in &k.trusted {
            found.push((
                "Tls:TrustedCertificates".into(),
                c.subject.clone(),
                c.not_after,
            ));
        }
    }
    if let Some(file) = &s.encryption_certificate
        && let Ok(pfx) = file.open()
    {
        found.push((
            format!("EncryptionCertificate:File ({})", file.path.display()),
            pfx.certificate.subject().to_string(),
            pfx.certificate.not_after(),
        ));
    }
    if let Some(k) = &k.client_key {
        for c in &k.certificates {
            found.push((
                format!("ClientCertificate:File ({})", k.file.display()),
                c.subject().to_string(),
                c.not_after(),
            ));
        }
    }
    found
        .into_iter()
        .filter(|(_, _, not_after)| *not_after <= horizon)
        .map(|(origin, subject, not_after)| {
            if not_after <= now {
                format!(
                    "{origin}: the certificate `{subject}` EXPIRED on {}",
                    format_time(not_after)
                )
            } else {
                format!(
                    "{origin}: the certificate `{subject}` expires on {}, in {} day(s); renew it before then",
                    format_time(not_after),
                    (not_after - now) / 86_400
                )
            }
        })
        .collect()
}

/// Reports `Tls:ServerPinning` and, for `First`, whether the server is pinned already (true for the
/// other modes, where there is nothing to pin).
fn pinning(report: &mut Report, s: &Settings) -> bool {
    match &s.server_pinning {
        ServerPinning::Always => {
            report.ok("server pinning: Always (the usual certificate validation only)".into());
            true
        }
        ServerPinning::Strict { thumbprints } => {
            report.ok(format!(
                "server pinning: Strict: the server's key or certificate must match one of Tls:ServerThumbprints ({})",
                thumbprints.join(", ")
            ));
            true
        }
        ServerPinning::First { store } => {
            let authority = crate::tls::authority(&s.application_uri).unwrap_or_default();
            match known_servers::load(store) {
                Ok(pins) => match pins.iter().find(|p| p.authority == authority) {
                    Some(p) => {
                        report.ok(format!(
                            "server pinning: First: {authority} pinned on {} with key thumbprint {} ({} line {})",
                            p.first_seen,
                            p.thumbprint,
                            store.display(),
                            p.line
                        ));
                        true
                    }
                    None => {
                        report.ok(format!(
                            "server pinning: First: {authority} is not pinned yet; the key it presents at the next connection will be recorded in {}",
                            store.display()
                        ));
                        false
                    }
                },
                Err(e) => {
                    report.fail(
                        format!("Tls:ServerPinning is First: {e}"),
                        ExitStatus::Usage,
                    );
                    true
                }
            }
        }
    }
}
