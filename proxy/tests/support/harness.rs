//! Starts the real proxy in-process (a pingora `Server` on its own thread) on ephemeral ports.
//!
//! pingora binds listeners from address strings and cannot take a pre-bound socket (except by
//! fd transfer during upgrades), so a free port is found by binding one and releasing it.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::server::{RunArgs, ShutdownSignal, ShutdownSignalWatch};
use poolgate_proxy::StartOptions;
use poolgate_proxy::access_log::AccessLog;
use poolgate_proxy::config::{ListenerSpec, ProxyConfig, TlsFiles};
use poolgate_proxy::gate::Shared;
use tokio::sync::oneshot;

/// Ports handed out to this process: each one only once.
static NEXT_PORT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// A port nothing listens on, for a listener pingora binds later. Taken below the kernel's
/// ephemeral range (32768 and up by default): a `bind(0)` elsewhere in the tests (a backend, a
/// JWKS server) would otherwise be free to receive the same port between this check and
/// pingora's bind, and a test would then talk to the wrong server. Each process starts at its
/// own offset and never hands a port out twice.
pub fn free_port() -> SocketAddr {
    const FIRST: u32 = 10_000;
    const SPAN: u32 = 20_000;
    let start = std::process::id().wrapping_mul(7_919) % SPAN;
    loop {
        let n = NEXT_PORT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        assert!(n < SPAN, "no free port left below the ephemeral range");
        let port = u16::try_from(FIRST + (start + n) % SPAN).unwrap();
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
            return l.local_addr().unwrap();
        }
    }
}

pub struct StopSignal(pub Mutex<Option<oneshot::Receiver<()>>>);

/// Any pingora server running on its own thread; fast shutdown when dropped.
pub struct ServerGuard {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ServerGuard {
    pub fn spawn(server: pingora::server::Server) -> Self {
        let (tx, rx) = oneshot::channel();
        let thread = std::thread::spawn(move || {
            server.run(RunArgs {
                shutdown_signal: Box::new(StopSignal(Mutex::new(Some(rx)))),
            });
        });
        Self {
            stop: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Drop for ServerGuard {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[async_trait]
impl ShutdownSignalWatch for StopSignal {
    async fn recv(&self) -> ShutdownSignal {
        let rx = self.0.lock().unwrap().take();
        if let Some(rx) = rx {
            let _ = rx.await;
        } else {
            std::future::pending::<()>().await;
        }
        ShutdownSignal::FastShutdown
    }
}

/// A running proxy; stopped (fast shutdown) when dropped.
pub struct Proxy {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub shared: Arc<Shared>,
    pub log: Arc<Mutex<Vec<String>>>,
    _server: ServerGuard,
}

impl Proxy {
    /// Fills in listener and admin addresses of `cfg`, starts it, waits until both answer.
    pub fn start(cfg: ProxyConfig) -> Self {
        Self::start_with(cfg, StartOptions::default())
    }

    /// [`Proxy::start`] with a TLS listener on `cert` and `key` (PEM files).
    pub fn start_tls(cfg: ProxyConfig, cert: &std::path::Path, key: &std::path::Path) -> Self {
        let tls = TlsFiles {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
        };
        Self::start_inner(cfg, StartOptions::default(), Some(tls))
    }

    /// [`Proxy::start`] with options (the access log is always captured in memory).
    pub fn start_with(cfg: ProxyConfig, opts: StartOptions) -> Self {
        Self::start_inner(cfg, opts, None)
    }

    fn start_inner(mut cfg: ProxyConfig, mut opts: StartOptions, tls: Option<TlsFiles>) -> Self {
        let addr = free_port();
        let admin = free_port();
        cfg.listeners = vec![ListenerSpec { address: addr, tls }];
        cfg.admin = Some(admin);
        cfg.server.threads = 1;
        let log = Arc::new(Mutex::new(Vec::new()));
        let prepared = {
            opts.access_log = AccessLog::Memory(log.clone());
            poolgate_proxy::prepare(&cfg, opts)
        }
        .unwrap();
        let shared = prepared.shared.clone();
        let server = ServerGuard::spawn(prepared.server);
        wait_listening(addr);
        wait_listening(admin);
        Self {
            addr,
            admin,
            shared,
            log,
            _server: server,
        }
    }

    /// The policy file at `path`, reloaded from it when the test says so (never by itself);
    /// ready when it returns.
    pub async fn start_reloadable(path: &std::path::Path) -> Self {
        let policy = poolgate_policies::load(path).unwrap_or_else(|d| panic!("{d}"));
        let cfg = poolgate_proxy::convert::proxy_config(Arc::new(policy));
        let opts = StartOptions {
            reload_from: Some(path.to_path_buf()),
            reload_poll: Some(Duration::from_secs(3600)),
            ..StartOptions::default()
        };
        let proxy = Self::start_with(cfg, opts);
        proxy.wait_ready().await;
        proxy
    }

    /// Waits until `/readyz` answers 200 (every issuer has keys), at most 10 s.
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while super::client::get(self.admin, "/readyz", &[]).await.status != 200 {
            assert!(Instant::now() < deadline, "proxy never became ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The access-log lines written so far, parsed.
    pub fn log_lines(&self) -> Vec<serde_json::Value> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Waits until `n` access-log lines exist: the logging hook runs after the response is
    /// sent, so a client can see its answer before the line (and the metrics) are written.
    pub fn wait_for_log(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.log.lock().unwrap().len() < n {
            assert!(Instant::now() < deadline, "expected {n} access-log lines");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The admin `/metrics` text.
    pub async fn metrics(&self) -> String {
        super::client::get(self.admin, "/metrics", &[]).await.text()
    }
}

pub fn wait_listening(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
        assert!(Instant::now() < deadline, "nothing listening on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An `issuers:` section with one issuer, `test`, whose keys cannot be fetched: enough for
/// routes that refuse requests without a token.
pub const UNREACHABLE_ISSUER: &str = "issuers:\n  test:\n    issuer: \"http://127.0.0.1:1/pool\"\n    jwks_url: \"http://127.0.0.1:1/pool/.well-known/jwks.json\"\n";

/// The proxy configuration of a policy given as YAML text.
pub fn policy_config(yaml: &str) -> ProxyConfig {
    let policy =
        poolgate_policies::load_str("test.yaml", yaml, &|_| None).unwrap_or_else(|d| panic!("{d}"));
    poolgate_proxy::convert::proxy_config(Arc::new(policy))
}

/// A policy with a public route `public` (`/**`) and a protected route `private`
/// (`/private/**`, issuer `test`), both to upstream `app` over `targets`.
pub fn simple_yaml(targets: &[String]) -> String {
    let targets = targets
        .iter()
        .map(|t| format!("\"{t}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"version: 1
{UNREACHABLE_ISSUER}upstreams:
  app:
    targets: [{targets}]
routes:
  - name: public
    match: {{ path: "/**" }}
    upstream: app
    public: true
  - name: private
    match: {{ path: "/private/**" }}
    upstream: app
    auth: {{ issuer: test }}
"#
    )
}

/// [`simple_yaml`] as a proxy configuration.
pub fn simple_config(targets: Vec<String>) -> ProxyConfig {
    policy_config(&simple_yaml(&targets))
}

/// Parses one sample `name{labels} value` out of Prometheus text; labels must match exactly.
pub fn sample(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(name_and_labels)
            .and_then(|rest| rest.trim().parse().ok())
    })
}
