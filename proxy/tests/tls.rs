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

/// A public route to one TLS target, with `tls` as written in the policy.
fn tls_upstream_yaml(target: &str, tls: &str, health: bool) -> String {
    let health = if health {
        "\n    health_check: { path: /healthz, interval: 100ms }"
    } else {
        ""
    };
    format!(
        "version: 1\nupstreams:\n  app:\n    targets: [\"{target}\"]\n    tls: {tls}{health}\nroutes:\n  - match: {{ path: \"/**\" }}\n    upstream: app\n    public: true\n"
    )
}

#[tokio::test]
async fn upstream_tls_verifies_against_the_pools_private_ca() {
    let (ca, cert, key) = certificates();
    let be = EchoBackend::start_tls("private", &cert, &key);
    // No `sni`: the name checked is the target's address (the certificate carries 127.0.0.1).
    let tls = format!("{{ ca: \"{}\" }}", ca.display());
    let proxy = Proxy::start(support::harness::policy_config(&tls_upstream_yaml(
        &be.target(),
        &tls,
        false,
    )));
    let r = support::client::get(proxy.addr, "/trusted", &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-backend"), Some("private"));
    assert_eq!(be.requests()[0].path, "/trusted");

    // With a name as well: sent by SNI and matched against the certificate.
    let tls = format!("{{ sni: localhost, ca: \"{}\" }}", ca.display());
    let proxy = Proxy::start(support::harness::policy_config(&tls_upstream_yaml(
        &be.target(),
        &tls,
        false,
    )));
    let r = support::client::get(proxy.addr, "/named", &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(be.sni_seen().contains(&"localhost".to_owned()));
    let _ = std::fs::remove_dir_all(ca.parent().unwrap());
}

#[tokio::test]
async fn upstream_tls_refuses_a_target_its_trust_roots_did_not_sign() {
    let (ca, cert, key) = certificates();
    let (other_ca, _, _) = certificates();
    let be = EchoBackend::start_tls("private", &cert, &key);
    // Verification on, system roots only.
    let proxy = Proxy::start(support::harness::policy_config(&tls_upstream_yaml(
        &be.target(),
        "{ sni: localhost }",
        false,
    )));
    let r = support::client::get(proxy.addr, "/untrusted", &[]).await;
    assert_eq!(r.status, 502, "{}", r.text());
    // Verification on, a private CA that did not sign the target's certificate.
    let tls = format!("{{ sni: localhost, ca: \"{}\" }}", other_ca.display());
    let proxy = Proxy::start(support::harness::policy_config(&tls_upstream_yaml(
        &be.target(),
        &tls,
        false,
    )));
    let r = support::client::get(proxy.addr, "/other-ca", &[]).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(be.count(), 0, "no request may reach an unverified target");
    for dir in [&ca, &other_ca] {
        let _ = std::fs::remove_dir_all(dir.parent().unwrap());
    }
}

#[tokio::test]
async fn upstream_health_checks_trust_the_pools_private_ca() {
    let (ca, cert, key) = certificates();
    let be = EchoBackend::start_tls("private", &cert, &key);
    let tls = format!("{{ sni: localhost, ca: \"{}\" }}", ca.display());
    let proxy = Proxy::start(support::harness::policy_config(&tls_upstream_yaml(
        &be.target(),
        &tls,
        true,
    )));
    // A probe is recorded only once its TLS handshake succeeded.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while be.health_probes() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "no health probe got through TLS"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let r = support::client::get(proxy.addr, "/checked", &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let _ = std::fs::remove_dir_all(ca.parent().unwrap());
}

#[test]
fn a_bundle_that_holds_no_usable_certificate_fails_the_pool_build() {
    let dir = std::env::temp_dir().join(format!("poolgate-bad-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut spec = poolgate_proxy::config::UpstreamSpec::new("app", vec!["127.0.0.1:1".into()]);
    let mut with_ca = |file: &str, content: &str| {
        let path = dir.join(file);
        std::fs::write(&path, content).unwrap();
        spec.tls = Some(poolgate_proxy::config::UpstreamTls {
            sni: "localhost".into(),
            verify: true,
            ca: Some(path),
        });
        spec.clone()
    };
    use poolgate_proxy::upstreams::{Upstream, UpstreamError};
    // A DER SEQUENCE that is no certificate: refused when the pool is built, not per request.
    let junk = with_ca(
        "junk.pem",
        "-----BEGIN CERTIFICATE-----\nMAEA\n-----END CERTIFICATE-----\n",
    );
    let err = Upstream::build(&junk).unwrap_err();
    assert!(matches!(err, UpstreamError::Ca { .. }), "{err}");
    assert!(err.to_string().contains("junk.pem"), "{err}");
    let empty = with_ca("empty.pem", "no pem here\n");
    assert!(matches!(
        Upstream::build(&empty),
        Err(UpstreamError::Ca { .. })
    ));
    let mut missing = with_ca("x.pem", "");
    missing.tls.as_mut().unwrap().ca = Some(dir.join("missing.pem"));
    assert!(matches!(
        Upstream::build(&missing),
        Err(UpstreamError::Ca { .. })
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_renewed_bundle_at_the_same_path_rebuilds_the_pool() {
    use poolgate_proxy::upstreams::Upstreams;
    let (ca, _, _) = certificates();
    let (other_ca, _, _) = certificates();
    let mut spec = poolgate_proxy::config::UpstreamSpec::new("app", vec!["127.0.0.1:1".into()]);
    spec.tls = Some(poolgate_proxy::config::UpstreamTls {
        sni: "localhost".into(),
        verify: true,
        ca: Some(ca.clone()),
    });
    let specs = vec![spec];
    let first = Upstreams::build(&specs, None).unwrap();
    let same = Upstreams::build(&specs, Some(&first)).unwrap();
    assert!(std::sync::Arc::ptr_eq(
        first.get("app").unwrap(),
        same.get("app").unwrap()
    ));
    std::fs::copy(&other_ca, &ca).unwrap();
    let renewed = Upstreams::build(&specs, Some(&same)).unwrap();
    assert!(!std::sync::Arc::ptr_eq(
        same.get("app").unwrap(),
        renewed.get("app").unwrap()
    ));
    // Pooled connections verified against the old bundle are not reused for the new one.
    let old_peer = same.get("app").unwrap().select(b"", &[]).unwrap();
    let new_peer = renewed.get("app").unwrap().select(b"", &[]).unwrap();
    assert_ne!(old_peer.group_key, new_peer.group_key);
    assert!(new_peer.options.ca.is_some());
    for dir in [&ca, &other_ca] {
        let _ = std::fs::remove_dir_all(dir.parent().unwrap());
    }
}

#[test]
fn verification_without_a_server_name_is_refused() {
    // pingora would skip every certificate check for an empty server name.
    let mut spec = poolgate_proxy::config::UpstreamSpec::new("app", vec!["127.0.0.1:1".into()]);
    spec.tls = Some(poolgate_proxy::config::UpstreamTls {
        sni: String::new(),
        verify: true,
        ca: None,
    });
    assert!(matches!(
        poolgate_proxy::upstreams::Upstream::build(&spec),
        Err(poolgate_proxy::upstreams::UpstreamError::NoServerName(_))
    ));
    spec.tls.as_mut().unwrap().verify = false;
    assert!(poolgate_proxy::upstreams::Upstream::build(&spec).is_ok());
}
