//! The agent library against the real server over HTTPS: tokens obtained, verified, cached, refreshed;
//! and each failure class (credentials, unreachable, TLS trust) told apart.

use std::sync::Arc;

use agent::{AgentError, ExitStatus, ManualClock};
use serde_json::json;

use crate::support::{AgentDeployment, Deployment, verify_with_jwks};

/// The process exit code `agent token` ends with for `err`.
fn exit_code(err: &AgentError) -> u8 {
    ExitStatus::from(err).code()
}

#[tokio::test]
async fn token_obtained_verified_and_cached() {
    let server = Deployment::new().start().await;
    let agent = AgentDeployment::new(&server.base).agent();

    let token = agent.token().await.expect("token");
    assert_eq!(token.claims.client_id.as_deref(), Some("Job"));
    assert_eq!(token.claims.subject.as_deref(), Some("Job"));
    assert_eq!(token.claims.issuer, server.base);
    assert!(token.claims.has_scope("api"), "{:?}", token.claims.scopes);
    assert_eq!(token.token_type, "Bearer");
    // An independent implementation (jsonwebtoken + the JWKS) agrees.
    let claims = verify_with_jwks(&server, token.access_token.expose()).await;
    assert_eq!(claims["client_id"], "Job");
    // `Debug` never shows the bearer token.
    assert!(!format!("{token:?}").contains(token.access_token.expose()));

    let again = agent.token().await.expect("cached");
    assert_eq!(again.claims.jti, token.claims.jti);
    assert_eq!(agent.token_requests(), 1);
    server.stop().await;
}

#[tokio::test]
async fn concurrent_callers_share_one_request() {
    let server = Deployment::new().start().await;
    let agent = Arc::new(AgentDeployment::new(&server.base).agent());
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let agent = agent.clone();
            tokio::spawn(async move { agent.token().await.expect("token").claims.jti.clone() })
        })
        .collect();
    let mut jtis = Vec::new();
    for t in tasks {
        jtis.push(t.await.expect("join"));
    }
    jtis.dedup();
    assert_eq!(jtis.len(), 1, "all callers got the same token");
    assert_eq!(agent.token_requests(), 1);
    server.stop().await;
}

#[tokio::test]
async fn token_refreshed_before_expiry_with_an_injected_clock() {
    let mut d = Deployment::new();
    d.set("IdentityServer.AccessTokenLifetime", json!(60));
    let server = d.start().await;
    let clock = Arc::new(ManualClock::starting_now());
    let agent = AgentDeployment::new(&server.base).agent_with_clock(clock.clone());

    let first = agent.token().await.expect("token");
    assert_eq!(first.expires_in, 60);
    clock.advance(30);
    let same = agent.token().await.expect("still fresh");
    assert_eq!(same.claims.jti, first.claims.jti);
    // 50 s into a 60 s token: inside the refresh margin (a quarter of the lifetime).
    clock.advance(20);
    let fresh = agent.token().await.expect("refreshed");
    assert_ne!(fresh.claims.jti, first.claims.jti);
    assert_eq!(agent.token_requests(), 2);
    // Past the first token's expiry, that token no longer verifies; the new one does.
    clock.advance(45);
    let err = agent
        .verify(first.access_token.expose())
        .await
        .expect_err("expired");
    assert!(err.to_string().contains("expired"), "{err}");
    server.stop().await;
}

#[tokio::test]
async fn wrong_secret_is_a_credentials_error_without_retries() {
    let server = Deployment::new().start().await;
    let mut a = AgentDeployment::new(&server.base);
    a.set_agent("OpenId.OpenIdClients.Job", json!("not-the-secret"));
    a.set("Http.Retries", json!(5));
    let agent = a.agent();
    let err = agent.token().await.expect_err("refused");
    match &err {
        AgentError::Rejected {
            client,
            status,
            error,
            ..
        } => {
            assert_eq!(client, "Job");
            assert_eq!(*status, 401);
            assert_eq!(error, "invalid_client");
        }
        other => panic!("expected a credentials error, got {other:?}"),
    }
    assert_eq!(exit_code(&err), 5);
    let text = err.to_string();
    assert!(text.contains("HashedSecret"), "{text}");
    assert!(
        !text.contains("not-the-secret"),
        "the secret leaked: {text}"
    );
    // Discovery + one token request: no retry.
    assert_eq!(agent.http_requests(), 2);
    server.stop().await;
}

#[tokio::test]
async fn server_stopped_means_retries_then_unreachable() {
    let server = Deployment::new().start().await;
    let base = server.base.clone();
    let agent = AgentDeployment::new(&base).agent();
    agent.discovery().await.expect("discovery while up");
    server.stop().await;

    let err = agent.token().await.expect_err("down");
    match &err {
        AgentError::Unreachable { url, attempts, .. } => {
            assert_eq!(url, &format!("{base}/connect/token"));
            assert_eq!(*attempts, 3, "1 attempt + Http:Retries = 2");
        }
        other => panic!("expected unreachable, got {other:?}"),
    }
    assert_eq!(exit_code(&err), 3);
    assert!(err.to_string().contains("after 3 attempt(s)"), "{err}");
    assert_eq!(agent.http_requests(), 1 + 3);
}

#[tokio::test]
async fn certificate_from_another_ca_is_a_tls_trust_error() {
    let server = Deployment::new().start().await;
    let mut a = AgentDeployment::new(&server.base);
    a.set("Tls.TrustedCertificates", json!(["other-ca.crt"]));
    a.set("Http.Retries", json!(5));
    let agent = a.agent();
    let err = agent.token().await.expect_err("untrusted");
    match &err {
        AgentError::TlsTrust { detail, hint, .. } => {
            assert!(detail.contains("not issued by a trusted"), "{detail}");
            assert!(hint.contains("other-ca.crt"), "{hint}");
        }
        other => panic!("expected a TLS trust error, got {other:?}"),
    }
    assert_eq!(exit_code(&err), 4);
    assert_eq!(agent.http_requests(), 1, "a trust failure is not retried");

    // The default (the system's CAs) does not know the test CA either, and says how to fix it.
    let mut a = AgentDeployment::new(&server.base);
    a.settings["Tls"] = json!({});
    let err = a.agent().token().await.expect_err("untrusted");
    assert!(
        matches!(&err, AgentError::TlsTrust { hint, .. } if hint.contains("Tls:TrustedCertificates")),
        "{err:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn pinned_server_certificate_is_trusted_exactly() {
    let server = Deployment::new().start().await;
    // The server's own TLS certificate, pinned without its CA.
    let mut a = AgentDeployment::new(&server.base);
    a.set("Tls.TrustedCertificates", json!(["tls.crt"]));
    a.agent().token().await.expect("pinned leaf accepted");
    // Another certificate pinned: refused, with the presented certificate's fingerprint.
    let mut a = AgentDeployment::new(&server.base);
    a.set("Tls.TrustedCertificates", json!(["signing-rsa.crt"]));
    let err = a.agent().token().await.expect_err("not the pinned one");
    match &err {
        AgentError::TlsTrust { detail, .. } => {
            assert!(detail.contains("x5t#S256"), "{detail}");
        }
        other => panic!("expected a TLS trust error, got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn host_name_not_in_the_certificate_is_a_tls_trust_error() {
    // Listening on every address; the TLS certificate names localhost, 127.0.0.1 and ::1 only.
    let server = Deployment::new().start_at("0.0.0.0:0").await;
    let port = server.addr.port();
    let mut a = AgentDeployment::new(&format!("https://127.0.0.2:{port}"));
    a.set("IdentityServer.Issuer", json!(server.base));
    let err = a.agent().token().await.expect_err("wrong name");
    match &err {
        AgentError::TlsTrust { detail, .. } => assert!(detail.contains("host name"), "{detail}"),
        other => panic!("expected a TLS trust error, got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn token_signed_by_an_unpinned_key_is_refused() {
    // The server signs with the EC key; the agent pins the RSA certificate only.
    let mut d = Deployment::new();
    d.set("IdentityServer.X509KeyFilePath", json!("signing-ec.pfx"));
    let server = d.start().await;
    let agent = AgentDeployment::new(&server.base).agent();
    let err = agent.token().await.expect_err("unknown key");
    assert!(
        matches!(
            &err,
            AgentError::InvalidToken(ids_jose::VerifyError::UnknownKey { .. })
        ),
        "{err:?}"
    );
    assert_eq!(exit_code(&err), 6);
    server.stop().await;
}

#[tokio::test]
async fn issuer_mismatch_is_explained() {
    let server = Deployment::new().start().await;
    let mut a = AgentDeployment::new(&server.base);
    a.set("IdentityServer.Issuer", json!("https://ids.example.com"));
    let err = a.agent().token().await.expect_err("issuer");
    let text = err.to_string();
    assert!(text.contains("https://ids.example.com"), "{text}");
    assert!(text.contains(&server.base), "{text}");
    server.stop().await;
}

/// Rotation: the server restarts on the same address signing with a new (EC) key and still publishing
/// the old (RSA) certificate in `ValidationKeys`. Tokens from before and after verify.
#[tokio::test]
async fn signing_certificate_rotation() {
    let old = Deployment::new();
    let server = old.start().await;
    let addr = server.addr.to_string();
    let base = server.base.clone();

    let mut jwks_agent = AgentDeployment::new(&base);
    jwks_agent.set("IdentityServer.TokenValidation", json!("Jwks"));
    let clock = Arc::new(ManualClock::starting_now());
    let jwks_agent = jwks_agent.agent_with_clock(clock.clone());
    let old_token = jwks_agent.token().await.expect("token from the old key");
    assert_eq!(old_token.claims.algorithm, ids_pki::Algorithm::RS256);
    assert_eq!(jwks_agent.jwks_fetches(), 1);
    server.stop().await;

    let mut new = Deployment::new();
    new.set("IdentityServer.X509KeyFilePath", json!("signing-ec.pfx"));
    std::fs::copy(
        crate::support::fixtures().join("signing-rsa.crt"),
        new.path().join("signing-rsa.crt"),
    )
    .expect("copy");
    new.set("IdentityServer.ValidationKeys", json!(["signing-rsa.crt"]));
    let server = new.start_at(&addr).await;
    assert_eq!(server.base, base);

    // JWKS mode: the token endpoint's token names a new kid, so the JWKS is fetched again at once.
    let fresh = jwks_agent
        .fetch_token("Job", None)
        .await
        .expect("token from the new key");
    assert_eq!(fresh.claims.algorithm, ids_pki::Algorithm::ES256);
    assert_eq!(jwks_agent.jwks_fetches(), 2);
    jwks_agent
        .verify(old_token.access_token.expose())
        .await
        .expect("the old key is still published");

    // An unknown kid right after a fetch does not trigger another one.
    let forged = forge_with_kid(fresh.access_token.expose(), "rotated-away");
    let err = jwks_agent.verify(&forged).await.expect_err("unknown kid");
    assert!(
        matches!(
            &err,
            AgentError::InvalidToken(ids_jose::VerifyError::UnknownKey { .. })
        ),
        "{err:?}"
    );
    assert_eq!(jwks_agent.jwks_fetches(), 2);
    // Once the interval has passed, an unknown kid may fetch again (and is still refused).
    clock.advance(61);
    let err = jwks_agent.verify(&forged).await.expect_err("unknown kid");
    assert!(
        matches!(
            &err,
            AgentError::InvalidToken(ids_jose::VerifyError::UnknownKey { .. })
        ),
        "{err:?}"
    );
    assert_eq!(jwks_agent.jwks_fetches(), 3);
    jwks_agent.verify(&forged).await.expect_err("unknown kid");
    assert_eq!(jwks_agent.jwks_fetches(), 3, "at most once per interval");

    // Pinning mode with a list of certificates: both tokens verify, offline.
    let mut pinned = AgentDeployment::new(&base);
    pinned.set("IdentityServer.X509KeyFilePath", json!("signing-ec.crt"));
    pinned.set("IdentityServer.ValidationKeys", json!(["signing-rsa.crt"]));
    let pinned = pinned.agent();
    pinned
        .verify(old_token.access_token.expose())
        .await
        .expect("old key pinned");
    pinned
        .verify(fresh.access_token.expose())
        .await
        .expect("new key pinned");
    server.stop().await;
}

/// The same token with another `kid` in its header (the signature no longer matters: the kid is unknown).
fn forge_with_kid(token: &str, kid: &str) -> String {
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = token.split('.');
    let header = parts.next().expect("header");
    let rest: Vec<&str> = parts.collect();
    let mut json: serde_json::Value =
        serde_json::from_slice(&engine.decode(header).expect("b64")).expect("json");
    json["kid"] = json!(kid);
    format!(
        "{}.{}",
        engine.encode(serde_json::to_vec(&json).expect("json")),
        rest.join(".")
    )
}

/// The server's 429 asks for a longer pause than `Http:MaxRetryDelaySeconds`: the agent stops at once
/// with the status and the pause, instead of knocking again too early or calling it a credentials error.
#[tokio::test]
async fn rate_limited_beyond_the_longest_wait_is_reported_at_once() {
    let mut d = Deployment::new();
    d.set("IdentityServer.FailedAuthenticationsPerMinute", json!(1));
    let server = d.start().await;

    // One wrong secret spends this address's budget for the minute.
    let mut wrong = AgentDeployment::new(&server.base);
    wrong.set_agent("OpenId.OpenIdClients.Job", json!("not-the-secret"));
    let err = wrong.agent().token().await.expect_err("refused");
    assert!(matches!(err, AgentError::Rejected { .. }), "{err:?}");

    let mut a = AgentDeployment::new(&server.base);
    a.set("Http.Retries", json!(3));
    a.set("Http.MaxRetryDelaySeconds", json!(1));
    let agent = a.agent();
    let err = agent.token().await.expect_err("rate limited");
    match &err {
        AgentError::ServerError {
            status,
            attempts,
            detail,
            ..
        } => {
            assert_eq!(*status, 429);
            assert_eq!(*attempts, 1);
            assert!(detail.contains("retry after"), "{detail}");
        }
        other => panic!("expected a 429, got {other:?}"),
    }
    assert_eq!(exit_code(&err), 3);
    assert_eq!(agent.http_requests(), 2, "discovery + one token request");
    server.stop().await;
}

/// A plain-HTTP server on `port` answering each request with the next scripted response (then the
/// last one). Returns its base URL and the count of requests it received.
async fn scripted_server_at(port: u16, responses: Vec<String>) -> Scripted {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    let base = format!(
        "http://127.0.0.1:{}",
        listener.local_addr().expect("addr").port()
    );
    let requests = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = requests.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            // Read the head and the body it announces.
            while let Ok(n) = stream.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
                if request.first() == Some(&0x16) {
                    // A TLS ClientHello: answer in plain HTTP at once, as a plain-HTTP server would.
                    break;
                }
                let text = String::from_utf8_lossy(&request).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if request.len() >= end + 4 + length {
                        break;
                    }
                }
            }
            let index = {
                let mut seen = seen.lock().expect("lock");
                seen.push(String::from_utf8_lossy(&request).into_owned());
                seen.len() - 1
            };
            let response = responses
                .get(index)
                .or(responses.last())
                .cloned()
                .unwrap_or_default();
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
    });
    Scripted { base, requests }
}

/// A scripted server's address and the requests it received (as text).
struct Scripted {
    base: String,
    requests: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Scripted {
    fn count(&self) -> usize {
        self.requests.lock().expect("lock").len()
    }
    fn request(&self, index: usize) -> String {
        self.requests.lock().expect("lock")[index].clone()
    }
}

fn http_response(status: &str, headers: &[&str], body: &str) -> String {
    let mut text = format!(
        "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for h in headers {
        text.push_str(h);
        text.push_str("\r\n");
    }
    text.push_str("\r\n");
    text.push_str(body);
    text
}

/// A discovery document and a token signed with the `signing-rsa.pfx` fixture, issued by `issuer`.
fn discovery_and_token(issuer: &str) -> (String, String) {
    let pfx = ids_pki::Pfx::from_file(
        &crate::support::fixtures().join("signing-rsa.pfx"),
        crate::support::PASSWORD,
    )
    .expect("pfx");
    let signer = ids_jose::TokenSigner::new(pfx.key, &pfx.certificate);
    let now = agent::clock::Clock::now(&agent::SystemClock);
    let token = signer
        .sign(&json!({
            "iss": issuer, "aud": issuer, "sub": "Job", "client_id": "Job", "scope": "api",
            "jti": "scripted", "iat": now, "nbf": now, "exp": now + 600,
        }))
        .expect("sign");
    let discovery = json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}/connect/token"),
        "jwks_uri": format!("{issuer}/jwks"),
    })
    .to_string();
    let token =
        json!({ "access_token": token, "token_type": "Bearer", "expires_in": 600 }).to_string();
    (discovery, token)
}

fn insecure_agent(base: &str) -> AgentDeployment {
    let mut a = AgentDeployment::new(base);
    a.set("IdentityServer.DangerAllowInsecureHttp", json!(true));
    a.set("Http.RetryDelayMilliseconds", json!(1));
    a
}

/// A 503 with `Retry-After: 1` (seconds) and a 503 with an HTTP date are waited for, then retried.
#[tokio::test]
async fn unavailable_server_is_retried_after_retry_after() {
    let scripted = scripted_server_with(|issuer| {
        let (discovery, token) = discovery_and_token(issuer);
        let date = httpdate_in(1);
        vec![
            http_response("200 OK", &[], &discovery),
            http_response("503 Service Unavailable", &["Retry-After: 1"], "busy"),
            http_response(
                "503 Service Unavailable",
                &[&format!("Retry-After: {date}")],
                "busy",
            ),
            http_response("200 OK", &[], &token),
        ]
    })
    .await;
    let agent = insecure_agent(&scripted.base).agent();
    let started = std::time::Instant::now();
    let token = agent.token().await.expect("token after the 503s");
    assert_eq!(token.claims.jti.as_deref(), Some("scripted"));
    assert_eq!(scripted.count(), 4);
    assert_eq!(agent.http_requests(), 4);
    // The waits came from Retry-After, not from the 1 ms backoff.
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));
}

/// Like [`scripted_server`], with a script built from the server's own base URL.
async fn scripted_server_with(script: impl FnOnce(&str) -> Vec<String>) -> Scripted {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = probe.local_addr().expect("addr").port();
    drop(probe);
    let base = format!("http://127.0.0.1:{port}");
    let responses = script(&base);
    scripted_server_at(port, responses).await
}

/// An HTTP date `seconds` from now (RFC 9110 IMF-fixdate).
fn httpdate_in(seconds: i64) -> String {
    let when = time::OffsetDateTime::now_utc() + time::Duration::seconds(seconds);
    when.format(&time::format_description::well_known::Rfc2822)
        .expect("date")
        .replace("+0000", "GMT")
}
/// An HTTPS server that is not the identity server at `ApplicationUri`: a malformed-answer error that
/// points at the setting, not a retry loop.
#[tokio::test]
async fn wrong_application_uri_is_a_malformed_answer() {
    let server = Deployment::new().start().await;
    let mut a = AgentDeployment::new(&format!("{}/not-here", server.base));
    a.set("IdentityServer.Issuer", json!(server.base));
    let agent = a.agent();
    let err = agent.token().await.expect_err("no discovery there");
    match &err {
        AgentError::Malformed { url, detail } => {
            assert!(
                url.ends_with("/not-here/.well-known/openid-configuration"),
                "{url}"
            );
            assert!(detail.contains("HTTP 404"), "{detail}");
            assert!(detail.contains("ApplicationUri"), "{detail}");
        }
        other => panic!("expected a malformed answer, got {other:?}"),
    }
    assert_eq!(exit_code(&err), 6);
    assert_eq!(agent.http_requests(), 1, "a 404 is not retried");
    server.stop().await;
}

/// `ApplicationUri` names a port that serves plain HTTP: a TLS error that says so, not "untrusted", and
/// no retries.
#[tokio::test]
async fn plain_http_on_the_https_port_is_a_handshake_error() {
    let scripted =
        scripted_server_with(|_| vec![http_response("400 Bad Request", &[], "plain http")]).await;
    let https = scripted.base.replace("http://", "https://");
    let agent = AgentDeployment::new(&https).agent();
    let err = agent.token().await.expect_err("not TLS");
    match &err {
        AgentError::TlsHandshake { detail, .. } => {
            assert!(detail.contains("plain HTTP"), "{detail}");
        }
        other => panic!("expected a TLS handshake error, got {other:?}"),
    }
    assert_eq!(exit_code(&err), 4);
    assert_eq!(scripted.count(), 1, "no retry");
}

/// A refresh that fails while the cached token is still valid returns the cached token; callers that
/// waited for a failed refresh share its error instead of repeating the whole retry cycle.
#[tokio::test]
async fn failed_refresh_keeps_a_still_valid_token() {
    let mut d = Deployment::new();
    d.set("IdentityServer.AccessTokenLifetime", json!(60));
    let server = d.start().await;
    let clock = Arc::new(ManualClock::starting_now());
    let mut a = AgentDeployment::new(&server.base);
    a.set("Http.Retries", json!(0));
    let agent = Arc::new(a.agent_with_clock(clock.clone()));
    let first = agent.token().await.expect("token");
    server.stop().await;

    // Inside the refresh margin, the server down: the still-valid token is used.
    clock.advance(50);
    let kept = agent.token().await.expect("still valid");
    assert_eq!(kept.claims.jti, first.claims.jti);

    // Past its expiry: the error, once for all concurrent callers.
    clock.advance(20);
    let before = agent.http_requests();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let agent = agent.clone();
            tokio::spawn(async move { agent.token().await.map(|_| ()) })
        })
        .collect();
    for t in tasks {
        let err = t.await.expect("join").expect_err("expired and server down");
        assert!(matches!(err, AgentError::Unreachable { .. }), "{err:?}");
    }
    assert!(
        agent.http_requests() - before < 8,
        "waiting callers shared the failure ({} requests)",
        agent.http_requests() - before
    );
}

/// A self-signed server certificate (`CA:TRUE`, as `openssl req -x509` makes them) pinned in
/// `Tls:TrustedCertificates` is trusted as it is.
#[tokio::test]
async fn self_signed_ca_certificate_can_be_pinned() {
    use ids_devpki::{Ca, PfxProfile, to_pfx};
    let mut d = Deployment::new();
    let self_signed = Ca::new("localhost", 30).expect("self-signed");
    let pfx = to_pfx(
        &self_signed.cert,
        &[],
        "tls",
        crate::support::PASSWORD,
        PfxProfile::Modern,
    )
    .expect("pfx");
    std::fs::write(d.path().join("self-signed.pfx"), pfx).expect("write");
    d.set(
        "Kestrel.Certificates.Default.Path",
        json!("self-signed.pfx"),
    );
    let server = d.start_insecure_client().await;
    let mut a = AgentDeployment::new(&server.base);
    std::fs::write(a.path().join("self-signed.crt"), &self_signed.cert.cert_pem).expect("write");
    a.set("Tls.TrustedCertificates", json!(["self-signed.crt"]));
    a.agent()
        .token()
        .await
        .expect("pinned self-signed certificate");
    server.stop().await;
}

/// A server that does not advertise `client_secret_post` gets HTTP Basic, with both parts
/// form-urlencoded first (RFC 6749 section 2.3.1).
#[tokio::test]
async fn basic_authentication_encodes_id_and_secret() {
    let scripted = scripted_server_with(|issuer| {
        let (discovery, token) = discovery_and_token(issuer);
        vec![
            http_response("200 OK", &[], &discovery),
            http_response("200 OK", &[], &token),
        ]
    })
    .await;
    let mut a = insecure_agent(&scripted.base);
    a.set_agent("OpenId.OpenIdClients.Job", json!("p@ss word:é"));
    a.agent().token().await.expect("token");
    let request = scripted.request(1);
    use base64::Engine as _;
    let expected = base64::engine::general_purpose::STANDARD.encode("Job:p%40ss+word%3A%C3%A9");
    assert!(
        request.contains(&format!("authorization: Basic {expected}")),
        "{request}"
    );
    assert!(!request.contains("client_secret="), "{request}");
}

/// JWKS mode with the server down: the first verification fails, and a stream of tokens right after
/// does not make the agent knock again before the interval.
#[tokio::test]
async fn failed_jwks_fetch_is_not_repeated_for_every_token() {
    let server = Deployment::new().start().await;
    let base = server.base.clone();
    let mut a = AgentDeployment::new(&base);
    a.set("IdentityServer.TokenValidation", json!("Jwks"));
    a.set("Http.Retries", json!(0));
    let agent = a.agent();
    let token = AgentDeployment::new(&base)
        .agent()
        .token()
        .await
        .expect("token");
    agent.discovery().await.expect("discovery while up");
    server.stop().await;

    let err = agent
        .verify(token.access_token.expose())
        .await
        .expect_err("JWKS unreachable");
    assert!(matches!(err, AgentError::Unreachable { .. }), "{err:?}");
    let sent = agent.http_requests();
    for _ in 0..5 {
        let again = agent
            .verify(token.access_token.expose())
            .await
            .expect_err("still unreachable");
        assert!(matches!(again, AgentError::Unreachable { .. }), "{again:?}");
    }
    assert_eq!(
        agent.http_requests(),
        sent,
        "no new request within the interval"
    );
}
