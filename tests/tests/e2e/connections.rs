//! Hostile connections (issue 14, point 1): idle HTTP/1.1 and HTTP/2 connections, silent TCP
//! connections that never start TLS, token requests whose body never ends, more connections than
//! `Limits:MaxConnections`, and the open-file limit raised at start-up.
//!
//! Every wait is bounded: a connection the server should close is given the timeout plus a margin,
//! then the test fails instead of hanging.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::support::{Deployment, JOB_SECRET, binary};

/// How long after its timeout the server may take to close a connection before the test fails.
const MARGIN: Duration = Duration::from_secs(5);

/// A TLS client trusting the test CA, offering `alpn`.
fn tls_connector(dir: &std::path::Path, alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(dir.join("ca.crt")).expect("ca") {
        roots.add(cert.expect("ca pem")).expect("root");
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

async fn tls_connect(
    dir: &std::path::Path,
    addr: SocketAddr,
    alpn: &[&[u8]],
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    tls_connector(dir, alpn).connect(name, tcp).await
}

/// Waits until the peer closes `stream` (end of file or a reset), at most `limit`.
async fn closed_within(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
    limit: Duration,
) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    let read_until_closed = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, read_until_closed)
        .await
        .ok()
        .map(|()| start.elapsed())
}

fn deployment(limits: serde_json::Value) -> Deployment {
    let mut d = Deployment::new();
    d.set("Limits", limits);
    d
}

fn secret_form() -> [(&'static str, &'static str); 3] {
    [
        ("grant_type", "client_credentials"),
        ("client_id", "Job"),
        ("client_secret", JOB_SECRET),
    ]
}

/// Idle connections of every kind are closed by the server once idle for `Limits:IdleTimeoutSeconds`:
/// TLS done and nothing sent (HTTP/1.1 and h2 by ALPN), HTTP/1.1 keep-alive after a request, HTTP/2
/// after a request. Before: never closed (one was still open after 330 s).
#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let d = deployment(json!({ "IdleTimeoutSeconds": 2 }));
    let server = d.start().await;
    let idle = Duration::from_secs(2);

    // TLS handshake done, no request, for both protocols.
    let mut silent_h1 = tls_connect(d.path(), server.addr, &[b"http/1.1"])
        .await
        .expect("tls");
    let mut silent_h2 = tls_connect(d.path(), server.addr, &[b"h2"])
        .await
        .expect("tls");

    // HTTP/1.1: one request, then the connection kept alive and left idle.
    let mut keep_alive = tls_connect(d.path(), server.addr, &[b"http/1.1"])
        .await
        .expect("tls");
    keep_alive
        .write_all(b"GET /hc HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("write");
    let mut answer = vec![0u8; 1024];
    let n = keep_alive.read(&mut answer).await.expect("read");
    assert!(
        String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer[..n])
    );

    // HTTP/2: one request, then idle. The connection future ends when the server closes it.
    let h2 = tls_connect(d.path(), server.addr, &[b"h2"])
        .await
        .expect("tls");
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(h2),
    )
    .await
    .expect("h2 handshake");
    let h2_connection = tokio::spawn(connection);
    let request = http::Request::get(format!("https://localhost:{}/hc", server.addr.port()))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .expect("request");
    let response = sender.send_request(request).await.expect("h2 request");
    assert_eq!(response.status(), 200);
    drop(response);
    let h2_after_request_started = Instant::now();

    let limit = idle + MARGIN;
    let (a, b, c) = tokio::join!(
        closed_within(&mut silent_h1, limit),
        closed_within(&mut silent_h2, limit),
        closed_within(&mut keep_alive, limit),
    );
    assert!(a.is_some(), "an idle TLS connection (http/1.1) stayed open");
    assert!(b.is_some(), "an idle TLS connection (h2) stayed open");
    assert!(
        c.is_some(),
        "an idle HTTP/1.1 keep-alive connection stayed open"
    );
    let h2_left = limit.saturating_sub(h2_after_request_started.elapsed());
    assert!(
        tokio::time::timeout(h2_left, h2_connection).await.is_ok(),
        "an idle HTTP/2 connection stayed open"
    );
    // And not before the idle timeout (a little slack for timer granularity).
    for closed in [a, b, c].into_iter().flatten() {
        assert!(closed + Duration::from_millis(600) >= idle, "{closed:?}");
    }
    // The server still serves.
    let r = server.token_post(&secret_form()).await;
    assert_eq!(r.status(), 200);
    server.stop().await;
}

/// An HTTP/2 client that grants no flow-control window holds its responses (and the connection)
/// without blocking any write: the connection is closed once no response has made progress for the
/// idle timeout. Before: held forever, with its `Limits:MaxConnections` slot.
#[tokio::test]
async fn an_http2_client_granting_no_window_is_cut_after_the_idle_timeout() {
    let d = deployment(json!({ "IdleTimeoutSeconds": 2 }));
    let server = d.start().await;
    let h2 = tls_connect(d.path(), server.addr, &[b"h2"])
        .await
        .expect("tls");
    let (mut sender, connection) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .initial_stream_window_size(0)
            .handshake(hyper_util::rt::TokioIo::new(h2))
            .await
            .expect("h2 handshake");
    let connection = tokio::spawn(connection);
    let request = http::Request::get(format!(
        "https://localhost:{}/.well-known/openid-configuration",
        server.addr.port()
    ))
    .body(http_body_util::Empty::<bytes::Bytes>::new())
    .expect("request");
    let response = sender.send_request(request).await.expect("h2 request");
    assert_eq!(response.status(), 200);
    // The body never comes (no window): the response is kept, unread.
    let closed = tokio::time::timeout(Duration::from_secs(2) + MARGIN, connection).await;
    assert!(
        closed.is_ok(),
        "an HTTP/2 connection whose client grants no window stayed open"
    );
    drop(response);
    server.stop().await;
}

/// A TCP connection that never starts TLS is closed after `Limits:TlsHandshakeTimeoutSeconds`.
#[tokio::test]
async fn a_connection_that_never_starts_tls_is_closed_after_the_handshake_timeout() {
    let d = deployment(json!({ "TlsHandshakeTimeoutSeconds": 1, "IdleTimeoutSeconds": 600 }));
    let server = d.start().await;
    let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
    // Half a ClientHello record header, then nothing.
    tcp.write_all(&[0x16, 0x03]).await.expect("write");
    let closed = closed_within(&mut tcp, Duration::from_secs(1) + MARGIN).await;
    assert!(closed.is_some(), "a stalled TLS handshake was never cut");
    server.stop().await;
}

/// A token request whose body never ends is answered 408 at `Limits:TokenRequestTimeoutSeconds`
/// (before: held forever), over HTTP/1.1 and HTTP/2.
#[tokio::test]
async fn a_token_request_whose_body_never_ends_is_cut_at_the_deadline() {
    let d = deployment(json!({ "TokenRequestTimeoutSeconds": 2, "IdleTimeoutSeconds": 600 }));
    let server = d.start().await;
    for alpn in [&b"http/1.1"[..], &b"h2"[..]] {
        let protocol = String::from_utf8_lossy(alpn).to_string();
        let (tx, rx) =
            tokio::sync::mpsc::channel::<Result<http_body::Frame<bytes::Bytes>, std::io::Error>>(1);
        tx.send(Ok(http_body::Frame::data(bytes::Bytes::from_static(
            b"grant_type=client_cre",
        ))))
        .await
        .expect("send");
        let body = http_body_util::StreamBody::new(frames(rx));
        let request = http::Request::post(format!(
            "https://localhost:{}/connect/token",
            server.addr.port()
        ))
        .header("host", format!("localhost:{}", server.addr.port()))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("content-length", "200")
        .body(body)
        .expect("request");
        let io = hyper_util::rt::TokioIo::new(
            tls_connect(d.path(), server.addr, &[alpn])
                .await
                .expect("tls"),
        );
        let started = Instant::now();
        let send = async {
            if alpn == b"h2" {
                let (mut sender, connection) =
                    hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                        .await
                        .expect("h2 handshake");
                tokio::spawn(connection);
                sender.send_request(request).await
            } else {
                let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
                    .await
                    .expect("http/1.1 handshake");
                tokio::spawn(connection);
                sender.send_request(request).await
            }
        };
        let response = tokio::time::timeout(Duration::from_secs(2) + MARGIN, send)
            .await
            .unwrap_or_else(|_| {
                panic!("{protocol}: a token request with an unfinished body was held")
            })
            .expect("response");
        assert_eq!(response.status(), 408, "{protocol}");
        assert!(
            started.elapsed() >= Duration::from_millis(1500),
            "{protocol}"
        );
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .expect("body")
            .to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(body["error"], "invalid_request", "{body}");
        assert!(
            body["error_description"]
                .as_str()
                .is_some_and(|d| d.contains("2 s")),
            "{body}"
        );
        drop(tx);
    }
    server.stop().await;
}

fn frames(
    mut rx: tokio::sync::mpsc::Receiver<Result<http_body::Frame<bytes::Bytes>, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<http_body::Frame<bytes::Bytes>, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Over `Limits:MaxConnections`, a new connection is closed at once (not queued until a client
/// times out); once connections go away, new clients are served again.
#[tokio::test]
async fn connections_over_the_cap_are_refused_at_once_and_room_is_made_again() {
    let d = deployment(json!({ "MaxConnections": 20, "IdleTimeoutSeconds": 600 }));
    let server = d.start().await;
    // The test client's pooled connection (from start-up) may hold one slot: open until refused.
    let mut held = Vec::new();
    let mut refused = None;
    for _ in 0..25 {
        let started = Instant::now();
        match tokio::time::timeout(
            Duration::from_secs(5),
            tls_connect(d.path(), server.addr, &[b"http/1.1"]),
        )
        .await
        {
            Ok(Ok(mut c)) => {
                // A refused connection may finish the handshake in the kernel's backlog before
                // the server drops it: it then reads end of file at once.
                if closed_within(&mut c, Duration::from_millis(300))
                    .await
                    .is_some()
                {
                    refused = Some(started.elapsed());
                    break;
                }
                held.push(c);
            }
            Ok(Err(_)) => {
                refused = Some(started.elapsed());
                break;
            }
            Err(_) => panic!("a connection over the cap was left waiting"),
        }
    }
    let refused = refused.expect("no connection refused over Limits:MaxConnections 20");
    assert!(
        held.len() >= 19 && held.len() <= 20,
        "held {} connections",
        held.len()
    );
    assert!(
        refused < Duration::from_secs(2),
        "refused after {refused:?}"
    );
    // Room again: a new client gets a token.
    held.truncate(held.len() - 5);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let client = crate::support::https_client(&d.path().join("ca.crt"));
    let r = client
        .post(server.url("/connect/token"))
        .form(&secret_form())
        .send()
        .await
        .expect("token request");
    assert_eq!(r.status(), 200);
    drop(held);
    server.stop().await;
}

/// `serve` raises the soft open-file limit to the hard limit, and derives `Limits:MaxConnections` from
/// it (logged at start-up).
#[test]
fn serve_raises_the_open_file_limit_and_derives_max_connections_from_it() {
    if !std::path::Path::new("/proc/self/limits").exists() {
        println!(
            "SKIPPED serve_raises_the_open_file_limit...: no /proc/self/limits on this system"
        );
        return;
    }
    let d = Deployment::new();
    d.write();
    let dir = d.path().to_str().expect("utf-8").to_string();
    let server = binary("identity-server");
    let script = format!(
        "ulimit -S -n 256 && exec '{}' serve --config-dir '{dir}' --urls https://127.0.0.1:0",
        server.display()
    );
    let mut child = crate::cli::Running(
        std::process::Command::new("sh")
            .args(["-c", &script])
            .env("RUST_LOG", "info")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let mut reader = std::io::BufReader::new(stdout);
    let mut line = String::new();
    loop {
        line.clear();
        let n = std::io::BufRead::read_line(&mut reader, &mut line).expect("read");
        assert!(n > 0, "server exited: {}", child.stop_and_log());
        if line.starts_with("listening on ") {
            break;
        }
    }
    // "listening on" is printed once the port is bound, just before the server starts serving.
    let mut numbers = Vec::new();
    let mut open_files = String::new();
    for _ in 0..100 {
        let limits =
            std::fs::read_to_string(format!("/proc/{}/limits", child.0.id())).expect("limits");
        open_files = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .expect("Max open files line")
            .to_string();
        numbers = open_files
            .split_whitespace()
            .skip(3)
            .take(2)
            .map(str::to_string)
            .collect();
        if numbers.len() == 2 && numbers[0] == numbers[1] {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(numbers.len(), 2, "{open_files}");
    assert_eq!(
        numbers[0], numbers[1],
        "soft limit not raised: {open_files}"
    );
    let hard: u64 = numbers[1].parse().unwrap_or(u64::MAX);
    let log = child.stop_and_log();
    let line = log
        .lines()
        .find(|l| l.contains("max_connections="))
        .unwrap_or_else(|| panic!("no max_connections in the log:\n{log}"));
    let value: u64 = line
        .split("max_connections=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("max_connections value");
    assert!(value < hard && value >= 16, "{line} (hard limit {hard})");
    assert!(log.contains("open-file limit raised from 256"), "{log}");
}
