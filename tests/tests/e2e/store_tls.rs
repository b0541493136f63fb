//! TLS to PostgreSQL (issue 16, `Store` `sslmode` and `Store:CaFile`) against a real cluster with
//! `ssl = on` and a server certificate made by `openssl` in the test: `verify-full` with the right CA
//! connects, a wrong CA fails naming the database, a host name not in the certificate fails
//! `verify-full` while `verify-ca` accepts it, and `sslmode=disable` against a `hostssl`-only
//! `pg_hba.conf` says why. `identity-server check` is the probe (it connects and reads the schema).

use std::path::Path;
use std::process::{Command, Output};

use serde_json::json;

use crate::keytool::openssl;
use crate::pg::TestPostgres;
use crate::support::{Deployment, binary, code};

/// A CA (`NAME.crt`, `NAME.key`) made by openssl in `dir`.
fn make_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

/// `server.crt` and `server.key` for 127.0.0.1 (and no host name), issued by the CA `ca`.
fn make_server_certificate(dir: &Path, ca: &str) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=test database",
        ],
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
}

/// A cluster on loopback TCP with `ssl = on`, TLS only (`hostssl`) for TCP connections.
fn tls_cluster(test: &str, pki: &Path) -> Option<TestPostgres> {
    let pg = TestPostgres::start_tcp(test)?;
    pg.create_database("ids");
    make_ca(pki, "right-ca");
    make_ca(pki, "wrong-ca");
    make_server_certificate(pki, "right-ca");
    for file in ["server.crt", "server.key"] {
        let to = pg.data_dir().join(file);
        std::fs::copy(pki.join(file), &to).expect("copy");
        pg.give(&to);
    }
    pg.append_conf("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
    pg.set_hba("local all all trust\nhostssl all all 127.0.0.1/32 trust\n");
    pg.stop();
    pg.ctl_start();
    Some(pg)
}

/// `identity-server check` with `connection` and `ca` (a file of `pki`) as the store.
fn check(d: &mut Deployment, connection: &str, ca: Option<&Path>) -> (Output, String) {
    let mut store = json!({ "Provider": "PostgreSql", "ConnectionString": connection });
    if let Some(ca) = ca {
        store["CaFile"] = json!(ca.display().to_string());
    }
    d.set("Store", store);
    d.write();
    let out = Command::new(binary("identity-server"))
        .args(["check", "--config-dir"])
        .arg(d.path())
        .env_remove("PGPASSWORD")
        .output()
        .expect("identity-server check");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

#[test]
fn verify_full_checks_the_database_certificate_and_its_name() {
    let pki = tempfile::tempdir().expect("tempdir");
    let Some(pg) = tls_cluster("verify_full_checks_the_database_certificate", pki.path()) else {
        return;
    };
    let mut d = Deployment::new();
    let right = pki.path().join("right-ca.crt");
    let wrong = pki.path().join("wrong-ca.crt");
    let url = |mode: &str| format!("{}?sslmode={mode}", pg.tcp_url(&pg.user, "ids"));

    let (out, text) = check(&mut d, &url("verify-full"), Some(&right));
    assert!(
        out.status.success(),
        "verify-full with the right CA: {text}"
    );
    assert!(text.contains("sslmode=verify-full"), "{text}");

    let (out, text) = check(&mut d, &url("verify-full"), Some(&wrong));
    assert_eq!(code(&out), 1, "a wrong CA: {text}");
    let target = format!("PostgreSQL {}@127.0.0.1:{}/ids", pg.user, pg.port);
    assert!(
        text.contains(&format!("TLS to {target} failed")),
        "a wrong CA fails with a TLS error naming the database ({target}): {text}"
    );

    // The certificate names 127.0.0.1 only: another name (reaching the same address) is refused by
    // verify-full, accepted by verify-ca, which checks the chain alone.
    let other_name = |mode: &str| {
        format!(
            "host=db.example.test hostaddr=127.0.0.1 port={} user={} dbname=ids sslmode={mode}",
            pg.port, pg.user
        )
    };
    let (out, text) = check(&mut d, &other_name("verify-full"), Some(&right));
    assert_eq!(code(&out), 1, "a name not in the certificate: {text}");
    assert!(text.contains("TLS to PostgreSQL"), "{text}");
    assert!(text.contains("db.example.test"), "{text}");
    let (out, text) = check(&mut d, &other_name("verify-ca"), Some(&right));
    assert!(out.status.success(), "verify-ca ignores the name: {text}");
    // But not the chain.
    let (out, text) = check(&mut d, &other_name("verify-ca"), Some(&wrong));
    assert_eq!(code(&out), 1, "verify-ca with a wrong CA: {text}");
}

#[test]
fn sslmode_disable_against_hostssl_only_says_why() {
    let pki = tempfile::tempdir().expect("tempdir");
    let Some(pg) = tls_cluster("sslmode_disable_against_hostssl_only", pki.path()) else {
        return;
    };
    let mut d = Deployment::new();
    let (out, text) = check(
        &mut d,
        &format!("{}?sslmode=disable", pg.tcp_url(&pg.user, "ids")),
        None,
    );
    assert_eq!(code(&out), 1, "{text}");
    assert!(text.contains("no pg_hba.conf entry"), "{text}");
    assert!(
        text.contains("this one has no TLS (sslmode=disable)"),
        "{text}"
    );
    assert!(!text.contains("refused the password"), "{text}");
}
