//! What a connection may hold, whoever opens it (`Limits` settings): a cap on open connections
//! (over it, new ones are closed at once, never queued), an idle timeout for connections without a
//! request in flight (HTTP/1.1 keep-alive, HTTP/2, and connections that never send a request) or
//! whose responses make no progress (an HTTP/2 client granting no flow-control window), a bound on
//! writes the client does not read, and the open-file limit raised at start-up.
//!
//! The TLS handshake timeout is the acceptor's (see `lib.rs`), the request-header timeout hyper's,
//! and the token request body deadline the token handler's.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// File descriptors kept for everything but connections (log, XML and key files, deliveries being
/// written, the replay journal...) when `Limits:MaxConnections` is derived from the open-file limit.
pub const RESERVED_FILES: u64 = 128;

/// The largest `Limits:MaxConnections` derived from the open-file limit (an idle TLS connection
/// costs tens of KiB: 65,536 of them stay well under a few GiB).
pub const MAX_DERIVED_CONNECTIONS: u64 = 65_536;

/// Raises the soft open-file limit to the hard one. Returns `(before, after)` when it was raised.
pub fn raise_open_file_limit() -> io::Result<Option<(u64, Option<u64>)>> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let Some(soft) = limit.current else {
        return Ok(None); // already unlimited
    };
    if limit.maximum.is_some_and(|hard| hard <= soft) {
        return Ok(None);
    }
    let raised = rustix::process::Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    setrlimit(Resource::Nofile, raised).map_err(io::Error::from)?;
    Ok(Some((soft, limit.maximum)))
}

/// The current soft open-file limit (`None`: unlimited).
pub fn open_file_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

/// `Limits:MaxConnections` when it is not set: the open-file limit less [`RESERVED_FILES`], at least 16
/// and at most [`MAX_DERIVED_CONNECTIONS`].
pub fn derived_max_connections(open_files: Option<u64>) -> usize {
    let n = open_files
        .unwrap_or(u64::MAX)
        .saturating_sub(RESERVED_FILES)
        .clamp(16, MAX_DERIVED_CONNECTIONS);
    usize::try_from(n).unwrap_or(16)
}

/// The `Accept` step of every listener (before TLS): takes a connection slot or closes the
/// connection, and makes the connection idle-aware.
#[derive(Clone, Debug)]
pub struct Guard {
    slots: Arc<Semaphore>,
    max: usize,
    idle_timeout: Duration,
    refusals: Arc<Refusals>,
}

impl Guard {
    /// A guard shared by all listeners: at most `max` connections open at once.
    pub fn new(max: usize, idle_timeout: Duration) -> Self {
        Guard {
            slots: Arc::new(Semaphore::new(max.min(Semaphore::MAX_PERMITS))),
            max,
            idle_timeout,
            refusals: Arc::new(Refusals::default()),
        }
    }
}

impl<S> axum_server::accept::Accept<TcpStream, S> for Guard {
    type Stream = Tracked<TcpStream>;
    type Service = Counted<S>;
    type Future = std::future::Ready<io::Result<(Self::Stream, Self::Service)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            self.refusals.refused(self.max);
            // Dropping the stream closes it: the client learns at once, instead of waiting in a
            // queue until its own timeout.
            return std::future::ready(Err(io::Error::other(
                "Limits:MaxConnections reached: connection closed",
            )));
        };
        let _ = stream.set_nodelay(true);
        let state = Arc::new(ConnState::new());
        std::future::ready(Ok((
            Tracked::new(stream, state.clone(), self.idle_timeout, slot),
            Counted {
                inner: service,
                state,
            },
        )))
    }
}

/// Logs a listener's failure to accept a connection (the open-file limit reached, typically), at
/// most once a minute. Failures of one connection (a refusal, a failed TLS handshake) are not
/// logged here.
pub fn log_accept_error(peer: Option<&std::net::SocketAddr>, e: &io::Error) {
    static LAST: Mutex<Option<Instant>> = Mutex::new(None);
    if peer.is_some() {
        return;
    }
    let Ok(mut last) = LAST.lock() else {
        return;
    };
    let now = Instant::now();
    if last.is_some_and(|t| now.duration_since(t) < Duration::from_secs(60)) {
        return;
    }
    *last = Some(now);
    tracing::warn!(
        "cannot accept connections: {e} (retrying; raise the open-file limit or lower Limits:MaxConnections; logged at most once a minute)"
    );
}

/// Refused connections, logged at most once a minute.
#[derive(Debug, Default)]
struct Refusals {
    since_log: AtomicU64,
    last_log: Mutex<Option<Instant>>,
}

impl Refusals {
    fn refused(&self, max: usize) {
        let count = self.since_log.fetch_add(1, Ordering::Relaxed) + 1;
        let Ok(mut last) = self.last_log.lock() else {
            return;
        };
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < Duration::from_secs(60)) {
            return;
        }
        *last = Some(now);
        self.since_log.store(0, Ordering::Relaxed);
        tracing::warn!(
            refused = count,
            max_connections = max,
            "new connections closed at once: Limits:MaxConnections connections are open (raise Limits:MaxConnections and the open-file limit if these clients are legitimate; logged at most once a minute)"
        );
    }
}

/// What the stream and the service of one connection share.
#[derive(Debug)]
struct ConnState {
    /// Requests whose response has not been sent completely.
    in_flight: AtomicUsize,
    /// When the last request ended (or the connection opened), in ms since `epoch`.
    idle_since_ms: AtomicU64,
    epoch: Instant,
    /// Requests whose response head is ready and whose body is being sent.
    responding: AtomicUsize,
    /// When a response last made progress (its head ready, or a body frame taken), in ms since
    /// `epoch`.
    progress_ms: AtomicU64,
    /// The reader parked while requests were in flight: woken when the last one ends or a response
    /// starts, to arm the idle timer.
    reader: futures_util::task::AtomicWaker,
}

impl ConnState {
    fn new() -> Self {
        ConnState {
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            responding: AtomicUsize::new(0),
            progress_ms: AtomicU64::new(0),
            reader: futures_util::task::AtomicWaker::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn progress(&self) {
        self.progress_ms.store(self.now_ms(), Ordering::Release);
    }

    fn responding(self: &Arc<Self>) -> Responding {
        self.progress();
        self.responding.fetch_add(1, Ordering::AcqRel);
        self.reader.wake();
        Responding(self.clone())
    }

    /// Since when the connection counts as idle: with no request in flight, since the last one
    /// ended; with every request in flight answering, since a response last made progress (an
    /// HTTP/2 client that grants no flow-control window stalls a response without blocking a
    /// write); `None` while a request is still being handled.
    fn idle_since_when(&self) -> Option<Instant> {
        let in_flight = self.in_flight.load(Ordering::Acquire);
        let ms = if in_flight == 0 {
            self.idle_since_ms.load(Ordering::Acquire)
        } else if self.responding.load(Ordering::Acquire) >= in_flight {
            self.progress_ms.load(Ordering::Acquire)
        } else {
            return None;
        };
        Some(self.epoch + Duration::from_millis(ms))
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }
}

/// One request in flight, until its response body is sent (or dropped).
#[derive(Debug)]
pub struct InFlight(Arc<ConnState>);

/// A response being sent, until its body is sent (or dropped).
#[derive(Debug)]
struct Responding(Arc<ConnState>);

impl Drop for Responding {
    fn drop(&mut self) {
        self.0.responding.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let ms = self.0.now_ms();
        self.0.idle_since_ms.store(ms, Ordering::Release);
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.reader.wake();
        }
    }
}

/// A connection's byte stream that ends itself when the connection has been idle (no request in
/// flight) for the idle timeout, or when the client has not read what is written to it for as long.
#[derive(Debug)]
pub struct Tracked<T> {
    inner: T,
    state: Arc<ConnState>,
    idle_timeout: Duration,
    idle_timer: Pin<Box<Sleep>>,
    /// Armed while a write waits for the client to read.
    write_timer: Option<Pin<Box<Sleep>>>,
    _slot: OwnedSemaphorePermit,
}

impl<T> Tracked<T> {
    fn new(
        inner: T,
        state: Arc<ConnState>,
        idle_timeout: Duration,
        slot: OwnedSemaphorePermit,
    ) -> Self {
        Tracked {
            inner,
            state,
            idle_timeout,
            // Reset to the right deadline whenever the connection is found idle.
            idle_timer: Box::pin(tokio::time::sleep(idle_timeout)),
            write_timer: None,
            _slot: slot,
        }
    }

    /// True when the connection has been idle for the idle timeout; otherwise arms the timer so that
    /// the task is woken when it will have been.
    fn idle_expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.state.reader.register(cx.waker());
        let Some(since) = self.state.idle_since_when() else {
            return false;
        };
        let deadline = since + self.idle_timeout;
        if Instant::now() >= deadline {
            return true;
        }
        if self.idle_timer.deadline() != deadline {
            self.idle_timer.as_mut().reset(deadline);
        }
        self.idle_timer.as_mut().poll(cx).is_ready()
    }

    /// What a write returned, or an error when the client has read nothing for the idle timeout.
    fn written(
        &mut self,
        cx: &mut Context<'_>,
        written: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        if written.is_ready() {
            self.write_timer = None;
            return written;
        }
        let timeout = self.idle_timeout;
        let timer = self
            .write_timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if timer.as_mut().poll(cx).is_ready() {
            Poll::Ready(Err(timed_out(
                "the client read nothing for Limits:IdleTimeoutSeconds",
            )))
        } else {
            Poll::Pending
        }
    }
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what.to_string())
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Pending if this.idle_expired(cx) => {
                // End of file: hyper closes an idle connection that reads it.
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.written(cx, written)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.written(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The connection's service, counting requests in flight until their response body is sent.
#[derive(Clone, Debug)]
pub struct Counted<S> {
    inner: S,
    state: Arc<ConnState>,
}

impl<S, R, B> tower_service::Service<R> for Counted<S>
where
    S: tower_service::Service<R, Response = http::Response<B>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<CountedBody<B>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        let in_flight = self.state.begin();
        let state = self.state.clone();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|body| CountedBody {
                inner: body,
                responding: state.responding(),
                _in_flight: in_flight,
            }))
        })
    }
}

/// A response body that keeps its request in flight until it is sent or dropped.
#[derive(Debug)]
pub struct CountedBody<B> {
    inner: B,
    /// Dropped before `_in_flight` (field order), so that `responding <= in_flight` holds.
    responding: Responding,
    _in_flight: InFlight,
}

impl<B: http_body::Body + Unpin> http_body::Body for CountedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let frame = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(_))) = &frame {
            this.responding.0.progress();
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_derived_cap_leaves_room_for_files_and_stays_bounded() {
        assert_eq!(derived_max_connections(Some(1024)), 896);
        assert_eq!(derived_max_connections(Some(100)), 16);
        assert_eq!(derived_max_connections(None), 65_536);
        assert_eq!(derived_max_connections(Some(1 << 20)), 65_536);
    }

    #[tokio::test]
    async fn a_connection_is_idle_only_without_a_request_in_flight() {
        let idle = Duration::from_millis(400);
        let (client, server) = tokio::io::duplex(64);
        let guard = Guard::new(1, idle);
        let slot = guard.slots.clone().try_acquire_owned().expect("slot");
        let state = Arc::new(ConnState::new());
        let mut tracked = Tracked::new(server, state.clone(), idle, slot);
        let request = state.begin();
        let mut buf = [0u8; 8];
        let mut read = Box::pin(async move {
            let n = tokio::io::AsyncReadExt::read(&mut tracked, &mut buf).await;
            (n, tracked)
        });
        // A request in flight for longer than the idle timeout: the connection stays.
        assert!(tokio::time::timeout(3 * idle, read.as_mut()).await.is_err());
        assert_eq!(guard.slots.available_permits(), 0);
        // The request ends: idle from now on, closed one idle timeout later, not before.
        drop(request);
        let ended = Instant::now();
        let (n, _tracked) = tokio::time::timeout(10 * idle, read)
            .await
            .expect("closed when idle");
        assert_eq!(n.expect("end of file"), 0);
        assert!(ended.elapsed() >= idle - Duration::from_millis(20));
        drop(client);
    }
}
