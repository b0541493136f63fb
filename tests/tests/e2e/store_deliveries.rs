//! Deliveries in the shared PostgreSQL store (`Store:Provider PostgreSql`): several real servers on one
//! throwaway cluster (`pg::TestPostgres`) see each other's deliveries, one id ends with one record
//! whichever server receives it, a cut or a dead server's upload leaves nothing and can be retried,
//! the quota is one quota, the database going away is a 503, the content rows are never plaintext,
//! `deliveries list|export` and `store import --from-folder` work on it, and a large delivery keeps
//! the server's memory flat. Without PostgreSQL binaries each test prints SKIPPED.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ids_devpki::KeyKind;
use serde_json::{Value, json};

use crate::pg::TestPostgres;
use crate::support::{
    Deployment, JOB_SECRET, PASSWORD, Server, binary, free_port, project_pfx, wait_for,
};

const MARKER: &[u8] = b"PLAINTEXT-MARKER-7e2a";
/// The secret of the `Legacy` client (profile `Reader`) of the default XML.
const READER_SECRET: &str = "secret";

/// `len` bytes that vary with `seed`, with [`MARKER`] every 4 KiB (when there is room).
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

/// `Repr-Digest` of the bytes `feed` writes, computed by the `openssl` binary (streamed).
fn sha256_of(feed: impl FnOnce(&mut dyn std::io::Write) + Send + 'static) -> String {
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

fn sha256_header(data: &[u8]) -> String {
    let owned = data.to_vec();
    sha256_of(move |w| w.write_all(&owned).expect("write"))
}

/// A deployment on database `db` of `pg` with the delivery certificate of `pfx_from` (every server
/// of a deployment shares it), `Deliveries` settings and `Reader` as reading profile.
fn pg_server(
    pg: &TestPostgres,
    db: &str,
    pfx_from: Option<&Deployment>,
    deliveries: Value,
) -> Deployment {
    let mut d = Deployment::new();
    match pfx_from {
        Some(first) => {
            std::fs::copy(
                first.path().join("server-encryption.pfx"),
                d.path().join("server-encryption.pfx"),
            )
            .expect("copy pfx");
        }
        None => {
            project_pfx(d.path(), "server-encryption", KeyKind::Rsa2048);
        }
    }
    let mut deliveries = deliveries;
    deliveries["ReadProfiles"] = json!(["Reader"]);
    d.set(
        "EncryptionCertificate",
        json!({ "File": "server-encryption.pfx", "Password": PASSWORD }),
    )
    .set("Deliveries", deliveries)
    .set(
        "Store",
        json!({ "Provider": "PostgreSql", "ConnectionString": pg.socket_connection_string(db) }),
    );
    d.write();
    d
}

async fn token(server: &Server, client: &str, secret: &str) -> String {
    let r = server
        .token_post(&[
            ("grant_type", "client_credentials"),
            ("client_id", client),
            ("client_secret", secret),
        ])
        .await;
    assert_eq!(r.status(), 200, "token for {client}");
    let v: Value = r.json().await.expect("json");
    v["access_token"].as_str().expect("token").to_string()
}

/// A token from the server process at `base` (its issuer is its own address).
async fn token_from(client: &reqwest::Client, base: &str, id: &str, secret: &str) -> String {
    let r = client
        .post(format!("{base}/connect/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(r.status(), 200, "token for {id}");
    r.json::<Value>().await.expect("json")["access_token"]
        .as_str()
        .expect("token")
        .to_string()
}

async fn put(server: &Server, token: &str, id: &str, body: Vec<u8>) -> reqwest::Response {
    server
        .client
        .put(server.url(&format!("/api/deliveries/{id}?name=data.bin")))
        .bearer_auth(token)
        .header("repr-digest", sha256_header(&body))
        .body(body)
        .send()
        .await
        .expect("PUT")
}

async fn get(server: &Server, path: &str, token: &str) -> reqwest::Response {
    server
        .client
        .get(server.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET")
}

fn server_command(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(binary("identity-server"))
        .args(args)
        .arg("--config-dir")
        .arg(dir)
        .stdin(Stdio::null())
        .env_remove("PGPASSWORD")
        .output()
        .expect("run identity-server")
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A request body: `len` generated bytes (block `i` of 64 KiB from [`block`]), of which only the
/// first `stop_after` are sent; then the body fails (`cut`) or waits for ever.
struct Generated {
    len: u64,
    sent: u64,
    seed: u8,
    stop_after: u64,
    cut: bool,
}

const BLOCK: usize = 64 * 1024;

/// Block `index` of a generated body: varied bytes with [`MARKER`] at its start.
fn block(seed: u8, index: u64) -> Vec<u8> {
    let mut b: Vec<u8> = (0..BLOCK)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed) ^ (index as u8))
        .collect();
    b[..MARKER.len()].copy_from_slice(MARKER);
    b
}

/// Writes the `len` generated bytes of `seed` to `w`.
fn generate(seed: u8, len: u64, w: &mut dyn std::io::Write) {
    let mut at = 0u64;
    while at < len {
        let b = block(seed, at / BLOCK as u64);
        let n = (len - at).min(BLOCK as u64) as usize;
        w.write_all(&b[..n]).expect("write");
        at += n as u64;
    }
}

impl Generated {
    /// All `len` bytes of `seed`.
    fn whole(seed: u8, len: u64) -> Generated {
        Generated::stopping(seed, len, len, false)
    }

    /// The first `stop_after` bytes, then a failure (`cut`) or a wait for ever.
    fn stopping(seed: u8, len: u64, stop_after: u64, cut: bool) -> Generated {
        Generated {
            len,
            sent: 0,
            seed,
            stop_after,
            cut,
        }
    }
}

impl http_body::Body for Generated {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, std::io::Error>>> {
        if self.sent >= self.len {
            return std::task::Poll::Ready(None);
        }
        if self.sent >= self.stop_after {
            if self.cut {
                return std::task::Poll::Ready(Some(Err(std::io::Error::other("cut"))));
            }
            return std::task::Poll::Pending;
        }
        let b = block(self.seed, self.sent / BLOCK as u64);
        let n = (self.len - self.sent).min(BLOCK as u64) as usize;
        self.sent += n as u64;
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(bytes::Bytes::from(
            b[..n].to_vec(),
        )))))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.len - self.sent)
    }
}

/// A PUT of generated content to `base` (its whole `len`, or only `stop_after` bytes of it).
fn generated_put(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    id: &str,
    body: Generated,
) -> tokio::task::JoinHandle<Result<(u16, Value), String>> {
    let (seed, len) = (body.seed, body.len);
    let digest = sha256_of(move |w| generate(seed, len, w));
    let request = client
        .put(format!("{base}/api/deliveries/{id}?name=big.bin"))
        .bearer_auth(token)
        .header("repr-digest", digest)
        .body(reqwest::Body::wrap(body));
    tokio::spawn(async move {
        let r = request.send().await.map_err(|e| format!("{e:?}"))?;
        let status = r.status().as_u16();
        Ok((status, r.json::<Value>().await.unwrap_or(Value::Null)))
    })
}

fn count(pg: &TestPostgres, db: &str, sql: &str) -> i64 {
    pg.psql(db, sql).parse().expect("a number")
}

/// The marker as a `bytea` literal, for `position(... IN data)`.
fn marker_bytea() -> String {
    let hex: String = MARKER.iter().map(|b| format!("{b:02x}")).collect();
    format!("'\\x{hex}'::bytea")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delivery_through_one_server_is_found_and_exported_by_another_and_the_cli() {
    let Some(pg) = TestPostgres::start("store_deliveries_shared") else {
        return;
    };
    pg.create_database("ids");
    let da = pg_server(&pg, "ids", None, json!({}));
    let db = pg_server(&pg, "ids", Some(&da), json!({}));
    let a = da.start().await;
    let b = db.start().await;
    let job_a = token(&a, "Job", JOB_SECRET).await;
    let job_b = token(&b, "Job", JOB_SECRET).await;
    let reader_b = token(&b, "Legacy", READER_SECRET).await;

    // 3 MiB + 5 bytes: several chunks, the last one short.
    let data = content(3 * 1024 * 1024 + 5, 1);
    let r = put(&a, &job_a, "shared-1", data.clone()).await;
    assert_eq!(r.status(), 201);
    let first: Value = r.json().await.expect("json");

    // Server B finds it, lists it and serves the same bytes.
    let r = get(&b, "/api/deliveries/shared-1", &job_b).await;
    assert_eq!(r.status(), 200);
    let r = get(&b, "/api/deliveries", &reader_b).await;
    let listed: Value = r.json().await.expect("json");
    assert_eq!(
        listed["deliveries"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    let r = get(&b, "/api/deliveries/shared-1/content", &reader_b).await;
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.expect("body").as_ref() == data.as_slice());

    // The CLI with the PostgreSQL settings lists and exports it, byte-identical.
    let out = server_command(db.path(), &["deliveries", "list", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let cli: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(cli["deliveries"][0]["sha256"], first["sha256"], "{cli}");
    let out = server_command(db.path(), &["deliveries", "export", "shared-1", "--stdout"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(out.stdout == data);

    // The same id with the same file through B: one record, 200 with the first one.
    let r = put(&b, &job_b, "shared-1", data.clone()).await;
    assert_eq!(r.status(), 200);
    let again: Value = r.json().await.expect("json");
    assert_eq!(again["received_at"], first["received_at"]);
    // Another file under that id: 409 delivery_conflict.
    let r = put(&b, &job_b, "shared-1", content(100, 2)).await;
    assert_eq!(r.status(), 409);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"], "delivery_conflict");
    assert_eq!(count(&pg, "ids", "SELECT count(*) FROM ids_deliveries"), 1);

    // The same id sent to both servers at once: one record; the other answer is 200 with it, or
    // 409 delivery_in_progress, and then 200 once retried.
    let racing = content(2 * 1024 * 1024, 3);
    let (ra, rb) = tokio::join!(
        put(&a, &job_a, "race-1", racing.clone()),
        put(&b, &job_b, "race-1", racing.clone())
    );
    let mut statuses = vec![ra.status().as_u16(), rb.status().as_u16()];
    statuses.sort_unstable();
    assert!(
        statuses == [200, 201] || statuses == [201, 409],
        "{statuses:?}"
    );
    let r = put(&b, &job_b, "race-1", racing.clone()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        count(
            &pg,
            "ids",
            "SELECT count(*) FROM ids_deliveries WHERE id = 'race-1'"
        ),
        1
    );

    // The rows hold IDSENC, never the plaintext; and nothing went to the data folders.
    assert_eq!(
        count(&pg, "ids", "SELECT sum(chunks) FROM ids_deliveries"),
        count(&pg, "ids", "SELECT count(*) FROM ids_delivery_chunks")
    );
    assert_eq!(
        count(
            &pg,
            "ids",
            &format!(
                "SELECT count(*) FROM ids_delivery_chunks WHERE position({} IN data) > 0",
                marker_bytea()
            )
        ),
        0
    );
    assert_eq!(
        pg.psql(
            "ids",
            "SELECT string_agg(DISTINCT encode(substr(data, 1, 6), 'escape'), ',') FROM ids_delivery_chunks WHERE seq = 0"
        ),
        "IDSENC"
    );
    for d in [&da, &db] {
        assert!(!d.path().join("data/deliveries").exists());
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cut_upload_or_a_dead_servers_upload_leaves_nothing_and_its_retry_succeeds() {
    let Some(pg) = TestPostgres::start("store_deliveries_cut") else {
        return;
    };
    pg.create_database("ids");
    let port = free_port();
    let mut da = pg_server(&pg, "ids", None, json!({ "MinUploadBytesPerSecond": 0 }));
    da.set("Urls", json!(format!("https://127.0.0.1:{port}")));
    da.write();
    let db = pg_server(
        &pg,
        "ids",
        Some(&da),
        json!({ "MinUploadBytesPerSecond": 0 }),
    );
    let b = db.start().await;
    let job = token(&b, "Job", JOB_SECRET).await;
    let len = 4 * 1024 * 1024;

    // Cut after 2.5 MiB (chunks written): no record, the lease and the chunks are removed at once.
    let r = generated_put(
        &b.client,
        &b.base,
        &job,
        "cut-1",
        Generated::stopping(3, len, 2_621_440, true),
    )
    .await
    .expect("join");
    assert!(r.as_ref().map_or(true, |(s, _)| *s >= 400), "{r:?}");
    wait_for("the cut upload's clean-up", || {
        count(&pg, "ids", "SELECT count(*) FROM ids_delivery_uploads") == 0
            && count(&pg, "ids", "SELECT count(*) FROM ids_delivery_chunks") == 0
    });
    assert_eq!(count(&pg, "ids", "SELECT count(*) FROM ids_deliveries"), 0);
    let (status, _) = generated_put(&b.client, &b.base, &job, "cut-1", Generated::whole(3, len))
        .await
        .expect("join")
        .expect("PUT");
    assert_eq!(status, 201);

    // A server process holding an upload: another server refuses the same id while it lives.
    let mut a = spawn_server(da.path(), port);
    let base_a = format!("https://127.0.0.1:{port}");
    let job_a = token_from(&b.client, &base_a, "Job", JOB_SECRET).await;
    let held = generated_put(
        &b.client,
        &base_a,
        &job_a,
        "dead-1",
        Generated::stopping(4, len, 3 * 1024 * 1024, false),
    );
    wait_for("chunks of the held upload", || {
        count(
            &pg,
            "ids",
            "SELECT count(*) FROM ids_delivery_chunks c JOIN ids_delivery_uploads u USING (upload)",
        ) >= 2
    });
    let (status, v) = generated_put(&b.client, &b.base, &job, "dead-1", Generated::whole(4, len))
        .await
        .expect("join")
        .expect("PUT");
    assert_eq!(
        (status, v["error"].as_str()),
        (409, Some("delivery_in_progress")),
        "{v}"
    );

    // Killed: its lease stays until it expires (then the id is free again).
    let _ = a.kill();
    let _ = a.wait();
    held.abort();
    let r = b
        .client
        .put(b.url("/api/deliveries/dead-1?name=big.bin"))
        .bearer_auth(&job)
        .header("repr-digest", sha256_header(b"x"))
        .body("x")
        .send()
        .await
        .expect("PUT");
    assert_eq!(r.status(), 409);
    assert_eq!(r.headers()["retry-after"], "5");
    pg.psql(
        "ids",
        "UPDATE ids_delivery_uploads SET expires_at = now() - interval '1 second'",
    );
    let (status, _) = generated_put(&b.client, &b.base, &job, "dead-1", Generated::whole(4, len))
        .await
        .expect("join")
        .expect("PUT");
    assert_eq!(status, 201);
    // The dead upload's chunks belong to no record and no lease: a server's maintenance removes
    // them (it runs when a server starts, then every 30 s).
    assert!(
        count(&pg, "ids", "SELECT count(*) FROM ids_delivery_chunks")
            > count(&pg, "ids", "SELECT sum(chunks) FROM ids_deliveries")
    );
    let c = db.start().await;
    wait_for("the sweep of the dead upload", || {
        count(&pg, "ids", "SELECT count(*) FROM ids_delivery_chunks")
            == count(&pg, "ids", "SELECT sum(chunks) FROM ids_deliveries")
    });
    let reader = token(&c, "Legacy", READER_SECRET).await;
    for id in ["cut-1", "dead-1"] {
        let r = get(&c, &format!("/api/deliveries/{id}/content"), &reader).await;
        assert_eq!(r.status(), 200);
        let body = r.bytes().await.expect("body");
        let seed = if id == "cut-1" { 3 } else { 4 };
        let mut expected = Vec::new();
        generate(seed, len, &mut expected);
        assert!(body.as_ref() == expected.as_slice(), "{id}");
    }
    assert_eq!(count(&pg, "ids", "SELECT count(*) FROM ids_deliveries"), 2);
    b.stop().await;
    c.stop().await;
}

/// `identity-server serve` on `port`, waiting for it to listen.
fn spawn_server(dir: &Path, port: u16) -> Child {
    let child = Command::new(binary("identity-server"))
        .args(["serve", "--config-dir"])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn server");
    wait_for("the server to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    child
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn store_import_copies_a_folder_store_once_and_reports_conflicts() {
    let Some(pg) = TestPostgres::start("store_deliveries_import") else {
        return;
    };
    pg.create_database("ids");
    // A folder written by the embedded server.
    let mut embedded = Deployment::new();
    project_pfx(embedded.path(), "server-encryption", KeyKind::Rsa2048);
    embedded
        .set(
            "EncryptionCertificate",
            json!({ "File": "server-encryption.pfx", "Password": PASSWORD }),
        )
        .set("Deliveries", json!({ "ReadProfiles": ["Reader"] }));
    embedded.write();
    let server = embedded.start().await;
    let job = token(&server, "Job", JOB_SECRET).await;
    let one = content(2 * 1024 * 1024 + 3, 5);
    let two = content(10, 6);
    assert_eq!(
        put(&server, &job, "folder-1", one.clone()).await.status(),
        201
    );
    assert_eq!(
        put(&server, &job, "folder-2", two.clone()).await.status(),
        201
    );
    server.stop().await;

    let target = pg_server(&pg, "ids", Some(&embedded), json!({}));
    // A migrated database (what a server or `store migrate` leaves).
    let out = server_command(target.path(), &["store", "migrate"]);
    assert!(out.status.success(), "{}", text(&out));
    // The data folder the first time, its deliveries/ folder the second: nothing copied twice.
    let data = embedded.path().join("data");
    let out = server_command(
        target.path(),
        &[
            "store",
            "import",
            "--from-folder",
            data.to_str().expect("utf-8"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("2 copied, 0 skipped"), "{}", text(&out));
    let deliveries = data.join("deliveries");
    let out = server_command(
        target.path(),
        &[
            "store",
            "import",
            "--from-folder",
            deliveries.to_str().expect("utf-8"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("0 copied, 2 skipped"), "{}", text(&out));
    for (id, data) in [("folder-1", &one), ("folder-2", &two)] {
        let out = server_command(target.path(), &["deliveries", "export", id, "--stdout"]);
        assert!(out.status.success(), "{}", text(&out));
        assert!(&out.stdout == data, "{id}");
    }
    // The records are the embedded store's, unchanged.
    let folder_list = server_command(embedded.path(), &["deliveries", "list", "--json"]);
    let pg_list = server_command(target.path(), &["deliveries", "list", "--json"]);
    assert_eq!(
        serde_json::from_slice::<Value>(&folder_list.stdout).expect("json"),
        serde_json::from_slice::<Value>(&pg_list.stdout).expect("json")
    );

    // The store written before ids were per client (flat layout), with its own certificate.
    let legacy = crate::support::fixtures().join("deliveries-v1");
    let pg_legacy = {
        pg.create_database("legacy");
        let d = pg_server(&pg, "legacy", None, json!({}));
        std::fs::copy(
            legacy.join("encryption.pfx"),
            d.path().join("server-encryption.pfx"),
        )
        .expect("pfx");
        d
    };
    for run in 0..2 {
        let out = server_command(
            pg_legacy.path(),
            &[
                "store",
                "import",
                "--from-folder",
                legacy.to_str().expect("utf-8"),
            ],
        );
        assert!(out.status.success(), "{}", text(&out));
        let expected = if run == 0 {
            "7 copied, 0 skipped"
        } else {
            "0 copied, 7 skipped"
        };
        assert!(text(&out).contains(expected), "run {run}: {}", text(&out));
    }
    let out = server_command(
        pg_legacy.path(),
        &["deliveries", "export", "legacy-report", "--stdout"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let folder_copy = server_command_in_fixture(&legacy);
    assert!(out.stdout == folder_copy);

    // A delivery id PostgreSQL holds with another file: reported, not overwritten, exit 1.
    pg.psql(
        "ids",
        "UPDATE ids_deliveries SET sha256 = repeat('0', 64) WHERE id = 'folder-2'",
    );
    let out = server_command(
        target.path(),
        &[
            "store",
            "import",
            "--from-folder",
            data.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("conflict folder-2 of client Job"),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("0 copied, 1 skipped (already there), 1 conflicts"),
        "{}",
        text(&out)
    );
    assert_eq!(
        pg.psql(
            "ids",
            "SELECT sha256 FROM ids_deliveries WHERE id = 'folder-2'"
        ),
        "0".repeat(64)
    );
}

/// `legacy-report` exported from the fixture's folder store by the CLI (a copy of the fixture).
fn server_command_in_fixture(legacy: &Path) -> Vec<u8> {
    let mut d = Deployment::new();
    std::fs::copy(
        legacy.join("encryption.pfx"),
        d.path().join("encryption.pfx"),
    )
    .expect("pfx");
    let store = d.path().join("data/deliveries");
    std::fs::create_dir_all(&store).expect("mkdir");
    for f in std::fs::read_dir(legacy.join("deliveries"))
        .expect("read")
        .flatten()
    {
        std::fs::copy(f.path(), store.join(f.file_name())).expect("copy");
    }
    d.set(
        "EncryptionCertificate",
        json!({ "File": "encryption.pfx", "Password": PASSWORD }),
    );
    d.write();
    let out = server_command(
        d.path(),
        &["deliveries", "export", "legacy-report", "--stdout"],
    );
    assert!(out.status.success(), "{}", text(&out));
    out.stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_quota_counts_every_servers_deliveries_and_a_full_database_disk_is_507() {
    let Some(pg) = TestPostgres::start("store_deliveries_quota") else {
        return;
    };
    pg.create_database("ids");
    let da = pg_server(&pg, "ids", None, json!({ "QuotaMiB": 1 }));
    let db = pg_server(&pg, "ids", Some(&da), json!({ "QuotaMiB": 1 }));
    let a = da.start().await;
    let b = db.start().await;
    let job_a = token(&a, "Job", JOB_SECRET).await;
    let job_b = token(&b, "Job", JOB_SECRET).await;
    assert_eq!(
        put(&a, &job_a, "q-1", content(600 * 1024, 1))
            .await
            .status(),
        201
    );
    // Each server alone would have room for this one; together they do not.
    let r = put(&b, &job_b, "q-2", content(600 * 1024, 2)).await;
    assert_eq!(r.status(), 507);
    assert_eq!(r.headers()["retry-after"], "60");
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"], "insufficient_storage");
    assert_eq!(count(&pg, "ids", "SELECT count(*) FROM ids_deliveries"), 1);
    assert_eq!(
        count(&pg, "ids", "SELECT count(*) FROM ids_delivery_uploads"),
        0
    );
    // A small one still fits.
    assert_eq!(put(&b, &job_b, "q-3", content(1000, 3)).await.status(), 201);

    // The database's disk full (SQLSTATE 53100, raised here by a trigger on the content rows): 507,
    // nothing stored, and the same delivery goes through once there is room again.
    pg.psql(
        "ids",
        "CREATE FUNCTION full_disk() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full'; END $$;
         CREATE TRIGGER full_disk BEFORE INSERT ON ids_delivery_chunks FOR EACH ROW EXECUTE FUNCTION full_disk();",
    );
    let r = put(&a, &job_a, "q-4", content(2000, 4)).await;
    assert_eq!(r.status(), 507);
    assert_eq!(r.headers()["retry-after"], "60");
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"], "insufficient_storage", "{v}");
    wait_for("the refused upload's clean-up", || {
        count(&pg, "ids", "SELECT count(*) FROM ids_delivery_uploads") == 0
    });
    assert_eq!(count(&pg, "ids", "SELECT count(*) FROM ids_deliveries"), 2);
    pg.psql("ids", "DROP TRIGGER full_disk ON ids_delivery_chunks");
    assert_eq!(put(&a, &job_a, "q-4", content(2000, 4)).await.status(), 201);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgresql_stopped_deliveries_answer_503_tokens_still_issued_and_it_recovers() {
    let Some(pg) = TestPostgres::start("store_deliveries_down") else {
        return;
    };
    pg.create_database("ids");
    let d = pg_server(&pg, "ids", None, json!({}));
    let server = d.start().await;
    let job = token(&server, "Job", JOB_SECRET).await;
    let reader = token(&server, "Legacy", READER_SECRET).await;
    assert_eq!(
        put(&server, &job, "before", content(1000, 1))
            .await
            .status(),
        201
    );

    pg.stop();
    let r = put(&server, &job, "during", content(1000, 2)).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "10");
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"], "temporarily_unavailable", "{v}");
    let r = get(&server, "/api/deliveries", &reader).await;
    assert_eq!(r.status(), 503);
    let r = get(&server, "/api/deliveries/before/content", &reader).await;
    assert_eq!(r.status(), 503);
    // Secret clients still get tokens.
    token(&server, "Job", JOB_SECRET).await;

    pg.ctl_start();
    let mut status = 0;
    for _ in 0..150 {
        status = put(&server, &job, "during", content(1000, 2))
            .await
            .status()
            .as_u16();
        if status == 201 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        status, 201,
        "deliveries did not recover once PostgreSQL was back"
    );
    let r = get(&server, "/api/deliveries/before/content", &reader).await;
    assert!(r.bytes().await.expect("body").as_ref() == content(1000, 1).as_slice());
    server.stop().await;
}

/// The peak resident memory (`VmHWM`) of process `pid`, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_large_delivery_through_postgresql_keeps_the_servers_memory_flat() {
    let Some(pg) = TestPostgres::start("store_deliveries_memory") else {
        return;
    };
    pg.create_database("ids");
    let port = free_port();
    let mut d = pg_server(&pg, "ids", None, json!({}));
    d.set("Urls", json!(format!("https://127.0.0.1:{port}")));
    d.write();
    let mut process = spawn_server(d.path(), port);
    let client = crate::support::https_client(&d.path().join("ca.crt"));
    let base = format!("https://127.0.0.1:{port}");
    let job = token_from(&client, &base, "Job", JOB_SECRET).await;
    let before = peak_rss_kib(process.id());
    let len: u64 = 200 * 1024 * 1024 + 17;
    let (status, v) = generated_put(&client, &base, &job, "big-1", Generated::whole(9, len))
        .await
        .expect("join")
        .expect("PUT");
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["size"], len);
    // Kept in PostgreSQL, in 1 MiB rows; not in the data folder.
    assert_eq!(
        count(
            &pg,
            "ids",
            "SELECT size FROM ids_deliveries WHERE id = 'big-1'"
        ),
        len as i64
    );
    assert!(count(&pg, "ids", "SELECT count(*) FROM ids_delivery_chunks") > 200);
    assert!(!d.path().join("data/deliveries").exists());
    // Downloaded through the API (decrypted chunk by chunk), hashed as it comes.
    let reader = token_from(&client, &base, "Legacy", READER_SECRET).await;
    let mut r = client
        .get(format!("{base}/api/deliveries/big-1/content"))
        .bearer_auth(&reader)
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), 200);
    let (tx, rx) = std::sync::mpsc::sync_channel::<bytes::Bytes>(16);
    let digest = std::thread::spawn(move || {
        sha256_of(move |w| {
            while let Ok(b) = rx.recv() {
                w.write_all(&b).expect("write");
            }
        })
    });
    let mut received = 0u64;
    while let Some(chunk) = r.chunk().await.expect("chunk") {
        received += chunk.len() as u64;
        tx.send(chunk).expect("send");
    }
    drop(tx);
    assert_eq!(received, len);
    let expected = sha256_of(move |w| generate(9, len, w));
    assert_eq!(digest.join().expect("join"), expected);
    let after = peak_rss_kib(process.id());
    let _ = process.kill();
    let _ = process.wait();
    eprintln!(
        "server VmHWM: {before} KiB before, {after} KiB after a {len}-byte delivery and download"
    );
    assert!(
        after < before + 64 * 1024,
        "the server's peak memory grew by {} KiB for a {} MiB delivery",
        after - before,
        len / (1024 * 1024)
    );
}

/// The store's own calls (as the server's blocking threads make them), with leases short enough to
/// watch: a refreshed lease outlives its expiry and keeps a second upload out; one that expired is
/// taken over, and the upload that lost it cannot commit.
#[test]
fn a_refreshed_lease_keeps_its_upload_and_an_expired_one_is_taken_over() {
    use std::io::{Read as _, Write as _};
    use std::sync::Arc;

    use identity_server::deliveries::{
        ClientId, DeliveryId, DeliveryKey, DeliveryStore as _, Record, StoreError,
    };
    use identity_server::store::postgres::PgStore;
    use identity_server::store::postgres::deliveries::{Lease, PgDeliveryStore};

    let Some(pg) = TestPostgres::start("store_deliveries_lease") else {
        return;
    };
    pg.create_database("ids");
    let d = pg_server(&pg, "ids", None, json!({}));
    let settings = d.load_settings().expect("settings");
    let runtime = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime"),
    );
    let store =
        Arc::new(PgStore::new(settings.store.postgres().expect("postgres")).expect("store"));
    runtime.block_on(store.prepare()).expect("prepare");
    let open = |lease: Lease| {
        PgDeliveryStore::for_server(store.clone(), runtime.handle().clone(), None).with_lease(lease)
    };
    let refreshed = open(Lease {
        heartbeat: Duration::from_millis(200),
        expiry: Duration::from_millis(800),
    });
    let forgotten = open(Lease {
        heartbeat: Duration::from_secs(3600),
        expiry: Duration::from_millis(800),
    });
    let key =
        |id: &str| DeliveryKey::new(&ClientId::from("Job"), &DeliveryId::parse(id).expect("id"));
    let record = |id: &str, stored: usize| Record {
        id: DeliveryId::parse(id).expect("id"),
        name: "x.bin".into(),
        size: 1,
        sha256: "0".repeat(64),
        client_id: ClientId::from("Job"),
        agent: None,
        profile: None,
        received_at: "2026-12-03T00:00:00Z".into(),
        stored_bytes: stored as u64,
        encrypted_for: "test".into(),
    };
    let two_chunks = vec![7u8; 1024 * 1024 + 10];

    // Refreshed: three expiries later it still holds the id, and commits.
    let mut first = refreshed.begin(&key("lease-1"), 10).expect("begin");
    first.write_all(&two_chunks).expect("write");
    std::thread::sleep(Duration::from_millis(2500));
    assert!(matches!(
        forgotten.begin(&key("lease-1"), 10),
        Err(StoreError::InProgress(_))
    ));
    first
        .commit(&record("lease-1", two_chunks.len()))
        .expect("commit");
    let mut stored = Vec::new();
    refreshed
        .open(&key("lease-1"))
        .expect("open")
        .read_to_end(&mut stored)
        .expect("read");
    assert!(stored == two_chunks);

    // Not refreshed: expired, taken over by another upload; the first one cannot commit any more.
    let mut lost = forgotten.begin(&key("lease-2"), 10).expect("begin");
    lost.write_all(b"lost").expect("write");
    std::thread::sleep(Duration::from_millis(1200));
    let mut winner = refreshed.begin(&key("lease-2"), 10).expect("take over");
    winner.write_all(b"winner").expect("write");
    assert!(matches!(
        lost.commit(&record("lease-2", 4)),
        Err(StoreError::InProgress(_))
    ));
    winner.commit(&record("lease-2", 6)).expect("commit");
    let mut stored = Vec::new();
    refreshed
        .open(&key("lease-2"))
        .expect("open")
        .read_to_end(&mut stored)
        .expect("read");
    assert_eq!(stored, b"winner");
    // The same id again once committed: refused, whoever asks.
    assert!(matches!(
        refreshed.begin(&key("lease-2"), 10),
        Err(StoreError::AlreadyCommitted(_))
    ));
    assert_eq!(
        count(
            &pg,
            "ids",
            "SELECT count(*) FROM ids_delivery_uploads WHERE id = 'lease-1'"
        ),
        0
    );
}
