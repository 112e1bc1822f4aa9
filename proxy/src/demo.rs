//! `poolgate demo`: a local issuer (a real RSA key, its JWKS and a token endpoint), a backend
//! that echoes what it received, and the proxy on `policies/examples/demo.yaml`, in one process.
//! `poolgate token` asks the running demo's token endpoint for a token.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use poolgate_authorizer::testutil::TestIssuer;

use crate::access_log::AccessLog;
use crate::{StartOptions, convert};

/// The demo policy, embedded.
pub const DEMO_POLICY: &str = include_str!("../../policies/examples/demo.yaml");
/// Where the demo's token endpoint listens (and `poolgate token` asks), unless
/// `POOLGATE_DEMO_TOKEN_ADDR` says otherwise.
pub const TOKEN_ADDR: &str = "127.0.0.1:9229";

fn token_addr() -> String {
    std::env::var("POOLGATE_DEMO_TOKEN_ADDR").unwrap_or_else(|_| TOKEN_ADDR.to_owned())
}

/// Why the demo could not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("test issuer: {0}")]
    Issuer(String),
    #[error("demo policy: {0}")]
    Policy(String),
    #[error(transparent)]
    Start(#[from] crate::StartError),
}

type Body = Full<Bytes>;

fn query(req: &Request<Incoming>) -> HashMap<String, String> {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            (
                k.to_owned(),
                v.replace("%2C", ",").replace("%2F", "/").replace('+', " "),
            )
        })
        .collect()
}

fn list(v: Option<&String>) -> Vec<&str> {
    v.map(|s| s.split([',', ' ']).filter(|x| !x.is_empty()).collect())
        .unwrap_or_default()
}

/// `GET /token?user=alice&groups=a,b&scopes=x` → a signed access token.
fn mint(issuer: &TestIssuer, req: &Request<Incoming>) -> Response<Body> {
    let q = query(req);
    let Some(user) = q.get("user").filter(|u| !u.is_empty()) else {
        return text(400, "user= is required\n".to_owned());
    };
    let token = issuer.mint_access(user, &list(q.get("groups")), &list(q.get("scopes")));
    text(200, format!("{token}\n"))
}

/// The demo backend's answer: what reached it, as JSON.
fn echo(req: &Request<Incoming>) -> Response<Body> {
    let headers: serde_json::Map<String, serde_json::Value> = req
        .headers()
        .iter()
        .filter(|(n, _)| n.as_str().starts_with("x-"))
        .map(|(n, v)| {
            (
                n.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned().into(),
            )
        })
        .collect();
    let body = serde_json::json!({
        "backend": "poolgate demo echo",
        "method": req.method().as_str(),
        "path": req.uri().path(),
        "headers": headers,
    });
    let mut r = text(200, format!("{body:#}\n"));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

fn text(status: u16, body: String) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    r
}

async fn serve<F>(listener: tokio::net::TcpListener, handler: F)
where
    F: Fn(&Request<Incoming>) -> Response<Body> + Send + Sync + 'static,
{
    let handler = Arc::new(handler);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let h = handler.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let h = h.clone();
                async move { Ok::<_, Infallible>(h(&req)) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// Runs the demo until the process is stopped.
pub fn run() -> Result<std::convert::Infallible, DemoError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let (issuer, backend_addr) = rt.block_on(async {
        let issuer = TestIssuer::start_with_pool("demo-pool")
            .await
            .map_err(|e| DemoError::Issuer(e.to_string()))?;
        let backend = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let backend_addr: SocketAddr = backend.local_addr()?;
        tokio::spawn(serve(backend, echo));
        Ok::<_, DemoError>((Arc::new(issuer), backend_addr))
    })?;
    let token_at = token_addr();
    let token_listener = rt
        .block_on(tokio::net::TcpListener::bind(&token_at))
        .map_err(|e| std::io::Error::new(e.kind(), format!("token endpoint {token_at}: {e}")))?;
    let minting = issuer.clone();
    rt.spawn(serve(token_listener, move |req| mint(&minting, req)));

    let vars: HashMap<&str, String> = [
        ("POOLGATE_DEMO_ISSUER", issuer.issuer.clone()),
        ("POOLGATE_DEMO_JWKS_URL", issuer.jwks_url.clone()),
        ("POOLGATE_DEMO_CLIENT_ID", issuer.client_id.clone()),
        ("POOLGATE_DEMO_UPSTREAM", backend_addr.to_string()),
    ]
    .into_iter()
    .collect();
    let env = |name: &str| vars.get(name).cloned().or_else(|| std::env::var(name).ok());
    let policy = poolgate_policies::load_str("policies/examples/demo.yaml", DEMO_POLICY, &env)
        .map_err(|d| DemoError::Policy(d.to_string()))?;
    let cfg = convert::proxy_config(Arc::new(policy));
    let listen = cfg
        .listeners
        .first()
        .map(|l| l.address.to_string())
        .unwrap_or_default();
    let prepared = crate::prepare(
        &cfg,
        StartOptions {
            access_log: AccessLog::stdout(),
            ..StartOptions::default()
        },
    )?;
    print!("{}", instructions(&issuer, &listen, cfg.admin, &token_at));
    // The issuer, backend and token endpoint keep running on `rt` (kept alive here) while
    // pingora runs its own runtimes.
    let _keep = rt;
    prepared.run_until_stopped()
}

fn instructions(
    issuer: &TestIssuer,
    listen: &str,
    admin: Option<SocketAddr>,
    token_at: &str,
) -> String {
    let alice = issuer.mint_access("alice", &["admin"], &[]);
    let erin = issuer.mint_access("erin", &["editors"], &[]);
    let rita = issuer.mint_access("rita", &["readers"], &[]);
    let admin = admin
        .map(|a| a.to_string())
        .unwrap_or_else(|| "-".to_owned());
    format!(
        "poolgate demo is running
  proxy   http://{listen}    (policy: policies/examples/demo.yaml)
  admin   http://{admin}/metrics  /healthz  /readyz
  issuer  {iss}   (JWKS {jwks})
  tokens  http://{token_at}/token?user=NAME&groups=a,b   or   poolgate token --user NAME --groups a,b

Try (the backend echoes the identity headers it received):
  # 200: rita is a reader
  curl -s http://{listen}/articles/1 -H 'Authorization: Bearer {rita}'
  # 403: readers may not write
  curl -s -X POST http://{listen}/articles/1 -H 'Authorization: Bearer {rita}'
  # 200: erin is an editor; 403 for DELETE (explicit deny)
  curl -s -X PUT http://{listen}/articles/1 -H 'Authorization: Bearer {erin}'
  curl -s -X DELETE http://{listen}/articles/1 -H 'Authorization: Bearer {erin}'
  # 200: alice is an admin
  curl -s http://{listen}/admin/stats -H 'Authorization: Bearer {alice}'
  # 401: no token / a broken token
  curl -si http://{listen}/articles/1
  curl -si http://{listen}/articles/1 -H 'Authorization: Bearer not.a.token'
  # 200: public
  curl -s http://{listen}/healthz

Access log lines follow (one JSON object per request). Stop with Ctrl-C.
",
        iss = issuer.issuer,
        jwks = issuer.jwks_url,
    )
}

/// `poolgate token`: asks a running demo for a token.
pub fn fetch_token(user: &str, groups: &str, scopes: Option<&str>) -> Result<String, String> {
    use std::io::{Read, Write};
    let enc = |s: &str| s.replace(',', "%2C").replace('/', "%2F").replace(' ', "+");
    let mut path = format!("/token?user={}&groups={}", enc(user), enc(groups));
    if let Some(s) = scopes {
        path.push_str(&format!("&scopes={}", enc(s)));
    }
    let at = token_addr();
    let mut stream = std::net::TcpStream::connect(&at).map_err(|e| {
        format!("no demo token endpoint at {at} ({e}); start `poolgate demo` first")
    })?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {at}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .map_err(|e| e.to_string())?;
    let (head, body) = answer.split_once("\r\n\r\n").ok_or("malformed answer")?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!(
            "token endpoint said: {}",
            head.lines().next().unwrap_or("")
        ));
    }
    Ok(body.trim().to_owned())
}
