//! The command line.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

use crate::peers::Peer;

/// Load-tests poolgate side by side with its backend, a pass-through and peers.
///
/// Example: `cargo run --release -p poolgate-bench -- hot --peer nginx --peer haproxy`
#[derive(Debug, Parser)]
#[command(name = "poolgate-bench", version)]
pub struct Args {
    /// Scenarios to run; the backend alone and poolgate with every route public are always
    /// measured first, in the same run, as the references of the ratios.
    #[arg(value_enum, required = true)]
    pub scenarios: Vec<Scenario>,

    /// Seconds of measured load per target.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of unmeasured load first (connections open, token cache warm).
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Keep-alive connections of the load generator.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Worker threads of the harness runtime (load generator, backend and issuer).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Open loop at this many requests per second (latency from the intended send time);
    /// closed loop when absent.
    #[arg(long)]
    pub rate: Option<f64>,

    /// Measure every target this many times, interleaved, and keep each one's best round
    /// (a shared machine disturbs some rounds).
    #[arg(long, default_value_t = 1)]
    pub rounds: u32,

    /// Peers to run side by side (`nginx`: pass-through; `haproxy`: jwt_verify per request).
    #[arg(long = "peer", value_enum)]
    pub peers: Vec<Peer>,

    /// The poolgate binary (default: `poolgate` beside this binary).
    #[arg(long)]
    pub poolgate: Option<PathBuf>,
    /// A second poolgate binary measured as pass-through too (before/after a build change).
    #[arg(long)]
    pub baseline_poolgate: Option<PathBuf>,
    /// Do not pin the proxy and the harness to separate CPUs.
    #[arg(long)]
    pub no_pin: bool,

    /// A few seconds per scenario and fewer tokens: for CI, so the harness cannot rot.
    #[arg(long)]
    pub smoke: bool,
    /// Where the JSON result goes (default `bench/results/`; `bench/results/smoke/` with --smoke).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Distinct new tokens minted for `cold` (the run ends early when they are used up).
    #[arg(long)]
    pub cold_tokens: Option<usize>,
    /// Distinct tokens sent once each for `cache` (default 100,000).
    #[arg(long)]
    pub cache_tokens: Option<usize>,
    /// Keep the working directory (policy files, peer configs, logs).
    #[arg(long)]
    pub keep: bool,

    /// Load an already-running poolgate instead of starting one (e.g. `http://127.0.0.1:8080`).
    #[arg(long, requires = "issuer_key")]
    pub target: Option<String>,
    /// PEM RSA private key to mint with for --target (PKCS#8 or PKCS#1).
    #[arg(long)]
    pub issuer_key: Option<PathBuf>,
    /// `kid` the target's JWKS publishes for --issuer-key.
    #[arg(long, default_value = "bench-1")]
    pub kid: String,
    /// `iss` of minted tokens for --target.
    #[arg(long, default_value = "http://127.0.0.1:9229/demo-pool")]
    pub issuer: String,
    /// `client_id` of minted tokens for --target.
    #[arg(long, default_value = "demo-client")]
    pub client_id: String,
    /// Path requested on --target (tokens are for users in readers/editors/admin groups).
    #[arg(long, default_value = "/articles/1")]
    pub path: String,
}

/// What a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// Every route public: the proxy's own ceiling.
    Passthrough,
    /// 1,000 valid tokens, warm token cache.
    Hot,
    /// `hot` on a route that also sends the ALB-compatible signed identity.
    Signed,
    /// Every request carries a token never seen before.
    Cold,
    /// 70 % allowed, 15 % forbidden (403), 10 % invalid (401), 5 % unknown kid (401).
    Mixed,
    /// The issuer publishes a new key and signs with it mid-run, then drops the old one.
    Rotation,
    /// The policy file is rewritten every second.
    Reload,
    /// A policy with 10,000 routes.
    Routes,
    /// 100,000 distinct tokens cached: the proxy's memory.
    Cache,
    /// Every scenario above.
    All,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Passthrough => "passthrough",
            Scenario::Hot => "hot",
            Scenario::Signed => "signed",
            Scenario::Cold => "cold",
            Scenario::Mixed => "mixed",
            Scenario::Rotation => "rotation",
            Scenario::Reload => "reload",
            Scenario::Routes => "routes",
            Scenario::Cache => "cache",
            Scenario::All => "all",
        }
    }

    /// The scenarios named, `all` expanded, in a fixed order, once each.
    pub fn expand(list: &[Scenario]) -> Vec<Scenario> {
        let mut v: Vec<Scenario> = if list.contains(&Scenario::All) {
            vec![
                Scenario::Passthrough,
                Scenario::Hot,
                Scenario::Signed,
                Scenario::Cold,
                Scenario::Mixed,
                Scenario::Rotation,
                Scenario::Reload,
                Scenario::Routes,
                Scenario::Cache,
            ]
        } else {
            list.to_vec()
        };
        v.sort();
        v.dedup();
        v
    }
}

/// Sizes of one run, after --smoke.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Sizes {
    pub duration_s: f64,
    pub warmup_s: f64,
    pub connections: usize,
    pub hot_tokens: usize,
    pub cold_tokens: usize,
    pub cache_tokens: usize,
    pub routes: usize,
}

impl Args {
    pub fn sizes(&self) -> Sizes {
        if self.smoke {
            Sizes {
                duration_s: 2.0,
                warmup_s: 0.5,
                connections: self.connections.min(16),
                hot_tokens: 1000,
                cold_tokens: self.cold_tokens.unwrap_or(1500),
                cache_tokens: self.cache_tokens.unwrap_or(3000),
                routes: 10_000,
            }
        } else {
            Sizes {
                duration_s: self.duration,
                warmup_s: self.warmup,
                connections: self.connections,
                hot_tokens: 1000,
                cold_tokens: self.cold_tokens.unwrap_or(20_000),
                cache_tokens: self.cache_tokens.unwrap_or(100_000),
                routes: 10_000,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_expands_in_order_once() {
        let v = Scenario::expand(&[Scenario::Hot, Scenario::All, Scenario::Hot]);
        assert_eq!(v.len(), 9);
        assert_eq!(v.first(), Some(&Scenario::Passthrough));
        assert!(!v.contains(&Scenario::All));
        assert_eq!(
            Scenario::expand(&[Scenario::Cold, Scenario::Hot]),
            [Scenario::Hot, Scenario::Cold]
        );
    }

    #[test]
    fn smoke_is_small() {
        let a = Args::parse_from(["poolgate-bench", "all", "--smoke"]);
        let s = a.sizes();
        assert!(s.duration_s <= 2.0 && s.cold_tokens < 5000);
        assert!(Args::try_parse_from(["poolgate-bench", "hot", "--target", "http://x"]).is_err());
    }
}
