//! `ids-bench dpop` and `ids-bench introspection` (issue 18), against a real `identity-server serve`
//! over keep-alive HTTPS, `connections` clients in parallel, one deployment per command.
//!
//! - `dpop`: DPoP-bound tokens/s next to plain tokens/s, rounds alternating (plain, DPoP, ...), the
//!   token signed ES256 both ways. Each DPoP request carries a new proof (ES256, new `jti`) that the
//!   server verifies and records in its replay cache. Target: DPoP >= 70% of plain.
//! - `introspection`: introspection requests/s (RFC 7662, the caller authenticated by its secret, a
//!   token of another client introspected each time: signature, claims and revocation list), next to
//!   the raw RS256 signature-verify rate of this machine's one core measured in the same run.
//!
//! Clients authenticate with `client_secret_basic` against legacy SHA-256 `HashedSecret`s, so that
//! neither figure is the secret hashing's (argon2 has its own benchmark).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use ids_devpki::{Ca, KeyKind, PfxProfile, to_pfx};
use ids_jose::DpopSigner;
use ids_pki::{Algorithm, SigningKey};

const PASSWORD: &str = "bench-password";
const SECRET: &str = "bench-secret";

/// TLS and signing PFX (`signing` key kind), `clients` secret clients (`Client0`...), the first of
/// profile `Administrator` (listed in `IntrospectionProfiles`).
fn write_deployment(dir: &Path, ca: &Ca, signing: KeyKind, clients: usize) -> anyhow::Result<()> {
    let tls = ca.issue_server(&["localhost", "127.0.0.1"], KeyKind::EcP256, 365)?;
    std::fs::write(
        dir.join("tls.pfx"),
        to_pfx(&tls, &[], "tls", PASSWORD, PfxProfile::Modern)?,
    )?;
    let key = ca.issue_signing("bench signing", signing, 365)?;
    std::fs::write(
        dir.join("signing.pfx"),
        to_pfx(&key, &[], "signing", PASSWORD, PfxProfile::Modern)?,
    )?;
    let hash =
        ids_secret::SecretHash::legacy_sha256(&ids_proto::ClientSecret::new(SECRET)).to_attribute();
    let mut xml = String::from("<ConfigurationFile>\n  <Profile Identifier=\"Administrator\" />\n");
    for i in 0..clients {
        xml.push_str(&format!(
            "  <OpenIdClient Identifier=\"Client{i}\" HashedSecret=\"{hash}\" Profile=\"Administrator\" />\n"
        ));
    }
    xml.push_str("</ConfigurationFile>\n");
    std::fs::create_dir_all(dir.join("Conf"))?;
    std::fs::write(dir.join("Conf/clients.xml"), xml)?;
    std::fs::write(
        dir.join("appsettings.json"),
        serde_json::json!({
            "IdentityServer": {
                "X509KeyFilePath": "signing.pfx",
                "X509KeyFilePassword": PASSWORD,
                "IntrospectionProfiles": ["Administrator"],
            },
            "Kestrel": { "Certificates": { "Default": { "Path": "tls.pfx", "Password": PASSWORD } } },
        })
        .to_string(),
    )?;
    Ok(())
}

fn client(ca_pem: &str, connections: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes())?])
        .http1_only()
        .pool_max_idle_per_host(connections)
        .build()?)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// One token request per client, one after the other: their secrets are then in the server's cache
/// of verified secrets (the first verification of each costs an argon2 run, and parallel first
/// attempts from one address would use up its failure budget, which is taken before a check).
async fn warm_up(http: &reqwest::Client, base: &str, clients: usize) -> anyhow::Result<()> {
    for i in 0..clients {
        let r = http
            .post(format!("{base}/connect/token"))
            .basic_auth(format!("Client{i}"), Some(SECRET))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("warm-up token request of Client{i}: HTTP {}", r.status());
        }
    }
    Ok(())
}

/// Runs `request` from `workers` loops for `seconds`: successes per second (any failure is an error:
/// the rate would measure a refusal path).
async fn hammer<F, Fut>(workers: usize, seconds: u64, request: F) -> anyhow::Result<f64>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let request = Arc::new(request);
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let begin = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (request, stop, ok, failed) =
            (request.clone(), stop.clone(), ok.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if request(w).await {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await?;
    }
    let failed = failed.load(Ordering::Relaxed);
    if failed > 0 {
        bail!("{failed} requests failed");
    }
    Ok(ok.load(Ordering::Relaxed) as f64 / begin.elapsed().as_secs_f64())
}

/// CPU time (user + system) the process `pid` used so far, in seconds (`/proc/PID/stat`).
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Clock ticks per second: 100 on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

/// `ids-bench dpop`.
pub fn dpop(server_bin: &Path, connections: usize, seconds: u64) -> anyhow::Result<()> {
    let connections = connections.max(1);
    let dir = tempfile::tempdir()?;
    let ca = Ca::new("bench CA", 365)?;
    write_deployment(dir.path(), &ca, KeyKind::EcP256, connections)?;
    let ca_pem = ca.cert.cert_pem.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (server, port) = crate::start_serve(server_bin, dir.path())?;
    let server_pid = server.0.id();
    let url = format!("https://127.0.0.1:{port}/connect/token");
    let http = client(&ca_pem, connections)?;
    runtime.block_on(warm_up(
        &http,
        &format!("https://127.0.0.1:{port}"),
        connections,
    ))?;
    let signers = |algorithm: Algorithm| -> anyhow::Result<Arc<Vec<DpopSigner>>> {
        Ok(Arc::new(
            (0..connections)
                .map(|_| {
                    let (key, _) = SigningKey::generate(algorithm)?;
                    let public = key.public_key();
                    Ok(DpopSigner::new(key, &public))
                })
                .collect::<anyhow::Result<_>>()?,
        ))
    };
    let (es256, eddsa) = (signers(Algorithm::ES256)?, signers(Algorithm::EdDSA)?);
    // Round kinds: plain; DPoP with ES256 or EdDSA proofs made before the round (what the server
    // sustains when its clients are other machines); DPoP with ES256 proofs made in the request
    // loop (the load generator's signing shares the 2 cores with the server).
    const KINDS: [&str; 4] = [
        "plain",
        "DPoP, ES256 proofs made before the round",
        "DPoP, EdDSA proofs made before the round",
        "DPoP, ES256 proofs made in the loop",
    ];
    let mut rates: [Vec<f64>; 4] = Default::default();
    // The server's CPU time per token, by kind: what it costs whatever shares the machine.
    let mut cpu_per_token: [Vec<f64>; 4] = Default::default();
    for round in 0..12 {
        let kind = round % 4;
        let keys = if kind == 2 {
            eddsa.clone()
        } else {
            es256.clone()
        };
        let premade: Arc<Vec<std::sync::Mutex<Vec<String>>>> = Arc::new(
            (0..connections)
                .map(|w| {
                    let count = if kind == 1 || kind == 2 {
                        400 * seconds as usize
                    } else {
                        0
                    };
                    let at = now();
                    std::sync::Mutex::new(
                        (0..count)
                            .filter_map(|_| keys[w].proof("POST", &url, at, None, None).ok())
                            .collect(),
                    )
                })
                .collect(),
        );
        let (http, url) = (http.clone(), url.clone());
        let cpu_before = cpu_seconds(server_pid);
        let rate = runtime.block_on(hammer(connections, seconds, move |w| {
            let (http, url, keys, premade) =
                (http.clone(), url.clone(), keys.clone(), premade.clone());
            async move {
                let mut request = http
                    .post(&url)
                    .basic_auth(format!("Client{w}"), Some(SECRET))
                    .form(&[("grant_type", "client_credentials")]);
                if kind > 0 {
                    let made = premade[w].lock().ok().and_then(|mut p| p.pop());
                    let proof = match made {
                        Some(p) => p,
                        None => match keys[w].proof("POST", &url, now(), None, None) {
                            Ok(p) => p,
                            Err(_) => return false,
                        },
                    };
                    request = request.header("dpop", proof);
                }
                match request.send().await {
                    Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                    _ => false,
                }
            }
        }))?;
        let cpu = (cpu_seconds(server_pid) - cpu_before) / (rate * seconds as f64).max(1.0);
        println!(
            "round {}: {}: {rate:.0} tokens/s, server CPU {:.0} us/token",
            round + 1,
            KINDS[kind],
            cpu * 1e6
        );
        rates[kind].push(rate);
        cpu_per_token[kind].push(cpu);
    }
    drop(server);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let plain = mean(&rates[0]);
    let plain_cpu = mean(&cpu_per_token[0]);
    println!(
        "ES256 tokens, client_secret_basic, {connections} clients, {seconds} s x 3 rounds each: plain {plain:.0} tokens/s, server CPU {:.0} us/token",
        plain_cpu * 1e6
    );
    for (kind, name) in KINDS.iter().enumerate().skip(1) {
        let rate = mean(&rates[kind]);
        let cpu = mean(&cpu_per_token[kind]);
        println!(
            "  {name}: {rate:.0} tokens/s = {:.1}% of plain (target >= 70%); server CPU {:.0} us/token = {:.1}% of plain's tokens per CPU second",
            100.0 * rate / plain.max(1.0),
            cpu * 1e6,
            100.0 * plain_cpu / cpu.max(1e-9)
        );
    }
    Ok(())
}

/// `ids-bench introspection`.
pub fn introspection(server_bin: &Path, connections: usize, seconds: u64) -> anyhow::Result<()> {
    let connections = connections.max(2);
    let dir = tempfile::tempdir()?;
    let ca = Ca::new("bench CA", 365)?;
    write_deployment(dir.path(), &ca, KeyKind::Rsa2048, connections)?;
    let ca_pem = ca.cert.cert_pem.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (server, port) = crate::start_serve(server_bin, dir.path())?;
    let base = format!("https://127.0.0.1:{port}");
    let http = client(&ca_pem, connections)?;
    runtime.block_on(warm_up(&http, &base, 2))?;
    // A token of another client to introspect.
    let token: String = runtime.block_on(async {
        let r = http
            .post(format!("{base}/connect/token"))
            .basic_auth("Client1", Some(SECRET))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await?;
        let v: serde_json::Value = r.json().await?;
        anyhow::Ok(v["access_token"].as_str().unwrap_or_default().to_string())
    })?;
    if token.is_empty() {
        bail!("no token to introspect");
    }
    let url = format!("{base}/connect/introspect");
    let rate = {
        let (http, url, token) = (http.clone(), url.clone(), token.clone());
        runtime.block_on(hammer(connections, seconds, move |_| {
            let (http, url, token) = (http.clone(), url.clone(), token.clone());
            async move {
                let answer = http
                    .post(&url)
                    .basic_auth("Client0", Some(SECRET))
                    .form(&[("token", token.as_str())])
                    .send()
                    .await;
                match answer {
                    Ok(r) if r.status().is_success() => r
                        .json::<serde_json::Value>()
                        .await
                        .is_ok_and(|v| v["active"] == serde_json::Value::Bool(true)),
                    _ => false,
                }
            }
        }))?
    };
    // Stop the server before the raw measurement: it gets the whole core.
    drop(server);
    // The server's own key, from its PFX (the one that signed `token`).
    let pfx = ids_pki::Pfx::from_file(&dir.path().join("signing.pfx"), PASSWORD)?;
    let jwks =
        ids_jose::KeySet::from_certificates([(&pfx.certificate, "signing.pfx".to_string())])?;
    let verifier = ids_jose::Verifier::new(
        jwks,
        ids_jose::Validation {
            issuer: base.clone(),
            audience: base.clone(),
            leeway_secs: 30,
        },
    );
    let begin = Instant::now();
    let mut verified = 0u64;
    let at = now();
    while begin.elapsed() < Duration::from_secs(2) {
        if verifier.verify(&token, at).is_err() {
            bail!("the raw verify failed");
        }
        verified += 1;
    }
    let raw = verified as f64 / begin.elapsed().as_secs_f64();
    println!(
        "introspection (RFC 7662) of an RS256 token, client_secret_basic, {connections} connections, {seconds} s: {rate:.0} requests/s; raw RS256 verify (ids_jose::Verifier, one core, same run): {raw:.0}/s (Ory Hydra publishes 5,109 introspections/s on 2 CPUs)"
    );
    Ok(())
}
