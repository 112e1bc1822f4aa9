//! The load generator: HTTP/1.1 keep-alive connections on tokio/hyper, closed-loop (each
//! connection sends its next request when the previous answer is in) or open-loop (a fixed
//! request rate; latency counts from the intended send time, so a stall is charged to every
//! request it delayed rather than hidden, as wrk2 does against coordinated omission).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http::header::{AUTHORIZATION, HOST};
use http::{HeaderValue, Request};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::net::TcpStream;

use crate::workload::Workload;

/// Closed or open loop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    Closed,
    /// Requests per second over all connections.
    Open(f64),
}

/// How to load one target.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub addr: SocketAddr,
    pub host: HeaderValue,
    pub connections: usize,
    pub duration: Duration,
    pub mode: Mode,
    /// Count every status but this one as unexpected, whatever each request expects
    /// (targets without authorization: the backend, a pass-through, nginx).
    pub expect_all: Option<u16>,
    /// Shown beside the progress bar; no bar when `None` or the run is short.
    pub label: Option<String>,
}

/// What one load run measured.
#[derive(Debug, Clone)]
pub struct LoadResult {
    pub requests: u64,
    pub elapsed: Duration,
    /// Latency in microseconds.
    pub hist: Histogram<u64>,
    pub statuses: BTreeMap<u16, u64>,
    /// Connect, send or receive failures (no status).
    pub io_errors: u64,
    /// Answers whose status was not the expected one, by `expected->got`.
    pub unexpected: BTreeMap<String, u64>,
}

impl LoadResult {
    fn empty() -> LoadResult {
        LoadResult {
            requests: 0,
            elapsed: Duration::ZERO,
            hist: new_hist(),
            statuses: BTreeMap::new(),
            io_errors: 0,
            unexpected: BTreeMap::new(),
        }
    }

    fn merge(&mut self, other: &LoadResult) {
        self.requests += other.requests;
        let _ = self.hist.add(&other.hist);
        for (k, v) in &other.statuses {
            *self.statuses.entry(*k).or_default() += v;
        }
        for (k, v) in &other.unexpected {
            *self.unexpected.entry(k.clone()).or_default() += v;
        }
        self.io_errors += other.io_errors;
    }

    pub fn rps(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.requests as f64 / s
        } else {
            0.0
        }
    }

    /// Latency at quantile `q` in milliseconds.
    pub fn ms(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }
}

#[allow(clippy::expect_used)] // constant, valid bounds: hdrhistogram cannot reject them
fn new_hist() -> Histogram<u64> {
    // 1 µs to 60 s at 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// Runs the load and merges every connection's figures.
pub async fn run(spec: &LoadSpec, workload: Arc<Workload>) -> LoadResult {
    let start = Instant::now();
    let end = start + spec.duration;
    let done = Arc::new(AtomicU64::new(0));
    let bar = progress(spec, done.clone());
    let conns = spec.connections.max(1);
    let mut tasks = Vec::with_capacity(conns);
    for i in 0..conns {
        let pace = match spec.mode {
            Mode::Closed => None,
            Mode::Open(rate) if rate > 0.0 => {
                let interval = Duration::from_secs_f64(conns as f64 / rate);
                // Stagger the connections over one interval so they do not send in bursts.
                Some((interval, start + interval.mul_f64(i as f64 / conns as f64)))
            }
            Mode::Open(_) => None,
        };
        tasks.push(tokio::spawn(connection(
            spec.clone(),
            workload.clone(),
            end,
            pace,
            done.clone(),
        )));
    }
    let mut total = LoadResult::empty();
    for t in tasks {
        if let Ok(r) = t.await {
            total.merge(&r);
        }
    }
    // Until the last answer: a send-once list can end the run early.
    total.elapsed = start.elapsed();
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    total
}

fn progress(spec: &LoadSpec, done: Arc<AtomicU64>) -> Option<ProgressBar> {
    let label = spec.label.clone()?;
    if spec.duration < Duration::from_secs(4) {
        return None;
    }
    let ms = u64::try_from(spec.duration.as_millis()).unwrap_or(u64::MAX);
    let bar = ProgressBar::new(ms);
    if let Ok(style) =
        ProgressStyle::with_template("{prefix:>24} [{bar:30}] {elapsed}/{duration} {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(label);
    let b = bar.clone();
    let start = Instant::now();
    tokio::spawn(async move {
        while !b.is_finished() {
            let el = start.elapsed();
            b.set_position(u64::try_from(el.as_millis()).unwrap_or(u64::MAX));
            let n = done.load(Ordering::Relaxed);
            b.set_message(format!(
                "{n} req, {:.0} req/s",
                n as f64 / el.as_secs_f64().max(1e-3)
            ));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    Some(bar)
}

/// One keep-alive connection, reopened after a failure, until `end` or the workload runs out.
async fn connection(
    spec: LoadSpec,
    workload: Arc<Workload>,
    end: Instant,
    pace: Option<(Duration, Instant)>,
    done: Arc<AtomicU64>,
) -> LoadResult {
    let mut r = LoadResult::empty();
    let mut intended = pace.map(|(_, first)| first);
    'connect: while Instant::now() < end {
        let Ok(stream) = TcpStream::connect(spec.addr).await else {
            r.io_errors += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let Ok((mut sender, conn)) =
            http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream)).await
        else {
            r.io_errors += 1;
            continue;
        };
        let driver = tokio::spawn(conn);
        loop {
            // Open loop: wait for the intended send time; latency is counted from it.
            let from = match (pace, intended) {
                (Some((interval, _)), Some(at)) => {
                    if at >= end {
                        break 'connect;
                    }
                    tokio::time::sleep_until(at.into()).await;
                    intended = Some(at + interval);
                    at
                }
                _ => Instant::now(),
            };
            if from >= end {
                break 'connect;
            }
            let Some(req) = workload.next() else {
                break 'connect;
            };
            if sender.ready().await.is_err() {
                r.io_errors += 1;
                driver.abort();
                continue 'connect;
            }
            let mut builder = Request::builder()
                .method(req.method.clone())
                .uri(req.uri.clone())
                .header(HOST, spec.host.clone());
            if let Some(a) = &req.auth {
                builder = builder.header(AUTHORIZATION, a.clone());
            }
            let Ok(request) = builder.body(Empty::new()) else {
                r.io_errors += 1;
                continue;
            };
            let status = match sender.send_request(request).await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let close = resp
                        .headers()
                        .get(http::header::CONNECTION)
                        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
                    match resp.into_body().collect().await {
                        Ok(_) => Some((status, close)),
                        Err(_) => None,
                    }
                }
                Err(_) => None,
            };
            let Some((status, close)) = status else {
                r.io_errors += 1;
                driver.abort();
                continue 'connect;
            };
            let latency = from.elapsed();
            r.requests += 1;
            done.fetch_add(1, Ordering::Relaxed);
            r.hist.saturating_record(
                u64::try_from(latency.as_micros())
                    .unwrap_or(u64::MAX)
                    .max(1),
            );
            *r.statuses.entry(status).or_default() += 1;
            let expect = spec.expect_all.unwrap_or(req.expect);
            if status != expect {
                *r.unexpected
                    .entry(format!("{expect}->{status}"))
                    .or_default() += 1;
            }
            if close {
                driver.abort();
                continue 'connect;
            }
        }
    }
    r
}
