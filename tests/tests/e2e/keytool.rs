//! `ids-keytool` as an operator runs it, checked with the real `openssl`: the Gorgone thumbprint
//! vector, a private CA (with a passphrase) issuing server and client certificates, CSRs made and
//! signed by the tool and by `openssl`, PFX files (modern and `--legacy`), `keygen` folders and
//! permissions, and the refusals (existing files, wrong CA passphrase) with exit status 2.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use ids_pki::Pfx;

use crate::support::{binary, code, fixtures, stderr};

const GORGONE_THUMBPRINT: &str = "pnI6EWkiTbazjikJXRkLmjml5wvVECYtQduJUjS4QK4";
pub(crate) const CA_PASSPHRASE: &str = "correct horse battery staple";
pub(crate) const PFX_PASSWORD: &str = "pfx password";

/// Runs `ids-keytool ARGS` in `dir` with the test passphrases in its environment.
fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(binary("ids-keytool"))
        .args(args)
        .current_dir(dir)
        .env("CA_PASS", CA_PASSPHRASE)
        .env("PFX_PASS", PFX_PASSWORD)
        .env("WRONG_PASS", "not the passphrase")
        .stdin(Stdio::null())
        .output()
        .expect("run ids-keytool")
}

/// Runs `ids-keytool ARGS` and asserts success; returns stdout.
pub(crate) fn keytool(dir: &Path, args: &[&str]) -> String {
    let out = run(dir, args);
    assert!(
        out.status.success(),
        "ids-keytool {args:?} failed ({}): {}",
        code(&out),
        stderr(&out)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Runs `openssl ARGS` in `dir` and asserts success; returns stdout and stderr.
pub(crate) fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "openssl {args:?} failed: {text}");
    text
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn thumbprint_gives_the_gorgone_vector() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fixture = fixtures().join("gorgone-central-pubkey.pem");
    let file = fixture.display().to_string();
    let out = keytool(dir.path(), &["thumbprint", &file]);
    assert_eq!(
        out,
        format!("{file}\n  kind: public key\n  jwk-thumbprint: {GORGONE_THUMBPRINT}\n")
    );
    let quiet = keytool(dir.path(), &["thumbprint", "--quiet", &file, &file]);
    assert_eq!(
        quiet,
        format!("{GORGONE_THUMBPRINT}\n{GORGONE_THUMBPRINT}\n")
    );

    // A certificate also gets x5t#S256 and the Windows SHA-1 thumbprint (what openssl computes).
    let cert = fixtures().join("signing-rsa.crt").display().to_string();
    let out = keytool(dir.path(), &["thumbprint", &cert]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], cert);
    assert_eq!(lines[1], "  kind: certificate");
    assert!(lines[2].starts_with("  jwk-thumbprint: "), "{out}");
    assert!(lines[3].starts_with("  x5t#S256: "), "{out}");
    let sha1 = openssl(
        dir.path(),
        &["x509", "-in", &cert, "-noout", "-fingerprint", "-sha1"],
    );
    let sha1 = sha1
        .trim()
        .rsplit('=')
        .next()
        .unwrap_or_default()
        .replace(':', "");
    assert_eq!(lines[4], format!("  sha1: {sha1}"));

    // A PFX needs its password; without it, exit 2 naming the file.
    let pfx = fixtures().join("signing-rsa.pfx").display().to_string();
    let out = run(dir.path(), &["thumbprint", &pfx]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains(&pfx) && stderr(&out).contains("--password-env"));
    std::fs::write(dir.path().join("pw"), "test-password\n").expect("write");
    let out = keytool(dir.path(), &["thumbprint", "--password-file", "pw", &pfx]);
    assert!(out.contains("  kind: PFX\n"), "{out}");
    assert!(out.contains(lines[2]), "same key as signing-rsa.crt: {out}");
}

#[test]
fn private_ca_server_client_and_requests_are_accepted_by_openssl() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    keytool(
        dir,
        &[
            "ca",
            "--out-dir",
            "pki",
            "--name",
            "E2E CA",
            "--passphrase-env",
            "CA_PASS",
        ],
    );
    let pki = dir.join("pki");
    assert_eq!(mode(&pki), 0o700);
    assert_eq!(mode(&pki.join("ca.key")), 0o600);
    let key = std::fs::read_to_string(pki.join("ca.key")).expect("ca.key");
    assert!(key.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    openssl(
        &pki,
        &[
            "pkey",
            "-in",
            "ca.key",
            "-passin",
            &format!("pass:{CA_PASSPHRASE}"),
            "-noout",
        ],
    );
    let ca_text = openssl(&pki, &["x509", "-in", "ca.crt", "-noout", "-text"]);
    assert!(ca_text.contains("CA:TRUE"), "{ca_text}");
    assert!(ca_text.contains("Certificate Sign, CRL Sign"), "{ca_text}");

    let ca_args = ["--ca-dir", "pki", "--ca-passphrase-env", "CA_PASS"];
    let with_ca = |args: &[&str]| -> Vec<String> {
        let mut all: Vec<String> = args.iter().map(ToString::to_string).collect();
        all.splice(1..1, ca_args.iter().map(ToString::to_string));
        all
    };
    let call = |args: Vec<String>| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        keytool(dir, &refs)
    };

    // Server: SANs from every --name, serverAuth, modern PFX with a generated password.
    let out = call(with_ca(&[
        "server",
        "--name",
        "localhost",
        "--name",
        "127.0.0.1",
        "--name",
        "::1",
        "--key-type",
        "rsa",
        "--out-dir",
        "srv",
        "--pfx",
    ]));
    assert!(
        out.contains("SAN: DNS:localhost, IP:127.0.0.1, IP:::1"),
        "{out}"
    );
    assert!(out.contains("server.pfx.password"), "{out}");
    // Client: CN and SAN from the id, clientAuth, legacy PFX with the given password.
    call(with_ca(&[
        "client",
        "--client-id",
        "Job",
        "--out-dir",
        "cli",
        "--pfx",
        "--password-env",
        "PFX_PASS",
        "--legacy",
    ]));
    // CSR made by the tool (new key, never leaves), signed by the tool.
    let out = keytool(
        dir,
        &[
            "csr",
            "--key-out",
            "app.key",
            "--out",
            "app.csr",
            "--client-id",
            "app-01",
        ],
    );
    assert!(
        out.contains("SAN: URI:urn:ids:client:app-01, DNS:app-01"),
        "{out}"
    );
    openssl(dir, &["req", "-verify", "-in", "app.csr", "-noout"]);
    call(with_ca(&["sign", "--csr", "app.csr", "--usage", "client"]));
    keytool(
        dir,
        &[
            "csr",
            "--key-out",
            "web.key",
            "--out",
            "web.csr",
            "--name",
            "web.example",
            "--name",
            "10.0.0.5",
        ],
    );
    call(with_ca(&[
        "sign", "--csr", "web.csr", "--usage", "server", "--days", "90",
    ]));
    // A CSR made by openssl as in the gRPC recipe (CN only): the CN becomes the SAN.
    openssl(dir, &["genrsa", "-out", "grpc.key", "2048"]);
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            "grpc.key",
            "-subj",
            "/CN=localhost",
            "-out",
            "grpc.csr",
        ],
    );
    let out = call(with_ca(&[
        "sign", "--csr", "grpc.csr", "--usage", "server", "--out", "grpc.crt",
    ]));
    assert!(out.contains("added DNS:localhost"), "{out}");

    // Every certificate chains to the CA.
    let verified = openssl(
        dir,
        &[
            "verify",
            "-CAfile",
            "pki/ca.crt",
            "srv/server.crt",
            "cli/Job.crt",
            "app.crt",
            "web.crt",
            "grpc.crt",
        ],
    );
    assert_eq!(verified.matches(": OK").count(), 5, "{verified}");
    // And says what it is for.
    let text = |file: &str| openssl(dir, &["x509", "-in", file, "-noout", "-text"]);
    let server = text("srv/server.crt");
    assert!(
        server.contains("DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1"),
        "{server}"
    );
    assert!(server.contains("TLS Web Server Authentication"), "{server}");
    assert!(
        server.contains("Digital Signature, Key Encipherment"),
        "{server}"
    );
    assert!(server.contains("Subject: CN = localhost"), "{server}");
    let client = text("cli/Job.crt");
    assert!(
        client.contains("URI:urn:ids:client:Job, DNS:Job"),
        "{client}"
    );
    assert!(client.contains("TLS Web Client Authentication"), "{client}");
    assert!(client.contains("Subject: CN = Job"), "{client}");
    let app = text("app.crt");
    assert!(
        app.contains("URI:urn:ids:client:app-01, DNS:app-01"),
        "{app}"
    );
    assert!(app.contains("TLS Web Client Authentication"), "{app}");
    let web = text("web.crt");
    assert!(
        web.contains("DNS:web.example, IP Address:10.0.0.5"),
        "{web}"
    );
    assert!(web.contains("TLS Web Server Authentication"), "{web}");
    assert!(text("grpc.crt").contains("DNS:localhost"));

    // PFX files: openssl reads them (the legacy one with -legacy), and so does the server's loader.
    let password = std::fs::read_to_string(dir.join("srv/server.pfx.password")).expect("password");
    let password = password.trim_end();
    assert_eq!(mode(&dir.join("srv/server.pfx.password")), 0o600);
    assert_eq!(mode(&dir.join("srv/server.pfx")), 0o600);
    assert_eq!(mode(&dir.join("srv/server.key")), 0o600);
    let info = openssl(
        dir,
        &[
            "pkcs12",
            "-info",
            "-nokeys",
            "-in",
            "srv/server.pfx",
            "-passin",
            &format!("pass:{password}"),
        ],
    );
    assert!(
        info.contains("AES-256-CBC") && info.contains("MAC: sha256"),
        "{info}"
    );
    let info = openssl(
        dir,
        &[
            "pkcs12",
            "-legacy",
            "-info",
            "-nokeys",
            "-in",
            "cli/Job.pfx",
            "-passin",
            &format!("pass:{PFX_PASSWORD}"),
        ],
    );
    assert!(
        info.contains("TripleDES") && info.contains("MAC: sha1"),
        "{info}"
    );
    let bytes = std::fs::read(dir.join("srv/server.pfx")).expect("pfx");
    let pfx = Pfx::from_bytes("server.pfx", &bytes, password).expect("modern pfx");
    assert_eq!(pfx.certificate.subject(), "CN=localhost");
    assert_eq!(pfx.chain.len(), 1);
    let bytes = std::fs::read(dir.join("cli/Job.pfx")).expect("pfx");
    let pfx = Pfx::from_bytes("Job.pfx", &bytes, PFX_PASSWORD).expect("legacy pfx");
    assert_eq!(pfx.certificate.subject(), "CN=Job");

    // `pfx` bundles openssl's key and our certificate with the chain.
    keytool(
        dir,
        &[
            "pfx",
            "--cert",
            "grpc.crt",
            "--key",
            "grpc.key",
            "--chain",
            "pki/ca.crt",
            "--out",
            "grpc.pfx",
            "--password-env",
            "PFX_PASS",
        ],
    );
    let info = openssl(
        dir,
        &[
            "pkcs12",
            "-info",
            "-nokeys",
            "-in",
            "grpc.pfx",
            "-passin",
            &format!("pass:{PFX_PASSWORD}"),
        ],
    );
    assert_eq!(
        info.matches("-----BEGIN CERTIFICATE-----").count(),
        2,
        "{info}"
    );
    let bytes = std::fs::read(dir.join("grpc.pfx")).expect("pfx");
    Pfx::from_bytes("grpc.pfx", &bytes, PFX_PASSWORD).expect("pfx from openssl key");
}

#[test]
fn wrong_or_missing_ca_passphrase_is_refused_with_status_2() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    keytool(
        dir,
        &["ca", "--out-dir", "pki", "--passphrase-env", "CA_PASS"],
    );
    let out = run(
        dir,
        &[
            "server",
            "--ca-dir",
            "pki",
            "--ca-passphrase-env",
            "WRONG_PASS",
            "--name",
            "localhost",
        ],
    );
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("pki/ca.key") && err.contains("wrong CA passphrase"),
        "{err}"
    );
    assert!(!err.contains(CA_PASSPHRASE) && !err.contains("not the passphrase"));
    assert!(!dir.join("server.crt").exists() && !dir.join("server.key").exists());
    let out = run(dir, &["client", "--ca-dir", "pki", "--client-id", "Job"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("--ca-passphrase-env"),
        "{}",
        stderr(&out)
    );
    let out = run(
        dir,
        &[
            "client",
            "--ca-dir",
            "pki",
            "--ca-passphrase-env",
            "UNSET_VAR_FOR_TEST",
            "--client-id",
            "Job",
        ],
    );
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("UNSET_VAR_FOR_TEST"),
        "{}",
        stderr(&out)
    );
    // Usage errors are status 2 as well (clap).
    let out = run(dir, &["server", "--ca-dir", "pki"]);
    assert_eq!(code(&out), 2);
}

#[test]
fn keygen_modes_permissions_and_no_clobber() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    // Default folder: $HOME/.ids.
    let out = Command::new(binary("ids-keytool"))
        .args(["keygen", "--mode", "agent", "--host", "poller1"])
        .env("HOME", dir)
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let ids = dir.join(".ids");
    assert_eq!(mode(&ids), 0o700);
    assert_eq!(mode(&ids.join("id_agent_poller1.key")), 0o600);
    assert_eq!(mode(&ids.join("id_agent_poller1.pub")), 0o644);
    assert_eq!(mode(&ids.join("id_agent_poller1.crt")), 0o644);
    let thumb = keytool(
        dir,
        &[
            "thumbprint",
            "--quiet",
            &ids.join("id_agent_poller1.pub").display().to_string(),
        ],
    );
    assert!(
        stdout.contains(&format!(
            "<OpenIdClient Identifier=\"poller1\" Thumbprints=\"{}\"",
            thumb.trim()
        )),
        "{stdout}"
    );
    let key_pem = std::fs::read_to_string(ids.join("id_agent_poller1.key")).expect("key");
    assert!(key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    // The key, the public key and the certificate are one key pair.
    let pubout = openssl(
        dir,
        &["pkey", "-in", ".ids/id_agent_poller1.key", "-pubout"],
    );
    let pub_file = std::fs::read_to_string(ids.join("id_agent_poller1.pub")).expect("pub");
    assert_eq!(pubout, pub_file);
    let cert = openssl(
        dir,
        &[
            "x509",
            "-in",
            ".ids/id_agent_poller1.crt",
            "-noout",
            "-text",
        ],
    );
    assert!(cert.contains("TLS Web Client Authentication"), "{cert}");

    // Server mode in the same folder: authorized_clients/ 0700, serverAuth for the host.
    let keys = ids.display().to_string();
    let out = keytool(
        dir,
        &[
            "keygen",
            "--mode",
            "server",
            "--dir",
            &keys,
            "--host",
            "db.example",
            "--key-type",
            "rsa",
        ],
    );
    assert!(out.contains("authorized_clients"), "{out}");
    assert_eq!(mode(&ids.join("authorized_clients")), 0o700);
    let cert = openssl(
        dir,
        &[
            "x509",
            "-in",
            ".ids/id_server_db.example.crt",
            "-noout",
            "-text",
        ],
    );
    assert!(cert.contains("DNS:db.example") && cert.contains("TLS Web Server Authentication"));

    // Existing files are never replaced without --force, and the refusal names the file.
    let before = std::fs::read(ids.join("id_server_db.example.key")).expect("key");
    let out = run(
        dir,
        &[
            "keygen",
            "--mode",
            "server",
            "--dir",
            &keys,
            "--host",
            "db.example",
        ],
    );
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("id_server_db.example.key") && stderr(&out).contains("--force"));
    assert_eq!(
        std::fs::read(ids.join("id_server_db.example.key")).expect("key"),
        before
    );
    keytool(
        dir,
        &[
            "keygen",
            "--mode",
            "server",
            "--dir",
            &keys,
            "--host",
            "db.example",
            "--force",
        ],
    );
    assert_ne!(
        std::fs::read(ids.join("id_server_db.example.key")).expect("key"),
        before
    );
    assert_eq!(mode(&ids.join("id_server_db.example.key")), 0o600);

    // A folder others can read is refused, as ssh does.
    let open = dir.join("open");
    std::fs::create_dir(&open).expect("mkdir");
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = run(
        dir,
        &[
            "keygen",
            "--mode",
            "agent",
            "--dir",
            &open.display().to_string(),
            "--host",
            "h",
        ],
    );
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("chmod 700"), "{}", stderr(&out));
    assert_eq!(std::fs::read_dir(&open).expect("ls").count(), 0);
}
