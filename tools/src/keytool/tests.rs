//! In-process checks of the commands (the binary with the real `openssl` is tested end to end in
//! `tests/tests/e2e/keytool.rs`).

use std::path::Path;

use clap::Parser as _;
use ids_devpki::{San, Usage};

use super::authority::spec_from_request;
use super::*;

/// Runs `ids-keytool ARGS` in-process: its output, or the error's message and exit code.
fn keytool(args: &[&str]) -> Result<String, (String, u8)> {
    let mut argv = vec!["ids-keytool"];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv).map_err(|e| (e.to_string(), 2))?;
    let mut out = Vec::new();
    match run(&cli.command, &mut out) {
        Ok(()) => Ok(String::from_utf8(out).unwrap()),
        Err(e) => Err((format!("{e:#}"), exit_code(&e))),
    }
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn passwords_come_from_env_or_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pass.txt");
    std::fs::write(&file, "s3cret\r\nsecond line\n").unwrap();
    let value = files::secret(None, Some(&file), "password")
        .unwrap()
        .unwrap();
    assert_eq!(value.as_str(), "s3cret");
    assert!(files::secret(None, None, "password").unwrap().is_none());
    let err = files::secret(Some("IDS_KEYTOOL_TEST_UNSET_VAR"), None, "password").unwrap_err();
    assert_eq!(exit_code(&err), 2);
    assert!(
        err.to_string().contains("IDS_KEYTOOL_TEST_UNSET_VAR"),
        "{err}"
    );
    std::fs::write(&file, "\n").unwrap();
    let err = files::secret(None, Some(&file), "passphrase").unwrap_err();
    assert!(err.to_string().contains("the passphrase is empty"), "{err}");
    let generated = files::generate_password().unwrap();
    assert_eq!(generated.len(), 24);
    assert!(generated.chars().all(|c| c.is_ascii_alphanumeric()));
}

#[test]
fn ca_server_client_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    let out = keytool(&["ca", "--out-dir", p(&ca_dir), "--name", "Unit CA"]).unwrap();
    assert!(out.contains("subject: CN=Unit CA"), "{out}");
    let err = keytool(&["ca", "--out-dir", p(&ca_dir)]).unwrap_err();
    assert_eq!(err.1, 2);
    assert!(
        err.0.contains("ca.crt") && err.0.contains("--force"),
        "{}",
        err.0
    );
    keytool(&["ca", "--out-dir", p(&ca_dir), "--force"]).unwrap();

    let out_dir = dir.path().join("out");
    let out = keytool(&[
        "server",
        "--ca-dir",
        p(&ca_dir),
        "--name",
        "api.example",
        "--name",
        "10.1.2.3",
        "--out-dir",
        p(&out_dir),
        "--key-type",
        "rsa",
    ])
    .unwrap();
    assert!(out.contains("SAN: DNS:api.example, IP:10.1.2.3"), "{out}");
    assert!(out.contains("key: RSA-2048"), "{out}");
    let thumb = keytool(&["thumbprint", "--quiet", p(&out_dir.join("server.key"))]).unwrap();
    let cert_thumb = keytool(&["thumbprint", p(&out_dir.join("server.crt"))]).unwrap();
    let lines: Vec<&str> = cert_thumb.lines().collect();
    assert_eq!(lines[0], p(&out_dir.join("server.crt")));
    assert_eq!(lines[1], "  kind: certificate");
    assert_eq!(lines[2], format!("  jwk-thumbprint: {}", thumb.trim()));
    assert!(lines[3].starts_with("  x5t#S256: ") && lines[4].starts_with("  sha1: "));
    assert_eq!(lines.len(), 5);

    let out = keytool(&[
        "client",
        "--ca-dir",
        p(&ca_dir),
        "--client-id",
        "Job",
        "--out-dir",
        p(&out_dir),
        "--pfx",
    ])
    .unwrap();
    assert!(
        out.contains("SAN: URI:urn:ids:client:Job, DNS:Job"),
        "{out}"
    );
    let password = std::fs::read_to_string(out_dir.join("Job.pfx.password")).unwrap();
    let pfx = ids_pki::Pfx::from_file(&out_dir.join("Job.pfx"), password.trim()).unwrap();
    assert_eq!(pfx.certificate.subject(), "CN=Job");
    assert_eq!(pfx.chain.len(), 1);

    let err = keytool(&["client", "--client-id", "Job"]).unwrap_err();
    assert_eq!(err.1, 2);
    assert!(err.0.contains("--ca-dir"), "{}", err.0);
    let err = keytool(&["client", "--ca-dir", p(&ca_dir), "--client-id", "a/b"]).unwrap_err();
    assert_eq!(err.1, 2);
    let err = keytool(&["server", "--ca-dir", p(&out_dir), "--name", "x"]).unwrap_err();
    assert_eq!(err.1, 2);
    assert!(err.0.contains("ca.crt"), "{}", err.0);
}

#[test]
fn sign_checks_the_requested_names() {
    let key = ids_devpki::generate_key(ids_devpki::KeyKind::EcP256).unwrap();
    let request = |cn: &str, sans: &[San]| {
        let pem = ids_devpki::create_request(&key, cn, sans).unwrap();
        ids_devpki::parse_request("r.csr", pem.as_bytes()).unwrap()
    };
    // A server request with only a CN (the gRPC recipe): the CN becomes the SAN.
    let (spec, notes) =
        spec_from_request("r.csr", &request("localhost", &[]), Usage::Server, 5).unwrap();
    assert_eq!(spec.sans, vec![San::Dns("localhost".into())]);
    assert_eq!(notes.len(), 1);
    // A client request with only a CN: the urn is added.
    let (spec, _) = spec_from_request("r.csr", &request("Job", &[]), Usage::Client, 5).unwrap();
    assert_eq!(spec.common_name, "Job");
    assert_eq!(spec.sans, vec![San::Uri("urn:ids:client:Job".into())]);
    // URIs are refused for servers, IPs for clients, conflicting ids everywhere.
    let uri = [San::Uri("urn:ids:client:Job".into())];
    let err = spec_from_request("r.csr", &request("Job", &uri), Usage::Server, 5).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("r.csr: `URI:urn:ids:client:Job`"),
        "{err}"
    );
    assert_eq!(exit_code(&err), 2);
    let ip = [San::Ip("10.0.0.1".parse().unwrap())];
    assert!(spec_from_request("r.csr", &request("Job", &ip), Usage::Client, 5).is_err());
    let err = spec_from_request("r.csr", &request("Other", &uri), Usage::Client, 5).unwrap_err();
    assert!(
        err.to_string().contains("`Job` in its SAN but `Other`"),
        "{err}"
    );
    let err =
        spec_from_request("r.csr", &request("not a host", &[]), Usage::Server, 5).unwrap_err();
    assert!(
        err.to_string().contains("no DNS name or IP address"),
        "{err}"
    );
}

#[cfg(unix)]
#[test]
fn keygen_folder_permissions() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let out = keytool(&[
        "keygen",
        "--mode",
        "server",
        "--dir",
        p(&keys),
        "--host",
        "db1",
    ])
    .unwrap();
    assert!(out.contains("authorized_clients"), "{out}");
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&keys), 0o700);
    assert_eq!(mode(&keys.join("authorized_clients")), 0o700);
    assert_eq!(mode(&keys.join("id_server_db1.key")), 0o600);
    assert_eq!(mode(&keys.join("id_server_db1.pub")), 0o644);
    let err = keytool(&[
        "keygen",
        "--mode",
        "server",
        "--dir",
        p(&keys),
        "--host",
        "db1",
    ])
    .unwrap_err();
    assert_eq!(err.1, 2);
    assert!(err.0.contains("id_server_db1.key"), "{}", err.0);
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o750)).unwrap();
    let err = keytool(&[
        "keygen",
        "--mode",
        "agent",
        "--dir",
        p(&keys),
        "--host",
        "db1",
    ])
    .unwrap_err();
    assert!(
        err.0.contains("0750") && err.0.contains("chmod 700"),
        "{}",
        err.0
    );
}
