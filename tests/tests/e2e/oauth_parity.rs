//! Issue 18: more signing keys (ES384, EdDSA, PS256), introspection (RFC 7662, 9701), revocation
//! (RFC 7009), DPoP (RFC 9449) and resource indicators (RFC 8707), against the real server over HTTPS,
//! with PFX files made by `openssl`, and the agent.

use std::path::{Path, PathBuf};

use ids_jose::DpopSigner;
use ids_pki::{Algorithm, SigningKey, b64};
use serde_json::{Value, json};

use crate::keytool::openssl;
use crate::support::*;

/// A signing PFX made by `openssl` with a key of `kind` (`P-384`, `ed25519`, `rsa`).
fn openssl_pfx(dir: &Path, name: &str, kind: &str) -> PathBuf {
    let mut args = vec!["req", "-x509", "-newkey"];
    match kind {
        "P-384" => args.extend(["ec", "-pkeyopt", "ec_paramgen_curve:P-384"]),
        "ed25519" => args.push("ed25519"),
        _ => args.push("rsa:2048"),
    }
    let key = format!("{name}.key");
    let crt = format!("{name}.crt");
    let subject = format!("/CN={name}");
    args.extend([
        "-keyout", &key, "-out", &crt, "-days", "30", "-nodes", "-subj", &subject,
    ]);
    openssl(dir, &args);
    let pfx = format!("{name}.pfx");
    let password = format!("pass:{PASSWORD}");
    openssl(
        dir,
        &[
            "pkcs12", "-export", "-inkey", &key, "-in", &crt, "-out", &pfx, "-passout", &password,
        ],
    );
    dir.join(pfx)
}

async fn token_with(server: &Server, client: &str, secret: &str, extra: &[(&str, &str)]) -> Value {
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("client_id", client),
        ("client_secret", secret),
    ];
    form.extend_from_slice(extra);
    let r = server.token_post(&form).await;
    let status = r.status();
    let v: Value = r.json().await.expect("json");
    assert_eq!(status, 200, "token for {client}: {v}");
    v
}

async fn access_token(server: &Server, client: &str, secret: &str) -> String {
    token_with(server, client, secret, &[]).await["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

/// The claims of a JWT, not verified (the tests verify elsewhere).
fn payload(jwt: &str) -> Value {
    let part = jwt.split('.').nth(1).expect("payload");
    serde_json::from_slice(&b64::url_decode(part).expect("b64")).expect("json")
}

fn header(jwt: &str) -> Value {
    let part = jwt.split('.').next().expect("header");
    serde_json::from_slice(&b64::url_decode(part).expect("b64")).expect("json")
}

/// POSTs a form to `path` as `client` (Basic authentication).
async fn post_as(
    server: &Server,
    path: &str,
    client: &str,
    secret: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    server
        .client
        .post(server.url(path))
        .basic_auth(client, Some(secret))
        .form(form)
        .send()
        .await
        .expect("POST")
}

/// Revokes `token` as `client`: the status.
async fn revoke(server: &Server, client: &str, secret: &str, token: &str) -> u16 {
    post_as(
        server,
        "/connect/revocation",
        client,
        secret,
        &[("token", token)],
    )
    .await
    .status()
    .as_u16()
}

async fn introspect(server: &Server, client: &str, secret: &str, token: &str) -> Value {
    let r = post_as(
        server,
        "/connect/introspect",
        client,
        secret,
        &[("token", token)],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    r.json().await.expect("json")
}

/// The legacy secret of `Legacy` (base64 SHA-256 in the default XML).
const LEGACY_SECRET: &str = "secret";

#[tokio::test(flavor = "multi_thread")]
async fn es384_eddsa_and_ps256_keys_sign_tokens_every_verifier_accepts() {
    for (kind, algorithm, setting) in [
        ("P-384", "ES384", None),
        ("ed25519", "EdDSA", None),
        ("rsa", "PS256", Some("PS256")),
    ] {
        let mut d = Deployment::new();
        openssl_pfx(d.path(), "signing", kind);
        // The Ed25519 key from a key file: its certificate and key as openssl wrote them, in one PEM.
        let file = if kind == "ed25519" {
            let pem = [
                std::fs::read(d.path().join("signing.crt")).expect("crt"),
                std::fs::read(d.path().join("signing.key")).expect("key"),
            ]
            .concat();
            std::fs::write(d.path().join("signing.pem"), pem).expect("pem");
            "signing.pem"
        } else {
            "signing.pfx"
        };
        d.set("IdentityServer:X509KeyFilePath", json!(file));
        if let Some(a) = setting {
            d.set("IdentityServer:SigningAlgorithm", json!(a));
        }
        let server = d.start().await;
        let token = access_token(&server, "Job", JOB_SECRET).await;
        assert_eq!(header(&token)["alg"], algorithm);
        let jwks: Value = server
            .get("/.well-known/openid-configuration/jwks")
            .await
            .json()
            .await
            .expect("jwks");
        let entry = &jwks["keys"][0];
        assert_eq!(entry["alg"], algorithm, "{jwks}");
        match kind {
            "P-384" => assert_eq!(
                (&entry["kty"], &entry["crv"]),
                (&json!("EC"), &json!("P-384"))
            ),
            "ed25519" => {
                assert_eq!(
                    (&entry["kty"], &entry["crv"]),
                    (&json!("OKP"), &json!("Ed25519"))
                )
            }
            _ => assert_eq!(entry["kty"], "RSA"),
        }
        // An independent verifier (jsonwebtoken) through the JWKS.
        let claims = verify_with_jwks(&server, &token).await;
        assert_eq!(claims["sub"], "Job");
        // The agent, with the JWKS and with the certificate pinned.
        let crt = d.path().join("signing.crt");
        for validation in ["Jwks", "Certificate"] {
            let mut a = AgentDeployment::new(&server.base);
            std::fs::copy(&crt, a.path().join("signing.crt")).expect("copy");
            a.set("IdentityServer:X509KeyFilePath", json!("signing.crt"));
            if validation == "Jwks" {
                a.set("IdentityServer:TokenValidation", json!("Jwks"));
            }
            let agent = a.agent();
            let verified = agent.token().await.expect("agent token");
            assert_eq!(
                verified.claims.algorithm.as_str(),
                algorithm,
                "{validation}"
            );
        }
        // jose (npm), when installed.
        if let Some(dir) = node_with("jose", "es384_eddsa_and_ps256_keys_sign_tokens") {
            let v = script_json(
                "node",
                dir.join("verify_jose.mjs"),
                vec![
                    ("ISSUER", server.base.clone().into()),
                    ("TOKEN", token.clone().into()),
                    ("NODE_EXTRA_CA_CERTS", d.path().join("ca.crt").into()),
                ],
            )
            .await;
            assert_eq!(v["alg"], algorithm);
            assert_eq!(v["sub"], "Job");
        }
        server.stop().await;
    }
}

#[test]
fn a_signing_algorithm_that_does_not_fit_the_key_is_refused_by_name() {
    let mut d = Deployment::new();
    d.set("IdentityServer:X509KeyFilePath", json!("signing-ec.pfx"))
        .set("IdentityServer:SigningAlgorithm", json!("PS256"));
    d.write();
    let out = std::process::Command::new(binary("identity-server"))
        .args(["check", "--config-dir"])
        .arg(d.path())
        .output()
        .expect("check");
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("IdentityServer:SigningAlgorithm")
            && text.contains("PS256")
            && text.contains("EC P-256"),
        "{text}"
    );
    let mut d = Deployment::new();
    d.set("IdentityServer:SigningAlgorithm", json!("HS256"));
    let errors = d.load_settings().expect_err("refused");
    assert!(errors.iter().any(|e| e.contains("IdentityServer:SigningAlgorithm") && e.contains("expected one of")), "{errors:?}");
}

/// A deployment with deliveries on (an encryption certificate), `Administrator` introspecting.
fn deployment_with_deliveries() -> Deployment {
    let mut d = Deployment::new();
    project_pfx(d.path(), "server-encryption", ids_devpki::KeyKind::Rsa2048);
    d.set(
        "EncryptionCertificate",
        json!({ "File": "server-encryption.pfx", "Password": PASSWORD }),
    )
    .set(
        "IdentityServer:IntrospectionProfiles",
        json!(["Administrator"]),
    )
    .set(
        "Deliveries:ReadProfiles",
        json!(["Reader", "Administrator"]),
    );
    d
}

async fn list_deliveries(server: &Server, authorization: &str) -> reqwest::Response {
    server
        .client
        .get(server.url("/api/deliveries"))
        .header("authorization", authorization)
        .send()
        .await
        .expect("GET")
}

#[tokio::test]
async fn introspection_answers_active_only_for_good_tokens_the_caller_may_see() {
    let clock = TestClock::new(unix_now());
    let d = deployment_with_deliveries();
    let server = d.start_with_clock(clock.clone()).await;
    let job = access_token(&server, "Job", JOB_SECRET).await;
    let legacy = access_token(&server, "Legacy", LEGACY_SECRET).await;

    // Job's profile is in IntrospectionProfiles: it sees any token, with its claims.
    let v = introspect(&server, "Job", JOB_SECRET, &legacy).await;
    assert_eq!(v["active"], true, "{v}");
    assert_eq!(v["client_id"], "Legacy");
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["iss"], server.base);
    assert_eq!(v["jti"], payload(&legacy)["jti"]);
    // Legacy sees its own token, not Job's.
    assert_eq!(
        introspect(&server, "Legacy", LEGACY_SECRET, &legacy).await["active"],
        true
    );
    let hidden = introspect(&server, "Legacy", LEGACY_SECRET, &job).await;
    assert_eq!(hidden, json!({ "active": false }));
    // Malformed, forged, another server's: the same inactive answer.
    let mut forged = job.clone();
    forged.push('A');
    let other = {
        let mut o = Deployment::new();
        o.set("IdentityServer:X509KeyFilePath", json!("signing-ec.pfx"));
        let s = o.start().await;
        let t = access_token(&s, "Job", JOB_SECRET).await;
        s.stop().await;
        t
    };
    for token in ["not a token", forged.as_str(), other.as_str()] {
        assert_eq!(
            introspect(&server, "Job", JOB_SECRET, token).await,
            json!({ "active": false })
        );
    }
    // A wrong secret is invalid_client, as at the token endpoint.
    let r = post_as(
        &server,
        "/connect/introspect",
        "Job",
        "wrong",
        &[("token", &job)],
    )
    .await;
    assert_eq!(r.status(), 401);
    // Missing token parameter.
    let r = post_as(&server, "/connect/introspect", "Job", JOB_SECRET, &[]).await;
    assert_eq!(r.status(), 400);

    // RFC 9701: a signed JWT answer, verified with the JWKS.
    let r = server
        .client
        .post(server.url("/connect/introspect"))
        .basic_auth("Job", Some(JOB_SECRET))
        .header("accept", "application/token-introspection+jwt")
        .form(&[("token", &legacy)])
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/token-introspection+jwt"
    );
    let jwt = r.text().await.expect("body");
    assert_eq!(header(&jwt)["typ"], "token-introspection+jwt");
    let jwks: jsonwebtoken::jwk::JwkSet = server
        .get("/.well-known/openid-configuration/jwks")
        .await
        .json()
        .await
        .expect("jwks");
    let kid = header(&jwt)["kid"].as_str().expect("kid").to_string();
    let key = jsonwebtoken::DecodingKey::from_jwk(jwks.find(&kid).expect("kid")).expect("key");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_issuer(&[&server.base]);
    validation.set_audience(&["Job"]);
    validation.set_required_spec_claims(&["iss", "aud"]);
    let answer = jsonwebtoken::decode::<Value>(&jwt, &key, &validation).expect("signed answer");
    assert_eq!(answer.claims["token_introspection"]["active"], true);
    assert_eq!(answer.claims["token_introspection"]["client_id"], "Legacy");

    // Expired: inactive.
    clock.advance(3700);
    assert_eq!(
        introspect(&server, "Job", JOB_SECRET, &legacy).await,
        json!({ "active": false })
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn revoked_tokens_are_inactive_refused_by_the_api_and_stay_revoked_after_a_restart() {
    let d = deployment_with_deliveries();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let server = d.start_at(&addr).await;
    let legacy = access_token(&server, "Legacy", LEGACY_SECRET).await;
    let kept = access_token(&server, "Legacy", LEGACY_SECRET).await;
    let job = access_token(&server, "Job", JOB_SECRET).await;
    assert_eq!(
        list_deliveries(&server, &format!("Bearer {legacy}"))
            .await
            .status(),
        200
    );

    // Another client's token: refused, and nothing revoked.
    let r = post_as(
        &server,
        "/connect/revocation",
        "Legacy",
        LEGACY_SECRET,
        &[("token", &job)],
    )
    .await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"], "unauthorized_client");
    assert_eq!(
        introspect(&server, "Job", JOB_SECRET, &job).await["active"],
        true
    );

    // Its own: 200, empty body; inactive and refused from then on.
    let r = post_as(
        &server,
        "/connect/revocation",
        "Legacy",
        LEGACY_SECRET,
        &[("token", &legacy), ("token_type_hint", "access_token")],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.expect("body").is_empty());
    assert_eq!(
        introspect(&server, "Job", JOB_SECRET, &legacy).await,
        json!({ "active": false })
    );
    let r = list_deliveries(&server, &format!("Bearer {legacy}")).await;
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.expect("json");
    assert!(
        v["error_description"]
            .as_str()
            .expect("text")
            .contains("revoked"),
        "{v}"
    );
    // The other token of the same client is not affected.
    assert_eq!(
        list_deliveries(&server, &format!("Bearer {kept}"))
            .await
            .status(),
        200
    );
    // Revoking again, or a token that is not one: 200 (RFC 7009 section 2.2).
    for token in [legacy.as_str(), "garbage"] {
        assert_eq!(revoke(&server, "Legacy", LEGACY_SECRET, token).await, 200);
    }
    // Unauthenticated: invalid_client.
    assert_eq!(revoke(&server, "Legacy", "wrong", &kept).await, 401);
    server.stop().await;

    // Kept in the data folder: still revoked after a restart.
    let server = d.start_at(&addr).await;
    assert_eq!(
        introspect(&server, "Job", JOB_SECRET, &legacy).await,
        json!({ "active": false })
    );
    assert_eq!(
        list_deliveries(&server, &format!("Bearer {legacy}"))
            .await
            .status(),
        401
    );
    assert_eq!(
        introspect(&server, "Job", JOB_SECRET, &kept).await["active"],
        true
    );
    let stored = std::fs::read_to_string(d.path().join("data/revoked/tokens")).expect("file");
    let jti = payload(&legacy)["jti"].as_str().expect("jti").to_string();
    assert!(!stored.contains(&jti), "the jti is not kept in clear");

    // `agent verify --online`: the revoked token is refused, the other accepted.
    let mut a = AgentDeployment::new(&server.base);
    a.set_agent("OpenId:OpenIdClients", json!({ "Legacy": LEGACY_SECRET }))
        .set_agent("OpenId:DefaultOpenIdClient", json!("Legacy"));
    a.write();
    let out = agent(a.path(), &["verify", "--online", &legacy]);
    assert_eq!(code(&out), 6, "{}", stderr(&out));
    assert!(stderr(&out).contains("not active"), "{}", stderr(&out));
    let out = agent(a.path(), &["verify", "--online", &kept]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let printed: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(printed["active"], true);
    // Offline, the revoked token still verifies (its signature is good): only short lifetimes
    // bound that (docs/oauth.md).
    let out = agent(a.path(), &["verify", &legacy]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    server.stop().await;
}

/// A client's DPoP key and proofs.
struct DpopKey {
    signer: DpopSigner,
}

impl DpopKey {
    fn new(algorithm: Algorithm) -> DpopKey {
        let (key, _) = SigningKey::generate(algorithm).expect("key");
        let public = key.public_key();
        DpopKey {
            signer: DpopSigner::new(key, &public),
        }
    }

    fn proof(&self, method: &str, url: &str, nonce: Option<&str>, token: Option<&str>) -> String {
        self.proof_at(method, url, unix_now(), nonce, token)
    }

    fn proof_at(
        &self,
        method: &str,
        url: &str,
        iat: i64,
        nonce: Option<&str>,
        token: Option<&str>,
    ) -> String {
        self.signer
            .proof(method, url, iat, nonce, token)
            .expect("proof")
    }
}

async fn dpop_token_request(
    server: &Server,
    client: &str,
    secret: &str,
    proof: Option<&str>,
) -> reqwest::Response {
    let mut request = server.client.post(server.url("/connect/token")).form(&[
        ("grant_type", "client_credentials"),
        ("client_id", client),
        ("client_secret", secret),
    ]);
    if let Some(proof) = proof {
        request = request.header("dpop", proof);
    }
    request.send().await.expect("POST")
}

async fn refused(r: reqwest::Response, status: u16, error: &str, says: &str) {
    let got = r.status().as_u16();
    let v: Value = r.json().await.expect("json");
    assert_eq!(got, status, "{v}");
    assert_eq!(v["error"], error, "{v}");
    let description = v["error_description"].as_str().unwrap_or_default();
    assert!(description.contains(says), "expected `{says}` in {v}");
}

#[tokio::test]
async fn dpop_tokens_are_bound_to_the_proof_key_and_every_bad_proof_is_refused_with_its_reason() {
    let mut d = deployment_with_deliveries();
    d.write_xml(
        "dpop.xml",
        &format!(
            r#"<ConfigurationFile><OpenIdClient Identifier="Bound" HashedSecret="{}" Profile="Reader" RequireDPoP="true"/></ConfigurationFile>"#,
            job_hash()
        ),
    );
    d.set(
        "IdentityServer:DPoPSigningAlgorithms",
        json!(["ES256", "EdDSA"]),
    );
    let server = d.start().await;
    let token_url = server.url("/connect/token");
    let list_url = server.url("/api/deliveries");
    let key = DpopKey::new(Algorithm::ES256);

    let r = dpop_token_request(
        &server,
        "Legacy",
        LEGACY_SECRET,
        Some(&key.proof("POST", &token_url, None, None)),
    )
    .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["token_type"], "DPoP");
    let token = v["access_token"].as_str().expect("token").to_string();
    assert_eq!(payload(&token)["cnf"]["jkt"], key.signer.jkt());

    // The API: with a proof of that key for this request (and the token's hash): 200.
    let call = |authorization: String, proof: Option<String>| {
        let mut request = server
            .client
            .get(list_url.clone())
            .header("authorization", authorization);
        if let Some(proof) = proof {
            request = request.header("dpop", proof);
        }
        request.send()
    };
    let ok = call(
        format!("DPoP {token}"),
        Some(key.proof("GET", &list_url, None, Some(&token))),
    )
    .await
    .expect("GET");
    assert_eq!(ok.status(), 200);
    // As a bearer token: refused, saying why.
    refused(
        call(format!("Bearer {token}"), None).await.expect("GET"),
        401,
        "invalid_token",
        "DPoP-bound",
    )
    .await;
    // Without a proof.
    refused(
        call(format!("DPoP {token}"), None).await.expect("GET"),
        401,
        "invalid_dpop_proof",
        "no DPoP proof",
    )
    .await;
    // Another key's proof.
    let other = DpopKey::new(Algorithm::EdDSA);
    // Another key's proof, twice: refused for its key both times (a proof that fails a check is
    // not recorded, so it takes no room in the client's share of the replay cache).
    let foreign = other.proof("GET", &list_url, None, Some(&token));
    for _ in 0..2 {
        refused(
            call(format!("DPoP {token}"), Some(foreign.clone()))
                .await
                .expect("GET"),
            401,
            "invalid_dpop_proof",
            "bound to the DPoP key",
        )
        .await;
    }
    // A bearer token sent with the DPoP scheme: refused with a DPoP challenge.
    let bearer = access_token(&server, "Legacy", LEGACY_SECRET).await;
    let r = call(
        format!("DPoP {bearer}"),
        Some(key.proof("GET", &list_url, None, Some(&bearer))),
    )
    .await
    .expect("GET");
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .expect("text")
            .starts_with("DPoP"),
        "{:?}",
        r.headers()
    );
    refused(r, 401, "invalid_token", "not DPoP-bound").await;
    // A proof without the token's hash.
    refused(
        call(
            format!("DPoP {token}"),
            Some(key.proof("GET", &list_url, None, None)),
        )
        .await
        .expect("GET"),
        401,
        "invalid_dpop_proof",
        "ath",
    )
    .await;
    // A proof replayed at the API.
    let once = key.proof("GET", &list_url, None, Some(&token));
    assert_eq!(
        call(format!("DPoP {token}"), Some(once.clone()))
            .await
            .expect("GET")
            .status(),
        200
    );
    refused(
        call(format!("DPoP {token}"), Some(once))
            .await
            .expect("GET"),
        401,
        "invalid_dpop_proof",
        "replay",
    )
    .await;

    // The token endpoint: each bad proof with its reason.
    let replayed = key.proof("POST", &token_url, None, None);
    assert_eq!(
        dpop_token_request(&server, "Legacy", LEGACY_SECRET, Some(&replayed))
            .await
            .status(),
        200
    );
    let cases: Vec<(String, &str)> = vec![
        (replayed, "replay"),
        (
            key.proof("POST", &server.url("/connect/other"), None, None),
            "this request is for",
        ),
        (key.proof("GET", &token_url, None, None), "method GET"),
        (
            key.proof_at("POST", &token_url, unix_now() - 600, None, None),
            "more than 60 s",
        ),
        (unsigned_proof(&token_url), "unsigned"),
        (hs256_proof(&token_url), "symmetric"),
        (
            DpopKey::new(Algorithm::ES384).proof("POST", &token_url, None, None),
            "this server accepts ES256, EdDSA",
        ),
    ];
    for (proof, says) in cases {
        refused(
            dpop_token_request(&server, "Legacy", LEGACY_SECRET, Some(&proof)).await,
            400,
            "invalid_dpop_proof",
            says,
        )
        .await;
    }
    // RequireDPoP: no token without a proof.
    refused(
        dpop_token_request(&server, "Bound", JOB_SECRET, None).await,
        400,
        "invalid_dpop_proof",
        "RequireDPoP",
    )
    .await;
    let r = dpop_token_request(
        &server,
        "Bound",
        JOB_SECRET,
        Some(&key.proof("POST", &token_url, None, None)),
    )
    .await;
    assert_eq!(r.status(), 200);
    // Introspection says DPoP.
    let v = introspect(&server, "Job", JOB_SECRET, &token).await;
    assert_eq!(v["token_type"], "DPoP");
    assert_eq!(v["cnf"]["jkt"], key.signer.jkt());
    server.stop().await;
}

fn unsigned_proof(url: &str) -> String {
    let header = json!({"typ": "dpop+jwt", "alg": "none", "jwk": {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}});
    let claims = json!({"jti": "j-none", "htm": "POST", "htu": url, "iat": unix_now()});
    format!(
        "{}.{}.",
        b64::url(header.to_string().as_bytes()),
        b64::url(claims.to_string().as_bytes())
    )
}

fn hs256_proof(url: &str) -> String {
    let header = json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": "c2VjcmV0"}});
    let claims = json!({"jti": "j-hs", "htm": "POST", "htu": url, "iat": unix_now()});
    format!(
        "{}.{}.c2ln",
        b64::url(header.to_string().as_bytes()),
        b64::url(claims.to_string().as_bytes())
    )
}

#[tokio::test]
async fn server_nonces_are_asked_for_then_accepted_at_the_token_endpoint_and_the_api() {
    let mut d = deployment_with_deliveries();
    d.set("IdentityServer:DPoPNonce", json!(true));
    let server = d.start().await;
    let token_url = server.url("/connect/token");
    let list_url = server.url("/api/deliveries");
    let key = DpopKey::new(Algorithm::EdDSA);
    let r = dpop_token_request(
        &server,
        "Legacy",
        LEGACY_SECRET,
        Some(&key.proof("POST", &token_url, None, None)),
    )
    .await;
    assert_eq!(r.status(), 400);
    let nonce = r.headers()["dpop-nonce"]
        .to_str()
        .expect("nonce")
        .to_string();
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"], "use_dpop_nonce");
    // A nonce that is not the server's: asked again.
    let r = dpop_token_request(
        &server,
        "Legacy",
        LEGACY_SECRET,
        Some(&key.proof("POST", &token_url, Some("made-up"), None)),
    )
    .await;
    assert_eq!(r.status(), 400);
    let r = dpop_token_request(
        &server,
        "Legacy",
        LEGACY_SECRET,
        Some(&key.proof("POST", &token_url, Some(&nonce), None)),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("dpop-nonce"));
    let token = r.json::<Value>().await.expect("json")["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    // The API asks for it too (401 use_dpop_nonce with WWW-Authenticate: DPoP), then accepts it.
    let r = server
        .client
        .get(list_url.clone())
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", key.proof("GET", &list_url, None, Some(&token)))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .expect("text")
            .contains("use_dpop_nonce")
    );
    let api_nonce = r.headers()["dpop-nonce"]
        .to_str()
        .expect("nonce")
        .to_string();
    let r = server
        .client
        .get(list_url.clone())
        .header("authorization", format!("DPoP {token}"))
        .header(
            "dpop",
            key.proof("GET", &list_url, Some(&api_nonce), Some(&token)),
        )
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), 200);
    // Bearer tokens need no nonce.
    let bearer = access_token(&server, "Legacy", LEGACY_SECRET).await;
    assert_eq!(
        list_deliveries(&server, &format!("Bearer {bearer}"))
            .await
            .status(),
        200
    );
    // oauth4webapi (npm) at its default settings: DPoP with the nonce, introspection, revocation.
    if let Some(dir) = node_with("oauth4webapi", "server_nonces_are_asked_for_then_accepted") {
        let v = run_oauth4webapi(&dir, &server, d.path()).await;
        assert_eq!(v["nonce_retries"], 1, "{v}");
    }
    server.stop().await;
}

/// Runs `program script` with `envs`, off the runtime's threads (the server under test runs on
/// them): its one JSON line, after it succeeded.
async fn script_json(
    program: &'static str,
    script: PathBuf,
    envs: Vec<(&'static str, std::ffi::OsString)>,
) -> Value {
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(program)
            .arg(&script)
            .envs(envs)
            .output()
            .unwrap_or_else(|e| panic!("{program} {}: {e}", script.display()))
    })
    .await
    .expect("join");
    assert!(
        out.status.success(),
        "{program}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

/// The client environment of the acceptance scripts: `Legacy` against `server`.
fn legacy_client_env(server: &Server) -> Vec<(&'static str, std::ffi::OsString)> {
    vec![
        ("ISSUER", server.base.clone().into()),
        ("CLIENT_ID", "Legacy".into()),
        ("CLIENT_SECRET", LEGACY_SECRET.into()),
    ]
}

/// Runs `tests/node/dpop_client.mjs` as `Legacy` against `server`: its JSON line, checked.
async fn run_oauth4webapi(dir: &Path, server: &Server, deployment: &Path) -> Value {
    let mut envs = legacy_client_env(server);
    envs.push(("NODE_EXTRA_CA_CERTS", deployment.join("ca.crt").into()));
    let v = script_json("node", dir.join("dpop_client.mjs"), envs).await;
    assert_eq!(v["token_type"], "DPoP", "{v}");
    assert_eq!(v["cnf_jkt"], v["jkt"], "{v}");
    assert_eq!(v["active_before"], true, "{v}");
    assert_eq!(v["introspection_client_id"], "Legacy", "{v}");
    assert_eq!(v["active_after"], false, "{v}");
    v
}

#[tokio::test]
async fn independent_clients_do_dpop_introspection_and_revocation() {
    let d = deployment_with_deliveries();
    let server = d.start().await;
    if let Some(dir) = node_with(
        "oauth4webapi",
        "independent_clients_do_dpop_introspection_and_revocation",
    ) {
        let v = run_oauth4webapi(&dir, &server, d.path()).await;
        assert_eq!(v["nonce_retries"], 0, "{v}");
    }
    if python_with(
        "authlib",
        "independent_clients_do_dpop_introspection_and_revocation",
    ) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/authlib_introspect.py");
        let mut envs = legacy_client_env(&server);
        envs.push(("CA_FILE", d.path().join("ca.crt").into()));
        let v = script_json("python3", script, envs).await;
        assert_eq!(v["active_before"], true, "{v}");
        assert_eq!(v["client_id"], "Legacy", "{v}");
        assert_eq!(v["token_type"], "Bearer", "{v}");
        assert_eq!(v["revoke_status"], 200, "{v}");
        assert_eq!(v["active_after"], false, "{v}");
    }
    server.stop().await;
}

#[tokio::test]
async fn resource_indicators_pick_the_audience_among_the_allowed_ones() {
    let mut d = deployment_with_deliveries();
    d.set(
        "IdentityServer:Audiences",
        json!(["https://api.example.test"]),
    );
    d.write_xml(
        "scoped.xml",
        &format!(
            r#"<ConfigurationFile><OpenIdClient Identifier="Scoped" HashedSecret="{}" Profile="Reader" Audiences="urn:ids:reports https://reports.example.test"/></ConfigurationFile>"#,
            job_hash()
        ),
    );
    let server = d.start().await;
    // No resource: the default audience (the issuer), as before.
    let t = token_with(&server, "Job", JOB_SECRET, &[]).await;
    assert_eq!(
        payload(t["access_token"].as_str().expect("t"))["aud"],
        server.base
    );
    // The settings' audiences for clients without Audiences.
    let t = token_with(
        &server,
        "Job",
        JOB_SECRET,
        &[("resource", "https://api.example.test")],
    )
    .await;
    let api_token = t["access_token"].as_str().expect("t").to_string();
    assert_eq!(payload(&api_token)["aud"], "https://api.example.test");
    // A token for another resource is not good at the server's own API.
    assert_eq!(
        list_deliveries(&server, &format!("Bearer {api_token}"))
            .await
            .status(),
        401
    );
    // The client's own Audiences replace the settings'; several resources give an array.
    let t = token_with(
        &server,
        "Scoped",
        JOB_SECRET,
        &[
            ("resource", "urn:ids:reports"),
            ("resource", "https://reports.example.test"),
        ],
    )
    .await;
    assert_eq!(
        payload(t["access_token"].as_str().expect("t"))["aud"],
        json!(["urn:ids:reports", "https://reports.example.test"])
    );
    for (client, resource, says) in [
        (
            "Scoped",
            "https://api.example.test",
            "not an audience client `Scoped` may ask for",
        ),
        (
            "Job",
            "urn:ids:reports",
            "not an audience client `Job` may ask for",
        ),
        ("Job", "relative/path", "not an absolute URI"),
        ("Job", "https://api.example.test#frag", "fragment"),
    ] {
        let r = server
            .token_post(&[
                ("grant_type", "client_credentials"),
                ("client_id", client),
                ("client_secret", JOB_SECRET),
                ("resource", resource),
            ])
            .await;
        refused(r, 400, "invalid_target", says).await;
    }
    server.stop().await;
}

#[tokio::test]
async fn the_agent_binds_its_tokens_with_dpop_and_delivers_with_proofs() {
    use crate::deliveries::Pair;
    let mut pair = Pair::new();
    pair.server.write_xml(
        "dpop.xml",
        &format!(
            r#"<ConfigurationFile><OpenIdClient Identifier="Bound" HashedSecret="{}" Profile="Administrator" RequireDPoP="true"/></ConfigurationFile>"#,
            job_hash()
        ),
    );
    pair.server.set("IdentityServer:DPoPNonce", json!(true));
    pair.server.write();
    pair.agent
        .set_agent("OpenId:OpenIdClients", json!({ "Bound": JOB_SECRET }))
        .set_agent("OpenId:DefaultOpenIdClient", json!("Bound"))
        .set_agent("OpenId:DPoP", json!(true));
    pair.agent.write();
    pair.start_server();
    let out = agent(pair.agent.path(), &["token"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let claims = payload(&token);
    let jkt = claims["cnf"]["jkt"].as_str().expect("cnf.jkt").to_string();
    // The generated key is kept, encrypted with the agent's certificate, and used again.
    let key_file = pair.agent.path().join("work/dpop.key");
    let stored = std::fs::read(&key_file).expect("key file");
    assert!(stored.starts_with(b"IDSENC"), "the key is stored encrypted");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&key_file)
            .expect("meta")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let out = agent(pair.agent.path(), &["token"]);
    let again = payload(String::from_utf8_lossy(&out.stdout).trim());
    assert_eq!(again["cnf"]["jkt"], jkt.as_str());
    // A delivery with DPoP proofs (and the server's nonces) at each request.
    let file = pair.agent.path().join("report.txt");
    std::fs::write(&file, b"delivered with DPoP\n").expect("write");
    let out = agent(pair.agent.path(), &["push", file.to_str().expect("utf-8")]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(pair.records().len(), 1);
    // Without DPoP the same client gets no token, and the agent says what to set.
    pair.agent.set_agent("OpenId:DPoP", json!(false));
    pair.agent.write();
    let out = agent(pair.agent.path(), &["token"]);
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("OpenId:DPoP"), "{}", stderr(&out));
    pair.stop_server();
}

const DAY: i64 = 86_400;

/// A deployment whose server makes and rotates its own keys (KeyManagement Automatic).
fn managed_deployment() -> Deployment {
    let mut d = deployment_with_deliveries();
    d.settings["IdentityServer"]
        .as_object_mut()
        .expect("section")
        .remove("X509KeyFilePath");
    d.set("IdentityServer:KeyManagement", json!("Automatic"));
    d
}

async fn jwks_kids(server: &Server) -> Vec<String> {
    let jwks: Value = server
        .get("/.well-known/openid-configuration/jwks")
        .await
        .json()
        .await
        .expect("jwks");
    jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_string())
        .collect()
}

/// Waits (real time) until the server's JWKS is `expected`.
async fn wait_for_jwks(server: &Server, expected: &[&str]) {
    for _ in 0..100 {
        if jwks_kids(server).await == expected {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!(
        "JWKS is {:?}, expected {expected:?}",
        jwks_kids(server).await
    );
}

/// Waits (real time) until the server signs with a key other than `old`; its kid.
async fn wait_for_new_signing_key(server: &Server, old: &str) -> String {
    for _ in 0..100 {
        let token = access_token(server, "Job", JOB_SECRET).await;
        let kid = header(&token)["kid"].as_str().expect("kid").to_string();
        if kid != old {
            return kid;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("still signing with {old}");
}

#[tokio::test(flavor = "multi_thread")]
async fn managed_keys_rotate_over_months_with_the_jwks_ahead_and_behind() {
    let start = unix_now();
    let clock = TestClock::new(start);
    let d = managed_deployment();
    let server = d.start_with_clock(clock.clone()).await;
    // Day 0: one key, made at start, signing at once (ES256 by default).
    let first_token = access_token(&server, "Job", JOB_SECRET).await;
    assert_eq!(header(&first_token)["alg"], "ES256");
    let k1 = header(&first_token)["kid"]
        .as_str()
        .expect("kid")
        .to_string();
    assert_eq!(jwks_kids(&server).await, vec![k1.clone()]);
    assert!(header(&first_token).get("x5t").is_some());
    // Stored sealed for the encryption certificate: no private key in clear.
    let folder = d.path().join("data/signing-keys");
    let stored: Value = serde_json::from_slice(
        &std::fs::read(folder.join(format!("{k1}.json"))).expect("key file"),
    )
    .expect("json");
    let sealed = b64::std_decode(stored["sealed"].as_str().expect("sealed")).expect("b64");
    assert!(
        sealed.starts_with(b"IDSENC"),
        "sealed with the encryption certificate"
    );
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(folder.join(format!("{k1}.json")))
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // Day 76 (90 - 14): the next key is made and published, the first still signs.
    clock.advance(76 * DAY + 10);
    let k2 = loop {
        let kids = jwks_kids(&server).await;
        if kids.len() == 2 {
            break kids[1].clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(jwks_kids(&server).await, vec![k1.clone(), k2.clone()]);
    let token = access_token(&server, "Job", JOB_SECRET).await;
    assert_eq!(header(&token)["kid"], k1.as_str());

    // Day 90 minus 10 minutes: a last token from the first key.
    clock.advance(14 * DAY - 610);
    let late_token = access_token(&server, "Job", JOB_SECRET).await;
    assert_eq!(header(&late_token)["kid"], k1.as_str());
    // Day 90: the second key signs; the first stays published, its tokens still verify.
    clock.advance(600 + 15);
    assert_eq!(wait_for_new_signing_key(&server, &k1).await, k2);
    assert_eq!(jwks_kids(&server).await, vec![k2.clone(), k1.clone()]);
    let r = list_deliveries(&server, &format!("Bearer {late_token}")).await;
    assert_eq!(
        r.status(),
        200,
        "a token of the retired key is accepted during retention"
    );
    let verifier = ids_jose::Verifier::new(
        ids_jose::KeySet::from_jwks(
            server
                .get("/.well-known/openid-configuration/jwks")
                .await
                .text()
                .await
                .expect("jwks")
                .as_bytes(),
        )
        .expect("key set"),
        ids_jose::Validation {
            issuer: server.base.clone(),
            audience: server.base.clone(),
            leeway_secs: 30,
        },
    );
    assert!(verifier.verify(&late_token, clock_now(&clock)).is_ok());

    // Day 104 (90 + 14): the first key leaves the JWKS and the store.
    clock.advance(14 * DAY);
    wait_for_jwks(&server, &[&k2]).await;
    // Deleted from the store a day later (a server whose clock runs behind may still publish it).
    assert!(folder.join(format!("{k1}.json")).exists());
    clock.advance(DAY + 10);
    for _ in 0..100 {
        if !folder.join(format!("{k1}.json")).exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(!folder.join(format!("{k1}.json")).exists());
    server.stop().await;

    // A restart keeps the key in force (it is read, not made again).
    let server = d.start_with_clock(clock.clone()).await;
    let token = access_token(&server, "Job", JOB_SECRET).await;
    assert_eq!(header(&token)["kid"], k2.as_str());
    assert_eq!(jwks_kids(&server).await, vec![k2.clone()]);
    server.stop().await;

    // `check` shows the schedule; an agent pinning a certificate is told to use the JWKS.
    let out = std::process::Command::new(binary("identity-server"))
        .args(["check", "--config-dir"])
        .arg(d.path())
        .output()
        .expect("check");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("KeyManagement Automatic") && text.contains(&k2),
        "{text}"
    );
}

fn clock_now(clock: &TestClock) -> i64 {
    ids_runtime::Clock::now(clock)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_pinning_a_certificate_is_told_to_read_the_jwks_of_managed_keys() {
    let d = managed_deployment();
    let server = d.start().await;
    let mut a = AgentDeployment::new(&server.base);
    a.write();
    let out = agent(a.path(), &["check"]);
    assert_ne!(code(&out), 0);
    assert!(
        stderr(&out).contains("KeyManagement Automatic")
            && stderr(&out).contains("TokenValidation to Jwks"),
        "{}",
        stderr(&out)
    );
    a.set("IdentityServer:TokenValidation", json!("Jwks"));
    a.write();
    let out = agent(a.path(), &["check"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    server.stop().await;
}

/// The one URL two servers behind a load balancer answer to.
const PUBLIC_URL: &str = "https://ids.example.test";

#[tokio::test(flavor = "multi_thread")]
async fn two_servers_on_one_postgresql_make_one_key_per_period_and_sign_with_it() {
    let Some(pg) = crate::pg::TestPostgres::start("managed_keys") else {
        return;
    };
    pg.create_database("ids");
    let clock = TestClock::new(unix_now());
    let mut first = managed_deployment();
    first.set("ApplicationUri", json!(PUBLIC_URL)).set(
        "Store",
        json!({ "Provider": "PostgreSql", "ConnectionString": pg.socket_connection_string("ids") }),
    );
    let mut second = managed_deployment();
    std::fs::copy(
        first.path().join("server-encryption.pfx"),
        second.path().join("server-encryption.pfx"),
    )
    .expect("the same encryption certificate");
    second.set("ApplicationUri", json!(PUBLIC_URL)).set(
        "Store",
        json!({ "Provider": "PostgreSql", "ConnectionString": pg.socket_connection_string("ids") }),
    );
    // Both start at once on an empty store: one key is made.
    let (a, b) = tokio::join!(
        first.start_with_clock(clock.clone()),
        second.start_with_clock(clock.clone())
    );
    let count = || {
        pg.psql("ids", "SELECT count(*) FROM ids_signing_keys")
            .trim()
            .to_string()
    };
    assert_eq!(count(), "1");
    let kid = |token: &str| header(token)["kid"].as_str().expect("kid").to_string();
    let k1 = kid(&access_token(&a, "Job", JOB_SECRET).await);
    assert_eq!(kid(&access_token(&b, "Job", JOB_SECRET).await), k1);
    // Day 77: one next key, published by both.
    clock.advance(77 * DAY);
    for server in [&a, &b] {
        for _ in 0..100 {
            if jwks_kids(server).await.len() == 2 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    assert_eq!(count(), "2");
    let ka = jwks_kids(&a).await;
    assert_eq!(ka, jwks_kids(&b).await);
    // Day 91: both sign with it; a token from one is accepted by the other's API.
    clock.advance(14 * DAY);
    let k2 = wait_for_new_signing_key(&a, &k1).await;
    assert_eq!(wait_for_new_signing_key(&b, &k1).await, k2);
    assert_eq!(count(), "2");
    let from_a = access_token(&a, "Job", JOB_SECRET).await;
    assert_eq!(
        list_deliveries(&b, &format!("Bearer {from_a}"))
            .await
            .status(),
        200
    );
    // Revoked through one server, refused by the other (the revocation list is shared).
    assert_eq!(revoke(&a, "Job", JOB_SECRET, &from_a).await, 200);
    assert_eq!(
        list_deliveries(&b, &format!("Bearer {from_a}"))
            .await
            .status(),
        401
    );
    assert_eq!(
        introspect(&b, "Job", JOB_SECRET, &from_a).await,
        json!({ "active": false })
    );
    // While the store is down a revocation is refused (503), never acknowledged unrecorded.
    let other_token = access_token(&b, "Job", JOB_SECRET).await;
    pg.stop();
    assert_eq!(revoke(&a, "Job", JOB_SECRET, &other_token).await, 503);
    pg.ctl_start();
    for _ in 0..100 {
        if revoke(&a, "Job", JOB_SECRET, &other_token).await == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(
        introspect(&b, "Job", JOB_SECRET, &other_token).await,
        json!({ "active": false })
    );
    // A DPoP proof used at one server is a replay at the other (both are the one public URL a load
    // balancer serves: ApplicationUri).
    let key = DpopKey::new(Algorithm::ES256);
    let proof = key.proof_at(
        "POST",
        &format!("{PUBLIC_URL}/connect/token"),
        clock_now(&clock),
        None,
        None,
    );
    let r = dpop_token_request(&a, "Job", JOB_SECRET, Some(&proof)).await;
    let status = r.status();
    assert_eq!(status, 200, "{}", r.text().await.unwrap_or_default());
    refused(
        dpop_token_request(&b, "Job", JOB_SECRET, Some(&proof)).await,
        400,
        "invalid_dpop_proof",
        "replay",
    )
    .await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_with_managed_keys_waits_for_postgresql_at_start_up() {
    let Some(pg) = crate::pg::TestPostgres::start("managed_keys_boot") else {
        return;
    };
    pg.create_database("ids");
    let mut d = managed_deployment();
    d.set(
        "Store",
        json!({ "Provider": "PostgreSql", "ConnectionString": pg.socket_connection_string("ids") }),
    );
    pg.stop();
    let pg = std::sync::Arc::new(pg);
    let starter = pg.clone();
    let (server, ()) = tokio::join!(d.start(), async move {
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        tokio::task::spawn_blocking(move || starter.ctl_start())
            .await
            .expect("join");
    });
    let token = access_token(&server, "Job", JOB_SECRET).await;
    assert_eq!(header(&token)["alg"], "ES256");
    server.stop().await;
}

#[test]
fn a_key_schedule_that_would_drop_valid_tokens_is_refused_by_name() {
    let mut d = managed_deployment();
    d.set("IdentityServer:PropagationDays", json!(100))
        .set("IdentityServer:RotationDays", json!(90))
        .set("IdentityServer:RetentionDays", json!(1))
        .set("IdentityServer:AccessTokenLifetime", json!(7 * 86_400));
    let errors = d.load_settings().expect_err("refused");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("IdentityServer:PropagationDays") && e.contains("RotationDays")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(
            |e| e.contains("IdentityServer:RetentionDays") && e.contains("AccessTokenLifetime")
        ),
        "{errors:?}"
    );
    // Without an encryption certificate there is nowhere to seal the keys for.
    let mut d = managed_deployment();
    d.settings
        .as_object_mut()
        .expect("root")
        .remove("EncryptionCertificate");
    let errors = d.load_settings().expect_err("refused");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("EncryptionCertificate:File")),
        "{errors:?}"
    );
}
