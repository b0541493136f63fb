//! `identity-server`: serve, check the configuration, protect settings, read deliveries, or start a
//! development quick start. This file only parses the command line and dispatches: each subcommand
//! is a module of `commands/` over the library, and exit codes come from
//! [`identity_server::ExitStatus`] (listed in `--help`).

mod commands;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use identity_server::ExitStatus;

use commands::{check, deliveries, health, protect, quickstart, serve, store};

#[derive(Parser)]
#[command(
    version,
    about = "OpenID Connect identity server: client-credentials tokens signed with a PFX certificate",
    after_help = ExitStatus::help()
)]
struct Cli {
    /// Folder holding appsettings.json (relative paths in it resolve against this folder); accepted
    /// before or after the subcommand. Default: the current folder (quickstart: ids-quickstart).
    #[arg(long, global = true, value_name = "DIR")]
    config_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTPS with the configuration in --config-dir.
    Serve(serve::Args),
    /// Validate settings, certificates and the access-control XML; print a summary or every problem.
    Check(check::Args),
    /// Protect a password or secret setting (or every value of a JSON file) with the
    /// EncryptionCertificate, into appsettings.encrypted.json, so that it need not sit in clear JSON.
    Protect(protect::Args),
    /// What agents delivered: list, or export (decrypted with EncryptionCertificate).
    Deliveries(deliveries::Args),
    /// Generate development certificates, settings and a demo client (never overwriting), then serve.
    Quickstart(quickstart::Args),
    /// The shared PostgreSQL store (Store:Provider PostgreSql): schema status and migrations.
    Store(store::Args),
    /// Ask a running server whether it is ready (/health/ready): exit 0 when it is, 1 when not.
    Health(health::Args),
    /// Write man pages and shell completions (for packages).
    #[command(hide = true)]
    GenerateAssets(ids_runtime::assets::GenerateAssets),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::GenerateAssets(assets) = &cli.command {
        return assets.exec(<Cli as clap::CommandFactory>::command());
    }
    let given = cli.config_dir;
    let config_dir = given.clone().unwrap_or_else(|| PathBuf::from("."));
    commands::init_logging(match (&cli.command, &given) {
        (Command::Quickstart(args), None) => args
            .dir()
            .unwrap_or(std::path::Path::new(quickstart::DEFAULT_DIR)),
        _ => &config_dir,
    });
    let result = match cli.command {
        Command::Serve(args) => serve::exec(&config_dir, args),
        Command::Check(args) => check::exec(&config_dir, args),
        Command::Protect(args) => protect::exec(&config_dir, args),
        Command::Deliveries(args) => deliveries::exec(&config_dir, args),
        Command::Quickstart(args) => quickstart::exec(given, args),
        Command::Store(args) => store::exec(&config_dir, args),
        Command::Health(args) => return health::exec(&config_dir, args),
        Command::GenerateAssets(_) => Ok(()),
    };
    match result {
        Ok(()) => ExitStatus::Success.into(),
        Err(error) => {
            for p in error.problems() {
                eprintln!("error: {p}");
            }
            ExitStatus::from(&error).into()
        }
    }
}
