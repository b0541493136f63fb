//! `ids-bench deliver`: agent-to-server delivery throughput and the server's memory, next to plain file
//! encryption, in one run, with the real binaries (`identity-server`, `agent`, next to `ids-bench`).
//!
//! 1. `identity-server quickstart` in a temporary folder on 127.0.0.1 (its own process): development
//!    certificates, a demo client, an agent folder with its encryption certificate.
//! 2. A file of `--size-mib` random bytes; `agent encrypt` of it: the plain encryption throughput
//!    (written atomically and fsynced, as a delivery is on the server).
//! 3. `agent push` of a file 16 times smaller, then of the encrypted file: the agent reads it once,
//!    decrypting it as the HTTPS request body and hashing it, the SHA-256 sent after the body as a
//!    trailer (issue 16); the server hashes it on one thread and encrypts it for its own certificate on
//!    another, flushes it to disk as it goes, checks the digest and commits. Throughput = plaintext
//!    bytes / wall time of `agent push`; the ratio to `agent encrypt` of the same file in the same run.
//! 4. Peak resident memory of the server and of the agent (`VmHWM` from /proc: the server's reset
//!    before each push and read after it; the agent's sampled every 20 ms until it exits), so that the two
//!    sizes show whether memory grows with the file.
//! 5. `identity-server deliveries export` of the delivery, compared byte for byte with the source.
//!
//! With `--postgresql` the server keeps its deliveries in a throwaway PostgreSQL cluster
//! ([`crate::store_bench`]'s, `fsync` on) instead of its data folder (`Store:Provider PostgreSql`, given
//! to the server and to the export through the environment); the cluster's own processes are not in the
//! server's memory figure. A second reference is then measured on the same cluster: the rate at which
//! PostgreSQL alone stores the same bytes as rows of 1 MiB (two connections, as the server writes them),
//! with no agent and no server running beside it.
//!
//! Targets: the server's and the agent's peak memory flat, independent of the file size (issue 5);
//! `agent push` at least 0.6x `agent encrypt` of a 1 GiB file with the folder store, 0.4x with
//! PostgreSQL (issue 16).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::files_bench::{mib, same_content, write_source};
use crate::store_bench::Cluster;
use crate::{Killed, peak_rss};

/// Runs the benchmark with a file of `size_mib` MiB in `dir`, using the binaries in `bin`; the
/// deliveries in a throwaway PostgreSQL cluster with these postgresql.conf lines when `postgresql` is
/// given (SKIPPED without its binaries).
pub fn run(
    size_mib: u64,
    dir: &Path,
    bin: &Path,
    postgresql: Option<&[String]>,
) -> anyhow::Result<()> {
    let server_bin = bin.join("identity-server");
    let agent_bin = bin.join("agent");
    for b in [&server_bin, &agent_bin] {
        if !b.exists() {
            bail!(
                "{} not found: build it first (cargo build --release --workspace)",
                b.display()
            );
        }
    }
    let cluster = if let Some(pg_conf) = postgresql {
        match Cluster::start(pg_conf)? {
            Some(c) => Some(c),
            None => return Ok(()),
        }
    } else {
        None
    };
    // The store settings, for the server and for the export.
    let store_env: Vec<(&str, String)> = match &cluster {
        Some(c) => vec![
            ("Store__Provider", "PostgreSql".to_string()),
            ("Store__ConnectionString", c.connection_string()),
        ],
        None => Vec::new(),
    };
    let work = tempfile::tempdir_in(dir).context("temporary folder")?;
    let d = work.path();
    let qs = d.join("qs");
    let mut server = Killed(
        Command::new(&server_bin)
            .envs(store_env.iter().map(|(k, v)| (k, v)))
            .arg("quickstart")
            .arg("--config-dir")
            .arg(&qs)
            .arg("--urls")
            .arg("https://127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("start identity-server")?,
    );
    // quickstart writes the folder (the agent's included, with the bound port), then prints the address
    // it listens on: the files are complete once that line is out.
    wait_for_listening(&mut server.0)?;
    let agent_dir = qs.join("agent");
    let bytes = size_mib * 1024 * 1024;
    println!(
        "file: {size_mib} MiB in {} (page cache); deliveries stored in {}",
        d.display(),
        if cluster.is_some() {
            "PostgreSQL (throwaway cluster, fsync on)"
        } else {
            "the server's data folder"
        }
    );

    let small = d.join("small.bin");
    write_source(&small, (bytes / 16).max(1024 * 1024))?;
    let source = d.join("source.bin");
    write_source(&source, bytes)?;

    let enc_dir = d.join("enc");
    std::fs::create_dir_all(&enc_dir)?;
    let t = Instant::now();
    agent(
        &agent_bin,
        &agent_dir,
        &["encrypt", path(&small)?, "-o", path(&enc_dir)?],
    )?;
    agent(
        &agent_bin,
        &agent_dir,
        &["encrypt", path(&source)?, "-o", path(&enc_dir)?],
    )?;
    let _ = t;
    // Timed alone, on the large file: the plain encryption of the file issue.
    std::fs::remove_file(enc_dir.join("source.bin.enc"))?;
    let t = Instant::now();
    agent(
        &agent_bin,
        &agent_dir,
        &["encrypt", path(&source)?, "-o", path(&enc_dir)?],
    )?;
    let encrypt = t.elapsed().as_secs_f64();
    println!(
        "{:34} {:8.0} MiB/s  ({encrypt:.2} s)",
        "agent encrypt (plain encryption)",
        size_mib as f64 / encrypt
    );

    sync();
    let small_size = std::fs::metadata(&small)?.len();
    let (small_secs, small_server, small_agent) = push(
        &agent_bin,
        &agent_dir,
        &enc_dir.join("small.bin.enc"),
        "bench-small",
        server.0.id(),
    )?;
    println!(
        "{:34} {:8.0} MiB/s  ({small_secs:.2} s; peak RSS server {}, agent {})",
        format!("agent push, {} MiB", small_size / (1024 * 1024)),
        small_size as f64 / 1048576.0 / small_secs,
        mib(small_server),
        mib(small_agent)
    );
    sync();
    let (secs, server_peak, agent_peak) = push(
        &agent_bin,
        &agent_dir,
        &enc_dir.join("source.bin.enc"),
        "bench-large",
        server.0.id(),
    )?;
    println!(
        "{:34} {:8.0} MiB/s  ({secs:.2} s, {:.2}x plain encryption; peak RSS server {}, agent {})",
        format!("agent push, {size_mib} MiB"),
        size_mib as f64 / secs,
        encrypt / secs,
        mib(server_peak),
        mib(agent_peak)
    );
    println!(
        "push / encrypt: {:.2}x (target >= {}x); peak RSS server {} -> {}, agent {} -> {} (file / 16 -> file)",
        encrypt / secs,
        if cluster.is_some() { "0.4" } else { "0.6" },
        mib(small_server),
        mib(server_peak),
        mib(small_agent),
        mib(agent_peak)
    );

    sync();
    let exported = d.join("exported.bin");
    let t = Instant::now();
    let out = Command::new(&server_bin)
        .envs(store_env.iter().map(|(k, v)| (k, v)))
        .args(["deliveries", "export", "bench-large", "--config-dir"])
        .arg(&qs)
        .arg("-o")
        .arg(&exported)
        .stdin(Stdio::null())
        .output()?;
    if !out.status.success() {
        bail!("export failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let export = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        same_content(&source, &exported)?,
        "the exported delivery differs from the source"
    );
    println!(
        "{:34} {:8.0} MiB/s  ({export:.2} s; identical to the source)",
        "identity-server deliveries export",
        size_mib as f64 / export
    );
    if let Some(cluster) = &cluster {
        drop(server);
        sync();
        let reference = pg_insert_rate(&cluster.connection_string(), size_mib)?;
        println!(
            "{:34} {:8.0} MiB/s  (PostgreSQL alone: {size_mib} rows of 1 MiB over 2 connections; push = {:.2}x)",
            "reference: INSERT of 1 MiB rows",
            reference,
            size_mib as f64 / secs / reference
        );
        println!(
            "PostgreSQL database: {} for {:.1} MiB delivered",
            cluster.database_size()?,
            (small_size + bytes) as f64 / 1048576.0
        );
        return Ok(());
    }
    // Each client's deliveries are in a folder of their own (`@<client>/`).
    let mut stored = 0u64;
    for entry in std::fs::read_dir(qs.join("data/deliveries"))?.flatten() {
        let files: Vec<_> = if entry.path().is_dir() {
            std::fs::read_dir(entry.path())?.flatten().collect()
        } else {
            vec![entry]
        };
        stored += files
            .iter()
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum::<u64>();
    }
    println!(
        "server data folder: {:.1} MiB for {:.1} MiB delivered",
        stored as f64 / 1048576.0,
        (small_size + bytes) as f64 / 1048576.0
    );
    Ok(())
}

/// MiB/s at which PostgreSQL stores `size_mib` rows of 1 MiB of random bytes, inserted one per
/// statement (autocommit) over two connections, into a scratch table shaped like the deliveries' chunks.
fn pg_insert_rate(connection_string: &str, size_mib: u64) -> anyhow::Result<f64> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut chunk = vec![0u8; 1024 * 1024];
        aws_lc_rs::rand::fill(&mut chunk).map_err(|_| anyhow::anyhow!("random bytes"))?;
        let chunk = std::sync::Arc::new(chunk);
        let mut clients = Vec::new();
        for _ in 0..2 {
            let (client, connection) =
                tokio_postgres::connect(connection_string, tokio_postgres::NoTls).await?;
            tokio::spawn(connection);
            clients.push(std::sync::Arc::new(client));
        }
        clients[0]
            .batch_execute(
                "CREATE TABLE bench_reference (upload bigint, seq integer, data bytea NOT NULL, PRIMARY KEY (upload, seq));
                 ALTER TABLE bench_reference ALTER COLUMN data SET STORAGE EXTERNAL;",
            )
            .await?;
        let t = Instant::now();
        let mut tasks = Vec::new();
        for (first, client) in clients.iter().cloned().enumerate() {
            let chunk = chunk.clone();
            tasks.push(tokio::spawn(async move {
                let stmt = client
                    .prepare("INSERT INTO bench_reference VALUES (1, $1, $2)")
                    .await?;
                for seq in (first as u64..size_mib).step_by(2) {
                    let seq = i32::try_from(seq).unwrap_or(i32::MAX);
                    let data: &[u8] = chunk.as_slice();
                    client.execute(&stmt, &[&seq, &data]).await?;
                }
                Ok::<_, tokio_postgres::Error>(())
            }));
        }
        for task in tasks {
            task.await??;
        }
        let rate = size_mib as f64 / t.elapsed().as_secs_f64();
        clients[0].batch_execute("DROP TABLE bench_reference").await?;
        Ok(rate)
    })
}

/// Flushes dirty pages to disk (the `sync` command).
fn sync() {
    let _ = Command::new("sync").status();
}

fn path(p: &Path) -> anyhow::Result<&str> {
    p.to_str().context("non-UTF-8 path")
}

fn agent(bin: &Path, dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(bin)
        .arg("--config-dir")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run agent {args:?}"))?;
    if !out.status.success() {
        bail!(
            "agent {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// `agent push FILE --id ID`: wall time, and the peak resident memory (VmHWM) of the server during it
/// (reset before) and of the agent (its last sample before it exits).
fn push(
    bin: &Path,
    dir: &Path,
    file: &Path,
    id: &str,
    server_pid: u32,
) -> anyhow::Result<(f64, Option<u64>, Option<u64>)> {
    // Linux: 5 in clear_refs resets VmHWM, so that the server's figure is this push's peak.
    let _ = std::fs::write(format!("/proc/{server_pid}/clear_refs"), "5");
    let t = Instant::now();
    let mut child = Command::new(bin)
        .arg("--config-dir")
        .arg(dir)
        .args(["push", path(file)?, "--id", id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let (mut server_peak, mut agent_peak) = (None, None);
    let status = loop {
        agent_peak = agent_peak.max(peak_rss(child.id()));
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    server_peak = server_peak.max(peak_rss(server_pid));
    let secs = t.elapsed().as_secs_f64();
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        bail!("agent push failed: {err}");
    }
    Ok((secs, server_peak, agent_peak))
}

/// Reads the server's standard output up to `listening on https://...`, for at most 60 s (a reader
/// thread drains the rest, so that the server never blocks on a full pipe); the URL it listens on.
pub(crate) fn wait_for_listening(child: &mut Child) -> anyhow::Result<String> {
    use std::io::BufRead as _;
    let stdout = child.stdout.take().context("server output")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut told = false;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if !told && let Some(url) = line.strip_prefix("listening on ") {
                told = true;
                let _ = tx.send(url.trim().to_string());
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(url) => Ok(url),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            bail!("the server did not start within 60 s")
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            bail!("the server exited before listening")
        }
    }
}
