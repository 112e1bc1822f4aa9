//! Child processes the harness starts (poolgate, nginx, HAProxy): CPU pinning through the
//! `taskset` command, CPU time and peak RSS from `/proc`, readiness polling, and a kill on drop
//! so nothing outlives the run.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where the proxy and the load run: the method is printed with every report.
#[derive(Debug, Clone)]
pub struct Pinning {
    /// CPU list for the proxy under test (`taskset -c`), `None` when not pinned.
    pub proxy_cpus: Option<String>,
    /// CPU list of the harness itself (load generator and backend).
    pub load_cpus: Option<String>,
}

impl Pinning {
    /// Proxy on CPU 0, harness on the last CPU, when there are two or more CPUs and `taskset`
    /// exists; otherwise nothing is pinned.
    pub fn choose(enabled: bool) -> Pinning {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let have_taskset = Command::new("taskset")
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !enabled || cpus < 2 || !have_taskset {
            return Pinning {
                proxy_cpus: None,
                load_cpus: None,
            };
        }
        Pinning {
            proxy_cpus: Some("0".to_owned()),
            load_cpus: Some(if cpus == 2 {
                "1".to_owned()
            } else {
                format!("1-{}", cpus - 1)
            }),
        }
    }

    /// Pins every thread of this process (`taskset -a -p`); threads made later inherit it.
    pub fn pin_self(&self) -> Result<(), String> {
        let Some(cpus) = &self.load_cpus else {
            return Ok(());
        };
        let pid = std::process::id().to_string();
        let out = Command::new("taskset")
            .args(["-a", "-p", "-c", cpus, &pid])
            .stdout(Stdio::null())
            .output()
            .map_err(|e| format!("taskset: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// A command that runs `program` on the proxy CPUs.
    pub fn command(&self, program: &Path) -> Command {
        match &self.proxy_cpus {
            Some(cpus) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(cpus).arg(program);
                c
            }
            None => Command::new(program),
        }
    }

    pub fn describe(&self) -> String {
        match (&self.proxy_cpus, &self.load_cpus) {
            (Some(p), Some(l)) => format!(
                "proxy under test pinned to CPU {p} (`taskset -c {p}`, one worker thread where the proxy has the setting); \
                 load generator and backend pinned to CPU {l} (`taskset -a -p -c {l}` on the harness)"
            ),
            _ => "not pinned (fewer than 2 CPUs, no `taskset`, or --no-pin)".to_owned(),
        }
    }
}

/// A started child, killed (SIGKILL) when dropped.
pub struct Proc {
    pub name: String,
    pub child: Child,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Result<Proc, String> {
        let err = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        cmd.stdin(Stdio::null())
            // poolgate writes one access-log line per request to stdout: discarded, not measured away.
            .stdout(Stdio::null())
            .stderr(err);
        let child = cmd.spawn().map_err(|e| format!("starting {name}: {e}"))?;
        Ok(Proc {
            name: name.to_owned(),
            child,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(status)` if it has exited.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(s)) => Some(s.to_string()),
            _ => None,
        }
    }

    pub fn stats(&self) -> ProcStats {
        ProcStats::read(self.pid())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time and memory of a process from `/proc`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcStats {
    /// User + system CPU seconds since start.
    pub cpu_s: f64,
    /// Resident set now and its peak (`VmHWM`), in KiB.
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

impl ProcStats {
    pub fn read(pid: u32) -> ProcStats {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        ProcStats {
            cpu_s: cpu_seconds(&stat, clock_ticks()),
            rss_kib: status_kib(&status, "VmRSS:"),
            hwm_kib: status_kib(&status, "VmHWM:"),
        }
    }
}

/// utime + stime (fields 14 and 15 of `/proc/PID/stat`) in seconds. The command name (field 2)
/// may hold spaces and parentheses, so fields are counted after its closing `)`.
pub fn cpu_seconds(stat: &str, ticks: f64) -> f64 {
    let Some(rest) = stat.rfind(')').and_then(|i| stat.get(i + 1..)) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After `)`: field 3 (state) is index 0, so utime (14) is 11 and stime (15) is 12.
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (num(11) + num(12)) / ticks
}

/// A `kB` line of `/proc/PID/status`.
pub fn status_kib(status: &str, key: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// `getconf CLK_TCK` (100 on Linux unless told otherwise).
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|t: &f64| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// A port free on 127.0.0.1 right now (bound to port 0, then released) for a child's config.
pub fn free_addr() -> Result<SocketAddr, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    l.local_addr().map_err(|e| format!("bind: {e}"))
}

/// Polls `GET path` on `addr` until it answers `want` (any status when `None`).
pub async fn wait_http(
    addr: SocketAddr,
    path: &str,
    want: Option<u16>,
    proc: &mut Proc,
    timeout: Duration,
    log: &Path,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = proc.exited() {
            let tail = std::fs::read_to_string(log).unwrap_or_default();
            return Err(format!(
                "{} exited ({status}) before it was ready:\n{}",
                proc.name,
                tail.lines()
                    .rev()
                    .take(30)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n")
            ));
        }
        match crate::http_get(addr, path).await {
            Ok((status, _)) if want.is_none_or(|w| w == status) => return Ok(()),
            _ => {}
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{} not ready on {addr}{path} after {timeout:?} (log: {})",
                proc.name,
                log.display()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_seconds_skip_a_command_name_with_spaces() {
        let stat = "1234 (pool gate) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0";
        assert!((cpu_seconds(stat, 100.0) - 3.0).abs() < 1e-9);
        assert_eq!(cpu_seconds("garbage", 100.0), 0.0);
    }

    #[test]
    fn status_lines_in_kib() {
        let s = "Name:\tpoolgate\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(status_kib(s, "VmHWM:"), 20480);
        assert_eq!(status_kib(s, "VmRSS:"), 10240);
        assert_eq!(status_kib(s, "VmSwap:"), 0);
    }

    #[test]
    fn own_stats_are_read() {
        let s = ProcStats::read(std::process::id());
        assert!(s.hwm_kib > 0 && s.rss_kib > 0);
    }
}
