//! `ids-keytool`: keys and certificates for the identity server and its clients (see
//! `ids_tools::keytool` and `docs/keys-and-certificates.md`).

use std::process::ExitCode;

use clap::Parser as _;
use ids_tools::keytool::{Cli, exit_code, run};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut stdout = std::io::stdout().lock();
    match run(&cli.command, &mut stdout) {
        Ok(()) => ExitCode::SUCCESS,
        // Output cut short by the reader (`| head`): the work is done, nothing to report.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ids-keytool: {e:#}");
            ExitCode::from(exit_code(&e))
        }
    }
}
