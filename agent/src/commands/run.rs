//! `agent run`: the outbox service ([`crate::delivery::outbox`]) until SIGTERM or Ctrl-C, or until the
//! outbox is empty with `--once`.

use std::path::Path;
use std::sync::Arc;

use super::session::Session;
use super::{Error, finish};
use crate::exit::ExitStatus;
use crate::metrics::AgentMetrics;
use ids_runtime::shutdown;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Stop once the outbox is empty (for a scheduled job).
    #[arg(long)]
    once: bool,
}

pub async fn exec(dir: &Path, args: Args) -> Result<ExitStatus, Error> {
    let session = Session::start(dir)?;
    Ok(finish(run(&session, args.once).await))
}

async fn run(session: &Session, once: bool) -> Result<ExitStatus, Error> {
    let mut agent = session.agent()?;
    let (stop_metrics, metrics_stopped) = tokio::sync::watch::channel(false);
    if !session.settings.metrics.is_empty() {
        let metrics = Arc::new(AgentMetrics::new());
        for (role, certificates) in certificate_roles(session) {
            metrics.certificates.set_role(role, &certificates);
        }
        for address in &session.settings.metrics {
            let listener =
                std::net::TcpListener::bind(address).map_err(|source| Error::Metrics {
                    address: address.clone(),
                    source,
                })?;
            let bound = listener.local_addr().map_err(|source| Error::Metrics {
                address: address.clone(),
                source,
            })?;
            tracing::info!("metrics served at http://{bound}/metrics");
            println!("metrics on http://{bound}/metrics");
            let render_metrics = metrics.clone();
            let mut stopped = metrics_stopped.clone();
            tokio::spawn(ids_runtime::metrics::serve(
                listener,
                Arc::new(move || render_metrics.render()),
                async move {
                    let _ = stopped.wait_for(|s| *s).await;
                },
            ));
        }
        agent = agent.with_metrics(metrics);
    }
    if let Err(e) = ids_runtime::notify::notify("READY=1") {
        tracing::warn!("cannot tell systemd the agent is ready (NOTIFY_SOCKET): {e}");
    }
    let delivery = session.settings.delivery.clone();
    let summary = crate::delivery::outbox::run(
        Arc::new(agent),
        session.vault.clone(),
        delivery,
        once,
        async {
            shutdown::signal().await;
            tracing::info!("stop requested");
        },
    )
    .await;
    let _ = ids_runtime::notify::notify("STOPPING=1");
    let _ = stop_metrics.send(true);
    let summary = summary?;
    Ok(if once && summary.left > 0 {
        // Only when stopped by a signal before the outbox was empty.
        ExitStatus::Unreachable
    } else if once && summary.unclaimable > 0 {
        ExitStatus::FileUnusable
    } else {
        ExitStatus::Success
    })
}

/// The agent's certificates by role (`ids_agent_certificate_expiry_timestamp_seconds`): its
/// encryption certificate(s), its client certificate, the server certificates it pins and the
/// certificates it trusts for HTTPS.
fn certificate_roles(session: &Session) -> Vec<(&'static str, Vec<(String, i64)>)> {
    let of = |c: &ids_pki::Certificate| (c.subject().to_string(), c.not_after());
    vec![
        (
            "encryption",
            session.vault.certificates().iter().map(of).collect(),
        ),
        (
            "client",
            session
                .keys
                .client_key
                .iter()
                .filter_map(|k| k.certificates.first())
                .map(of)
                .collect(),
        ),
        (
            "server_pinned",
            session
                .keys
                .pinned
                .iter()
                .map(|p| of(&p.certificate))
                .collect(),
        ),
        (
            "tls_trusted",
            session
                .keys
                .trusted
                .iter()
                .map(|t| (t.subject.clone(), t.not_after))
                .collect(),
        ),
    ]
}
