//! The compiled route matcher: a segment trie per host bucket.
//!
//! Order of preference (the most specific route wins, deterministically):
//! 1. host: exact > `*.suffix` > any host (buckets are tried in that order);
//! 2. path, compared segment by segment from the left: a literal beats `*`/`{name}`, which
//!    beats "the path ends here", which beats `**`;
//! 3. methods: a route listing methods beats an any-method route;
//! 4. declaration order (main file first, then includes in order).
//!
//! A lookup walks one trie by the request's segments, trying children in that order and
//! backtracking only on a miss, so it does not scan every route.

use crate::model::Route;
use crate::pattern::{HostPattern, Seg, request_segments};
use std::collections::HashMap;

/// Maps looked up with request input on every request: foldhash, not SipHash. Their keys come
/// from the policy, so a client cannot fill them with colliding keys.
type FastMap<V> = HashMap<String, V, foldhash::fast::RandomState>;

#[derive(Debug, Default)]
struct Node {
    lit: FastMap<Node>,
    one: Option<Box<Node>>,
    /// Routes whose pattern ends here, best first.
    end: Vec<usize>,
    /// Routes whose pattern ends with `**` here, best first.
    rest: Vec<usize>,
}

impl Node {
    fn insert(&mut self, segs: &[Seg], route: usize) {
        match segs.split_first() {
            None => self.end.push(route),
            Some((Seg::Rest, _)) => self.rest.push(route),
            Some((Seg::Lit(l), tail)) => self.lit.entry(l.clone()).or_default().insert(tail, route),
            Some((Seg::One | Seg::Param(_), tail)) => {
                self.one
                    .get_or_insert_with(Box::default)
                    .insert(tail, route);
            }
        }
    }

    fn sort(&mut self, key: &impl Fn(&usize) -> (bool, usize)) {
        self.end.sort_by_key(key);
        self.rest.sort_by_key(key);
        for child in self.lit.values_mut() {
            child.sort(key);
        }
        if let Some(one) = &mut self.one {
            one.sort(key);
        }
    }
}

/// A route found for a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteMatch<'c, 'p> {
    /// Index into `Config::routes`.
    pub index: usize,
    pub route: &'c Route,
    /// `{name}` captures, in pattern order.
    pub params: Vec<(&'c str, &'p str)>,
}

/// The compiled matcher.
#[derive(Debug, Default)]
pub struct Matcher {
    exact: FastMap<Node>,
    wildcard: FastMap<Node>,
    any: Node,
}

fn search<'a>(
    node: &Node,
    segs: impl Iterator<Item = &'a str> + Clone,
    method: &str,
    routes: &[Route],
) -> Option<usize> {
    let allowed = |r: &&usize| routes.get(**r).is_some_and(|r| r.methods.contains(method));
    let mut next = segs.clone();
    match next.next() {
        Some(seg) => {
            if let Some(found) = node
                .lit
                .get(seg)
                .and_then(|c| search(c, next.clone(), method, routes))
            {
                return Some(found);
            }
            if let Some(found) = node
                .one
                .as_ref()
                .and_then(|c| search(c, next, method, routes))
            {
                return Some(found);
            }
        }
        None => {
            if let Some(r) = node.end.iter().find(allowed) {
                return Some(*r);
            }
        }
    }
    node.rest.iter().find(allowed).copied()
}

impl Matcher {
    /// Compiles the routes (indices are positions in `routes`).
    pub fn new(routes: &[Route]) -> Self {
        let mut m = Matcher::default();
        for (i, r) in routes.iter().enumerate() {
            let node = match &r.host {
                HostPattern::Any => &mut m.any,
                HostPattern::Exact(h) => m.exact.entry(h.clone()).or_default(),
                HostPattern::Wildcard(s) => m.wildcard.entry(s.clone()).or_default(),
            };
            node.insert(&r.path.segs, i);
        }
        let key = |i: &usize| (routes.get(*i).is_none_or(|r| r.methods.is_any()), *i);
        m.any.sort(&key);
        for n in m.exact.values_mut().chain(m.wildcard.values_mut()) {
            n.sort(&key);
        }
        m
    }

    /// The best route for (host, method, normalised path), with its captures; `host` is an
    /// [`Authority`](crate::authority::Authority)'s host (lower case, no port, no trailing dot).
    pub fn find<'c, 'p>(
        &self,
        routes: &'c [Route],
        host: &str,
        method: &str,
        path: &'p str,
    ) -> Option<RouteMatch<'c, 'p>> {
        let segs = request_segments(path);
        let wild = host
            .split_once('.')
            .filter(|(label, _)| !label.is_empty())
            .and_then(|(_, suffix)| self.wildcard.get(suffix));
        let index = [self.exact.get(host), wild, Some(&self.any)]
            .into_iter()
            .flatten()
            .find_map(|node| search(node, segs.clone(), method, routes))?;
        let route = routes.get(index)?;
        let params = route.path.matches(path).unwrap_or_default();
        Some(RouteMatch {
            index,
            route,
            params,
        })
    }
}
