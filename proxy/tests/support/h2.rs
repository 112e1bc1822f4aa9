//! An HTTP/2 client over TLS for the proxy's TLS listener: pingora's own h2 connector (the
//! `h2` crate underneath), offering only `h2` by ALPN and trusting the given test CA, so a
//! request that comes back was sent as HTTP/2 to a verified `localhost` certificate.

use std::net::SocketAddr;
use std::path::Path;

use bytes::Bytes;
use pingora::connectors::ConnectorOptions;
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::protocols::http::client::HttpSession;
use pingora::upstreams::peer::HttpPeer;

use super::client::Reply;

/// One h2 connection to a TLS listener.
pub struct H2Client {
    connector: Connector,
    peer: HttpPeer,
}

impl H2Client {
    /// A client for `addr` that verifies the server's certificate against `ca` (PEM).
    pub fn new(addr: SocketAddr, ca: &Path) -> Self {
        // Two providers are compiled in (pingora pulls ring): choose, as the binary does.
        poolgate_proxy::server::install_crypto_provider();
        let mut options = ConnectorOptions::new(1);
        options.ca_file = Some(ca.display().to_string());
        let mut peer = HttpPeer::new(addr, true, "localhost".to_owned());
        peer.options.set_http_version(2, 2);
        peer.options.verify_cert = true;
        peer.options.verify_hostname = true;
        Self {
            connector: Connector::new(Some(options)),
            peer,
        }
    }

    /// Sends `method path` with `headers` and `body` on one h2 stream; reads the whole answer.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Reply {
        let (session, _) = self.connector.get_http_session(&self.peer).await.unwrap();
        let HttpSession::H2(mut h2) = session else {
            panic!("the TLS listener did not negotiate h2");
        };
        let mut req = RequestHeader::build(method, path.as_bytes(), None).unwrap();
        // pingora's h2 client turns `host` into `:authority`.
        req.insert_header("host", "localhost").unwrap();
        for (n, v) in headers {
            req.append_header(n.to_string(), *v).unwrap();
        }
        let end = body.is_empty();
        h2.write_request_header(Box::new(req), end).unwrap();
        if !end {
            // In 64 KiB pieces, as a streaming client would: flow control applies to each.
            for chunk in body.chunks(64 * 1024) {
                h2.write_request_body(Bytes::copy_from_slice(chunk), false)
                    .await
                    .unwrap();
            }
            h2.finish_request_body().unwrap();
        }
        h2.read_response_header().await.unwrap();
        let head = h2.response_header().unwrap();
        let (status, headers) = (head.status.as_u16(), head.headers.clone());
        let mut answer = Vec::new();
        while let Some(chunk) = h2.read_response_body().await.unwrap() {
            answer.extend_from_slice(&chunk);
        }
        Reply {
            status,
            headers,
            body: Bytes::from(answer),
        }
    }
}

/// A TLS connection to `addr` (trusting `ca`, for `localhost`) that negotiated `h2`.
#[allow(dead_code)]
pub async fn tls_h2(
    addr: SocketAddr,
    ca: &Path,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    poolgate_proxy::server::install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    tls
}

/// Sends `req` as written on a fresh h2 connection made with the `h2` crate itself, which
/// (unlike pingora's client) sends a `host` field beside `:authority` as given. Returns the
/// answer's status, or the stream error when the server reset it.
#[allow(dead_code)] // not every test binary that includes the support uses it
pub async fn send_raw(
    addr: SocketAddr,
    ca: &Path,
    req: http::Request<()>,
) -> Result<u16, ::h2::Error> {
    send_raw_body(addr, ca, req, &[]).await
}

/// [`send_raw`] with `body` sent as one DATA frame that ends the stream (none when empty),
/// whatever `content-length` the request declares.
#[allow(dead_code)]
pub async fn send_raw_body(
    addr: SocketAddr,
    ca: &Path,
    req: http::Request<()>,
    body: &[u8],
) -> Result<u16, ::h2::Error> {
    let tls = tls_h2(addr, ca).await;
    let (client, connection) = ::h2::client::handshake(tls).await.unwrap();
    tokio::spawn(connection);
    let mut client = client.ready().await?;
    let (answer, mut stream) = client.send_request(req, body.is_empty())?;
    if !body.is_empty() {
        stream.send_data(bytes::Bytes::copy_from_slice(body), true)?;
    }
    let answer = answer.await?;
    Ok(answer.status().as_u16())
}
