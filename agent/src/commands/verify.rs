//! `agent verify`: verifies a token with the server's keys and prints its claims.

use std::io::Read as _;
use std::path::Path;

use super::session::Session;
use super::{Error, finish, print_line};
use crate::exit::ExitStatus;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The token, `Bearer <token>`, or `-` to read it from standard input.
    token: String,
}

pub async fn exec(dir: &Path, args: Args) -> Result<ExitStatus, Error> {
    let text = if args.token == "-" {
        let mut buf = String::new();
        std::io::stdin()
            .read_to_string(&mut buf)
            .map_err(Error::Stdin)?;
        buf
    } else {
        args.token
    };
    let session = Session::start(dir)?;
    Ok(finish(verify(&session, &text).await))
}

async fn verify(session: &Session, token: &str) -> Result<ExitStatus, Error> {
    let agent = session.agent()?;
    let claims = agent.verify(token).await?;
    let out = serde_json::json!({
        "valid": true,
        "header": { "alg": claims.algorithm.as_str(), "kid": claims.kid },
        "claims": claims.claims,
    });
    print_line(&serde_json::to_string_pretty(&out).unwrap_or_default());
    Ok(ExitStatus::Success)
}
