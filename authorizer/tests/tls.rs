//! JWKS over HTTPS: a real rustls server on 127.0.0.1 with a certificate from a private CA,
//! trusted only through the issuer's extra CA file.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use poolgate_authorizer::testutil::{Claims, TestKey, jwks_of, unix_now};
use poolgate_authorizer::{Authorizer, CacheConfig, IssuerConfig, KeySource, Requirement};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

struct TlsJwks {
    url: String,
    ca_file: std::path::PathBuf,
}

async fn start_tls_jwks(jwks: String) -> TlsJwks {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "poolgate test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let body = Bytes::from(jwks);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let (acceptor, body) = (acceptor.clone(), body.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = service_fn(move |_req| {
                    let body = body.clone();
                    async move { Ok::<_, Infallible>(Response::new(Full::new(body))) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    let ca_file = std::env::temp_dir().join(format!("poolgate-test-ca-{}.pem", addr.port()));
    std::fs::write(&ca_file, ca.pem()).unwrap();
    TlsJwks {
        url: format!("https://127.0.0.1:{}/.well-known/jwks.json", addr.port()),
        ca_file,
    }
}

fn issuer(url: &str, ca_file: Option<std::path::PathBuf>) -> IssuerConfig {
    IssuerConfig {
        name: "tls".into(),
        source: KeySource::Explicit {
            issuer: "https://idp.test/pool".into(),
            jwks_url: url.to_owned(),
        },
        app_clients: vec!["c1".into()],
        extra_ca_file: ca_file,
        ..IssuerConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_jwks_with_an_extra_ca_file() {
    let key = TestKey::rsa("tls-1").unwrap();
    let server = start_tls_jwks(jwks_of([&key]).to_string()).await;

    let trusted = Authorizer::new(
        vec![issuer(&server.url, Some(server.ca_file.clone()))],
        CacheConfig::default(),
    )
    .unwrap();
    trusted.start();
    assert!(trusted.wait_ready(Duration::from_secs(5)).await);
    let claims = Claims::access("https://idp.test/pool", "c1", "alice", &[], &[], unix_now());
    let token = key.sign_claims(&claims.into_value());
    assert!(
        trusted
            .verify(&token, &Requirement::access("tls"))
            .await
            .is_ok()
    );

    // Without the CA file the web roots do not trust the private CA.
    let untrusted =
        Authorizer::new(vec![issuer(&server.url, None)], CacheConfig::default()).unwrap();
    untrusted.start();
    assert!(!untrusted.wait_ready(Duration::from_millis(500)).await);
    let err = untrusted.last_fetch_error("tls").await.unwrap();
    assert!(err.contains("tls"), "{err}");
    std::fs::remove_file(&server.ca_file).unwrap();
}
