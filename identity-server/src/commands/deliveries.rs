//! `identity-server deliveries list|export`: what agents delivered, read back from
//! `Deliveries:DataFolder` or, with `Store:Provider PostgreSql`, from the database, with the
//! EncryptionCertificate's key ([`ReadBack`]).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use identity_server::deliveries::Record;
use identity_server::deliveries::names::shown;
use identity_server::deliveries::{Deliveries, DeliveryId, DeliveryKey, export_name};
use identity_server::telemetry::{AuditOutput, Auditor, Event};
use identity_server::{Error, ReadBack};
use ids_runtime::{Clock as _, SystemClock};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// List the stored deliveries (Deliveries:DataFolder, or the PostgreSQL store), oldest first.
    List {
        /// One JSON document instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Decrypt one delivery (checking its SHA-256) to a file or to standard output.
    Export {
        /// The delivery id (see `deliveries list`).
        id: String,
        /// The client that delivered it (ids are per client: needed when several used this id).
        #[arg(long, value_name = "CLIENT")]
        client: Option<String>,
        /// Output file, or folder for the delivered name (default: the delivered name here; a hidden
        /// or disguised name is made safe, and said so).
        #[arg(short, long, conflicts_with = "stdout")]
        output: Option<PathBuf>,
        /// Write the content to standard output.
        #[arg(long)]
        stdout: bool,
        /// Replace an existing output file.
        #[arg(long)]
        force: bool,
    },
}

pub fn exec(config_dir: &Path, args: Args) -> Result<(), Error> {
    match args.command {
        Command::List { json } => list(config_dir, json),
        Command::Export {
            id,
            client,
            output,
            stdout,
            force,
        } => export(config_dir, &id, client, output, stdout, force),
    }
}

/// The stored deliveries, after printing the warnings about the key that reads them.
fn stored(config_dir: &Path) -> Result<Deliveries, Error> {
    Ok(stored_with_audit(config_dir)?.0)
}

/// The stored deliveries, and the audit trail's output when `Audit` is set.
fn stored_with_audit(config_dir: &Path) -> Result<(Deliveries, Option<AuditOutput>), Error> {
    let read_back = ReadBack::load(config_dir)?;
    for w in &read_back.warnings {
        eprintln!("warning: {w}");
    }
    let audit = read_back.settings.operations.audit.clone();
    Ok((read_back.open()?, audit))
}

/// Records an export in the audit trail (`Audit`), as the server records reads.
fn audit_export(output: Option<&AuditOutput>, record: &Record, destination: &str) {
    let Some(output) = output else { return };
    let now = SystemClock.now();
    match Auditor::start(output, None, now) {
        Ok(auditor) => {
            auditor.record(
                Event::DeliveryExported {
                    operator: operator(),
                    delivery: record.id.as_str().to_string(),
                    owner: record.client_id.to_string(),
                    destination: destination.to_string(),
                },
                now,
            );
            auditor.close();
        }
        Err(e) => eprintln!("warning: the export is not in the audit trail: {e}"),
    }
}

/// Who runs the command: the uid, and the user name the environment gives (as root, `SUDO_USER`
/// first: the person behind sudo). The uid is the kernel's; the name is only what the session says.
fn operator() -> String {
    let uid = rustix::process::getuid().as_raw();
    let sudo = rustix::process::geteuid()
        .is_root()
        .then(|| std::env::var("SUDO_USER").ok())
        .flatten();
    match sudo.or_else(|| std::env::var("USER").ok()) {
        Some(name) if !name.is_empty() => format!("{name} (uid {uid})"),
        _ => format!("uid {uid}"),
    }
}

fn list(config_dir: &Path, json: bool) -> Result<(), Error> {
    let records = stored(config_dir)?.list().map_err(Error::List)?;
    let mut out = std::io::stdout().lock();
    if json {
        let text = serde_json::to_string_pretty(&serde_json::json!({ "deliveries": records }))?;
        let _ = writeln!(out, "{text}");
        return Ok(());
    }
    let _ = writeln!(
        out,
        "{:<25} {:<36} {:>12} {:<12} {:<16} {:<16} NAME",
        "RECEIVED", "ID", "SIZE", "SHA-256", "CLIENT", "AGENT"
    );
    for r in &records {
        let _ = writeln!(
            out,
            "{:<25} {:<36} {:>12} {:<12} {:<16} {:<16} {}",
            r.received_at.get(..19).unwrap_or(&r.received_at),
            r.id,
            r.size,
            r.sha256.get(..12).unwrap_or(&r.sha256),
            r.client_id,
            r.agent.as_deref().unwrap_or("-"),
            r.name.escape_debug()
        );
    }
    let total: u64 = records.iter().map(|r| r.size).sum();
    let _ = writeln!(out, "{} deliveries, {} bytes", records.len(), total);
    Ok(())
}

fn export(
    config_dir: &Path,
    id: &str,
    client: Option<String>,
    output: Option<PathBuf>,
    stdout: bool,
    force: bool,
) -> Result<(), Error> {
    let (service, audit) = stored_with_audit(config_dir)?;
    let id = DeliveryId::parse(id).map_err(Error::DeliveryId)?;
    let record = service
        .find_any(&id, client.as_deref())
        .map_err(|source| Error::NotFound {
            id: id.as_str().to_string(),
            client,
            source,
        })?;
    let key = DeliveryKey::new(&record.client_id, &id);
    if stdout {
        let mut out = std::io::stdout().lock();
        service
            .export(&key, &mut out)
            .map_err(|source| Error::Export {
                target: "standard output".into(),
                source,
            })?;
        audit_export(audit.as_ref(), &record, "standard output");
        return Ok(());
    }
    // The delivered name, made safe: never a hidden or disguised file name.
    let named = |folder: &Path| {
        let (name, changed) = export_name(&record.name, record.id.as_str());
        if let Some(changed) = changed {
            eprintln!(
                "renamed: the delivered name `{}` is written as `{name}` ({changed})",
                shown(&record.name)
            );
        }
        folder.join(name)
    };
    let target = match output {
        Some(path) if path.is_dir() => named(&path),
        Some(path) => path,
        None => named(Path::new("")),
    };
    let mut file =
        ids_seal::atomic::AtomicFile::create(&target, force).map_err(|source| Error::Create {
            path: target.clone(),
            source,
        })?;
    service
        .export(&key, &mut file)
        .map_err(|source| Error::Export {
            target: target.display().to_string(),
            source,
        })?;
    file.commit().map_err(|source| Error::Write {
        path: target.clone(),
        source,
    })?;
    audit_export(audit.as_ref(), &record, &target.display().to_string());
    eprintln!(
        "exported delivery {} of client {} ({} bytes, SHA-256 {}) to {}",
        record.id,
        record.client_id,
        record.size,
        record.sha256,
        target.display()
    );
    Ok(())
}
