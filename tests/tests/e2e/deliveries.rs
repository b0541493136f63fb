//! Agent-to-server delivery as operators run it: the real `identity-server` and `agent` binaries,
//! files encrypted with the agent's certificate delivered over HTTPS and stored encrypted with the
//! server's; processes killed in the middle; every refusal with its status and nothing left behind.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ids_devpki::KeyKind;
use serde_json::{Value, json};

use crate::support::{
    AgentDeployment, Deployment, JOB_SECRET, PASSWORD, agent, binary, code, free_port,
    marked_content, project_pfx, sha256_header, spawn_agent, stderr, wait_for,
};

/// Deliveries whose digest comes after the body (issue 16).
mod single_pass;

const MARKER: &[u8] = b"PLAINTEXT-MARKER-5d1c";

/// `len` bytes that vary, with [`MARKER`] every 4 KiB (when there is room).
fn content(len: usize, seed: u8) -> Vec<u8> {
    marked_content(len, seed, MARKER)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// A server folder (encryption certificate made by the project) and an agent folder for it.
pub(crate) struct Pair {
    pub(crate) server: Deployment,
    pub(crate) agent: AgentDeployment,
    pub(crate) port: u16,
    process: Option<Child>,
}

impl Pair {
    pub(crate) fn new() -> Pair {
        let port = free_port();
        let mut server = Deployment::new();
        project_pfx(server.path(), "server-encryption", KeyKind::Rsa2048);
        server
            .set("Urls", json!(format!("https://127.0.0.1:{port}")))
            .set(
                "EncryptionCertificate",
                json!({ "File": "server-encryption.pfx", "Password": PASSWORD, "EncryptFile": true }),
            );
        server.write();
        let mut agent = AgentDeployment::new(&format!("https://127.0.0.1:{port}"));
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
            .set_agent("EncryptionCertificate", json!({ "Password": PASSWORD }));
        agent.write();
        Pair {
            server,
            agent,
            port,
            process: None,
        }
    }

    /// The server's log (standard error of every `start_server`, appended).
    pub(crate) fn server_log(&self) -> PathBuf {
        self.server.path().join("server.log")
    }

    /// Starts `identity-server serve` and waits for its health check.
    pub(crate) fn start_server(&mut self) {
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.server_log())
            .expect("server log");
        let child = Command::new(binary("identity-server"))
            .args(["serve", "--config-dir"])
            .arg(self.server.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn server");
        self.process = Some(child);
        let port = self.port;
        wait_for("the server to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    /// Stops the server with SIGTERM (a graceful stop) and returns its exit code.
    pub(crate) fn stop_server(&mut self) -> i32 {
        match self.process.take() {
            Some(mut child) => terminate(&mut child),
            None => -1,
        }
    }

    pub(crate) fn kill_server(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub(crate) fn outbox(&self) -> PathBuf {
        self.agent.path().join("work/outbox")
    }

    pub(crate) fn store(&self) -> PathBuf {
        self.server.path().join("data/deliveries")
    }

    /// Encrypts `plain` with `agent encrypt` and moves the result into the outbox as `name.enc`.
    pub(crate) fn drop_encrypted(&self, name: &str, plain: &[u8]) {
        let stage = self.agent.path().join("stage");
        std::fs::create_dir_all(&stage).expect("mkdir");
        std::fs::create_dir_all(self.outbox()).expect("mkdir");
        let file = stage.join(name);
        std::fs::write(&file, plain).expect("write");
        let out = agent(
            self.agent.path(),
            &["encrypt", file.to_str().expect("utf-8"), "--force"],
        );
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        std::fs::remove_file(&file).expect("rm plaintext");
        let encrypted = stage.join(format!("{name}.enc"));
        std::fs::rename(&encrypted, self.outbox().join(format!("{name}.enc"))).expect("move");
    }

    /// `identity-server deliveries list --json`.
    pub(crate) fn records(&self) -> Vec<Value> {
        listed(self.server.path())["deliveries"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// `identity-server deliveries export ID --stdout`.
    pub(crate) fn export(&self, id: &str) -> Vec<u8> {
        let out = server_command(
            self.server.path(),
            &["deliveries", "export", id, "--stdout"],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        self.kill_server();
    }
}

/// `identity-server deliveries list --json` on the deployment in `dir`, which must succeed.
fn listed(dir: &Path) -> Value {
    let out = server_command(dir, &["deliveries", "list", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

pub(crate) fn server_command(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut full: Vec<&str> = args.to_vec();
    let dir = dir.to_str().expect("utf-8");
    full.extend(["--config-dir", dir]);
    Command::new(binary("identity-server"))
        .args(&full)
        .stdin(Stdio::null())
        .output()
        .expect("run identity-server")
}

pub(crate) fn terminate(child: &mut Child) -> i32 {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    for _ in 0..300 {
        if let Some(s) = child.try_wait().expect("wait") {
            return s.code().unwrap_or(-1);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("the agent did not stop within 15 s of SIGTERM");
}

/// Every file under `dir`, sub-folders (each client's deliveries) included, sorted.
fn files_deep(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for f in files_in(dir) {
        if f.is_dir() {
            found.extend(files_deep(&f));
        } else {
            found.push(f);
        }
    }
    found
}

/// Every `.partial` file in the store, sub-folders included.
fn partials_deep(dir: &Path) -> Vec<PathBuf> {
    files_deep(dir)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".partial"))
        .collect()
}

fn partials(dir: &Path) -> usize {
    partials_deep(dir).len()
}

#[test]
fn an_agent_delivers_its_encrypted_files_and_the_server_keeps_them_encrypted() {
    let mut pair = Pair::new();
    pair.start_server();
    let sizes = [
        ("empty.csv", 0usize),
        ("one.txt", 1),
        ("chunk-plus-one.bin", 64 * 1024 + 1),
        ("report.csv", 3_000_000),
        ("large.bin", 101 * 1024 * 1024),
    ];
    let mut originals = Vec::new();
    for (i, (name, len)) in sizes.iter().enumerate() {
        let plain = content(*len, i as u8);
        pair.drop_encrypted(name, &plain);
        originals.push((name.to_string(), plain));
    }
    // The outbox holds only ciphertext.
    for f in files_in(&pair.outbox()) {
        let bytes = std::fs::read(&f).expect("read");
        assert!(bytes.starts_with(b"IDSENC"));
        assert!(!contains(&bytes, MARKER), "{} is plaintext", f.display());
    }

    let out = agent(pair.agent.path(), &["run", "--once"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let work = pair.agent.path().join("work");
    assert!(files_in(&work.join("outbox")).is_empty());
    assert!(files_in(&work.join("sending")).is_empty());
    assert!(files_in(&work.join("quarantine")).is_empty());
    assert_eq!(files_in(&work.join("sent")).len(), sizes.len());

    // No plaintext anywhere in the server's data folder.
    let stored = files_deep(&pair.store());
    assert_eq!(stored.len(), 2 * sizes.len(), "{stored:?}");
    for f in &stored {
        let bytes = std::fs::read(f).expect("read");
        assert!(!contains(&bytes, MARKER), "{} holds plaintext", f.display());
        if f.extension().is_some_and(|e| e == "idsenc") {
            assert!(bytes.starts_with(b"IDSENC"));
        }
    }

    // Each file exactly once, under its name without `.enc`, and exported byte for byte.
    let records = pair.records();
    assert_eq!(records.len(), sizes.len());
    for (name, plain) in &originals {
        let matching: Vec<&Value> = records.iter().filter(|r| r["name"] == *name).collect();
        assert_eq!(matching.len(), 1, "{name}: {records:?}");
        let r = matching[0];
        assert_eq!(r["size"], json!(plain.len()));
        assert_eq!(r["client_id"], "Job");
        assert_eq!(r["agent"], "Local");
        let exported = pair.export(r["id"].as_str().expect("id"));
        assert!(exported == *plain, "{name}: exported content differs");
    }

    // `export -o DIR` writes the delivered name; an existing file is refused without --force.
    let large = records
        .iter()
        .find(|r| r["name"] == "report.csv")
        .expect("report");
    let id = large["id"].as_str().expect("id");
    let dest = tempfile::tempdir().expect("tmp");
    let dest_str = dest.path().to_str().expect("utf-8");
    let out = server_command(
        pair.server.path(),
        &["deliveries", "export", id, "-o", dest_str],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::read(dest.path().join("report.csv")).expect("exported") == originals[3].1);
    let out = server_command(
        pair.server.path(),
        &["deliveries", "export", id, "-o", dest_str],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
}

#[test]
fn killed_agent_and_killed_server_mid_delivery_still_deliver_each_file_exactly_once() {
    let mut pair = Pair::new();
    pair.start_server();
    let big = content(100 * 1024 * 1024, 7);
    let small_a = content(10_000, 8);
    let small_b = content(20_000, 9);
    pair.drop_encrypted("big.bin", &big);
    pair.drop_encrypted("a.csv", &small_a);
    pair.drop_encrypted("b.csv", &small_b);
    // The big file first, so that the kills land in the middle of it.
    let old = std::time::SystemTime::now() - Duration::from_secs(60);
    let big_path = pair.outbox().join("big.bin.enc");
    std::fs::File::options()
        .write(true)
        .open(&big_path)
        .and_then(|f| f.set_modified(old))
        .expect("mtime");

    let store = pair.store();
    // 1. SIGKILL the agent while the server is receiving.
    let mut running = spawn_agent(pair.agent.path(), &["run"]);
    wait_for("a delivery in progress", || partials(&store) > 0);
    running.kill().expect("kill agent");
    running.wait().expect("wait");

    // 2. Restart it, and SIGKILL the server while it receives again.
    let mut running = spawn_agent(pair.agent.path(), &["run"]);
    wait_for("the delivery to start again", || partials(&store) > 0);
    pair.kill_server();
    std::thread::sleep(Duration::from_millis(300));
    // 3. The server comes back on the same address; the agent, retrying, completes.
    pair.start_server();
    let sent = pair.agent.path().join("work/sent");
    wait_for("three files delivered", || files_in(&sent).len() == 3);
    assert_eq!(terminate(&mut running), 0, "a clean stop exits 0");

    assert_eq!(
        partials(&store),
        0,
        "the restarted server removed the interrupted upload"
    );
    let records = pair.records();
    assert_eq!(records.len(), 3, "{records:?}");
    for (name, plain) in [("big.bin", &big), ("a.csv", &small_a), ("b.csv", &small_b)] {
        let r: Vec<&Value> = records.iter().filter(|r| r["name"] == name).collect();
        assert_eq!(r.len(), 1, "{name} stored exactly once");
        assert!(pair.export(r[0]["id"].as_str().expect("id")) == *plain);
    }

    // 4. An agent killed after the server confirmed but before it moved the file out of sending/:
    // the next run confirms the same id again, and nothing new is stored.
    let sending = pair.agent.path().join("work/sending");
    let first = files_in(&sent).into_iter().next().expect("a sent file");
    std::fs::rename(&first, sending.join(first.file_name().expect("name"))).expect("move back");
    let out = agent(pair.agent.path(), &["run", "--once"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(files_in(&sent).len(), 3);
    assert_eq!(pair.records().len(), 3);
}

#[test]
fn the_outbox_quarantines_files_that_do_not_decrypt_and_sends_the_others() {
    let mut pair = Pair::new();
    pair.start_server();
    pair.drop_encrypted("good.csv", &content(70_000, 1));
    pair.drop_encrypted("tampered.csv", &content(70_000, 2));
    let tampered = pair.outbox().join("tampered.csv.enc");
    let mut bytes = std::fs::read(&tampered).expect("read");
    let at = bytes.len() - 100;
    bytes[at] ^= 1;
    std::fs::write(&tampered, &bytes).expect("write");
    // Encrypted for a certificate the agent has no key for.
    let (_, other) = project_pfx(pair.agent.path(), "someone-else", KeyKind::Rsa2048);
    let plain = pair.agent.path().join("foreign.csv");
    std::fs::write(&plain, content(5000, 3)).expect("write");
    let out = agent(
        pair.agent.path(),
        &[
            "encrypt",
            plain.to_str().expect("utf-8"),
            "--recipient",
            other.to_str().expect("utf-8"),
            "-o",
            pair.outbox().to_str().expect("utf-8"),
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));

    let mut running = spawn_agent(pair.agent.path(), &["run"]);
    let work = pair.agent.path().join("work");
    wait_for("one sent, two quarantined", || {
        files_in(&work.join("sent")).len() == 1 && files_in(&work.join("quarantine")).len() == 4
    });
    assert_eq!(terminate(&mut running), 0);
    let reasons: Vec<String> = files_in(&work.join("quarantine"))
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".reason.txt"))
        .map(|p| std::fs::read_to_string(p).expect("reason"))
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("modified") || r.contains("tampered")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("different certificate")),
        "{reasons:?}"
    );
    let records = pair.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["name"], "good.csv");

    // A file that cannot be claimed (its name is too long once prefixed with an id) is reported and
    // left in place; the others are still delivered, and `run --once` exits 9.
    let long = "n".repeat(240);
    std::fs::write(pair.outbox().join(&long), b"x").expect("write");
    pair.drop_encrypted("after.csv", &content(100, 4));
    let out = agent(pair.agent.path(), &["run", "--once"]);
    assert_eq!(code(&out), 9, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot move it to sending/"),
        "{}",
        stderr(&out)
    );
    assert!(pair.outbox().join(&long).exists());
    assert_eq!(pair.records().len(), 2);
}

/// A token for `client` from the in-process server.
async fn token(server: &crate::support::Server, client: &str, secret: &str) -> String {
    let r = server
        .token_post(&[
            ("grant_type", "client_credentials"),
            ("client_id", client),
            ("client_secret", secret),
        ])
        .await;
    assert!(r.status().is_success(), "token for {client}");
    let v: Value = r.json().await.expect("json");
    v["access_token"].as_str().expect("token").to_string()
}

async fn put(
    server: &crate::support::Server,
    token: Option<&str>,
    id: &str,
    body: Vec<u8>,
    digest: Option<String>,
    agent_id: Option<&str>,
) -> reqwest::Response {
    let mut request = server
        .client
        .put(server.url(&format!("/api/deliveries/{id}?name=data.bin")))
        .header(
            "repr-digest",
            digest.unwrap_or_else(|| sha256_header(&body)),
        )
        .body(body);
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    if let Some(a) = agent_id {
        request = request.header("agent-identifier", a);
    }
    request.send().await.expect("PUT")
}

async fn get(server: &crate::support::Server, path: &str, token: &str) -> reqwest::Response {
    server
        .client
        .get(server.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET")
}

fn no_partial_and_count(store: &Path, committed: usize) {
    let files = files_deep(store);
    assert!(
        !files
            .iter()
            .any(|p| p.to_string_lossy().ends_with(".partial")),
        "{files:?}"
    );
    let records = files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .count();
    assert_eq!(records, committed, "{files:?}");
}

/// A server folder with a project-made delivery certificate and these `Deliveries` settings.
fn delivery_server(deliveries: Value) -> Deployment {
    let mut d = Deployment::new();
    project_pfx(d.path(), "server-encryption", KeyKind::Rsa2048);
    d.set(
        "EncryptionCertificate",
        json!({ "File": "server-encryption.pfx", "Password": PASSWORD }),
    )
    .set("Deliveries", deliveries);
    d.write();
    d
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_have_their_status_and_leave_nothing_behind() {
    let d =
        delivery_server(json!({ "MaxFileSizeMiB": 1, "QuotaMiB": 2, "ReadProfiles": ["Reader"] }));
    let xml = crate::support::default_xml().replace(
        "</ConfigurationFile>",
        "  <Agent Identifier=\"Local\" URI=\"https://agent.example\" />\n</ConfigurationFile>",
    );
    d.write_xml("clients.xml", &xml);
    let server = d.start().await;
    let store = d.path().join("data/deliveries");
    let job = token(&server, "Job", JOB_SECRET).await;
    let reader = token(&server, "Legacy", "secret").await;
    let body = content(700 * 1024, 1);
    let deliver = |id: &'static str, body: Vec<u8>| {
        put(&server, Some(job.as_str()), id, body, None, Some("Local"))
    };

    // Delivered once; the same again returns the first record; another file under that id: 409.
    let r = deliver("d-1", body.clone()).await;
    assert_eq!(r.status(), 201);
    let first: Value = r.json().await.expect("json");
    let r = deliver("d-1", body.clone()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.expect("json"), first);
    let r = deliver("d-1", content(10, 2)).await;
    assert_eq!(r.status(), 409);
    no_partial_and_count(&store, 1);

    // No token: 401 with a bare challenge; a forged or expired one: invalid_token.
    let r = put(&server, None, "d-2", body.clone(), None, Some("Local")).await;
    assert_eq!(r.status(), 401);
    let challenge = r.headers()["www-authenticate"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(
        challenge.starts_with("Bearer ") && !challenge.contains("error="),
        "{challenge}"
    );
    let mut forged = job.clone();
    let last = forged.pop().expect("char");
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let signer_file = ids_pki::pfx::CertificateFile::new(
        d.path().join("signing-ec.pfx"),
        PASSWORD.to_string(),
        "test",
    );
    let other = signer_file.open().expect("pfx");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = json!({ "iss": server.base, "aud": server.base, "sub": "Job", "client_id": "Job",
        "scope": "api", "jti": "x", "iat": now, "nbf": now, "exp": now + 600 });
    let foreign = ids_jose::TokenSigner::new(other.key, &other.certificate)
        .sign(&claims)
        .expect("sign");
    let real_file = ids_pki::pfx::CertificateFile::new(
        d.path().join("signing-rsa.pfx"),
        PASSWORD.to_string(),
        "test",
    );
    let real = real_file.open().expect("pfx");
    let mut old = claims.clone();
    old["iat"] = json!(now - 7200);
    old["nbf"] = json!(now - 7200);
    old["exp"] = json!(now - 3600);
    let expired = ids_jose::TokenSigner::new(real.key, &real.certificate)
        .sign(&old)
        .expect("sign");
    for (what, bad) in [
        ("forged", &forged),
        ("foreign key", &foreign),
        ("expired", &expired),
    ] {
        let r = put(&server, Some(bad), "d-2", body.clone(), None, Some("Local")).await;
        assert_eq!(r.status(), 401, "{what}");
        let challenge = r.headers()["www-authenticate"]
            .to_str()
            .expect("ascii")
            .to_string();
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{what}: {challenge}"
        );
    }
    let r = put(
        &server,
        Some(&expired),
        "d-2",
        body.clone(),
        None,
        Some("Local"),
    )
    .await;
    let v: Value = r.json().await.expect("json");
    assert!(
        v["error_description"]
            .as_str()
            .expect("text")
            .contains("expired"),
        "{v}"
    );

    // A profile that may not deliver: 403, naming the profile and the setting.
    let r = put(
        &server,
        Some(&reader),
        "d-3",
        body.clone(),
        None,
        Some("Local"),
    )
    .await;
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.expect("json");
    let text = v["error_description"].as_str().expect("text");
    assert!(
        text.contains("`Reader`") && text.contains("Deliveries:DeliverProfiles"),
        "{text}"
    );
    // An agent the XML does not declare, or none at all: 403.
    for agent_id in [Some("Elsewhere"), None] {
        let r = put(&server, Some(&job), "d-4", body.clone(), None, agent_id).await;
        assert_eq!(r.status(), 403, "{agent_id:?}");
    }

    // Over Deliveries:MaxFileSizeMiB: 413. A wrong digest: 400, nothing stored.
    let r = deliver("d-5", content(1024 * 1024 + 1, 3)).await;
    assert_eq!(r.status(), 413);
    let r = put(
        &server,
        Some(&job),
        "d-6",
        body.clone(),
        Some(sha256_header(b"other")),
        Some("Local"),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.expect("json")["error"],
        "digest_mismatch"
    );
    no_partial_and_count(&store, 1);

    // Deliveries:QuotaMiB (2) used up: 507 with Retry-After.
    let r = deliver("d-7", content(700 * 1024, 4)).await;
    assert_eq!(r.status(), 201);
    let r = deliver("d-8", content(700 * 1024, 5)).await;
    assert_eq!(r.status(), 507);
    assert!(r.headers().contains_key("retry-after"));
    no_partial_and_count(&store, 2);

    // Reading: Administrator (Job) is not in ReadProfiles; Reader lists and downloads.
    let r = get(&server, "/api/deliveries", &job).await;
    assert_eq!(r.status(), 403);
    let r = get(&server, "/api/deliveries", &reader).await;
    assert_eq!(r.status(), 200);
    let list: Value = r.json().await.expect("json");
    assert_eq!(list["deliveries"].as_array().expect("list").len(), 2);
    let r = get(&server, "/api/deliveries/d-1/content", &reader).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["repr-digest"].to_str().expect("ascii"),
        sha256_header(&body)
    );
    assert!(r.bytes().await.expect("body").as_ref() == body.as_slice());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_push_reports_refusals_with_exit_code_10_and_repeats_are_stored_once() {
    let d = delivery_server(json!({ "MaxFileSizeMiB": 1 }));
    let server = d.start().await;
    let mut a = AgentDeployment::new(&server.base);
    project_pfx(a.path(), "agent-encryption", KeyKind::Rsa2048);
    a.set(
        "EncryptionCertificate",
        json!({ "File": "agent-encryption.pfx", "EncryptFile": true }),
    )
    .set_agent("EncryptionCertificate", json!({ "Password": PASSWORD }));
    a.write();
    let dir = a.path().to_path_buf();
    let run = move |args: Vec<String>| {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            agent(&dir, &args)
        })
    };
    let small = a.path().join("small.csv");
    std::fs::write(&small, content(5000, 1)).expect("write");
    let big = a.path().join("big.bin");
    std::fs::write(&big, content(2 * 1024 * 1024, 2)).expect("write");
    let s = small.to_str().expect("utf-8").to_string();

    let out = run(vec!["push".into(), s.clone()]).await.expect("join");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(": delivered as `push-"));
    let out = run(vec!["push".into(), s.clone()]).await.expect("join");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("already delivered"));

    let out = run(vec!["push".into(), big.to_str().expect("utf-8").into()])
        .await
        .expect("join");
    assert_eq!(code(&out), 10, "{}", stderr(&out));
    assert!(stderr(&out).contains("413"), "{}", stderr(&out));

    // A client whose profile (Reader) may not deliver.
    a.set_agent(
        "OpenId",
        json!({ "AgentIdentifier": "Local", "OpenIdClients": { "Legacy": "secret" }, "DefaultOpenIdClient": "Legacy" }),
    );
    a.write();
    let out = run(vec!["push".into(), s.clone()]).await.expect("join");
    assert_eq!(code(&out), 10, "{}", stderr(&out));
    assert!(stderr(&out).contains("may not deliver"), "{}", stderr(&out));

    let store = d.path().join("data/deliveries");
    no_partial_and_count(&store, 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_encryption_certificate_turns_deliveries_off_and_tokens_still_work() {
    let mut d = Deployment::new();
    d.set(
        "EncryptionCertificate",
        json!({ "File": "expired.pfx", "Password": PASSWORD }),
    );
    d.write();
    let server = d.start().await;
    let job = token(&server, "Job", JOB_SECRET).await;
    let r = put(&server, Some(&job), "d-1", b"abc".to_vec(), None, None).await;
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"], "deliveries_disabled");
    assert!(
        v["error_description"]
            .as_str()
            .expect("text")
            .contains("expired"),
        "{v}"
    );
    // No delivery store was made (the data folder holds the replay cache's journal, `replay/`).
    assert!(!d.path().join("data/deliveries").exists());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_the_server_refused_is_replaced_in_the_agent_cache() {
    let d = delivery_server(json!({}));
    let server = d.start().await;
    let a = AgentDeployment::new(&server.base);
    a.write();
    let agent = a.agent();
    let first = agent.token().await.expect("token");
    let renewed = agent.renew_token("Job").await.expect("renewed");
    assert_ne!(first.access_token.expose(), renewed.access_token.expose());
    // Later callers get the new token from the cache, not the refused one.
    let cached = agent.token().await.expect("token");
    assert_eq!(cached.access_token.expose(), renewed.access_token.expose());
    assert_eq!(agent.token_requests(), 2);
    server.stop().await;
}

// ---- Issue 14: hostile clients ----

/// The default XML plus `Other`, a second client allowed to deliver (secret `secret`).
fn xml_with_other() -> String {
    crate::support::default_xml().replace(
        "</ConfigurationFile>",
        "  <OpenIdClient Identifier=\"Other\" HashedSecret=\"K7gNU3sdo+OL0wNhqoVWhr3g6s1xYv72ol/pe/Unols=\" Profile=\"Administrator\" />\n</ConfigurationFile>",
    )
}

/// `PUT /api/deliveries/{id}?name=NAME` of `body` with its SHA-256, as `token`'s client.
async fn put_named(
    server: &crate::support::Server,
    token: &str,
    id: &str,
    name: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut url = reqwest::Url::parse(&server.url(&format!("/api/deliveries/{id}"))).expect("url");
    url.query_pairs_mut().append_pair("name", name);
    server
        .client
        .put(url)
        .bearer_auth(token)
        .header("repr-digest", sha256_header(&body))
        .body(body)
        .send()
        .await
        .expect("PUT")
}

/// A request body of `len` bytes sent one byte every `every` (the first at once): a client that
/// trickles its upload to hold a slot.
struct Trickle {
    left: u64,
    every: Duration,
    next: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl Trickle {
    fn body(len: u64, every: Duration) -> reqwest::Body {
        reqwest::Body::wrap(Trickle {
            left: len,
            every,
            next: Box::pin(tokio::time::sleep(Duration::ZERO)),
        })
    }
}

impl http_body::Body for Trickle {
    type Data = &'static [u8];
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<&'static [u8]>, std::io::Error>>> {
        use std::future::Future as _;
        if self.left == 0 {
            return std::task::Poll::Ready(None);
        }
        if self.next.as_mut().poll(cx).is_pending() {
            return std::task::Poll::Pending;
        }
        let at = tokio::time::Instant::now() + self.every;
        self.next.as_mut().reset(at);
        self.left -= 1;
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(&b"x"[..]))))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.left)
    }
}

/// Starts a trickled delivery of `len` bytes as `token`'s client on `client`; the task ends with the
/// answer's status and body (or the connection error).
fn trickled_put(
    server: &crate::support::Server,
    client: &reqwest::Client,
    token: &str,
    id: &str,
    len: u64,
    every: Duration,
) -> tokio::task::JoinHandle<Result<(u16, Value), String>> {
    let request = client
        .put(server.url(&format!("/api/deliveries/{id}?name=slow.bin")))
        .bearer_auth(token)
        .header("repr-digest", sha256_header(&vec![b'x'; len as usize]))
        .body(Trickle::body(len, every));
    tokio::spawn(async move {
        let r = request.send().await.map_err(|e| format!("{e:?}"))?;
        let status = r.status().as_u16();
        let v = r.json::<Value>().await.unwrap_or(Value::Null);
        Ok((status, v))
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn one_client_holding_slow_uploads_cannot_block_another_clients_delivery() {
    // Four upload slots; Job opens eight uploads that send one byte every 5 s.
    let d = delivery_server(json!({ "MaxConcurrentUploads": 4 }));
    d.write_xml("clients.xml", &xml_with_other());
    let server = d.start().await;
    let store = d.path().join("data/deliveries");
    let job = token(&server, "Job", JOB_SECRET).await;
    let other = token(&server, "Other", "secret").await;
    let slow_connection = crate::support::https_client(&d.path().join("ca.crt"));
    let slow: Vec<_> = (0..8)
        .map(|i| {
            trickled_put(
                &server,
                &slow_connection,
                &job,
                &format!("slow-{i}"),
                1000,
                Duration::from_secs(5),
            )
        })
        .collect();
    // Each slow upload is either held by the server (its .partial exists) or answered.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let held = partials_deep(&store).len();
        let answered = slow.iter().filter(|t| t.is_finished()).count();
        if held + answered == 8 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "after 10 s: {held} slow uploads held, {answered} answered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Another client still delivers while Job's slow uploads are held.
    let r = put_named(
        &server,
        &other,
        "from-other",
        "other.csv",
        content(20_000, 1),
    )
    .await;
    let status = r.status();
    let v: Value = r.json().await.expect("json");
    assert_eq!(status, 201, "another client's delivery: {v}");
    assert_eq!(v["client_id"], "Other");
    // Job's uploads beyond its share were refused at once, naming the setting.
    let held = partials_deep(&store).len();
    assert!(held < 4, "Job holds {held} of the 4 slots");
    let mut refused = 0;
    for t in slow {
        if t.is_finished() {
            let (status, v) = t.await.expect("join").expect("answer");
            assert_eq!(status, 429, "{v}");
            assert!(
                v["error_description"]
                    .as_str()
                    .is_some_and(|t| t.contains("Deliveries:MaxConcurrentUploadsPerClient")),
                "{v}"
            );
            refused += 1;
        } else {
            t.abort();
        }
    }
    assert_eq!(refused + held, 8);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_upload_is_cut_and_what_it_left_is_removed() {
    // One slot, a 1 MiB quota, and at least 1000 bytes per 1 s window.
    let d = delivery_server(json!({
        "MaxConcurrentUploads": 1, "QuotaMiB": 1,
        "MinUploadBytesPerSecond": 1000, "MinUploadRateWindowSeconds": 1,
    }));
    let server = d.start().await;
    let store = d.path().join("data/deliveries");
    let job = token(&server, "Job", JOB_SECRET).await;
    // 700 KiB announced (most of the quota), one byte every 100 ms.
    let slow = trickled_put(
        &server,
        &server.client,
        &job,
        "slow",
        700 * 1024,
        Duration::from_millis(100),
    );
    let (status, v) = tokio::time::timeout(Duration::from_secs(20), slow)
        .await
        .expect("the slow upload was not cut within 20 s")
        .expect("join")
        .expect("an answer on the connection");
    assert_eq!(status, 408, "{v}");
    assert_eq!(v["error"], "upload_too_slow", "{v}");
    let text = v["error_description"].as_str().expect("text");
    assert!(
        text.contains("Deliveries:MinUploadBytesPerSecond") && text.contains("nothing was stored"),
        "{text}"
    );
    // Nothing left: no partial file, and the slot and the quota reservation are free again (a
    // second 700 KiB delivery fits in the 1 MiB quota only if the first reservation was released).
    assert!(partials_deep(&store).is_empty(), "{:?}", files_deep(&store));
    let r = put_named(&server, &job, "fast", "fast.bin", content(700 * 1024, 2)).await;
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    // The same over HTTP/1.1 (above: HTTP/2).
    let pem = std::fs::read(d.path().join("ca.crt")).expect("ca");
    let http1 = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).expect("pem")])
        .http1_only()
        .build()
        .expect("client");
    let slow = trickled_put(
        &server,
        &http1,
        &job,
        "slow-1",
        200 * 1024,
        Duration::from_millis(100),
    );
    let (status, v) = tokio::time::timeout(Duration::from_secs(20), slow)
        .await
        .expect("the slow HTTP/1.1 upload was not cut within 20 s")
        .expect("join")
        .expect("an answer on the connection");
    assert_eq!(
        (status, &v["error"]),
        (408, &json!("upload_too_slow")),
        "{v}"
    );
    assert!(partials_deep(&store).is_empty(), "{:?}", files_deep(&store));
    server.stop().await;
}

#[test]
fn the_per_client_share_of_upload_slots_cannot_exceed_the_slots() {
    let mut d = delivery_server(json!({
        "MaxConcurrentUploads": 4, "MaxConcurrentUploadsPerClient": 5,
    }));
    let errors = d.load_settings().expect_err("refused").join("\n");
    assert!(
        errors.contains("Deliveries:MaxConcurrentUploadsPerClient")
            && errors.contains("Deliveries:MaxConcurrentUploads")
            && errors.contains('4'),
        "{errors}"
    );
    d.set("Deliveries.MaxConcurrentUploadsPerClient", json!(4));
    let s = d.load_settings().expect("valid");
    assert_eq!(s.deliveries.max_uploads_per_client, 4);
    // Defaults: a quarter of the slots, at least one; Kestrel-like minimum rate.
    d.set("Deliveries", json!({}));
    let s = d.load_settings().expect("valid");
    assert_eq!(s.deliveries.max_uploads, 32);
    assert_eq!(s.deliveries.max_uploads_per_client, 8);
    assert_eq!(s.deliveries.min_upload_rate.bytes_per_second, 240);
    assert_eq!(s.deliveries.min_upload_rate.window, Duration::from_secs(10));
    d.set("Deliveries", json!({ "MaxConcurrentUploads": 2 }));
    assert_eq!(
        d.load_settings()
            .expect("valid")
            .deliveries
            .max_uploads_per_client,
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_clients_deliver_under_the_same_id_and_both_deliveries_are_kept() {
    let d = delivery_server(json!({ "ReadProfiles": ["Reader"] }));
    d.write_xml("clients.xml", &xml_with_other());
    let server = d.start().await;
    let job = token(&server, "Job", JOB_SECRET).await;
    let other = token(&server, "Other", "secret").await;
    let reader = token(&server, "Legacy", "secret").await;
    let (a, b) = (content(5000, 1), content(6000, 2));

    let r = put_named(&server, &job, "same-id", "report.csv", a.clone()).await;
    assert_eq!(r.status(), 201);
    let job_record: Value = r.json().await.expect("json");
    let r = put_named(&server, &other, "same-id", "report.csv", b.clone()).await;
    let status = r.status();
    let other_record: Value = r.json().await.expect("json");
    assert_eq!(
        status, 201,
        "the same id from another client: {other_record}"
    );
    assert_eq!(other_record["client_id"], "Other");
    assert_eq!(other_record["id"], "same-id");
    // Each client's repeat is idempotent within its own namespace.
    let r = put_named(&server, &job, "same-id", "report.csv", a.clone()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.expect("json"), job_record);
    let r = put_named(&server, &other, "same-id", "report.csv", b.clone()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.expect("json"), other_record);
    let r = put_named(&server, &job, "same-id", "report.csv", b.clone()).await;
    assert_eq!(r.status(), 409);
    // Each client finds its own (what the agent asks before sending).
    for (t, record) in [(&job, &job_record), (&other, &other_record)] {
        let r = get(&server, "/api/deliveries/same-id", t).await;
        assert_eq!(r.status(), 200);
        assert_eq!(&r.json::<Value>().await.expect("json"), record);
    }
    // A reader sees both; the bare id is ambiguous, `?client=` picks one.
    let r = get(&server, "/api/deliveries", &reader).await;
    let list: Value = r.json().await.expect("json");
    assert_eq!(
        list["deliveries"].as_array().expect("list").len(),
        2,
        "{list}"
    );
    let r = get(&server, "/api/deliveries/same-id", &reader).await;
    assert_eq!(r.status(), 409);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"], "delivery_ambiguous", "{v}");
    assert!(
        v["error_description"]
            .as_str()
            .is_some_and(|t| t.contains("Job") && t.contains("Other") && t.contains("client=")),
        "{v}"
    );
    for (client, plain) in [("Job", &a), ("Other", &b)] {
        let r = get(
            &server,
            &format!("/api/deliveries/same-id/content?client={client}"),
            &reader,
        )
        .await;
        assert_eq!(r.status(), 200, "{client}");
        assert!(
            r.bytes().await.expect("body").as_ref() == plain.as_slice(),
            "{client}"
        );
    }
    server.stop().await;

    // Operator commands: both listed; export needs --client for a shared id and exports each.
    let listed = listed(d.path());
    let mut clients: Vec<&str> = listed["deliveries"]
        .as_array()
        .expect("list")
        .iter()
        .map(|r| r["client_id"].as_str().expect("client"))
        .collect();
    clients.sort();
    assert_eq!(clients, ["Job", "Other"]);
    let out = server_command(d.path(), &["deliveries", "export", "same-id", "--stdout"]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("--client") && text.contains("Other"),
        "{text}"
    );
    for (client, plain) in [("Job", &a), ("Other", &b)] {
        let out = server_command(
            d.path(),
            &[
                "deliveries",
                "export",
                "same-id",
                "--client",
                client,
                "--stdout",
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout == *plain, "{client}");
    }
    // Into one folder: the second `report.csv` never replaces the first; it is refused with a way out.
    let dest = tempfile::tempdir().expect("tmp");
    let dest_str = dest.path().to_str().expect("utf-8");
    let export = |client: &str, to: &str| {
        server_command(
            d.path(),
            &[
                "deliveries",
                "export",
                "same-id",
                "--client",
                client,
                "-o",
                to,
            ],
        )
    };
    let out = export("Job", dest_str);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = export("Other", dest_str);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("already exists") && text.contains("-o"),
        "{text}"
    );
    let other_file = dest.path().join("report-other.csv");
    let out = export("Other", other_file.to_str().expect("utf-8"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::read(dest.path().join("report.csv")).expect("read") == a);
    assert!(std::fs::read(&other_file).expect("read") == b);
}

/// A server folder holding `tests/fixtures/deliveries-v1`: a store the server wrote before delivery
/// ids were per client, with the `EncryptionCertificate` it was written for.
fn legacy_store() -> Deployment {
    let v1 = crate::support::fixtures().join("deliveries-v1");
    let mut d = Deployment::new();
    std::fs::copy(v1.join("encryption.pfx"), d.path().join("encryption.pfx")).expect("pfx");
    let store = d.path().join("data/deliveries");
    std::fs::create_dir_all(&store).expect("mkdir");
    for f in files_in(&v1.join("deliveries")) {
        std::fs::copy(&f, store.join(f.file_name().expect("name"))).expect("copy");
    }
    d.set(
        "EncryptionCertificate",
        json!({ "File": "encryption.pfx", "Password": PASSWORD }),
    )
    .set("Deliveries", json!({ "ReadProfiles": ["Reader"] }));
    d.write();
    d.write_xml("clients.xml", &xml_with_other());
    d
}

/// What the fixture's deliveries hold (see tests/fixtures/deliveries-v1/README.md).
const LEGACY: &[(&str, &str, usize, u8)] = &[
    ("legacy-report", "report.csv", 5000, 1),
    ("legacy-shared", "shared.csv", 3000, 2),
    ("legacy-dotfile", ".bashrc", 100, 3),
    ("legacy-rlo", "invoice\u{202E}txt.exe", 200, 4),
    ("legacy-ls", "line\u{2028}break.txt", 300, 5),
    ("legacy-bom", "\u{FEFF}notes.txt", 400, 6),
    (
        "push-02dea9f119ed151d5bd189adce734a02",
        "pushed.csv",
        2000,
        7,
    ),
];

#[tokio::test(flavor = "multi_thread")]
async fn a_store_written_before_per_client_ids_is_listed_exported_and_repeats_stay_idempotent() {
    let d = legacy_store();
    let store = d.path().join("data/deliveries");
    let ids = |records: &Value| -> Vec<String> {
        let mut ids: Vec<String> = records["deliveries"]
            .as_array()
            .expect("list")
            .iter()
            .map(|r| {
                format!(
                    "{}/{}",
                    r["client_id"].as_str().expect("c"),
                    r["id"].as_str().expect("id")
                )
            })
            .collect();
        ids.sort();
        ids
    };
    // Operator commands on the store as the old server left it.
    let before = listed(d.path());
    assert_eq!(ids(&before).len(), LEGACY.len(), "{before}");
    for (id, name, len, seed) in LEGACY {
        let out = server_command(d.path(), &["deliveries", "export", id, "--stdout"]);
        assert!(
            out.status.success(),
            "{id}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout == content(*len, *seed), "{id} ({name:?})");
    }

    // The new server on the old store.
    let server = d.start().await;
    let job = token(&server, "Job", JOB_SECRET).await;
    let other = token(&server, "Other", "secret").await;
    let reader = token(&server, "Legacy", "secret").await;
    // The same client repeating an old delivery: 200 with the old record; another file: 409.
    let r = put_named(
        &server,
        &job,
        "legacy-report",
        "report.csv",
        content(5000, 1),
    )
    .await;
    assert_eq!(r.status(), 200);
    let record: Value = r.json().await.expect("json");
    let stored: Value = serde_json::from_slice(
        &std::fs::read(
            crate::support::fixtures().join("deliveries-v1/deliveries/legacy-report.json"),
        )
        .expect("record"),
    )
    .expect("json");
    assert_eq!(record, stored);
    let r = put_named(&server, &job, "legacy-report", "report.csv", content(10, 9)).await;
    assert_eq!(r.status(), 409);
    // The agent finds what it delivered before (GET /api/deliveries/{id}).
    let r = get(&server, "/api/deliveries/legacy-shared", &job).await;
    assert_eq!(r.status(), 200);
    // Another client's id is its own, even one an old delivery used.
    let r = get(&server, "/api/deliveries/legacy-shared", &other).await;
    assert_eq!(r.status(), 404);
    let r = put_named(
        &server,
        &other,
        "legacy-shared",
        "shared.csv",
        content(3500, 8),
    )
    .await;
    let status = r.status();
    let v: Value = r.json().await.expect("json");
    assert_eq!(status, 201, "{v}");
    let r = get(
        &server,
        "/api/deliveries/legacy-shared/content?client=Job",
        &reader,
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.expect("body").as_ref() == content(3000, 2).as_slice());
    let r = get(&server, "/api/deliveries/legacy-report/content", &reader).await;
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.expect("body").as_ref() == content(5000, 1).as_slice());

    // `agent push` of a file it pushed before the upgrade: recognised, nothing sent again.
    let mut a = AgentDeployment::new(&server.base);
    a.set_agent(
        "OpenId",
        json!({ "AgentIdentifier": "Local", "OpenIdClients": { "Job": JOB_SECRET }, "DefaultOpenIdClient": "Job" }),
    );
    a.write();
    let file = a.path().join("pushed.csv");
    std::fs::write(&file, content(2000, 7)).expect("write");
    let dir = a.path().to_path_buf();
    let f = file.to_str().expect("utf-8").to_string();
    let out = tokio::task::spawn_blocking(move || agent(&dir, &["push", &f]))
        .await
        .expect("join");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("already delivered")
            && stdout.contains("push-02dea9f119ed151d5bd189adce734a02"),
        "{stdout}"
    );
    server.stop().await;

    // Everything is still there, plus Other's delivery; each exports to its own content.
    let after = listed(d.path());
    let mut expected = ids(&before);
    expected.push("Other/legacy-shared".into());
    expected.sort();
    assert_eq!(ids(&after), expected);
    for (client, plain) in [("Job", content(3000, 2)), ("Other", content(3500, 8))] {
        let out = server_command(
            d.path(),
            &[
                "deliveries",
                "export",
                "legacy-shared",
                "--client",
                client,
                "--stdout",
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout == plain, "{client}");
    }
    assert!(partials_deep(&store).is_empty());
}

/// The characters a name must not have, for checks on exported names.
fn disguising(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{AD}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{FEFF}')
}

#[tokio::test(flavor = "multi_thread")]
async fn names_that_disguise_a_file_are_refused_at_upload_naming_the_character() {
    let d = delivery_server(json!({}));
    let server = d.start().await;
    let store = d.path().join("data/deliveries");
    let job = token(&server, "Job", JOB_SECRET).await;
    for (i, (name, expected)) in [
        (".bashrc", "`.`"),
        (
            "invoice\u{202E}txt.exe",
            "U+202E RIGHT-TO-LEFT OVERRIDE at character 8",
        ),
        (
            "isolate\u{2067}x.txt",
            "U+2067 RIGHT-TO-LEFT ISOLATE at character 8",
        ),
        (
            "line\u{2028}break.txt",
            "U+2028 LINE SEPARATOR at character 5",
        ),
        ("para\u{2029}graph.txt", "U+2029 PARAGRAPH SEPARATOR"),
        (
            "\u{FEFF}notes.txt",
            "U+FEFF ZERO WIDTH NO-BREAK SPACE (BYTE ORDER MARK) at character 1",
        ),
        ("zero\u{200B}width.txt", "U+200B ZERO WIDTH SPACE"),
        ("soft\u{AD}hyphen.txt", "U+00AD SOFT HYPHEN"),
        ("bell\u{7}.txt", "U+0007"),
        ("next\u{85}line.txt", "U+0085"),
        ("tag\u{E0041}.txt", "U+E0041"),
        ("arabic\u{61C}mark.txt", "U+061C ARABIC LETTER MARK"),
    ]
    .into_iter()
    .enumerate()
    {
        let r = put_named(&server, &job, &format!("bad-{i}"), name, content(100, 1)).await;
        let status = r.status();
        let v: Value = r.json().await.expect("json");
        assert_eq!(status, 400, "{name:?}: {v}");
        assert_eq!(v["error"], "invalid_request", "{name:?}");
        let text = v["error_description"].as_str().expect("text");
        assert!(text.contains(expected), "{name:?}: {text}");
    }
    no_partial_and_count(&store, 0);
    // Plain names, accented letters and spaces included, are still accepted.
    for (i, name) in [
        "rapport-été.csv",
        "report 2026-11.csv",
        "a.b.c",
        "日本語.txt",
    ]
    .into_iter()
    .enumerate()
    {
        let r = put_named(&server, &job, &format!("good-{i}"), name, content(100, 1)).await;
        assert_eq!(r.status(), 201, "{name}");
    }
    server.stop().await;
}

#[test]
fn export_never_writes_a_hidden_or_control_character_file_name() {
    // Records stored before names were checked (the old server's own store).
    let d = legacy_store();
    let dest = tempfile::tempdir().expect("tmp");
    let dest_str = dest.path().to_str().expect("utf-8");
    for (id, name, len, seed) in LEGACY {
        let out = server_command(d.path(), &["deliveries", "export", id, "-o", dest_str]);
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{id}: {text}");
        if name.starts_with('.') || name.chars().any(disguising) {
            assert!(text.contains("renamed"), "{id}: {text}");
        }
        let _ = (len, seed);
    }
    let mut written: Vec<String> = files_in(dest.path())
        .iter()
        .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
        .collect();
    written.sort();
    for name in &written {
        assert!(
            !name.starts_with('.') && !name.chars().any(disguising),
            "{name:?} written"
        );
    }
    assert_eq!(
        written,
        [
            "_notes.txt",
            "bashrc",
            "invoice_txt.exe",
            "line_break.txt",
            "pushed.csv",
            "report.csv",
            "shared.csv"
        ]
    );
    for (file, len, seed) in [
        ("bashrc", 100, 3),
        ("invoice_txt.exe", 200, 4),
        ("_notes.txt", 400, 6),
    ] {
        assert!(
            std::fs::read(dest.path().join(file)).expect("read") == content(len, seed),
            "{file}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_sha256_values_in_repr_digest_are_refused_as_ambiguous() {
    let d = delivery_server(json!({}));
    let server = d.start().await;
    let store = d.path().join("data/deliveries");
    let job = token(&server, "Job", JOB_SECRET).await;
    let body = content(1000, 1);
    let right = sha256_header(&body);
    let wrong = sha256_header(b"something else");
    let send = |headers: Vec<String>| {
        let mut request = server
            .client
            .put(server.url("/api/deliveries/two-digests?name=a.bin"))
            .bearer_auth(&job)
            .body(body.clone());
        for h in headers {
            request = request.header("repr-digest", h);
        }
        request.send()
    };
    for headers in [
        vec![format!("{right}, {wrong}")],
        vec![format!("{wrong}, {right}")],
        vec![format!("{right}, {right}")],
        vec![right.clone(), wrong.clone()],
        vec![format!("sha-512=:AAAA:, {right}, SHA-256={wrong}")],
    ] {
        let r = send(headers.clone()).await.expect("PUT");
        let status = r.status();
        let v: Value = r.json().await.expect("json");
        assert_eq!(status, 400, "{headers:?}: {v}");
        assert!(
            v["error_description"]
                .as_str()
                .is_some_and(|t| t.contains("ambiguous")),
            "{headers:?}: {v}"
        );
    }
    no_partial_and_count(&store, 0);
    // One sha-256 among other algorithms is fine.
    let r = send(vec![format!("sha-512=:AAAA:, {right}")])
        .await
        .expect("PUT");
    assert_eq!(r.status(), 201);
    server.stop().await;
}
