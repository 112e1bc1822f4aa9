//! The ALB-compatible signed identity end to end: a real JWKS issuer, a real echo backend and
//! the real proxy. The assertion a backend receives is checked as ALB verification code checks
//! it, with another JOSE implementation (jsonwebtoken) than the one that signed it (aws-lc-rs),
//! against the keys poolgate publishes, through a key rollover.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey};
use poolgate_authorizer::testutil::{TestIssuer, p256_private_key_pem, unix_now};
use serde_json::Value;
use support::backend::EchoBackend;
use support::client::get;
use support::harness::Proxy;

const SIGNER: &str =
    "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/web/50dc6c495c0c9188";
const PUBLISH: &str = "/.well-known/poolgate-identity";

fn write_key(dir: &Path, name: &str) {
    std::fs::write(dir.join(name), p256_private_key_pem().unwrap()).unwrap();
}

fn policy(issuer: &TestIssuer, be: &EchoBackend, kids: &[&str]) -> String {
    let keys: Vec<String> = kids
        .iter()
        .map(|k| format!("    - {{ kid: {k}, file: {k}.pem }}\n"))
        .collect();
    format!(
        r#"version: 1
issuers:
  shop:
    issuer: "{iss}"
    jwks_url: "{jwks}"
    cognito_style: true
    app_clients: ["{client}"]
signed_identity:
  signer: "{SIGNER}"
  ttl: 60s
  publish_path: {PUBLISH}
  keys:
{keys}upstreams:
  app: {{ targets: ["{be}"] }}
roles:
  reader:
    allow: [ {{ methods: [GET], paths: ["/**"] }} ]
role_mapping:
  groups: {{ readers: [reader] }}
routes:
  - name: web
    match: {{ path: "/web/**" }}
    upstream: app
    auth: {{ issuer: shop }}
    signed_identity: true
  - name: web-edge-token
    match: {{ path: "/edge/**" }}
    upstream: app
    auth: {{ issuer: shop }}
    signed_identity: true
    forward_token: false
  - name: api
    match: {{ path: "/api/**" }}
    upstream: app
    auth: {{ issuer: shop }}
"#,
        iss = issuer.issuer,
        jwks = issuer.jwks_url,
        client = issuer.client_id,
        be = be.target(),
        keys = keys.concat(),
    )
}

struct Env {
    issuer: TestIssuer,
    be: EchoBackend,
    proxy: Proxy,
    path: PathBuf,
}

async fn env(tag: &str) -> Env {
    let issuer = TestIssuer::start().await.unwrap();
    let be = EchoBackend::start("app");
    let dir = std::env::temp_dir().join(format!("poolgate-signed-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    write_key(&dir, "a.pem");
    write_key(&dir, "b.pem");
    let path = dir.join("policy.yaml");
    std::fs::write(&path, policy(&issuer, &be, &["a"])).unwrap();
    let proxy = Proxy::start_reloadable(&path).await;
    Env {
        issuer,
        be,
        proxy,
        path,
    }
}

impl Env {
    /// What the backend got for `path` with `token`: the three headers.
    async fn seen(&self, path: &str, token: &str, extra: &[(&str, &str)]) -> [Option<String>; 3] {
        let auth = format!("Bearer {token}");
        let mut headers = vec![("authorization", auth.as_str())];
        headers.extend_from_slice(extra);
        let r = get(self.proxy.addr, path, &headers).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let seen = self.be.requests().pop().unwrap();
        [
            "x-amzn-oidc-data",
            "x-amzn-oidc-identity",
            "x-amzn-oidc-accesstoken",
        ]
        .map(|h| seen.header(h).map(str::to_owned))
    }

    async fn jwks(&self) -> JwkSet {
        let r = get(self.proxy.admin, "/identity/jwks.json", &[]).await;
        assert_eq!(r.status, 200, "{}", r.text());
        serde_json::from_slice(&r.body).unwrap()
    }

    async fn rotate(&self, kids: &[&str]) {
        std::fs::write(&self.path, policy(&self.issuer, &self.be, kids)).unwrap();
        poolgate_proxy::reload::reload(&self.proxy.shared, &self.path)
            .await
            .unwrap();
    }
}

/// Checks `token` as ALB verification code does: padded base64url parts, ES256 over the padded
/// text with the key of its `kid`, the `signer`; returns the header and the body.
fn verify(token: &str, keys: &JwkSet) -> Result<(Value, Value), String> {
    let parts: Vec<&str> = token.split('.').collect();
    let [h, b, s] = parts[..] else {
        return Err(format!("{} parts", parts.len()));
    };
    for part in [h, b, s] {
        let raw = URL_SAFE.decode(part).map_err(|e| format!("{part}: {e}"))?;
        if URL_SAFE.encode(&raw) != part {
            return Err(format!("{part} is not canonical padded base64url"));
        }
    }
    let header: Value = serde_json::from_slice(&URL_SAFE.decode(h).unwrap()).unwrap();
    let body: Value = serde_json::from_slice(&URL_SAFE.decode(b).unwrap()).unwrap();
    let kid = header["kid"].as_str().ok_or("no kid")?;
    let jwk = keys.find(kid).ok_or(format!("kid {kid} not published"))?;
    let key = DecodingKey::from_jwk(jwk).unwrap();
    // The signature covers the padded text; its own padding is not part of what is decoded.
    let signed = jsonwebtoken::crypto::verify(
        s.trim_end_matches('='),
        format!("{h}.{b}").as_bytes(),
        &key,
        Algorithm::ES256,
    )
    .unwrap();
    if !signed {
        return Err("bad signature".to_owned());
    }
    if header["alg"] != "ES256" || header["signer"] != SIGNER {
        return Err(format!("header {header}"));
    }
    Ok((header, body))
}

#[tokio::test]
async fn backends_get_an_alb_style_assertion_they_can_verify() {
    let e = env("verify").await;
    let token = e.issuer.mint_access("alice", &["readers"], &["openid"]);
    let sub = e.issuer.access_claims("alice", &[], &[]).0["sub"]
        .as_str()
        .unwrap()
        .to_owned();
    let spoof = [
        ("x-amzn-oidc-data", "eyJhbGciOiJub25lIn0=.e30=."),
        ("X_Amzn_Oidc_Identity", "root"),
    ];
    let [data, identity, access] = e.seen("/web/1", &token, &spoof).await;
    assert_eq!(identity.as_deref(), Some(sub.as_str()));
    assert_eq!(access.as_deref(), Some(token.as_str()));
    let data = data.unwrap();
    let keys = e.jwks().await;
    let (header, body) = verify(&data, &keys).unwrap();
    assert_eq!(header["typ"], "JWT");
    assert_eq!(header["kid"], "a");
    assert_eq!(header["iss"], e.issuer.issuer.as_str());
    assert_eq!(header["client"], e.issuer.client_id.as_str());
    let exp = header["exp"].as_u64().unwrap();
    let now = unix_now();
    assert!(exp > now && exp <= now + 61, "exp {exp}, now {now}");
    assert_eq!(body["exp"], header["exp"]);
    assert_eq!(body["iss"], e.issuer.issuer.as_str());
    assert_eq!(body["sub"], sub.as_str());
    assert_eq!(body["username"], "alice");
    assert_eq!(body["cognito:groups"], serde_json::json!(["readers"]));

    // The check can fail: another body under the same signature, or the padding stripped.
    let (h, rest) = data.split_once('.').unwrap();
    let (_, s) = rest.split_once('.').unwrap();
    let forged_body = URL_SAFE.encode(br#"{"sub":"root"}"#);
    assert_eq!(
        verify(&format!("{h}.{forged_body}.{s}"), &keys).unwrap_err(),
        "bad signature"
    );
    let unpadded = data.replace('=', "");
    assert!(verify(&unpadded, &keys).is_err());

    // The same key as PEM, from the admin listener and from the public path, verifies too.
    for (addr, path) in [
        (e.proxy.admin, "/identity/a".to_owned()),
        (e.proxy.addr, format!("{PUBLISH}/a")),
    ] {
        let r = get(addr, &path, &[]).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert!(
            r.text().starts_with("-----BEGIN PUBLIC KEY-----\n"),
            "{}",
            r.text()
        );
        let key = DecodingKey::from_ec_pem(&r.body).unwrap();
        let signed = jsonwebtoken::crypto::verify(
            s.trim_end_matches('='),
            format!("{h}.{}", rest.split_once('.').unwrap().0).as_bytes(),
            &key,
            Algorithm::ES256,
        )
        .unwrap();
        assert!(signed, "{path}");
    }
    let published = get(e.proxy.addr, &format!("{PUBLISH}/jwks.json"), &[]).await;
    assert_eq!(published.json(), serde_json::to_value(&keys).unwrap());
    assert_eq!(
        get(e.proxy.addr, &format!("{PUBLISH}/zz"), &[])
            .await
            .status,
        404
    );

    // One assertion per token while it is fresh; another token gets its own.
    let [again, _, _] = e.seen("/web/2", &token, &[]).await;
    assert_eq!(again.as_deref(), Some(data.as_str()));
    let other = e.issuer.mint_access("bob", &["readers"], &[]);
    let [bobs, _, _] = e.seen("/web/1", &other, &[]).await;
    assert_ne!(bobs.as_deref(), Some(data.as_str()));
    assert_eq!(verify(&bobs.unwrap(), &keys).unwrap().1["username"], "bob");

    // A route that keeps the token at the edge keeps it out of x-amzn-oidc-accesstoken too.
    let [edge_data, edge_id, edge_token] = e.seen("/edge/1", &token, &[]).await;
    assert!(verify(&edge_data.unwrap(), &keys).is_ok());
    assert_eq!(edge_id.as_deref(), Some(sub.as_str()));
    assert_eq!(edge_token, None);

    // A route without it sends none, and a client's copy never gets through.
    let [none, none_id, none_token] = e.seen("/api/1", &token, &spoof).await;
    assert_eq!((none, none_id, none_token), (None, None, None));
}

#[tokio::test]
async fn keys_rotate_without_an_assertion_a_caching_backend_cannot_verify() {
    let e = env("rotate").await;
    let token = e.issuer.mint_access("carol", &["readers"], &[]);
    // A backend that fetched the keys at one step still verifies every assertion of the next.
    let mut held = e.jwks().await;
    let steps: [(&[&str], &str); 4] = [
        (&["a"], "a"),
        (&["a", "b"], "a"), // b published before it signs
        (&["b", "a"], "b"), // b signs, a still published
        (&["b"], "b"),
    ];
    for (kids, signing) in steps {
        e.rotate(kids).await;
        let [data, _, _] = e.seen("/web/1", &token, &[]).await;
        let (header, _) = verify(data.as_deref().unwrap(), &held)
            .unwrap_or_else(|err| panic!("keys {kids:?}: {err}"));
        assert_eq!(header["kid"], signing, "keys {kids:?}");
        held = e.jwks().await;
        let published: Vec<&str> = held
            .keys
            .iter()
            .filter_map(|k| k.common.key_id.as_deref())
            .collect();
        assert_eq!(published, kids);
    }
    // Skipping the publish-first step is what fails: a backend holding only `b` cannot check `a`.
    let only_b = e.jwks().await;
    e.rotate(&["a"]).await;
    let [data, _, _] = e.seen("/web/1", &token, &[]).await;
    assert_eq!(
        verify(data.as_deref().unwrap(), &only_b).unwrap_err(),
        "kid a not published"
    );
}
