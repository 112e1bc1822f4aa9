//! The `poolgate` binary: `check` exit codes and output, `explain` output, and `demo` + `token`
//! end to end (on ephemeral ports).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::client::send;
use support::harness::free_port;

const BIN: &str = env!("CARGO_BIN_EXE_poolgate");
const DEMO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../policies/examples/demo.yaml"
);

fn write_temp(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("poolgate-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Warnings are printed, the exit code stays 0, and JSON lists them apart from problems.
#[test]
fn check_prints_warnings_and_still_succeeds() {
    let policy = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../policies/tests/fixtures/wildcard_beside_any.yaml"
    );
    let out = Command::new(BIN)
        .args(["check", "-c", policy])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: `*.example.com` matches one label only"),
        "{err}"
    );
    assert!(err.contains("warning: the policy has 2 warnings"), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok: "));
    let out = Command::new(BIN)
        .args(["check", "--format", "json", "-c", policy])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["ok"], true);
    assert_eq!(json["problems"], serde_json::json!([]));
    assert_eq!(json["warnings"][0]["key"], "routes[0].match.host");
}

#[test]
fn check_exit_codes_and_output() {
    let ok = Command::new(BIN)
        .args(["check", "-c", DEMO])
        .output()
        .unwrap();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(text.starts_with("ok: "), "{text}");
    // The owner statement's `{sub}` is the one claim it reads: identity headers are built from
    // the verified identity's typed fields.
    assert!(
        text.contains("claims the policy reads (kept with each cached token): sub\n"),
        "{text}"
    );
    let json = Command::new(BIN)
        .args(["check", "--format", "json", "-c", DEMO])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json["ok"], true);
    assert_eq!(json["claims_read"], serde_json::json!(["sub"]));

    let bad = write_temp(
        "bad.yaml",
        "version: 1\nupstreams:\n  app: { targets: [\"127.0.0.1:1\"] }\nroutes:\n  - match: { path: /a }\n    upstream: ap\n    public: true\n  - match: { path: /b }\n    upstream: aps\n    public: true\n",
    );
    let out = Command::new(BIN)
        .args(["check", "-c"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("bad.yaml:6"), "{text}");
    assert!(
        text.contains("bad.yaml:9"),
        "every problem is reported: {text}"
    );
    assert!(text.contains("the policy has 2 problems"), "{text}");

    let out = Command::new(BIN)
        .args(["check", "--format", "json", "-c"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert!(v["problems"].as_array().unwrap().len() >= 2, "{v}");
}

#[test]
fn explain_shows_route_roles_and_decision() {
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(["explain", "-c", DEMO])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let reader = r#"{"sub":"u1","token_use":"access","cognito:groups":["readers"]}"#;
    let text = run(&[
        "--method",
        "GET",
        "--path",
        "/articles/1",
        "--claims",
        reader,
    ]);
    assert!(text.contains("route:     articles"), "{text}");
    assert!(text.contains("decision:  allow (allowed) → 200"), "{text}");
    assert!(text.contains("statement: role `reader` allow[0]"), "{text}");
    let text = run(&[
        "--method",
        "DELETE",
        "--path",
        "/articles/1",
        "--claims",
        reader,
    ]);
    assert!(
        text.contains("decision:  deny (no_role_allows) → 403"),
        "{text}"
    );
    let text = run(&["--path", "/articles/1"]);
    assert!(
        text.contains("principal: none") && text.contains("→ 401"),
        "{text}"
    );
    // a token's claims are decoded (not verified) and give the same decision
    let b64 = |v: &str| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
    };
    let token = format!(
        "{}.{}.c2ln",
        b64(r#"{"alg":"RS256","kid":"k"}"#),
        b64(reader)
    );
    let text = run(&[
        "--method",
        "GET",
        "--path",
        "/articles/1",
        "--token",
        &token,
    ]);
    assert!(text.contains("decision:  allow (allowed) → 200"), "{text}");
    let out = Command::new(BIN)
        .args([
            "explain",
            "-c",
            DEMO,
            "--path",
            "/articles/1",
            "--token",
            "not-a-token",
        ])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let json = run(&["--format", "json", "--path", "/nowhere"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["status"], 404);
}

/// Kills the demo when the test ends, passed or not.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn demo_and_token_end_to_end() {
    let (listen, admin, token_at) = (free_port(), free_port(), free_port());
    let mut child = Command::new(BIN)
        .arg("demo")
        .env("POOLGATE_DEMO_LISTEN", listen.to_string())
        .env("POOLGATE_DEMO_ADMIN", admin.to_string())
        .env("POOLGATE_DEMO_TOKEN_ADDR", token_at.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _guard = KillOnDrop(child);
    let mut lines = BufReader::new(stdout).lines();
    let mut banner = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let done = line.starts_with("Access log lines follow");
        banner.push(line);
        if done {
            break;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(admin).is_err()
        || std::net::TcpStream::connect(listen).is_err()
    {
        assert!(Instant::now() < deadline, "demo never listened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    while send(admin, "GET", "/readyz", &[], bytes::Bytes::new())
        .await
        .status
        != 200
    {
        assert!(Instant::now() < deadline, "demo never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // the printed reader token gives 200, then 403 for a write
    let at = banner
        .iter()
        .position(|l| l.contains("# 200: rita is a reader"))
        .expect("rita's line");
    let rita = banner
        .get(at + 1)
        .and_then(|l| l.split("Bearer ").nth(1))
        .map(|t| t.trim_end_matches('\'').to_owned())
        .expect("a curl line with a token");
    let auth = format!("Bearer {rita}");
    let r = send(
        listen,
        "GET",
        "/articles/1",
        &[("authorization", &auth)],
        bytes::Bytes::new(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["headers"]["x-auth-username"], "rita");
    assert_eq!(
        send(
            listen,
            "POST",
            "/articles/1",
            &[("authorization", &auth)],
            bytes::Bytes::new()
        )
        .await
        .status,
        403
    );
    assert_eq!(
        send(listen, "GET", "/articles/1", &[], bytes::Bytes::new())
            .await
            .status,
        401
    );

    // `poolgate token` mints from the running demo's key
    let out = Command::new(BIN)
        .args(["token", "--user", "alice", "--groups", "admin"])
        .env("POOLGATE_DEMO_TOKEN_ADDR", token_at.to_string())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let alice = format!("Bearer {}", String::from_utf8_lossy(&out.stdout).trim());
    let r = send(
        listen,
        "GET",
        "/admin/stats",
        &[("authorization", &alice)],
        bytes::Bytes::new(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn check_reads_a_ca_bundle_beside_the_policy_whatever_the_working_directory() {
    let (ca, _, _) = support::certs::certificates();
    let dir = ca.parent().unwrap().to_path_buf();
    let policy = dir.join("policy.yaml");
    std::fs::write(
        &policy,
        "version: 1\nupstreams:\n  app:\n    targets: [\"127.0.0.1:1\"]\n    tls: { sni: localhost, ca: ca.pem }\nroutes:\n  - match: { path: \"/**\" }\n    upstream: app\n    public: true\n",
    )
    .unwrap();
    let check = || {
        Command::new(BIN)
            .args(["check", "--format", "json", "-c"])
            .arg(&policy)
            .current_dir("/")
            .output()
            .unwrap()
    };
    let ok = check();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&ok.stdout),
        String::from_utf8_lossy(&ok.stderr)
    );
    std::fs::remove_file(&ca).unwrap();
    let bad = check();
    assert_eq!(bad.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&bad.stdout).unwrap();
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{report}");
    let p = &problems[0];
    assert_eq!(p["key"], "upstreams.app.tls.ca");
    assert_eq!(p["file"], policy.display().to_string());
    assert_eq!((p["line"].as_u64(), p["col"].as_u64()), (Some(5), Some(32)));
    assert!(p["message"].as_str().unwrap().contains("ca.pem"), "{p}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn explain_reads_groups_and_scopes_where_the_issuer_puts_them() {
    let policy = write_temp(
        "keycloak.yaml",
        r#"version: 1
issuers:
  keycloak:
    issuer: https://sso.example.com/realms/main
    jwks_url: https://sso.example.com/realms/main/certs
    token_use: any
    claims: { groups: /realm_access/roles, scopes: /scp }
upstreams:
  app: { targets: ["127.0.0.1:3000"] }
roles:
  reader:
    allow: [ { methods: [GET], paths: ["/docs/**"] } ]
role_mapping:
  groups: { readers: [reader] }
routes:
  - name: docs
    match: { path: "/docs/**" }
    upstream: app
    auth: { issuer: keycloak, scopes: { any_of: ["docs:read"] } }
"#,
    );
    let explain = |claims: &str| {
        let out = Command::new(BIN)
            .args(["explain", "-c"])
            .arg(&policy)
            .args(["--format", "json", "--path", "/docs/1", "--claims", claims])
            .output()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)))
    };
    let ok = explain(r#"{"sub":"u","realm_access":{"roles":["readers"]},"scp":["docs:read"]}"#);
    assert_eq!(ok["allowed"], true, "{ok}");
    // The Cognito places are not this issuer's: nothing is read from them.
    let cognito = explain(r#"{"sub":"u","cognito:groups":["readers"],"scope":"docs:read"}"#);
    assert_eq!(cognito["allowed"], false, "{cognito}");
    let wrong = explain(r#"{"sub":"u","realm_access":{"roles":"readers"},"scp":["docs:read"]}"#);
    assert_eq!(
        (wrong["status"].as_u64(), wrong["reason"].as_str()),
        (Some(401), Some("malformed")),
        "{wrong}"
    );
}
