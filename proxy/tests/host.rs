//! The judged host is the forwarded host: against a real nginx with name-based virtual hosts,
//! no spelling of `Host` reaches a virtual host that the route poolgate judged does not name.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use support::backend::EchoBackend;
use support::client::raw_answer;
use support::harness::{Proxy, UNREACHABLE_ISSUER as ISSUER, policy_config};
use support::nginx::Nginx;

/// `admin.example.com` needs a token (none is sent, so 401); `www.example.com` and every other
/// host are public, all to the same nginx.
fn vhost_policy(target: &str) -> String {
    format!(
        r#"version: 1
{ISSUER}upstreams:
  web:
    targets: ["{target}"]
routes:
  - name: admin
    match: {{ host: admin.example.com, path: "/**" }}
    upstream: web
    auth: {{ issuer: test }}
  - name: www
    match: {{ host: www.example.com, path: "/**" }}
    upstream: web
    public: true
  - name: any-host
    match: {{ path: "/**" }}
    upstream: web
    public: true
"#
    )
}

/// The status line's code and the body of a raw answer.
fn status_and_body(answer: &str) -> (u16, &str) {
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.trim())
}

/// Host spellings a lenient parse would judge as one host while nginx serves another.
const HOSTILE: &[&str] = &[
    "admin.example.com:1:2",
    "admin.example.com:80:80",
    "admin.example.com:",
    "admin.example.com:x",
    "admin.example.com:99999",
    "admin.example.com\tx",
    "admin\t.example.com",
    "admin.example.com,www.example.com",
    "admin.example.com/x",
    "admin.example.com\\x",
    "[admin.example.com]",
    "[admin.example.com]:80",
    "admin..example.com",
    "admin.example.com..",
    "admin%2eexample.com",
    "admin.example.com%2e",
    "admin.example.com%00",
    "user@admin.example.com",
    "admin.example.com@www.example.com",
    "admin.example.com;www.example.com",
    "admin.example.com www.example.com",
    "xn--admin\u{e9}.example.com",
    "admin.\u{e9}xample.com",
    "",
];

#[tokio::test]
async fn no_host_spelling_reaches_a_virtual_host_the_route_does_not_name() {
    let nginx = Nginx::vhosts(&[("admin.example.com", "admin"), ("www.example.com", "www")]);
    let proxy = Proxy::start(policy_config(&vhost_policy(&nginx.addr.to_string())));

    // The baseline: each virtual host is reachable through its own route, and only there.
    let send = |host: String| {
        let addr = proxy.addr;
        async move {
            raw_answer(
                addr,
                &format!("GET /page HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
            )
            .await
        }
    };
    let answer = send("www.example.com".into()).await;
    assert_eq!(status_and_body(&answer), (200, "www"), "{answer}");
    let answer = send("other.example.com".into()).await;
    assert_eq!(status_and_body(&answer), (200, "default"), "{answer}");
    for judged_as_admin in [
        "admin.example.com",
        "ADMIN.Example.COM",
        "admin.example.com.",
        "admin.example.com:8080",
        "admin.example.com.:80",
    ] {
        let answer = send(judged_as_admin.into()).await;
        assert_eq!(
            status_and_body(&answer).0,
            401,
            "{judged_as_admin}: {answer}"
        );
    }

    let mut refused = 0;
    for host in HOSTILE {
        let answer = send((*host).to_owned()).await;
        let (status, body) = status_and_body(&answer);
        assert_ne!(
            body, "admin",
            "Host {host:?} reached the admin virtual host: {answer}"
        );
        // 401: judged as the admin route itself (surrounding whitespace is not part of a value).
        if status == 400 || status == 401 {
            refused += 1;
            continue;
        }
        // Anything served was judged by a public route: it must land on that route's host.
        assert_eq!(status, 200, "Host {host:?}: {answer}");
        assert!(
            body == "www" || body == "default",
            "Host {host:?}: {answer}"
        );
    }
    assert_eq!(refused, HOSTILE.len(), "every hostile spelling is refused");

    // HTTP/1.0 without Host would reach nginx's default server unjudged.
    let answer = raw_answer(proxy.addr, "GET /page HTTP/1.0\r\n\r\n").await;
    assert_eq!(status_and_body(&answer).0, 400, "{answer}");
}

#[tokio::test]
async fn the_backend_and_x_forwarded_host_get_the_judged_host() {
    let be = EchoBackend::start("a");
    let proxy = Proxy::start(policy_config(&vhost_policy(&be.target())));
    for (sent, judged) in [
        ("WWW.Example.COM", "www.example.com"),
        ("www.example.com.", "www.example.com"),
        ("www.example.com:0080", "www.example.com:80"),
        ("www.example.com:8443", "www.example.com:8443"),
        ("127.0.0.1:9", "127.0.0.1:9"),
        ("[0:0::1]:9", "[::1]:9"),
    ] {
        let head = format!(
            "GET /p HTTP/1.1\r\nHost: {sent}\r\nX-Forwarded-Host: admin.example.com\r\n\
             Connection: close\r\n\r\n"
        );
        let answer = raw_answer(proxy.addr, &head).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{sent}: {answer}");
        let seen = be.requests().pop().unwrap();
        assert_eq!(seen.header("host"), Some(judged), "{sent}");
        assert_eq!(seen.header("x-forwarded-host"), Some(judged), "{sent}");
    }
}

/// HTTP/2's `:authority` goes through the same parse: what `http::Uri` lets a client send but
/// a backend could read as another host is refused; the judged host is what nginx is sent.
#[tokio::test]
async fn h2_authority_is_parsed_the_same_way() {
    let (ca, cert, key) = support::certs::certificates();
    let nginx = Nginx::vhosts(&[("admin.example.com", "admin"), ("www.example.com", "www")]);
    let proxy = Proxy::start_tls(
        policy_config(&vhost_policy(&nginx.addr.to_string())),
        &cert,
        &key,
    );
    let status = |authority: &str| {
        let req = http::Request::builder()
            .method("GET")
            .uri(format!("https://{authority}/page"))
            .body(())
            .unwrap();
        let (addr, ca) = (proxy.addr, ca.clone());
        async move { support::h2::send_raw(addr, &ca, req).await.unwrap() }
    };
    assert_eq!(status("www.example.com").await, 200);
    assert_eq!(status("WWW.example.com.:443").await, 200);
    assert_eq!(status("ADMIN.example.com").await, 401);
    assert_eq!(status("admin.example.com.").await, 401);
    for authority in [
        "admin..example.com",
        "admin.example.com..",
        ".admin.example.com",
        "admin.example.com,www.example.com",
        "admin.example.com;www.example.com",
        "user@admin.example.com",
        "[admin.example.com]",
        "127.1",
        "0x7f.0.0.1",
        "admin.example.com:",
        "admin.example.com:99999",
    ] {
        assert_eq!(status(authority).await, 400, ":authority {authority}");
    }
    let _ = std::fs::remove_dir_all(ca.parent().unwrap());
}
