//! poolgate-policies: the policy file, its validation, route matching, role mapping and decisions.
//!
//! A pure crate (no I/O besides reading the policy files): the proxy loads a [`Config`] once per
//! (re)load and, per request, calls
//! 1. [`normalize_path`] on the request path (an error is a 400),
//! 2. [`Config::match_route`] with the [`Authority`] (an error is a 400), method and the normalised path (`None` is a 404),
//! 3. [`Config::decide`] with the match and the verified identity as a [`Principal`].
//!
//! Modules, by concern:
//! - [`file`]: the format as written (serde structs); `convert` validates it into [`model`]
//!   types, collecting every problem as a located [`Diagnostic`] ([`diag`]);
//! - [`normalize`]: path normalisation; [`authority`]: the strict parse of `Host`; [`pattern`]: host and path patterns;
//! - [`matcher`]: the compiled route matcher; `overlap`: unreachable and ambiguous routes;
//! - [`roles`]: roles, statements and role mapping; [`decide`]: decisions.
//!
//! ```no_run
//! let config = poolgate_policies::load("policy.yaml").map_err(|d| eprintln!("{d}")).ok();
//! ```

pub mod authority;
pub mod claim_path;
mod convert;
pub mod decide;
pub mod diag;
mod duration;
mod env;
pub mod file;
mod keys;
mod load;
pub mod matcher;
pub mod method;
pub mod model;
pub mod normalize;
mod overlap;
pub mod pattern;
pub mod reserved;
pub mod roles;
mod shape_errors;
pub mod spelling;

pub use authority::{Authority, AuthorityError};
pub use claim_path::ClaimPath;
pub use decide::{Claims, Decision, Principal, Reason, StatementRef};
pub use diag::{Diagnostic, Diagnostics, Span};
pub use duration::parse_duration;
pub use load::content_hash;
pub use matcher::RouteMatch;
pub use method::MethodSet;
pub use model::{
    AccessLogTarget, AuthRequirement, Balance, ClientRequestId, Connections, Cors, HashKey,
    HealthCheck, IdentityHeaders, Issuer, JwksTimings, KeySource, Limits, Listener, ListenerTls,
    Route, Server, Timeouts, TokenUse, Upstream, UpstreamTls,
};
pub use normalize::{PathError, normalize_path, split_query};
pub use roles::{Effect, Role, RoleMapping, Rule, RuleMatch, RuleOp, Statement};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// A validated, compiled policy.
#[derive(Debug)]
pub struct Config {
    /// Where to listen (may be empty: the proxy then uses its own default).
    pub listeners: Vec<Listener>,
    /// The admin address (`/metrics`, `/healthz`, `/readyz`), if any.
    pub admin: Option<SocketAddr>,
    pub issuers: Vec<Issuer>,
    pub upstreams: Vec<Upstream>,
    pub roles: Vec<Role>,
    pub role_mapping: RoleMapping,
    /// Routes in declaration order (main file, then includes); `RouteMatch::index` points here.
    pub routes: Vec<Route>,
    pub identity_headers: IdentityHeaders,
    pub limits: Limits,
    /// Process settings (`server:`).
    pub server: Server,
    /// The files read (main first), e.g. to watch them for reloads.
    pub files: Vec<PathBuf>,
    /// Advice on a policy that loads (`poolgate check` prints it; nothing refuses it).
    pub warnings: Diagnostics,
    /// Each file read, with the [`content_hash`] of the bytes read (main first).
    pub read: Vec<(PathBuf, u64)>,
    /// Keys and settings of the ALB-compatible signed identity, if configured.
    pub signed_identity: Option<model::SignedIdentity>,
    matcher: matcher::Matcher,
}

impl Config {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn assemble(
        listeners: Vec<Listener>,
        admin: Option<SocketAddr>,
        issuers: Vec<Issuer>,
        upstreams: Vec<Upstream>,
        roles: Vec<Role>,
        role_mapping: RoleMapping,
        routes: Vec<Route>,
        identity_headers: IdentityHeaders,
        limits: Limits,
        server: Server,
        files: Vec<String>,
    ) -> Self {
        let matcher = matcher::Matcher::new(&routes);
        Config {
            listeners,
            admin,
            issuers,
            upstreams,
            roles,
            role_mapping,
            routes,
            identity_headers,
            limits,
            server,
            files: files.into_iter().map(PathBuf::from).collect(),
            warnings: Diagnostics::default(),
            read: Vec::new(),
            signed_identity: None,
            matcher,
        }
    }

    /// Whether a verified identity must keep every claim: a route sends a signed identity,
    /// whose body is the token's verified claims.
    pub fn keeps_all_claims(&self) -> bool {
        self.signed_identity.is_some() && self.routes.iter().any(|r| r.signed_identity)
    }

    /// Every claim this configuration reads besides the typed ones (`sub`, username, groups,
    /// scopes, client id, `token_use`): claim rules, `cognito:preferred_role`, statement
    /// variables, claim headers and consistent-hash keys. A verified identity needs to keep only
    /// these; an absent claim matches no rule and no allow, and makes a deny with it cover all.
    pub fn claims_read(&self) -> std::collections::BTreeSet<String> {
        let mut out = std::collections::BTreeSet::new();
        // Rules on groups and scopes read the identity's typed lists, not the raw claim.
        out.extend(
            self.role_mapping
                .rules
                .iter()
                .map(|r| r.claim.clone())
                .filter(|c| c != roles::GROUPS_CLAIM && c != roles::SCOPES_CLAIM),
        );
        if !self.role_mapping.preferred_role.is_empty() {
            out.insert("cognito:preferred_role".to_owned());
        }
        let statements = self
            .roles
            .iter()
            .flat_map(|r| r.allow.iter().chain(&r.deny));
        for seg in statements.flat_map(|s| &s.paths).flat_map(|p| &p.segs) {
            if let pattern::Seg::Param(name) = seg {
                out.insert(name.clone());
            }
        }
        out.extend(
            self.routes
                .iter()
                .flat_map(|r| r.headers.iter().map(|(_, c)| c.clone())),
        );
        out.extend(self.identity_headers.claims.iter().map(|(_, c)| c.clone()));
        for u in &self.upstreams {
            if let Balance::ConsistentHash(HashKey::Claim(c)) = &u.balance {
                out.insert(c.clone());
            }
        }
        out
    }

    /// The best route for a request: its parsed [`Authority`] (the port is ignored), the method,
    /// and the path as returned by [`normalize_path`].
    pub fn match_route<'c, 'p>(
        &'c self,
        host: &Authority<'_>,
        method: &str,
        path: &'p str,
    ) -> Option<RouteMatch<'c, 'p>> {
        self.matcher.find(&self.routes, host.host(), method, path)
    }

    /// A route more specific than the matched one (or the route matched at all) that another
    /// spelling of `path` reaches ([`spelling::folded`]: letter case, a dropped suffix): a
    /// backend may serve the request as that route's resource, which this route did not
    /// judge, so the proxy refuses it.
    pub fn shadowing_route(
        &self,
        host: &Authority<'_>,
        method: &str,
        path: &str,
        matched: &RouteMatch<'_, '_>,
    ) -> Option<&Route> {
        let folded = spelling::folded(path)?;
        let other = self
            .matcher
            .find(&self.routes, host.host(), method, &folded)?;
        let key = |r: &Route| (r.host.rank(), r.path.specificity(), !r.methods.is_any());
        (other.index != matched.index && key(other.route) > key(matched.route))
            .then_some(other.route)
    }

    /// Decides for a matched route; `principal` is `None` when the request has no token.
    pub fn decide<'c>(
        &'c self,
        matched: &RouteMatch<'c, '_>,
        method: &str,
        path: &str,
        principal: Option<&Principal<'_>>,
    ) -> Decision<'c> {
        decide::decide(
            &self.roles,
            &self.role_mapping,
            matched.route,
            method,
            path,
            principal,
        )
    }

    /// Match and decide in one call (`NoRoute` when nothing matches).
    pub fn decide_request<'c>(
        &'c self,
        host: &Authority<'_>,
        method: &str,
        path: &str,
        principal: Option<&Principal<'_>>,
    ) -> Decision<'c> {
        match self.match_route(host, method, path) {
            Some(m) => self.decide(&m, method, path, principal),
            None => Decision::no_route(),
        }
    }

    /// An issuer by name.
    pub fn issuer(&self, name: &str) -> Option<&Issuer> {
        self.issuers.iter().find(|i| i.name == name)
    }

    /// The `token_use` a route's tokens must have: the route's own, else its issuer's, else any.
    pub fn token_use_for(&self, route: &Route) -> TokenUse {
        route
            .auth
            .token_use
            .or_else(|| {
                route
                    .auth
                    .issuer
                    .as_deref()
                    .and_then(|i| self.issuer(i))
                    .map(|i| i.token_use)
            })
            .unwrap_or(TokenUse::Any)
    }
}

/// Loads a policy file: reads it and its includes, substitutes `${ENV}` from the process
/// environment, validates everything and compiles the matcher.
pub fn load(path: impl AsRef<Path>) -> Result<Config, Diagnostics> {
    load::load_file(path.as_ref(), &|name| std::env::var(name).ok())
}

/// [`load`] with an explicit environment (for tests and `poolgate check --env`).
pub fn load_with_env(
    path: impl AsRef<Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Diagnostics> {
    load::load_file(path.as_ref(), env)
}

/// Checks a policy given as text, named `file` in diagnostics. `include:` is refused (no
/// file access), which makes this suitable for fuzzing and editors.
pub fn load_str(
    file: &str,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Diagnostics> {
    load::load_text(file, text, load::Includes::Refused, env)
}
