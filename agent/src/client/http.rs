//! HTTPS with timeouts, retries and errors that say what went wrong.
//!
//! Retried, with exponential backoff and jitter: connection failures, timeouts, 5xx and 429 (a
//! `Retry-After` is honoured up to `Http:MaxRetryDelaySeconds`). Never retried: a TLS trust failure
//! (it will not fix itself) and any other answer, which the caller interprets.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use reqwest::{Client, RequestBuilder, Response, StatusCode};

use crate::error::{AgentError, SetupError};
use crate::settings::{AgentKeys, HttpPolicy, ServerPinning, Settings, TlsTrust};
use ids_runtime::RetryPolicy;

/// The agent's HTTP client.
#[derive(Debug, Clone)]
pub struct Http {
    client: Client,
    policy: HttpPolicy,
    retry: RetryPolicy,
    tls_hint: String,
    /// What to do when `Tls:ServerPinning` refuses the server.
    pin_hint: String,
    /// Requests sent, retries included (diagnostics and tests).
    sent: Arc<AtomicU64>,
}

impl Http {
    pub fn new(settings: &Settings, keys: &AgentKeys) -> Result<Self, AgentError> {
        let pinning = crate::tls::Pinning::for_settings(settings);
        let tls = crate::tls::client_config(
            &settings.tls,
            &keys.trusted,
            &pinning,
            keys.client_key.as_ref(),
        )
        .map_err(SetupError::Tls)?;
        let client = Client::builder()
            .tls_backend_preconfigured(tls)
            .https_only(!settings.allow_insecure_http)
            .timeout(settings.http.timeout)
            .connect_timeout(settings.http.connect_timeout)
            // A peer that vanished (host down, cable cut) is noticed during a long upload too.
            .tcp_keepalive(Duration::from_secs(30))
            // The server closes an idle HTTP/1.1 connection after 10 s by default: do not keep one
            // that long, so a request never goes out on a connection the server is closing.
            .pool_idle_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("ids-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SetupError::HttpClient(Arc::new(e)))?;
        let tls_hint = match &settings.tls {
            TlsTrust::System => "the agent trusts the system's CA store; to trust a private CA or the server's own certificate, set Tls:TrustedCertificates to its file".to_string(),
            TlsTrust::Only { files } => format!(
                "the agent trusts only Tls:TrustedCertificates ({}): add the CA that issued the server's certificate, or the server's certificate itself",
                files.iter().map(|f| f.path.display().to_string()).collect::<Vec<_>>().join(", ")
            ),
        };
        let pin_hint = match &settings.server_pinning {
            ServerPinning::Strict { .. } => {
                "Tls:ServerPinning is Strict: only the listed keys and certificates are accepted"
                    .to_string()
            }
            ServerPinning::First { .. } => "Tls:ServerPinning is First: a key other than the one pinned at the first connection may be an impostor's".to_string(),
            ServerPinning::Always => String::new(),
        };
        Ok(Http {
            client,
            policy: settings.http.clone(),
            retry: RetryPolicy::new(
                settings.http.retries,
                settings.http.retry_delay,
                settings.http.max_retry_delay,
            ),
            tls_hint,
            pin_hint,
            sent: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Sends the request `build` makes, retrying what is worth retrying. Returns the first answer that
    /// is not 5xx/429, or the final error.
    pub async fn send(
        &self,
        url: &str,
        build: impl Fn(&Client) -> RequestBuilder,
    ) -> Result<Response, AgentError> {
        let attempts = self.retry.attempts();
        let mut last_failure = Failure::Connection(String::new());
        for attempt in 1..=attempts {
            self.sent.fetch_add(1, Ordering::Relaxed);
            let wait = match build(&self.client).send().await {
                Ok(response)
                    if response.status() == StatusCode::TOO_MANY_REQUESTS
                        || response.status().is_server_error() =>
                {
                    let retry_after = retry_after(&response);
                    let status = response.status();
                    let body = summarize(&read_beginning(response).await);
                    match retry_after {
                        // A longer pause than the agent may wait: report it now rather than
                        // knocking again too early.
                        Some(wait) if self.retry.too_long(wait) => {
                            return Err(status_error(url, status, attempt, &body, Some(wait)));
                        }
                        Some(wait) => {
                            last_failure = Failure::Status(status, body);
                            wait
                        }
                        None => {
                            last_failure = Failure::Status(status, body);
                            self.retry.backoff(attempt)
                        }
                    }
                }
                Ok(response) => return Ok(response),
                Err(e) if e.is_builder() => return Err(request_error(url, e)),
                Err(e) => {
                    match tls_failure(&e) {
                        Some(TlsFailure::Untrusted(detail)) => {
                            return Err(AgentError::TlsTrust {
                                url: url.to_string(),
                                detail,
                                hint: self.tls_hint.clone(),
                            });
                        }
                        Some(TlsFailure::Pinned(detail)) => {
                            return Err(AgentError::TlsTrust {
                                url: url.to_string(),
                                detail,
                                hint: self.pin_hint.clone(),
                            });
                        }
                        Some(TlsFailure::Handshake(detail)) => {
                            return Err(AgentError::TlsHandshake {
                                url: url.to_string(),
                                detail,
                            });
                        }
                        None => {}
                    }
                    last_failure = Failure::Connection(describe(&e));
                    self.retry.backoff(attempt)
                }
            };
            if attempt < attempts {
                let wait = wait.min(self.retry.max_delay);
                tracing::warn!(
                    "{url}: {}; retrying in {} ms (attempt {attempt} of {attempts})",
                    last_failure.describe(),
                    wait.as_millis()
                );
                tokio::time::sleep(wait).await;
            }
        }
        Err(match last_failure {
            Failure::Status(status, body) => status_error(url, status, attempts, &body, None),
            Failure::Connection(detail) => AgentError::Unreachable {
                url: url.to_string(),
                attempts,
                detail,
            },
        })
    }

    /// Sends one request, without retrying (the caller owns the retry policy, e.g. for a streamed body
    /// that must be rebuilt). Transport errors are classified as in [`Http::send`]; any answer is
    /// returned as is. `timeout` replaces the client's total timeout (a large upload takes longer).
    pub async fn send_once(
        &self,
        url: &str,
        build: impl FnOnce(&Client) -> RequestBuilder,
        timeout: Duration,
    ) -> Result<Response, AgentError> {
        self.sent.fetch_add(1, Ordering::Relaxed);
        match build(&self.client).timeout(timeout).send().await {
            Ok(response) => Ok(response),
            Err(e) if e.is_builder() => Err(request_error(url, e)),
            Err(e) => Err(match tls_failure(&e) {
                Some(TlsFailure::Untrusted(detail)) => AgentError::TlsTrust {
                    url: url.to_string(),
                    detail,
                    hint: self.tls_hint.clone(),
                },
                Some(TlsFailure::Pinned(detail)) => AgentError::TlsTrust {
                    url: url.to_string(),
                    detail,
                    hint: self.pin_hint.clone(),
                },
                Some(TlsFailure::Handshake(detail)) => AgentError::TlsHandshake {
                    url: url.to_string(),
                    detail,
                },
                None => AgentError::Unreachable {
                    url: url.to_string(),
                    attempts: 1,
                    detail: describe(&e),
                },
            }),
        }
    }

    /// The configured timeout of one request.
    pub fn timeout(&self) -> Duration {
        self.policy.timeout
    }

    /// Requests sent so far, retries included.
    pub fn requests_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Attempts and pauses (`Http:Retries`, `Http:RetryDelayMilliseconds`, `Http:MaxRetryDelaySeconds`),
    /// also for callers that retry on their own (`agent push`, whose body must be rebuilt for each
    /// attempt).
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }
}

/// A request reqwest refused to build.
fn request_error(url: &str, source: reqwest::Error) -> AgentError {
    SetupError::Request {
        url: url.to_string(),
        source: Arc::new(source),
    }
    .into()
}

/// The final error for a 5xx/429 answer.
fn status_error(
    url: &str,
    status: StatusCode,
    attempts: u32,
    body: &str,
    retry_after: Option<Duration>,
) -> AgentError {
    let mut detail = String::new();
    if let Some(wait) = retry_after {
        detail.push_str(&format!(
            "; the server asks to retry after {} s (longer than Http:MaxRetryDelaySeconds)",
            wait.as_secs()
        ));
    }
    if !body.is_empty() {
        detail.push_str(": ");
        detail.push_str(body);
    }
    AgentError::ServerError {
        url: url.to_string(),
        status: status.as_u16(),
        attempts,
        detail,
    }
}

enum Failure {
    Status(StatusCode, String),
    Connection(String),
}

impl Failure {
    fn describe(&self) -> String {
        match self {
            Failure::Status(status, _) => format!("HTTP {status}"),
            Failure::Connection(detail) => detail.clone(),
        }
    }
}

/// `Retry-After` in seconds or as an HTTP date (RFC 9110 section 10.2.3).
pub(crate) fn retry_after(response: &Response) -> Option<Duration> {
    let value = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?;
    parse_retry_after(value, SystemTime::now())
}

/// `delay-seconds` or an HTTP date (IMF-fixdate, and the obsolete RFC 850 and asctime forms a
/// recipient must accept, RFC 9110 section 5.6.7) read by `httpdate`; a date in the past is no
/// wait. Anything else is `None`.
fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// What went wrong in a TLS handshake.
enum TlsFailure {
    /// The server's certificate is not trusted: a configuration matter on the agent's side.
    Untrusted(String),
    /// The certificate passed the usual validation, but `Tls:ServerPinning` refused its key.
    Pinned(String),
    /// Anything else: not TLS at all, nothing in common, a client certificate required.
    Handshake(String),
}

/// The TLS failure inside a connection error, if that is what it is.
fn tls_failure(error: &reqwest::Error) -> Option<TlsFailure> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        // io::Error hides its payload from `source()`; hyper-util nests one io::Error in another.
        let mut inner: &(dyn std::error::Error + 'static) = e;
        while let Some(payload) = inner
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            inner = payload;
        }
        if let Some(r) = inner.downcast_ref::<rustls::Error>() {
            use rustls::AlertDescription as A;
            return Some(match r {
                rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other))
                    if other.0.downcast_ref::<crate::tls::PinRefused>().is_some() =>
                {
                    TlsFailure::Pinned(other.to_string())
                }
                rustls::Error::InvalidCertificate(cert) => {
                    TlsFailure::Untrusted(describe_certificate_error(cert))
                }
                rustls::Error::AlertReceived(A::CertificateRequired) => TlsFailure::Handshake(
                    "the server requires a client certificate (mutual TLS), which this agent does not present".into(),
                ),
                rustls::Error::InvalidMessage(_) => {
                    TlsFailure::Handshake(
                        "the server did not answer with TLS: is it serving plain HTTP on this port? (ApplicationUri must name its HTTPS port)".into(),
                    )
                }
                rustls::Error::PeerIncompatible(_) | rustls::Error::AlertReceived(A::ProtocolVersion) => {
                    TlsFailure::Handshake(format!(
                        "no TLS version or cipher suite in common with the server ({r})"
                    ))
                }
                other => TlsFailure::Handshake(format!("the TLS handshake failed: {other}")),
            });
        }
        source = e.source();
    }
    None
}

fn describe_certificate_error(error: &rustls::CertificateError) -> String {
    use rustls::CertificateError as C;
    match error {
        C::UnknownIssuer => {
            "its TLS certificate is not issued by a trusted certificate authority".into()
        }
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            "its TLS certificate is not valid for the host name in ApplicationUri (the name must be among the certificate's subject alternative names)".into()
        }
        C::Expired | C::ExpiredContext { .. } => "its TLS certificate has expired".into(),
        C::NotValidYet | C::NotValidYetContext { .. } => {
            "its TLS certificate is not valid yet (check the clocks)".into()
        }
        C::Other(other) => other.to_string(),
        other => format!("its TLS certificate was refused ({other:?})"),
    }
}

/// The innermost cause of a transport error, which is the informative one ("Connection refused").
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_string()
    } else if error.is_connect() {
        "connection failed".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(error);
    let mut innermost = None;
    while let Some(e) = source {
        innermost = Some(e.to_string());
        source = e.source();
    }
    if let Some(inner) = innermost {
        text.push_str(": ");
        text.push_str(&inner);
    }
    text
}

/// At most 300 printable characters of a body, for messages (control characters, line separators and
/// bidirectional overrides left out: the text is the server's).
pub fn summarize(body: &str) -> String {
    printable_chars(body)
        .take(300)
        .collect::<String>()
        .trim()
        .to_string()
}

/// `text` from the server without control characters, line separators and bidirectional overrides.
pub fn printable(text: &str) -> String {
    printable_chars(text).collect()
}

fn printable_chars(text: &str) -> impl Iterator<Item = char> + '_ {
    text.chars()
        .filter(|c| !ids_config::log_escape::is_escaped(*c))
}

/// The most the agent reads of any answer of the server: discovery document, JWKS, token response,
/// error bodies, delivery receipts. The largest of them (a JWKS during a rotation) is a few KiB.
pub const MAX_BODY: usize = 1024 * 1024;

/// What the agent reads of a 5xx/429 body, only to quote its beginning in a message.
const SUMMARY_BYTES: usize = 16 * 1024;

/// The body of `response` from `url`, at most [`MAX_BODY`] bytes. A larger one (announced by
/// `Content-Length`, or found while reading) is refused without reading the rest: the connection is
/// dropped. `what` names the body in messages ("token response").
pub async fn read_body(
    mut response: Response,
    url: &str,
    what: &str,
) -> Result<Vec<u8>, AgentError> {
    let too_large = |announced: Option<u64>| AgentError::Malformed {
        url: url.to_string(),
        detail: format!(
            "the {what} is larger than 1 MiB ({MAX_BODY} bytes{}), the most the agent reads; refused without reading the rest",
            announced.map_or(String::new(), |n| format!("; Content-Length: {n}"))
        ),
    };
    if let Some(announced) = response.content_length()
        && announced > MAX_BODY as u64
    {
        return Err(too_large(Some(announced)));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| AgentError::Malformed {
        url: url.to_string(),
        detail: format!("cannot read the {what}: {e}"),
    })? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(too_large(None));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The beginning of `response`'s body (at most [`SUMMARY_BYTES`]), for a message; the rest is not read.
async fn read_beginning(mut response: Response) -> String {
    let mut body = Vec::new();
    while body.len() < SUMMARY_BYTES
        && let Ok(Some(chunk)) = response.chunk().await
    {
        body.extend_from_slice(&chunk);
    }
    body.truncate(SUMMARY_BYTES);
    String::from_utf8_lossy(&body).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_or_as_an_http_date() {
        // Sun, 22 Nov 2026 14:00:00 GMT
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_356_000);
        assert_eq!(parse_retry_after(" 5 ", now), Some(Duration::from_secs(5)));
        assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Sun, 22 Nov 2026 14:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        // The obsolete forms RFC 9110 section 5.6.7 makes a recipient accept.
        assert_eq!(
            parse_retry_after("Sunday, 22-Nov-26 14:01:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Sun Nov 22 14:00:02 2026", now),
            Some(Duration::from_secs(2))
        );
        // A date in the past, or now, is no wait.
        assert_eq!(
            parse_retry_after("Sun, 22 Nov 2026 13:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("Sun, 22 Nov 2026 14:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(parse_retry_after("", now), None);
        // RFC 2822 leniencies (a numeric zone, no weekday) are not HTTP dates.
        assert_eq!(parse_retry_after("22 Nov 2026 14:00:30 +0000", now), None);
    }
}
