//! Log lines cannot be forged (issue 14, point 6): values a client sends (a `jti`, a `kid`, `iss`, a
//! `client_id` in the body or the Basic header) reach the server's log with their control characters
//! escaped, so none of them starts a line of its own or moves the terminal's cursor.

use ids_devpki::{Ca, KeyKind};
use ids_jose::assertion::ASSERTION_TYPE;
use ids_pki::{Certificate, SigningKey, b64};
use serde_json::{Value, json};

use crate::cli::serve;
use crate::support::{Deployment, default_xml};

/// A compact JWS of `header` and `claims`, signed with `key` (an assertion exactly as a client that
/// owns a registered key can make it, whatever its claims say).
fn jws(key: &SigningKey, header: &Value, claims: &Value) -> String {
    let mut token = format!(
        "{}.{}",
        b64::url(header.to_string().as_bytes()),
        b64::url(claims.to_string().as_bytes())
    );
    let signature = key.sign(token.as_bytes()).expect("sign");
    token.push('.');
    token.push_str(&b64::url(&signature));
    token
}

#[tokio::test(flavor = "multi_thread")]
async fn client_values_cannot_forge_log_lines() {
    let mut d = Deployment::new();
    let ca = Ca::new("log test CA", 1).expect("ca");
    let issued = ca
        .issue_client("Poller2", KeyKind::EcP256, 1)
        .expect("client certificate");
    let cert = Certificate::from_der("Poller2.crt", &issued.cert_der).expect("certificate");
    let key = SigningKey::from_pkcs8(&issued.key_pkcs8).expect("key");
    let thumbprint = ids_pki::jwk::thumbprint(cert.public_key());
    std::fs::create_dir(d.path().join("authorized")).expect("mkdir");
    std::fs::write(d.path().join("authorized/Poller2.pem"), &issued.cert_pem).expect("write");
    d.write_xml(
        "clients.xml",
        &default_xml().replace(
            "</ConfigurationFile>",
            "<OpenIdClient Identifier=\"Poller2\" Profile=\"Administrator\" />\n</ConfigurationFile>",
        ),
    );
    d.set("AccessControl.AuthorizedClientsPath", json!("authorized"));
    let (server, port, client) = serve(&d);
    let endpoint = format!("https://127.0.0.1:{port}/connect/token");
    let now = crate::support::unix_now();
    let header = json!({ "alg": "ES256", "typ": "JWT", "kid": thumbprint });
    let claims = |jti: &str, iss: &str| {
        json!({
            "iss": iss, "sub": "Poller2", "aud": endpoint, "jti": jti,
            "iat": now, "nbf": now, "exp": now + 60,
        })
    };
    let post = |form: Vec<(&'static str, String)>| {
        let client = client.clone();
        let endpoint = endpoint.clone();
        async move {
            client
                .post(&endpoint)
                .form(&form)
                .send()
                .await
                .expect("token request")
                .status()
                .as_u16()
        }
    };
    let assertion_form = |assertion: String| {
        vec![
            ("grant_type", "client_credentials".to_string()),
            ("client_id", "Poller2".to_string()),
            ("client_assertion_type", ASSERTION_TYPE.to_string()),
            ("client_assertion", assertion),
        ]
    };

    // A validly signed assertion whose jti carries a line break, a terminal escape, a line separator
    // and a right-to-left override: accepted once, then refused as a replay, which logs the jti.
    let jti = "a\nFORGED line jti \u{1b}[2J \u{2028}FORGED separator \u{202e}txt.exe\r";
    let replayed = jws(&key, &header, &claims(jti, "Poller2"));
    assert_eq!(post(assertion_form(replayed.clone())).await, 200);
    assert_eq!(post(assertion_form(replayed)).await, 401);
    // The same values in iss (signature valid, claim refused) and in kid (no such key).
    let bad_iss = jws(
        &key,
        &header,
        &claims("b", "Poller2\nFORGED line iss\u{1b}[31m"),
    );
    assert_eq!(post(assertion_form(bad_iss)).await, 401);
    let bad_kid = jws(
        &key,
        &json!({ "alg": "ES256", "typ": "JWT", "kid": "k\nFORGED line kid" }),
        &claims("c", "Poller2"),
    );
    assert_eq!(post(assertion_form(bad_kid)).await, 401);
    // client_id in the body and in the Basic header.
    let form = vec![
        ("grant_type", "client_credentials".to_string()),
        ("client_id", "Job\nFORGED line client_id".to_string()),
        ("client_secret", "wrong".to_string()),
    ];
    assert_eq!(post(form).await, 401);
    let basic = b64::std("Job%0AFORGED line basic:wrong".as_bytes());
    let status = client
        .post(&endpoint)
        .header("authorization", format!("Basic {basic}"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token request")
        .status()
        .as_u16();
    assert_eq!(status, 401);

    let log = server.stop_and_log();
    let forged: Vec<&str> = log
        .lines()
        .filter(|l| l.trim_start().starts_with("FORGED"))
        .collect();
    assert!(
        forged.is_empty(),
        "lines forged by a client: {forged:?}\nthe log:\n{log}"
    );
    for raw in ['\u{1b}', '\u{2028}', '\u{202e}', '\r'] {
        assert!(
            !log.contains(raw),
            "the log holds a raw U+{:04X}:\n{log}",
            u32::from(raw)
        );
    }
    // The values did reach the log, escaped.
    assert!(
        log.contains(r"a\nFORGED line jti \u001b[2J \u2028FORGED separator \u202etxt.exe\r"),
        "the replayed jti is not in the log, escaped:\n{log}"
    );
}

/// The agent's log (standard error) escapes what a server sends too: an `issuer` with a line break in
/// the discovery document is quoted in the error, on one line.
#[test]
fn server_values_cannot_forge_agent_log_lines() {
    use crate::agent_limits::{Answer, hostile_agent, hostile_server};
    let issuer = "https://example.test\nFORGED line issuer \u{1b}[2J";
    let discovery = json!({
        "issuer": issuer,
        "token_endpoint": "https://example.test/connect/token",
    })
    .to_string();
    let (base, ca) = hostile_server(
        Answer::Json(discovery),
        Answer::Discovery,
        Answer::Discovery,
    );
    let a = hostile_agent(&base, &ca);
    a.write();
    let out = crate::support::agent(a.path(), &["token"]);
    let log = crate::support::stderr(&out);
    assert_eq!(crate::support::code(&out), 6, "{log}");
    assert!(
        !log.lines().any(|l| l.trim_start().starts_with("FORGED")) && !log.contains('\u{1b}'),
        "a line forged by the server:\n{log}"
    );
    assert!(
        log.contains(r"example.test\nFORGED line issuer "),
        "the issuer is not in the log, escaped:\n{log}"
    );
}
