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
pub mod store_bench;

use std::process::Child;
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
