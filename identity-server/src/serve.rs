//! Listening: the sockets (HTTPS, or plain HTTP on an explicit danger switch), the connection cap
//! and HTTP tuning every listener gets, and the run loop that stops gracefully on `shutdown`.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::settings::{self, Settings};
use crate::startup::{self, LoadError, LoadErrors, Loaded, load};
use ids_runtime::{Clock as _, SystemClock};

use crate::telemetry::{AuditOutput, Auditor, ServerMetrics, Telemetry};
use crate::{Error, connections, http, reload};

/// Errors that stop the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{0}")]
    Load(#[from] LoadErrors),
    #[error("cannot use the listening socket: {0}")]
    Io(#[from] std::io::Error),
}

/// The issuer (`iss`) for a server bound at `bound`: `ApplicationUri` when set, else the listen URL with
/// the actual port (wildcard hosts become `localhost`).
pub fn issuer(settings: &Settings, bound: SocketAddr) -> String {
    if let Some(uri) = &settings.application_uri {
        return uri.clone();
    }
    match settings.urls.first() {
        Some(url) => url.public_base(bound.port()),
        None => format!("https://localhost:{}", bound.port()),
    }
}

/// A server ready to run, as the binary starts it: its settings and files loaded, then its sockets
/// bound (in that order, so that configuration errors come first and alone).
#[derive(Debug)]
pub struct Bound {
    pub settings: Settings,
    pub loaded: Loaded,
    pub listeners: Vec<TcpListener>,
    /// Each listener's address and whether it serves HTTPS, in `Urls` order: what the binary prints.
    pub addresses: Vec<(SocketAddr, bool)>,
    /// The issuer (`iss`) the first address gives, or `ApplicationUri`.
    pub issuer: String,
    /// `Metrics:Urls` listeners, in order.
    pub metrics: Vec<TcpListener>,
}

impl Bound {
    /// Loads the settings of `dir` (with `urls` overriding `Urls`) and the files they name, then binds
    /// every listen URL. The first may come bound already (`first`: quickstart binds before it writes
    /// its files, so that a busy port does not cost the secret it generates).
    pub fn load_and_bind(
        dir: &Path,
        urls: Option<&str>,
        first: Option<TcpListener>,
    ) -> Result<Bound, Error> {
        let settings = Settings::load(dir, urls).map_err(Error::Settings)?;
        let loaded = load(&settings, SystemClock.now()).map_err(Error::Load)?;
        let mut listeners: Vec<TcpListener> = first.into_iter().collect();
        for url in settings.urls.iter().skip(listeners.len()) {
            listeners.push(bind(&url.bind_address())?);
        }
        let addresses = listeners
            .iter()
            .zip(&settings.urls)
            .map(|(l, url)| Ok((l.local_addr().map_err(Error::Socket)?, url.https)))
            .collect::<Result<Vec<_>, Error>>()?;
        let (first, _) = addresses.first().ok_or(Error::NoListenUrl)?;
        let issuer = issuer(&settings, *first);
        let metrics = bind_metrics(&settings)?;
        Ok(Bound {
            settings,
            loaded,
            listeners,
            addresses,
            issuer,
            metrics,
        })
    }

    /// Serves on a new multi-threaded runtime until `shutdown` completes.
    pub fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        runtime.block_on(run_bound(
            self.settings,
            self.loaded,
            self.listeners,
            Some(self.metrics),
            shutdown,
        ))?;
        Ok(())
    }
}

/// Binds every `Metrics:Urls` address, in order.
fn bind_metrics(settings: &Settings) -> Result<Vec<TcpListener>, Error> {
    settings
        .operations
        .metrics
        .iter()
        .map(|a| bind(a))
        .collect()
}

/// Binds `address` (`host:port` of a listen URL).
pub fn bind(address: &str) -> Result<TcpListener, Error> {
    TcpListener::bind(address).map_err(|source| Error::Listen {
        address: address.to_string(),
        source,
    })
}

/// Runs the server on several listeners (one per `Urls` entry, in order; a listener without its own URL
/// uses the scheme of the first) until `shutdown` completes. The first listener names the issuer when
/// `ApplicationUri` is not set.
pub async fn run_on(
    settings: Settings,
    listeners: Vec<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let loaded = load(&settings, SystemClock.now()).map_err(ServerError::Load)?;
    run_loaded(settings, loaded, listeners, shutdown).await
}

/// [`run_on`] with what [`load`] returned (the binary loads first, to report problems before it binds).
/// `Metrics:Urls` are bound here.
pub async fn run_loaded(
    settings: Settings,
    loaded: Loaded,
    listeners: Vec<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    run_bound(settings, loaded, listeners, None, shutdown).await
}

/// [`run_loaded`] with the `Metrics:Urls` listeners bound already (`Some`: the binary binds them
/// with the others, to print their addresses).
pub async fn run_bound(
    settings: Settings,
    mut loaded: Loaded,
    listeners: Vec<TcpListener>,
    metrics_listeners: Option<Vec<TcpListener>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let tls = loaded.keys.tls.clone();
    let store = loaded.store.clone();
    if let Some(store) = &store {
        // One attempt before serving: a schema newer than this binary stops the server here; an
        // unreachable database does not (the monitor below keeps trying, requests get 503 meanwhile).
        tracing::info!(
            "store: PostgreSQL {} (sslmode={})",
            store.describe(),
            store.settings().ssl_mode.as_str()
        );
        if let Err(e @ crate::store::postgres::PgError::SchemaNewer { .. }) = store.prepare().await
        {
            return Err(LoadErrors::from(LoadError::Store(e)).into());
        }
    }
    // KeyManagement Automatic: the signing key comes from the store (made there when due).
    let manager = startup::key_manager(&settings, store.as_ref(), settings.clock.now())
        .map_err(LoadErrors::from)?;
    let mut managed_others = Vec::new();
    let mut first_schedule = Vec::new();
    let mut first_change = None;
    if let Some(manager) = &manager {
        let refreshed = first_managed_keys(manager, &settings, store.as_ref()).await?;
        for k in &refreshed.schedule {
            tracing::info!(
                kid = %k.kid,
                alg = k.algorithm.as_str(),
                state = k.state.as_str(),
                activates = %ids_pki::cert::format_time(k.activates),
                retires = %ids_pki::cert::format_time(k.retires),
                unpublished = %ids_pki::cert::format_time(k.unpublished_at),
                store = %manager.store().describe(),
                "managed signing key"
            );
        }
        loaded.keys.signing = Some(refreshed.signing.clone());
        managed_others = refreshed.others;
        first_schedule = refreshed.schedule;
        first_change = refreshed.next_change;
    }
    let authorized_keys = startup::announce(&settings, &loaded);
    let bound = listeners
        .iter()
        .map(TcpListener::local_addr)
        .collect::<Result<Vec<_>, _>>()?;
    let Some(first) = bound.first().copied() else {
        return Err(LoadErrors::from(LoadError::NoListener).into());
    };
    let issuer = issuer(&settings, first);
    let initial = reload::certificates::Initial {
        validation: loaded.keys.validation.clone(),
        client_authorities: loaded.keys.client_authorities.clone(),
        tls_certificate: loaded.keys.tls_certificate.clone(),
        encryption_certificate: loaded
            .encryption
            .as_ref()
            .ok()
            .map(|e| e.certificate.clone()),
    };
    let telemetry = start_telemetry(&settings)?;
    if manager.is_some() {
        telemetry.key_schedule(&first_schedule);
    }
    let metrics_listeners = match metrics_listeners {
        Some(l) => l,
        None => bind_metrics(&settings)
            .map_err(|e| ServerError::Io(std::io::Error::other(e.to_string())))?,
    };
    let state = Arc::new(
        startup::app_state(
            &settings,
            loaded,
            managed_others,
            authorized_keys,
            &issuer,
            &bound,
            tokio::runtime::Handle::current(),
            telemetry.clone(),
        )
        .map_err(LoadErrors::from)?,
    );
    let live_clients = state.tokens.clients.clone();
    let replay = state.tokens.replay.clone();
    let live_keys = state.tokens.keys.clone();
    let guard = connection_guard(&settings);
    let app = http::router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let mut handles = Vec::new();
    let mut servers = tokio::task::JoinSet::new();
    // One TLS configuration for every HTTPS listener, replaced when certificates are reloaded.
    let tls_config = axum_server::tls_rustls::RustlsConfig::from_config(tls.clone());
    let mut serves_https = false;
    for (i, listener) in listeners.into_iter().enumerate() {
        listener.set_nonblocking(true)?;
        let https = settings
            .urls
            .get(i)
            .or(settings.urls.first())
            .is_none_or(|u| u.https);
        let handle = axum_server::Handle::new();
        handles.push(handle.clone());
        let app = app.clone();
        let server =
            axum_server::from_tcp(listener)?.accept_error_handler(connections::log_accept_error);
        if https {
            serves_https = true;
            let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(tls_config.clone())
                .handshake_timeout(settings.limits.tls_handshake_timeout)
                .acceptor(guard.clone());
            let mut server = server.acceptor(acceptor);
            tune(server.http_builder(), &settings.limits);
            servers.spawn(server.handle(handle).serve(app));
        } else {
            tracing::warn!(
                address = %bound[i],
                "DANGER: serving plain HTTP (IdentityServer:DangerAllowInsecureHttp); secrets and tokens cross the network in clear"
            );
            let mut server = server.acceptor(guard.clone());
            tune(server.http_builder(), &settings.limits);
            servers.spawn(server.handle(handle).serve(app));
        }
    }
    // Started once nothing above can fail any more, so that no early error leaves it running.
    let certificates = reload::certificates::CertificateReloader::new(
        &settings,
        startup::publish_context(&settings, &issuer),
        state.keys.clone(),
        state.deliveries.as_ref().ok().cloned(),
        serves_https.then_some(tls_config),
        telemetry.clone(),
        initial,
    );
    if let Some(manager) = manager {
        tokio::spawn(crate::keys::managed::run(
            manager,
            state.keys.clone(),
            startup::publish_context(&settings, &issuer),
            settings.clock.clone(),
            telemetry.clone(),
            MANAGED_KEYS_INTERVAL,
            first_change,
        ));
    }
    let hangup = reload::listen_hangup();
    let reloader = tokio::spawn(reload::reload_access_control(
        live_clients,
        live_keys,
        settings.access_control_reload,
        telemetry.clone(),
        settings.clock.clone(),
        Some(Arc::new(std::sync::Mutex::new(certificates))),
        hangup,
    ));
    let (stop_metrics, metrics_stopped) = tokio::sync::watch::channel(false);
    if let Some(metrics) = &telemetry.metrics {
        let render = scrape(metrics.clone(), replay.clone(), store.clone());
        for listener in metrics_listeners {
            let mut stopped = metrics_stopped.clone();
            let address = listener.local_addr()?;
            tracing::info!(%address, "metrics served at http://{address}/metrics");
            tokio::spawn(ids_runtime::metrics::serve(
                listener,
                render.clone(),
                async move {
                    let _ = stopped.wait_for(|s| *s).await;
                },
            ));
        }
    }
    let (stop_monitor, monitor_stopped) = tokio::sync::oneshot::channel::<()>();
    if let Some(store) = store {
        tokio::spawn(store.monitor(
            crate::store::postgres::MAINTENANCE_INTERVAL,
            crate::store::postgres::maintenance,
            async move {
                let _ = monitor_stopped.await;
            },
        ));
    }
    tracing::info!(%issuer, addresses = ?bound, "identity server ready");
    if let Err(e) = ids_runtime::notify::notify("READY=1") {
        tracing::warn!("cannot tell systemd the server is ready (NOTIFY_SOCKET): {e}");
    }
    tokio::spawn(async move {
        shutdown.await;
        for handle in handles {
            handle.graceful_shutdown(Some(Duration::from_secs(10)));
        }
    });
    let mut result = Ok(());
    while let Some(done) = servers.join_next().await {
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                if result.is_ok() {
                    result = Err(ServerError::Io(e));
                }
            }
            Err(e) => {
                if result.is_ok() {
                    result = Err(ServerError::Io(std::io::Error::other(e.to_string())));
                }
            }
        }
    }
    let _ = ids_runtime::notify::notify("STOPPING=1");
    reloader.abort();
    let _ = stop_monitor.send(());
    let _ = stop_metrics.send(true);
    // Written out after the last request: a restart must not reopen the replay window.
    let _ = tokio::task::spawn_blocking(move || replay.shutdown()).await;
    // The audit events of the last requests are written before the process exits.
    let _ = tokio::task::spawn_blocking(move || telemetry.flush()).await;
    result
}

/// How often the managed keys are read again besides their planned changes (another server may have
/// made one).
const MANAGED_KEYS_INTERVAL: Duration = Duration::from_secs(60);

/// The managed keys at start-up: the store may still be coming up (PostgreSQL after a reboot), so
/// they are asked for up to [`FIRST_KEYS_WAIT`] before the server gives up (without a signing key it
/// could not issue a token).
async fn first_managed_keys(
    manager: &crate::keys::managed::KeyManager,
    settings: &Settings,
    store: Option<&Arc<crate::store::postgres::PgStore>>,
) -> Result<crate::keys::managed::Refreshed, ServerError> {
    let started = std::time::Instant::now();
    loop {
        // The store's monitor is not running yet: connecting again is done here.
        if let Some(store) = store.filter(|s| !s.is_up())
            && let Err(e @ crate::store::postgres::PgError::SchemaNewer { .. }) =
                store.prepare().await
        {
            return Err(LoadErrors::from(LoadError::Store(e)).into());
        }
        match manager.refresh(settings.clock.now()).await {
            Ok(refreshed) => return Ok(refreshed),
            Err(e) if started.elapsed() < FIRST_KEYS_WAIT => {
                tracing::warn!("managed signing keys not read yet ({e}); retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(LoadErrors::from(LoadError::ManagedKeys(e)).into()),
        }
    }
}

/// How long start-up waits for the managed keys.
const FIRST_KEYS_WAIT: Duration = Duration::from_secs(30);

/// The metrics registry (when `Metrics:Urls` is set) and the audit writer (when `Audit` is set).
fn start_telemetry(settings: &Settings) -> Result<Telemetry, ServerError> {
    let metrics = (!settings.operations.metrics.is_empty()).then(|| Arc::new(ServerMetrics::new()));
    let audit = match &settings.operations.audit {
        None => None,
        Some(output) => {
            let auditor = Auditor::start(output, metrics.clone(), settings.clock.now())
                .map_err(|e| LoadErrors::from(LoadError::Audit(e)))?;
            match output {
                AuditOutput::Folder {
                    path,
                    retention_days,
                } => {
                    tracing::info!(folder = %path.display(), retention_days, "audit trail written")
                }
                AuditOutput::Stdout => tracing::info!("audit trail written to standard output"),
            }
            Some(auditor)
        }
    };
    Ok(Telemetry { metrics, audit })
}

/// What a scrape answers: the states read now (replay cache entries, store up), then every metric.
fn scrape(
    metrics: Arc<ServerMetrics>,
    replay: Arc<dyn crate::oauth::client_keys::ReplayCache>,
    store: Option<Arc<crate::store::postgres::PgStore>>,
) -> ids_runtime::metrics::Render {
    Arc::new(move || {
        metrics.replay_entries.set(replay.entries() as i64);
        metrics
            .store_up
            .set(i64::from(store.as_ref().is_none_or(|s| s.is_up())));
        metrics.render()
    })
}

/// Raises the open-file limit and sizes the connection cap (`Limits:MaxConnections`, derived from the
/// open-file limit when unset), logging both.
fn connection_guard(settings: &Settings) -> connections::Guard {
    match connections::raise_open_file_limit() {
        Ok(Some((before, after))) => tracing::info!(
            "open-file limit raised from {before} to {}",
            after.map_or_else(|| "unlimited".to_string(), |n| n.to_string())
        ),
        Ok(None) => {}
        Err(e) => tracing::warn!("cannot raise the open-file limit to the hard limit: {e}"),
    }
    let open_files = connections::open_file_limit();
    let limits = &settings.limits;
    let max_connections = match limits.max_connections {
        Some(n) => {
            if let Some(files) = open_files
                && n as u64 + connections::RESERVED_FILES > files
            {
                tracing::warn!(
                    "Limits:MaxConnections {n} is more than the open-file limit ({files}) allows with {} files kept for the server: past about {} connections, new ones wait in the kernel's queue instead of being refused",
                    connections::RESERVED_FILES,
                    files.saturating_sub(connections::RESERVED_FILES),
                );
            }
            n
        }
        None => connections::derived_max_connections(open_files),
    };
    tracing::info!(
        max_connections,
        open_files = open_files.map_or_else(|| "unlimited".to_string(), |n| n.to_string()),
        idle_timeout_s = limits.idle_timeout.as_secs(),
        tls_handshake_timeout_s = limits.tls_handshake_timeout.as_secs(),
        request_headers_timeout_s = limits.request_headers_timeout.as_secs(),
        token_request_timeout_s = limits.token_request_timeout.as_secs(),
        "connection limits"
    );
    connections::Guard::new(max_connections, limits.idle_timeout)
}

/// HTTP settings of every listener.
fn tune(
    builder: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    limits: &settings::Limits,
) {
    // A client that opens a connection and sends headers slowly must not hold it forever.
    builder
        .http1()
        .header_read_timeout(limits.request_headers_timeout);
    // HTTP/2 flow control: with hyper's defaults a streamed delivery body crawls at ~45 MiB/s on
    // loopback (the window is refilled too late). Larger windows let a delivery run at disk speed;
    // what a stream may buffer is still bounded (the window), whatever the file size.
    builder
        .http2()
        .initial_stream_window_size(DELIVERY_STREAM_WINDOW)
        .initial_connection_window_size(2 * DELIVERY_STREAM_WINDOW)
        .max_frame_size(64 * 1024);
}

/// HTTP/2 receive window per stream.
const DELIVERY_STREAM_WINDOW: u32 = 4 * 1024 * 1024;
