//! Clients without shared secrets (issue 6): `private_key_jwt` with keys made by `ids-keytool keygen`,
//! and mutual TLS on a private CA made by `ids-keytool` alone (the seed recipes of
//! `grpc-mutual-tls.rst`, Gorgone and sqlite_rx replaced end to end).

use std::path::{Path, PathBuf};

use ids_jose::AssertionSigner;
use ids_jose::assertion::ASSERTION_TYPE;
use ids_pki::SigningKey;
use serde_json::{Value, json};

use crate::keytool::{PFX_PASSWORD, keytool, openssl};
use crate::support::{
    AgentDeployment, Deployment, JOB_SECRET, Server, agent, code, default_xml, stderr, wait_for,
};

/// The RFC 7638 thumbprint `ids-keytool thumbprint --quiet` prints for `file`.
pub(crate) fn thumbprint(dir: &Path, file: &Path) -> String {
    keytool(dir, &["thumbprint", "--quiet", &file.display().to_string()])
        .trim()
        .to_string()
}

/// A new agent key made by `ids-keytool keygen --mode agent` in `dir/keys`.
pub(crate) fn agent_key(dir: &Path, host: &str) -> (PathBuf, PathBuf) {
    let keys = dir.join("keys");
    keytool(
        dir,
        &[
            "keygen",
            "--mode",
            "agent",
            "--dir",
            &keys.display().to_string(),
            "--host",
            host,
        ],
    );
    (
        keys.join(format!("id_agent_{host}.key")),
        keys.join(format!("id_agent_{host}.pub")),
    )
}

pub(crate) fn xml_with(clients: &str) -> String {
    default_xml().replace(
        "</ConfigurationFile>",
        &format!("{clients}\n</ConfigurationFile>"),
    )
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("payload");
    serde_json::from_slice(&ids_pki::b64::url_decode(payload).expect("b64")).expect("json")
}

pub(crate) async fn assertion_request(server: &Server, assertion: &str) -> (u16, Value) {
    let r = server
        .token_post(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", assertion),
        ])
        .await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The `WWW-Authenticate` header of a refusal.
fn challenge(r: &reqwest::Response) -> String {
    r.headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

pub(crate) fn signer(key: &Path) -> AssertionSigner {
    let file = ids_pki::keyfile::read_private(key, None).expect("read key");
    AssertionSigner::new(
        SigningKey::from_pkcs8(&file.pkcs8).expect("signing key"),
        &file.public_key,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn private_key_jwt_by_thumbprint_without_any_shared_secret() {
    let mut d = Deployment::new();
    let (key, public) = agent_key(d.path(), "poller2");
    let tp = thumbprint(d.path(), &public);
    let (rogue, _) = {
        let other = tempfile::tempdir().expect("tempdir");
        let (k, p) = agent_key(other.path(), "rogue");
        let kept = d.path().join("rogue.key");
        std::fs::copy(&k, &kept).expect("copy");
        (kept, p)
    };
    d.write_xml(
        "clients.xml",
        &xml_with(&format!(
            r#"<OpenIdClient Identifier="Poller2" Thumbprints="{tp}" Profile="Administrator" />"#
        )),
    );
    d.set("AccessControl.ReloadIntervalSeconds", json!(1));
    d.write();
    let server = d.start().await;

    // The agent, configured with its key and a client id only, gets and verifies a token.
    let mut a = AgentDeployment::new(&server.base);
    a.set(
        "ClientCertificate",
        json!({ "File": key.display().to_string() }),
    )
    .set_agent(
        "OpenId",
        json!({ "AgentIdentifier": "Local", "DefaultOpenIdClient": "Poller2" }),
    );
    a.write();
    let out = agent(a.path(), &["token", "--json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let body: Value = serde_json::from_slice(&out.stdout).expect("json");
    let token = body["access_token"].as_str().expect("token");
    assert_eq!(claims(token)["sub"], "Poller2");
    assert!(
        claims(token).get("cnf").is_none(),
        "no certificate, no binding"
    );

    let endpoint = format!("{}/connect/token", server.base);
    let now = crate::support::unix_now();
    let s = signer(&key);

    // A fresh assertion works; the same one again is a replay.
    let assertion = s.sign("Poller2", &endpoint, now).expect("sign");
    assert_eq!(assertion_request(&server, &assertion).await.0, 200);
    let (status, body) = assertion_request(&server, &assertion).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );

    // Expired, wrong audience, wrong subject, unregistered key: all refused the same way.
    let expired = s.sign("Poller2", &endpoint, now - 600).expect("sign");
    let wrong_aud = s
        .sign("Poller2", "https://other.example/connect/token", now)
        .expect("sign");
    let other_client = s.sign("Job", &endpoint, now).expect("sign");
    let unregistered = signer(&rogue)
        .sign("Poller2", &endpoint, now)
        .expect("sign");
    for (what, a) in [
        ("expired", &expired),
        ("wrong aud", &wrong_aud),
        ("other client", &other_client),
        ("unregistered key", &unregistered),
    ] {
        let (status, body) = assertion_request(&server, a).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client")),
            "{what}: {body}"
        );
    }
    // A tampered payload does not verify.
    let mut parts: Vec<String> = assertion.split('.').map(str::to_string).collect();
    let mut c = claims(&assertion);
    c["jti"] = json!("another");
    parts[1] = ids_pki::b64::url(c.to_string().as_bytes());
    assert_eq!(assertion_request(&server, &parts.join(".")).await.0, 401);
    // A secret is no substitute for a key the client was registered with.
    let r = server
        .token_post(&[
            ("grant_type", "client_credentials"),
            ("client_id", "Poller2"),
            ("client_secret", JOB_SECRET),
        ])
        .await;
    assert_eq!(r.status(), 401);

    // The agent with the unregistered key is told what to add on the server, with its thumbprint.
    let rogue_tp = s_thumbprint(&rogue);
    a.set(
        "ClientCertificate",
        json!({ "File": rogue.display().to_string() }),
    );
    a.write();
    let out = agent(a.path(), &["token"]);
    let err = stderr(&out);
    assert_ne!(code(&out), 0);
    assert!(err.contains("invalid_client"), "{err}");
    assert!(
        err.contains(&rogue_tp),
        "the agent prints its thumbprint: {err}"
    );
    assert!(
        err.contains(&format!("Thumbprints=\"{rogue_tp}\"")),
        "and the setting to add: {err}"
    );
    server.stop().await;
}

fn s_thumbprint(key: &Path) -> String {
    signer(key).thumbprint().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn authorized_clients_folder_takes_effect_without_a_restart() {
    let mut d = Deployment::new();
    let (key, public) = agent_key(d.path(), "hot");
    let folder = d.path().join("authorized_clients");
    std::fs::create_dir_all(&folder).expect("mkdir");
    // Declared in the XML without credentials: its keys come from the folder.
    d.write_xml(
        "clients.xml",
        &xml_with(r#"<OpenIdClient Identifier="Hot" Profile="Administrator" />"#),
    );
    d.set(
        "AccessControl.AuthorizedClientsPath",
        json!("authorized_clients"),
    )
    .set("AccessControl.ReloadIntervalSeconds", json!(1));
    d.write();
    let server = d.start().await;
    let endpoint = format!("{}/connect/token", server.base);
    let s = signer(&key);
    let assertion = s
        .sign("Hot", &endpoint, crate::support::unix_now())
        .expect("sign");
    assert_eq!(assertion_request(&server, &assertion).await.0, 401);

    std::fs::copy(&public, folder.join("Hot.pem")).expect("add key");
    let start = std::time::Instant::now();
    loop {
        let a = s
            .sign("Hot", &endpoint, crate::support::unix_now())
            .expect("sign");
        if assertion_request(&server, &a).await.0 == 200 {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(15),
            "the new key was not picked up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // Removing it revokes it, again without a restart.
    std::fs::remove_file(folder.join("Hot.pem")).expect("remove");
    let start = std::time::Instant::now();
    loop {
        let a = s
            .sign("Hot", &endpoint, crate::support::unix_now())
            .expect("sign");
        if assertion_request(&server, &a).await.0 == 401 {
            break;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(15));
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    server.stop().await;
}

/// A deployment with the client `Poller2` registered by the thumbprint of a key `ids-keytool` made.
pub(crate) fn poller2(d: &Deployment) -> AssertionSigner {
    let (key, public) = agent_key(d.path(), "poller2");
    let tp = thumbprint(d.path(), &public);
    d.write_xml(
        "clients.xml",
        &xml_with(&format!(
            r#"<OpenIdClient Identifier="Poller2" Thumbprints="{tp}" Profile="Administrator" />"#
        )),
    );
    signer(&key)
}

/// Issue 14 point 5: an assertion refused as a replay used to be accepted again after a restart (the
/// replay cache was in memory only). The deployment has no EncryptionCertificate, so deliveries are
/// off: the journal (`data/replay`) does not depend on them.
#[tokio::test(flavor = "multi_thread")]
async fn an_assertion_replayed_after_a_restart_is_refused() {
    let d = Deployment::new();
    let s = poller2(&d);
    d.write();
    let server = d.start().await;
    let addr = server.addr.to_string();
    let endpoint = server.url("/connect/token");
    let assertion = s
        .sign("Poller2", &endpoint, crate::support::unix_now())
        .expect("sign");
    assert_eq!(assertion_request(&server, &assertion).await.0, 200);
    assert_eq!(
        assertion_request(&server, &assertion).await.0,
        401,
        "a replay is refused"
    );
    server.stop().await;

    let journal = d.path().join("data/replay/journal");
    assert!(journal.is_file(), "no journal at {}", journal.display());
    // A crash while the journal was being written leaves a torn last line: tolerated (and reported).
    {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&journal)
            .expect("journal");
        f.write_all(b"0123456789abcdef01").expect("append");
    }

    // Restarted on the same port, so with the same issuer and token endpoint (the assertion's aud).
    let server = d.start_at(&addr).await;
    assert_eq!(server.url("/connect/token"), endpoint);
    let (status, body) = assertion_request(&server, &assertion).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "the assertion replayed after a restart is refused: {body}"
    );
    // Not for any other reason: a fresh assertion of the same key is accepted.
    let fresh = s
        .sign("Poller2", &endpoint, crate::support::unix_now())
        .expect("sign");
    assert_eq!(assertion_request(&server, &fresh).await.0, 200);
    server.stop().await;
}

/// Issue 14 point 10a: with `MaxClientAssertionLifetimeSeconds` 300, exp = now + 300 is accepted and
/// now + 301 refused (the server used to add its 30 s clock leeway, accepting up to now + 330).
#[tokio::test(flavor = "multi_thread")]
async fn the_longest_accepted_assertion_lifetime_is_the_setting_exactly() {
    let mut d = Deployment::new();
    let s = poller2(&d);
    d.set(
        "IdentityServer.MaxClientAssertionLifetimeSeconds",
        json!(300),
    );
    d.write();
    // The server's clock, frozen: `now` below is the server's now, to the second.
    let clock = crate::support::TestClock::new(crate::support::unix_now());
    let server = d.start_with_clock(clock.clone()).await;
    let endpoint = server.url("/connect/token");
    let now = ids_runtime::Clock::now(&*clock);
    for (lifetime, expected) in [(300, 200), (301, 401), (330, 401), (60, 200)] {
        let assertion = s
            .sign_for("Poller2", &endpoint, now, lifetime)
            .expect("sign");
        let (status, body) = assertion_request(&server, &assertion).await;
        assert_eq!(status, expected, "exp = now + {lifetime}: {body}");
    }
    server.stop().await;
}

/// The private CA, server and client certificates, made with `ids-keytool` only.
pub(crate) struct Pki {
    pub(crate) ca: PathBuf,
    pub(crate) server_pfx: PathBuf,
}

pub(crate) fn pki(dir: &Path) -> Pki {
    let ca_dir = dir.join("pki");
    let d = ca_dir.display().to_string();
    keytool(
        dir,
        &[
            "ca",
            "--out-dir",
            &d,
            "--name",
            "Test Private CA",
            "--passphrase-env",
            "CA_PASS",
        ],
    );
    keytool(
        dir,
        &[
            "server",
            "--ca-dir",
            &d,
            "--ca-passphrase-env",
            "CA_PASS",
            "--name",
            "localhost",
            "--name",
            "127.0.0.1",
            "--out-dir",
            &d,
            "--pfx",
            "--password-env",
            "PFX_PASS",
        ],
    );
    for id in ["Poller", "Other"] {
        keytool(
            dir,
            &[
                "client",
                "--ca-dir",
                &d,
                "--ca-passphrase-env",
                "CA_PASS",
                "--client-id",
                id,
                "--out-dir",
                &d,
                "--pfx",
                "--password-env",
                "PFX_PASS",
            ],
        );
    }
    // openssl accepts the chain of every certificate the tool made.
    let text = openssl(
        &ca_dir,
        &[
            "verify",
            "-CAfile",
            "ca.crt",
            "server.crt",
            "Poller.crt",
            "Other.crt",
        ],
    );
    assert_eq!(text.matches(": OK").count(), 3, "{text}");
    Pki {
        ca: ca_dir.join("ca.crt"),
        server_pfx: ca_dir.join("server.pfx"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn mutual_tls_on_a_private_ca_gives_certificate_bound_tokens() {
    let mut d = Deployment::new();
    let pki = pki(d.path());
    d.write_xml(
        "clients.xml",
        &xml_with(r#"<OpenIdClient Identifier="Poller" Profile="Administrator" />"#),
    );
    d.set(
        "Kestrel.Certificates.Default",
        json!({ "Path": pki.server_pfx.display().to_string(), "Password": PFX_PASSWORD }),
    )
    .set(
        "IdentityServer.ClientCertificateAuthorities",
        json!([pki.ca.display().to_string()]),
    );
    d.write();
    let server = d.start_insecure_client().await;
    let discovery: Value = server
        .get("/.well-known/openid-configuration")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        discovery["tls_client_certificate_bound_access_tokens"],
        true
    );
    let methods = discovery["token_endpoint_auth_methods_supported"].to_string();
    for m in [
        "tls_client_auth",
        "self_signed_tls_client_auth",
        "private_key_jwt",
    ] {
        assert!(methods.contains(m), "{methods}");
    }

    let pki_dir = pki.ca.parent().expect("dir").to_path_buf();
    let mut a = AgentDeployment::new(&server.base);
    a.set("Tls.TrustedCertificates", json!([pki.ca.display().to_string()]))
        .set(
            "ClientCertificate",
            json!({ "File": pki_dir.join("Poller.pfx").display().to_string(), "Password": PFX_PASSWORD }),
        )
        .set_agent(
            "OpenId",
            json!({ "AgentIdentifier": "Local", "DefaultOpenIdClient": "Poller", "ClientAuthentication": "TlsClientAuth" }),
        );
    a.write();
    let out = agent(a.path(), &["token", "--json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let body: Value = serde_json::from_slice(&out.stdout).expect("json");
    let token = body["access_token"].as_str().expect("token").to_string();
    let poller = ids_pki::Certificate::from_file(&pki_dir.join("Poller.crt")).expect("crt");
    assert_eq!(claims(&token)["sub"], "Poller");
    assert_eq!(
        claims(&token)["cnf"]["x5t#S256"],
        json!(poller.x5t_s256()),
        "the token is bound to the agent's certificate"
    );

    // Without a certificate, the client id alone is refused.
    let plain = reqwest::Client::builder()
        .tls_certs_only([
            reqwest::Certificate::from_pem(&std::fs::read(&pki.ca).expect("ca")).expect("ca pem"),
        ])
        .build()
        .expect("client");
    let r = plain
        .post(server.url("/connect/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "Poller"),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 401);
    // The bound token is refused over a connection without that certificate.
    let r = plain
        .get(server.url("/api/deliveries"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 401);
    let refusal = challenge(&r);
    assert!(refusal.contains("client certificate"), "{refusal}");

    // Over a connection with the agent's certificate the bound token is accepted (deliveries are off
    // in this deployment, so the answer after authentication is 503); with another certificate it is not.
    let with_cert = |name: &str| {
        let mut pem = std::fs::read(pki_dir.join(format!("{name}.crt"))).expect("crt");
        pem.extend(std::fs::read(pki_dir.join(format!("{name}.key"))).expect("key"));
        reqwest::Client::builder()
            .tls_certs_only([
                reqwest::Certificate::from_pem(&std::fs::read(&pki.ca).expect("ca"))
                    .expect("ca pem"),
            ])
            .identity(reqwest::Identity::from_pem(&pem).expect("identity"))
            .build()
            .expect("client")
    };
    let r = with_cert("Poller")
        .get(server.url("/api/deliveries"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 503, "authenticated, then deliveries are off");
    let r = with_cert("Other")
        .get(server.url("/api/deliveries"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 401);
    let refusal = challenge(&r);
    assert!(refusal.contains(&poller.x5t_s256()), "{refusal}");

    // Another certificate from the same CA, for another client, is refused for Poller; the agent
    // prints its certificate's thumbprint and the setting to add.
    a.set(
        "ClientCertificate",
        json!({ "File": pki_dir.join("Other.pfx").display().to_string(), "Password": PFX_PASSWORD }),
    );
    a.write();
    let out = agent(a.path(), &["token"]);
    let err = stderr(&out);
    assert_ne!(code(&out), 0, "{err}");
    assert!(err.contains("invalid_client"), "{err}");
    let other = ids_pki::Certificate::from_file(&pki_dir.join("Other.crt")).expect("crt");
    assert!(err.contains(&other.x5t_s256()), "{err}");
    assert!(err.contains("urn:ids:client:Poller"), "{err}");

    // self_signed_tls_client_auth: the same Other certificate, pinned by thumbprint for Poller, works.
    d.write_xml(
        "clients.xml",
        &xml_with(&format!(
            r#"<OpenIdClient Identifier="Poller" Thumbprints="{}" Profile="Administrator" />"#,
            other.x5t_s256()
        )),
    );
    wait_for("the XML reload", || code(&agent(a.path(), &["token"])) == 0);
    server.stop().await;
}

/// What the seed recipe types at `openssl`'s passphrase prompts for `rootCA.key`.
const SEED_CA_PASS: &str = "pass:seed ca passphrase";

/// `grpc-mutual-tls.rst`'s commands for the root CA and a client certificate, word for word but for
/// what the recipe types at prompts (the CA key's passphrase: `-passout`/`-passin`; the subjects:
/// `-subj`). No extension file: `client.crt` is an X.509 v1 certificate, `rootCA.pem` a v3 CA.
fn seed_pki(dir: &Path, ca_subject: &str, client_subject: &str) {
    std::fs::create_dir_all(dir).expect("mkdir");
    openssl(
        dir,
        &[
            "genrsa",
            "-des3",
            "-passout",
            SEED_CA_PASS,
            "-out",
            "rootCA.key",
            "2048",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-nodes",
            "-key",
            "rootCA.key",
            "-passin",
            SEED_CA_PASS,
            "-sha256",
            "-days",
            "1024",
            "-subj",
            ca_subject,
            "-out",
            "rootCA.pem",
        ],
    );
    openssl(dir, &["genrsa", "-out", "client.key", "2048"]);
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            "client.key",
            "-subj",
            client_subject,
            "-out",
            "client.csr",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "client.csr",
            "-CA",
            "rootCA.pem",
            "-CAkey",
            "rootCA.key",
            "-passin",
            SEED_CA_PASS,
            "-CAcreateserial",
            "-out",
            "client.crt",
            "-days",
            "500",
            "-sha256",
        ],
    );
    let client = openssl(dir, &["x509", "-in", "client.crt", "-noout", "-text"]);
    assert!(client.contains("Version: 1 (0x0)"), "{client}");
    let ca = openssl(dir, &["x509", "-in", "rootCA.pem", "-noout", "-text"]);
    assert!(
        ca.contains("Version: 3 (0x2)") && ca.contains("CA:TRUE"),
        "{ca}"
    );
}

fn curl_available() -> bool {
    std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `curl --cert CERT --key KEY` on the token endpoint as the seed's client would run it: the HTTP status
/// and JSON body, or curl's exit status and message when the TLS handshake failed.
fn curl_token(
    ca: &Path,
    port: u16,
    cert: &Path,
    key: &Path,
    client_id: &str,
    extra: &[&str],
) -> Result<(u16, Value), String> {
    let out = std::process::Command::new("curl")
        .arg("-sS")
        .args(extra)
        .arg("--cert")
        .arg(cert)
        .arg("--key")
        .arg(key)
        .arg("--cacert")
        .arg(ca)
        .args(["-w", "\n%{http_code}"])
        .args(["-d", "grant_type=client_credentials"])
        .args(["-d", &format!("client_id={client_id}")])
        .arg(format!("https://localhost:{port}/connect/token"))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run curl");
    if !out.status.success() {
        return Err(format!(
            "curl exited with {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').expect("status line");
    Ok((
        status.trim().parse().expect("HTTP status"),
        serde_json::from_str(body).unwrap_or(Value::Null),
    ))
}

/// Issue 13 point 4: the seed's `openssl x509 -req` (no extension file) makes X.509 v1 client
/// certificates; one issued by a configured CA gets a certificate-bound token over curl, with a warning
/// suggesting `ids-keytool sign`. A v1 certificate from another CA is `invalid_client`; a v1 self-signed
/// certificate (a CA by OpenSSL's rules) is refused in the handshake. Each refusal is logged once with
/// the certificate's subject, issuer and reason.
#[tokio::test(flavor = "multi_thread")]
async fn seed_openssl_v1_client_certificate_gets_a_certificate_bound_token() {
    if !curl_available() {
        eprintln!(
            "SKIPPED seed_openssl_v1_client_certificate_gets_a_certificate_bound_token: `curl --version` does not run (curl is not installed); the test needs the seed's real client"
        );
        return;
    }
    let mut d = Deployment::new();
    let seed = d.path().join("seed");
    seed_pki(
        &seed,
        "/C=FR/O=Seed/CN=Seed Root CA",
        "/C=FR/O=Seed/CN=poller-seed",
    );
    // The same recipe run by someone else: same client subject, another CA.
    let rogue = d.path().join("rogue");
    seed_pki(
        &rogue,
        "/C=FR/O=Rogue/CN=Rogue Root CA",
        "/C=FR/O=Seed/CN=poller-seed",
    );
    // The seed's request signed with its own key: a v1 self-signed certificate.
    openssl(
        &seed,
        &[
            "x509",
            "-req",
            "-in",
            "client.csr",
            "-signkey",
            "client.key",
            "-out",
            "self.crt",
            "-days",
            "30",
            "-sha256",
        ],
    );
    // What the server's warning suggests: the same request signed again by `ids-keytool sign` with the
    // seed's own CA key (`genrsa -des3`: PKCS#8 encrypted with DES-EDE3-CBC), a v3 certificate mapped
    // by its SAN.
    std::fs::write(
        seed.join("ca.pass"),
        SEED_CA_PASS.trim_start_matches("pass:"),
    )
    .expect("write");
    keytool(
        &seed,
        &[
            "sign",
            "--ca-cert",
            "rootCA.pem",
            "--ca-key",
            "rootCA.key",
            "--ca-passphrase-file",
            "ca.pass",
            "--csr",
            "client.csr",
            "--usage",
            "client",
            "--out",
            "client-v3.crt",
        ],
    );
    d.write_xml(
        "clients.xml",
        &xml_with(
            r#"<OpenIdClient Identifier="SeedPoller" TlsClientAuthSubjectDn="CN=poller-seed,O=Seed,C=FR" Profile="Administrator" />
<OpenIdClient Identifier="poller-seed" Profile="Administrator" />"#,
        ),
    );
    d.set(
        "IdentityServer.ClientCertificateAuthorities",
        json!([seed.join("rootCA.pem").display().to_string()]),
    );
    let (server, port, _) = crate::cli::serve(&d);
    let ca = d.path().join("ca.crt");
    let (cert, key) = (seed.join("client.crt"), seed.join("client.key"));

    let x5t = ids_pki::Certificate::from_file(&cert)
        .expect("v1 certificate")
        .x5t_s256();
    // TLS 1.3, again TLS 1.3 (one warning only), then TLS 1.2 (the handshake signature is checked
    // another way).
    for extra in [&[][..], &[], &["--tls-max", "1.2"]] {
        let (status, body) = curl_token(&ca, port, &cert, &key, "SeedPoller", extra)
            .expect("the handshake succeeds");
        assert_eq!(status, 200, "{body}");
        let token = body["access_token"].as_str().expect("token");
        assert_eq!(claims(token)["sub"], "SeedPoller");
        assert_eq!(
            claims(token)["cnf"]["x5t#S256"],
            json!(x5t),
            "the token is bound to the seed's certificate"
        );
    }

    // The reissued v3 certificate: the client its SAN names, no v1 warning.
    let reissued = seed.join("client-v3.crt");
    let (status, body) =
        curl_token(&ca, port, &reissued, &key, "poller-seed", &[]).expect("the handshake succeeds");
    assert_eq!(status, 200, "{body}");
    let v3_x5t = ids_pki::Certificate::from_file(&reissued)
        .expect("v3 certificate")
        .x5t_s256();
    assert_eq!(
        claims(body["access_token"].as_str().expect("token"))["cnf"]["x5t#S256"],
        json!(v3_x5t)
    );

    // Same subject, another CA: the handshake succeeds, the token endpoint says invalid_client.
    let (status, body) = curl_token(
        &ca,
        port,
        &rogue.join("client.crt"),
        &rogue.join("client.key"),
        "SeedPoller",
        &[],
    )
    .expect("the handshake succeeds");
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );
    // A v1 self-signed certificate is refused in the handshake, twice, and logged once.
    for _ in 0..2 {
        let refused = curl_token(&ca, port, &seed.join("self.crt"), &key, "SeedPoller", &[]);
        assert!(refused.is_err(), "{refused:?}");
    }

    let log = server.stop_and_log();
    // The accepted v1 certificate: one warning suggesting a reissue, whatever the number of requests.
    let v1 = log
        .lines()
        .filter(|l| l.contains("X.509 v1") && l.contains(&x5t))
        .collect::<Vec<_>>();
    assert_eq!(v1.len(), 1, "{log}");
    assert!(
        !log.lines()
            .any(|l| l.contains("X.509 v1") && l.contains(&v3_x5t)),
        "no warning for the v3 certificate: {log}"
    );
    assert!(v1[0].contains("ids-keytool sign"), "{log}");
    // The rogue certificate at the token endpoint: subject, issuer and reason.
    let rogue_line = log
        .lines()
        .find(|l| l.contains("client authentication failed") && l.contains("Rogue Root CA"))
        .unwrap_or_else(|| panic!("no refusal for the rogue certificate: {log}"));
    assert!(rogue_line.contains("CN=poller-seed"), "{rogue_line}");
    assert!(
        rogue_line.contains("not issued by IdentityServer:ClientCertificateAuthorities"),
        "{rogue_line}"
    );
    // The self-signed v1 certificate in the handshake: once, with subject, issuer and reason.
    let handshake = log
        .lines()
        .filter(|l| l.contains("refused in the TLS handshake"))
        .collect::<Vec<_>>();
    assert_eq!(handshake.len(), 1, "{log}");
    assert!(
        handshake[0].contains("subject=C=FR, O=Seed, CN=poller-seed")
            && handshake[0].contains("issuer=C=FR, O=Seed, CN=poller-seed")
            && handshake[0].contains("v1"),
        "{}",
        handshake[0]
    );
}

/// A v1 certificate cannot be a CA (no basicConstraints): in `ClientCertificateAuthorities` it is a
/// configuration error naming the setting and the file.
#[test]
fn v1_certificate_configured_as_client_ca_is_refused() {
    let mut d = Deployment::new();
    let dir = d.path().join("old");
    std::fs::create_dir_all(&dir).expect("mkdir");
    openssl(&dir, &["genrsa", "-out", "ca.key", "2048"]);
    openssl(
        &dir,
        &[
            "req",
            "-new",
            "-key",
            "ca.key",
            "-subj",
            "/CN=Old v1 CA",
            "-out",
            "ca.csr",
        ],
    );
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "ca.csr",
            "-signkey",
            "ca.key",
            "-out",
            "v1-ca.pem",
            "-days",
            "30",
        ],
    );
    d.set(
        "IdentityServer.ClientCertificateAuthorities",
        json!([dir.join("v1-ca.pem").display().to_string()]),
    );
    let settings = d.load_settings().expect("settings");
    let errors = identity_server::load(&settings, crate::support::unix_now())
        .map(|_| ())
        .expect_err("a v1 CA is refused")
        .to_string();
    assert!(
        errors.contains("IdentityServer:ClientCertificateAuthorities")
            && errors.contains("v1-ca.pem")
            && errors.contains("Old v1 CA")
            && errors.contains("X.509 v1"),
        "{errors}"
    );
}
