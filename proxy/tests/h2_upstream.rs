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
use support::client::get;
use support::harness::{Proxy, ServerGuard, free_port, policy_config, wait_listening};

struct VersionEcho;

#[async_trait]
impl ServeHttp for VersionEcho {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let body = format!("{:?} {}", req.version, req.uri.path()).into_bytes();
        Response::builder()
            .status(200)
            .header("x-backend-version", format!("{:?}", req.version))
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
