//! `agent token`: gets an access token for a client, verifies it, and prints it.

use std::path::Path;

use super::session::Session;
use super::{Error, finish, print_line};
use crate::exit::ExitStatus;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The OpenId client to authenticate as (default: OpenId:DefaultOpenIdClient).
    #[arg(long)]
    client: Option<String>,
    /// Scope to request (space-separated); the server grants all allowed scopes when omitted.
    #[arg(long)]
    scope: Option<String>,
    /// Print the token response and the verified claims as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn exec(dir: &Path, args: Args) -> Result<ExitStatus, Error> {
    let session = Session::start(dir)?;
    Ok(finish(token(&session, args).await))
}

async fn token(session: &Session, args: Args) -> Result<ExitStatus, Error> {
    let agent = session.agent()?;
    let client = args
        .client
        .unwrap_or_else(|| agent.settings().default_client.to_string());
    let token = agent.fetch_token(&client, args.scope.as_deref()).await?;
    tracing::info!(client = %client, expires_in = ?token.expires_in, "token obtained and verified");
    if args.json {
        let out = serde_json::json!({
            "client_id": token.client_id,
            "access_token": token.access_token.expose(),
            "token_type": token.token_type,
            "expires_in": token.expires_in,
            "scope": token.scope,
            "header": { "alg": token.claims.algorithm.as_str(), "kid": token.claims.kid },
            "claims": token.claims.claims,
        });
        print_line(&serde_json::to_string_pretty(&out).unwrap_or_default());
    } else {
        print_line(token.access_token.expose());
    }
    Ok(ExitStatus::Success)
}
