//! `ids-bench operations`: tokens/s with the metrics and the audit trail on, next to both off, in one
//! run, on one deployment (issue 17: target >= 95%).
//!
//! Rounds alternate (off, on, off, on, off, on) so that a change of load on the machine affects both
//! alike; the figures are the means of each. "On" is `Metrics:Urls` on a loopback port with a scraper
//! reading `/metrics` every second (Prometheus's usual interval is 15 to 60 s: this is a harsher one)
//! and `Audit:Path` (one JSON line per token, written by the audit thread to a file on the same disk).
//! The load is `private_key_jwt`: a fresh ES256 assertion per request from `connections` clients in
//! parallel over keep-alive HTTPS, tokens signed RS256 ([`crate::store_bench::load`]).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use ids_devpki::Ca;

use crate::store_bench::{PASSWORD, load, write_deployment};

/// Runs the comparison with `server_bin`.
pub fn run(server_bin: &Path, connections: usize, seconds: u64) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ca = Ca::new("bench CA", 365)?;
    let signers = write_deployment(dir.path(), &ca, connections.max(1))?;
    let ca_pem = ca.cert.cert_pem.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut audited = 0u64;
    let mut scrapes = 0u64;
    for round in 0..6 {
        let on = round % 2 == 1;
        let metrics_port = free_port()?;
        let audit = dir.path().join(format!("audit-{round}"));
        let mut settings = serde_json::json!({
            "IdentityServer": { "X509KeyFilePath": "signing.pfx", "X509KeyFilePassword": PASSWORD },
            "Kestrel": { "Certificates": { "Default": { "Path": "tls.pfx", "Password": PASSWORD } } },
        });
        if on {
            settings["Metrics"] =
                serde_json::json!({ "Urls": format!("http://127.0.0.1:{metrics_port}") });
            settings["Audit"] = serde_json::json!({ "Path": audit.display().to_string() });
        }
        std::fs::write(dir.path().join("appsettings.json"), settings.to_string())?;
        let (server, port) = crate::start_serve(server_bin, dir.path())?;
        let stop = Arc::new(AtomicBool::new(false));
        let scraped = Arc::new(AtomicU64::new(0));
        let scraper = on.then(|| {
            let (stop, scraped) = (stop.clone(), scraped.clone());
            std::thread::spawn(move || scrape_every_second(metrics_port, &stop, &scraped))
        });
        let rate = runtime.block_on(load(&ca_pem, port, &signers, seconds))?;
        stop.store(true, Ordering::Relaxed);
        if let Some(s) = scraper {
            let _ = s.join();
        }
        drop(server);
        if on {
            audited += lines_in(&audit)?;
            scrapes += scraped.load(Ordering::Relaxed);
        }
        println!(
            "round {}: metrics and audit {}: {rate:.0} tokens/s",
            round + 1,
            if on { "ON " } else { "off" }
        );
        rates[usize::from(on)].push(rate);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (off, on) = (mean(&rates[0]), mean(&rates[1]));
    println!(
        "private_key_jwt, {} clients, {seconds} s x 3 rounds each: off {off:.0} tokens/s, metrics + audit on {on:.0} tokens/s: {:.1}% (target >= 95%); {audited} audit lines written, {scrapes} scrapes",
        signers.len(),
        100.0 * on / off.max(1.0)
    );
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// GET /metrics once a second until `stop` (plain HTTP/1.1, a new connection each time, as
/// Prometheus does after an idle interval).
fn scrape_every_second(port: u16, stop: &AtomicBool, scraped: &AtomicU64) {
    use std::io::{Read as _, Write as _};
    while !stop.load(Ordering::Relaxed) {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.write_all(
                b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
            );
            let mut body = Vec::new();
            if s.read_to_end(&mut body).is_ok() && body.starts_with(b"HTTP/1.1 200") {
                scraped.fetch_add(1, Ordering::Relaxed);
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Lines in every file of `folder` (the audit events written).
fn lines_in(folder: &Path) -> anyhow::Result<u64> {
    let mut lines = 0;
    for entry in std::fs::read_dir(folder)? {
        let text = std::fs::read(entry?.path())?;
        lines += text.iter().filter(|b| **b == b'\n').count() as u64;
    }
    Ok(lines)
}
