//! The shared PostgreSQL store (`Store:Provider PostgreSql`): settings, `check`, `store status` and
//! `store migrate`, schema versions, and a server that starts while the database is away. Each test
//! starts its own PostgreSQL cluster (`pg::TestPostgres`), or prints SKIPPED without the binaries.

use std::process::{Command, Output};

use serde_json::json;

use crate::pg::TestPostgres;
use crate::support::*;

fn server_cmd(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(binary("identity-server"))
        .args(args)
        .arg("--config-dir")
        .arg(dir)
        .env_remove("PGPASSWORD")
        .output()
        .expect("identity-server")
}

fn out_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A deployment on database `db` of `pg` over its Unix socket.
fn pg_deployment(pg: &TestPostgres, db: &str) -> Deployment {
    let mut d = Deployment::new();
    d.set(
        "Store",
        json!({
            "Provider": "PostgreSql",
            "ConnectionString": pg.socket_connection_string(db),
        }),
    );
    d.write();
    d
}

#[test]
fn check_and_store_commands_report_the_schema_and_apply_migrations_once() {
    let Some(pg) = TestPostgres::start("check_and_store_commands") else {
        return;
    };
    pg.create_database("ids");
    let d = pg_deployment(&pg, "ids");

    // An empty database: check says the server will migrate it; status lists what is pending.
    let out = server_cmd(d.path(), &["check"]);
    let text = out_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("schema version 0; the server applies migrations"),
        "{text}"
    );
    assert!(text.contains("JWKS kids: "), "{text}");
    let out = server_cmd(d.path(), &["store", "status"]);
    let text = out_text(&out);
    assert_eq!(code(&out), 1, "{text}");
    assert!(text.contains("pending 1 store identity"), "{text}");
    assert!(
        text.contains("run `identity-server store migrate`"),
        "{text}"
    );

    // Two migrations at once: the advisory lock makes one apply, the other find nothing to do.
    let a = Command::new(binary("identity-server"))
        .args(["store", "migrate", "--config-dir"])
        .arg(d.path())
        .spawn()
        .expect("spawn");
    let b = Command::new(binary("identity-server"))
        .args(["store", "migrate", "--config-dir"])
        .arg(d.path())
        .output()
        .expect("migrate");
    let a = a.wait_with_output().expect("wait");
    assert!(a.status.success() && b.status.success(), "{}", out_text(&b));
    assert_eq!(
        pg.psql(
            "ids",
            "SELECT count(*) FROM ids_schema_migrations WHERE version = 1"
        ),
        "1"
    );
    assert_eq!(pg.psql("ids", "SELECT count(*) FROM ids_store"), "1");

    let out = server_cmd(d.path(), &["store", "status"]);
    let text = out_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("applied 1 store identity at "), "{text}");
    let out = server_cmd(d.path(), &["store", "migrate"]);
    assert!(
        out_text(&out).contains("is up to date; nothing to apply"),
        "{}",
        out_text(&out)
    );

    // A schema newer than this binary: check, status and the server refuse it, saying why.
    pg.psql(
        "ids",
        "INSERT INTO ids_schema_migrations (version, name) VALUES (999, 'from the future')",
    );
    for args in [&["check"][..], &["store", "status"], &["serve"]] {
        let out = server_cmd(d.path(), args);
        let text = out_text(&out);
        assert_eq!(code(&out), 1, "{args:?}: {text}");
        assert!(
            text.contains("schema is version 999, newer than this binary knows"),
            "{args:?}: {text}"
        );
    }
}

#[test]
fn check_says_precisely_why_the_database_cannot_be_used() {
    let Some(pg) = TestPostgres::start_tcp("check_says_why") else {
        return;
    };
    pg.create_database("ids");
    pg.psql(
        "postgres",
        "CREATE ROLE ids LOGIN PASSWORD 'right-password'",
    );
    pg.psql("ids", "GRANT ALL ON SCHEMA public TO ids");
    pg.set_hba(
        "local all all trust\nhost all postgres 127.0.0.1/32 trust\nhost all ids 127.0.0.1/32 scram-sha-256\n",
    );
    pg.stop();
    pg.ctl_start();

    let mut d = Deployment::new();
    let cases = [
        (
            format!("{}?sslmode=disable", pg.tcp_url("ids", "ids")),
            Some("wrong-password"),
            "refused the password of user `ids`",
        ),
        (
            format!("{}?sslmode=disable", pg.tcp_url("ids", "nosuchdb")),
            Some("right-password"),
            "has no database `nosuchdb`",
        ),
        (
            "host=127.0.0.1 port=1 user=ids dbname=ids sslmode=disable connect_timeout=2"
                .to_string(),
            Some("right-password"),
            "is unreachable",
        ),
        (
            // The test cluster has no TLS: require says so.
            format!("{}?sslmode=require", pg.tcp_url("ids", "ids")),
            Some("right-password"),
            "TLS",
        ),
    ];
    for (connection, password, expected) in cases {
        d.set(
            "Store",
            json!({ "Provider": "PostgreSql", "ConnectionString": connection }),
        );
        d.write();
        let mut cmd = Command::new(binary("identity-server"));
        cmd.args(["check", "--config-dir"])
            .arg(d.path())
            .env_remove("PGPASSWORD");
        if let Some(p) = password {
            cmd.env("Store__Password", p);
        }
        let out = cmd.output().expect("check");
        let text = out_text(&out);
        assert_eq!(code(&out), 1, "{connection}: {text}");
        assert!(text.contains(expected), "{connection}: {text}");
        assert!(
            !text.contains("right-password") && !text.contains("wrong-password"),
            "{text}"
        );
    }

    // The right password, from a file: the check passes and applies nothing (check never writes).
    std::fs::write(d.path().join("pg.password"), "right-password\n").expect("write");
    d.set(
        "Store",
        json!({
            "Provider": "PostgreSql",
            "ConnectionString": format!("{}?sslmode=disable", pg.tcp_url("ids", "ids")),
            "PasswordFile": "pg.password",
        }),
    );
    d.write();
    let out = server_cmd(d.path(), &["check"]);
    let text = out_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("store: PostgreSQL ids@127.0.0.1:"), "{text}");
    assert_eq!(
        pg.psql("ids", "SELECT to_regclass('ids_schema_migrations') IS NULL"),
        "t"
    );
}

#[test]
fn settings_errors_name_the_key_and_hide_the_password() {
    let mut d = Deployment::new();
    d.set(
        "Store",
        json!({
            "Provider": "PostgreSql",
            "ConnectionString": "host=db user=ids password=very-secret-value sslmode=verify-full",
        }),
    );
    d.write();
    let out = server_cmd(d.path(), &["check"]);
    let text = out_text(&out);
    assert_eq!(code(&out), 2, "{text}");
    assert!(text.contains("Store:ConnectionString"), "{text}");
    assert!(text.contains("no database: add `dbname=NAME`"), "{text}");
    assert!(text.contains("set Store:CaFile"), "{text}");
    assert!(!text.contains("very-secret-value"), "{text}");

    d.set("Store", json!({ "Provider": "Postgress" }));
    d.write();
    let out = server_cmd(d.path(), &["check"]);
    assert!(
        out_text(&out).contains("`Embedded`") && out_text(&out).contains("`PostgreSql`"),
        "{}",
        out_text(&out)
    );

    // The store commands need PostgreSQL.
    let d = Deployment::new();
    d.write();
    let out = server_cmd(d.path(), &["store", "status"]);
    assert_eq!(code(&out), 2);
    assert!(
        out_text(&out).contains("Store:Provider is Embedded"),
        "{}",
        out_text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_starts_without_its_database_and_recovers_when_it_returns() {
    let Some(pg) = TestPostgres::start("starts_without_its_database") else {
        return;
    };
    pg.create_database("ids");
    let d = pg_deployment(&pg, "ids");
    pg.stop();
    let server = d.start().await;
    // Tokens for secret clients need no store.
    let r = server
        .token_post(&[
            ("grant_type", "client_credentials"),
            ("client_id", "Job"),
            ("client_secret", crate::support::JOB_SECRET),
        ])
        .await;
    assert_eq!(r.status(), 200);
    pg.ctl_start();
    // The monitor reconnects and applies the schema by itself.
    let mut migrated = false;
    for _ in 0..100 {
        if pg.psql("ids", "SELECT to_regclass('ids_store') IS NOT NULL") == "t" {
            migrated = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(
        migrated,
        "the server did not apply the schema once PostgreSQL was back"
    );
    server.stop().await;
}

/// A pool whose connections are all in use answers "busy" (503 for that request) without declaring
/// the database down for every request of the server (it used to count as unreachable).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturated_pool_is_busy_not_down() {
    let Some(pg) = TestPostgres::start("a_saturated_pool_is_busy_not_down") else {
        return;
    };
    pg.create_database("ids");
    let mut d = pg_deployment(&pg, "ids");
    d.set("Store:PoolSize", json!(1))
        .set("Store:ConnectTimeoutSeconds", json!(1));
    let settings = d.load_settings().expect("settings");
    let pg_settings = settings.store.postgres().expect("PostgreSql").clone();
    let store = identity_server::store::postgres::PgStore::new(&pg_settings).expect("store");
    store.prepare().await.expect("prepare");
    let held = store.client().await.expect("the one connection");
    let e = store.client().await.expect_err("no second connection");
    assert!(
        matches!(e, identity_server::store::postgres::PgError::Busy { .. }),
        "{e}"
    );
    assert!(e.is_unavailable() && !e.is_down(), "{e}");
    assert!(store.is_up(), "a busy pool took the store down");
    drop(held);
    assert!(store.client().await.is_ok());
}
