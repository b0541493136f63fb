//! A throwaway PostgreSQL cluster for the tests that need the shared store: the Debian `postgresql`
//! package's `initdb` and `pg_ctl` on a temporary folder, listening on a Unix socket in it (and, when
//! asked, on a loopback TCP port). When the tests run as root (`initdb` refuses to), the cluster is
//! made and run as the `postgres` user through `runuser`. Without the binaries, [`TestPostgres::start`]
//! prints why the test is skipped and returns `None`, so the suite still passes on a bare machine
//! (`.ci/run` installs them: CI always runs these tests).

use std::path::PathBuf;
use std::process::{Command, Output};

/// A running cluster; stopped (immediate mode) and removed on drop.
#[derive(Debug)]
pub struct TestPostgres {
    /// Holds the data folder and the socket folder.
    _dir: tempfile::TempDir,
    data: PathBuf,
    socket_dir: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
    /// The loopback TCP port (0 when the cluster listens on its Unix socket only).
    pub port: u16,
    /// The superuser the tests connect as (`postgres` when run as root, else the current user).
    pub user: String,
}

impl TestPostgres {
    /// Starts a cluster listening on its Unix socket only, or prints `SKIPPED` (naming `test`) and
    /// returns `None` when PostgreSQL is not installed.
    pub fn start(test: &str) -> Option<TestPostgres> {
        Self::start_with(test, false)
    }

    /// [`TestPostgres::start`], also listening on a free loopback TCP port (for TLS tests and for
    /// servers in other network namespaces).
    pub fn start_tcp(test: &str) -> Option<TestPostgres> {
        Self::start_with(test, true)
    }

    fn start_with(test: &str, tcp: bool) -> Option<TestPostgres> {
        let Some(bin) = ids_tools::postgres_bin() else {
            eprintln!(
                "SKIPPED {test}: PostgreSQL server binaries (initdb, pg_ctl) not found; install Debian's `postgresql` package (.ci/run does)"
            );
            return None;
        };
        let as_postgres = ids_tools::runs_as_root();
        if as_postgres
            && !Command::new("runuser")
                .arg("--help")
                .output()
                .is_ok_and(|o| o.status.success())
        {
            eprintln!(
                "SKIPPED {test}: running as root and `runuser` is missing (initdb refuses root)"
            );
            return None;
        }
        // Short path: a Unix socket path must stay under 108 bytes.
        let dir = tempfile::Builder::new()
            .prefix("idspg")
            .tempdir_in("/tmp")
            .expect("temporary folder for PostgreSQL");
        let data = dir.path().join("data");
        let socket_dir = dir.path().to_path_buf();
        let user = if as_postgres {
            "postgres".to_string()
        } else {
            std::env::var("USER").unwrap_or_else(|_| "postgres".into())
        };
        if as_postgres {
            // The postgres user must own the folder it writes the cluster and the socket into.
            let out = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(dir.path())
                .output()
                .expect("chown");
            assert!(
                out.status.success(),
                "chown: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let port = if tcp { crate::support::free_port() } else { 0 };
        let pg = TestPostgres {
            _dir: dir,
            data,
            socket_dir,
            bin,
            as_postgres,
            port,
            user,
        };
        let initdb = pg.run(
            "initdb",
            &[
                "-D",
                &pg.data.display().to_string(),
                "-U",
                &pg.user.clone(),
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ],
        );
        assert!(
            initdb.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&initdb.stderr)
        );
        pg.append_conf(&format!(
            "listen_addresses = '{}'\nport = {}\nunix_socket_directories = '{}'\nfsync = off\nmax_connections = 200\nshared_buffers = 32MB\n",
            if tcp { "127.0.0.1" } else { "" },
            if tcp { port } else { 5432 },
            pg.socket_dir.display()
        ));
        pg.ctl_start();
        Some(pg)
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        self.command(program)
            .args(args)
            .env("LC_ALL", "C")
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"))
    }

    /// Adds lines to `postgresql.conf` (takes effect at the next start).
    pub fn append_conf(&self, lines: &str) {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.data.join("postgresql.conf"))
            .expect("postgresql.conf");
        f.write_all(lines.as_bytes())
            .expect("write postgresql.conf");
    }

    /// The cluster's data folder (`postgresql.conf`, and where the tests put TLS files).
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data
    }

    /// Gives `path` to the user the server runs as (`postgres` when the tests run as root), with mode
    /// 0600: what PostgreSQL wants of its private key.
    pub fn give(&self, path: &std::path::Path) {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        if self.as_postgres {
            let out = Command::new("chown")
                .arg("postgres:postgres")
                .arg(path)
                .output()
                .expect("chown");
            assert!(
                out.status.success(),
                "chown: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// Replaces `pg_hba.conf` (takes effect at the next start).
    pub fn set_hba(&self, contents: &str) {
        std::fs::write(self.data.join("pg_hba.conf"), contents).expect("pg_hba.conf");
    }

    /// Starts (or restarts after [`TestPostgres::stop`]) the server and waits until it accepts
    /// connections.
    pub fn ctl_start(&self) {
        let log = self.socket_dir.join("server.log");
        let out = self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data.display().to_string(),
                "-l",
                &log.display().to_string(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// Stops the server (fast mode: connections are cut, as when a database host goes away).
    pub fn stop(&self) {
        let out = self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data.display().to_string(),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs SQL with `psql` as the superuser on database `db`; its standard output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let mut cmd = self.command("psql");
        if self.bin.join("psql").is_file() {
            // Debian keeps psql beside the server binaries too.
        } else {
            cmd = Command::new("psql");
        }
        let out = cmd
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.socket_dir)
            .args([
                "-p",
                &self.socket_port().to_string(),
                "-U",
                &self.user,
                "-d",
                db,
                "-c",
                sql,
            ])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Creates database `name` (owned by the superuser).
    pub fn create_database(&self, name: &str) {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
    }

    fn socket_port(&self) -> u16 {
        if self.port == 0 { 5432 } else { self.port }
    }

    /// A libpq key/value connection string for database `db` over the Unix socket.
    pub fn socket_connection_string(&self, db: &str) -> String {
        format!(
            "host={} port={} user={} dbname={db}",
            self.socket_dir.display(),
            self.socket_port(),
            self.user
        )
    }

    /// A `postgresql://` URL for database `db` over loopback TCP (needs [`TestPostgres::start_tcp`]).
    pub fn tcp_url(&self, user: &str, db: &str) -> String {
        assert!(self.port != 0, "the cluster was started without TCP");
        format!("postgresql://{user}@127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args([
                "-D",
                &self.data.display().to_string(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ])
            .output();
    }
}
