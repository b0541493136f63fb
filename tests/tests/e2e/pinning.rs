//! `Tls:ServerPinning`: the `agent` binary against the real server over HTTPS. `First` pins the key the
//! server presents at the first connection (in `work/known_servers`) and refuses another one, even from
//! a certificate the usual validation accepts; `Strict` requires one of `Tls:ServerThumbprints`.

use std::path::Path;
use std::process::Output;

use ids_devpki::{Ca, Issued, KeyKind, PfxProfile, to_pfx};
use serde_json::json;

use crate::support::{AgentDeployment, Deployment, PASSWORD, code, fixtures, stderr};

/// Runs the agent binary without blocking the runtime the in-process server runs on.
async fn agent(dir: &Path, args: &[&str]) -> Output {
    let dir = dir.to_path_buf();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        crate::support::agent(&dir, &args)
    })
    .await
    .expect("join")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The RFC 7638 thumbprint of a certificate's key.
fn key_thumbprint(der: &[u8]) -> String {
    let cert = ids_pki::Certificate::from_der("test", der).expect("certificate");
    ids_pki::jwk::thumbprint(cert.public_key())
}

/// Writes `issued` as `name` (a PFX with the CA in its chain) into the server's folder.
fn write_tls_pfx(d: &Deployment, ca: &Ca, issued: &Issued, name: &str) {
    let pfx = to_pfx(
        issued,
        &[ca.cert.cert_der.as_slice()],
        "tls",
        PASSWORD,
        PfxProfile::Modern,
    )
    .expect("pfx");
    std::fs::write(d.path().join(name), pfx).expect("write pfx");
}

#[tokio::test(flavor = "multi_thread")]
async fn first_pins_the_key_and_refuses_another_one_from_the_same_ca() {
    // One CA, two TLS certificates with different keys: ordinary validation accepts both.
    let ca = Ca::new("pinning test CA", 2).expect("ca");
    let names = ["localhost", "127.0.0.1"];
    let old = ca
        .issue_server(&names, KeyKind::EcP256, 2)
        .expect("tls cert");
    let new = ca
        .issue_server(&names, KeyKind::EcP256, 2)
        .expect("tls cert");
    let (old_tp, new_tp) = (key_thumbprint(&old.cert_der), key_thumbprint(&new.cert_der));
    assert_ne!(old_tp, new_tp);

    let mut d = Deployment::new();
    write_tls_pfx(&d, &ca, &old, "tls-old.pfx");
    write_tls_pfx(&d, &ca, &new, "tls-new.pfx");
    // The test's own HTTPS client trusts the deployment's ca.crt.
    std::fs::write(d.path().join("ca.crt"), &ca.cert.cert_pem).expect("ca");
    d.set("Kestrel.Certificates.Default.Path", json!("tls-old.pfx"));
    let server = d.start().await;
    let port = server.addr.port();
    let authority = format!("127.0.0.1:{port}");

    let mut a = AgentDeployment::new(&server.base);
    std::fs::write(a.path().join("pin-ca.crt"), &ca.cert.cert_pem).expect("ca");
    a.set("Tls.TrustedCertificates", json!(["pin-ca.crt"]));
    a.set("Tls.ServerPinning", json!("first"));
    a.write();
    let store = a.path().join("work").join("known_servers");

    // Not pinned yet: `check --offline` says so.
    let out = agent(a.path(), &["check", "--offline"]).await;
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains(&format!("First: {authority} is not pinned yet")),
        "{}",
        stdout(&out)
    );

    // First connection: the key is pinned, in a file only the agent's user reads.
    let out = agent(a.path(), &["token"]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stderr(&out).contains("is now pinned"), "{}", stderr(&out));
    let text = std::fs::read_to_string(&store).expect("known_servers");
    let fields: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(fields.len(), 4, "{text}");
    assert_eq!(fields[..3], [authority.as_str(), "jwk-thumbprint", &old_tp]);
    time::OffsetDateTime::parse(fields[3], &time::format_description::well_known::Rfc3339)
        .expect("RFC 3339 date");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode(&store), 0o600);
        assert_eq!(mode(&a.path().join("work")), 0o700);
    }
    let written = std::fs::metadata(&store)
        .and_then(|m| m.modified())
        .expect("mtime");

    // Second run: the same key, accepted; the file is not rewritten.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let out = agent(a.path(), &["token"]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(!stderr(&out).contains("pinned"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&store).expect("read"), text);
    assert_eq!(
        std::fs::metadata(&store)
            .and_then(|m| m.modified())
            .expect("mtime"),
        written
    );
    let out = agent(a.path(), &["trust"]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("{authority} key thumbprint {old_tp} pinned on")),
        "{}",
        stdout(&out)
    );
    let out = agent(a.path(), &["check"]).await;
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains(&format!(
            "First: {authority} pinned on {} with key thumbprint {old_tp}",
            fields[3]
        )),
        "{}",
        stdout(&out)
    );

    // The server comes back on the same port with a certificate for another key, from the same CA.
    server.stop().await;
    d.set("Kestrel.Certificates.Default.Path", json!("tls-new.pfx"));
    let server = d.start_at(&format!("127.0.0.1:{port}")).await;
    let out = agent(a.path(), &["token"]).await;
    let err = stderr(&out);
    assert_eq!(code(&out), 4, "the TLS trust exit code: {err}");
    assert!(out.stdout.is_empty(), "no token printed");
    for expected in [
        format!(
            "the server {authority} presented a certificate with key thumbprint {new_tp}, but the agent pinned {old_tp} on {}",
            fields[3]
        ),
        format!("{} line 1", store.display()),
        format!("agent trust --forget {authority}"),
        "Tls:ServerPinning is First".to_string(),
    ] {
        assert!(err.contains(&expected), "missing `{expected}` in: {err}");
    }
    // A refusal changes nothing.
    assert_eq!(std::fs::read_to_string(&store).expect("read"), text);

    // The operator confirms the change: forget, and the next connection pins the new key.
    let out = agent(a.path(), &["trust", "--forget", &authority]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("forgot {authority}")),
        "{}",
        stdout(&out)
    );
    let out = agent(a.path(), &["trust", "--forget", &authority]).await;
    assert_eq!(code(&out), 1, "nothing left to forget");
    let out = agent(a.path(), &["token"]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = std::fs::read_to_string(&store).expect("known_servers");
    assert!(
        text.starts_with(&format!("{authority} jwk-thumbprint {new_tp} ")),
        "{text}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn strict_requires_a_listed_thumbprint() {
    let server = Deployment::new().start().await;
    let tls = ids_pki::Certificate::from_file(&fixtures().join("tls.crt")).expect("tls.crt");
    let tls_tp = ids_pki::jwk::thumbprint(tls.public_key());
    let other = ids_pki::Certificate::from_file(&fixtures().join("signing-rsa.crt"))
        .expect("signing-rsa.crt");
    let other_tp = ids_pki::jwk::thumbprint(other.public_key());

    let mut a = AgentDeployment::new(&server.base);
    a.set("Tls.ServerPinning", json!("Strict"));
    // The key's thumbprint, or the certificate's SHA-1 as Windows shows it (any case, separators).
    let sha1 = tls.sha1_hex().to_lowercase();
    let spaced = sha1
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    for accepted in [
        json!([other_tp, tls_tp]),
        json!([spaced]),
        json!(tls.x5t_s256()),
    ] {
        a.set("Tls.ServerThumbprints", accepted.clone());
        a.write();
        let out = agent(a.path(), &["token"]).await;
        assert_eq!(code(&out), 0, "{accepted}: {}", stderr(&out));
    }
    assert!(!a.path().join("work/known_servers").exists());

    // Another key: refused, naming what the server presented and what is configured.
    a.set("Tls.ServerThumbprints", json!([other_tp]));
    a.write();
    let out = agent(a.path(), &["token"]).await;
    let err = stderr(&out);
    assert_eq!(code(&out), 4, "{err}");
    for expected in [
        format!("key thumbprint {tls_tp}"),
        format!("x5t#S256 {}", tls.x5t_s256()),
        format!("none of Tls:ServerThumbprints ({other_tp})"),
        "Tls:ServerPinning is Strict".to_string(),
    ] {
        assert!(err.contains(&expected), "missing `{expected}` in: {err}");
    }
    server.stop().await;
}

#[tokio::test]
async fn pinning_settings_are_checked() {
    let mut a = AgentDeployment::new("https://127.0.0.1:8443");
    a.set("Tls.ServerPinning", json!("Strict"));
    let errors = a.load_with(&[]).expect_err("Strict without thumbprints");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("Tls:ServerThumbprints")
                && e.contains("Tls:ServerPinning is Strict")),
        "{errors:?}"
    );
    let out = agent(a.path(), &["token"]).await;
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Tls:ServerThumbprints"),
        "{}",
        stderr(&out)
    );

    a.set("Tls.ServerPinning", json!("Sometimes"));
    let errors = a.load_with(&[]).expect_err("unknown mode");
    assert!(
        errors.iter().any(|e| e.contains("Tls:ServerPinning")
            && e.contains("`Always`")
            && e.contains("`First`")
            && e.contains("`Strict`")),
        "{errors:?}"
    );

    a.set("Tls.ServerPinning", json!("STRICT"));
    a.set("Tls.ServerThumbprints", json!(["not a thumbprint"]));
    let errors = a.load_with(&[]).expect_err("bad thumbprint");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("Tls:ServerThumbprints:0") && e.contains("RFC 7638")),
        "{errors:?}"
    );
    // From the environment, as a `;`-separated list.
    let tp = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";
    a.settings["Tls"]
        .as_object_mut()
        .expect("Tls")
        .remove("ServerThumbprints");
    let loaded = a
        .load_with(&[("Tls__ServerThumbprints", &format!("{tp};{tp}"))])
        .expect("valid");
    assert_eq!(
        loaded.settings.server_pinning,
        agent::settings::ServerPinning::Strict {
            thumbprints: vec![tp.to_string(), tp.to_string()]
        }
    );

    // Thumbprints with another mode: accepted, with a warning that they are not used.
    a.set("Tls.ServerPinning", json!("First"));
    a.set("Tls.ServerThumbprints", json!([tp]));
    let loaded = a.load_with(&[]).expect("valid");
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.contains("Tls:ServerThumbprints") && w.contains("not used")),
        "{:?}",
        loaded.warnings
    );
    assert_eq!(
        loaded.settings.server_pinning,
        agent::settings::ServerPinning::First {
            store: a.path().join("work").join("known_servers")
        }
    );
    // The default.
    a.settings["Tls"] = json!({ "TrustedCertificates": ["ca.crt"] });
    let loaded = a.load_with(&[]).expect("valid");
    assert_eq!(
        loaded.settings.server_pinning,
        agent::settings::ServerPinning::Always
    );
}
