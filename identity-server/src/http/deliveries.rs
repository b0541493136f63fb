//! The delivery API: thin handlers over [`crate::deliveries`].
//!
//! - `PUT /api/deliveries/{id}?name=NAME`: the file's plaintext as the body, with `Content-Length` (its
//!   size) and `Repr-Digest: sha-256=:<base64>:` (RFC 9530); or, so that the agent reads its file once,
//!   `Trailer: Repr-Digest` with the digest as a request trailer after the body (and the size as
//!   `Upload-Length` when the body has no length). 201 with the record; 200 with the first record when
//!   this client already delivered this id with the same file. Ids are per client. The body is hashed,
//!   and encrypted and written, on two threads at once.
//! - every answer to `GET /api/deliveries/{id}` says `Delivery-Trailers: repr-digest` (the agent's
//!   cue to send the digest after the body).
//! - `GET /api/deliveries`: the records (readers).
//! - `GET /api/deliveries/{id}[?client=CLIENT]`: one record (readers, or the client that delivered it).
//! - `GET /api/deliveries/{id}/content[?client=CLIENT]`: the decrypted file (readers).
//!
//! Every request carries `Authorization: Bearer <token>` (or `DPoP <token>` with a `DPoP` proof for a
//! DPoP-bound token); deliveries also `Agent-Identifier`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http_body_util::BodyExt;
use ids_proto::deliveries::Receipt;
use ids_proto::{headers as names, paths};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;

use super::error::ApiError;
use super::forwarded::ClientAddress;
use super::{AppState, ClientCert};
use crate::access_control::Clients;
use crate::deliveries::{
    Action, Caller, Deliveries, DeliveryError, DeliveryId, DeliveryKey, Digests, Finished,
    Incoming, Record, Started, UploadPace, check_name, export_name,
};
use crate::oauth::OAuthError;
use crate::oauth::bearer::{BearerError, Scheme, parse_authorization};
use crate::oauth::request::printable;
use crate::telemetry::Event;
use ids_jose::{DpopError, Presentation};

/// A delivery whose body sends nothing for this long is abandoned (nothing is stored), whatever
/// `Deliveries:MinUploadBytesPerSecond` says.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Body pieces queued between the connection and the encrypting thread.
const QUEUE: usize = 16;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(paths::DELIVERIES, get(list))
        .route(&paths::delivery("{id}"), get(find).put(deliver))
        .route(&paths::delivery_content("{id}"), get(content))
}

/// The query of a delivery: `name` ([`ids_proto::headers::NAME`]).
#[derive(Deserialize)]
struct DeliverQuery {
    name: Option<String>,
}

/// Whose delivery a reader means (ids are per client): `client` ([`ids_proto::headers::CLIENT`]).
#[derive(Deserialize)]
struct ClientQuery {
    client: Option<String>,
}

/// The request a token came with: what a DPoP proof must be for.
#[derive(Debug, Clone, Copy)]
struct Target<'a> {
    method: &'a Method,
    path: &'a str,
    peer: std::net::IpAddr,
}

/// Authenticates the access token (`Bearer`, or `DPoP` with its proof) and finds the deliveries
/// service, the caller, and the clients in force (whose XML declares the agents). A revoked token is
/// refused.
async fn caller(
    state: &AppState,
    headers: &HeaderMap,
    certificate: &ClientCert,
    target: Target<'_>,
) -> Result<(Arc<Deliveries>, Caller, Arc<Clients>), ApiError> {
    let clients = state.tokens.clients.current();
    let now = state.clock.now();
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let (scheme, token) = parse_authorization(authorization)?;
    // Token problems of a DPoP request get a DPoP challenge (RFC 9449 section 7.1).
    let for_scheme = |e: BearerError| match (scheme, e) {
        (Scheme::Dpop, BearerError::Invalid(text)) => BearerError::InvalidDpopToken(text),
        (_, e) => e,
    };
    let published = state.keys.published();
    let claims = published.bearer.claims(token, now).map_err(for_scheme)?;
    let bound_jkt = claims.dpop_binding().map(str::to_string);
    if scheme == Scheme::Dpop && bound_jkt.is_none() {
        return Err(
            BearerError::InvalidDpopToken(ids_jose::VerifyError::NotDpopBound.to_string()).into(),
        );
    }
    // The certificate binding, the client in force, the revocation list: before a proof is
    // recorded (a token that is refused anyway takes no room in the replay cache).
    let client = published
        .bearer
        .client(
            &claims,
            &Presentation {
                certificate: certificate.leaf(),
                // Checked against the proof's key below.
                dpop_jkt: bound_jkt.as_deref().filter(|_| scheme == Scheme::Dpop),
            },
            &clients,
            now,
        )
        .map_err(for_scheme)?;
    let Some(jti) = &client.jti else {
        return Err(for_scheme(BearerError::Invalid(
            "the token has no jti: it cannot be checked against revocations".into(),
        ))
        .into());
    };
    match state.tokens.revoked.is_revoked(jti, now).await {
        Ok(false) => {}
        Ok(true) => {
            return Err(for_scheme(BearerError::Invalid(
                "the token was revoked (RFC 7009)".into(),
            ))
            .into());
        }
        Err(e) => {
            // The outage is logged once by the store's health transitions, not per request.
            tracing::debug!("cannot check revocations, refusing the token: {e}");
            return Err(BearerError::Unavailable.into());
        }
    }
    if scheme == Scheme::Dpop {
        let proof = crate::http::oauth::dpop_header(headers)
            .map_err(|e| BearerError::InvalidDpopProof(e.description()))?
            .ok_or_else(|| BearerError::InvalidDpopProof(DpopError::Missing.to_string()))?;
        state
            .tokens
            .check_dpop(
                proof,
                target.method.as_str(),
                target.path,
                Some(token),
                bound_jkt.as_deref(),
                client.client_id.as_str(),
                target.peer,
                now,
            )
            .await
            .map_err(|e| match e {
                OAuthError::UseDpopNonce { nonce } => BearerError::UseDpopNonce { nonce },
                OAuthError::StoreUnavailable | OAuthError::TemporarilyUnavailable => {
                    BearerError::Unavailable
                }
                other => BearerError::InvalidDpopProof(other.description()),
            })?;
    }
    let deliveries = state.deliveries.clone().map_err(DeliveryError::Disabled)?;
    let agent = headers
        .get(names::AGENT_IDENTIFIER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string);
    let caller = Caller {
        client_id: client.client_id,
        profile: client.profile,
        agent,
    };
    Ok((deliveries, caller, clients))
}

fn authorize(
    deliveries: &Deliveries,
    caller: &Caller,
    action: Action,
    declared_agents: &[&str],
) -> Result<(), ApiError> {
    deliveries
        .authorize(caller, action, declared_agents)
        .map_err(|e| e.logged(caller).into())
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, DeliveryError> + Send + 'static,
) -> Result<T, DeliveryError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| DeliveryError::Internal(format!("worker failed: {e}")))?
}

#[allow(clippy::too_many_arguments)]
async fn deliver(
    State(state): State<Arc<AppState>>,
    ClientAddress(peer): ClientAddress,
    Path(id): Path<String>,
    Query(query): Query<DeliverQuery>,
    certificate: ClientCert,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut who: Option<String> = None;
    let target = Target {
        method: &method,
        path: uri.path(),
        peer,
    };
    let result = receive(
        &state,
        target,
        id.clone(),
        query,
        &headers,
        &certificate,
        body,
        &mut who,
    )
    .await;
    let peer = peer.to_string();
    let now = state.clock.now();
    match result {
        Ok((status, record)) => {
            let event = if status == StatusCode::CREATED {
                Event::DeliveryStored {
                    client: record.client_id.to_string(),
                    agent: record.agent.clone(),
                    delivery: record.id.as_str().to_string(),
                    name: record.name.clone(),
                    bytes: record.size,
                    sha256: record.sha256.clone(),
                    peer,
                }
            } else {
                Event::DeliveryDuplicate {
                    client: record.client_id.to_string(),
                    delivery: record.id.as_str().to_string(),
                    peer,
                }
            };
            state.telemetry.delivery(event, now);
            record_response(status, record)
        }
        Err(e) => {
            let reason = e.detail();
            let response = e.into_response();
            state.telemetry.delivery(
                Event::DeliveryRefused {
                    client: who.unwrap_or_else(|| "-".into()),
                    delivery: Some(printable(&id)),
                    status: response.status().as_u16(),
                    reason,
                    peer,
                },
                now,
            );
            response
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn receive(
    state: &AppState,
    target: Target<'_>,
    id: String,
    query: DeliverQuery,
    headers: &HeaderMap,
    certificate: &ClientCert,
    body: Body,
    who: &mut Option<String>,
) -> Result<(StatusCode, Record), ApiError> {
    let (deliveries, caller, clients) = caller(state, headers, certificate, target).await?;
    *who = Some(caller.client_id.to_string());
    let agents: Vec<&str> = clients
        .model
        .agents
        .iter()
        .map(|a| a.identifier.as_str())
        .collect();
    authorize(&deliveries, &caller, Action::Deliver, &agents)?;
    let id = DeliveryId::parse(&id)?;
    let name = query.name.ok_or_else(|| {
        DeliveryError::InvalidRequest(
            "the file name is required: PUT /api/deliveries/{id}?name=<file name>".into(),
        )
    })?;
    check_name(&name)?;
    let sha256 = announced_digest(headers)?;
    let size = announced_size(headers, sha256.is_none())?;
    let incoming = Incoming {
        id,
        name,
        size,
        sha256,
    };
    let started = {
        let (d, c) = (deliveries.clone(), caller.clone());
        blocking(move || d.start(&c, incoming)).await
    };
    let upload = match started.map_err(|e| e.logged(&caller))? {
        Started::Duplicate(record) => {
            tracing::info!(id = %record.id, client_id = %caller.client_id, "delivery repeated: already stored, nothing new stored");
            return Ok((StatusCode::OK, record));
        }
        Started::Upload(upload) => upload,
    };
    let id = upload.id().clone();
    let digest_after_body = upload.digest_follows();
    let finished = pipeline(&deliveries, upload, body)
        .await
        .map_err(|e| e.logged(&caller))?;
    let record = match finished {
        Finished::Duplicate(record) => {
            tracing::info!(id = %record.id, client_id = %caller.client_id, "delivery repeated (digest after the body): already stored, nothing new stored");
            return Ok((StatusCode::OK, record));
        }
        Finished::Stored(record) => record,
    };
    tracing::info!(
        id = %id.as_str(),
        name = %record.name,
        size = record.size,
        client_id = %record.client_id,
        agent = record.agent.as_deref().unwrap_or("-"),
        digest_after_body,
        "delivery stored"
    );
    Ok((StatusCode::CREATED, record))
}

/// The SHA-256 announced before the body (`Repr-Digest`), or `None` when the request says it comes
/// after the body (`Trailer: Repr-Digest`).
fn announced_digest(headers: &HeaderMap) -> Result<Option<[u8; 32]>, DeliveryError> {
    if headers.contains_key(names::REPR_DIGEST) {
        return repr_digest(headers).map(Some);
    }
    let trailer = names::list_names(
        headers
            .get_all(header::TRAILER)
            .iter()
            .filter_map(|v| v.to_str().ok()),
        names::REPR_DIGEST_TRAILER,
    );
    if trailer {
        Ok(None)
    } else {
        repr_digest(headers).map(Some)
    }
}

/// The plaintext size: `Content-Length`, or, when the digest comes as a trailer and the body is sent
/// without a length (chunked over HTTP/1.1), `Upload-Length`. Both present must agree.
fn announced_size(headers: &HeaderMap, digest_follows: bool) -> Result<u64, DeliveryError> {
    let number = |name: &str| -> Result<Option<u64>, DeliveryError> {
        let Some(value) = headers.get(name) else {
            return Ok(None);
        };
        value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| {
                DeliveryError::InvalidRequest(format!("{name} must be a number of bytes"))
            })
    };
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let upload_length = if digest_follows {
        number(names::UPLOAD_LENGTH)?
    } else {
        None
    };
    match (length, upload_length) {
        (Some(a), Some(b)) if a != b => Err(DeliveryError::InvalidRequest(format!(
            "Content-Length says {a} bytes and Upload-Length {b}: send one size"
        ))),
        (Some(size), _) | (None, Some(size)) => Ok(size),
        (None, None) => Err(DeliveryError::LengthRequired),
    }
}

/// Reads the body into `upload` on three threads working at once: this task (the connection: TLS,
/// HTTP/2 frames, the pace), a hashing thread, and an encrypting-and-writing thread, with at most
/// [`QUEUE`] pieces queued towards each. Reads the `Repr-Digest` trailer when the digest follows the
/// body, then commits (or not) on the writing thread.
async fn pipeline(
    deliveries: &Deliveries,
    mut upload: Box<crate::deliveries::Upload>,
    mut body: Body,
) -> Result<Finished, DeliveryError> {
    let (hash_tx, mut hash_rx) = tokio::sync::mpsc::channel::<Bytes>(QUEUE);
    let hasher = upload.detach_hasher();
    let hashing = tokio::task::spawn_blocking(move || {
        let mut hasher = hasher?;
        while let Some(data) = hash_rx.blocking_recv() {
            hasher.update(&data);
        }
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(hasher.finish().as_ref());
        Some(sha256)
    });
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(QUEUE);
    let writer = tokio::task::spawn_blocking(move || {
        while let Some(data) = rx.blocking_recv() {
            upload.write(&data)?;
        }
        Ok::<_, DeliveryError>(upload)
    });
    // Only the time spent waiting for the client counts against its pace and the idle timeout, not
    // the time the queues to the hasher and the writer are full.
    let mut pace = UploadPace::new(deliveries.min_upload_rate());
    let mut idle = Duration::ZERO;
    let mut trailer = None;
    let read: Result<(), DeliveryError> = loop {
        let mut limit = IDLE_TIMEOUT.saturating_sub(idle);
        if let Some(window) = pace.wait_limit() {
            limit = limit.min(window);
        }
        let waiting = Instant::now();
        let next = tokio::time::timeout(limit, body.frame()).await;
        let waited = waiting.elapsed();
        let data = match next {
            Err(_) => None,
            Ok(None) => break Ok(()),
            Ok(Some(Err(e))) => {
                break Err(DeliveryError::InvalidRequest(format!(
                    "the body could not be read ({e}); nothing was stored"
                )));
            }
            Ok(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => Some(data).filter(|d| !d.is_empty()),
                Err(frame) => {
                    // A trailer digest on top of a header one is refused as ambiguous at the end.
                    if let Ok(fields) = frame.into_trailers()
                        && fields.contains_key(names::REPR_DIGEST)
                    {
                        match repr_digest(&fields) {
                            Ok(sha256) => trailer = Some(sha256),
                            Err(e) => break Err(e),
                        }
                    }
                    break Ok(());
                }
            },
        };
        if let Err(e) = pace.record(waited, data.as_ref().map_or(0, |d| d.len() as u64)) {
            break Err(e);
        }
        let Some(data) = data else {
            idle += waited;
            if idle >= IDLE_TIMEOUT {
                break Err(DeliveryError::InvalidRequest(format!(
                    "no data received for {} s; nothing was stored",
                    IDLE_TIMEOUT.as_secs()
                )));
            }
            continue;
        };
        idle = Duration::ZERO;
        // A closed queue means the writer (or the hasher) stopped; its error is reported below.
        if hash_tx.send(data.clone()).await.is_err() || tx.send(data).await.is_err() {
            break Ok(());
        }
    };
    drop((tx, hash_tx));
    let upload = writer
        .await
        .map_err(|e| DeliveryError::Internal(format!("worker failed: {e}")))??;
    let actual = hashing
        .await
        .map_err(|e| DeliveryError::Internal(format!("worker failed: {e}")))?;
    // A broken body drops the upload here, which removes what was written.
    read?;
    let digests = Digests { actual, trailer };
    blocking(move || upload.finish_with(digests, now_rfc3339())).await
}

/// `Repr-Digest: sha-256=:<base64>:` (RFC 9530 section 3; other algorithms may be listed too, in one
/// header or several). A second `sha-256` value is refused as ambiguous, even an equal one: which one
/// the body is checked against must not depend on the parser.
fn repr_digest(headers: &HeaderMap) -> Result<[u8; 32], DeliveryError> {
    let missing = || {
        DeliveryError::InvalidRequest(
            "Repr-Digest: sha-256=:<base64 of the file's SHA-256>: is required (RFC 9530)".into(),
        )
    };
    let mut values = Vec::new();
    for value in headers.get_all(names::REPR_DIGEST) {
        values.push(value.to_str().map_err(|_| {
            DeliveryError::InvalidRequest("Repr-Digest must be ASCII (RFC 9530)".into())
        })?);
    }
    let mut found = None;
    for member in values.iter().flat_map(|v| v.split(',')) {
        let Some((algorithm, digest)) = member.trim().split_once('=') else {
            continue;
        };
        if !algorithm.trim().eq_ignore_ascii_case("sha-256") {
            continue;
        }
        if found.is_some() {
            return Err(DeliveryError::InvalidRequest(
                "Repr-Digest has more than one sha-256 value, which is ambiguous: send exactly one"
                    .into(),
            ));
        }
        let bytes = digest
            .trim()
            .strip_prefix(':')
            .and_then(|d| d.strip_suffix(':'))
            .and_then(ids_pki::b64::std_decode)
            .and_then(|b| <[u8; 32]>::try_from(b).ok());
        found = Some(bytes.ok_or_else(|| {
            DeliveryError::InvalidRequest(
                "Repr-Digest sha-256 must be 32 bytes in base64 between colons, e.g. sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:".into(),
            )
        })?);
    }
    found.ok_or_else(missing)
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The record as the wire contract's [`Receipt`], with `Location` naming it.
fn record_response(status: StatusCode, record: Record) -> Response {
    let record = Receipt::from(record);
    let location = format!(
        "{}?{}={}",
        paths::delivery(record.id.as_str()),
        names::CLIENT,
        utf8_percent_encode(record.client_id.as_str(), QUERY_VALUE)
    );
    let mut response = (status, axum::Json(record)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

#[allow(clippy::too_many_arguments)]
async fn find(
    State(state): State<Arc<AppState>>,
    ClientAddress(peer): ClientAddress,
    Path(id): Path<String>,
    Query(query): Query<ClientQuery>,
    certificate: ClientCert,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let target = Target {
        method: &method,
        path: uri.path(),
        peer,
    };
    let result = async {
        let (deliveries, caller, _) = caller(&state, &headers, &certificate, target).await?;
        let id = DeliveryId::parse(&id)?;
        // Readers see every record; a client that delivers sees its own (the agent's check).
        if deliveries.authorize(&caller, Action::Read, &[]).is_err() {
            authorize(&deliveries, &caller, Action::Deliver, &[])?;
        }
        Ok::<_, ApiError>(
            blocking(move || deliveries.find(&caller, &id, query.client.as_deref())).await?,
        )
    }
    .await;
    let mut response = match result {
        Ok(record) => record_response(StatusCode::OK, record),
        Err(e) => e.into_response(),
    };
    // What the agent asks before it sends: whatever the answer, this server reads the digest after
    // the body, so the agent can send its file in one pass (unless Deliveries:DigestTrailers is off).
    if state.deliveries.as_ref().is_ok_and(|d| d.digest_trailers()) {
        response.headers_mut().insert(
            names::DELIVERY_TRAILERS,
            HeaderValue::from_static(names::REPR_DIGEST_TRAILER),
        );
    }
    response
}

async fn list(
    State(state): State<Arc<AppState>>,
    ClientAddress(peer): ClientAddress,
    certificate: ClientCert,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let target = Target {
        method: &method,
        path: uri.path(),
        peer,
    };
    let result = async {
        let (deliveries, caller, _) = caller(&state, &headers, &certificate, target).await?;
        authorize(&deliveries, &caller, Action::Read, &[])?;
        Ok::<_, ApiError>(blocking(move || deliveries.list()).await?)
    }
    .await;
    match result {
        Ok(records) => {
            let receipts: Vec<Receipt> = records.into_iter().map(Receipt::from).collect();
            axum::Json(serde_json::json!({ "deliveries": receipts })).into_response()
        }
        Err(e) => e.into_response(),
    }
}

#[allow(clippy::too_many_arguments)]
async fn content(
    State(state): State<Arc<AppState>>,
    ClientAddress(peer): ClientAddress,
    Path(id): Path<String>,
    Query(query): Query<ClientQuery>,
    certificate: ClientCert,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let target = Target {
        method: &method,
        path: uri.path(),
        peer,
    };
    let result = async {
        let (deliveries, caller, _) = caller(&state, &headers, &certificate, target).await?;
        authorize(&deliveries, &caller, Action::Read, &[])?;
        let id = DeliveryId::parse(&id)?;
        let reader = caller.client_id.clone();
        let opened = blocking(move || {
            let record = deliveries.find(&caller, &id, query.client.as_deref())?;
            deliveries.open(&DeliveryKey::new(&record.client_id, &id))
        })
        .await?;
        Ok::<_, ApiError>((reader, opened))
    }
    .await;
    let (reader, (record, mut decryptor)) = match result {
        Ok(opened) => opened,
        Err(e) => return e.into_response(),
    };
    state.telemetry.delivery(
        Event::DeliveryRead {
            client: reader.to_string(),
            delivery: record.id.as_str().to_string(),
            owner: record.client_id.to_string(),
            peer: peer.to_string(),
        },
        state.clock.now(),
    );
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(QUEUE);
    let id = record.id.clone();
    tokio::task::spawn_blocking(move || {
        loop {
            match decryptor.next_chunk() {
                Ok(Some(chunk)) => {
                    if tx.blocking_send(Ok(Bytes::copy_from_slice(chunk))).is_err() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    // The client sees the connection fail rather than a short file.
                    tracing::error!(id = %id, "stored delivery cannot be decrypted: {e}");
                    let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
                    return;
                }
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let mut response = Body::from_stream(stream).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(record.size));
    let digest = ids_pki::b64::hex_decode(&record.sha256).unwrap_or_default();
    if let Ok(v) = HeaderValue::from_str(&format!("sha-256=:{}:", ids_pki::b64::std(&digest))) {
        h.insert(names::REPR_DIGEST, v);
    }
    // Never a hidden or disguised name, even for a record stored before names were checked.
    let (name, _) = export_name(&record.name, record.id.as_str());
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename*=UTF-8''{}",
        utf8_percent_encode(&name, ATTR_CHAR)
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

/// A URL query value: ASCII letters, digits and `-._~` (RFC 3986 unreserved) kept, the rest `%XX`.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// An RFC 8187 value: ASCII letters, digits and `` !#$&+-.^_`|~ `` (attr-char) kept, the rest `%XX`.
const ATTR_CHAR: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

impl DeliveryError {
    /// Logs a failed delivery on the server's side (the client gets the mapped answer).
    fn logged(self, caller: &Caller) -> DeliveryError {
        match &self {
            DeliveryError::Internal(detail) | DeliveryError::StorageFull(detail) => {
                tracing::error!(client_id = %caller.client_id, "delivery failed: {detail}");
            }
            // The store's unavailability is logged once per transition (store::postgres::health).
            DeliveryError::Unavailable(detail) => {
                tracing::debug!(client_id = %caller.client_id, "delivery refused: {detail}");
            }
            other => {
                tracing::warn!(client_id = %caller.client_id, agent = caller.agent.as_deref().unwrap_or("-"), "delivery refused: {other}");
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The query structs' field names are the wire contract's query names.
    #[test]
    fn query_fields_are_the_contract_names() {
        let q: DeliverQuery = serde_urlencoded_like(names::NAME);
        assert_eq!(q.name.as_deref(), Some("x"));
        let q: ClientQuery = serde_urlencoded_like(names::CLIENT);
        assert_eq!(q.client.as_deref(), Some("x"));
    }

    fn serde_urlencoded_like<T: serde::de::DeserializeOwned>(key: &str) -> T {
        let uri: axum::http::Uri = format!("/?{key}=x").parse().expect("uri");
        Query::<T>::try_from_uri(&uri).expect("query").0
    }

    /// The sets keep exactly the bytes the hand-written encoder kept.
    #[test]
    fn encode_sets_keep_what_they_kept() {
        for (set, keep) in [
            (QUERY_VALUE, &b"-._~"[..]),
            (ATTR_CHAR, &b"!#$&+-.^_`|~"[..]),
        ] {
            for b in 0u8..=255 {
                let text = String::from_utf8_lossy(&[b]).into_owned();
                let before: String = text
                    .bytes()
                    .map(|b| {
                        if b.is_ascii_alphanumeric() || keep.contains(&b) {
                            (b as char).to_string()
                        } else {
                            format!("%{b:02X}")
                        }
                    })
                    .collect();
                assert_eq!(utf8_percent_encode(&text, set).to_string(), before);
            }
        }
    }
}
