//! What several servers share through PostgreSQL (issue 16): the `private_key_jwt` replay cache and the
//! failed-authentication budget per source address, and how the servers behave while the database is
//! away (private_key_jwt fails closed with 503 + `Retry-After`, secret clients keep getting tokens, the
//! servers recover by themselves, the outage is logged once). Two servers run on one throwaway
//! PostgreSQL cluster with one issuer (`ApplicationUri`), as behind a load balancer; without the
//! PostgreSQL binaries each test prints SKIPPED.

use std::time::{Duration, Instant};

use ids_jose::AssertionSigner;
use serde_json::json;

use crate::client_keys::{assertion_request, poller2};
use crate::pg::TestPostgres;
use crate::support::{Deployment, JOB_SECRET, Server, unix_now};

/// The issuer both servers share, as behind a load balancer: an assertion's `aud` is valid on either.
const ISSUER: &str = "https://ids.example.test";

fn token_endpoint() -> String {
    format!("{ISSUER}/connect/token")
}

/// A deployment on database `db` of `pg` with the client `Poller2` (private_key_jwt) and `Job`
/// (secret); returns it and the client's signer.
fn shared_deployment(pg: &TestPostgres, db: &str) -> (Deployment, AssertionSigner) {
    pg.create_database(db);
    let mut d = Deployment::new();
    d.set("ApplicationUri", json!(ISSUER));
    d.set(
        "Store",
        json!({
            "Provider": "PostgreSql",
            "ConnectionString": pg.socket_connection_string(db),
        }),
    );
    let signer = poller2(&d);
    d.write();
    (d, signer)
}

fn fresh(signer: &AssertionSigner) -> String {
    signer
        .sign("Poller2", &token_endpoint(), unix_now())
        .expect("sign")
}

async fn secret_token(server: &Server, secret: &str) -> reqwest::Response {
    server
        .token_post(&[
            ("grant_type", "client_credentials"),
            ("client_id", "Job"),
            ("client_secret", secret),
        ])
        .await
}

/// Waits until a fresh assertion gets a token from `server` again (the monitor reconnects by itself).
async fn wait_for_recovery(server: &Server, signer: &AssertionSigner) {
    let start = Instant::now();
    loop {
        let (status, body) = assertion_request(server, &fresh(signer)).await;
        if status == 200 {
            return;
        }
        assert_eq!(status, 503, "{body}");
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "private_key_jwt did not recover within 40 s of PostgreSQL's return"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assertion_accepted_by_one_server_is_refused_by_the_other() {
    let Some(pg) = TestPostgres::start("an_assertion_accepted_by_one_server") else {
        return;
    };
    let (d, signer) = shared_deployment(&pg, "ids");
    let a = d.start().await;
    let b = d.start().await;
    let assertion = fresh(&signer);
    let (status, body) = assertion_request(&a, &assertion).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = assertion_request(&b, &assertion).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "the assertion replayed to the other server is refused: {body}"
    );
    // Not for another reason: a fresh assertion is accepted by B, then refused by A.
    let other = fresh(&signer);
    assert_eq!(assertion_request(&b, &other).await.0, 200);
    assert_eq!(assertion_request(&a, &other).await.0, 401);
    // Two rows, no jti in clear; the data folder's journal is not used.
    assert_eq!(pg.psql("ids", "SELECT count(*) FROM ids_replay"), "2");
    assert!(!d.path().join("data/replay/journal").exists());
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_authentications_spread_over_two_servers_share_one_budget() {
    let Some(pg) = TestPostgres::start("failed_authentications_spread") else {
        return;
    };
    let (mut d, _) = shared_deployment(&pg, "ids");
    d.set("IdentityServer.FailedAuthenticationsPerMinute", json!(4));
    d.write();
    let a = d.start().await;
    let b = d.start().await;
    let mut statuses = Vec::new();
    for i in 0..8 {
        let server = if i % 2 == 0 { &a } else { &b };
        let r = secret_token(server, "guess").await;
        if r.status() == 429 {
            assert!(r.headers().get("retry-after").is_some());
        }
        statuses.push(r.status().as_u16());
    }
    assert_eq!(&statuses[..4], &[401; 4], "{statuses:?}");
    assert!(
        statuses[4..].iter().all(|s| *s == 429),
        "4 failures a minute in total across both servers, not 4 each: {statuses:?}"
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_away_fails_private_key_jwt_closed_and_the_servers_recover_by_themselves() {
    let Some(pg) = TestPostgres::start("postgresql_away_fails_closed") else {
        return;
    };
    let (d, signer) = shared_deployment(&pg, "ids");
    let a = d.start().await;
    let b = d.start().await;
    assert_eq!(assertion_request(&a, &fresh(&signer)).await.0, 200);
    pg.stop();
    for server in [&a, &b] {
        let r = server
            .token_post(&[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", ids_jose::assertion::ASSERTION_TYPE),
                ("client_assertion", &fresh(&signer)),
            ])
            .await;
        assert_eq!(r.status(), 503, "private_key_jwt fails closed");
        assert_eq!(
            r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
            Some("5")
        );
        // A secret client still gets a token, verified for the first time on B (the failure budget
        // falls back to the server's own).
        let r = secret_token(server, JOB_SECRET).await;
        assert_eq!(r.status(), 200);
    }
    pg.ctl_start();
    wait_for_recovery(&a, &signer).await;
    wait_for_recovery(&b, &signer).await;
    a.stop().await;
    b.stop().await;
}

/// The server binary's log while PostgreSQL goes away under requests and comes back: one line for the
/// outage, one for the return, however many requests were refused meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outage_and_the_return_are_logged_once_each() {
    let Some(pg) = TestPostgres::start("the_outage_is_logged_once") else {
        return;
    };
    let (d, signer) = shared_deployment(&pg, "ids");
    let (server, port, client) = crate::cli::serve(&d);
    let post = |assertion: String| {
        let client = client.clone();
        async move {
            client
                .post(format!("https://127.0.0.1:{port}/connect/token"))
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_assertion_type", ids_jose::assertion::ASSERTION_TYPE),
                    ("client_assertion", &assertion),
                ])
                .send()
                .await
                .expect("token request")
                .status()
                .as_u16()
        }
    };
    assert_eq!(post(fresh(&signer)).await, 200);
    pg.stop();
    for _ in 0..20 {
        assert_eq!(post(fresh(&signer)).await, 503);
    }
    pg.ctl_start();
    let start = Instant::now();
    while post(fresh(&signer)).await != 200 {
        assert!(start.elapsed() < Duration::from_secs(40), "no recovery");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let log = server.stop_and_log();
    let down = log.matches("is unavailable").count();
    let up = log.matches("is available again").count();
    assert_eq!((down, up), (1, 1), "{log}");
    assert!(!log.contains("replay cache is unavailable"), "{log}");
}

/// Each server deletes expired replay entries with its own clock: one whose clock runs ahead must not
/// delete an entry another server still needs (regression: a server 20 s ahead deleted the row 20 s
/// before the assertion stopped being acceptable elsewhere, and the replay was accepted there).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_whose_clock_runs_ahead_does_not_reopen_a_replay_window() {
    use identity_server::oauth::client_keys::{LEEWAY, MemoryReplayCache, ReplayCache};
    use identity_server::store::postgres::{PgReplayCache, PgStore, replay};
    use std::sync::Arc;

    let Some(pg) = TestPostgres::start("store_shared_skew") else {
        return;
    };
    let (d, _signer) = shared_deployment(&pg, "ids");
    let settings = identity_server::Settings::load_with(d.path(), &[], None).expect("settings");
    let pg_settings = settings.store.postgres().expect("PostgreSql store");
    let store = Arc::new(PgStore::new(pg_settings).expect("store"));
    store.prepare().await.expect("schema");
    let now = unix_now();
    let exp = now + 60;
    // Server B accepts the assertion.
    let b = PgReplayCache::new(store.clone(), MemoryReplayCache::new(1000, 100));
    assert!(
        b.first_use("Poller2", "jti-1", exp, now)
            .await
            .expect("first use")
    );
    // Later, server A (clock 20 s ahead) runs its clean-up when, by its clock, the entry is over.
    let refuse_until = exp + LEEWAY;
    replay::delete_expired(&store, refuse_until + 10)
        .await
        .expect("clean-up");
    // By server C's clock (a fresh server, nothing in its memory) the assertion is still acceptable
    // for 10 s: the replay must be refused.
    let c = PgReplayCache::new(store.clone(), MemoryReplayCache::new(1000, 100));
    assert!(
        !c.first_use("Poller2", "jti-1", exp, refuse_until - 10)
            .await
            .expect("answer"),
        "the replay was accepted after a clean-up by a clock running ahead"
    );
    // Well past every clock's window, the entry goes.
    let removed = replay::delete_expired(&store, refuse_until + 3600)
        .await
        .expect("clean-up");
    assert_eq!(removed, 1);
}

/// A TCP relay to PostgreSQL that can stop relaying without closing anything: what a database host
/// that loses power or a network partition looks like from the server (no FIN, no RST).
struct SilentRelay {
    port: u16,
    paused: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl SilentRelay {
    async fn start(upstream: u16) -> SilentRelay {
        use std::sync::atomic::{AtomicBool, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let paused = std::sync::Arc::new(AtomicBool::new(false));
        let p = paused.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                for (mut from, mut to) in [
                    (
                        Box::new(cr) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
                        Box::new(sw) as Box<dyn tokio::io::AsyncWrite + Unpin + Send>,
                    ),
                    (Box::new(sr) as _, Box::new(cw) as _),
                ] {
                    let p = p.clone();
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let Ok(n) = from.read(&mut buf).await else {
                                return;
                            };
                            if n == 0 {
                                return;
                            }
                            // While paused, hold what arrived: nothing goes on, nothing is closed.
                            while p.load(Ordering::Acquire) {
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                            if to.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            }
        });
        SilentRelay { port, paused }
    }

    fn pause(&self, paused: bool) {
        self.paused
            .store(paused, std::sync::atomic::Ordering::Release);
    }
}

/// A database that goes silent (no answer, no closed connection) is noticed within the statement
/// timeout plus the connect timeout: private_key_jwt answers 503 instead of hanging (regression: the
/// requests waited on the silent connection for as long as TCP kept it, ~15 minutes), and the server
/// recovers by itself when the database answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_goes_silent_is_503_within_the_timeouts_and_recovers() {
    let Some(pg) = TestPostgres::start_tcp("store_shared_silent") else {
        return;
    };
    pg.create_database("ids");
    let relay = SilentRelay::start(pg.port).await;
    let mut d = Deployment::new();
    d.set("ApplicationUri", json!(ISSUER));
    d.set(
        "Store",
        json!({
            "Provider": "PostgreSql",
            "ConnectionString": format!(
                "host=127.0.0.1 port={} user={} dbname=ids sslmode=disable",
                relay.port, pg.user
            ),
            "StatementTimeoutSeconds": 2,
            "ConnectTimeoutSeconds": 2,
        }),
    );
    let signer = poller2(&d);
    d.write();
    let server = d.start().await;
    assert_eq!(assertion_request(&server, &fresh(&signer)).await.0, 200);

    relay.pause(true);
    let started = Instant::now();
    let answer = tokio::time::timeout(
        Duration::from_secs(15),
        assertion_request(&server, &fresh(&signer)),
    )
    .await;
    let (status, body) = answer.expect("private_key_jwt hung on a silent database");
    assert_eq!(status, 503, "{body}");
    assert!(started.elapsed() < Duration::from_secs(15));
    // Marked down: the next ones are answered at once, and a secret client still gets its token.
    let started = Instant::now();
    assert_eq!(assertion_request(&server, &fresh(&signer)).await.0, 503);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(secret_token(&server, JOB_SECRET).await.status(), 200);

    relay.pause(false);
    wait_for_recovery(&server, &signer).await;
    server.stop().await;
}
