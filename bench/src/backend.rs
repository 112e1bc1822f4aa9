//! The fast backend every target forwards to: HTTP/1.1 keep-alive, a 2-byte 200 for any
//! request, nothing else, so what is measured is the proxy in front of it.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A running backend; dropping it stops accepting.
pub struct Backend {
    pub addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Backend {
    /// Binds 127.0.0.1:0 and serves on the current runtime.
    pub async fn start() -> std::io::Result<Backend> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                tokio::spawn(async move {
                    let svc = service_fn(|_req: Request<hyper::body::Incoming>| async {
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok(Backend { addr, accept })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{self, LoadSpec, Mode};
    use crate::workload::{Req, Workload};
    use std::time::Duration;

    #[tokio::test]
    async fn closed_and_open_loop_against_the_backend() {
        let b = Backend::start().await.unwrap();
        let w = Workload::cycle(vec![Req::get("/x", Some("tok"), 200)]);
        let mut spec = LoadSpec {
            addr: b.addr,
            host: http::HeaderValue::from_static("bench.local"),
            connections: 2,
            duration: Duration::from_millis(300),
            mode: Mode::Closed,
            expect_all: None,
            label: None,
        };
        let r = load::run(&spec, w.clone()).await;
        assert!(r.requests > 10, "{r:?}");
        assert_eq!(r.statuses.get(&200), Some(&r.requests));
        assert!(r.unexpected.is_empty() && r.io_errors == 0);
        assert!(r.ms(0.5) > 0.0);

        spec.mode = Mode::Open(200.0);
        spec.duration = Duration::from_millis(500);
        let r = load::run(&spec, w).await;
        // 200 req/s for 0.5 s: about 100 requests, never many more.
        assert!((50..=110).contains(&r.requests), "{}", r.requests);
    }

    #[tokio::test]
    async fn unexpected_statuses_and_send_once_are_counted() {
        let b = Backend::start().await.unwrap();
        let w = Workload::once(vec![Req::get("/x", None, 401), Req::get("/y", None, 200)]);
        let spec = LoadSpec {
            addr: b.addr,
            host: http::HeaderValue::from_static("bench.local"),
            connections: 1,
            duration: Duration::from_secs(5),
            mode: Mode::Closed,
            expect_all: None,
            label: None,
        };
        let r = load::run(&spec, w).await;
        assert_eq!(r.requests, 2);
        assert_eq!(r.unexpected.get("401->200"), Some(&1));
        assert!(r.elapsed < Duration::from_secs(5));
    }
}
