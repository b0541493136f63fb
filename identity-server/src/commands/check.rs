//! `identity-server check`: prints the library's [`identity_server::check::Report`], then `OK`.

use std::io::Write as _;
use std::path::Path;

use identity_server::Error;
use identity_server::check::Severity;

#[derive(clap::Args)]
pub struct Args {
    /// Warn about certificates that expire within this many days (default:
    /// IdentityServer:ExpiryWarningDays, 30).
    #[arg(long, value_name = "DAYS")]
    expiry_days: Option<u64>,
}

pub fn exec(config_dir: &Path, args: Args) -> Result<(), Error> {
    let vars: Vec<(String, String)> = std::env::vars().collect();
    let now = ids_runtime::Clock::now(&ids_runtime::SystemClock);
    let report = identity_server::check::run(config_dir, &vars, args.expiry_days, now)?;
    let mut out = std::io::stdout();
    for f in &report.findings {
        let _ = match f.severity {
            Severity::Info => writeln!(out, "{}", f.text),
            Severity::Note => writeln!(out, "note: {}", f.text),
            Severity::Warning => writeln!(out, "warning: {}", f.text),
        };
    }
    let _ = writeln!(out, "OK");
    Ok(())
}
