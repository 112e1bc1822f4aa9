//! Roles, role mapping and routes.

use super::{Ctx, Names, header_name, net::token_use};
use crate::file::{RoleFile, RoleMappingFile, RouteFile, S, StatementFile};
use crate::method::{METHODS, MethodSet};
use crate::model::{AuthRequirement, Cors, IdentityHeaders, Route};
use crate::pattern::{HostPattern, parse_host, parse_path};
use crate::roles::{Effect, Role, RoleMapping, Rule, RuleMatch, RuleOp, Statement};
use serde_saphyr::{Location, Spanned};

/// Headers a route may not set from claims: they frame, route or authenticate the request.
const RESERVED_HEADERS: [&str; 14] = [
    "proxy-connection",
    "expect",
    "host",
    "authorization",
    "connection",
    "content-length",
    "content-type",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "keep-alive",
    "proxy-authorization",
    "cookie",
];

/// Builds a rule comparison from its value.
type MakeOp = fn(String) -> RuleOp;

fn methods(ctx: &mut Ctx<'_>, list: &[S], key: &str, at: &Location) -> MethodSet {
    let mut set = MethodSet::default();
    if list.is_empty() {
        ctx.push(
            ctx.diag(at, key, "no methods listed")
                .help("list methods such as `[GET, HEAD]`, or `[\"*\"]` for every method"),
        );
    }
    for (i, m) in list.iter().enumerate() {
        let mkey = format!("{key}[{i}]");
        let Some(text) = ctx.text(m, &mkey) else {
            continue;
        };
        if !set.insert(&text) {
            let upper = text.to_ascii_uppercase();
            let help = if METHODS.contains(&upper.as_str()) {
                Some(format!(
                    "methods are case-sensitive: did you mean `{upper}`?"
                ))
            } else {
                crate::diag::suggest(&text, METHODS)
            };
            let d = ctx
                .diag(&m.referenced, &mkey, format!("unknown method `{text}`"))
                .maybe_help(help);
            ctx.push(d);
        }
    }
    set
}

fn statement(
    ctx: &mut Ctx<'_>,
    s: &Spanned<StatementFile>,
    effect: Effect,
    index: usize,
    key: &str,
) -> Statement {
    let methods = methods(
        ctx,
        &s.value.methods.value,
        &format!("{key}.methods"),
        &s.value.methods.referenced,
    );
    if s.value.paths.value.is_empty() {
        ctx.push(
            ctx.diag(
                &s.value.paths.referenced,
                &format!("{key}.paths"),
                "no paths listed",
            )
            .help("list path patterns such as `/orders/**`"),
        );
    }
    let paths = s
        .value
        .paths
        .value
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let pkey = format!("{key}.paths[{i}]");
            let text = ctx.text(p, &pkey)?;
            parse_path(&text)
                .map_err(|e| {
                    ctx.push(
                        ctx.diag(&p.referenced, &pkey, e)
                            .help("see `docs/policies.md`, path patterns"),
                    )
                })
                .ok()
        })
        .collect();
    Statement {
        effect,
        index,
        methods,
        paths,
    }
}

pub(super) fn role(ctx: &mut Ctx<'_>, name: &S, f: &RoleFile) -> Role {
    let key = format!("roles.{}", name.value);
    let allow = f
        .allow
        .iter()
        .enumerate()
        .map(|(i, s)| statement(ctx, s, Effect::Allow, i, &format!("{key}.allow[{i}]")))
        .collect();
    let deny = f
        .deny
        .iter()
        .enumerate()
        .map(|(i, s)| statement(ctx, s, Effect::Deny, i, &format!("{key}.deny[{i}]")))
        .collect();
    Role {
        name: name.value.clone(),
        description: f.description.as_ref().map(|d| d.value.clone()),
        allow,
        deny,
    }
}

fn role_refs(ctx: &mut Ctx<'_>, list: &[S], key: &str, names: &Names) -> Vec<usize> {
    list.iter()
        .enumerate()
        .filter_map(|(i, r)| {
            ctx.reference(r, &format!("{key}[{i}]"), "role", "roles", &names.roles)
        })
        .collect()
}

pub(super) fn role_mapping(ctx: &mut Ctx<'_>, f: &RoleMappingFile, names: &Names) -> RoleMapping {
    let mut out = RoleMapping::default();
    for (group, roles) in &f.groups.0 {
        let roles = role_refs(
            ctx,
            roles,
            &format!("role_mapping.groups.{}", group.value),
            names,
        );
        out.groups.insert(group.value.clone(), roles);
    }
    for (arn, roles) in &f.preferred_role.0 {
        let roles = role_refs(
            ctx,
            roles,
            &format!("role_mapping.preferred_role.{}", arn.value),
            names,
        );
        out.preferred_role.insert(arn.value.clone(), roles);
    }
    for (i, r) in f.rules.iter().enumerate() {
        let key = format!("role_mapping.rules[{i}]");
        let v = &r.value;
        let ops: Vec<(&S, MakeOp)> = [
            (&v.equals, RuleOp::Equals as MakeOp),
            (&v.not_equals, RuleOp::NotEquals),
            (&v.starts_with, RuleOp::StartsWith),
            (&v.contains, RuleOp::Contains),
        ]
        .into_iter()
        .filter_map(|(o, f)| o.as_ref().map(|s| (s, f)))
        .collect();
        let roles = role_refs(ctx, &v.roles.value, &format!("{key}.roles"), names);
        if v.roles.value.is_empty() {
            ctx.error(
                &v.roles.referenced,
                &format!("{key}.roles"),
                "rule gives no roles",
            );
        }
        let op = match ops.as_slice() {
            [(s, make)] => ctx.text(s, &key).map(make),
            [] => {
                ctx.push(
                    ctx.diag(
                        &r.referenced,
                        &key,
                        format!("rule on claim `{}` has no comparison", v.claim.value),
                    )
                    .help("add one of `equals`, `not_equals`, `starts_with`, `contains`"),
                );
                None
            }
            [_, (second, _), ..] => {
                ctx.push(
                    ctx.diag(
                        &second.referenced,
                        &key,
                        format!(
                            "rule on claim `{}` has more than one comparison",
                            v.claim.value
                        ),
                    )
                    .help("split it into one rule per comparison"),
                );
                None
            }
        };
        if let Some(op) = op {
            out.rules.push(Rule {
                claim: v.claim.value.clone(),
                op,
                roles,
            });
        }
    }
    if let Some(m) = &f.rule_match {
        out.rule_match = match ctx.choice(
            m,
            "role_mapping.rule_match",
            "rule_match",
            &["first", "all"],
        ) {
            Some("all") => RuleMatch::All,
            _ => RuleMatch::First,
        };
    }
    out.authenticated = role_refs(ctx, &f.authenticated, "role_mapping.authenticated", names);
    out.guest = role_refs(ctx, &f.guest, "role_mapping.guest", names);
    out
}

fn cors(ctx: &mut Ctx<'_>, f: &crate::file::CorsFile, key: &str) -> Cors {
    let mut list = |l: &[S], what: &str| -> Vec<String> {
        l.iter()
            .enumerate()
            .filter_map(|(i, s)| ctx.text(s, &format!("{key}.{what}[{i}]")))
            .collect()
    };
    let allow_origins = list(&f.allow_origins, "allow_origins");
    let allow_methods = list(&f.allow_methods, "allow_methods");
    let allow_headers = list(&f.allow_headers, "allow_headers");
    let expose_headers = list(&f.expose_headers, "expose_headers");
    let allow_credentials = f.allow_credentials.as_ref().is_some_and(|b| b.value);
    if allow_credentials && allow_origins.iter().any(|o| o == "*") {
        ctx.push(
            ctx.diag(
                &f.allow_credentials
                    .as_ref()
                    .map_or(Location::UNKNOWN, |b| b.referenced),
                &format!("{key}.allow_credentials"),
                "`allow_credentials` cannot be used with origin `*`",
            )
            .help("list the allowed origins explicitly"),
        );
    }
    for (i, o) in f.allow_origins.iter().enumerate() {
        if o.value != "*"
            && !(o.value.starts_with("https://")
                || o.value.starts_with("http://")
                || o.value.starts_with("${"))
        {
            ctx.push(
                ctx.diag(
                    &o.referenced,
                    &format!("{key}.allow_origins[{i}]"),
                    format!("invalid origin `{}`", o.value),
                )
                .help("write `https://app.example.com` or `*`"),
            );
        }
    }
    Cors {
        allow_origins,
        allow_methods,
        allow_headers,
        expose_headers,
        allow_credentials,
        max_age: ctx.duration(f.max_age.as_ref(), &format!("{key}.max_age")),
    }
}

/// Converts one route; `origin` prefixes the default name of routes from included files.
pub(super) fn route(
    ctx: &mut Ctx<'_>,
    origin: &str,
    index: usize,
    r: &Spanned<RouteFile>,
    names: &Names,
    identity: &IdentityHeaders,
) -> Option<Route> {
    let identity_prefix = identity.prefix.as_str();
    let f = &r.value;
    let name = f
        .name
        .as_ref()
        .map_or_else(|| format!("{origin}routes[{index}]"), |n| n.value.clone());
    let key = format!("routes[{index}]");
    let host = match &f.matcher.host {
        None => Some(HostPattern::Any),
        Some(h) => {
            let hkey = format!("{key}.match.host");
            ctx.text(h, &hkey).and_then(|text| {
                parse_host(&text)
                    .map_err(|e| {
                        ctx.push(
                            ctx.diag(&h.referenced, &hkey, e)
                                .help("write `api.example.com` or `*.example.com`"),
                        )
                    })
                    .ok()
            })
        }
    };
    let pkey = format!("{key}.match.path");
    let path = ctx.text(&f.matcher.path, &pkey).and_then(|text| {
        parse_path(&text)
            .map_err(|e| {
                ctx.push(
                    ctx.diag(&f.matcher.path.referenced, &pkey, e)
                        .help("see `docs/policies.md`, path patterns"),
                )
            })
            .ok()
    });
    let methods = if f.matcher.methods.is_empty() {
        MethodSet::ANY
    } else {
        methods(
            ctx,
            &f.matcher.methods,
            &format!("{key}.match.methods"),
            &r.referenced,
        )
    };
    let upstream_index = ctx.reference(
        &f.upstream,
        &format!("{key}.upstream"),
        "upstream",
        "upstreams",
        &names.upstreams,
    );
    let public = f.public.as_ref().is_some_and(|p| p.value);
    let mut auth = AuthRequirement::default();
    if let Some(a) = &f.auth {
        let akey = format!("{key}.auth");
        if public {
            ctx.push(
                ctx.diag(
                    &a.referenced,
                    &akey,
                    format!("route `{name}` is public but has `auth`"),
                )
                .help("a public route needs no token: remove `auth`, or `public: true`"),
            );
        }
        let a = &a.value;
        if let Some(i) = &a.issuer {
            ctx.reference(
                i,
                &format!("{akey}.issuer"),
                "issuer",
                "issuers",
                &names.issuers,
            );
            auth.issuer = Some(i.value.clone());
        }
        auth.token_use = a
            .token_use
            .as_ref()
            .and_then(|t| token_use(ctx, t, &format!("{akey}.token_use")));
        if let Some(s) = &a.scopes {
            let mut texts = |list: &[S], what: &str| -> Vec<String> {
                list.iter()
                    .enumerate()
                    .filter_map(|(i, x)| ctx.text(x, &format!("{akey}.scopes.{what}[{i}]")))
                    .collect()
            };
            auth.scopes_any_of = texts(&s.any_of, "any_of");
            auth.scopes_all_of = texts(&s.all_of, "all_of");
        }
        auth.roles = role_refs(ctx, &a.roles, &format!("{akey}.roles"), names);
    }
    let cors = f
        .cors
        .as_ref()
        .map(|c| cors(ctx, c, &format!("{key}.cors")));
    let mut headers = Vec::new();
    for (h, claim) in &f.headers.0 {
        let hkey = format!("{key}.headers.{}", h.value);
        let Some(name) = header_name(ctx, h, &hkey) else {
            continue;
        };
        if RESERVED_HEADERS
            .iter()
            .any(|r| crate::reserved::folded_eq(&name, r))
        {
            ctx.push(
                ctx.diag(&h.referenced, &hkey, format!("header `{name}` cannot be set from a claim"))
                    .help("it carries the request itself (hop-by-hop, framing, routing or credentials): pick another name"),
            );
            continue;
        }
        if let Some(why) = crate::reserved::owned(&name, identity_prefix) {
            ctx.push(
                ctx.diag(
                    &h.referenced,
                    &hkey,
                    format!("header `{name}` is poolgate's own and cannot be set from a claim"),
                )
                .help(format!("{why}: pick another name")),
            );
            continue;
        }
        if let Some(c) = ctx.text(claim, &hkey) {
            headers.push((name, c));
        }
    }
    Some(Route {
        name,
        host: host?,
        path: path?,
        methods,
        upstream: f.upstream.value.clone(),
        upstream_index: upstream_index?,
        public,
        auth,
        cors,
        forward_token: f.forward_token.as_ref().is_none_or(|b| b.value),
        headers,
        signed_identity: f.signed_identity.as_ref().is_some_and(|b| b.value),
        total_timeout: super::total_timeout(
            ctx,
            f.total_timeout.as_ref(),
            &format!("{key}.total_timeout"),
        ),
        header_encoding: f
            .header_encoding
            .as_ref()
            .map_or(Some(identity.encoding), |e| {
                super::array_encoding(ctx, e, &format!("{key}.header_encoding"))
            })?,
    })
}
