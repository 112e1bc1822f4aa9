//! Bounds on client connections, around pingora's HTTP proxy app (`server.connections`):
//!
//! ```text
//! accept ─▶ Capped::process_new       a slot of `max` (else 503 connection_limit, closed);
//!             │                        the stream is wrapped to count what is read from it
//!             ├─ HTTP/1.x ─▶ pingora's HttpProxy<Gate>, and beside it one supervisor timer per
//!             │              connection: nothing read for keepalive_timeout after a request
//!             │              (idle_timeout), or a head not complete within header_timeout
//!             │              (+ keepalive_timeout on a kept-alive connection) → closed.
//!             │              Body reads and answer writes: pingora's own per-read/write timers
//!             │              (body_timeout → 408, send_timeout)
//!             └─ HTTP/2  ─▶ the preface within header_timeout; idle (no open stream) for
//!                           keepalive_timeout → closed (pingora's h2_idle_timeout);
//!                           Edge::process_new_http per stream: a stalled body → stream reset
//! ```
//!
//! Their timers are pingora's shared ones (`pingora::time::sleep`, 10 ms ticks, armed by a
//! thread of its own): a tokio timer would make every worker park with a timeout, which costs
//! more per request than the bounds themselves. No wrapper runs per HTTP/1.x request.
//!
//! pingora 0.9 bounds none of these by itself (its keep-alive wait and head reads are per read
//! call and unbounded between requests; HTTP/2 body reads have no timer) and runs no hook
//! before a head is read. The gate tells these wrappers what it sees, through task-locals of
//! the connection (HTTP/1.x) or stream (HTTP/2) task: a head read ([`on_request_head`]), a
//! request over ([`on_request_done`]), body data ([`on_body`]). Every closure is counted in
//! `poolgate_downstream_closed_total{reason}`.

mod watched;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::apps::{HttpServerApp, HttpServerOptions, ReusedHttpStream, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::http::v2::server::H2Options;
use pingora::protocols::{ALPN, Stream};
use pingora::proxy::HttpProxy;
use pingora::server::ShutdownWatch;
use poolgate_policies::Connections;
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

use crate::gate::{Gate, Shared};
use crate::metrics::Metrics;
use crate::respond::{self, Denial};
use watched::{Activity, Watched};

/// Length of the HTTP/2 connection preface a client sends first.
const H2_PREFACE_LEN: u64 = 24;

/// How long a refused connection's 503 may take to write.
const REFUSAL_WRITE_LIMIT: Duration = Duration::from_secs(1);

/// Why a client connection or request was cut, the `reason` label of
/// `poolgate_downstream_closed_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closure {
    /// A request head (or the HTTP/2 preface) took longer than `header_timeout`.
    HeaderTimeout,
    /// Nothing arrived for `keepalive_timeout` between requests.
    IdleTimeout,
    /// A request body stalled for `body_timeout`.
    BodyTimeout,
    /// The client did not take an answer for `send_timeout`.
    SendTimeout,
    /// Refused on accept: `max` connections were open.
    ConnectionLimit,
}

impl Closure {
    pub fn label(self) -> &'static str {
        match self {
            Closure::HeaderTimeout => "header_timeout",
            Closure::IdleTimeout => "idle_timeout",
            Closure::BodyTimeout => "body_timeout",
            Closure::SendTimeout => "send_timeout",
            Closure::ConnectionLimit => "connection_limit",
        }
    }
}

/// Counts a closure.
pub fn count(metrics: &Metrics, closure: Closure) {
    metrics
        .downstream_closed
        .with_label_values(&[closure.label()])
        .inc();
}

/// One HTTP/1.x connection, seen from its requests and from its supervisor.
///
/// The gate marks each request's head read, and its end (the wait for the next one starts); the connection's
/// supervisor (one timer per connection, not per request or per read) closes the connection
/// when the client sent nothing for `keepalive_timeout` after a request, or a head is not
/// complete in time. Times are ms since `start`.
struct Conn {
    limits: Connections,
    start: Instant,
    activity: Arc<Activity>,
    /// The current request's head has been read.
    head_read: AtomicBool,
    /// When the current request started waiting for its head.
    started_ms: AtomicU64,
    /// Bytes read from the client when it did (for a kept-alive connection: still idle?).
    bytes_at_start: AtomicU64,
    /// Whether the idle rule applies (not to the first request of a connection).
    kept_alive: AtomicBool,
}

impl Conn {
    fn new(limits: Connections, activity: Arc<Activity>) -> Self {
        Self {
            limits,
            start: Instant::now(),
            activity,
            head_read: AtomicBool::new(false),
            started_ms: AtomicU64::new(0),
            bytes_at_start: AtomicU64::new(0),
            kept_alive: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        millis(self.start.elapsed())
    }

    /// A request ended: the next one on this kept-alive connection is waited for from now.
    fn request_finished(&self) {
        self.started_ms.store(self.now_ms(), Ordering::Relaxed);
        self.bytes_at_start
            .store(self.activity.bytes(), Ordering::Relaxed);
        self.kept_alive.store(true, Ordering::Relaxed);
        self.head_read.store(false, Ordering::Release);
    }

    /// How long the supervisor may sleep, or why the connection must be closed now: idle for
    /// `keepalive_timeout` after a request, or a head not read within `header_timeout` (on a
    /// kept-alive connection: `keepalive_timeout` + `header_timeout` after the last request).
    fn next_check(&self) -> Result<Duration, Closure> {
        if self.head_read.load(Ordering::Acquire) {
            return Ok(self.limits.header_timeout);
        }
        let kept_alive = self.kept_alive.load(Ordering::Relaxed);
        let elapsed = self
            .now_ms()
            .saturating_sub(self.started_ms.load(Ordering::Relaxed));
        let idle_limit = millis(self.limits.keepalive_timeout);
        let head_limit = millis(self.limits.header_timeout).saturating_add(if kept_alive {
            idle_limit
        } else {
            0
        });
        if elapsed >= head_limit {
            return Err(Closure::HeaderTimeout);
        }
        if kept_alive && elapsed < idle_limit {
            return Ok(Duration::from_millis(idle_limit - elapsed));
        }
        if kept_alive && self.activity.bytes() == self.bytes_at_start.load(Ordering::Relaxed) {
            return Err(Closure::IdleTimeout);
        }
        Ok(Duration::from_millis(head_limit - elapsed))
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// One HTTP/2 stream's request body.
struct BodyWatch {
    limits: Connections,
    start: Instant,
    /// The body is still expected.
    open: AtomicBool,
    /// When body data (or the head) last arrived, in ms since `start`.
    last_ms: AtomicU64,
}

impl BodyWatch {
    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// How long until the body counts as stalled (zero: it is); `None` while no body is open.
    fn remaining(&self) -> Option<Duration> {
        if !self.open.load(Ordering::Relaxed) {
            return None;
        }
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        let idle = self.start.elapsed().saturating_sub(last);
        Some(self.limits.body_timeout.saturating_sub(idle))
    }
}

tokio::task_local! {
    static CONN: Arc<Conn>;
    static STREAM: Arc<BodyWatch>;
}

/// Called by the gate as soon as a request head has been read: the head deadline is met, and
/// the body and send timeouts are set on the session.
pub fn on_request_head(session: &mut ServerSession) {
    if let Ok(limits) = CONN.try_with(|c| {
        c.head_read.store(true, Ordering::Release);
        c.limits.clone()
    }) {
        // After an upgrade the "body" is a WebSocket's traffic, which may rest for long:
        // pingora's own read timeout stays for it.
        if !session.is_upgrade_req() {
            session.set_read_timeout(Some(limits.body_timeout));
        }
        session.set_write_timeout(Some(limits.send_timeout));
    } else if let Ok(watch) = STREAM.try_with(Arc::clone) {
        watch.open.store(!session.is_body_done(), Ordering::Relaxed);
        watch.touch();
        session.set_write_timeout(Some(watch.limits.send_timeout));
    }
}

/// Called by the gate when a request is over (its access-log line): on a kept-alive HTTP/1.x
/// connection, the wait for the next request starts.
pub fn on_request_done() {
    let _ = CONN.try_with(|c| c.request_finished());
}

/// Called by the gate for each piece of request body that arrives.
pub fn on_body(end_of_stream: bool) {
    let _ = STREAM.try_with(|w| {
        w.touch();
        if end_of_stream {
            w.open.store(false, Ordering::Relaxed);
        }
    });
}

/// pingora's proxy app with the bounds of HTTP/2 streams (a stalled body resets its stream).
pub struct Edge {
    inner: Arc<HttpProxy<Gate>>,
    shared: Arc<Shared>,
}

impl Edge {
    /// Wraps `proxy`; HTTP/2 connections idle (no open stream) for `keepalive_timeout` are closed.
    pub fn new(mut proxy: HttpProxy<Gate>, shared: Arc<Shared>) -> Self {
        let limits = shared.state.load().policy.server.connections.clone();
        let mut options = proxy.server_options.take().unwrap_or_default();
        options.h2_idle_timeout = Some(limits.keepalive_timeout);
        proxy.server_options = Some(options);
        Self {
            inner: Arc::new(proxy),
            shared,
        }
    }

    async fn h2_stream(
        &self,
        session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        let limits = self.shared.state.load().policy.server.connections.clone();
        let watch = Arc::new(BodyWatch {
            limits,
            start: Instant::now(),
            open: AtomicBool::new(false),
            last_ms: AtomicU64::new(0),
        });
        let request = STREAM.scope(
            watch.clone(),
            self.inner.process_new_http(session, shutdown),
        );
        tokio::pin!(request);
        loop {
            let wait = watch.remaining().unwrap_or(watch.limits.body_timeout);
            tokio::select! {
                r = &mut request => return r,
                () = pingora::time::sleep(wait) => {
                    if watch.remaining().is_some_and(|r| r.is_zero()) {
                        // Dropping the request resets the stream.
                        count(&self.shared.metrics, Closure::BodyTimeout);
                        return None;
                    }
                }
            }
        }
    }
}

#[async_trait]
impl HttpServerApp for Edge {
    async fn process_new_http(
        self: &Arc<Self>,
        session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        // Only HTTP/2 connections are handed to `Edge` (see `Capped::process_new`).
        if session.is_http2() {
            return self.h2_stream(session, shutdown).await;
        }
        self.inner.process_new_http(session, shutdown).await
    }

    fn h2_options(&self) -> Option<H2Options> {
        self.inner.h2_options()
    }

    fn server_options(&self) -> Option<&HttpServerOptions> {
        self.inner.server_options()
    }

    async fn http_cleanup(&self) {
        self.inner.http_cleanup().await;
    }
}

/// The connection cap and the per-connection bounds, around [`Edge`].
pub struct Capped {
    /// HTTP/1.x connections go straight to pingora's app (no wrapper per request).
    proxy: Arc<HttpProxy<Gate>>,
    edge: Arc<Edge>,
    shared: Arc<Shared>,
    slots: Arc<Semaphore>,
}

impl Capped {
    pub fn new(edge: Edge, shared: Arc<Shared>) -> Self {
        let max = shared.state.load().policy.server.connections.max;
        Self {
            proxy: edge.inner.clone(),
            edge: Arc::new(edge),
            shared,
            slots: Arc::new(Semaphore::new(max.min(Semaphore::MAX_PERMITS))),
        }
    }

    /// Answers a connection over the cap with a 503 (HTTP/1.x only: an HTTP/2 client is just
    /// closed) and closes it.
    async fn refuse(&self, mut stream: Stream) {
        count(&self.shared.metrics, Closure::ConnectionLimit);
        if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            return;
        }
        let realm = self.shared.state.load().realm.clone();
        let id = crate::headers::new_request_id();
        let answer = respond::render(
            &Denial::ConnectionLimit,
            crate::headers::request_id_str(&id),
            &realm,
        );
        let bytes = respond::http1_bytes(&answer);
        let _ = tokio::time::timeout(REFUSAL_WRITE_LIMIT, async {
            let _ = stream.write_all(&bytes).await;
            let _ = stream.flush().await;
        })
        .await;
    }
}

/// Counts an open connection while it lives.
struct OpenGuard<'a>(&'a Metrics);

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        self.0.downstream_open.dec();
    }
}

#[async_trait]
impl ServerApp for Capped {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let Ok(_slot) = self.slots.clone().try_acquire_owned() else {
            self.refuse(stream).await;
            return None;
        };
        let metrics = &self.shared.metrics;
        metrics.downstream_open.inc();
        let _open = OpenGuard(metrics);
        let limits = self.shared.state.load().policy.server.connections.clone();
        if !matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            let activity = Activity::new(false);
            let stream = Watched::wrap(stream, activity.clone());
            let conn = Arc::new(Conn::new(limits, activity));
            let connection = CONN.scope(conn.clone(), self.proxy.process_new(stream, shutdown));
            tokio::pin!(connection);
            loop {
                let wait = match conn.next_check() {
                    Ok(wait) => wait,
                    Err(closure) => {
                        // Dropping the connection's future closes it.
                        count(metrics, closure);
                        return None;
                    }
                };
                tokio::select! {
                    r = &mut connection => return r,
                    () = pingora::time::sleep(wait) => {}
                }
            }
        }
        let activity = Activity::new(true);
        let stream = Watched::wrap(stream, activity.clone());
        let connection = self.edge.process_new(stream, shutdown);
        tokio::pin!(connection);
        tokio::select! {
            r = &mut connection => r,
            () = pingora::time::sleep(limits.header_timeout) => {
                if activity.bytes() < H2_PREFACE_LEN {
                    count(metrics, Closure::HeaderTimeout);
                    return None;
                }
                connection.await
            }
        };
        // pingora closes an HTTP/2 connection without a stream for the idle time silently.
        if !*shutdown.borrow() && activity.since_last_read() >= limits.keepalive_timeout {
            count(metrics, Closure::IdleTimeout);
        }
        None
    }

    async fn cleanup(&self) {
        self.edge.http_cleanup().await;
    }
}
