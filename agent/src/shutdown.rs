//! The signal that stops `agent run`: SIGTERM (service managers, containers) or Ctrl-C (a terminal).
//!
//! The same as `ids_runtime::shutdown::signal`, which replaces it when the agent moves to that crate.

/// Waits for SIGTERM or Ctrl-C, then logs "stop requested".
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
    tracing::info!("stop requested");
}
