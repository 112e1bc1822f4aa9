//! Roles and how identities get them, as Cognito identity pools assign roles.
//!
//! An authenticated identity's roles are the union of:
//! 1. the roles of its `cognito:groups` (`role_mapping.groups`), or — when `preferred_role` is
//!    configured and the token's `cognito:preferred_role` is one of its keys — that entry's
//!    roles instead (identity pools' "token" mode: the group with the lowest precedence decides);
//! 2. the roles of the claim rules: with `rule_match: first` (the default, as identity pools) only
//!    the first rule that matches counts, so an ordered list reads as "most privileged first";
//!    with `rule_match: all` every matching rule adds its roles;
//! 3. `authenticated`, given to every verified identity.
//!
//! `guest` roles are given only to requests that carry no token at all: the proxy answers 401 to
//! an invalid token and never asks for the guest roles in that case.

use crate::decide::{Claims, Principal};
use crate::method::MethodSet;
use crate::pattern::{PathPattern, Seg, request_segments};
use crate::spelling::deny_covers;
use serde_json::Value;
use std::collections::HashMap;

/// Allow or deny.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// One statement of a role: methods × paths.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    pub effect: Effect,
    /// Position within the role's `allow:` or `deny:` list.
    pub index: usize,
    pub methods: MethodSet,
    /// Paths; `{claim}` segments are claim variables.
    pub paths: Vec<PathPattern>,
}

/// A named set of statements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Role {
    pub name: String,
    pub description: Option<String>,
    pub allow: Vec<Statement>,
    pub deny: Vec<Statement>,
}

/// The comparison of a claim rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleOp {
    Equals(String),
    NotEquals(String),
    StartsWith(String),
    Contains(String),
}

/// An ordered claim rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub claim: String,
    pub op: RuleOp,
    /// Indices into `Config::roles`.
    pub roles: Vec<usize>,
}

/// Whether the first matching rule or every matching rule gives roles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RuleMatch {
    #[default]
    First,
    All,
}

/// How identities get roles (indices into `Config::roles`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RoleMapping {
    /// foldhash: looked up with each token's groups on every request.
    pub groups: HashMap<String, Vec<usize>, foldhash::fast::RandomState>,
    pub rules: Vec<Rule>,
    pub rule_match: RuleMatch,
    /// `cognito:preferred_role` value (an IAM role ARN) → roles.
    pub preferred_role: HashMap<String, Vec<usize>, foldhash::fast::RandomState>,
    pub authenticated: Vec<usize>,
    pub guest: Vec<usize>,
}

/// The text a scalar claim compares as (`true`, `42`); `None` for objects and null.
fn scalar_text(v: &Value) -> Option<std::borrow::Cow<'_, str>> {
    match v {
        Value::String(s) => Some(s.as_str().into()),
        Value::Number(n) => Some(n.to_string().into()),
        Value::Bool(b) => Some(if *b { "true" } else { "false" }.into()),
        _ => None,
    }
}

/// The claim names that stand for an identity's groups and scopes in rules, whatever claim its
/// issuer carries them in (`issuers.*.claims`).
pub const GROUPS_CLAIM: &str = "cognito:groups";
pub const SCOPES_CLAIM: &str = "scope";

impl Rule {
    /// [`Rule::matches`] for a verified identity: a rule on `cognito:groups` or `scope` reads the
    /// groups or scopes its issuer's claim paths gave (a Keycloak token's `realm_access.roles`).
    pub fn matches_principal(&self, p: &Principal<'_>) -> bool {
        match self.claim.as_str() {
            // An absent claim matches no rule, not even `not_equals`, as for any other claim.
            GROUPS_CLAIM => {
                p.has_groups_claim && self.matches_list(p.groups.iter().map(String::as_str))
            }
            SCOPES_CLAIM => {
                p.has_scopes_claim && self.matches_list(p.scopes.iter().map(String::as_str))
            }
            _ => self.matches(p.claims),
        }
    }

    /// Membership semantics over a list (see [`Rule::matches`]).
    fn matches_list<T: AsRef<str>>(&self, mut texts: impl Iterator<Item = T>) -> bool {
        match &self.op {
            RuleOp::Equals(v) | RuleOp::Contains(v) => texts.any(|t| t.as_ref() == v.as_str()),
            RuleOp::NotEquals(v) => !texts.any(|t| t.as_ref() == v.as_str()),
            RuleOp::StartsWith(v) => texts.any(|t| t.as_ref().starts_with(v.as_str())),
        }
    }

    /// Whether the rule matches. Arrays use membership: `equals`/`contains` — some element
    /// equals the value; `not_equals` — no element does; `starts_with` — some element starts
    /// with it. A string claim: `contains` is a substring test. An absent claim matches nothing
    /// (a `not_equals` rule is skipped, as identity pools do).
    pub fn matches(&self, claims: &dyn Claims) -> bool {
        let Some(value) = claims.claim(&self.claim) else {
            return false;
        };
        match value {
            Value::Array(items) => self.matches_list(items.iter().filter_map(scalar_text)),
            other => {
                let Some(t) = scalar_text(other) else {
                    return false;
                };
                match &self.op {
                    RuleOp::Equals(v) => t == v.as_str(),
                    RuleOp::NotEquals(v) => t != v.as_str(),
                    RuleOp::StartsWith(v) => t.starts_with(v.as_str()),
                    RuleOp::Contains(v) => t.contains(v.as_str()),
                }
            }
        }
    }
}

fn add(set: &mut Vec<usize>, roles: &[usize]) {
    for r in roles {
        if !set.contains(r) {
            set.push(*r);
        }
    }
}

impl RoleMapping {
    /// The roles of a request: a verified identity, or `None` for a request without a token.
    pub fn roles_of(&self, principal: Option<&Principal<'_>>) -> Vec<usize> {
        let mut out = Vec::new();
        let Some(p) = principal else {
            add(&mut out, &self.guest);
            return out;
        };
        // No lookup at all without a preferred-role mapping (the claims may be many).
        let preferred = (!self.preferred_role.is_empty())
            .then(|| p.claims.claim("cognito:preferred_role"))
            .flatten()
            .and_then(Value::as_str)
            .and_then(|arn| self.preferred_role.get(arn));
        match preferred {
            Some(roles) => add(&mut out, roles),
            None => {
                for g in p.groups {
                    if let Some(roles) = self.groups.get(g.as_str()) {
                        add(&mut out, roles);
                    }
                }
            }
        }
        for rule in &self.rules {
            if rule.matches_principal(p) {
                add(&mut out, &rule.roles);
                if self.rule_match == RuleMatch::First {
                    break;
                }
            }
        }
        add(&mut out, &self.authenticated);
        out
    }
}

/// Whether a claim value can stand for exactly one literal segment: non-empty, not a
/// dot-segment, and only characters a normalised segment has, minus `*`, `%` and braces.
fn safe_segment(v: &str) -> bool {
    !v.is_empty()
        && v != "."
        && v != ".."
        && v.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'.'
                        | b'_'
                        | b'~'
                        | b'!'
                        | b'$'
                        | b'&'
                        | b'\''
                        | b'('
                        | b')'
                        | b'+'
                        | b','
                        | b'='
                        | b':'
                        | b'@'
                )
        })
}

/// Resolves a claim variable to a literal segment, or `None` when it cannot be one.
fn claim_segment<'c>(
    claims: Option<&'c dyn Claims>,
    name: &str,
) -> Option<std::borrow::Cow<'c, str>> {
    let v = scalar_text(claims?.claim(name)?)?;
    safe_segment(&v).then_some(v)
}

impl Statement {
    /// Whether the statement covers `method` and the normalised `path` for these claims.
    ///
    /// A claim variable matches exactly one segment equal to the claim's value. When the value
    /// cannot be a single literal segment (absent, empty, `..`, containing `/`, `*`, `%`…), an
    /// allow statement does not match, and a deny statement treats the variable as `*` — both
    /// fail closed. A deny of `GET` also covers `HEAD`: backends answer `HEAD` with their `GET`
    /// handler.
    pub fn covers(&self, method: &str, path: &str, claims: Option<&dyn Claims>) -> bool {
        let method_covered = self.methods.contains(method)
            || (self.effect == Effect::Deny && method == "HEAD" && self.methods.contains("GET"));
        method_covered && self.paths.iter().any(|p| self.path_covers(p, path, claims))
    }

    /// Allow statements match exactly. Deny statements cover every spelling a backend could
    /// serve as the same resource (failing closed), an allow only its own: see [`deny_covers`].
    fn path_covers(&self, pattern: &PathPattern, path: &str, claims: Option<&dyn Claims>) -> bool {
        let deny = self.effect == Effect::Deny;
        let same = |want: &str, got: &str| {
            if deny {
                deny_covers(want, got)
            } else {
                want == got
            }
        };
        let mut req = request_segments(path);
        for seg in &pattern.segs {
            match seg {
                Seg::Rest => return true,
                Seg::Lit(l) => {
                    if !req.next().is_some_and(|actual| same(l, actual)) {
                        return false;
                    }
                }
                Seg::One => {
                    if req.next().is_none() {
                        return false;
                    }
                }
                Seg::Param(name) => {
                    let Some(actual) = req.next() else {
                        return false;
                    };
                    match claim_segment(claims, name) {
                        Some(v) => {
                            if !same(&v, actual) {
                                return false;
                            }
                        }
                        None if deny => {}
                        None => return false,
                    }
                }
            }
        }
        match req.next() {
            None => true,
            Some("") if deny => req.next().is_none(),
            Some(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> serde_json::Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    fn rule(claim: &str, op: RuleOp) -> Rule {
        Rule {
            claim: claim.into(),
            op,
            roles: vec![0],
        }
    }

    #[test]
    fn rule_semantics() {
        let c =
            claims(json!({"custom:tier": "gold", "cognito:groups": ["admins", "readers"], "n": 7}));
        assert!(rule("custom:tier", RuleOp::Equals("gold".into())).matches(&c));
        assert!(!rule("custom:tier", RuleOp::NotEquals("gold".into())).matches(&c));
        assert!(rule("custom:tier", RuleOp::StartsWith("go".into())).matches(&c));
        assert!(rule("custom:tier", RuleOp::Contains("ol".into())).matches(&c));
        assert!(rule("cognito:groups", RuleOp::Equals("admins".into())).matches(&c));
        assert!(rule("cognito:groups", RuleOp::Contains("readers".into())).matches(&c));
        assert!(!rule("cognito:groups", RuleOp::Contains("read".into())).matches(&c));
        assert!(rule("cognito:groups", RuleOp::StartsWith("adm".into())).matches(&c));
        assert!(!rule("cognito:groups", RuleOp::NotEquals("admins".into())).matches(&c));
        assert!(rule("cognito:groups", RuleOp::NotEquals("ops".into())).matches(&c));
        assert!(rule("n", RuleOp::Equals("7".into())).matches(&c));
        // Absent claims match nothing, not even not_equals.
        assert!(!rule("missing", RuleOp::NotEquals("x".into())).matches(&c));
    }

    fn statement(effect: Effect, path: &str) -> Statement {
        Statement {
            effect,
            index: 0,
            methods: MethodSet::ANY,
            paths: vec![crate::pattern::parse_path(path).unwrap()],
        }
    }

    #[test]
    fn deny_covers_trailing_slash_and_letter_case_allow_does_not() {
        let deny = statement(Effect::Deny, "/orders/{sub}");
        let allow = statement(Effect::Allow, "/orders/{sub}");
        let c = claims(json!({"sub": "abc"}));
        for path in ["/orders/abc", "/orders/abc/", "/Orders/abc", "/ORDERS/ABC/"] {
            assert!(deny.covers("DELETE", path, Some(&c)), "{path}");
        }
        assert!(allow.covers("GET", "/orders/abc", Some(&c)));
        for path in [
            "/orders/abc/",
            "/Orders/abc",
            "/orders/abc/x",
            "/orders/abc//",
        ] {
            assert!(!allow.covers("GET", path, Some(&c)), "{path}");
        }
        assert!(!deny.covers("DELETE", "/orders/abc/x", Some(&c)));
    }

    #[test]
    fn a_deny_of_get_covers_head_and_an_allow_of_get_does_not() {
        let mut deny = statement(Effect::Deny, "/secret/**");
        deny.methods = MethodSet::default();
        assert!(deny.methods.insert("GET"));
        let mut allow = deny.clone();
        allow.effect = Effect::Allow;
        assert!(deny.covers("HEAD", "/secret/x", None));
        assert!(!deny.covers("POST", "/secret/x", None));
        assert!(!allow.covers("HEAD", "/secret/x", None));
    }

    #[test]
    fn deny_covers_suffixes_backends_drop_and_allow_does_not() {
        let deny = statement(Effect::Deny, "/secret/**");
        let allow = statement(Effect::Allow, "/secret/**");
        let covered = [
            "/secret.",
            "/secret..",
            "/secret%20",
            "/secret.json",
            "/secret%3Bjsessionid=1",
            "/SECRET.",
            "/secret::$DATA",
            "/secret+",
            "/secret.json/more",
        ];
        for path in covered {
            assert!(deny.covers("GET", path, None), "{path}");
            assert!(!allow.covers("GET", path, None), "{path}");
        }
        for path in ["/secrets", "/secret-x", "/secretary", "/secre", "/x/secret"] {
            assert!(!deny.covers("GET", path, None), "{path}");
        }
        assert!(deny_covers("a.txt", "a.txt."));
        assert!(deny_covers("a.txt", "A.TXT.bak"));
        assert!(!deny_covers("a.txt", "a.tx"));
        assert!(!deny_covers("a.txt", "a.txtx"));
    }

    #[test]
    fn claim_variables_are_one_literal_segment() {
        let allow = statement(Effect::Allow, "/users/{sub}/**");
        let ok = claims(json!({"sub": "abc-123"}));
        assert!(allow.covers("GET", "/users/abc-123/orders", Some(&ok)));
        assert!(!allow.covers("GET", "/users/other/orders", Some(&ok)));
        for bad in ["", "..", ".", "a/b", "*", "**", "%2e", "{sub}"] {
            let c = claims(json!({ "sub": bad }));
            for path in [
                "/users/a/b",
                "/users/*",
                "/users/x",
                "/users/%2e",
                "/users/{sub}",
            ] {
                assert!(!allow.covers("GET", path, Some(&c)), "{bad:?} {path}");
            }
        }
        assert!(!allow.covers("GET", "/users/x", None));
        let deny = statement(Effect::Deny, "/users/{sub}/secret");
        assert!(deny.covers("GET", "/users/anyone/secret", Some(&claims(json!({})))));
        assert!(!deny.covers("GET", "/users/anyone/secret", Some(&ok)));
    }
}
