//! Agent-to-server delivery as operators run it: the real `identity-server` and `agent` binaries,
//! files encrypted with the agent's certificate delivered over HTTPS and stored encrypted with the
//! server's; processes killed in the middle; every refusal with its status and nothing left behind.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ids_crypto::devcerts::KeyKind;
use serde_json::{Value, json};

use crate::support::{
    AgentDeployment, Deployment, JOB_SECRET, PASSWORD, agent, binary, code, project_pfx,
    spawn_agent, stderr, wait_for,
};

const MARKER: &[u8] = b"PLAINTEXT-MARKER-5d1c";

/// `len` bytes that vary, with MARKER every 4 KiB (when there is room).
fn content(len: usize, seed: u8) -> Vec<u8> {
    let mut data: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8)
        .collect();
    let mut at = 0;
    while at + MARKER.len() <= len {
        data[at..at + MARKER.len()].copy_from_slice(MARKER);
        at += 4096;
    }
    data
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A server folder (encryption certificate made by the project) and an agent folder for it.
struct Pair {
    server: Deployment,
    agent: AgentDeployment,
    port: u16,
    process: Option<Child>,
}

impl Pair {
    fn new() -> Pair {
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

    /// Starts `identity-server serve` and waits for its health check.
    fn start_server(&mut self) {
        let child = Command::new(binary("identity-server"))
            .args(["serve", "--config-dir"])
            .arg(self.server.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn server");
        self.process = Some(child);
        let port = self.port;
        wait_for("the server to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    fn kill_server(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn outbox(&self) -> PathBuf {
        self.agent.path().join("work/outbox")
    }

    fn store(&self) -> PathBuf {
        self.server.path().join("data/deliveries")
    }

    /// Encrypts `plain` with `agent encrypt` and moves the result into the outbox as `name.enc`.
    fn drop_encrypted(&self, name: &str, plain: &[u8]) {
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
    fn records(&self) -> Vec<Value> {
        let out = server_command(self.server.path(), &["deliveries", "list", "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).expect("json");
        v["deliveries"].as_array().cloned().unwrap_or_default()
    }

    /// `identity-server deliveries export ID --stdout`.
    fn export(&self, id: &str) -> Vec<u8> {
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

fn server_command(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut full: Vec<&str> = args.to_vec();
    let dir = dir.to_str().expect("utf-8");
    full.extend(["--config-dir", dir]);
    Command::new(binary("identity-server"))
        .args(&full)
        .stdin(Stdio::null())
        .output()
        .expect("run identity-server")
}

fn terminate(child: &mut Child) -> i32 {
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

fn partials(dir: &Path) -> usize {
    files_in(dir)
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".partial"))
        .count()
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
    let stored = files_in(&pair.store());
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

/// `Repr-Digest` of `data`, computed by the `openssl` binary (not by the code under test).
fn sha256_header(data: &[u8]) -> String {
    use std::io::Write as _;
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-binary"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl");
    let mut stdin = child.stdin.take().expect("stdin");
    let owned = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&owned));
    let out = child.wait_with_output().expect("openssl output");
    writer.join().expect("join").expect("write");
    format!(
        "sha-256=:{}:",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, out.stdout)
    )
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
    let files = files_in(store);
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
    let signer_file = ids_crypto::pfx::CertificateFile::new(
        d.path().join("signing-ec.pfx"),
        PASSWORD.to_string(),
        "test",
    );
    let other = signer_file.open().expect("pfx");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = json!({ "iss": server.base, "aud": server.base, "sub": "Job", "client_id": "Job",
        "scope": "api", "jti": "x", "iat": now, "nbf": now, "exp": now + 600 });
    let foreign = ids_crypto::TokenSigner::new(other.key, &other.certificate)
        .sign(&claims)
        .expect("sign");
    let real_file = ids_crypto::pfx::CertificateFile::new(
        d.path().join("signing-rsa.pfx"),
        PASSWORD.to_string(),
        "test",
    );
    let real = real_file.open().expect("pfx");
    let mut old = claims.clone();
    old["iat"] = json!(now - 7200);
    old["nbf"] = json!(now - 7200);
    old["exp"] = json!(now - 3600);
    let expired = ids_crypto::TokenSigner::new(real.key, &real.certificate)
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
