//! High availability (issue 16): three real `identity-server` processes on one PostgreSQL behind a
//! real HAProxy (TCP mode, round robin, health checks on `/hc`), servers SIGKILLed and restarted one
//! after another while two agents deliver, PostgreSQL stopped and started mid-test.
//!
//! Needs PostgreSQL's server binaries and `haproxy` (Debian packages, installed by `.ci/run`); without
//! them the test prints SKIPPED and why.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ids_devpki::KeyKind;
use serde_json::{Value, json};

use crate::client_keys::{agent_key, signer, thumbprint, xml_with};
use crate::pg::TestPostgres;
use crate::support::*;

/// A real HAProxy in TCP mode in front of `backends`, checking each with `GET /hc` over TLS.
pub struct Haproxy {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Haproxy {
    /// Starts HAProxy on `port`, or prints SKIPPED (naming `test`) without it.
    pub fn start_at(test: &str, port: u16, backends: &[u16]) -> Option<Haproxy> {
        let found = Command::new("haproxy")
            .arg("-v")
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            eprintln!(
                "SKIPPED {test}: `haproxy` not found; install Debian's `haproxy` package (.ci/run does)"
            );
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let servers: String = backends
            .iter()
            .enumerate()
            .map(|(i, p)| format!("  server s{i} 127.0.0.1:{p}\n"))
            .collect();
        // TCP mode: TLS goes through to the servers (clients see the servers' certificate, and mutual
        // TLS keeps working). A connection to a dead server is retried on another (redispatch).
        let config = format!(
            "global\n  maxconn 4000\n\
             defaults\n  mode tcp\n  timeout connect 1s\n  timeout client 120s\n  timeout server 120s\n  retries 3\n  option redispatch\n\
             frontend ids\n  bind 127.0.0.1:{port}\n  default_backend servers\n\
             backend servers\n  balance roundrobin\n  option httpchk GET /hc\n  http-check expect status 200\n\
             \x20 default-server check check-ssl verify none inter 300ms fall 1 rise 1\n{servers}"
        );
        let cfg = dir.path().join("haproxy.cfg");
        std::fs::write(&cfg, config).expect("haproxy.cfg");
        let check = Command::new("haproxy")
            .args(["-c", "-q", "-f"])
            .arg(&cfg)
            .output()
            .expect("haproxy -c");
        assert!(
            check.status.success(),
            "haproxy -c: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let child = Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("haproxy.log")).expect("log"))
            .spawn()
            .expect("haproxy");
        wait_for("HAProxy to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Some(Haproxy { child, _dir: dir })
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Three server folders ("machines") with the same keys, XML and EncryptionCertificate, on one
/// database, each with its own listen port; the issuer is the load balancer's address.
pub struct Cluster {
    pub servers: Vec<Deployment>,
    pub ports: Vec<u16>,
    processes: Vec<Option<Child>>,
    /// Standard error of each server process, appended across restarts.
    pub logs: Vec<PathBuf>,
}

impl Cluster {
    pub fn new(pg: &TestPostgres, db: &str, lb_port: u16, n: usize, xml: &str) -> Cluster {
        let first = Deployment::new();
        project_pfx(first.path(), "server-encryption", KeyKind::Rsa2048);
        let mut servers = Vec::new();
        let mut ports = Vec::new();
        let mut logs = Vec::new();
        for _ in 0..n {
            let mut d = Deployment::new();
            std::fs::copy(
                first.path().join("server-encryption.pfx"),
                d.path().join("server-encryption.pfx"),
            )
            .expect("copy the encryption certificate");
            let port = free_port();
            d.set("Urls", json!(format!("https://127.0.0.1:{port}")))
                .set("ApplicationUri", json!(format!("https://127.0.0.1:{lb_port}")))
                .set(
                    "EncryptionCertificate",
                    json!({ "File": "server-encryption.pfx", "Password": PASSWORD, "EncryptFile": true }),
                )
                .set(
                    "Store",
                    json!({ "Provider": "PostgreSql", "ConnectionString": pg.socket_connection_string(db) }),
                )
                .set("IdentityServer:FailedAuthenticationsPerMinute", json!(12));
            d.write();
            d.write_xml("clients.xml", xml);
            logs.push(d.path().join("server.log"));
            servers.push(d);
            ports.push(port);
        }
        Cluster {
            servers,
            ports,
            processes: (0..n).map(|_| None).collect(),
            logs,
        }
    }

    /// Starts server `i` (`identity-server serve`) and waits until it answers `/hc`.
    pub fn start(&mut self, i: usize) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.logs[i])
            .expect("log");
        let child = Command::new(binary("identity-server"))
            .args(["serve", "--config-dir"])
            .arg(self.servers[i].path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn server");
        self.processes[i] = Some(child);
        let port = self.ports[i];
        wait_for("the server to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    /// SIGKILLs server `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.processes[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn base(&self, i: usize) -> String {
        format!("https://127.0.0.1:{}", self.ports[i])
    }

    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.logs[i]).unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.processes.len() {
            self.kill(i);
        }
    }
}

fn client(ca: &Path) -> reqwest::Client {
    https_client_builder(ca)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// Status, body and `Retry-After` of a token request (status 0: no answer).
async fn token_status(
    http: &reqwest::Client,
    base: &str,
    form: &[(&str, &str)],
) -> (u16, Value, Option<String>) {
    match http
        .post(format!("{base}/connect/token"))
        .form(form)
        .send()
        .await
    {
        Ok(r) => {
            let status = r.status().as_u16();
            let retry = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            (status, r.json().await.unwrap_or(Value::Null), retry)
        }
        Err(_) => (0, Value::Null, None),
    }
}

/// A fresh private_key_jwt token request of `Poller2` to `base`: its status.
async fn assertion_status(
    http: &reqwest::Client,
    s: &ids_jose::AssertionSigner,
    endpoint: &str,
    base: &str,
) -> (u16, Option<String>) {
    let assertion = s.sign("Poller2", endpoint, unix_now()).expect("sign");
    let form = [
        ("grant_type", "client_credentials"),
        ("client_assertion_type", ids_jose::assertion::ASSERTION_TYPE),
        ("client_assertion", assertion.as_str()),
    ];
    let (status, _, retry) = token_status(http, base, &form).await;
    (status, retry)
}

const SECRET_FORM: [(&str, &str); 3] = [
    ("grant_type", "client_credentials"),
    ("client_id", "Job"),
    ("client_secret", JOB_SECRET),
];

/// The whole scenario of the issue, in one test (the cluster takes seconds to set up).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_behind_haproxy_share_one_postgresql_and_survive_kills() {
    let Some(pg) = TestPostgres::start("three_servers_behind_haproxy") else {
        return;
    };
    pg.create_database("ids");
    // The load balancer's port is chosen first: it is every server's issuer.
    let lb_port = free_port();
    let keys_dir = tempfile::tempdir().expect("tempdir");
    let (key, public) = agent_key(keys_dir.path(), "poller2");
    let tp = thumbprint(keys_dir.path(), &public);
    let xml = xml_with(&format!(
        r#"<OpenIdClient Identifier="Poller2" Thumbprints="{tp}" Profile="Administrator" />"#
    ));
    let mut cluster = Cluster::new(&pg, "ids", lb_port, 3, &xml);
    for i in 0..3 {
        cluster.start(i);
    }
    let Some(lb) = Haproxy::start_at("three_servers_behind_haproxy", lb_port, &cluster.ports)
    else {
        return;
    };
    let lb_base = format!("https://127.0.0.1:{lb_port}");
    let http = client(&cluster.servers[0].path().join("ca.crt"));

    // 1. Tokens through the load balancer, from every server in turn.
    for _ in 0..6 {
        assert_eq!(token_status(&http, &lb_base, &SECRET_FORM).await.0, 200);
    }

    // 2. A private_key_jwt assertion accepted by one server is refused by the others.
    let s = signer(&key);
    let endpoint = format!("{lb_base}/connect/token");
    let assertion = s.sign("Poller2", &endpoint, unix_now()).expect("sign");
    let form = [
        ("grant_type", "client_credentials"),
        ("client_assertion_type", ids_jose::assertion::ASSERTION_TYPE),
        ("client_assertion", assertion.as_str()),
    ];
    assert_eq!(token_status(&http, &cluster.base(0), &form).await.0, 200);
    for i in [1, 2] {
        let (status, body, _) = token_status(&http, &cluster.base(i), &form).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client")),
            "server {i}: {body}"
        );
    }

    // 3. Failed authentications spread over the three servers: the budget (12 a minute) is one
    // budget, not three.
    let wrong = [
        ("grant_type", "client_credentials"),
        ("client_id", "Job"),
        ("client_secret", "wrong"),
    ];
    let mut refused = 0;
    let mut limited_at = None;
    for n in 0..30 {
        let (status, _, _) = token_status(&http, &cluster.base(n % 3), &wrong).await;
        match status {
            401 => refused += 1,
            429 => {
                limited_at = Some(n);
                break;
            }
            other => panic!("attempt {n}: status {other}"),
        }
    }
    assert!(
        limited_at.is_some() && refused <= 13,
        "429 after {refused} refusals over three servers (budget 12)"
    );

    // 4. Two agents deliver 30 files (0 B to 50 MiB) through the load balancer while the servers are
    // SIGKILLed and restarted one after another.
    let sizes: Vec<usize> = (0..30)
        .map(|i| match i {
            0 => 0,
            1 => 50 * 1024 * 1024,
            2 => 20 * 1024 * 1024,
            3 => 8 * 1024 * 1024,
            i => (i * i * 7919) % 300_000,
        })
        .collect();
    let agents: Vec<AgentDeployment> = (0..2)
        .map(|a| {
            let mut agent = AgentDeployment::new(&lb_base);
            project_pfx(agent.path(), "agent-encryption", KeyKind::EcP256);
            agent
                .set(
                    "EncryptionCertificate",
                    json!({ "File": "agent-encryption.pfx", "EncryptFile": true }),
                )
                .set(
                    "Delivery",
                    json!({ "PollIntervalSeconds": 1, "SettleSeconds": 0, "MaxRetryDelaySeconds": 1, "ShutdownGraceSeconds": 1 }),
                )
                .set_agent("OpenId:AgentIdentifier", json!(format!("Agent{a}")))
                .set_agent("EncryptionCertificate", json!({ "Password": PASSWORD }));
            agent.write();
            agent
        })
        .collect();
    let mut originals = std::collections::BTreeMap::new();
    for (i, size) in sizes.iter().enumerate() {
        let agent = &agents[i % 2];
        let name = format!("file-{i:02}.bin");
        let plain = varied_bytes(*size, i as u8);
        drop_encrypted(agent.path(), &name, &plain);
        originals.insert(name, plain);
    }
    let mut running: Vec<Child> = agents
        .iter()
        .map(|a| spawn_agent(a.path(), &["run"]))
        .collect();
    for round in 0..2 {
        for i in 0..3 {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            cluster.kill(i);
            tokio::time::sleep(Duration::from_millis(300 + 200 * round)).await;
            cluster.start(i);
        }
    }

    // 5. PostgreSQL stopped mid-test: store-bound requests get 503 + Retry-After, secret clients
    // still get tokens; it comes back without restarting any server.
    pg.stop();
    let mut saw_503 = false;
    for _ in 0..50 {
        let (status, retry) = assertion_status(&http, &s, &endpoint, &lb_base).await;
        if status == 503 {
            assert!(retry.is_some(), "503 without Retry-After");
            saw_503 = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        saw_503,
        "private_key_jwt did not fail closed with PostgreSQL down"
    );
    assert_eq!(token_status(&http, &lb_base, &SECRET_FORM).await.0, 200);
    pg.ctl_start();
    let recovered = Instant::now();
    let mut ok = false;
    while recovered.elapsed() < Duration::from_secs(30) {
        // Every server must be back: each is asked directly.
        let mut all = true;
        for i in 0..3 {
            all &= assertion_status(&http, &s, &endpoint, &cluster.base(i))
                .await
                .0
                == 200;
        }
        if all {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(ok, "the servers did not recover after PostgreSQL returned");

    // Every file ends up delivered exactly once, and exports equal to the original.
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let sent: usize = agents
            .iter()
            .map(|a| count_files(&a.path().join("work/sent")))
            .sum();
        if sent == 30 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {sent} of 30 files delivered"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for child in &mut running {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
    }
    let listed = server_command(cluster.servers[1].path(), &["deliveries", "list", "--json"]);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let listed: Value = serde_json::from_slice(&listed.stdout).expect("json");
    let records = listed["deliveries"].as_array().cloned().unwrap_or_default();
    assert_eq!(records.len(), 30, "{records:?}");
    for (name, plain) in &originals {
        let r: Vec<&Value> = records
            .iter()
            .filter(|r| r["name"] == name.as_str())
            .collect();
        assert_eq!(r.len(), 1, "{name} stored exactly once");
        let id = r[0]["id"].as_str().expect("id");
        let client = r[0]["client_id"].as_str().expect("client");
        let out = server_command(
            cluster.servers[2].path(),
            &["deliveries", "export", id, "--client", client, "--stdout"],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout == *plain, "{name} exports equal to the original");
    }
    // Each server logged the database going away once, however many requests it refused.
    for i in 0..3 {
        let log = cluster.log(i);
        let downs = log.matches("is unavailable:").count();
        assert!(
            downs <= 2,
            "server {i} logged the outage {downs} times:\n{log}"
        );
    }
    drop(lb);
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| d.flatten().filter(|e| e.path().is_file()).count())
        .unwrap_or(0)
}

/// Encrypts `plain` with `agent encrypt` and moves it into the agent's outbox as `name.enc`.
fn drop_encrypted(agent_dir: &Path, name: &str, plain: &[u8]) {
    let stage = agent_dir.join("stage");
    let outbox = agent_dir.join("work/outbox");
    std::fs::create_dir_all(&stage).expect("mkdir");
    std::fs::create_dir_all(&outbox).expect("mkdir");
    let file = stage.join(name);
    std::fs::write(&file, plain).expect("write");
    let out = agent(
        agent_dir,
        &["encrypt", file.to_str().expect("utf-8"), "--force"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    std::fs::remove_file(&file).expect("rm plaintext");
    std::fs::rename(
        stage.join(format!("{name}.enc")),
        outbox.join(format!("{name}.enc")),
    )
    .expect("move");
}

fn server_command(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(binary("identity-server"))
        .args(args)
        .arg("--config-dir")
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run identity-server")
}
