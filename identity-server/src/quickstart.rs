//! `identity-server quickstart`: a working development server from nothing.
//!
//! Writes, into a folder, a development CA, a TLS certificate for localhost, a token-signing certificate
//! (PFX files with a random password), an `appsettings.json` and `Conf/demo-client.xml` with one client
//! whose secret is generated and shown once, and an `agent/` folder configured for that client (the
//! server's public signing certificate, the development CA to trust, the demo secret in
//! `appsettings.agent.json`, mode 0600). Existing files are never overwritten: when the folder already
//! holds an `appsettings.json`, it is used as it is.

use std::path::{Path, PathBuf};

use ids_devpki::{Ca, KeyKind, PfxProfile, to_pfx};
use ids_proto::ClientSecret;
use ids_secret::SecretHash;

/// The demo client's identifier.
pub const DEMO_CLIENT: &str = "Demo";

/// What quickstart produced.
#[derive(Debug)]
pub struct Quickstart {
    pub dir: PathBuf,
    /// The demo client's secret, when it was generated now (shown once).
    pub new_secret: Option<ClientSecret>,
    pub ca_file: PathBuf,
}

/// Errors while writing the quickstart folder.
#[derive(Debug, thiserror::Error)]
pub enum QuickstartError {
    #[error(
        "{0}: already exists and would be overwritten; remove it or choose another --config-dir"
    )]
    Exists(String),
    /// `--urls` does not parse (a usage error).
    #[error("{0}")]
    Urls(String),
    #[error("{file}: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Generate(String),
}

const FILES: &[&str] = &[
    "dev-ca.crt",
    "dev-tls.pfx",
    "dev-signing.pfx",
    "dev-signing.crt",
    "dev-encryption.pfx",
    "Conf/demo-client.xml",
    "agent/appsettings.json",
    "agent/appsettings.agent.json",
    "agent/agent-encryption.pfx",
];

/// The agent folder quickstart writes beside the server's files.
pub const AGENT_DIR: &str = "agent";

/// The `;`-separated listen URLs of `--urls`, each checked.
pub fn parse_urls(urls: &str) -> Result<Vec<crate::settings::ListenUrl>, QuickstartError> {
    let parsed = urls
        .split(';')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| {
            crate::settings::ListenUrl::parse(u)
                .map_err(|m| QuickstartError::Urls(format!("--urls `{u}`: {m}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if parsed.is_empty() {
        return Err(QuickstartError::Urls("--urls: no URL given".into()));
    }
    Ok(parsed)
}

/// Prepares `dir` for `url` (e.g. `https://localhost:5001`). `bound_port` is the port the first URL's
/// listener got (port 0 picks one): the agent's `ApplicationUri` names it.
pub fn prepare(
    dir: &Path,
    url: &str,
    bound_port: Option<u16>,
) -> Result<Quickstart, QuickstartError> {
    let ca_file = dir.join("dev-ca.crt");
    if dir.join("appsettings.json").exists() {
        return Ok(Quickstart {
            dir: dir.to_path_buf(),
            new_secret: None,
            ca_file,
        });
    }
    for f in FILES {
        let p = dir.join(f);
        if p.exists() {
            return Err(QuickstartError::Exists(p.display().to_string()));
        }
    }
    let io = |file: &Path| {
        let file = file.display().to_string();
        move |source| QuickstartError::Io { file, source }
    };
    std::fs::create_dir_all(dir.join("Conf")).map_err(io(&dir.join("Conf")))?;
    std::fs::create_dir_all(dir.join(AGENT_DIR)).map_err(io(&dir.join(AGENT_DIR)))?;
    let generate = |e: ids_devpki::DevCertError| QuickstartError::Generate(e.to_string());
    let ca = Ca::new("identity-server development CA", 825).map_err(generate)?;
    let mut names: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
    let listen_urls = parse_urls(url)?;
    let application_uri = listen_urls
        .first()
        .map(|u| u.public_base(bound_port.unwrap_or(u.port)))
        .unwrap_or_default();
    for listen in listen_urls {
        if !names.contains(&listen.host)
            && !["*", "+", "0.0.0.0", "::"].contains(&listen.host.as_str())
        {
            names.push(listen.host);
        }
    }
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let tls = ca
        .issue_server(&names, KeyKind::EcP256, 825)
        .map_err(generate)?;
    let signing = ca
        .issue_signing(
            "identity-server development token signing",
            KeyKind::Rsa2048,
            825,
        )
        .map_err(generate)?;
    let password =
        ids_secret::generate_secret().map_err(|e| QuickstartError::Generate(e.to_string()))?;
    let ca_der = ca.cert.cert_der.as_slice();
    let tls_pfx = to_pfx(
        &tls,
        &[ca_der],
        "tls",
        password.expose(),
        PfxProfile::Modern,
    )
    .map_err(generate)?;
    let signing_pfx = to_pfx(
        &signing,
        &[ca_der],
        "signing",
        password.expose(),
        PfxProfile::Modern,
    )
    .map_err(generate)?;
    let server_encryption = ca
        .issue_encryption(
            "identity-server development delivery encryption",
            KeyKind::Rsa2048,
            825,
        )
        .map_err(generate)?;
    let encryption_pfx = to_pfx(
        &server_encryption,
        &[ca_der],
        "encryption",
        password.expose(),
        PfxProfile::Modern,
    )
    .map_err(generate)?;
    let agent_password =
        ids_secret::generate_secret().map_err(|e| QuickstartError::Generate(e.to_string()))?;
    let agent_encryption = ca
        .issue_encryption("agent development file encryption", KeyKind::Rsa2048, 825)
        .map_err(generate)?;
    let agent_pfx = to_pfx(
        &agent_encryption,
        &[ca_der],
        "agent-encryption",
        agent_password.expose(),
        PfxProfile::Modern,
    )
    .map_err(generate)?;
    let secret =
        ids_secret::generate_secret().map_err(|e| QuickstartError::Generate(e.to_string()))?;
    let hash =
        SecretHash::argon2id(&secret).map_err(|e| QuickstartError::Generate(e.to_string()))?;
    let settings = serde_json::json!({
        "Urls": url,
        "IdentityServer": {
            "X509KeyFilePath": "dev-signing.pfx",
            "X509KeyFilePassword": password.expose(),
            "AccessTokenLifetime": 3600,
        },
        "Kestrel": { "Certificates": { "Default": { "Path": "dev-tls.pfx", "Password": password.expose() } } },
        "EncryptionCertificate": { "File": "dev-encryption.pfx", "Password": password.expose(), "EncryptFile": true },
        "AccessControl": { "ConfigurationPath": "Conf" },
        "Deliveries": { "DataFolder": "data" },
    });
    let xml = format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<ConfigurationFile xmlns="urn:schemas-usercube-com:configuration">
  <Profile Identifier="Administrator" DisplayName_L1="Administrator" />
  <OpenIdClient Identifier="{DEMO_CLIENT}" HashedSecret="{}" DisplayName_L1="Demo client made by quickstart" Profile="Administrator" />
</ConfigurationFile>
"#,
        hash.to_attribute()
    );
    let agent_settings = serde_json::json!({
        "ApplicationUri": application_uri,
        "IdentityServer": { "X509KeyFilePath": "../dev-signing.crt" },
        "Tls": { "TrustedCertificates": ["../dev-ca.crt"] },
        "EncryptionCertificate": { "File": "agent-encryption.pfx", "EncryptFile": true },
    });
    // The PFX password sits with the client secret in the private (0600) file; both files are merged.
    let agent_openid = serde_json::json!({
        "EncryptionCertificate": { "Password": agent_password.expose() },
        "OpenId": {
            "OpenIdClients": { DEMO_CLIENT: secret.expose() },
            "DefaultOpenIdClient": DEMO_CLIENT,
        }
    });
    let json = |v: &serde_json::Value| {
        serde_json::to_string_pretty(v).map_err(|e| QuickstartError::Generate(e.to_string()))
    };
    let text = json(&settings)?;
    let agent_text = json(&agent_settings)?;
    let agent_openid_text = json(&agent_openid)?;
    let files: [(PathBuf, &[u8], bool); 10] = [
        (ca_file.clone(), ca.cert.cert_pem.as_bytes(), false),
        (dir.join("dev-tls.pfx"), &tls_pfx, true),
        (dir.join("dev-signing.pfx"), &signing_pfx, true),
        (
            dir.join("dev-signing.crt"),
            signing.cert_pem.as_bytes(),
            false,
        ),
        (dir.join("dev-encryption.pfx"), &encryption_pfx, true),
        (dir.join("Conf/demo-client.xml"), xml.as_bytes(), false),
        (
            dir.join(AGENT_DIR).join("appsettings.json"),
            agent_text.as_bytes(),
            false,
        ),
        (
            dir.join(AGENT_DIR).join("appsettings.agent.json"),
            agent_openid_text.as_bytes(),
            true,
        ),
        (
            dir.join(AGENT_DIR).join("agent-encryption.pfx"),
            &agent_pfx,
            true,
        ),
        // Last: its presence means "a complete quickstart folder".
        (dir.join("appsettings.json"), text.as_bytes(), true),
    ];
    for (i, (path, bytes, private)) in files.iter().enumerate() {
        if let Err(e) = write_new(path, bytes, *private) {
            // All or nothing: a half-written folder would hold a hash whose secret nobody saw.
            for (written, _, _) in &files[..i] {
                let _ = std::fs::remove_file(written);
            }
            return Err(e);
        }
    }
    Ok(Quickstart {
        dir: dir.to_path_buf(),
        new_secret: Some(secret),
        ca_file,
    })
}

/// Creates a file that must not exist yet; private files get mode 0600.
fn write_new(path: &Path, bytes: &[u8], private: bool) -> Result<(), QuickstartError> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let err = |source| QuickstartError::Io {
        file: path.display().to_string(),
        source,
    };
    let mut file = options.open(path).map_err(err)?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    if written.is_err() {
        // Created by us just now: leave no truncated file behind.
        let _ = std::fs::remove_file(path);
    }
    written.map_err(err)
}

/// What [`sync_agent`] did to the agent folder.
#[derive(Debug, PartialEq, Eq)]
pub enum AgentSync {
    /// `ApplicationUri` already named the server.
    Unchanged,
    /// `ApplicationUri` was `from` and now names the server.
    Updated { from: String },
    /// Left as it was, and why.
    Kept { reason: String },
}

/// On a rerun with other `--urls` (or a new port from port 0), points the quickstart agent's
/// `ApplicationUri` at `issuer`, unless the development TLS certificate (`tls`) does not name its host:
/// the agent could not connect, so the folder is kept and the reason given.
pub fn sync_agent(
    dir: &Path,
    issuer: &str,
    tls: &ids_pki::Certificate,
) -> Result<AgentSync, QuickstartError> {
    let file = dir.join(AGENT_DIR).join("appsettings.json");
    let io = |source| QuickstartError::Io {
        file: file.display().to_string(),
        source,
    };
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(AgentSync::Kept {
                reason: format!("{} does not exist", file.display()),
            });
        }
        Err(e) => return Err(io(e)),
    };
    let mut value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        QuickstartError::Generate(format!(
            "{}: not the JSON quickstart wrote: {e}",
            file.display()
        ))
    })?;
    let current = value["ApplicationUri"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if current.trim_end_matches('/') == issuer {
        return Ok(AgentSync::Unchanged);
    }
    let host = host_of(issuer);
    let ip = host.parse::<std::net::IpAddr>().ok();
    let named = tls.subject_alt_names().iter().any(|n| match n {
        ids_pki::cert::SubjectAltName::Dns(d) => ip.is_none() && d.eq_ignore_ascii_case(host),
        ids_pki::cert::SubjectAltName::Ip(address) => ip == Some(*address),
        _ => false,
    });
    if !named {
        let names: Vec<String> = tls
            .subject_alt_names()
            .iter()
            .map(ToString::to_string)
            .collect();
        return Ok(AgentSync::Kept {
            reason: format!(
                "the development TLS certificate names {} but not `{host}`, so the agent could not connect to {issuer}; run quickstart with --urls for one of those names, or in a new --config-dir to make a certificate for `{host}`",
                names.join(", ")
            ),
        });
    }
    value["ApplicationUri"] = serde_json::Value::String(issuer.to_string());
    let text = serde_json::to_string_pretty(&value)
        .map_err(|e| QuickstartError::Generate(e.to_string()))?;
    let mut out = ids_seal::atomic::AtomicFile::create(&file, true).map_err(io)?;
    // The file keeps its mode (quickstart wrote it 0644: it holds no secret).
    let permissions = std::fs::metadata(&file).map_err(io)?.permissions();
    out.file().set_permissions(permissions).map_err(io)?;
    std::io::Write::write_all(out.file(), text.as_bytes()).map_err(io)?;
    out.commit().map_err(io)?;
    Ok(AgentSync::Updated { from: current })
}

/// The host of a base URL: `https://[::1]:5001` -> `::1`, `https://ids.example.com` -> `ids.example.com`.
fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    match authority.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or(bracketed),
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn hosts_of_base_urls() {
        assert_eq!(super::host_of("https://[::1]:5001"), "::1");
        assert_eq!(super::host_of("https://127.0.0.1:0"), "127.0.0.1");
        assert_eq!(super::host_of("https://ids.example.com"), "ids.example.com");
        assert_eq!(
            super::host_of("https://ids.example.com:443/base"),
            "ids.example.com"
        );
    }
}
