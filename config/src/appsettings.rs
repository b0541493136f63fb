//! Vocabulary shared by the server's and the agent's `appsettings.json`: certificate-file settings with
//! the `X509File` alias, Windows certificate-store keys (refused on this platform) and base URLs.

use crate::{Config, ConfigError, Setting, invalid};

pub use crate::keys::take;

crate::keys! {
    /// Keys both apps read: the agent's or server's own `EncryptionCertificate`, and the Windows
    /// certificate-store keys they recognise in order to refuse them with a message
    /// ([`reject_windows_store`]).
    pub const CERTIFICATE_KEYS;
    IDENTITY_STORE_LOCATION = text("IdentityServer:X509StoreLocation", "Windows certificate store: refused, use a file");
    IDENTITY_STORE_NAME = text("IdentityServer:X509StoreName", "Windows certificate store: refused, use a file");
    IDENTITY_THUMBPRINT = text("IdentityServer:X509Thumbprint", "Windows certificate store: refused, use a file");
    IDENTITY_SUBJECT = text("IdentityServer:X509SubjectDistinguishedName", "Windows certificate store: refused, use a file");
    ENCRYPTION_FILE = text("EncryptionCertificate:File", "the app's own certificate (PFX) that its files are encrypted for");
    ENCRYPTION_PASSWORD = text("EncryptionCertificate:Password", "the password of EncryptionCertificate:File");
    ENCRYPT_FILE = app_flag("EncryptionCertificate:EncryptFile", "whether files are encrypted (the default differs per app)");
    ENCRYPTION_STORE_LOCATION = text("EncryptionCertificate:X509StoreLocation", "Windows certificate store: refused, use a file");
    ENCRYPTION_STORE_NAME = text("EncryptionCertificate:X509StoreName", "Windows certificate store: refused, use a file");
    ENCRYPTION_THUMBPRINT = text("EncryptionCertificate:X509Thumbprint", "Windows certificate store: refused, use a file");
    ENCRYPTION_SUBJECT = text("EncryptionCertificate:X509SubjectDistinguishedName", "Windows certificate store: refused, use a file");
}

/// An application's schema: its own `keys` and the [`CERTIFICATE_KEYS`] both apps share.
pub fn schema(keys: &[crate::Key]) -> crate::Schema {
    crate::Schema::from_keys(&[keys, CERTIFICATE_KEYS])
}

/// A certificate file setting (resolved against the configuration folder) with its password setting
/// (empty when unset), e.g. `EncryptionCertificate:File` + `EncryptionCertificate:Password`.
pub fn file_with_password(
    config: &Config,
    file_key: &str,
    password_key: &str,
) -> Option<(std::path::PathBuf, String)> {
    let path = config.path(file_key)?;
    Some((path, config.string(password_key).unwrap_or_default()))
}

/// The Windows certificate-store keys of a certificate section.
pub const WINDOWS_STORE_KEYS: [&str; 4] = [
    "X509StoreLocation",
    "X509StoreName",
    "X509Thumbprint",
    "X509SubjectDistinguishedName",
];

/// Refuses the Windows certificate-store keys of `section`, saying which file settings to use instead.
pub fn reject_windows_store(config: &Config, section: &str, use_instead: &str) -> Vec<ConfigError> {
    WINDOWS_STORE_KEYS
        .iter()
        .filter_map(|key| config.get(&format!("{section}:{key}")))
        .map(|s| {
            invalid(
                s,
                &format!(
                    "Windows certificate stores are not supported on this platform, use {use_instead}"
                ),
            )
        })
        .collect()
}

/// A setting that has an alias (`X509File` for `X509KeyFilePath`): one of them, or both with the same
/// value. Empty values count as unset.
pub fn aliased<'a>(
    config: &'a Config,
    primary: &str,
    alias: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<&'a Setting> {
    let non_empty = |path: &str| config.get(path).filter(|s| !s.value.trim().is_empty());
    match (non_empty(primary), non_empty(alias)) {
        (Some(a), Some(b)) if a.value.trim() != b.value.trim() => {
            errors.push(invalid(
                b,
                &format!(
                    "is an alias of {primary} (set in {}) with a different value; keep one of them",
                    a.origin
                ),
            ));
            Some(a)
        }
        (a, b) => a.or(b),
    }
}

/// A server's public base URL (`ApplicationUri`): `https://host[:port][/path]` without a trailing slash,
/// query or fragment; `http://` only when `insecure` is allowed.
pub fn base_url(setting: &Setting, insecure: bool) -> Result<String, ConfigError> {
    let value = setting.value.trim().trim_end_matches('/');
    let expected = "expected the server's public base URL, e.g. https://ids.example.com";
    let rest = if let Some(rest) = value.strip_prefix("https://") {
        rest
    } else if let Some(rest) = value.strip_prefix("http://") {
        if !insecure {
            return Err(invalid(
                setting,
                &format!(
                    "{expected}: plain HTTP is refused unless IdentityServer:DangerAllowInsecureHttp is true (local development only)"
                ),
            ));
        }
        rest
    } else {
        return Err(invalid(setting, expected));
    };
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || rest.contains(['?', '#', ' ']) || host.contains('@') {
        return Err(invalid(setting, expected));
    }
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Origin;

    fn setting(value: &str) -> Setting {
        Setting {
            path: "ApplicationUri".into(),
            value: value.into(),
            origin: Origin::Default,
            protected: false,
        }
    }

    #[test]
    fn base_urls() {
        let ok = |v: &str, insecure| base_url(&setting(v), insecure).expect(v);
        assert_eq!(
            ok("https://ids.example.com/", false),
            "https://ids.example.com"
        );
        assert_eq!(ok("https://h:5001/ids", false), "https://h:5001/ids");
        assert_eq!(ok("http://localhost:5000", true), "http://localhost:5000");
        for bad in [
            "http://h",
            "ids.example.com",
            "https://",
            "https://h/?a=1",
            "https://u@h",
            "ftp://h",
        ] {
            assert!(base_url(&setting(bad), false).is_err(), "{bad}");
        }
        let text = base_url(&setting("http://h"), false)
            .expect_err("http")
            .to_string();
        assert!(text.contains("DangerAllowInsecureHttp"), "{text}");
    }
}
