//! `new-openid-secret`: the value of an `OpenIdClient`'s `HashedSecret` attribute for a client secret
//! (the semantics of Usercube's `New-OpenIDSecret`).

use std::io::{IsTerminal as _, Read as _};
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use ids_proto::ClientSecret;
use ids_secret::SecretHash;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum HashAlgorithm {
    /// argon2id PHC string (m=19456 KiB, t=2, p=1): recommended.
    Argon2id,
    /// base64(SHA-256(secret)): the legacy format, for servers that only read it.
    Sha256,
}

#[derive(Parser, Debug)]
#[command(
    name = "new-openid-secret",
    version,
    about = "Hash a client secret for <OpenIdClient HashedSecret=\"...\"/>",
    after_help = "Exit codes: 0 success, 1 failure at run time, 2 usage error (as identity-server, agent and ids-keytool)."
)]
struct Cli {
    /// The secret to hash. Without it (and without --secret-stdin) a random 256-bit secret is generated.
    #[arg(long, conflicts_with = "secret_stdin")]
    client_secret: Option<String>,
    /// Read the secret from standard input (one line; keeps it out of the shell history).
    #[arg(long)]
    secret_stdin: bool,
    /// Hash algorithm.
    #[arg(long, value_enum, default_value = "argon2id")]
    algorithm: HashAlgorithm,
    /// Write man pages and shell completions into DIR (for packages).
    #[arg(long, value_name = "DIR", hide = true)]
    generate_assets: Option<std::path::PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(out) = cli.generate_assets {
        return ids_runtime::assets::GenerateAssets { out }
            .exec(<Cli as clap::CommandFactory>::command());
    }
    let secret = if let Some(s) = cli.client_secret {
        ClientSecret::new(s)
    } else if cli.secret_stdin {
        if std::io::stdin().is_terminal() {
            eprintln!("Type the secret and press Enter:");
        }
        let mut text = String::new();
        if let Err(e) = std::io::stdin().read_to_string(&mut text) {
            eprintln!("error: cannot read the secret from standard input: {e}");
            return ExitCode::FAILURE;
        }
        let line = text.lines().next().unwrap_or_default().to_string();
        ClientSecret::new(line)
    } else {
        match ids_secret::generate_secret() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    };
    if secret.expose().is_empty() {
        eprintln!("error: the secret is empty");
        return ExitCode::from(2);
    }
    let hash = match cli.algorithm {
        HashAlgorithm::Argon2id => match SecretHash::argon2id(&secret) {
            Ok(h) => h,
            Err(e) => {
                eprintln!("error: hashing failed: {e}");
                return ExitCode::FAILURE;
            }
        },
        HashAlgorithm::Sha256 => SecretHash::legacy_sha256(&secret),
    };
    println!(
        "Shared secret for '{}' is '{}'",
        secret.expose(),
        hash.to_attribute()
    );
    ExitCode::SUCCESS
}
