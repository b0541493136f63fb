//! The signal that stops a server or the agent's service: SIGTERM (service managers, containers) or
//! Ctrl-C (a terminal).

/// Waits for SIGTERM or Ctrl-C. Each app logs its own line afterwards ("stop requested" for the agent,
/// "shutting down" for the server).
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
