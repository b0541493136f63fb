//! The `/metrics` listener both apps serve when `Metrics:Urls` is set, and the metric families they
//! share (build information, certificate expiry).
//!
//! Exposition is Prometheus's OpenMetrics text format (`prometheus-client`), which Prometheus
//! negotiates and scrapes natively. The listener is plain HTTP on its own socket, meant for a private
//! address (loopback, or a monitoring network): it serves `GET /metrics` and nothing else, with a cap
//! on connections and a header timeout so that it cannot be used to hold the process's resources.

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// The content type of the OpenMetrics text exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The path metrics are served at.
pub const PATH: &str = "/metrics";

/// Connections the listener serves at once; more wait in the kernel's queue.
const MAX_CONNECTIONS: usize = 32;

/// Time a scraper has to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Parses `Metrics:Urls`: `;`-separated `http://host:port` URLs (an optional `/metrics` path), into
/// the `host:port` addresses to bind. The message says what was expected.
pub fn parse_urls(value: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for url in value.split(';').map(str::trim).filter(|u| !u.is_empty()) {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(format!(
                "`{url}` is not a URL: expected http://host:port, e.g. http://127.0.0.1:9464"
            ));
        };
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(format!(
                "`{url}`: metrics are served over plain HTTP (http://host:port) on a private address; put a TLS proxy in front to scrape them over HTTPS"
            ));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if !matches!(path, "" | "/" | PATH) {
            return Err(format!(
                "`{url}`: metrics are served at {PATH}; give the URL without a path (http://host:port)"
            ));
        }
        let port = authority
            .rsplit_once(':')
            .filter(|(host, _)| !host.is_empty() && (!host.contains(':') || host.ends_with(']')))
            .and_then(|(_, port)| port.parse::<u16>().ok());
        if port.is_none() {
            return Err(format!(
                "`{url}`: expected http://host:port with a port number (0 picks a free port), e.g. http://127.0.0.1:9464"
            ));
        }
        out.push(authority.to_string());
    }
    if out.is_empty() {
        return Err("expected at least one URL, e.g. http://127.0.0.1:9464".into());
    }
    Ok(out)
}

/// Renders the registry in the OpenMetrics text format.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail; an encoding error would leave a partial text, which a
    // scraper rejects as a whole.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}

/// What the listener answers `GET /metrics` with: called on every scrape.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// Serves `GET /metrics` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    render: Render,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return Ok(()),
            },
        };
        let (stream, _) = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::debug!("metrics listener: cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let render = render.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let render = render.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(&request, &render)) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .keep_alive(true)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            // A scraper that keeps a connection open without asking is closed after a while.
            let _ = tokio::time::timeout(Duration::from_secs(300), connection).await;
            drop(permit);
        });
    }
}

fn answer(request: &Request<Incoming>, render: &Render) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    let (status, content_type, body) = if path != PATH {
        (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            format!("metrics are served at {PATH}\n"),
        )
    } else if request.method() != Method::GET && request.method() != Method::HEAD {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "use GET\n".to_string(),
        )
    } else {
        (StatusCode::OK, CONTENT_TYPE, render())
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, v);
    }
    response
}

/// Registers `<prefix>_build_info{version}` (always 1).
pub fn register_build_info(registry: &mut Registry, prefix: &str, version: &str) {
    registry.register(
        format!("{prefix}_build"),
        "Build information: the running version",
        Info::new(vec![("version".to_string(), version.to_string())]),
    );
}

/// Labels of a certificate's expiry.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CertificateLabels {
    /// What the certificate is for (`signing`, `tls`, `encryption`, ...).
    pub role: String,
    /// Its subject, as `check` prints it.
    pub subject: String,
}

/// `<prefix>_certificate_expiry_timestamp_seconds{role,subject}`: when each certificate the process
/// holds stops being valid (`notAfter`, Unix seconds). A role's certificates are replaced as a whole
/// when they reload.
#[derive(Clone, Debug, Default)]
pub struct CertificateExpiry {
    family: Family<CertificateLabels, Gauge>,
    /// The label sets of each role (the family cannot list its own).
    roles: Arc<std::sync::Mutex<Vec<CertificateLabels>>>,
}

impl CertificateExpiry {
    pub fn register(registry: &mut Registry, prefix: &str) -> CertificateExpiry {
        let expiry = CertificateExpiry::default();
        registry.register(
            format!("{prefix}_certificate_expiry_timestamp_seconds"),
            "When each certificate held stops being valid (notAfter), in Unix seconds",
            expiry.family.clone(),
        );
        expiry
    }

    /// Replaces every certificate of `role` by `certificates` (`(subject, notAfter)`).
    pub fn set_role(&self, role: &str, certificates: &[(String, i64)]) {
        let mut known = self
            .roles
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        known.retain(|labels| {
            if labels.role == role {
                self.family.remove(labels);
                false
            } else {
                true
            }
        });
        // Two certificates of one subject in a role (a renewal overlapping the old one): the one
        // that expires first is the one to watch.
        let mut soonest: Vec<(&String, i64)> = Vec::new();
        for (subject, not_after) in certificates {
            match soonest.iter_mut().find(|(s, _)| *s == subject) {
                Some((_, t)) => *t = (*t).min(*not_after),
                None => soonest.push((subject, *not_after)),
            }
        }
        for (subject, not_after) in soonest {
            let labels = CertificateLabels {
                role: role.to_string(),
                subject: subject.clone(),
            };
            self.family.get_or_create(&labels).set(not_after);
            known.push(labels);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_plain_http_with_a_port() {
        assert_eq!(
            parse_urls("http://127.0.0.1:9464").unwrap(),
            vec!["127.0.0.1:9464"]
        );
        assert_eq!(
            parse_urls(" http://[::1]:0/metrics ; http://localhost:9 ").unwrap(),
            vec!["[::1]:0", "localhost:9"]
        );
        assert!(
            parse_urls("https://127.0.0.1:9464")
                .unwrap_err()
                .contains("plain HTTP")
        );
        assert!(parse_urls("http://127.0.0.1").unwrap_err().contains("port"));
        assert!(
            parse_urls("http://127.0.0.1:9/x")
                .unwrap_err()
                .contains("/metrics")
        );
        assert!(parse_urls("127.0.0.1:9").unwrap_err().contains("not a URL"));
        assert!(parse_urls(" ; ").is_err());
    }

    #[test]
    fn certificate_roles_are_replaced_alone() {
        let mut registry = Registry::default();
        let expiry = CertificateExpiry::register(&mut registry, "x");
        expiry.set_role("tls", &[("CN=a".into(), 10)]);
        expiry.set_role("signing", &[("CN=s".into(), 20)]);
        expiry.set_role("tls", &[("CN=b".into(), 30)]);
        expiry.set_role("validation", &[("CN=v".into(), 50), ("CN=v".into(), 40)]);
        let text = render(&registry);
        assert!(
            text.contains(
                r#"x_certificate_expiry_timestamp_seconds{role="tls",subject="CN=b"} 30"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"role="signing",subject="CN=s"} 20"#),
            "{text}"
        );
        assert!(!text.contains("CN=a"), "{text}");
        assert!(
            text.contains(r#"role="validation",subject="CN=v"} 40"#),
            "the soonest: {text}"
        );
    }
}
