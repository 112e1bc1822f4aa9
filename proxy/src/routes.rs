//! Interim route table: host + path-prefix, most specific prefix wins.
//!
//! Stands in until the policy engine's matcher (`poolgate-policies`) is wired in; the gate
//! asks only "which route, which upstream, is it public", so the swap is local to here.

use crate::config::RouteSpec;

/// What a matched route tells the gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteHit<'a> {
    pub name: &'a str,
    pub upstream: &'a str,
    pub public: bool,
}

/// Routes in match order: longest prefix first, host-specific before any-host, then file order.
#[derive(Debug, Default, Clone)]
pub struct RouteTable {
    routes: Vec<RouteSpec>,
}

impl RouteTable {
    pub fn new(routes: &[RouteSpec]) -> Self {
        let mut routes = routes.to_vec();
        for r in &mut routes {
            if r.path_prefix.len() > 1 {
                while r.path_prefix.ends_with('/') {
                    r.path_prefix.pop();
                }
            }
        }
        // Stable sort keeps declaration order among equals.
        routes.sort_by(|a, b| {
            b.path_prefix
                .len()
                .cmp(&a.path_prefix.len())
                .then(b.host.is_some().cmp(&a.host.is_some()))
        });
        Self { routes }
    }

    /// The route for `host` (without port) and an already normalised `path`.
    pub fn find(&self, host: Option<&str>, path: &str) -> Option<RouteHit<'_>> {
        self.routes
            .iter()
            .find(|r| {
                let host_ok = match (&r.host, host) {
                    (None, _) => true,
                    (Some(want), Some(got)) => want.eq_ignore_ascii_case(got),
                    (Some(_), None) => false,
                };
                host_ok && prefix_matches(&r.path_prefix, path)
            })
            .map(|r| RouteHit {
                name: &r.name,
                upstream: &r.upstream,
                public: r.public,
            })
    }
}

fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" || prefix.is_empty() {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// The host of a `Host` header value, without port, lowercased.
pub fn host_only(host: &str) -> String {
    let h = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    h.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(name: &str, host: Option<&str>, prefix: &str, public: bool) -> RouteSpec {
        RouteSpec {
            name: name.into(),
            host: host.map(Into::into),
            path_prefix: prefix.into(),
            upstream: "up".into(),
            public,
        }
    }

    #[test]
    fn most_specific_prefix_then_host_wins() {
        let t = RouteTable::new(&[
            r("root", None, "/", true),
            r("api", None, "/api/", false),
            r("api-host", Some("api.example.com"), "/api", false),
            r("api-v2", None, "/api/v2", false),
        ]);
        assert_eq!(t.find(None, "/x").unwrap().name, "root");
        assert_eq!(t.find(None, "/api").unwrap().name, "api");
        assert_eq!(t.find(None, "/apix").unwrap().name, "root");
        assert_eq!(
            t.find(Some("api.example.com"), "/api/1").unwrap().name,
            "api-host"
        );
        assert_eq!(
            t.find(Some("API.example.com"), "/api/v2/z").unwrap().name,
            "api-v2"
        );
        assert!(
            RouteTable::new(&[r("a", None, "/a", true)])
                .find(None, "/b")
                .is_none()
        );
    }

    #[test]
    fn host_only_strips_port() {
        assert_eq!(host_only("Example.com:8080"), "example.com");
        assert_eq!(host_only("[::1]:80"), "::1");
        assert_eq!(host_only("plain"), "plain");
    }
}

/// Interim path check until the policy engine's normaliser is wired in: refuses what could
/// be read differently by a backend (dot segments, encoded `/`, `\`, NUL, `%` not followed by
/// two hex digits) and collapses repeated `/`. Returns a stable short code on refusal.
pub fn normalize_path(raw: &str) -> Result<String, &'static str> {
    if !raw.starts_with('/') {
        return Err("path_not_absolute");
    }
    let bytes = raw.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'\\' | 0 => return Err("path_forbidden_char"),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or("path_bad_escape")?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return Err("path_bad_escape");
                }
                let v = u8::from_str_radix(
                    std::str::from_utf8(hex).map_err(|_| "path_bad_escape")?,
                    16,
                )
                .map_err(|_| "path_bad_escape")?;
                if matches!(v, b'/' | b'\\' | b'.' | 0) {
                    return Err("path_encoded_separator");
                }
                i += 3;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    let mut out = String::with_capacity(raw.len());
    for seg in raw.split('/').filter(|s| !s.is_empty()) {
        if seg == "." || seg == ".." {
            return Err("path_dot_segment");
        }
        out.push('/');
        out.push_str(seg);
    }
    if out.is_empty() || (raw.ends_with('/') && raw.len() > 1) {
        out.push('/');
    }
    Ok(out)
}

#[cfg(test)]
mod path_tests {
    use super::normalize_path;

    #[test]
    fn normalises_or_refuses() {
        assert_eq!(normalize_path("/a//b/").unwrap(), "/a/b/");
        assert_eq!(normalize_path("/").unwrap(), "/");
        assert_eq!(normalize_path("/a/%41").unwrap(), "/a/%41");
        assert_eq!(normalize_path("/a/../b"), Err("path_dot_segment"));
        assert_eq!(normalize_path("/a/./b"), Err("path_dot_segment"));
        assert_eq!(normalize_path("/a%2fb"), Err("path_encoded_separator"));
        assert_eq!(normalize_path("/a%2E%2E/"), Err("path_encoded_separator"));
        assert_eq!(normalize_path("/a%zz"), Err("path_bad_escape"));
        assert_eq!(normalize_path("/a%4"), Err("path_bad_escape"));
        assert_eq!(normalize_path("/a\\b"), Err("path_forbidden_char"));
        assert_eq!(normalize_path("a"), Err("path_not_absolute"));
    }
}
