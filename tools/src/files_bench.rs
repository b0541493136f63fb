//! `ids-bench files`: file encryption throughput and memory against a plain copy, in one run.
//!
//! 1. Writes a file of `--size-mib` pseudo-random bytes (page cache holds it for every phase).
//! 2. Plain copy: `cp`, and a read/write loop with a 64 KiB buffer (the faster is the reference).
//! 3. Encryption with the agent's format (RSA-2048 recipient, 64 KiB chunks), then decryption.
//! 4. For each phase, the peak resident memory of this process (Linux: VmHWM after resetting it through
//!    `/proc/self/clear_refs`), and the same for an encryption of a file 16 times smaller, to show that
//!    memory does not grow with the file.
//!
//! Target (issue 4): encryption and decryption each at least 50% of the copy throughput, peak memory
//! under 32 MiB whatever the size.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;
use ids_devpki::{Ca, KeyKind, PfxProfile, to_pfx};
use ids_pki::pfx::Pfx;
use ids_seal::encrypted_file::format::read_up_to;
use ids_seal::encrypted_file::{DecryptionKey, Encryptor, Mode, Recipient, decrypt_stream};

/// Runs the benchmark with a file of `size_mib` MiB in `dir`; prints the figures.
pub fn run(size_mib: u64, dir: &Path) -> anyhow::Result<()> {
    let work = tempfile::tempdir_in(dir).context("temporary folder")?;
    let d = work.path();
    let source = d.join("source.bin");
    let bytes = size_mib * 1024 * 1024;
    write_source(&source, bytes)?;

    let ca = Ca::new("bench CA", 1)?;
    let issued = ca.issue_encryption("bench recipient", KeyKind::Rsa2048, 1)?;
    let pfx = Pfx::from_bytes(
        "bench",
        &to_pfx(&issued, &[], "bench", "pw", PfxProfile::Modern)?,
        "pw",
    )?;
    let recipient = Recipient::from_certificate(&pfx.certificate)?;
    let key = DecryptionKey::from_pfx(&pfx)?;

    println!(
        "file: {size_mib} MiB in {} (page cache; no fsync in any phase)",
        d.display()
    );
    let cp = phase(|| {
        let status = std::process::Command::new("cp")
            .arg(&source)
            .arg(d.join("copy-cp.bin"))
            .status()?;
        anyhow::ensure!(status.success(), "cp failed");
        Ok(())
    })?;
    report("cp (other process)", bytes, &cp, None);
    let copy = phase(|| {
        let mut input = File::open(&source)?;
        let mut output = File::create(d.join("copy-loop.bin"))?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = input.read(&mut buf)?;
            if n == 0 {
                break;
            }
            output.write_all(&buf[..n])?;
        }
        Ok(())
    })?;
    report("read/write loop (64 KiB)", bytes, &copy, None);
    let reference = if cp.seconds < copy.seconds {
        &cp
    } else {
        &copy
    };

    let encrypted = d.join("source.bin.enc");
    let encrypt = |from: &Path, to: &Path| -> anyhow::Result<()> {
        let mut input = File::open(from)?;
        let mut enc = Encryptor::new(File::create(to)?, std::slice::from_ref(&recipient))?;
        enc.copy_from(&mut input, |_| {})?;
        enc.finish()?;
        Ok(())
    };
    let enc = phase(|| encrypt(&source, &encrypted))?;
    report(
        "encrypt (IDSENC, AES-256-GCM)",
        bytes,
        &enc,
        Some(reference),
    );
    let dec = phase(|| {
        let mut output = File::create(d.join("decrypted.bin"))?;
        decrypt_stream(
            File::open(&encrypted)?,
            &mut output,
            std::slice::from_ref(&key),
            Mode::Strict,
            |_| {},
        )?;
        Ok(())
    })?;
    report(
        "decrypt (IDSENC, AES-256-GCM)",
        bytes,
        &dec,
        Some(reference),
    );
    anyhow::ensure!(
        same_content(&source, &d.join("decrypted.bin"))?,
        "decrypted file differs from the source"
    );

    let small = d.join("small.bin");
    let small_bytes = (bytes / 16).max(1);
    write_source(&small, small_bytes)?;
    let small_enc = phase(|| encrypt(&small, &d.join("small.bin.enc")))?;
    println!(
        "peak memory of encryption: {} for {} MiB, {} for {} MiB (target: flat, under 32 MiB)",
        mib(enc.peak_rss),
        size_mib,
        mib(small_enc.peak_rss),
        small_bytes / (1024 * 1024)
    );
    Ok(())
}

struct Measured {
    seconds: f64,
    /// Peak resident set of this process during the phase, bytes (None off Linux).
    peak_rss: Option<u64>,
}

fn phase(f: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<Measured> {
    reset_peak_rss();
    let start = Instant::now();
    f()?;
    Ok(Measured {
        seconds: start.elapsed().as_secs_f64(),
        peak_rss: peak_rss(),
    })
}

fn report(name: &str, bytes: u64, m: &Measured, reference: Option<&Measured>) {
    let rate = bytes as f64 / m.seconds / (1024.0 * 1024.0);
    let ratio = reference
        .map(|r| format!(", {:.0}% of the copy", 100.0 * r.seconds / m.seconds))
        .unwrap_or_default();
    println!(
        "{name:32} {rate:8.0} MiB/s  ({:.2} s{ratio}; peak RSS {})",
        m.seconds,
        mib(m.peak_rss)
    );
}

pub(crate) fn mib(bytes: Option<u64>) -> String {
    bytes.map_or("n/a".into(), |b| format!("{:.1} MiB", b as f64 / 1048576.0))
}

pub(crate) fn write_source(path: &Path, bytes: u64) -> anyhow::Result<()> {
    let mut block = vec![0u8; 1024 * 1024];
    aws_lc_rs::rand::fill(&mut block).map_err(|_| anyhow::anyhow!("random"))?;
    let mut out = std::io::BufWriter::new(File::create(path)?);
    let mut left = bytes;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        out.write_all(&block[..n])?;
        block[0] = block[0].wrapping_add(1);
        left -= n as u64;
    }
    out.flush()?;
    Ok(())
}

pub(crate) fn same_content(a: &Path, b: &Path) -> anyhow::Result<bool> {
    let (mut a, mut b) = (File::open(a)?, File::open(b)?);
    let (mut x, mut y) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = read_up_to(&mut a, &mut x)?;
        let m = read_up_to(&mut b, &mut y)?;
        if n != m || x[..n] != y[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

/// Linux: writing 5 to `/proc/self/clear_refs` resets the peak resident set size (VmHWM).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
