//! The `agent` binary as an operator runs it: `token`, `verify`, `check`, and their exit codes.

use std::process::Stdio;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;

use crate::support::{AgentDeployment, Deployment, JOB_SECRET, binary};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn agent(a: &AgentDeployment, args: &[&str], stdin: Option<&str>) -> Run {
    a.write();
    let mut child = tokio::process::Command::new(binary("agent"))
        .arg("--config-dir")
        .arg(a.path())
        .args(args)
        .env_remove("AGENT_CONFIG_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn agent");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).await.expect("write stdin");
    }
    drop(input);
    let out = child.wait_with_output().await.expect("agent output");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test]
async fn token_then_verify_through_stdin() {
    let server = Deployment::new().start().await;
    let a = AgentDeployment::new(&server.base);
    let run = agent(&a, &["token"], None).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let token = run.stdout.trim().to_string();
    assert_eq!(token.split('.').count(), 3, "a compact JWT: {token}");

    let run = agent(&a, &["verify", "-"], Some(&token)).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    // As copied from an Authorization header.
    let bearer = format!("Bearer {token}");
    assert_eq!(agent(&a, &["verify", &bearer], None).await.code, 0);
    let out: Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(out["valid"], true);
    assert_eq!(out["claims"]["client_id"], "Job");
    assert_eq!(out["header"]["alg"], "RS256");

    let run = agent(&a, &["token", "--json"], None).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let out: Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(out["token_type"], "Bearer");
    assert_eq!(out["claims"]["iss"], server.base);
    assert!(out["expires_in"].as_u64().is_some_and(|e| e > 0));
    server.stop().await;
}

#[tokio::test]
async fn verify_rejects_with_the_reason_and_exit_code_6() {
    let server = Deployment::new().start().await;
    let a = AgentDeployment::new(&server.base);
    let token = agent(&a, &["token"], None).await.stdout.trim().to_string();
    // Flip one character of the signature.
    let mut tampered = token.clone().into_bytes();
    let last = tampered.len() - 5;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).expect("ascii");
    let run = agent(&a, &["verify", &tampered], None).await;
    assert_eq!(run.code, 6, "{}", run.stderr);
    assert!(run.stderr.contains("does not verify"), "{}", run.stderr);

    let run = agent(&a, &["verify", "not-a-token"], None).await;
    assert_eq!(run.code, 6);
    assert!(run.stderr.contains("compact JWS"), "{}", run.stderr);
    server.stop().await;
}

#[tokio::test]
async fn check_reports_every_step() {
    let server = Deployment::new().start().await;
    let a = AgentDeployment::new(&server.base);
    let run = agent(&a, &["check"], None).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    for expected in [
        "ok: configuration read from",
        "tokens verified with IdentityServer:X509KeyFilePath",
        "HTTPS trusts the CA",
        "client `Job` (default): secret, from OpenId:OpenIdClients:Job",
        "server reachable and trusted",
        "client `Job`: token obtained and verified",
        "all checks passed",
    ] {
        assert!(
            run.stdout.contains(expected),
            "`{expected}` missing in:\n{}",
            run.stdout
        );
    }
    assert!(!run.stdout.contains(JOB_SECRET), "secret leaked");

    let run = agent(&a, &["check", "--offline"], None).await;
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(
        run.stdout.contains("server not contacted"),
        "{}",
        run.stdout
    );
    server.stop().await;
}

#[tokio::test]
async fn exit_codes_tell_failures_apart() {
    let server = Deployment::new().start().await;
    let base = server.base.clone();

    // 5: credentials rejected.
    let mut a = AgentDeployment::new(&base);
    a.set_agent("OpenId.OpenIdClients.Job", json!("wrong-secret"));
    let run = agent(&a, &["token"], None).await;
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert!(run.stderr.contains("invalid_client"), "{}", run.stderr);
    assert!(
        !run.stderr.contains("wrong-secret"),
        "secret leaked: {}",
        run.stderr
    );
    let run = agent(&a, &["check"], None).await;
    assert_eq!(run.code, 5, "{}", run.stdout);

    // 4: TLS trust.
    let mut a = AgentDeployment::new(&base);
    a.set("Tls.TrustedCertificates", json!(["other-ca.crt"]));
    let run = agent(&a, &["token"], None).await;
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(run.stderr.contains("not trusted"), "{}", run.stderr);

    // 2: configuration.
    let mut a = AgentDeployment::new(&base);
    a.agent_settings = json!({});
    let run = agent(&a, &["check", "--offline"], None).await;
    assert_eq!(run.code, 2, "{}", run.stdout);
    // Errors on standard error, results on standard output, in `check` too.
    assert!(
        run.stderr.contains("error:") && run.stderr.contains("OpenId:OpenIdClients"),
        "{}",
        run.stderr
    );
    assert!(!run.stdout.contains("error:"), "{}", run.stdout);

    // 2 as well: usage, as in every tool of the product (and clap's default).
    let run = agent(&a, &["tokens"], None).await;
    assert_eq!(run.code, 2, "{}", run.stderr);

    // 3: unreachable, after the retries.
    server.stop().await;
    let a = AgentDeployment::new(&base);
    let run = agent(&a, &["token"], None).await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("cannot reach the identity server"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("after 3 attempt(s)"), "{}", run.stderr);
    assert!(
        run.stderr.contains("retrying"),
        "retries are logged: {}",
        run.stderr
    );
}
