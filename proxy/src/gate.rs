//! The pingora `ProxyHttp` implementation: thin hooks, each calling plain functions.
//!
//! ```text
//! early_request_filter     the head is read: connection bounds told (head deadline met,
//!                          body and send timeouts set)
//! request_filter           request id · head size · normalise path · match route ·
//!                          CORS preflight · token → verify → roles → decide ·
//!                          identity headers computed   ── deny → respond::send, stop
//! upstream_peer            route's pool → healthy target not yet tried   (none → 503)
//! fail_to_connect          count; retry on another target while untried ones remain
//! upstream_request_filter  strip client x-auth-*, add verified identity, X-Forwarded-*,
//!                          x-request-id, Host override
//! upstream_response_filter a 101 only to WebSocket (else 502)
//! request_body_filter      body data arrived (HTTP/2 stall watch)
//! response_filter          x-request-id on the answer
//! fail_to_proxy            upstream failure → respond (502 / 503 / 504)
//! logging                  one access-log line · request counter and duration histogram
//! ```

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use http::HeaderValue;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::modules::http::HttpModules;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorSource, ErrorType};
use poolgate_authorizer::Identity;
use poolgate_policies::ClientRequestId;

use crate::access_log::AccessRecord;
use crate::admission::{BackendHeaders, Verdict, admit};
use crate::config::HashKey;
use crate::connections::{self, Closure};
use crate::deadline;
use crate::headers;
use crate::respond::{self, Denial};
use crate::upstreams::Upstream;

pub use crate::admission::{auth_denial, path_error_code, reason_denial};
pub use crate::state::{GateState, Shared, StateError};

/// Error type name used when a pool has no healthy target left.
const NO_HEALTHY_UPSTREAM: &str = "no_healthy_upstream";

/// Per-request state, created empty by `new_ctx` and filled as the hooks run.
pub struct RequestCtx {
    start: Instant,
    ts_ms: u128,
    request_id: HeaderValue,
    state: Option<Arc<GateState>>,
    /// The route matched, even for a refusal (metrics and the access log name it); for a
    /// forwarded request, the route it is forwarded by.
    matched: Option<usize>,
    upstream: Option<Arc<Upstream>>,
    identity: Option<Arc<Identity>>,
    /// Headers for the backend, computed before any upstream is contacted.
    backend_headers: BackendHeaders,
    /// The normalised origin-form target (with the original query) when it differs from what was sent.
    rewritten_target: Option<http::Uri>,
    /// The judged authority: the backend's `Host` (unless the upstream sets its own) and
    /// `X-Forwarded-Host`.
    host: Option<HeaderValue>,
    /// `Access-Control-Allow-Origin` (and friends) for the answer of a CORS request.
    cors_response: Vec<(&'static str, String)>,
    /// Targets already picked for this request (a retry goes elsewhere).
    tried: Vec<SocketAddr>,
    /// The latest connect failure is already in the upstream error counter.
    connect_failure_counted: bool,
    decision: &'static str,
    reason: Cow<'static, str>,
    /// Status of an answer poolgate wrote itself (denial or upstream failure).
    own_status: Option<u16>,
    /// The peer is one of `server.trusted_proxies`: its `X-Forwarded-For` is kept.
    trusted_peer: bool,
    /// When the exchange with the backend must be over (`timeouts.total`), fixed at the first
    /// attempt; and the timer that enforces it on the current connection.
    deadline: Option<Instant>,
    cut: Option<deadline::Cut>,
}

impl RequestCtx {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            ts_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis()),
            request_id: HeaderValue::from_static(""),
            state: None,
            matched: None,
            upstream: None,
            identity: None,
            backend_headers: BackendHeaders::default(),
            rewritten_target: None,
            host: None,
            cors_response: Vec::new(),
            tried: Vec::new(),
            connect_failure_counted: false,
            decision: "deny",
            reason: Cow::Borrowed("-"),
            own_status: None,
            trusted_peer: false,
            deadline: None,
            cut: None,
        }
    }

    fn deny(&mut self, denial: &Denial) {
        self.decision = "deny";
        self.reason = Cow::Owned(denial.reason().to_owned());
        self.own_status = Some(denial.status());
    }
}

/// The `ProxyHttp` service.
pub struct Gate {
    shared: Arc<Shared>,
}

impl Gate {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

/// Whether the client broke the HTTP/2 protocol in its request (a body longer or shorter than
/// its `content-length`, for one): the h2 library found it and reset the stream.
fn client_protocol_error(e: &Error) -> bool {
    e.esource() == &ErrorSource::Downstream
        && e.root_cause()
            .downcast_ref::<h2::Error>()
            .is_some_and(|h| h.is_library() && h.reason() == Some(h2::Reason::PROTOCOL_ERROR))
}

/// Maps a proxying error to the answer for the client; `None` when the client is gone.
fn classify_failure(e: &Error) -> Option<Denial> {
    if client_protocol_error(e) {
        return Some(Denial::BadRequest {
            reason: "malformed_request",
        });
    }
    match (e.esource(), e.etype()) {
        (_, ErrorType::Custom(name)) if *name == NO_HEALTHY_UPSTREAM => {
            Some(Denial::NoHealthyUpstream)
        }
        (
            ErrorSource::Upstream,
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout,
        ) => Some(Denial::UpstreamTimeout),
        (ErrorSource::Upstream, _) => Some(Denial::UpstreamUnreachable),
        (
            ErrorSource::Downstream,
            ErrorType::WriteError
            | ErrorType::ReadError
            | ErrorType::ConnectionClosed
            | ErrorType::WriteTimedout,
        ) => None,
        (ErrorSource::Downstream, ErrorType::ReadTimedout) => Some(Denial::BodyTimeout),
        (ErrorSource::Downstream, _) => Some(Denial::BadRequest {
            reason: "bad_request",
        }),
        (_, ErrorType::HTTPStatus(code)) if (400..500).contains(code) => Some(Denial::BadRequest {
            reason: "bad_request",
        }),
        _ => Some(Denial::UpstreamUnreachable),
    }
}

fn failure_kind(e: &Error) -> &'static str {
    match e.etype() {
        ErrorType::ConnectTimedout => "connect_timeout",
        ErrorType::ConnectRefused => "connect_refused",
        ErrorType::ReadTimedout => "read_timeout",
        ErrorType::WriteTimedout => "write_timeout",
        ErrorType::Custom(name) if *name == NO_HEALTHY_UPSTREAM => NO_HEALTHY_UPSTREAM,
        ErrorType::TLSHandshakeFailure | ErrorType::InvalidCert => "tls",
        t if t.as_str().starts_with("Connect") => "connect_error",
        _ => "protocol",
    }
}

fn hash_key<'a>(
    up: &Upstream,
    req: &'a RequestHeader,
    client: Option<&SocketAddr>,
    identity: Option<&'a Identity>,
) -> Cow<'a, [u8]> {
    let ip = || {
        Cow::Owned(
            client
                .map(|c| c.ip().to_string())
                .unwrap_or_default()
                .into_bytes(),
        )
    };
    match &up.hash_key {
        HashKey::ClientIp => ip(),
        HashKey::Path => Cow::Borrowed(req.uri.path().as_bytes()),
        HashKey::Header(h) => req
            .headers
            .get(h.as_str())
            .map_or_else(ip, |v| Cow::Borrowed(v.as_bytes())),
        HashKey::Claim(c) => match identity.and_then(|i| i.claims.get(c)) {
            Some(serde_json::Value::String(s)) => Cow::Borrowed(s.as_bytes()),
            Some(other) => Cow::Owned(other.to_string().into_bytes()),
            None => ip(),
        },
    }
}

fn client_inet(session: &Session) -> Option<SocketAddr> {
    session.client_addr().and_then(|a| a.as_inet()).copied()
}

fn is_tls(session: &Session) -> bool {
    session.digest().is_some_and(|d| d.ssl_digest.is_some())
}

#[async_trait]
impl ProxyHttp for Gate {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new()
    }

    /// None: pingora's default adds a response-compression module that is switched off yet
    /// still runs on every request; poolgate compresses nothing (a backend's encoding passes).
    fn init_downstream_modules(&self, _modules: &mut HttpModules) {}

    async fn early_request_filter(
        &self,
        session: &mut Session,
        _ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        connections::on_request_head(session);
        Ok(())
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        _body: &mut Option<bytes::Bytes>,
        end_of_stream: bool,
        _ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        connections::on_body(end_of_stream);
        Ok(())
    }

    async fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<bool> {
        let state = self.shared.state.load_full();
        let server = &state.policy.server;
        ctx.trusted_peer = client_inet(session).is_some_and(|a| server.trusts(a.ip()));
        let keep_id = match server.client_request_id {
            ClientRequestId::Keep => true,
            ClientRequestId::Trusted => ctx.trusted_peer,
            ClientRequestId::Replace => false,
        };
        let req = session.req_header();
        ctx.request_id = if keep_id {
            headers::request_id(req.headers.get(&headers::REQUEST_ID_NAME))
        } else {
            headers::new_request_id()
        };
        ctx.state = Some(state.clone());
        let mut matched = None;
        let request_id = headers::request_id_str(&ctx.request_id);
        let verdict = admit(&state, req, request_id, &mut matched).await;
        ctx.matched = matched;
        let denial = match verdict {
            Ok(Verdict::Forward(a)) => {
                ctx.backend_headers = a.backend_headers;
                ctx.upstream = Some(a.upstream);
                ctx.identity = a.identity;
                ctx.rewritten_target = a.rewritten_target;
                ctx.host = Some(a.host);
                ctx.cors_response = a.cors_response;
                ctx.decision = "allow";
                ctx.reason = Cow::Borrowed(a.reason);
                return Ok(false);
            }
            Ok(Verdict::Answered { answer, reason }) => {
                ctx.decision = "allow";
                ctx.reason = Cow::Borrowed(reason);
                ctx.own_status = Some(answer.status);
                respond::send(session, answer).await?;
                return Ok(true);
            }
            Err(d) => d,
        };
        ctx.deny(&denial);
        respond::send(
            session,
            respond::render(
                &denial,
                headers::request_id_str(&ctx.request_id),
                &state.realm,
            ),
        )
        .await?;
        Ok(true)
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<Box<HttpPeer>> {
        let Some(up) = ctx.upstream.clone() else {
            return Err(Error::explain(
                ErrorType::Custom(NO_HEALTHY_UPSTREAM),
                "no upstream for route",
            ));
        };
        let client = client_inet(session);
        let key = if up.hashes() {
            hash_key(
                &up,
                session.req_header(),
                client.as_ref(),
                ctx.identity.as_deref(),
            )
        } else {
            Cow::Borrowed(&[][..])
        };
        let total = ctx
            .matched
            .zip(ctx.state.as_deref())
            .and_then(|(i, s)| s.route(i))
            .and_then(|r| r.total_timeout)
            .or_else(|| up.total_timeout());
        let left = match total {
            None => None,
            Some(total) => {
                let at = *ctx.deadline.get_or_insert_with(|| Instant::now() + total);
                let left = at.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(deadline::expired());
                }
                Some(left)
            }
        };
        match up.select(&key, &ctx.tried) {
            Some(mut peer) => {
                if let Some(addr) = peer._address.as_inet() {
                    ctx.tried.push(*addr);
                }
                if let Some(left) = left {
                    deadline::clamp(&mut peer, left);
                }
                Ok(peer)
            }
            None => Err(Error::explain(
                ErrorType::Custom(NO_HEALTHY_UPSTREAM),
                format!("upstream `{}` has no healthy target left", up.name),
            )),
        }
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if let Some(up) = &ctx.upstream {
            self.shared
                .metrics
                .upstream_errors
                .with_label_values(&[up.name.as_str(), failure_kind(&e)])
                .inc();
            ctx.connect_failure_counted = true;
            // Nothing was sent yet, so another target is always safe to try, unless the
            // exchange's deadline has passed.
            let expired = ctx.deadline.is_some_and(|d| Instant::now() >= d);
            if ctx.tried.len() < up.target_count() && !expired {
                e.set_retry(true);
            }
        }
        e
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        ctx.connect_failure_counted = false; // connected: later failures are new
        let Some(state) = ctx.state.clone() else {
            return Err(Error::explain(
                ErrorType::InternalError,
                "no state for request",
            ));
        };
        let route = ctx.matched.and_then(|i| state.route(i));
        let claim_headers = route.map_or(&[][..], |r| r.headers.as_slice());
        headers::strip_identity_headers(upstream_request, &state.identity.prefix, claim_headers);
        if route.is_some_and(|r| !r.forward_token) {
            upstream_request.remove_header(&http::header::AUTHORIZATION);
        }
        headers::join_cookies(upstream_request);
        // Borrowed, not taken: pingora calls this again for a retried attempt (a reused
        // connection that closed before answering), which needs the same identity and target.
        ctx.backend_headers
            .apply(upstream_request, &state, ctx.matched)
            .map_err(|e| Error::explain(ErrorType::InternalError, e.to_string()))?;
        if let Some(uri) = &ctx.rewritten_target {
            upstream_request.set_uri(uri.clone());
        }
        let Some(host) = ctx.host.clone() else {
            return Err(Error::explain(
                ErrorType::InternalError,
                "no judged host for request",
            ));
        };
        headers::set_forwarded(
            upstream_request,
            client_inet(session).map(|a| a.ip()),
            is_tls(session),
            host.clone(),
            ctx.trusted_peer,
        );
        upstream_request.insert_header(headers::REQUEST_ID, ctx.request_id.clone())?;
        match ctx.upstream.as_ref().and_then(|u| u.host_header.as_deref()) {
            Some(own) => upstream_request.insert_header(http::header::HOST, own)?,
            // Usually the client's own Host was already canonical: nothing to replace.
            None if upstream_request.headers.get(http::header::HOST) == Some(&host) => {}
            None => upstream_request.insert_header(http::header::HOST, host)?,
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        // A tunnel is not bounded by the exchange's deadline, and a response without a body
        // may hand the connection back without a body filter call: disarm before that.
        let status = upstream_response.status;
        let no_body = session.req_header().method == http::Method::HEAD
            || status == http::StatusCode::SWITCHING_PROTOCOLS
            || status == http::StatusCode::NO_CONTENT
            || status == http::StatusCode::NOT_MODIFIED
            || upstream_response
                .headers
                .get(http::header::CONTENT_LENGTH)
                .is_some_and(|v| v.as_bytes() == b"0");
        if let (true, Some(cut)) = (no_body, &ctx.cut) {
            if cut.fired() {
                return Err(deadline::expired());
            }
            cut.disarm();
        }
        // pingora forwards only WebSocket upgrade requests, but accepts a 101 whatever protocol
        // it names, and after a 101 bytes flow unjudged both ways. Only WebSocket is let through.
        if upstream_response.status == http::StatusCode::SWITCHING_PROTOCOLS
            && !headers::upgrades_to_websocket(upstream_response)
        {
            return Err(Error::create(
                ErrorType::InvalidHTTPHeader,
                ErrorSource::Upstream,
                Some("101 Switching Protocols to something other than websocket".into()),
                None,
            ));
        }
        Ok(())
    }

    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        _body: &mut Option<bytes::Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<Option<std::time::Duration>> {
        if let (true, Some(cut)) = (end_of_stream, &ctx.cut) {
            // A body read to the end of a connection the deadline shut would look complete.
            if cut.fired() {
                return Err(deadline::expired());
            }
            cut.disarm();
        }
        Ok(None)
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        _reused: bool,
        peer: &HttpPeer,
        #[cfg(unix)] fd: std::os::unix::io::RawFd,
        _digest: Option<&pingora::protocols::Digest>,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        if let (Some(at), Some(addr)) = (ctx.deadline, peer._address.as_inet()) {
            // Replacing an earlier attempt's timer disarms it.
            ctx.cut = Some(deadline::Cut::arm(fd, *addr, at));
        }
        Ok(())
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        // Whatever the cut made pingora see (a closed connection, a failed write), it was the
        // deadline: a 504, not retried.
        if ctx.cut.as_ref().is_some_and(deadline::Cut::fired) {
            return deadline::expired();
        }
        // pingora's own rule otherwise.
        let mut e = e.more_context(format!("Peer: {peer}"));
        if !session.req_header().method.is_idempotent() || session.as_ref().retry_buffer_truncated()
        {
            e.set_retry(false);
        } else {
            e.retry.decide_reuse(client_reused);
        }
        e
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        upstream_response.insert_header(headers::REQUEST_ID, ctx.request_id.clone())?;
        for (name, value) in &ctx.cors_response {
            // `Vary` adds to the backend's own; the allow headers are poolgate's to set.
            if *name == "vary" {
                upstream_response.append_header(*name, value.as_str())?;
            } else {
                upstream_response.insert_header(*name, value.as_str())?;
            }
        }
        Ok(())
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        if e.esource() == &ErrorSource::Downstream {
            match e.etype() {
                ErrorType::ReadTimedout => {
                    connections::count(&self.shared.metrics, Closure::BodyTimeout)
                }
                ErrorType::WriteTimedout => {
                    connections::count(&self.shared.metrics, Closure::SendTimeout)
                }
                _ => {}
            }
        }
        let Some(denial) = classify_failure(e) else {
            return FailToProxy {
                error_code: 0,
                can_reuse_downstream: false,
            };
        };
        // A failed connect was already counted in fail_to_connect.
        if let (ErrorSource::Upstream, Some(up), false) =
            (e.esource(), &ctx.upstream, ctx.connect_failure_counted)
        {
            self.shared
                .metrics
                .upstream_errors
                .with_label_values(&[up.name.as_str(), failure_kind(e)])
                .inc();
        }
        // The client's fault (a malformed or stalled request) is a refusal, not an error.
        ctx.decision = if denial.status() < 500 {
            "deny"
        } else if ctx.decision == "allow" {
            "error"
        } else {
            ctx.decision
        };
        ctx.reason = Cow::Owned(denial.reason().to_owned());
        ctx.own_status = Some(denial.status());
        if ctx.request_id.is_empty() {
            ctx.request_id = headers::new_request_id();
        }
        // A response already under way cannot be replaced; the connection is just closed.
        if session.response_written().is_none() {
            let realm = ctx.state.as_ref().map_or("poolgate", |s| s.realm.as_str());
            let id = headers::request_id_str(&ctx.request_id);
            let _ = respond::send(session, respond::render(&denial, id, realm)).await;
        }
        FailToProxy {
            error_code: denial.status(),
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        connections::on_request_done();
        if let Some(cut) = ctx.cut.take() {
            cut.disarm();
        }
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .or(ctx.own_status)
            .unwrap_or(0);
        let route = ctx
            .matched
            .zip(ctx.state.as_deref())
            .and_then(|(i, s)| s.route(i))
            .map_or("-", |r| r.name.as_str());
        let seconds = ctx.start.elapsed().as_secs_f64();
        self.shared
            .metrics
            .observe_request(route, status, &ctx.reason, seconds);
        let req = session.req_header();
        self.shared.access_log.write(&AccessRecord {
            ts_ms: ctx.ts_ms,
            request_id: headers::request_id_str(&ctx.request_id),
            method: req.method.as_str(),
            path: req.uri.path(),
            route,
            status,
            decision: ctx.decision,
            reason: &ctx.reason,
            sub: ctx.identity.as_deref().map(|i| i.sub.as_str()),
            upstream: ctx.upstream.as_ref().map(|u| u.name.as_str()),
            latency_ms: seconds * 1000.0,
        });
    }
}
