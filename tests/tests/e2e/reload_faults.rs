//! A failed read never empties a key set (issue 14, point 2): the real server, started with a low
//! open-file limit, has its file handles exhausted by idle connections while it reloads on SIGHUP; the
//! keys of the authorized-clients folder and the XML clients stay in force.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ids_devpki::{Ca, KeyKind};
use ids_jose::AssertionSigner;
use ids_jose::assertion::ASSERTION_TYPE;
use ids_pki::{Certificate, SigningKey};
use serde_json::json;

use crate::cli::Running;
use crate::support::{Deployment, binary, default_xml, https_client};

/// The soft and hard open-file limit of the server under test.
const OPEN_FILES: usize = 40;

/// The server's standard error, collected as it is written.
#[derive(Clone, Default)]
pub(crate) struct Log(Arc<Mutex<String>>);

impl Log {
    pub(crate) fn text(&self) -> String {
        self.0.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// Waits (at most `timeout`) for a line containing `needle` after byte `from`; returns the line.
    pub(crate) fn wait_for(&self, from: usize, needle: &str, timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            let text = self.text();
            if let Some(line) = text
                .get(from..)
                .unwrap_or_default()
                .lines()
                .find(|l| l.contains(needle))
            {
                return line.to_string();
            }
            assert!(
                start.elapsed() < timeout,
                "no log line with `{needle}` within {timeout:?}; the log:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Runs `identity-server serve` on `d` through `sh -c 'ulimit -n N; exec ...'` (soft and hard limit
/// N): the process, its port and its log.
pub(crate) fn serve_with_open_files(d: &Deployment, limit: usize) -> (Running, u16, Log) {
    d.write();
    let mut child = Running(
        Command::new("sh")
            .arg("-c")
            .arg(r#"ulimit -n "$1" && shift && exec "$@""#)
            .arg("sh")
            .arg(limit.to_string())
            .arg(binary("identity-server"))
            .arg("serve")
            .arg("--config-dir")
            .arg(d.path())
            .args(["--urls", "https://127.0.0.1:0"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn identity-server"),
    );
    let log = Log::default();
    let stderr = child.0.stderr.take().expect("stderr");
    let sink = log.clone();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stderr);
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
            if let Ok(mut text) = sink.0.lock() {
                text.push_str(&line);
            }
            line.clear();
        }
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.0.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
            if let Some(port) = line
                .trim_end()
                .strip_prefix("listening on https://127.0.0.1:")
                .and_then(|p| p.parse::<u16>().ok())
            {
                let _ = tx.send(port);
            }
            line.clear();
        }
    });
    let port = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("the server did not start; its log:\n{}", log.text()));
    (child, port, log)
}

/// How many files the process `pid` has open.
pub(crate) fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Opens idle TCP connections to `port` until the process `pid` has `limit` files open (its accept
/// loop then fails with EMFILE and the rest wait in the listen backlog). Keep the connections: dropping
/// them gives the handles back.
pub(crate) fn exhaust_file_handles(pid: u32, port: u16, limit: usize) -> Vec<std::net::TcpStream> {
    let mut connections = Vec::new();
    let start = Instant::now();
    while open_files(pid) < limit {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the server holds {} files after {} connections; expected {limit}",
            open_files(pid),
            connections.len()
        );
        if connections.len() < 4 * limit {
            connections.push(
                std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to the server"),
            );
        } else {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // A few more in the backlog, so that a handle given back is taken again at once.
    for _ in 0..8 {
        connections.push(std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect"));
    }
    connections
}

/// Sends SIGHUP to `pid`.
pub(crate) fn hang_up(pid: u32) {
    let status = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -HUP {pid}: {status}");
}

/// A client key issued by a throwaway CA, and the signer of its assertions.
fn client_key(client_id: &str) -> (String, AssertionSigner) {
    let ca = Ca::new("reload test CA", 1).expect("ca");
    let issued = ca
        .issue_client(client_id, KeyKind::EcP256, 1)
        .expect("client certificate");
    let cert = Certificate::from_der("client.crt", &issued.cert_der).expect("certificate");
    let signer = AssertionSigner::with_certificate(
        SigningKey::from_pkcs8(&issued.key_pkcs8).expect("key"),
        &cert,
    );
    (issued.cert_pem, signer)
}

async fn assertion_status(
    client: &reqwest::Client,
    port: u16,
    signer: &AssertionSigner,
    client_id: &str,
) -> u16 {
    let endpoint = format!("https://127.0.0.1:{port}/connect/token");
    let assertion = signer
        .sign(client_id, &endpoint, crate::support::unix_now())
        .expect("sign");
    client
        .post(&endpoint)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &assertion),
        ])
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("token request")
        .status()
        .as_u16()
}

/// A deployment whose `Poller2` authenticates with the key in `authorized/Poller2.pem`, reloaded on
/// SIGHUP only (so the test decides when).
fn deployment() -> (Deployment, AssertionSigner) {
    let mut d = Deployment::new();
    let (pem, signer) = client_key("Poller2");
    std::fs::create_dir(d.path().join("authorized")).expect("mkdir");
    std::fs::write(d.path().join("authorized/Poller2.pem"), pem).expect("write key");
    d.write_xml(
        "clients.xml",
        &default_xml().replace(
            "</ConfigurationFile>",
            "<OpenIdClient Identifier=\"Poller2\" Profile=\"Administrator\" />\n</ConfigurationFile>",
        ),
    );
    d.set("AccessControl.AuthorizedClientsPath", json!("authorized"))
        .set("AccessControl.ReloadIntervalSeconds", json!(0));
    // A connection cap below the open-file limit would stop the exhaustion this test needs.
    if identity_server::settings::KEYS
        .iter()
        .any(|k| k.path == "Limits:MaxConnections")
    {
        d.set("Limits.MaxConnections", json!(100_000));
    }
    (d, signer)
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_stay_in_force_when_a_reload_runs_out_of_file_handles() {
    if !Path::new("/proc/self/fd").exists() {
        eprintln!("SKIPPED: /proc is needed to count the server's open files");
        return;
    }
    let (d, signer) = deployment();
    let (server, port, log) = serve_with_open_files(&d, OPEN_FILES);
    let pid = server.0.id();
    let client = https_client(&d.path().join("ca.crt"));
    assert_eq!(
        assertion_status(&client, port, &signer, "Poller2").await,
        200
    );

    let connections = exhaust_file_handles(pid, port, OPEN_FILES);
    let from = log.text().len();
    hang_up(pid);
    let keys_line = log.wait_for(from, "authorized clients", Duration::from_secs(20));
    log.wait_for(from, "access control", Duration::from_secs(20));
    drop(connections);

    // Once the handles are back, the client still gets its token.
    let start = Instant::now();
    let status = loop {
        let status = assertion_status(&client, port, &signer, "Poller2").await;
        if status == 200 || start.elapsed() > Duration::from_secs(10) {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let text = log.text();
    let reload = &text[from..];
    assert_eq!(
        status, 200,
        "private_key_jwt refused after the reload ({keys_line}):\n{reload}"
    );
    assert!(
        !keys_line.contains("keys=0"),
        "the reload emptied the key set: {keys_line}\n{reload}"
    );
    // The failed read is reported, with the folder and the OS error.
    let folder = d.path().join("authorized");
    assert!(
        reload.lines().any(|l| l.contains("ERROR")
            && l.contains(&folder.display().to_string())
            && l.contains("os error 24")),
        "no error naming {} and the OS error:\n{reload}",
        folder.display()
    );

    // The next reload, with handles to spare, reads the folder again: removing the file revokes the key.
    std::fs::remove_file(d.path().join("authorized/Poller2.pem")).expect("rm");
    let from = log.text().len();
    hang_up(pid);
    let line = log.wait_for(from, "authorized clients reloaded", Duration::from_secs(20));
    assert!(line.contains("keys=0"), "{line}");
    assert_eq!(
        assertion_status(&client, port, &signer, "Poller2").await,
        401
    );
    drop(server);
}
