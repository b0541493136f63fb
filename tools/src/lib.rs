//! Small command-line tools over the project's libraries. The binaries in `src/bin/` are thin: the
//! work is in this library, where unit tests reach it. Nothing else depends on this crate: it may use
//! every library (rcgen through `ids-devpki`, argon2 through `ids-secret`) without the apps paying for it.
//!
//! # Layout
//! - `new-openid-secret`: hashes a client secret for the `HashedSecret` XML attribute.
//! - `ids-bench`: measures raw signing speed and token throughput of a running server.
//!   `ids-bench files` measures file encryption against a plain copy ([`files_bench`]);
//!   `ids-bench deliver` measures agent-to-server delivery against encryption ([`delivery_bench`]);
//!   `ids-bench idle` measures idle connections against a normal client ([`idle_bench`]);
//!   `ids-bench argon2-flood` measures the server's memory under failed authentications ([`flood_bench`]);
//!   `ids-bench store` measures private_key_jwt with the embedded store next to PostgreSQL ([`store_bench`]);
//!   `ids-bench failover` measures clients' fail-over when one of three servers behind HAProxy dies
//!   ([`failover_bench`]).
//! - `ids-keytool`: a private CA, TLS server/client certificates, CSRs, PFX files, ssh-keygen-like key
//!   pairs and JWK thumbprints ([`keytool`]).

pub mod delivery_bench;
pub mod failover_bench;
pub mod files_bench;
pub mod flood_bench;
pub mod idle_bench;
pub mod keytool;
pub mod oauth_bench;
pub mod operations_bench;
pub mod store_bench;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::{Context as _, bail};
use std::time::Duration;

/// A child process killed (and reaped) when dropped.
#[derive(Debug)]
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `identity-server serve` on a free loopback port with the deployment in `dir` (its log at `warn` on
/// this process's standard error): the process, killed when dropped, and the port it printed.
pub fn start_serve(server_bin: &Path, dir: &Path) -> anyhow::Result<(Killed, u16)> {
    let mut child = Command::new(server_bin)
        .args(["serve", "--urls", "https://127.0.0.1:0", "--config-dir"])
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", server_bin.display()))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let child = Killed(child);
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        if let Some(rest) = line.strip_prefix("listening on https://")
            && let Some(port) = rest.rsplit(':').next().and_then(|p| p.parse().ok())
        {
            return Ok((child, port));
        }
    }
    bail!("the server did not print its address")
}

/// Where the PostgreSQL server binaries are (`initdb`, `pg_ctl`): `PG_BIN`, then Debian's newest
/// `/usr/lib/postgresql/N/bin`, then `PATH`. Used by the benchmarks' and the e2e tests' throwaway
/// clusters.
pub fn postgres_bin() -> Option<std::path::PathBuf> {
    use std::path::PathBuf;
    let has_both = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    if let Ok(dir) = std::env::var("PG_BIN")
        && Path::new(&dir).join("pg_ctl").is_file()
    {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            has_both(&bin).then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH").and_then(|path| std::env::split_paths(&path).find(|d| has_both(d)))
}

/// Whether this process runs as root (`initdb` refuses root: run PostgreSQL's commands as `postgres`).
pub fn runs_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A `kB` line of `/proc/PID/status` (`VmRSS:`, `VmHWM:`...), in bytes (Linux).
pub fn proc_status_bytes(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Current resident set of `pid` (Linux), bytes.
pub fn rss(pid: u32) -> Option<u64> {
    proc_status_bytes(pid, "VmRSS:")
}

/// Peak resident set of `pid` so far (Linux `VmHWM`), bytes.
pub fn peak_rss(pid: u32) -> Option<u64> {
    proc_status_bytes(pid, "VmHWM:")
}

/// p50, p90, p99 and max of `samples` (sorted in place), in ms.
pub fn percentiles(samples: &mut [Duration]) -> String {
    if samples.is_empty() {
        return "n/a".into();
    }
    samples.sort();
    let at = |p: f64| {
        let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
        samples[i].as_secs_f64() * 1000.0
    };
    format!(
        "p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    )
}
