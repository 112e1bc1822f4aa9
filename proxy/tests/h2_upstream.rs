//! HTTP/2 towards an upstream that asks for it (`h2: true`): prior-knowledge h2c in plaintext,
//! what gRPC backends need. The backend is a pingora h2c server that reports the version it saw.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use async_trait::async_trait;
use http::Response;
use pingora::apps::HttpServerOptions;
use pingora::apps::http_app::{HttpServer, ServeHttp};
use pingora::protocols::http::ServerSession;
use pingora::server::Server;
use pingora::server::configuration::ServerConf;
use pingora::services::listening::Service;
use support::client::{get, raw_answer};
use support::harness::{Proxy, ServerGuard, free_port, policy_config, wait_listening};

struct VersionEcho;

#[async_trait]
impl ServeHttp for VersionEcho {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let body = format!("{:?} {}", req.version, req.uri.path()).into_bytes();
        let mut seen: Vec<&str> = req.headers.keys().map(|n| n.as_str()).collect();
        seen.sort_unstable();
        Response::builder()
            .status(200)
            .header("x-backend-version", format!("{:?}", req.version))
            .header("x-seen-headers", seen.join(","))
            .header("content-length", body.len())
            .body(body)
            .unwrap()
    }
}

fn h2c_backend() -> (std::net::SocketAddr, ServerGuard) {
    let addr = free_port();
    let conf = ServerConf {
        threads: 1,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(0),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut app = HttpServer::new_app(VersionEcho);
    let mut options = HttpServerOptions::default();
    options.h2c = true;
    app.server_options = Some(options);
    let mut svc = Service::new("h2c backend".to_owned(), app);
    svc.add_tcp(&addr.to_string());
    server.add_service(svc);
    let guard = ServerGuard::spawn(server);
    wait_listening(addr);
    (addr, guard)
}

fn yaml(target: std::net::SocketAddr, h2: bool) -> String {
    format!(
        "version: 1\nupstreams:\n  app:\n    targets: [\"{target}\"]\n    h2: {h2}\nroutes:\n  - match: {{ path: \"/**\" }}\n    upstream: app\n    public: true\n"
    )
}

#[tokio::test]
async fn h2_upstream_speaks_http2_and_default_speaks_http1() {
    let (backend, _guard) = h2c_backend();
    let proxy = Proxy::start(policy_config(&yaml(backend, true)));
    let r = get(proxy.addr, "/grpc.Service/Method", &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-backend-version"), Some("HTTP/2.0"));
    assert_eq!(r.text(), "HTTP/2.0 /grpc.Service/Method");
    drop(proxy);

    let proxy = Proxy::start(policy_config(&yaml(backend, false)));
    let r = get(proxy.addr, "/plain", &[]).await;
    assert_eq!(r.header("x-backend-version"), Some("HTTP/1.1"));
}

/// A client's hop-by-hop fields, and the fields its `Connection` names, do not travel over an
/// HTTP/2 upstream (where they are malformed), nor do client-sent identity headers.
#[tokio::test]
async fn connection_specific_and_identity_headers_do_not_reach_an_h2_upstream() {
    let (backend, _guard) = h2c_backend();
    let proxy = Proxy::start(policy_config(&yaml(backend, true)));
    // Raw bytes, so every field is on the wire as written.
    let answer = raw_answer(
        proxy.addr,
        "GET /grpc.Service/Method HTTP/1.1\r\nHost: localhost\r\nConnection: close, x-hop\r\n\
         x-hop: 1\r\nKeep-Alive: timeout=5\r\nTE: gzip\r\nx-auth-sub: mallory\r\n\
         x_auth_roles: [\"admin\"]\r\nx-kept: yes\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("x-backend-version: HTTP/2.0"), "{answer}");
    let seen = answer
        .lines()
        .find_map(|l| l.strip_prefix("x-seen-headers: "))
        .unwrap_or_default();
    let names: Vec<&str> = seen.split(',').collect();
    assert!(names.contains(&"x-kept"), "{seen}");
    for gone in [
        "connection",
        "x-hop",
        "keep-alive",
        "te",
        "x-auth-sub",
        "x_auth_roles",
    ] {
        assert!(!names.contains(&gone), "{gone} reached the backend: {seen}");
    }
}
