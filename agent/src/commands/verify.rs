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
    /// Also ask the server whether the token is still active (RFC 7662 introspection): a revoked
    /// token, or one of a client removed from the server, is refused. The agent's own client may
    /// introspect its own tokens; others' need a profile in IdentityServer:IntrospectionProfiles.
    #[arg(long)]
    online: bool,
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
    Ok(finish(verify(&session, &text, args.online).await))
}

async fn verify(session: &Session, token: &str, online: bool) -> Result<ExitStatus, Error> {
    let agent = session.agent()?;
    let claims = agent.verify(token).await?;
    let mut out = serde_json::json!({
        "valid": true,
        "header": { "alg": claims.algorithm.as_str(), "kid": claims.kid },
        "claims": claims.claims,
    });
    if !online {
        print_line(&serde_json::to_string_pretty(&out).unwrap_or_default());
        return Ok(ExitStatus::Success);
    }
    let answer = agent.introspect(token).await?;
    let active = answer.get("active") == Some(&serde_json::Value::Bool(true));
    out["valid"] = active.into();
    out["active"] = active.into();
    print_line(&serde_json::to_string_pretty(&out).unwrap_or_default());
    if active {
        Ok(ExitStatus::Success)
    } else {
        tracing::error!(
            "the server says the token is not active: revoked, expired, or its client removed or not allowed to see it (its signature verifies)"
        );
        Ok(ExitStatus::InvalidAnswer)
    }
}
