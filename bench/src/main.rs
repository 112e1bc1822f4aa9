//! poolgate-bench: the load-testing harness.
//!
//! One command runs a scenario end to end on one machine: a local issuer (the authorizer's
//! test-util), a fast backend and poolgate on ephemeral ports, tokens for many users across
//! groups, load from its own tokio/hyper generator, and a Markdown table (stdout) plus a JSON
//! file (`bench/results/`) with ratios to the backend and to a pass-through measured in the same
//! run, and to nginx and HAProxy when asked:
//!
//! ```text
//! cargo build --release -p poolgate-proxy
//! cargo run --release -p poolgate-bench -- hot --peer nginx --peer haproxy
//! ```
//!
//! See `bench/README.md` for the method and the figures.

mod backend;
mod cli;
mod client;
mod load;
mod peers;
mod policy;
mod process;
mod report;
mod run;
mod target;
mod tokens;
mod tokensets;
mod workload;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

pub use client::http_get;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(&format!("tokio runtime: {e}")),
    };
    let scenarios = cli::Scenario::expand(&args.scenarios);
    let report = runtime.block_on(async {
        match &args.target {
            Some(url) => target::run(&args, &scenarios, url).await,
            None => {
                let bin = poolgate_binary(&args)?;
                run::local(&args, &scenarios, bin).await
            }
        }
    });
    let report = match report {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    print!("{}", report::markdown(&report));
    match save(&args, &report) {
        Ok(path) => eprintln!("results: {}", path.display()),
        Err(e) => return fail(&e),
    }
    if args.smoke {
        let bad: Vec<String> = report
            .rows
            .iter()
            .filter(|r| r.requests == 0 || r.unexpected_total() > 0)
            .map(|r| {
                format!(
                    "{} ({} requests, {} unexpected)",
                    r.name,
                    r.requests,
                    r.unexpected_total()
                )
            })
            .collect();
        if !bad.is_empty() {
            return fail(&format!("smoke: {}", bad.join(", ")));
        }
    }
    ExitCode::SUCCESS
}

fn poolgate_binary(args: &cli::Args) -> Result<PathBuf, String> {
    if let Some(p) = &args.poolgate {
        return Ok(p.clone());
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("poolgate")));
    match beside {
        Some(p) if p.is_file() => Ok(p),
        _ => Err("no `poolgate` binary beside poolgate-bench: run `cargo build --release -p poolgate-proxy` first (same profile and target dir), or pass --poolgate PATH".to_owned()),
    }
}

fn save(args: &cli::Args, report: &report::Report) -> Result<PathBuf, String> {
    let dir = match &args.out {
        Some(d) => d.clone(),
        None if args.smoke => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("results/smoke"),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("results"),
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let names: Vec<&str> = cli::Scenario::expand(&args.scenarios)
        .iter()
        .map(|s| s.name())
        .collect();
    let path = dir.join(format!("{}-{}.json", names.join("+"), report.started_unix));
    let text = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
    std::fs::write(&path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(1)
}
