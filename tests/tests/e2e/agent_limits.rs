//! The agent bounds what it reads (issue 14, point 7): a hostile HTTPS server the agent trusts answers
//! with a 400 MB discovery document, token response or error body (streamed, never held in memory);
//! `agent token` refuses it with a message naming the URL and the limit, and its peak resident memory
//! stays under 64 MiB.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use ids_devpki::{Ca, KeyKind};
use serde_json::json;

use crate::support::{AgentDeployment, PASSWORD, binary, python_with};

/// What the hostile server sends.
const HUGE: u64 = 400 * 1024 * 1024;

/// How the hostile server answers a request.
#[derive(Clone, Debug)]
pub(crate) enum Answer {
    /// 200 with this JSON document.
    Json(String),
    /// The discovery document of this server, normal size.
    Discovery,
    /// A token response of normal size (its token is not a valid JWT).
    Token,
    /// `HUGE` bytes of JSON-looking text with this status, announced by `Content-Length`.
    HugeWithLength(u16),
    /// `HUGE` bytes with this status, `Transfer-Encoding: chunked` (no size announced).
    HugeChunked(u16),
    /// `HUGE` bytes with this status, delimited by the end of the connection.
    HugeUntilClose(u16),
}

/// An HTTPS server on 127.0.0.1 with a certificate from its own CA (`ca_pem`), answering discovery with
/// `discovery`, the token endpoint with `token` and the JWKS with `jwks`. Threads serve the
/// connections; each stops when the client goes away.
pub(crate) fn hostile_server(discovery: Answer, token: Answer, jwks: Answer) -> (String, String) {
    let ca = Ca::new("hostile CA", 1).expect("ca");
    let leaf = ca
        .issue_server(&["127.0.0.1"], KeyKind::EcP256, 1)
        .expect("server certificate");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![rustls::pki_types::CertificateDer::from(
                leaf.cert_der.clone(),
            )],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf.key_pkcs8.to_vec().into()),
        )
        .expect("server config");
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().expect("addr").port()
    );
    let issuer = base.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let config = config.clone();
            let issuer = issuer.clone();
            let answers = [discovery.clone(), token.clone(), jwks.clone()];
            std::thread::spawn(move || {
                let _ = serve(stream, config, &issuer, answers);
            });
        }
    });
    (base, ca.cert.cert_pem.clone())
}

fn serve(
    stream: TcpStream,
    config: Arc<rustls::ServerConfig>,
    issuer: &str,
    [discovery, token, jwks]: [Answer; 3],
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    stream.set_write_timeout(Some(Duration::from_secs(60)))?;
    let connection = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
    let mut tls = BufReader::new(rustls::StreamOwned::new(connection, stream));
    loop {
        // The request head, then the body it announces.
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if tls.read_line(&mut line)? == 0 {
                return Ok(());
            }
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let length = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .and_then(|v| v.trim().parse::<usize>().ok())
            })
            .unwrap_or(0);
        let mut body = vec![0; length];
        tls.read_exact(&mut body)?;
        let path = head.split_whitespace().nth(1).unwrap_or_default();
        let answer = if path.ends_with("/connect/token") {
            &token
        } else if path.ends_with("/jwks") {
            &jwks
        } else {
            &discovery
        };
        let out = tls.get_mut();
        let (status, framing, chunked) = match *answer {
            Answer::Json(ref doc) => {
                ok_json(out, doc)?;
                continue;
            }
            Answer::Discovery => {
                let doc = json!({
                    "issuer": issuer,
                    "token_endpoint": format!("{issuer}/connect/token"),
                    "jwks_uri": format!("{issuer}/.well-known/openid-configuration/jwks"),
                });
                ok_json(out, &doc.to_string())?;
                continue;
            }
            Answer::Token => {
                ok_json(
                    out,
                    r#"{"access_token":"e30.e30.AA","token_type":"Bearer","expires_in":60}"#,
                )?;
                continue;
            }
            Answer::HugeWithLength(status) => (status, format!("Content-Length: {HUGE}"), false),
            Answer::HugeChunked(status) => (status, "Transfer-Encoding: chunked".into(), true),
            Answer::HugeUntilClose(status) => (status, "Connection: close".into(), false),
        };
        write!(
            out,
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n{framing}\r\n\r\n"
        )?;
        return stream_huge(out, chunked);
    }
}

/// A 200 answer with the JSON document `doc`.
fn ok_json(out: &mut impl std::io::Write, doc: &str) -> std::io::Result<()> {
    write!(
        out,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{doc}",
        doc.len()
    )?;
    out.flush()
}

/// `HUGE` bytes of `{"access_token":"aaaa...`, 64 KiB at a time, until sent or the client leaves.
fn stream_huge(out: &mut impl std::io::Write, chunked: bool) -> std::io::Result<()> {
    let mut block = vec![b'a'; 64 * 1024];
    block[..17].copy_from_slice(br#"{"access_token":""#);
    let mut sent = 0;
    while sent < HUGE {
        if chunked {
            write!(out, "{:x}\r\n", block.len())?;
        }
        out.write_all(&block)?;
        if chunked {
            out.write_all(b"\r\n")?;
        }
        block[..17].fill(b'a');
        sent += block.len() as u64;
    }
    if chunked {
        out.write_all(b"0\r\n\r\n")?;
    }
    out.flush()
}

/// Prints the peak resident memory (KiB) of the one child it runs, after the child's own output.
const PEAK_RSS: &str = r#"
import resource, subprocess, sys
try:
    code = subprocess.run(sys.argv[1:], timeout=90).returncode
except subprocess.TimeoutExpired:
    code = 124
sys.stderr.write("\npeak_rss_kib=%d\n" % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(code)
"#;

/// An agent folder for the hostile server at `base`, trusting its CA `ca_pem`, without retries.
pub(crate) fn hostile_agent(base: &str, ca_pem: &str) -> AgentDeployment {
    let mut a = AgentDeployment::new(base);
    std::fs::write(a.path().join("hostile-ca.crt"), ca_pem).expect("write CA");
    a.set("Tls.TrustedCertificates", json!(["hostile-ca.crt"]))
        .set("Http.Retries", json!(0))
        .set("Http.TimeoutSeconds", json!(60));
    a
}

/// Runs `agent token` against `base` through the `PEAK_RSS` wrapper (tokens verified with the JWKS when
/// `jwks`): exit code, stderr, peak RSS in KiB.
fn agent_token_peak_rss(base: &str, ca_pem: &str, jwks: bool) -> (i32, String, u64) {
    let mut a = hostile_agent(base, ca_pem);
    if jwks {
        a.set("IdentityServer", json!({ "TokenValidation": "Jwks" }));
    }
    a.write();
    let out = Command::new("python3")
        .arg("-c")
        .arg(PEAK_RSS)
        .arg(binary("agent"))
        .arg("--config-dir")
        .arg(a.path())
        .arg("token")
        .current_dir(a.path())
        .env_remove("AGENT_CONFIG_DIR")
        .env("TEST_PFX_PASSWORD", PASSWORD)
        .stdin(Stdio::null())
        .output()
        .expect("run python3");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let peak = stderr
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("peak_rss_kib="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak_rss_kib line:\n{stderr}"));
    (out.status.code().unwrap_or(-1), stderr, peak)
}

#[test]
fn agent_refuses_huge_answers_without_reading_them() {
    if !python_with(
        "resource",
        "agent_refuses_huge_answers_without_reading_them",
    ) {
        return;
    }
    use Answer::{Discovery, HugeChunked, HugeUntilClose, HugeWithLength, Token};
    let token_url = "/connect/token";
    let cases = [
        (
            "token response announced as 400 MB",
            [Discovery, HugeWithLength(200), Discovery],
            token_url,
        ),
        (
            "token response of 400 MB, chunked",
            [Discovery, HugeChunked(200), Discovery],
            token_url,
        ),
        (
            "error body of 400 MB",
            [Discovery, HugeChunked(400), Discovery],
            token_url,
        ),
        (
            "server error body of 400 MB",
            [Discovery, HugeUntilClose(503), Discovery],
            token_url,
        ),
        (
            "discovery document of 400 MB",
            [HugeUntilClose(200), Discovery, Discovery],
            "/.well-known/openid-configuration",
        ),
        (
            "JWKS of 400 MB",
            [Discovery, Token, HugeUntilClose(200)],
            "/.well-known/openid-configuration/jwks",
        ),
    ];
    let mut failures = Vec::new();
    for (what, [discovery, token, jwks], path) in cases {
        let uses_jwks = !matches!(jwks, Answer::Discovery);
        let (base, ca) = hostile_server(discovery, token.clone(), jwks);
        let (code, stderr, peak_kib) = agent_token_peak_rss(&base, &ca, uses_jwks);
        let url = format!("{base}{path}");
        eprintln!(
            "{what}: exit {code}, peak RSS {} MiB: {}",
            peak_kib / 1024,
            stderr
                .lines()
                .find(|l| l.starts_with("error:"))
                .unwrap_or_default()
        );
        if code == 0 {
            failures.push(format!("{what}: the agent succeeded:\n{stderr}"));
        }
        if peak_kib >= 64 * 1024 {
            failures.push(format!(
                "{what}: peak resident memory {} MiB (limit 64 MiB)",
                peak_kib / 1024
            ));
        }
        // A 5xx body is only summarised in the message: cut to the limit, no error of its own.
        let expected: &[&str] = if matches!(token, Answer::HugeUntilClose(503)) {
            &[url.as_str(), "503"]
        } else {
            &[url.as_str(), "1 MiB"]
        };
        if !expected.iter().all(|e| stderr.contains(e)) {
            failures.push(format!(
                "{what}: the message does not name {expected:?}:\n{stderr}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
