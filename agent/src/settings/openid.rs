//! The `OpenId` section: the clients the agent authenticates as, their secrets (inline, or read from
//! `OpenId:OpenIdClientSecretFiles`), the default client, the agent identifier, and how the client
//! proves itself (`OpenId:ClientAuthentication` with `ClientCertificate`).

use std::path::PathBuf;

use ids_config::{Config, ConfigError, Setting, invalid};
use ids_proto::{ClientId, ClientSecret};

use super::keys::{ClientKey, read_secret_file};
use super::schema as key;

/// One OpenID client the agent can authenticate as.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    pub client_id: ClientId,
    pub auth: ClientAuth,
    /// Where the secret or key came from (a setting or a file), never the secret itself.
    pub source: String,
}

impl ClientCredentials {
    /// The client secret, when the client authenticates with one written in the settings (a secret
    /// from a file is in [`AgentKeys::secret`](super::AgentKeys::secret)).
    pub fn secret(&self) -> Option<&ClientSecret> {
        match &self.auth {
            ClientAuth::Secret(s) => Some(s),
            _ => None,
        }
    }
}

/// How the agent proves it is the client.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// `client_secret_basic` / `client_secret_post`.
    Secret(ClientSecret),
    /// The same, with the secret in a file (`OpenId:OpenIdClientSecretFiles`), read into
    /// [`AgentKeys`](super::AgentKeys).
    SecretFile { setting: Setting, path: PathBuf },
    /// `private_key_jwt` (RFC 7523) with `ClientCertificate`.
    PrivateKeyJwt,
    /// `tls_client_auth` / `self_signed_tls_client_auth` (RFC 8705): the TLS client certificate of
    /// `ClientCertificate` is the credential.
    TlsClientAuth,
}

/// Keys that belong under `OpenId` but are found at the top level in some deployments.
const UNWRAPPED: [&str; 3] = [
    key::UNWRAPPED_CLIENTS.path,
    key::UNWRAPPED_DEFAULT_CLIENT.path,
    key::UNWRAPPED_AGENT_IDENTIFIER.path,
];

///
/// Secret files are read here, into `secrets`, and the key is the loaded one: which clients exist, and
/// how they authenticate, depend on what the files held (see [`super::Settings::from_config`]).
pub(super) fn openid(
    config: &Config,
    client_key: Option<&ClientKey>,
    secrets: &mut Vec<(ClientId, ClientSecret)>,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<String>,
) -> (Vec<ClientCredentials>, Option<ClientId>, Option<String>) {
    let [clients_settings, default, identifier] =
        UNWRAPPED.map(|key| placed(config, key, errors, warnings));
    let mut clients: Vec<ClientCredentials> = Vec::new();
    for s in clients_settings {
        let Some(id) = client_id_of(&s) else {
            errors.push(invalid(
                &s,
                "expected a map of client id to secret, e.g. \"OpenIdClients\": { \"Job\": \"secret\" }",
            ));
            continue;
        };
        if s.value.is_empty() {
            errors.push(invalid(&s, "the client secret is empty"));
            continue;
        }
        clients.push(ClientCredentials {
            client_id: id,
            auth: ClientAuth::Secret(ClientSecret::new(s.value.clone())),
            source: format!("{} (in {})", s.path, s.origin),
        });
    }
    for s in config.below(key::CLIENT_SECRET_FILES.path) {
        let Some(id) = client_id_of(s) else { continue };
        if let Some(other) = clients.iter().find(|c| c.client_id == id) {
            errors.push(invalid(
                s,
                &format!(
                    "client `{id}` already has a secret in {}; keep one of them",
                    other.source
                ),
            ));
            continue;
        }
        let path = config.resolve(s.value.trim());
        match read_secret_file(&path) {
            Ok((secret, warning)) => {
                warnings.extend(warning);
                secrets.push((id.clone(), secret));
                clients.push(ClientCredentials {
                    client_id: id,
                    auth: ClientAuth::SecretFile {
                        setting: s.clone(),
                        path: path.clone(),
                    },
                    source: format!("{} (file {})", s.path, path.display()),
                });
            }
            Err(e) => errors.push(invalid(s, &e.to_string())),
        }
    }
    for c in &clients {
        if c.client_id.as_str().len() > 256 || c.client_id.as_str().chars().any(char::is_control) {
            errors.push(ConfigError::Invalid {
                path: format!(
                    "OpenId:OpenIdClients:{}",
                    c.client_id.as_str().escape_debug()
                ),
                origin: c.source.clone(),
                message: "a client id is at most 256 printable characters".into(),
            });
        }
    }
    let default = default.into_iter().next();
    // `OpenId:ClientAuthentication`: how the client proves itself. Without a secret for the default
    // client and with a ClientCertificate, PrivateKeyJwt.
    let mode = config.get(key::CLIENT_AUTHENTICATION.path);
    let key_auth = match mode.map(|m| m.value.trim().to_ascii_lowercase()) {
        None => None,
        Some(m) if m.is_empty() || m == "clientsecret" => None,
        Some(m) if m == "privatekeyjwt" || m == "private_key_jwt" => {
            Some(ClientAuth::PrivateKeyJwt)
        }
        Some(m)
            if m == "tlsclientauth"
                || m == "tls_client_auth"
                || m == "self_signed_tls_client_auth" =>
        {
            Some(ClientAuth::TlsClientAuth)
        }
        Some(_) => {
            if let Some(m) = mode {
                errors.push(invalid(
                    m,
                    "expected `ClientSecret` (the secret of OpenId:OpenIdClients), `PrivateKeyJwt` (an assertion signed with ClientCertificate) or `TlsClientAuth` (the ClientCertificate presented in the TLS handshake)",
                ));
            }
            None
        }
    };
    let key_auth = key_auth.or_else(|| {
        let default_id = default.as_ref().map(|d| d.value.trim().to_string());
        let has_secret = default_id
            .as_ref()
            .is_some_and(|d| clients.iter().any(|c| c.client_id == d.as_str()));
        (client_key.is_some() && default_id.is_some() && !has_secret)
            .then_some(ClientAuth::PrivateKeyJwt)
    });
    if let Some(auth) = key_auth {
        let origin = mode.or(default.as_ref());
        match (client_key, default.as_ref().map(|d| d.value.trim().to_string())) {
            (None, _) => errors.push(ConfigError::Missing {
                path: "ClientCertificate:File".into(),
                message: "OpenId:ClientAuthentication needs the agent's key: ClientCertificate:File (a PFX, or the .key that `ids-keytool keygen --mode agent` wrote) and ClientCertificate:Password".into(),
            }),
            (Some(key), _) if matches!(auth, ClientAuth::TlsClientAuth) && key.certificates.is_empty() => {
                errors.push(ConfigError::Missing {
                    path: "ClientCertificate:CertificateFile".into(),
                    message: format!(
                        "TlsClientAuth presents a certificate, and {} holds a bare key: set ClientCertificate:CertificateFile to its certificate (the .crt beside it)",
                        key.file.display()
                    ),
                });
            }
            (Some(_), None) => errors.push(ConfigError::Missing {
                path: "OpenId:DefaultOpenIdClient".into(),
                message: "the client id the agent authenticates as with its key, e.g. \"OpenId\": { \"DefaultOpenIdClient\": \"Poller2\" }".into(),
            }),
            (Some(key), Some(id)) => {
                let source = format!(
                    "ClientCertificate:File ({}){}",
                    key.file.display(),
                    origin.map_or(String::new(), |o| format!(", {} (in {})", o.path, o.origin))
                );
                clients.retain(|c| c.client_id != id.as_str());
                clients.push(ClientCredentials {
                    client_id: ClientId::from(id),
                    auth,
                    source,
                });
            }
        }
    }
    let agent_identifier = identifier
        .into_iter()
        .next()
        .map(|s| s.value.trim().to_string())
        .filter(|s| !s.is_empty());
    let ids = || {
        clients
            .iter()
            .map(|c| format!("`{}`", c.client_id))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let default_client = match (default, clients.len()) {
        (_, 0) => {
            errors.push(ConfigError::Missing {
                path: "OpenId:OpenIdClients".into(),
                message: "the client id and secret the agent authenticates with, e.g. \"OpenId\": { \"OpenIdClients\": { \"Job\": \"<secret>\" } } in appsettings.agent.json (or OpenId__OpenIdClients__Job in the environment, or OpenId:OpenIdClientSecretFiles:Job = a file holding the secret); or, without a secret, OpenId:DefaultOpenIdClient with the agent's key in ClientCertificate:File".into(),
            });
            None
        }
        (Some(d), _) if clients.iter().any(|c| c.client_id == d.value.trim()) => {
            Some(ClientId::from(d.value.trim()))
        }
        (Some(d), _) => {
            errors.push(invalid(
                &d,
                &format!(
                    "no client `{}` in OpenId:OpenIdClients (configured: {})",
                    d.value.trim(),
                    ids()
                ),
            ));
            None
        }
        (None, 1) => clients.first().map(|c| c.client_id.clone()),
        (None, _) => {
            errors.push(ConfigError::Missing {
                path: "OpenId:DefaultOpenIdClient".into(),
                message: format!(
                    "several clients are configured ({}); name the one to use by default",
                    ids()
                ),
            });
            None
        }
    };
    (clients, default_client, agent_identifier)
}

/// The settings of `OpenId:{key}`, or of the top-level `{key}` with a warning; both is an error.
fn placed(
    config: &Config,
    key: &str,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<String>,
) -> Vec<Setting> {
    let collect = |path: &str| -> Vec<Setting> {
        config
            .get(path)
            .into_iter()
            .chain(config.below(path))
            .cloned()
            .collect()
    };
    let inside = collect(&format!("OpenId:{key}"));
    let outside = collect(key);
    match (inside.is_empty(), outside.first()) {
        (_, None) => inside,
        (true, Some(first)) => {
            warnings.push(format!(
                "`{key}` (in {}) belongs under `OpenId` (`OpenId:{key}`); it is read from there this time",
                first.origin
            ));
            outside
        }
        (false, Some(first)) => {
            errors.push(invalid(
                first,
                &format!("`{key}` is also set under `OpenId`; keep only `OpenId:{key}`"),
            ));
            inside
        }
    }
}

/// The client id of `OpenId:OpenIdClients:<id>` (or the unwrapped `OpenIdClients:<id>`), as written.
fn client_id_of(setting: &Setting) -> Option<ClientId> {
    let mut parts = setting.path.splitn(3, ':');
    let first = parts.next()?;
    let (second, third) = (parts.next()?, parts.next());
    match third {
        Some(id) if first.eq_ignore_ascii_case("OpenId") && !id.contains(':') => {
            Some(ClientId::from(id))
        }
        None if !first.eq_ignore_ascii_case("OpenId") => Some(ClientId::from(second)),
        _ => None,
    }
}
