//! Reloading while serving: the access-control XML, the authorized-clients folder and the certificate
//! files ([`certificates`]) are read again when their files change and on SIGHUP, so that an operator
//! adds or removes a client, or renews a certificate, without a restart. A new version that does not
//! load is reported and the one in force stays.

pub mod certificates;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::telemetry::Telemetry;
use crate::{access_control, authorized_clients};
use ids_runtime::Clock;

/// SIGHUP, listened to from before the server says it is ready (a reload asked right after the start
/// must not meet SIGHUP's default action, which ends the process).
#[cfg(unix)]
pub(crate) type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
pub(crate) type Hangup = Option<()>;

/// Starts listening to SIGHUP (call before telling systemd the server is ready).
pub(crate) fn listen_hangup() -> Hangup {
    #[cfg(unix)]
    {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Runs `work` on the certificate reloader, if there is one, on a blocking thread (it reads files).
async fn with_certificates(
    certificates: &Option<Arc<Mutex<certificates::CertificateReloader>>>,
    work: impl FnOnce(&mut certificates::CertificateReloader) + Send + 'static,
) {
    let Some(reloader) = certificates.clone() else {
        return;
    };
    let _ = tokio::task::spawn_blocking(move || {
        let mut reloader = match reloader.lock() {
            Ok(r) => r,
            Err(poisoned) => poisoned.into_inner(),
        };
        work(&mut reloader);
    })
    .await;
}

/// How often previous signing keys are checked for expiry when files are not polled.
const RETENTION_CHECK: Duration = Duration::from_secs(60);

/// Reloads the access-control XML when its files change (checked every `interval`; never when zero) and on
/// SIGHUP. Invalid new files are reported and the clients in force stay as they are.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn reload_access_control(
    clients: Arc<access_control::LiveClients>,
    keys: Arc<authorized_clients::LiveKeys>,
    interval: Duration,
    telemetry: Telemetry,
    clock: Arc<dyn Clock>,
    certificates: Option<Arc<Mutex<certificates::CertificateReloader>>>,
    #[cfg_attr(not(unix), allow(unused_mut))] mut hangup: Hangup,
) {
    let mut ticker = (!interval.is_zero()).then(|| {
        let mut t = tokio::time::interval(interval);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    // Files are not polled (interval 0): the previous signing keys still leave the JWKS on time.
    let mut retention = interval.is_zero().then(|| {
        let mut t = tokio::time::interval(RETENTION_CHECK);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    loop {
        let retention_tick = async {
            match retention.as_mut() {
                Some(t) => {
                    t.tick().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        let tick = async {
            match ticker.as_mut() {
                Some(t) => {
                    t.tick().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(unix)]
        let hup = async {
            match hangup.as_mut() {
                Some(h) => {
                    h.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let hup = {
            let _ = &mut hangup;
            std::future::pending::<()>()
        };
        let force = tokio::select! {
            _ = tick => false,
            _ = hup => true,
            _ = retention_tick => {
                let now = clock.now();
                with_certificates(&certificates, move |r| r.expire_retained(now)).await;
                continue;
            }
        };
        let now = clock.now();
        with_certificates(&certificates, move |r| r.reload(force, now)).await;
        let live_keys = keys.clone();
        if let Ok(Some(r)) = tokio::task::spawn_blocking(move || live_keys.reload(force)).await {
            for p in r.problems.iter().chain(&r.errors) {
                tracing::error!("{p}");
            }
            if r.folder_unreadable {
                tracing::error!(keys = r.keys, folder = ?keys.folder(), "authorized clients NOT reloaded: the keys in force stay until the folder can be read");
                telemetry.configuration_reloaded(
                    "authorized_clients",
                    Err("the folder cannot be read: the keys in force stay"),
                    clock.now(),
                );
            } else {
                tracing::info!(keys = r.keys, kept = r.kept, folder = ?keys.folder(), "authorized clients reloaded");
                telemetry.configuration_reloaded("authorized_clients", Ok(r.keys), clock.now());
            }
            telemetry.certificates(
                crate::startup::AUTHORIZED_CLIENT_ROLE,
                &crate::startup::authorized_certificates(&keys.current()),
            );
        }
        let live = clients.clone();
        let Ok(outcome) = tokio::task::spawn_blocking(move || live.reload(force)).await else {
            continue;
        };
        match outcome {
            access_control::Reload::Unchanged => {}
            access_control::Reload::Reloaded { clients, warnings } => {
                for w in warnings {
                    tracing::warn!("{w}");
                }
                tracing::info!(clients, "access control reloaded");
                telemetry.configuration_reloaded("access_control", Ok(clients), clock.now());
            }
            access_control::Reload::Rejected(errors) => {
                for e in errors.problems() {
                    tracing::error!("{e}");
                }
                tracing::error!(
                    "access control NOT reloaded: the clients in force stay as they were until the files can be read and are valid"
                );
                let first = errors
                    .problems()
                    .into_iter()
                    .next()
                    .map(|p| p.to_string())
                    .unwrap_or_default();
                telemetry.configuration_reloaded("access_control", Err(&first), clock.now());
            }
        }
    }
}
