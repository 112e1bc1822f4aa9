//! The admin listener: `/metrics` (Prometheus text), `/healthz` (process up), `/readyz`
//! (configuration loaded and, once wired, every issuer has keys).

use std::sync::Arc;

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::gate::Shared;

/// `ServeHttp` app behind the admin address.
pub struct AdminApp {
    shared: Arc<Shared>,
}

impl AdminApp {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

/// The admin answer for `method path`: (status, content type, body).
pub fn answer(shared: &Shared, method: &str, path: &str) -> (StatusCode, &'static str, Vec<u8>) {
    const TEXT: &str = "text/plain; charset=utf-8";
    if method != "GET" && method != "HEAD" {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            TEXT,
            b"method not allowed\n".to_vec(),
        );
    }
    match path {
        "/metrics" => {
            let state = shared.state.load();
            shared.metrics.upstream_healthy.reset();
            for up in state.upstreams.iter() {
                let n = i64::try_from(up.healthy_targets()).unwrap_or(i64::MAX);
                shared
                    .metrics
                    .upstream_healthy
                    .with_label_values(&[up.name.as_str()])
                    .set(n);
            }
            let dropped = i64::try_from(shared.access_log.dropped()).unwrap_or(i64::MAX);
            shared.metrics.access_log_dropped.set(dropped);
            let extra = state.verifier.as_ref().and_then(|v| v.registry.as_ref());
            (
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                shared.metrics.render(extra),
            )
        }
        "/healthz" => (StatusCode::OK, TEXT, b"ok\n".to_vec()),
        "/readyz" if shared.is_ready() => (StatusCode::OK, TEXT, b"ready\n".to_vec()),
        "/readyz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            TEXT,
            b"not ready\n".to_vec(),
        ),
        _ => {
            // The signed identity's public keys: `/identity/jwks.json`, `/identity/{kid}`.
            let state = shared.state.load();
            match state
                .signed_identity
                .as_ref()
                .and_then(|s| s.admin_document(path))
            {
                Some((content_type, body)) => (StatusCode::OK, content_type, body.to_vec()),
                None => (StatusCode::NOT_FOUND, TEXT, b"not found\n".to_vec()),
            }
        }
    }
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let (status, ctype, body) = answer(&self.shared, req.method.as_str(), req.uri.path());
        let body = if req.method == http::Method::HEAD {
            Vec::new()
        } else {
            body
        };
        Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, ctype)
            .header(http::header::CONTENT_LENGTH, body.len())
            .body(body)
            .unwrap_or_default()
    }
}
