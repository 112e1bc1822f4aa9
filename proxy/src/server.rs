//! Building the pingora `Server`: the proxy service on every listener, the admin service,
//! and the background health checker. Shutdown timings are set for containers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::listeners::tls::TlsSettings;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{Server, ShutdownWatch};
use pingora::services::background::{BackgroundService, background_service};
use pingora::services::listening::Service;

use crate::admin::AdminApp;
use crate::config::ProxyConfig;
use crate::connections::{Capped, Edge};
use crate::gate::{Gate, Shared};
use crate::reload::{KeyLifecycle, Reloader};

/// How often the health checker looks for due checks.
const HEALTH_TICK: Duration = Duration::from_millis(100);

/// Why the server could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("no listeners configured")]
    NoListeners,
    #[error("TLS listener {address}: {detail}")]
    Tls { address: String, detail: String },
    #[error("cannot listen on {address}: {detail}")]
    Bind { address: String, detail: String },
}

/// Installs aws-lc-rs as rustls's process-wide provider. pingora installs ring when none is
/// set, and two compiled-in providers make rustls refuse to pick, so this runs first in `main`
/// (and in tests). Installing twice is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Idle upstream connections each worker keeps (pingora's default is 128).
const UPSTREAM_KEEPALIVE_PER_THREAD: usize = 512;

/// pingora's process settings from ours.
pub fn server_conf(cfg: &ProxyConfig) -> ServerConf {
    let s = &cfg.server;
    let mut conf = ServerConf {
        threads: s.threads.max(1),
        grace_period_seconds: Some(s.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(s.shutdown_timeout.as_secs()),
        upgrade_sock: s.upgrade_sock.to_string_lossy().into_owned(),
        // Work stealing stays on (pingora's default). Its single-threaded alternative finds its
        // runtimes through a thread-local that a new thread reusing an exited thread's id
        // inherits: a listener could then start on a runtime already shut down and spin on
        // failed accepts at 100 % CPU (seen once at start-up in `deploy/check.sh`).
        // Idle upstream connections kept per worker: below the peak of concurrent upstream
        // requests, connections are closed and reopened under load.
        upstream_keepalive_pool_size: UPSTREAM_KEEPALIVE_PER_THREAD,
        ..ServerConf::default()
    };
    conf.pid_file = String::from("/tmp/poolgate.pid");
    conf
}

/// Builds the whole server (not yet running).
pub fn build(
    cfg: &ProxyConfig,
    shared: Arc<Shared>,
    reloader: Option<Reloader>,
) -> Result<Server, ServerError> {
    if cfg.listeners.is_empty() {
        return Err(ServerError::NoListeners);
    }
    if !cfg.server.upgrade {
        // pingora retries a busy address for 30 s and then panics in its worker while the
        // process (and /readyz) stay up: find out now and refuse to start instead. During a
        // graceful upgrade the old process holds the sockets, so there is nothing to check.
        let addrs = cfg.listeners.iter().map(|l| l.address).chain(cfg.admin);
        for address in addrs {
            std::net::TcpListener::bind(address).map_err(|e| ServerError::Bind {
                address: address.to_string(),
                detail: e.to_string(),
            })?;
        }
    }
    let opt = Opt {
        upgrade: cfg.server.upgrade,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, server_conf(cfg));
    server.bootstrap();

    let edge = Edge::new(
        pingora::proxy::http_proxy(&server.configuration, Gate::new(shared.clone())),
        shared.clone(),
    );
    let mut proxy = Service::new(
        "poolgate proxy".to_owned(),
        Capped::new(edge, shared.clone()),
    );
    for l in &cfg.listeners {
        let address = l.address.to_string();
        match &l.tls {
            None => proxy.add_tcp(&address),
            Some(files) => {
                let tls_err = |detail: String| ServerError::Tls {
                    address: address.clone(),
                    detail,
                };
                let cert = files
                    .cert
                    .to_str()
                    .ok_or_else(|| tls_err("certificate path is not UTF-8".into()))?;
                let key = files
                    .key
                    .to_str()
                    .ok_or_else(|| tls_err("key path is not UTF-8".into()))?;
                // pingora loads the files again in its worker and panics there on a bad pair:
                // check them here so a bad file is a start-up error.
                check_cert_pair(cert, key).map_err(tls_err)?;
                let mut settings =
                    TlsSettings::intermediate(cert, key).map_err(|e| tls_err(e.to_string()))?;
                settings.enable_h2();
                proxy.add_tls_with_settings(&address, None, settings);
            }
        }
    }
    server.add_service(proxy);

    if let Some(admin) = cfg.admin {
        let mut svc = Service::new("poolgate admin".to_owned(), AdminApp::new(shared.clone()));
        svc.add_tcp(&admin.to_string());
        server.add_service(svc);
    }
    server.add_service(background_service(
        "keys",
        KeyLifecycle {
            shared: shared.clone(),
        },
    ));
    if let Some(r) = reloader {
        server.add_service(background_service("reload", r));
    }
    server.add_service(background_service(
        "upstream health",
        HealthChecks { shared },
    ));
    Ok(server)
}

/// Loads a PEM certificate chain and private key and checks that they belong together.
fn check_cert_pair(cert: &str, key: &str) -> Result<(), String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("certificate `{cert}`: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("certificate `{cert}`: {e}"))?;
    if certs.is_empty() {
        return Err(format!("certificate `{cert}`: no certificate in the file"));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("key `{key}`: {e}"))?;
    rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map(|_| ())
        .map_err(|e| format!("certificate `{cert}` and key `{key}`: {e}"))
}

/// Runs every due health check of the current configuration's pools, so pools swapped in
/// by a reload are checked without restarting anything.
pub struct HealthChecks {
    shared: Arc<Shared>,
}

#[async_trait]
impl BackgroundService for HealthChecks {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            let now = Instant::now();
            let state = self.shared.state.load_full();
            for up in state.upstreams.iter() {
                let up = up.clone();
                // Each pass marks its next due time before running, so a slow pass is never doubled.
                tokio::spawn(async move { up.check_health_if_due(now).await });
            }
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(HEALTH_TICK) => {}
            }
        }
    }
}
