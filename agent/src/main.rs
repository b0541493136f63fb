//! `agent`: get a token, verify a token, check the agent's configuration, deliver files, encrypt or
//! decrypt files. The commands live in the library ([`agent::commands`], one module per subcommand);
//! this file parses the command line and dispatches. The exit codes are [`agent::ExitStatus`], listed
//! by `agent --help`.

use std::process::ExitCode;

use agent::ExitStatus;
use agent::commands::{
    Cli, Command, check, decrypt, encrypt, finish, protect, push, run, token, trust, verify,
};
use clap::Parser as _;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are not errors; a usage error is exit code 2, as a configuration
            // error is (the operator has something to change), in every tool of the product.
            let _ = e.print();
            return if e.use_stderr() {
                ExitStatus::Usage.into()
            } else {
                ExitStatus::Success.into()
            };
        }
    };
    if let Command::GenerateAssets(assets) = &cli.command {
        return assets.exec(<Cli as clap::CommandFactory>::command());
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitStatus::Failure.into();
        }
    };
    let dir = cli.config_dir;
    let result = runtime.block_on(async {
        match cli.command {
            Command::Token(args) => token::exec(&dir, args).await,
            Command::Verify(args) => verify::exec(&dir, args).await,
            Command::Check(args) => check::exec(&dir, args).await,
            Command::Trust(args) => trust::exec(&dir, args),
            Command::Push(args) => push::exec(&dir, args).await,
            Command::Run(args) => run::exec(&dir, args).await,
            Command::Protect(args) => protect::exec(&dir, args),
            Command::Encrypt(args) => encrypt::exec(&dir, args),
            Command::Decrypt(args) => decrypt::exec(&dir, args),
            Command::GenerateAssets(_) => Ok(ExitStatus::Success),
        }
    });
    finish(result).into()
}
