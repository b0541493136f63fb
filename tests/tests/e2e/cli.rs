//! The binaries as an operator runs them: `identity-server check|serve|quickstart`, `new-openid-secret`.

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, Command, Stdio};

use ids_proto::ClientSecret;
use ids_secret::SecretHash;
use serde_json::{Value, json};

use crate::support::{Deployment, binary, https_client};

/// Kills the child when dropped, so a failing test leaves no server behind.
pub(crate) struct Running(pub(crate) Child);

impl Running {
    /// Stops the server and returns what it wrote to stderr (its log).
    pub(crate) fn stop_and_log(mut self) -> String {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let mut log = String::new();
        if let Some(mut e) = self.0.stderr.take() {
            std::io::Read::read_to_string(&mut e, &mut log).expect("server stderr");
        }
        log
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `identity-server ARGS`, returns it and the stdout lines up to and including `listening on`.
pub(crate) fn start(args: &[&str]) -> (Running, Vec<String>) {
    let quickstart = args.first() == Some(&"quickstart");
    let mut child = Running(
        Command::new(binary("identity-server"))
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn identity-server"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let mut lines = Vec::new();
    let mut reader = BufReader::new(stdout);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).expect("read") == 0 {
            let mut err = String::new();
            if let Some(mut e) = child.0.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            panic!("identity-server exited before listening: {lines:?}\n{err}");
        }
        lines.push(line.trim_end().to_string());
        if line.starts_with("listening on ") && !quickstart {
            return (child, lines);
        }
        if quickstart && lines.iter().any(|l| l.starts_with("listening on ")) {
            // quickstart's banner ends with the curl command line.
            if line.starts_with("  curl ") {
                return (child, lines);
            }
        }
    }
}

/// Writes `d`'s settings and runs `identity-server serve` on it: the process, its port, a client trusting
/// the test CA.
pub(crate) fn serve(d: &Deployment) -> (Running, u16, reqwest::Client) {
    d.write();
    let dir = d.path().to_str().expect("utf-8 path").to_string();
    let (server, lines) = start(&[
        "serve",
        "--config-dir",
        &dir,
        "--urls",
        "https://127.0.0.1:0",
    ]);
    (
        server,
        port_of(&lines),
        https_client(&d.path().join("ca.crt")),
    )
}

/// `identity-server check --config-dir DIR`.
pub(crate) fn check(dir: &std::path::Path) -> std::process::Output {
    Command::new(binary("identity-server"))
        .args(["check", "--config-dir"])
        .arg(dir)
        .output()
        .expect("run identity-server check")
}

pub(crate) fn port_of(lines: &[String]) -> u16 {
    let line = lines
        .iter()
        .find(|l| l.starts_with("listening on https://127.0.0.1:"))
        .expect("listening line");
    line.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port")
}

#[test]
fn check_prints_a_summary_or_every_problem() {
    let d = Deployment::new();
    d.write();
    let out = check(d.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("signing key: RS256 RSA-2048"), "{stdout}");
    assert!(
        stdout.contains("clients: 5")
            && stdout.contains("Expired (profile Reader, secret legacy SHA-256, EXPIRED"),
        "{stdout}"
    );

    let mut d = Deployment::new();
    d.set("IdentityServer.Lifetime", json!(5));
    d.write();
    d.write_xml("dup.xml", "<C><OpenIdClient Identifier=\"Job\" HashedSecret=\"K7gNU3sdo+OL0wNhqoVWhr3g6s1xYv72ol/pe/Unols=\"/></C>");
    let out = check(d.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("unknown setting `IdentityServer:Lifetime`"),
        "{stderr}"
    );

    // With the settings fixed, the duplicate client is reported.
    let d2 = Deployment::new();
    d2.write();
    d2.write_xml("dup.xml", "<C><OpenIdClient Identifier=\"Job\" HashedSecret=\"K7gNU3sdo+OL0wNhqoVWhr3g6s1xYv72ol/pe/Unols=\"/></C>");
    let out = check(d2.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    // A configuration error (the XML included) is exit code 2 in every tool (issue 13, point 6).
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("duplicate OpenIdClient `Job`") && stderr.contains("dup.xml:1:4"),
        "{stderr}"
    );
}

#[tokio::test]
async fn serve_prints_the_address_and_never_logs_secrets() {
    let d = Deployment::new();
    let (mut server, port, client) = serve(&d);
    let url = format!("https://localhost:{port}/connect/token");
    let wrong = "Wr0ng-Secret-Never-Logged";
    let r = client
        .post(&url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "Job"),
            ("client_secret", wrong),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 401);
    let r = client
        .post(&url)
        .basic_auth("Legacy", Some("secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 200);
    let _ = server.0.kill();
    let _ = server.0.wait();
    let mut stderr = String::new();
    if let Some(mut e) = server.0.stderr.take() {
        std::io::Read::read_to_string(&mut e, &mut stderr).expect("stderr");
    }
    assert!(
        stderr.contains("client authentication failed") && stderr.contains("wrong secret"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(wrong) && !stderr.contains(crate::support::PASSWORD),
        "{stderr}"
    );
}

#[tokio::test]
async fn quickstart_serves_a_demo_client_and_never_overwrites() {
    let dir = tempfile::tempdir().expect("tempdir");
    let qs = dir.path().join("qs");
    let qs_arg = qs.to_str().expect("utf-8").to_string();
    // A fixed port, as a user would have: the agent folder quickstart writes names it.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let (server, lines) = start(&[
        "quickstart",
        "--dir",
        &qs_arg,
        "--urls",
        &format!("https://localhost:{free}"),
    ]);
    let port = port_of(&lines);
    assert_eq!(port, free);
    let secret = lines
        .iter()
        .find_map(|l| l.strip_prefix("Its secret is shown only this once: "))
        .expect("secret printed")
        .to_string();
    assert!(
        lines.iter().any(|l| l.contains("curl --cacert")),
        "{lines:?}"
    );
    let client = https_client(&qs.join("dev-ca.crt"));
    let r = client
        .post(format!("https://localhost:{port}/connect/token"))
        .basic_auth("Demo", Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.expect("json");
    assert!(v["access_token"].as_str().is_some());

    // The agent folder quickstart wrote works as it is.
    let out = Command::new(binary("agent"))
        .arg("--config-dir")
        .arg(qs.join("agent"))
        .arg("check")
        .env_remove("AGENT_CONFIG_DIR")
        .output()
        .expect("agent check");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        report.contains("client `Demo`: token obtained and verified"),
        "{report}"
    );
    assert!(!report.contains(&secret), "secret leaked: {report}");
    drop(server);

    // Our own PFX files are readable by openssl.
    let settings: Value =
        serde_json::from_slice(&std::fs::read(qs.join("appsettings.json")).expect("read"))
            .expect("json");
    let password = settings["IdentityServer"]["X509KeyFilePassword"]
        .as_str()
        .expect("password");
    let out = Command::new("openssl")
        .args(["pkcs12", "-noout", "-in"])
        .arg(qs.join("dev-signing.pfx"))
        .arg("-passin")
        .arg(format!("pass:{password}"))
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Second run: nothing regenerated, no new secret.
    let before = std::fs::read(qs.join("Conf/demo-client.xml")).expect("read");
    let (server, lines) = start(&[
        "quickstart",
        "--dir",
        &qs_arg,
        "--urls",
        "https://localhost:0",
    ]);
    assert!(
        !lines.iter().any(|l| l.contains("shown only this once")),
        "{lines:?}"
    );
    assert_eq!(
        std::fs::read(qs.join("Conf/demo-client.xml")).expect("read"),
        before
    );
    drop(server);
}

#[test]
fn new_openid_secret_hashes_like_the_vendor_tool() {
    let out = Command::new(binary("new-openid-secret"))
        .args(["--client-secret", "secret", "--algorithm", "sha256"])
        .output()
        .expect("run");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Shared secret for 'secret' is 'K7gNU3sdo+OL0wNhqoVWhr3g6s1xYv72ol/pe/Unols='"
    );

    // Default: argon2id, verifiable by the server's parser.
    let out = Command::new(binary("new-openid-secret"))
        .args(["--client-secret", "s3cr3t"])
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let hash = text
        .trim()
        .rsplit(" is '")
        .next()
        .expect("hash")
        .trim_end_matches('\'');
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{text}"
    );
    let parsed = SecretHash::parse(hash).expect("parse");
    assert!(parsed.verify(&ClientSecret::new("s3cr3t")));

    // From standard input.
    let mut child = Command::new(binary("new-openid-secret"))
        .args(["--secret-stdin", "--algorithm", "sha256"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"secret\n")
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("'K7gNU3sdo+OL0wNhqoVWhr3g6s1xYv72ol/pe/Unols='")
    );

    // Generated: 32 random bytes, base64url (43 characters); two runs differ.
    let gen_secret = || {
        let out = Command::new(binary("new-openid-secret"))
            .args(["--algorithm", "sha256"])
            .output()
            .expect("run");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let secret = text.split('\'').nth(1).expect("secret").to_string();
        let hash = text.split('\'').nth(3).expect("hash").to_string();
        assert!(
            SecretHash::parse(&hash)
                .expect("hash")
                .verify(&ClientSecret::new(secret.clone()))
        );
        secret
    };
    let (a, b) = (gen_secret(), gen_secret());
    assert_eq!(a.len(), 43);
    assert_ne!(a, b);
}

#[test]
fn quickstart_on_a_busy_port_writes_nothing() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = busy.local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("tempdir");
    let qs = dir.path().join("qs");
    let out = Command::new(binary("identity-server"))
        .args([
            "quickstart",
            "--urls",
            &format!("https://127.0.0.1:{port}"),
            "--dir",
        ])
        .arg(&qs)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{stderr}"
    );
    assert!(!qs.join("appsettings.json").exists());

    let out = Command::new(binary("identity-server"))
        .args(["quickstart", "--urls", "ftp://x", "--dir"])
        .arg(&qs)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("--urls `ftp://x`"),
        "{stderr}"
    );
    drop(busy);
}

#[tokio::test]
async fn sighup_reloads_the_access_control_folder() {
    let mut d = Deployment::new();
    d.set("AccessControl.ReloadIntervalSeconds", json!(0));
    let (server, port, client) = serve(&d);
    let ask = || {
        client
            .post(format!("https://127.0.0.1:{port}/connect/token"))
            .basic_auth("Added", Some("secret"))
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    d.write_xml(
        "added.xml",
        "<ConfigurationFile><OpenIdClient Identifier=\"Added\" HashedSecret=\"K7gNU3sdo+OL0wNhqoVWhr3g6s1xYv72ol/pe/Unols=\" /></ConfigurationFile>",
    );
    // Polling is off: nothing changes by itself.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(ask().await.expect("send").status().as_u16(), 401);
    let status = Command::new("kill")
        .args(["-HUP", &server.0.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let mut ok = false;
    for _ in 0..50 {
        if ask().await.expect("send").status().as_u16() == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ok, "SIGHUP did not reload the folder");
}

#[test]
fn check_warns_about_certificates_expiring_within_the_given_days() {
    let d = Deployment::new();
    d.write();
    let quiet = check(d.path());
    let stdout = String::from_utf8_lossy(&quiet.stdout).into_owned();
    assert!(quiet.status.success(), "{stdout}");
    assert!(!stdout.contains("renew it before then"), "{stdout}");
    // Every fixture certificate expires within a century: each is named with its setting.
    let out = Command::new(binary("identity-server"))
        .args(["check", "--expiry-days", "36500", "--config-dir"])
        .arg(d.path())
        .output()
        .expect("run check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "warnings do not fail the check: {stdout}"
    );
    for setting in [
        "IdentityServer:X509KeyFilePath",
        "Kestrel:Certificates:Default",
    ] {
        assert!(
            stdout.contains(&format!("warning: {setting}"))
                && stdout.contains("renew it before then"),
            "{setting} missing in {stdout}"
        );
    }
}

#[tokio::test]
async fn an_unregistered_key_is_logged_with_its_thumbprint() {
    let d = Deployment::new();
    // A client registered by the Gorgone vector's thumbprint; the request is signed by another key.
    d.write_xml(
        "clients.xml",
        &crate::support::default_xml().replace(
            "</ConfigurationFile>",
            r#"<OpenIdClient Identifier="Poller2" Thumbprints="pnI6EWkiTbazjikJXRkLmjml5wvVECYtQduJUjS4QK4" Profile="Administrator" />
</ConfigurationFile>"#,
        ),
    );
    let (mut server, port, client) = serve(&d);
    let ca = ids_devpki::Ca::new("test", 1).expect("ca");
    let issued = ca
        .issue_signing("rogue", ids_devpki::KeyKind::EcP256, 1)
        .expect("cert");
    let cert = ids_pki::Certificate::from_der("rogue", &issued.cert_der).expect("cert");
    let signer = ids_jose::AssertionSigner::new(
        ids_pki::SigningKey::from_pkcs8(&issued.key_pkcs8).expect("key"),
        cert.public_key(),
    );
    let url = format!("https://localhost:{port}/connect/token");
    let assertion = signer
        .sign("Poller2", &url, crate::support::unix_now())
        .expect("sign");
    let r = client
        .post(&url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ids_jose::assertion::ASSERTION_TYPE),
            ("client_assertion", &assertion),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 401);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"], "invalid_client");
    let _ = server.0.kill();
    let _ = server.0.wait();
    let mut stderr = String::new();
    if let Some(mut e) = server.0.stderr.take() {
        std::io::Read::read_to_string(&mut e, &mut stderr).expect("stderr");
    }
    let line = stderr
        .lines()
        .find(|l| l.contains("client authentication failed"))
        .unwrap_or_default();
    assert!(
        line.contains("Poller2")
            && line.contains("private_key_jwt")
            && line.contains(signer.thumbprint())
            && line.contains("not registered"),
        "{stderr}"
    );
}
