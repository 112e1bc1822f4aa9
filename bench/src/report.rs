//! The results: one row per measured target, ratios to the backend and to the pass-through of
//! the same run, the bars checked against them, as a Markdown table and as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::load::LoadResult;
use crate::process::ProcStats;

/// One measured target.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// `backend`, `passthrough`, `nginx`, `haproxy`, or a scenario name.
    pub name: String,
    pub requests: u64,
    pub seconds: f64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub statuses: BTreeMap<u16, u64>,
    pub io_errors: u64,
    /// `expected->got` counts.
    pub unexpected: BTreeMap<String, u64>,
    /// The proxy process during the measured load (none for `backend`).
    pub cpu_s: Option<f64>,
    pub rss_mib: Option<f64>,
    pub peak_rss_mib: Option<f64>,
    /// Ratios of requests/s.
    pub x_backend: Option<f64>,
    pub x_passthrough: Option<f64>,
    pub notes: Vec<String>,
    /// Rounds measured; the row is the best of them (`--rounds`).
    pub rounds: u32,
}

impl Row {
    pub fn new(name: &str, r: &LoadResult, proxy: Option<(ProcStats, ProcStats)>) -> Row {
        let mib = |kib: u64| kib as f64 / 1024.0;
        Row {
            name: name.to_owned(),
            requests: r.requests,
            seconds: r.elapsed.as_secs_f64(),
            rps: r.rps(),
            p50_ms: r.ms(0.5),
            p90_ms: r.ms(0.9),
            p99_ms: r.ms(0.99),
            p999_ms: r.ms(0.999),
            max_ms: r.hist.max() as f64 / 1000.0,
            statuses: r.statuses.clone(),
            io_errors: r.io_errors,
            unexpected: r.unexpected.clone(),
            cpu_s: proxy.map(|(a, b)| (b.cpu_s - a.cpu_s).max(0.0)),
            rss_mib: proxy.map(|(_, b)| mib(b.rss_kib)),
            peak_rss_mib: proxy.map(|(_, b)| mib(b.hwm_kib)),
            x_backend: None,
            x_passthrough: None,
            notes: Vec::new(),
            rounds: 1,
        }
    }

    /// Proxy CPU time per request in microseconds: less disturbed by a busy machine than
    /// requests/s, since time spent waiting for the CPU is not counted.
    pub fn cpu_us_per_req(&self) -> Option<f64> {
        self.cpu_s
            .filter(|_| self.requests > 0)
            .map(|c| c * 1e6 / self.requests as f64)
    }

    pub fn unexpected_total(&self) -> u64 {
        self.unexpected.values().sum::<u64>() + self.io_errors
    }

    /// CPU seconds per wall second of the measured window (1.0 = one core busy).
    pub fn cpu_share(&self) -> Option<f64> {
        self.cpu_s.map(|c| {
            if self.seconds > 0.0 {
                c / self.seconds
            } else {
                0.0
            }
        })
    }
}

/// A bar of the issue and how this run did.
#[derive(Debug, Clone, Serialize)]
pub struct Bar {
    pub bar: String,
    pub figure: String,
    /// `None` when this run did not measure it.
    pub met: Option<bool>,
}

/// A whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub started_unix: u64,
    pub command: String,
    pub machine: Machine,
    pub method: Vec<String>,
    pub sizes: crate::cli::Sizes,
    pub rows: Vec<Row>,
    pub bars: Vec<Bar>,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpus: usize,
    /// `/proc/loadavg` before and after the run (other work on the machine skews figures).
    pub loadavg_before: String,
    pub loadavg_after: String,
    pub poolgate: String,
    pub git_commit: String,
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Fills the ratio columns from the rows named `backend` and `passthrough`.
pub fn ratios(rows: &mut [Row]) {
    let rps = |name: &str, rows: &[Row]| {
        rows.iter()
            .find(|r| r.name == name)
            .map(|r| r.rps)
            .filter(|v| *v > 0.0)
    };
    let (b, p) = (rps("backend", rows), rps("passthrough", rows));
    for r in rows.iter_mut() {
        r.x_backend = b.map(|b| r.rps / b);
        r.x_passthrough = p.map(|p| r.rps / p);
    }
}

fn f(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v:.digits$}"))
}

pub fn markdown(rep: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "### poolgate-bench: {}\n\n| target | req/s | × backend | × passthrough | p50 ms | p90 ms | p99 ms | p99.9 ms | statuses | unexpected | proxy CPU s (cores) | CPU µs/req | RSS / peak MiB |\n|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|",
        rep.command
    );
    for r in &rep.rows {
        let statuses = r
            .statuses
            .iter()
            .map(|(k, v)| format!("{k}×{v}"))
            .collect::<Vec<_>>()
            .join(" ");
        let cpu = match (r.cpu_s, r.cpu_share()) {
            (Some(c), Some(sh)) => format!("{c:.2} ({sh:.2})"),
            _ => "–".to_owned(),
        };
        let rss = match (r.rss_mib, r.peak_rss_mib) {
            (Some(a), Some(b)) => format!("{a:.1} / {b:.1}"),
            _ => "–".to_owned(),
        };
        let _ = writeln!(
            s,
            "| {} | {:.0} | {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {} | {} | {} | {} | {} |",
            r.name,
            r.rps,
            f(r.x_backend, 2),
            f(r.x_passthrough, 2),
            r.p50_ms,
            r.p90_ms,
            r.p99_ms,
            r.p999_ms,
            statuses,
            r.unexpected_total(),
            cpu,
            f(r.cpu_us_per_req(), 1),
            rss
        );
    }
    if !rep.bars.is_empty() {
        let _ = writeln!(s, "\n| bar | this run | met |\n|---|---|---|");
        for b in &rep.bars {
            let met = match b.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "not measured",
            };
            let _ = writeln!(s, "| {} | {} | {} |", b.bar, b.figure, met);
        }
    }
    let _ = writeln!(
        s,
        "\nMachine: {} CPUs, load average {} before, {} after; poolgate {}; commit {}.",
        rep.machine.cpus,
        rep.machine.loadavg_before,
        rep.machine.loadavg_after,
        rep.machine.poolgate,
        rep.machine.git_commit
    );
    for m in &rep.method {
        let _ = writeln!(s, "- {m}");
    }
    for r in &rep.rows {
        for n in &r.notes {
            let _ = writeln!(s, "- {}: {n}", r.name);
        }
    }
    for n in &rep.notes {
        let _ = writeln!(s, "- {n}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, rps: f64) -> Row {
        Row {
            name: name.into(),
            requests: 1,
            seconds: 1.0,
            rps,
            p50_ms: 1.0,
            p90_ms: 1.0,
            p99_ms: 1.0,
            p999_ms: 1.0,
            max_ms: 1.0,
            statuses: BTreeMap::from([(200, 1)]),
            io_errors: 0,
            unexpected: BTreeMap::new(),
            cpu_s: Some(0.5),
            rss_mib: Some(10.0),
            peak_rss_mib: Some(12.0),
            x_backend: None,
            x_passthrough: None,
            notes: vec![],
            rounds: 1,
        }
    }

    #[test]
    fn ratios_and_table() {
        let mut rows = vec![
            row("backend", 100.0),
            row("passthrough", 50.0),
            row("hot", 45.0),
        ];
        ratios(&mut rows);
        assert_eq!(rows.get(2).and_then(|r| r.x_passthrough), Some(0.9));
        assert_eq!(rows.get(2).and_then(|r| r.x_backend), Some(0.45));
        let rep = Report {
            started_unix: 0,
            command: "hot".into(),
            machine: Machine {
                cpus: 2,
                loadavg_before: "1 1 1".into(),
                loadavg_after: "1 1 1".into(),
                poolgate: "x".into(),
                git_commit: "abc".into(),
            },
            method: vec!["pinned".into()],
            sizes: crate::cli::Sizes {
                duration_s: 1.0,
                warmup_s: 0.0,
                connections: 1,
                hot_tokens: 1,
                cold_tokens: 1,
                cache_tokens: 1,
                routes: 1,
            },
            rows,
            bars: vec![Bar {
                bar: "hot ≥ 0.9× passthrough".into(),
                figure: "0.90×".into(),
                met: Some(true),
            }],
            notes: vec![],
        };
        let md = markdown(&rep);
        assert!(md.contains("| hot | 45 | 0.45 | 0.90 |"), "{md}");
        assert!(md.contains("| hot ≥ 0.9× passthrough | 0.90× | yes |"));
        assert!(md.contains("0.50 (0.50) | 500000.0 |"), "{md}");
    }
}
