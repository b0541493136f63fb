//! The token endpoint, discovery and JWKS over HTTPS.

use base64::Engine as _;
use serde_json::{Value, json};

use crate::support::{Deployment, JOB_SECRET, Server, verify_with_jwks};

async fn body(r: reqwest::Response) -> (u16, reqwest::header::HeaderMap, Value) {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let value = r.json().await.unwrap_or(Value::Null);
    (status, headers, value)
}

/// A `client_secret_post` request for `id` and `secret`.
async fn post(server: &Server, id: &str, secret: &str) -> (u16, reqwest::header::HeaderMap, Value) {
    body(
        server
            .token_post(&[
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("client_secret", secret),
            ])
            .await,
    )
    .await
}

#[tokio::test]
async fn client_secret_post_and_basic_issue_verified_tokens() {
    let d = Deployment::new();
    let server = d.start().await;

    // client_secret_post
    let (status, headers, v) = post(&server, "Job", JOB_SECRET).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 3600);
    assert_eq!(v["scope"], "api");
    let token = v["access_token"].as_str().expect("token");
    let header = jsonwebtoken::decode_header(token).expect("header");
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    assert!(header.x5t.is_some());
    let claims = verify_with_jwks(&server, token).await;
    assert_eq!(claims["iss"], server.base);
    assert_eq!(claims["sub"], "Job");
    assert_eq!(claims["client_id"], "Job");
    assert_eq!(claims["aud"], server.base);
    assert_eq!(claims["scope"], "api");
    assert_eq!(claims["profile"], "Administrator");
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16));
    let iat = claims["iat"].as_i64().expect("iat");
    assert_eq!(claims["nbf"].as_i64(), Some(iat));
    assert_eq!(claims["exp"].as_i64(), Some(iat + 3600));

    // client_secret_basic, twice (the second from the verification cache), distinct jti
    let mut jtis = Vec::new();
    for _ in 0..2 {
        let r = server
            .client
            .post(server.url("/connect/token"))
            .basic_auth("Job", Some(JOB_SECRET))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .expect("send");
        let (status, _, v) = body(r).await;
        assert_eq!(status, 200, "{v}");
        let claims = verify_with_jwks(&server, v["access_token"].as_str().expect("token")).await;
        jtis.push(claims["jti"].clone());
    }
    assert_ne!(jtis[0], jtis[1]);
    server.stop().await;
}

#[tokio::test]
async fn client_ids_with_the_server_authority_and_legacy_hashes() {
    let d = Deployment::new();
    let server = d.start().await;
    let port = server.addr.port();
    for id in [
        format!("Job@localhost:{port}"),
        format!("Job@127.0.0.1:{port}"),
    ] {
        let (status, _, v) = post(&server, &id, JOB_SECRET).await;
        assert_eq!(status, 200, "{id}: {v}");
        let claims = verify_with_jwks(&server, v["access_token"].as_str().expect("token")).await;
        assert_eq!(claims["sub"], "Job");
    }
    // Another server's authority is not ours: the id stays unknown.
    let (status, _, v) = post(&server, "Job@elsewhere:1", JOB_SECRET).await;
    assert_eq!((status, v["error"].as_str()), (401, Some("invalid_client")));

    for id in ["Legacy", "LegacyNoPad", "Later"] {
        let (status, _, v) = post(&server, id, "secret").await;
        assert_eq!(status, 200, "{id}: {v}");
        let claims = verify_with_jwks(&server, v["access_token"].as_str().expect("token")).await;
        assert_eq!(claims["sub"], id);
    }
    server.stop().await;
}

#[tokio::test]
async fn authentication_failures_are_uniform_401() {
    let d = Deployment::new();
    let server = d.start().await;
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            "wrong secret",
            vec![("client_id", "Job"), ("client_secret", "wrong")],
        ),
        (
            "legacy wrong secret",
            vec![("client_id", "Legacy"), ("client_secret", "Secret")],
        ),
        (
            "unknown client",
            vec![("client_id", "Nobody"), ("client_secret", "secret")],
        ),
        (
            "expired client",
            vec![("client_id", "Expired"), ("client_secret", "secret")],
        ),
        ("no secret", vec![("client_id", "Job")]),
        ("no client", vec![]),
    ];
    let mut bodies = Vec::new();
    for (name, extra) in cases {
        let mut form = vec![("grant_type", "client_credentials")];
        form.extend(extra);
        let (status, headers, v) = body(server.token_post(&form).await).await;
        assert_eq!(status, 401, "{name}: {v}");
        assert_eq!(v["error"], "invalid_client", "{name}");
        assert!(headers.get("www-authenticate").is_some(), "{name}");
        assert_eq!(headers["cache-control"], "no-store", "{name}");
        bodies.push(v);
    }
    // Same answer whatever the reason: no oracle on which clients exist.
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
    server.stop().await;
}

#[tokio::test]
async fn malformed_requests_get_rfc6749_errors() {
    let d = Deployment::new();
    let server = d.start().await;
    let post_raw = |content_type: &'static str, data: Vec<u8>| {
        server
            .client
            .post(server.url("/connect/token"))
            .header("content-type", content_type)
            .body(data)
            .send()
    };
    let form = "application/x-www-form-urlencoded";
    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        (
            "bad grant",
            form,
            b"grant_type=password&client_id=Job&client_secret=x".to_vec(),
            400,
            "unsupported_grant_type",
        ),
        (
            "no grant",
            form,
            b"client_id=Job&client_secret=x".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "repeated",
            form,
            b"grant_type=client_credentials&grant_type=client_credentials".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "bad encoding",
            form,
            b"grant_type=client_credentials&client_id=%G1".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "not utf-8",
            form,
            vec![b'g', 0xff, 0xfe],
            400,
            "invalid_request",
        ),
        (
            "json body",
            "application/json",
            br#"{"grant_type":"client_credentials"}"#.to_vec(),
            400,
            "invalid_request",
        ),
        (
            "huge body",
            form,
            vec![b'a'; 64 * 1024],
            413,
            "invalid_request",
        ),
        (
            "bad scope chars",
            form,
            format!(
                "grant_type=client_credentials&client_id=Job&client_secret={JOB_SECRET}&scope=a%22b"
            )
            .into_bytes(),
            400,
            "invalid_scope",
        ),
    ];
    for (name, ct, data, status, error) in cases {
        let (s, headers, v) = body(post_raw(ct, data).await.expect("send")).await;
        assert_eq!(
            (s, v["error"].as_str()),
            (status, Some(error)),
            "{name}: {v}"
        );
        assert!(
            v["error_description"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{name}"
        );
        assert_eq!(headers["cache-control"], "no-store", "{name}");
    }
    // Basic and body secret together, and a garbled Authorization header.
    let r = server
        .client
        .post(server.url("/connect/token"))
        .basic_auth("Job", Some(JOB_SECRET))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_secret", JOB_SECRET),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(body(r).await.2["error"], "invalid_request");
    let r = server
        .client
        .post(server.url("/connect/token"))
        .header(
            "authorization",
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("no-colon")
            ),
        )
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("send");
    assert_eq!(body(r).await.2["error"], "invalid_request");
    // GET on the token endpoint.
    let r = server.get("/connect/token").await;
    assert_eq!(r.status().as_u16(), 405);
    server.stop().await;
}

#[tokio::test]
async fn scopes_are_granted_or_refused() {
    let mut d = Deployment::new();
    d.set("IdentityServer.Scopes", json!(["api", "files.write"]));
    let server = d.start().await;
    let ask = |scope: Option<&'static str>| {
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", "Legacy"),
            ("client_secret", "secret"),
        ];
        if let Some(s) = scope {
            form.push(("scope", s));
        }
        let request = server.client.post(server.url("/connect/token")).form(&form);
        request.send()
    };
    let (s, _, v) = body(ask(None).await.expect("send")).await;
    assert_eq!((s, v["scope"].as_str()), (200, Some("api files.write")));
    let (s, _, v) = body(ask(Some("files.write")).await.expect("send")).await;
    assert_eq!((s, v["scope"].as_str()), (200, Some("files.write")));
    let claims = verify_with_jwks(&server, v["access_token"].as_str().expect("token")).await;
    assert_eq!(claims["scope"], "files.write");
    let (s, _, v) = body(ask(Some("api admin")).await.expect("send")).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (400, Some("invalid_scope")),
        "{v}"
    );
    assert!(
        v["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("admin"))
    );
    server.stop().await;
}

#[tokio::test]
async fn discovery_and_jwks_publish_signing_and_validation_keys() {
    let mut d = Deployment::new();
    d.set("IdentityServer.ValidationKeys", json!(["signing-ec.crt"]));
    let server = d.start().await;
    let doc: Value = server
        .get("/.well-known/openid-configuration")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(doc["issuer"], server.base);
    // RFC 8414 metadata carries the same document, without the authorization endpoint this server
    // does not have (oidc_client.rs says why the OpenID Connect document keeps it).
    let rfc8414: Value = server
        .get("/.well-known/oauth-authorization-server")
        .await
        .json()
        .await
        .expect("json");
    let mut without = doc.clone();
    without
        .as_object_mut()
        .expect("object")
        .remove("authorization_endpoint");
    assert_eq!(rfc8414, without);
    assert_eq!(doc["token_endpoint"], server.url("/connect/token"));
    assert_eq!(
        doc["jwks_uri"],
        server.url("/.well-known/openid-configuration/jwks")
    );
    assert_eq!(doc["grant_types_supported"], json!(["client_credentials"]));
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        json!([
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
            "tls_client_auth",
            "self_signed_tls_client_auth"
        ])
    );
    assert_eq!(doc["tls_client_certificate_bound_access_tokens"], true);
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        json!(["RS256"])
    );

    let jwks: Value = server
        .get("/.well-known/openid-configuration/jwks")
        .await
        .json()
        .await
        .expect("json");
    let keys = jwks["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 2, "{jwks}");
    let rsa = &keys[0];
    for member in ["kty", "use", "kid", "x5t", "n", "e", "x5c", "alg"] {
        assert!(rsa.get(member).is_some(), "RSA JWK lacks {member}: {rsa}");
    }
    assert_eq!(
        (
            rsa["kty"].as_str(),
            rsa["alg"].as_str(),
            rsa["use"].as_str()
        ),
        (Some("RSA"), Some("RS256"), Some("sig"))
    );
    let ec = &keys[1];
    assert_eq!(
        (ec["kty"].as_str(), ec["crv"].as_str(), ec["alg"].as_str()),
        (Some("EC"), Some("P-256"), Some("ES256"))
    );
    // The validation key is the certificate from the fixtures: its x5c is that certificate.
    let pem = std::fs::read_to_string(d.path().join("signing-ec.crt")).expect("pem");
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    assert_eq!(ec["x5c"][0].as_str(), Some(b64.as_str()));
    let hc = server.get("/hc").await;
    assert_eq!(hc.status().as_u16(), 200);
    server.stop().await;
}

#[tokio::test]
async fn openssl_pfx_formats_sign_and_serve_tls() {
    // -legacy PFX (RC2/3DES, SHA-1 MAC) as signing and TLS certificate.
    let mut d = Deployment::new();
    d.set(
        "IdentityServer.X509KeyFilePath",
        json!("signing-rsa-legacy.pfx"),
    );
    let server = d.start().await;
    let (s, _, v) = post(&server, "Legacy", "secret").await;
    assert_eq!(s, 200, "{v}");
    verify_with_jwks(&server, v["access_token"].as_str().expect("token")).await;
    server.stop().await;

    // EC P-256 signing -> ES256; PFX without localKeyID; the signing PFX also serving TLS.
    for (signing, alg) in [
        ("signing-ec.pfx", jsonwebtoken::Algorithm::ES256),
        ("no-localkeyid.pfx", jsonwebtoken::Algorithm::RS256),
        ("windows-export.pfx", jsonwebtoken::Algorithm::RS256),
    ] {
        let mut d = Deployment::new();
        d.set("IdentityServer.X509KeyFilePath", json!(signing));
        let server = d.start().await;
        let (s, _, v) = post(&server, "Legacy", "secret").await;
        assert_eq!(s, 200, "{signing}: {v}");
        let token = v["access_token"].as_str().expect("token");
        assert_eq!(jsonwebtoken::decode_header(token).expect("header").alg, alg);
        verify_with_jwks(&server, token).await;
        server.stop().await;
    }

    // TLS with the legacy PFX too (a separate file from the signing one).
    let mut d = Deployment::new();
    d.set(
        "Kestrel.Certificates.Default.Path",
        json!("signing-rsa-legacy.pfx"),
    );
    d.write();
    let settings = d.load_settings().expect("settings");
    assert!(identity_server::load(&settings, crate::support::unix_now()).is_ok());
}

#[tokio::test]
async fn repeated_failures_are_rate_limited_without_locking_out_the_client() {
    let mut d = Deployment::new();
    d.set("IdentityServer.FailedAuthenticationsPerMinute", json!(3));
    let server = d.start().await;
    let good = [
        ("grant_type", "client_credentials"),
        ("client_id", "Job"),
        ("client_secret", JOB_SECRET),
    ];
    // The real client authenticates once: its secret is now verified and cached.
    assert_eq!(server.token_post(&good).await.status().as_u16(), 200);
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let r = server
            .token_post(&[
                ("grant_type", "client_credentials"),
                ("client_id", "Job"),
                ("client_secret", "guess"),
            ])
            .await;
        if r.status().as_u16() == 429 {
            assert!(r.headers().get("retry-after").is_some());
        }
        statuses.push(r.status().as_u16());
    }
    assert_eq!(&statuses[..3], &[401, 401, 401], "{statuses:?}");
    assert!(statuses[3..].iter().all(|s| *s == 429), "{statuses:?}");
    // The attacker's failures do not lock the legitimate client out.
    let r = server.token_post(&good).await;
    assert_eq!(r.status().as_u16(), 200);
    server.stop().await;
}

#[tokio::test]
async fn plain_http_only_behind_the_danger_switch() {
    let mut d = Deployment::new();
    d.set("Urls", json!("http://127.0.0.1:0"));
    d.set("IdentityServer.DangerAllowInsecureHttp", json!(true));
    let settings = d.load_settings().expect("allowed with the switch");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(identity_server::run(settings, listener, async move {
        let _ = rx.await;
    }));
    let client = reqwest::Client::new();
    let mut doc = Value::Null;
    for _ in 0..100 {
        if let Ok(r) = client
            .get(format!(
                "http://127.0.0.1:{port}/.well-known/openid-configuration"
            ))
            .send()
            .await
        {
            doc = r.json().await.expect("json");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(doc["issuer"], format!("http://127.0.0.1:{port}"));
    let _ = tx.send(());
    assert!(task.await.expect("join").is_ok());
}

#[tokio::test]
async fn access_control_changes_are_reloaded_without_a_restart() {
    let mut d = Deployment::new();
    d.set("AccessControl.ReloadIntervalSeconds", json!(1));
    let server = d.start().await;
    assert_eq!(post(&server, "Job", JOB_SECRET).await.0, 200);

    // The operator rotates Job's secret (legacy SHA-256 of "rotated") and adds a client.
    let rotated = crate::support::default_xml()
        .replace(crate::support::job_hash(), "9CVG1ezdRSUJgIstbQQTtac4xwp5O5nM+O1vQjqsg9M=")
        .replace("</ConfigurationFile>", "  <OpenIdClient Identifier=\"NewOne\" HashedSecret=\"K7gNU3sdo+OL0wNhqoVWhr3g6s1xYv72ol/pe/Unols=\" />\n</ConfigurationFile>");
    d.write_xml("clients.xml", &rotated);
    let mut reloaded = false;
    for _ in 0..100 {
        if post(&server, "NewOne", "secret").await.0 == 200 {
            reloaded = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(reloaded, "the new client was not picked up");
    assert_eq!(post(&server, "Job", "rotated").await.0, 200);
    // The old secret was verified and cached before: the changed hash drops it.
    assert_eq!(post(&server, "Job", JOB_SECRET).await.0, 401);

    // A broken edit is refused and the clients in force stay.
    d.write_xml(
        "clients.xml",
        "<ConfigurationFile><OpenIdClient Identifier=\"Job\"",
    );
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(post(&server, "Job", "rotated").await.0, 200);
    assert_eq!(post(&server, "NewOne", "secret").await.0, 200);
    server.stop().await;
}

#[tokio::test]
async fn several_listen_urls_serve_the_same_issuer() {
    let mut d = Deployment::new();
    d.set("Urls", json!("https://127.0.0.1:0; https://localhost:0"));
    let settings = d.load_settings().expect("settings");
    assert_eq!(settings.urls.len(), 2);
    let listeners = vec![
        std::net::TcpListener::bind("127.0.0.1:0").expect("bind"),
        std::net::TcpListener::bind("127.0.0.1:0").expect("bind"),
    ];
    let ports: Vec<u16> = listeners
        .iter()
        .map(|l| l.local_addr().expect("addr").port())
        .collect();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(identity_server::run_on(settings, listeners, async move {
        let _ = rx.await;
    }));
    let client = crate::support::https_client(&d.path().join("ca.crt"));
    for port in &ports {
        let mut answer = None;
        for _ in 0..100 {
            if let Ok(r) = client
                .get(format!(
                    "https://localhost:{port}/.well-known/openid-configuration"
                ))
                .send()
                .await
            {
                answer = Some(r.json::<Value>().await.expect("json"));
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        // One issuer, named after the first URL, whichever address answered.
        assert_eq!(
            answer.expect("served")["issuer"],
            format!("https://127.0.0.1:{}", ports[0])
        );
    }
    let _ = tx.send(());
    assert!(task.await.expect("join").is_ok());

    let mut d = Deployment::new();
    d.set("Urls", json!("https://127.0.0.1:0;http://127.0.0.1:0"));
    let err = d.load_settings().expect_err("plain HTTP among the URLs");
    assert!(err.join("\n").contains("plain HTTP is refused"), "{err:?}");
}

/// Issue 13 point 7: a token request over the body limit gets a 413 the client can read, over
/// HTTP/1.1 (with a length, chunked, or waiting for `100 Continue`) and HTTP/2, instead of a reset
/// while it is still sending.
#[tokio::test]
async fn over_limit_bodies_get_a_readable_413_over_http1_and_http2() {
    let d = Deployment::new();
    let server = d.start().await;
    let limit = identity_server::http::MAX_TOKEN_BODY;
    let check = |how: &str, status: u16, text: &str| {
        let v: Value = serde_json::from_str(text)
            .unwrap_or_else(|e| panic!("{how}: not JSON ({e}): {text:?}"));
        assert_eq!(
            (status, v["error"].as_str()),
            (413, Some("invalid_request")),
            "{how}: {v}"
        );
        assert!(
            v["error_description"]
                .as_str()
                .is_some_and(|d| d.contains(&limit.to_string())),
            "{how}: the answer names the limit: {v}"
        );
    };
    let sizes = [64 * 1024, 1024 * 1024];

    let pem = std::fs::read(d.path().join("ca.crt")).expect("ca");
    let ca = reqwest::Certificate::from_pem(&pem).expect("pem");
    let http1 = reqwest::Client::builder()
        .tls_certs_only([ca.clone()])
        .http1_only()
        .build()
        .expect("client");
    let http2 = reqwest::Client::builder()
        .tls_certs_only([ca])
        .http2_prior_knowledge()
        .build()
        .expect("client");
    for (name, client, version) in [
        ("reqwest HTTP/1.1", &http1, reqwest::Version::HTTP_11),
        ("reqwest HTTP/2", &http2, reqwest::Version::HTTP_2),
    ] {
        for size in sizes {
            let how = format!("{name}, {size} bytes");
            let r = client
                .post(server.url("/connect/token"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(vec![b'a'; size])
                .send()
                .await
                .unwrap_or_else(|e| panic!("{how}: {e:?}"));
            assert_eq!(r.version(), version, "{how}");
            assert_eq!(r.headers()["cache-control"], "no-store", "{how}");
            let status = r.status().as_u16();
            let text = r.text().await.unwrap_or_else(|e| panic!("{how}: {e:?}"));
            check(&how, status, &text);
        }
        // The connection is still usable afterwards (HTTP/2) or was closed cleanly (HTTP/1.1).
        let r = client
            .post(server.url("/connect/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "Job"),
                ("client_secret", JOB_SECRET),
            ])
            .send()
            .await
            .unwrap_or_else(|e| panic!("{name}, then a good request: {e:?}"));
        assert_eq!(r.status().as_u16(), 200, "{name}, then a good request");
    }

    // curl, as an operator would try it: it reports a reset or a stream error as a failure.
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipping the curl half of this test: curl is not installed");
        server.stop().await;
        return;
    }
    let ca = d.path().join("ca.crt");
    for size in sizes {
        let file = d.path().join(format!("body-{size}"));
        std::fs::write(&file, vec![b'a'; size]).expect("write body");
        for (name, args) in [
            ("curl --http1.1", &["--http1.1"][..]),
            (
                "curl --http1.1 chunked",
                &["--http1.1", "-H", "Transfer-Encoding: chunked"][..],
            ),
            (
                "curl --http1.1 expect",
                &["--http1.1", "-H", "Expect: 100-continue"][..],
            ),
            ("curl --http2", &["--http2"][..]),
            // hyper sends no `100 Continue` over HTTP/2: curl sends the body after its wait (1 s by
            // default, shortened here).
            (
                "curl --http2 expect",
                &[
                    "--http2",
                    "-H",
                    "Expect: 100-continue",
                    "--expect100-timeout",
                    "0.2",
                ][..],
            ),
        ] {
            // Three times: a reset that loses the answer depends on timing.
            for attempt in 1..=3 {
                let how = format!("{name}, {size} bytes, attempt {attempt}");
                let out_file = d.path().join("curl-answer");
                let out = tokio::process::Command::new("curl")
                    .args(["-sS", "--cacert"])
                    .arg(&ca)
                    .args(args)
                    .arg("--data-binary")
                    .arg(format!("@{}", file.display()))
                    .arg("-o")
                    .arg(&out_file)
                    .args(["-w", "%{http_code}"])
                    .arg(server.url("/connect/token"))
                    .output()
                    .await
                    .expect("run curl");
                assert!(
                    out.status.success(),
                    "{how}: curl failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let status: u16 = String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .parse()
                    .unwrap_or(0);
                let text = std::fs::read_to_string(&out_file).unwrap_or_default();
                check(&how, status, &text);
            }
        }
    }
    server.stop().await;
}
