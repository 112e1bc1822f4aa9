//! The `poolgate` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use poolgate_proxy::access_log::AccessLog;
use poolgate_proxy::config::{ListenerSpec, ProxyConfig, RouteSpec, UpstreamSpec};

#[derive(Parser)]
#[command(
    name = "poolgate",
    version,
    about = "Edge authorizer and reverse proxy for Amazon Cognito user pools"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy on a policy file.
    Run {
        #[arg(short, long)]
        config: PathBuf,
        /// Take the listening sockets over from a running instance (graceful upgrade).
        #[arg(long)]
        upgrade: bool,
    },
    /// Validate a policy file and print every problem.
    Check {
        #[arg(short, long)]
        config: PathBuf,
        #[arg(long, default_value = "human")]
        format: String,
    },
    /// Show the route, roles and decision for one request.
    Explain {
        #[arg(short, long)]
        config: PathBuf,
        #[arg(long)]
        method: String,
        #[arg(long)]
        path: String,
        #[arg(long)]
        token: Option<String>,
        #[arg(long)]
        claims: Option<String>,
    },
    /// Local issuer, demo backend and proxy in one process.
    Demo,
    /// Mint a token from the demo issuer's key.
    Token {
        #[arg(long)]
        user: String,
        #[arg(long, default_value = "")]
        groups: String,
        #[arg(long)]
        scopes: Option<String>,
    },
    /// Forward every request to one upstream without authorization (benchmark baseline).
    #[command(hide = true)]
    Passthrough {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long)]
        upstream: String,
        #[arg(long)]
        admin: Option<SocketAddr>,
        #[arg(long, default_value_t = 1)]
        threads: usize,
        #[arg(long)]
        no_access_log: bool,
    },
}

fn main() -> ExitCode {
    // First thing: pick rustls's crypto provider before anything builds a TLS config.
    poolgate_proxy::server::install_crypto_provider();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    match Cli::parse().command {
        Command::Passthrough {
            listen,
            upstream,
            admin,
            threads,
            no_access_log,
        } => {
            let mut cfg = ProxyConfig {
                listeners: vec![ListenerSpec {
                    address: listen,
                    tls: None,
                }],
                admin,
                upstreams: vec![UpstreamSpec::new("upstream", vec![upstream])],
                routes: vec![RouteSpec {
                    name: "all".into(),
                    host: None,
                    path_prefix: "/".into(),
                    upstream: "upstream".into(),
                    public: true,
                }],
                ..ProxyConfig::default()
            };
            cfg.server.threads = threads;
            let log = if no_access_log {
                AccessLog::Off
            } else {
                AccessLog::Stdout
            };
            match poolgate_proxy::prepare(&cfg, log) {
                Ok(p) => p.server.run_forever(),
                Err(e) => fail(&e.to_string()),
            }
        }
        Command::Run { .. } => fail(
            "`run` needs the policy file loader (poolgate-policies), which is not wired in yet",
        ),
        Command::Check { .. } => fail(
            "`check` needs the policy file loader (poolgate-policies), which is not wired in yet",
        ),
        Command::Explain { .. } => {
            fail("`explain` needs the policy engine (poolgate-policies), which is not wired in yet")
        }
        Command::Demo => fail(
            "`demo` needs the authorizer's test issuer and the policy engine, which are not wired in yet",
        ),
        Command::Token { .. } => {
            fail("`token` needs the authorizer's token minting, which is not wired in yet")
        }
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}
