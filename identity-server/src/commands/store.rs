//! `identity-server store`: the shared PostgreSQL store's schema, for operators who apply migrations
//! by hand (`Store:ApplyMigrations` false) or want to see where a database stands, and `import`, which
//! copies an embedded store's deliveries into it.

use std::io::Write as _;
use std::path::{Path, PathBuf};

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
    /// Copy the deliveries of an embedded store (a data folder, or its deliveries/ folder) into
    /// PostgreSQL, as they are stored (encrypted). Idempotent: what is already there is skipped; a
    /// delivery id holding another file there is reported, never overwritten. Applies the schema
    /// first unless Store:ApplyMigrations is false.
    Import {
        /// The data folder (Deliveries:DataFolder) or its deliveries/ sub-folder.
        #[arg(long, value_name = "DIR")]
        from_folder: PathBuf,
    },
}

pub fn exec(config_dir: &Path, args: Args) -> Result<(), Error> {
    let settings = Settings::load(config_dir, None).map_err(Error::Settings)?;
    let name = match args.command {
        Command::Migrate => "migrate",
        Command::Status => "status",
        Command::Import { .. } => "import",
    };
    let Some(pg) = settings.store.postgres() else {
        return Err(Error::NotPostgres {
            settings_file: config_dir.join("appsettings.json"),
            command: name,
        });
    };
    if let Command::Import { from_folder } = &args.command {
        return import(pg, from_folder);
    }
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
            Command::Import { .. } => {}
        }
        Ok(())
    })
}

/// `store import --from-folder DIR`: one line per delivery, then the counts.
fn import(
    pg: &identity_server::store::settings::PgSettings,
    from_folder: &Path,
) -> Result<(), Error> {
    use identity_server::store::postgres::deliveries::{Imported, import};
    // The data folder holds deliveries/; a deliveries folder (or a copy of one) holds the records.
    let folder = if from_folder.join("deliveries").is_dir() {
        from_folder.join("deliveries")
    } else {
        from_folder.to_path_buf()
    };
    let store = identity_server::operator_store(pg, true)?;
    let mut out = std::io::stdout();
    let report = import(&folder, &store, |done| {
        let line = match done {
            Imported::Copied(r) => format!(
                "copied   {} of client {} ({} bytes, {})",
                r.id, r.client_id, r.size, r.name.escape_debug()
            ),
            Imported::Skipped(r) => format!(
                "skipped  {} of client {}: already in PostgreSQL",
                r.id, r.client_id
            ),
            Imported::Conflict { ours, theirs } => format!(
                "conflict {} of client {}: PostgreSQL holds another file under this id (SHA-256 {}, the folder's is {}); not overwritten",
                ours.id, ours.client_id, theirs.sha256, ours.sha256
            ),
            Imported::Failed { record, error } => format!(
                "failed   {} of client {}: {error}",
                record.id, record.client_id
            ),
        };
        let _ = writeln!(out, "{line}");
    })
    .map_err(|source| Error::Import {
        folder: folder.clone(),
        source,
    })?;
    let (copied, skipped, conflicts, failed) = report.counts();
    let _ = writeln!(
        out,
        "{}: {copied} copied, {skipped} skipped (already there), {conflicts} conflicts, {failed} failed",
        folder.display()
    );
    if conflicts + failed > 0 {
        return Err(Error::ImportIncomplete { conflicts, failed });
    }
    Ok(())
}
