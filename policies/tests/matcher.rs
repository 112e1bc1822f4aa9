#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Route matching: specificity rules, and properties checked against a plain reference.

use poolgate_policies::matcher::Matcher;
use poolgate_policies::pattern::{HostPattern, parse_host, parse_path};
use poolgate_policies::{AuthRequirement, Authority, MethodSet, Route};
use proptest::prelude::*;

fn route(name: &str, host: Option<&str>, path: &str, methods: &[&str]) -> Route {
    let mut set = if methods.is_empty() {
        MethodSet::ANY
    } else {
        MethodSet::default()
    };
    for m in methods {
        assert!(set.insert(m));
    }
    Route {
        name: name.into(),
        host: host.map_or(HostPattern::Any, |h| parse_host(h).unwrap()),
        path: parse_path(path).unwrap(),
        methods: set,
        upstream: "u".into(),
        upstream_index: 0,
        public: false,
        auth: AuthRequirement::default(),
        cors: None,
        forward_token: true,
        headers: Vec::new(),
        header_encoding: Default::default(),
        signed_identity: false,
        total_timeout: None,
    }
}

fn find<'a>(routes: &'a [Route], host: &str, method: &str, path: &str) -> Option<&'a str> {
    let host = Authority::parse(host.as_bytes()).unwrap();
    Matcher::new(routes)
        .find(routes, host.host(), method, path)
        .map(|m| m.route.name.as_str())
}

#[test]
fn most_specific_wins() {
    let routes = vec![
        route("catch-all", None, "/**", &[]),
        route("admin-tree", None, "/admin/**", &[]),
        route("admin-users", None, "/admin/users", &[]),
        route("admin-one", None, "/admin/*", &[]),
        route("admin-user", None, "/admin/users/{id}", &[]),
        route("admin-get", None, "/admin/*", &["GET"]),
        route("host-tree", Some("api.example.com"), "/**", &[]),
        route("wild-tree", Some("*.example.com"), "/admin/**", &[]),
    ];
    let f = |host, method, path| find(&routes, host, method, path);
    assert_eq!(f("x.org", "GET", "/admin/users"), Some("admin-users"));
    assert_eq!(f("x.org", "GET", "/admin/x"), Some("admin-get"));
    assert_eq!(f("x.org", "POST", "/admin/x"), Some("admin-one"));
    assert_eq!(f("x.org", "GET", "/admin/users/7"), Some("admin-user"));
    assert_eq!(f("x.org", "GET", "/admin"), Some("admin-tree"));
    assert_eq!(f("x.org", "GET", "/admin/a/b"), Some("admin-tree"));
    // `/admin/**` never matches `/administrator`.
    assert_eq!(f("x.org", "GET", "/administrator"), Some("catch-all"));
    assert_eq!(f("x.org", "GET", "/"), Some("catch-all"));
    // Host beats path: any route of an exact host beats any route of a wildcard or no host.
    assert_eq!(
        f("API.example.com:8443", "GET", "/admin/users"),
        Some("host-tree")
    );
    assert_eq!(
        f("www.example.com", "GET", "/admin/users"),
        Some("wild-tree")
    );
    assert_eq!(f("www.example.com", "GET", "/other"), Some("catch-all"));
    assert_eq!(f("a.b.example.com", "GET", "/admin/x"), Some("admin-get"));
}

#[test]
fn captures_and_trailing_slash() {
    let routes = vec![
        route("item", None, "/orders/{order}/items/{item}", &[]),
        route("exact", None, "/orders", &[]),
    ];
    let m = Matcher::new(&routes);
    let hit = m.find(&routes, "h", "GET", "/orders/o1/items/i2").unwrap();
    assert_eq!(hit.params, vec![("order", "o1"), ("item", "i2")]);
    assert_eq!(hit.index, 0);
    assert!(m.find(&routes, "h", "GET", "/orders/").is_none());
    assert!(m.find(&routes, "h", "GET", "/orders/o1/items").is_none());
}

#[test]
fn declaration_order_breaks_ties_and_no_method_no_match() {
    let routes = vec![
        route("first", None, "/a/{x}", &["GET"]),
        route("second", None, "/a/*", &["GET"]),
    ];
    assert_eq!(find(&routes, "h", "GET", "/a/b"), Some("first"));
    assert_eq!(find(&routes, "h", "DELETE", "/a/b"), None);
}

#[test]
fn hosts_are_normalised() {
    let host = |raw: &str| Authority::parse(raw.as_bytes()).unwrap().host().to_owned();
    assert_eq!(host("API.Example.com:443"), "api.example.com");
    assert_eq!(host("example.com."), "example.com");
    assert_eq!(host("[::1]:8080"), "[::1]");
}

// ---- properties ----

fn seg() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_owned()),
        Just("b".to_owned()),
        Just("c".to_owned()),
        Just("*".to_owned()),
        Just("{p}".to_owned()),
    ]
}

fn pattern() -> impl Strategy<Value = String> {
    (prop::collection::vec(seg(), 0..4), any::<bool>()).prop_map(|(segs, rest)| {
        let mut p = String::new();
        let mut n = 0;
        for s in segs {
            n += 1;
            p.push('/');
            // Only one capture per name.
            p.push_str(if s == "{p}" {
                if n == 1 { "{p}" } else { "*" }
            } else {
                &s
            });
        }
        if rest {
            p.push_str("/**");
        }
        if p.is_empty() { "/".to_owned() } else { p }
    })
}

fn host() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some("a.com".to_owned())),
        Just(Some("b.com".to_owned())),
        Just(Some("*.com".to_owned()))
    ]
}

fn methods() -> impl Strategy<Value = Vec<&'static str>> {
    prop_oneof![
        Just(vec![]),
        Just(vec!["GET"]),
        Just(vec!["POST"]),
        Just(vec!["GET", "POST"])
    ]
}

fn table() -> impl Strategy<Value = Vec<Route>> {
    prop::collection::vec((host(), pattern(), methods()), 0..24).prop_map(|rows| {
        rows.into_iter()
            .enumerate()
            .map(|(i, (h, p, m))| route(&format!("r{i}"), h.as_deref(), &p, &m))
            .collect()
    })
}

fn request() -> impl Strategy<Value = (String, String, String)> {
    (
        prop_oneof![
            Just("a.com"),
            Just("B.com:80"),
            Just("x.com"),
            Just("y.a.com")
        ],
        prop_oneof![Just("GET"), Just("POST"), Just("PUT")],
        prop::collection::vec(
            prop_oneof![Just("a"), Just("b"), Just("c"), Just("d"), Just("")],
            0..5,
        ),
    )
        .prop_map(|(h, m, segs)| {
            let segs: Vec<&str> = segs.into_iter().filter(|s| !s.is_empty()).collect();
            (h.to_owned(), m.to_owned(), format!("/{}", segs.join("/")))
        })
}

/// The plain definition: among the routes that match, the greatest (host rank, path
/// specificity, listed methods), earliest first.
fn reference(routes: &[Route], host: &str, method: &str, path: &str) -> Option<usize> {
    let host = Authority::parse(host.as_bytes()).unwrap();
    let host = host.host();
    routes
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            r.host.matches(host) && r.methods.contains(method) && r.path.matches(path).is_some()
        })
        .max_by(|(i, a), (j, b)| {
            (a.host.rank(), a.path.specificity(), !a.methods.is_any())
                .cmp(&(b.host.rank(), b.path.specificity(), !b.methods.is_any()))
                .then(j.cmp(i))
        })
        .map(|(i, _)| i)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn trie_agrees_with_the_reference(routes in table(), reqs in prop::collection::vec(request(), 1..16)) {
        let m = Matcher::new(&routes);
        for (h, meth, p) in &reqs {
            let host = Authority::parse(h.as_bytes()).unwrap();
            let got = m.find(&routes, host.host(), meth, p).map(|x| x.index);
            prop_assert_eq!(got, reference(&routes, h, meth, p), "{} {} {}", h, meth, p);
        }
    }

    #[test]
    fn matching_is_deterministic(routes in table(), (h, meth, p) in request()) {
        let first = Matcher::new(&routes).find(&routes, &h, &meth, &p).map(|x| x.index);
        for _ in 0..3 {
            let again = Matcher::new(&routes).find(&routes, &h, &meth, &p).map(|x| x.index);
            prop_assert_eq!(first, again);
        }
    }

    #[test]
    fn an_unrelated_route_changes_no_match(
        routes in table(),
        extra in (host(), pattern(), methods()),
        reqs in prop::collection::vec(request(), 1..16),
    ) {
        let before = Matcher::new(&routes);
        let mut more = routes.clone();
        // Unrelated: under a first segment no request has.
        let (h, p, ms) = extra;
        more.push(route("extra", h.as_deref(), &format!("/unrelated{}", if p == "/" { String::new() } else { p }), &ms));
        let after = Matcher::new(&more);
        for (h, meth, p) in &reqs {
            prop_assert_eq!(
                before.find(&routes, h, meth, p).map(|x| x.index),
                after.find(&more, h, meth, p).map(|x| x.index)
            );
        }
    }
}
