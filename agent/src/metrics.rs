//! The metrics `agent run` serves on `Metrics:Urls` (Prometheus): deliveries by result, the outbox
//! backlog, when the last delivery and the last token succeeded, and when its certificates expire.

use ids_runtime::metrics::{CertificateExpiry, register_build_info};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub result: &'static str,
}

/// Every metric of the agent.
#[derive(Debug)]
pub struct AgentMetrics {
    registry: Registry,
    deliveries: Family<Outcome, Counter>,
    pub outbox_files: Gauge,
    pub last_delivery: Gauge,
    pub last_token: Gauge,
    pub certificates: CertificateExpiry,
}

/// The results a delivery attempt ends with.
pub const RESULTS: [&str; 3] = ["delivered", "retried", "quarantined"];

impl AgentMetrics {
    pub fn new() -> AgentMetrics {
        let mut registry = Registry::default();
        register_build_info(&mut registry, "ids_agent", env!("CARGO_PKG_VERSION"));
        let deliveries = Family::<Outcome, Counter>::default();
        registry.register(
            "ids_agent_deliveries",
            "Delivery attempts, by result: delivered, retried (a failure that will be retried), quarantined",
            deliveries.clone(),
        );
        // Every result exists from the start, so that rate() and increase() see the first one.
        for result in RESULTS {
            let _ = deliveries.get_or_create(&Outcome { result });
        }
        let outbox_files = Gauge::default();
        registry.register(
            "ids_agent_outbox_files",
            "Files waiting to be delivered (outbox/ and sending/)",
            outbox_files.clone(),
        );
        let last_delivery = Gauge::default();
        registry.register(
            "ids_agent_last_delivery_timestamp_seconds",
            "When a delivery last succeeded, in Unix seconds (0: none since the start)",
            last_delivery.clone(),
        );
        let last_token = Gauge::default();
        registry.register(
            "ids_agent_last_token_timestamp_seconds",
            "When a token was last obtained and verified, in Unix seconds (0: none since the start)",
            last_token.clone(),
        );
        let certificates = CertificateExpiry::register(&mut registry, "ids_agent");
        AgentMetrics {
            registry,
            deliveries,
            outbox_files,
            last_delivery,
            last_token,
            certificates,
        }
    }

    /// Counts a delivery attempt's result (one of [`RESULTS`]).
    pub fn delivery(&self, result: &'static str) {
        self.deliveries.get_or_create(&Outcome { result }).inc();
    }

    pub fn render(&self) -> String {
        ids_runtime::metrics::render(&self.registry)
    }
}

impl Default for AgentMetrics {
    fn default() -> Self {
        AgentMetrics::new()
    }
}
