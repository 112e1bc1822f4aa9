//! Authorization end to end: a real JWKS issuer (authorizer test-util), a real echo backend
//! and the real proxy; status and whether the backend was reached, for each token case.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::time::{Duration, Instant};

use poolgate_authorizer::testutil::{Behaviour, TestIssuer};
use serde_json::json;
use support::backend::EchoBackend;
use support::client::{get, raw_answer};
use support::harness::{Proxy, policy_config, sample};

const POLICY: &str = r#"version: 1
issuers:
  shop:
    issuer: "ISS"
    jwks_url: "JWKS"
    cognito_style: true
    app_clients: ["CLIENT"]
    token_use: access
    jwks: { refresh_interval: 60s, min_refetch_interval: 1s, fetch_timeout: 1s }
upstreams:
  app:
    targets: ["BACKEND"]
roles:
  reader:
    allow: [ { methods: [GET, HEAD], paths: ["/orders/**"] } ]
  clerk:
    allow: [ { methods: ["*"], paths: ["/orders/**"] } ]
    deny: [ { methods: [DELETE], paths: ["/orders/**"] } ]
  analyst:
    allow: [ { methods: [GET], paths: ["/reports/**"] } ]
  apiuser:
    allow: [ { methods: [GET, POST], paths: ["/api/**"] } ]
  owner:
    allow: [ { methods: [GET, PUT], paths: ["/users/{sub}", "/users/{sub}/**"] } ]
identity_headers:
  prefix: x-auth-
  send: [issuer, sub, username, groups, roles, scopes, client-id, token-use]
role_mapping:
  groups: { readers: [reader], clerks: [clerk], analysts: [analyst], api: [apiuser] }
  authenticated: [owner]
routes:
  - name: orders
    match: { path: "/orders/**" }
    upstream: app
    auth: { issuer: shop }
  - name: reports
    match: { path: "/reports/**" }
    upstream: app
    auth: { issuer: shop, scopes: { any_of: [reports/read] } }
  - name: users
    match: { path: "/users/**" }
    upstream: app
    auth: { issuer: shop }
  - name: public
    match: { path: "/public/**" }
    upstream: app
    public: true
  - name: api
    match: { path: "/api/**" }
    upstream: app
    auth: { issuer: shop }
    forward_token: false
    cors:
      allow_origins: ["https://app.example.com"]
      allow_methods: [GET, POST]
      allow_headers: [authorization, content-type]
"#;

fn policy(issuer: &TestIssuer, backend: &EchoBackend) -> String {
    POLICY
        .replace("ISS", &issuer.issuer)
        .replace("JWKS", &issuer.jwks_url)
        .replace("CLIENT", &issuer.client_id)
        .replace("BACKEND", &backend.target())
}

struct Env {
    issuer: TestIssuer,
    be: EchoBackend,
    proxy: Proxy,
}

async fn env() -> Env {
    let issuer = TestIssuer::start().await.unwrap();
    let be = EchoBackend::start("app");
    let proxy = Proxy::start(policy_config(&policy(&issuer, &be)));
    proxy.wait_ready().await;
    Env { issuer, be, proxy }
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

#[tokio::test]
async fn valid_token_reaches_backend_with_verified_identity_only() {
    let e = env().await;
    let token = e.issuer.mint_access("alice", &["readers"], &["openid"]);
    let auth = bearer(&token);
    let r = get(
        e.proxy.addr,
        "/orders/1",
        &[
            ("authorization", &auth),
            ("x-auth-sub", "root"),
            ("x-auth-roles", "[\"admin\"]"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = &e.be.requests()[0];
    let sub = e.issuer.access_claims("alice", &[], &[]).0["sub"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(seen.headers_named("x-auth-sub"), vec![sub.as_str()]);
    assert_eq!(seen.header("x-auth-username"), Some("alice"));
    assert_eq!(seen.header("x-auth-groups"), Some(r#"["readers"]"#));
    let roles: Vec<String> = serde_json::from_str(seen.header("x-auth-roles").unwrap()).unwrap();
    assert!(
        roles.contains(&"reader".to_owned()) && !roles.contains(&"admin".to_owned()),
        "{roles:?}"
    );
    assert_eq!(seen.header("x-auth-token-use"), Some("access"));
    assert_eq!(
        seen.header("x-auth-client-id"),
        Some(e.issuer.client_id.as_str())
    );
    assert_eq!(
        seen.header("authorization"),
        Some(auth.as_str()),
        "token forwarded by default"
    );
}

#[tokio::test]
async fn a_verified_identity_that_cannot_be_a_header_is_refused_before_the_backend() {
    let e = env().await;
    let username = |v: serde_json::Value| ("username", v);
    let refused = [
        username(json!("alice\r\nx-auth-sub: root")),
        username(json!("nul\u{0}")),
        username(json!("del\u{7f}")),
        username(json!("jos\u{e9}\u{0}")),
    ];
    for (claim, value) in refused {
        let mut claims = e.issuer.access_claims("dora", &["readers"], &[]);
        claims.0.insert(claim.into(), value.clone());
        let auth = bearer(&e.issuer.access_key().sign_claims(&claims.into_value()));
        let before = e.be.count();
        let r = get(e.proxy.addr, "/orders/1", &[("authorization", &auth)]).await;
        assert_eq!(r.status, 400, "{claim} = {value}: {}", r.text());
        assert_eq!(
            r.json()["reason"],
            "identity_unrepresentable",
            "{claim} = {value}"
        );
        assert_eq!(
            e.be.count(),
            before,
            "{claim} = {value} reached the backend"
        );
    }
    // Non-ASCII text is carried: a string as an RFC 8187 ext-value, JSON with `\u` escapes
    // (DEL too), and a user named `josé` is served.
    let mut claims = e.issuer.access_claims("dora", &["readers"], &[]);
    claims.0.insert("username".into(), json!("jos\u{e9}"));
    claims.0.insert(
        "cognito:groups".into(),
        json!(["readers", "caf\u{e9}", "del\u{7f}"]),
    );
    let auth = bearer(&e.issuer.access_key().sign_claims(&claims.into_value()));
    let r = get(e.proxy.addr, "/orders/1", &[("authorization", &auth)]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = e.be.requests().pop().unwrap();
    assert_eq!(seen.header("x-auth-username"), Some("UTF-8''jos%C3%A9"));
    assert_eq!(
        seen.header("x-auth-groups"),
        Some(r#"["readers","caf\u00e9","del\u007f"]"#)
    );
    // Control characters inside an array are JSON-escaped, so the header is plain text.
    let mut claims = e.issuer.access_claims("dora", &["readers"], &[]);
    claims.0.insert(
        "cognito:groups".into(),
        json!(["readers", "a\nb", "q\"uote"]),
    );
    let auth = bearer(&e.issuer.access_key().sign_claims(&claims.into_value()));
    let r = get(e.proxy.addr, "/orders/1", &[("authorization", &auth)]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        e.be.requests().pop().unwrap().header("x-auth-groups"),
        Some(r#"["readers","a\nb","q\"uote"]"#)
    );
}

#[tokio::test]
async fn a_connection_header_cannot_take_the_verified_identity_off_the_request() {
    let e = env().await;
    let auth = bearer(&e.issuer.mint_access("erin", &["readers"], &[]));
    // Fields a client's `Connection` names are hop-by-hop: dropped before poolgate adds the
    // verified identity, so naming the identity headers removes only the client's own.
    let answer = raw_answer(
        e.proxy.addr,
        &format!(
            "GET /orders/1 HTTP/1.1\r\nHost: localhost\r\nAuthorization: {auth}\r\n\
             Connection: close, x-auth-sub, x-auth-roles\r\nx-auth-sub: mallory\r\n\r\n"
        ),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let seen = e.be.requests().pop().unwrap();
    assert!(
        seen.header("x-auth-sub").is_some_and(|s| s != "mallory"),
        "{seen:?}"
    );
    assert_eq!(seen.header("x-auth-roles"), Some(r#"["reader","owner"]"#));
    // Naming `Host` or a forwarding header is refused outright.
    for named in ["host", "x-forwarded-for"] {
        let before = e.be.count();
        let answer = raw_answer(
            e.proxy.addr,
            &format!(
                "GET /orders/1 HTTP/1.1\r\nHost: localhost\r\nAuthorization: {auth}\r\n\
                 Connection: close, {named}\r\n\r\n"
            ),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{named}: {answer}");
        assert_eq!(e.be.count(), before, "{named}: reached the backend");
    }
}

#[tokio::test]
async fn token_case_table() {
    let e = env().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let good = e.issuer.mint_access("bob", &["readers"], &[]);
    let mut expired = e.issuer.access_claims("bob", &["readers"], &[]);
    expired.0.insert("exp".into(), json!(now - 3600));
    let mut future = e.issuer.access_claims("bob", &["readers"], &[]);
    future.0.insert("nbf".into(), json!(now + 3600));
    let mut other_client = e.issuer.access_claims("bob", &["readers"], &[]);
    other_client
        .0
        .insert("client_id".into(), json!("someone-else"));
    let mut other_iss = e.issuer.access_claims("bob", &["readers"], &[]);
    other_iss
        .0
        .insert("iss".into(), json!("https://evil.example/pool"));
    let tampered = {
        // change one character inside the signature (not the last, whose low bits are padding)
        let sig_start = good.rfind('.').unwrap() + 1;
        let mut bytes = good.clone().into_bytes();
        let i = sig_start + 10;
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        String::from_utf8(bytes).unwrap()
    };
    let none_alg = {
        use base64::Engine;
        let b64 = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        format!(
            "{}.{}.c2ln",
            b64(json!({"alg": "none", "kid": "access-1"})),
            b64(serde_json::Value::Object(
                e.issuer.access_claims("bob", &["readers"], &[]).0
            ))
        )
    };
    let cases: Vec<(&str, Option<String>, u16, &str)> = vec![
        ("valid", Some(good.clone()), 200, "allowed"),
        ("no token", None, 401, "missing_token"),
        ("garbage", Some("not-a-jwt".into()), 401, "malformed"),
        (
            "expired",
            Some(e.issuer.sign_access(expired)),
            401,
            "expired",
        ),
        (
            "not yet valid",
            Some(e.issuer.sign_access(future)),
            401,
            "not_yet_valid",
        ),
        ("bad signature", Some(tampered), 401, "bad_signature"),
        ("alg none", Some(none_alg), 401, "unsupported_alg"),
        (
            "id token on access route",
            Some(e.issuer.mint_id("bob", &["readers"])),
            401,
            "wrong_token_use",
        ),
        (
            "other client",
            Some(e.issuer.sign_access(other_client)),
            401,
            "wrong_audience",
        ),
        (
            "other issuer",
            Some(e.issuer.sign_access(other_iss)),
            401,
            "wrong_issuer",
        ),
    ];
    for (name, token, status, reason) in cases {
        let before = e.be.count();
        let auth = token.map(|t| bearer(&t));
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("authorization", a)])
            .unwrap_or_default();
        let r = get(e.proxy.addr, "/orders/7", &headers).await;
        assert_eq!(r.status, status, "{name}: {}", r.text());
        let reached = e.be.count() > before;
        assert_eq!(
            reached,
            status == 200,
            "{name}: backend reached = {reached}"
        );
        if status != 200 {
            assert_eq!(r.json()["reason"], reason, "{name}");
            let challenge = r.header("www-authenticate").unwrap();
            assert!(
                challenge.starts_with("Bearer realm="),
                "{name}: {challenge}"
            );
            assert_eq!(
                challenge.contains("error=\"invalid_token\""),
                auth.is_some(),
                "{name}: {challenge}"
            );
        }
    }
}

#[tokio::test]
async fn roles_methods_deny_scopes_and_claim_variables() {
    let e = env().await;
    let reader = bearer(&e.issuer.mint_access("rita", &["readers"], &[]));
    let clerk = bearer(&e.issuer.mint_access("carl", &["clerks"], &[]));
    let analyst_no_scope = bearer(&e.issuer.mint_access("ann", &["analysts"], &[]));
    let analyst = bearer(
        &e.issuer
            .mint_access("ann", &["analysts"], &["reports/read"]),
    );
    let check = |status: u16, r: &support::client::Reply, what: &str| {
        assert_eq!(r.status, status, "{what}: {}", r.text())
    };

    check(
        200,
        &get(e.proxy.addr, "/orders/1", &[("authorization", &reader)]).await,
        "reader GET",
    );
    let r = support::client::send(
        e.proxy.addr,
        "POST",
        "/orders/1",
        &[("authorization", &reader)],
        bytes::Bytes::new(),
    )
    .await;
    check(403, &r, "reader POST");
    assert_eq!(r.json()["reason"], "no_role_allows");
    check(
        200,
        &support::client::send(
            e.proxy.addr,
            "POST",
            "/orders/1",
            &[("authorization", &clerk)],
            bytes::Bytes::new(),
        )
        .await,
        "clerk POST",
    );
    let r = support::client::send(
        e.proxy.addr,
        "DELETE",
        "/orders/1",
        &[("authorization", &clerk)],
        bytes::Bytes::new(),
    )
    .await;
    check(403, &r, "clerk DELETE (explicit deny)");
    assert_eq!(r.json()["reason"], "explicit_deny");

    let r = get(
        e.proxy.addr,
        "/reports/q1",
        &[("authorization", &analyst_no_scope)],
    )
    .await;
    check(403, &r, "analyst without scope");
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"poolgate\", error=\"insufficient_scope\", scope=\"reports/read\"")
    );
    check(
        200,
        &get(e.proxy.addr, "/reports/q1", &[("authorization", &analyst)]).await,
        "analyst with scope",
    );

    let sub = e.issuer.access_claims("rita", &[], &[]).0["sub"]
        .as_str()
        .unwrap()
        .to_owned();
    check(
        200,
        &get(
            e.proxy.addr,
            &format!("/users/{sub}/profile"),
            &[("authorization", &reader)],
        )
        .await,
        "own profile",
    );
    check(
        403,
        &get(
            e.proxy.addr,
            "/users/someone-else/profile",
            &[("authorization", &reader)],
        )
        .await,
        "other profile",
    );

    // the 4 allowed requests reached the backend, nothing else did
    assert_eq!(e.be.count(), 4);
}

#[tokio::test]
async fn cors_preflight_without_token_and_token_stripped_when_configured() {
    let e = env().await;
    let r = support::client::send(
        e.proxy.addr,
        "OPTIONS",
        "/api/items",
        &[
            ("origin", "https://app.example.com"),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "authorization"),
        ],
        bytes::Bytes::new(),
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    let r = support::client::send(
        e.proxy.addr,
        "OPTIONS",
        "/api/items",
        &[
            ("origin", "https://evil.example"),
            ("access-control-request-method", "POST"),
        ],
        bytes::Bytes::new(),
    )
    .await;
    assert_eq!(r.status, 403);
    // a plain OPTIONS (not a preflight) still needs a token
    assert_eq!(
        support::client::send(
            e.proxy.addr,
            "OPTIONS",
            "/api/items",
            &[],
            bytes::Bytes::new()
        )
        .await
        .status,
        401
    );
    assert_eq!(e.be.count(), 0);

    let auth = bearer(&e.issuer.mint_access("u", &["api"], &[]));
    let r = get(
        e.proxy.addr,
        "/api/items",
        &[
            ("authorization", &auth),
            ("origin", "https://app.example.com"),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(
        e.be.requests()[0].header("authorization"),
        None,
        "forward_token: false strips it"
    );
}

#[tokio::test]
async fn keys_unavailable_is_503_then_recovers() {
    let issuer = TestIssuer::start().await.unwrap();
    issuer.server.set_behaviour(Behaviour::Status(500));
    let be = EchoBackend::start("app");
    let proxy = Proxy::start(policy_config(&policy(&issuer, &be)));
    let auth = bearer(&issuer.mint_access("alice", &["readers"], &[]));
    assert_eq!(
        get(proxy.admin, "/readyz", &[]).await.status,
        503,
        "not ready without keys"
    );
    let r = get(proxy.addr, "/orders/1", &[("authorization", &auth)]).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["reason"], "keys_unavailable");
    assert!(r.header("retry-after").is_some());
    assert_eq!(be.count(), 0);
    // public routes do not depend on keys
    assert_eq!(get(proxy.addr, "/public/x", &[]).await.status, 200);

    issuer.server.set_behaviour(Behaviour::Normal);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = get(proxy.addr, "/orders/1", &[("authorization", &auth)]).await;
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 503);
        assert!(Instant::now() < deadline, "never recovered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    proxy.wait_ready().await;
}

#[tokio::test]
async fn metrics_include_authorizer_and_decisions() {
    let e = env().await;
    let auth = bearer(&e.issuer.mint_access("m", &["readers"], &[]));
    for _ in 0..3 {
        assert_eq!(
            get(e.proxy.addr, "/orders/1", &[("authorization", &auth)])
                .await
                .status,
            200
        );
    }
    assert_eq!(
        get(
            e.proxy.addr,
            "/orders/1",
            &[("authorization", "Bearer x.y.z")]
        )
        .await
        .status,
        401
    );
    e.proxy.wait_for_log(4);
    let m = e.proxy.metrics().await;
    assert_eq!(
        sample(
            &m,
            r#"poolgate_requests_total{reason="allowed",route="orders",status="200"}"#
        ),
        Some(3.0),
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            r#"poolgate_requests_total{reason="malformed",route="orders",status="401"}"#
        ),
        Some(1.0),
        "{m}"
    );
    assert!(
        m.contains("poolgate_jwks"),
        "authorizer metrics missing:\n{m}"
    );
    let lines = e.proxy.log_lines();
    let sub = e.issuer.access_claims("m", &[], &[]).0["sub"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(lines[0]["sub"], sub.as_str());
    assert!(
        !e.proxy
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(auth.trim_start_matches("Bearer ")))
    );
}

#[tokio::test]
async fn websocket_upgrade_only_after_authorization() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let e = env().await;
    let (head, _) = support::client::upgrade(e.proxy.addr, "/orders/live", &[]).await;
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    let writer = bearer(&e.issuer.mint_access("w", &["api"], &[]));
    let (head, _) =
        support::client::upgrade(e.proxy.addr, "/orders/live", &[("authorization", &writer)]).await;
    assert!(
        head.starts_with("HTTP/1.1 403"),
        "no role for /orders: {head}"
    );
    assert_eq!(e.be.count(), 0);

    let reader = bearer(&e.issuer.mint_access("r", &["readers"], &[]));
    let (head, mut s) =
        support::client::upgrade(e.proxy.addr, "/orders/live", &[("authorization", &reader)]).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s.write_all(b"hello over ws").await.unwrap();
    let mut buf = [0u8; 13];
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"hello over ws");
    let seen = &e.be.requests()[0];
    assert_eq!(seen.header("x-auth-username"), Some("r"));
}

#[tokio::test]
async fn a_switch_to_anything_but_websocket_is_refused() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A backend that answers every request with a 101 to h2c, then counts what else arrives.
    let after = Arc::new(AtomicUsize::new(0));
    let counter = after.clone();
    let backend = support::backend::raw_backend(move |mut sock| {
        let counter = counter.clone();
        async move {
            if !support::backend::read_head(&mut sock).await {
                return;
            }
            let switch =
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
            if sock.write_all(switch).await.is_err() {
                return;
            }
            let mut buf = [0u8; 4096];
            while let Ok(n) = sock.read(&mut buf).await {
                if n == 0 {
                    return;
                }
                counter.fetch_add(n, Ordering::SeqCst);
            }
        }
    })
    .await;
    let issuer = TestIssuer::start().await.unwrap();
    let be = EchoBackend::start("unused");
    let text = policy(&issuer, &be).replace(&be.target(), &backend);
    let proxy = Proxy::start(policy_config(&text));
    proxy.wait_ready().await;
    let (head, mut s) = support::client::upgrade(proxy.addr, "/public/ws", &[]).await;
    assert!(head.starts_with("HTTP/1.1 502"), "{head}");
    // Nothing written after the refusal reaches the backend as unjudged bytes.
    let _ = s
        .write_all(b"GET /orders/1 HTTP/1.1\r\nHost: localhost\r\nx-auth-sub: mallory\r\n\r\n")
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(after.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn unknown_kid_is_refused_and_rotated_keys_are_picked_up() {
    use poolgate_authorizer::testutil::TestKey;
    let e = env().await;
    // signed by a key the issuer never published: one refetch, then 401
    let stranger = TestKey::rsa("stranger").unwrap();
    let forged = stranger.sign_claims(&serde_json::Value::Object(
        e.issuer.access_claims("x", &["readers"], &[]).0,
    ));
    let r = get(
        e.proxy.addr,
        "/orders/1",
        &[("authorization", &bearer(&forged))],
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["reason"], "unknown_kid");

    // the issuer rotates: tokens with the new kid verify after the (rate-limited) refetch
    e.issuer.rotate().unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await; // past min_refetch_interval (1s)
    let fresh = bearer(&e.issuer.mint_access("y", &["readers"], &[]));
    let r = get(e.proxy.addr, "/orders/1", &[("authorization", &fresh)]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(e.be.count(), 1);
}

/// A proxy on `text`, written to a file it reloads from when told (never by itself).
async fn reloadable(text: &str, tag: &str) -> (Proxy, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("poolgate-auth-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("policy.yaml");
    std::fs::write(&path, text).unwrap();
    (Proxy::start_reloadable(&path).await, path)
}

#[tokio::test]
async fn reload_with_changed_issuer_swaps_the_authorizer() {
    let issuer = TestIssuer::start().await.unwrap();
    let be = EchoBackend::start("app");
    let (proxy, path) = reloadable(&policy(&issuer, &be), "reload").await;
    let auth = bearer(&issuer.mint_access("alice", &["readers"], &[]));
    assert_eq!(
        get(proxy.addr, "/orders/1", &[("authorization", &auth)])
            .await
            .status,
        200
    );
    let before = proxy.shared.state.load_full();

    // same issuers, other routes: the authorizer (keys, cache) is kept
    std::fs::write(
        &path,
        policy(&issuer, &be).replace("/reports/**", "/reports2/**"),
    )
    .unwrap();
    poolgate_proxy::reload::reload(&proxy.shared, &path)
        .await
        .unwrap();
    let kept = proxy.shared.state.load_full();
    assert!(std::sync::Arc::ptr_eq(
        before.token_verifier().unwrap(),
        kept.token_verifier().unwrap()
    ));

    // another app client: a new authorizer, started by the reload; the old token's client is refused
    std::fs::write(
        &path,
        policy(&issuer, &be).replace(&issuer.client_id, "another-client"),
    )
    .unwrap();
    poolgate_proxy::reload::reload(&proxy.shared, &path)
        .await
        .unwrap();
    let swapped = proxy.shared.state.load_full();
    assert!(!std::sync::Arc::ptr_eq(
        before.token_verifier().unwrap(),
        swapped.token_verifier().unwrap()
    ));
    proxy.wait_ready().await;
    let r = get(proxy.addr, "/orders/1", &[("authorization", &auth)]).await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.json()["reason"], "wrong_audience");
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[tokio::test]
async fn a_reload_that_reads_another_claim_never_serves_a_trimmed_cached_identity() {
    let issuer = TestIssuer::start().await.unwrap();
    let be = EchoBackend::start("app");
    let (proxy, path) = reloadable(&policy(&issuer, &be), "claims").await;
    let mut claims = issuer
        .access_claims("alice", &["readers"], &[])
        .into_value();
    claims["email"] = "alice@example.com".into();
    let auth = bearer(&issuer.access_key().sign_claims(&claims));
    // Cached while no part of the policy reads `email`: the identity does not keep it.
    for _ in 0..2 {
        let r = get(proxy.addr, "/orders/1", &[("authorization", &auth)]).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(be.requests()[1].header("x-email"), None);
    let before = proxy.shared.state.load_full();

    let with_header = policy(&issuer, &be).replace(
        "    auth: { issuer: shop }
  - name: reports",
        "    auth: { issuer: shop }
    headers: { x-email: email }
  - name: reports",
    );
    assert_ne!(with_header, policy(&issuer, &be));
    std::fs::write(&path, with_header).unwrap();
    poolgate_proxy::reload::reload(&proxy.shared, &path)
        .await
        .unwrap();
    let after = proxy.shared.state.load_full();
    assert!(!std::sync::Arc::ptr_eq(
        before.token_verifier().unwrap(),
        after.token_verifier().unwrap()
    ));
    let r = get(proxy.addr, "/orders/1", &[("authorization", &auth)]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        be.requests()[2].header("x-email"),
        Some("alice@example.com")
    );
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[tokio::test]
async fn a_cached_identity_gets_the_headers_of_the_configuration_in_force() {
    let issuer = TestIssuer::start().await.unwrap();
    let be = EchoBackend::start("app");
    let (proxy, path) = reloadable(&policy(&issuer, &be), "derived").await;
    let auth = bearer(&issuer.mint_access("carol", &["readers"], &[]));
    // The second request is a cache hit, served the headers kept with the identity.
    for _ in 0..2 {
        let r = get(proxy.addr, "/orders/1", &[("authorization", &auth)]).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    for seen in be.requests() {
        assert_eq!(seen.header("x-auth-roles"), Some(r#"["reader","owner"]"#));
    }
    let sub = be.requests()[0].header("x-auth-sub").unwrap().to_owned();
    let before = proxy.shared.state.load_full();

    // Same issuers and claims (the verifier and its cache stay); other roles and prefix.
    let changed = policy(&issuer, &be)
        .replace("readers: [reader]", "readers: [reader, analyst]")
        .replace("prefix: x-auth-", "prefix: x-id-");
    std::fs::write(&path, changed).unwrap();
    poolgate_proxy::reload::reload(&proxy.shared, &path)
        .await
        .unwrap();
    let after = proxy.shared.state.load_full();
    assert!(std::sync::Arc::ptr_eq(
        before.token_verifier().unwrap(),
        after.token_verifier().unwrap()
    ));
    let hits = sample(&proxy.metrics().await, "poolgate_token_cache_hits_total");
    let r = get(proxy.addr, "/orders/1", &[("authorization", &auth)]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        sample(&proxy.metrics().await, "poolgate_token_cache_hits_total"),
        hits.map(|h| h + 1.0),
        "the identity came from the cache"
    );
    let seen = be.requests().pop().unwrap();
    assert_eq!(
        seen.header("x-id-roles"),
        Some(r#"["reader","analyst","owner"]"#)
    );
    assert_eq!(seen.header("x-id-sub"), Some(sub.as_str()));
    assert_eq!(seen.header("x-auth-roles"), None);
    assert_eq!(seen.header("x-auth-sub"), None);
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[tokio::test]
async fn token_cache_capacity_comes_from_the_policy_file() {
    let issuer = TestIssuer::start().await.unwrap();
    let be = EchoBackend::start("app");
    let hits = |m: &str| sample(m, "poolgate_token_cache_hits_total").unwrap_or(0.0);
    for (server, want_hits) in [
        ("", 2.0),
        ("server: { token_cache: { capacity: 0 } }\n", 0.0),
    ] {
        let text = format!("{}{server}", policy(&issuer, &be));
        let proxy = Proxy::start(policy_config(&text));
        proxy.wait_ready().await;
        let auth = bearer(&issuer.mint_access("c", &["readers"], &[]));
        for _ in 0..3 {
            let r = get(proxy.addr, "/orders/1", &[("authorization", &auth)]).await;
            assert_eq!(r.status, 200, "{}", r.text());
        }
        assert_eq!(hits(&proxy.metrics().await), want_hits, "{server}");
    }
}
