//! A real HTTP/1.1 backend on 127.0.0.1:0 that records every request it receives.
//!
//! Paths: `/slow?ms=N` waits N ms before answering; an `Upgrade: websocket` request gets a
//! 101 and its bytes echoed back; `/healthz` answers 200 (or 503 after `set_unhealthy`)
//! and is recorded apart, so "was the backend reached" ignores health probes.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What reached the backend.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body_len: usize,
    pub body_sha256: String,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

#[derive(Default)]
struct Inner {
    sni: Mutex<Vec<String>>,
    requests: Mutex<Vec<Recorded>>,
    health_probes: Mutex<usize>,
    unhealthy: AtomicBool,
}

/// A running backend on its own thread and runtime; stops when dropped.
pub struct EchoBackend {
    pub addr: SocketAddr,
    pub name: String,
    inner: Arc<Inner>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for EchoBackend {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

impl EchoBackend {
    pub fn start(name: &str) -> Self {
        Self::start_inner(name, None)
    }

    /// A backend speaking TLS with `cert`/`key` (PEM); records each connection's SNI.
    pub fn start_tls(name: &str, cert: &std::path::Path, key: &std::path::Path) -> Self {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        // Two providers are compiled in (pingora pulls ring): choose, as the binary does.
        poolgate_proxy::server::install_crypto_provider();
        let certs = CertificateDer::pem_file_iter(cert)
            .unwrap()
            .map(|c| c.unwrap())
            .collect();
        let key = PrivateKeyDer::from_pem_file(key).unwrap();
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        Self::start_inner(
            name,
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
        )
    }

    /// Server names sent by TLS clients, one per connection.
    pub fn sni_seen(&self) -> Vec<String> {
        self.inner.sni.lock().unwrap().clone()
    }

    fn start_inner(name: &str, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let inner = Arc::new(Inner::default());
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let (inner2, name2) = (inner.clone(), name.to_owned());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
                let accept = async {
                    loop {
                        let Ok((stream, _)) = listener.accept().await else {
                            continue;
                        };
                        let (inner, name, tls) = (inner2.clone(), name2.clone(), tls.clone());
                        tokio::spawn(async move {
                            let inner2 = inner.clone();
                            let svc =
                                service_fn(move |req| handle(req, inner.clone(), name.clone()));
                            let http = http1::Builder::new();
                            match tls {
                                None => {
                                    let _ = http
                                        .serve_connection(TokioIo::new(stream), svc)
                                        .with_upgrades()
                                        .await;
                                }
                                Some(acceptor) => {
                                    let Ok(tls) = acceptor.accept(stream).await else {
                                        return;
                                    };
                                    let sni =
                                        tls.get_ref().1.server_name().unwrap_or("").to_owned();
                                    inner2.sni.lock().unwrap().push(sni);
                                    let _ = http.serve_connection(TokioIo::new(tls), svc).await;
                                }
                            }
                        });
                    }
                };
                tokio::select! {
                    _ = accept => {}
                    _ = stopped => {}
                }
            });
            rt.shutdown_background();
        });
        Self {
            addr,
            name: name.to_owned(),
            inner,
            stop: Some(stop),
        }
    }

    /// Every non-health-check request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.requests.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.inner.requests.lock().unwrap().len()
    }

    pub fn health_probes(&self) -> usize {
        *self.inner.health_probes.lock().unwrap()
    }

    pub fn set_unhealthy(&self, bad: bool) {
        self.inner.unhealthy.store(bad, Ordering::SeqCst);
    }

    pub fn target(&self) -> String {
        self.addr.to_string()
    }
}

async fn handle(
    req: Request<Incoming>,
    inner: Arc<Inner>,
    name: String,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    if req.uri().path() == "/healthz" {
        *inner.health_probes.lock().unwrap() += 1;
        let status = if inner.unhealthy.load(Ordering::SeqCst) {
            503
        } else {
            200
        };
        return Ok(Response::builder()
            .status(status)
            .body(Full::new(Bytes::from_static(b"hc")))
            .unwrap());
    }
    let method = req.method().to_string();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let upgrade = req
        .headers()
        .get("upgrade")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));

    if upgrade {
        inner.requests.lock().unwrap().push(Recorded {
            method,
            path,
            headers,
            body_len: 0,
            body_sha256: String::new(),
        });
        let on_upgrade = hyper::upgrade::on(req);
        tokio::spawn(async move {
            if let Ok(upgraded) = on_upgrade.await {
                let mut io = TokioIo::new(upgraded);
                let mut buf = [0u8; 4096];
                while let Ok(n) = io.read(&mut buf).await {
                    if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        });
        return Ok(Response::builder()
            .status(101)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .body(Full::new(Bytes::new()))
            .unwrap());
    }

    let mut body = req.into_body();
    let mut hasher = Sha256::new();
    let mut len = 0usize;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            len += data.len();
            hasher.update(&data);
        }
    }
    let sha = hex(&hasher.finalize());
    inner.requests.lock().unwrap().push(Recorded {
        method,
        path: path.clone(),
        headers,
        body_len: len,
        body_sha256: sha.clone(),
    });
    if let Some(mb) = path
        .strip_prefix("/big?mb=")
        .and_then(|v| v.parse::<usize>().ok())
    {
        let body: Vec<u8> = (0..mb * 1024 * 1024).map(|i| (i % 251) as u8).collect();
        let sha = sha256_hex(&body);
        return Ok(Response::builder()
            .status(200)
            .header("x-backend", name.as_str())
            .header("x-response-sha256", sha)
            .body(Full::new(Bytes::from(body)))
            .unwrap());
    }
    if let Some(ms) = path
        .strip_prefix("/slow?ms=")
        .and_then(|v| v.parse::<u64>().ok())
    {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    Ok(Response::builder()
        .status(200)
        .header("x-backend", name.as_str())
        .header("x-body-sha256", sha)
        .body(Full::new(Bytes::from(format!("ok {name}"))))
        .unwrap())
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// A raw TCP backend on 127.0.0.1 for behaviour no real HTTP server shows: `serve` gets each
/// accepted connection on its own task. Returns the address.
pub async fn raw_backend<F, Fut>(serve: F) -> String
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(serve(sock));
        }
    });
    addr
}

/// Reads one request head, through its blank line; `false` when the connection ends first.
pub async fn read_head(sock: &mut tokio::net::TcpStream) -> bool {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match sock.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    true
}
