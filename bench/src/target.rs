//! `--target URL --issuer-key PATH`: load a poolgate that is already running, with tokens
//! minted from the key its issuer's JWKS publishes. Nothing is started or stopped; no CPU or
//! memory figures (the process is not ours).

use std::time::Duration;

use http::HeaderValue;

use crate::cli::{Args, Scenario};
use crate::load::{self, LoadSpec, Mode};
use crate::report::{Machine, Report, Row, loadavg, ratios};
use crate::tokens::{Minter, par_map};
use crate::workload::{Req, Workload};

/// `http://host:port[/...]` → the socket address and the Host header.
async fn resolve(url: &str) -> Result<(std::net::SocketAddr, HeaderValue), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("`{url}`: only http:// targets are supported"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let with_port = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let addr = tokio::net::lookup_host(&with_port)
        .await
        .map_err(|e| format!("`{authority}`: {e}"))?
        .next()
        .ok_or_else(|| format!("`{authority}` resolves to nothing"))?;
    let host = HeaderValue::try_from(authority).map_err(|e| format!("`{authority}`: {e}"))?;
    Ok((addr, host))
}

pub async fn run(args: &Args, scenarios: &[Scenario], url: &str) -> Result<Report, String> {
    let started = poolgate_authorizer::testutil::unix_now();
    let before = loadavg();
    let sizes = args.sizes();
    let (addr, host) = resolve(url).await?;
    let key = args
        .issuer_key
        .as_deref()
        .ok_or("--target needs --issuer-key")?;
    let minter = Minter::from_key_file(key, &args.kid, &args.issuer, &args.client_id)?;
    let spec = |duration: f64, label: Option<&str>| LoadSpec {
        addr,
        host: host.clone(),
        connections: sizes.connections,
        duration: Duration::from_secs_f64(duration),
        mode: args.rate.map_or(Mode::Closed, Mode::Open),
        expect_all: None,
        label: label.map(str::to_owned),
    };
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let hot = tokio::task::block_in_place(|| {
        par_map(sizes.hot_tokens, |i| {
            Req::get(&args.path, Some(&minter.access(i)), 200)
        })
    });
    for s in scenarios {
        let workload = match s {
            Scenario::Hot => Workload::cycle(hot.clone()),
            Scenario::Cold => Workload::once(tokio::task::block_in_place(|| {
                par_map(sizes.cold_tokens, |i| {
                    Req::get(&args.path, Some(&minter.access(i)), 200)
                })
            })),
            other => {
                notes.push(format!(
                    "{}: needs the local issuer, backend and policy: skipped with --target",
                    other.name()
                ));
                continue;
            }
        };
        let _ = load::run(
            &spec(sizes.warmup_s.max(0.1), None),
            Workload::cycle(hot.clone()),
        )
        .await;
        let r = load::run(&spec(sizes.duration_s, Some(s.name())), workload).await;
        rows.push(Row::new(s.name(), &r, None));
    }
    ratios(&mut rows);
    notes.push(format!(
        "target {url}; tokens RS256 from {} (kid `{}`, iss `{}`, client `{}`), GET {}",
        key.display(),
        minter.kid(),
        minter.issuer,
        minter.client_id,
        args.path
    ));
    Ok(Report {
        started_unix: started,
        command: std::env::args().skip(1).collect::<Vec<_>>().join(" "),
        machine: Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            loadavg_before: before,
            loadavg_after: loadavg(),
            poolgate: "external".to_owned(),
            git_commit: String::new(),
        },
        method: vec!["external target: not started, not pinned, no CPU/RSS figures".to_owned()],
        sizes,
        rows,
        bars: Vec::new(),
        notes,
    })
}
