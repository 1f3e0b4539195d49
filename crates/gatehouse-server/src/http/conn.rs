//! The connections: accepting them, timing them out, capping them, and closing them at
//! shutdown. What `axum::serve` does, plus what a sidecar under attack or under a rolling
//! update needs and it does not have:
//!
//! - **a header-read timeout**: a connection that has sent part of a request's head gets
//!   [`ConnLimits::header_read`] from its first byte to finish it, however slowly it
//!   trickles (slowloris), or it is closed;
//! - **a keep-alive idle timeout**: a connection with no request for
//!   [`ConnLimits::idle`] is closed;
//! - **a cap**: past [`ConnLimits::max_connections`] (or when the process is out of file
//!   descriptors) the connection idle longest is closed to make room, and a new connection
//!   is refused only when every open one has a request in flight;
//! - **a bounded shutdown**: idle and half-open connections are closed at once, in-flight
//!   requests finish (their connection then closes), and whatever still runs after
//!   [`ConnLimits::shutdown_grace`] is dropped.
//!
//! A request's own time, body upload included, is bounded by the timeout middleware; these
//! limits are about the time between requests.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::telemetry::Metrics;

/// The limits of the connection layer, from the configuration.
#[derive(Debug, Clone)]
pub struct ConnLimits {
    /// Longest from a request head's first byte to its end.
    pub header_read: Duration,
    /// Longest a connection may stay open with no request.
    pub idle: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
    /// Longest the requests in flight at shutdown may take to finish.
    pub shutdown_grace: Duration,
}

/// Why a connection was closed by the server, for `gatehouse_http_connections_closed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Closed {
    /// It sent part of a request head and did not finish it in time.
    HeaderTimeout,
    /// It had no request for the idle timeout.
    Idle,
    /// It was the idlest when room was needed for a new one.
    Evicted,
    /// It came when every open connection had a request in flight.
    Refused,
    /// Shutdown, with no request in flight.
    Shutdown,
    /// Shutdown, with a request still in flight after the grace.
    Grace,
}

impl Closed {
    /// The reason as the metric labels it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HeaderTimeout => "header_timeout",
            Self::Idle => "idle",
            Self::Evicted => "evicted",
            Self::Refused => "refused",
            Self::Shutdown => "shutdown",
            Self::Grace => "shutdown_grace",
        }
    }
}

/// A monotonic clock in milliseconds since the server started (0 means "never").
#[derive(Clone, Copy)]
struct Clock(Instant);

impl Clock {
    fn now(self) -> u64 {
        u64::try_from(self.0.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }
}

/// What the server knows of one connection, shared with its reader and its service.
struct Conn {
    clock: Clock,
    /// Requests whose head has been read and whose response is not made yet.
    in_flight: AtomicUsize,
    /// When the last response was made (or the connection accepted).
    last_done: AtomicU64,
    /// When the first byte of the next request's head came (0: none yet).
    head_since: AtomicU64,
    /// Close now (eviction).
    close: Notify,
}

impl Conn {
    fn new(clock: Clock) -> Self {
        Self {
            clock,
            in_flight: AtomicUsize::new(0),
            last_done: AtomicU64::new(clock.now()),
            head_since: AtomicU64::new(0),
            close: Notify::new(),
        }
    }

    /// Bytes came while no request was in flight: a head has begun.
    fn read(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && self.head_since.load(Ordering::Relaxed) == 0
        {
            self.head_since.store(self.clock.now(), Ordering::Relaxed);
        }
    }

    fn begin(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_since.store(0, Ordering::Relaxed);
    }

    fn end(&self) {
        self.last_done.store(self.clock.now(), Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > 0
    }

    /// When it has been quiet since, for choosing whom to evict (older first).
    fn quiet_since(&self) -> u64 {
        match self.head_since.load(Ordering::Relaxed) {
            0 => self.last_done.load(Ordering::Relaxed),
            since => since,
        }
    }

    /// Whether a timeout is past, and which; or how long until the next check.
    fn expired(&self, limits: &ConnLimits) -> Result<Closed, Duration> {
        if self.busy() {
            // The request's own timeout bounds it: look again later.
            return Err(limits.header_read.min(limits.idle));
        }
        let now = self.clock.now();
        let (since, limit, reason) = match self.head_since.load(Ordering::Relaxed) {
            0 => (
                self.last_done.load(Ordering::Relaxed),
                limits.idle,
                Closed::Idle,
            ),
            since => (since, limits.header_read, Closed::HeaderTimeout),
        };
        let limit = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
        let waited = now.saturating_sub(since);
        if waited >= limit {
            Ok(reason)
        } else {
            Err(Duration::from_millis(limit - waited))
        }
    }
}

/// A connection's stream, telling its [`Conn`] when bytes come.
struct Tracked {
    stream: TcpStream,
    conn: Arc<Conn>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.conn.read();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The open connections, by id.
#[derive(Default)]
struct Open(Mutex<HashMap<u64, Arc<Conn>>>);

impl Open {
    fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    fn insert(&self, id: u64, conn: Arc<Conn>) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, conn);
    }

    fn remove(&self, id: u64) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }

    /// Closes the connection quiet longest with no request in flight; whether there was
    /// one.
    fn evict_idlest(&self) -> bool {
        let open = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let idlest = open
            .values()
            .filter(|c| !c.busy())
            .min_by_key(|c| c.quiet_since());
        idlest.inspect(|c| c.close.notify_one()).is_some()
    }
}

/// Serves `app` on `listener` with `limits` until `shutdown` resolves, then closes the
/// connections as the module says and returns.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let clock = Clock(Instant::now());
    let open = Arc::new(Open::default());
    let (stopping, stop) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut next_id = 0u64;
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
            // Reap finished connections as they end, so the set does not grow.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) if is_per_connection(&error) => continue,
            Err(error) => {
                // Out of file descriptors, most likely: make room, and wait a little.
                tracing::warn!(%error, "cannot accept a connection");
                open.evict_idlest();
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        if open.len() >= limits.max_connections && !open.evict_idlest() {
            metrics.count_closed(Closed::Refused.as_str());
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let conn = Arc::new(Conn::new(clock));
        next_id += 1;
        let id = next_id;
        open.insert(id, Arc::clone(&conn));
        metrics.connections_open.inc();
        let (app, limits, metrics, open, stop) = (
            app.clone(),
            limits.clone(),
            Arc::clone(&metrics),
            Arc::clone(&open),
            stop.clone(),
        );
        tasks.spawn(async move {
            let reason = connection(stream, app, &conn, &limits, stop).await;
            if let Some(reason) = reason {
                metrics.count_closed(reason.as_str());
            }
            open.remove(id);
            metrics.connections_open.dec();
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        let left = tasks.len();
        tracing::warn!(
            connections = left,
            grace = ?limits.shutdown_grace,
            "requests still in flight after the shutdown grace are dropped"
        );
        for _ in 0..left {
            metrics.count_closed(Closed::Grace.as_str());
        }
        tasks.shutdown().await;
    }
    Ok(())
}

/// An accept error that concerns one connection only (the peer gave up before it was
/// accepted), not the listener.
fn is_per_connection(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Serves one connection until it ends, times out, is evicted or shuts down; why the
/// server closed it, if it did.
async fn connection(
    stream: TcpStream,
    app: Router,
    conn: &Arc<Conn>,
    limits: &ConnLimits,
    mut stop: watch::Receiver<bool>,
) -> Option<Closed> {
    let io = TokioIo::new(Tracked {
        stream,
        conn: Arc::clone(conn),
    });
    let tracked = Arc::clone(conn);
    let service =
        hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let (app, conn) = (app.clone(), Arc::clone(&tracked));
            conn.begin();
            // Ended when the answer's body has been written (hyper drops it then), or when the
            // request is dropped unanswered.
            let end = End(conn);
            async move {
                let response = app.oneshot(request.map(axum::body::Body::new)).await?;
                Ok::<_, std::convert::Infallible>(
                    response.map(|body| axum::body::Body::new(Ending { body, _end: end })),
                )
            }
        });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        // The head's time is this module's to bound (from its first byte, not from the
        // end of the previous answer).
        .header_read_timeout(None)
        .keep_alive(true)
        .serve_connection(io, service);
    tokio::pin!(served);
    let check_every = (limits.header_read.min(limits.idle) / 4).max(Duration::from_millis(10));
    let mut shutting_down = false;
    loop {
        if !shutting_down && *stop.borrow() {
            shutting_down = true;
            if !conn.busy() {
                // Idle, or half-open: hyper's own graceful shutdown would wait for a head
                // that has begun, for as long as its sender likes.
                return Some(Closed::Shutdown);
            }
            // Finish the request in flight, then close.
            served.as_mut().graceful_shutdown();
        }
        // Looked at again at least every quarter of the shorter timeout: a head that begins
        // moves the deadline closer, and waking the connection for every request (to be
        // told so) would cost every request a timer.
        let wait = match conn.expired(limits) {
            Ok(reason) => return Some(reason),
            Err(wait) => wait.min(check_every),
        };
        tokio::select! {
            result = served.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return shutting_down.then_some(Closed::Shutdown);
            }
            () = tokio::time::sleep(wait) => {}
            () = conn.close.notified() => return Some(Closed::Evicted),
            changed = stop.changed(), if !shutting_down => {
                if changed.is_err() {
                    return Some(Closed::Shutdown);
                }
            }
        }
    }
}

/// An answer's body that ends its request when dropped, that is once hyper has written it
/// all (or given up on it).
struct Ending {
    body: axum::body::Body,
    _end: End,
}

impl axum::body::HttpBody for Ending {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Ends a connection's request when dropped.
struct End(Arc<Conn>);

impl Drop for End {
    fn drop(&mut self) {
        self.0.end();
    }
}
