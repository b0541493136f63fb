//! The operations sections: `Metrics:Urls`, `Audit`, `Logging:Format` and `ForwardedHeaders`.

use std::net::IpAddr;
use std::path::Path;

use ids_config::keys::number;
use ids_config::{Config, ConfigError, invalid};
use ids_runtime::logging::StderrFormat;

use super::schema as key;
use crate::telemetry::AuditOutput;

/// What the server tells operators, and which proxies it believes.
#[derive(Clone, Debug)]
pub struct Operations {
    /// `Metrics:Urls`: `host:port` addresses to serve `/metrics` on (none: off).
    pub metrics: Vec<String>,
    /// `Audit:Path` / `Audit:Output` / `Audit:RetentionDays` (None: off).
    pub audit: Option<AuditOutput>,
    /// `Logging:Format`: standard error's format.
    pub log_format: StderrFormat,
    /// `ForwardedHeaders`.
    pub forwarded: ForwardedSettings,
}

/// `ForwardedHeaders`: which peers are reverse proxies whose headers are believed.
#[derive(Clone, Debug, Default)]
pub struct ForwardedSettings {
    /// `KnownProxies` (single addresses) and `KnownNetworks` (CIDR), together.
    pub known: Vec<Network>,
    /// `ClientCertificateHeader`, lower-case (None: client certificates come from TLS only).
    pub client_certificate_header: Option<http::HeaderName>,
    /// `ForwardedForHeader`: the one header the client address is read from (the other is ignored:
    /// a proxy that sets one passes the client's own copy of the other through).
    pub address_header: AddressHeader,
    /// `ForwardLimit`: how many entries, from the right, known proxies added.
    pub forward_limit: usize,
}

/// Where known proxies put the client's address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AddressHeader {
    /// `X-Forwarded-For` (nginx `$proxy_add_x_forwarded_for`, HAProxy `option forwardfor`).
    #[default]
    XForwardedFor,
    /// `Forwarded` (RFC 7239 `for=`).
    Forwarded,
}

/// An address range: `10.0.0.0/8`, or one address (`/32`, `/128`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Network {
    pub address: IpAddr,
    pub prefix: u8,
}

impl Network {
    /// `192.0.2.7`, `10.0.0.0/8`, `::1`, `2001:db8::/32`; an IPv4 address written as IPv6
    /// (`::ffff:192.0.2.7`) is the IPv4 one.
    pub fn parse(text: &str) -> Result<Network, String> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let address: IpAddr = address
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| format!("`{text}` is not an IP address or network: expected e.g. 10.0.0.5, 10.0.0.0/8 or 2001:db8::/32"))?;
        let address = canonical(address);
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{text}`: the prefix length must be 0 to {max}"))?,
        };
        Ok(Network { address, prefix })
    }

    /// Whether `peer` is in this range.
    pub fn contains(&self, peer: IpAddr) -> bool {
        match (self.address, canonical(peer)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// An IPv4-mapped IPv6 address as IPv4 (a dual-stack socket reports IPv4 peers that way).
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

pub(super) fn operations(config: &Config, errors: &mut Vec<ConfigError>) -> Operations {
    let metrics = match config.get(key::METRICS_URLS.path) {
        Some(s) if !s.value.trim().is_empty() => match ids_runtime::metrics::parse_urls(&s.value) {
            Ok(addresses) => addresses,
            Err(message) => {
                errors.push(invalid(s, &message));
                Vec::new()
            }
        },
        _ => Vec::new(),
    };
    let log_format = match config.get(key::LOGGING_FORMAT.path) {
        Some(s) => StderrFormat::parse(&s.value, StderrFormat::Full).unwrap_or_else(|m| {
            errors.push(invalid(s, &m));
            StderrFormat::Full
        }),
        None => StderrFormat::Full,
    };
    let retention_days = number(config, &key::AUDIT_RETENTION_DAYS, errors) as u32;
    let path = config
        .path(key::AUDIT_PATH.path)
        .filter(|p| !p.as_os_str().is_empty());
    let audit = match config.get(key::AUDIT_OUTPUT.path) {
        Some(s) if s.value.trim().eq_ignore_ascii_case("stdout") => Some(AuditOutput::Stdout),
        Some(s) if s.value.trim().is_empty() || s.value.trim().eq_ignore_ascii_case("file") => {
            match path {
                Some(path) => Some(AuditOutput::Folder {
                    path,
                    retention_days,
                }),
                None if s.value.trim().is_empty() => None,
                None => {
                    errors.push(invalid(
                        s,
                        "is File, but Audit:Path is not set: give the folder of the audit files",
                    ));
                    None
                }
            }
        }
        Some(s) => {
            errors.push(invalid(
                s,
                "expected `File` (the folder Audit:Path) or `Stdout`",
            ));
            None
        }
        None => path.map(|path| AuditOutput::Folder {
            path,
            retention_days,
        }),
    };
    Operations {
        metrics,
        audit,
        log_format,
        forwarded: forwarded(config, errors),
    }
}

fn forwarded(config: &Config, errors: &mut Vec<ConfigError>) -> ForwardedSettings {
    let mut known = Vec::new();
    for (list_key, single) in [
        (key::FORWARDED_KNOWN_PROXIES.path, true),
        (key::FORWARDED_KNOWN_NETWORKS.path, false),
    ] {
        for s in &config.list(list_key) {
            for item in s
                .value
                .split([';', ','])
                .map(str::trim)
                .filter(|i| !i.is_empty())
            {
                match Network::parse(item) {
                    Ok(n) if single && item.contains('/') => {
                        errors.push(invalid(
                            s,
                            &format!("`{item}` is a network: put networks in ForwardedHeaders:KnownNetworks, single addresses in KnownProxies"),
                        ));
                        let _ = n;
                    }
                    Ok(n) => known.push(n),
                    Err(m) => errors.push(invalid(s, &m)),
                }
            }
        }
    }
    let address_header = match config.get(key::FORWARDED_HEADER.path) {
        None => AddressHeader::XForwardedFor,
        Some(s) => match s.value.trim().to_ascii_lowercase().as_str() {
            "" | "x-forwarded-for" => AddressHeader::XForwardedFor,
            "forwarded" => AddressHeader::Forwarded,
            _ => {
                errors.push(invalid(s, "expected `X-Forwarded-For` or `Forwarded`"));
                AddressHeader::XForwardedFor
            }
        },
    };
    let forward_limit = number(config, &key::FORWARD_LIMIT, errors) as usize;
    let client_certificate_header = match config.get(key::FORWARDED_CLIENT_CERTIFICATE_HEADER.path)
    {
        Some(s) if !s.value.trim().is_empty() => {
            match http::HeaderName::from_bytes(s.value.trim().to_ascii_lowercase().as_bytes()) {
                Ok(name) => {
                    if known.is_empty() {
                        errors.push(invalid(
                            s,
                            "is set, but no proxy is trusted: list the proxy that sets it in ForwardedHeaders:KnownProxies (or KnownNetworks); the header is only believed from them",
                        ));
                    }
                    Some(name)
                }
                Err(_) => {
                    errors.push(invalid(
                        s,
                        "is not a valid header name: expected e.g. Client-Cert (RFC 9440) or X-SSL-Client-Cert (nginx)",
                    ));
                    None
                }
            }
        }
        _ => None,
    };
    ForwardedSettings {
        known,
        client_certificate_header,
        address_header,
        forward_limit,
    }
}

/// `Logging:Format` read from `dir`'s settings before anything else is loaded (logging starts
/// first); `Text` when it cannot be read (the settings' own validation reports the error).
pub fn log_format(dir: &Path) -> StderrFormat {
    let vars: Vec<(String, String)> = std::env::vars().collect();
    let schema = super::schema();
    let Ok(config) = Config::load(dir, "appsettings", true, &vars, &schema) else {
        return StderrFormat::Full;
    };
    config
        .get(key::LOGGING_FORMAT.path)
        .and_then(|s| StderrFormat::parse(&s.value, StderrFormat::Full).ok())
        .unwrap_or(StderrFormat::Full)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn networks_contain_their_addresses() {
        let n = Network::parse("10.1.0.0/16").unwrap();
        assert!(n.contains("10.1.200.3".parse().unwrap()));
        assert!(!n.contains("10.2.0.1".parse().unwrap()));
        assert!(n.contains("::ffff:10.1.0.9".parse().unwrap()));
        let one = Network::parse("127.0.0.1").unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        let v6 = Network::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8:1::5".parse().unwrap()));
        assert!(!v6.contains("2001:db9::5".parse().unwrap()));
        assert!(
            Network::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(Network::parse("10.0.0.0/33").is_err());
        assert!(Network::parse("proxy.example").is_err());
    }

    #[test]
    fn settings_are_read_and_checked() {
        let config = Config::with_values(&[
            ("IdentityServer:X509KeyFilePath", "s.pfx"),
            ("Metrics:Urls", "http://127.0.0.1:0"),
            ("Audit:Path", "audit"),
            ("Logging:Format", "json"),
            ("ForwardedHeaders:KnownProxies", "127.0.0.1"),
            ("ForwardedHeaders:KnownNetworks", "10.0.0.0/8"),
            (
                "ForwardedHeaders:ClientCertificateHeader",
                "X-SSL-Client-Cert",
            ),
        ]);
        let settings = crate::Settings::from_config(&config).unwrap();
        let ops = settings.operations;
        assert_eq!(ops.metrics, vec!["127.0.0.1:0"]);
        assert!(matches!(
            ops.audit,
            Some(AuditOutput::Folder {
                retention_days: 365,
                ..
            })
        ));
        assert_eq!(ops.log_format, StderrFormat::Json);
        assert_eq!(ops.forwarded.known.len(), 2);
        assert_eq!(
            ops.forwarded.client_certificate_header.unwrap().as_str(),
            "x-ssl-client-cert"
        );

        for (key, value, expected) in [
            ("Metrics:Urls", "https://0.0.0.0:9464", "plain HTTP"),
            ("Audit:Output", "Syslog", "expected `File`"),
            ("Audit:Output", "File", "Audit:Path is not set"),
            ("Logging:Format", "xml", "expected Text or Json"),
            (
                "ForwardedHeaders:KnownProxies",
                "10.0.0.0/8",
                "KnownNetworks",
            ),
            (
                "ForwardedHeaders:KnownNetworks",
                "nginx",
                "not an IP address",
            ),
            (
                "ForwardedHeaders:ClientCertificateHeader",
                "Client-Cert",
                "no proxy is trusted",
            ),
        ] {
            let config =
                Config::with_values(&[("IdentityServer:X509KeyFilePath", "s.pfx"), (key, value)]);
            let errors = crate::Settings::from_config(&config).unwrap_err();
            let text = errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n");
            assert!(
                text.contains(key) && text.contains(expected),
                "{key}={value}: {text}"
            );
        }
    }
}
