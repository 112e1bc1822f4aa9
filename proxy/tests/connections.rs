//! Connection bounds (`server.connections`) with real sockets and short settings: a slow head,
//! an idle keep-alive or HTTP/2 connection, a missing HTTP/2 preface, a stalled body, a client
//! that does not read, and more connections than allowed are each cut, and counted.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use support::backend::EchoBackend;
use support::certs::certificates;
use support::harness::{Proxy, policy_config, sample};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One public route to `target`, with one-second bounds (and `max` connections).
fn bounded(target: &str, max: u32) -> String {
    format!(
        r#"version: 1
server:
  connections:
    max: {max}
    header_timeout: 1s
    keepalive_timeout: 1s
    body_timeout: 1s
    send_timeout: 1s
upstreams:
  app:
    targets: ["{target}"]
routes:
  - name: all
    match: {{ path: "/**" }}
    upstream: app
    public: true
"#
    )
}

async fn closed(proxy: &Proxy, reason: &str) -> f64 {
    let series = format!("poolgate_downstream_closed_total{{reason=\"{reason}\"}}");
    sample(&proxy.metrics().await, &series).unwrap_or(0.0)
}

/// Reads until the peer closes (or fails); how long that took, and what was read.
async fn until_closed(s: &mut TcpStream, limit: Duration) -> (Option<Duration>, Vec<u8>) {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match tokio::time::timeout_at((start + limit).into(), s.read(&mut buf)).await {
            Err(_) => return (None, got),
            Ok(Ok(0) | Err(_)) => return (Some(start.elapsed()), got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// One whole request on a kept-alive connection; returns the answer's head.
async fn request(s: &mut TcpStream) -> String {
    s.write_all(b"GET /x HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before an answer");
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if body.len() >= len {
                return head.to_owned();
            }
        }
    }
}

/// Writes a header line every 300 ms: a head that never ends.
async fn trickle(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    s.write_all(b"GET /x HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .ok()?;
    while start.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if s.write_all(b"X-Slow: 1\r\n").await.is_err() {
            return Some(start.elapsed());
        }
        let mut buf = [0u8; 1024];
        let read = tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf)).await;
        if let Ok(Ok(0) | Err(_)) = read {
            return Some(start.elapsed());
        }
    }
    None
}

#[tokio::test]
async fn a_request_head_sent_slowly_is_cut_at_the_header_timeout() {
    let be = EchoBackend::start("app");
    let proxy = Proxy::start(policy_config(&bounded(&be.target(), 100)));
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    let cut = trickle(&mut s, Duration::from_secs(6)).await;
    let cut = cut.expect("a head trickled for 6 s was never cut");
    assert!(
        cut >= Duration::from_millis(900) && cut < Duration::from_secs(4),
        "{cut:?}"
    );
    assert_eq!(be.count(), 0);
    // On a kept-alive connection too: the next head trickles, and is cut.
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    assert!(request(&mut s).await.starts_with("HTTP/1.1 200"));
    let cut = trickle(&mut s, Duration::from_secs(6)).await;
    let cut = cut.expect("a kept-alive connection's head trickled for 6 s was never cut");
    assert!(cut < Duration::from_secs(4), "{cut:?}");
    assert_eq!(be.count(), 1);
    assert!(closed(&proxy, "header_timeout").await >= 2.0);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let be = EchoBackend::start("app");
    let proxy = Proxy::start(policy_config(&bounded(&be.target(), 100)));
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    assert!(request(&mut s).await.starts_with("HTTP/1.1 200"));
    assert!(
        request(&mut s).await.starts_with("HTTP/1.1 200"),
        "kept alive"
    );
    let (after, _) = until_closed(&mut s, Duration::from_secs(6)).await;
    let after = after.expect("an idle keep-alive connection stayed open 6 s");
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_secs(4),
        "{after:?}"
    );
    assert!(closed(&proxy, "idle_timeout").await >= 1.0);
}

#[tokio::test]
async fn connections_over_the_cap_are_refused_with_503_until_one_closes() {
    let be = EchoBackend::start("app");
    let mut yaml = bounded(&be.target(), 2);
    yaml = yaml.replace("keepalive_timeout: 1s", "keepalive_timeout: 30s");
    let proxy = Proxy::start(policy_config(&yaml));
    let mut a = TcpStream::connect(proxy.addr).await.unwrap();
    let mut b = TcpStream::connect(proxy.addr).await.unwrap();
    assert!(request(&mut a).await.starts_with("HTTP/1.1 200"));
    assert!(request(&mut b).await.starts_with("HTTP/1.1 200"));
    let open = sample(&proxy.metrics().await, "poolgate_downstream_connections");
    assert_eq!(open, Some(2.0));
    let mut c = TcpStream::connect(proxy.addr).await.unwrap();
    let (after, answer) = until_closed(&mut c, Duration::from_secs(3)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(after.is_some(), "the third connection was held open");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("connection_limit"), "{answer}");
    assert!(answer.contains("retry-after:"), "{answer}");
    assert_eq!(be.count(), 2);
    assert_eq!(closed(&proxy, "connection_limit").await, 1.0);
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let mut d = TcpStream::connect(proxy.addr).await.unwrap();
        d.write_all(b"GET /x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let (_, answer) = until_closed(&mut d, Duration::from_secs(3)).await;
        if answer.starts_with(b"HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "a freed slot was never reused");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(b);
}

#[tokio::test]
async fn a_stalled_request_body_gets_408() {
    let be = EchoBackend::start("app");
    let proxy = Proxy::start(policy_config(&bounded(&be.target(), 100)));
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(b"POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\r\n0123456789")
        .await
        .unwrap();
    let (after, answer) = until_closed(&mut s, Duration::from_secs(6)).await;
    let after = after.expect("a stalled body held the connection 6 s");
    let answer = String::from_utf8_lossy(&answer);
    assert!(after < Duration::from_secs(4), "{after:?}");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_timeout"), "{answer}");
    assert!(closed(&proxy, "body_timeout").await >= 1.0);
}

#[tokio::test]
async fn a_client_that_does_not_read_its_answer_is_cut_at_the_send_timeout() {
    let be = EchoBackend::start("app");
    let proxy = Proxy::start(policy_config(&bounded(&be.target(), 100)));
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(b"GET /big?mb=64 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    // Once the answer has started (the backend builds its 64 MiB first), stop reading: the
    // socket buffers fill and the proxy's writes stall.
    let mut first = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(20), s.read(&mut first))
        .await
        .unwrap()
        .unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200"));
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (after, got) = until_closed(&mut s, Duration::from_secs(20)).await;
    assert!(after.is_some(), "the connection stayed open");
    assert!(
        got.len() < 64 * 1024 * 1024,
        "the whole answer was delivered"
    );
    assert!(closed(&proxy, "send_timeout").await >= 1.0);
}

#[tokio::test]
async fn http2_bounds_preface_idle_connection_and_stalled_body() {
    let (ca, cert, key) = certificates();
    let be = EchoBackend::start("app");
    let proxy = Proxy::start_tls(policy_config(&bounded(&be.target(), 100)), &cert, &key);

    // TLS with ALPN h2, then nothing: no preface.
    let mut silent = support::h2::tls_h2(proxy.addr, &ca).await;
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    let end = tokio::time::timeout(Duration::from_secs(6), async {
        loop {
            match silent.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(end.is_ok(), "a client without a preface was held 6 s");
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "{:?}",
        start.elapsed()
    );
    assert!(closed(&proxy, "header_timeout").await >= 1.0);

    // One request, then idle: the connection ends.
    let tls = support::h2::tls_h2(proxy.addr, &ca).await;
    let (client, connection) = h2::client::handshake(tls).await.unwrap();
    let connection = tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let req = http::Request::get("https://localhost/x").body(()).unwrap();
    let (answer, _) = client.send_request(req, true).unwrap();
    assert_eq!(answer.await.unwrap().status(), 200);
    let idle_from = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(6), connection).await;
    assert!(ended.is_ok(), "an idle HTTP/2 connection stayed open 6 s");
    assert!(idle_from.elapsed() >= Duration::from_millis(900));
    assert!(closed(&proxy, "idle_timeout").await >= 1.0);

    // A body that stalls: the stream is reset, the backend never answers it.
    let tls = support::h2::tls_h2(proxy.addr, &ca).await;
    let (client, connection) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let req = http::Request::post("https://localhost/upload")
        .header("content-length", "1000")
        .body(())
        .unwrap();
    let (answer, mut body) = client.send_request(req, false).unwrap();
    body.send_data(Bytes::from_static(b"0123456789"), false)
        .unwrap();
    let start = Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(6), answer).await;
    let answer = answer.expect("a stalled HTTP/2 body was held 6 s");
    assert!(
        answer.as_ref().map_or(true, |r| r.status() == 408),
        "{answer:?}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    assert!(closed(&proxy, "body_timeout").await >= 1.0);
    let _ = std::fs::remove_dir_all(ca.parent().unwrap());
}
