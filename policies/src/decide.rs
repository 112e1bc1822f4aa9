//! Decisions: may this request, on this route, with this identity, go through — and why.
//!
//! 1. A public route allows without a token (and without looking at one).
//! 2. Without a token: a route with `auth` requirements answers [`Reason::NoToken`]; otherwise
//!    the guest roles' statements are consulted (a denial is still `NoToken`: authenticating is
//!    the way forward).
//! 3. With a verified identity: the route's issuer, `token_use` and scopes (`any_of`, `all_of`)
//!    must hold, then the route's `roles` (if any) must include one of the identity's roles.
//! 4. The identity's roles' statements: any deny statement covering (method, path) denies
//!    ([`Reason::ExplicitDeny`]), whatever allows it; otherwise the first allow statement
//!    (roles in mapping order, statements in file order) allows; otherwise
//!    [`Reason::NoRoleAllows`].

use crate::model::Route;
use crate::roles::{Effect, Role, RoleMapping};
use serde_json::{Map, Value};

/// A verified identity, borrowed from the authorizer's `Identity` without copying.
#[derive(Clone, Copy, Debug)]
pub struct Principal<'a> {
    /// The issuer's name in the policy (not the `iss` URL).
    pub issuer: &'a str,
    /// `access` or `id` (Cognito's `token_use`), if the token says.
    pub token_use: Option<&'a str>,
    /// The groups, from where the issuer puts them (`cognito:groups` by default).
    pub groups: &'a [String],
    /// The scopes, from where the issuer puts them (`scope`, split on spaces, by default).
    pub scopes: &'a [String],
    /// Whether the token had a groups claim and a scopes claim at all: a claim rule on an
    /// absent one matches nothing.
    pub has_groups_claim: bool,
    pub has_scopes_claim: bool,
    /// Every claim of the token.
    pub claims: &'a dyn Claims,
}

/// A token's claims, looked up by name: its JSON object, or any compact form of it.
pub trait Claims: std::fmt::Debug {
    /// The value of claim `name`, if the token has it.
    fn claim(&self, name: &str) -> Option<&Value>;
}

impl Claims for Map<String, Value> {
    fn claim(&self, name: &str) -> Option<&Value> {
        self.get(name)
    }
}

/// Why a decision went the way it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The route is public.
    Public,
    /// A role's allow statement covers the request (see `Decision::statement`).
    Allowed,
    /// No route matches the request.
    NoRoute,
    /// The route needs a token and there is none (or the guest roles do not allow it).
    NoToken,
    /// The token comes from another issuer than the route's.
    WrongIssuer,
    /// The token is an ID token where an access token is required, or the reverse.
    WrongTokenUse,
    /// The token lacks the route's scopes.
    Scope,
    /// The identity holds none of the route's `auth.roles`.
    MissingRole,
    /// None of the identity's roles allows the method and path.
    NoRoleAllows,
    /// A deny statement of one of the identity's roles covers the request.
    ExplicitDeny,
}

impl Reason {
    /// A stable short code for logs and metrics.
    pub fn code(self) -> &'static str {
        match self {
            Reason::Public => "public",
            Reason::Allowed => "allowed",
            Reason::NoRoute => "no_route",
            Reason::NoToken => "no_token",
            Reason::WrongIssuer => "wrong_issuer",
            Reason::WrongTokenUse => "wrong_token_use",
            Reason::Scope => "scope",
            Reason::MissingRole => "missing_role",
            Reason::NoRoleAllows => "no_role_allows",
            Reason::ExplicitDeny => "explicit_deny",
        }
    }

    /// The HTTP status this reason suggests: 200 (allowed), 401, 403 or 404.
    pub fn status(self) -> u16 {
        match self {
            Reason::Public | Reason::Allowed => 200,
            Reason::NoRoute => 404,
            Reason::NoToken | Reason::WrongIssuer | Reason::WrongTokenUse => 401,
            Reason::Scope | Reason::MissingRole | Reason::NoRoleAllows | Reason::ExplicitDeny => {
                403
            }
        }
    }
}

/// The statement that decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatementRef<'c> {
    pub role: &'c str,
    pub effect: Effect,
    /// Position in the role's `allow:` or `deny:` list.
    pub index: usize,
}

/// The outcome for one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision<'c> {
    pub allowed: bool,
    pub reason: Reason,
    /// The matched route's name.
    pub route: Option<&'c str>,
    /// The roles the request had (empty when they were not needed).
    pub roles: Vec<&'c str>,
    /// The statement that allowed or denied, when one did.
    pub statement: Option<StatementRef<'c>>,
}

impl<'c> Decision<'c> {
    fn deny(route: Option<&'c str>, reason: Reason) -> Self {
        Decision {
            allowed: false,
            reason,
            route,
            roles: Vec::new(),
            statement: None,
        }
    }

    /// No route matched.
    pub fn no_route() -> Self {
        Self::deny(None, Reason::NoRoute)
    }
}

/// Evaluates the statements of `role_ids`: explicit deny first, then the first allow.
fn evaluate<'c>(
    roles: &'c [Role],
    role_ids: &[usize],
    method: &str,
    path: &str,
    claims: Option<&dyn Claims>,
) -> Option<StatementRef<'c>> {
    let held = || role_ids.iter().filter_map(|i| roles.get(*i));
    for role in held() {
        if let Some(s) = role.deny.iter().find(|s| s.covers(method, path, claims)) {
            return Some(StatementRef {
                role: &role.name,
                effect: Effect::Deny,
                index: s.index,
            });
        }
    }
    for role in held() {
        if let Some(s) = role.allow.iter().find(|s| s.covers(method, path, claims)) {
            return Some(StatementRef {
                role: &role.name,
                effect: Effect::Allow,
                index: s.index,
            });
        }
    }
    None
}

/// Decides for a matched route. `path` is the normalised path.
pub fn decide<'c>(
    roles: &'c [Role],
    mapping: &RoleMapping,
    route: &'c Route,
    method: &str,
    path: &str,
    principal: Option<&Principal<'_>>,
) -> Decision<'c> {
    let name = Some(route.name.as_str());
    if route.public {
        return Decision {
            allowed: true,
            reason: Reason::Public,
            route: name,
            roles: Vec::new(),
            statement: None,
        };
    }
    let auth = &route.auth;
    if let Some(p) = principal {
        if auth.issuer.as_deref().is_some_and(|i| i != p.issuer) {
            return Decision::deny(name, Reason::WrongIssuer);
        }
        if auth.token_use.is_some_and(|t| !t.accepts(p.token_use)) {
            return Decision::deny(name, Reason::WrongTokenUse);
        }
        let has = |s: &String| p.scopes.iter().any(|x| x == s);
        if (!auth.scopes_any_of.is_empty() && !auth.scopes_any_of.iter().any(has))
            || !auth.scopes_all_of.iter().all(has)
        {
            return Decision::deny(name, Reason::Scope);
        }
    } else if auth.issuer.is_some()
        || auth.token_use.is_some()
        || !auth.scopes_any_of.is_empty()
        || !auth.scopes_all_of.is_empty()
        || !auth.roles.is_empty()
    {
        return Decision::deny(name, Reason::NoToken);
    }
    let ids = mapping.roles_of(principal);
    let role_names: Vec<&'c str> = ids
        .iter()
        .filter_map(|i| roles.get(*i))
        .map(|r| r.name.as_str())
        .collect();
    if !auth.roles.is_empty() && !auth.roles.iter().any(|r| ids.contains(r)) {
        return Decision {
            roles: role_names,
            ..Decision::deny(name, Reason::MissingRole)
        };
    }
    let found = evaluate(roles, &ids, method, path, principal.map(|p| p.claims));
    let (allowed, reason) = match (found, principal) {
        (Some(s), _) if s.effect == Effect::Allow => (true, Reason::Allowed),
        (_, None) => (false, Reason::NoToken),
        (Some(_), Some(_)) => (false, Reason::ExplicitDeny),
        (None, Some(_)) => (false, Reason::NoRoleAllows),
    };
    Decision {
        allowed,
        reason,
        route: name,
        roles: role_names,
        statement: found,
    }
}
