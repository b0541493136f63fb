//! The OAuth features beyond the token endpoint's basics: the signing algorithm, resource indicators
//! (RFC 8707), introspection (RFC 7662) and DPoP (RFC 9449).

use ids_config::keys::{flag, number};
use ids_config::{Config, ConfigError, invalid};
use ids_pki::Algorithm;

use super::schema as key;

/// `IdentityServer:SigningAlgorithm`, `Audiences`, `IntrospectionProfiles` and the `DPoP...` keys.
#[derive(Clone, Debug)]
pub struct OAuthSettings {
    /// `IdentityServer:SigningAlgorithm` (None: the key's own, RS256 for RSA).
    pub signing_algorithm: Option<Algorithm>,
    /// `IdentityServer:Audiences`: what `resource` may name for a client without an `Audiences`
    /// attribute, besides the default audience.
    pub audiences: Vec<String>,
    /// `IdentityServer:IntrospectionProfiles`.
    pub introspection_profiles: Vec<String>,
    pub dpop: DpopSettings,
    /// `IdentityServer:KeyManagement`.
    pub key_management: KeyManagement,
}

/// Where the token-signing key comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyManagement {
    /// `IdentityServer:X509KeyFilePath` (the default, as the vendor's deployments have it).
    Certificate,
    /// Keys the server makes, stores (encrypted) and rotates itself.
    Automatic(ManagedKeys),
}

/// `KeyManagement Automatic`: the key type and the schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ManagedKeys {
    /// `IdentityServer:SigningAlgorithm` (ES256 when unset).
    pub algorithm: Algorithm,
    /// `PropagationDays`, `RotationDays`, `RetentionDays`, in seconds.
    pub propagation_secs: i64,
    pub rotation_secs: i64,
    pub retention_secs: i64,
}

/// DPoP proofs (RFC 9449).
#[derive(Clone, Debug)]
pub struct DpopSettings {
    /// `IdentityServer:DPoPSigningAlgorithms`.
    pub algorithms: Vec<Algorithm>,
    /// `IdentityServer:DPoPProofLifetimeSeconds`.
    pub proof_lifetime_secs: i64,
    /// `IdentityServer:DPoPNonce`.
    pub require_nonce: bool,
}

pub(super) fn oauth(config: &Config, errors: &mut Vec<ConfigError>) -> OAuthSettings {
    let names = Algorithm::ALL.map(Algorithm::as_str).join(", ");
    let signing_algorithm = match config.get(key::SIGNING_ALGORITHM.path) {
        Some(s) if !s.value.trim().is_empty() => match Algorithm::from_name(s.value.trim()) {
            Some(a) => Some(a),
            None => {
                errors.push(invalid(s, &format!("expected one of {names}")));
                None
            }
        },
        _ => None,
    };
    let audiences = config
        .list(key::AUDIENCES.path)
        .iter()
        .filter_map(|s| match resource_uri(s.value.trim()) {
            Ok(uri) => Some(uri.to_string()),
            Err(message) => {
                errors.push(invalid(s, &message));
                None
            }
        })
        .collect();
    let introspection_profiles = config
        .list(key::INTROSPECTION_PROFILES.path)
        .iter()
        .map(|s| s.value.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    let listed = config.list(key::DPOP_ALGORITHMS.path);
    let algorithms = if listed.is_empty() {
        vec![
            Algorithm::ES256,
            Algorithm::ES384,
            Algorithm::EdDSA,
            Algorithm::PS256,
            Algorithm::RS256,
        ]
    } else {
        listed
            .iter()
            .filter_map(|s| match Algorithm::from_name(s.value.trim()) {
                Some(a) => Some(a),
                None => {
                    errors.push(invalid(
                        s,
                        &format!("expected one of {names} (asymmetric algorithms only)"),
                    ));
                    None
                }
            })
            .collect()
    };
    let key_management = match config.get(key::KEY_MANAGEMENT.path) {
        None => KeyManagement::Certificate,
        Some(s) => match s.value.trim().to_ascii_lowercase().as_str() {
            "" | "certificate" => KeyManagement::Certificate,
            "automatic" => {
                let days = |k: &ids_config::Key, errors: &mut Vec<ConfigError>| {
                    number(config, k, errors) as i64 * 86_400
                };
                let managed = ManagedKeys {
                    algorithm: signing_algorithm.unwrap_or(Algorithm::ES256),
                    propagation_secs: days(&key::KEY_PROPAGATION_DAYS, errors),
                    rotation_secs: days(&key::KEY_ROTATION_DAYS, errors),
                    retention_secs: days(&key::KEY_RETENTION_DAYS, errors),
                };
                if managed.propagation_secs >= managed.rotation_secs
                    && let Some(s) = config.get(key::KEY_PROPAGATION_DAYS.path)
                {
                    errors.push(invalid(
                        s,
                        "must be less than IdentityServer:RotationDays (a key is published that long before it signs, within the previous key's rotation)",
                    ));
                }
                KeyManagement::Automatic(managed)
            }
            _ => {
                errors.push(invalid(
                    s,
                    "expected `Certificate` (sign with IdentityServer:X509KeyFilePath) or `Automatic` (the server makes and rotates its keys)",
                ));
                KeyManagement::Certificate
            }
        },
    };
    OAuthSettings {
        key_management,
        signing_algorithm,
        audiences,
        introspection_profiles,
        dpop: DpopSettings {
            algorithms,
            proof_lifetime_secs: number(config, &key::DPOP_PROOF_LIFETIME, errors) as i64,
            require_nonce: flag(config, &key::DPOP_NONCE, errors),
        },
    }
}

/// RFC 8707 section 2: a resource is an absolute URI without a fragment. Returns it, or why not.
pub fn resource_uri(value: &str) -> Result<&str, String> {
    let scheme_end = value.find(':').unwrap_or(0);
    let scheme_ok = scheme_end > 0
        && value[..scheme_end].chars().enumerate().all(|(i, c)| {
            c.is_ascii_alphabetic()
                || (i > 0 && (c.is_ascii_digit() || matches!(c, '+' | '-' | '.')))
        });
    if !scheme_ok || value.len() == scheme_end + 1 {
        return Err(format!(
            "`{}` is not an absolute URI (expected e.g. https://api.example.com)",
            crate::oauth::request::printable(value)
        ));
    }
    if value.contains('#') {
        return Err("a resource URI must not have a fragment (#...) (RFC 8707 section 2)".into());
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("a resource URI must not contain spaces or control characters".into());
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_are_absolute_uris_without_fragments() {
        assert!(resource_uri("https://api.example.com/v1").is_ok());
        assert!(resource_uri("urn:ids:deliveries").is_ok());
        for bad in [
            "api",
            "/relative",
            "https://a/#frag",
            "",
            "https://a b",
            "1http://x",
        ] {
            assert!(resource_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn settings_are_checked_with_the_key_named() {
        let config = Config::with_values(&[
            ("IdentityServer:SigningAlgorithm", "HS256"),
            ("IdentityServer:Audiences:0", "not a uri"),
            ("IdentityServer:DPoPSigningAlgorithms:0", "none"),
        ]);
        let mut errors = Vec::new();
        let _ = oauth(&config, &mut errors);
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 3, "{text:?}");
        assert!(text[0].contains("IdentityServer:SigningAlgorithm") && text[0].contains("PS256"));
        assert!(text[1].contains("IdentityServer:Audiences") && text[1].contains("absolute URI"));
        assert!(text[2].contains("IdentityServer:DPoPSigningAlgorithms"));
        let defaults = oauth(&Config::with_values(&[]), &mut Vec::new());
        assert_eq!(defaults.dpop.proof_lifetime_secs, 60);
        assert!(!defaults.dpop.require_nonce && defaults.signing_algorithm.is_none());
        assert_eq!(defaults.dpop.algorithms.len(), 5);
    }
}
