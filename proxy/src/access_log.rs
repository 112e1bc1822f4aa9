//! One JSON line per request. The token is never part of a line: only fields named here are.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde::Serialize;

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
    /// Standard output, one line per request (the default for containers).
    #[default]
    Stdout,
    Off,
    /// Kept in memory, for tests.
    Memory(Arc<Mutex<Vec<String>>>),
}

impl AccessLog {
    pub fn write(&self, record: &AccessRecord<'_>) {
        if matches!(self, AccessLog::Off) {
            return;
        }
        let Ok(line) = serde_json::to_string(record) else {
            return;
        };
        match self {
            AccessLog::Stdout => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
            }
            AccessLog::Memory(lines) => {
                if let Ok(mut lines) = lines.lock() {
                    lines.push(line);
                }
            }
            AccessLog::Off => {}
        }
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
}
