//! Operations (issue 17): Prometheus metrics scraped by a real Prometheus, the alert rules checked by
//! promtool, the audit trail of a scripted session, the health endpoints and command, JSON logs.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::deliveries::{Pair, server_command, terminate};
use crate::support::*;

fn block_on<T>(work: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(work)
}

/// A blocking GET with `client`: status and body.
fn get_with(client: &reqwest::Client, url: &str) -> (u16, String) {
    block_on(async {
        let r = client
            .get(url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .expect("GET");
        (r.status().as_u16(), r.text().await.expect("body"))
    })
}

/// A blocking HTTP GET (plain HTTP, loopback): status and body.
fn http_get(url: &str) -> (u16, String) {
    get_with(&reqwest::Client::new(), url)
}

/// A blocking HTTPS GET on a [`Pair`]'s server: status and body.
fn https_get(pair: &Pair, path: &str) -> (u16, String) {
    get_with(&https(pair), &format!("{}{path}", base(pair)))
}

/// The HTTPS client of a [`Pair`]'s server (its CA).
fn https(pair: &Pair) -> reqwest::Client {
    https_client(&pair.server.path().join("ca.crt"))
}

fn base(pair: &Pair) -> String {
    format!("https://127.0.0.1:{}", pair.port)
}

/// A token with `secret` for `client`: the status and the token (when issued).
fn token(pair: &Pair, client: &str, secret: &str) -> (u16, Option<String>) {
    let http = https(pair);
    block_on(async {
        let r = http
            .post(format!("{}/connect/token", base(pair)))
            .basic_auth(client, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .expect("token request");
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        (status, body["access_token"].as_str().map(str::to_string))
    })
}

fn metric_value(text: &str, line_start: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Metrics on their own listener: the server counts tokens, failures, requests; certificate expiry
/// for every role; the agent's `run` counts its deliveries; a real Prometheus scrapes both and
/// answers `ids_tokens_issued_total` through its HTTP API.
#[test]
fn prometheus_scrapes_the_server_and_an_agent() {
    let mut pair = Pair::new();
    let server_metrics = free_port();
    let agent_metrics = free_port();
    pair.server.set(
        "Metrics",
        json!({ "Urls": format!("http://127.0.0.1:{server_metrics}") }),
    );
    pair.server.write();
    pair.agent.set(
        "Metrics",
        json!({ "Urls": format!("http://127.0.0.1:{agent_metrics}") }),
    );
    pair.agent.write();
    pair.start_server();

    for _ in 0..3 {
        assert_eq!(token(&pair, "Job", JOB_SECRET).0, 200);
    }
    assert_eq!(token(&pair, "Job", "wrong-secret-1").0, 401);
    assert_eq!(token(&pair, "Nobody", "x").0, 401);

    let (status, text) = http_get(&format!("http://127.0.0.1:{server_metrics}/metrics"));
    assert_eq!(status, 200, "{text}");
    for expected in [
        r#"ids_tokens_issued_total{client="Job",method="client_secret_basic"} 3"#,
        r#"ids_client_authentication_failures_total{reason="wrong_secret"} 1"#,
        r#"ids_client_authentication_failures_total{reason="unknown_client"} 1"#,
        r#"ids_http_requests_total{route="/connect/token",status="200"} 3"#,
        r#"ids_http_requests_total{route="/connect/token",status="401"} 2"#,
        r#"ids_secret_cache_lookups_total{result="hit"} 2"#,
        r#"ids_build_info{version=""#,
        r#"ids_store_up 1"#,
        r#"ids_access_control_clients "#,
        r#"ids_deliveries_total{result="failed"} 0"#,
        r#"ids_certificate_expiry_timestamp_seconds{role="signing",subject="#,
        r#"ids_certificate_expiry_timestamp_seconds{role="tls",subject="#,
        r#"ids_certificate_expiry_timestamp_seconds{role="encryption",subject="#,
        "ids_http_request_duration_seconds_bucket{",
        "ids_secret_hash_wait_seconds_count ",
        "ids_replay_cache_entries ",
    ] {
        assert!(text.contains(expected), "missing {expected} in:\n{text}");
    }
    assert!(
        metric_value(&text, "ids_access_control_clients ").is_some_and(|v| v >= 1.0),
        "{text}"
    );
    // Anything else is one bounded label value, whatever a client sends.
    assert_eq!(
        https_get(&pair, &format!("/no/such/path/{}", "x".repeat(40))).0,
        404
    );
    let (_, text) = http_get(&format!("http://127.0.0.1:{server_metrics}/metrics"));
    assert!(
        text.contains(r#"ids_http_requests_total{route="other",status="404"} 1"#),
        "{text}"
    );
    assert!(!text.contains("no/such/path"), "{text}");
    // Only /metrics.
    assert_eq!(
        http_get(&format!("http://127.0.0.1:{server_metrics}/")).0,
        404
    );

    // The agent's service delivers one file and counts it.
    pair.drop_encrypted("one.txt", b"metrics test content");
    let mut run = spawn_agent(pair.agent.path(), &["run"]);
    let agent_url = format!("http://127.0.0.1:{agent_metrics}/metrics");
    let mut agent_text = String::new();
    wait_for("the agent to deliver and count it", || {
        agent_text = std::net::TcpStream::connect(("127.0.0.1", agent_metrics))
            .ok()
            .map(|_| http_get(&agent_url).1)
            .unwrap_or_default();
        agent_text.contains(r#"ids_agent_deliveries_total{result="delivered"} 1"#)
    });
    for expected in [
        r#"ids_agent_deliveries_total{result="retried"} 0"#,
        "ids_agent_outbox_files 0",
        r#"ids_agent_certificate_expiry_timestamp_seconds{role="encryption",subject="#,
        r#"ids_agent_certificate_expiry_timestamp_seconds{role="tls_trusted",subject="#,
        r#"ids_agent_build_info{version=""#,
    ] {
        assert!(
            agent_text.contains(expected),
            "missing {expected} in:\n{agent_text}"
        );
    }
    assert!(
        metric_value(&agent_text, "ids_agent_last_token_timestamp_seconds ")
            .is_some_and(|t| t > 1.7e9),
        "{agent_text}"
    );
    assert!(
        metric_value(&agent_text, "ids_agent_last_delivery_timestamp_seconds ")
            .is_some_and(|t| t > 1.7e9),
        "{agent_text}"
    );
    let (_, text) = http_get(&format!("http://127.0.0.1:{server_metrics}/metrics"));
    assert!(
        text.contains(r#"ids_deliveries_total{result="stored"} 1"#),
        "{text}"
    );

    // A real Prometheus scrapes both.
    match Prometheus::start(&[
        ("identity-server", server_metrics),
        ("ids-agent", agent_metrics),
    ]) {
        None => eprintln!(
            "SKIPPED the Prometheus part of prometheus_scrapes_the_server_and_an_agent: no `prometheus` binary (Debian package prometheus)"
        ),
        Some(prometheus) => {
            // 3 tokens from the test, 1 from the agent's run.
            let value = prometheus.wait_for_value("sum(ids_tokens_issued_total)", 4.0);
            assert_eq!(value, 4.0);
            let up = prometheus.wait_for_value(r#"up{job="ids-agent"}"#, 1.0);
            assert_eq!(up, 1.0);
            let delivered =
                prometheus.wait_for_value(r#"ids_agent_deliveries_total{result="delivered"}"#, 1.0);
            assert_eq!(delivered, 1.0);
        }
    }
    assert_eq!(terminate(&mut run), 0);
    assert_eq!(pair.stop_server(), 0);
}

/// A throwaway Prometheus on a loopback port, scraping every second.
struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(targets: &[(&str, u16)]) -> Option<Prometheus> {
        let binary = find_binary("prometheus")?;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = String::from(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n",
        );
        for (job, port) in targets {
            config.push_str(&format!(
                "  - job_name: {job}\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
            ));
        }
        std::fs::write(dir.path().join("prometheus.yml"), config).expect("config");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log");
        let child = Command::new(binary)
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn prometheus");
        Some(Prometheus {
            child,
            port,
            _dir: dir,
        })
    }

    /// Polls `query` (an instant vector of one sample) until it equals `expected` (30 s at most);
    /// the last value seen.
    fn wait_for_value(&self, query: &str, expected: f64) -> f64 {
        let url = format!(
            "http://127.0.0.1:{}/api/v1/query?query={}",
            self.port,
            percent_encode(query)
        );
        let mut last = f64::NAN;
        for _ in 0..120 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                let (status, body) = http_get(&url);
                if status == 200 {
                    let v: Value = serde_json::from_str(&body).expect("json");
                    if let Some(value) = v["data"]["result"][0]["value"][1]
                        .as_str()
                        .and_then(|s| s.parse::<f64>().ok())
                    {
                        last = value;
                        if value == expected {
                            return value;
                        }
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        let log =
            std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default();
        panic!("Prometheus: {query} is {last}, expected {expected}\n{log}");
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `name` on the `PATH` (or in /usr/bin, /usr/sbin).
fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

/// The alert rules under docs/monitoring load in Prometheus's own checker, and their unit tests
/// (each alert firing, and not firing, on synthetic series) pass.
#[test]
fn alert_rules_pass_promtool() {
    let Some(promtool) = find_binary("promtool") else {
        eprintln!(
            "SKIPPED alert_rules_pass_promtool: no `promtool` binary (Debian package prometheus)"
        );
        return;
    };
    let folder = repo().join("docs/monitoring");
    for args in [
        vec!["check", "rules", "alerts.yml"],
        vec!["test", "rules", "alerts.test.yml"],
        vec!["check", "config", "prometheus.yml"],
    ] {
        let out = Command::new(&promtool)
            .args(&args)
            .current_dir(&folder)
            .output()
            .expect("promtool");
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let dashboard: Value = serde_json::from_slice(
        &std::fs::read(folder.join("grafana-dashboard.json")).expect("dashboard"),
    )
    .expect("the dashboard is JSON");
    assert!(dashboard["panels"].as_array().is_some_and(|p| p.len() > 10));
}

/// Every audit file line, parsed.
fn audit_events(folder: &Path) -> Vec<Value> {
    let mut events = Vec::new();
    for entry in std::fs::read_dir(folder).expect("audit folder").flatten() {
        let text = std::fs::read_to_string(entry.path()).expect("read");
        for line in text.lines() {
            events.push(serde_json::from_str(line).expect("each line is JSON"));
        }
    }
    events
}

/// The audit trail after a scripted session holds exactly its events, counted by type, in files of
/// mode 0600, and none of the secrets, passwords or tokens of the session.
#[test]
fn audit_trail_records_the_session_and_no_secret() {
    let mut pair = Pair::new();
    pair.server
        .set("Audit", json!({ "Path": "audit" }))
        .set("Deliveries", json!({ "ReadProfiles": ["Administrator"] }));
    pair.server.write();
    pair.start_server();

    let mut tokens = Vec::new();
    for _ in 0..3 {
        let (status, t) = token(&pair, "Job", JOB_SECRET);
        assert_eq!(status, 200);
        tokens.push(t.expect("token"));
    }
    let wrong = ["wrong-secret-aaaa-1111", "wrong-secret-bbbb-2222"];
    for w in wrong {
        assert_eq!(token(&pair, "Job", w).0, 401);
    }
    assert_eq!(token(&pair, "Nobody", "nobody-secret-cccc").0, 401);
    // One delivery, then the same again (the agent finds it stored and sends nothing): each push
    // gets its own token.
    pair.drop_encrypted("report.txt", b"audit test content");
    let queued = pair.outbox().join("report.txt.enc");
    let kept = pair.agent.path().join("report.txt.enc");
    std::fs::copy(&queued, &kept).expect("copy");
    for _ in 0..2 {
        let out = agent(pair.agent.path(), &["push", kept.to_str().expect("utf-8")]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    let records = pair.records();
    assert_eq!(records.len(), 1);
    let id = records[0]["id"].as_str().expect("id").to_string();
    // Read back over HTTP with a token, and an upload without one (refused).
    let http = https(&pair);
    let (read, refused) = block_on(async {
        let read = http
            .get(format!("{}/api/deliveries/{id}/content", base(&pair)))
            .bearer_auth(&tokens[0])
            .send()
            .await
            .expect("read");
        let read = (read.status().as_u16(), read.bytes().await.expect("body"));
        let refused = http
            .put(format!(
                "{}/api/deliveries/00000000000000000000000000000001?name=x.txt",
                base(&pair)
            ))
            .body("x")
            .send()
            .await
            .expect("put");
        (read, refused.status().as_u16())
    });
    assert_eq!(read.0, 200);
    assert_eq!(&read.1[..], b"audit test content");
    assert_eq!(refused, 401);
    let exported = pair.server.path().join("exported.txt");
    let out = server_command(
        pair.server.path(),
        &[
            "deliveries",
            "export",
            &id,
            "-o",
            exported.to_str().expect("utf-8"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(pair.stop_server(), 0);

    let folder = pair.server.path().join("audit");
    let files: Vec<PathBuf> = std::fs::read_dir(&folder)
        .expect("audit folder")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(!files.is_empty());
    #[cfg(unix)]
    for f in &files {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(f).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", f.display());
        assert!(
            f.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("audit-") && n.ends_with(".jsonl")),
            "{}",
            f.display()
        );
    }
    let events = audit_events(&folder);
    let count = |t: &str| events.iter().filter(|e| e["type"] == t).count();
    assert_eq!(count("token_issued"), 5, "{events:#?}");
    assert_eq!(count("client_authentication_failed"), 3, "{events:#?}");
    assert_eq!(count("delivery_stored"), 1, "{events:#?}");
    assert_eq!(count("delivery_read"), 1, "{events:#?}");
    assert_eq!(count("delivery_refused"), 1, "{events:#?}");
    assert_eq!(count("delivery_exported"), 1, "{events:#?}");
    assert_eq!(events.len(), 12, "{events:#?}");

    let issued: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "token_issued")
        .collect();
    for e in &issued {
        assert_eq!(e["client"], "Job");
        assert_eq!(e["peer"], "127.0.0.1");
        assert!(e["jti"].as_str().is_some_and(|j| j.len() >= 16), "{e}");
        assert!(e["kid"].as_str().is_some_and(|k| !k.is_empty()), "{e}");
        assert!(e["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{e}");
    }
    let reasons: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "client_authentication_failed")
        .filter_map(|e| e["reason"].as_str())
        .collect();
    assert_eq!(reasons, ["wrong_secret", "wrong_secret", "unknown_client"]);
    let stored = events
        .iter()
        .find(|e| e["type"] == "delivery_stored")
        .expect("stored");
    assert_eq!(stored["delivery"], id.as_str());
    assert_eq!(stored["name"], "report.txt");
    let refused = events
        .iter()
        .find(|e| e["type"] == "delivery_refused")
        .expect("refused");
    assert_eq!(refused["client"], "-");
    assert_eq!(refused["status"], 401);
    let exported = events
        .iter()
        .find(|e| e["type"] == "delivery_exported")
        .expect("exported");
    assert_eq!(exported["owner"], "Job");
    assert!(
        exported["operator"]
            .as_str()
            .is_some_and(|o| o.contains("uid ")),
        "{exported}"
    );

    // Nothing secret: the client secret, the wrong ones, the PFX password, the tokens and their
    // signatures.
    let all: String = files
        .iter()
        .map(|f| std::fs::read_to_string(f).expect("read"))
        .collect();
    let mut secrets: Vec<String> = vec![
        JOB_SECRET.into(),
        PASSWORD.into(),
        "nobody-secret-cccc".into(),
    ];
    secrets.extend(wrong.iter().map(|w| w.to_string()));
    for t in &tokens {
        secrets.push(t.clone());
        secrets.push(t.rsplit('.').next().expect("signature").to_string());
    }
    for s in &secrets {
        assert!(
            !all.contains(s.as_str()),
            "the audit trail holds a secret or token"
        );
    }
}

/// `/health/live` and `/health/ready` with each check, `identity-server health` exiting 0, then a
/// server whose delivery storage has less free space than it must keep: 503, `not_ready`, the check
/// named, and `identity-server health` exiting 1.
#[test]
fn health_endpoints_and_command() {
    let mut pair = Pair::new();
    pair.start_server();
    assert_eq!(https_get(&pair, "/health/live").0, 200);
    let (status, text) = https_get(&pair, "/health/ready");
    assert_eq!(status, 200, "{text}");
    let body: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(body["status"], "ready", "{body}");
    let names: Vec<&str> = body["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["signing_key", "access_control", "store", "delivery_storage"],
        "{body}"
    );
    assert!(
        body["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .all(|c| c["status"] == "ok"),
        "{body}"
    );
    // The vendor's path is unchanged.
    assert_eq!(https_get(&pair, "/hc").1, "Healthy");

    let out = server_command(pair.server.path(), &["health"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).expect("the report is printed");
    assert_eq!(printed["status"], "ready");
    let out = server_command(
        pair.server.path(),
        &[
            "health",
            "--url",
            &base(&pair),
            "--ca-file",
            pair.server.path().join("ca.crt").to_str().expect("utf-8"),
            "--quiet",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
    assert_eq!(pair.stop_server(), 0);

    // Nothing listens: 1, and why.
    let out = server_command(pair.server.path(), &["health"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot connect"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Storage short of the space it must keep free: not ready.
    pair.server.set(
        "Deliveries",
        json!({ "MinFreeSpaceMiB": 1_000_000_000_000u64 }),
    );
    pair.server.write();
    pair.start_server();
    let (status, text) = https_get(&pair, "/health/ready");
    assert_eq!(status, 503, "{text}");
    let body: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(body["status"], "not_ready", "{body}");
    let storage = body["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == "delivery_storage")
        .cloned()
        .expect("storage check");
    assert_eq!(storage["status"], "failed", "{body}");
    assert!(
        storage["detail"]
            .as_str()
            .is_some_and(|d| d.contains("MinFreeSpaceMiB")),
        "{body}"
    );
    let out = server_command(pair.server.path(), &["health"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not ready (HTTP 503)"));
    assert_eq!(pair.stop_server(), 0);
}

/// `Logging:Format` `Json`: every line the server writes on standard error is a JSON object.
#[test]
fn json_logs() {
    let mut pair = Pair::new();
    pair.server.set(
        "Logging",
        json!({ "Format": "Json", "LogLevel": { "Default": "Information" } }),
    );
    pair.server.write();
    pair.start_server();
    assert_eq!(token(&pair, "Job", "wrong\nsecret").0, 401);
    assert_eq!(pair.stop_server(), 0);
    let log = std::fs::read_to_string(pair.server_log()).expect("log");
    let lines: Vec<&str> = log.lines().collect();
    assert!(lines.len() > 3, "{log}");
    let mut ready = false;
    for line in &lines {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
        ready |= v["message"] == "identity server ready";
    }
    assert!(ready, "{log}");
    assert!(log.contains("client authentication failed"), "{log}");
}

/// The subject line of the certificate a new TLS handshake shows (`openssl s_client`).
fn served_certificate(port: u16) -> String {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            "localhost",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("openssl s_client");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.lines()
        .find(|l| l.starts_with("subject="))
        .unwrap_or_default()
        .to_string()
}

/// Verifies `token` with the JWKS the server publishes now (fetched with `client`).
async fn verify_now(client: &reqwest::Client, base: &str, token: &str) -> Result<Value, String> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
    let jwks: jsonwebtoken::jwk::JwkSet = client
        .get(format!("{base}/.well-known/openid-configuration/jwks"))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let kid = header.kid.clone().ok_or("no kid")?;
    let jwk = jwks
        .find(&kid)
        .ok_or(format!("kid {kid} not in the JWKS"))?;
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_issuer(&[base]);
    validation.set_audience(&[base]);
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .map(|d| d.claims)
        .map_err(|e| e.to_string())
}

/// Replaces `target` by `source`'s bytes the way operators and tools do (write aside, rename).
fn replace_file(target: &Path, bytes: &[u8]) {
    let aside = target.with_extension("new");
    std::fs::write(&aside, bytes).expect("write");
    std::fs::rename(&aside, target).expect("rename");
}

/// The signing and TLS certificates replaced under a running server: new handshakes show the new TLS
/// certificate, new tokens are signed with the new key, tokens signed before still verify through
/// the JWKS (the previous key stays published), and a corrupt replacement keeps the key in force and
/// is reported in the log, the audit trail and the metrics.
#[tokio::test(flavor = "multi_thread")]
async fn certificates_reload_under_a_running_server() {
    let metrics_port = free_port();
    let mut d = Deployment::new();
    std::fs::copy(
        fixtures().join("other-ca.crt"),
        d.path().join("other-ca.crt"),
    )
    .expect("copy");
    d.set("AccessControl", json!({ "ReloadIntervalSeconds": 1 }))
        .set("Audit", json!({ "Path": "audit" }))
        .set(
            "Metrics",
            json!({ "Urls": format!("http://127.0.0.1:{metrics_port}") }),
        );
    let server = d.start().await;
    let ca = std::fs::read(d.path().join("ca.crt")).expect("ca");
    let other_ca = std::fs::read(d.path().join("other-ca.crt")).expect("other ca");
    let client = reqwest::Client::builder()
        .tls_certs_only([
            reqwest::Certificate::from_pem(&ca).expect("pem"),
            reqwest::Certificate::from_pem(&other_ca).expect("pem"),
        ])
        .build()
        .expect("client");
    let token = |client: reqwest::Client, base: String| async move {
        let r = client
            .post(format!("{base}/connect/token"))
            .basic_auth("Job", Some(JOB_SECRET))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .expect("token");
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.expect("json");
        v["access_token"].as_str().expect("token").to_string()
    };
    let port = server.addr.port();
    let before = token(client.clone(), server.base.clone()).await;
    let kid_before = jsonwebtoken::decode_header(&before)
        .expect("h")
        .kid
        .expect("kid");
    assert_eq!(kids(&client, &server.base).await.len(), 1);
    assert!(
        served_certificate(port).contains("ids-test-tls"),
        "{}",
        served_certificate(port)
    );

    // New signing key (EC) and new TLS certificate, written over the configured paths.
    replace_file(
        &d.path().join("signing-rsa.pfx"),
        &std::fs::read(fixtures().join("signing-ec.pfx")).expect("ec"),
    );
    replace_file(
        &d.path().join("tls.pfx"),
        &std::fs::read(fixtures().join("other-tls.pfx")).expect("other tls"),
    );
    let mut reloaded = false;
    for _ in 0..100 {
        if kids(&client, &server.base).await.len() == 2
            && served_certificate(port).contains("ids-test-other-tls")
        {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        reloaded,
        "the certificates were not reloaded: {}",
        served_certificate(port)
    );
    let after = token(client.clone(), server.base.clone()).await;
    let header = jsonwebtoken::decode_header(&after).expect("h");
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
    assert_ne!(header.kid.as_deref(), Some(kid_before.as_str()));
    // Both verify through the JWKS: the previous key is still published.
    verify_now(&client, &server.base, &before)
        .await
        .expect("the token signed before verifies");
    verify_now(&client, &server.base, &after)
        .await
        .expect("the new token verifies");

    // A corrupt replacement: the key in force stays, and it is reported.
    replace_file(&d.path().join("signing-rsa.pfx"), b"not a PFX file");
    let text = wait_metric(
        metrics_port,
        r#"ids_certificate_reloads_total{role="signing",result="failed"} 1"#,
    )
    .await;
    assert!(
        text.contains(r#"ids_certificate_reloads_total{role="signing",result="reloaded"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"ids_certificate_reloads_total{role="tls",result="reloaded"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"role="tls",subject="CN=ids-test-other-tls"#),
        "{text}"
    );
    let still = token(client.clone(), server.base.clone()).await;
    assert_eq!(
        jsonwebtoken::decode_header(&still).expect("h").kid,
        header.kid,
        "the key in force stays when its replacement does not load"
    );
    verify_now(&client, &server.base, &still)
        .await
        .expect("verifies");
    server.stop().await;

    let events = audit_events(&d.path().join("audit"));
    let reloads: Vec<(String, String)> = events
        .iter()
        .filter(|e| e["type"] == "certificate_reloaded")
        .map(|e| {
            (
                e["role"].as_str().unwrap_or_default().to_string(),
                e["result"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert!(
        reloads.contains(&("signing".into(), "reloaded".into())),
        "{reloads:?}"
    );
    assert!(
        reloads.contains(&("tls".into(), "reloaded".into())),
        "{reloads:?}"
    );
    assert!(
        reloads.contains(&("signing".into(), "failed".into())),
        "{reloads:?}"
    );
    let failed = events
        .iter()
        .find(|e| e["type"] == "certificate_reloaded" && e["result"] == "failed")
        .expect("failed");
    assert!(
        failed["error"]
            .as_str()
            .is_some_and(|e| e.contains("X509KeyFilePath")),
        "{failed}"
    );
    assert!(
        !serde_json::to_string(&events)
            .expect("json")
            .contains(PASSWORD)
    );
}

/// `openssl pkcs12` extraction of a PFX's leaf certificate and key as PEM (`-nodes`).
fn pfx_to_pem(dir: &Path, pfx: &Path, password: &str, out: &str) -> PathBuf {
    let target = dir.join(out);
    let status = Command::new("openssl")
        .args(["pkcs12", "-in"])
        .arg(pfx)
        .args(["-nodes", "-passin", &format!("pass:{password}"), "-out"])
        .arg(&target)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success(), "openssl pkcs12 {}", pfx.display());
    target
}

/// A throwaway nginx (Debian package), in the foreground, with its own prefix and logs.
struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
}

impl Nginx {
    fn start(http_block: &str, port: u16) -> Option<Nginx> {
        let binary = find_binary("nginx")?;
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().display().to_string();
        let user = if ids_tools::runs_as_root() {
            "user root;\n"
        } else {
            ""
        };
        let config = format!(
            "{user}worker_processes 1;\npid {p}/nginx.pid;\nerror_log {p}/error.log info;\nevents {{ worker_connections 64; }}\nhttp {{\n  access_log {p}/access.log;\n  client_body_temp_path {p}/body;\n  proxy_temp_path {p}/proxy;\n  fastcgi_temp_path {p}/fastcgi;\n  uwsgi_temp_path {p}/uwsgi;\n  scgi_temp_path {p}/scgi;\n{http_block}\n}}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), config).expect("config");
        let child = Command::new(binary)
            .args(["-p", &p, "-e", &format!("{p}/error.log"), "-c"])
            .arg(dir.path().join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx");
        let mut nginx = Nginx { child, dir };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(nginx);
            }
            if let Ok(Some(status)) = nginx.child.try_wait() {
                panic!("nginx exited ({status}): {}", nginx.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("nginx did not listen: {}", nginx.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Behind a real nginx that ends TLS, verifies client certificates and forwards them in
/// `X-SSL-Client-Cert` (`$ssl_client_escaped_cert`) with `X-Forwarded-For`: a client with its
/// certificate gets a token bound to it through nginx, and the audit trail shows the client's address
/// (not nginx's). The same headers sent directly by a client that is not a known proxy are ignored
/// (and counted): no token, and its own address in the audit trail.
#[tokio::test(flavor = "multi_thread")]
async fn behind_nginx_a_forwarded_client_certificate_gets_a_bound_token() {
    if find_binary("nginx").is_none() {
        eprintln!(
            "SKIPPED behind_nginx_a_forwarded_client_certificate_gets_a_bound_token: no `nginx` binary (Debian package nginx)"
        );
        return;
    }
    let metrics_port = free_port();
    let mut d = Deployment::new();
    let pki = crate::client_keys::pki(d.path());
    let pki_dir = pki.ca.parent().expect("dir").to_path_buf();
    d.write_xml(
        "clients.xml",
        &crate::client_keys::xml_with(
            r#"<OpenIdClient Identifier="Poller" Profile="Administrator" />"#,
        ),
    );
    d.set(
        "IdentityServer.ClientCertificateAuthorities",
        json!([pki.ca.display().to_string()]),
    )
    .set(
        "ForwardedHeaders",
        json!({ "KnownProxies": ["127.0.0.1"], "ClientCertificateHeader": "X-SSL-Client-Cert" }),
    )
    .set("Audit", json!({ "Path": "audit" }))
    .set(
        "Metrics",
        json!({ "Urls": format!("http://127.0.0.1:{metrics_port}") }),
    );
    let server = d.start().await;

    // nginx: TLS with the private CA's server certificate, client certificates verified against
    // the same CA, upstream over HTTPS to the server (verified with the fixtures' CA).
    let server_pem = pfx_to_pem(
        &pki_dir,
        &pki.server_pfx,
        crate::keytool::PFX_PASSWORD,
        "server.pem",
    );
    let nginx_port = free_port();
    let block = format!(
        "  server {{\n    listen 127.0.0.1:{nginx_port} ssl;\n    ssl_certificate {pem};\n    ssl_certificate_key {pem};\n    ssl_client_certificate {ca};\n    ssl_verify_client optional;\n    location / {{\n      proxy_pass https://127.0.0.1:{upstream};\n      proxy_ssl_trusted_certificate {fixtures_ca};\n      proxy_ssl_verify on;\n      proxy_ssl_name localhost;\n      proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;\n      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n    }}\n  }}",
        pem = server_pem.display(),
        ca = pki.ca.display(),
        upstream = server.addr.port(),
        fixtures_ca = d.path().join("ca.crt").display(),
    );
    let nginx = Nginx::start(&block, nginx_port).expect("nginx");

    // The client, from 127.0.0.3, with its certificate.
    let poller_pem = pfx_to_pem(
        &pki_dir,
        &pki_dir.join("Poller.pfx"),
        crate::keytool::PFX_PASSWORD,
        "Poller.pem",
    );
    let ca_pem = reqwest::Certificate::from_pem(&std::fs::read(&pki.ca).expect("ca")).expect("pem");
    let with_certificate = reqwest::Client::builder()
        .tls_certs_only([ca_pem.clone()])
        .identity(
            reqwest::Identity::from_pem(&std::fs::read(&poller_pem).expect("pem"))
                .expect("identity"),
        )
        .local_address(IpAddr::from([127, 0, 0, 3]))
        .build()
        .expect("client");
    // The client also writes forwarding headers of its own: nginx passes `Forwarded` through and
    // appends to `X-Forwarded-For`; neither may give it the address it chooses.
    let r = with_certificate
        .post(format!("https://localhost:{nginx_port}/connect/token"))
        .header("Forwarded", "for=198.51.100.9")
        .header("X-Forwarded-For", "198.51.100.10")
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "Poller"),
        ])
        .send()
        .await
        .expect("through nginx");
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 200, "{body} {}", nginx.log());
    let token = body["access_token"].as_str().expect("token");
    let poller = ids_pki::Certificate::from_file(&pki_dir.join("Poller.crt")).expect("crt");
    let payload = token.split('.').nth(1).expect("payload");
    let claims: Value =
        serde_json::from_slice(&ids_pki::b64::url_decode(payload).expect("b64")).expect("json");
    assert_eq!(claims["sub"], "Poller");
    assert_eq!(
        claims["cnf"]["x5t#S256"],
        json!(poller.x5t_s256()),
        "bound to the forwarded certificate"
    );

    // Through nginx without a certificate: refused.
    let without = reqwest::Client::builder()
        .tls_certs_only([ca_pem])
        .local_address(IpAddr::from([127, 0, 0, 3]))
        .build()
        .expect("client");
    let r = without
        .post(format!("https://localhost:{nginx_port}/connect/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "Poller"),
        ])
        .send()
        .await
        .expect("through nginx");
    assert_eq!(r.status(), 401);

    // Directly, from 127.0.0.2 (not a known proxy), with the same headers nginx sets: ignored.
    let escaped: String = percent_encoding::utf8_percent_encode(
        &std::fs::read_to_string(pki_dir.join("Poller.crt")).expect("crt"),
        percent_encoding::NON_ALPHANUMERIC,
    )
    .to_string();
    let direct = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(
            &std::fs::read(d.path().join("ca.crt")).expect("ca"),
        )
        .expect("pem")])
        .local_address(IpAddr::from([127, 0, 0, 2]))
        .build()
        .expect("client");
    let r = direct
        .post(format!("{}/connect/token", server.base))
        .header("X-SSL-Client-Cert", escaped)
        .header("X-Forwarded-For", "198.51.100.77")
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "Poller"),
        ])
        .send()
        .await
        .expect("direct");
    assert_eq!(
        r.status(),
        401,
        "a client certificate header from a non-proxy is ignored"
    );
    let text = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        text.contains(r#"ids_forwarded_headers_ignored_total{header="client-certificate"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"ids_forwarded_headers_ignored_total{header="x-forwarded-for"} 1"#),
        "{text}"
    );
    server.stop().await;
    drop(nginx);

    let events = audit_events(&d.path().join("audit"));
    let issued = events
        .iter()
        .find(|e| e["type"] == "token_issued")
        .expect("issued");
    assert_eq!(
        issued["peer"], "127.0.0.3",
        "the client's address, from X-Forwarded-For"
    );
    assert_eq!(issued["method"], "tls_client_auth");
    assert_eq!(issued["cnf_x5t_s256"], json!(poller.x5t_s256()));
    let failures: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "client_authentication_failed")
        .filter_map(|e| e["peer"].as_str())
        .collect();
    assert_eq!(failures, ["127.0.0.3", "127.0.0.2"], "{events:#?}");
}

/// `agent run` on SIGHUP (`systemctl reload ids-agent`): the settings are read again and the service
/// goes on with them (a wrong client secret fixed: the waiting file is delivered); settings that do
/// not load are reported and the ones in force stay (the service keeps delivering).
#[test]
fn agent_run_reloads_its_settings_on_sighup() {
    let mut pair = Pair::new();
    let metrics_port = free_port();
    pair.agent
        .set("Metrics", json!({ "Urls": format!("http://127.0.0.1:{metrics_port}") }))
        .set("Delivery", json!({ "PollIntervalSeconds": 1, "SettleSeconds": 0, "MaxRetryDelaySeconds": 1, "ShutdownGraceSeconds": 1 }))
        .set("Http", json!({ "Retries": 0, "RetryDelayMilliseconds": 20, "TimeoutSeconds": 10 }));
    pair.agent.set_agent(
        "OpenId",
        json!({ "AgentIdentifier": "Local", "OpenIdClients": { "Job": "not-the-secret" }, "DefaultOpenIdClient": "Job" }),
    );
    pair.agent.write();
    pair.start_server();
    pair.drop_encrypted("first.txt", b"first file");
    let mut run = spawn_agent(pair.agent.path(), &["run"]);
    let url = format!("http://127.0.0.1:{metrics_port}/metrics");
    let value = |text: &str, line: &str| metric_value(text, line).unwrap_or(0.0);
    let mut text = String::new();
    wait_for("the agent to fail with the wrong secret", || {
        text = std::net::TcpStream::connect(("127.0.0.1", metrics_port))
            .ok()
            .map(|_| http_get(&url).1)
            .unwrap_or_default();
        value(&text, r#"ids_agent_deliveries_total{result="retried"} "#) >= 1.0
    });
    assert_eq!(
        value(&text, r#"ids_agent_deliveries_total{result="delivered"} "#),
        0.0
    );

    // Fixed, then SIGHUP.
    pair.agent.set_agent(
        "OpenId",
        json!({ "AgentIdentifier": "Local", "OpenIdClients": { "Job": JOB_SECRET }, "DefaultOpenIdClient": "Job" }),
    );
    pair.agent.write();
    let hup = |child: &Child| {
        let status = Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    };
    hup(&run);
    wait_for("the file to be delivered after the reload", || {
        value(
            &http_get(&url).1,
            r#"ids_agent_deliveries_total{result="delivered"} "#,
        ) == 1.0
    });

    // Settings that do not load: reported, the ones in force stay. (The next file is encrypted
    // first: `agent encrypt` reads the settings too.)
    let stage = pair.agent.path().join("stage2");
    std::fs::create_dir_all(&stage).expect("mkdir");
    let plain = stage.join("second.txt");
    std::fs::write(&plain, b"second file").expect("write");
    let out = agent(
        pair.agent.path(),
        &[
            "encrypt",
            plain.to_str().expect("utf-8"),
            "-o",
            stage.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    std::fs::write(
        pair.agent.path().join("appsettings.agent.json"),
        "{ not json",
    )
    .expect("write");
    hup(&run);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        run.try_wait().expect("wait").is_none(),
        "the agent stopped on a bad reload"
    );
    std::fs::rename(
        stage.join("second.txt.enc"),
        pair.outbox().join("second.txt.enc"),
    )
    .expect("move");
    wait_for(
        "the next file to be delivered with the settings in force",
        || {
            value(
                &http_get(&url).1,
                r#"ids_agent_deliveries_total{result="delivered"} "#,
            ) == 2.0
        },
    );
    assert_eq!(pair.records().len(), 2);
    assert_eq!(terminate(&mut run), 0);
    assert_eq!(pair.stop_server(), 0);
}

/// The JWKS's `kid`s, as the server publishes them now.
async fn kids(client: &reqwest::Client, base: &str) -> Vec<String> {
    let v: Value = client
        .get(format!("{base}/.well-known/openid-configuration/jwks"))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    v["keys"]
        .as_array()
        .map(|keys| {
            keys.iter()
                .filter_map(|k| k["kid"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A token for `Job` (client_secret_post) and its header's `kid`.
async fn job_token(server: &Server) -> (String, Option<String>) {
    let r = server
        .token_post(&[
            ("grant_type", "client_credentials"),
            ("client_id", "Job"),
            ("client_secret", JOB_SECRET),
        ])
        .await;
    let v: Value = r.json().await.expect("json");
    let t = v["access_token"].as_str().expect("token").to_string();
    let kid = jsonwebtoken::decode_header(&t).expect("h").kid;
    (t, kid)
}

/// Polls the metrics until `line` is there (20 s at most); the text.
async fn wait_metric(port: u16, line: &str) -> String {
    let url = format!("http://127.0.0.1:{port}/metrics");
    let mut text = String::new();
    for _ in 0..100 {
        text = reqwest::get(&url)
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        if text.contains(line) {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{line} never appeared:\n{text}");
}

/// The rotation procedure of docs/operations.md, by editing `appsettings.json` under a running
/// server: a certificate added to `ValidationKeys` is published without a restart, then
/// `X509KeyFilePath` pointed at the new PFX makes it the signing key; a validation certificate the
/// JWKS cannot carry (RSA-1024) is refused and reported, and the keys in force stay published.
#[tokio::test(flavor = "multi_thread")]
async fn the_rotation_procedure_works_by_editing_the_settings() {
    let metrics_port = free_port();
    let mut d = Deployment::new();
    d.set("AccessControl", json!({ "ReloadIntervalSeconds": 1 }))
        .set(
            "Metrics",
            json!({ "Urls": format!("http://127.0.0.1:{metrics_port}") }),
        );
    let server = d.start().await;
    let client = server.client.clone();
    let before = kids(&client, &server.base).await;
    assert_eq!(before.len(), 1);

    // A validation certificate the verifier refuses (RSA-1024): reported, nothing published.
    d.set("IdentityServer.ValidationKeys", json!(["rsa1024.pfx"]));
    d.write();
    wait_metric(
        metrics_port,
        r#"ids_certificate_reloads_total{role="validation",result="failed"} 1"#,
    )
    .await;
    assert_eq!(kids(&client, &server.base).await, before);

    // Step 2: pre-publish the next key through ValidationKeys.
    d.set("IdentityServer.ValidationKeys", json!(["signing-ec.crt"]));
    d.write();
    let mut published = Vec::new();
    for _ in 0..100 {
        published = kids(&client, &server.base).await;
        if published.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(published.len(), 2, "{published:?}");
    let next = published
        .iter()
        .find(|k| !before.contains(k))
        .expect("the next key")
        .clone();
    // Still signed with the key in force.
    let (t, kid) = job_token(&server).await;
    assert_eq!(kid.as_deref(), Some(before[0].as_str()));

    // Step 4: switch the signing key in the settings.
    d.set("IdentityServer.X509KeyFilePath", json!("signing-ec.pfx"));
    d.write();
    let mut switched = None;
    for _ in 0..100 {
        let (t, kid) = job_token(&server).await;
        if kid.as_deref() == Some(next.as_str()) {
            switched = Some(t);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let switched = switched.expect("the new key signs after the settings changed");
    // Both keys are still published (the previous one for a token lifetime), and both tokens verify.
    let now = kids(&client, &server.base).await;
    assert!(now.contains(&before[0]) && now.contains(&next), "{now:?}");
    verify_now(&client, &server.base, &t)
        .await
        .expect("the token of the previous key");
    verify_now(&client, &server.base, &switched)
        .await
        .expect("the new token");
    server.stop().await;
}

/// When the TLS certificate is the signing PFX itself, a replacement the signing reload refuses
/// (expired) does not go live for TLS either: handshakes keep the certificate in force.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_shared_pfx_does_not_replace_the_tls_certificate() {
    let metrics_port = free_port();
    let mut d = Deployment::new();
    // No Kestrel section: TLS is served with the signing PFX, here the fixtures' TLS certificate
    // (its key signs tokens too), so that the test's client accepts the handshake.
    std::fs::copy(d.path().join("tls.pfx"), d.path().join("shared.pfx")).expect("copy");
    d.settings = json!({
        "Urls": "https://127.0.0.1:0",
        "IdentityServer": { "X509KeyFilePath": "shared.pfx", "X509KeyFilePassword": PASSWORD },
        "AccessControl": { "ReloadIntervalSeconds": 1 },
        "Metrics": { "Urls": format!("http://127.0.0.1:{metrics_port}") },
    });
    let server = d.start().await;
    let port = server.addr.port();
    assert!(
        served_certificate(port).contains("ids-test-tls"),
        "{}",
        served_certificate(port)
    );
    replace_file(
        &d.path().join("shared.pfx"),
        &std::fs::read(fixtures().join("expired.pfx")).expect("expired"),
    );
    wait_metric(
        metrics_port,
        r#"ids_certificate_reloads_total{role="signing",result="failed"} 1"#,
    )
    .await;
    let text = wait_metric(
        metrics_port,
        r#"ids_certificate_reloads_total{role="tls",result="failed"} 1"#,
    )
    .await;
    assert!(
        text.contains(r#"ids_certificate_reloads_total{role="tls",result="reloaded"} 0"#),
        "{text}"
    );
    let served = served_certificate(port);
    assert!(
        served.contains("ids-test-tls") && !served.contains("expired"),
        "{served}"
    );
    // Tokens are still issued over the same TLS.
    let r = server
        .token_post(&[
            ("grant_type", "client_credentials"),
            ("client_id", "Job"),
            ("client_secret", JOB_SECRET),
        ])
        .await;
    assert_eq!(r.status(), 200);
    server.stop().await;
}
