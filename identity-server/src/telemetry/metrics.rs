//! The server's Prometheus metrics (`Metrics:Urls`), registered once, updated where things happen
//! (through [`super::Telemetry`]) and, for the values that are states rather than events (replay
//! cache entries, store up), refreshed on each scrape.
//!
//! Labels stay bounded: client ids come from the access-control XML (a token is only issued to a
//! registered client), reasons, methods, routes and results are fixed sets.

use std::time::Duration;

use ids_runtime::metrics::{CertificateExpiry, register_build_info};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Latency buckets, in seconds: half a millisecond (a cached token) to ten seconds (a delivery).
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClientMethod {
    pub client: String,
    pub method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteStatus {
    pub route: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Route {
    pub route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RoleResult {
    pub role: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Header {
    pub header: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabel {
    pub r#type: &'static str,
}

/// The certificate roles that reload while serving.
pub const CERTIFICATE_ROLES: [&str; 5] =
    ["signing", "validation", "tls", "client_ca", "encryption"];

fn latency() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// Every metric of the server.
#[derive(Debug)]
pub struct ServerMetrics {
    registry: Registry,
    pub tokens_issued: Family<ClientMethod, Counter>,
    pub authentication_failures: Family<Reason, Counter>,
    pub http_requests: Family<RouteStatus, Counter>,
    pub http_duration: Family<Route, Histogram, fn() -> Histogram>,
    pub hash_wait: Histogram,
    pub secret_cache: Family<Outcome, Counter>,
    pub replay_entries: Gauge,
    pub deliveries: Family<Outcome, Counter>,
    pub delivery_bytes: Counter,
    pub certificates: CertificateExpiry,
    pub clients_loaded: Gauge,
    pub last_reload_success: Gauge,
    pub last_reload_time: Gauge,
    pub certificate_reloads: Family<RoleResult, Counter>,
    pub store_up: Gauge,
    pub forwarded_ignored: Family<Header, Counter>,
    pub audit_events: Family<TypeLabel, Counter>,
    pub audit_write_errors: Counter,
    pub audit_dropped: Counter,
    /// Introspection answers, by result (`active`, `inactive`).
    pub introspections: Family<Outcome, Counter>,
    pub tokens_revoked: Counter,
    /// DPoP proofs refused, by reason (`dpop_replayed`, `dpop_nonce`, ...).
    pub dpop_refused: Family<Reason, Counter>,
    /// Managed signing keys (`KeyManagement Automatic`), by state (`pending`, `signing`, `retired`).
    pub managed_keys: Family<StateLabel, Gauge>,
    /// When the signing key in force activated, and when it is planned to stop signing.
    pub signing_key_activated: Gauge,
    pub signing_key_rotation: Gauge,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: &'static str,
}

impl ServerMetrics {
    pub fn new() -> ServerMetrics {
        let mut registry = Registry::default();
        register_build_info(&mut registry, "ids", env!("CARGO_PKG_VERSION"));
        let tokens_issued = Family::default();
        registry.register(
            "ids_tokens_issued",
            "Access tokens issued, by client and client authentication method",
            Family::clone(&tokens_issued),
        );
        let authentication_failures = Family::default();
        registry.register(
            "ids_client_authentication_failures",
            "Failed client authentications at the token endpoint, by reason",
            Family::clone(&authentication_failures),
        );
        let http_requests = Family::default();
        registry.register(
            "ids_http_requests",
            "HTTP requests answered, by route and status",
            Family::clone(&http_requests),
        );
        let http_duration = Family::new_with_constructor(latency as fn() -> Histogram);
        registry.register(
            "ids_http_request_duration_seconds",
            "Time from a request's headers to its answer's headers, by route",
            Family::clone(&http_duration),
        );
        let hash_wait = Histogram::new(LATENCY_BUCKETS);
        registry.register(
            "ids_secret_hash_wait_seconds",
            "Time a secret verification waited for a free argon2 slot (IdentityServer:HashConcurrency)",
            hash_wait.clone(),
        );
        let secret_cache = Family::default();
        registry.register(
            "ids_secret_cache_lookups",
            "Client secrets looked up in the cache of verified secrets, by result (hit, miss)",
            Family::clone(&secret_cache),
        );
        let replay_entries = Gauge::default();
        registry.register(
            "ids_replay_cache_entries",
            "private_key_jwt assertion ids (jti) remembered against replay by this server",
            replay_entries.clone(),
        );
        let deliveries = Family::default();
        registry.register(
            "ids_deliveries",
            "Delivery uploads, by result (stored, duplicate, refused, failed)",
            Family::clone(&deliveries),
        );
        let delivery_bytes = Counter::default();
        registry.register(
            "ids_delivery_bytes",
            "Bytes of deliveries stored",
            delivery_bytes.clone(),
        );
        let certificates = CertificateExpiry::register(&mut registry, "ids");
        let clients_loaded = Gauge::default();
        registry.register(
            "ids_access_control_clients",
            "OpenIdClient entries loaded from the access-control XML",
            clients_loaded.clone(),
        );
        let last_reload_success = Gauge::default();
        registry.register(
            "ids_access_control_last_reload_success",
            "1 when the last load of the access-control XML succeeded, 0 when it failed (the previous clients stay in force)",
            last_reload_success.clone(),
        );
        let last_reload_time = Gauge::default();
        registry.register(
            "ids_access_control_last_reload_timestamp_seconds",
            "When the access-control XML was last loaded or reload attempted, in Unix seconds",
            last_reload_time.clone(),
        );
        let certificate_reloads = Family::default();
        registry.register(
            "ids_certificate_reloads",
            "Certificate reloads, by role and result (reloaded, failed)",
            Family::clone(&certificate_reloads),
        );
        let store_up = Gauge::default();
        registry.register(
            "ids_store_up",
            "1 when the store (embedded, or PostgreSQL) is usable, 0 when it is down",
            store_up.clone(),
        );
        let forwarded_ignored = Family::default();
        registry.register(
            "ids_forwarded_headers_ignored",
            "Forwarded or client-certificate headers ignored because the sender is not in ForwardedHeaders:KnownProxies",
            Family::clone(&forwarded_ignored),
        );
        let audit_events = Family::default();
        registry.register(
            "ids_audit_events",
            "Audit events written, by type",
            Family::clone(&audit_events),
        );
        let audit_write_errors = Counter::default();
        registry.register(
            "ids_audit_write_errors",
            "Audit events that could not be written (disk full, permissions): each is also logged",
            audit_write_errors.clone(),
        );
        let audit_dropped = Counter::default();
        registry.register(
            "ids_audit_events_dropped",
            "Audit events dropped because the writer's queue was full (the writer cannot keep up)",
            audit_dropped.clone(),
        );
        // Series that alerts watch exist from the start at 0, so that rate() and increase() see
        // their first event.
        for result in ["stored", "duplicate", "refused", "failed"] {
            let _ = deliveries.get_or_create(&Outcome { result });
        }
        for role in CERTIFICATE_ROLES {
            for result in ["reloaded", "failed"] {
                let _ = certificate_reloads.get_or_create(&RoleResult { role, result });
            }
        }
        let introspections = Family::default();
        registry.register(
            "ids_introspections",
            "Token introspection answers (RFC 7662), by result (active, inactive)",
            Family::clone(&introspections),
        );
        let tokens_revoked = Counter::default();
        registry.register(
            "ids_tokens_revoked",
            "Access tokens revoked by their client (RFC 7009)",
            tokens_revoked.clone(),
        );
        let dpop_refused = Family::default();
        registry.register(
            "ids_dpop_proofs_refused",
            "DPoP proofs refused at the token endpoint and the API (RFC 9449), by reason",
            Family::clone(&dpop_refused),
        );
        let managed_keys = Family::default();
        registry.register(
            "ids_managed_signing_keys",
            "Signing keys the server manages (IdentityServer:KeyManagement Automatic), by state (pending, signing, retired)",
            Family::clone(&managed_keys),
        );
        let signing_key_activated = Gauge::default();
        registry.register(
            "ids_signing_key_activated_timestamp_seconds",
            "When the managed signing key in force started signing",
            signing_key_activated.clone(),
        );
        let signing_key_rotation = Gauge::default();
        registry.register(
            "ids_signing_key_rotation_timestamp_seconds",
            "When the managed signing key in force is planned to stop signing (the next key signs)",
            signing_key_rotation.clone(),
        );
        // Watched by the IdsDpopReplays alert: present from the start.
        let _ = dpop_refused.get_or_create(&Reason {
            reason: "dpop_replayed",
        });
        for result in ["active", "inactive"] {
            let _ = introspections.get_or_create(&Outcome { result });
        }
        ServerMetrics {
            managed_keys,
            signing_key_activated,
            signing_key_rotation,
            introspections,
            tokens_revoked,
            dpop_refused,
            registry,
            tokens_issued,
            authentication_failures,
            http_requests,
            http_duration,
            hash_wait,
            secret_cache,
            replay_entries,
            deliveries,
            delivery_bytes,
            certificates,
            clients_loaded,
            last_reload_success,
            last_reload_time,
            certificate_reloads,
            store_up,
            forwarded_ignored,
            audit_events,
            audit_write_errors,
            audit_dropped,
        }
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        ids_runtime::metrics::render(&self.registry)
    }

    pub fn observe_request(&self, route: &'static str, status: u16, elapsed: Duration) {
        self.http_requests
            .get_or_create(&RouteStatus { route, status })
            .inc();
        self.http_duration
            .get_or_create(&Route { route })
            .observe(elapsed.as_secs_f64());
    }
}

impl Default for ServerMetrics {
    fn default() -> Self {
        ServerMetrics::new()
    }
}
