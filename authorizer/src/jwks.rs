//! The one piece of network code: fetching a JWKS (or an OIDC discovery document) over HTTP(S).
//!
//! One short-lived HTTP/1.1 connection per fetch (fetches are rare), rustls with the web roots
//! plus an optional extra CA file, a connect timeout, a total timeout and a body size cap.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header;
use http_body_util::{BodyExt, Empty, LengthLimitError, Limited};
use hyper::rt::{Read, Write};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::config::IssuerConfig;
use crate::error::{ConfigError, FetchError};

/// A fetched document and the `Cache-Control: max-age` it came with.
#[derive(Debug)]
pub struct Fetched {
    /// The body (at most the configured cap).
    pub body: Bytes,
    /// `max-age` in seconds; `Some(0)` for `no-cache`/`no-store`.
    pub max_age: Option<Duration>,
}

/// Fetches documents for one issuer.
#[derive(Clone)]
pub struct Fetcher {
    tls: Arc<rustls::ClientConfig>,
    connect_timeout: Duration,
    total_timeout: Duration,
    max_body: usize,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("connect_timeout", &self.connect_timeout)
            .field("total_timeout", &self.total_timeout)
            .field("max_body", &self.max_body)
            .finish_non_exhaustive()
    }
}

impl Fetcher {
    /// Builds the TLS client (web roots + the issuer's extra CA file) and keeps the timings.
    pub fn new(config: &IssuerConfig) -> Result<Fetcher, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            issuer: config.name.clone(),
            message,
        };
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(path) = &config.extra_ca_file {
            let shown = path.display();
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| invalid(format!("cannot read CA file `{shown}`: {e}")))?;
            let mut added = 0;
            for cert in certs {
                let cert = cert.map_err(|e| invalid(format!("bad PEM in `{shown}`: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| invalid(format!("bad certificate in `{shown}`: {e}")))?;
                added += 1;
            }
            if added == 0 {
                return Err(invalid(format!("no certificate in CA file `{shown}`")));
            }
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(format!("tls: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Fetcher {
            tls: Arc::new(tls),
            connect_timeout: config.jwks.connect_timeout,
            total_timeout: config.jwks.total_timeout,
            max_body: config.jwks.max_body_bytes,
        })
    }

    /// GETs `url`; 2xx only; the whole exchange within the total timeout.
    pub async fn get(&self, url: &str) -> Result<Fetched, FetchError> {
        let uri: http::Uri = url
            .parse()
            .map_err(|_| FetchError::BadUrl(url.to_owned()))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(FetchError::BadUrl(url.to_owned())),
        };
        let host = uri
            .host()
            .ok_or_else(|| FetchError::BadUrl(url.to_owned()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .ok_or_else(|| FetchError::BadUrl(url.to_owned()))?;
        let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        let exchange = async {
            let tcp = timeout(
                self.connect_timeout,
                TcpStream::connect((host.as_str(), port)),
            )
            .await
            .map_err(|_| FetchError::ConnectTimeout)?
            .map_err(|e| FetchError::Transport(e.to_string()))?;
            let _ = tcp.set_nodelay(true);
            if https {
                let name = ServerName::try_from(host.clone())
                    .map_err(|_| FetchError::BadUrl(url.to_owned()))?;
                let connector = tokio_rustls::TlsConnector::from(self.tls.clone());
                let tls = timeout(self.connect_timeout, connector.connect(name, tcp))
                    .await
                    .map_err(|_| FetchError::ConnectTimeout)?
                    .map_err(|e| FetchError::Transport(format!("tls: {e}")))?;
                self.request(TokioIo::new(tls), &authority, &path).await
            } else {
                self.request(TokioIo::new(tcp), &authority, &path).await
            }
        };
        timeout(self.total_timeout, exchange)
            .await
            .map_err(|_| FetchError::Timeout)?
    }

    async fn request<IO>(&self, io: IO, authority: &str, path: &str) -> Result<Fetched, FetchError>
    where
        IO: Read + Write + Unpin + Send + 'static,
    {
        let transport = |e: hyper::Error| FetchError::Transport(e.to_string());
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(transport)?;
        // The connection is driven by its own task, aborted when this fetch ends either way.
        let driver = AbortOnDrop(tokio::spawn(async move {
            let _ = conn.await;
        }));
        let req = http::Request::get(path)
            .header(header::HOST, authority)
            .header(header::ACCEPT, "application/json")
            .header(
                header::USER_AGENT,
                concat!("poolgate/", env!("CARGO_PKG_VERSION")),
            )
            .body(Empty::<Bytes>::new())
            .map_err(|e| FetchError::BadUrl(e.to_string()))?;
        let resp = sender.send_request(req).await.map_err(transport)?;
        let status = resp.status();
        if !status.is_success() {
            return Err(FetchError::Status(status.as_u16()));
        }
        let max_age = max_age(resp.headers());
        let declared = resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max_body as u64) {
            return Err(FetchError::TooLarge(self.max_body));
        }
        let body = Limited::new(resp.into_body(), self.max_body)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<LengthLimitError>().is_some() {
                    FetchError::TooLarge(self.max_body)
                } else {
                    FetchError::Transport(e.to_string())
                }
            })?
            .to_bytes();
        drop(driver);
        Ok(Fetched { body, max_age })
    }

    /// Reads `{issuer}/.well-known/openid-configuration` and returns its `jwks_uri`. The
    /// document's `issuer` must equal the configured one (OpenID Connect Discovery §4.3).
    pub async fn discover(&self, issuer: &str) -> Result<String, FetchError> {
        #[derive(serde::Deserialize)]
        struct Discovery {
            issuer: String,
            jwks_uri: String,
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let fetched = self.get(&url).await?;
        let doc: Discovery = serde_json::from_slice(&fetched.body)
            .map_err(|e| FetchError::BadDocument(format!("discovery document: {e}")))?;
        if doc.issuer != issuer {
            return Err(FetchError::BadDocument(format!(
                "discovery document names issuer `{}`, expected `{issuer}`",
                doc.issuer
            )));
        }
        Ok(doc.jwks_uri)
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `Cache-Control: max-age=N` → N seconds; `no-cache`/`no-store` → 0; otherwise `None`.
pub fn max_age(headers: &http::HeaderMap) -> Option<Duration> {
    let mut found = None;
    for value in headers.get_all(header::CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',').map(str::trim) {
            let lower = directive.to_ascii_lowercase();
            if lower == "no-cache" || lower == "no-store" {
                return Some(Duration::ZERO);
            }
            if let Some(n) = lower.strip_prefix("max-age=")
                && let Ok(n) = n.trim_matches('"').parse::<u64>()
            {
                found = Some(Duration::from_secs(n));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_directives() {
        let mut h = http::HeaderMap::new();
        assert_eq!(max_age(&h), None);
        h.insert(
            header::CACHE_CONTROL,
            "public, max-age=3600, must-revalidate".parse().unwrap(),
        );
        assert_eq!(max_age(&h), Some(Duration::from_secs(3600)));
        h.insert(header::CACHE_CONTROL, "no-store".parse().unwrap());
        assert_eq!(max_age(&h), Some(Duration::ZERO));
        h.insert(header::CACHE_CONTROL, "max-age=abc".parse().unwrap());
        assert_eq!(max_age(&h), None);
    }
}
