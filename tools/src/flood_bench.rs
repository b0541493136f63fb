//! `ids-bench argon2-flood`: the server's resident memory while it is flooded with failed
//! `client_secret` authentications from many source addresses (issue 14, point 9), next to a reference
//! measured in the same run: the server's idle memory plus the argon2 memory of `HashConcurrency`
//! verifications at once (what the server needs at least).
//!
//! 1. `identity-server quickstart` in a temporary folder on 127.0.0.1 (its own process), with
//!    `IdentityServer__HashConcurrency` set to `--hash-concurrency`; its demo client has an argon2id
//!    hash at the production parameters (m=19456 KiB, t=2, p=1).
//! 2. Idle: VmRSS of the server once started, before any request.
//! 3. Flood: `--rate` token requests a second for `--seconds`, each with the demo client's id and a
//!    wrong secret (so each costs an argon2id verification: failures are never cached), spread over
//!    `--sources` loopback addresses 127.0.0.2, 127.0.0.3, ... (Linux routes all of 127.0.0.0/8 to the
//!    loopback interface), so that no address exceeds the default `FailedAuthenticationsPerMinute`
//!    (30): with fewer addresses the server answers 429 without verifying anything.
//! 4. The server's VmRSS sampled every 100 ms during the flood (peak, and the last value), its VmHWM
//!    at the end, and the answers counted by status (401 = verified and refused, 429 = source over
//!    its budget, 503 = no argon2 slot within 5 s).
//!
//! Target: peak VmRSS <= 96 MiB with `HashConcurrency` 2 (issue 14 measured 438 MB before the fixed
//! argon2 pool).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::delivery_bench::wait_for_listening;
use crate::files_bench::mib;
use crate::{Killed, proc_status_bytes, rss};

/// argon2id memory cost of the hashes quickstart writes (argon2's default, OWASP), KiB.
const ARGON2_M_KIB: u64 = 19_456;
/// The resident-memory target.
const TARGET: u64 = 96 * 1024 * 1024;

/// What to run.
#[derive(Debug, Clone)]
pub struct Flood {
    pub seconds: u64,
    /// Requests a second.
    pub rate: u64,
    /// Source addresses.
    pub sources: u32,
    pub hash_concurrency: u32,
}

/// Runs the benchmark in `dir` with the `identity-server` binary `server_bin`.
pub fn run(flood: &Flood, dir: &Path, server_bin: &Path) -> anyhow::Result<()> {
    if !server_bin.exists() {
        bail!(
            "{} not found: build it first (cargo build --release -p identity-server -p ids-tools)",
            server_bin.display()
        );
    }
    if !(1..=250).contains(&flood.sources) {
        bail!("--sources must be 1 to 250 (127.0.0.2 to 127.0.0.251)");
    }
    let work = tempfile::tempdir_in(dir).context("temporary folder")?;
    let qs = work.path().join("qs");
    let mut server = Killed(
        Command::new(server_bin)
            .arg("quickstart")
            .arg("--config-dir")
            .arg(&qs)
            .arg("--urls")
            .arg("https://127.0.0.1:0")
            .env(
                "IdentityServer__HashConcurrency",
                flood.hash_concurrency.to_string(),
            )
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("start {}", server_bin.display()))?,
    );
    let base = wait_for_listening(&mut server.0)?;
    let pid = server.0.id();
    let ca = reqwest::Certificate::from_pem(&std::fs::read(qs.join("dev-ca.crt"))?)?;
    let endpoint = format!("{base}/connect/token");
    let per_source = flood.rate as f64 * 60.0 / f64::from(flood.sources);
    println!(
        "server: {} (pid {pid}), HashConcurrency {}; flood: {} failed authentications/s for {} s from {} addresses ({per_source:.0}/min each; the default limit is 30/min)",
        server_bin.display(),
        flood.hash_concurrency,
        flood.rate,
        flood.seconds,
        flood.sources
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let clients = (0..flood.sources)
            .map(|i| {
                let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + i as u8));
                reqwest::Client::builder()
                    .tls_certs_only([ca.clone()])
                    .local_address(source)
                    .timeout(Duration::from_secs(30))
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        // Idle: started, before any request.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let idle = rss(pid).context("cannot read the server's VmRSS")?;
        let first = attempt(&clients[0], &endpoint, 0).await;
        if first != Some(401) {
            bail!("a wrong secret got {first:?} instead of 401");
        }
        let argon2 = u64::from(flood.hash_concurrency) * ARGON2_M_KIB * 1024;
        println!(
            "reference: idle VmRSS {} + argon2 memory {} ({} x {} KiB) = {}",
            mib(Some(idle)),
            mib(Some(argon2)),
            flood.hash_concurrency,
            ARGON2_M_KIB,
            mib(Some(idle + argon2))
        );

        let sampling = Arc::new(AtomicBool::new(true));
        let sampler = {
            let sampling = sampling.clone();
            std::thread::spawn(move || {
                let start = Instant::now();
                let mut peak = 0u64;
                let mut series = Vec::new();
                let mut last_report = Duration::ZERO;
                while sampling.load(Ordering::Relaxed) {
                    if let Some(now) = rss(pid) {
                        peak = peak.max(now);
                        let t = start.elapsed();
                        if t >= last_report + Duration::from_secs(5) {
                            last_report = t;
                            series.push((t.as_secs(), now));
                        }
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                (peak, series)
            })
        };
        let total = flood.rate * flood.seconds;
        let interval = Duration::from_secs_f64(1.0 / flood.rate.max(1) as f64);
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut tasks = tokio::task::JoinSet::new();
        let started = Instant::now();
        for n in 0..total {
            ticker.tick().await;
            let client = clients[(n % u64::from(flood.sources)) as usize].clone();
            let endpoint = endpoint.clone();
            tasks.spawn(async move { attempt(&client, &endpoint, n + 1).await });
        }
        let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
        while let Some(done) = tasks.join_next().await {
            let key = match done {
                Ok(Some(status)) => status.to_string(),
                Ok(None) => "no answer".to_string(),
                Err(_) => "task failed".to_string(),
            };
            *statuses.entry(key).or_default() += 1;
        }
        let elapsed = started.elapsed().as_secs_f64();
        sampling.store(false, Ordering::Relaxed);
        let (peak, series) = sampler
            .join()
            .map_err(|_| anyhow::anyhow!("the sampler panicked"))?;
        let last = rss(pid);
        let hwm = proc_status_bytes(pid, "VmHWM:");
        let verified = statuses.get("401").copied().unwrap_or(0);
        println!(
            "flood: {total} requests in {elapsed:.1} s; answers {}; {:.1} verified failures/s",
            statuses
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join(", "),
            verified as f64 / elapsed
        );
        println!(
            "VmRSS every 5 s: {}",
            series
                .iter()
                .map(|(t, b)| format!("{t}s {}", mib(Some(*b))))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "server VmRSS: peak {} during the flood, {} after it; VmHWM {}; reference (idle + argon2) {}",
            mib(Some(peak)),
            mib(last),
            mib(hwm),
            mib(Some(idle + argon2))
        );
        let worst = peak.max(hwm.unwrap_or(0));
        println!(
            "target: peak resident memory <= {} under the flood: {}",
            mib(Some(TARGET)),
            if worst <= TARGET { "met" } else { "NOT met" }
        );
        Ok(())
    })
}

/// One token request with the demo client and a wrong secret; the HTTP status.
async fn attempt(client: &reqwest::Client, endpoint: &str, n: u64) -> Option<u16> {
    let secret = format!("wrong-secret-{n}");
    let response = client
        .post(endpoint)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "Demo"),
            ("client_secret", secret.as_str()),
        ])
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    let _ = response.bytes().await;
    Some(status)
}
