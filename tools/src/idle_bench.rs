//! `ids-bench idle`: idle connections against the quickstart server (issue 14, acceptance of point 1).
//!
//! 1. `identity-server quickstart` in a temporary folder on 127.0.0.1 (its own process), with
//!    `Limits:IdleTimeoutSeconds` set to `--idle-seconds` through the environment.
//! 2. Reference, in the same run: token latency of a normal client for a few seconds with no idle
//!    connection, over a keep-alive connection and over a new connection per request.
//! 3. `--connections` TLS connections opened (handshake done) and left idle, while the normal client
//!    keeps asking for tokens; each idle connection waits for the server to close it.
//! 4. Figures: connections opened/refused, how many the server closed within the idle timeout (plus a
//!    2 s margin) and the latest close, the normal client's latency while they were open, the
//!    server's peak resident memory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::io::AsyncReadExt as _;

use crate::{Killed, percentiles, rss};

/// What quickstart printed: where it listens and the demo client.
struct Quickstart {
    token_url: String,
    port: u16,
    ca: PathBuf,
    client_id: String,
    secret: String,
}

/// Runs the benchmark: `connections` idle connections, `idle_seconds` idle timeout, binaries in `bin`.
pub fn run(connections: usize, idle_seconds: u64, bin: &Path) -> anyhow::Result<()> {
    let server_bin = bin.join("identity-server");
    if !server_bin.exists() {
        bail!(
            "{} not found: build it first (cargo build --release --workspace)",
            server_bin.display()
        );
    }
    let work = tempfile::tempdir().context("temporary folder")?;
    let qs_dir = work.path().join("qs");
    let mut child = Command::new(&server_bin)
        .arg("quickstart")
        .arg("--config-dir")
        .arg(&qs_dir)
        .arg("--urls")
        .arg("https://127.0.0.1:0")
        .env("Limits__IdleTimeoutSeconds", idle_seconds.to_string())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("start identity-server quickstart")?;
    let stdout = child.stdout.take().context("server output")?;
    let server = Killed(child);
    let qs = read_banner(stdout)?;
    let pid = server.0.id();
    println!(
        "quickstart server on port {}, Limits:IdleTimeoutSeconds {idle_seconds}; {connections} idle TLS connections",
        qs.port
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(measure(&qs, connections, idle_seconds, pid))?;
    drop(server);
    Ok(())
}

async fn measure(
    qs: &Quickstart,
    connections: usize,
    idle_seconds: u64,
    pid: u32,
) -> anyhow::Result<()> {
    let ca_pem = std::fs::read(&qs.ca).with_context(|| format!("{}", qs.ca.display()))?;
    let keep_alive = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca_pem)?])
        .build()?;
    let fresh = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca_pem)?])
        .pool_max_idle_per_host(0)
        .build()?;

    let start_normal_client = |stop: Arc<AtomicBool>| {
        tokio::spawn(normal_client(
            keep_alive.clone(),
            fresh.clone(),
            qs.token_url.clone(),
            qs.client_id.clone(),
            qs.secret.clone(),
            stop,
        ))
    };

    // 2. Reference.
    let stop = Arc::new(AtomicBool::new(false));
    let reference = start_normal_client(stop.clone());
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut ref_kept, mut ref_new, ref_failed) = reference.await?;
    let idle_rss = rss(pid).unwrap_or(0);
    println!(
        "reference, no idle connection: keep-alive {}; new connection {}; {ref_failed} failed",
        tokens(&mut ref_kept),
        tokens(&mut ref_new),
    );

    // 3. Idle connections, with the normal client running throughout.
    let stop = Arc::new(AtomicBool::new(false));
    let during = start_normal_client(stop.clone());
    let connector = connector(&ca_pem)?;
    let idle = Duration::from_secs(idle_seconds);
    let limit = idle + Duration::from_secs(30);
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sampler = {
        let (peak, stop) = (peak.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(rss(pid).unwrap_or(0), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let opening = Instant::now();
    let mut idle_tasks = Vec::with_capacity(connections);
    let gate = Arc::new(tokio::sync::Semaphore::new(64));
    for _ in 0..connections {
        let (connector, gate, port) = (connector.clone(), gate.clone(), qs.port);
        idle_tasks.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await.ok();
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await;
            let Ok(tcp) = tcp else {
                return Idle::Refused;
            };
            let name = rustls::pki_types::ServerName::try_from("localhost").map(|n| n.to_owned());
            let Ok(name) = name else {
                return Idle::Refused;
            };
            let Ok(Ok(mut tls)) =
                tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp)).await
            else {
                return Idle::Refused;
            };
            drop(permit);
            let opened = Instant::now();
            let mut buf = [0u8; 512];
            let closed = tokio::time::timeout(limit, async {
                loop {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                }
            })
            .await;
            match closed {
                Ok(()) => Idle::Closed(opened.elapsed()),
                Err(_) => Idle::StillOpen,
            }
        }));
    }
    let mut closed = Vec::new();
    let (mut refused, mut still_open) = (0usize, 0usize);
    for t in idle_tasks {
        match t.await? {
            Idle::Closed(d) => closed.push(d),
            Idle::Refused => refused += 1,
            Idle::StillOpen => still_open += 1,
        }
    }
    let all_done = opening.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (mut kept, mut new, failed) = during.await?;
    let _ = sampler.await;
    let in_time = closed
        .iter()
        .filter(|d| **d <= idle + Duration::from_secs(2))
        .count();
    let latest = closed.iter().max().copied().unwrap_or_default();
    println!(
        "idle connections: {} opened, {refused} refused, {} closed by the server within the idle timeout + 2 s, latest after {:.1} s, {still_open} still open after {} s; all gone {:.1} s after the first was opened",
        closed.len() + still_open,
        in_time,
        latest.as_secs_f64(),
        limit.as_secs(),
        all_done.as_secs_f64()
    );
    println!(
        "normal client meanwhile: keep-alive {}; new connection {}; {failed} failed",
        tokens(&mut kept),
        tokens(&mut new)
    );
    println!(
        "server resident memory: {} MiB before, peak {} MiB with the idle connections",
        idle_rss / (1024 * 1024),
        peak.load(Ordering::Relaxed) / (1024 * 1024)
    );
    Ok(())
}

enum Idle {
    Closed(Duration),
    Refused,
    StillOpen,
}

/// Token requests one after another until `stop`, alternating a keep-alive connection and a new
/// connection: their latencies and the number of failures.
async fn normal_client(
    keep_alive: reqwest::Client,
    fresh: reqwest::Client,
    url: String,
    id: String,
    secret: String,
    stop: Arc<AtomicBool>,
) -> (Vec<Duration>, Vec<Duration>, u64) {
    let (mut kept, mut new, mut failed) = (Vec::new(), Vec::new(), 0u64);
    let mut turn = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let client = if turn.is_multiple_of(2) {
            &keep_alive
        } else {
            &fresh
        };
        let t = Instant::now();
        let ok = tokio::time::timeout(
            Duration::from_secs(10),
            client
                .post(&url)
                .basic_auth(&id, Some(&secret))
                .form(&[("grant_type", "client_credentials")])
                .send(),
        )
        .await
        .is_ok_and(|r| r.is_ok_and(|r| r.status().is_success()));
        let took = t.elapsed();
        if !ok {
            failed += 1;
        } else if turn.is_multiple_of(2) {
            kept.push(took);
        } else {
            new.push(took);
        }
        turn += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (kept, new, failed)
}

fn connector(ca_pem: &[u8]) -> anyhow::Result<tokio_rustls::TlsConnector> {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.context("CA certificate")?)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// Reads quickstart's banner up to its curl line: the token URL, the CA and the demo client.
fn read_banner(stdout: std::process::ChildStdout) -> anyhow::Result<Quickstart> {
    use std::io::BufRead as _;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut port = None;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.strip_prefix("listening on https://") {
                port = rest
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.trim().parse::<u16>().ok());
            }
            if let (Some(port), Some(curl)) = (port, line.trim().strip_prefix("curl ")) {
                let _ = tx.send((port, curl.to_string()));
            }
        }
    });
    let (port, curl) = rx
        .recv_timeout(Duration::from_secs(60))
        .context("quickstart printed no curl line within 60 s")?;
    // curl --cacert CA -u 'ID:SECRET' -d grant_type=client_credentials URL
    let words: Vec<&str> = curl.split_whitespace().collect();
    let after = |flag: &str| {
        words
            .iter()
            .position(|w| *w == flag)
            .and_then(|i| words.get(i + 1))
            .map(|w| w.trim_matches('\'').to_string())
    };
    let ca = after("--cacert").context("no --cacert in quickstart's curl line")?;
    let user = after("-u").context("no -u in quickstart's curl line")?;
    let (client_id, secret) = user
        .split_once(':')
        .context("no id:secret in quickstart's curl line")?;
    let token_url = words
        .last()
        .context("no URL in quickstart's curl line")?
        .to_string();
    Ok(Quickstart {
        token_url,
        port,
        ca: PathBuf::from(ca),
        client_id: client_id.to_string(),
        secret: secret.to_string(),
    })
}

/// How many tokens, and their latency.
fn tokens(samples: &mut [Duration]) -> String {
    format!("{} tokens, {}", samples.len(), percentiles(samples))
}
