//! `agent check`: prints the configuration and connectivity report of [`crate::check`].

use std::path::Path;
use std::sync::Arc;

use super::{Error, print_line};
use crate::check::{self, Line};
use crate::exit::ExitStatus;
use crate::{SystemClock, logging};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long)]
    offline: bool,
    /// Warn about certificates that expire within this many days.
    #[arg(long, value_name = "DAYS", default_value_t = 30)]
    expiry_days: u64,
}

pub async fn exec(dir: &Path, args: Args) -> Result<ExitStatus, Error> {
    logging::init_stderr();
    let vars: Vec<(String, String)> = std::env::vars().collect();
    let report = check::run(
        dir,
        &vars,
        args.offline,
        args.expiry_days,
        Arc::new(SystemClock),
    )
    .await;
    for line in &report.lines {
        match line {
            Line::Ok(t) => print_line(&format!("ok: {t}")),
            Line::Note(t) => print_line(&format!("note: {t}")),
            Line::Warning(t) => print_line(&format!("warning: {t}")),
            // Errors on standard error, results on standard output (as every command does).
            Line::Error(t) => eprintln!("error: {t}"),
        }
    }
    if report.status == ExitStatus::Success {
        print_line(if args.offline {
            "configuration OK (server not contacted: --offline)"
        } else {
            "all checks passed"
        });
    }
    Ok(report.status)
}
