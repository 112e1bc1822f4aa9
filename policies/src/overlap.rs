//! Load-time detection of routes that can never win, or can never be told apart.
//!
//! With "most specific wins", a route can only be hidden by another of exactly the same host
//! pattern and path shape (`*` and `{name}` count as the same shape): a more specific route
//! always matches strictly fewer requests at the position where the two differ. So only such
//! pairs are compared, by their methods:
//! - both any-method, or the later's methods all covered by the earlier's: the later route is
//!   unreachable (error naming both);
//! - some methods in common: those requests cannot be told apart (error naming both);
//! - one any-method and one with a list: fine, the listed methods win for those methods.

use crate::convert::Ctx;
use crate::diag::{Diagnostic, Span};
use crate::model::{Route, Upstream};
use crate::pattern::{HostPattern, Seg};
use std::collections::HashMap;

/// `at` holds each route's path location and key.
pub(crate) fn check(ctx: &mut Ctx<'_>, routes: &[Route], at: &[(Span, String)]) {
    let mut groups: HashMap<(&HostPattern, Vec<Seg>), Vec<usize>> = HashMap::new();
    for (i, r) in routes.iter().enumerate() {
        groups.entry((&r.host, r.path.shape())).or_default().push(i);
    }
    let mut found: Vec<(usize, usize, bool)> = Vec::new();
    for members in groups.values() {
        for (n, &b) in members.iter().enumerate() {
            for &a in members.iter().take(n) {
                let (Some(ra), Some(rb)) = (routes.get(a), routes.get(b)) else {
                    continue;
                };
                let (ma, mb) = (ra.methods, rb.methods);
                if ma.is_any() != mb.is_any() {
                    continue;
                }
                if ma.covers(&mb) {
                    found.push((a, b, true));
                    break;
                }
                if ma.intersects(&mb) {
                    found.push((a, b, false));
                    break;
                }
            }
        }
    }
    found.sort_unstable();
    for (a, b, unreachable) in found {
        let (Some(ra), Some(rb), Some(sa), Some(sb)) =
            (routes.get(a), routes.get(b), at.get(a), at.get(b))
        else {
            continue;
        };
        let what = format!("`{}{}`", host_prefix(&ra.host), ra.path.raw);
        let d = if unreachable {
            Diagnostic::new(
                sb.0.clone(),
                sb.1.clone(),
                format!(
                    "route `{}` can never match: route `{}` matches the same requests",
                    rb.name, ra.name
                ),
            )
            .label(format!(
                "same host, path shape and methods as `{}`",
                ra.name
            ))
            .help("remove one of them, or make their paths or methods differ")
        } else {
            let common: Vec<&str> = ra
                .methods
                .names()
                .into_iter()
                .filter(|m| rb.methods.contains(m))
                .collect();
            Diagnostic::new(
                sb.0.clone(),
                sb.1.clone(),
                format!(
                    "routes `{}` and `{}` cannot be told apart for `{}` {what}",
                    ra.name,
                    rb.name,
                    common.join("`, `")
                ),
            )
            .label("overlapping methods")
            .help("give each method to one route only")
        };
        ctx.push(d.related(sa.0.clone(), format!("route `{}` is defined here", ra.name)));
    }
}

fn host_prefix(h: &HostPattern) -> String {
    match h {
        HostPattern::Any => String::new(),
        other => other.to_string(),
    }
}

/// Whether two upstreams can reach the same backend: the same name, or a target in common.
fn same_backend(upstreams: &[Upstream], a: &str, b: &str) -> bool {
    let targets = |name: &str| {
        upstreams
            .iter()
            .find(|u| u.name == name)
            .map(|u| &u.targets)
    };
    a == b
        || targets(a)
            .zip(targets(b))
            .is_some_and(|(x, y)| x.iter().any(|t| y.contains(t)))
}

/// Warnings about routes without a host beside routes with one, on the same backend (by
/// upstream name or a shared target). `hosts[i]` and `paths[i]` locate route `i`.
///
/// - A `*.suffix` route covers exactly one label, but the wildcard virtual hosts of common
///   backends (nginx, Apache, most frameworks) cover any depth: `a.b.example.com` misses the
///   wildcard route, falls to the route without a host, and reaches the backend's wildcard
///   host judged by that route instead. One warning per such wildcard route.
/// - Any host that no route names falls to the route without a host too, and the backend
///   serves it as its default virtual host, which may be one that a host-bound route guards.
///   One warning per route without a host whose path has a wildcard or a variable.
pub(crate) fn host_routes_beside_any_host(
    routes: &[Route],
    upstreams: &[Upstream],
    hosts: &[Option<(Span, String)>],
    paths: &[(Span, String)],
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    // A literal path (a health check's `/healthz`) exposes that one path only.
    let literal = |o: &Route| o.path.segs.iter().all(|s| matches!(s, Seg::Lit(_)));
    let any_beside = |r: &Route| {
        routes.iter().position(|o| {
            o.host == HostPattern::Any
                && !literal(o)
                && same_backend(upstreams, &o.upstream, &r.upstream)
        })
    };
    for (i, r) in routes.iter().enumerate() {
        let HostPattern::Wildcard(suffix) = &r.host else {
            continue;
        };
        let Some(any) = any_beside(r) else {
            continue;
        };
        let (Some(Some((span, key))), Some((other, _))) = (hosts.get(i), paths.get(any)) else {
            continue;
        };
        let other_name = routes.get(any).map_or("", |o| o.name.as_str());
        out.push(
            Diagnostic::new(
                span.clone(),
                key.clone(),
                format!(
                    "`*.{suffix}` matches one label only, but route `{other_name}` without a host sends deeper names such as `a.b.{suffix}` to the same backend (upstream `{}`)",
                    r.upstream
                ),
            )
            .related(other.clone(), format!("route `{other_name}` matches every host"))
            .help(format!(
                "if the backend serves `*.{suffix}` at any depth, give route `{other_name}` a host: names no route lists then get 404 at the edge"
            )),
        );
    }
    for (j, o) in routes.iter().enumerate() {
        if o.host != HostPattern::Any || literal(o) {
            continue;
        }
        let Some(bound) = routes.iter().position(|r| {
            r.host != HostPattern::Any && same_backend(upstreams, &o.upstream, &r.upstream)
        }) else {
            continue;
        };
        let (Some((span, key)), Some(Some((host_span, _)))) = (paths.get(j), hosts.get(bound))
        else {
            continue;
        };
        let bound_route = routes.get(bound);
        out.push(
            Diagnostic::new(
                span.clone(),
                key.clone(),
                format!(
                    "route `{}` has no host, and its backend also serves host `{}`: a host that no route names reaches that backend through this route, which serves it as its default virtual host",
                    o.name,
                    bound_route.map_or(String::new(), |r| r.host.to_string()),
                ),
            )
            .related(
                host_span.clone(),
                format!(
                    "route `{}` guards that host",
                    bound_route.map_or("", |r| r.name.as_str())
                ),
            )
            .help("give this route a host too, or make the backend's default virtual host refuse every request"),
        );
    }
    out
}
