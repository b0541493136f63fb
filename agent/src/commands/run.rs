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
    Ok(finish(run(dir, &session, args.once).await))
}

/// Runs the outbox until SIGTERM or Ctrl-C (or an empty outbox with `once`). On SIGHUP the delivery
/// under way finishes, the settings, keys and certificates are read again, and the service goes on
/// with them; settings that do not load are reported and the ones in force stay. `Metrics:Urls` and
/// the log file are those of the start.
async fn run(dir: &Path, first: &Session, once: bool) -> Result<ExitStatus, Error> {
    let (stop_metrics, metrics_stopped) = tokio::sync::watch::channel(false);
    let mut metrics_in_use = None;
    if !first.settings.metrics.is_empty() {
        let metrics = Arc::new(AgentMetrics::new());
        for address in &first.settings.metrics {
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
        metrics_in_use = Some(metrics);
    }
    // SIGTERM / Ctrl-C and SIGHUP are listened to from here to the end, before systemd is told the
    // service is ready (a reload asked at once must not meet SIGHUP's default action, which ends
    // the process), and a stop asked during a reload is not lost.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown::signal().await;
        tracing::info!("stop requested");
        let _ = stop.send(true);
    });
    let hangup = Arc::new(tokio::sync::Notify::new());
    #[cfg(unix)]
    if let Ok(mut signal) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        let hangup = hangup.clone();
        tokio::spawn(async move {
            while signal.recv().await.is_some() {
                hangup.notify_one();
            }
        });
    }
    if let Err(e) = ids_runtime::notify::notify("READY=1") {
        tracing::warn!("cannot tell systemd the agent is ready (NOTIFY_SOCKET): {e}");
    }
    let mut reloaded: Option<Session> = None;
    let summary = loop {
        let session = reloaded.as_ref().unwrap_or(first);
        let mut agent = session.agent()?;
        if let Some(metrics) = &metrics_in_use {
            for (role, certificates) in certificate_roles(session) {
                metrics.certificates.set_role(role, &certificates);
            }
            agent = agent.with_metrics(metrics.clone());
        }
        let reload = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let asked = reload.clone();
        let hup = hangup.clone();
        let mut stopping = stopped.clone();
        let result = crate::delivery::outbox::run(
            Arc::new(agent),
            session.vault.clone(),
            session.settings.delivery.clone(),
            once,
            async move {
                tokio::select! {
                    _ = stopping.wait_for(|s| *s) => {}
                    _ = hup.notified() => {
                        tracing::info!("reload requested (SIGHUP): the delivery under way gets Delivery:ShutdownGraceSeconds to finish, else it is sent again after the reload");
                        asked.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            },
        )
        .await;
        if !reload.load(std::sync::atomic::Ordering::Relaxed) || *stopped.borrow() {
            break result;
        }
        let last = match result {
            Ok(summary) => summary,
            Err(e) => break Err(e),
        };
        let _ = ids_runtime::notify::notify("RELOADING=1");
        // The new settings are used only if an agent can be made of them.
        match Session::reload(dir).and_then(|fresh| fresh.agent().map(|_| fresh)) {
            Ok(fresh) => {
                tracing::info!("settings, keys and certificates reloaded");
                reloaded = Some(fresh);
            }
            Err(e) => {
                tracing::error!("settings NOT reloaded, the ones in force stay: {e}");
            }
        }
        let _ = ids_runtime::notify::notify("READY=1");
        if *stopped.borrow() {
            // Stopped during the reload: what the last run left is what is left.
            break Ok(last);
        }
    };
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
