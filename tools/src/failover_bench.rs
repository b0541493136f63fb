//! `ids-bench failover`: how long clients go without a token when one of three servers behind HAProxy
//! is SIGKILLed, what their failed requests look like, and how soon the restarted server gets traffic
//! again (issue 16, "Fail-over" benchmark). The figures size the client-side advice in
//! `docs/high-availability.md`: how long an agent must keep retrying, and which errors it will see.
//!
//! 1. One development PKI (a CA, an EC P-256 TLS certificate for `127.0.0.1`, an RSA-2048 signing PFX)
//!    and one demo client with an argon2id secret, written to three folders (the three "machines"),
//!    each with `ApplicationUri` = the load balancer's URL, so that all share one issuer. Store: each its
//!    own embedded data folder (the default: the token path of a secret client does not touch the store),
//!    or `--store-connection-string` for one PostgreSQL shared by all three.
//! 2. Three `identity-server serve` processes on three loopback ports and a real `haproxy` in front of
//!    them, configured as the end-to-end test `ha.rs` configures it: TCP mode, round robin, `option
//!    httpchk GET /hc` over TLS, `retries 3`, `option redispatch`, plus an admin socket from which the
//!    servers' state (`UP`/`DOWN`) and session counts are read.
//! 3. `--workers` concurrent client loops of `client_secret_basic` token requests through HAProxy, in two
//!    variants: keep-alive connections (reqwest's default pool) and a new connection per request.
//! 4. For each variant, each server in turn is SIGKILLed at a known instant; per worker, the time from the
//!    SIGKILL to its next successful token, and every failed request classified (connection reset,
//!    closed, refused, timeout, HTTP 5xx...). Then the server is restarted and timed until it accepts
//!    connections, answers `/hc`, is `UP` in HAProxy and HAProxy has sent it a client connection.
//!
//! Without `haproxy` on the PATH the benchmark says so and exits 0 (like the e2e test, it is optional).

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use ids_devpki::{Ca, KeyKind, PfxProfile, to_pfx};
use ids_secret::SecretHash;

use crate::Killed;

const PASSWORD: &str = "bench-password";
const CLIENT: &str = "Demo";
const SERVERS: usize = 3;
/// Per-request timeout of the load generator.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for a worker's next token.
const GIVE_UP: Duration = Duration::from_secs(30);
/// Longest wait for a restarted server to get a connection from HAProxy (with keep-alive clients it
/// may get none: their connections stay on the servers that kept running).
const RESTART_WAIT: Duration = Duration::from_secs(5);

/// What to run. Not `Debug`: the connection string may hold a password.
#[derive(Clone)]
pub struct Failover {
    /// Concurrent client loops.
    pub workers: usize,
    /// Pause of each worker between two requests.
    pub interval: Duration,
    /// Time observed after each SIGKILL (at least; until every worker has had a token again).
    pub observe: Duration,
    /// HAProxy health-check interval, failures to mark DOWN and successes to mark UP.
    pub check_inter: Duration,
    pub fall: u32,
    pub rise: u32,
    /// `Store:ConnectionString` of a PostgreSQL shared by the three servers; `None`: embedded stores.
    pub store_connection_string: Option<String>,
}

impl std::fmt::Debug for Failover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Failover")
            .field("workers", &self.workers)
            .field("interval", &self.interval)
            .field("observe", &self.observe)
            .field("check_inter", &self.check_inter)
            .field("fall", &self.fall)
            .field("rise", &self.rise)
            .field(
                "store_connection_string",
                &self.store_connection_string.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Runs the benchmark in a temporary folder under `dir` with the `identity-server` binary `server_bin`.
pub fn run(opts: &Failover, dir: &Path, server_bin: &Path) -> anyhow::Result<()> {
    if !server_bin.exists() {
        bail!(
            "{} not found: build it first (cargo build --release -p identity-server -p ids-tools)",
            server_bin.display()
        );
    }
    let haproxy = Command::new("haproxy").arg("-v").output();
    let version = match haproxy {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
        _ => {
            println!(
                "SKIPPED ids-bench failover: `haproxy` not found on the PATH; install Debian's `haproxy` package"
            );
            return Ok(());
        }
    };
    let work = tempfile::tempdir_in(dir).context("temporary folder")?;
    let lb_port = free_port()?;
    let ports = (0..SERVERS)
        .map(|_| free_port())
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (ca_pem, secret) = write_folders(work.path(), lb_port, opts)?;
    let mut cluster = Cluster {
        bin: server_bin.to_path_buf(),
        folders: (0..SERVERS)
            .map(|i| work.path().join(format!("server{i}")))
            .collect(),
        ports: ports.clone(),
        children: (0..SERVERS).map(|_| None).collect(),
    };
    let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes())?;
    let socket = work.path().join("haproxy.sock");
    let _lb = start_haproxy(work.path(), lb_port, &ports, &socket, opts)?;

    println!("haproxy: {version}");
    println!(
        "haproxy config: mode tcp, balance roundrobin, option httpchk GET /hc (check-ssl), inter {} ms fall {} rise {}, timeout connect 1s, retries 3, option redispatch",
        opts.check_inter.as_millis(),
        opts.fall,
        opts.rise
    );
    println!(
        "servers: {} x `identity-server serve` on 127.0.0.1:{} behind 127.0.0.1:{lb_port}; store: {}",
        SERVERS,
        ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(","),
        match opts.store_connection_string {
            Some(_) => "one PostgreSQL shared by the three (Store:Provider PostgreSql)",
            None =>
                "embedded, one per server (the token path of a secret client does not touch the store)",
        }
    );
    println!(
        "load: {} workers, client_secret_basic token requests, {} ms pause between requests, {} s timeout each",
        opts.workers,
        opts.interval.as_millis(),
        REQUEST_TIMEOUT.as_secs()
    );

    // Two threads: the client loops keep running while the controller spawns or reaps a process.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let direct = reqwest::Client::builder()
            .tls_certs_only([ca.clone()])
            .timeout(Duration::from_secs(2))
            .build()?;
        for i in 0..SERVERS {
            cluster.start(i)?;
        }
        for (i, port) in ports.iter().enumerate() {
            let started = Instant::now();
            while !hc(&direct, *port).await {
                if started.elapsed() > Duration::from_secs(60) {
                    bail!(
                        "server {i} did not answer /hc within 60 s; see {}",
                        cluster.log(i).display()
                    );
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let started = Instant::now();
        while (0..SERVERS).any(|i| !stat(&socket, i).is_ok_and(|s| s.up)) {
            if started.elapsed() > Duration::from_secs(30) {
                bail!("HAProxy did not mark the three servers UP within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let endpoint = format!("https://127.0.0.1:{lb_port}/connect/token");
        let mut rows = Vec::new();
        for (variant, keep_alive) in [("keep-alive", true), ("new connection", false)] {
            let mut builder = reqwest::Client::builder()
                .tls_certs_only([ca.clone()])
                .timeout(REQUEST_TIMEOUT);
            if !keep_alive {
                builder = builder.pool_max_idle_per_host(0);
            }
            let load = Load::start(builder.build()?, &endpoint, &secret, opts);
            // Warm-up: every server verifies the secret once (argon2id) and caches it.
            tokio::time::sleep(Duration::from_secs(2)).await;
            for victim in 0..SERVERS {
                load.take();
                rows.push(
                    sample(variant, victim, &mut cluster, &load, &direct, &socket, opts).await?,
                );
            }
            load.stop().await;
        }
        print_table(&rows);
        Ok(())
    })
}

/// One SIGKILL and restart of server `victim` under load.
async fn sample(
    variant: &'static str,
    victim: usize,
    cluster: &mut Cluster,
    load: &Load,
    direct: &reqwest::Client,
    socket: &Path,
    opts: &Failover,
) -> anyhow::Result<Row> {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut child = cluster.children[victim]
        .take()
        .context("the server is not running")?;
    let killed_at = Instant::now();
    // SIGKILL now (`Child::kill` is SIGKILL on Unix); reap it off the runtime's threads.
    child.0.kill().context("SIGKILL the server")?;
    tokio::task::spawn_blocking(move || drop(child));
    // Wait for every worker's next token, and at least `observe`.
    let mut next = vec![None; opts.workers];
    loop {
        for e in load.take() {
            if e.outcome.is_ok() && e.end > killed_at && next[e.worker].is_none() {
                next[e.worker] = Some(e.end - killed_at);
            }
            load.keep(e);
        }
        let waited = killed_at.elapsed();
        if (next.iter().all(Option::is_some) && waited >= opts.observe) || waited > GIVE_UP {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after_kill = load.take();
    let down_stat = stat(socket, victim)?;
    let mut failures: BTreeMap<String, u64> = BTreeMap::new();
    let mut requests = 0u64;
    for e in after_kill.iter().filter(|e| e.end > killed_at) {
        requests += 1;
        if let Err(kind) = &e.outcome {
            *failures.entry(kind.clone()).or_default() += 1;
        }
    }

    let restarted_at = Instant::now();
    cluster.start(victim)?;
    let (mut listening, mut answers_hc, mut up, mut traffic) = (None, None, None, None);
    while traffic.is_none() && restarted_at.elapsed() < RESTART_WAIT {
        let t = restarted_at.elapsed();
        if listening.is_none()
            && std::net::TcpStream::connect(("127.0.0.1", cluster.ports[victim])).is_ok()
        {
            listening = Some(t);
        }
        if listening.is_some() && answers_hc.is_none() && hc(direct, cluster.ports[victim]).await {
            answers_hc = Some(restarted_at.elapsed());
        }
        let s = stat(socket, victim)?;
        if up.is_none() && s.up {
            up = Some(restarted_at.elapsed());
        }
        if s.sessions > down_stat.sessions {
            traffic = Some(restarted_at.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let restart_failures = load.take().iter().filter(|e| e.outcome.is_err()).count() as u64;
    let mut times: Vec<Duration> = next.iter().map(|d| d.unwrap_or(GIVE_UP)).collect();
    times.sort();
    Ok(Row {
        variant,
        victim,
        median: times[times.len() / 2],
        max: times[times.len() - 1],
        all_recovered: next.iter().all(Option::is_some),
        requests,
        failures,
        answers_hc,
        up,
        traffic,
        restart_failures,
    })
}

/// One line of the result table.
struct Row {
    variant: &'static str,
    victim: usize,
    median: Duration,
    max: Duration,
    all_recovered: bool,
    requests: u64,
    failures: BTreeMap<String, u64>,
    answers_hc: Option<Duration>,
    up: Option<Duration>,
    traffic: Option<Duration>,
    restart_failures: u64,
}

fn print_table(rows: &[Row]) {
    let ms = |d: Option<Duration>| match d {
        Some(d) => format!("{:.0} ms", d.as_secs_f64() * 1000.0),
        None => format!("none in {} s", RESTART_WAIT.as_secs()),
    };
    println!();
    println!(
        "| connections | killed | next token after SIGKILL, median / max over workers | failed / requests after the kill | restarted: answers /hc | UP in HAProxy | first connection from HAProxy | failed during restart |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in rows {
        let failed: u64 = r.failures.values().sum();
        let kinds = if r.failures.is_empty() {
            String::new()
        } else {
            format!(
                " ({})",
                r.failures
                    .iter()
                    .map(|(k, v)| format!("{v} {k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        println!(
            "| {} | s{} | {} / {} ms{} | {failed} / {}{kinds} | {} | {} | {} | {} |",
            r.variant,
            r.victim,
            r.median.as_millis(),
            r.max.as_millis(),
            if r.all_recovered {
                ""
            } else {
                " (a worker never recovered)"
            },
            r.requests,
            ms(r.answers_hc),
            ms(r.up),
            ms(r.traffic),
            r.restart_failures
        );
    }
}

/// A request's end and outcome (`Err`: what failed).
#[derive(Debug)]
struct Event {
    worker: usize,
    end: Instant,
    outcome: Result<(), String>,
}

/// The client loops and the events they record.
struct Load {
    stop: Arc<AtomicBool>,
    events: Arc<Mutex<Vec<Event>>>,
    /// Events taken back by `keep` (read in `sample` and kept for its totals).
    kept: Mutex<Vec<Event>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(client: reqwest::Client, endpoint: &str, secret: &str, opts: &Failover) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let events = Arc::new(Mutex::new(Vec::new()));
        let tasks = (0..opts.workers)
            .map(|worker| {
                let (client, endpoint, secret) =
                    (client.clone(), endpoint.to_string(), secret.to_string());
                let (stop, events, interval) = (stop.clone(), events.clone(), opts.interval);
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let outcome = token(&client, &endpoint, &secret).await;
                        let event = Event {
                            worker,
                            end: Instant::now(),
                            outcome,
                        };
                        if let Ok(mut e) = events.lock() {
                            e.push(event);
                        }
                        tokio::time::sleep(interval).await;
                    }
                })
            })
            .collect();
        Load {
            stop,
            events,
            kept: Mutex::new(Vec::new()),
            tasks,
        }
    }

    /// The events recorded since the last `take` (the kept ones first); not kept any more.
    fn take(&self) -> Vec<Event> {
        let mut out = self
            .kept
            .lock()
            .map(|mut k| std::mem::take(&mut *k))
            .unwrap_or_default();
        if let Ok(mut e) = self.events.lock() {
            out.append(&mut e);
        }
        out
    }

    /// Puts an event back for the next `take`.
    fn keep(&self, e: Event) {
        if let Ok(mut k) = self.kept.lock() {
            k.push(e);
        }
    }

    async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// One `client_secret_basic` token request; `Err` names how it failed.
async fn token(client: &reqwest::Client, endpoint: &str, secret: &str) -> Result<(), String> {
    let response = client
        .post(endpoint)
        .basic_auth(CLIENT, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .map_err(|e| classify(&e))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("HTTP {}", status.as_u16()));
    }
    response.bytes().await.map(|_| ()).map_err(|e| classify(&e))
}

/// What a failed request met, from the error and its sources.
fn classify(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    use std::io::ErrorKind;
    if e.is_timeout() {
        return "timeout".into();
    }
    let mut innermost = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            match io.kind() {
                ErrorKind::ConnectionReset => return "connection reset".into(),
                ErrorKind::ConnectionRefused => return "connection refused".into(),
                ErrorKind::ConnectionAborted => return "connection aborted".into(),
                ErrorKind::BrokenPipe => return "broken pipe".into(),
                ErrorKind::UnexpectedEof => return "connection closed (EOF)".into(),
                ErrorKind::TimedOut => return "timeout".into(),
                _ => {}
            }
        }
        innermost = s.to_string();
        source = s.source();
    }
    if innermost.contains("connection closed before message completed") {
        "connection closed before the answer".into()
    } else if e.is_connect() {
        format!("connect: {innermost}")
    } else {
        innermost
    }
}

/// `GET /hc` straight to a server (not through HAProxy) answers 200.
async fn hc(client: &reqwest::Client, port: u16) -> bool {
    client
        .get(format!("https://127.0.0.1:{port}/hc"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

/// The three server processes.
struct Cluster {
    bin: PathBuf,
    folders: Vec<PathBuf>,
    ports: Vec<u16>,
    children: Vec<Option<Killed>>,
}

impl Cluster {
    fn log(&self, i: usize) -> PathBuf {
        self.folders[i].join("server.log")
    }

    /// Starts server `i` (`identity-server serve`), its standard error appended to its log.
    fn start(&mut self, i: usize) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log(i))
            .with_context(|| format!("open {}", self.log(i).display()))?;
        let child = Command::new(&self.bin)
            .args(["serve", "--urls"])
            .arg(format!("https://127.0.0.1:{}", self.ports[i]))
            .arg("--config-dir")
            .arg(&self.folders[i])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("start {}", self.bin.display()))?;
        self.children[i] = Some(Killed(child));
        Ok(())
    }
}

/// Writes the three server folders; returns the CA certificate (PEM) and the demo client's secret.
fn write_folders(dir: &Path, lb_port: u16, opts: &Failover) -> anyhow::Result<(String, String)> {
    let ca = Ca::new("failover bench CA", 30)?;
    let signing = ca.issue_signing("failover bench signing", KeyKind::Rsa2048, 30)?;
    let tls = ca.issue_server(&["localhost", "127.0.0.1"], KeyKind::EcP256, 30)?;
    let tls_pfx = to_pfx(&tls, &[], "tls", PASSWORD, PfxProfile::Modern)?;
    let signing_pfx = to_pfx(&signing, &[], "signing", PASSWORD, PfxProfile::Modern)?;
    let secret = ids_secret::generate_secret()?;
    let xml = format!(
        "<ConfigurationFile>\n  <OpenIdClient Identifier=\"{CLIENT}\" HashedSecret=\"{}\" />\n</ConfigurationFile>\n",
        SecretHash::argon2id(&secret)?.to_attribute()
    );
    let mut settings = serde_json::json!({
        "ApplicationUri": format!("https://127.0.0.1:{lb_port}"),
        // All the load comes from one address (HAProxy's, in TCP mode the client's own): lift the
        // per-address failure budget so that it never answers 429 here.
        "IdentityServer": {
            "X509KeyFilePath": "signing.pfx",
            "X509KeyFilePassword": PASSWORD,
            "FailedAuthenticationsPerMinute": 100000,
        },
        "Kestrel": { "Certificates": { "Default": { "Path": "tls.pfx", "Password": PASSWORD } } },
    });
    if let Some(cs) = &opts.store_connection_string {
        settings["Store"] = serde_json::json!({ "Provider": "PostgreSql", "ConnectionString": cs });
    }
    for i in 0..SERVERS {
        let folder = dir.join(format!("server{i}"));
        std::fs::create_dir_all(folder.join("Conf"))
            .with_context(|| format!("create {}", folder.display()))?;
        std::fs::write(folder.join("tls.pfx"), &tls_pfx)?;
        std::fs::write(folder.join("signing.pfx"), &signing_pfx)?;
        std::fs::write(folder.join("appsettings.json"), settings.to_string())?;
        std::fs::write(folder.join("Conf/clients.xml"), &xml)?;
    }
    Ok((ca.cert.cert_pem.clone(), secret.expose().to_string()))
}

/// HAProxy as the e2e test `ha.rs` configures it, plus an admin socket.
fn start_haproxy(
    dir: &Path,
    port: u16,
    backends: &[u16],
    socket: &Path,
    opts: &Failover,
) -> anyhow::Result<Killed> {
    let servers: String = backends
        .iter()
        .enumerate()
        .map(|(i, p)| format!("  server s{i} 127.0.0.1:{p}\n"))
        .collect();
    let config = format!(
        "global\n  maxconn 4000\n  stats socket {} mode 600 level admin\n\
         defaults\n  mode tcp\n  timeout connect 1s\n  timeout client 120s\n  timeout server 120s\n  retries 3\n  option redispatch\n\
         frontend ids\n  bind 127.0.0.1:{port}\n  default_backend servers\n\
         backend servers\n  balance roundrobin\n  option httpchk GET /hc\n  http-check expect status 200\n\
         \x20 default-server check check-ssl verify none inter {}ms fall {} rise {}\n{servers}",
        socket.display(),
        opts.check_inter.as_millis().max(1),
        opts.fall.max(1),
        opts.rise.max(1)
    );
    let cfg = dir.join("haproxy.cfg");
    std::fs::write(&cfg, config).with_context(|| format!("write {}", cfg.display()))?;
    let check = Command::new("haproxy")
        .args(["-c", "-q", "-f"])
        .arg(&cfg)
        .output()?;
    if !check.status.success() {
        bail!(
            "haproxy -c -f {}: {}",
            cfg.display(),
            String::from_utf8_lossy(&check.stderr)
        );
    }
    let child = Killed(
        Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("haproxy.log"))?)
            .spawn()
            .context("start haproxy")?,
    );
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() || !socket.exists() {
        if started.elapsed() > Duration::from_secs(10) {
            bail!(
                "haproxy did not listen on 127.0.0.1:{port} within 10 s; see {}",
                dir.join("haproxy.log").display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(child)
}

/// A backend server's state in HAProxy.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Stat {
    up: bool,
    /// Client connections HAProxy has sent it so far (`stot`).
    sessions: u64,
}

/// Reads server `s{i}`'s state from HAProxy's admin socket (`show stat`, CSV).
fn stat(socket: &Path, i: usize) -> anyhow::Result<Stat> {
    let mut stream = std::os::unix::net::UnixStream::connect(socket)
        .with_context(|| format!("connect to {}", socket.display()))?;
    stream.write_all(b"show stat\n")?;
    let mut csv = String::new();
    stream.read_to_string(&mut csv)?;
    let mut lines = csv.lines();
    let header: Vec<&str> = lines
        .next()
        .and_then(|h| h.strip_prefix("# "))
        .context("`show stat` without its header line")?
        .split(',')
        .collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (status, stot) = (
        col("status").context("no `status` column")?,
        col("stot").context("no `stot` column")?,
    );
    let name = format!("s{i}");
    for line in lines {
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() > status.max(stot) && fields[0] == "servers" && fields[1] == name {
            return Ok(Stat {
                up: fields[status].starts_with("UP"),
                sessions: fields[stot].parse().unwrap_or(0),
            });
        }
    }
    bail!("`show stat` has no line for servers/{name}")
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
