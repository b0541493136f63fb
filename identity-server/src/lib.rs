//! The identity server: issues OAuth 2.0 client-credentials access tokens (JWT, RFC 9068) to the clients
//! declared in the access-control XML, signed with the key of the PFX certificate named in
//! `appsettings.json`, over HTTPS.
//!
//! # Layout
//! - [`settings`]: `appsettings.json` keys -> validated [`Settings`].
//! - [`access_control`]: the XML folder -> registered clients with parsed secret hashes and thumbprints.
//! - [`authorized_clients`]: the folder of client public keys (`private_key_jwt`, self-signed mTLS).
//! - [`tls`]: TLS client certificates (RFC 8705) as the handshake accepts them.
//! - [`keys`]: the signing certificate, validation keys, JWKS, discovery document and TLS configuration.
//! - [`oauth`]: the domain: request parsing, client authentication, token issuing, bearer tokens
//!   presented to the server's API (no HTTP types).
//! - [`deliveries`]: files agents deliver, stored encrypted for `EncryptionCertificate` (no HTTP types).
//! - [`http`]: axum routes and the one error -> response mapping.
//! - [`quickstart`]: development certificates, settings and a demo client for a first run.

pub mod access_control;
pub mod authorized_clients;
pub mod connections;
pub mod deliveries;
pub mod http;
pub mod keys;
pub mod oauth;
pub mod quickstart;
pub mod settings;
pub mod tls;

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

pub use settings::Settings;

use access_control::Clients;
use keys::ServerKeys as Keys;
use oauth::client_auth::{AuthConfig, Authenticator};
use oauth::{TokenIssuer, TokenService};

/// Everything loaded from disk, validated before the server accepts a connection.
#[derive(Debug)]
pub struct Loaded {
    pub keys: Keys,
    pub clients: Clients,
    /// `EncryptionCertificate` (deliveries are stored encrypted for it), or why deliveries are off.
    pub encryption: Result<keys::EncryptionKeys, String>,
    /// Non-fatal findings (unknown XML attributes, expired certificate accepted on request...).
    pub warnings: Vec<String>,
}

/// Loads certificates and the access-control XML, collecting every problem.
pub fn load(settings: &Settings, now: i64) -> Result<Loaded, Vec<String>> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let keys = match Keys::load(settings, now, &mut warnings) {
        Ok(k) => Some(k),
        Err(es) => {
            errors.extend(es.iter().map(ToString::to_string));
            None
        }
    };
    let encryption = match keys::EncryptionKeys::load(settings, now, &mut warnings, true) {
        Ok(e) => e,
        Err(e) => {
            errors.push(e.to_string());
            Err(String::new())
        }
    };
    let clients = match Clients::load(&settings.access_control_path, client_rules(settings)) {
        Ok((c, w)) => {
            warnings.extend(w);
            Some(c)
        }
        Err(e) => {
            errors.extend(e.0);
            None
        }
    };
    match (keys, clients) {
        (Some(keys), Some(clients)) if errors.is_empty() => Ok(Loaded {
            keys,
            clients,
            encryption,
            warnings,
        }),
        _ => Err(errors),
    }
}

/// Clients without `HashedSecret` or `Thumbprints` are valid when their keys or certificates can be
/// registered elsewhere: the authorized-clients folder, or a client CA.
pub fn client_rules(settings: &Settings) -> access_control::ClientRules {
    access_control::ClientRules {
        keys_elsewhere: settings.authorized_clients_path.is_some()
            || !settings.client_certificate_authorities.is_empty(),
        client_cas: !settings.client_certificate_authorities.is_empty()
            && settings.client_certificates == settings::ClientCertificates::Optional,
    }
}

/// Certificates that expire within `days` of `now` (or have expired), one message each: the signing,
/// validation, TLS and encryption certificates, the client CAs and the certificates of the
/// authorized-clients folder (`authorized`, as loaded).
pub fn expiry_warnings(
    settings: &Settings,
    loaded: &Loaded,
    authorized: &authorized_clients::AuthorizedKeys,
    now: i64,
    days: u64,
) -> Vec<String> {
    let mut certs: Vec<(String, &ids_pki::Certificate)> = vec![
        (
            "IdentityServer:X509KeyFilePath".into(),
            &loaded.keys.signing_certificate,
        ),
        (
            settings.tls.setting.to_string(),
            &loaded.keys.tls_certificate,
        ),
    ];
    certs.extend(
        loaded
            .keys
            .validation
            .iter()
            .map(|c| ("IdentityServer:ValidationKeys".to_string(), c)),
    );
    certs.extend(
        loaded
            .keys
            .client_authorities
            .iter()
            .map(|c| ("IdentityServer:ClientCertificateAuthorities".to_string(), c)),
    );
    if let Ok(e) = &loaded.encryption {
        certs.push(("EncryptionCertificate:File".into(), &e.certificate));
    }
    certs.extend(authorized.by_client.values().flatten().filter_map(|k| {
        k.certificate.as_ref().map(|c| {
            (
                format!("AccessControl:AuthorizedClientsPath ({})", k.file.display()),
                c,
            )
        })
    }));
    expiring(&certs, now, days)
}

/// One message per certificate of `certs` that expires within `days` of `now`.
pub fn expiring(certs: &[(String, &ids_pki::Certificate)], now: i64, days: u64) -> Vec<String> {
    let horizon = now.saturating_add(
        i64::try_from(days)
            .unwrap_or(i64::MAX)
            .saturating_mul(86_400),
    );
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for (setting, cert) in certs {
        if cert.not_after() > horizon || !seen.insert((setting.clone(), cert.x5t_s256())) {
            continue;
        }
        let when = ids_pki::cert::format_time(cert.not_after());
        if cert.not_after() <= now {
            out.push(format!(
                "{setting}: the certificate `{}` EXPIRED on {when}",
                cert.subject()
            ));
        } else {
            let left = (cert.not_after() - now) / 86_400;
            out.push(format!(
                "{setting}: the certificate `{}` expires on {when}, in {left} day(s); renew it before then",
                cert.subject()
            ));
        }
    }
    out
}

/// Errors that stop the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{}", .0.join("\n"))]
    Load(Vec<String>),
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

/// Runs the server on `listener` until `shutdown` completes.
///
/// Loads and validates everything first; prints nothing itself (the binary prints the bound address).
pub async fn run(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    run_on(settings, vec![listener], shutdown).await
}

/// Runs the server on several listeners (one per `Urls` entry, in order; a listener without its own URL
/// uses the scheme of the first) until `shutdown` completes. The first listener names the issuer when
/// `ApplicationUri` is not set.
pub async fn run_on(
    settings: Settings,
    listeners: Vec<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let loaded = load(&settings, unix_now()).map_err(ServerError::Load)?;
    run_loaded(settings, loaded, listeners, shutdown).await
}

/// [`run_on`] with what [`load`] returned (the binary loads first, to report problems before it binds).
pub async fn run_loaded(
    settings: Settings,
    loaded: Loaded,
    listeners: Vec<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    if let Some(line) = ids_config::describe_ignored(&settings.ignored_sections, "server") {
        tracing::info!("{line}");
    }
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    let authorized_keys = match &settings.authorized_clients_path {
        None => authorized_clients::LiveKeys::empty(),
        Some(folder) => {
            let (live, problems) = authorized_clients::LiveKeys::open(folder.clone());
            for p in problems {
                tracing::error!("{p}");
            }
            let count: usize = live.current().by_client.values().map(Vec::len).sum();
            tracing::info!(keys = count, folder = %folder.display(), "authorized clients loaded");
            live
        }
    };
    let authorized = authorized_keys.current();
    for w in expiry_warnings(
        &settings,
        &loaded,
        &authorized,
        unix_now(),
        settings.expiry_warning_days,
    ) {
        tracing::warn!("{w}");
    }
    let cert = &loaded.keys.signing_certificate;
    tracing::info!(
        alg = loaded.keys.signer.algorithm().as_str(),
        kid = loaded.keys.signer.kid(),
        subject = cert.subject(),
        not_after = %ids_pki::cert::format_time(cert.not_after()),
        validation_keys = loaded.keys.validation.len(),
        "token signing key loaded"
    );
    tracing::info!(
        clients = loaded.clients.by_id.len(),
        files = loaded.clients.files.len(),
        folder = %settings.access_control_path.display(),
        "access control loaded"
    );
    let bound = listeners
        .iter()
        .map(TcpListener::local_addr)
        .collect::<Result<Vec<_>, _>>()?;
    let Some(first) = bound.first().copied() else {
        return Err(ServerError::Load(vec!["no listening socket".into()]));
    };
    let issuer = issuer(&settings, first);
    let tls = loaded.keys.tls.clone();
    let state = Arc::new(
        app_state(&settings, loaded, authorized_keys, &issuer, &bound)
            .map_err(|e| ServerError::Load(vec![e]))?,
    );
    let live_clients = state.tokens.clients.clone();
    let replay = state.tokens.replay.clone();
    let live_keys = state.tokens.keys.clone();
    let guard = connection_guard(&settings);
    let app = http::router(state).into_make_service_with_connect_info::<SocketAddr>();
    let mut handles = Vec::new();
    let mut servers = tokio::task::JoinSet::new();
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
            let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(
                axum_server::tls_rustls::RustlsConfig::from_config(tls.clone()),
            )
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
    let reloader = tokio::spawn(reload_access_control(
        live_clients,
        live_keys,
        settings.access_control_reload,
    ));
    tracing::info!(%issuer, addresses = ?bound, "identity server ready");
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
    reloader.abort();
    // Written out after the last request: a restart must not reopen the replay window.
    let _ = tokio::task::spawn_blocking(move || replay.shutdown()).await;
    result
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

/// Reloads the access-control XML when its files change (checked every `interval`; never when zero) and on
/// SIGHUP. Invalid new files are reported and the clients in force stay as they are.
async fn reload_access_control(
    clients: Arc<access_control::LiveClients>,
    keys: Arc<authorized_clients::LiveKeys>,
    interval: Duration,
) {
    #[cfg(unix)]
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut ticker = (!interval.is_zero()).then(|| {
        let mut t = tokio::time::interval(interval);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    loop {
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
        let hup = std::future::pending::<()>();
        let force = tokio::select! {
            _ = tick => false,
            _ = hup => true,
        };
        let live_keys = keys.clone();
        if let Ok(Some(r)) = tokio::task::spawn_blocking(move || live_keys.reload(force)).await {
            for p in r.problems.iter().chain(&r.errors) {
                tracing::error!("{p}");
            }
            if r.folder_unreadable {
                tracing::error!(keys = r.keys, folder = ?keys.folder(), "authorized clients NOT reloaded: the keys in force stay until the folder can be read");
            } else {
                tracing::info!(keys = r.keys, kept = r.kept, folder = ?keys.folder(), "authorized clients reloaded");
            }
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
            }
            access_control::Reload::Rejected(errors) => {
                for e in errors {
                    tracing::error!("{e}");
                }
                tracing::error!(
                    "access control NOT reloaded: the clients in force stay as they were until the files can be read and are valid"
                );
            }
        }
    }
}

fn app_state(
    settings: &Settings,
    loaded: Loaded,
    authorized_keys: authorized_clients::LiveKeys,
    issuer: &str,
    bound: &[SocketAddr],
) -> Result<http::AppState, String> {
    let Loaded {
        keys,
        clients,
        encryption,
        ..
    } = loaded;
    let audience = settings
        .audience
        .clone()
        .unwrap_or_else(|| issuer.to_string());
    let bearer = oauth::bearer::BearerVerifier::new(
        &keys.signing_certificate,
        &keys.validation,
        issuer,
        &audience,
    )?;
    let deliveries = match encryption {
        Ok(encryption) => {
            let subject = encryption.certificate.subject().to_string();
            match open_deliveries(settings, encryption, true) {
                Ok((service, opened)) => {
                    for path in &opened.removed {
                        tracing::info!(path = %path.display(), "removed what an interrupted delivery left");
                    }
                    if !settings.encrypt_file {
                        tracing::warn!(
                            "EncryptionCertificate:EncryptFile is false, but deliveries are always stored encrypted"
                        );
                    }
                    let d = &settings.deliveries;
                    tracing::info!(
                        folder = %d.data_folder.join("deliveries").display(),
                        deliveries = opened.deliveries,
                        stored_mib = opened.stored_bytes / (1024 * 1024),
                        encrypted_for = %subject,
                        deliver_profiles = %d.deliver_profiles.join(","),
                        read_profiles = %d.read_profiles.join(","),
                        max_file_size_mib = d.max_size / (1024 * 1024),
                        max_uploads = d.max_uploads,
                        max_uploads_per_client = d.max_uploads_per_client,
                        min_upload_bytes_per_second = d.min_upload_rate.bytes_per_second,
                        min_upload_rate_window_seconds = d.min_upload_rate.window.as_secs(),
                        "deliveries enabled"
                    );
                    Ok(Arc::new(service))
                }
                Err(e) => {
                    // Tokens are still issued; deliveries answer 503 until this is fixed.
                    tracing::error!("deliveries disabled: {e}");
                    Err("it cannot use its delivery folder (see the server log)".to_string())
                }
            }
        }
        Err(reason) => {
            tracing::info!("deliveries disabled: {reason}");
            Err(reason)
        }
    };
    let mutual_tls = settings.client_certificates == settings::ClientCertificates::Optional;
    let discovery = keys::discovery_documents(
        issuer,
        keys.signer.algorithm(),
        &settings.scopes,
        mutual_tls,
    );
    let client_authorities = if keys.client_authorities.is_empty() {
        None
    } else {
        Some(oauth::client_keys::ClientAuthorities::new(
            &keys.client_authorities,
        )?)
    };
    let jwks = keys.jwks_json();
    // `client_id` may be suffixed with any spelling of this server's authority.
    let mut authorities = vec![authority(issuer)];
    for (i, addr) in bound.iter().enumerate() {
        if let Some(url) = settings.urls.get(i) {
            authorities.push(format!("{}:{}", url.host, addr.port()));
        }
        authorities.push(format!("localhost:{}", addr.port()));
        authorities.push(addr.to_string());
    }
    authorities.sort();
    authorities.dedup();
    // A client assertion's `aud`: the token endpoint (as any authority spells it) or the issuer.
    let mut assertion_audiences = vec![
        issuer.trim_end_matches('/').to_string(),
        format!("{}/connect/token", issuer.trim_end_matches('/')),
    ];
    for a in &authorities {
        assertion_audiences.push(format!("https://{a}/connect/token"));
    }
    assertion_audiences.dedup();
    let (replay, opened) = oauth::replay_journal::JournaledReplayCache::open(
        &settings.deliveries.data_folder.join("replay"),
        oauth::client_keys::MemoryReplayCache::new(1_000_000, 100_000),
        settings.clock.clone(),
        oauth::replay_journal::Limits::default(),
    );
    opened.log();
    let authenticator = Authenticator::new(AuthConfig {
        cache_ttl: settings.secret_cache_ttl,
        cache_size: settings.secret_cache_size,
        hash_concurrency: settings.hash_concurrency,
        hash_wait: Duration::from_secs(5),
        failures_per_minute: settings.failed_authentications_per_minute,
    })
    .map_err(|e| e.to_string())?;
    Ok(http::AppState {
        clock: settings.clock.clone(),
        token_request_timeout: settings.limits.token_request_timeout,
        tokens: TokenService {
            clients: Arc::new(access_control::LiveClients::new(
                clients,
                settings.access_control_path.clone(),
                client_rules(settings),
            )),
            authenticator,
            issuer: TokenIssuer {
                signer: keys.signer,
                issuer: issuer.to_string(),
                audience,
                lifetime_secs: settings.access_token_lifetime.as_secs(),
            },
            scopes: settings.scopes.clone(),
            authorities,
            keys: Arc::new(authorized_keys),
            // The memory bound (docs/performance.md, "Replay cache"): at most 1,000,000 live
            // assertions (~86 MiB: 2^21 buckets of 41 bytes), 100,000 of one client. An entry lives until its assertion's exp +
            // 30 s, at most MaxClientAssertionLifetimeSeconds + 30 s: one client may authenticate
            // 100,000 / (lifetime + 30) times a second (~1,100/s with the agent's 60 s assertions,
            // ~27/s with 1-hour ones) and all clients together 10 times that; beyond, the client gets
            // temporarily_unavailable, never a replay accepted. Kept across restarts in
            // <Deliveries:DataFolder>/replay (oauth::replay_journal), which adds a bounded queue.
            replay: Arc::new(replay),
            max_assertion_lifetime: settings.max_client_assertion_lifetime.as_secs() as i64,
            client_authorities,
            assertion_audiences,
        },
        discovery,
        jwks,
        bearer,
        deliveries,
    })
}

/// Opens the delivery store and the service over it. `clean_up` (the server at start-up only)
/// removes what interrupted deliveries left.
pub fn open_deliveries(
    settings: &Settings,
    encryption: keys::EncryptionKeys,
    clean_up: bool,
) -> Result<(deliveries::Deliveries, deliveries::folder::Opened), String> {
    let d = &settings.deliveries;
    let (store, opened) =
        deliveries::folder::FolderStore::open(&d.data_folder, d.quota, d.min_free, clean_up)
            .map_err(|e| format!("Deliveries:DataFolder: {e}"))?;
    let service = deliveries::Deliveries::new(
        Arc::new(store),
        encryption.recipient,
        encryption.key,
        deliveries::Policy {
            deliver_profiles: d.deliver_profiles.clone(),
            read_profiles: d.read_profiles.clone(),
            max_size: d.max_size,
            max_uploads: d.max_uploads,
            max_uploads_per_client: d.max_uploads_per_client,
            min_upload_rate: d.min_upload_rate,
        },
    );
    Ok((service, opened))
}

/// `host[:port]` of a URL.
fn authority(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest).to_string()
}

/// The server's time source, in Unix seconds: the system clock, or a test's (DESIGN.md 7.6).
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> i64;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        unix_now()
    }
}

/// Current Unix time in seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
