//! `ids-bench store`: `private_key_jwt` tokens/s with `Store:Provider` `Embedded` next to `PostgreSql`
//! (issue 16: target >= 70%), in one run, on one deployment.
//!
//! The PostgreSQL cluster is a throwaway one started as the e2e tests start theirs
//! (`tests/tests/e2e/pg.rs`): Debian's `initdb` and `pg_ctl` on a temporary folder, a Unix socket in
//! it, run as `postgres` through `runuser` when this runs as root. Unlike the tests it keeps
//! `fsync = on` (and `synchronous_commit = on`): every accepted assertion is one committed INSERT, as in
//! production. Without the binaries the mode prints SKIPPED and why.
//!
//! Each round starts the `identity-server` binary on the deployment, sends fresh ES256 assertions (one
//! per request, `connections` clients in parallel over keep-alive HTTPS) for `seconds`, and stops it.
//! The rounds alternate (embedded, PostgreSQL, embedded, PostgreSQL) so that a change of load on the
//! machine affects both alike; the figures are the means of the two rounds of each.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use ids_devpki::{Ca, KeyKind, PfxProfile, to_pfx};
use ids_jose::AssertionSigner;
use ids_pki::SigningKey;

use crate::{postgres_bin, runs_as_root};

/// A throwaway PostgreSQL cluster, stopped on drop (also used by `ids-bench deliver --postgresql`).
pub(crate) struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_postgres: bool,
}

impl Cluster {
    /// Starts one with `extra_conf` lines in its postgresql.conf; `None` (SKIPPED printed) without the
    /// binaries.
    pub(crate) fn start(extra_conf: &[String]) -> anyhow::Result<Option<Cluster>> {
        let Some(bin) = postgres_bin() else {
            println!(
                "SKIPPED: PostgreSQL server binaries (initdb, pg_ctl) not found; install Debian's `postgresql` package"
            );
            return Ok(None);
        };
        let as_postgres = runs_as_root();
        let dir = tempfile::Builder::new()
            .prefix("idsbpg")
            .tempdir_in("/tmp")?;
        if as_postgres {
            check(
                Command::new("chown")
                    .arg("postgres:postgres")
                    .arg(dir.path())
                    .output()?,
                "chown",
            )?;
        }
        let cluster = Cluster {
            dir,
            bin,
            as_postgres,
        };
        let data = cluster.data();
        check(
            cluster
                .command("initdb")
                .args(["-D", &data, "-U", "postgres", "--auth=trust", "-E", "UTF8"])
                .arg("--locale=C")
                .output()?,
            "initdb",
        )?;
        std::fs::OpenOptions::new()
            .append(true)
            .open(cluster.dir.path().join("data/postgresql.conf"))
            .and_then(|mut f| {
                use std::io::Write as _;
                write!(
                    f,
                    "listen_addresses = ''\nunix_socket_directories = '{}'\nmax_connections = 100\n{}\n",
                    cluster.dir.path().display(),
                    extra_conf.join("\n")
                )
            })?;
        let log = cluster.dir.path().join("server.log").display().to_string();
        check(
            cluster
                .command("pg_ctl")
                .args(["-D", &data, "-l", &log, "-w", "start"])
                .output()?,
            "pg_ctl start",
        )?;
        check(
            cluster
                .command("psql")
                .args(["-X", "-q", "-h"])
                .arg(cluster.dir.path())
                .args([
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                    "-c",
                    "CREATE DATABASE ids",
                ])
                .output()?,
            "createdb",
        )?;
        Ok(Some(cluster))
    }

    /// `pg_database_size` of the `ids` database, as PostgreSQL prints it.
    pub(crate) fn database_size(&self) -> anyhow::Result<String> {
        let out = self
            .command("psql")
            .args(["-X", "-A", "-t", "-h"])
            .arg(self.dir.path())
            .args([
                "-U",
                "postgres",
                "-d",
                "ids",
                "-c",
                "SELECT pg_size_pretty(pg_database_size('ids'))",
            ])
            .output()?;
        let size = String::from_utf8_lossy(&out.stdout).trim().to_string();
        check(out, "psql")?;
        Ok(size)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut c = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        c.env("LC_ALL", "C");
        c
    }

    /// The `Store:ConnectionString` of its `ids` database (Unix socket, trust).
    pub(crate) fn connection_string(&self) -> String {
        format!(
            "host={} user=postgres dbname=ids",
            self.dir.path().display()
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self
            .command("pg_ctl")
            .args(["-D", &data, "-m", "immediate", "-w", "stop"])
            .output();
    }
}

fn check(out: Output, what: &str) -> anyhow::Result<()> {
    if !out.status.success() {
        bail!("{what}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// Runs the comparison (see the module doc) with `server_bin`.
pub fn run(
    server_bin: &Path,
    connections: usize,
    seconds: u64,
    pg_conf: &[String],
) -> anyhow::Result<()> {
    let Some(cluster) = Cluster::start(pg_conf)? else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let ca = Ca::new("bench CA", 365)?;
    let signers = write_deployment(dir.path(), &ca, connections.max(1))?;
    let ca_pem = ca.cert.cert_pem.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for round in 0..4 {
        let shared = round % 2 == 1;
        let store = if shared {
            serde_json::json!({ "Provider": "PostgreSql", "ConnectionString": cluster.connection_string() })
        } else {
            serde_json::json!({ "Provider": "Embedded" })
        };
        write_settings(dir.path(), &store)?;
        let (server, port) = crate::start_serve(server_bin, dir.path())?;
        let rate = runtime.block_on(load(&ca_pem, port, &signers, seconds))?;
        drop(server);
        println!(
            "round {}: private_key_jwt with Store:Provider {}: {rate:.0} tokens/s",
            round + 1,
            if shared { "PostgreSql" } else { "Embedded" }
        );
        rates[usize::from(shared)].push(rate);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (embedded, postgres) = (mean(&rates[0]), mean(&rates[1]));
    println!(
        "private_key_jwt (fresh ES256 assertion per request, {} clients, {seconds} s x 2 rounds each): Embedded {embedded:.0} tokens/s, PostgreSql {postgres:.0} tokens/s: {:.0}% (target >= 70%)",
        signers.len(),
        100.0 * postgres / embedded.max(1.0)
    );
    Ok(())
}

/// Fresh assertions from every client in parallel for `seconds`: tokens/s (every answer must be 200).
pub(crate) async fn load(
    ca_pem: &str,
    port: u16,
    signers: &[(String, Arc<AssertionSigner>)],
    seconds: u64,
) -> anyhow::Result<f64> {
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes())?])
        .http1_only()
        .pool_max_idle_per_host(signers.len())
        .build()?;
    let url = format!("https://127.0.0.1:{port}/connect/token");
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let begin = Instant::now();
    let mut workers = Vec::new();
    for (id, signer) in signers {
        let (client, url, id, signer) = (client.clone(), url.clone(), id.clone(), signer.clone());
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64);
                let Ok(assertion) = signer.sign(&id, &url, now) else {
                    failed.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let answer = client
                    .post(&url)
                    .form(&[
                        ("grant_type", "client_credentials"),
                        ("client_assertion_type", ids_jose::assertion::ASSERTION_TYPE),
                        ("client_assertion", &assertion),
                    ])
                    .send()
                    .await;
                let good = match answer {
                    Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                    _ => false,
                };
                if good {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await?;
    }
    let elapsed = begin.elapsed().as_secs_f64();
    let failed = failed.load(Ordering::Relaxed);
    if failed > 0 {
        bail!("{failed} token requests failed: the rate would measure a refusal path");
    }
    Ok(ok.load(Ordering::Relaxed) as f64 / elapsed)
}

/// TLS and signing PFX files, `clients` private_key_jwt clients (EC P-256, by thumbprint); returns
/// their signers.
pub(crate) fn write_deployment(
    dir: &Path,
    ca: &Ca,
    clients: usize,
) -> anyhow::Result<Vec<(String, Arc<AssertionSigner>)>> {
    let tls = ca.issue_server(&["localhost", "127.0.0.1"], KeyKind::EcP256, 365)?;
    std::fs::write(
        dir.join("tls.pfx"),
        to_pfx(&tls, &[], "tls", PASSWORD, PfxProfile::Modern)?,
    )?;
    let signing = ca.issue_signing("bench signing", KeyKind::Rsa2048, 365)?;
    std::fs::write(
        dir.join("signing.pfx"),
        to_pfx(&signing, &[], "signing", PASSWORD, PfxProfile::Modern)?,
    )?;
    let mut xml = String::from("<ConfigurationFile>\n");
    let mut signers = Vec::new();
    for i in 0..clients {
        let id = format!("KeyClient{i}");
        let issued = ca.issue_signing(&id, KeyKind::EcP256, 365)?;
        let cert = ids_pki::Certificate::from_der("bench", &issued.cert_der)?;
        let signer = AssertionSigner::new(
            SigningKey::from_pkcs8(&issued.key_pkcs8)?,
            cert.public_key(),
        );
        xml.push_str(&format!(
            "  <OpenIdClient Identifier=\"{id}\" Thumbprints=\"{}\" />\n",
            signer.thumbprint()
        ));
        signers.push((id, Arc::new(signer)));
    }
    xml.push_str("</ConfigurationFile>\n");
    std::fs::create_dir_all(dir.join("Conf"))?;
    std::fs::write(dir.join("Conf/clients.xml"), xml)?;
    Ok(signers)
}

pub(crate) const PASSWORD: &str = "bench-password";

fn write_settings(dir: &Path, store: &serde_json::Value) -> anyhow::Result<()> {
    std::fs::write(
        dir.join("appsettings.json"),
        serde_json::json!({
            "IdentityServer": { "X509KeyFilePath": "signing.pfx", "X509KeyFilePassword": PASSWORD },
            "Kestrel": { "Certificates": { "Default": { "Path": "tls.pfx", "Password": PASSWORD } } },
            "Store": store,
        })
        .to_string(),
    )?;
    Ok(())
}
