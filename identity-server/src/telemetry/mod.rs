//! What the server tells its operators about itself besides its log: Prometheus metrics
//! ([`metrics`], served on `Metrics:Urls`) and the audit trail ([`audit`], `Audit:Path`).
//!
//! Domain code reports each event once, to [`Telemetry`], which counts it and, when the audit trail
//! is on, queues its record. Both are optional and cost a branch when off.

pub mod audit;
pub mod metrics;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

pub use audit::{AuditOutput, Auditor, Event};
pub use metrics::ServerMetrics;
use metrics::{ClientMethod, Header, Outcome, Reason, RoleResult};

/// Metrics and audit trail of one server. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Telemetry {
    pub metrics: Option<Arc<ServerMetrics>>,
    pub audit: Option<Auditor>,
}

/// A token just issued.
#[derive(Debug)]
pub struct TokenIssued<'a> {
    pub client: &'a str,
    pub method: &'static str,
    pub scopes: &'a [String],
    pub jti: &'a str,
    pub kid: &'a str,
    pub peer: IpAddr,
    pub cnf_x5t_s256: Option<&'a str>,
    pub cnf_jkt: Option<&'a str>,
    pub audiences: &'a [String],
    pub exp: i64,
}

/// A client authentication that failed at the token endpoint.
#[derive(Debug)]
pub struct AuthenticationFailed<'a> {
    /// As sent (printable form).
    pub client: &'a str,
    pub method: &'static str,
    /// A fixed label: `wrong_secret`, `unknown_client`...
    pub reason: &'static str,
    /// The reason as logged.
    pub detail: &'a str,
    pub peer: IpAddr,
}

impl Telemetry {
    /// Neither metrics nor audit (tests, commands).
    pub fn off() -> Telemetry {
        Telemetry::default()
    }

    pub fn token_issued(&self, t: &TokenIssued<'_>, now: i64) {
        if let Some(m) = &self.metrics {
            m.tokens_issued
                .get_or_create(&ClientMethod {
                    client: t.client.to_string(),
                    method: t.method,
                })
                .inc();
        }
        if let Some(a) = &self.audit {
            a.record(
                Event::TokenIssued {
                    client: t.client.to_string(),
                    method: t.method,
                    scopes: t.scopes.to_vec(),
                    jti: t.jti.to_string(),
                    kid: t.kid.to_string(),
                    peer: t.peer.to_string(),
                    cnf_x5t_s256: t.cnf_x5t_s256.map(str::to_string),
                    cnf_jkt: t.cnf_jkt.map(str::to_string),
                    audiences: t.audiences.to_vec(),
                    exp: t.exp,
                },
                now,
            );
        }
    }

    /// A token revoked by its client.
    pub fn token_revoked(&self, client: &str, jti: &str, exp: i64, peer: IpAddr, now: i64) {
        if let Some(m) = &self.metrics {
            m.tokens_revoked.inc();
        }
        if let Some(a) = &self.audit {
            a.record(
                Event::TokenRevoked {
                    client: client.to_string(),
                    jti: jti.to_string(),
                    exp,
                    peer: peer.to_string(),
                },
                now,
            );
        }
    }

    /// An introspection answer.
    pub fn introspected(&self, active: bool) {
        if let Some(m) = &self.metrics {
            m.introspections
                .get_or_create(&Outcome {
                    result: if active { "active" } else { "inactive" },
                })
                .inc();
        }
    }

    /// The managed key schedule (`KeyManagement Automatic`).
    pub fn key_schedule(&self, schedule: &[crate::keys::managed::KeyStatus]) {
        use crate::keys::managed::KeyState;
        let Some(m) = &self.metrics else { return };
        for state in [KeyState::Pending, KeyState::Signing, KeyState::Retired] {
            let count = schedule.iter().filter(|k| k.state == state).count();
            m.managed_keys
                .get_or_create(&metrics::StateLabel {
                    state: state.as_str(),
                })
                .set(count as i64);
        }
        if let Some(signing) = schedule.iter().find(|k| k.state == KeyState::Signing) {
            m.signing_key_activated.set(signing.activates);
            m.signing_key_rotation.set(signing.retires);
        }
    }

    /// A DPoP proof refused (the reason is logged and answered by the caller).
    pub fn dpop_refused(&self, reason: &'static str) {
        if let Some(m) = &self.metrics {
            m.dpop_refused.get_or_create(&Reason { reason }).inc();
        }
    }

    pub fn authentication_failed(&self, f: &AuthenticationFailed<'_>, now: i64) {
        if let Some(m) = &self.metrics {
            m.authentication_failures
                .get_or_create(&Reason { reason: f.reason })
                .inc();
        }
        if let Some(a) = &self.audit {
            a.record(
                Event::ClientAuthenticationFailed {
                    client: f.client.to_string(),
                    method: f.method,
                    reason: f.reason,
                    detail: f.detail.to_string(),
                    peer: f.peer.to_string(),
                },
                now,
            );
        }
    }

    /// A secret looked up in the cache of verified secrets.
    pub fn secret_cache(&self, hit: bool) {
        if let Some(m) = &self.metrics {
            let result = if hit { "hit" } else { "miss" };
            m.secret_cache.get_or_create(&Outcome { result }).inc();
        }
    }

    /// Time waited for an argon2 slot.
    pub fn hash_wait(&self, waited: Duration) {
        if let Some(m) = &self.metrics {
            m.hash_wait.observe(waited.as_secs_f64());
        }
    }

    /// A request answered.
    pub fn request(&self, route: &'static str, status: u16, elapsed: Duration) {
        if let Some(m) = &self.metrics {
            m.observe_request(route, status, elapsed);
        }
    }

    /// A delivery event: counted by result (`stored`, `duplicate`, `refused`, `failed` (500, 507)
    /// for uploads; reads and exports are audited only).
    pub fn delivery(&self, event: Event, now: i64) {
        if let Some(m) = &self.metrics {
            let counted = match &event {
                Event::DeliveryStored { bytes, .. } => {
                    m.delivery_bytes.inc_by(*bytes);
                    Some("stored")
                }
                Event::DeliveryDuplicate { .. } => Some("duplicate"),
                // The server's own failures (an error, its storage full); 503 (busy, store down)
                // is counted as refused: the store's own metric says when it is down.
                Event::DeliveryRefused {
                    status: 500 | 507, ..
                } => Some("failed"),
                Event::DeliveryRefused { .. } => Some("refused"),
                _ => None,
            };
            if let Some(result) = counted {
                m.deliveries.get_or_create(&Outcome { result }).inc();
            }
        }
        if let Some(a) = &self.audit {
            a.record(event, now);
        }
    }

    /// The access-control XML (or the authorized-clients folder) loaded again: `Ok(clients)` or the
    /// error, the previous configuration staying in force.
    pub fn configuration_reloaded(
        &self,
        what: &'static str,
        result: Result<usize, &str>,
        now: i64,
    ) {
        if let Some(m) = &self.metrics
            && what == "access_control"
        {
            m.last_reload_time.set(now);
            match result {
                Ok(clients) => {
                    m.last_reload_success.set(1);
                    m.clients_loaded.set(clients as i64);
                }
                Err(_) => {
                    m.last_reload_success.set(0);
                }
            }
        }
        if let Some(a) = &self.audit {
            a.record(
                Event::ConfigurationReloaded {
                    what,
                    result: if result.is_ok() { "reloaded" } else { "failed" },
                    clients: result.ok(),
                    error: result.err().map(str::to_string),
                },
                now,
            );
        }
    }

    /// A certificate file re-read while serving: `Ok((subject, thumbprint))` now in force, or why
    /// not (the previous one stays).
    pub fn certificate_reloaded(
        &self,
        role: &'static str,
        result: Result<(&str, &str), &str>,
        now: i64,
    ) {
        if let Some(m) = &self.metrics {
            let label = if result.is_ok() { "reloaded" } else { "failed" };
            m.certificate_reloads
                .get_or_create(&RoleResult {
                    role,
                    result: label,
                })
                .inc();
        }
        if let Some(a) = &self.audit {
            let (subject, thumbprint, error) = match result {
                Ok((s, t)) => (Some(s.to_string()), Some(t.to_string()), None),
                Err(e) => (None, None, Some(e.to_string())),
            };
            a.record(
                Event::CertificateReloaded {
                    role,
                    result: if error.is_none() {
                        "reloaded"
                    } else {
                        "failed"
                    },
                    subject,
                    thumbprint,
                    error,
                },
                now,
            );
        }
    }

    /// The expiry of every certificate of `role` now held: `(subject, notAfter)`.
    pub fn certificates(&self, role: &str, certificates: &[(String, i64)]) {
        if let Some(m) = &self.metrics {
            m.certificates.set_role(role, certificates);
        }
    }

    /// A forwarded or client-certificate header from a peer that is not a known proxy.
    pub fn forwarded_ignored(&self, header: &'static str) {
        if let Some(m) = &self.metrics {
            m.forwarded_ignored.get_or_create(&Header { header }).inc();
        }
    }

    /// Writes out the audit events queued so far.
    pub fn flush(&self) {
        if let Some(a) = &self.audit {
            a.close();
        }
    }
}
