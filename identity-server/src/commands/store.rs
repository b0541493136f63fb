//! `identity-server store`: the shared PostgreSQL store's schema, for operators who apply migrations
//! by hand (`Store:ApplyMigrations` false) or want to see where a database stands.

use std::io::Write as _;
use std::path::Path;

use identity_server::Error;
use identity_server::settings::Settings;
use identity_server::store::postgres::PgStore;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Apply the schema migrations this binary carries (under an advisory lock: safe while other
    /// servers start or run).
    Migrate,
    /// Print the schema version of the database and of this binary, and the migrations applied.
    Status,
}

pub fn exec(config_dir: &Path, args: Args) -> Result<(), Error> {
    let settings = Settings::load(config_dir, None).map_err(Error::Settings)?;
    let name = match args.command {
        Command::Migrate => "migrate",
        Command::Status => "status",
    };
    let Some(pg) = settings.store.postgres() else {
        return Err(Error::NotPostgres {
            settings_file: config_dir.join("appsettings.json"),
            command: name,
        });
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    runtime.block_on(async {
        let store = PgStore::new(pg)?;
        let mut out = std::io::stdout();
        match args.command {
            Command::Migrate => {
                let applied = store.migrate().await?;
                let status = store.status().await?;
                if applied.is_empty() {
                    let _ = writeln!(
                        out,
                        "PostgreSQL {}: schema version {} is up to date; nothing to apply",
                        store.describe(),
                        status.current
                    );
                } else {
                    let _ = writeln!(
                        out,
                        "PostgreSQL {}: applied migrations {}; schema version {}",
                        store.describe(),
                        applied
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", "),
                        status.current
                    );
                }
            }
            Command::Status => {
                let status = store.status().await?;
                let _ = writeln!(
                    out,
                    "PostgreSQL {}: schema version {} (this binary: {})",
                    store.describe(),
                    status.current,
                    status.latest
                );
                for (version, name, at) in &status.applied {
                    let _ = writeln!(out, "applied {version} {name} at {at}");
                }
                for m in status.pending() {
                    let _ = writeln!(out, "pending {} {}", m.version, m.name);
                }
                status.check()?;
            }
        }
        Ok(())
    })
}
