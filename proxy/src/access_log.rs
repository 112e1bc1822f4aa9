//! One JSON line per request. The token is never part of a line: only fields named here are.
//!
//! A request appends its line to one shared buffer (no allocation, no channel, no wake-up); a
//! writer thread swaps the buffer out every few milliseconds and writes it, so a slow reader
//! of standard output (a stalled container log pipe) never blocks request threads. When the
//! buffer holds more than [`BUFFER_LIMIT`] bytes, lines are dropped and counted instead. (A
//! writer woken per line cost a futex call and a context switch on the request's CPU: 8–19 µs
//! a request.)

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;

/// Bytes of lines waiting for the writer before new ones are dropped (about 20,000 lines).
const BUFFER_LIMIT: usize = 4 * 1024 * 1024;

/// How long the writer sleeps between swaps.
const WRITER_PAUSE: Duration = Duration::from_millis(10);

/// One access-log record.
#[derive(Debug, Serialize)]
pub struct AccessRecord<'a> {
    /// Unix time in milliseconds when the request head arrived.
    pub ts_ms: u128,
    pub request_id: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub route: &'a str,
    pub status: u16,
    /// `allow`, `deny` or `error` (upstream failure after an allow).
    pub decision: &'a str,
    pub reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<&'a str>,
    pub latency_ms: f64,
}

/// Where lines go.
#[derive(Clone, Default)]
pub enum AccessLog {
    /// Standard output through the writer thread (see [`AccessLog::stdout`]).
    Buffered(Arc<Shared>),
    #[default]
    Off,
    /// Kept in memory, for tests.
    Memory(Arc<Mutex<Vec<String>>>),
}

/// The buffer requests append to and the writer drains.
#[derive(Default)]
pub struct Shared {
    pending: Mutex<Vec<u8>>,
    dropped: AtomicU64,
    /// Held while a batch is written, so the writer and a final flush keep lines in order.
    output: Mutex<()>,
}

impl AccessLog {
    /// Standard output, one line per request, written by a dedicated thread.
    pub fn stdout() -> Self {
        let shared = Arc::new(Shared::default());
        let writer = Arc::downgrade(&shared);
        let spawned = std::thread::Builder::new()
            .name("access-log".to_owned())
            .spawn(move || write_lines(&writer, &mut std::io::stdout()));
        if spawned.is_err() {
            log::error!("cannot start the access-log thread; access log off");
            return AccessLog::Off;
        }
        AccessLog::Buffered(shared)
    }

    /// Writes the lines still waiting (the writer thread would within 10 ms): at exit.
    pub fn flush(&self) {
        if let AccessLog::Buffered(shared) = self {
            drain(shared, &mut Vec::new(), &mut std::io::stdout());
        }
    }

    /// Lines dropped because the writer could not keep up.
    pub fn dropped(&self) -> u64 {
        match self {
            AccessLog::Buffered(shared) => shared.dropped.load(Ordering::Relaxed),
            _ => 0,
        }
    }

    pub fn write(&self, record: &AccessRecord<'_>) {
        match self {
            AccessLog::Off => {}
            AccessLog::Buffered(shared) => {
                let mut pending = shared
                    .pending
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if pending.len() >= BUFFER_LIMIT {
                    shared.dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                let start = pending.len();
                if serde_json::to_writer(&mut *pending, record).is_ok() {
                    pending.push(b'\n');
                } else {
                    pending.truncate(start);
                }
            }
            AccessLog::Memory(lines) => {
                if let Ok(line) = serde_json::to_string(record)
                    && let Ok(mut lines) = lines.lock()
                {
                    lines.push(line);
                }
            }
        }
    }
}

/// The writer loop: swaps the pending lines out, writes them, sleeps; ends once every
/// `AccessLog` handle is gone (the process is stopping).
fn write_lines(shared: &std::sync::Weak<Shared>, out: &mut impl Write) {
    // Two buffers change places, so neither is reallocated in the steady state.
    let mut batch: Vec<u8> = Vec::new();
    loop {
        let Some(live) = shared.upgrade() else {
            return;
        };
        drain(&live, &mut batch, out);
        drop(live);
        std::thread::sleep(WRITER_PAUSE);
    }
}

/// Swaps the waiting lines into `batch` (emptied) and writes them to `out`.
fn drain(shared: &Shared, batch: &mut Vec<u8>, out: &mut impl Write) {
    let _writing = shared.output.lock().unwrap_or_else(PoisonError::into_inner);
    std::mem::swap(
        &mut *shared
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner),
        batch,
    );
    if !batch.is_empty() {
        let _ = out.write_all(batch);
        let _ = out.flush();
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_one_json_line_without_absent_fields() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let log = AccessLog::Memory(lines.clone());
        log.write(&AccessRecord {
            ts_ms: 1,
            request_id: "r1",
            method: "GET",
            path: "/a",
            route: "public",
            status: 200,
            decision: "allow",
            reason: "public",
            sub: None,
            upstream: Some("app"),
            latency_ms: 0.5,
        });
        let lines = lines.lock().unwrap();
        assert_eq!(lines.len(), 1);
        let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(v["request_id"], "r1");
        assert_eq!(v["status"], 200);
        assert!(v.get("sub").is_none());
        assert!(!lines[0].contains('\n'));
    }

    fn record(request_id: &str) -> AccessRecord<'_> {
        AccessRecord {
            ts_ms: 0,
            request_id,
            method: "GET",
            path: "/",
            route: "-",
            status: 200,
            decision: "allow",
            reason: "public",
            sub: None,
            upstream: None,
            latency_ms: 0.0,
        }
    }

    /// A writer on `out`, as `stdout()` starts one.
    fn buffered(out: Arc<Mutex<Vec<u8>>>) -> (AccessLog, std::thread::JoinHandle<()>) {
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl Write for Sink {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let shared = Arc::new(Shared::default());
        let weak = Arc::downgrade(&shared);
        let writer = std::thread::spawn(move || write_lines(&weak, &mut Sink(out)));
        (AccessLog::Buffered(shared), writer)
    }

    #[test]
    fn the_writer_writes_every_line_in_order_and_ends_after_the_last_handle() {
        let out = Arc::new(Mutex::new(Vec::new()));
        let (log, writer) = buffered(out.clone());
        let copy = log.clone();
        for i in 0..3 {
            copy.write(&record(&format!("r{i}")));
        }
        drop(copy);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while out.lock().unwrap().iter().filter(|b| **b == b'\n').count() < 3 {
            assert!(std::time::Instant::now() < deadline, "lines never written");
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(log);
        writer.join().unwrap();
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        let ids: Vec<String> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["request_id"].to_string()
            })
            .collect();
        assert_eq!(ids, ["\"r0\"", "\"r1\"", "\"r2\""]);
    }

    #[test]
    fn a_drain_writes_what_is_waiting_and_leaves_nothing() {
        let shared = Shared::default();
        let log = AccessLog::Buffered(Arc::new(shared));
        log.write(&record("a"));
        log.write(&record("b"));
        let AccessLog::Buffered(shared) = &log else {
            unreachable!()
        };
        let mut out = Vec::new();
        drain(shared, &mut Vec::new(), &mut out);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(
            text.lines()
                .next()
                .unwrap()
                .contains("\"request_id\":\"a\"")
        );
        assert!(shared.pending.lock().unwrap().is_empty());
        let mut again = Vec::new();
        drain(shared, &mut Vec::new(), &mut again);
        assert!(again.is_empty());
    }

    #[test]
    fn a_full_buffer_drops_and_counts_instead_of_growing() {
        // No writer: nothing drains the buffer.
        let log = AccessLog::Buffered(Arc::new(Shared::default()));
        let line_len = serde_json::to_string(&record("r")).unwrap().len() + 1;
        let fit = BUFFER_LIMIT.div_ceil(line_len);
        for _ in 0..fit + 5 {
            log.write(&record("r"));
        }
        assert_eq!(log.dropped(), 5);
        if let AccessLog::Buffered(shared) = &log {
            assert!(shared.pending.lock().unwrap().len() < BUFFER_LIMIT + line_len);
        }
    }
}
