//! Identity for every issuer and every backend, end to end: four real JWKS issuers whose tokens
//! are shaped as Keycloak's, Okta's, Entra ID's and Auth0's, a real echo backend and the real
//! proxy. Groups and scopes are read where each issuer's settings say; arrays reach the backend
//! byte for byte in the chosen encoding; only the chosen built-in headers are sent.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use poolgate_authorizer::testutil::{TestIssuer, unix_now};
use serde_json::{Value, json};
use support::backend::EchoBackend;
use support::client::{Reply, send};
use support::harness::{Proxy, policy_config};

const POLICY: &str = r#"version: 1
issuers:
  keycloak:
    issuer: "K_ISS"
    jwks_url: "K_JWKS"
    token_use: any
    claims: { groups: /realm_access/roles }
  okta:
    issuer: "O_ISS"
    jwks_url: "O_JWKS"
    token_use: any
    claims: { groups: /groups, scopes: /scp }
  entra:
    issuer: "E_ISS"
    jwks_url: "E_JWKS"
    token_use: any
    claims: { groups: /roles, scopes: /scp }
  auth0:
    issuer: "A_ISS"
    jwks_url: "A_JWKS"
    token_use: any
    claims: { groups: "/https:~1~1example.com~1roles", scopes: /permissions }
upstreams:
  app:
    targets: ["BACKEND"]
roles:
  reader:
    allow: [ { methods: [GET], paths: ["/*/docs/**"] } ]
  writer:
    allow: [ { methods: [POST], paths: ["/*/docs/**"] } ]
  auditor:
    allow: [ { methods: [GET], paths: ["/*/audit/**"] } ]
  admin:
    allow: [ { methods: [GET], paths: ["/a/admin/**"] } ]
role_mapping:
  groups: { readers: [reader], writers: [writer], admins: [admin] }
  rules:
    - { claim: "cognito:groups", equals: auditors, roles: [auditor] }
identity_headers:
  send: [sub, groups, roles, scopes]
  encoding: csv
  encodings: { roles: sf-list, scopes: json }
routes:
  - name: keycloak
    match: { path: "/k/**" }
    upstream: app
    auth: { issuer: keycloak, scopes: { any_of: ["docs:read"] } }
  - name: okta
    match: { path: "/o/**" }
    upstream: app
    auth: { issuer: okta, scopes: { any_of: ["docs:read"] } }
  - name: entra
    match: { path: "/e/**" }
    upstream: app
    auth: { issuer: entra, scopes: { any_of: ["docs:read"] } }
  - name: auth0-admin
    match: { path: "/a/admin/**" }
    upstream: app
    auth: { issuer: auth0, roles: [admin] }
  - name: auth0
    match: { path: "/a/**" }
    upstream: app
    auth: { issuer: auth0, scopes: { any_of: ["docs:read"] } }
    headers: { x-perms: permissions }
    header_encoding: sf-list
"#;

struct Env {
    keycloak: TestIssuer,
    okta: TestIssuer,
    entra: TestIssuer,
    auth0: TestIssuer,
    be: EchoBackend,
    proxy: Proxy,
}

async fn env() -> Env {
    let keycloak = TestIssuer::start_with_pool("realms/main").await.unwrap();
    let okta = TestIssuer::start_with_pool("oauth2/default").await.unwrap();
    let entra = TestIssuer::start_with_pool("tenant/v2.0").await.unwrap();
    let auth0 = TestIssuer::start_with_pool("auth0").await.unwrap();
    let be = EchoBackend::start("app");
    let mut yaml = POLICY.replace("BACKEND", &be.target());
    for (tag, i) in [("K", &keycloak), ("O", &okta), ("E", &entra), ("A", &auth0)] {
        yaml = yaml
            .replace(&format!("{tag}_ISS"), &i.issuer)
            .replace(&format!("{tag}_JWKS"), &i.jwks_url);
    }
    let proxy = Proxy::start(policy_config(&yaml));
    proxy.wait_ready().await;
    Env {
        keycloak,
        okta,
        entra,
        auth0,
        be,
        proxy,
    }
}

/// A token of `issuer` with the standard claims and `extra` (no Cognito claims at all).
fn token(issuer: &TestIssuer, sub: &str, extra: Value) -> String {
    let now = unix_now();
    let mut claims = json!({"iss": issuer.issuer, "sub": sub, "iat": now, "exp": now + 600});
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    issuer.access_key().sign_claims(&claims)
}

impl Env {
    /// Sends `method path` with `token`; the answer, and what the backend saw (if reached).
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        extra: &[(&str, &str)],
    ) -> (Reply, Option<support::backend::Recorded>) {
        let before = self.be.count();
        let auth = format!("Bearer {token}");
        let mut headers = vec![("authorization", auth.as_str())];
        headers.extend_from_slice(extra);
        let r = send(self.proxy.addr, method, path, &headers, bytes::Bytes::new()).await;
        let seen = (self.be.count() > before).then(|| self.be.requests().pop().unwrap());
        (r, seen)
    }

    async fn status(&self, method: &str, path: &str, token: &str) -> u16 {
        self.call(method, path, token, &[]).await.0.status
    }
}

#[tokio::test]
async fn each_issuer_is_read_where_its_settings_say() {
    let e = env().await;

    // Keycloak: realm roles nested under realm_access, scopes as OAuth's space-separated string.
    let kc = token(
        &e.keycloak,
        "kc-user",
        json!({"realm_access": {"roles": ["readers", "offline_access"]},
               "scope": "openid docs:read"}),
    );
    let (r, seen) = e.call("GET", "/k/docs/1", &kc, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = seen.unwrap();
    assert_eq!(seen.header("x-auth-groups"), Some("readers,offline_access"));
    assert_eq!(seen.header("x-auth-roles"), Some(r#""reader""#));
    assert_eq!(
        seen.header("x-auth-scopes"),
        Some(r#"["openid","docs:read"]"#)
    );
    assert_eq!(
        e.status("POST", "/k/docs/1", &kc).await,
        403,
        "readers may not write"
    );
    let no_scope = token(
        &e.keycloak,
        "kc-user",
        json!({"realm_access": {"roles": ["readers"]}, "scope": "openid"}),
    );
    assert_eq!(e.status("GET", "/k/docs/1", &no_scope).await, 403);
    // The Cognito place means nothing to this issuer: writers there grant nothing.
    let cognito_place = token(
        &e.keycloak,
        "kc-user",
        json!({"cognito:groups": ["writers"], "scope": "docs:read"}),
    );
    assert_eq!(e.status("POST", "/k/docs/1", &cognito_place).await, 403);

    // Okta: `groups`, and `scp` as an array.
    let okta = token(
        &e.okta,
        "okta-user",
        json!({"groups": ["writers"], "scp": ["docs:read", "openid"]}),
    );
    assert_eq!(e.status("POST", "/o/docs/1", &okta).await, 200);
    assert_eq!(
        e.status("GET", "/o/docs/1", &okta).await,
        403,
        "writers may not read"
    );
    let okta_no_scope = token(
        &e.okta,
        "okta-user",
        json!({"groups": ["writers"], "scp": ["openid"], "scope": "docs:read"}),
    );
    assert_eq!(e.status("POST", "/o/docs/1", &okta_no_scope).await, 403);

    // Entra ID: app roles in `roles`, matched by a claim rule written on `cognito:groups`;
    // `scp` a space-separated string.
    let entra = token(
        &e.entra,
        "entra-user",
        json!({"roles": ["auditors"], "scp": "docs:read User.Read"}),
    );
    let (r, seen) = e.call("GET", "/e/audit/log", &entra, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(seen.unwrap().header("x-auth-roles"), Some(r#""auditor""#));
    assert_eq!(e.status("GET", "/e/docs/1", &entra).await, 403);

    // Auth0: a namespaced claim with `:` and `/` in its name; scopes from `permissions`.
    let a0 = token(
        &e.auth0,
        "auth0|abc",
        json!({"https://example.com/roles": ["readers"],
               "permissions": ["docs:read", "docs:list"]}),
    );
    let (r, seen) = e.call("GET", "/a/docs/1", &a0, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = seen.unwrap();
    assert_eq!(seen.header("x-auth-groups"), Some("readers"));
    assert_eq!(seen.header("x-perms"), Some(r#""docs:read", "docs:list""#));
    // auth.roles reads the roles mapped from the issuer's groups, not from `cognito:groups`.
    assert_eq!(e.status("GET", "/a/admin/x", &a0).await, 403);
    let a0_admin = token(
        &e.auth0,
        "auth0|abc",
        json!({"https://example.com/roles": ["admins"], "permissions": []}),
    );
    assert_eq!(e.status("GET", "/a/admin/x", &a0_admin).await, 200);
    let a0_cognito_place = token(
        &e.auth0,
        "auth0|abc",
        json!({"cognito:groups": ["admins"], "permissions": []}),
    );
    assert_eq!(e.status("GET", "/a/admin/x", &a0_cognito_place).await, 403);
}

#[tokio::test]
async fn a_claim_of_the_wrong_shape_is_a_malformed_token_and_never_reaches_the_backend() {
    let e = env().await;
    let cases = [
        (
            &e.keycloak,
            "/k/docs/1",
            json!({"realm_access": {"roles": "readers"}, "scope": "docs:read"}),
        ),
        (
            &e.keycloak,
            "/k/docs/1",
            json!({"realm_access": {"roles": ["readers", 7]}, "scope": "docs:read"}),
        ),
        // A step into a string is the wrong shape, not an absent claim.
        (
            &e.keycloak,
            "/k/docs/1",
            json!({"realm_access": "readers", "scope": "docs:read"}),
        ),
        (
            &e.okta,
            "/o/docs/1",
            json!({"groups": ["readers"], "scp": 5}),
        ),
        (
            &e.entra,
            "/e/docs/1",
            json!({"roles": {"readers": true}, "scp": "docs:read"}),
        ),
        (
            &e.auth0,
            "/a/docs/1",
            json!({"https://example.com/roles": ["readers"], "permissions": [["docs:read"]]}),
        ),
    ];
    for (issuer, path, claims) in cases {
        let (r, seen) = e
            .call("GET", path, &token(issuer, "u", claims.clone()), &[])
            .await;
        assert_eq!(r.status, 401, "{claims}: {}", r.text());
        assert_eq!(r.json()["reason"], "malformed", "{claims}");
        assert!(seen.is_none(), "{claims} reached the backend");
    }
}

#[tokio::test]
async fn elements_an_encoding_cannot_carry_are_refused_before_the_backend() {
    let e = env().await;
    let cases = [
        // csv: a comma would split one group into two; an empty one would vanish.
        (
            "/k/docs/1",
            &e.keycloak,
            json!({"realm_access": {"roles": ["readers", "a,b"]}, "scope": "docs:read"}),
        ),
        (
            "/k/docs/1",
            &e.keycloak,
            json!({"realm_access": {"roles": ["readers", ""]}, "scope": "docs:read"}),
        ),
        (
            "/k/docs/1",
            &e.keycloak,
            json!({"realm_access": {"roles": ["readers", " padded"]}, "scope": "docs:read"}),
        ),
        (
            "/k/docs/1",
            &e.keycloak,
            json!({"realm_access": {"roles": ["readers", "caf\u{e9}"]}, "scope": "docs:read"}),
        ),
        // sf-list (the route's header): RFC 8941 strings are ASCII.
        (
            "/a/docs/1",
            &e.auth0,
            json!({"https://example.com/roles": ["readers"], "permissions": ["docs:read", "caf\u{e9}"]}),
        ),
    ];
    for (path, issuer, claims) in cases {
        let (r, seen) = e
            .call("GET", path, &token(issuer, "u", claims.clone()), &[])
            .await;
        assert_eq!(r.status, 400, "{claims}: {}", r.text());
        assert_eq!(r.json()["reason"], "identity_unrepresentable", "{claims}");
        assert!(seen.is_none(), "{claims} reached the backend");
    }
    // The same elements are carried where the encoding can: scopes are JSON here.
    let kc = token(
        &e.keycloak,
        "u",
        json!({"realm_access": {"roles": ["readers"]}, "scope": "docs:read a,b caf\u{e9}"}),
    );
    let (r, seen) = e.call("GET", "/k/docs/1", &kc, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        seen.unwrap().header("x-auth-scopes"),
        Some(r#"["docs:read","a,b","caf\u00e9"]"#)
    );
}

#[tokio::test]
async fn only_the_chosen_headers_are_sent_and_no_client_copy_of_any_gets_through() {
    let e = env().await;
    let kc = token(
        &e.keycloak,
        "kc-user",
        json!({"realm_access": {"roles": ["readers"]}, "scope": "docs:read",
               "preferred_username": "kim", "azp": "web"}),
    );
    let spoofed = [
        ("x-auth-username", "root"),
        ("X_Auth_Token_Use", "id"),
        ("x-auth-client-id", "admin-console"),
        ("x-auth-issuer", "https://evil.example"),
        ("x-auth-groups", "admins"),
    ];
    let (r, seen) = e.call("GET", "/k/docs/1", &kc, &spoofed).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = seen.unwrap();
    let mut identity: Vec<(String, String)> = seen
        .headers
        .iter()
        .filter(|(k, _)| {
            let k = k.to_ascii_lowercase().replace('_', "-");
            k.starts_with("x-auth-")
        })
        .cloned()
        .collect();
    identity.sort();
    assert_eq!(
        identity,
        [
            ("x-auth-groups".to_owned(), "readers".to_owned()),
            ("x-auth-roles".to_owned(), r#""reader""#.to_owned()),
            ("x-auth-scopes".to_owned(), r#"["docs:read"]"#.to_owned()),
            ("x-auth-sub".to_owned(), "kc-user".to_owned()),
        ]
    );
}

/// A cached identity keeps the headers built for it, but only for the configuration that built
/// them: after a reload the same token gets the new names and encodings, and none of the old.
#[tokio::test]
async fn a_cached_identity_gets_the_headers_of_the_configuration_reloaded_since() {
    let issuer = TestIssuer::start().await.unwrap();
    let be = EchoBackend::start("app");
    let policy = |prefix: &str, encoding: &str| {
        format!(
            r#"version: 1
issuers:
  shop: {{ issuer: "{iss}", jwks_url: "{jwks}", cognito_style: true, app_clients: ["{client}"] }}
upstreams:
  app: {{ targets: ["{be}"] }}
roles:
  reader: {{ allow: [ {{ methods: [GET], paths: ["/**"] }} ] }}
role_mapping:
  groups: {{ readers: [reader], writers: [reader] }}
identity_headers: {{ prefix: "{prefix}", encoding: {encoding} }}
routes:
  - {{ name: all, match: {{ path: "/**" }}, upstream: app, auth: {{ issuer: shop }} }}
"#,
            iss = issuer.issuer,
            jwks = issuer.jwks_url,
            client = issuer.client_id,
            be = be.target(),
        )
    };
    let dir = std::env::temp_dir().join(format!("poolgate-kept-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("policy.yaml");
    std::fs::write(&path, policy("x-a-", "json")).unwrap();
    let proxy = Proxy::start_reloadable(&path).await;
    let token = issuer.mint_access("dana", &["readers", "writers"], &[]);
    let auth = format!("Bearer {token}");
    let sub = issuer.access_claims("dana", &[], &[]).0["sub"]
        .as_str()
        .unwrap()
        .to_owned();
    let identity_of = |seen: &support::backend::Recorded| {
        let mut h: Vec<(String, String)> = seen
            .headers
            .iter()
            .filter(|(k, _)| k.starts_with("x-a-") || k.starts_with("x-b-"))
            .filter(|(k, _)| !k.ends_with("-issuer"))
            .cloned()
            .collect();
        h.sort();
        h
    };
    let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    // Twice: the second request is a cache hit, served the kept headers.
    for _ in 0..2 {
        let r = support::client::get(proxy.addr, "/x", &[("authorization", auth.as_str())]).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(
            identity_of(&be.requests().pop().unwrap()),
            [
                pair("x-a-groups", r#"["readers","writers"]"#),
                pair("x-a-sub", &sub)
            ]
        );
    }
    std::fs::write(&path, policy("x-b-", "csv")).unwrap();
    poolgate_proxy::reload::reload(&proxy.shared, &path)
        .await
        .unwrap();
    let r = support::client::get(proxy.addr, "/x", &[("authorization", auth.as_str())]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        identity_of(&be.requests().pop().unwrap()),
        [pair("x-b-groups", "readers,writers"), pair("x-b-sub", &sub)]
    );
    let _ = std::fs::remove_dir_all(&dir);
}
