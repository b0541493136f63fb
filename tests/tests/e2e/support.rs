//! Test deployments: a temporary folder with appsettings.json, PFX files and XML, and a running server.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ids_devpki::{Ca, KeyKind, PfxProfile, to_pfx};

use ids_proto::ClientSecret;
use ids_secret::SecretHash;
use serde_json::{Value, json};
use tokio::sync::oneshot;

pub const PASSWORD: &str = "test-password";
pub const JOB_SECRET: &str = "job-secret-1234";

/// `tests/fixtures`.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// The weak-parameter argon2id hash of [`JOB_SECRET`] (computed once; tests only).
pub fn job_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        SecretHash::danger_weak_argon2id(&ClientSecret::new(JOB_SECRET))
            .expect("hash")
            .to_attribute()
    })
}

/// The default access-control XML of a test deployment.
pub fn default_xml() -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<ConfigurationFile xmlns="urn:schemas-usercube-com:configuration">
  <Profile Identifier="Administrator" DisplayName_L1="Administrator" />
  <Profile Identifier="Reader" DisplayName_L1="Reader" />
  <EntityType Identifier="Directory_User"><Property Identifier="Login" /></EntityType>
  <OpenIdClient Identifier="Job" HashedSecret="{}" DisplayName_L1="Permissions for jobs" Profile="Administrator" ContextId="-2" />
  <OpenIdClient Identifier="Legacy" HashedSecret="K7gNU3sdo+OL0wNhqoVWhr3g6s1xYv72ol/pe/Unols=" Profile="Reader" />
  <OpenIdClient Identifier="LegacyNoPad" HashedSecret="K7gNU3sdo+OL0wNhqoVWhr3g6s1xYv72ol/pe/Unols" Profile="Reader" />
  <OpenIdClient Identifier="Expired" HashedSecret="K7gNU3sdo+OL0wNhqoVWhr3g6s1xYv72ol/pe/Unols=" Profile="Reader" ExpirationDate="2020-01-01T00:00:00" />
  <OpenIdClient Identifier="Later" HashedSecret="K7gNU3sdo+OL0wNhqoVWhr3g6s1xYv72ol/pe/Unols=" ExpirationDate="2999-01-01" />
</ConfigurationFile>
"#,
        job_hash()
    )
}

/// A deployment folder.
pub struct Deployment {
    pub dir: tempfile::TempDir,
    pub settings: Value,
}

impl Deployment {
    /// Signing with `signing-rsa.pfx`, TLS with `tls.pfx` (both made by openssl, CA `ca.crt`).
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        for f in [
            "signing-rsa.pfx",
            "signing-rsa-legacy.pfx",
            "signing-ec.pfx",
            "signing-ec.crt",
            "tls.pfx",
            "ca.crt",
            "rsa1024.pfx",
            "cert-only.pfx",
            "no-localkeyid.pfx",
            "windows-export.pfx",
            "expired.pfx",
            "other-tls.pfx",
        ] {
            std::fs::copy(fixtures().join(f), dir.path().join(f)).expect("copy fixture");
        }
        std::fs::create_dir_all(dir.path().join("Conf")).expect("mkdir");
        std::fs::write(dir.path().join("Conf/clients.xml"), default_xml()).expect("xml");
        let settings = json!({
            "Urls": "https://127.0.0.1:0",
            "IdentityServer": {
                "X509KeyFilePath": "signing-rsa.pfx",
                "X509KeyFilePassword": PASSWORD,
            },
            "Kestrel": { "Certificates": { "Default": { "Path": "tls.pfx", "Password": PASSWORD } } },
            "Logging": { "LogLevel": { "Default": "Information" } },
        });
        Deployment { dir, settings }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Sets `a.b.c` in appsettings.json.
    pub fn set(&mut self, path: &str, value: Value) -> &mut Self {
        set_path(&mut self.settings, path, value);
        self
    }

    pub fn write(&self) {
        write_json(&self.path().join("appsettings.json"), &self.settings);
    }

    pub fn write_xml(&self, name: &str, text: &str) {
        let p = self.path().join("Conf").join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(p, text).expect("write xml");
    }

    pub fn load_settings(&self) -> Result<identity_server::Settings, Vec<String>> {
        self.write();
        identity_server::Settings::load_with(self.path(), &[], None)
            .map_err(|es| es.iter().map(ToString::to_string).collect())
    }

    /// Starts the real server in-process on 127.0.0.1:0.
    pub async fn start(&self) -> Server {
        self.start_at("127.0.0.1:0").await
    }

    /// Starts the real server in-process on `addr` (a restart on the same port keeps the issuer).
    pub async fn start_at(&self, addr: &str) -> Server {
        self.start_with(addr, https_client(&self.path().join("ca.crt")))
            .await
    }

    /// Starts the real server with a TLS certificate no CA vouches for; the test's own client does not
    /// check it (the agent under test does).
    pub async fn start_insecure_client(&self) -> Server {
        let client = reqwest::Client::builder()
            .tls_danger_accept_invalid_certs(true)
            .build()
            .expect("client");
        self.start_with("127.0.0.1:0", client).await
    }

    /// Starts the real server with the test's clock.
    pub async fn start_with_clock(&self, clock: std::sync::Arc<TestClock>) -> Server {
        let mut settings = self.load_settings().expect("valid settings");
        settings.clock = clock;
        self.start_settings(
            settings,
            "127.0.0.1:0",
            https_client(&self.path().join("ca.crt")),
        )
        .await
    }

    async fn start_with(&self, addr: &str, client: reqwest::Client) -> Server {
        let settings = self.load_settings().expect("valid settings");
        self.start_settings(settings, addr, client).await
    }

    async fn start_settings(
        &self,
        settings: identity_server::Settings,
        addr: &str,
        client: reqwest::Client,
    ) -> Server {
        let listener = std::net::TcpListener::bind(addr).expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(identity_server::run(settings, listener, async move {
            let _ = rx.await;
        }));
        let server = Server {
            addr,
            base: format!("https://127.0.0.1:{}", addr.port()),
            client,
            stop: Some(tx),
            task: Some(task),
        };
        server.wait_ready().await;
        server
    }
}

/// A reqwest client trusting only `ca`.
pub fn https_client(ca: &Path) -> reqwest::Client {
    https_client_builder(ca).build().expect("client")
}

/// A reqwest client builder trusting only `ca`.
pub fn https_client_builder(ca: &Path) -> reqwest::ClientBuilder {
    let pem = std::fs::read(ca).expect("ca");
    reqwest::Client::builder().tls_certs_only([reqwest::Certificate::from_pem(&pem).expect("pem")])
}

/// A running server.
pub struct Server {
    pub addr: SocketAddr,
    /// `https://127.0.0.1:PORT`: the issuer (derived from `Urls`).
    pub base: String,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), identity_server::ServerError>>>,
}

impl Server {
    async fn wait_ready(&self) {
        for _ in 0..100 {
            if let Ok(r) = self.client.get(format!("{}/hc", self.base)).send().await
                && r.status().is_success()
            {
                return;
            }
            if self.task.as_ref().is_some_and(|t| t.is_finished()) {
                panic!("server stopped during start-up");
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("server not ready");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// GETs `path` on the server.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    /// POSTs a form to the token endpoint.
    pub async fn token_post(&self, form: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .post(self.url("/connect/token"))
            .form(form)
            .send()
            .await
            .expect("request")
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let result = task.await.expect("join");
            assert!(result.is_ok(), "server error: {result:?}");
        }
    }
}

/// The system time in Unix seconds.
/// `len` bytes that vary with `seed` (a file's content that compresses poorly and differs per seed).
pub fn varied_bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8)
        .collect()
}

/// [`varied_bytes`] with `marker` every 4 KiB (when there is room): a test greps stored data for it to
/// prove that no plaintext was kept.
pub fn marked_content(len: usize, seed: u8, marker: &[u8]) -> Vec<u8> {
    let mut data = varied_bytes(len, seed);
    let mut at = 0;
    while at + marker.len() <= len {
        data[at..at + marker.len()].copy_from_slice(marker);
        at += 4096;
    }
    data
}

/// `Repr-Digest` of the bytes `feed` writes, computed by the `openssl` binary (streamed; not by the
/// code under test).
pub fn sha256_of(feed: impl FnOnce(&mut dyn std::io::Write) + Send + 'static) -> String {
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-binary"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || feed(&mut stdin));
    let out = child.wait_with_output().expect("openssl output");
    writer.join().expect("join");
    format!(
        "sha-256=:{}:",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, out.stdout)
    )
}

/// `Repr-Digest` of `data` ([`sha256_of`]).
pub fn sha256_header(data: &[u8]) -> String {
    let owned = data.to_vec();
    sha256_of(move |w| w.write_all(&owned).expect("write"))
}

/// A loopback port free now (for a server that must know its address before it starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub fn unix_now() -> i64 {
    ids_runtime::Clock::now(&ids_runtime::SystemClock)
}

/// A clock the test moves (the server's `Settings::clock`).
#[derive(Debug)]
pub struct TestClock(std::sync::atomic::AtomicI64);

impl TestClock {
    pub fn new(now: i64) -> std::sync::Arc<Self> {
        std::sync::Arc::new(TestClock(std::sync::atomic::AtomicI64::new(now)))
    }

    pub fn advance(&self, seconds: i64) {
        self.0
            .fetch_add(seconds, std::sync::atomic::Ordering::SeqCst);
    }
}

impl ids_runtime::Clock for TestClock {
    fn now(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Whether `python3` can import `module`; when not, says the test is skipped and why.
pub fn python_with(module: &str, test: &str) -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!(
            "SKIPPED {test}: python3 with the `{module}` package is not installed (pip install {module}; .ci/run installs it)"
        );
    }
    ok
}

/// `tests/node` when `node` runs and `npm ci` installed `package` there (`tests/node/package.json`);
/// when not, says the test is skipped and why.
pub fn node_with(package: &str, test: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("node");
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if node && dir.join("node_modules").join(package).is_dir() {
        return Some(dir);
    }
    eprintln!(
        "SKIPPED {test}: node with the `{package}` package is not installed (cd tests/node && npm ci; .ci/run does it)"
    );
    None
}

/// Verifies `token` against the server's JWKS with jsonwebtoken (an independent implementation).
pub async fn verify_with_jwks(server: &Server, token: &str) -> Value {
    let header = jsonwebtoken::decode_header(token).expect("header");
    let jwks: jsonwebtoken::jwk::JwkSet = server
        .get("/.well-known/openid-configuration/jwks")
        .await
        .json()
        .await
        .expect("jwks json");
    let kid = header.kid.clone().expect("kid");
    let jwk = jwks.find(&kid).expect("kid in JWKS");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("key");
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_issuer(&[&server.base]);
    validation.set_audience(&[&server.base]);
    validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
    let data = jsonwebtoken::decode::<Value>(token, &key, &validation)
        .expect("valid signature and claims");
    data.claims
}

/// Runs a workspace binary (built by `cargo build --workspace`, see the README's test command).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/debug/deps/e2e-HASH -> target/debug/NAME
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (`cargo build --workspace`), as the README's test command does",
        path.display()
    );
    path
}

/// An agent's folder: appsettings.json + appsettings.agent.json pointing at a running server, trusting
/// the test CA and pinning the server's signing certificate.
pub struct AgentDeployment {
    pub dir: tempfile::TempDir,
    pub settings: Value,
    pub agent_settings: Value,
}

impl AgentDeployment {
    pub fn new(server_base: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        for f in [
            "ca.crt",
            "other-ca.crt",
            "tls.crt",
            "signing-rsa.crt",
            "signing-rsa.pfx",
            "signing-ec.crt",
            "cert-only.pfx",
            "expired.pfx",
            "signing-ec.pfx",
        ] {
            std::fs::copy(fixtures().join(f), dir.path().join(f)).expect("copy fixture");
        }
        let settings = json!({
            "ApplicationUri": server_base,
            "IdentityServer": { "X509KeyFilePath": "signing-rsa.crt" },
            "Tls": { "TrustedCertificates": ["ca.crt"] },
            "Http": { "Retries": 2, "RetryDelayMilliseconds": 20, "TimeoutSeconds": 10 },
            "Connections": { "Directory": { "Path": "C:/UsercubeDemo/Sources/Directory.xlsx" } },
        });
        let agent_settings = json!({
            "OpenId": {
                "AgentIdentifier": "Local",
                "OpenIdClients": { "Job": JOB_SECRET },
                "DefaultOpenIdClient": "Job",
            }
        });
        AgentDeployment {
            dir,
            settings,
            agent_settings,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Sets `a.b.c` in appsettings.json.
    pub fn set(&mut self, path: &str, value: Value) -> &mut Self {
        set_path(&mut self.settings, path, value);
        self
    }

    /// Sets `a.b.c` in appsettings.agent.json.
    pub fn set_agent(&mut self, path: &str, value: Value) -> &mut Self {
        set_path(&mut self.agent_settings, path, value);
        self
    }

    pub fn write(&self) {
        write_json(&self.path().join("appsettings.json"), &self.settings);
        write_json(
            &self.path().join("appsettings.agent.json"),
            &self.agent_settings,
        );
    }

    /// Writes the files and loads the settings with `vars` as the environment.
    pub fn load_with(
        &self,
        vars: &[(&str, &str)],
    ) -> Result<agent::settings::LoadedSettings, Vec<String>> {
        self.write();
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        agent::Settings::load_with(
            self.path(),
            &vars,
            agent::clock::Clock::now(&agent::SystemClock),
        )
        .map_err(|es| es.iter().map(ToString::to_string).collect())
    }

    pub fn agent_with_clock(&self, clock: std::sync::Arc<dyn agent::Clock>) -> agent::Agent {
        let loaded = self.load_with(&[]).expect("valid agent settings");
        agent::Agent::with_clock(loaded.settings, loaded.keys, clock).expect("agent")
    }

    pub fn agent(&self) -> agent::Agent {
        self.agent_with_clock(std::sync::Arc::new(agent::SystemClock))
    }
}

/// Writes `value` as pretty JSON to `path`.
pub fn write_json(path: &Path, value: &Value) {
    std::fs::write(path, serde_json::to_vec_pretty(value).expect("json"))
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Sets `a.b.c` in a JSON document, creating objects on the way.
pub fn set_path(root: &mut Value, path: &str, value: Value) {
    let mut node = root;
    let parts: Vec<&str> = path.split('.').collect();
    for part in &parts[..parts.len() - 1] {
        if node.get(*part).is_none() {
            node[*part] = json!({});
        }
        node = &mut node[*part];
    }
    node[parts[parts.len() - 1]] = value;
}

// Running the agent binary as an operator does (shared by the file and delivery tests).

pub fn agent(dir: &Path, args: &[&str]) -> Output {
    Command::new(binary("agent"))
        .arg("--config-dir")
        .arg(dir)
        .args(args)
        .current_dir(dir)
        .env_remove("AGENT_CONFIG_DIR")
        .env("TEST_PFX_PASSWORD", PASSWORD)
        .stdin(Stdio::null())
        .output()
        .expect("run agent")
}

pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn partial_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .expect("ls")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".partial"))
        .collect()
}

/// A project-made PFX (devcerts, AES-256/SHA-256) with its certificate as PEM.
pub fn project_pfx(dir: &Path, name: &str, kind: KeyKind) -> (PathBuf, PathBuf) {
    let ca = Ca::new("files test CA", 2).expect("ca");
    let issued = ca.issue_encryption(name, kind, 2).expect("cert");
    let pfx = dir.join(format!("{name}.pfx"));
    let crt = dir.join(format!("{name}.crt"));
    std::fs::write(
        &pfx,
        to_pfx(&issued, &[], name, PASSWORD, PfxProfile::Modern).expect("pfx"),
    )
    .expect("write pfx");
    std::fs::write(&crt, &issued.cert_pem).expect("write crt");
    (pfx, crt)
}

pub fn spawn_agent(dir: &Path, args: &[&str]) -> Child {
    Command::new(binary("agent"))
        .arg("--config-dir")
        .arg(dir)
        .args(args)
        .current_dir(dir)
        .env("TEST_PFX_PASSWORD", PASSWORD)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn agent")
}
