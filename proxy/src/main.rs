//! The `poolgate` command line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use poolgate_proxy::access_log::AccessLog;
use poolgate_proxy::{StartOptions, convert, explain};

// A proxy allocates and frees many small buffers per request; glibc's malloc showed up at
// about a fifth of CPU samples in profiles, mimalloc is much cheaper for this pattern.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Human,
    Json,
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
    /// Validate a policy file and print every problem (exit 0 clean, 1 not).
    Check {
        #[arg(short, long)]
        config: PathBuf,
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
    },
    /// Show the route, roles and decision for one request.
    Explain {
        #[arg(short, long)]
        config: PathBuf,
        #[arg(long, default_value = "GET")]
        method: String,
        #[arg(long)]
        path: String,
        #[arg(long, default_value = "localhost")]
        host: String,
        /// A token whose claims to use (decoded, not verified).
        #[arg(long, conflicts_with = "claims")]
        token: Option<String>,
        /// Claims as a JSON object.
        #[arg(long)]
        claims: Option<String>,
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
    },
    /// Local issuer, demo backend and proxy in one process.
    Demo,
    /// Mint a token from the running demo issuer's key (asks `poolgate demo`'s token endpoint).
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
        Command::Run { config, upgrade } => run(&config, upgrade),
        Command::Check { config, format } => check(&config, format),
        Command::Explain {
            config,
            method,
            path,
            host,
            token,
            claims,
            format,
        } => explain_cmd(
            &config,
            &host,
            &method,
            &path,
            token.as_deref(),
            claims.as_deref(),
            format,
        ),
        Command::Passthrough {
            listen,
            upstream,
            admin,
            threads,
            no_access_log,
        } => passthrough(listen, &upstream, admin, threads, no_access_log),
        Command::Demo => demo(),
        Command::Token {
            user,
            groups,
            scopes,
        } => token(&user, &groups, scopes.as_deref()),
    }
}

fn load(path: &Path) -> Result<poolgate_policies::Config, ExitCode> {
    poolgate_policies::load(path).map_err(|d| {
        eprintln!("{d}");
        ExitCode::from(1)
    })
}

fn run(path: &Path, upgrade: bool) -> ExitCode {
    let policy = match load(path) {
        Ok(p) => Arc::new(p),
        Err(code) => return code,
    };
    if !policy.warnings.is_empty() {
        eprintln!("{}", policy.warnings);
    }
    let mut cfg = convert::proxy_config(policy.clone());
    cfg.server.upgrade = upgrade;
    let listeners: Vec<String> = cfg
        .listeners
        .iter()
        .map(|l| {
            format!(
                "{}{}",
                if l.tls.is_some() {
                    "https://"
                } else {
                    "http://"
                },
                l.address
            )
        })
        .collect();
    eprintln!(
        "poolgate {}: {} routes, {} upstreams, {} issuers; listening on {}{}",
        env!("CARGO_PKG_VERSION"),
        policy.routes.len(),
        policy.upstreams.len(),
        policy.issuers.len(),
        listeners.join(", "),
        cfg.admin
            .map(|a| format!("; admin on http://{a}"))
            .unwrap_or_default()
    );
    let opts = StartOptions {
        access_log: match policy.server.access_log {
            poolgate_policies::AccessLogTarget::Stdout => AccessLog::stdout(),
            poolgate_policies::AccessLogTarget::Off => AccessLog::Off,
        },
        reload_from: Some(path.to_path_buf()),
        ..StartOptions::default()
    };
    match poolgate_proxy::prepare(&cfg, opts) {
        Ok(p) => p.run_until_stopped(),
        Err(e) => fail(&e.to_string()),
    }
}

fn check(path: &Path, format: Format) -> ExitCode {
    match (poolgate_policies::load(path), format) {
        (Ok(p), Format::Human) => {
            if !p.warnings.is_empty() {
                eprintln!("{}\n", p.warnings);
            }
            println!(
                "ok: {} — {} routes, {} upstreams, {} issuers, {} roles",
                path.display(),
                p.routes.len(),
                p.upstreams.len(),
                p.issuers.len(),
                p.roles.len()
            );
            let claims: Vec<String> = p.claims_read().into_iter().collect();
            if !p.issuers.is_empty() {
                println!(
                    "claims the policy reads (kept with each cached token): {}",
                    if p.keeps_all_claims() {
                        "all (a route sends a signed identity)".to_owned()
                    } else if claims.is_empty() {
                        "none".to_owned()
                    } else {
                        claims.join(", ")
                    }
                );
            }
            ExitCode::SUCCESS
        }
        (Ok(p), Format::Json) => {
            let claims: Vec<String> = p.claims_read().into_iter().collect();
            println!(
                "{}",
                serde_json::json!({"ok": true, "problems": [], "warnings": p.warnings.to_json(),
                                   "claims_read": claims, "keeps_all_claims": p.keeps_all_claims()})
            );
            ExitCode::SUCCESS
        }
        (Err(d), Format::Human) => {
            eprintln!("{d}");
            ExitCode::from(1)
        }
        (Err(d), Format::Json) => {
            println!(
                "{}",
                serde_json::json!({"ok": false, "problems": d.to_json()})
            );
            ExitCode::from(1)
        }
    }
}

fn explain_cmd(
    path: &Path,
    host: &str,
    method: &str,
    req_path: &str,
    token: Option<&str>,
    claims: Option<&str>,
    format: Format,
) -> ExitCode {
    let policy = match load(path) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let claims = match (token, claims) {
        (Some(t), _) => explain::token_claims(t).map(Some),
        (None, Some(c)) => explain::parse_claims(c).map(Some),
        (None, None) => Ok(None),
    };
    let claims = match claims {
        Ok(c) => c,
        Err(e) => return fail(&e.to_string()),
    };
    let v = explain::explain(
        &policy,
        host,
        &method.to_ascii_uppercase(),
        req_path,
        claims.as_ref(),
    );
    match format {
        Format::Human => print!("{}", explain::human(&v)),
        Format::Json => println!("{v}"),
    }
    ExitCode::SUCCESS
}

fn passthrough(
    listen: SocketAddr,
    upstream: &str,
    admin: Option<SocketAddr>,
    threads: usize,
    no_log: bool,
) -> ExitCode {
    let text = format!(
        "version: 1\nupstreams:\n  upstream:\n    targets: [\"{upstream}\"]\nroutes:\n  - match: {{ path: \"/**\" }}\n    upstream: upstream\n    public: true\n"
    );
    let policy = match poolgate_policies::load_str("passthrough.yaml", &text, &|_| None) {
        Ok(p) => Arc::new(p),
        Err(d) => return fail(&d.to_string()),
    };
    let mut cfg = convert::proxy_config(policy);
    cfg.listeners = vec![poolgate_proxy::config::ListenerSpec {
        address: listen,
        tls: None,
    }];
    cfg.admin = admin;
    cfg.server.threads = threads;
    let opts = StartOptions {
        access_log: if no_log {
            AccessLog::Off
        } else {
            AccessLog::stdout()
        },
        ..StartOptions::default()
    };
    match poolgate_proxy::prepare(&cfg, opts) {
        Ok(p) => p.run_until_stopped(),
        Err(e) => fail(&e.to_string()),
    }
}

#[cfg(feature = "demo")]
fn demo() -> ExitCode {
    match poolgate_proxy::demo::run() {
        Ok(never) => match never {},
        Err(e) => fail(&e.to_string()),
    }
}

#[cfg(not(feature = "demo"))]
fn demo() -> ExitCode {
    fail("this build has no demo (built without the `demo` feature)")
}

#[cfg(feature = "demo")]
fn token(user: &str, groups: &str, scopes: Option<&str>) -> ExitCode {
    match poolgate_proxy::demo::fetch_token(user, groups, scopes) {
        Ok(t) => {
            println!("{t}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

#[cfg(not(feature = "demo"))]
fn token(_user: &str, _groups: &str, _scopes: Option<&str>) -> ExitCode {
    fail("this build has no demo issuer (built without the `demo` feature)")
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}
