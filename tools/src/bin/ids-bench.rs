//! `ids-bench`: token throughput of the real server over HTTPS, next to the raw signing rate of the
//! crypto backend measured in the same run.
//!
//! 1. Raw RSA-2048 PKCS#1 v1.5 SHA-256 signatures per second on one core (aws-lc-rs, key pre-parsed).
//! 2. A deployment in a temporary folder (project-made CA, TLS and RSA-2048 signing PFX, `--clients`
//!    argon2id clients with the production parameters), served by the `identity-server` binary that sits
//!    next to this one, in its own process, on 127.0.0.1:0.
//! 3. First requests: each client once (uncached argon2id verification).
//! 4. Repeated requests of already-verified clients over keep-alive connections for `--seconds`.
//!
//! `ids-bench verify` instead measures token verification on one core, in-process: the raw aws-lc-rs
//! signature check against `Verifier::verify` on real tokens, for RS256 and ES256 (target: the verifier
//! keeps >= 80% of the raw rate).
//!
//! `ids-bench files [--size-mib 1024]` measures file encryption and decryption against a plain copy
//! of the same file, with peak memory (see `ids_tools::files_bench`).
//!
//! `ids-bench deliver [--size-mib 1024]` measures `agent push` to the server over HTTPS next to
//! `agent encrypt` of the same file, with the server's peak memory (see `ids_tools::delivery_bench`).
//!
//! `ids-bench idle [--idle-connections 2000]` opens idle TLS connections to the quickstart server and
//! measures how soon they are closed and a normal client's token latency meanwhile, next to the same
//! client without them (see `ids_tools::idle_bench`).
//!
//! `ids-bench store` measures `private_key_jwt` tokens/s with the embedded store next to a throwaway
//! PostgreSQL cluster (see `ids_tools::store_bench`).
//!
//! `ids-bench argon2-flood` measures the server's resident memory under a flood of failed
//! `client_secret` authentications from many loopback addresses, next to its idle memory plus the
//! argon2 memory of `HashConcurrency` verifications (see `ids_tools::flood_bench`).
//!
//! `ids-bench failover` SIGKILLs each of three servers behind a real HAProxy in turn under token load:
//! time to the clients' next token, their failed requests, and the restarted server's return to
//! service (see `ids_tools::failover_bench`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, VerificationAlgorithm,
};
use clap::{Parser, Subcommand};
use ids_devpki::{Ca, KeyKind, PfxProfile, to_pfx};
use ids_jose::{KeySet, TokenSigner, Validation, Verifier};
use ids_pki::{Certificate, SigningKey};
use ids_secret::SecretHash;
use ids_tools::percentiles;

#[derive(Parser, Debug)]
#[command(
    about = "Measure raw RSA-2048 signing and client-credentials tokens/s through the running server \
             (default), or single-core token verification (`verify`)"
)]
struct Cli {
    /// What to measure; without a subcommand, token issuing through the server.
    #[command(subcommand)]
    mode: Option<Mode>,
    /// Concurrent keep-alive connections of the load generator.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Duration of the repeated-request phase.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Number of distinct argon2id clients (first-request phase).
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// The identity-server binary (default: next to this one).
    #[arg(long)]
    server: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// Single-core token verification: raw aws-lc-rs RS256/ES256 signature checks vs Verifier::verify.
    Verify {
        /// Measuring time per algorithm and contender (raw, verifier).
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
    },
    /// File encryption and decryption throughput and peak memory next to a plain copy (`cp` and a
    /// read/write loop) of the same file, in one run.
    Files {
        /// Size of the test file.
        #[arg(long, default_value_t = 1024)]
        size_mib: u64,
        /// Folder for the test files (default: the system temporary folder).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Agent-to-server delivery over HTTPS (`agent push` to `identity-server`, both next to this
    /// binary) next to plain encryption (`agent encrypt`) of the same file, with peak memory.
    Deliver {
        /// Size of the delivered file.
        #[arg(long, default_value_t = 1024)]
        size_mib: u64,
        /// Folder for the test files and the server's data (default: the system temporary folder).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Store the deliveries in a throwaway PostgreSQL cluster (`Store:Provider PostgreSql`; the
        /// local PostgreSQL server binaries, SKIPPED without them) instead of the data folder.
        #[arg(long)]
        postgresql: bool,
        /// With `--postgresql`: a line added to the cluster's postgresql.conf (repeatable).
        #[arg(long)]
        pg_conf: Vec<String>,
    },
    /// Idle TLS connections against the quickstart server (`identity-server` next to this binary):
    /// when the server closes them, and a normal client's token latency meanwhile.
    Idle {
        /// Idle connections to open.
        #[arg(long, default_value_t = 2000)]
        idle_connections: usize,
        /// The server's Limits:IdleTimeoutSeconds.
        #[arg(long, default_value_t = 10)]
        idle_seconds: u64,
    },
    /// The server's resident memory (VmRSS, VmHWM) under a flood of failed client_secret
    /// authentications (argon2id each) from many loopback addresses, next to its idle memory plus
    /// HashConcurrency x the argon2 memory cost. Uses `--server` (default: next to this binary).
    #[command(name = "argon2-flood")]
    Argon2Flood {
        /// Duration of the flood.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// Failed authentications sent per second.
        #[arg(long, default_value_t = 50)]
        rate: u64,
        /// Source addresses (127.0.0.2 and up), so that none exceeds the per-address failure budget.
        #[arg(long, default_value_t = 120)]
        sources: u32,
        /// `IdentityServer:HashConcurrency` of the server.
        #[arg(long, default_value_t = 2)]
        hash_concurrency: u32,
        /// Folder for the server's quickstart deployment (default: the system temporary folder).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// private_key_jwt tokens/s with Store:Provider Embedded next to PostgreSql (a throwaway cluster
    /// of the local PostgreSQL binaries; SKIPPED without them), in one run. Uses `--server`,
    /// `--connections` (clients) and `--seconds` (per round, 2 rounds each).
    Store {
        /// A line added to the cluster's postgresql.conf (repeatable), e.g. `synchronous_commit = off`
        /// to see what the commits' WAL flushes cost.
        #[arg(long)]
        pg_conf: Vec<String>,
    },
    /// Tokens/s with the metrics (`Metrics:Urls`, scraped every second) and the audit trail
    /// (`Audit:Path`) on, next to both off, in one run (alternating rounds). Uses `--server`,
    /// `--connections` (clients) and `--seconds` (per round, 3 rounds each).
    Operations,
    /// DPoP-bound tokens/s next to plain tokens/s (ES256 tokens, an ES256 proof per DPoP request), in
    /// one run (alternating rounds). Uses `--server`, `--connections` and `--seconds` (per round, 3
    /// rounds each).
    Dpop,
    /// Introspection requests/s over keep-alive HTTPS, next to the raw RS256 verify rate of one core
    /// measured in the same run. Uses `--server`, `--connections` and `--seconds`.
    Introspection,
    /// Three `identity-server serve` processes (`--server`, default next to this binary) behind a
    /// real HAProxy under token load; each SIGKILLed and restarted in turn: time from the SIGKILL to
    /// each client's next token, failed requests by kind, time until the restarted server gets
    /// traffic again. Exits 0 with a message when `haproxy` is not installed.
    Failover {
        /// Concurrent client loops (token requests through HAProxy).
        #[arg(long, default_value_t = 8)]
        workers: usize,
        /// Pause of each client loop between two requests, ms.
        #[arg(long, default_value_t = 10)]
        interval_ms: u64,
        /// Time observed after each SIGKILL, at least, s.
        #[arg(long, default_value_t = 3)]
        observe_seconds: u64,
        /// HAProxy health-check interval (`inter`), ms.
        #[arg(long, default_value_t = 300)]
        check_inter_ms: u64,
        /// Failed checks before HAProxy marks a server DOWN (`fall`).
        #[arg(long, default_value_t = 1)]
        fall: u32,
        /// Successful checks before HAProxy marks a server UP again (`rise`).
        #[arg(long, default_value_t = 1)]
        rise: u32,
        /// Put the three servers on this PostgreSQL (`Store:Provider PostgreSql`) instead of their
        /// embedded stores. Give the password in `PGPASSWORD`, not here.
        #[arg(long)]
        store_connection_string: Option<String>,
        /// Folder for the servers' folders (default: the system temporary folder).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// `--server`, or `identity-server` next to this binary.
fn server_bin(cli: &Cli) -> anyhow::Result<PathBuf> {
    match cli.server.clone() {
        Some(p) => Ok(p),
        None => Ok(std::env::current_exe()?
            .parent()
            .context("no parent folder")?
            .join("identity-server")),
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match &cli.mode {
        Some(Mode::Verify { seconds }) => {
            return bench_verify(Duration::from_secs_f64(seconds.max(0.1)));
        }
        Some(Mode::Files { size_mib, dir }) => {
            let dir = dir.clone().unwrap_or_else(std::env::temp_dir);
            return ids_tools::files_bench::run((*size_mib).max(1), &dir);
        }
        Some(Mode::Deliver {
            size_mib,
            dir,
            postgresql,
            pg_conf,
        }) => {
            let dir = dir.clone().unwrap_or_else(std::env::temp_dir);
            let bin = std::env::current_exe()?
                .parent()
                .context("no parent folder")?
                .to_path_buf();
            return ids_tools::delivery_bench::run(
                (*size_mib).max(1),
                &dir,
                &bin,
                postgresql.then_some(pg_conf.as_slice()),
            );
        }
        Some(Mode::Idle {
            idle_connections,
            idle_seconds,
        }) => {
            let bin = std::env::current_exe()?
                .parent()
                .context("no parent folder")?
                .to_path_buf();
            return ids_tools::idle_bench::run(*idle_connections, (*idle_seconds).max(1), &bin);
        }
        Some(Mode::Argon2Flood {
            seconds,
            rate,
            sources,
            hash_concurrency,
            dir,
        }) => {
            let dir = dir.clone().unwrap_or_else(std::env::temp_dir);
            let server_bin = server_bin(&cli)?;
            let flood = ids_tools::flood_bench::Flood {
                seconds: (*seconds).max(1),
                rate: (*rate).max(1),
                sources: *sources,
                hash_concurrency: (*hash_concurrency).max(1),
            };
            return ids_tools::flood_bench::run(&flood, &dir, &server_bin);
        }
        Some(Mode::Operations) => {
            let server_bin = server_bin(&cli)?;
            return ids_tools::operations_bench::run(
                &server_bin,
                cli.connections,
                cli.seconds.max(1),
            );
        }
        Some(Mode::Dpop) => {
            let server_bin = server_bin(&cli)?;
            return ids_tools::oauth_bench::dpop(&server_bin, cli.connections, cli.seconds.max(1));
        }
        Some(Mode::Introspection) => {
            let server_bin = server_bin(&cli)?;
            return ids_tools::oauth_bench::introspection(
                &server_bin,
                cli.connections,
                cli.seconds.max(1),
            );
        }
        Some(Mode::Store { pg_conf }) => {
            let server_bin = server_bin(&cli)?;
            return ids_tools::store_bench::run(
                &server_bin,
                cli.connections,
                cli.seconds.max(1),
                pg_conf,
            );
        }
        Some(Mode::Failover {
            workers,
            interval_ms,
            observe_seconds,
            check_inter_ms,
            fall,
            rise,
            store_connection_string,
            dir,
        }) => {
            let dir = dir.clone().unwrap_or_else(std::env::temp_dir);
            let server_bin = server_bin(&cli)?;
            let failover = ids_tools::failover_bench::Failover {
                workers: (*workers).max(1),
                interval: Duration::from_millis(*interval_ms),
                observe: Duration::from_secs(*observe_seconds),
                check_inter: Duration::from_millis((*check_inter_ms).max(1)),
                fall: (*fall).max(1),
                rise: (*rise).max(1),
                store_connection_string: store_connection_string.clone(),
            };
            return ids_tools::failover_bench::run(&failover, &dir, &server_bin);
        }
        None => {}
    }
    let server_bin = server_bin(&cli)?;
    if !server_bin.exists() {
        bail!(
            "{} not found: build it first (cargo build --release -p identity-server -p ids-tools)",
            server_bin.display()
        );
    }

    // 1. Raw primitive, one core.
    let ca = Ca::new("bench CA", 365)?;
    let signing = ca.issue_signing("bench signing", KeyKind::Rsa2048, 365)?;
    let key = SigningKey::from_pkcs8(&signing.key_pkcs8)?;
    let message = [0x5au8; 600];
    let start = Instant::now();
    let mut signs = 0u64;
    while start.elapsed() < Duration::from_secs(2) {
        key.sign(&message)?;
        signs += 1;
    }
    let raw_rate = signs as f64 / start.elapsed().as_secs_f64();
    println!("raw RSA-2048 sign (aws-lc-rs, pre-parsed key, 1 core): {raw_rate:.0}/s");

    // 2. Deployment.
    let dir = tempfile::tempdir()?;
    // Clients without a secret: one EC P-256 key each (private_key_jwt), registered by thumbprint.
    let mut key_clients = Vec::new();
    for i in 0..cli.connections.max(1) {
        let issued = ca.issue_signing(&format!("KeyClient{i}"), KeyKind::EcP256, 365)?;
        let cert = ids_pki::Certificate::from_der("bench", &issued.cert_der)?;
        let signer = ids_jose::AssertionSigner::new(
            SigningKey::from_pkcs8(&issued.key_pkcs8)?,
            cert.public_key(),
        );
        key_clients.push((format!("KeyClient{i}"), Arc::new(signer)));
    }
    let thumbprints: Vec<(String, String)> = key_clients
        .iter()
        .map(|(id, s)| (id.clone(), s.thumbprint().to_string()))
        .collect();
    let secrets = write_deployment(dir.path(), &ca, &signing, cli.clients, &thumbprints)?;
    let (child, port) = ids_tools::start_serve(&server_bin, dir.path())?;
    let url = format!("https://127.0.0.1:{port}/connect/token");
    let ca_cert = reqwest::Certificate::from_pem(ca.cert.cert_pem.as_bytes())?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .tls_certs_only([ca_cert])
            .http1_only()
            .pool_max_idle_per_host(cli.connections)
            .build()?;

        // 3. First requests: uncached argon2id.
        let first = Instant::now();
        let mut tasks = Vec::new();
        for (i, secret) in secrets.iter().enumerate() {
            let client = client.clone();
            let url = url.clone();
            let secret = secret.clone();
            tasks.push(tokio::spawn(async move {
                let t = Instant::now();
                let ok = request(&client, &url, &format!("Client{i}"), &secret).await;
                (ok, t.elapsed())
            }));
        }
        let mut latencies = Vec::new();
        for t in tasks {
            let (ok, d) = t.await?;
            if !ok {
                bail!("a first request failed");
            }
            latencies.push(d);
        }
        let first_rate = secrets.len() as f64 / first.elapsed().as_secs_f64();
        println!(
            "first requests (uncached argon2id, m=19456 KiB t=2 p=1), {} clients: {first_rate:.1} tokens/s; latency {}",
            secrets.len(),
            percentiles(&mut latencies)
        );

        // 4. Repeated requests, cached verifications, keep-alive.
        let attempts = (0..cli.connections)
            .map(|w| {
                let (client, url) = (client.clone(), url.clone());
                let i = w % secrets.len();
                let (id, secret) = (format!("Client{i}"), secrets[i].clone());
                move || {
                    let (client, url, id, secret) =
                        (client.clone(), url.clone(), id.clone(), secret.clone());
                    async move { request(&client, &url, &id, &secret).await }
                }
            })
            .collect();
        let (mut all, errors, elapsed) = timed_load(attempts, cli.seconds).await?;
        let rate = all.len() as f64 / elapsed;
        println!(
            "repeated requests (cached argon2id), {} keep-alive connections, {:.0} s: {rate:.0} tokens/s, {errors} errors; latency {}",
            cli.connections,
            elapsed,
            percentiles(&mut all)
        );
        println!(
            "ratio: {:.2} x the raw single-core RSA-2048 signing rate (target >= 1.00)",
            rate / raw_rate
        );

        // 5. private_key_jwt: a fresh ES256 assertion per request (signed by the load generator on
        // the same machine), verified, replay-checked and answered with a signed token.
        let attempts = key_clients
            .iter()
            .map(|(id, signer)| {
                let (client, url, id, signer) =
                    (client.clone(), url.clone(), id.clone(), signer.clone());
                move || {
                    let (client, url) = (client.clone(), url.clone());
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs() as i64);
                    let assertion = signer.sign(&id, &url, now).ok();
                    async move {
                        match assertion {
                            Some(a) => assertion_request(&client, &url, &a).await,
                            None => false,
                        }
                    }
                }
            })
            .collect();
        let (mut all, errors, elapsed) = timed_load(attempts, cli.seconds).await?;
        let jwt_rate = all.len() as f64 / elapsed;
        println!(
            "private_key_jwt (fresh ES256 assertion per request), {} clients, {:.0} s: {jwt_rate:.0} tokens/s, {errors} errors; latency {}",
            key_clients.len(),
            elapsed,
            percentiles(&mut all)
        );
        println!(
            "ratio: {:.2} x the raw single-core RSA-2048 signing rate",
            jwt_rate / raw_rate
        );
        Ok::<_, anyhow::Error>(())
    })?;
    drop(child);
    Ok(())
}

/// Raw signature verification against the whole verifier, one core, interleaved in short slices so that
/// a load change on the machine affects both contenders alike.
fn bench_verify(duration: Duration) -> anyhow::Result<()> {
    let ca = Ca::new("bench CA", 30)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    let claims = serde_json::json!({
        "iss": "https://ids.example.test",
        "sub": "Job",
        "client_id": "Job",
        "aud": "gorgone",
        "scope": "openid gorgone.read gorgone.write",
        "jti": "6c0a1d2e9f8b4a7c9e3d5f1a2b4c6d8e",
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
    });
    println!(
        "token verification, single-threaded, {:.1} s per contender",
        duration.as_secs_f64()
    );
    for (kind, raw_algorithm, name) in [
        (
            KeyKind::Rsa2048,
            &RSA_PKCS1_2048_8192_SHA256 as &dyn VerificationAlgorithm,
            "RS256",
        ),
        (KeyKind::EcP256, &ECDSA_P256_SHA256_FIXED, "ES256"),
    ] {
        let issued = ca.issue_signing(&format!("bench {name}"), kind, 30)?;
        let cert = Certificate::from_der("bench certificate", &issued.cert_der)?;
        let key = SigningKey::from_pkcs8(&issued.key_pkcs8)?;
        // PKCS#1 RSAPublicKey DER or the uncompressed EC point, as aws-lc-rs exports them.
        let raw = ParsedPublicKey::new(raw_algorithm, key.public_key_bytes())
            .map_err(|e| anyhow::anyhow!("raw {name} key: {e}"))?;
        let signer = TokenSigner::new(key, &cert);
        let token = signer.sign(&claims)?;
        let (signed, signature) = token.rsplit_once('.').context("token without signature")?;
        let signature = ids_pki::b64::url_decode(signature).context("signature not base64url")?;
        let verifier = Verifier::new(
            KeySet::from_certificates([(&cert, "bench certificate".to_string())])?,
            Validation {
                issuer: "https://ids.example.test".into(),
                audience: "gorgone".into(),
                leeway_secs: 60,
            },
        );
        raw.verify_sig(signed.as_bytes(), &signature)
            .map_err(|_| anyhow::anyhow!("raw {name} verification failed"))?;
        verifier.verify(&token, now)?;

        let slices = 8u32;
        let (mut raw_count, mut raw_time) = (0u64, Duration::ZERO);
        let (mut full_count, mut full_time) = (0u64, Duration::ZERO);
        for _ in 0..slices {
            let (n, t) = run_for(duration / slices, || {
                raw.verify_sig(
                    std::hint::black_box(signed.as_bytes()),
                    std::hint::black_box(&signature),
                )
                .is_ok()
            })?;
            raw_count += n;
            raw_time += t;
            let (n, t) = run_for(duration / slices, || {
                verifier
                    .verify(std::hint::black_box(&token), std::hint::black_box(now))
                    .is_ok()
            })?;
            full_count += n;
            full_time += t;
        }
        let raw_rate = raw_count as f64 / raw_time.as_secs_f64();
        let full_rate = full_count as f64 / full_time.as_secs_f64();
        println!("{name} raw verify: {raw_rate:.0}/s per core");
        println!(
            "{name} Verifier::verify: {full_rate:.0}/s per core ({:.1}% of raw; target >= 80%)",
            100.0 * full_rate / raw_rate
        );
    }
    Ok(())
}

/// Calls `f` until `duration` has passed; returns the number of calls and the time taken. Every call
/// must succeed: a failure would mean the rate measures a rejection path, not verification.
fn run_for(duration: Duration, mut f: impl FnMut() -> bool) -> anyhow::Result<(u64, Duration)> {
    let start = Instant::now();
    let mut count = 0u64;
    loop {
        for _ in 0..16 {
            if !f() {
                bail!("a verification failed during the measurement");
            }
            count += 1;
        }
        let elapsed = start.elapsed();
        if elapsed >= duration {
            return Ok((count, elapsed));
        }
    }
}

/// Runs each of `attempts` in a loop on its own task for `seconds`: the latencies of the successful
/// attempts, the number of failed ones and the elapsed seconds.
async fn timed_load<F, Fut>(
    attempts: Vec<F>,
    seconds: u64,
) -> anyhow::Result<(Vec<Duration>, u64, f64)>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let begin = Instant::now();
    let workers: Vec<_> = attempts
        .into_iter()
        .map(|mut attempt| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut errors = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    if attempt().await {
                        lat.push(t.elapsed());
                    } else {
                        errors += 1;
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut errors = 0;
    for w in workers {
        let (lat, e) = w.await?;
        all.extend(lat);
        errors += e;
    }
    Ok((all, errors, begin.elapsed().as_secs_f64()))
}

async fn request(client: &reqwest::Client, url: &str, id: &str, secret: &str) -> bool {
    match client
        .post(url)
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
        _ => false,
    }
}

async fn assertion_request(client: &reqwest::Client, url: &str, assertion: &str) -> bool {
    match client
        .post(url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ids_jose::assertion::ASSERTION_TYPE),
            ("client_assertion", assertion),
        ])
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
        _ => false,
    }
}

fn write_deployment(
    dir: &Path,
    ca: &Ca,
    signing: &ids_devpki::Issued,
    clients: usize,
    key_clients: &[(String, String)],
) -> anyhow::Result<Vec<String>> {
    let password = "bench-password";
    let tls = ca.issue_server(&["localhost", "127.0.0.1"], KeyKind::EcP256, 365)?;
    std::fs::write(
        dir.join("tls.pfx"),
        to_pfx(&tls, &[], "tls", password, PfxProfile::Modern)?,
    )?;
    std::fs::write(
        dir.join("signing.pfx"),
        to_pfx(signing, &[], "signing", password, PfxProfile::Modern)?,
    )?;
    std::fs::write(
        dir.join("appsettings.json"),
        serde_json::json!({
            // All the load comes from one address: lift the per-address attempt budget, which would
            // otherwise (rightly) answer 429 to 32 simultaneous first authentications.
            "IdentityServer": {
                "X509KeyFilePath": "signing.pfx",
                "X509KeyFilePassword": password,
                "FailedAuthenticationsPerMinute": 100000,
            },
            "Kestrel": { "Certificates": { "Default": { "Path": "tls.pfx", "Password": password } } },
        })
        .to_string(),
    )?;
    std::fs::create_dir_all(dir.join("Conf"))?;
    let mut xml = String::from("<ConfigurationFile>\n");
    let mut secrets = Vec::new();
    for i in 0..clients.max(1) {
        let secret = ids_secret::generate_secret()?;
        let hash = SecretHash::argon2id(&secret)?;
        xml.push_str(&format!(
            "  <OpenIdClient Identifier=\"Client{i}\" HashedSecret=\"{}\" />\n",
            hash.to_attribute()
        ));
        secrets.push(secret.expose().to_string());
    }
    for (id, thumbprint) in key_clients {
        xml.push_str(&format!(
            "  <OpenIdClient Identifier=\"{id}\" Thumbprints=\"{thumbprint}\" />\n"
        ));
    }
    xml.push_str("</ConfigurationFile>\n");
    std::fs::write(dir.join("Conf/clients.xml"), xml)?;
    Ok(secrets)
}
