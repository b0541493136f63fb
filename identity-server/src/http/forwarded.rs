//! Behind reverse proxies (`ForwardedHeaders`): from the proxies listed in `KnownProxies` /
//! `KnownNetworks` only, `Forwarded` (RFC 7239) or `X-Forwarded-For` give the client's address (used
//! by the rate limits and the audit trail), and `ClientCertificateHeader` gives the client
//! certificate when TLS ends at the proxy (RFC 9440 `Client-Cert`, nginx's URL-encoded PEM
//! `X-SSL-Client-Cert`, or base64 DER). The same headers from anyone else are removed before any
//! handler sees them, and counted (`ids_forwarded_headers_ignored_total`).
//!
//! The client address comes from one header, `ForwardedForHeader` (`X-Forwarded-For` by default, or
//! `Forwarded`): a proxy that sets one passes the client's own copy of the other through, so the other
//! is never read. It is read from the right, at most `ForwardLimit` entries (default 1: one proxy),
//! each believed only while the hop that added it is a known proxy; entries further left were written
//! by whoever sent the request and prove nothing.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderName, Request};
use axum::middleware::Next;
use axum::response::Response;

use super::AppState;
use crate::oauth::client_keys::PresentedCertificate;
use crate::settings::operations::{AddressHeader, ForwardedSettings, canonical};

const FORWARDED: &str = "forwarded";
const X_FORWARDED_FOR: &str = "x-forwarded-for";
/// Client-certificate headers that are removed from requests of unknown peers, configured or not.
const CERTIFICATE_HEADERS: [&str; 4] = [
    "client-cert",
    "client-cert-chain",
    "x-ssl-client-cert",
    "x-client-cert",
];

/// The address of the client a request is from: the TCP peer, or what a known proxy forwarded.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub IpAddr);

/// The client certificate a known proxy forwarded (the TLS-level one is the proxy's own).
#[derive(Debug, Clone)]
pub struct ForwardedCertificate(pub Option<PresentedCertificate>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        if let Some(address) = parts.extensions.get::<ClientAddress>() {
            return Ok(*address);
        }
        Ok(ClientAddress(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or(IpAddr::from([0, 0, 0, 0]), |c| canonical(c.0.ip())),
        ))
    }
}

/// Resolves the client address and certificate of every request (see the module documentation).
pub async fn resolve(
    State(state): State<Arc<AppState>>,
    mut request: Request<axum::body::Body>,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| canonical(c.0.ip()));
    let policy = &state.forwarded;
    let known = |ip: IpAddr| policy.known.iter().any(|n| n.contains(ip));
    match peer {
        Some(peer) if known(peer) => {
            let client = client_address(
                request.headers(),
                peer,
                policy.address_header,
                policy.forward_limit,
                &known,
            );
            request.extensions_mut().insert(ClientAddress(client));
            if let Some(name) = &policy.client_certificate_header {
                let certificate = client_certificate(request.headers(), name);
                request
                    .extensions_mut()
                    .insert(ForwardedCertificate(certificate));
            }
        }
        Some(peer) => {
            request.extensions_mut().insert(ClientAddress(peer));
            strip(request.headers_mut(), policy, &state.telemetry);
        }
        None => strip(request.headers_mut(), policy, &state.telemetry),
    }
    next.run(request).await
}

/// Removes (and counts) forwarding headers sent by a peer that is not a known proxy.
fn strip(
    headers: &mut HeaderMap,
    policy: &ForwardedSettings,
    telemetry: &crate::telemetry::Telemetry,
) {
    for (name, label) in [
        (FORWARDED, "forwarded"),
        (X_FORWARDED_FOR, "x-forwarded-for"),
    ] {
        if headers.remove(name).is_some() {
            telemetry.forwarded_ignored(label);
        }
    }
    let mut certificate = false;
    for name in CERTIFICATE_HEADERS {
        certificate |= headers.remove(name).is_some();
    }
    if let Some(name) = &policy.client_certificate_header {
        certificate |= headers.remove(name).is_some();
    }
    if certificate {
        telemetry.forwarded_ignored("client-certificate");
    }
}

/// The client's address: the entries of `header`, from the right, at most `limit` of them, each
/// believed while the hop that added it is a known proxy.
pub fn client_address(
    headers: &HeaderMap,
    peer: IpAddr,
    header: AddressHeader,
    limit: usize,
    known: &impl Fn(IpAddr) -> bool,
) -> IpAddr {
    let hops: Vec<Option<IpAddr>> = if header == AddressHeader::Forwarded {
        headers
            .get_all(FORWARDED)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(split_list)
            .map(|element| forwarded_for(&element))
            .collect()
    } else {
        headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| {
                v.split(',')
                    .map(|s| parse_node(s.trim()))
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let mut client = peer;
    for hop in hops.iter().rev().take(limit) {
        if !known(client) {
            break;
        }
        match hop {
            Some(ip) => client = canonical(*ip),
            // `unknown`, an obfuscated identifier or garbage: nothing further left is believed.
            None => break,
        }
    }
    client
}

/// The elements of a `Forwarded` value: split at commas outside quoted strings.
fn split_list(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in value.chars() {
        match c {
            _ if escaped => {
                current.push(c);
                escaped = false;
            }
            '\\' if quoted => {
                current.push(c);
                escaped = true;
            }
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ',' if !quoted => out.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    out.push(current);
    out
}

/// The `for=` node of one `Forwarded` element.
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("for")
            .then(|| parse_node(value.trim().trim_matches('"')))
            .flatten()
    })
}

/// `192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]`, `[2001:db8::1]:4711`, `2001:db8::1`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split_once(']').and_then(|(ip, _)| ip.parse().ok());
    }
    node.rsplit_once(':').and_then(|(ip, port)| {
        port.parse::<u16>().ok()?;
        ip.parse::<IpAddr>().ok().filter(IpAddr::is_ipv4)
    })
}

/// The certificate in header `name`: RFC 9440 (`:base64:`, with `Client-Cert-Chain` for the rest
/// of the chain), a URL-encoded or plain PEM (nginx `$ssl_client_escaped_cert`), or base64 DER. An
/// empty or unreadable value is no certificate (the reason logged).
pub fn client_certificate(headers: &HeaderMap, name: &HeaderName) -> Option<PresentedCertificate> {
    let value = headers.get(name)?.to_str().ok()?.trim();
    if value.is_empty() {
        return None;
    }
    let Some(leaf) = decode_certificate(value) else {
        tracing::warn!(
            header = %name,
            "the client certificate a known proxy forwarded cannot be read (expected RFC 9440 :base64:, URL-encoded PEM or base64 DER); the request has no client certificate"
        );
        return None;
    };
    let mut chain = vec![leaf];
    if name.as_str() == "client-cert"
        && let Some(rest) = headers
            .get("client-cert-chain")
            .and_then(|v| v.to_str().ok())
    {
        chain.extend(
            rest.split(',')
                .filter_map(|item| decode_certificate(item.trim())),
        );
    }
    Some(PresentedCertificate { chain })
}

fn decode_certificate(value: &str) -> Option<Vec<u8>> {
    // RFC 9440: a structured-field byte sequence.
    if let Some(inner) = value.strip_prefix(':').and_then(|v| v.strip_suffix(':')) {
        return ids_pki::b64::std_decode(inner);
    }
    let decoded = percent_encoding::percent_decode_str(value)
        .decode_utf8()
        .ok()?
        .into_owned();
    let body = match decoded.find("-----BEGIN CERTIFICATE-----") {
        Some(start) => {
            let rest = &decoded[start + "-----BEGIN CERTIFICATE-----".len()..];
            let end = rest.find("-----END CERTIFICATE-----")?;
            &rest[..end]
        }
        None => decoded.as_str(),
    };
    let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let der = ids_pki::b64::std_decode(&compact)?;
    // A DER certificate is a SEQUENCE.
    (der.first() == Some(&0x30)).then_some(der)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_client_is_the_first_untrusted_hop_from_the_right() {
        let proxies = |a: IpAddr| a == ip("10.0.0.1") || a == ip("10.0.0.2");
        let peer = ip("10.0.0.1");
        let xff = |h: &HeaderMap, limit| {
            client_address(h, peer, AddressHeader::XForwardedFor, limit, &proxies)
        };
        let fwd = |h: &HeaderMap, limit| {
            client_address(h, peer, AddressHeader::Forwarded, limit, &proxies)
        };
        // One proxy: its entry is the client.
        let h = headers(&[("x-forwarded-for", "203.0.113.7")]);
        assert_eq!(xff(&h, 1), ip("203.0.113.7"));
        // A forged entry left of the real client is not believed.
        let h = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.7")]);
        assert_eq!(xff(&h, 1), ip("203.0.113.7"));
        assert_eq!(
            xff(&h, 2),
            ip("203.0.113.7"),
            "not a known proxy: the walk stops"
        );
        // Two proxies in a row: only with a limit of 2.
        let h = headers(&[("x-forwarded-for", "203.0.113.7, 10.0.0.2")]);
        assert_eq!(xff(&h, 1), ip("10.0.0.2"));
        assert_eq!(xff(&h, 2), ip("203.0.113.7"));
        // A client's own entries left of a known-proxy entry, beyond the limit: not believed.
        let h = headers(&[("x-forwarded-for", "198.51.100.9, 10.0.0.2, 203.0.113.7")]);
        assert_eq!(xff(&h, 1), ip("203.0.113.7"));
        // Only the configured header is read: a Forwarded the client sent through an
        // X-Forwarded-For proxy is ignored, and the other way round.
        let h = headers(&[
            ("forwarded", r#"for="[2001:db8:cafe::17]:4711";proto=https"#),
            ("x-forwarded-for", "203.0.113.7"),
        ]);
        assert_eq!(xff(&h, 1), ip("203.0.113.7"));
        assert_eq!(
            fwd(&h, 1),
            ip("2001:db8:cafe::17"),
            "quoted IPv6 with a port"
        );
        // `unknown` stops the walk at the proxy that wrote it.
        let h = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(fwd(&h, 1), peer);
        // Garbage is not an address.
        let h = headers(&[("x-forwarded-for", "not-an-ip")]);
        assert_eq!(xff(&h, 1), peer);
        // IPv4 with a port.
        let h = headers(&[("x-forwarded-for", "203.0.113.9:5555")]);
        assert_eq!(xff(&h, 1), ip("203.0.113.9"));
    }

    #[test]
    fn certificates_come_in_three_spellings() {
        let der = ids_pki::b64::std_decode(
            "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA", // not a whole certificate: a SEQUENCE prefix
        )
        .unwrap();
        let b64 = ids_pki::b64::std(&der);
        let name = HeaderName::from_static("x-ssl-client-cert");
        let pem = format!("-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n");
        let escaped: String =
            percent_encoding::utf8_percent_encode(&pem, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        for value in [escaped.as_str(), &format!(":{b64}:"), &b64] {
            let h = headers(&[("x-ssl-client-cert", value)]);
            let c = client_certificate(&h, &name).unwrap();
            assert_eq!(c.chain[0], der, "{value}");
        }
        assert!(client_certificate(&headers(&[("x-ssl-client-cert", "")]), &name).is_none());
        assert!(client_certificate(&headers(&[("x-ssl-client-cert", "%%%")]), &name).is_none());
    }
}
