//! Health endpoints for load balancers, orchestrators and `identity-server health`:
//! `GET /health/live` (the process answers) and `GET /health/ready` (it can do its work: each check
//! listed, 503 when one fails). `/hc` (the vendor's path) is unchanged.
//!
//! The endpoints answer anyone: the details say what fails, never where (no path, host, user or
//! figure: those go to the server's log).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::AppState;

/// Liveness: answered as long as the server serves requests.
pub const LIVE: &str = "/health/live";
/// Readiness: every check below passes.
pub const READY: &str = "/health/ready";

/// One readiness check.
#[derive(Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    /// `ok`, `failed` or `disabled` (a feature that is off does not make the server unready).
    pub status: &'static str,
    pub detail: String,
}

/// The body of both endpoints.
#[derive(Debug, Serialize)]
pub struct Report {
    /// `live`, `ready` or `not_ready`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
}

pub async fn live() -> Response {
    answer(
        StatusCode::OK,
        &Report {
            status: "live",
            checks: Vec::new(),
        },
    )
}

pub async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let now = state.clock.now();
    let mut checks = Vec::new();

    let signing = state.keys.signing();
    let not_after = signing.certificate.not_after();
    checks.push(if not_after > now || state.tokens.issuer.accept_expired {
        Check {
            name: "signing_key",
            status: "ok",
            detail: format!(
                "kid {} ({}), valid until {}",
                signing.signer.kid(),
                signing.signer.algorithm().as_str(),
                ids_pki::cert::format_time(not_after)
            ),
        }
    } else {
        Check {
            name: "signing_key",
            status: "failed",
            detail: format!(
                "the signing certificate `{}` expired on {}",
                signing.certificate.subject(),
                ids_pki::cert::format_time(not_after)
            ),
        }
    });

    let clients = state.tokens.clients.current();
    let last_reload_failed = state
        .telemetry
        .metrics
        .as_ref()
        .is_some_and(|m| m.last_reload_success.get() == 0);
    checks.push(Check {
        name: "access_control",
        status: "ok",
        detail: if clients.by_id.is_empty() {
            "loaded, no client".into()
        } else if last_reload_failed {
            "loaded; the last reload failed, the clients loaded before stay in force".into()
        } else {
            "loaded".into()
        },
    });

    checks.push(match &state.store {
        None => Check {
            name: "store",
            status: "ok",
            detail: "embedded (the data folder)".into(),
        },
        Some(store) if store.is_up() => Check {
            name: "store",
            status: "ok",
            detail: "PostgreSQL reachable".into(),
        },
        // Where the database is and why it fails stay in the server's log.
        Some(_) => Check {
            name: "store",
            status: "failed",
            detail: "PostgreSQL unreachable (the server log says why)".into(),
        },
    });

    checks.push(match &state.deliveries {
        Err(off) => Check {
            name: "delivery_storage",
            status: "disabled",
            detail: off.to_string(),
        },
        Ok(deliveries) => {
            let deliveries = deliveries.clone();
            match tokio::task::spawn_blocking(move || deliveries.check_ready()).await {
                Ok(Ok(detail)) => Check {
                    name: "delivery_storage",
                    status: "ok",
                    detail,
                },
                Ok(Err(detail)) => Check {
                    name: "delivery_storage",
                    status: "failed",
                    detail,
                },
                Err(e) => Check {
                    name: "delivery_storage",
                    status: "failed",
                    detail: format!("the check failed: {e}"),
                },
            }
        }
    });

    if let Some(audit) = &state.telemetry.audit {
        checks.push(if audit.is_writing() {
            Check {
                name: "audit",
                status: "ok",
                detail: "writing".into(),
            }
        } else {
            Check {
                name: "audit",
                status: "failed",
                detail: "audit events cannot be written (the server log says why)".into(),
            }
        });
    }

    let ready = checks.iter().all(|c| c.status != "failed");
    answer(
        if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        &Report {
            status: if ready { "ready" } else { "not_ready" },
            checks,
        },
    )
}

fn answer(status: StatusCode, report: &Report) -> Response {
    let mut response = (status, axum::Json(report)).into_response();
    super::error::no_store(response.headers_mut());
    response
}
