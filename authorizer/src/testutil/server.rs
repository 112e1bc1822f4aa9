//! A real JWKS (and OIDC discovery) HTTP server on 127.0.0.1:0 whose behaviour tests can change.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// How the server answers JWKS (and discovery) requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behaviour {
    /// Serve the current document.
    Normal,
    /// Answer with this status and an empty body.
    Status(u16),
    /// Answer 200 with a body that is not JSON.
    Garbage,
    /// Accept the request and never answer.
    Hang,
    /// Answer 200 with a valid-looking body of this many bytes (with a `Content-Length`).
    Oversize(usize),
    /// The same, streamed in 16 KiB chunks without a `Content-Length`.
    OversizeChunked(usize),
}

/// A body of chunks with no declared length (sent chunked).
struct Chunks(std::collections::VecDeque<Bytes>);

impl hyper::body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        std::task::Poll::Ready(self.0.pop_front().map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;

struct State {
    jwks: Value,
    behaviour: Behaviour,
    max_age: Option<u64>,
}

/// The server. Dropping it stops accepting connections.
pub struct JwksServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    fetches: Arc<AtomicUsize>,
    discovery_fetches: Arc<AtomicUsize>,
    accept: JoinHandle<()>,
}

impl std::fmt::Debug for JwksServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl JwksServer {
    /// Binds 127.0.0.1:0 and serves, on the current tokio runtime:
    /// `…/.well-known/jwks.json` (the document, counted) and
    /// `{prefix}/.well-known/openid-configuration` (issuer `http://addr{prefix}`, jwks_uri beside).
    pub async fn start(jwks: Value) -> std::io::Result<JwksServer> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State {
            jwks,
            behaviour: Behaviour::Normal,
            max_age: None,
        }));
        let fetches = Arc::new(AtomicUsize::new(0));
        let discovery_fetches = Arc::new(AtomicUsize::new(0));
        let (s, f, d) = (state.clone(), fetches.clone(), discovery_fetches.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (s, f, d) = (s.clone(), f.clone(), d.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let (s, f, d) = (s.clone(), f.clone(), d.clone());
                        async move { Ok::<_, Infallible>(answer(&req, addr, &s, &f, &d).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok(JwksServer {
            addr,
            state,
            fetches,
            discovery_fetches,
            accept,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:port{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Replaces the served JWKS document.
    pub fn set_jwks(&self, jwks: Value) {
        self.with_state(|s| s.jwks = jwks);
    }

    /// Changes how requests are answered.
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        self.with_state(|s| s.behaviour = behaviour);
    }

    /// Sends `Cache-Control: max-age=N` with the JWKS (or nothing with `None`).
    pub fn set_max_age(&self, max_age: Option<u64>) {
        self.with_state(|s| s.max_age = max_age);
    }

    /// JWKS requests received so far (whatever the answer).
    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// Discovery-document requests received so far.
    pub fn discovery_fetches(&self) -> usize {
        self.discovery_fetches.load(Ordering::SeqCst)
    }
}

fn respond(status: u16, body: impl Into<Bytes>, max_age: Option<u64>) -> Response<Body> {
    with_body(status, Full::new(body.into()).boxed_unsync(), max_age)
}

fn with_body(status: u16, body: Body, max_age: Option<u64>) -> Response<Body> {
    let mut r = Response::new(body);
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    if let Some(age) = max_age
        && let Ok(v) = hyper::header::HeaderValue::from_str(&format!("public, max-age={age}"))
    {
        r.headers_mut().insert(hyper::header::CACHE_CONTROL, v);
    }
    r
}

async fn answer(
    req: &Request<hyper::body::Incoming>,
    addr: SocketAddr,
    state: &Mutex<State>,
    fetches: &AtomicUsize,
    discovery: &AtomicUsize,
) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let (doc, behaviour, max_age) = {
        let s = state.lock().unwrap_or_else(PoisonError::into_inner);
        (s.jwks.to_string(), s.behaviour.clone(), s.max_age)
    };
    let body = if let Some(prefix) = path.strip_suffix("/.well-known/jwks.json") {
        let _ = prefix;
        fetches.fetch_add(1, Ordering::SeqCst);
        doc
    } else if let Some(prefix) = path.strip_suffix("/.well-known/openid-configuration") {
        discovery.fetch_add(1, Ordering::SeqCst);
        let issuer = format!("http://{addr}{prefix}");
        json!({"issuer": issuer, "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
               "id_token_signing_alg_values_supported": ["RS256"]})
        .to_string()
    } else {
        return respond(404, "", None);
    };
    match behaviour {
        Behaviour::Normal => respond(200, body, max_age),
        Behaviour::Status(code) => respond(code, "", None),
        Behaviour::Garbage => respond(200, "{\"keys\": [ this is not json", None),
        Behaviour::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            respond(504, "", None)
        }
        Behaviour::Oversize(n) => {
            // A JWKS-looking document padded with whitespace to `n` bytes.
            let mut big = String::with_capacity(n);
            big.push_str(&body);
            while big.len() < n {
                big.push(' ');
            }
            respond(200, big, None)
        }
        Behaviour::OversizeChunked(n) => {
            let mut chunks = std::collections::VecDeque::new();
            chunks.push_back(Bytes::from(body));
            let mut sent = 0;
            while sent < n {
                chunks.push_back(Bytes::from(vec![b' '; 16 * 1024]));
                sent += 16 * 1024;
            }
            with_body(200, Chunks(chunks).boxed_unsync(), None)
        }
    }
}
