//! The agent library against the real server over HTTPS: tokens obtained, verified, cached, refreshed;
//! and each failure class (credentials, unreachable, TLS trust) told apart.

use std::sync::Arc;

use agent::{AgentError, ManualClock};
use serde_json::json;

use crate::support::{AgentDeployment, Deployment, verify_with_jwks};

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
    assert_eq!(err.exit_code(), 5);
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
    assert_eq!(err.exit_code(), 3);
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
    assert_eq!(err.exit_code(), 4);
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
    let server = Deployment::new().start().await;
    // The TLS certificate names localhost, 127.0.0.1 and ::1; "127.0.0.2" is not among them.
    let port = server.addr.port();
    let mut a = AgentDeployment::new(&format!("https://127.0.0.2:{port}"));
    a.set("IdentityServer.Issuer", json!(server.base));
    let err = a.agent().token().await.expect_err("wrong name");
    // Some systems do not route 127.0.0.2; then it is unreachable, which is also not a success.
    match &err {
        AgentError::TlsTrust { detail, .. } => assert!(detail.contains("host name"), "{detail}"),
        AgentError::Unreachable { .. } => {}
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
            AgentError::InvalidToken(ids_crypto::VerifyError::UnknownKey { .. })
        ),
        "{err:?}"
    );
    assert_eq!(err.exit_code(), 6);
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
    assert_eq!(old_token.claims.algorithm, ids_crypto::Algorithm::RS256);
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
    assert_eq!(fresh.claims.algorithm, ids_crypto::Algorithm::ES256);
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
            AgentError::InvalidToken(ids_crypto::VerifyError::UnknownKey { .. })
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
            AgentError::InvalidToken(ids_crypto::VerifyError::UnknownKey { .. })
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

/// A 429 is retried after the server's `Retry-After` (capped by `Http:MaxRetryDelaySeconds`), then
/// reported with its status; it is not mistaken for a credentials error.
#[tokio::test]
async fn rate_limited_requests_are_retried_after_retry_after() {
    let mut d = Deployment::new();
    d.set("IdentityServer.FailedAuthenticationsPerMinute", json!(1));
    let server = d.start().await;

    // One wrong secret spends this address's budget for the minute.
    let mut wrong = AgentDeployment::new(&server.base);
    wrong.set_agent("OpenId.OpenIdClients.Job", json!("not-the-secret"));
    let err = wrong.agent().token().await.expect_err("refused");
    assert!(matches!(err, AgentError::Rejected { .. }), "{err:?}");

    let mut a = AgentDeployment::new(&server.base);
    a.set("Http.Retries", json!(1));
    a.set("Http.RetryDelayMilliseconds", json!(1));
    a.set("Http.MaxRetryDelaySeconds", json!(1));
    let agent = a.agent();
    let started = std::time::Instant::now();
    let err = agent.token().await.expect_err("rate limited");
    match &err {
        AgentError::ServerError {
            status, attempts, ..
        } => {
            assert_eq!(*status, 429);
            assert_eq!(*attempts, 2);
        }
        other => panic!("expected a 429 after retries, got {other:?}"),
    }
    assert_eq!(err.exit_code(), 3);
    assert_eq!(
        agent.http_requests(),
        1 + 2,
        "discovery + two token attempts"
    );
    // The wait came from Retry-After (>= 1 s, capped at 1 s), not from the 1 ms backoff.
    assert!(started.elapsed() >= std::time::Duration::from_millis(950));
    server.stop().await;
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
    assert_eq!(err.exit_code(), 6);
    assert_eq!(agent.http_requests(), 1, "a 404 is not retried");
    server.stop().await;
}
