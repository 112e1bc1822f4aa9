#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Decisions end to end: policy text → load → match → decide.

use poolgate_policies::{Authority, Config, Effect, Principal, Reason, load_str, normalize_path};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn host(raw: &str) -> Authority<'_> {
    Authority::parse(raw.as_bytes()).unwrap()
}

const POLICY: &str = r#"
version: 1
issuers:
  shop: { cognito: { region: eu-west-1, user_pool_id: eu-west-1_AbC123 }, app_clients: [c1] }
  partner: { issuer: "https://idp.partner.example", jwks_url: "https://idp.partner.example/jwks" }
upstreams:
  app: { targets: ["127.0.0.1:3000"] }
roles:
  admin: { allow: [ { methods: ["*"], paths: ["/**"] } ] }
  reader:
    allow: [ { methods: [GET, HEAD], paths: ["/orders/**", "/catalog/**"] } ]
    deny: [ { methods: [GET], paths: ["/orders/internal/**"] } ]
  owner: { allow: [ { methods: [GET, PUT], paths: ["/users/{sub}", "/users/{sub}/**"] } ] }
  gold: { allow: [ { methods: [GET], paths: ["/premium/**"] } ] }
  silver: { allow: [ { methods: [GET], paths: ["/silver/**"] } ] }
  browse: { allow: [ { methods: [GET], paths: ["/catalog/**"] } ] }
  ops: { allow: [ { methods: [GET], paths: ["/ops/**"] } ] }
role_mapping:
  groups: { admins: [admin], readers: [reader] }
  preferred_role: { "arn:aws:iam::1:role/ops": [ops] }
  rules:
    - { claim: "custom:tier", equals: gold, roles: [gold] }
    - { claim: "custom:tier", starts_with: g, roles: [silver] }
  authenticated: [owner]
  guest: [browse]
routes:
  - { name: health, match: { path: /healthz }, upstream: app, public: true }
  - { name: catalog, match: { path: "/catalog/**" }, upstream: app }
  - name: orders
    match: { path: "/orders/**" }
    upstream: app
    auth: { issuer: shop, token_use: access, scopes: { any_of: [orders/read, orders/admin] } }
  - name: orders-write
    match: { path: "/orders/**", methods: [POST, PUT, DELETE] }
    upstream: app
    auth: { issuer: shop, scopes: { all_of: [orders/read, orders/write] } }
  - { name: users, match: { path: "/users/**" }, upstream: app, auth: { issuer: shop } }
  - { name: premium, match: { path: "/premium/**" }, upstream: app }
  - { name: silver, match: { path: "/silver/**" }, upstream: app }
  - { name: ops, match: { path: "/ops/**" }, upstream: app }
  - { name: admin, match: { path: "/admin/**" }, upstream: app, auth: { roles: [admin] } }
"#;

fn config() -> Config {
    load_str("inline.yaml", POLICY, &|_| None).unwrap_or_else(|d| panic!("{d}"))
}

struct Id {
    issuer: &'static str,
    token_use: &'static str,
    groups: Vec<String>,
    scopes: Vec<String>,
    claims: Map<String, Value>,
}

fn id(groups: &[&str], scopes: &[&str], claims: Value) -> Id {
    Id {
        issuer: "shop",
        token_use: "access",
        groups: groups.iter().map(|s| (*s).to_owned()).collect(),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        claims: claims.as_object().cloned().unwrap_or_default(),
    }
}

impl Id {
    fn principal(&self) -> Principal<'_> {
        Principal {
            issuer: self.issuer,
            token_use: Some(self.token_use),
            groups: &self.groups,
            scopes: &self.scopes,
            has_groups_claim: !self.groups.is_empty() || self.claims.contains_key("cognito:groups"),
            has_scopes_claim: !self.scopes.is_empty() || self.claims.contains_key("scope"),
            claims: &self.claims,
        }
    }
}

fn reason(c: &Config, method: &str, path: &str, who: Option<&Id>) -> Reason {
    let p = who.map(Id::principal);
    c.decide_request(&host("api.example.com"), method, path, p.as_ref())
        .reason
}

#[test]
fn public_and_tokenless() {
    let c = config();
    assert_eq!(reason(&c, "GET", "/healthz", None), Reason::Public);
    assert_eq!(reason(&c, "GET", "/nowhere", None), Reason::NoRoute);
    // Guest roles apply only without a token, and only where the route has no requirements.
    assert_eq!(reason(&c, "GET", "/catalog/shoes", None), Reason::Allowed);
    assert_eq!(reason(&c, "POST", "/catalog/shoes", None), Reason::NoToken);
    assert_eq!(reason(&c, "GET", "/orders/1", None), Reason::NoToken);
    assert_eq!(reason(&c, "GET", "/admin/x", None), Reason::NoToken);
    // An identity does not get guest roles.
    let nobody = id(&[], &[], json!({"sub": "u1"}));
    assert_eq!(
        reason(&c, "GET", "/catalog/shoes", Some(&nobody)),
        Reason::NoRoleAllows
    );
}

#[test]
fn token_requirements_come_first() {
    let c = config();
    let mut reader = id(&["readers"], &["orders/read"], json!({"sub": "u1"}));
    assert_eq!(
        reason(&c, "GET", "/orders/1", Some(&reader)),
        Reason::Allowed
    );
    reader.scopes = vec!["profile".into()];
    assert_eq!(reason(&c, "GET", "/orders/1", Some(&reader)), Reason::Scope);
    reader.scopes = vec!["orders/admin".into()];
    assert_eq!(
        reason(&c, "GET", "/orders/1", Some(&reader)),
        Reason::Allowed,
        "any_of"
    );
    reader.token_use = "id";
    assert_eq!(
        reason(&c, "GET", "/orders/1", Some(&reader)),
        Reason::WrongTokenUse
    );
    reader.token_use = "access";
    reader.issuer = "partner";
    assert_eq!(
        reason(&c, "GET", "/orders/1", Some(&reader)),
        Reason::WrongIssuer
    );
    let mut admin = id(&["admins"], &["orders/read"], json!({}));
    assert_eq!(
        reason(&c, "POST", "/orders/1", Some(&admin)),
        Reason::Scope,
        "all_of needs both"
    );
    admin.scopes.push("orders/write".into());
    assert_eq!(
        reason(&c, "POST", "/orders/1", Some(&admin)),
        Reason::Allowed
    );
}

#[test]
fn explicit_deny_wins_and_decision_says_why() {
    let c = config();
    let both = id(&["readers", "admins"], &["orders/read"], json!({}));
    let p = both.principal();
    let d = c.decide_request(&host("h"), "GET", "/orders/internal/x", Some(&p));
    assert!(!d.allowed);
    assert_eq!(d.reason, Reason::ExplicitDeny);
    let s = d.statement.unwrap();
    assert_eq!((s.role, s.effect, s.index), ("reader", Effect::Deny, 0));
    assert_eq!(d.route, Some("orders"));
    assert!(
        d.roles.contains(&"admin") && d.roles.contains(&"reader") && d.roles.contains(&"owner")
    );
    let d = c.decide_request(&host("h"), "GET", "/orders/7", Some(&p));
    assert!(d.allowed);
    assert_eq!(d.statement.unwrap().effect, Effect::Allow);
}

#[test]
fn owner_rule_uses_the_sub_claim() {
    let c = config();
    let u = id(&[], &[], json!({"sub": "1b2c-3d"}));
    assert_eq!(
        reason(&c, "GET", "/users/1b2c-3d", Some(&u)),
        Reason::Allowed
    );
    assert_eq!(
        reason(&c, "PUT", "/users/1b2c-3d/profile", Some(&u)),
        Reason::Allowed
    );
    assert_eq!(
        reason(&c, "GET", "/users/someone-else", Some(&u)),
        Reason::NoRoleAllows
    );
    assert_eq!(
        reason(&c, "DELETE", "/users/1b2c-3d", Some(&u)),
        Reason::NoRoleAllows
    );
    let sneaky = id(&[], &[], json!({"sub": "*"}));
    assert_eq!(
        reason(&c, "GET", "/users/*", Some(&sneaky)),
        Reason::NoRoleAllows
    );
}

#[test]
fn rules_first_match_and_preferred_role() {
    let c = config();
    let gold = id(&[], &[], json!({"custom:tier": "gold"}));
    assert_eq!(
        reason(&c, "GET", "/premium/x", Some(&gold)),
        Reason::Allowed
    );
    // First match wins: the `starts_with: g` rule is not reached for gold.
    assert_eq!(
        reason(&c, "GET", "/silver/x", Some(&gold)),
        Reason::NoRoleAllows
    );
    let green = id(&[], &[], json!({"custom:tier": "green"}));
    assert_eq!(
        reason(&c, "GET", "/silver/x", Some(&green)),
        Reason::Allowed
    );
    // A preferred role replaces the groups' roles.
    let ops = id(
        &["admins"],
        &[],
        json!({"cognito:preferred_role": "arn:aws:iam::1:role/ops"}),
    );
    assert_eq!(reason(&c, "GET", "/ops/x", Some(&ops)), Reason::Allowed);
    assert_eq!(
        reason(&c, "GET", "/premium/x", Some(&ops)),
        Reason::NoRoleAllows
    );
    let unknown_arn = id(
        &["admins"],
        &[],
        json!({"cognito:preferred_role": "arn:aws:iam::1:role/x"}),
    );
    assert_eq!(
        reason(&c, "GET", "/premium/x", Some(&unknown_arn)),
        Reason::Allowed
    );
}

#[test]
fn route_roles_are_required() {
    let c = config();
    let reader = id(&["readers"], &[], json!({}));
    assert_eq!(
        reason(&c, "GET", "/admin/x", Some(&reader)),
        Reason::MissingRole
    );
    let admin = id(&["admins"], &[], json!({}));
    assert_eq!(reason(&c, "GET", "/admin/x", Some(&admin)), Reason::Allowed);
}

#[test]
fn statuses_and_codes() {
    assert_eq!(Reason::NoToken.status(), 401);
    assert_eq!(Reason::ExplicitDeny.status(), 403);
    assert_eq!(Reason::NoRoute.status(), 404);
    assert_eq!(Reason::Scope.code(), "scope");
}

proptest! {
    /// Whatever the `sub` claim holds, the owner statement allows a path only when its second
    /// segment is exactly that claim and the claim is a plain segment.
    #[test]
    fn claim_variables_never_widen(
        sub in prop_oneof![
            "[a-z0-9]{1,6}",
            Just(String::new()), Just("..".to_owned()), Just(".".to_owned()), Just("*".to_owned()),
            Just("**".to_owned()), Just("a/b".to_owned()), Just("%2e%2e".to_owned()), Just("{sub}".to_owned()),
            any::<String>(),
        ],
        tail in prop::collection::vec(prop_oneof![Just("a"), Just("*"), Just(".."), Just("x%2Fy"), Just("")], 0..3),
        second in prop_oneof![Just("abc"), Just("*"), Just("a"), Just("..")],
    ) {
        let c = config();
        let u = id(&[], &[], json!({ "sub": sub }));
        for candidate in [format!("/users/{sub}/{}", tail.join("/")), format!("/users/{second}/{}", tail.join("/"))] {
            let Ok(path) = normalize_path(&candidate) else { continue };
            let d = c.decide_request(&host("h"), "GET", &path, Some(&u.principal()));
            if d.allowed {
                let seg = path.trim_start_matches("/users/").split('/').next().unwrap_or("");
                prop_assert_eq!(seg, sub.as_str());
                let plain = !sub.is_empty() && sub != ".." && sub != "." && !sub.contains(['/', '*', '%', '{']);
                prop_assert!(plain, "allowed with sub {:?}", sub);
            }
        }
    }
}

#[test]
fn all_match_rules_add_up() {
    let text = POLICY.replace(
        "  authenticated: [owner]",
        "  rule_match: all\n  authenticated: [owner]",
    );
    let c = load_str("inline.yaml", &text, &|_| None).unwrap_or_else(|d| panic!("{d}"));
    let gold = id(&[], &[], json!({"custom:tier": "gold"}));
    assert_eq!(
        reason(&c, "GET", "/premium/x", Some(&gold)),
        Reason::Allowed
    );
    assert_eq!(reason(&c, "GET", "/silver/x", Some(&gold)), Reason::Allowed);
}

#[test]
fn config_can_be_shared_between_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<Config>();
    shared::<poolgate_policies::Diagnostics>();
}

#[test]
fn rules_on_groups_and_scopes_read_the_typed_lists_and_an_absent_claim_matches_nothing() {
    let text = POLICY.replace(
        "    - { claim: \"custom:tier\", equals: gold, roles: [gold] }\n",
        "    - { claim: \"cognito:groups\", not_equals: suspended, roles: [gold] }\n\
         \x20   - { claim: scope, equals: \"ops/read\", roles: [ops] }\n",
    );
    let c = load_str("inline.yaml", &text, &|_| None).unwrap_or_else(|d| panic!("{d}"));
    let p = |groups: &[&str], has_groups: bool, scopes: &[&str], has_scopes: bool| {
        let groups: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
        let scopes: Vec<String> = scopes.iter().map(|g| (*g).to_owned()).collect();
        let claims = Map::new();
        let principal = Principal {
            issuer: "shop",
            token_use: Some("access"),
            groups: &groups,
            scopes: &scopes,
            has_groups_claim: has_groups,
            has_scopes_claim: has_scopes,
            claims: &claims,
        };
        let premium = c
            .decide_request(&host("h"), "GET", "/premium/x", Some(&principal))
            .allowed;
        let ops = c
            .decide_request(&host("h"), "GET", "/ops/x", Some(&principal))
            .allowed;
        (premium, ops)
    };
    // not_equals on groups: a member of other groups matches; a suspended one does not; a token
    // without the groups claim matches nothing (as before claim paths).
    assert!(p(&["readers"], true, &[], false).0);
    assert!(!p(&["suspended"], true, &[], false).0);
    assert!(!p(&[], false, &[], false).0);
    // Scopes are a list: membership, not the whole space-separated string.
    assert!(p(&[], false, &["openid", "ops/read"], true).1);
    assert!(!p(&[], false, &["openid"], true).1);
}
