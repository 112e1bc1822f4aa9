//! A one-shot HTTP/1.1 GET for readiness polls and `/metrics` (not the load path).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// `GET path` on `addr`: the status and the body as text.
pub async fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let go = async {
        let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
        let driver = tokio::spawn(conn);
        let req = http::Request::get(path)
            .header(http::header::HOST, "bench.local")
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        driver.abort();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    };
    tokio::time::timeout(Duration::from_secs(5), go)
        .await
        .map_err(|_| "timed out".to_owned())?
}

/// The value of every sample of `metric` in a Prometheus text page, with its labels.
pub fn samples<'a>(page: &'a str, metric: &str) -> Vec<(&'a str, f64)> {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(metric)?;
            if !(rest.starts_with('{') || rest.starts_with(' ')) {
                return None;
            }
            let (labels, value) = rest.rsplit_once(' ')?;
            Some((labels.trim(), value.trim().parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_samples() {
        let page = "# HELP x\npoolgate_reloads_total{result=\"success\"} 3\n\
                    poolgate_reloads_total{result=\"failure\"} 0\npoolgate_reloads_totalx 9\n";
        let s = samples(page, "poolgate_reloads_total");
        assert_eq!(
            s,
            vec![("{result=\"success\"}", 3.0), ("{result=\"failure\"}", 0.0)]
        );
    }
}
