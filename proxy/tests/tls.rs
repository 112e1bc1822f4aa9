//! The TLS listener: rustls with certificate files, HTTP/2 offered by ALPN, HTTP/1.1 served.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::path::PathBuf;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use support::backend::EchoBackend;
use support::certs::certificates;
use support::harness::{Proxy, simple_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn connect(
    proxy: &Proxy,
    ca: &PathBuf,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(ca).unwrap())
        .unwrap();
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

#[tokio::test]
async fn tls_listener_negotiates_h2_and_serves_http1() {
    let (ca, cert, key) = certificates();
    let be = EchoBackend::start("a");
    let proxy = Proxy::start_tls(simple_config(vec![be.target()]), &cert, &key);

    let h2 = connect(&proxy, &ca, &[b"h2", b"http/1.1"]).await;
    assert_eq!(h2.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    drop(h2);

    let mut s = connect(&proxy, &ca, &[b"http/1.1"]).await;
    s.write_all(b"GET /tls/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let seen = &be.requests()[0];
    assert_eq!(seen.path, "/tls/x");
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
    let _ = std::fs::remove_dir_all(cert.parent().unwrap());
}

#[tokio::test]
async fn upstream_tls_sends_sni() {
    let (_ca, cert, key) = certificates();
    let be = EchoBackend::start_tls("tls-backend", &cert, &key);
    // The test CA is not in the proxy's trust store, so verification is turned off here;
    // what is checked is that the proxy speaks TLS upstream and names the server.
    let yaml = format!(
        "version: 1\nupstreams:\n  app:\n    targets: [\"{}\"]\n    tls: {{ sni: localhost, verify: false }}\nroutes:\n  - match: {{ path: \"/**\" }}\n    upstream: app\n    public: true\n",
        be.target()
    );
    let proxy = Proxy::start(support::harness::policy_config(&yaml));
    let r = support::client::get(proxy.addr, "/over-tls", &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-backend"), Some("tls-backend"));
    assert_eq!(be.sni_seen(), vec!["localhost".to_owned()]);
    assert_eq!(be.requests()[0].path, "/over-tls");
}

#[test]
fn mismatched_certificate_and_key_fail_at_start_not_in_a_worker() {
    let (_, cert, _) = certificates();
    let (_, _, other_key) = certificates();
    let mut cfg = simple_config(vec!["127.0.0.1:9".into()]);
    cfg.listeners = vec![poolgate_proxy::config::ListenerSpec {
        address: support::harness::free_port(),
        tls: Some(poolgate_proxy::config::TlsFiles {
            cert: cert.clone(),
            key: other_key,
        }),
    }];
    let err = poolgate_proxy::prepare(&cfg, poolgate_proxy::StartOptions::default())
        .err()
        .expect("must refuse");
    assert!(err.to_string().contains("TLS listener"), "{err}");
    let missing = poolgate_proxy::config::TlsFiles {
        cert: cert.with_file_name("nope.pem"),
        key: cert,
    };
    cfg.listeners[0].tls = Some(missing);
    assert!(poolgate_proxy::prepare(&cfg, poolgate_proxy::StartOptions::default()).is_err());
}
